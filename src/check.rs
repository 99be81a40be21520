//! `check`: poll every target once and read the result the way the brief would, for people
//! at a terminal and for scripts.

use std::sync::Arc;
use std::time::SystemTime;

use crate::backup;
use crate::config::Settings;
use crate::discovery::Discovery;
use crate::persist;
use crate::poller::{Poller, Schedule};
use crate::report::{self, TargetReport};
use crate::state::{lock, unix_seconds, Store};

/// Exit code when every card is ok or not applicable.
pub const EXIT_OK: u8 = 0;
/// Exit code when any persistence status is err: the AOF rewrite card, AOF writes or the last
/// RDB save (takes precedence over unreachable targets: a known
/// failure is the more actionable news).
pub const EXIT_ERR: u8 = 1;
/// Exit code for a config error.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code when a target cannot be reached and no card is err.
pub const EXIT_UNREACHABLE: u8 = 3;

/// Polls every target once, concurrently, and returns their reports, each going on from the
/// history in `state_file` when the config names one: configured targets in
/// config order, then discovered ones.
pub async fn run(settings: &Settings) -> Vec<TargetReport> {
    let targets = Discovery::once(settings).await;
    let store = Arc::new(Store::new());
    // What the running exporter remembered, read and never written: one poll alone cannot
    // tell a stuck failure from a first one, nor see a restart while err.
    if let Some(path) = &settings.state_file {
        match persist::load(path) {
            Ok(Some(remembered)) => store.remember(remembered),
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(path = %path.display(), error = %error, "state file not used")
            }
        }
    }
    let schedule = Schedule::from(settings);
    let polls = targets.iter().map(|target| {
        let target = Arc::new(target.clone());
        let cell = store.insert(target.clone());
        let source = settings.backup.for_target(&target.name);
        let backups = store.backups().clone();
        async move {
            // The backup is read beside the poll, once, under its own timeout.
            let read_backup = async {
                if let Some(source) = source {
                    backups.start(&target.name, source.clone());
                    backups.record(&target.name, backup::check(&source).await);
                }
            };
            let mut poller = Poller::new(target.clone(), cell.clone(), schedule);
            tokio::join!(poller.poll(), read_backup);
            let state = lock(&cell);
            report::read_with_backup(&state, &backups, unix_seconds(SystemTime::now()))
        }
    });
    futures_join_all(polls).await
}

/// The exit code for a set of reports.
pub fn exit_code(reports: &[TargetReport]) -> u8 {
    if reports.iter().any(TargetReport::persistence_err) {
        EXIT_ERR
    } else if reports.iter().any(|r| !r.up) {
        EXIT_UNREACHABLE
    } else {
        EXIT_OK
    }
}

/// Runs futures concurrently and keeps their order, without pulling in a futures crate.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(value) => out.push(value),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    out
}
