//! The Last Successful Backup of a target in words, for the status page and `check`. Pure:
//! status in, report out.

use std::time::Duration;

use serde::Serialize;

use super::BackupStatus;

/// What is said of a target without a backup source: nothing pretends one exists.
pub const NO_SOURCE: &str =
    "no backup source configured: the exporter cannot tell whether an offsite backup exists";

/// One target's Last Successful Backup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupReport {
    /// Whether the target has a backup source.
    pub configured: bool,
    /// The source, with `{target}` filled in.
    pub url: Option<String>,
    /// Unix seconds the newest known backup was written.
    pub newest_unix: Option<f64>,
    /// Its age now.
    pub age_seconds: Option<f64>,
    /// Its size.
    pub size_bytes: Option<u64>,
    /// The configured max age.
    pub max_age_seconds: Option<f64>,
    /// Older than max age, or never confirmed; `None` without a source or before the first
    /// read.
    pub stale: Option<bool>,
    /// `ok`, `failed`, `pending` (not read yet) or `none` (no source).
    pub check: &'static str,
    /// The reason of the last failed read.
    pub failure_reason: Option<&'static str>,
    /// One line for people.
    pub line: String,
}

/// Describes `status` (`None`: no backup source) at `now_unix`.
pub fn describe(status: Option<&BackupStatus>, now_unix: f64) -> BackupReport {
    let Some(status) = status else {
        return BackupReport {
            configured: false,
            url: None,
            newest_unix: None,
            age_seconds: None,
            size_bytes: None,
            max_age_seconds: None,
            stale: None,
            check: "none",
            failure_reason: None,
            line: format!("Last Successful Backup: {NO_SOURCE}."),
        };
    };
    let max_age = status.source.max_age;
    let age = status
        .newest
        .map(|found| (now_unix - found.modified_unix).max(0.0));
    let error = status.last_error();
    let stale = match (age, status.up()) {
        (Some(age), _) => Some(age > max_age.as_secs_f64()),
        (None, Some(false)) => Some(true),
        (None, _) => None,
    };
    let url = &status.source.display;
    let known = match (age, status.newest) {
        (Some(age), Some(found)) => format!(
            "{} ago ({}), {} max age {}",
            minutes(age),
            human_bytes(found.size_bytes),
            if stale == Some(true) {
                "STALE: older than"
            } else {
                "within"
            },
            minutes(max_age.as_secs_f64())
        ),
        _ => "none found".to_owned(),
    };
    let line = match (status.up(), error) {
        (None, _) => format!("Last Successful Backup: not checked yet ({url})."),
        (Some(true), _) => format!("Last Successful Backup: {known}; {url}."),
        (Some(false), Some(error)) => format!(
            "Last Successful Backup: {known}, as last seen; the last check of {url} failed ({}: {}).",
            error.reason.label(),
            error.message
        ),
        (Some(false), None) => format!("Last Successful Backup: {known}; {url}."),
    };
    BackupReport {
        configured: true,
        url: Some(url.clone()),
        newest_unix: status.newest.map(|f| f.modified_unix),
        age_seconds: age,
        size_bytes: status.newest.map(|f| f.size_bytes),
        max_age_seconds: Some(max_age.as_secs_f64()),
        stale,
        check: match status.up() {
            None => "pending",
            Some(true) => "ok",
            Some(false) => "failed",
        },
        failure_reason: error.map(|e| e.reason.label()),
        line,
    }
}

/// An age to the minute: "3h 12m", not "3h 12m 7s 113ms".
fn minutes(seconds: f64) -> String {
    let rounded = (seconds / 60.0).round() as u64 * 60;
    if rounded == 0 {
        return "under a minute".to_owned();
    }
    humantime::format_duration(Duration::from_secs(rounded)).to_string()
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::{CheckError, Found, Reason};
    use crate::config::{BackupLocation, BackupSource};

    fn status() -> BackupStatus {
        BackupStatus::new(BackupSource {
            display: "file:///b/orders-*.rdb".into(),
            location: BackupLocation::Files {
                pattern: "/b/orders-*.rdb".into(),
            },
            max_age: Duration::from_secs(8 * 3600),
            refresh_interval: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
        })
    }

    #[test]
    fn without_a_source_nothing_pretends_a_backup_exists() {
        let report = describe(None, 1000.0);
        assert_eq!(report.check, "none");
        assert_eq!(report.stale, None);
        assert!(report.line.contains(NO_SOURCE), "{}", report.line);
    }

    #[test]
    fn fresh_stale_and_failing_read_differently() {
        let now = 100_000.0;
        let mut s = status();
        assert_eq!(describe(Some(&s), now).check, "pending");
        s.record(Ok(Found {
            modified_unix: now - 3.0 * 3600.0,
            size_bytes: 2048,
        }));
        let fresh = describe(Some(&s), now);
        assert_eq!(fresh.stale, Some(false));
        assert_eq!(
            fresh.line,
            "Last Successful Backup: 3h ago (2.0 KiB), within max age 8h; file:///b/orders-*.rdb."
        );
        let later = describe(Some(&s), now + 6.0 * 3600.0);
        assert_eq!(later.stale, Some(true));
        assert!(later.line.contains("STALE"), "{}", later.line);
        s.record(Err(CheckError::new(Reason::Io, "disk gone")));
        let failing = describe(Some(&s), now);
        assert_eq!(failing.check, "failed");
        assert_eq!(
            failing.age_seconds,
            Some(3.0 * 3600.0),
            "last known age kept"
        );
        assert!(failing.line.contains("as last seen"), "{}", failing.line);
    }

    #[test]
    fn a_never_read_source_is_stale_not_fresh() {
        let mut s = status();
        s.record(Err(CheckError::new(Reason::NotFound, "no file")));
        let report = describe(Some(&s), 10.0);
        assert_eq!(report.stale, Some(true));
        assert_eq!(report.newest_unix, None);
        assert_eq!(report.failure_reason, Some("not_found"));
    }
}
