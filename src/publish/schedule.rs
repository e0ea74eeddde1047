//! The monthly release without a person: the daemon publishes each month once it is over (`publish_cron`,
//! 06:00 on the 1st by default, and at its start for a month it missed while down) into
//! `publish_dir/YYYY-MM/`, and the console serves the releases (`/api/releases`). The folder is the record:
//! a month whose folder exists is not published again, and a release is written beside it and renamed
//! into place, so that a crash leaves either the whole release or none.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Datelike, Utc};

use super::{Period, PublishArgs};
use crate::config::Config;
use crate::store::Store;

/// The month before the one `now` falls in, in Kazakhstan's time.
pub fn previous_month(now: DateTime<Utc>) -> Period {
    let local = now.with_timezone(&chrono_tz::Asia::Almaty);
    let (year, month) = if local.month() == 1 {
        (local.year() - 1, 12)
    } else {
        (local.year(), local.month() - 1)
    };
    Period { year, month }
}

/// Publishes the month before `now` into `dir/YYYY-MM/` unless that folder exists; the month published.
pub async fn publish_due(
    store: &Store,
    config: &Config,
    dir: &Path,
    now: DateTime<Utc>,
) -> Result<Option<Period>> {
    let period = previous_month(now);
    let target = dir.join(period.to_string());
    if target.exists() {
        return Ok(None);
    }
    let partial = dir.join(format!(".{period}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("cannot remove {}", partial.display()))?;
    }
    let args = PublishArgs {
        period,
        out: partial.clone(),
        min_respondents: None,
    };
    super::run(&args, store, config).await?;
    std::fs::rename(&partial, &target)
        .with_context(|| format!("cannot move the release into {}", target.display()))?;
    Ok(Some(period))
}

/// The months released under `dir`, newest first.
pub fn releases(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.parse::<Period>().is_ok() {
            out.push(name);
        }
    }
    out.sort_unstable_by(|a, b| b.cmp(a));
    Ok(out)
}

/// The files of one release, by name.
pub fn release_files(dir: &Path, period: &str) -> Result<Option<Vec<String>>> {
    let Some(folder) = release_folder(dir, period) else {
        return Ok(None);
    };
    let mut names: Vec<String> = std::fs::read_dir(&folder)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(Some(names))
}

/// One file of a release and its media type; `None` for a period or a name that is not there. Only plain
/// names of files in the release folder are served (no path may leave it).
pub fn release_file(
    dir: &Path,
    period: &str,
    name: &str,
) -> Result<Option<(&'static str, Vec<u8>)>> {
    let Some(folder) = release_folder(dir, period) else {
        return Ok(None);
    };
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !plain {
        return Ok(None);
    }
    let path = folder.join(name);
    if !path.is_file() {
        return Ok(None);
    }
    let media = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        Some("md") => "text/markdown; charset=utf-8",
        _ => "application/octet-stream",
    };
    Ok(Some((media, std::fs::read(&path)?)))
}

fn release_folder(dir: &Path, period: &str) -> Option<PathBuf> {
    period.parse::<Period>().ok()?;
    let folder = dir.join(period);
    folder.is_dir().then_some(folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_month_published_is_the_one_before_in_local_time() {
        // 1 December 00:30 in Almaty is still 30 November in UTC.
        assert_eq!(
            previous_month(at("2026-11-30T19:30:00Z")).to_string(),
            "2026-11"
        );
        assert_eq!(
            previous_month(at("2026-12-02T10:00:00+05:00")).to_string(),
            "2026-11"
        );
        assert_eq!(
            previous_month(at("2027-01-01T06:00:00+05:00")).to_string(),
            "2026-12"
        );
    }

    #[test]
    fn only_plain_names_inside_a_release_are_served() {
        let dir =
            std::env::temp_dir().join(format!("sdu-releases-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("2026-11")).unwrap();
        std::fs::write(dir.join("2026-11/t1.csv"), "a,b\n").unwrap();
        std::fs::write(dir.join("secret.txt"), "no").unwrap();
        assert_eq!(releases(&dir).unwrap(), vec!["2026-11"]);
        let (media, body) = release_file(&dir, "2026-11", "t1.csv").unwrap().unwrap();
        assert_eq!(
            (media, body.as_slice()),
            ("text/csv; charset=utf-8", b"a,b\n".as_slice())
        );
        for (period, name) in [
            ("2026-11", "../secret.txt"),
            ("..", "secret.txt"),
            ("2026-11", ".hidden"),
            ("2026-12", "t1.csv"),
        ] {
            assert!(
                release_file(&dir, period, name).unwrap().is_none(),
                "{period}/{name}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
