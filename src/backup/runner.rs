//! One task per target with a backup source, following (re)loaded config and discovery like
//! the fleet of pollers does. Reads share a concurrency limit, so a fleet of hundreds does
//! not list hundreds of buckets at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{check, Board};
use crate::config::BackupSource;

/// Reads of backup sources in flight at once, across all targets.
const CONCURRENT_CHECKS: usize = 4;

struct Running {
    source: BackupSource,
    task: JoinHandle<()>,
}

/// The running backup checks.
pub struct Backups {
    board: Arc<Board>,
    limit: Arc<Semaphore>,
    running: BTreeMap<String, Running>,
}

impl Backups {
    /// No checks yet, recording into `board`.
    pub fn new(board: Arc<Board>) -> Self {
        Backups {
            board,
            limit: Arc::new(Semaphore::new(CONCURRENT_CHECKS)),
            running: BTreeMap::new(),
        }
    }

    /// Makes the running checks match `wanted` (target name → source). An unchanged source
    /// keeps its task and what it knows; a changed one starts over.
    pub fn apply(&mut self, wanted: BTreeMap<String, BackupSource>) {
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|name| !wanted.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(running) = self.running.remove(&name) {
                running.task.abort();
            }
            self.board.remove(&name);
        }
        for (name, source) in wanted {
            if let Some(running) = self.running.get(&name) {
                if running.source == source {
                    continue;
                }
                running.task.abort();
            }
            self.board.start(&name, source.clone());
            let task = tokio::spawn(watch(
                name.clone(),
                source.clone(),
                self.board.clone(),
                self.limit.clone(),
            ));
            self.running.insert(name, Running { source, task });
        }
    }

    /// Stops every check.
    pub async fn stop(self) {
        for running in self.running.values() {
            running.task.abort();
        }
        for (_, running) in self.running {
            let _ = running.task.await;
        }
    }
}

async fn watch(name: String, source: BackupSource, board: Arc<Board>, limit: Arc<Semaphore>) {
    let mut was_ok = true;
    loop {
        let result = {
            let Ok(_permit) = limit.acquire().await else {
                return;
            };
            check(&source).await
        };
        match &result {
            Ok(_) if !was_ok => {
                tracing::info!(target_name = %name, url = %source.display, "backup source readable again");
            }
            Err(error) if was_ok => {
                // Logged once per failure streak, not every refresh: the counter has the rest.
                tracing::warn!(target_name = %name, url = %source.display, reason = error.reason.label(), error = %error.message, "cannot read the backup source");
            }
            _ => {}
        }
        was_ok = result.is_ok();
        board.record(&name, result);
        tokio::time::sleep(source.refresh_interval).await;
    }
}
