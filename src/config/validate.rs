//! Checks the meaning of a deserialized config (URLs, names, files, intervals) and turns it
//! into [`Settings`]. All of the config's validation lives here, discovery sources included,
//! so a bad seed URL or an unreadable password file is a load-time error.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::schema::{
    ClusterSdConfig, FileConfig, FileSdConfig, SentinelSdConfig, TargetConfig, TargetTemplate,
};
use super::{ConfigError, Settings, TargetDefaults, TargetOrigin};
use crate::target::{
    parse_url, read_password_file, Address, PasswordSource, Secret, Target, TlsClient,
    MAX_PASSWORD_FILE_BYTES,
};

/// The shortest poll interval. Ten polls a second per target is already far more than any
/// alert needs (Prometheus scrapes every 15-60 s), and the 100 ms start slots the poller
/// spreads targets over stop spreading below it; `"1ns"` meant over 2,000 polls a second
/// against one server.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The shortest poll timeout. It cannot add polls (the interval paces them), so the floor only
/// rejects values that are surely typos: below a millisecond not even a loopback connect fits.
/// Tests cut connects short on purpose with a few milliseconds, so the floor stays below that.
const MIN_POLL_TIMEOUT: Duration = Duration::from_millis(1);

/// `poll_timeout` when not set, or `poll_interval` if that is shorter.
const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(2);

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

/// A [`ConfigError::Invalid`] for `key` in `source_name`.
fn invalid(source_name: &str, key: &str, expected: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        source_name: source_name.to_owned(),
        key: key.to_owned(),
        expected: expected.into(),
    }
}

/// `path` taken relative to the config file's folder, when it is relative and there is one.
fn relative_to(base_dir: Option<&Path>, path: PathBuf) -> PathBuf {
    match base_dir {
        Some(base) if path.is_relative() => base.join(path),
        _ => path,
    }
}

