//! Configuration: a TOML file layered with environment overrides, validated into [`Settings`].
//!
//! The structs deriving `Deserialize` are the user documentation: their doc comments describe
//! each key, and `config/example.toml` shows every one of them (a test parses it). Loading is
//! two steps so that every error can name the file, the key and what was expected: serde reads
//! the shape, then [`FileConfig::validate`] checks meaning (URLs, names, files) and produces
//! the [`Settings`] the rest of the program uses.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Prefix of environment variables that override file keys, for example
/// `REDIS_PERSISTENCE_EXPORTER_POLL_INTERVAL=10s`.
pub const ENV_PREFIX: &str = "REDIS_PERSISTENCE_EXPORTER";

/// The keys that can be overridden from the environment.
pub const ENV_KEYS: &[&str] = &[
    "poll_interval",
    "poll_timeout",
    "listen_address",
    "rdb_max_age",
    "config_refresh_interval",
    "siblings_refresh_interval",
    "keep_connections",
    "config_command",
    "shard",
];

/// Default address of `/metrics`; 9645 is in the exporter port range and unused by the
/// well-known exporters.
pub const DEFAULT_LISTEN_ADDRESS: &str = "0.0.0.0:9645";

/// The target polled when no config file is given.
pub const DEFAULT_TARGET_URL: &str = "redis://127.0.0.1:6379";

/// The top level of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// How often each target is polled, as a humantime duration ("5s", "1m"). Default 5s.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long one poll may take, connecting included; a longer poll counts as failed with
    /// reason `timeout`. Must not exceed `poll_interval`. Default 2s.
    #[serde(default = "default_poll_timeout", with = "humantime_serde")]
    pub poll_timeout: Duration,
    /// Address and port `/metrics` listens on. Default "0.0.0.0:9645".
    /// `--web.listen-address` overrides it.
    #[serde(default = "default_listen_address")]
    pub listen_address: String,
    /// After how long without a successful RDB save a target's backup counts as stale,
    /// exported as `redis_rdb_max_age_seconds` so the `RedisBackupStale` alert can be tuned
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
    /// `INFO server`, plus `AUTH` with credentials: 3-4 more commands). Meant for very large
    /// fleets polled at long intervals. Default true.
    #[serde(default = "default_keep_connections")]
    pub keep_connections: bool,
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
    /// The multi-target `/probe?target=…` endpoint, for target lists kept in Prometheus.
    #[serde(default)]
    pub probe: ProbeConfig,
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
    /// Patterns a probed target must match, over `scheme://host:port` with `*` matching any
    /// run of characters, e.g. `redis://10.1.*:6379` or `rediss://*.cache.internal:6380`.
    /// Required when enabled; credentials are only ever sent to matching targets.
    #[serde(default)]
    pub allowed_targets: Vec<String>,
    /// Credentials and TLS settings used for probed targets.
    #[serde(default)]
    pub defaults: TargetTemplate,
}

