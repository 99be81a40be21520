//! The state file (`state_file`): each target's derived history, kept across restarts of the
//! exporter so that an upgrade at the wrong moment does not hide a stuck failure.
//!
//! The file is JSON: `{"version": 1, "written_at_unix": …, "targets": {name: Remembered}}`.
//! It is bounded: at most [`MAX_TARGETS`] targets (the first in name order) and
//! [`MAX_BYTES`] bytes; a larger file is not read, a larger state is not written. It is
//! replaced atomically (a temporary file in the same folder, fsync, rename, fsync of the
//! folder), so a crash leaves the old file or the new one, never half of one.
//!
//! A missing file starts empty in silence; a corrupt or foreign one (bad JSON, another
//! version, not a regular file, too big) starts empty with one warning, and is replaced at the
//! next write. The keeper snapshots the store (each target's lock held only to clone its
//! history) every poll interval, and writes off the async workers only when something
//! changed; once more on shutdown.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::state::{unix_seconds, Remembered, Store};

/// The format version this exporter writes and reads.
pub const VERSION: u64 = 1;

/// Most targets kept in the file; beyond it, the targets last in name order are left out.
pub const MAX_TARGETS: usize = 10_000;

/// Largest file read or written: 16 MiB, about 1.5 times what [`MAX_TARGETS`] stuck targets
/// with long names need (each about 1 KiB).
pub const MAX_BYTES: u64 = 16 << 20;

/// Why a state file was not taken up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// It could not be read.
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// It is a folder, a FIFO, a device…
    #[error("it is not a regular file")]
    NotAFile,
    /// It is larger than [`MAX_BYTES`].
    #[error("it is larger than {MAX_BYTES} bytes")]
    TooBig,
    /// It is not JSON of the expected shape.
    #[error("it is not a state file of this exporter: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// Another version of the format.
    #[error("it has format version {0}, this exporter reads version {VERSION}")]
    Version(u64),
}

/// Why the state was not written.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Serialized, it would exceed [`MAX_BYTES`].
    #[error("the state of {targets} targets is {bytes} bytes, over the {MAX_BYTES}-byte bound")]
    TooBig {
        /// Targets in it.
        targets: usize,
        /// Its size.
        bytes: usize,
    },
    /// Writing or renaming failed.
    #[error("cannot write it: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Serialize)]
struct FileOut<'a> {
    version: u64,
    written_at_unix: f64,
    targets: BTreeMap<&'a str, &'a Remembered>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    #[allow(dead_code)]
    version: u64,
    #[allow(dead_code)]
    written_at_unix: f64,
    targets: BTreeMap<String, Remembered>,
}

#[derive(Deserialize)]
struct Header {
    version: u64,
}

/// The file's bytes for `state`, bounded.
pub fn encode(state: &BTreeMap<String, Remembered>, now: SystemTime) -> Result<Vec<u8>, SaveError> {
    let file = FileOut {
        version: VERSION,
        written_at_unix: unix_seconds(now),
        targets: state
            .iter()
            .take(MAX_TARGETS)
            .map(|(name, remembered)| (name.as_str(), remembered))
            .collect(),
    };
    let bytes = serde_json::to_vec(&file).map_err(std::io::Error::from)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(SaveError::TooBig {
            targets: file.targets.len(),
            bytes: bytes.len(),
        });
    }
    Ok(bytes)
}

/// Reads a file's bytes; the version is checked before the shape, so a future format is
/// named as such rather than as corrupt.
pub fn decode(bytes: &[u8]) -> Result<BTreeMap<String, Remembered>, LoadError> {
    let header: Header = serde_json::from_slice(bytes)?;
    if header.version != VERSION {
        return Err(LoadError::Version(header.version));
    }
    let file: FileIn = serde_json::from_slice(bytes)?;
    Ok(file.targets.into_iter().take(MAX_TARGETS).collect())
}

/// Reads the state file; `Ok(None)` when there is none yet.
pub fn load(path: &Path) -> Result<Option<BTreeMap<String, Remembered>>, LoadError> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    // Checked before opening: opening a FIFO would block.
    if !metadata.is_file() {
        return Err(LoadError::NotAFile);
    }
    if metadata.len() > MAX_BYTES {
        return Err(LoadError::TooBig);
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(LoadError::TooBig);
    }
    decode(&bytes).map(Some)
}

/// Reads the state file for the store, or starts empty with one warning.
pub fn restore(store: &Store, path: &Path) {
    match load(path) {
        Ok(Some(state)) => {
            tracing::info!(path = %path.display(), targets = state.len(), "derived history restored from the state file");
            store.remember(state);
        }
        Ok(None) => {
            tracing::info!(path = %path.display(), "no state file yet; derived history starts empty");
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), error = %error, "ignoring the state file; derived history starts empty and the file is replaced at the next write");
        }
    }
}

/// Replaces `path` with `bytes` atomically: a temporary file in the same folder, fsync,
/// rename over the old one, fsync of the folder so the rename itself is durable.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Writes the store's state when it changed since the last write. Returns the new last
/// written state.
async fn save(
    store: &Store,
    path: &Path,
    last: Option<BTreeMap<String, Remembered>>,
    failing: &mut bool,
) -> Option<BTreeMap<String, Remembered>> {
    let state = store.remembered();
    if last.as_ref() == Some(&state) {
        return last;
    }
    let path = path.to_path_buf();
    let encoded = encode(&state, SystemTime::now());
    let written = tokio::task::spawn_blocking(move || match encoded {
        Ok(bytes) => write_atomic(&path, &bytes).map_err(SaveError::from),
        Err(error) => Err(error),
    })
    .await;
    match written {
        Ok(Ok(())) => {
            if *failing {
                tracing::info!("the state file is written again");
            }
            *failing = false;
            Some(state)
        }
        Ok(Err(error)) => {
            // Once per streak: the next attempt is one interval away, forever.
            if !*failing {
                tracing::warn!(error = %error, "cannot write the state file; derived history will not survive a restart until it can");
            }
            *failing = true;
            last
        }
        Err(_) => last,
    }
}

