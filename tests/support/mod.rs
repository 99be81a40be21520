//! The one test harness: every process an integration test starts goes through here.
//!
//! # Layout
//! - [`process`]: the process owner ([`Proc`], killed and reaped on drop), the one
//!   spawn-and-retry loop ([`start_on_free_port`]) and waiting on conditions with deadlines.
//! - [`server`]: which server release to run ([`Server`]).
//! - [`redis`]: the one Redis launcher ([`RedisSpec`] → [`Redis`]): AOF/RDB, TLS, unix
//!   socket, another uid, data dir anywhere (a [`Tmpfs`]), password, redis.conf lines.
//! - [`redis_faults`]: driving real faults in a running [`Redis`].
//! - [`resp`]: a RESP client and encoding; [`fake_redis`]: a fake server that misbehaves.
//! - [`dashboard`]: the dashboards' panels and queries, variables filled as Grafana does.
//! - [`exporter`]: the exporter binary, its config, run to completion or served.
//! - [`exposition`]: the one exposition parser and matching rule.
//! - [`prometheus`]: Prometheus and Alertmanager.
//! - [`chromium`]: headless Chromium, for the DOM and screenshots of the status pages.
//! - [`http`], [`pki`], [`tmpfs`], [`findings`]: small helpers, one copy each.
//!
//! Waiting is always for a condition polled up to a deadline; a timeout panics with what was
//! awaited and the last evidence. Nothing asserts on speed.

// Each test binary uses a different subset of the harness.
#![allow(dead_code, unused_imports)]

pub mod chromium;
pub mod dashboard;
pub mod exporter;
pub mod exposition;
pub mod fake_redis;
pub mod findings;
pub mod http;
pub mod pki;
pub mod process;
pub mod prometheus;
pub mod redis;
pub mod redis_faults;
pub mod resp;
pub mod server;
pub mod tmpfs;
pub mod topology;

pub use dashboard::*;
pub use exporter::*;
pub use exposition::*;
pub use fake_redis::{Behavior, FakeRedis};
pub use findings::{saved_fuzz_findings, Findings};
pub use http::*;
pub use pki::*;
pub use process::*;
pub use prometheus::*;
pub use redis::*;
pub use redis_faults::*;
pub use resp::*;
pub use server::Server;
pub use tmpfs::Tmpfs;
pub use topology::*;

/// The repository root.
pub fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