/// Settings applied to targets the exporter did not have listed one by one (discovered or
/// probed). The same keys as a `[[targets]]` entry, without `url` and `name`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetTemplate {
    /// `redis` or `rediss` for entries given as `host:port`. Default `redis`.
    pub scheme: Option<String>,
    /// Extra labels on every series of these targets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// ACL username.
    pub username: Option<String>,
    /// Password, inline.
    pub password: Option<String>,
    /// Password file.
    pub password_file: Option<PathBuf>,
    /// Password environment variable.
    pub password_env: Option<String>,
    /// See `[[targets]] rdb_max_age`.
    #[serde(default, with = "humantime_serde")]
    pub rdb_max_age: Option<Duration>,
    /// See `[[targets]] config_command`.
    pub config_command: Option<String>,
    /// See `[[targets]] tls_ca_file`.
    pub tls_ca_file: Option<PathBuf>,
    /// See `[[targets]] tls_cert_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// See `[[targets]] tls_key_file`.
    pub tls_key_file: Option<PathBuf>,
    /// See `[[targets]] tls_server_name`.
    pub tls_server_name: Option<String>,
    /// See `[[targets]] tls_insecure_skip_verify`.
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
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
            tls_ca_file: self.tls_ca_file.clone(),
            tls_cert_file: self.tls_cert_file.clone(),
            tls_key_file: self.tls_key_file.clone(),
            tls_server_name: self.tls_server_name.clone(),
            tls_insecure_skip_verify: self.tls_insecure_skip_verify,
        }
    }
}

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
    /// Extra labels added to every series of this target, for example `{ env = "prod" }`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// ACL username.
    pub username: Option<String>,
    /// Password, inline. Prefer `password_file`. Never logged or exported.
    pub password: Option<String>,
    /// A file holding the password (surrounding whitespace is trimmed), for example a mounted
    /// Kubernetes Secret. A relative path is relative to the config file's folder. It is
    /// re-read at every reconnect, so a rotated password needs no restart. Never logged or
    /// exported.
    pub password_file: Option<PathBuf>,
    /// The name of an environment variable holding the password, read at each (re)connect.
    /// Never logged or exported.
    pub password_env: Option<String>,
    /// Overrides the top-level `rdb_max_age` for this target.
    #[serde(default, with = "humantime_serde")]
    pub rdb_max_age: Option<Duration>,
    /// Overrides the top-level `config_command` for this target ("" turns it off).
    pub config_command: Option<String>,
    /// The Redis log file, when the exporter runs on the Redis host (a sidecar or the same
    /// machine). With it, a failure gets a probable cause (`disk_full`, `fork_failed`,
    /// `io_error`, `child_killed`, `unknown`) from the line Redis wrote. Relative paths are
    /// relative to the config file's folder.
    pub log_file: Option<PathBuf>,
    /// The Redis data directory (its `dir`), when the exporter runs on the Redis host. With
    /// it, free bytes and inodes of that filesystem are exported.
    pub data_dir: Option<PathBuf>,
    /// `rediss://` only: PEM file of the CA(s) that signed the server's certificate. Default:
    /// the system's trusted roots.
    pub tls_ca_file: Option<PathBuf>,
    /// `rediss://` only: client certificate (PEM), for servers with `tls-auth-clients yes`.
    pub tls_cert_file: Option<PathBuf>,
    /// `rediss://` only: the client certificate's private key (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// `rediss://` only: the name to verify the server's certificate against (and send as
    /// SNI) when it differs from the URL's host, e.g. when connecting by IP address.
    pub tls_server_name: Option<String>,
    /// `rediss://` only: skip verifying the server's certificate. Encrypts but does not
    /// authenticate the server, so a man in the middle could read the password; logged as a
    /// warning whenever the target starts being polled with it. Default false.
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
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
fn default_poll_timeout() -> Duration {
    Duration::from_secs(2)
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

/// A config problem, said so that an operator can fix it at 3 a.m.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or its TOML/values did not fit the expected shape.
    #[error("{source_name}: {message}")]
    Load {
        /// The file (or "environment") the problem is in.
        source_name: String,
        /// What went wrong, with the key when known.
        message: String,
    },
    /// A key had a value of the right type but the wrong meaning.
    #[error("{source_name}: key `{key}`: expected {expected}")]
    Invalid {
        /// The file the problem is in.
        source_name: String,
        /// The key, for example `targets[1].url`.
        key: String,
        /// What was expected, never echoing a secret.
        expected: String,
    },
}

/// A password. It cannot be printed: `Debug` redacts it and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for handing to the Redis client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a target listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// TCP, optionally with TLS (`rediss://`).
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port, 6379 when the URL gives none.
        port: u16,
        /// `rediss://`
        tls: bool,
    },
    /// A unix socket path.
    Unix {
        /// Socket path.
        path: PathBuf,
    },
}

/// Where a target's password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// Inline in the config or the URL.
    Inline(Secret),
    /// Read from this file at each (re)connect, so a rotated password is picked up.
    File(PathBuf),
    /// Read from this environment variable at each (re)connect.
    Env(String),
}

/// A validated target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The `target` label.
    pub name: String,
    /// Extra labels, sorted by name; none is `target`.
    pub labels: Vec<(String, String)>,
    /// Where it listens.
    pub address: Address,
    /// ACL username.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<PasswordSource>,
    /// Threshold for a stale RDB save.
    pub rdb_max_age: Duration,
    /// The `CONFIG` command's name, or `None` when `CONFIG GET` is off.
    pub config_command: Option<String>,
    /// The Redis log, when readable on this host.
    pub log_file: Option<PathBuf>,
    /// The Redis data directory, when on this host.
    pub data_dir: Option<PathBuf>,
    /// TLS client settings for `rediss://` targets.
    pub tls: Option<TlsClient>,
}

