//! What the exporter knows: per target, the latest successful snapshot, the outcome of the last
//! poll, and the poll bookkeeping that self-metrics need.
//!
//! Pollers write (each to its own target's cell); `/metrics` reads. Neither does I/O while
//! holding a lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::backup::Board;
use crate::card::{CardChange, CardChanges, CardState};
use crate::cause::{FailureKind, FreeSpace, LogEvidence, Reason};
use crate::headroom::{self, DiskPrediction, ForkHeadroom};
use crate::history::Diagnosis;
use crate::host::HostMemory;
use crate::info::Info;
use crate::redis_settings::RedisSettings;
use crate::restart::Restarts;
use crate::target::Target;

/// Upper bounds of the poll duration histogram, in seconds. A healthy loopback poll takes well
/// under a millisecond; the top buckets catch timeouts (default 2 s).
pub const POLL_DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A successful poll's reading.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The parsed INFO reply.
    pub info: Info,
    /// The card, derived once here so every reader agrees.
    pub card: CardState,
    /// When the poll completed, Unix seconds.
    pub taken_at_unix: f64,
}

impl Snapshot {
    /// Builds a snapshot from a parsed reply.
    pub fn new(info: Info, taken_at: SystemTime) -> Self {
        Snapshot {
            card: CardState::from_info(&info),
            info,
            taken_at_unix: unix_seconds(taken_at),
        }
    }
}

/// Fixed-bucket histogram of poll durations.
#[derive(Debug, Clone, Default)]
pub struct DurationHistogram {
    /// Per-bucket (non-cumulative) counts; the last slot is +Inf.
    counts: [u64; POLL_DURATION_BUCKETS.len() + 1],
    sum_seconds: f64,
}

impl DurationHistogram {
    /// Records one observation.
    pub fn observe(&mut self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        self.counts[bucket_of(seconds)] += 1;
        self.sum_seconds += seconds;
    }

    /// `(upper bound, count in that bucket alone)` pairs including +Inf, the sum, and the
    /// total count. The encoder makes the buckets cumulative.
    pub fn buckets(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let buckets: Vec<(f64, u64)> = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, count)| {
                let bound = POLL_DURATION_BUCKETS
                    .get(i)
                    .copied()
                    .unwrap_or(f64::INFINITY);
                (bound, *count)
            })
            .collect();
        (buckets, self.sum_seconds, self.counts.iter().sum())
    }
}

fn bucket_of(seconds: f64) -> usize {
    POLL_DURATION_BUCKETS
        .iter()
        .position(|bound| seconds <= *bound)
        .unwrap_or(POLL_DURATION_BUCKETS.len())
}

