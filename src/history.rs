//! Signals derived across polls: failed attempts, stuck versus transient, and since when.
//!
//! Redis's own counters do not see every failure. Measured on Redis 7.0.15: a refused `fork()`
//! bumps `aof_rewrites` but not `aof_rewrites_consecutive_failures`, which only counts rewrites
//! whose child ran and failed (killed, or a write error); Redis before 7.0 has neither. So an attempt is inferred from every piece of
//! evidence a poll carries, and the strongest one wins:
//!
//! - the attempt counter moved (`aof_rewrites`, `rdb_saves`);
//! - Redis's consecutive-failure counter moved;
//! - a running operation was seen and has since finished;
//! - the status flipped;
//! - `total_forks`: before 7.0 a refused fork still counts a fork, so forks are attempts when
//!   only one mechanism can have made them; from 7.0 a refused fork counts an attempt but no
//!   fork, so rewrite attempts beyond the forks were refused;
//! - in sidecar mode, the failure and success lines of the Redis log since the last poll
//!   ([`LogEvidence`]): the only witness of a refused rewrite fork on 6.2 (the status stays
//!   ok) and of repeated rewrites on a full disk (7.0+ fail before any fork, nothing moves).
//!
//! See docs/servers.md for what each server was measured to do.
//!
//! The history survives a target's brief disconnect (it lives in the target's state, which
//! outlives failed polls) but is reset when the Redis server restarts (a new `run_id`, or
//! uptime going backwards), because a restarted server's counters and statuses start over.
//! A restart of the exporter keeps the history when `state_file` is set (`crate::persist`
//! saves the [`Diagnosis`] and restores it by target name; a changed `run_id` then resets it
//! as above). Without it the history starts empty: the first poll that sees `err` counts one
//! failed attempt (or Redis's consecutive-failure count, where it reports one), so a failure
//! that was already stuck is stuck again at once on Redis 7.0+, and after the next failed
//! attempt on older servers.

use serde::{Deserialize, Serialize};

use crate::cause::LogEvidence;
use crate::info::{Info, OpStatus};

/// Which background operation a history follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `BGREWRITEAOF`, manual or automatic.
    AofRewrite,
    /// `BGSAVE`, manual, automatic or for a replica.
    RdbBgsave,
}

/// What one poll says about one mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Last completed outcome.
    pub status: Option<OpStatus>,
    /// Whether one is running now.
    pub in_progress: bool,
    /// Attempts started since the server started, where Redis reports it.
    pub attempts: Option<u64>,
    /// Failures in a row as Redis counts them, where it reports it.
    pub consecutive_failures: Option<u64>,
}

impl Observation {
    /// Reads the observation for `mechanism` from a reply.
    pub fn from_info(mechanism: Mechanism, info: &Info) -> Self {
        match mechanism {
            Mechanism::AofRewrite => Observation {
                status: info.aof_last_bgrewrite_status,
                in_progress: info.aof_rewrite_in_progress == Some(true),
                attempts: info.aof_rewrites,
                consecutive_failures: info.aof_rewrites_consecutive_failures,
            },
            Mechanism::RdbBgsave => Observation {
                status: info.rdb_last_bgsave_status,
                in_progress: info.rdb_bgsave_in_progress == Some(true),
                attempts: info.rdb_saves,
                consecutive_failures: None,
            },
        }
    }
}

/// What a poll knows besides the mechanism's own fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Attempts since the last poll, inferred from `total_forks`, for a server that has no
    /// attempt counter of its own (before 7.0, where a refused fork still counts a fork).
    pub fork_attempts: Option<u64>,
    /// Forks refused since the last poll, at least: attempts the counter saw that `total_forks`
    /// did not (7.0+ count a refused fork as an attempt but not as a fork).
    pub refused_forks: u64,
    /// What the log says happened since the last poll, in sidecar mode.
    pub log: Option<LogCounts>,
}

