//! Whether the data outlives a failure: a restart while the card was err and the load that
//! followed, and the replicas that hold a live copy. Rendered after the snapshot series.

use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{info, SeriesSpec};

/// The series, in render order.
pub(super) static SERIES: &[SeriesSpec] = &[
        series!("redis_restart_while_err_timestamp", Gauge, Some(Unit::Seconds),
            "Unix time the server last started while the AOF rewrite card was err (a new run_id); absent when its latest restart was not during an err. Pair with redis_last_load_duration_seconds: an uncompacted AOF replays slowly.",
            |_, t| t.restarts.restarted_while_err_unix),
        series!("redis_last_load_duration", Gauge, Some(Unit::Seconds),
            "How long the server's latest startup load (AOF or RDB) took: from its log line (log_file), else from polls that saw loading:1 (an upper bound within one poll interval). Absent until a load was seen.",
            |_, t| t.restarts.last_load.map(|(seconds, _)| seconds)),
        series!("redis_replicas_in_sync", Gauge, None,
            "Replicas holding a live copy of this server's data: link online, last ack at most 10 s ago, and at most 1 MiB of replication stream unacknowledged (INFO replication).",
            |s, _| crate::replicas::count_in_sync(info(s)).map(|n| n as f64)),
];
