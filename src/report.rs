//! The brief's reading of a target, for people: what the card says, what it means here, how
//! urgent it is and what to do next. Pure: state in, report out. Used by `check` and the
//! status page so both always say the same thing.

use serde::Serialize;

use crate::backup::{self, BackupReport, Board};
use crate::card::CardState;
use crate::cause::Reason;
use crate::info::OpStatus;
use crate::state::{Snapshot, TargetState};

/// How soon someone must act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Nothing to do.
    None,
    /// Look when convenient.
    Low,
    /// Same day, not same minute (the brief's word on a failed rewrite).
    SameDay,
    /// Now: data may be lost or there is no durable copy.
    Now,
}

/// A probable cause with what to do about it.
#[derive(Debug, Clone, Serialize)]
pub struct CauseReport {
    /// `aof_rewrite`, `aof_write` or `rdb_bgsave`.
    pub mechanism: &'static str,
    /// `disk_full`, `fork_failed`, `io_error`, `child_killed` or `unknown`.
    pub reason: &'static str,
    /// The next step for that reason.
    pub advice: &'static str,
}

/// Everything `check` prints and the status page shows for one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// The `target` label.
    pub target: String,
    /// Whether the last poll succeeded.
    pub up: bool,
    /// Why the last poll failed.
    pub poll_failure: Option<&'static str>,
    /// The card, or `None` while the target is down or not polled yet; serialized as `ok`,
    /// `err`, `not_applicable` or `unknown`.
    #[serde(serialize_with = "card_label")]
    pub card: Option<CardState>,
    /// Unix seconds when the card last changed (or was first seen).
    pub card_since_unix: Option<f64>,
    /// One line: what the card means on this target now.
    pub headline: String,
    /// How soon to act.
    pub urgency: Urgency,
    /// Ordered next steps.
    pub next_steps: Vec<String>,
    /// Other facts that change the reading (replicas, RDB fallback, memory).
    pub context: Vec<String>,
    /// Probable causes, when the exporter may read the Redis log.
    pub causes: Vec<CauseReport>,
    /// The related fields.
    pub fields: Fields,
    /// The Last Successful Backup card, when the reader was given the backup board.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupReport>,
}

/// The related fields, each absent when unknown.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fields {
    /// `aof_enabled`
    pub aof_enabled: Option<bool>,
    /// `aof_last_write_status` is ok.
    pub aof_write_ok: Option<bool>,
    /// `aof_rewrite_in_progress`
    pub aof_rewrite_in_progress: Option<bool>,
    /// `aof_current_size`
    pub aof_current_size_bytes: Option<u64>,
    /// `aof_base_size`
    pub aof_base_size_bytes: Option<u64>,
    /// current / base
    pub aof_growth_ratio: Option<f64>,
    /// Past Redis's own rewrite threshold with no rewrite running.
    pub aof_rewrite_overdue: Option<bool>,
    /// Failure survived more than one attempt.
    pub aof_rewrite_stuck: bool,
    /// Failed rewrite attempts in the current err streak.
    pub aof_rewrite_failures_in_streak: u64,
    /// Errs that cleared after one attempt.
    pub aof_rewrite_transient_recoveries: u64,
    /// Unix seconds the current err was first seen.
    pub aof_rewrite_err_since_unix: Option<f64>,
    /// `rdb_last_bgsave_status` is ok.
    pub rdb_last_bgsave_ok: Option<bool>,
    /// Seconds since the last successful RDB save.
    pub rdb_last_save_age_seconds: Option<f64>,
    /// The last RDB save is older than `rdb_max_age`.
    pub rdb_stale: Option<bool>,
    /// `connected_slaves`
    pub connected_replicas: Option<u64>,
    /// Replicas whose link is online.
    pub online_replicas: usize,
    /// Replicas in sync (online, recent ack, close offset): live copies of the data.
    pub replicas_in_sync: Option<usize>,
    /// Unix seconds the server last started while the card was err.
    pub restarted_while_err_unix: Option<f64>,
    /// How long the latest startup load took, in seconds.
    pub last_load_duration_seconds: Option<f64>,
    /// used_memory / maxmemory, when maxmemory is set.
    pub memory_used_ratio: Option<f64>,
    /// Free bytes where the data lives (host access only).
    pub data_dir_free_bytes: Option<u64>,
    /// CONFIG GET works.
    pub config_available: Option<bool>,
}