/// TLS client settings of a `rediss://` target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsClient {
    /// CA bundle; `None` means the system roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Name to verify and send as SNI instead of the URL host.
    pub server_name: Option<String>,
    /// Skip certificate verification (loudly).
    pub insecure_skip_verify: bool,
}

impl Target {
    /// The password to send now, reading the file if the password lives in one.
    pub fn current_password(&self) -> Result<Option<Secret>, std::io::Error> {
        match &self.password {
            None => Ok(None),
            Some(PasswordSource::Inline(secret)) => Ok(Some(secret.clone())),
            Some(PasswordSource::File(path)) => read_password_file(path).map(Some),
            Some(PasswordSource::Env(name)) => std::env::var(name)
                .map(|v| Some(Secret::new(v)))
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "password environment variable is not set",
                    )
                }),
        }
    }
}

/// The validated configuration the program runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// See [`FileConfig::poll_interval`].
    pub poll_interval: Duration,
    /// See [`FileConfig::poll_timeout`].
    pub poll_timeout: Duration,
    /// See [`FileConfig::listen_address`].
    pub listen_address: SocketAddr,
    /// See [`FileConfig::config_refresh_interval`].
    pub config_refresh_interval: Duration,
    /// See [`FileConfig::siblings_refresh_interval`].
    pub siblings_refresh_interval: Duration,
    /// See [`FileConfig::keep_connections`].
    pub keep_connections: bool,
    /// This replica's share of the targets, if the fleet is split.
    pub shard: Option<crate::shard::Shard>,
    /// File discovery sources, with paths made absolute.
    pub file_sd: Vec<FileSdConfig>,
    /// Redis Cluster discovery sources.
    pub cluster: Vec<ClusterSdConfig>,
    /// Sentinel discovery sources.
    pub sentinel: Vec<SentinelSdConfig>,
    /// The probe endpoint's settings, when enabled.
    pub probe: Option<ProbeConfig>,
    /// What discovered and probed targets inherit.
    pub defaults: TargetDefaults,
    /// Where relative paths in discovered or probed targets' settings are resolved.
    pub base_dir: Option<PathBuf>,
    /// The targets, in file order, with unique names.
    pub targets: Vec<Target>,
}

/// Labels the exporter itself puts on series; a user label of the same name would clash.
const RESERVED_LABELS: &[&str] = &[
    "target",
    "state",
    "reason",
    "le",
    "replica",
    "mechanism",
    "redis_version",
    "version",
    "policy",
];

/// Loads `path` (or nothing, for the defaults), applies environment overrides, and validates.
pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
    load_with_env(path, std::env::vars())
}

/// [`load`] with the environment given explicitly, so tests need not touch the process's.
pub fn load_with_env(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    let source_name = match path {
        Some(path) => format!("config file {}", path.display()),
        None => "built-in defaults".to_owned(),
    };
    let mut builder = config::Config::builder();
    if let Some(path) = path {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Load {
            source_name: source_name.clone(),
            message: format!("cannot read the file: {e}"),
        })?;
        builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
    }
    // Only the top-level settings can come from the environment. Anything else with the
    // prefix is ignored rather than rejected: Kubernetes injects `<SERVICE>_PORT=tcp://…`
    // style variables for a Service named like the exporter, and those must not stop it.
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(key, _)| {
            key.strip_prefix(&format!("{ENV_PREFIX}_"))
                .is_some_and(|rest| ENV_KEYS.contains(&rest.to_ascii_lowercase().as_str()))
        })
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .source(Some(env)),
    );
    let layered = builder.build().map_err(|e| ConfigError::Load {
        source_name: source_name.clone(),
        message: describe_config_error(&e),
    })?;
    let mut file: FileConfig = layered.try_deserialize().map_err(|e| ConfigError::Load {
        source_name: source_name.clone(),
        message: describe_config_error(&e),
    })?;
    if path.is_none() && file.targets.is_empty() {
        file.targets
            .push(TargetConfig::bare(DEFAULT_TARGET_URL.to_owned()));
    }
    let base_dir = path.and_then(Path::parent);
    file.validate(&source_name, base_dir)
}

