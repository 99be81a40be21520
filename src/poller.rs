//! Polling: one task per target, each on its own schedule, owning its connection and its
//! deadline. A slow, frozen or dead target only ever costs its own task time.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::{Instant, MissedTickBehavior};

use crate::card::CardState;
use crate::cause::{self, FailureKind, LogCursor, LogEvidence};
use crate::config::Settings;
use crate::info::{self, OpStatus};
use crate::redis::{ClientError, Connection, InfoScope};
use crate::redis_settings::{self, RedisSettings};
use crate::state::{lock, Causes, ConfigStatus, Snapshot, TargetCell};
use crate::target::{escape_untrusted, PasswordSource, Target};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Time between poll starts.
    pub interval: Duration,
    /// Bound on one poll, connecting included.
    pub timeout: Duration,
    /// Time between `CONFIG GET`s.
    pub config_refresh: Duration,
    /// Time between reads of the sibling INFO sections.
    pub siblings_refresh: Duration,
    /// Whether a connection outlives its poll.
    pub keep_connections: bool,
}

impl From<&Settings> for Schedule {
    fn from(settings: &Settings) -> Self {
        Schedule {
            interval: settings.poll_interval,
            timeout: settings.poll_timeout,
            config_refresh: settings.config_refresh_interval,
            siblings_refresh: settings.siblings_refresh_interval,
            keep_connections: settings.keep_connections,
        }
    }
}

impl Schedule {
    /// Whether a read done every `every`, last at `last`, is due again. Half an interval of
    /// slack: a poll that starts a little early must not put the read off by a whole
    /// interval (with `every` equal to the poll interval, every poll reads).
    fn due(&self, last: Option<Instant>, every: Duration) -> bool {
        last.is_none_or(|at| at.elapsed() + self.interval / 2 >= every)
    }

    /// The width of the start slots for this schedule's polls.
    fn start_slot(&self) -> Duration {
        if self.keep_connections {
            START_SLOT
        } else {
            PER_POLL_CONNECTION_SLOT
        }
    }
}

/// Polls one target forever; the fleet stops it by aborting the task, which drops the
/// connection with it.
pub async fn run(target: Arc<Target>, cell: TargetCell, schedule: Schedule) {
    let first = first_poll(&target.name, schedule.interval, schedule.start_slot());
    let mut ticker = tokio::time::interval_at(first, schedule.interval);
    // A poll that overran (poll_timeout may equal the interval, recording runs after the
    // timeout, and the runtime can stall) skips to its next slot rather than bursting to
    // catch up or drifting off the grid its slot shares with other targets.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut poller = Poller::new(target, cell, schedule);
    loop {
        ticker.tick().await;
        poller.poll().await;
    }
}

/// One target's poller: its connection and what it remembers between polls.
pub struct Poller {
    target: Arc<Target>,
    cell: TargetCell,
    schedule: Schedule,
    connection: Option<Connection>,
    was_up: Option<bool>,
    config_read_at: Option<Instant>,
    siblings_read_at: Option<Instant>,
    cause_key: Option<FailureKey>,
    password_file_seen: Option<(SystemTime, u64)>,
    /// Where the Redis log was read up to (sidecar mode).
    log_cursor: LogCursor,
    /// Whether the last log read failed, so the warning is logged once per streak.
    log_unreadable: bool,
}

impl Poller {
    /// A poller that has not polled yet.
    pub fn new(target: Arc<Target>, cell: TargetCell, schedule: Schedule) -> Self {
        Poller {
            target,
            cell,
            schedule,
            connection: None,
            was_up: None,
            config_read_at: None,
            siblings_read_at: None,
            cause_key: None,
            password_file_seen: None,
            log_cursor: LogCursor::default(),
            log_unreadable: false,
        }
    }

