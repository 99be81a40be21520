//! An open, authenticated connection to one target, and the few commands the exporter sends.

use std::time::Duration;

use fred::bytes_utils::Str;
use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::config::{Config, ConnectionConfig, PerformanceConfig, ServerConfig};
use fred::types::{ClusterHash, CustomCommand, Value};

use super::relay::{self, Cut, CutCell};
use crate::target::Target;

/// Sections asked for in the single `INFO` call: persistence, plus the siblings that explain it.
pub const INFO_SECTIONS: &[&str] = &["server", "memory", "persistence", "stats", "replication"];

/// The largest reply accepted. `INFO` of every section is a few KiB even with dozens of
/// replicas; anything near this is not a Redis answering `INFO`.
pub const MAX_REPLY_BYTES: usize = 1 << 20;

/// Why talking to a target failed. [`ClientError::reason`] is the bounded `reason` label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server refused the TCP connection or the socket file is absent.
    #[error("connection refused: {0}")]
    Refused(String),
    /// Authentication failed (wrong or missing password, unknown user).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The ACL user may not run the command.
    #[error("permission denied: {0}")]
    Permission(String),
    /// TLS handshake or certificate problem.
    #[error("TLS failure: {0}")]
    Tls(String),
    /// The reply was not valid RESP, nested too deep or too many elements for the relay, or
    /// not what the command returns.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server answered with an error reply.
    #[error("server error reply: {0}")]
    Server(String),
    /// Any other I/O failure: reset, closed mid-reply, unreachable.
    #[error("I/O error: {0}")]
    Io(String),
    /// The client's own deadline passed.
    #[error("no answer in time")]
    Timeout,
    /// The password file could not be read.
    #[error("cannot read password file: {0}")]
    PasswordFile(String),
    /// The server sent more than [`MAX_REPLY_BYTES`] in answer to one command.
    #[error("reply larger than {MAX_REPLY_BYTES} bytes; connection closed")]
    ReplyTooLarge,
}

impl ClientError {
    /// The bounded `reason` label value for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            ClientError::Refused(_) => "refused",
            ClientError::Auth(_) => "auth",
            ClientError::Permission(_) => "permission",
            ClientError::Tls(_) => "tls",
            ClientError::Protocol(_) => "protocol",
            ClientError::Server(_) => "server_error",
            ClientError::Io(_) => "io",
            ClientError::Timeout => "timeout",
            ClientError::PasswordFile(_) => "password_file",
            ClientError::ReplyTooLarge => "reply_too_large",
        }
    }

    fn from_fred(error: &fred::error::Error) -> Self {
        use fred::error::ErrorKind;
        // Details are bounded: a hostile server chooses its error text.
        let details: String = error.details().chars().take(200).collect();
        let upper = details.to_ascii_uppercase();
        match error.kind() {
            ErrorKind::Auth => ClientError::Auth(details),
            _ if upper.starts_with("NOPERM") => ClientError::Permission(details),
            _ if upper.starts_with("WRONGPASS") || upper.starts_with("NOAUTH") => {
                ClientError::Auth(details)
            }
            // Redis 5 and older had no WRONGPASS: a wrong password is a plain ERR.
            _ if upper.starts_with("ERR INVALID PASSWORD") => ClientError::Auth(details),
            ErrorKind::Tls => ClientError::Tls(details),
            // rustls failures surface from fred as I/O errors carrying the TLS reason.
            ErrorKind::IO
                if upper.contains("CERTIFICATE")
                    || upper.contains("HANDSHAKE")
                    || upper.contains("TLS") =>
            {
                ClientError::Tls(details)
            }
            ErrorKind::Protocol | ErrorKind::Parse => ClientError::Protocol(details),
            ErrorKind::IO if upper.contains("REFUSED") || upper.contains("NO SUCH FILE") => {
                ClientError::Refused(details)
            }
            ErrorKind::Timeout => ClientError::Timeout,
            ErrorKind::IO | ErrorKind::Canceled => ClientError::Io(details),
            _ if upper.starts_with("ERR") || upper.contains("UNKNOWN COMMAND") => {
                ClientError::Server(details)
            }
            _ => ClientError::Io(details),
        }
    }
}

impl From<Cut> for ClientError {
    fn from(cut: Cut) -> Self {
        match cut {
            Cut::TooLarge => ClientError::ReplyTooLarge,
            Cut::Shape(shape) => ClientError::Protocol(shape.to_string()),
            Cut::Tls(details) => ClientError::Tls(details),
        }
    }
}