impl TargetReport {
    /// Any persistence err: the AOF rewrite card, AOF writes, or the last RDB save.
    pub fn persistence_err(&self) -> bool {
        self.card == Some(CardState::Err)
            || (self.fields.aof_enabled == Some(true) && self.fields.aof_write_ok == Some(false))
            || self.fields.rdb_last_bgsave_ok == Some(false)
    }

    /// The card's label, `unknown` while the target is down.
    pub fn card_label(&self) -> &'static str {
        self.card.map_or("unknown", CardState::label)
    }
}

fn card_label<S: serde::Serializer>(card: &Option<CardState>, out: S) -> Result<S::Ok, S::Error> {
    out.serialize_str(card.map_or("unknown", CardState::label))
}

/// `1.5 MiB`: bytes for people.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Reads one target's state as the Last AOF Rewrite Status card would, at `now_unix`.
pub fn read(state: &TargetState, now_unix: f64) -> TargetReport {
    let mut report = TargetReport {
        target: state.target.name.clone(),
        up: state.up,
        poll_failure: state.last_failure_reason,
        card: None,
        card_since_unix: state.card_since_unix,
        headline: String::new(),
        urgency: Urgency::Now,
        next_steps: Vec::new(),
        context: Vec::new(),
        causes: Vec::new(),
        fields: Fields::default(),
        backup: None,
    };
    let Some(snapshot) = state.current() else {
        read_unreachable(state, &mut report);
        return report;
    };
    report.fields = fields(state, snapshot, now_unix);
    report.card = Some(snapshot.card);
    report.causes = causes(state);
    read_card(state, snapshot, &mut report);
    if let Some(restart) = state.restarts.describe() {
        report.context.push(restart);
    }
    read_write_status(snapshot, &mut report);
    if snapshot.card == CardState::Err {
        read_fallbacks(snapshot, &mut report);
    }
    read_rdb_status(snapshot, &mut report);
    read_aof_size(snapshot, &mut report);
    read_prediction(state, snapshot, &mut report);
    report
}

/// Warns before the failure (sidecar mode): a rewrite or BGSAVE predicted not to fit, a fork
/// likely refused or killed. The step goes first, except behind a probable cause the log
/// already gave for a failure that has happened.
fn read_prediction(state: &TargetState, snapshot: &Snapshot, report: &mut TargetReport) {
    let mut steps = Vec::new();
    if let Some(disk) = state.disk_prediction(snapshot) {
        let free = human_bytes(disk.free_bytes);
        if let (Some(false), Some(needed)) = (disk.rewrite_fits(), disk.rewrite_needed_bytes) {
            report.context.push(format!("Predicted: the next AOF rewrite needs up to {} (the dataset as RDB plus the writes made while it runs) and the data volume has {free} free: it will fail with disk full.", human_bytes(needed)));
            steps.push(format!("Before the next rewrite (automatic or BGREWRITEAOF): free at least {} on the data volume or grow it; the rewrite is predicted not to fit.", human_bytes(needed.saturating_sub(disk.free_bytes))));
        } else if !disk.bgsave_fits() {
            report.context.push(format!("Predicted: the next BGSAVE needs up to {} and the data volume has {free} free: it will fail with disk full.", human_bytes(disk.bgsave_needed_bytes)));
            steps.push(format!(
                "Before the next BGSAVE: free at least {} on the data volume or grow it.",
                human_bytes(disk.bgsave_needed_bytes.saturating_sub(disk.free_bytes))
            ));
        }
    }
    if let Some(fork) = state.fork_headroom(snapshot).filter(|f| f.at_risk()) {
        report.context.push(format!(
            "Predicted: the next fork (rewrite or BGSAVE) is at risk: {} (headroom ratio {:.2}).",
            fork.limit.describe(),
            fork.ratio
        ));
        steps.push("Before the next rewrite or BGSAVE: give the fork memory headroom (free host memory, raise the memory limit, or vm.overcommit_memory=1), or cut the write load while it runs.".into());
    }
    if steps.is_empty() {
        return;
    }
    report.urgency = report.urgency.max(Urgency::SameDay);
    let at = usize::from(snapshot.card == CardState::Err && state.causes.aof_rewrite.is_some())
        .min(report.next_steps.len());
    report.next_steps.splice(at..at, steps);
}