/// Settings for `check URL…`: the defaults with one target per URL.
pub fn from_urls(urls: &[String]) -> Result<Settings, ConfigError> {
    let mut file: FileConfig = config::Config::builder()
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| ConfigError::Load {
            source_name: "command line".into(),
            message: describe_config_error(&e),
        })?;
    file.targets = urls
        .iter()
        .map(|url| TargetConfig::bare(url.clone()))
        .collect();
    file.validate("command line", None)
}

/// Rewords the config crate's messages, which can quote whole values (possibly secrets).
fn describe_config_error(error: &config::ConfigError) -> String {
    // A TOML syntax error quotes the offending source line (`5 | password = "…`), which may
    // hold a secret: keep the position and the diagnosis, drop the quoted source.
    let full = error.to_string();
    let message: Vec<&str> = full
        .lines()
        .filter(|line| {
            let trimmed = line.trim_start();
            let quoted_source = trimmed.starts_with('|')
                || trimmed.split_once('|').is_some_and(|(number, _)| {
                    !number.trim().is_empty() && number.trim().bytes().all(|b| b.is_ascii_digit())
                });
            !quoted_source && !trimmed.is_empty()
        })
        .collect();
    let message = fix_key_paths(&message.join("; "));
    // serde quotes offending string values; under a password key that could be the secret.
    if message.contains("password`") && message.contains('"') {
        let key_part = message
            .rsplit_once(" for key ")
            .map(|(_, key)| key)
            .unwrap_or("");
        return format!("invalid value for key {key_part}: expected a string");
    }
    message
}

/// The config crate writes nested keys as `targets[0]password`; make it `targets[0].password`.
fn fix_key_paths(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 8);
    let mut previous = ' ';
    for c in message.chars() {
        if previous == ']' && (c.is_ascii_alphabetic() || c == '_') {
            out.push('.');
        }
        out.push(c);
        previous = c;
    }
    out
}