    /// Polls once and records the outcome in the target's state. Never fails: a failure is
    /// an outcome too.
    pub async fn poll(&mut self) {
        let target = self.target.clone();
        if self.password_file_changed() {
            // A rotated password takes effect on a fresh connection, without a restart.
            tracing::info!(target_name = %target.name, "password file changed; reconnecting");
            self.connection = None;
        }
        let started = Instant::now();
        let config_due = target.config_command.is_some()
            && self
                .schedule
                .due(self.config_read_at, self.schedule.config_refresh);
        // A poll that opens a connection reads everything too (see `poll_once`).
        let scope = if self
            .schedule
            .due(self.siblings_read_at, self.schedule.siblings_refresh)
        {
            InfoScope::Full
        } else {
            InfoScope::Persistence
        };
        let outcome = tokio::time::timeout(
            self.schedule.timeout,
            poll_once(
                &target,
                &mut self.connection,
                self.schedule.timeout,
                config_due,
                scope,
            ),
        )
        .await
        .unwrap_or(Err(PollError::Timeout(self.schedule.timeout)));
        let took = started.elapsed();
        // A failed or timed-out connection may hold a half-read reply; never reuse it.
        if !self.schedule.keep_connections || outcome.is_err() {
            self.connection = None;
        }
        match outcome {
            Ok(reading) => {
                let scope = reading.scope;
                if scope == InfoScope::Full {
                    self.siblings_read_at = Some(started);
                }
                self.record_success(reading, scope, started, took).await
            }
            Err(error) => {
                let reason = error.reason();
                // The server may restart while unreachable: the first answer after it reads
                // everything, run_id included, so the restart is seen on that very poll.
                self.siblings_read_at = None;
                lock(&self.cell).record_failure(reason, took);
                // A hostile server chooses its error text: no raw control bytes in the log.
                let error = escape_untrusted(&error.to_string()).into_owned();
                if self.was_up != Some(false) {
                    tracing::warn!(target_name = %target.name, reason, error = %error, "target is down");
                } else {
                    tracing::debug!(target_name = %target.name, reason, error = %error, "poll failed");
                }
                self.was_up = Some(false);
            }
        }
    }

    /// Whether the password file's modification time or size moved since the last look.
    fn password_file_changed(&mut self) -> bool {
        let Some(PasswordSource::File(path)) = &self.target.password else {
            return false;
        };
        let Ok(meta) = std::fs::metadata(path) else {
            return false;
        };
        let seen = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
        );
        let before = self.password_file_seen.replace(seen);
        before.is_some_and(|before| before != seen)
    }

    async fn record_success(
        &mut self,
        reading: Reading,
        scope: InfoScope,
        started: Instant,
        took: Duration,
    ) {
        let target = &self.target;
        if !reading.info.field_errors.is_empty() {
            tracing::debug!(target_name = %target.name, errors = ?reading.info.field_errors.iter().map(ToString::to_string).collect::<Vec<_>>(), "some INFO fields were unreadable and are left out");
        }
        let mut info = reading.info;
        let log = match &target.log_file {
            Some(path) => self.read_log_evidence(path.clone()).await,
            None => None,
        };
        let target = &self.target;
        let key = {
            let mut state = lock(&self.cell);
            if let Some(previous) = state.latest.as_mut() {
                // Counters going backwards mean the server restarted since the last full
                // read: read everything (run_id included) on the next poll.
                let went_back = |before: Option<u64>, after: Option<u64>| matches!((before, after), (Some(b), Some(a)) if a < b);
                if went_back(previous.info.aof_rewrites, info.aof_rewrites)
                    || went_back(previous.info.rdb_saves, info.rdb_saves)
                {
                    self.siblings_read_at = None;
                }
                // Only a persistence-only reply lacks the siblings; a full reply without
                // replica lines means the replicas are gone, not unknown.
                if scope == InfoScope::Persistence {
                    info.inherit_siblings(&mut previous.info);
                }
            }
            let snapshot = Snapshot::new(info, SystemTime::now());
            state.record_poll(snapshot, took, log.as_ref(), scope == InfoScope::Full);
            if let Some(config) = reading.config {
                self.config_read_at = Some(started);
                if config == ConfigStatus::Unavailable
                    && state.redis_settings != ConfigStatus::Unavailable
                {
                    // Once per change, not once per poll: managed services deny CONFIG
                    // forever and that is fine.
                    tracing::warn!(target_name = %target.name, "CONFIG GET is renamed, disabled or denied on this target; settings-based signals are unavailable");
                }
                state.redis_settings = config;
            }
            failure_key(&state)
        };
        if self.was_up != Some(true) {
            tracing::info!(target_name = %target.name, "target is up");
        }
        self.was_up = Some(true);
        if target.log_file.is_some() && self.cause_key != Some(key) {
            self.cause_key = Some(key);
            let causes = read_causes(target, key).await;
            lock(&self.cell).causes = causes;
        }
        if let Some(dir) = &target.data_dir {
            let free = cause::free_space(dir).ok();
            // On the Redis host, so the host's memory is Redis's too (the fork headroom).
            let host_memory = crate::host::read_memory();
            let mut state = lock(&self.cell);
            state.free_space = free;
            state.host_memory = Some(host_memory);
        }
    }
}

