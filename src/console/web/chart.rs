//! The overview's chart: cases per day stacked by status, drawn as inline SVG on the server (no script, no
//! chart library). This module computes the geometry; `templates/overview.html` draws it.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::i18n::{STATUSES, Tr};
use crate::console::views::Funnel;

/// The drawing's size in SVG units (it scales to the page's width).
pub const WIDTH: i64 = 720;
/// Its height.
pub const HEIGHT: i64 = 240;
const LEFT: i64 = 40;
const BOTTOM: i64 = 28;
const TOP: i64 = 10;

/// A chart ready to draw.
#[derive(Debug, Clone)]
pub struct Chart {
    /// One bar per day of the period, empty days included.
    pub bars: Vec<Bar>,
    /// The statuses present, with their colour and label.
    pub legend: Vec<Swatch>,
    /// Horizontal grid lines with their value.
    pub ticks: Vec<Tick>,
    /// The base line's y.
    pub base: i64,
    /// Whether any case is in the period.
    pub empty: bool,
}

/// One day.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Left edge.
    pub x: i64,
    /// Width.
    pub w: i64,
    /// Centre, for the day's label.
    pub cx: i64,
    /// The day as labelled (`02.11`).
    pub label: String,
    /// Cases that day.
    pub total: i64,
    /// The top of the stack, for the day's total above it.
    pub top: i64,
    /// Its pieces, bottom up.
    pub segments: Vec<Segment>,
}

/// One status's part of a bar.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Top edge.
    pub y: i64,
    /// Height.
    pub h: i64,
    /// Fill colour.
    pub color: &'static str,
    /// The tooltip: date, status, count.
    pub title: String,
}

/// A legend entry.
#[derive(Debug, Clone)]
pub struct Swatch {
    /// Fill colour.
    pub color: &'static str,
    /// Translated status.
    pub label: String,
}

/// A grid line.
#[derive(Debug, Clone)]
pub struct Tick {
    /// Its y.
    pub y: i64,
    /// Its value.
    pub value: i64,
}

/// The colour of a status: green for re-issued, blue for in progress, red for failed, muted tones for the
/// other outcomes (colour-blind safe pairs: no red/green pair is told apart by hue alone, the legend and
/// the tooltips carry the words).
pub fn color(status: &str) -> &'static str {
    match status {
        "open" => "#3b82f6",
        "reissued" => "#16a34a",
        "declined" => "#f59e0b",
        "expired" => "#a3a3a3",
        "failed" => "#dc2626",
        "closed_by_operator" => "#7c3aed",
        "superseded" => "#0891b2",
        "no_phone" => "#db2777",
        "ineligible" => "#92400e",
        "no_head" => "#475569",
        "not_applicable" => "#d4d4d8",
        _ => "#000000",
    }
}

/// The chart of a funnel over `from..=to`.
pub fn of(funnel: &Funnel, from: NaiveDate, to: NaiveDate, tr: Tr) -> Chart {
    let by_day: BTreeMap<NaiveDate, &BTreeMap<String, i64>> =
        funnel.days.iter().map(|d| (d.date, &d.by_status)).collect();
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let max = days
        .iter()
        .map(|d| by_day.get(d).map_or(0, |m| m.values().sum::<i64>()))
        .max()
        .unwrap_or(0);
    let scale_top = nice_ceiling(max.max(1));
    let base = HEIGHT - BOTTOM;
    let plot_h = base - TOP;
    let slot = (WIDTH - LEFT) / (days.len().max(1) as i64);
    let w = (slot * 7 / 10).max(2);
    let mut present: Vec<&str> = Vec::new();
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, day)| {
            let x = LEFT + i as i64 * slot + (slot - w) / 2;
            let counts = by_day.get(day);
            let mut y = base;
            // Heights from the running sum, so that rounding never makes a stack taller or shorter than
            // its day's total.
            let mut below = 0;
            let mut segments = Vec::new();
            // Statuses in one fixed order, so that colours stack the same way every day.
            for status in STATUSES {
                let n = counts.and_then(|m| m.get(status)).copied().unwrap_or(0);
                if n == 0 {
                    continue;
                }
                if !present.contains(&status) {
                    present.push(status);
                }
                below += n;
                let top = (base - below * plot_h / scale_top).min(y - 1);
                let h = y - top;
                y = top;
                segments.push(Segment {
                    y,
                    h,
                    color: color(status),
                    title: format!(
                        "{}: {} — {n}",
                        day.format("%d.%m.%Y"),
                        tr.value("status", status)
                    ),
                });
            }
            Bar {
                x,
                w,
                cx: x + w / 2,
                label: day.format("%d.%m").to_string(),
                total: counts.map_or(0, |m| m.values().sum()),
                top: y,
                segments,
            }
        })
        .collect();
    let ticks = (0..=4)
        .map(|k| Tick {
            y: base - k * plot_h / 4,
            value: scale_top * k / 4,
        })
        .collect();
    let legend = STATUSES
        .iter()
        .filter(|s| present.contains(s))
        .map(|s| Swatch {
            color: color(s),
            label: tr.value("status", s),
        })
        .collect();
    Chart {
        bars,
        legend,
        ticks,
        base,
        empty: max == 0,
    }
}

/// The least of 4, 8, 20, 40, 80, 200, … (four grid steps of 1, 2 or 5 times a power of ten) at or above
/// `n`, so that the grid lines fall on round numbers.
fn nice_ceiling(n: i64) -> i64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if 4 * m * step >= n {
                return 4 * m * step;
            }
        }
        step *= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::views::FunnelDay;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn bars_stack_to_their_day_total_and_empty_days_are_drawn() {
        let funnel = Funnel {
            from: day("2026-11-01"),
            to: day("2026-11-03"),
            totals: BTreeMap::new(),
            by_status: BTreeMap::new(),
            days: vec![FunnelDay {
                date: day("2026-11-02"),
                by_status: [("reissued".to_owned(), 6), ("failed".to_owned(), 2)]
                    .into_iter()
                    .collect(),
            }],
        };
        let chart = of(
            &funnel,
            day("2026-11-01"),
            day("2026-11-03"),
            Tr(super::super::i18n::Lang::En),
        );
        assert_eq!(chart.bars.len(), 3);
        assert!(chart.bars[0].segments.is_empty() && chart.bars[2].segments.is_empty());
        let bar = &chart.bars[1];
        assert_eq!((bar.total, bar.label.as_str()), (8, "02.11"));
        let height: i64 = bar.segments.iter().map(|s| s.h).sum();
        // The scale's top is 8: the bar fills the plot.
        assert_eq!(height, chart.base - TOP);
        assert_eq!(bar.segments[0].color, color("reissued"));
        assert!(bar.segments[1].title.contains("Failed — 2"));
        assert_eq!(chart.legend.len(), 2);
        assert_eq!(chart.ticks.last().map(|t| t.value), Some(8));
        assert!(!chart.empty);
    }

    #[test]
    fn the_scale_ends_on_a_round_number() {
        assert_eq!(nice_ceiling(1), 4);
        assert_eq!(nice_ceiling(5), 8);
        assert_eq!(nice_ceiling(9), 20);
        assert_eq!(nice_ceiling(41), 80);
        assert_eq!(nice_ceiling(1000), 2000);
    }
}
