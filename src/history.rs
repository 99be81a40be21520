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
//! - the status flipped.
//!
//! The history survives a target's brief disconnect (it lives in the target's state, which
//! outlives failed polls) but is reset when the Redis server restarts (a new `run_id`, or
//! uptime going backwards), because a restarted server's counters and statuses start over.
//! A restart of the exporter starts the history empty: the first poll that sees `err` counts
//! one failed attempt (or Redis's consecutive-failure count, where it reports one), so a
//! failure that was already stuck is stuck again at once on Redis 7.0+, and after the next
//! failed attempt on older servers.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The derived state of one mechanism on one target.
#[derive(Debug, Clone, Default, PartialEq)]
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
}

impl History {
    /// Folds in one poll's observation taken at `now_unix`.
    pub fn observe(&mut self, current: Observation, now_unix: f64) {
        let failed_now = current.status == Some(OpStatus::Err);
        let previous = self.previous.replace(current);
        let Some(previous) = previous else {
            // First sight: an existing err counts as one failed attempt, or as many as Redis
            // says failed in a row.
            if failed_now {
                let failures = current.consecutive_failures.unwrap_or(0).max(1);
                self.streak_failures = failures;
                self.failed_attempts_total += failures;
                self.err_since_unix = Some(now_unix);
            }
            return;
        };

        let counter_delta = match (previous.attempts, current.attempts) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => 0,
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
            };
            if self.streak_failures == 0 {
                self.err_since_unix = Some(now_unix);
            }
            self.streak_failures += failed;
            self.failed_attempts_total += failed;
            if let Some(redis_count) = current.consecutive_failures {
                self.streak_failures = self.streak_failures.max(redis_count);
            }
        } else if current.status == Some(OpStatus::Ok) {
            if self.streak_failures == 1 {
                self.transient_recoveries_total += 1;
            }
            self.streak_failures = 0;
            self.err_since_unix = None;
        }
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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnosis {
    /// AOF rewrite history.
    pub aof: History,
    /// RDB bgsave history.
    pub rdb: History,
    run_id: Option<String>,
    uptime_seconds: Option<u64>,
}

impl Diagnosis {
    /// Folds in one successful poll.
    pub fn observe(&mut self, info: &Info, now_unix: f64) {
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
        self.aof.observe(
            Observation::from_info(Mechanism::AofRewrite, info),
            now_unix,
        );
        self.rdb
            .observe(Observation::from_info(Mechanism::RdbBgsave, info), now_unix);
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
