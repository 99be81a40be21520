//! Server restarts that matter for durability: a restart while the AOF rewrite was failing,
//! and how long the load that followed took ("recent restart plus prior err equals investigate
//! the AOF-load time").
//!
//! A restart is a new `run_id`, read with the server section on the first poll of every new
//! connection, and a restarted server is only ever reached on a new connection: so the restart
//! is seen on the first poll that reaches the new server, and the card at the restart is the
//! previous poll's. (`uptime_in_seconds` dates the start, to within a second or so: it is a
//! difference of whole seconds.) The load time comes from the Redis log's "DB loaded from
//! append only file: N seconds" line when the exporter reads the log (`log_file`), else from
//! polls that saw `loading:1`: the first poll after the load, minus `loading_start_time`, an
//! upper bound within one poll interval. A load too quick for any poll to see, without the
//! log, leaves the duration unknown.

use serde::{Deserialize, Serialize};

use crate::card::CardState;
use crate::info::Info;

/// Where a load duration was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadSource {
    /// The Redis log's own measure.
    Log,
    /// Polls that saw the load running: exact to within one poll interval, rounded up.
    Polls,
}

/// A target's restarts, as far as they matter for the card. Saved in the state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Restarts {
    run_id: Option<String>,
    /// Unix seconds the latest start happened, when it happened while the card was err.
    /// Cleared by a later restart while the card was not err.
    pub restarted_while_err_unix: Option<f64>,
    /// How long the latest startup load took, in seconds, and where that was read.
    pub last_load: Option<(f64, LoadSource)>,
    /// `loading_start_time` of a load seen running and not yet seen finished.
    loading_since_unix: Option<u64>,
}

impl Restarts {
    /// Folds in one successful poll at `now_unix`; `card_before` is the card at the previous
    /// successful poll, and `log_load_seconds` the load time from the log text since then, in
    /// sidecar mode. A restart is seen on the first poll that reaches the new server (the
    /// poller reads everything, `run_id` included, on every new connection), so the card at
    /// the restart is the previous poll's.
    pub fn observe(
        &mut self,
        info: &Info,
        card_before: Option<CardState>,
        now_unix: f64,
        log_load_seconds: Option<f64>,
    ) {
        let restarted =
            matches!((&self.run_id, &info.run_id), (Some(before), Some(after)) if before != after);
        if restarted {
            let started = info
                .uptime_seconds
                .map_or(now_unix, |up| (now_unix - up as f64).max(0.0));
            self.restarted_while_err_unix =
                (card_before == Some(CardState::Err)).then_some(started);
        }
        if info.run_id.is_some() {
            self.run_id.clone_from(&info.run_id);
        }
        if let Some(seconds) = log_load_seconds {
            self.last_load = Some((seconds, LoadSource::Log));
            self.loading_since_unix = None;
            return;
        }
        match (info.loading, info.loading_start_timestamp_seconds) {
            (Some(true), Some(start)) => self.loading_since_unix = Some(start),
            (Some(false), _) => {
                if let Some(start) = self.loading_since_unix.take() {
                    let took = (now_unix - start as f64).max(0.0).ceil();
                    self.last_load = Some((took, LoadSource::Polls));
                }
            }
            _ => {}
        }
    }

    /// The words for people: `None` unless the latest restart happened while the card was err.
    pub fn describe(&self) -> Option<String> {
        self.restarted_while_err_unix?;
        Some(match self.last_load {
            Some((seconds, LoadSource::Log)) => format!(
                "Restarted while the AOF rewrite was failing; loading took {seconds:.1} s (Redis log). Investigate the AOF-load time: an uncompacted AOF replays slowly."
            ),
            Some((seconds, LoadSource::Polls)) => format!(
                "Restarted while the AOF rewrite was failing; loading took {seconds:.0} s at most (seen loading by the polls). Investigate the AOF-load time: an uncompacted AOF replays slowly."
            ),
            None => "Restarted while the AOF rewrite was failing; the load time is unknown (too quick for a poll to see it; set log_file to read it from the Redis log).".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CardState::{Err, Ok};

    fn info(text: &str) -> Info {
        crate::info::parse(&text.replace(' ', "\n")).unwrap()
    }

    /// Polls in order, each given the previous poll's card, as the target's state does.
    #[derive(Default)]
    struct Polls {
        r: Restarts,
        card: Option<CardState>,
    }

    impl Polls {
        fn observe(&mut self, info: &Info, card: CardState, at: f64, log: Option<f64>) {
            self.r.observe(info, self.card, at, log);
            self.card = Some(card);
        }
    }

    impl std::ops::Deref for Polls {
        type Target = Restarts;
        fn deref(&self) -> &Restarts {
            &self.r
        }
    }

    #[test]
    fn a_restart_while_err_is_dated_from_uptime_and_its_load_timed_by_polls() {
        let mut r = Polls::default();
        r.observe(
            &info("run_id:a uptime_in_seconds:50 loading:0"),
            Err,
            100.0,
            None,
        );
        assert_eq!(r.restarted_while_err_unix, None);
        r.observe(
            &info("run_id:b uptime_in_seconds:3 loading:1 loading_start_time:197"),
            Ok,
            200.0,
            None,
        );
        assert_eq!(r.restarted_while_err_unix, Some(197.0));
        assert_eq!(r.last_load, None, "still loading");
        r.observe(
            &info("run_id:b uptime_in_seconds:8 loading:0"),
            Ok,
            205.0,
            None,
        );
        assert_eq!(r.last_load, Some((8.0, LoadSource::Polls)));
        assert!(r.describe().unwrap().contains("loading took 8 s at most"));
        // A later restart while ok clears it.
        r.observe(
            &info("run_id:c uptime_in_seconds:1 loading:0"),
            Ok,
            300.0,
            None,
        );
        assert_eq!(r.restarted_while_err_unix, None);
        assert_eq!(r.describe(), None);
    }

    #[test]
    fn the_log_gives_the_load_time_when_read() {
        let mut r = Polls::default();
        r.observe(&info("run_id:a uptime_in_seconds:50"), Err, 100.0, None);
        r.observe(&info("run_id:b uptime_in_seconds:1"), Ok, 200.0, Some(2.5));
        assert_eq!(r.last_load, Some((2.5, LoadSource::Log)));
        assert!(r.describe().unwrap().contains("loading took 2.5 s"));
    }

    #[test]
    fn a_persistence_only_poll_without_run_id_is_no_restart() {
        let mut r = Polls::default();
        r.observe(&info("run_id:a"), Err, 1.0, None);
        r.observe(&info("aof_enabled:1"), Err, 2.0, None);
        r.observe(&info("run_id:a"), Err, 3.0, None);
        assert_eq!(r.restarted_while_err_unix, None);
    }

    #[test]
    fn the_card_at_a_restart_is_the_previous_polls_whatever_the_uptime_says() {
        // Redis's uptime is a difference of whole seconds: a server 0.4 s old may say 1.
        let mut r = Polls::default();
        r.observe(&info("run_id:a uptime_in_seconds:1"), Ok, 614.0, None);
        r.observe(&info("run_id:a uptime_in_seconds:2"), Err, 615.6, None);
        r.observe(&info("run_id:b uptime_in_seconds:1"), Ok, 616.1, None);
        assert_eq!(r.restarted_while_err_unix, Some(615.1));
    }
}
