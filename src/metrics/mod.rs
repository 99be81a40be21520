//! Maps state to series. Nothing here keeps state of its own, and the only I/O is reading the
//! exporter's own `/proc/self` for the `process_*` series.
//!
//! Each INFO-backed series is one row of [`SNAPSHOT_SERIES`]: its name, type, unit, help and
//! how to read it from a snapshot. Changing a metric means changing its row. A target whose
//! last poll failed shows `redis_up 0` and its self-metrics only: its last known persistence
//! values are not presented as current.

mod backup;
mod own;

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::card::CardState;
use crate::info::{Info, OpStatus};
use crate::state::{Snapshot, Store, TargetState};

/// The Content-Type of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prefix of the exporter's own metrics.
const SELF_PREFIX: &str = "redis_persistence_exporter";

/// How a series reads its value from a snapshot and its target.
type Read = fn(&Snapshot, &TargetState) -> Option<f64>;

/// One INFO-backed series.
struct SeriesSpec {
    /// Name without unit or `_total` suffix; the encoder adds those.
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    unit: Option<Unit>,
    read: Read,
}

fn flag(value: Option<bool>) -> Option<f64> {
    value.map(|v| if v { 1.0 } else { 0.0 })
}

fn status(value: Option<OpStatus>) -> Option<f64> {
    value.map(|s| if s == OpStatus::Ok { 1.0 } else { 0.0 })
}

fn num(value: Option<u64>) -> Option<f64> {
    value.map(|v| v as f64)
}

fn info(snapshot: &Snapshot) -> &Info {
    &snapshot.info
}

macro_rules! series {
    ($name:literal, $kind:ident, $unit:expr, $help:literal, $read:expr) => {
        SeriesSpec {
            name: $name,
            help: $help,
            kind: MetricType::$kind,
            unit: $unit,
            read: $read,
        }
    };
}

mod continuity;