/// Keeps the state file up to date every `interval` until `stop` resolves, then writes it a
/// last time.
pub async fn keep(
    store: Arc<Store>,
    path: PathBuf,
    interval: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticker.tick().await;
    tokio::pin!(stop);
    let mut last = None;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticker.tick() => last = save(&store, &path, last, &mut failing).await,
        }
    }
    save(&store, &path, last, &mut failing).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Diagnosis;

    /// A remembered target with a stuck AOF rewrite since t=2.
    fn stuck() -> Remembered {
        let info = |status: &str, n: u64| {
            crate::info::parse(&format!("run_id:r1\naof_enabled:1\naof_last_bgrewrite_status:{status}\naof_rewrites:{n}\naof_rewrites_consecutive_failures:{}\n", if status == "ok" { 0 } else { n }))
                .unwrap()
        };
        let mut diagnosis = Diagnosis::default();
        diagnosis.observe(&info("ok", 0), 1.0);
        diagnosis.observe(&info("err", 1), 2.0);
        diagnosis.observe(&info("err", 2), 3.0);
        assert!(diagnosis.aof.stuck());
        Remembered {
            diagnosis,
            card: Some(crate::card::CardState::Err),
            card_since_unix: Some(2.0),
            restarts: Default::default(),
        }
    }

    #[test]
    fn round_trip_keeps_the_history_exactly() {
        let state = BTreeMap::from([("cache-1".to_owned(), stuck())]);
        let bytes = encode(&state, SystemTime::UNIX_EPOCH).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("{\"version\":1,"), "{text}");
        let back = decode(&bytes).unwrap();
        assert_eq!(back, state);
        assert!(back["cache-1"].diagnosis.aof.stuck());
        assert_eq!(back["cache-1"].diagnosis.aof.err_since_unix, Some(2.0));
        // Unix times with every bit of their fraction: serde_json's default parser may be
        // off by one ulp, which made err-since move across a restart.
        let mut precise = stuck();
        precise.card_since_unix = Some(1_796_219_811.660_330_5);
        let state = BTreeMap::from([("t".to_owned(), precise)]);
        let back = decode(&encode(&state, SystemTime::UNIX_EPOCH).unwrap()).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn another_version_or_corrupt_json_is_refused_by_name() {
        let state = BTreeMap::from([("t".to_owned(), stuck())]);
        let text = String::from_utf8(encode(&state, SystemTime::UNIX_EPOCH).unwrap()).unwrap();
        let future = text.replacen("\"version\":1", "\"version\":2", 1);
        assert!(matches!(
            decode(future.as_bytes()),
            Err(LoadError::Version(2))
        ));
        assert!(matches!(
            decode(b"{\"version\":1,\"targ"),
            Err(LoadError::Corrupt(_))
        ));
        assert!(matches!(decode(b"[1,2]"), Err(LoadError::Corrupt(_))));
        assert!(matches!(
            decode(b"{\"version\":1,\"written_at_unix\":0,\"targets\":{},\"extra\":1}"),
            Err(LoadError::Corrupt(_))
        ));
    }

    #[test]
    fn the_file_is_bounded_in_targets_and_bytes() {
        let mut full = stuck();
        for at in 0..16 {
            let info = crate::info::parse("run_id:r1\nuptime_in_seconds:9\nloading:0\n").unwrap();
            full.restarts.observe(
                &info,
                Some(crate::card::CardState::Err),
                f64::from(at),
                Some(1.5),
            );
        }
        let many: BTreeMap<String, Remembered> = (0..MAX_TARGETS + 5)
            .map(|i| {
                (
                    format!("{}-{i:05}", "a-long-target-name/10.20.30.40:6379"),
                    full.clone(),
                )
            })
            .collect();
        let bytes = encode(&many, SystemTime::UNIX_EPOCH).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), MAX_TARGETS);
        assert!(
            !back.contains_key("a-long-target-name/10.20.30.40:6379-10004"),
            "the last in name order are left out"
        );
        // The most targets, each with a full history, fit the byte bound with room to spare.
        assert!(
            (bytes.len() as u64) < MAX_BYTES * 3 / 4,
            "{} bytes",
            bytes.len()
        );
        let huge = BTreeMap::from([("x".repeat(MAX_BYTES as usize), Remembered::default())]);
        assert!(matches!(
            encode(&huge, SystemTime::UNIX_EPOCH),
            Err(SaveError::TooBig { targets: 1, .. })
        ));
    }

    #[test]
    fn load_refuses_what_is_not_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert!(matches!(load(&path), Ok(None)), "missing is not an error");
        let state = BTreeMap::from([("t".to_owned(), stuck())]);
        write_atomic(&path, &encode(&state, SystemTime::now()).unwrap()).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
        assert!(matches!(load(dir.path()), Err(LoadError::NotAFile)));
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; MAX_BYTES as usize + 1]).unwrap();
        assert!(matches!(load(&big), Err(LoadError::TooBig)));
    }
}
