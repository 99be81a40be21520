//! redis-persistence-exporter: tells on-call, quickly and truthfully, whether each Redis in a
//! fleet is still durable.
//!
//! # Layout
//! Data flows one way: target → poll → snapshot → render. Each module imports only from the
//! modules listed above it here (`tests/architecture.rs` enforces it).
//!
//! Pure readings, no I/O:
//! - `target`: [`Target`], its address, TLS and password sources, URL parsing.
//! - [`info`]: the `INFO` parser, text in, typed data out.
//! - `shard`: which targets this replica polls when several split a fleet.
//! - `signal`: process signals as futures.
//! - `process`: the exporter's own CPU, memory and descriptors (`process_*`), from `/proc`.
//! - `card`: the Last AOF Rewrite Status card (ok / err / not applicable).
//! - `history`: signals derived across polls (stuck, transient, since when).
//! - `cause`: probable cause from the Redis log and free space, on the Redis host only.
//! - `host`: what the host and cgroup allow a fork (overcommit, meminfo, memory.max).
//! - `headroom`: will the next rewrite or BGSAVE fit on disk, will its fork be allowed.
//! - `redis_settings`: the few Redis settings read with `CONFIG GET`, occasionally.
//! - `restart`: a server restart while the card was err, and how long its load took.
//! - `replicas`: which replicas are in sync, a live copy of the data.
//!
//! The running parts:
//! - `config`: the TOML file and environment, validated into [`Settings`].
//! - `redis`: the only code that knows the Redis client library: connection, relay, TLS.
//! - `discovery`: one `Discovery` for every source of targets (file_sd, Cluster, Sentinel).
//! - `backup`: the Last Successful Backup card: each target's newest backup (file glob or S3
//!   prefix), read by its own task every refresh_interval.
//! - `state`: the latest snapshot per target and the history derived signals need.
//! - `poller`: one task per target; owns its connection, schedule and deadline.
//! - `persist`: the state file, so derived history survives an exporter restart.
//! - `fleet`: the running pollers, following (re)loaded config.
//! - `report`: the Last AOF Rewrite Status card's reading of a target, for people.
//! - `metrics`: maps state to OpenMetrics series.
//! - `check`: the one-shot `check` command.
//! - `http`: serves `/metrics`, `/probe`, the status pages (`/`, `/target`); TLS and basic
//!   auth.
//! - `daemon`: the reload / discovery / shutdown loop.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backup;
mod card;
mod cause;
mod check;
mod config;
mod daemon;
mod discovery;
mod fleet;
mod headroom;
mod history;
mod host;
mod http;
pub mod info;
mod metrics;
mod persist;
mod poller;
mod process;
mod redis;
mod redis_settings;
mod replicas;
mod report;
mod restart;
mod shard;
mod signal;
mod state;
mod target;

pub use check::{exit_code as check_exit_code, run as check_targets, EXIT_CONFIG};
pub use config::{
    from_urls as settings_from_urls, load as load_settings, render_effective, ConfigError,
    FileConfig, Settings,
};
pub use daemon::{run as run_daemon, DaemonError, Reloader};
pub use discovery::offline as with_file_sd_targets;
pub use http::{
    fleet_page as render_status_page, load_web_config, target_page as render_target_page,
    Filter as StatusFilter, FilterError as StatusFilterError, StateFilter, WebConfig, GZIP_LEVEL,
};
pub use metrics::render as render_metrics;
pub use redis::cleanup as remove_relay_sockets;
/// The fuzzer's way into the reply path (shape check, then the client's decoder); panics
/// where the two disagree. Not part of the exporter's interface.
#[doc(hidden)]
pub use redis::fuzz_reply;
pub use report::{to_text as report_text, TargetReport};
pub use shard::ShardError;
pub use state::{lock as lock_target, Snapshot, Store};
pub use target::{Address, PasswordSource, Target};
