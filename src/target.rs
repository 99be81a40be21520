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
    /// The password to send now, reading the file if the password lives in one. Never blocks
    /// on a FIFO or device (see [`read_password_file`]), but does a little file I/O: the
    /// poller uses [`Target::load_password`] instead.
    pub fn current_password(&self) -> Result<Option<Secret>, PasswordError> {
        match &self.password {
            None => Ok(None),
            Some(PasswordSource::Inline(secret)) => Ok(Some(secret.clone())),
            Some(PasswordSource::File(path)) => read_password_file(path).map(Some),
            Some(PasswordSource::Env(name)) => std::env::var(name)
                .map(|v| Some(Secret::new(v)))
                .map_err(|_| PasswordError::EnvUnset),
        }
    }

    /// [`Target::current_password`] off the async workers and within
    /// [`PASSWORD_READ_TIMEOUT`]: a file on a hung network filesystem must not stall the
    /// runtime that serves `/metrics` and handles signals.
    pub async fn load_password(&self) -> Result<Option<Secret>, PasswordError> {
        if !matches!(self.password, Some(PasswordSource::File(_))) {
            return self.current_password();
        }
        let target = self.clone();
        let read = tokio::task::spawn_blocking(move || target.current_password());
        match tokio::time::timeout(PASSWORD_READ_TIMEOUT, read).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PasswordError::Read(std::io::ErrorKind::Other)),
            Err(_) => Err(PasswordError::Timeout(PASSWORD_READ_TIMEOUT)),
        }
    }
}

/// The largest password file read. Redis passwords are at most a few hundred bytes; anything
/// bigger is the wrong file (or `/dev/zero`), and reading it whole could exhaust memory.
pub const MAX_PASSWORD_FILE_BYTES: u64 = 4096;

/// How long reading a password file may take before the connect fails: a local file takes
/// microseconds, so a second means a hung filesystem.
pub const PASSWORD_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a password could not be read. Never holds the path or the content: either may be the
/// secret itself when the config is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The file could not be opened.
    #[error("cannot open the file ({0})")]
    Open(std::io::ErrorKind),
    /// A FIFO, device, socket or directory: reading it could block forever or never end.
    #[error("not a regular file")]
    NotRegular,
    /// Over [`MAX_PASSWORD_FILE_BYTES`].
    #[error("larger than {MAX_PASSWORD_FILE_BYTES} bytes")]
    TooLarge,
    /// Reading failed part way, or the text is not UTF-8.
    #[error("cannot read the file ({0})")]
    Read(std::io::ErrorKind),
    /// Reading took longer than [`PASSWORD_READ_TIMEOUT`].
    #[error("not read within {0:?}")]
    Timeout(Duration),
    /// `password_env` names a variable that is not set.
    #[error("the password environment variable is not set")]
    EnvUnset,
}

impl Target {
    /// A plain TCP target at `host:port` named `name` with every optional setting off (no
    /// labels, credentials, TLS, `CONFIG` reads, log or data dir; RDB max age 1 minute): the
    /// base that unit tests and benchmarks build their targets from.
    pub fn plain_tcp(name: &str, host: &str, port: u16) -> Target {
        Target {
            name: name.to_owned(),
            labels: vec![],
            address: Address::Tcp {
                host: host.to_owned(),
                port,
                tls: false,
            },
            username: None,
            password: None,
            rdb_max_age: Duration::from_secs(60),
            config_command: None,
            log_file: None,
            data_dir: None,
            tls: None,
        }
    }

    /// [`Target::plain_tcp`] at a placeholder address, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(name: &str) -> Target {
        Target::plain_tcp(name, "h", 1)
    }
}

/// Reads a password file, trimming surrounding whitespace. Only a regular file of at most
/// [`MAX_PASSWORD_FILE_BYTES`] is read. The open is non-blocking, because opening a FIFO
/// for reading otherwise waits for a writer, and the type is checked on the opened handle,
/// so a file swapped after a check cannot slip through. Symlinks are followed: mounted
/// Kubernetes Secrets are symlinks.
pub fn read_password_file(path: &Path) -> Result<Secret, PasswordError> {
    use rustix::fs::{Mode, OFlags};
    use std::io::Read;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = rustix::fs::open(path, flags, Mode::empty())
        .map_err(|e| PasswordError::Open(std::io::Error::from(e).kind()))?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(|e| PasswordError::Read(e.kind()))?;
    if !meta.is_file() {
        return Err(PasswordError::NotRegular);
    }
    let mut bytes = Vec::new();
    file.take(MAX_PASSWORD_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PasswordError::Read(e.kind()))?;
    if bytes.len() as u64 > MAX_PASSWORD_FILE_BYTES {
        return Err(PasswordError::TooLarge);
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| PasswordError::Read(std::io::ErrorKind::InvalidData))?;
    Ok(Secret::new(text.trim()))
}

/// The most bytes of peer-chosen text put in one log line or message.
pub const MAX_UNTRUSTED_BYTES: usize = 1024;

/// Text a peer chose (a Redis error reply, a discovery file) made safe for a log line: control
/// characters are escaped (`\u{1b}`), so they cannot recolour or ring a terminal or forge a
/// line, and the text is cut at [`MAX_UNTRUSTED_BYTES`] with a trailing `…`.
pub fn escape_untrusted(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_UNTRUSTED_BYTES && !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(MAX_UNTRUSTED_BYTES) + 8);
    for c in text.chars() {
        if out.len() >= MAX_UNTRUSTED_BYTES {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_is_escaped_and_bounded() {
        assert_eq!(escape_untrusted("ERR plain"), "ERR plain");
        assert_eq!(
            escape_untrusted("ERR \x1b[31mred\x07\r\nforged"),
            "ERR \\u{1b}[31mred\\u{7}\\r\\nforged"
        );
        let long = escape_untrusted(&"\x1b".repeat(10_000)).into_owned();
        assert!(long.len() <= MAX_UNTRUSTED_BYTES + 16, "{}", long.len());
        assert!(!long.contains('\x1b'));
    }

    #[test]
    fn password_files_are_regular_small_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, "  s3cret\n").unwrap();
        assert_eq!(read_password_file(&good).unwrap().expose(), "s3cret");

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; MAX_PASSWORD_FILE_BYTES as usize + 1]).unwrap();
        assert_eq!(read_password_file(&big), Err(PasswordError::TooLarge));

        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Without a writer, a blocking open would wait forever here.
        assert_eq!(read_password_file(&fifo), Err(PasswordError::NotRegular));
        assert_eq!(
            read_password_file(Path::new("/dev/zero")),
            Err(PasswordError::NotRegular)
        );
        assert_eq!(
            read_password_file(dir.path()),
            Err(PasswordError::NotRegular)
        );
        assert!(matches!(
            read_password_file(&dir.path().join("absent")),
            Err(PasswordError::Open(std::io::ErrorKind::NotFound))
        ));
    }
}