/// A failed RDB save is a persistence err of its own (the RedisRDBSaveFailed warning), even
/// while the AOF card is fine.
fn read_rdb_status(snapshot: &Snapshot, report: &mut TargetReport) {
    if snapshot.info.rdb_last_bgsave_status != Some(OpStatus::Err)
        || snapshot.card == CardState::Err
    {
        return;
    }
    report.urgency = report.urgency.max(Urgency::SameDay);
    report.headline.push_str(
        " The last RDB save (BGSAVE) failed: the local restore point is not being refreshed.",
    );
    report.next_steps.push("Find why BGSAVE failed in the Redis log (disk space, fork headroom, a killed child), fix it, then run BGSAVE and confirm rdb_last_bgsave_status returns to ok.".into());
}

/// [`read`], with the target's Last Successful Backup from `backups`.
pub fn read_with_backup(state: &TargetState, backups: &Board, now_unix: f64) -> TargetReport {
    let mut report = read(state, now_unix);
    let status = backups.get(&state.target.name);
    let backup = backup::describe(status.as_ref(), now_unix);
    // The card's sibling: AOF err plus a stale backup is a real durability gap.
    if report.card == Some(CardState::Err) && backup.stale == Some(true) {
        report.urgency = Urgency::Now;
        report
            .context
            .push("The offsite backup is stale too: a real durability gap. Act now.".to_owned());
    }
    report.backup = Some(backup);
    report
}

/// A target with no snapshot: nothing is known about its persistence.
fn read_unreachable(state: &TargetState, report: &mut TargetReport) {
    report.headline = match state.last_failure_reason {
        Some(reason) => format!("Target unreachable ({reason}): its persistence state is unknown."),
        None => "Not polled yet: persistence state unknown.".to_owned(),
    };
    report.next_steps = vec![
        "Check that the Redis process is running and reachable from the exporter.".into(),
        "Until it answers, nothing here says whether its data is durable.".into(),
    ];
}