impl FileConfig {
    /// Checks meaning and produces [`Settings`]. `source_name` prefixes every error; relative
    /// file paths are taken relative to `base_dir`, the config file's folder.
    pub fn validate(
        mut self,
        source_name: &str,
        base_dir: Option<&Path>,
    ) -> Result<Settings, ConfigError> {
        let poll_timeout = self.check_poll_intervals(source_name)?;
        let listen_address: SocketAddr = self.listen_address.parse().map_err(|_| {
            invalid(
                source_name,
                "listen_address",
                "an IP address and port like \"0.0.0.0:9645\"",
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
        // Each target's `backup` table is checked with the top-level [backup] it overrides.
        let target_backups: Vec<_> = self.targets.iter_mut().map(|t| t.backup.take()).collect();
        let targets = validate_targets(std::mem::take(&mut self.targets), origin)?;
        let per_target = targets
            .iter()
            .zip(target_backups)
            .enumerate()
            .filter_map(|(index, (target, backup))| {
                Some((
                    target.name.clone(),
                    format!("targets[{index}].backup"),
                    backup?,
                ))
            })
            .collect();
        let backup =
            super::backup::validate(self.backup.take(), per_target, source_name, base_dir)?;
        self.check_refresh_intervals(source_name)?;
        let shard = match &self.shard {
            Some(spec) => Some(spec.parse().map_err(|e: crate::shard::ShardError| {
                invalid(source_name, "shard", e.to_string())
            })?),
            None => None,
        };
        self.check_sources(&targets, origin)?;
        Ok(Settings {
            backup,
            file_sd: absolute_file_sd(self.file_sd, base_dir),
            cluster: self.cluster,
            sentinel: self.sentinel,
            probe: self.probe.enabled.then_some(self.probe),
            defaults: defaults.clone(),
            base_dir: base_dir.map(Path::to_path_buf),
            shard,
            poll_interval: self.poll_interval,
            poll_timeout,
            listen_address,
            config_refresh_interval: self.config_refresh_interval,
            siblings_refresh_interval: self.siblings_refresh_interval,
            keep_connections: self.keep_connections,
            per_target_poll_duration_histogram: self.per_target_poll_duration_histogram,
            targets,
            state_file: self.state_file.map(|path| relative_to(base_dir, path)),
        })
    }

    /// `poll_interval` and `poll_timeout`; returns the timeout, defaulted when not set.
    fn check_poll_intervals(&self, source_name: &str) -> Result<Duration, ConfigError> {
        if self.poll_interval < MIN_POLL_INTERVAL {
            return Err(invalid(
                source_name,
                "poll_interval",
                format!(
                    "a duration of at least {}, like \"5s\"",
                    humantime::format_duration(MIN_POLL_INTERVAL)
                ),
            ));
        }
        let timeout = self
            .poll_timeout
            .unwrap_or(DEFAULT_POLL_TIMEOUT.min(self.poll_interval));
        if timeout < MIN_POLL_TIMEOUT || timeout > self.poll_interval {
            return Err(invalid(
                source_name,
                "poll_timeout",
                format!(
                    "a duration of at least {} and at most poll_interval ({})",
                    humantime::format_duration(MIN_POLL_TIMEOUT),
                    humantime::format_duration(self.poll_interval)
                ),
            ));
        }
        Ok(timeout)
    }

    /// The reads that happen every so many polls: never more often than a poll.
    fn check_refresh_intervals(&self, source_name: &str) -> Result<(), ConfigError> {
        let poll_interval = humantime::format_duration(self.poll_interval);
        if self.config_refresh_interval < self.poll_interval {
            return Err(invalid(
                source_name,
                "config_refresh_interval",
                format!(
                    "a duration of at least poll_interval ({poll_interval}); CONFIG GET is not meant for every poll"
                ),
            ));
        }
        if self.siblings_refresh_interval < self.poll_interval {
            return Err(invalid(
                source_name,
                "siblings_refresh_interval",
                format!("a duration of at least poll_interval ({poll_interval})"),
            ));
        }
        Ok(())
    }

    /// That there is something to poll, and the discovery and probe sections.
    fn check_sources(
        &self,
        targets: &[Target],
        origin: TargetOrigin<'_>,
    ) -> Result<(), ConfigError> {
        let source_name = origin.source_name;
        if targets.is_empty()
            && self.file_sd.is_empty()
            && self.cluster.is_empty()
            && self.sentinel.is_empty()
            && !self.probe.enabled
        {
            return Err(invalid(
                source_name,
                "targets",
                "at least one [[targets]] entry, a [[file_sd]], [[cluster]] or [[sentinel]] source, or an enabled [probe]",
            ));
        }
        validate_sources(&self.cluster, &self.sentinel, origin)?;
        for (index, source) in self.file_sd.iter().enumerate() {
            positive_refresh(
                source_name,
                &format!("file_sd[{index}].refresh_interval"),
                source.refresh_interval,
            )?;
        }
        if self.probe.enabled && self.probe.allowed_targets.is_empty() {
            return Err(invalid(
                source_name,
                "probe.allowed_targets",
                "at least one pattern when probe.enabled = true; an open probe endpoint is an SSRF hole",
            ));
        }
        Ok(())
    }
}

/// Validates the `[[targets]]` list; names must be unique.
fn validate_targets(
    configs: Vec<TargetConfig>,
    origin: TargetOrigin<'_>,
) -> Result<Vec<Target>, ConfigError> {
    let mut names = BTreeSet::new();
    let mut targets = Vec::with_capacity(configs.len());
    for (index, target) in configs.into_iter().enumerate() {
        let prefix = format!("targets[{index}]");
        let target = validate_target(target, &prefix, origin)?;
        if !names.insert(target.name.clone()) {
            return Err(invalid(
                origin.source_name,
                &format!("{prefix}.name"),
                format!(
                    "a name unique among targets (\"{}\" is used twice)",
                    target.name
                ),
            ));
        }
        targets.push(target);
    }
    Ok(targets)
}

/// File discovery patterns made absolute, relative to the config file's folder.
fn absolute_file_sd(sources: Vec<FileSdConfig>, base_dir: Option<&Path>) -> Vec<FileSdConfig> {
    sources
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
        .collect()
}

/// Names one target's keys in errors: `targets[3].password_file`.
#[derive(Clone, Copy)]
struct TargetKeys<'a> {
    source_name: &'a str,
    prefix: &'a str,
}

impl TargetKeys<'_> {
    fn invalid(&self, field: &str, expected: impl Into<String>) -> ConfigError {
        invalid(
            self.source_name,
            &format!("{}.{field}", self.prefix),
            expected,
        )
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
    let keys = TargetKeys {
        source_name,
        prefix: key_prefix,
    };
    let parsed = parse_url(&target.url).map_err(|expected| keys.invalid("url", expected))?;
    let name = target.name.clone().unwrap_or(parsed.display.clone());
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(keys.invalid("name", "a non-empty printable name"));
    }
    let labels = validate_labels(&target.labels, keys)?;
    let username = match (&target.username, parsed.username) {
        (Some(_), Some(_)) => {
            return Err(keys.invalid(
                "username",
                "a username in either `username` or the URL, not both",
            ))
        }
        (a, b) => a.clone().or(b),
    };
    let password = password_source(&target, parsed.password, base_dir, keys)?;
    let config_command = target
        .config_command
        .clone()
        .unwrap_or_else(|| defaults.config_command.clone());
    if config_command
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(keys.invalid(
            "config_command",
            "a single command name without spaces, or \"\" to turn CONFIG GET off",
        ));
    }
    let is_tls = matches!(parsed.address, Address::Tcp { tls: true, .. });
    let tls = tls_client(&target, is_tls, base_dir, keys)?;
    Ok(Target {
        name,
        labels,
        address: parsed.address,
        username,
        password,
        rdb_max_age: target.rdb_max_age.unwrap_or(defaults.rdb_max_age),
        config_command: Some(config_command).filter(|c| !c.is_empty()),
        log_file: target.log_file.map(|p| relative_to(base_dir, p)),
        data_dir: target.data_dir.map(|p| relative_to(base_dir, p)),
        tls,
    })
}