/// Every series read straight from a snapshot, in render order.
static SNAPSHOT_SERIES: &[SeriesSpec] = &[
        series!("redis_aof_enabled", Gauge, None,
            "1 if AOF persistence is on (aof_enabled).",
            |s, _| flag(info(s).aof_enabled)),
        series!("redis_aof_rewrite_in_progress", Gauge, None,
            "1 while a background AOF rewrite runs (aof_rewrite_in_progress).",
            |s, _| flag(info(s).aof_rewrite_in_progress)),
        series!("redis_aof_rewrite_scheduled", Gauge, None,
            "1 when a rewrite waits for a running RDB save to end (aof_rewrite_scheduled).",
            |s, _| flag(info(s).aof_rewrite_scheduled)),
        series!("redis_aof_last_bgrewrite_status", Gauge, None,
            "Raw aof_last_bgrewrite_status: 1 ok, 0 err. Stale while AOF is off; alert on redis_aof_rewrite_state instead.",
            |s, _| status(info(s).aof_last_bgrewrite_status)),
        series!("redis_aof_last_write_status", Gauge, None,
            "aof_last_write_status: 1 ok, 0 err. Err means recent writes may not be on disk.",
            |s, _| status(info(s).aof_last_write_status)),
        series!("redis_aof_current_size", Gauge, Some(Unit::Bytes),
            "Current AOF size (aof_current_size); absent while AOF is off.",
            |s, _| num(info(s).aof_current_size_bytes)),
        series!("redis_aof_base_size", Gauge, Some(Unit::Bytes),
            "AOF size after the last successful rewrite (aof_base_size); absent while AOF is off.",
            |s, _| num(info(s).aof_base_size_bytes)),
        series!("redis_aof_last_cow_size", Gauge, Some(Unit::Bytes),
            "Copy-on-write memory used by the last AOF rewrite (aof_last_cow_size).",
            |s, _| num(info(s).aof_last_cow_size_bytes)),
        series!("redis_aof_rewrites", Counter, None,
            "AOF rewrites started since the server started (aof_rewrites, Redis 7.0+).",
            |s, _| num(info(s).aof_rewrites)),
        series!("redis_aof_rewrites_consecutive_failures", Gauge, None,
            "Failed AOF rewrites in a row as Redis counts them (aof_rewrites_consecutive_failures, Redis 7.0+).",
            |s, _| num(info(s).aof_rewrites_consecutive_failures)),
        series!("redis_aof_last_rewrite_duration", Gauge, Some(Unit::Seconds),
            "Duration of the last AOF rewrite (aof_last_rewrite_time_sec); absent if none ran.",
            |s, _| num(info(s).aof_last_rewrite_duration_seconds)),
        series!("redis_aof_rewrite_current_duration", Gauge, Some(Unit::Seconds),
            "How long the running AOF rewrite has run (aof_current_rewrite_time_sec); absent while none runs.",
            |s, _| num(info(s).aof_current_rewrite_duration_seconds)),
        series!("redis_aof_delayed_fsync", Counter, None,
            "fsyncs of appendfsync everysec that had to wait for a slow one still running (aof_delayed_fsync): the disk is not keeping up. Absent while AOF is off.",
            |s, _| num(info(s).aof_delayed_fsync)),
        series!("redis_aof_pending_bio_fsync", Gauge, None,
            "fsync jobs waiting in the background I/O thread (aof_pending_bio_fsync); absent while AOF is off.",
            |s, _| num(info(s).aof_pending_bio_fsync)),
        series!("redis_rdb_last_bgsave_status", Gauge, None,
            "rdb_last_bgsave_status: 1 ok, 0 err.",
            |s, _| status(info(s).rdb_last_bgsave_status)),
        series!("redis_rdb_last_save_timestamp", Gauge, Some(Unit::Seconds),
            "Unix time of the last successful RDB save (rdb_last_save_time).",
            |s, _| num(info(s).rdb_last_save_timestamp_seconds)),
        series!("redis_rdb_changes_since_last_save", Gauge, None,
            "Writes not yet in an RDB snapshot (rdb_changes_since_last_save).",
            |s, _| num(info(s).rdb_changes_since_last_save)),
        series!("redis_rdb_bgsave_in_progress", Gauge, None,
            "1 while a background RDB save runs (rdb_bgsave_in_progress).",
            |s, _| flag(info(s).rdb_bgsave_in_progress)),
        series!("redis_rdb_last_bgsave_duration", Gauge, Some(Unit::Seconds),
            "Duration of the last RDB save (rdb_last_bgsave_time_sec); absent if none ran.",
            |s, _| num(info(s).rdb_last_bgsave_duration_seconds)),
        series!("redis_rdb_last_cow_size", Gauge, Some(Unit::Bytes),
            "Copy-on-write memory used by the last RDB save (rdb_last_cow_size).",
            |s, _| num(info(s).rdb_last_cow_size_bytes)),
        series!("redis_rdb_bgsave_current_duration", Gauge, Some(Unit::Seconds),
            "How long the running RDB save has run (rdb_current_bgsave_time_sec); absent while none runs.",
            |s, _| num(info(s).rdb_current_bgsave_duration_seconds)),
        series!("redis_rdb_bgsave_attempts", Counter, None,
            "RDB save attempts since the server started (rdb_saves, Redis 7.0+): counts attempts, not successful saves; a refused fork, a killed child and a foreground SAVE each add one.",
            |s, _| num(info(s).rdb_saves)),
        series!("redis_fork_child_cow_size", Gauge, Some(Unit::Bytes),
            "Copy-on-write memory of the running fork child so far (current_cow_size); 0 when no child runs.",
            |s, _| num(info(s).current_cow_size_bytes)),
        series!("redis_fork_child_cow_peak", Gauge, Some(Unit::Bytes),
            "Peak copy-on-write memory of the running fork child (current_cow_peak, Redis 7.0+); 0 when no child runs.",
            |s, _| num(info(s).current_cow_peak_bytes)),
        series!("redis_fork_child_progress_ratio", Gauge, None,
            "Progress of the running fork child, 0 to 1 (current_fork_perc / 100); 0 when no child runs.",
            |s, _| info(s).current_fork_perc.map(|perc| perc / 100.0)),
        series!("redis_fork_child_keys_processed", Gauge, None,
            "Keys the running fork child has written (current_save_keys_processed); 0 when no child runs.",
            |s, _| num(info(s).current_save_keys_processed)),
        series!("redis_fork_child_keys", Gauge, None,
            "Keys the running fork child will write (current_save_keys_total); 0 when no child runs.",
            |s, _| num(info(s).current_save_keys_total)),
        series!("redis_rdb_max_age", Gauge, Some(Unit::Seconds),
            "Configured age after which the last RDB save counts as stale (rdb_max_age).",
            |_, t| Some(t.target.rdb_max_age.as_secs_f64())),
        series!("redis_aof_rewrite_state_since_timestamp", Gauge, Some(Unit::Seconds),
            "Unix time the card last changed state, or when this exporter first saw it.",
            |_, t| t.card_since_unix),
        series!("redis_aof_rewrite_stuck", Gauge, None,
            "1 when the card is err and the failure has survived more than one rewrite attempt; 0 when ok, n/a, or err seen on one attempt only.",
            |s, t| flag(Some(t.aof_rewrite_stuck(s)))),
        series!("redis_aof_rewrite_failed_attempts", Counter, None,
            "Failed AOF rewrite attempts observed by the exporter, including those Redis's own counters miss (failed fork, file open on a full disk).",
            |_, t| Some(t.diagnosis.aof.failed_attempts_total as f64)),
        series!("redis_aof_rewrite_transient_recoveries", Counter, None,
            "Times an AOF rewrite err cleared after a single failed attempt (transient, self-recovered).",
            |_, t| Some(t.diagnosis.aof.transient_recoveries_total as f64)),
        series!("redis_aof_rewrite_err_since_timestamp", Gauge, Some(Unit::Seconds),
            "Unix time the current AOF rewrite err was first seen; absent unless the card is err.",
            |s, t| t.diagnosis.aof.err_since_unix.filter(|_| s.card == CardState::Err)),
        series!("redis_aof_growth_ratio", Gauge, None,
            "aof_current_size / aof_base_size; Redis rewrites automatically at 1 + auto-aof-rewrite-percentage/100.",
            |s, _| info(s).aof_growth_ratio()),
        series!("redis_aof_rewrite_overdue", Gauge, None,
            "1 when the AOF is past the size at which auto-aof-rewrite-percentage and auto-aof-rewrite-min-size say Redis should have rewritten it and no rewrite is running: it is not being compacted. Needs CONFIG GET.",
            |s, t| flag(t.aof_rewrite_overdue(s))),
        series!("redis_rdb_bgsave_stuck", Gauge, None,
            "1 when rdb_last_bgsave_status is err and the failure has survived more than one save attempt.",
            |s, t| flag(Some(info(s).rdb_last_bgsave_status == Some(OpStatus::Err) && t.diagnosis.rdb.stuck()))),
        series!("redis_rdb_bgsave_failed_attempts", Counter, None,
            "Failed RDB background save attempts observed by the exporter.",
            |_, t| Some(t.diagnosis.rdb.failed_attempts_total as f64)),
        series!("redis_rdb_bgsave_transient_recoveries", Counter, None,
            "Times an RDB save err cleared after a single failed attempt.",
            |_, t| Some(t.diagnosis.rdb.transient_recoveries_total as f64)),
        series!("redis_rdb_bgsave_err_since_timestamp", Gauge, Some(Unit::Seconds),
            "Unix time the current RDB save err was first seen; absent unless it is err.",
            |s, t| t.diagnosis.rdb.err_since_unix.filter(|_| info(s).rdb_last_bgsave_status == Some(OpStatus::Err))),
        series!("redis_config_available", Gauge, None,
            "1 if CONFIG GET works on this target, 0 if it is renamed, disabled or denied; absent until tried or when turned off.",
            |_, t| flag(t.redis_settings.available())),
        series!("redis_config_appendonly", Gauge, None,
            "The appendonly setting (CONFIG GET): 1 yes, 0 no.",
            |_, t| flag(t.redis_settings.settings()?.appendonly)),
        series!("redis_config_aof_rewrite_percentage", Gauge, None,
            "auto-aof-rewrite-percentage (CONFIG GET); 0 disables automatic rewrites.",
            |_, t| num(t.redis_settings.settings()?.aof_rewrite_percentage)),
        series!("redis_config_aof_rewrite_min_size", Gauge, Some(Unit::Bytes),
            "auto-aof-rewrite-min-size (CONFIG GET).",
            |_, t| num(t.redis_settings.settings()?.aof_rewrite_min_size_bytes)),
        series!("redis_persistence_dir_free", Gauge, Some(Unit::Bytes),
            "Free bytes on the filesystem of the Redis data directory (data_dir; host access only).",
            |_, t| num(t.free_space.map(|f| f.bytes))),
        series!("redis_persistence_dir_free_inodes", Gauge, None,
            "Free inodes on the filesystem of the Redis data directory (data_dir; host access only).",
            |_, t| num(t.free_space.map(|f| f.inodes))),
        // Predicting the failure (sidecar mode; src/headroom.rs has the estimate and its bounds).
        series!("redis_aof_next_rewrite_needed", Gauge, Some(Unit::Bytes),
            "Upper-bound estimate of the disk the next AOF rewrite needs: the dataset as RDB (aof_current_size with AOF on, else used_memory_dataset) plus the writes made during a rewrite; absent while AOF is off.",
            |s, t| num(t.disk_prediction(s)?.rewrite_needed_bytes)),
        series!("redis_aof_next_rewrite_fits", Gauge, None,
            "1 if redis_aof_next_rewrite_needed_bytes fits in the data volume's free space, 0 if the next rewrite is predicted to fail for disk.",
            |s, t| flag(t.disk_prediction(s)?.rewrite_fits())),
        series!("redis_rdb_next_bgsave_needed", Gauge, Some(Unit::Bytes),
            "Upper-bound estimate of the disk the next BGSAVE needs (the dataset as RDB).",
            |s, t| num(t.disk_prediction(s).map(|p| p.bgsave_needed_bytes))),
        series!("redis_rdb_next_bgsave_fits", Gauge, None,
            "1 if redis_rdb_next_bgsave_needed_bytes fits in the data volume's free space, else 0.",
            |s, t| flag(t.disk_prediction(s).map(|p| p.bgsave_fits()))),
        series!("redis_fork_headroom_ratio", Gauge, None,
            "Room over need for the next fork under the tightest host limit: commit limit left / used_memory_rss (overcommit_memory=2), MemAvailable and cgroup headroom / last fork's copy-on-write. Below 1: at risk.",
            |s, t| t.fork_headroom(s).map(|h| h.ratio)),
        series!("redis_fork_at_risk", Gauge, None,
            "1 when redis_fork_headroom_ratio < 1: the next fork is likely refused or its child OOM-killed.",
            |s, t| flag(t.fork_headroom(s).map(|h| h.at_risk()))),
        series!("redis_loading_dump_file", Gauge, None,
            "1 while the server loads its AOF or RDB at startup (loading).",
            |s, _| flag(info(s).loading)),
        series!("redis_uptime_in_seconds", Gauge, None,
            "Seconds since the server started (uptime_in_seconds).",
            |s, _| num(info(s).uptime_seconds)),
        series!("redis_memory_used", Gauge, Some(Unit::Bytes),
            "Memory used by Redis (used_memory).",
            |s, _| num(info(s).used_memory_bytes)),
        series!("redis_memory_max", Gauge, Some(Unit::Bytes),
            "maxmemory; 0 means no limit.",
            |s, _| num(info(s).maxmemory_bytes)),
        series!("redis_memory_used_maxmemory_ratio", Gauge, None,
            "used_memory / maxmemory; absent when maxmemory is not set. High values starve the fork a rewrite needs.",
            |s, _| info(s).memory_used_ratio()),
        series!("redis_mem_fragmentation_ratio", Gauge, None,
            "mem_fragmentation_ratio; copy-on-write during a rewrite can raise it.",
            |s, _| info(s).mem_fragmentation_ratio),
        series!("redis_forks", Counter, None,
            "Forks since the server started (total_forks).",
            |s, _| num(info(s).total_forks)),
        series!("redis_latest_fork", Gauge, Some(Unit::Seconds),
            "Duration of the latest fork (latest_fork_usec).",
            |s, _| info(s).latest_fork_usec.map(|us| us as f64 / 1e6)),
        series!("redis_connected_slaves", Gauge, None,
            "Connected replicas (connected_slaves).",
            |s, _| num(info(s).connected_replicas)),
];

