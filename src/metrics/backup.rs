//! The Last Successful Backup series, from the backup board: present for every target with a
//! backup source whether or not its Redis answers, since the backup lives elsewhere.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::with_label;
use crate::backup::{BackupStatus, Board, Reason};
use crate::state::TargetState;

type Read = fn(&BackupStatus) -> Option<f64>;

/// Per-target gauges: name (without unit), help, unit, value.
static BACKUP_SERIES: &[(&str, &str, Option<Unit>, Read)] = &[
    (
        "redis_backup_up",
        "1 if the last read of this target's backup source succeeded, 0 if it failed (see redis_backup_check_failures_total); absent until the first read ends.",
        None,
        |b| b.up().map(|up| if up { 1.0 } else { 0.0 }),
    ),
    (
        "redis_backup_last_success_timestamp",
        "Unix time the newest backup was written (file mtime, object last-modified). Kept when a later read fails; absent while no backup was ever found.",
        Some(Unit::Seconds),
        |b| b.newest.map(|f| f.modified_unix),
    ),
    (
        "redis_backup_size",
        "Size of the newest backup.",
        Some(Unit::Bytes),
        |b| b.newest.map(|f| f.size_bytes as f64),
    ),
    (
        "redis_backup_max_age",
        "Configured age after which the newest backup counts as stale (backup max_age).",
        Some(Unit::Seconds),
        |b| Some(b.source.max_age.as_secs_f64()),
    ),
];

/// Encodes the backup series of `targets` that have a backup source on `board`.
pub(super) fn encode(
    encoder: &mut DescriptorEncoder,
    targets: &[std::sync::MutexGuard<'_, TargetState>],
    board: &Board,
) -> Result<(), std::fmt::Error> {
    board.with_all(|statuses| {
        let with_source: Vec<_> = targets
            .iter()
            .filter_map(|t| Some((t.labels.as_slice(), statuses.get(&t.target.name)?)))
            .collect();
        if with_source.is_empty() {
            return Ok(());
        }
        for (name, help, unit, read) in BACKUP_SERIES {
            let mut family =
                encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
            for (labels, status) in &with_source {
                if let Some(value) = read(status) {
                    ConstGauge::new(value).encode(family.encode_family(labels)?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "redis_backup_check_failures",
            "Failed reads of the backup source by reason: auth (credentials or permission refused), not_found (bucket, directory or any backup missing), timeout, io, other.",
            None,
            MetricType::Counter,
        )?;
        for (labels, status) in &with_source {
            for reason in Reason::ALL {
                let count = status.failures_total.get(&reason).copied().unwrap_or(0);
                let labels = with_label(labels, "reason", reason.label());
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    })
}