/// A target's extra labels: valid Prometheus names, none of the exporter's own.
fn validate_labels(
    labels: &BTreeMap<String, String>,
    keys: TargetKeys<'_>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut valid = Vec::with_capacity(labels.len());
    for (label, value) in labels {
        if !is_valid_label_name(label) {
            return Err(keys.invalid(
                &format!("labels.{label}"),
                "a label name matching [a-zA-Z_][a-zA-Z0-9_]* not starting with __",
            ));
        }
        if RESERVED_LABELS.contains(&label.as_str()) {
            return Err(keys.invalid(
                &format!("labels.{label}"),
                format!(
                    "a label name other than the exporter's own ({})",
                    RESERVED_LABELS.join(", ")
                ),
            ));
        }
        valid.push((label.clone(), value.clone()));
    }
    Ok(valid)
}

/// Where a target's password comes from: at most one of `password`, `password_file`,
/// `password_env` and the URL. A file or variable must be readable now.
fn password_source(
    target: &TargetConfig,
    url_password: Option<String>,
    base_dir: Option<&Path>,
    keys: TargetKeys<'_>,
) -> Result<Option<PasswordSource>, ConfigError> {
    const ONLY_ONE: &str =
        "only one of `password`, `password_file`, `password_env` or a password in the URL";
    let source = match (
        target.password.clone(),
        target.password_file.clone(),
        url_password,
    ) {
        (None, None, None) => match &target.password_env {
            Some(name) if std::env::var_os(name).is_none() => {
                return Err(keys.invalid(
                    "password_env",
                    // The name is not quoted: it may be the password put in the wrong key.
                    "the name of a set environment variable (it is not set)",
                ));
            }
            Some(name) => Some(PasswordSource::Env(name.clone())),
            None => None,
        },
        (Some(p), None, None) | (None, None, Some(p)) => {
            Some(PasswordSource::Inline(Secret::new(p)))
        }
        (None, Some(path), None) => {
            let path = relative_to(base_dir, path);
            // Neither the path nor the content is quoted: a misplaced password would be either.
            read_password_file(&path).map_err(|e| {
                keys.invalid(
                    "password_file",
                    format!(
                        "the path of a regular file of at most {MAX_PASSWORD_FILE_BYTES} bytes holding the password ({e})"
                    ),
                )
            })?;
            Some(PasswordSource::File(path))
        }
        _ => return Err(keys.invalid("password", ONLY_ONE)),
    };
    if target.password_env.is_some() && !matches!(source, Some(PasswordSource::Env(_))) {
        return Err(keys.invalid("password_env", ONLY_ONE));
    }
    Ok(source)
}

