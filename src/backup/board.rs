//! What is known of each target's backup: the newest backup last seen and how the last read
//! of its source went. The runner writes; `/metrics`, the status page and `check` read.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::{CheckError, Found, Reason};
use crate::config::BackupSource;

/// One target's backup, as last read.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupStatus {
    /// Where it is read from.
    pub source: BackupSource,
    /// The newest backup of the last successful read. Kept when a later read fails, so the
    /// age keeps growing instead of a stale backup looking fresh or vanishing.
    pub newest: Option<Found>,
    /// How the last read ended; `None` until the first one ends.
    pub last_check: Option<Result<(), CheckError>>,
    /// Failed reads by reason.
    pub failures_total: BTreeMap<Reason, u64>,
}

impl BackupStatus {
    /// A source not read yet.
    pub fn new(source: BackupSource) -> Self {
        BackupStatus {
            source,
            newest: None,
            last_check: None,
            failures_total: BTreeMap::new(),
        }
    }

    /// Whether the last read succeeded; `None` before the first.
    pub fn up(&self) -> Option<bool> {
        self.last_check.as_ref().map(Result::is_ok)
    }

    /// The last read's error, if it failed.
    pub fn last_error(&self) -> Option<&CheckError> {
        self.last_check.as_ref().and_then(|r| r.as_ref().err())
    }

    /// Records the outcome of one read.
    pub fn record(&mut self, result: Result<Found, CheckError>) {
        match result {
            Ok(found) => {
                self.newest = Some(found);
                self.last_check = Some(Ok(()));
            }
            Err(error) => {
                *self.failures_total.entry(error.reason).or_insert(0) += 1;
                self.last_check = Some(Err(error));
            }
        }
    }
}

/// Every target's backup status, by target name.
#[derive(Debug, Default)]
pub struct Board {
    statuses: Mutex<BTreeMap<String, BackupStatus>>,
}

impl Board {
    /// An empty board.
    pub fn new() -> Self {
        Board::default()
    }

    /// Starts over for `name` with a new source (its history belongs to the old one).
    pub fn start(&self, name: &str, source: BackupSource) {
        self.lock()
            .insert(name.to_owned(), BackupStatus::new(source));
    }

    /// Forgets a target; its backup series disappear.
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    /// Records a read of `name`'s source; ignored if the target is gone meanwhile.
    pub fn record(&self, name: &str, result: Result<Found, CheckError>) {
        if let Some(status) = self.lock().get_mut(name) {
            status.record(result);
        }
    }

    /// A copy of `name`'s status; `None` when it has no backup source.
    pub fn get(&self, name: &str) -> Option<BackupStatus> {
        self.lock().get(name).cloned()
    }

    /// Runs `f` on every status, locked once.
    pub fn with_all<R>(&self, f: impl FnOnce(&BTreeMap<String, BackupStatus>) -> R) -> R {
        f(&self.lock())
    }

    // Writers only replace whole values, so a poisoned lock still holds consistent data.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, BackupStatus>> {
        self.statuses.lock().unwrap_or_else(|p| p.into_inner())
    }
}
