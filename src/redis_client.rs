//! The only module that knows about `fred`, the Redis client.
//!
//! fred has had no release since early 2025, so everything it does for us sits behind the
//! small surface here: open a [`Connection`] to a [`Target`], ask it for `INFO` (or one
//! `CONFIG GET`), close it. Replacing the client means rewriting this file only.
//!
//! Reconnection is deliberately *not* fred's: a connection that fails or times out is
//! dropped by the poller and a fresh one is opened on the next poll, inside that poll's
//! deadline. That keeps a frozen server from queueing commands behind a dead socket.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fred::bytes_utils::Str;
use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::config::{
    Config, ConnectionConfig, PerformanceConfig, Server, ServerConfig, TlsConnector,
};
use fred::types::{ClusterHash, CustomCommand, Value};

use crate::config::{Address, Target};

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
    /// The reply was not valid RESP or not what the command returns.
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
    /// Set by the relay when it cut the connection for an oversized reply.
    oversized: Arc<AtomicBool>,
}

impl Connection {
    /// Opens and authenticates a connection. The caller bounds the time it may take.
    pub async fn open(target: &Target, connect_timeout: Duration) -> Result<Self, ClientError> {
        let password = target
            .current_password()
            .map_err(|e| ClientError::PasswordFile(e.kind().to_string()))?;
        // The client reaches the target through a relay that enforces a byte budget per
        // reply: fred buffers any reply whole, so a hostile server could otherwise make us
        // hold gigabytes. The relay connects first, so "refused" is reported as such.
        let upstream = guard::connect(&target.address).await?;
        let oversized = Arc::new(AtomicBool::new(false));
        let server = match (&target.address, &target.tls) {
            (Address::Tcp { host, .. }, Some(tls)) => {
                let relay = guard::relay_tcp(
                    upstream,
                    MAX_REPLY_BYTES,
                    oversized.clone(),
                    connect_timeout,
                )
                .await?;
                ServerConfig::Centralized {
                    server: Server::new_with_tls(
                        relay.ip().to_string(),
                        relay.port(),
                        Some(tls.server_name.clone().unwrap_or_else(|| host.clone())),
                    ),
                }
            }
            _ => ServerConfig::Unix {
                path: guard::relay_unix(
                    upstream,
                    MAX_REPLY_BYTES,
                    oversized.clone(),
                    connect_timeout,
                )?,
            },
        };
        let tls = match &target.tls {
            Some(settings) => Some(TlsConnector::from(tls::client_config(settings)?).into()),
            None => None,
        };
        let config = Config {
            fail_fast: true,
            username: target.username.clone(),
            password: password.map(|p| p.expose().to_owned()),
            server,
            tls,
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
            oversized,
        };
        match connection.client.wait_for_connect().await {
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
        self.client
            .custom(command, args)
            .await
            .map_err(|e| self.error(&e))
    }

    fn error(&self, error: &fred::error::Error) -> ClientError {
        if self.oversized.load(Ordering::Relaxed) {
            ClientError::ReplyTooLarge
        } else {
            ClientError::from_fred(error)
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

/// The rustls client configuration for `rediss://` targets.
mod tls {
    use std::sync::Arc;

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::client::danger::{
        HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
    };
    use tokio_rustls::rustls::crypto::{verify_tls12_signature, verify_tls13_signature};
    use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};

    use super::ClientError;
    use crate::config::TlsClient;

    /// Builds the client config: CA file or system roots, optional client certificate, and
    /// the explicit insecure mode.
    pub fn client_config(settings: &TlsClient) -> Result<rustls::ClientConfig, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let builder = if settings.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match &settings.ca_file {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .map_err(|e| ClientError::Tls(format!("tls_ca_file: {e}")))?;
                    for cert in certs {
                        let cert =
                            cert.map_err(|e| ClientError::Tls(format!("tls_ca_file: {e}")))?;
                        roots
                            .add(cert)
                            .map_err(|e| ClientError::Tls(format!("tls_ca_file: {e}")))?;
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(cert);
                    }
                }
            }
            builder.with_root_certificates(roots)
        };
        match &settings.client_cert {
            Some((cert_file, key_file)) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
                    .and_then(|iter| iter.collect())
                    .map_err(|e| ClientError::Tls(format!("tls_cert_file: {e}")))?;
                let key = PrivateKeyDer::from_pem_file(key_file)
                    .map_err(|e| ClientError::Tls(format!("tls_key_file: {e}")))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| ClientError::Tls(format!("client certificate: {e}")))
            }
            None => Ok(builder.with_no_client_auth()),
        }
    }

    /// `tls_insecure_skip_verify`: accepts any server certificate but still checks that the
    /// handshake signatures are valid for the certificate presented.
    #[derive(Debug)]
    struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for AcceptAnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

