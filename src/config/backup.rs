//! The `[backup]` section and each target's `backup` table: where the Last Successful Backup
//! of a target is found. Read here, checked at load time, and resolved per target name so
//! that discovered targets inherit the top-level section.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::target::{read_password_file, PasswordSource};

/// The placeholder a backup URL may hold: replaced by the target's name.
pub const TARGET_PLACEHOLDER: &str = "{target}";

/// A backup source, as written in `[backup]` or in a target's `backup = { … }`. A target's
/// keys override the top-level ones key by key.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Where the backups are: `file:///mnt/backups/{target}/*.rdb` (the newest file matching
    /// the glob, by modification time) or `s3://bucket/prefix/{target}/` (the newest object
    /// under the prefix, by last-modified time). `{target}` is replaced by the target's name,
    /// matched literally. Without a URL a target has no backup source and the exporter says
    /// it cannot tell whether an offsite backup exists.
    pub url: Option<String>,
    /// After how long without a newer backup the newest one counts as stale, exported as
    /// `redis_backup_max_age_seconds` for the `RedisBackupStale` alert. Default 26h (a daily
    /// backup plus two hours of slack).
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
    /// How often the source is read, by its own task, never on a poll or a scrape. Default 5m.
    #[serde(default, with = "humantime_serde")]
    pub refresh_interval: Option<Duration>,
    /// How long one read of the source may take before it fails with reason `timeout`. At
    /// most refresh_interval. Default 30s.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// `s3://` only: the S3-compatible endpoint, e.g. `https://minio.internal:9000`. Default:
    /// `AWS_ENDPOINT_URL`, else AWS itself.
    pub endpoint: Option<String>,
    /// `s3://` only: the region. Default: `AWS_REGION`, else us-east-1.
    pub region: Option<String>,
    /// `s3://` only: the access key id. Default: `AWS_ACCESS_KEY_ID` (and the rest of the
    /// standard AWS environment and instance credentials).
    pub access_key_id: Option<String>,
    /// `s3://` only: a file holding the secret access key, re-read at every check so a
    /// rotated key needs no restart. Relative to the config file's folder. Never logged or
    /// exported.
    pub secret_access_key_file: Option<PathBuf>,
    /// `s3://` only: the name of an environment variable holding the secret access key.
    /// Never logged or exported.
    pub secret_access_key_env: Option<String>,
    /// `s3://` only: allow a plain-HTTP `endpoint`. Only for a loopback endpoint (127.0.0.1,
    /// ::1, localhost), such as a local test server: credentials are signed, not encrypted.
    pub allow_http: Option<bool>,
}

// Hand-written to match TargetConfig's: a future inline secret key must not leak via `{:?}`.
impl fmt::Debug for BackupConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupConfig")
            .field("url", &self.url)
            .field("max_age", &self.max_age)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key_file", &self.secret_access_key_file)
            .field("secret_access_key_env", &self.secret_access_key_env)
            .finish_non_exhaustive()
    }
}

impl BackupConfig {
    /// `self`'s keys, falling back to `base`'s.
    fn over(&self, base: &BackupConfig) -> BackupConfig {
        BackupConfig {
            url: self.url.clone().or_else(|| base.url.clone()),
            max_age: self.max_age.or(base.max_age),
            refresh_interval: self.refresh_interval.or(base.refresh_interval),
            timeout: self.timeout.or(base.timeout),
            endpoint: self.endpoint.clone().or_else(|| base.endpoint.clone()),
            region: self.region.clone().or_else(|| base.region.clone()),
            access_key_id: self
                .access_key_id
                .clone()
                .or_else(|| base.access_key_id.clone()),
            secret_access_key_file: self
                .secret_access_key_file
                .clone()
                .or_else(|| base.secret_access_key_file.clone()),
            secret_access_key_env: self
                .secret_access_key_env
                .clone()
                .or_else(|| base.secret_access_key_env.clone()),
            allow_http: self.allow_http.or(base.allow_http),
        }
    }
}