/// One mechanism's attempts in the log since the last poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCounts {
    /// Failed attempts.
    pub failed: u64,
    /// Attempts that finished cleanly.
    pub finished: u64,
    /// Failed attempts after the last clean one (all of them when none finished).
    pub trailing: u64,
}

/// The derived state of one mechanism on one target. Serialized into the state file
/// (`crate::persist`), so it survives an exporter restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    previous: Option<Observation>,
    /// Failed attempts observed in the current err streak (0 when ok).
    pub streak_failures: u64,
    /// Failed attempts observed since the exporter started (or the server restarted).
    pub failed_attempts_total: u64,
    /// Err streaks that ended after a single failed attempt: transient, self-recovered.
    pub transient_recoveries_total: u64,
    /// Unix seconds when the current err streak was first seen.
    pub err_since_unix: Option<f64>,
    /// The current streak was already running when first seen, and nothing said how long
    /// (no failures-in-a-row count from Redis, no log): its length is a lower bound, so a
    /// streak of one may really be stuck.
    pub streak_length_unknown: bool,
}

impl History {
    /// Folds in one poll's observation taken at `now_unix`, with INFO's own evidence only.
    pub fn observe(&mut self, current: Observation, now_unix: f64) {
        self.observe_with(current, now_unix, Evidence::default());
    }

    /// Folds in one poll's observation with the evidence from outside its fields.
    ///
    /// Failures between two polls are placed together just before the poll's outcome: an
    /// interval ending in err adds them to the streak; one that began in err and ends ok
    /// adds all attempts but the last (N attempts ending in ok are at most N-1 failures),
    /// then ends the streak. Only the log can say there was a success in between.
    pub fn observe_with(&mut self, current: Observation, now_unix: f64, evidence: Evidence) {
        let failed_now = current.status == Some(OpStatus::Err);
        let previous = self.previous.replace(current);
        let Some(previous) = previous else {
            // First sight: an existing err counts as one failed attempt, or as many as Redis
            // says failed in a row, or as the log shows since the last success. A failure
            // only the log shows (a refused fork before 7.0 leaves the status ok) counts too.
            let logged = evidence.log.map_or(0, |log| log.trailing);
            self.streak_length_unknown = failed_now
                && evidence.log.is_none()
                && current.consecutive_failures.unwrap_or(0) == 0;
            let failures = if failed_now {
                current.consecutive_failures.unwrap_or(0).max(logged).max(1)
            } else {
                logged
            };
            self.add_failures(failures, now_unix);
            return;
        };

        if let Some(log) = evidence.log {
            // The log names every attempt, in order, so it alone counts them: adding INFO's
            // deltas too would count an attempt twice whenever the log line and the status
            // change fall on different polls (the log is read just after INFO).
            self.add_log(log, now_unix);
            return;
        }
        let counter_delta = match (previous.attempts, current.attempts) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => evidence.fork_attempts.unwrap_or(0),
        };
        let consecutive_delta = match (previous.consecutive_failures, current.consecutive_failures)
        {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => 0,
        };
        let finished_running = u64::from(previous.in_progress && !current.in_progress);
        let flipped = u64::from(previous.status != current.status);
        // Attempts that have completed since the last poll; one still running is not done.
        let completed = counter_delta
            .saturating_sub(u64::from(current.in_progress && !previous.in_progress))
            .max(finished_running)
            .max(flipped)
            .max(consecutive_delta);

