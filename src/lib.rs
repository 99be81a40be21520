//! redis-persistence-exporter: tells on-call, quickly and truthfully, whether each Redis in a
//! fleet is still durable.
//!
//! # Layout
//! Data flows one way: target → poll → snapshot → render.
//!
//! - [`config`]: the TOML file and environment, validated into [`config::Settings`].
//! - [`info`]: the pure `INFO` parser, text in, typed data out.
//! - [`card`]: the "Last AOF Rewrite Status" card (ok / err / not applicable).
//! - [`history`]: signals derived across polls (stuck, transient, since when).
//! - [`server_config`]: the few settings read with `CONFIG GET`, occasionally.
//! - [`cause`]: probable cause from the Redis log and free space, on the Redis host only.
//! - [`redis_client`]: the only module that knows the Redis client library.
//! - [`poller`]: one task per target; owns its connection, schedule and deadline.
//! - [`fleet`]: the running pollers, following (re)loaded config.
//! - [`discovery`]: targets from `file_sd` files.
//! - [`redis_discovery`]: targets from Redis Cluster membership and Sentinel topology.
//! - [`shard`]: which targets this replica polls when several split a fleet.
//! - [`state`]: the latest snapshot per target and poll bookkeeping.
//! - [`metrics`]: maps state to OpenMetrics series.
//! - [`report`]: the brief's reading of a target (meaning, urgency, next steps) for people.
//! - [`check`]: the one-shot `check` command.
//! - [`probe`]: the allow-listed `/probe?target=…` endpoint.
//! - [`http`]: serves `/metrics`, `/probe` and the status page.
//! - [`web`]: TLS and basic auth for the exporter's own endpoints (`--web.config.file`).
//! - [`signal`]: process signals as futures.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod card;
pub mod cause;
pub mod check;
pub mod config;
pub mod discovery;
pub mod fleet;
pub mod history;
pub mod http;
pub mod info;
pub mod metrics;
pub mod poller;
pub mod probe;
pub mod redis_client;
pub mod redis_discovery;
pub mod report;
pub mod server_config;
pub mod shard;
pub mod signal;
pub mod state;
pub mod web;