/// Where one target's backups are and how often to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSource {
    /// The URL with `{target}` replaced: shown on the status page, never holds a secret.
    pub display: String,
    /// Where to look.
    pub location: BackupLocation,
    /// See [`BackupConfig::max_age`].
    pub max_age: Duration,
    /// See [`BackupConfig::refresh_interval`].
    pub refresh_interval: Duration,
    /// See [`BackupConfig::timeout`].
    pub timeout: Duration,
}

/// The kind of store a backup source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupLocation {
    /// Local or mounted files: the newest match of this glob.
    Files {
        /// An absolute glob pattern.
        pattern: String,
    },
    /// An S3-compatible object store: the newest object whose key starts with `prefix`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, possibly empty.
        prefix: String,
        /// How to reach and sign in to the store.
        options: S3Options,
    },
}

/// How to reach an S3-compatible store; unset keys come from the standard AWS environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// See [`BackupConfig::endpoint`].
    pub endpoint: Option<String>,
    /// See [`BackupConfig::region`].
    pub region: Option<String>,
    /// See [`BackupConfig::access_key_id`].
    pub access_key_id: Option<String>,
    /// Where the secret access key is read from (file or environment only, never inline).
    pub secret_access_key: Option<PasswordSource>,
    /// See [`BackupConfig::allow_http`].
    pub allow_http: bool,
}

/// Every target's backup source: the top-level default and per-target overrides, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupSettings {
    default: BackupConfig,
    overrides: BTreeMap<String, BackupConfig>,
}

impl BackupSettings {
    /// The backup source of the target named `name`, or `None` when it has none. Discovered
    /// targets get the top-level `[backup]`.
    pub fn for_target(&self, name: &str) -> Option<BackupSource> {
        let config = self.overrides.get(name).unwrap_or(&self.default);
        // Checked at load time with a stand-in name; only the name can differ here.
        resolve(config, name).ok().flatten()
    }
}

/// Checks the top-level `[backup]` and each target's `backup` (keyed by target name, with the
/// key prefix errors name) and returns them ready to resolve.
pub fn validate(
    default: Option<BackupConfig>,
    per_target: Vec<(String, String, BackupConfig)>,
    source_name: &str,
    base_dir: Option<&Path>,
) -> Result<BackupSettings, ConfigError> {
    let default = absolute(default.unwrap_or_default(), base_dir);
    check(&default, "backup", source_name)?;
    let mut overrides = BTreeMap::new();
    for (name, key, config) in per_target {
        let merged = absolute(config, base_dir).over(&default);
        check(&merged, &key, source_name)?;
        overrides.insert(name, merged);
    }
    Ok(BackupSettings { default, overrides })
}

fn absolute(mut config: BackupConfig, base_dir: Option<&Path>) -> BackupConfig {
    if let (Some(base), Some(path)) = (base_dir, &config.secret_access_key_file) {
        if path.is_relative() {
            config.secret_access_key_file = Some(base.join(path));
        }
    }
    config
}

fn check(config: &BackupConfig, prefix: &str, source_name: &str) -> Result<(), ConfigError> {
    let invalid = |field: &str, expected: String| ConfigError::Invalid {
        source_name: source_name.to_owned(),
        key: format!("{prefix}.{field}"),
        expected,
    };
    for (field, value) in [
        ("max_age", config.max_age),
        ("refresh_interval", config.refresh_interval),
        ("timeout", config.timeout),
    ] {
        if value.is_some_and(|d| d.is_zero()) {
            return Err(invalid(field, "a duration greater than zero".into()));
        }
    }
    let source = resolve(config, "target").map_err(|(field, expected)| invalid(field, expected))?;
    let Some(source) = source else {
        return Ok(());
    };
    if source.timeout > source.refresh_interval {
        return Err(invalid(
            "timeout",
            format!(
                "a duration of at most refresh_interval ({})",
                humantime::format_duration(source.refresh_interval)
            ),
        ));
    }
    if let Some(path) = &config.secret_access_key_file {
        read_password_file(path).map_err(|e| {
            invalid(
                "secret_access_key_file",
                format!("a readable file ({}: {e})", path.display()),
            )
        })?;
    }
    if let Some(name) = &config.secret_access_key_env {
        if std::env::var_os(name).is_none() {
            return Err(invalid(
                "secret_access_key_env",
                format!("the name of a set environment variable ({name} is not set)"),
            ));
        }
    }
    Ok(())
}