/// How much a poll asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoScope {
    /// The persistence section only.
    Persistence,
    /// Persistence plus [`INFO_SECTIONS`]' siblings.
    Full,
}

/// Which `INFO` form the server accepts; learnt once per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InfoForm {
    /// `INFO server memory …` (Redis 7.0 and later).
    MultiSection,
    /// Plain `INFO` (default sections) for servers that reject several sections at once.
    Default,
}

/// A text reply, read where the client received it rather than copied out.
pub struct Reply(Str);

impl std::ops::Deref for Reply {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// An open connection to one target.
pub struct Connection {
    client: Client,
    connection_task: tokio::task::JoinHandle<Result<(), fred::error::Error>>,
    info_form: InfoForm,
    /// Set by the relay when it cut the connection, saying why.
    cut: CutCell,
}

impl Connection {
    /// Opens and authenticates a connection. The caller bounds the time it may take.
    pub async fn open(target: &Target, connect_timeout: Duration) -> Result<Self, ClientError> {
        let password = target
            .load_password()
            .await
            .map_err(|e| ClientError::PasswordFile(e.to_string()))?;
        // The client reaches the target through a relay that enforces a byte budget per
        // reply: fred buffers any reply whole, so a hostile server could otherwise make us
        // hold gigabytes. The relay connects first, so "refused" is reported as such.
        let upstream = relay::connect(&target.address, target.tls.as_ref()).await?;
        let cut = CutCell::default();
        // Always a unix socket: for `rediss://` the relay itself speaks TLS to the target.
        let server = ServerConfig::Unix {
            path: relay::relay_unix(upstream, MAX_REPLY_BYTES, cut.clone(), connect_timeout)?,
        };
        let config = Config {
            fail_fast: true,
            username: target.username.clone(),
            password: password.map(|p| p.expose().to_owned()),
            server,
            ..Config::default()
        };
        let connection = ConnectionConfig {
            connection_timeout: connect_timeout,
            internal_command_timeout: connect_timeout,
            max_command_attempts: 1,
            auto_client_setname: false,
            ..ConnectionConfig::default()
        };
        // No reconnect policy: the poller decides when to reconnect.
        let client = Client::new(
            config,
            // fred keeps several event broadcast channels per client. Only the connect events
            // are read (by `wait_for_connect`), so a small capacity saves memory per target;
            // 1 is too small: a failing handshake emits more than one event before the
            // waiter reads and it would see "channel lagged" instead of the real error.
            Some(PerformanceConfig {
                broadcast_channel_capacity: 8,
                ..PerformanceConfig::default()
            }),
            Some(connection),
            None,
        );
        // Owned by a `Connection` from the start: its `Drop` aborts fred's task whenever the
        // connect ends early, by an error or by the poll's timeout dropping this future. A
        // detached task whose handshake completed after the timeout would hold its client,
        // relay and Redis connection for the life of the process.
        let connection_task = client.connect();
        let connection = Connection {
            client,
            connection_task,
            info_form: InfoForm::MultiSection,
            cut,
        };
        let connected = tokio::select! {
            connected = connection.client.wait_for_connect() => connected,
            cut = connection.cut.cut() => return Err(cut.into()),
        };
        match connected {
            Ok(()) => Ok(connection),
            Err(error) => Err(connection.error(&error)),
        }
    }

    /// Whether the connection is still open. A server that died since the last poll has
    /// closed it; reusing it would only wait for the poll timeout.
    pub fn is_alive(&self) -> bool {
        !self.connection_task.is_finished() && self.client.is_connected()
    }

    /// Sends one `INFO` and returns the reply text. `Persistence` asks for that section only
    /// (the cheapest reply, for most polls); `Full` adds the sibling sections, and falls back
    /// to plain `INFO` once if the server rejects several sections, remembered for this
    /// connection.
    pub async fn info(&mut self, scope: InfoScope) -> Result<Reply, ClientError> {
        if scope == InfoScope::Persistence {
            return self.command("INFO", &["persistence"]).await;
        }
        if self.info_form == InfoForm::MultiSection {
            match self.command("INFO", INFO_SECTIONS).await {
                Err(ClientError::Server(_)) => self.info_form = InfoForm::Default,
                other => return other,
            }
        }
        self.command("INFO", &[]).await
    }