impl FileConfig {
    /// Checks meaning and produces [`Settings`]. `source_name` prefixes every error; relative
    /// file paths are taken relative to `base_dir`, the config file's folder.
    pub fn validate(
        self,
        source_name: &str,
        base_dir: Option<&Path>,
    ) -> Result<Settings, ConfigError> {
        let invalid = |key: &str, expected: String| ConfigError::Invalid {
            source_name: source_name.to_owned(),
            key: key.to_owned(),
            expected,
        };
        if self.poll_interval.is_zero() {
            return Err(invalid(
                "poll_interval",
                "a duration greater than zero, like \"5s\"".into(),
            ));
        }
        if self.poll_timeout.is_zero() || self.poll_timeout > self.poll_interval {
            return Err(invalid(
                "poll_timeout",
                format!(
                    "a duration greater than zero and at most poll_interval ({})",
                    humantime::format_duration(self.poll_interval)
                ),
            ));
        }
        let listen_address: SocketAddr = self.listen_address.parse().map_err(|_| {
            invalid(
                "listen_address",
                "an IP address and port like \"0.0.0.0:9645\"".into(),
            )
        })?;
        let defaults = TargetDefaults {
            rdb_max_age: self.rdb_max_age,
            config_command: self.config_command.clone(),
        };
        let origin = TargetOrigin {
            source_name,
            base_dir,
            defaults: &defaults,
        };
        let mut names = BTreeSet::new();
        let mut targets = Vec::with_capacity(self.targets.len());
        for (index, target) in self.targets.into_iter().enumerate() {
            let prefix = format!("targets[{index}]");
            let target = validate_target(target, &prefix, origin)?;
            if !names.insert(target.name.clone()) {
                return Err(invalid(
                    &format!("{prefix}.name"),
                    format!(
                        "a name unique among targets (\"{}\" is used twice)",
                        target.name
                    ),
                ));
            }
            targets.push(target);
        }
        if self.config_refresh_interval < self.poll_interval {
            return Err(invalid(
                "config_refresh_interval",
                format!(
                    "a duration of at least poll_interval ({}); CONFIG GET is not meant for every poll",
                    humantime::format_duration(self.poll_interval)
                ),
            ));
        }
        if self.siblings_refresh_interval < self.poll_interval {
            return Err(invalid(
                "siblings_refresh_interval",
                format!(
                    "a duration of at least poll_interval ({})",
                    humantime::format_duration(self.poll_interval)
                ),
            ));
        }
        let shard = match &self.shard {
            Some(spec) => Some(
                spec.parse()
                    .map_err(|e: crate::shard::ShardError| invalid("shard", e.to_string()))?,
            ),
            None => None,
        };
        if targets.is_empty()
            && self.file_sd.is_empty()
            && self.cluster.is_empty()
            && self.sentinel.is_empty()
            && !self.probe.enabled
        {
            return Err(invalid(
                "targets",
                "at least one [[targets]] entry, a [[file_sd]], [[cluster]] or [[sentinel]] source, or an enabled [probe]".into(),
            ));
        }
        crate::redis_discovery::validate_sources(&self.cluster, &self.sentinel, origin)?;
        for (index, source) in self.file_sd.iter().enumerate() {
            // Zero would re-read every file in a busy loop.
            if source.refresh_interval.is_zero() {
                return Err(invalid(
                    &format!("file_sd[{index}].refresh_interval"),
                    "a duration greater than zero, like \"30s\"".into(),
                ));
            }
        }
        if self.probe.enabled && self.probe.allowed_targets.is_empty() {
            return Err(invalid(
                "probe.allowed_targets",
                "at least one pattern when probe.enabled = true; an open probe endpoint is an SSRF hole".into(),
            ));
        }
        let file_sd = self
            .file_sd
            .into_iter()
            .map(|mut source| {
                source.files = source
                    .files
                    .into_iter()
                    .map(|pattern| match base_dir {
                        Some(base) if Path::new(&pattern).is_relative() => {
                            base.join(pattern).to_string_lossy().into_owned()
                        }
                        _ => pattern,
                    })
                    .collect();
                source
            })
            .collect();
        Ok(Settings {
            file_sd,
            cluster: self.cluster,
            sentinel: self.sentinel,
            probe: self.probe.enabled.then_some(self.probe),
            defaults: defaults.clone(),
            base_dir: base_dir.map(Path::to_path_buf),
            shard,
            poll_interval: self.poll_interval,
            poll_timeout: self.poll_timeout,
            listen_address,
            config_refresh_interval: self.config_refresh_interval,
            siblings_refresh_interval: self.siblings_refresh_interval,
            keep_connections: self.keep_connections,
            targets,
        })
    }
}

/// What a target inherits from the top level of the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDefaults {
    /// See [`FileConfig::rdb_max_age`].
    pub rdb_max_age: Duration,
    /// See [`FileConfig::config_command`].
    pub config_command: String,
}

/// Where a target is configured: the name errors give for its source, the folder its
/// relative paths are relative to, and the top-level settings it inherits.
#[derive(Debug, Clone, Copy)]
pub struct TargetOrigin<'a> {
    /// "config.toml", "file_sd", "cluster c1", "probe": names the source in errors.
    pub source_name: &'a str,
    /// The config file's folder, for relative paths.
    pub base_dir: Option<&'a Path>,
    /// The top-level settings targets inherit.
    pub defaults: &'a TargetDefaults,
}

impl Settings {
    /// The origin of targets this config adds from `source_name` (a discovery source, probe).
    pub fn origin<'a>(&'a self, source_name: &'a str) -> TargetOrigin<'a> {
        TargetOrigin {
            source_name,
            base_dir: self.base_dir.as_deref(),
            defaults: &self.defaults,
        }
    }
}

