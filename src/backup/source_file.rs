//! Local or mounted backups: the newest regular file matching a glob, by modification time.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::{CheckError, Found, Reason};

/// The newest file matching `pattern`. Runs on the blocking pool: a hung network mount must
/// not stall the runtime (the caller's timeout still answers; the thread ends when the
/// mount does).
pub async fn newest(pattern: String) -> Result<Found, CheckError> {
    tokio::task::spawn_blocking(move || newest_match(&pattern))
        .await
        .unwrap_or_else(|_| Err(CheckError::new(Reason::Other, "the file check panicked")))
}

/// The newest regular file matching `pattern`; a missing directory or no match at all is
/// `not_found`, so "no backup" can never read as a fresh one.
pub fn newest_match(pattern: &str) -> Result<Found, CheckError> {
    let dir = fixed_prefix(pattern);
    if let Err(e) = std::fs::read_dir(&dir) {
        return Err(io_error(&dir, &e));
    }
    let paths = glob::glob(pattern)
        .map_err(|e| CheckError::new(Reason::Other, format!("bad glob pattern: {e}")))?;
    let mut newest: Option<Found> = None;
    let mut first_error: Option<CheckError> = None;
    for entry in paths {
        let found = entry
            .map_err(|e| io_error(e.path(), e.error()))
            .and_then(|path| read_file(&path));
        match found {
            Ok(Some(found)) => {
                // glob yields paths in name order, so on a tie (a coarse-grained file
                // system's mtime) the later name wins, as names of backups carry their time.
                if newest.is_none_or(|n| found.modified_unix >= n.modified_unix) {
                    newest = Some(found);
                }
            }
            Ok(None) => {}
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    match (newest, first_error) {
        (Some(found), _) => Ok(found),
        (None, Some(error)) => Err(error),
        (None, None) => Err(CheckError::new(
            Reason::NotFound,
            format!("no file matches {pattern}"),
        )),
    }
}

/// `Some` for a regular file, `None` for anything else the glob matched (a directory).
fn read_file(path: &Path) -> Result<Option<Found>, CheckError> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
    if !meta.is_file() {
        return Ok(None);
    }
    let modified = meta.modified().map_err(|e| io_error(path, &e))?;
    let modified_unix = match modified.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    };
    Ok(Some(Found {
        modified_unix,
        size_bytes: meta.len(),
    }))
}

/// The folder holding every match: the pattern's components before the first with a glob
/// character in it.
fn fixed_prefix(pattern: &str) -> PathBuf {
    let mut dir = PathBuf::new();
    let mut components = Path::new(pattern).components().peekable();
    while let Some(component) = components.next() {
        let text = component.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[']) || components.peek().is_none() {
            break;
        }
        dir.push(component);
    }
    dir
}

fn io_error(path: &Path, error: &std::io::Error) -> CheckError {
    let reason = match error.kind() {
        ErrorKind::NotFound => Reason::NotFound,
        ErrorKind::PermissionDenied => Reason::Auth,
        _ => Reason::Io,
    };
    CheckError::new(reason, format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{File, FileTimes};
    use std::time::{Duration, SystemTime};

    fn write(dir: &Path, name: &str, bytes: usize, age: Duration) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, vec![0u8; bytes]).unwrap();
        let at = SystemTime::now() - age;
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_times(FileTimes::new().set_modified(at))
            .unwrap();
        path
    }

    #[test]
    fn the_newest_match_wins_by_mtime_not_by_name() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "orders-z.rdb", 10, Duration::from_secs(7200));
        write(dir.path(), "orders-a.rdb", 20, Duration::from_secs(60));
        write(dir.path(), "other-b.rdb", 30, Duration::from_secs(1));
        std::fs::create_dir(dir.path().join("orders-dir.rdb")).unwrap();
        let pattern = format!("{}/orders-*.rdb", dir.path().display());
        let found = newest_match(&pattern).unwrap();
        assert_eq!(found.size_bytes, 20);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let age = now.as_secs_f64() - found.modified_unix;
        assert!((59.0..70.0).contains(&age), "{age}");
    }

    #[test]
    fn no_match_and_a_missing_directory_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = format!("{}/*.rdb", dir.path().display());
        assert_eq!(newest_match(&pattern).unwrap_err().reason, Reason::NotFound);
        let pattern = format!("{}/missing/*.rdb", dir.path().display());
        let error = newest_match(&pattern).unwrap_err();
        assert_eq!(error.reason, Reason::NotFound);
        assert!(error.message.contains("missing"), "{error}");
    }

    #[test]
    fn the_fixed_prefix_stops_at_the_first_glob_component() {
        assert_eq!(fixed_prefix("/a/b/*/c-*.rdb"), PathBuf::from("/a/b"));
        assert_eq!(fixed_prefix("/a/b/dump.rdb"), PathBuf::from("/a/b"));
        assert_eq!(fixed_prefix("/a/[x]/d"), PathBuf::from("/a"));
    }
}