/// Renders the whole exposition, ending in `# EOF`.
pub fn render(store: &Arc<Store>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StoreCollector {
        store: store.clone(),
    }));
    let mut out = String::with_capacity(4096 + store.len() * 6144);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// Adapts the store to prometheus-client's scrape-time collection.
#[derive(Debug)]
struct StoreCollector {
    store: Arc<Store>,
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // The fleet's histogram is read before the targets are locked: a poll that ends in
        // between counts in the next scrape, never twice.
        let fleet_durations =
            (!self.store.per_target_poll_duration()).then(|| self.store.poll_durations());
        self.store.with_all(|targets| {
            encode_targets(&mut encoder, targets)?;
            backup::encode(&mut encoder, targets, self.store.backups())?;
            own::encode_self_metrics(&mut encoder, targets, fleet_durations.as_ref())
        })?;
        let reload = self.store.reload_status();
        let name = format!("{SELF_PREFIX}_config_last_reload_successful");
        let family = encoder.encode_descriptor(
            &name,
            "1 if the last config (re)load succeeded; 0 means the previous config is still running.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(reload.last_successful)).encode(family)?;
        let name = format!("{SELF_PREFIX}_config_last_reload_success_timestamp");
        let family = encoder.encode_descriptor(
            &name,
            "Unix time of the last successful config (re)load.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        ConstGauge::new(reload.last_success_unix).encode(family)?;
        own::encode_process(&mut encoder, &crate::process::read())
    }
}

/// A target's labels plus one more, borrowed: rendering a sample allocates nothing.
type WithLabel<'a> = (&'a [(String, String)], [(&'a str, &'a str); 1]);