/// The related fields of the latest snapshot.
fn fields(state: &TargetState, snapshot: &Snapshot, now_unix: f64) -> Fields {
    let info = &snapshot.info;
    let aof = &state.diagnosis.aof;
    let rdb_age = info
        .rdb_last_save_timestamp_seconds
        .map(|at| (now_unix - at as f64).max(0.0));
    Fields {
        aof_enabled: info.aof_enabled,
        aof_write_ok: info.aof_last_write_status.map(|s| s == OpStatus::Ok),
        aof_rewrite_in_progress: info.aof_rewrite_in_progress,
        aof_current_size_bytes: info.aof_current_size_bytes,
        aof_base_size_bytes: info.aof_base_size_bytes,
        aof_growth_ratio: info.aof_growth_ratio(),
        aof_rewrite_overdue: state.aof_rewrite_overdue(snapshot),
        aof_rewrite_stuck: state.aof_rewrite_stuck(snapshot),
        aof_rewrite_failures_in_streak: aof.streak_failures,
        aof_rewrite_transient_recoveries: aof.transient_recoveries_total,
        aof_rewrite_err_since_unix: aof
            .err_since_unix
            .filter(|_| snapshot.card == CardState::Err),
        rdb_last_bgsave_ok: info.rdb_last_bgsave_status.map(|s| s == OpStatus::Ok),
        rdb_last_save_age_seconds: rdb_age,
        rdb_stale: rdb_age.map(|age| age > state.target.rdb_max_age.as_secs_f64()),
        connected_replicas: info.connected_replicas,
        online_replicas: info.replicas.iter().filter(|r| r.state == "online").count(),
        replicas_in_sync: crate::replicas::count_in_sync(info),
        restarted_while_err_unix: state.restarts.restarted_while_err_unix,
        last_load_duration_seconds: state.restarts.last_load.map(|(seconds, _)| seconds),
        memory_used_ratio: info.memory_used_ratio(),
        data_dir_free_bytes: state.free_space.map(|f| f.bytes),
        config_available: state.redis_settings.available(),
    }
}

/// The probable causes found in the Redis log, per mechanism.
fn causes(state: &TargetState) -> Vec<CauseReport> {
    state
        .causes
        .by_mechanism()
        .into_iter()
        .filter_map(|(mechanism, reason)| {
            reason.map(|reason| CauseReport {
                mechanism,
                reason: reason.label(),
                advice: reason.advice(),
            })
        })
        .collect()
}

/// The headline, urgency and next steps for the card's state.
fn read_card(state: &TargetState, snapshot: &Snapshot, report: &mut TargetReport) {
    let info = &snapshot.info;
    let aof = &state.diagnosis.aof;
    match snapshot.card {
        CardState::Ok => {
            report.headline = "ok: the last AOF rewrite finished cleanly.".into();
            report.urgency = Urgency::None;
            if aof.transient_recoveries_total > 0 {
                report.context.push(format!(
                    "{} earlier err(s) cleared on their own after one attempt: worth a glance at the Redis log to confirm the cause was transient.",
                    aof.transient_recoveries_total
                ));
            }
        }
        CardState::NotApplicable => {
            report.headline = "not applicable: AOF is off on this instance, so the rewrite status means nothing (a raw `err` there is stale).".into();
            report.urgency = Urgency::None;
            if info.aof_last_bgrewrite_status == Some(OpStatus::Err) {
                report.context.push("The raw aof_last_bgrewrite_status still says err: a stale value from when AOF was last on, ignored here.".into());
            }
            report
                .context
                .push("Durability here rests on RDB snapshots: watch the last RDB save.".into());
        }
        CardState::Err => {
            // The same split as the alerts: RedisAOFRewriteStuck pages, RedisAOFRewriteFailed
            // is a same-day warning.
            report.urgency = if aof.stuck() {
                Urgency::Now
            } else {
                Urgency::SameDay
            };
            report.headline = if aof.stuck() {
                format!(
                    "err, stuck: the AOF rewrite has failed on {} attempts in a row. It will not heal by itself; the AOF keeps growing uncompacted and a restart would replay a larger, possibly truncated file.",
                    aof.streak_failures
                )
            } else if aof.streak_length_unknown {
                "err: the last AOF rewrite failed. The AOF is not being compacted and keeps growing. It was already failing when first seen, and this server reports no count of failures in a row (nor is its log read: set log_file), so one poll cannot tell a first failure from a stuck one: treat it as possibly stuck until a rewrite succeeds.".into()
            } else {
                "err: the last AOF rewrite failed. The AOF is not being compacted and keeps growing. Seen on one attempt so far; if the next rewrite succeeds it was a transient pinch.".into()
            };
            report.next_steps = rewrite_steps(state.causes.aof_rewrite);
            if report.fields.memory_used_ratio.is_some_and(|r| r > 0.9)
                && state.causes.aof_rewrite.is_none()
            {
                report.context.push("Memory is above 90% of maxmemory: a refused fork() is a likely cause, rather than disk.".into());
            }
        }
    }
}