/// Removes the folder that holds this process's relay sockets. Call once polling stopped.
pub fn cleanup() {
    guard::remove_own_dir();
}

/// The byte-budget relay between fred and the target.
mod guard {
    use std::future::Future;
    use std::io;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, OnceLock};

    use tokio::net::{lookup_host, TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream};

    use super::ClientError;
    use crate::config::Address;

    /// A connected upstream socket.
    pub enum Upstream {
        Tcp(TcpStream),
        Unix(UnixStream),
    }

    /// Connects to the target itself.
    pub async fn connect(address: &Address) -> Result<Upstream, ClientError> {
        let map = |e: io::Error| match e.kind() {
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => {
                ClientError::Refused(e.to_string())
            }
            _ => ClientError::Io(e.to_string()),
        };
        match address {
            Address::Tcp { host, port, .. } => {
                let mut last_error = None;
                for address in lookup_host((host.as_str(), *port)).await.map_err(map)? {
                    match connect_resetting(address).await {
                        Ok(stream) => return Ok(Upstream::Tcp(stream)),
                        Err(e) => last_error = Some(e),
                    }
                }
                Err(map(last_error.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "no address for the host")
                })))
            }
            Address::Unix { path } => Ok(Upstream::Unix(
                UnixStream::connect(path).await.map_err(map)?,
            )),
        }
    }

    /// A TCP connection whose close resets instead of lingering in TIME_WAIT: a connection we
    /// drop is finished with, and with `keep_connections = false` thousands of per-poll
    /// connections a minute would otherwise tie up the host's ephemeral ports. Set before
    /// connecting, so that a connect cut short by the poll timeout resets too.
    async fn connect_resetting(address: SocketAddr) -> io::Result<TcpStream> {
        let socket = if address.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_zero_linger()?;
        socket.set_nodelay(true)?;
        socket.connect(address).await
    }

    const DIR_PREFIX: &str = "redis-persistence-exporter-";

    /// Removes relay folders left by exporters that died without cleaning up (kill -9).
    fn remove_stale_dirs() {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Removes this process's relay folder; called on the way out.
    pub fn remove_own_dir() {
        if let Some(dir) = DIR.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    static DIR: OnceLock<PathBuf> = OnceLock::new();

    /// A folder only this process's user can enter, for the relay sockets.
    fn private_dir() -> io::Result<&'static PathBuf> {
        if let Some(dir) = DIR.get() {
            return Ok(dir);
        }
        remove_stale_dirs();
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        Ok(DIR.get_or_init(|| dir))
    }

    /// Starts a relay on a unix socket in a private folder and returns its path. The socket
    /// file is removed as soon as the client has connected. A client that has not connected
    /// within `accept_within` (the connect's own bound) never will: the relay then closes,
    /// and with it the connection to the target.
    pub fn relay_unix(
        upstream: Upstream,
        limit: usize,
        oversized: Arc<AtomicBool>,
        accept_within: std::time::Duration,
    ) -> Result<PathBuf, ClientError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let io_err = |e: io::Error| ClientError::Io(format!("relay: {e}"));
        let path = private_dir()
            .map_err(io_err)?
            .join(format!("{}.sock", NEXT.fetch_add(1, Ordering::Relaxed)));
        let listener = UnixListener::bind(&path).map_err(io_err)?;
        let socket_path = path.clone();
        tokio::spawn(async move {
            let accepted = tokio::time::timeout(accept_within, listener.accept()).await;
            // One client per relay: close the listening socket now, not with the connection.
            drop(listener);
            let _ = std::fs::remove_file(&socket_path);
            if let Ok(Ok((client, _))) = accepted {
                pump(client, upstream, limit, oversized).await;
            }
        });
        Ok(path)
    }

    /// Starts a relay on a loopback TCP port (for TLS, which fred only speaks over TCP).
    pub async fn relay_tcp(
        upstream: Upstream,
        limit: usize,
        oversized: Arc<AtomicBool>,
        accept_within: std::time::Duration,
    ) -> Result<SocketAddr, ClientError> {
        let io_err = |e: io::Error| ClientError::Io(format!("relay: {e}"));
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(io_err)?;
        let address = listener.local_addr().map_err(io_err)?;
        tokio::spawn(async move {
            let accepted = tokio::time::timeout(accept_within, listener.accept()).await;
            drop(listener);
            if let Ok(Ok((client, _))) = accepted {
                let _ = client.set_nodelay(true);
                pump(client, upstream, limit, oversized).await;
            }
        });
        Ok(address)
    }

    /// What the relay needs of a socket: readiness and non-blocking reads and writes, all
    /// through a shared reference, so both directions use one socket without splitting it.
    trait Socket: Sync {
        fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_;
        fn writable(&self) -> impl Future<Output = io::Result<()>> + Send + '_;
        fn try_read(&self, buffer: &mut [u8]) -> io::Result<usize>;
        fn try_write(&self, buffer: &[u8]) -> io::Result<usize>;
    }

    macro_rules! socket {
        ($stream:ty) => {
            impl Socket for $stream {
                fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
                    <$stream>::readable(self)
                }
                fn writable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
                    <$stream>::writable(self)
                }
                fn try_read(&self, buffer: &mut [u8]) -> io::Result<usize> {
                    <$stream>::try_read(self, buffer)
                }
                fn try_write(&self, buffer: &[u8]) -> io::Result<usize> {
                    <$stream>::try_write(self, buffer)
                }
            }
        };
    }
    socket!(TcpStream);
    socket!(UnixStream);

    /// Relays until either side ends; both sockets close when this returns.
    async fn pump(
        client: impl Socket,
        upstream: Upstream,
        limit: usize,
        oversized: Arc<AtomicBool>,
    ) {
        match upstream {
            Upstream::Tcp(upstream) => pump_pair(client, upstream, limit, oversized).await,
            Upstream::Unix(upstream) => pump_pair(client, upstream, limit, oversized).await,
        }
    }

    /// Copies both ways. Every request from the client restores the reply budget; the
    /// server may send at most `limit` bytes between two requests, or both sides close.
    async fn pump_pair(
        client: impl Socket,
        upstream: impl Socket,
        limit: usize,
        oversized: Arc<AtomicBool>,
    ) {
        // Both directions run in this one task: the budget needs no Arc.
        let budget = AtomicUsize::new(limit);
        let requests = forward(&client, &upstream, |_| {
            budget.store(limit, Ordering::Relaxed);
            true
        });
        let replies = forward(&upstream, &client, |read| {
            let left = budget.load(Ordering::Relaxed);
            if read > left {
                oversized.store(true, Ordering::Relaxed);
                return false;
            }
            budget.store(left - read, Ordering::Relaxed);
            true
        });
        // Whichever direction ends first ends both.
        tokio::select! {
            _ = requests => {}
            _ = replies => {}
        }
    }

    /// Moves everything `from` sends to `to` until `from` closes, a write fails, or `accept`
    /// refuses a read (given its size). The copy buffer is the thread's, used only between
    /// waits: an idle relay, which is what a relay is almost all the time, holds none.
    async fn forward(from: &impl Socket, to: &impl Socket, mut accept: impl FnMut(usize) -> bool) {
        loop {
            if from.readable().await.is_err() {
                return;
            }
            let unsent = match read_and_pass_on(from, to, &mut accept) {
                Ok(Some(unsent)) => unsent,
                // Readiness without data: tokio has cleared it; wait again.
                Ok(None) => continue,
                Err(()) => return,
            };
            if !unsent.is_empty() && write_all(to, &unsent).await.is_err() {
                return;
            }
        }
    }

    /// One non-blocking read from `from`, written to `to` as far as `to` takes it without
    /// waiting. `Ok(None)`: nothing to read after all. `Ok(Some(rest))`: what `to` did not
    /// take yet (almost always nothing). `Err`: `from` closed or failed, `accept` refused
    /// the read, or `to` failed.
    fn read_and_pass_on(
        from: &impl Socket,
        to: &impl Socket,
        accept: &mut impl FnMut(usize) -> bool,
    ) -> Result<Option<Vec<u8>>, ()> {
        thread_local! {
            // One per runtime thread, used only inside this function (no await), so it is
            // never shared: no per-connection buffer, and none to clear for every read.
            static BUFFER: std::cell::RefCell<Box<[u8]>> =
                std::cell::RefCell::new(vec![0u8; 8192].into_boxed_slice());
        }
        BUFFER.with_borrow_mut(|buffer| {
            let read = match from.try_read(buffer) {
                Ok(0) => return Err(()),
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(_) => return Err(()),
            };
            if !accept(read) {
                return Err(());
            }
            let mut sent = 0;
            while sent < read {
                match to.try_write(&buffer[sent..read]) {
                    Ok(0) => return Err(()),
                    Ok(written) => sent += written,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return Err(()),
                }
            }
            Ok(Some(buffer[sent..read].to_vec()))
        })
    }

    /// Writes all of `bytes`, waiting for `to` to take them.
    async fn write_all(to: &impl Socket, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            to.writable().await?;
            match to.try_write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => bytes = &bytes[written..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
