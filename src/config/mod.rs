//! Configuration: a TOML file layered with environment overrides, validated into [`Settings`].
//!
//! Loading is two steps so that every error can name the file, the key and what was expected:
//! serde reads the shape (`schema`), then `validate` checks meaning (URLs, names, files,
//! discovery sources) and produces the [`Settings`] the rest of the program uses.

mod backup;
mod effective;
mod error;
mod schema;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::target::Target;
pub use backup::{is_loopback_url, BackupLocation, BackupSettings, BackupSource, S3Options};
pub use effective::render as render_effective;
use error::describe_config_error;
pub use error::ConfigError;
pub use schema::{
    ClusterSdConfig, FileConfig, FileSdConfig, ProbeConfig, SentinelSdConfig, TargetConfig,
    TargetTemplate,
};

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
    "per_target_poll_duration_histogram",
    "config_command",
    "shard",
    "state_file",
];

/// Default address of `/metrics`; 9645 is in the exporter port range and unused by the
/// well-known exporters.
pub const DEFAULT_LISTEN_ADDRESS: &str = "0.0.0.0:9645";

/// The target polled when no config file is given.
pub const DEFAULT_TARGET_URL: &str = "redis://127.0.0.1:6379";

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
    /// See [`FileConfig::per_target_poll_duration_histogram`].
    pub per_target_poll_duration_histogram: bool,
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
    /// Each target's backup source, by target name.
    pub backup: BackupSettings,
    /// See [`FileConfig::state_file`]; made absolute.
    pub state_file: Option<PathBuf>,
}

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

#[cfg(test)]
mod tests;