/// What to do about a failed rewrite, led by the probable cause when the log gave one: the
/// generic order (disk, fork, log) only when nothing is known.
fn rewrite_steps(cause: Option<Reason>) -> Vec<String> {
    let first: &[&str] = match cause {
        Some(Reason::DiskFull) => &[
            "The Redis log says the disk is full: free space on the AOF directory (CONFIG GET dir, then df -h on it). The rewrite needs room for a new base file the size of the dataset while the old files stay.",
        ],
        Some(Reason::ForkFailed) => &[
            "The Redis log says fork() was refused: give it headroom. Set vm.overcommit_memory=1, keep used memory well below host RAM or the container's memory limit, and check the process limit (ulimit -u, a pids cgroup) of the Redis user.",
        ],
        Some(Reason::IoError) => &[
            "The Redis log reports I/O errors on the data directory: check dmesg and the volume's health before retrying; a failing disk will fail the next rewrite too.",
        ],
        Some(Reason::ChildKilled) => &[
            "The Redis log says the rewrite child was killed by a signal: check dmesg for the OOM killer (memory plus the child's copy-on-write must fit the host or container) or an operator's kill.",
        ],
        Some(Reason::Unknown) | None => &[
            "Check free space on the AOF directory (CONFIG GET dir, then df -h on it): a full disk is the most common cause.",
            "Check fork headroom: vm.overcommit_memory should be 1, and used memory should be well below maxmemory and host RAM.",
            "Find the failure line in the Redis log (\"Can't rewrite append only file in background\", \"terminated by signal\", write errors).",
        ],
    };
    first
        .iter()
        .map(|step| (*step).to_owned())
        .chain([
            "Fix the cause, then run BGREWRITEAOF and confirm the card returns to ok and aof_current_size resets toward aof_base_size.".to_owned(),
            "Check aof_last_write_status: a write err means recent writes may not be on disk.".to_owned(),
        ])
        .collect()
}

/// A failing AOF write outranks everything else on the card: writes may be lost.
fn read_write_status(snapshot: &Snapshot, report: &mut TargetReport) {
    let info = &snapshot.info;
    let write_failed =
        info.aof_enabled == Some(true) && info.aof_last_write_status == Some(OpStatus::Err);
    if write_failed {
        report.urgency = Urgency::Now;
        report.headline.push_str(" AOF WRITES ARE FAILING: recent writes may not have reached disk (data-loss risk); this is more severe than a failed rewrite.");
        report.next_steps.insert(0, "Act now on aof_last_write_status:err: free space or fix the volume so appends reach disk again.".into());
    }
}

/// What still holds the data while the rewrite fails: an RDB save, live replicas. The same
/// split as RedisDurabilityGap: it pages only when no replica is in sync.
fn read_fallbacks(snapshot: &Snapshot, report: &mut TargetReport) {
    let info = &snapshot.info;
    let online_replicas = report.fields.online_replicas;
    let in_sync = report.fields.replicas_in_sync.unwrap_or(0);
    match (report.fields.rdb_stale, info.rdb_last_bgsave_status) {
        (Some(true), _) | (_, Some(OpStatus::Err)) if in_sync > 0 => {
            report.urgency = report.urgency.max(Urgency::SameDay);
            report.context.push(
                "The last RDB save is stale or failed too: no local restore point, but an in-sync replica still holds a live copy; fix it today.".into(),
            );
        }
        (Some(true), _) | (_, Some(OpStatus::Err)) => {
            report.urgency = Urgency::Now;
            report.context.push(
                "The last RDB save is stale or failed too, and no replica is in sync: a real durability gap; act fast.".into(),
            );
        }
        (Some(false), _) => report
            .context
            .push("A recent RDB save exists: a fallback restore point is still there.".into()),
        _ => {}
    }
    if in_sync > 0 {
        report.context.push(format!(
            "{in_sync} replica(s) in sync: the data still has a live copy; fix this anyway, replicas can fail too."
        ));
    } else if online_replicas > 0 {
        report.context.push(format!(
            "{online_replicas} replica(s) online but none in sync (lag over 10 s or far behind): do not count on them as a live copy."
        ));
    } else if report.fields.replicas_in_sync == Some(0) {
        report
            .context
            .push("No replica in sync: this node holds the only live copy of the data.".into());
    }
}

