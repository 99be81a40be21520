//! Polling: one task per target, each on its own schedule, owning its connection and its
//! deadline. A slow, frozen or dead target only ever costs its own task time.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::{Settings, Target};
use crate::info;
use crate::redis_client::{ClientError, Connection};
use crate::state::{lock, Snapshot, Store, TargetCell};

/// Why one poll failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    /// The poll, connecting included, took longer than `poll_timeout`.
    #[error("no answer within the poll timeout of {0:?}")]
    Timeout(Duration),
    /// The client failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The server answered something that is not an INFO reply.
    #[error("unreadable INFO reply: {0}")]
    Parse(#[from] info::ParseError),
}

impl PollError {
    /// The bounded `reason` label value.
    pub fn reason(&self) -> &'static str {
        match self {
            PollError::Timeout(_) => "timeout",
            PollError::Client(e) => e.reason(),
            PollError::Parse(_) => "parse",
        }
    }
}

/// Timing shared by all pollers.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Time between poll starts.
    pub interval: Duration,
    /// Bound on one poll, connecting included.
    pub timeout: Duration,
}

impl From<&Settings> for Schedule {
    fn from(settings: &Settings) -> Self {
        Schedule {
            interval: settings.poll_interval,
            timeout: settings.poll_timeout,
        }
    }
}

/// Starts one polling task per target and returns their handles.
pub fn spawn_all(
    settings: &Settings,
    store: &Arc<Store>,
    shutdown: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let schedule = Schedule::from(settings);
    settings
        .targets
        .iter()
        .map(|target| {
            let target = Arc::new(target.clone());
            let cell = store.insert(target.clone());
            tokio::spawn(run(target, cell, schedule, shutdown.clone()))
        })
        .collect()
}

/// Polls one target until `shutdown` turns true.
pub async fn run(
    target: Arc<Target>,
    cell: TargetCell,
    schedule: Schedule,
    mut shutdown: watch::Receiver<bool>,
) {
    // Spread first polls over the interval so a thousand targets do not fire together; the
    // offset is stable per name so restarts keep the same phase.
    let first = Instant::now() + start_offset(&target.name, schedule.interval);
    let mut ticker = tokio::time::interval_at(first, schedule.interval);
    // A poll that overran (it cannot, given timeout <= interval, but a stalled runtime can)
    // must not be followed by a burst of catch-up polls.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut connection: Option<Connection> = None;
    let mut was_up: Option<bool> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            schedule.timeout,
            poll_once(&target, &mut connection, schedule.timeout),
        )
        .await
        .unwrap_or(Err(PollError::Timeout(schedule.timeout)));
        let took = started.elapsed();
        match outcome {
            Ok(parsed) => {
                if !parsed.field_errors.is_empty() {
                    tracing::debug!(target_name = %target.name, errors = ?parsed.field_errors.iter().map(ToString::to_string).collect::<Vec<_>>(), "some INFO fields were unreadable and are left out");
                }
                let snapshot = Snapshot::new(parsed, SystemTime::now());
                lock(&cell).record_success(snapshot, took);
                if was_up != Some(true) {
                    tracing::info!(target_name = %target.name, "target is up");
                }
                was_up = Some(true);
            }
            Err(error) => {
                // A failed or timed-out connection may hold a half-read reply; never reuse it.
                connection = None;
                lock(&cell).record_failure(error.reason(), took);
                if was_up != Some(false) {
                    tracing::warn!(target_name = %target.name, reason = error.reason(), error = %error, "target is down");
                } else {
                    tracing::debug!(target_name = %target.name, reason = error.reason(), error = %error, "poll failed");
                }
                was_up = Some(false);
            }
        }
    }
}

/// One poll: (re)connect if needed, then one INFO round trip.
async fn poll_once(
    target: &Target,
    connection: &mut Option<Connection>,
    timeout: Duration,
) -> Result<info::Info, PollError> {
    if connection.is_none() {
        *connection = Some(Connection::open(target, timeout).await?);
    }
    let Some(open) = connection.as_mut() else {
        unreachable!("connection was just opened");
    };
    let text = open.info().await?;
    Ok(info::parse(&text)?)
}

/// A stable offset in `[0, interval)` derived from the target name (FNV-1a).
pub fn start_offset(name: &str, interval: Duration) -> Duration {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let nanos = interval.as_nanos().max(1) as u64;
    Duration::from_nanos(hash % nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_and_within_the_interval() {
        let interval = Duration::from_secs(5);
        for i in 0..1000 {
            let name = format!("redis-{i}");
            let offset = start_offset(&name, interval);
            assert!(offset < interval);
            assert_eq!(offset, start_offset(&name, interval));
        }
    }

    #[test]
    fn offsets_spread_across_the_interval() {
        let interval = Duration::from_secs(1);
        let mut buckets = [0u32; 10];
        for i in 0..1000 {
            let offset = start_offset(&format!("10.0.0.{i}:6379"), interval);
            buckets[(offset.as_millis() / 100) as usize] += 1;
        }
        // 1000 targets over 10 slots: none may hold more than a fifth of them.
        assert!(buckets.iter().all(|count| *count < 200), "{buckets:?}");
    }
}
