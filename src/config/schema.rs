//! The shape of the config file: the structs serde reads. Their doc comments are the user
//! documentation of each key; `config/example.toml` shows every one of them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::backup::BackupConfig;
use super::validate::validate_target;
use super::{ConfigError, TargetOrigin, DEFAULT_LISTEN_ADDRESS};
use crate::target::Target;

/// The top level of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// How often each target is polled, as a humantime duration ("5s", "1m"). At least
    /// 100ms. Default 5s.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long one poll may take, connecting included; a longer poll counts as failed with
    /// reason `timeout`. Must not exceed `poll_interval`. Default: 2s, or `poll_interval` if
    /// that is shorter.
    #[serde(default, with = "humantime_serde")]
    pub poll_timeout: Option<Duration>,
    /// Address and port `/metrics` listens on. Default "0.0.0.0:9645".
    /// `--web.listen-address` overrides it.
    #[serde(default = "default_listen_address")]
    pub listen_address: String,
    /// After how long without a successful RDB save a target's backup counts as stale,
    /// exported as `redis_rdb_max_age_seconds` so the `RedisRDBSaveStale` alert can be tuned
    /// here without editing the rule. Each target may override it. Default 24h.
    #[serde(default = "default_rdb_max_age", with = "humantime_serde")]
    pub rdb_max_age: Duration,
    /// How often a poll also reads the sibling sections (server, memory, stats, replication:
    /// memory, uptime, role, replicas, forks). Other polls read `INFO persistence` only, which
    /// costs Redis about 40% as much; the sibling values shown are then from the last full
    /// read. At least poll_interval. Default 30s.
    #[serde(
        default = "default_siblings_refresh_interval",
        with = "humantime_serde"
    )]
    pub siblings_refresh_interval: Duration,
    /// How often the few settings that change what INFO means (`appendonly`, `appendfsync`,
    /// `auto-aof-rewrite-percentage`, `auto-aof-rewrite-min-size`, `dir`) are re-read with
    /// `CONFIG GET`. Rarely, because they rarely change. Default 5m.
    #[serde(default = "default_config_refresh_interval", with = "humantime_serde")]
    pub config_refresh_interval: Duration,
    /// Keep each target's connection open between polls, so a poll is one `INFO` on a warm
    /// connection. `false` opens a connection for every poll and closes it right after: no
    /// descriptor or client memory is held between polls, on the exporter or on Redis, at the
    /// price of the client's connection handshake on every poll (`PING`, `CLIENT ID` and
    /// `INFO server`, plus `AUTH` with credentials: 3-4 more commands), and every poll reads
    /// all the INFO sections, as the first poll of any connection does (a restarted server
    /// is seen on its first poll). Meant for very large fleets polled at long intervals.
    /// Default true.
    #[serde(default = "default_keep_connections")]
    pub keep_connections: bool,
    /// Also export `redis_persistence_exporter_poll_duration_seconds` per target (15 series
    /// each), not only the one histogram of all targets' polls. Off by default: at 1,000
    /// targets the per-target histograms are a quarter of every scrape, spent on the
    /// exporter's own latency. Turn it on to find which targets answer slowly; which ones
    /// time out is in `redis_persistence_exporter_poll_failures_total` either way.
    /// Default false.
    #[serde(default)]
    pub per_target_poll_duration_histogram: bool,
    /// The name of the `CONFIG` command, for servers that rename it. An empty string turns
    /// `CONFIG GET` off. Each target may override it. Default "CONFIG".
    #[serde(default = "default_config_command")]
    pub config_command: String,
    /// Split a fleet across exporter replicas: "k/n" makes this replica poll only the targets
    /// whose name hashes to bucket k of n (jump consistent hash), discovered ones included.
    /// `--shard` overrides it. Default: poll every target.
    pub shard: Option<String>,
    /// Targets read from files in Prometheus's `file_sd` format (JSON or YAML), re-read when
    /// they change. Each `[[file_sd]]` entry has its own credentials and TLS in
    /// `[file_sd.defaults]`.
    #[serde(default)]
    pub file_sd: Vec<FileSdConfig>,
    /// Redis Cluster discovery: every node of each `[[cluster]]`, found from its seeds.
    #[serde(default)]
    pub cluster: Vec<ClusterSdConfig>,
    /// Sentinel discovery: the primary and replicas of each monitored master of each
    /// `[[sentinel]]` group.
    #[serde(default)]
    pub sentinel: Vec<SentinelSdConfig>,
    /// A file where the exporter keeps each target's derived history (failure streaks, stuck,
    /// err-since, transient recoveries, restarts while err) across its own restarts, relative
    /// to the config file's folder. Written atomically every poll_interval when something
    /// changed, and on shutdown; at most 10000 targets and 8 MiB. A missing, corrupt or foreign
    /// file starts empty with one warning. A target's history is dropped when its server
    /// restarted meanwhile (a new run_id). Takes effect at start. Default: none, the history
    /// starts empty on every restart.
    pub state_file: Option<PathBuf>,
    /// The multi-target `/probe?target=…` endpoint, for target lists kept in Prometheus.
    #[serde(default)]
    pub probe: ProbeConfig,
    /// Where each target's Last Successful Backup is found; see [`BackupConfig`]. Targets
    /// inherit it (discovered ones too) with `{target}` in its URL replaced by their name.
    #[serde(default)]
    pub backup: Option<BackupConfig>,
    /// The Redis servers to poll. With no config file at all, one target,
    /// `redis://127.0.0.1:6379`, is polled.
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
}