/// The AOF's size and whether Redis's own rewrite threshold is overdue.
fn read_aof_size(snapshot: &Snapshot, report: &mut TargetReport) {
    let info = &snapshot.info;
    if let (Some(size), Some(base)) = (info.aof_current_size_bytes, info.aof_base_size_bytes) {
        report.context.push(format!(
            "AOF {} (base {}).",
            human_bytes(size),
            human_bytes(base)
        ));
    }
    if report.fields.aof_rewrite_overdue == Some(true) {
        report.context.push("The AOF is past this instance's own rewrite threshold and no rewrite runs: it is not being compacted.".into());
    }
}

/// Plain-text rendering for a terminal.
pub fn to_text(report: &TargetReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: Last AOF Rewrite Status = {}",
        report.target,
        report.card_label()
    );
    let _ = writeln!(out, "  {}", report.headline);
    if let Some(backup) = &report.backup {
        let _ = writeln!(out, "  {}", backup.line);
    }
    let _ = writeln!(
        out,
        "  urgency: {}",
        match report.urgency {
            Urgency::None => "none",
            Urgency::Low => "low",
            Urgency::SameDay => "same day",
            Urgency::Now => "now",
        }
    );
    let f = &report.fields;
    if report.up {
        let yes_no = |v: Option<bool>, yes: &str, no: &str| match v {
            Some(true) => yes.to_owned(),
            Some(false) => no.to_owned(),
            None => "unknown".to_owned(),
        };
        let _ = writeln!(
            out,
            "  aof write: {}, rewrite stuck: {}, failed attempts in streak: {}, transient recoveries: {}",
            yes_no(f.aof_write_ok, "ok", "ERR"),
            if f.aof_rewrite_stuck { "yes" } else { "no" },
            f.aof_rewrite_failures_in_streak,
            f.aof_rewrite_transient_recoveries,
        );
        if let Some(ratio) = f.aof_growth_ratio {
            let _ = writeln!(out, "  aof growth: {ratio:.2}x base");
        }
        let _ = writeln!(
            out,
            "  last RDB save: {} ({}), replicas online: {}/{}",
            f.rdb_last_save_age_seconds
                .map(|age| format!(
                    "{} ago",
                    humantime::format_duration(std::time::Duration::from_secs(age as u64))
                ))
                .unwrap_or_else(|| "unknown".into()),
            yes_no(f.rdb_last_bgsave_ok, "ok", "ERR"),
            f.online_replicas,
            f.connected_replicas.unwrap_or(0),
        );
    }
    for cause in &report.causes {
        let _ = writeln!(
            out,
            "  probable cause ({}): {} — {}",
            cause.mechanism, cause.reason, cause.advice
        );
    }
    for line in &report.context {
        let _ = writeln!(out, "  note: {line}");
    }
    for (i, step) in report.next_steps.iter().enumerate() {
        let _ = writeln!(out, "  {}. {step}", i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    /// Maps a reason back from its label.
    fn reason_from_label(label: &str) -> Option<Reason> {
        [
            Reason::DiskFull,
            Reason::ForkFailed,
            Reason::IoError,
            Reason::ChildKilled,
            Reason::Unknown,
        ]
        .into_iter()
        .find(|r| r.label() == label)
    }

    use super::*;
    use crate::cause::Reason;
    use crate::info::parse;
    use crate::state::Snapshot;
    use crate::target::Target;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    fn state_from(files: &[&str]) -> TargetState {
        let target = Target {
            rdb_max_age: Duration::from_secs(3600),
            ..Target::for_tests("t")
        };
        let mut state = TargetState::new(Arc::new(target));
        for file in files {
            let path = format!(
                "{}/tests/data/info/reference/{file}",
                env!("CARGO_MANIFEST_DIR")
            );
            let info = parse(&std::fs::read_to_string(path).unwrap()).unwrap();
            state.record_success(
                Snapshot::new(info, SystemTime::now()),
                Duration::from_millis(1),
                None,
            );
        }
        state
    }

    #[test]
    fn ok_card_reads_ok() {
        let report = read(&state_from(&["aof_ok_before.txt"]), 1.0e10);
        assert_eq!(report.card_label(), "ok");
        assert_eq!(report.urgency, Urgency::None);
    }

    #[test]
    fn stuck_err_says_so_and_gives_steps() {
        let report = read(&state_from(&["aof_rewrite_killed_x3_err.txt"]), 1.0e10);
        assert_eq!(report.card_label(), "err");
        assert!(report.fields.aof_rewrite_stuck);
        assert!(report.headline.contains("stuck"), "{}", report.headline);
        assert!(report.next_steps.iter().any(|s| s.contains("BGREWRITEAOF")));
        assert!(to_text(&report).contains("Last AOF Rewrite Status = err"));
    }

    #[test]
    fn stuck_pages_like_its_alert_and_a_first_failure_waits_a_day() {
        let stuck = read(&state_from(&["aof_rewrite_killed_x3_err.txt"]), 1.0e10);
        assert_eq!(
            stuck.urgency,
            Urgency::Now,
            "RedisAOFRewriteStuck is critical"
        );
        let state = state_from(&["aof_rewrite_killed_err.txt"]);
        // Just after the last RDB save: a stale save would make it urgent on its own.
        let saved = state
            .latest
            .as_ref()
            .unwrap()
            .info
            .rdb_last_save_timestamp_seconds;
        let once = read(&state, saved.unwrap() as f64 + 10.0);
        assert_eq!(
            once.urgency,
            Urgency::SameDay,
            "RedisAOFRewriteFailed is a warning"
        );
        assert!(once.persistence_err());
    }

    #[test]
    fn an_err_of_unknown_length_is_not_called_a_first_failure() {
        // Redis 6.2 has no aof_rewrites_consecutive_failures: one poll of an err cannot tell
        // how long it has lasted.
        let path = format!(
            "{}/tests/data/info/redis-6.2/aof_rewrite_killed_err.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        let info = parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut state = state_from(&[]);
        state.record_success(Snapshot::new(info, SystemTime::now()), Duration::ZERO, None);
        let report = read(&state, 1.0e10);
        assert_eq!(report.card_label(), "err");
        assert!(
            !report.headline.contains("Seen on one attempt"),
            "{}",
            report.headline
        );
        assert!(
            report.headline.contains("cannot tell"),
            "{}",
            report.headline
        );
    }

    #[test]
    fn the_steps_lead_with_the_probable_cause() {
        let mut state = state_from(&["aof_rewrite_killed_err.txt"]);
        state.latest.as_mut().unwrap().info.aof_current_size_bytes = Some(1 << 20);
        state.causes.aof_rewrite = Some(Reason::ChildKilled);
        let report = read(&state, 1.0e10);
        assert!(
            report.next_steps[0].contains("killed"),
            "{:?}",
            report.next_steps
        );
        assert!(!report.next_steps.iter().any(|s| s.contains("free space")));
        state.causes.aof_rewrite = Some(Reason::DiskFull);
        assert!(read(&state, 1.0e10).next_steps[0].contains("disk is full"));
        state.causes.aof_rewrite = None;
        assert!(read(&state, 1.0e10).next_steps[0].contains("free space"));
    }

    #[test]
    fn a_rewrite_predicted_not_to_fit_says_so_first() {
        let mut state = state_from(&["aof_ok_before.txt"]);
        state.latest.as_mut().unwrap().info.aof_current_size_bytes = Some(1 << 20);
        let needed = 1 << 20;
        state.free_space = Some(crate::cause::FreeSpace {
            bytes: needed * 4,
            inodes: 100,
        });
        let report = read(&state, 1.0e10);
        assert!(report.next_steps.is_empty(), "{:?}", report.next_steps);
        assert_eq!(report.urgency, Urgency::None);

        state.free_space = Some(crate::cause::FreeSpace {
            bytes: needed / 2,
            inodes: 100,
        });
        let report = read(&state, 1.0e10);
        assert_eq!(report.card_label(), "ok");
        assert_eq!(report.urgency, Urgency::SameDay);
        assert!(
            report.next_steps[0].contains("predicted not to fit"),
            "{:?}",
            report.next_steps
        );
        assert!(report
            .context
            .iter()
            .any(|c| c.starts_with("Predicted: the next AOF rewrite")));

        // A failed rewrite whose cause the log gave keeps that cause first.
        let mut state = state_from(&["aof_rewrite_killed_err.txt"]);
        state.latest.as_mut().unwrap().info.aof_current_size_bytes = Some(1 << 20);
        state.causes.aof_rewrite = Some(Reason::ChildKilled);
        state.free_space = Some(crate::cause::FreeSpace {
            bytes: 0,
            inodes: 0,
        });
        let report = read(&state, 1.0e10);
        assert!(
            report.next_steps[0].contains("killed"),
            "{:?}",
            report.next_steps
        );
        assert!(report.next_steps[1].contains("predicted not to fit"));
    }

    #[test]
    fn a_fork_at_risk_says_so_first() {
        let mut state = state_from(&["aof_ok_before.txt"]);
        state.latest.as_mut().unwrap().info.aof_last_cow_size_bytes = Some(1 << 20);
        state.host_memory = Some(crate::host::HostMemory {
            mem_available_bytes: Some(1 << 19),
            ..Default::default()
        });
        let report = read(&state, 1.0e10);
        assert!(
            report.next_steps[0].contains("fork"),
            "{:?}",
            report.next_steps
        );
        assert!(report.context.iter().any(|c| c.contains("MemAvailable")));
    }

    #[test]
    fn a_failed_rdb_save_is_a_persistence_err_with_the_aof_card_ok() {
        let report = read(&state_from(&["rdb_bgsave_killed_err.txt"]), 1.0e10);
        assert_ne!(report.card_label(), "err");
        assert!(report.persistence_err());
        assert!(report.urgency >= Urgency::SameDay);
        assert!(report.headline.contains("RDB save"), "{}", report.headline);
    }

    #[test]
    fn disabled_with_stale_err_is_not_applicable() {
        let report = read(&state_from(&["aof_disabled_stale_err.txt"]), 1.0e10);
        assert_eq!(report.card_label(), "not_applicable");
        assert_eq!(report.urgency, Urgency::None);
        assert!(report.context.iter().any(|c| c.contains("stale")));
    }

    #[test]
    fn write_err_is_urgent_now() {
        let report = read(&state_from(&["aof_diskfull_write_err.txt"]), 1.0e10);
        assert_eq!(report.urgency, Urgency::Now);
        assert!(report.headline.contains("WRITES ARE FAILING"));
    }

    #[test]
    fn down_target_is_unknown() {
        let mut state = state_from(&[]);
        state.record_failure("refused", Duration::from_millis(1));
        let report = read(&state, 1.0);
        assert_eq!(report.card_label(), "unknown");
        assert!(report.headline.contains("refused"));
        assert_eq!(reason_from_label("disk_full"), Some(Reason::DiskFull));
    }
}