        if failed_now {
            // At least one of the completed attempts failed if we got here through a flip;
            // while already in err, every completed attempt failed (a success would have
            // cleared the status).
            let failed = if previous.status == Some(OpStatus::Err) {
                completed
            } else {
                completed.max(1)
            }
            .max(evidence.refused_forks);
            self.add_failures(failed, now_unix);
            if let Some(redis_count) = current.consecutive_failures {
                self.streak_failures = self.streak_failures.max(redis_count);
            }
        } else if current.status == Some(OpStatus::Ok) {
            let failed = if previous.status == Some(OpStatus::Err) {
                completed.saturating_sub(1)
            } else {
                0
            }
            .max(evidence.refused_forks);
            self.add_failures(failed, now_unix);
            self.end_streak();
        }
    }

    /// Folds in the log's attempts: failures before the last success end their streak with
    /// it (transient when the streak was one attempt long), later ones start the next.
    fn add_log(&mut self, log: LogCounts, now_unix: f64) {
        if log.finished == 0 {
            self.add_failures(log.failed, now_unix);
            return;
        }
        self.add_failures(log.failed.saturating_sub(log.trailing), now_unix);
        self.end_streak();
        self.add_failures(log.trailing, now_unix);
    }

    fn end_streak(&mut self) {
        self.streak_length_unknown = false;
        if self.streak_failures == 1 {
            self.transient_recoveries_total += 1;
        }
        self.streak_failures = 0;
        self.err_since_unix = None;
    }

    fn add_failures(&mut self, failed: u64, now_unix: f64) {
        if failed == 0 {
            return;
        }
        if self.streak_failures == 0 {
            self.err_since_unix = Some(now_unix);
        }
        self.streak_failures += failed;
        self.failed_attempts_total += failed;
    }

    /// The failure survived more than one attempt: the brief's "real problem".
    pub fn stuck(&self) -> bool {
        self.streak_failures > 1
    }

    /// Forgets everything; used when the server restarted.
    pub fn reset(&mut self) {
        *self = History::default();
    }
}

/// Both mechanisms' histories for one target, and the server identity they belong to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// AOF rewrite history.
    pub aof: History,
    /// RDB bgsave history.
    pub rdb: History,
    run_id: Option<String>,
    uptime_seconds: Option<u64>,
    total_forks: Option<u64>,
    rdb_last_save: Option<u64>,
}

impl Diagnosis {
    /// Folds in one successful poll, with INFO's own evidence only.
    pub fn observe(&mut self, info: &Info, now_unix: f64) {
        self.observe_with(info, now_unix, None);
    }

    /// Folds in one successful poll and, in sidecar mode, what the Redis log says happened
    /// since the previous one ([`crate::cause::log_evidence`] of the new log text; `None`
    /// when the log is not read).
    pub fn observe_with(&mut self, info: &Info, now_unix: f64, log: Option<&LogEvidence>) {
        self.observe_poll(info, now_unix, log, true);
    }

    /// [`Diagnosis::observe_with`] for a poll that may have read the persistence section
    /// only: `forks_fresh` says whether `total_forks` (INFO stats) was read by this poll or
    /// carried over from an earlier full read. A carried-over count did not move while
    /// attempts did, which would make every rewrite between full reads look like a refused
    /// fork; so forks are evidence only between two polls that both read them.
    pub fn observe_poll(
        &mut self,
        info: &Info,
        now_unix: f64,
        log: Option<&LogEvidence>,
        forks_fresh: bool,
    ) {
        let restarted = match (&self.run_id, &info.run_id) {
            (Some(before), Some(after)) => before != after,
            _ => {
                matches!((self.uptime_seconds, info.uptime_seconds), (Some(before), Some(after)) if after < before)
            }
        };
        if restarted {
            self.aof.reset();
            self.rdb.reset();
        }
        // clone_from reuses the buffer: the run id is the same on almost every poll.
        self.run_id.clone_from(&info.run_id);
        self.uptime_seconds = info.uptime_seconds;
        let aof = Observation::from_info(Mechanism::AofRewrite, info);
        let rdb = Observation::from_info(Mechanism::RdbBgsave, info);
        let forks = info.total_forks.filter(|_| forks_fresh);
        let (mut aof_evidence, mut rdb_evidence) = self.fork_evidence(forks, info, &aof, &rdb);
        if let Some(log) = log {
            aof_evidence.log = Some(LogCounts {
                failed: u64::from(log.aof_rewrite_failures),
                finished: u64::from(log.aof_rewrite_successes),
                trailing: u64::from(log.aof_rewrite_trailing_failures),
            });
            rdb_evidence.log = Some(LogCounts {
                failed: u64::from(log.rdb_bgsave_failures),
                finished: u64::from(log.rdb_bgsave_successes),
                trailing: u64::from(log.rdb_bgsave_trailing_failures),
            });
        }
        self.total_forks = forks;
        self.rdb_last_save = info.rdb_last_save_timestamp_seconds;
        self.aof.observe_with(aof, now_unix, aof_evidence);
        self.rdb.observe_with(rdb, now_unix, rdb_evidence);
    }