impl Poller {
    /// What the Redis log says happened since the last poll: every failed attempt it logged,
    /// including those INFO's counters miss. `None` when the log cannot be read this time.
    async fn read_log_evidence(&mut self, path: std::path::PathBuf) -> Option<LogEvidence> {
        let mut cursor = std::mem::take(&mut self.log_cursor);
        let first = !cursor.is_open();
        let read = tokio::task::spawn_blocking(move || {
            // The first read only finds the end; the current episode comes from the tail.
            let text = cursor.read_new(&path).and_then(|new| match first {
                true => cause::read_log_tail(&path),
                false => Ok(new),
            });
            (cursor, text)
        })
        .await;
        let text = match read {
            Ok((cursor, text)) => {
                self.log_cursor = cursor;
                text
            }
            Err(_) => return None,
        };
        match text {
            Ok(text) => {
                self.log_unreadable = false;
                Some(match first {
                    true => cause::streak_evidence(&text),
                    false => cause::log_evidence(&text),
                })
            }
            Err(error) => {
                if !self.log_unreadable {
                    tracing::warn!(target_name = %self.target.name, error = %error, "cannot read the Redis log; failed attempts are counted from INFO alone until it can be read");
                }
                self.log_unreadable = true;
                None
            }
        }
    }
}

/// What changes a probable cause: new failed attempts or a status flip. The log is read only
/// when this changes, not on every poll.
type FailureKey = (u64, bool, bool, u64, bool);

fn failure_key(state: &crate::state::TargetState) -> FailureKey {
    let info = state.latest.as_ref().map(|s| &s.info);
    let err = |status: Option<OpStatus>| status == Some(OpStatus::Err);
    (
        state.diagnosis.aof.failed_attempts_total,
        // The card, not the raw status: before 7.0 a refused fork is err only by the log.
        state
            .latest
            .as_ref()
            .is_some_and(|s| s.card == CardState::Err),
        info.is_some_and(|i| i.aof_enabled == Some(true) && err(i.aof_last_write_status)),
        state.diagnosis.rdb.failed_attempts_total,
        info.is_some_and(|i| err(i.rdb_last_bgsave_status)),
    )
}

async fn read_causes(target: &Target, key: FailureKey) -> Causes {
    let (_, aof_rewrite_err, aof_write_err, _, rdb_err) = key;
    if !(aof_rewrite_err || aof_write_err || rdb_err) {
        return Causes::default();
    }
    let Some(path) = target.log_file.clone() else {
        return Causes::default();
    };
    let name = target.name.clone();
    let log = match tokio::task::spawn_blocking(move || cause::read_log_tail(&path)).await {
        Ok(Ok(log)) => log,
        Ok(Err(error)) => {
            tracing::warn!(target_name = %name, error = %error, "cannot read the Redis log for a probable cause");
            return Causes::default();
        }
        Err(_) => return Causes::default(),
    };
    let reason = |failing: bool, kind| {
        failing.then(|| cause::latest_reason(&log, kind).unwrap_or(cause::Reason::Unknown))
    };
    Causes {
        aof_rewrite: reason(aof_rewrite_err, FailureKind::AofRewrite),
        aof_write: reason(aof_write_err, FailureKind::AofWrite),
        rdb_bgsave: reason(rdb_err, FailureKind::RdbBgsave),
    }
}

/// One successful poll's yield.
struct Reading {
    info: info::Info,
    /// What was read: more than asked for on a new connection.
    scope: InfoScope,
    /// Present when `CONFIG GET` was due.
    config: Option<ConfigStatus>,
}

/// One poll: (re)connect if needed, then one INFO round trip.
async fn poll_once(
    target: &Target,
    connection: &mut Option<Connection>,
    timeout: Duration,
    config_due: bool,
    scope: InfoScope,
) -> Result<Reading, PollError> {
    // A connection is to one server process, so every persistence-only reply comes from the
    // server whose run_id the connection's first reply named. A new connection may reach a
    // restarted server: its first reply reads everything, run_id included, so a restart is
    // seen on the very poll that first reaches the new server, never after it.
    let mut scope = scope;
    if connection.as_ref().is_none_or(|c| !c.is_alive()) {
        *connection = None;
        *connection = Some(Connection::open(target, timeout).await?);
        scope = InfoScope::Full;
    }
    let Some(open) = connection.as_mut() else {
        unreachable!("connection was just opened");
    };
    let text = open.info(scope).await?;
    let info = info::parse(&text)?;
    let config = match (&target.config_command, config_due) {
        (Some(command), true) => Some(read_redis_settings(open, command).await?),
        _ => None,
    };
    Ok(Reading {
        info,
        scope,
        config,
    })
}