    /// `CONFIG GET` (or a renamed command) for the given keys, as name/value pairs.
    pub async fn config_get(
        &self,
        command: &str,
        keys: &[&'static str],
    ) -> Result<Vec<(String, String)>, ClientError> {
        let mut args = Vec::with_capacity(keys.len() + 1);
        args.push("GET");
        args.extend_from_slice(keys);
        let reply: Vec<String> = self
            .custom(command_named(command), static_args(&args))
            .await?;
        Ok(pairs(reply))
    }

    /// Any command whose reply is one string, e.g. `CLUSTER NODES`. For discovery.
    pub async fn text_command(&self, name: &str, args: &[&str]) -> Result<String, ClientError> {
        self.custom(command_named(name), owned_args(args)).await
    }

    /// Any command whose reply is a list of flat field/value lists, e.g. `SENTINEL MASTERS`
    /// or `SENTINEL REPLICAS name`. For discovery.
    pub async fn table_command(
        &self,
        name: &str,
        args: &[&str],
    ) -> Result<Vec<Vec<(String, String)>>, ClientError> {
        let rows: Vec<Vec<String>> = self.custom(command_named(name), owned_args(args)).await?;
        Ok(rows.into_iter().map(pairs).collect())
    }

    async fn command(
        &self,
        name: &'static str,
        args: &[&'static str],
    ) -> Result<Reply, ClientError> {
        self.custom(
            CustomCommand::new_static(name, ClusterHash::FirstKey, false),
            static_args(args),
        )
        .await
        .map(Reply)
    }

    /// The one place a command is sent. Arguments known at compile time are passed without
    /// a copy ([`static_args`]); the poll path sends only those.
    async fn custom<R: fred::types::FromValue>(
        &self,
        command: CustomCommand,
        args: Vec<Value>,
    ) -> Result<R, ClientError> {
        tokio::select! {
            reply = self.client.custom(command, args) => reply.map_err(|e| self.error(&e)),
            cut = self.cut.cut() => Err(cut.into()),
        }
    }

    fn error(&self, error: &fred::error::Error) -> ClientError {
        // The relay's reason first: the client saw only the connection close.
        match self.cut.get() {
            Some(cut) => cut.into(),
            None => ClientError::from_fred(error),
        }
    }
}

/// Arguments that live for the whole program, passed to fred without copying them.
fn static_args(args: &[&'static str]) -> Vec<Value> {
    args.iter()
        .map(|arg| Value::String(Str::from_static(arg)))
        .collect()
}

/// Arguments known only at run time (discovery's master names).
fn owned_args(args: &[&str]) -> Vec<Value> {
    args.iter().map(|arg| Value::from(*arg)).collect()
}

/// A command whose name is only known at run time (renamed CONFIG, discovery commands).
fn command_named(name: &str) -> CustomCommand {
    CustomCommand::new(name.to_owned(), ClusterHash::FirstKey, false)
}

/// A flat `[name, value, name, value, …]` reply as pairs.
fn pairs(flat: Vec<String>) -> Vec<(String, String)> {
    let mut pairs = Vec::with_capacity(flat.len() / 2);
    let mut items = flat.into_iter();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        pairs.push((name, value));
    }
    pairs
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Aborting the task closes the socket at once, even when the server is frozen and a
        // polite QUIT would never be answered.
        self.connection_task.abort();
    }
}

#[cfg(test)]
mod tests {
    use fred::error::{Error, ErrorKind};

    use super::ClientError;

    /// The reason a server error reply gets, as fred hands it over (an `ERR` is `Unknown`).
    fn reason(reply: &str) -> &'static str {
        ClientError::from_fred(&Error::new(ErrorKind::Unknown, reply.to_owned())).reason()
    }

    #[test]
    fn wrong_passwords_are_auth_failures_on_every_redis_version() {
        // Redis 5 and older.
        assert_eq!(reason("ERR invalid password"), "auth");
        // Redis 6 and later.
        assert_eq!(
            reason("WRONGPASS invalid username-password pair or user is disabled."),
            "auth"
        );
        assert_eq!(reason("NOAUTH Authentication required."), "auth");
        // Other ERR replies stay server errors.
        assert_eq!(reason("ERR unknown command 'INFO'"), "server_error");
        assert_eq!(reason("ERR invalid DB index"), "server_error");
    }
}