/// Validates one target. `key_prefix` (like `targets[3]`) prefixes the keys in errors.
pub fn validate_target(
    target: TargetConfig,
    key_prefix: &str,
    origin: TargetOrigin<'_>,
) -> Result<Target, ConfigError> {
    let TargetOrigin {
        source_name,
        base_dir,
        defaults,
    } = origin;
    let invalid = |key: &str, expected: String| ConfigError::Invalid {
        source_name: source_name.to_owned(),
        key: key.to_owned(),
        expected,
    };
    let key = |field: &str| format!("{key_prefix}.{field}");
    let parsed = parse_url(&target.url).map_err(|expected| invalid(&key("url"), expected))?;
    let name = target.name.clone().unwrap_or(parsed.display.clone());
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(invalid(&key("name"), "a non-empty printable name".into()));
    }
    let mut labels = Vec::with_capacity(target.labels.len());
    for (label, value) in &target.labels {
        if !is_valid_label_name(label) {
            return Err(invalid(
                &key(&format!("labels.{label}")),
                "a label name matching [a-zA-Z_][a-zA-Z0-9_]* not starting with __".into(),
            ));
        }
        if RESERVED_LABELS.contains(&label.as_str()) {
            return Err(invalid(
                &key(&format!("labels.{label}")),
                format!(
                    "a label name other than the exporter's own ({})",
                    RESERVED_LABELS.join(", ")
                ),
            ));
        }
        labels.push((label.clone(), value.clone()));
    }
    let username = match (target.username, parsed.username) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                &key("username"),
                "a username in either `username` or the URL, not both".into(),
            ))
        }
        (a, b) => a.or(b),
    };
    let password =
        match (target.password, target.password_file, parsed.password) {
            (None, None, None) if target.password_env.is_some() => {
                let name = target.password_env.clone().unwrap_or_default();
                if std::env::var_os(&name).is_none() {
                    return Err(invalid(
                        &key("password_env"),
                        format!("the name of a set environment variable ({name} is not set)"),
                    ));
                }
                Some(PasswordSource::Env(name))
            }
            (None, None, None) => None,
            (Some(p), None, None) | (None, None, Some(p)) => {
                Some(PasswordSource::Inline(Secret::new(p)))
            }
            (None, Some(path), None) => {
                let path = match base_dir {
                    Some(base) if path.is_relative() => base.join(path),
                    _ => path,
                };
                read_password_file(&path).map_err(|e| {
                    invalid(
                        &key("password_file"),
                        format!("a readable file ({}: {})", path.display(), e.kind()),
                    )
                })?;
                Some(PasswordSource::File(path))
            }
            _ => return Err(invalid(
                &key("password"),
                "only one of `password`, `password_file`, `password_env` or a password in the URL"
                    .into(),
            )),
        };
    if target.password_env.is_some() && !matches!(password, Some(PasswordSource::Env(_))) {
        return Err(invalid(
            &key("password_env"),
            "only one of `password`, `password_file`, `password_env` or a password in the URL"
                .into(),
        ));
    }
    let config_command = target
        .config_command
        .unwrap_or_else(|| defaults.config_command.clone());
    if config_command
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            &key("config_command"),
            "a single command name without spaces, or \"\" to turn CONFIG GET off".into(),
        ));
    }
    let relative = |path: PathBuf| match base_dir {
        Some(base) if path.is_relative() => base.join(path),
        _ => path,
    };
    let is_tls = matches!(parsed.address, Address::Tcp { tls: true, .. });
    let tls_keys_used = target.tls_ca_file.is_some()
        || target.tls_cert_file.is_some()
        || target.tls_key_file.is_some()
        || target.tls_server_name.is_some()
        || target.tls_insecure_skip_verify;
    if tls_keys_used && !is_tls {
        return Err(invalid(
            &key("url"),
            "a rediss:// URL, since tls_* keys are set for this target".into(),
        ));
    }
    let readable = |field: &str, path: &Option<PathBuf>| -> Result<Option<PathBuf>, ConfigError> {
        match path.clone().map(&relative) {
            Some(path) => match std::fs::metadata(&path) {
                Ok(_) => Ok(Some(path)),
                Err(e) => Err(invalid(
                    &key(field),
                    format!("a readable PEM file ({}: {})", path.display(), e.kind()),
                )),
            },
            None => Ok(None),
        }
    };
    let client_cert = match (
        readable("tls_cert_file", &target.tls_cert_file)?,
        readable("tls_key_file", &target.tls_key_file)?,
    ) {
        (Some(cert), Some(key_file)) => Some((cert, key_file)),
        (None, None) => None,
        _ => {
            return Err(invalid(
                &key("tls_cert_file"),
                "tls_cert_file and tls_key_file together, or neither".into(),
            ))
        }
    };
    let tls = is_tls.then(|| TlsClient {
        ca_file: None,
        client_cert,
        server_name: target.tls_server_name.clone(),
        insecure_skip_verify: target.tls_insecure_skip_verify,
    });
    let tls = match tls {
        Some(mut tls) => {
            tls.ca_file = readable("tls_ca_file", &target.tls_ca_file)?;
            Some(tls)
        }
        None => None,
    };
    Ok(Target {
        name,
        labels,
        address: parsed.address,
        username,
        password,
        rdb_max_age: target.rdb_max_age.unwrap_or(defaults.rdb_max_age),
        config_command: Some(config_command).filter(|c| !c.is_empty()),
        log_file: target.log_file.map(relative),
        data_dir: target.data_dir.map(relative),
        tls,
    })
}