/// The source for the target `name`, `Ok(None)` without a URL. The error is `(key, expected)`
/// and never quotes a secret (there is none in these keys: secrets come from files or env).
fn resolve(
    config: &BackupConfig,
    name: &str,
) -> Result<Option<BackupSource>, (&'static str, String)> {
    let Some(template) = &config.url else {
        return Ok(None);
    };
    let s3_keys = config.endpoint.is_some()
        || config.region.is_some()
        || config.access_key_id.is_some()
        || config.secret_access_key_file.is_some()
        || config.secret_access_key_env.is_some()
        || config.allow_http.is_some();
    let without_placeholder = template.replace(TARGET_PLACEHOLDER, "");
    if without_placeholder.contains(['{', '}']) {
        return Err((
            "url",
            format!("no placeholder other than {TARGET_PLACEHOLDER}"),
        ));
    }
    let location = if let Some(path) = template.strip_prefix("file://") {
        if s3_keys {
            return Err((
                "endpoint",
                "S3 keys (endpoint, region, access_key_id, secret_access_key_*, allow_http) only with an s3:// url".into(),
            ));
        }
        if !path.starts_with('/') {
            return Err((
                "url",
                "a file URL with an absolute path, like file:///mnt/backups/{target}/*.rdb".into(),
            ));
        }
        // The name is data, not a pattern: `[`, `*` or `?` in it match themselves.
        let pattern = path.replace(TARGET_PLACEHOLDER, &glob::Pattern::escape(name));
        glob::Pattern::new(&pattern).map_err(|e| ("url", format!("a valid glob pattern ({e})")))?;
        BackupLocation::Files { pattern }
    } else if let Some(rest) = template.strip_prefix("s3://") {
        let rest = rest.replace(TARGET_PLACEHOLDER, name);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((&rest, ""));
        if bucket.is_empty() || bucket.contains(['@', ':', '?', '#']) {
            return Err((
                "url",
                "an S3 URL like s3://bucket/prefix/{target}/ (credentials go in access_key_id and secret_access_key_file)".into(),
            ));
        }
        BackupLocation::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            options: s3_options(config)?,
        }
    } else {
        return Err((
            "url",
            "a file:///path/glob or s3://bucket/prefix URL".into(),
        ));
    };
    Ok(Some(BackupSource {
        display: template.replace(TARGET_PLACEHOLDER, name),
        location,
        max_age: config.max_age.unwrap_or(DEFAULT_MAX_AGE),
        refresh_interval: config.refresh_interval.unwrap_or(DEFAULT_REFRESH_INTERVAL),
        timeout: config.timeout.unwrap_or(DEFAULT_TIMEOUT),
    }))
}