fn with_label<'a>(labels: &'a [(String, String)], key: &'a str, value: &'a str) -> WithLabel<'a> {
    (labels, [(key, value)])
}

fn encode_targets(
    encoder: &mut DescriptorEncoder,
    targets: &[std::sync::MutexGuard<'_, TargetState>],
) -> Result<(), std::fmt::Error> {
    // redis_up: always present for every configured target, so silence never means healthy.
    {
        let mut family = encoder.encode_descriptor(
            "redis_up",
            "1 if the last poll of this target succeeded, else 0.",
            None,
            MetricType::Gauge,
        )?;
        for t in targets {
            ConstGauge::new(i64::from(t.up)).encode(family.encode_family(&t.labels)?)?;
        }
    }

    // The card, one-hot over its three states.
    {
        let mut family = encoder.encode_descriptor(
            "redis_aof_rewrite_state",
            "The Last AOF Rewrite Status card: exactly one of ok, err, not_applicable is 1. Keys off aof_enabled, so a stale err after AOF is turned off reads not_applicable.",
            None,
            MetricType::Gauge,
        )?;
        for t in targets {
            let Some(snapshot) = t.current() else {
                continue;
            };
            for state in CardState::ALL {
                let labels = with_label(&t.labels, "state", state.label());
                ConstGauge::new(i64::from(snapshot.card == state))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
    }

    for spec in SNAPSHOT_SERIES.iter().chain(continuity::SERIES) {
        let values: Vec<_> = targets
            .iter()
            .filter_map(|t| {
                let snapshot = t.current()?;
                (spec.read)(snapshot, t).map(|v| (&t.labels, v))
            })
            .collect();
        if values.is_empty() {
            continue;
        }
        let mut family =
            encoder.encode_descriptor(spec.name, spec.help, spec.unit.as_ref(), spec.kind)?;
        for (labels, value) in values {
            let sample = family.encode_family(labels)?;
            match spec.kind {
                MetricType::Counter => ConstCounter::new(value).encode(sample)?,
                _ => ConstGauge::new(value).encode(sample)?,
            }
        }
    }

    encode_labelled(encoder, targets)?;
    encode_instance_info(encoder, targets)?;
    encode_replicas(encoder, targets)
}

/// Series whose extra label carries the value: the fsync policy and the probable causes.
fn encode_labelled(
    encoder: &mut DescriptorEncoder,
    targets: &[std::sync::MutexGuard<'_, TargetState>],
) -> Result<(), std::fmt::Error> {
    {
        let mut family = encoder.encode_descriptor(
            "redis_config_appendfsync",
            "The appendfsync policy (CONFIG GET); always 1, the policy is the label.",
            None,
            MetricType::Gauge,
        )?;
        for t in targets {
            if t.current().is_none() {
                continue;
            }
            let Some(policy) = t.redis_settings.settings().and_then(|c| c.appendfsync) else {
                continue;
            };
            let labels = with_label(&t.labels, "policy", policy);
            ConstGauge::new(1).encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "redis_persistence_failure_reason",
        "Probable cause of a current failure, from the Redis log (log_file; host access only): 1 for the reason on the latest matching line.",
        None,
        MetricType::Gauge,
    )?;
    for t in targets {
        if t.current().is_none() {
            continue;
        }
        for (mechanism, reason) in t.causes.by_mechanism() {
            let Some(reason) = reason else { continue };
            let labels = (
                t.labels.as_slice(),
                [("mechanism", mechanism), ("reason", reason.label())],
            );
            ConstGauge::new(1).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn encode_instance_info(
    encoder: &mut DescriptorEncoder,
    targets: &[std::sync::MutexGuard<'_, TargetState>],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "redis_instance",
        "Role, server (redis or valkey) and its real version; always 1. redis_version is the raw field, which Valkey sets to the Redis version it is compatible with (7.2.4).",
        None,
        MetricType::Info,
    )?;
    for t in targets {
        let Some(snapshot) = t.current() else {
            continue;
        };
        let info = &snapshot.info;
        let extra = [
            ("role", info.role.as_deref().unwrap_or_default()),
            ("server", info.server().label()),
            ("version", info.server_version().unwrap_or_default()),
            (
                "redis_version",
                info.redis_version.as_deref().unwrap_or_default(),
            ),
        ];
        // A target may carry a `role` label of its own (cluster and sentinel discovery set
        // one); the series keeps that one rather than repeating the label name.
        let own_role = t.labels.iter().any(|(k, _)| k == "role");
        let extra = &extra[usize::from(own_role)..];
        family.encode_info(&(t.labels.as_slice(), extra))?;
    }
    Ok(())
}

fn encode_replicas(
    encoder: &mut DescriptorEncoder,
    targets: &[std::sync::MutexGuard<'_, TargetState>],
) -> Result<(), std::fmt::Error> {
    {
        let mut family = encoder.encode_descriptor(
            "redis_connected_replica_online",
            "1 if this replica's link is online (state=online in INFO replication).",
            None,
            MetricType::Gauge,
        )?;
        for t in targets {
            let Some(snapshot) = t.current() else {
                continue;
            };
            for replica in &snapshot.info.replicas {
                let labels = with_label(&t.labels, "replica", &replica.address);
                ConstGauge::new(i64::from(replica.state == "online"))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
    }
    let mut family = encoder.encode_descriptor(
        "redis_connected_replica_lag",
        "Seconds since this replica last acknowledged (lag in INFO replication).",
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    for t in targets {
        let Some(snapshot) = t.current() else {
            continue;
        };
        for replica in &snapshot.info.replicas {
            let Some(lag) = replica.lag_seconds else {
                continue;
            };
            let labels = with_label(&t.labels, "replica", &replica.address);
            ConstGauge::new(lag as i64).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Target;
    use std::time::{Duration, SystemTime};

    fn render_captured(server: &str, file: &str) -> String {
        render(&captured_store(server, file))
    }

    fn captured_store(server: &str, file: &str) -> Arc<Store> {
        let store = Arc::new(Store::new());
        let cell = store.insert(Arc::new(Target::for_tests("t")));
        let info = crate::info::parse(&crate::info::tests::captured(server, file)).unwrap();
        crate::state::lock(&cell).record_success(
            Snapshot::new(info, SystemTime::now()),
            Duration::ZERO,
            None,
        );
        store
    }

    #[test]
    fn poll_durations_are_one_histogram_unless_asked_per_target() {
        let store = captured_store("redis-7.0", "healthy_aof_info_everything.txt");
        let text = render(&store);
        assert!(
            text.contains("\nredis_persistence_exporter_poll_duration_seconds_count 1\n"),
            "{text}"
        );
        assert!(!text.contains("redis_persistence_exporter_poll_duration_seconds_count{"));
        store.set_per_target_poll_duration(true);
        let text = render(&store);
        assert!(
            text.contains(
                "redis_persistence_exporter_poll_duration_seconds_count{target=\"t\"} 1\n"
            ),
            "{text}"
        );
        assert!(!text.contains("redis_persistence_exporter_poll_duration_seconds_count 1"));
    }

    #[test]
    fn process_series_follow_the_official_clients_names() {
        let text = render_captured("redis-7.0", "healthy_aof_info_everything.txt");
        for line in [
            "# TYPE process_cpu_seconds counter\n",
            "\nprocess_cpu_seconds_total ",
            "\nprocess_resident_memory_bytes ",
            "\nprocess_virtual_memory_bytes ",
            "\nprocess_open_fds ",
            "\nprocess_max_fds ",
            "\nprocess_start_time_seconds ",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn instance_info_names_the_server_and_its_real_version() {
        let text = render_captured("valkey-9.1", "healthy_aof_info_everything.txt");
        assert!(
            text.contains(r#"redis_instance_info{target="t",role="master",server="valkey",version="9.1.2",redis_version="7.2.4"} 1"#),
            "{text}"
        );
        let text = render_captured("redis-6.2", "healthy_aof_info_everything.txt");
        assert!(
            text.contains(r#"redis_instance_info{target="t",role="master",server="redis",version="6.2.14",redis_version="6.2.14"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn running_child_series() {
        let text = render_captured("redis-7.0", "aof_rewrite_in_progress.txt");
        for line in [
            "redis_aof_rewrite_current_duration_seconds{target=\"t\"} 0",
            "redis_aof_delayed_fsync_total{target=\"t\"} 0",
            "redis_aof_pending_bio_fsync{target=\"t\"} 0",
            "redis_fork_child_keys{target=\"t\"} 20000",
            "# TYPE redis_fork_child_cow_size_bytes gauge",
            "# TYPE redis_fork_child_cow_peak_bytes gauge",
            "# TYPE redis_fork_child_progress_ratio gauge",
            "# TYPE redis_fork_child_keys_processed gauge",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(
            !text.contains("redis_rdb_bgsave_current_duration_seconds{"),
            "-1 (no save running) is absent"
        );
        let text = render_captured("redis-6.2", "aof_rewrite_in_progress.txt");
        assert!(
            !text.contains("redis_fork_child_cow_peak_bytes{"),
            "6.2 has no peak"
        );
    }

    #[test]
    fn rdb_attempts_are_named_and_documented_as_attempts() {
        let text = render_captured("redis-7.0", "rdb_bgsave_killed_err.txt");
        assert!(
            text.contains("# TYPE redis_rdb_bgsave_attempts counter"),
            "{text}"
        );
        assert!(
            text.contains("redis_rdb_bgsave_attempts_total{target=\"t\"} 1"),
            "{text}"
        );
        assert!(text.contains("counts attempts, not successful saves"));
        assert!(!text.contains("redis_rdb_saves"));
    }
}