    /// What `total_forks` says since the last poll, per mechanism.
    fn fork_evidence(
        &self,
        forks_now: Option<u64>,
        info: &Info,
        aof: &Observation,
        rdb: &Observation,
    ) -> (Evidence, Evidence) {
        let (mut aof_evidence, mut rdb_evidence) = (Evidence::default(), Evidence::default());
        let (Some(before), Some(after)) = (self.total_forks, forks_now) else {
            return (aof_evidence, rdb_evidence);
        };
        let forks = after.saturating_sub(before);
        let (Some(aof_before), Some(rdb_before)) = (self.aof.previous, self.rdb.previous) else {
            return (aof_evidence, rdb_evidence);
        };
        match (aof_before.attempts, aof.attempts) {
            (Some(b), Some(a)) => {
                // Every fork may have been a rewrite's, so the rest of the attempts, at least,
                // were refused. (Not for RDB: a foreground SAVE counts an attempt, no fork.)
                aof_evidence.refused_forks = a.saturating_sub(b).saturating_sub(forks);
            }
            _ => {
                // Before 7.0: a refused fork counts a fork, so forks are attempts, when only
                // one mechanism can have made them. A successful save moves rdb_last_save_time.
                let active = |before: &Observation, now: &Observation| {
                    before.status != now.status || before.in_progress || now.in_progress
                };
                let saved = self.rdb_last_save != info.rdb_last_save_timestamp_seconds;
                let rdb_active = active(&rdb_before, rdb) || saved;
                let aof_active = active(&aof_before, aof) || aof.status == Some(OpStatus::Err);
                if aof_active && !rdb_active {
                    aof_evidence.fork_attempts = Some(forks);
                } else if rdb_active && !aof_active {
                    rdb_evidence.fork_attempts = Some(forks);
                }
            }
        }
        (aof_evidence, rdb_evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(
        status: OpStatus,
        in_progress: bool,
        attempts: Option<u64>,
        consecutive: Option<u64>,
    ) -> Observation {
        Observation {
            status: Some(status),
            in_progress,
            attempts,
            consecutive_failures: consecutive,
        }
    }
    use OpStatus::{Err, Ok};

    #[test]
    fn single_killed_rewrite_then_recovery_is_transient() {
        let mut h = History::default();
        h.observe(obs(Ok, false, Some(0), Some(0)), 1.0);
        h.observe(obs(Ok, true, Some(1), Some(0)), 2.0);
        h.observe(obs(Err, false, Some(1), Some(1)), 3.0);
        assert_eq!(h.streak_failures, 1);
        assert!(!h.stuck());
        assert_eq!(h.err_since_unix, Some(3.0));
        h.observe(obs(Ok, false, Some(2), Some(0)), 4.0);
        assert_eq!(h.transient_recoveries_total, 1);
        assert_eq!(h.failed_attempts_total, 1);
        assert_eq!(h.err_since_unix, None);
    }

    #[test]
    fn repeated_failures_are_stuck_with_redis_counters() {
        let mut h = History::default();
        h.observe(obs(Ok, false, Some(0), Some(0)), 1.0);
        h.observe(obs(Err, false, Some(1), Some(1)), 2.0);
        h.observe(obs(Err, false, Some(2), Some(2)), 3.0);
        assert!(h.stuck());
        assert_eq!(h.failed_attempts_total, 2);
        assert_eq!(h.err_since_unix, Some(2.0));
        h.observe(obs(Ok, false, Some(3), Some(0)), 4.0);
        assert_eq!(
            h.transient_recoveries_total, 0,
            "a stuck err is not transient"
        );
        assert!(!h.stuck());
    }

    #[test]
    fn fork_failures_counted_by_attempts_only() {
        // fork() failing bumps aof_rewrites but not the consecutive-failure counter.
        let mut h = History::default();
        h.observe(obs(Ok, false, Some(5), Some(0)), 1.0);
        h.observe(obs(Err, false, Some(6), Some(0)), 2.0);
        h.observe(obs(Err, false, Some(7), Some(0)), 3.0);
        assert!(h.stuck());
        assert_eq!(h.failed_attempts_total, 2);
    }

    #[test]
    fn old_redis_without_counters_uses_in_progress_and_flips() {
        let mut h = History::default();
        h.observe(obs(Ok, false, None, None), 1.0);
        h.observe(obs(Ok, true, None, None), 2.0);
        h.observe(obs(Err, false, None, None), 3.0);
        assert_eq!(h.streak_failures, 1);
        h.observe(obs(Err, true, None, None), 4.0);
        assert_eq!(h.streak_failures, 1, "a running retry has not failed yet");
        h.observe(obs(Err, false, None, None), 5.0);
        assert!(h.stuck());
    }

    #[test]
    fn err_at_first_sight_uses_redis_consecutive_count() {
        let mut h = History::default();
        h.observe(obs(Err, false, Some(3), Some(3)), 1.0);
        assert!(h.stuck());
        let mut h = History::default();
        h.observe(obs(Err, false, None, None), 1.0);
        assert!(!h.stuck());
    }

    #[test]
    fn steady_err_without_new_attempts_stays_put() {
        let mut h = History::default();
        h.observe(obs(Ok, false, Some(0), Some(0)), 1.0);
        h.observe(obs(Err, false, Some(1), Some(1)), 2.0);
        for t in 3..20 {
            h.observe(obs(Err, false, Some(1), Some(1)), t as f64);
        }
        assert_eq!(h.streak_failures, 1);
        assert!(!h.stuck());
    }

    /// An INFO reply of one run of a server, from `field:value` pairs.
    fn info(fields: &str) -> Info {
        crate::info::parse(&format!(
            "run_id:r\naof_enabled:1\n{}",
            fields.replace(' ', "\n")
        ))
        .unwrap()
    }

    #[test]
    fn failure_then_success_between_polls_is_stuck_then_recovered() {
        // Measured on every server: after an observed err, a second killed rewrite and a clean
        // one within one poll moved aof_rewrites 1 to 3. Truth: 2 failures, then recovery.
        // (This used to record 1 failure and a transient recovery.)
        let mut h = History::default();
        h.observe(obs(Ok, false, Some(0), Some(0)), 1.0);
        h.observe(obs(Err, false, Some(1), Some(1)), 2.0);
        h.observe(obs(Ok, false, Some(3), Some(0)), 3.0);
        assert_eq!(h.failed_attempts_total, 2);
        assert_eq!(
            h.transient_recoveries_total, 0,
            "a two-failure streak is not transient"
        );
        assert_eq!(h.streak_failures, 0);
        // Redis 6.2: no aof_rewrites; total_forks moved 2 while RDB was idle.
        let mut d = Diagnosis::default();
        d.observe(&info("aof_last_bgrewrite_status:ok total_forks:1"), 1.0);
        d.observe(&info("aof_last_bgrewrite_status:err total_forks:2"), 2.0);
        d.observe(&info("aof_last_bgrewrite_status:ok total_forks:4"), 3.0);
        assert_eq!(d.aof.failed_attempts_total, 2);
        assert_eq!(d.aof.transient_recoveries_total, 0);
        assert_eq!(d.rdb.failed_attempts_total, 0);
    }

    #[test]
    fn two_successes_between_polls_are_no_failure() {
        let mut h = History::default();
        h.observe(obs(Ok, false, Some(0), Some(0)), 1.0);
        h.observe(obs(Ok, false, Some(2), Some(0)), 2.0);
        assert_eq!(h.failed_attempts_total, 0);
        assert_eq!(h.transient_recoveries_total, 0);
    }

    #[test]
    fn refused_bgsave_forks_on_6_2_are_counted_by_total_forks() {
        // Redis 6.2.14: two refused BGSAVE forks set rdb_last_bgsave_status:err and moved
        // total_forks 0 to 2. (This used to record 1 failure, not stuck, then transient.)
        let mut d = Diagnosis::default();
        let rdb = |status: &str, forks: u64, saved: u64| {
            info(&format!("aof_last_bgrewrite_status:ok rdb_last_bgsave_status:{status} total_forks:{forks} rdb_last_save_time:{saved}"))
        };
        d.observe(&rdb("ok", 0, 100), 1.0);
        d.observe(&rdb("err", 2, 100), 2.0);
        assert_eq!(d.rdb.failed_attempts_total, 2);
        assert!(d.rdb.stuck());
        assert_eq!(d.aof.failed_attempts_total, 0);
        d.observe(&rdb("ok", 3, 200), 3.0);
        assert_eq!(d.rdb.transient_recoveries_total, 0);
        assert!(!d.rdb.stuck());
    }

    #[test]
    fn refused_fork_then_success_between_polls_on_7_0() {
        // 7.0+: a refused fork counts in aof_rewrites, not in total_forks.
        let mut d = Diagnosis::default();
        d.observe(&info("aof_last_bgrewrite_status:ok aof_rewrites:1 aof_rewrites_consecutive_failures:0 total_forks:1"), 1.0);
        d.observe(&info("aof_last_bgrewrite_status:ok aof_rewrites:3 aof_rewrites_consecutive_failures:0 total_forks:2"), 2.0);
        assert_eq!(d.aof.failed_attempts_total, 1);
        assert_eq!(d.aof.transient_recoveries_total, 1);
    }

    #[test]
    fn forks_carried_over_from_a_full_read_are_no_evidence() {
        // Redis 7.0.15, INFO alone, polls of the persistence section between full reads:
        // a clean rewrite moved aof_rewrites 0 to 1 while total_forks, read 30 s earlier,
        // still said 3. That counted one failed attempt and one transient recovery for a
        // rewrite that succeeded (tests/server_faults.rs, fork_refused on redis-7.0).
        let healthy = info("aof_last_bgrewrite_status:ok aof_rewrites:0 aof_rewrites_consecutive_failures:0 total_forks:3");
        let rewritten = info("aof_last_bgrewrite_status:ok aof_rewrites:1 aof_rewrites_consecutive_failures:0 total_forks:3");
        let read_again = info("aof_last_bgrewrite_status:ok aof_rewrites:1 aof_rewrites_consecutive_failures:0 total_forks:4");
        let mut d = Diagnosis::default();
        d.observe_poll(&healthy, 1.0, None, true);
        d.observe_poll(&rewritten, 2.0, None, false);
        d.observe_poll(&read_again, 3.0, None, true);
        assert_eq!(d.aof.failed_attempts_total, 0);
        assert_eq!(d.aof.transient_recoveries_total, 0);
        // Redis 6.2, INFO alone: a killed rewrite seen between full reads, then the full
        // read's total_forks +1 while the status is still err: one failure, not two.
        let mut d = Diagnosis::default();
        d.observe_poll(
            &info("aof_last_bgrewrite_status:ok total_forks:1"),
            1.0,
            None,
            true,
        );
        d.observe_poll(
            &info("aof_last_bgrewrite_status:err total_forks:1"),
            2.0,
            None,
            false,
        );
        d.observe_poll(
            &info("aof_last_bgrewrite_status:err total_forks:2"),
            3.0,
            None,
            true,
        );
        assert_eq!(d.aof.failed_attempts_total, 1);
    }

    #[test]
    fn full_disk_before_any_fork_needs_the_log() {
        // 7.0+: the manifest write fails before any fork; aof_rewrites, consecutive failures
        // and total_forks do not move. Only the flip and the log show the attempts.
        let err = info("aof_last_bgrewrite_status:err aof_rewrites:0 aof_rewrites_consecutive_failures:0 total_forks:0");
        let ok = info("aof_last_bgrewrite_status:ok aof_rewrites:1 aof_rewrites_consecutive_failures:0 total_forks:1");
        let healthy = info("aof_last_bgrewrite_status:ok aof_rewrites:0 aof_rewrites_consecutive_failures:0 total_forks:0");
        let failures = |n| LogEvidence {
            aof_rewrite_failures: n,
            aof_rewrite_cause: Some(crate::cause::Reason::DiskFull),
            ..LogEvidence::default()
        };
        let finished = LogEvidence {
            aof_rewrite_successes: 1,
            ..LogEvidence::default()
        };
        let mut d = Diagnosis::default();
        d.observe_with(&healthy, 1.0, Some(&LogEvidence::default()));
        d.observe_with(&err, 2.0, Some(&failures(1)));
        d.observe_with(&err, 3.0, Some(&failures(1)));
        assert_eq!(d.aof.failed_attempts_total, 2);
        assert!(d.aof.stuck());
        assert_eq!(d.aof.err_since_unix, Some(2.0));
        d.observe_with(&ok, 4.0, Some(&finished));
        assert_eq!(d.aof.transient_recoveries_total, 0);
        assert!(!d.aof.stuck());
        // Without the log the repeated attempt is invisible: the limit of INFO alone.
        let mut d = Diagnosis::default();
        d.observe(&healthy, 1.0);
        d.observe(&err, 2.0);
        d.observe(&err, 3.0);
        assert_eq!(d.aof.failed_attempts_total, 1);
    }

    #[test]
    fn refused_rewrite_fork_on_6_2_is_only_in_the_log() {
        // Redis 6.2.14: a refused BGREWRITEAOF fork leaves aof_last_bgrewrite_status:ok and
        // adds one to total_forks; the log says "Can't rewrite append only file in
        // background: fork: Resource temporarily unavailable".
        let refused = LogEvidence {
            aof_rewrite_failures: 1,
            aof_rewrite_cause: Some(crate::cause::Reason::ForkFailed),
            ..LogEvidence::default()
        };
        let mut d = Diagnosis::default();
        d.observe_with(
            &info("aof_last_bgrewrite_status:ok total_forks:0"),
            1.0,
            Some(&LogEvidence::default()),
        );
        d.observe_with(
            &info("aof_last_bgrewrite_status:ok total_forks:1"),
            2.0,
            Some(&refused),
        );
        d.observe_with(
            &info("aof_last_bgrewrite_status:ok total_forks:2"),
            3.0,
            Some(&refused),
        );
        assert_eq!(d.aof.failed_attempts_total, 2);
        assert_eq!(d.aof.streak_failures, 2, "no success in between");
        assert_eq!(d.aof.err_since_unix, Some(2.0));
        let finished = LogEvidence {
            aof_rewrite_successes: 1,
            ..LogEvidence::default()
        };
        d.observe_with(
            &info("aof_last_bgrewrite_status:ok total_forks:3"),
            4.0,
            Some(&finished),
        );
        assert_eq!(d.aof.streak_failures, 0);
        assert_eq!(d.aof.transient_recoveries_total, 0);
    }

    #[test]
    fn server_restart_resets_history() {
        let mut d = Diagnosis::default();
        let mut info = Info {
            run_id: Some("a".into()),
            aof_enabled: Some(true),
            aof_last_bgrewrite_status: Some(Err),
            aof_rewrites_consecutive_failures: Some(4),
            ..Info::default()
        };
        d.observe(&info, 1.0);
        assert!(d.aof.stuck());
        info.run_id = Some("b".into());
        info.aof_last_bgrewrite_status = Some(Ok);
        info.aof_rewrites_consecutive_failures = Some(0);
        d.observe(&info, 2.0);
        assert!(!d.aof.stuck());
        assert_eq!(d.aof.failed_attempts_total, 0);
    }
}