/// `CONFIG GET` of [`redis_settings::KEYS`]: in one call on Redis 7.0+, one per key on older
/// servers. A refusal (renamed, disabled, ACL) is an answer, not a failed poll.
async fn read_redis_settings(
    connection: &Connection,
    command: &str,
) -> Result<ConfigStatus, ClientError> {
    let refused =
        |e: &ClientError| matches!(e, ClientError::Server(_) | ClientError::Permission(_));
    match connection.config_get(command, redis_settings::KEYS).await {
        Ok(pairs) => return Ok(ConfigStatus::Available(RedisSettings::from_pairs(&pairs))),
        Err(e) if refused(&e) => {}
        Err(e) => return Err(e),
    }
    let mut pairs = Vec::new();
    for key in redis_settings::KEYS {
        match connection.config_get(command, &[key]).await {
            Ok(mut found) => pairs.append(&mut found),
            Err(e) if refused(&e) => return Ok(ConfigStatus::Unavailable),
            Err(e) => return Err(e),
        }
    }
    Ok(ConfigStatus::Available(RedisSettings::from_pairs(&pairs)))
}

/// Width of the start slots that polls on kept connections are spread over. Targets in the
/// same slot share one timer wake-up, and their replies mostly one more: waking the idle
/// runtime thread costs more than such a poll's own work. At 5,000 targets every 15 s, a
/// phase of its own for every poll cost 85 µs of exporter CPU per poll (1.8 context switches
/// per poll); 10 ms slots 75 µs; 100 ms slots 44 µs (0.2 switches per poll). Wider slots
/// gained nothing more.
const START_SLOT: Duration = Duration::from_millis(100);

/// The slot width for connections opened per poll: none to speak of. Their cost is the
/// client's handshake, and handshakes in a burst cost more than apart (5,000 targets every
/// 15 s: 280 µs per poll with phases of their own, 484 µs in 100 ms slots).
const PER_POLL_CONNECTION_SLOT: Duration = Duration::from_millis(1);

/// When a target's first poll is due: its [`start_offset`] from one process-wide epoch, so
/// targets in the same slot are due at the same instant, whenever each was added (a target
/// added by a reload waits for its slot's next turn).
fn first_poll(name: &str, interval: Duration, slot: Duration) -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let first = epoch + start_offset(name, interval, slot);
    let now = Instant::now();
    if first >= now {
        return first;
    }
    let periods = (now - first).as_nanos() / interval.as_nanos() + 1;
    first + interval * u32::try_from(periods).unwrap_or(u32::MAX)
}

/// A stable offset in `[0, interval)` derived from the target name (FNV-1a), a whole number
/// of `slot`s: first polls are spread over the interval so a thousand targets do not fire
/// together, and a target keeps its place in the interval across reloads.
fn start_offset(name: &str, interval: Duration, slot: Duration) -> Duration {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let slots = (interval.as_nanos() / slot.as_nanos().max(1)).max(1) as u64;
    slot * u32::try_from(hash % slots).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_and_within_the_interval() {
        let interval = Duration::from_secs(5);
        for i in 0..1000 {
            let name = format!("redis-{i}");
            let offset = start_offset(&name, interval, START_SLOT);
            assert!(offset < interval);
            assert_eq!(offset, start_offset(&name, interval, START_SLOT));
        }
    }

    #[test]
    fn offsets_spread_across_the_interval() {
        let interval = Duration::from_secs(1);
        let mut buckets = [0u32; 10];
        for i in 0..1000 {
            let offset = start_offset(&format!("10.0.0.{i}:6379"), interval, START_SLOT);
            buckets[(offset.as_millis() / 100) as usize] += 1;
        }
        // 1000 targets over 10 slots: none may hold more than a fifth of them.
        assert!(buckets.iter().all(|count| *count < 200), "{buckets:?}");
    }

    #[test]
    fn offsets_are_whole_slots_and_short_intervals_start_at_once() {
        for i in 0..100 {
            let offset = start_offset(&format!("t{i}"), Duration::from_secs(15), START_SLOT);
            assert_eq!(offset.as_nanos() % START_SLOT.as_nanos(), 0, "{offset:?}");
        }
        assert_eq!(
            start_offset("t", Duration::from_millis(5), START_SLOT),
            Duration::ZERO
        );
    }
}