fn read_password_file(path: &Path) -> Result<Secret, std::io::Error> {
    let text = std::fs::read_to_string(path)?;
    Ok(Secret::new(text.trim()))
}

fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_');
    first_ok && !name.starts_with("__") && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(crate) struct ParsedUrl {
    pub address: Address,
    /// The URL without credentials, used as the default name.
    pub display: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Parses a target URL. The error never quotes the URL, which may hold a password.
pub(crate) fn parse_url(raw: &str) -> Result<ParsedUrl, String> {
    const EXPECTED: &str =
        "a URL like redis://host:6379, rediss://host:6380 or unix:///path/to/redis.sock";
    let url = url::Url::parse(raw).map_err(|e| format!("{EXPECTED} ({e})"))?;
    let username = Some(url.username())
        .filter(|u| !u.is_empty())
        .map(percent_decode);
    let password = url.password().map(percent_decode);
    match url.scheme() {
        "redis" | "rediss" => {
            let host = url
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| format!("{EXPECTED} (the host is missing)"))?;
            let tls = url.scheme() == "rediss";
            let port = url.port().unwrap_or(6379);
            if !(url.path().is_empty() || url.path() == "/") || url.query().is_some() {
                return Err(format!(
                    "{EXPECTED} (a path or query is not supported; INFO is the same for every database)"
                ));
            }
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let display = if host.contains(':') {
                format!("{}://[{host}]:{port}", url.scheme())
            } else {
                format!("{}://{host}:{port}", url.scheme())
            };
            Ok(ParsedUrl {
                address: Address::Tcp { host, port, tls },
                display,
                username,
                password,
            })
        }
        "unix" | "redis+unix" => {
            let path = PathBuf::from(url.path());
            if url.path().is_empty() || url.path() == "/" {
                return Err(format!("{EXPECTED} (the socket path is missing)"));
            }
            Ok(ParsedUrl {
                display: format!("unix://{}", path.display()),
                address: Address::Unix { path },
                username,
                password,
            })
        }
        _ => Err(format!("{EXPECTED} (unsupported scheme)")),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_text(text: &str) -> Result<Settings, ConfigError> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        load_with_env(Some(file.path()), Vec::new())
    }

    #[test]
    fn shipped_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
        let settings = load_with_env(Some(&path), Vec::new()).unwrap();
        assert!(!settings.targets.is_empty());
    }

    #[test]
    fn no_file_means_local_redis() {
        let settings = load_with_env(None, Vec::new()).unwrap();
        assert_eq!(settings.poll_interval, Duration::from_secs(5));
        assert_eq!(settings.poll_timeout, Duration::from_secs(2));
        assert_eq!(settings.targets.len(), 1);
        assert_eq!(settings.targets[0].name, "redis://127.0.0.1:6379");
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "poll_interval = \"5s\"\n[[targets]]\nurl = \"redis://a\""
        )
        .unwrap();
        let env = vec![(
            "REDIS_PERSISTENCE_EXPORTER_POLL_INTERVAL".to_owned(),
            "30s".to_owned(),
        )];
        let settings = load_with_env(Some(file.path()), env).unwrap();
        assert_eq!(settings.poll_interval, Duration::from_secs(30));
    }

    #[test]
    fn connections_are_kept_unless_turned_off_in_the_file_or_environment() {
        let file = "[[targets]]\nurl = \"redis://a\"\n";
        assert!(load_text(file).unwrap().keep_connections);
        let off = load_text(&format!("keep_connections = false\n{file}")).unwrap();
        assert!(!off.keep_connections);
        let mut path = tempfile::NamedTempFile::new().unwrap();
        path.write_all(file.as_bytes()).unwrap();
        let env = vec![(
            "REDIS_PERSISTENCE_EXPORTER_KEEP_CONNECTIONS".to_owned(),
            "false".to_owned(),
        )];
        assert!(
            !load_with_env(Some(path.path()), env)
                .unwrap()
                .keep_connections
        );
        let error = load_text(&format!("keep_connections = \"sometimes\"\n{file}"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("keep_connections"), "{error}");
    }

    #[test]
    fn file_sd_refresh_interval_must_not_be_zero() {
        let error = load_text("[[file_sd]]\nfiles = [\"t.json\"]\nrefresh_interval = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("file_sd[0].refresh_interval"), "{error}");
    }

    #[test]
    fn kubernetes_service_variables_are_ignored() {
        let env = vec![
            (
                "REDIS_PERSISTENCE_EXPORTER_PORT".to_owned(),
                "tcp://10.0.0.1:9645".to_owned(),
            ),
            (
                "REDIS_PERSISTENCE_EXPORTER_SERVICE_HOST".to_owned(),
                "10.0.0.1".to_owned(),
            ),
            (
                "REDIS_PERSISTENCE_EXPORTER_POLL_TIMEOUT".to_owned(),
                "1s".to_owned(),
            ),
        ];
        let settings = load_with_env(None, env).unwrap();
        assert_eq!(settings.poll_timeout, Duration::from_secs(1));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load_text("pol_interval = \"5s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pol_interval"), "{err}");
        assert!(err.contains("config file"), "{err}");
    }

    #[test]
    fn unknown_target_key_is_named() {
        let err = load_text("[[targets]]\nurl = \"redis://a\"\nhost = \"b\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("host"), "{err}");
    }

    #[test]
    fn bad_duration_is_named() {
        let err = load_text("poll_interval = \"often\"\n[[targets]]\nurl = \"redis://a\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("poll_interval"), "{err}");
    }

    #[test]
    fn bad_url_is_named_without_echoing_it() {
        let err = load_text("[[targets]]\nurl = \"http://user:s3cr3t@host\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("targets[0].url"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn missing_password_file_is_named() {
        let err = load_text(
            "[[targets]]\nurl = \"redis://a\"\npassword_file = \"/nonexistent/secret\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("targets[0].password_file"), "{err}");
    }

    #[test]
    fn url_credentials_are_used_but_not_in_the_name() {
        let settings =
            load_text("[[targets]]\nurl = \"redis://bob:p%40ss@db.example:6380\"\n").unwrap();
        let target = &settings.targets[0];
        assert_eq!(target.name, "redis://db.example:6380");
        assert_eq!(target.username.as_deref(), Some("bob"));
        assert_eq!(target.current_password().unwrap().unwrap().expose(), "p@ss");
        assert!(!format!("{settings:?}").contains("p@ss"));
    }

    #[test]
    fn unix_socket_url() {
        let settings = load_text("[[targets]]\nurl = \"unix:///tmp/redis.sock\"\n").unwrap();
        assert_eq!(
            settings.targets[0].address,
            Address::Unix {
                path: "/tmp/redis.sock".into()
            }
        );
    }

    #[test]
    fn duplicate_names_and_reserved_labels_are_rejected() {
        let err = load_text("[[targets]]\nurl = \"redis://a\"\n[[targets]]\nurl = \"redis://a\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("targets[1].name"), "{err}");
        let err = load_text("[[targets]]\nurl = \"redis://a\"\nlabels = { target = \"x\" }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("labels.target"), "{err}");
    }

    #[test]
    fn timeout_longer_than_interval_is_rejected() {
        let err = load_text(
            "poll_interval = \"1s\"\npoll_timeout = \"2s\"\n[[targets]]\nurl = \"redis://a\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("poll_timeout"), "{err}");
    }

    #[test]
    fn toml_syntax_errors_do_not_quote_the_source_line() {
        let err = load_text("[[targets]]\nurl = \"redis://a\"\npassword = \"hunter2-secret\n")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2-secret"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn unknown_field_lists_the_expected_keys() {
        let err = load_text("[[targets]]\nurl = \"redis://a\"\nhost = \"b\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected one of `url`"), "{err}");
        assert!(err.contains("targets[0]"), "{err}");
    }
}