/// The poll durations of every target in one histogram: what the exporter's own latency
/// costs a Prometheus is 15 series, not 15 per target. Pollers share it without a lock, and
/// it keeps counting across a target's removal, so its counters never go back.
#[derive(Debug, Default)]
pub struct FleetDurations {
    counts: [AtomicU64; POLL_DURATION_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl FleetDurations {
    /// Records one observation.
    pub fn observe(&self, duration: Duration) {
        self.counts[bucket_of(duration.as_secs_f64())].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// A copy to render.
    pub fn read(&self) -> DurationHistogram {
        DurationHistogram {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// What is known of the target's settings from `CONFIG GET`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ConfigStatus {
    /// Not read yet (or turned off in the exporter's config).
    #[default]
    Unknown,
    /// Read successfully.
    Available(RedisSettings),
    /// The server refused: CONFIG is renamed, disabled or denied by ACL.
    Unavailable,
}

impl ConfigStatus {
    /// Whether CONFIG GET works: `None` until tried (or when turned off).
    pub fn available(&self) -> Option<bool> {
        match self {
            ConfigStatus::Available(_) => Some(true),
            ConfigStatus::Unavailable => Some(false),
            ConfigStatus::Unknown => None,
        }
    }

    /// The settings, when known.
    pub fn settings(&self) -> Option<&RedisSettings> {
        match self {
            ConfigStatus::Available(config) => Some(config),
            _ => None,
        }
    }
}

/// Probable causes of current failures, from the Redis log (host access only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Causes {
    /// Why the AOF rewrite failed.
    pub aof_rewrite: Option<Reason>,
    /// Why AOF writes fail.
    pub aof_write: Option<Reason>,
    /// Why the RDB save failed.
    pub rdb_bgsave: Option<Reason>,
}

impl Causes {
    /// Each mechanism's `mechanism` label with its cause, in render order.
    pub fn by_mechanism(&self) -> [(&'static str, Option<Reason>); 3] {
        [
            (FailureKind::AofRewrite.label(), self.aof_rewrite),
            (FailureKind::AofWrite.label(), self.aof_write),
            (FailureKind::RdbBgsave.label(), self.rdb_bgsave),
        ]
    }
}

/// Everything known about one target.
#[derive(Debug)]
pub struct TargetState {
    /// The validated target, for its name, labels and thresholds.
    pub target: Arc<Target>,
    /// `target` plus the user's labels, in render order.
    pub labels: Vec<(String, String)>,
    /// The last successful snapshot. Kept while the target is down so that derived history
    /// survives a brief disconnect, but never rendered as current while `up` is false.
    pub latest: Option<Snapshot>,
    /// Whether the last poll succeeded.
    pub up: bool,
    /// Why the last poll failed, as the bounded `reason` label.
    pub last_failure_reason: Option<&'static str>,
    /// Poll attempts, successful or not.
    pub polls_total: u64,
    /// Failed polls by reason.
    pub failures_total: BTreeMap<&'static str, u64>,
    /// Poll durations.
    pub poll_duration: DurationHistogram,
    /// The fleet-wide histogram this target's polls also count in (its store's).
    pub fleet_poll_duration: Arc<FleetDurations>,
    /// Signals derived across polls (stuck, transient, since when).
    pub diagnosis: Diagnosis,
    /// Unix seconds when the card last changed state (or was first seen by this exporter).
    pub card_since_unix: Option<f64>,
    /// The server's settings from `CONFIG GET`.
    pub redis_settings: ConfigStatus,
    /// Probable causes, when the exporter may read the Redis log.
    pub causes: Causes,
    /// Free space of the data directory, when the exporter may look.
    pub free_space: Option<FreeSpace>,
    /// The host's memory and limits, read with the free space (sidecar mode).
    pub host_memory: Option<HostMemory>,
    /// AOF growth between polls, smoothed: what a rewrite must also find room for.
    pub aof_growth_bytes_per_second: Option<f64>,
    /// Restarts of the server while the card was err, and the load that followed.
    pub restarts: Restarts,
    /// The card before the exporter restarted (from the state file), until the first poll.
    restored_card: Option<CardState>,
    /// The last few card changes, for the target's status page.
    pub card_changes: CardChanges,
}

/// What a target's state keeps across an exporter restart (`crate::persist` writes it to the
/// state file): the derived history, the card and since when, the restarts.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Remembered {
    /// Both mechanisms' histories, with the run id and counters they key off.
    pub diagnosis: Diagnosis,
    /// The card at the last successful poll.
    pub card: Option<CardState>,
    /// See [`TargetState::card_since_unix`].
    pub card_since_unix: Option<f64>,
    /// See [`TargetState::restarts`].
    pub restarts: Restarts,
}

impl TargetState {
    /// A target that has not been polled yet: down, with no snapshot.
    pub fn new(target: Arc<Target>) -> Self {
        let mut labels = Vec::with_capacity(target.labels.len() + 1);
        labels.push(("target".to_owned(), target.name.clone()));
        labels.extend(target.labels.iter().cloned());
        TargetState {
            target,
            labels,
            latest: None,
            up: false,
            last_failure_reason: None,
            polls_total: 0,
            failures_total: BTreeMap::new(),
            poll_duration: DurationHistogram::default(),
            fleet_poll_duration: Arc::default(),
            diagnosis: Diagnosis::default(),
            card_since_unix: None,
            redis_settings: ConfigStatus::Unknown,
            causes: Causes::default(),
            free_space: None,
            host_memory: None,
            aof_growth_bytes_per_second: None,
            restarts: Restarts::default(),
            restored_card: None,
            card_changes: CardChanges::default(),
        }
    }

    /// What survives an exporter restart.
    pub fn remembered(&self) -> Remembered {
        Remembered {
            diagnosis: self.diagnosis.clone(),
            card: self.latest.as_ref().map(|s| s.card).or(self.restored_card),
            card_since_unix: self.card_since_unix,
            restarts: self.restarts.clone(),
        }
    }

    /// Takes up what an earlier run of the exporter remembered. The first poll then goes on
    /// from it; a new `run_id` resets the history as it would have without the restart.
    pub fn restore(&mut self, remembered: Remembered) {
        self.diagnosis = remembered.diagnosis;
        self.restored_card = remembered.card;
        self.card_since_unix = remembered.card_since_unix;
        self.restarts = remembered.restarts;
    }

    /// Unix seconds of the last successful poll.
    pub fn last_success_unix(&self) -> Option<f64> {
        self.latest.as_ref().map(|s| s.taken_at_unix)
    }

    /// Records a successful poll, with what the Redis log says happened since the previous
    /// one when the exporter reads it (sidecar mode).
    pub fn record_success(
        &mut self,
        snapshot: Snapshot,
        took: Duration,
        log: Option<&LogEvidence>,
    ) {
        self.record_poll(snapshot, took, log, true);
    }

    /// [`TargetState::record_success`] for a poll that read `INFO persistence` only when
    /// `siblings_fresh` is false: its `total_forks` (INFO stats) is carried over from an
    /// earlier full read and must not be compared as if it were current.
    pub fn record_poll(
        &mut self,
        mut snapshot: Snapshot,
        took: Duration,
        log: Option<&LogEvidence>,
        siblings_fresh: bool,
    ) {
        self.polls_total += 1;
        self.poll_duration.observe(took);
        self.fleet_poll_duration.observe(took);
        self.diagnosis
            .observe_poll(&snapshot.info, snapshot.taken_at_unix, log, siblings_fresh);
        // Before 7.0 a refused rewrite fork leaves aof_last_bgrewrite_status at ok, but the
        // log says the last attempt did not finish cleanly: that is the card's err.
        if snapshot.card == CardState::Ok && self.diagnosis.aof.streak_failures > 0 {
            snapshot.card = CardState::Err;
        }
        let card_before = match &self.latest {
            Some(latest) => Some(latest.card),
            None => self.restored_card.take(),
        };
        self.restarts.observe(
            &snapshot.info,
            card_before,
            snapshot.taken_at_unix,
            log.and_then(|l| l.db_loaded_millis)
                .map(|ms| ms as f64 / 1000.0),
        );
        if card_before != Some(snapshot.card) {
            self.card_since_unix = Some(snapshot.taken_at_unix);
            self.card_changes.push(CardChange {
                from: card_before,
                to: snapshot.card,
                at_unix: snapshot.taken_at_unix,
            });
        }
        self.observe_aof_growth(&snapshot);
        self.latest = Some(snapshot);
        self.up = true;
        self.last_failure_reason = None;
    }

    /// Records a failed poll with its bounded reason.
    pub fn record_failure(&mut self, reason: &'static str, took: Duration) {
        self.polls_total += 1;
        self.poll_duration.observe(took);
        self.fleet_poll_duration.observe(took);
        *self.failures_total.entry(reason).or_insert(0) += 1;
        self.up = false;
        self.last_failure_reason = Some(reason);
    }

    /// The card is err and the failure survived more than one rewrite attempt.
    pub fn aof_rewrite_stuck(&self, snapshot: &Snapshot) -> bool {
        snapshot.card == CardState::Err && self.diagnosis.aof.stuck()
    }

    /// The AOF is past the size at which the server's own auto-rewrite rule says it should
    /// have been rewritten, and no rewrite runs. `None` when AOF is off or a value is unknown.
    pub fn aof_rewrite_overdue(&self, snapshot: &Snapshot) -> Option<bool> {
        let info = &snapshot.info;
        if info.aof_enabled != Some(true) {
            return None;
        }
        let overdue = self
            .redis_settings
            .settings()?
            .rewrite_overdue(info.aof_current_size_bytes?, info.aof_base_size_bytes?)?;
        Some(overdue && info.aof_rewrite_in_progress != Some(true))
    }

    /// Smooths the AOF growth rate over polls (weight 1/4 to the newest, so one burst does
    /// not swing the estimate). A shrink is a rewrite or a restart, not growth: skipped.
    fn observe_aof_growth(&mut self, snapshot: &Snapshot) {
        let Some(previous) = &self.latest else { return };
        let seconds = snapshot.taken_at_unix - previous.taken_at_unix;
        let (Some(before), Some(after)) = (
            previous.info.aof_current_size_bytes,
            snapshot.info.aof_current_size_bytes,
        ) else {
            return;
        };
        if seconds <= 0.0 || after < before {
            return;
        }
        let rate = (after - before) as f64 / seconds;
        self.aof_growth_bytes_per_second = Some(match self.aof_growth_bytes_per_second {
            Some(smoothed) => smoothed * 0.75 + rate * 0.25,
            None => rate,
        });
    }

    /// Whether the next rewrite and BGSAVE fit on the data volume (sidecar mode).
    pub fn disk_prediction(&self, snapshot: &Snapshot) -> Option<DiskPrediction> {
        headroom::disk(
            &snapshot.info,
            self.free_space?,
            self.aof_growth_bytes_per_second,
        )
    }

    /// Room for the next fork under the tightest host limit (sidecar mode).
    pub fn fork_headroom(&self, snapshot: &Snapshot) -> Option<ForkHeadroom> {
        headroom::fork(&snapshot.info, self.host_memory.as_ref()?)
    }

    /// The snapshot to present as current: only when the last poll succeeded.
    pub fn current(&self) -> Option<&Snapshot> {
        self.latest.as_ref().filter(|_| self.up)
    }
}

/// A shared handle to one target's state.
pub type TargetCell = Arc<Mutex<TargetState>>;

/// The outcome of the last config (re)load.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReloadStatus {
    /// Whether the last reload succeeded (the initial load counts as one).
    pub last_successful: bool,
    /// Unix seconds of the last successful (re)load.
    pub last_success_unix: f64,
}

/// All targets' state, keyed by target name.
#[derive(Debug, Default)]
pub struct Store {
    targets: RwLock<BTreeMap<String, TargetCell>>,
    reload: Mutex<ReloadStatus>,
    backups: Arc<Board>,
    /// What an earlier run remembered, by target name, taken up as each target is inserted.
    remembered: Mutex<BTreeMap<String, Remembered>>,
    poll_durations: Arc<FleetDurations>,
    per_target_poll_duration: AtomicBool,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Store::default()
    }

    /// Adds (or replaces) a target and returns its cell for the poller.
    pub fn insert(&self, target: Arc<Target>) -> TargetCell {
        let mut state = TargetState::new(target.clone());
        let remembered = self
            .remembered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&target.name);
        if let Some(remembered) = remembered {
            state.restore(remembered);
        }
        state.fleet_poll_duration = self.poll_durations.clone();
        let cell = Arc::new(Mutex::new(state));
        write(&self.targets).insert(target.name.clone(), cell.clone());
        cell
    }

    /// Hands over what an earlier run remembered; each target takes up its own entry when it
    /// is inserted (so call this before the first insert).
    pub fn remember(&self, remembered: BTreeMap<String, Remembered>) {
        *self.remembered.lock().unwrap_or_else(|p| p.into_inner()) = remembered;
    }

    /// Every target's [`Remembered`] state, by name. Each cell is locked only to clone it.
    pub fn remembered(&self) -> BTreeMap<String, Remembered> {
        read(&self.targets)
            .iter()
            .map(|(name, cell)| (name.clone(), lock(cell).remembered()))
            .collect()
    }

    /// Removes a target; its series disappear from the next scrape.
    pub fn remove(&self, name: &str) {
        write(&self.targets).remove(name);
    }

    /// The cell of a target, if known.
    pub fn get(&self, name: &str) -> Option<TargetCell> {
        read(&self.targets).get(name).cloned()
    }

    /// Every target's Last Successful Backup, written by the backup checks.
    pub fn backups(&self) -> &Arc<Board> {
        &self.backups
    }

    /// Records a (re)load outcome.
    pub fn record_reload(&self, successful: bool, at: SystemTime) {
        let mut status = self.reload.lock().unwrap_or_else(|p| p.into_inner());
        status.last_successful = successful;
        if successful {
            status.last_success_unix = unix_seconds(at);
        }
    }

    /// The last (re)load outcome.
    pub fn reload_status(&self) -> ReloadStatus {
        *self.reload.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every poll's duration, all targets together.
    pub fn poll_durations(&self) -> DurationHistogram {
        self.poll_durations.read()
    }

    /// Whether `/metrics` shows a poll-duration histogram per target as well as the
    /// fleet's (`per_target_poll_duration_histogram`).
    pub fn per_target_poll_duration(&self) -> bool {
        self.per_target_poll_duration.load(Ordering::Relaxed)
    }

    /// Sets what [`Store::per_target_poll_duration`] answers.
    pub fn set_per_target_poll_duration(&self, on: bool) {
        self.per_target_poll_duration.store(on, Ordering::Relaxed);
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        read(&self.targets).len()
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every target's cell, in name order.
    pub fn cells(&self) -> Vec<TargetCell> {
        read(&self.targets).values().cloned().collect()
    }

    /// Runs `f` with every target's state locked at once, so a render sees one consistent
    /// moment. Pollers wait at most for the render to finish.
    pub fn with_all<R>(&self, f: impl FnOnce(&[MutexGuard<'_, TargetState>]) -> R) -> R {
        let cells = self.cells();
        let guards: Vec<_> = cells.iter().map(|cell| lock(cell)).collect();
        f(&guards)
    }
}

/// Locks a target cell. A poisoned lock (a panic elsewhere while holding it) still holds
/// consistent data here, since every writer updates plain fields, so it is recovered.
pub fn lock(cell: &Mutex<TargetState>) -> MutexGuard<'_, TargetState> {
    cell.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_history_survives_a_brief_disconnect() {
        use crate::target::Target;
        let target = Target::for_tests("t");
        let mut state = TargetState::new(Arc::new(target));
        let err = |consecutive: u64| {
            crate::info::parse(&format!(
                "run_id:abc\naof_enabled:1\naof_last_bgrewrite_status:err\naof_rewrites:{consecutive}\naof_rewrites_consecutive_failures:{consecutive}\n"
            ))
            .unwrap()
        };
        let at = |seconds: u64| UNIX_EPOCH + Duration::from_secs(seconds);
        state.record_success(Snapshot::new(err(1), at(100)), Duration::ZERO, None);
        state.record_failure("timeout", Duration::ZERO);
        assert!(
            state.current().is_none(),
            "nothing presented as current while down"
        );
        state.record_success(Snapshot::new(err(2), at(200)), Duration::ZERO, None);
        assert!(
            state.diagnosis.aof.stuck(),
            "the streak continued across the disconnect"
        );
        // Started over, the streak would date from the reconnect (200), not the first err.
        assert_eq!(state.diagnosis.aof.err_since_unix, Some(100.0));
        assert_eq!(state.card_changes.len(), 1, "err, down, err is one change");
    }

    #[test]
    fn remembered_history_goes_on_unless_the_server_restarted() {
        use crate::target::Target;
        let target = Arc::new(Target::for_tests("t"));
        // Redis 6.2-like: no failures-in-a-row count, so a fresh state cannot say stuck.
        let err = |run_id: &str, forks: u64| {
            crate::info::parse(&format!(
                "run_id:{run_id}\naof_enabled:1\naof_last_bgrewrite_status:err\ntotal_forks:{forks}\n"
            ))
            .unwrap()
        };
        let at = |seconds: u64| UNIX_EPOCH + Duration::from_secs(seconds);
        let mut before = TargetState::new(target.clone());
        let ok = crate::info::parse(
            "run_id:a\naof_enabled:1\naof_last_bgrewrite_status:ok\ntotal_forks:0\n",
        )
        .unwrap();
        before.record_success(Snapshot::new(ok, at(100)), Duration::ZERO, None);
        before.record_success(Snapshot::new(err("a", 1), at(200)), Duration::ZERO, None);
        before.record_success(Snapshot::new(err("a", 2), at(300)), Duration::ZERO, None);
        assert!(before.diagnosis.aof.stuck());
        let remembered = before.remembered();

        let mut same = TargetState::new(target.clone());
        same.restore(remembered.clone());
        same.record_success(Snapshot::new(err("a", 2), at(400)), Duration::ZERO, None);
        assert!(same.diagnosis.aof.stuck(), "stuck from the first poll");
        assert_eq!(same.diagnosis.aof.err_since_unix, Some(200.0));
        assert_eq!(same.card_since_unix, Some(200.0), "the card did not change");

        let mut restarted = TargetState::new(target);
        restarted.restore(remembered);
        restarted.record_success(Snapshot::new(err("b", 0), at(400)), Duration::ZERO, None);
        assert!(!restarted.diagnosis.aof.stuck(), "a new run_id starts over");
        assert_eq!(restarted.diagnosis.aof.err_since_unix, Some(400.0));
        assert_eq!(restarted.restarts.restarted_while_err_unix, Some(400.0));
    }

    #[test]
    fn the_fleet_histogram_counts_every_target_and_outlives_them() {
        let store = Store::new();
        let target = |name: &str| Arc::new(crate::target::Target::for_tests(name));
        let a = store.insert(target("a"));
        let b = store.insert(target("b"));
        lock(&a).record_failure("timeout", Duration::from_millis(3));
        lock(&b).record_failure("timeout", Duration::from_secs(10));
        store.remove("b");
        let (buckets, sum, count) = store.poll_durations().buckets();
        assert_eq!(count, 2);
        assert_eq!(buckets[3], (0.005, 1));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!((sum - 10.003).abs() < 1e-9, "{sum}");
        assert_eq!(
            lock(&a).poll_duration.buckets().2,
            1,
            "each target keeps its own too"
        );
    }

    #[test]
    fn histogram_buckets_include_inf() {
        let mut h = DurationHistogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let (buckets, sum, count) = h.buckets();
        assert_eq!(count, 3);
        assert_eq!(buckets.first(), Some(&(0.0005, 1)));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(buckets.iter().map(|(_, c)| c).sum::<u64>(), 3);
        assert!(sum > 10.0);
    }
}
