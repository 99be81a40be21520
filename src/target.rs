//! The runtime description of one Redis to poll: where it listens, how to authenticate and
//! which TLS settings to use. Plain data and URL parsing, with no dependency on the rest of
//! the crate, so every layer above (config, the Redis client, discovery, the poller) can share
//! it without importing each other.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Reads a password file, trimming surrounding whitespace.
pub fn read_password_file(path: &Path) -> Result<Secret, std::io::Error> {
    let text = std::fs::read_to_string(path)?;
    Ok(Secret::new(text.trim()))
}

/// A target URL taken apart.
pub struct ParsedUrl {
    /// Where the target listens.
    pub address: Address,
    /// The URL without credentials, used as the default name.
    pub display: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Parses a target URL. The error never quotes the URL, which may hold a password.
pub fn parse_url(raw: &str) -> Result<ParsedUrl, String> {
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