fn s3_options(config: &BackupConfig) -> Result<S3Options, (&'static str, String)> {
    let allow_http = config.allow_http.unwrap_or(false);
    if let Some(endpoint) = &config.endpoint {
        let url = url::Url::parse(endpoint).map_err(|e| {
            (
                "endpoint",
                format!("a URL like https://minio.internal:9000 ({e})"),
            )
        })?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => {
                return Err((
                    "allow_http",
                    "true for a plain-HTTP endpoint (loopback endpoints only)".into(),
                ))
            }
            _ => return Err(("endpoint", "an http:// or https:// URL".into())),
        }
    }
    if allow_http && !config.endpoint.as_deref().is_some_and(is_loopback_url) {
        return Err((
            "allow_http",
            "false unless endpoint is a loopback address (127.0.0.1, ::1, localhost): credentials would cross the network unencrypted".into(),
        ));
    }
    let secret = match (
        &config.secret_access_key_file,
        &config.secret_access_key_env,
    ) {
        (Some(_), Some(_)) => {
            return Err((
                "secret_access_key_file",
                "only one of secret_access_key_file and secret_access_key_env".into(),
            ))
        }
        (Some(path), None) => Some(PasswordSource::File(path.clone())),
        (None, Some(name)) => Some(PasswordSource::Env(name.clone())),
        (None, None) => None,
    };
    if config.access_key_id.is_some() != secret.is_some() {
        return Err((
            "access_key_id",
            "access_key_id together with secret_access_key_file or secret_access_key_env, or neither (then the AWS environment is used)".into(),
        ));
    }
    Ok(S3Options {
        endpoint: config.endpoint.clone(),
        region: config.region.clone(),
        access_key_id: config.access_key_id.clone(),
        secret_access_key: secret,
        allow_http,
    })
}