/// The TLS client settings of a `rediss://` target; `tls_*` keys on any other are an error.
fn tls_client(
    target: &TargetConfig,
    is_tls: bool,
    base_dir: Option<&Path>,
    keys: TargetKeys<'_>,
) -> Result<Option<TlsClient>, ConfigError> {
    let tls_keys_used = target.tls_ca_file.is_some()
        || target.tls_cert_file.is_some()
        || target.tls_key_file.is_some()
        || target.tls_server_name.is_some()
        || target.tls_insecure_skip_verify;
    if tls_keys_used && !is_tls {
        return Err(keys.invalid(
            "url",
            "a rediss:// URL, since tls_* keys are set for this target",
        ));
    }
    let readable = |field: &str, path: &Option<PathBuf>| -> Result<Option<PathBuf>, ConfigError> {
        match path.clone().map(|p| relative_to(base_dir, p)) {
            Some(path) => match std::fs::metadata(&path) {
                Ok(_) => Ok(Some(path)),
                Err(e) => Err(keys.invalid(
                    field,
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
            return Err(keys.invalid(
                "tls_cert_file",
                "tls_cert_file and tls_key_file together, or neither",
            ))
        }
    };
    if !is_tls {
        return Ok(None);
    }
    Ok(Some(TlsClient {
        ca_file: readable("tls_ca_file", &target.tls_ca_file)?,
        client_cert,
        server_name: target.tls_server_name.clone(),
        insecure_skip_verify: target.tls_insecure_skip_verify,
    }))
}

fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_');
    first_ok && !name.starts_with("__") && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks the `[[cluster]]` and `[[sentinel]]` sections at load time, so a bad seed URL or an
/// unreadable password file is a config error rather than a runtime warning.
fn validate_sources(
    clusters: &[ClusterSdConfig],
    sentinels: &[SentinelSdConfig],
    origin: TargetOrigin<'_>,
) -> Result<(), ConfigError> {
    let invalid = |key: String, expected: &str| ConfigError::Invalid {
        source_name: origin.source_name.to_owned(),
        key,
        expected: expected.to_owned(),
    };
    let check_name = |key: String, name: &str, seen: &mut BTreeSet<String>| {
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == '/') {
            return Err(invalid(key, "a non-empty printable name without `/`"));
        }
        if !seen.insert(name.to_owned()) {
            return Err(invalid(key, "a name unique among sources of this kind"));
        }
        Ok(())
    };
    let check_contacts = |key: &str, entries: &[String], template: &TargetTemplate| {
        if entries.is_empty() {
            return Err(invalid(
                key.to_owned(),
                "at least one `host:port` or redis:// URL",
            ));
        }
        for (index, entry) in entries.iter().enumerate() {
            template.build(
                template.url_for(entry),
                None,
                BTreeMap::new(),
                &format!("{key}[{index}]"),
                origin,
            )?;
        }
        Ok(())
    };
    let mut names = BTreeSet::new();
    for (index, cluster) in clusters.iter().enumerate() {
        let prefix = format!("cluster[{index}]");
        check_name(format!("{prefix}.name"), &cluster.name, &mut names)?;
        check_contacts(
            &format!("{prefix}.seeds"),
            &cluster.seeds,
            &cluster.defaults,
        )?;
        positive_refresh(
            origin.source_name,
            &format!("{prefix}.refresh_interval"),
            cluster.refresh_interval,
        )?;
    }
    let mut names = BTreeSet::new();
    for (index, sentinel) in sentinels.iter().enumerate() {
        let prefix = format!("sentinel[{index}]");
        check_name(format!("{prefix}.name"), &sentinel.name, &mut names)?;
        check_contacts(
            &format!("{prefix}.sentinels"),
            &sentinel.sentinels,
            &sentinel.sentinel_auth,
        )?;
        if sentinel
            .masters
            .iter()
            .any(|m| m.is_empty() || m.contains('/'))
        {
            return Err(invalid(
                format!("{prefix}.masters"),
                "master names as given to `sentinel monitor`, non-empty and without `/`",
            ));
        }
        positive_refresh(
            origin.source_name,
            &format!("{prefix}.refresh_interval"),
            sentinel.refresh_interval,
        )?;
    }
    Ok(())
}

/// A discovery source's refresh interval: zero would re-read its files or ask its nodes in a
/// busy loop.
fn positive_refresh(source_name: &str, key: &str, every: Duration) -> Result<(), ConfigError> {
    if every.is_zero() {
        return Err(ConfigError::Invalid {
            source_name: source_name.to_owned(),
            key: key.to_owned(),
            expected: "a duration greater than zero, like \"30s\"".into(),
        });
    }
    Ok(())
}