/// A `[[file_sd]]` discovery source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Files or glob patterns (`targets/*.json`), relative to the config file's folder. Each
    /// file is a list of `{ "targets": ["host:port" | "redis://…", …], "labels": {…} }` groups.
    /// Labels starting with `__` are dropped; a `name` label sets the target name.
    pub files: Vec<String>,
    /// How often the files are checked for changes. Default 30s.
    #[serde(default = "default_discovery_refresh", with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Settings applied to every target of this source.
    #[serde(default)]
    pub defaults: TargetTemplate,
}

/// A `[[cluster]]` discovery source: every node of one Redis Cluster, primaries, replicas and
/// nodes without slots, each polled as its own target named `<name>/<ip:port>` with the labels
/// `cluster="<name>"` and `role="primary"|"replica"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSdConfig {
    /// The `cluster` label and the prefix of every target name. Unique among `[[cluster]]`s.
    pub name: String,
    /// Nodes asked for the membership (`CLUSTER NODES`), as `host:port` or URLs, tried in
    /// order and then every node discovered before, until one answers.
    pub seeds: Vec<String>,
    /// How often the membership is re-read. Default 30s.
    #[serde(default = "default_discovery_refresh", with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Credentials and TLS settings for the seeds and every node; `scheme` (default: the
    /// first seed's) applies to the discovered nodes.
    #[serde(default)]
    pub defaults: TargetTemplate,
}

/// A `[[sentinel]]` discovery source: the primary and replicas of masters monitored by one
/// group of Sentinels, each polled as its own target named `<master>/<ip:port>` with the
/// labels `cluster="<master>"` and `role="primary"|"replica"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelSdConfig {
    /// Names this source in logs and errors. Unique among `[[sentinel]]`s.
    pub name: String,
    /// The Sentinels, as `host:port` or URLs, tried in order until one answers.
    pub sentinels: Vec<String>,
    /// The master names to follow. Default: every master the Sentinel monitors.
    #[serde(default)]
    pub masters: Vec<String>,
    /// How often the topology is re-read. Default 30s.
    #[serde(default = "default_discovery_refresh", with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Credentials and TLS settings for the Redis nodes.
    #[serde(default)]
    pub defaults: TargetTemplate,
    /// Credentials and TLS settings for the Sentinels themselves (only the connection keys
    /// are used: `scheme`, `username`, `password*`, `tls_*`).
    #[serde(default)]
    pub sentinel_auth: TargetTemplate,
}

fn default_discovery_refresh() -> Duration {
    Duration::from_secs(30)
}