/// Whether `endpoint` is an http(s) URL whose host is this machine.
pub fn is_loopback_url(endpoint: &str) -> bool {
    let Ok(url) = url::Url::parse(endpoint) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

const DEFAULT_MAX_AGE: Duration = Duration::from_secs(26 * 3600);
const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<super::super::Settings, ConfigError> {
        let file: super::super::FileConfig = toml_config(text);
        file.validate("test.toml", None)
    }

    fn toml_config(text: &str) -> super::super::FileConfig {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("shape")
    }

    const TARGETS: &str = "[[targets]]\nurl = \"redis://10.0.0.7:6379\"\nname = \"orders\"\n\
        backup = { url = \"file:///srv/backup/orders-*.rdb\", max_age = \"8h\" }\n\
        [[targets]]\nurl = \"redis://10.0.0.8:6379\"\nname = \"cache[1]\"\n";

    #[test]
    fn the_template_names_the_target_and_a_target_overrides_key_by_key() {
        let settings = parse(&format!(
            "[backup]\nurl = \"s3://redis-backups/{{target}}/\"\nmax_age = \"26h\"\nrefresh_interval = \"10m\"\n{TARGETS}"
        ))
        .unwrap();
        let orders = settings.backup.for_target("orders").unwrap();
        assert_eq!(
            orders.location,
            BackupLocation::Files {
                pattern: "/srv/backup/orders-*.rdb".into()
            }
        );
        assert_eq!(orders.max_age, Duration::from_secs(8 * 3600));
        assert_eq!(
            orders.refresh_interval,
            Duration::from_secs(600),
            "inherited"
        );
        let cache = settings.backup.for_target("cache[1]").unwrap();
        assert_eq!(cache.display, "s3://redis-backups/cache[1]/");
        match cache.location {
            BackupLocation::S3 { bucket, prefix, .. } => {
                assert_eq!(
                    (bucket.as_str(), prefix.as_str()),
                    ("redis-backups", "cache[1]/")
                );
            }
            other => panic!("{other:?}"),
        }
        let discovered = settings.backup.for_target("c1/10.0.0.9:6379").unwrap();
        assert_eq!(discovered.display, "s3://redis-backups/c1/10.0.0.9:6379/");
    }

    #[test]
    fn glob_characters_in_a_name_match_themselves() {
        let settings = parse(&format!(
            "[backup]\nurl = \"file:///b/{{target}}/*.rdb\"\n{TARGETS}"
        ))
        .unwrap();
        let cache = settings.backup.for_target("cache[1]").unwrap();
        assert_eq!(
            cache.location,
            BackupLocation::Files {
                pattern: "/b/cache[[]1[]]/*.rdb".into()
            }
        );
    }

    #[test]
    fn the_shipped_example_shows_a_default_and_an_override() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
        let settings = super::super::load_with_env(Some(&path), Vec::new()).unwrap();
        let cache = settings.backup.for_target("cache-1").unwrap();
        assert_eq!(cache.max_age, Duration::from_secs(8 * 3600));
        let queue = settings.backup.for_target("queue-1").unwrap();
        assert_eq!(queue.display, "s3://redis-backups/queue-1/");
    }

    #[test]
    fn without_a_url_there_is_no_source() {
        let settings = parse("[[targets]]\nurl = \"redis://h:1\"\n").unwrap();
        assert_eq!(settings.backup.for_target("redis://h:1"), None);
    }

    #[test]
    fn bad_sources_name_the_key() {
        for (section, key) in [
            ("url = \"ftp://x/y\"", "backup.url"),
            ("url = \"file://relative/*.rdb\"", "backup.url"),
            ("url = \"file:///b/{name}.rdb\"", "backup.url"),
            ("url = \"s3:///prefix\"", "backup.url"),
            ("url = \"file:///b/*.rdb\"\nregion = \"eu-west-1\"", "backup.endpoint"),
            ("url = \"s3://b/\"\nmax_age = \"0s\"", "backup.max_age"),
            ("url = \"s3://b/\"\ntimeout = \"10m\"\nrefresh_interval = \"5m\"", "backup.timeout"),
            ("url = \"s3://b/\"\nendpoint = \"http://minio.internal:9000\"", "backup.allow_http"),
            ("url = \"s3://b/\"\nendpoint = \"http://10.0.0.5:9000\"\nallow_http = true", "backup.allow_http"),
            ("url = \"s3://b/\"\naccess_key_id = \"AKIA\"", "backup.access_key_id"),
            ("url = \"s3://b/\"\naccess_key_id = \"AKIA\"\nsecret_access_key_file = \"/nonexistent/key\"", "backup.secret_access_key_file"),
            ("url = \"s3://b/\"\naccess_key_id = \"AKIA\"\nsecret_access_key_env = \"BACKUP_TEST_NOT_SET_ANYWHERE\"", "backup.secret_access_key_env"),
        ] {
            let error = parse(&format!("[backup]\n{section}\n[[targets]]\nurl = \"redis://h:1\"\n"))
                .expect_err(section);
            match error {
                ConfigError::Invalid { key: found, .. } => assert_eq!(found, key, "{section}"),
                other => panic!("{section}: {other}"),
            }
        }
        let error = parse("[[targets]]\nurl = \"redis://h:1\"\nbackup = { url = \"s3://\" }\n")
            .unwrap_err();
        assert!(
            error.to_string().contains("targets[0].backup.url"),
            "{error}"
        );
    }

    #[test]
    fn loopback_http_is_allowed_when_asked() {
        let settings = parse(
            "[backup]\nurl = \"s3://b/{target}/\"\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\n[[targets]]\nurl = \"redis://h:1\"\nname = \"t\"\n",
        )
        .unwrap();
        assert!(settings.backup.for_target("t").is_some());
        assert!(is_loopback_url("http://localhost:1"));
        assert!(is_loopback_url("http://[::1]:1"));
        assert!(!is_loopback_url("http://127.0.0.1.example.com:1"));
    }

    #[test]
    fn the_secret_key_never_shows() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "TOPSECRETKEYVALUE\n").unwrap();
        let text = format!(
            "[backup]\nurl = \"s3://b/{{target}}/\"\naccess_key_id = \"AKIA\"\nsecret_access_key_file = \"{}\"\n[[targets]]\nurl = \"redis://h:1\"\nname = \"t\"\n",
            key.display()
        );
        let settings = parse(&text).unwrap();
        let shown = format!("{settings:?} {:?}", toml_config(&text));
        assert!(!shown.contains("TOPSECRETKEYVALUE"), "{shown}");
        // A bad key elsewhere: the error names keys and files, never the secret.
        let error = parse(&text.replace("s3://b/", "s3://b/{x}")).unwrap_err();
        assert!(!error.to_string().contains("TOPSECRETKEYVALUE"), "{error}");
    }
}
