//! The exporter's own series: its polls, the poll-duration histogram, its targets and build,
//! and the `process_*` series every official Prometheus client exports.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{with_label, SELF_PREFIX};
use crate::state::{DurationHistogram, TargetState};

/// The exporter's own series. `fleet_durations` is the one poll-duration histogram of all
/// targets; without it (`per_target_poll_duration_histogram`) each target has its own.
pub(super) fn encode_self_metrics(
    encoder: &mut DescriptorEncoder,
    targets: &[std::sync::MutexGuard<'_, TargetState>],
    fleet_durations: Option<&DurationHistogram>,
) -> Result<(), std::fmt::Error> {
    let name = |suffix: &str| format!("{SELF_PREFIX}_{suffix}");
    {
        let n = name("polls");
        let mut family = encoder.encode_descriptor(
            &n,
            "Polls attempted per target, successful or not.",
            None,
            MetricType::Counter,
        )?;
        for t in targets {
            ConstCounter::new(t.polls_total).encode(family.encode_family(&t.labels)?)?;
        }
    }
    {
        let n = name("poll_failures");
        let mut family = encoder.encode_descriptor(
            &n,
            "Failed polls per target by reason (timeout, refused, auth, permission, tls, protocol, server_error, io, parse, password_file, reply_too_large).",
            None,
            MetricType::Counter,
        )?;
        for t in targets {
            for (reason, count) in &t.failures_total {
                let labels = with_label(&t.labels, "reason", reason);
                ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
            }
        }
    }
    {
        let n = name("last_poll_failed");
        let mut family = encoder.encode_descriptor(
            &n,
            "1 with the reason of the last poll when it failed; absent while the target is up.",
            None,
            MetricType::Gauge,
        )?;
        for t in targets {
            let Some(reason) = t.last_failure_reason else {
                continue;
            };
            let labels = with_label(&t.labels, "reason", reason);
            ConstGauge::new(1).encode(family.encode_family(&labels)?)?;
        }
    }
    {
        let n = name("last_successful_poll_timestamp");
        let mut family = encoder.encode_descriptor(
            &n,
            "Unix time of the last successful poll of this target.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for t in targets {
            let Some(at) = t.last_success_unix() else {
                continue;
            };
            ConstGauge::new(at).encode(family.encode_family(&t.labels)?)?;
        }
    }
    {
        let n = name("poll_duration");
        let mut family = encoder.encode_descriptor(
            &n,
            "Time one poll took, connecting included: all targets' polls, or each target's with per_target_poll_duration_histogram.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        if let Some(fleet) = fleet_durations {
            let (buckets, sum, count) = fleet.buckets();
            family.encode_histogram::<Vec<(String, String)>>(sum, count, &buckets, None)?;
        }
        for t in targets.iter().filter(|_| fleet_durations.is_none()) {
            let (buckets, sum, count) = t.poll_duration.buckets();
            family
                .encode_family(&t.labels)?
                .encode_histogram::<Vec<(String, String)>>(sum, count, &buckets, None)?;
        }
    }
    {
        let n = name("targets");
        let family = encoder.encode_descriptor(
            &n,
            "Number of configured targets.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(targets.len() as i64).encode(family)?;
    }
    let n = name("build");
    let mut family = encoder.encode_descriptor(
        &n,
        "Build of the exporter; always 1.",
        None,
        MetricType::Info,
    )?;
    family.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
    Ok(())
}

/// The `process_*` series every official Prometheus client exports, under the same names.
pub(super) fn encode_process(
    encoder: &mut DescriptorEncoder,
    process: &crate::process::ProcessStats,
) -> Result<(), std::fmt::Error> {
    let int = |value: Option<u64>| value.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    if let Some(cpu) = process.cpu_seconds {
        let family = encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent in seconds.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        ConstCounter::new(cpu).encode(family)?;
    }
    let gauges = [
        (
            "process_resident_memory",
            "Resident memory size in bytes.",
            Some(Unit::Bytes),
            int(process.resident_memory_bytes),
        ),
        (
            "process_virtual_memory",
            "Virtual memory size in bytes.",
            Some(Unit::Bytes),
            int(process.virtual_memory_bytes),
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            None,
            int(process.open_fds),
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors.",
            None,
            int(process.max_fds),
        ),
    ];
    for (name, help, unit, value) in gauges {
        let Some(value) = value else { continue };
        let family = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
        ConstGauge::new(value).encode(family)?;
    }
    if let Some(start) = process.start_time_seconds {
        let family = encoder.encode_descriptor(
            "process_start_time",
            "Start time of the process since unix epoch in seconds.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        ConstGauge::new(start).encode(family)?;
    }
    Ok(())
}