/// The `[probe]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Turns `/probe` on. Default false: an open probe endpoint lets anyone who reaches the
    /// exporter make it connect anywhere (SSRF) with its credentials.
    #[serde(default)]
    pub enabled: bool,
    /// Patterns a probed target must match, `scheme://host:port`. Required when enabled;
    /// credentials are only ever sent to matching targets. The scheme and port match exactly
    /// (or `*`); the host is one of two kinds:
    /// - an IP pattern: `*` per octet (`redis://10.1.*.*:6379`; a last `*` covers the rest,
    ///   so `10.1.*` is the same), a CIDR block (`redis://10.1.0.0/16:6379`,
    ///   `redis://[fd00::]/8:6379`) or `*` for any address. It matches IP literals and the
    ///   addresses a name resolves to, never a name's text: `redis://10.1.*:6379` allows
    ///   `10.1.0.7` and `db.internal` if every address it resolves to is in 10.1.0.0/16, and
    ///   refuses `10.1.attacker.example` (resolving elsewhere or not at all).
    /// - a host-name pattern, where `*` matches within one label: `rediss://*.cache.internal:6380`
    ///   allows `a.cache.internal`, not `a.b.cache.internal` nor `cache.internal`.
    ///
    /// A name is resolved once and the probe connects to the address that was checked
    /// (`rediss://` still verifies the certificate against the name). A pattern that does not
    /// parse allows nothing and is logged when a probe arrives.
    #[serde(default)]
    pub allowed_targets: Vec<String>,
    /// Credentials and TLS settings used for probed targets.
    #[serde(default)]
    pub defaults: TargetTemplate,
}

/// Declares a config struct with the keys every way of configuring a target shares (labels,
/// credentials, thresholds, TLS), so that they are listed, and documented, once: a
/// `[[targets]]` entry adds where the target is, templates add the scheme of bare entries.
macro_rules! with_target_keys {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident: $type:ty,)*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$field_meta])* pub $field: $type,)*
            /// Extra labels added to every series of the target, for example
            /// `{ env = "prod" }`.
            #[serde(default)]
            pub labels: BTreeMap<String, String>,
            /// ACL username.
            pub username: Option<String>,
            /// Password, inline. Prefer `password_file`. Never logged or exported.
            pub password: Option<String>,
            /// A file holding the password (surrounding whitespace is trimmed), for example a
            /// mounted Kubernetes Secret: a regular file of at most 4 KiB. A relative path is
            /// relative to the config file's folder. It is re-read at every reconnect, so a
            /// rotated password needs no restart. Never logged or exported.
            pub password_file: Option<PathBuf>,
            /// The name of an environment variable holding the password, read at each
            /// (re)connect. Never logged or exported.
            pub password_env: Option<String>,
            /// Overrides the top-level `rdb_max_age`.
            #[serde(default, with = "humantime_serde")]
            pub rdb_max_age: Option<Duration>,
            /// Overrides the top-level `config_command` ("" turns `CONFIG GET` off).
            pub config_command: Option<String>,
            /// `rediss://` only: PEM file of the CA(s) that signed the server's certificate.
            /// Default: the system's trusted roots.
            pub tls_ca_file: Option<PathBuf>,
            /// `rediss://` only: client certificate (PEM), for servers with
            /// `tls-auth-clients yes`.
            pub tls_cert_file: Option<PathBuf>,
            /// `rediss://` only: the client certificate's private key (PEM).
            pub tls_key_file: Option<PathBuf>,
            /// `rediss://` only: the name to verify the server's certificate against (and send
            /// as SNI) when it differs from the URL's host, e.g. when connecting by IP address.
            pub tls_server_name: Option<String>,
            /// `rediss://` only: skip verifying the server's certificate. Encrypts but does not
            /// authenticate the server, so a man in the middle could read the password; logged
            /// as a warning whenever the target starts being polled with it. Default false.
            #[serde(default)]
            pub tls_insecure_skip_verify: bool,
        }
    };
}

with_target_keys! {
    /// Settings applied to targets the exporter did not have listed one by one (discovered or
    /// probed). The same keys as a `[[targets]]` entry, without `url` and `name`.
    #[derive(Clone, Default, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TargetTemplate {
        /// `redis` or `rediss` for entries given as `host:port`. Default `redis`.
        pub scheme: Option<String>,
    }
}

