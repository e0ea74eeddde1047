//! The daily SMS window in local time (docs/RULES.md §2.2: 09:00–21:00 Asia/Almaty by default).

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Local hours in which SMS may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Opens at (inclusive).
    pub start: NaiveTime,
    /// Closes at (exclusive).
    pub end: NaiveTime,
    /// Local time zone.
    pub tz: Tz,
}

impl Window {
    /// Whether `now` falls inside the window.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.tz).time();
        if self.start < self.end {
            self.start <= local && local < self.end
        } else {
            // A window across midnight, e.g. 22:00-06:00.
            local >= self.start || local < self.end
        }
    }

    /// The first instant at or after `now` when the window is open.
    pub fn next_open(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.contains(now) {
            return now;
        }
        let local = now.with_timezone(&self.tz);
        let today = local.date_naive();
        for day in [today, today + Duration::days(1)] {
            let candidate = self
                .tz
                .from_local_datetime(&day.and_time(self.start))
                .earliest();
            if let Some(open) = candidate.map(|c| c.with_timezone(&Utc))
                && open >= now
            {
                return open;
            }
        }
        // Unreachable for a real zone; falling back to a day later keeps the case moving.
        now + Duration::days(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window {
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            tz: chrono_tz::Asia::Almaty,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn nine_is_in_and_twenty_one_is_out() {
        let w = window();
        assert!(w.contains(at("2026-11-02T09:00:00+05:00")));
        assert!(w.contains(at("2026-11-02T20:59:59+05:00")));
        assert!(!w.contains(at("2026-11-02T21:00:00+05:00")));
        assert!(!w.contains(at("2026-11-02T08:59:59+05:00")));
    }

    #[test]
    fn the_next_opening_is_today_before_nine_and_tomorrow_after_nine_pm() {
        let w = window();
        assert_eq!(
            w.next_open(at("2026-11-02T02:00:00+05:00")),
            at("2026-11-02T09:00:00+05:00")
        );
        assert_eq!(
            w.next_open(at("2026-11-02T21:00:00+05:00")),
            at("2026-11-03T09:00:00+05:00")
        );
        assert_eq!(
            w.next_open(at("2026-11-02T12:00:00+05:00")),
            at("2026-11-02T12:00:00+05:00")
        );
    }

    #[test]
    fn a_window_across_midnight_works() {
        let w = Window {
            start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(6, 0, 0).unwrap(),
            ..window()
        };
        assert!(w.contains(at("2026-11-02T23:00:00+05:00")));
        assert!(w.contains(at("2026-11-02T05:00:00+05:00")));
        assert!(!w.contains(at("2026-11-02T12:00:00+05:00")));
        assert_eq!(
            w.next_open(at("2026-11-02T12:00:00+05:00")),
            at("2026-11-02T22:00:00+05:00")
        );
    }
}