impl fmt::Debug for TargetTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetTemplate")
            .field("scheme", &self.scheme)
            .field("labels", &self.labels)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl TargetTemplate {
    /// The URL for a `host:port` or full-URL entry.
    pub fn url_for(&self, entry: &str) -> String {
        if entry.contains("://") {
            entry.to_owned()
        } else {
            format!("{}://{entry}", self.scheme.as_deref().unwrap_or("redis"))
        }
    }

    /// A validated target for `url`, with this template's settings and `labels` added. `key`
    /// names it in errors.
    pub fn build(
        &self,
        url: String,
        name: Option<String>,
        labels: BTreeMap<String, String>,
        key: &str,
        origin: TargetOrigin<'_>,
    ) -> Result<Target, ConfigError> {
        validate_target(self.target_config(url, name, labels), key, origin)
    }

    /// A target entry for `url`, with this template's settings and `labels` added.
    pub fn target_config(
        &self,
        url: String,
        name: Option<String>,
        labels: BTreeMap<String, String>,
    ) -> TargetConfig {
        let mut all_labels = self.labels.clone();
        all_labels.extend(labels);
        TargetConfig {
            url,
            name,
            labels: all_labels,
            username: self.username.clone(),
            password: self.password.clone(),
            password_file: self.password_file.clone(),
            password_env: self.password_env.clone(),
            rdb_max_age: self.rdb_max_age,
            config_command: self.config_command.clone(),
            log_file: None,
            data_dir: None,
            backup: None,
            tls_ca_file: self.tls_ca_file.clone(),
            tls_cert_file: self.tls_cert_file.clone(),
            tls_key_file: self.tls_key_file.clone(),
            tls_server_name: self.tls_server_name.clone(),
            tls_insecure_skip_verify: self.tls_insecure_skip_verify,
        }
    }
}

with_target_keys! {
    /// One `[[targets]]` entry.
    #[derive(Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TargetConfig {
        /// `redis://host:port`, `rediss://host:port` (TLS), or `unix:///path/to/redis.sock`.
        /// Credentials may be given here (`redis://user:pass@host`) but are better in
        /// `username` / `password_file`; they are never shown anywhere.
        pub url: String,
        /// The `target` label on every series of this target. Default: the URL with any
        /// credentials removed.
        pub name: Option<String>,
        /// The Redis log file, when the exporter runs on the Redis host (a sidecar or the same
        /// machine). With it, a failure gets a probable cause (`disk_full`, `fork_failed`,
        /// `io_error`, `child_killed`, `unknown`) from the line Redis wrote, and every failed
        /// attempt it logs is counted. Relative paths are relative to the config file's folder.
        pub log_file: Option<PathBuf>,
        /// The Redis data directory (its `dir`), when the exporter runs on the Redis host. With
        /// it, free bytes and inodes of that filesystem are exported, and whether the next
        /// rewrite and BGSAVE fit.
        pub data_dir: Option<PathBuf>,
        /// Overrides the top-level `[backup]` for this target, key by key, e.g.
        /// `backup = { url = "file:///srv/backup/orders-*.rdb", max_age = "8h" }`.
        pub backup: Option<BackupConfig>,
    }
}

// Hand-written so a password can never reach a log line through `{:?}`.
impl TargetConfig {
    /// A target with just a URL and every optional key at its default.
    pub fn bare(url: String) -> Self {
        TargetTemplate::default().target_config(url, None, BTreeMap::new())
    }
}

impl fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetConfig")
            .field("name", &self.name)
            .field("labels", &self.labels)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .field("password_env", &self.password_env)
            .finish_non_exhaustive()
    }
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_listen_address() -> String {
    DEFAULT_LISTEN_ADDRESS.to_owned()
}
fn default_siblings_refresh_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_config_refresh_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_keep_connections() -> bool {
    true
}
fn default_config_command() -> String {
    "CONFIG".to_owned()
}
fn default_rdb_max_age() -> Duration {
    Duration::from_secs(24 * 3600)
}
