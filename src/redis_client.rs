//! The only module that knows about `fred`, the Redis client.
//!
//! fred has had no release since early 2025, so everything it does for us sits behind the
//! small surface here: open a [`Connection`] to a [`Target`], ask it for `INFO` (or one
//! `CONFIG GET`), close it. Replacing the client means rewriting this file only.
//!
//! Reconnection is deliberately *not* fred's: a connection that fails or times out is
//! dropped by the poller and a fresh one is opened on the next poll, inside that poll's
//! deadline. That keeps a frozen server from queueing commands behind a dead socket.

use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::config::{
    Config, ConnectionConfig, PerformanceConfig, Server, ServerConfig, TlsConnector,
};
use fred::types::{ClusterHash, CustomCommand};

use crate::config::{Address, Target};

/// Sections asked for in the single `INFO` call: persistence, plus the siblings that explain it.
pub const INFO_SECTIONS: &[&str] = &["server", "memory", "persistence", "stats", "replication"];

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
    /// The password file could not be read.
    #[error("cannot read password file: {0}")]
    PasswordFile(String),
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
            ClientError::PasswordFile(_) => "password_file",
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
                if upper.contains("CERTIFICATE") || upper.contains("HANDSHAKE") || upper.contains("TLS") =>
            {
                ClientError::Tls(details)
            }
            ErrorKind::Protocol | ErrorKind::Parse => ClientError::Protocol(details),
            ErrorKind::IO if upper.contains("REFUSED") || upper.contains("NO SUCH FILE") => {
                ClientError::Refused(details)
            }
            ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Timeout => ClientError::Io(details),
            _ if upper.starts_with("ERR") || upper.contains("UNKNOWN COMMAND") => {
                ClientError::Server(details)
            }
            _ => ClientError::Io(details),
        }
    }
}

/// Which `INFO` form the server accepts; learnt once per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InfoForm {
    /// `INFO server memory …` (Redis 7.0 and later).
    MultiSection,
    /// Plain `INFO` (default sections) for servers that reject several sections at once.
    Default,
}

/// An open connection to one target.
pub struct Connection {
    client: Client,
    connection_task: tokio::task::JoinHandle<Result<(), fred::error::Error>>,
    info_form: InfoForm,
}

impl Connection {
    /// Opens and authenticates a connection. The caller bounds the time it may take.
    pub async fn open(target: &Target, connect_timeout: Duration) -> Result<Self, ClientError> {
        let password = target
            .current_password()
            .map_err(|e| ClientError::PasswordFile(e.kind().to_string()))?;
        let server = match &target.address {
            Address::Tcp { host, port, .. } => ServerConfig::Centralized {
                server: Server::new_with_tls(
                    host.clone(),
                    *port,
                    target.tls.as_ref().and_then(|t| t.server_name.clone()),
                ),
            },
            Address::Unix { path } => ServerConfig::Unix { path: path.clone() },
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
        let client = Client::new(config, Some(PerformanceConfig::default()), Some(connection), None);
        let connection_task = client.connect();
        if let Err(error) = client.wait_for_connect().await {
            connection_task.abort();
            return Err(ClientError::from_fred(&error));
        }
        Ok(Connection {
            client,
            connection_task,
            info_form: InfoForm::MultiSection,
        })
    }

    /// Sends one `INFO` and returns the reply text. Falls back to plain `INFO` once if the
    /// server rejects the multi-section form, and remembers that for this connection.
    pub async fn info(&mut self) -> Result<String, ClientError> {
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
        keys: &[&str],
    ) -> Result<Vec<(String, String)>, ClientError> {
        let cmd = CustomCommand::new(command.to_owned(), ClusterHash::FirstKey, false);
        let mut args = vec!["GET".to_owned()];
        args.extend(keys.iter().map(|k| (*k).to_owned()));
        let reply: Vec<String> = self
            .client
            .custom(cmd, args)
            .await
            .map_err(|e| ClientError::from_fred(&e))?;
        Ok(reply
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect())
    }

    async fn command(&self, name: &'static str, args: &[&str]) -> Result<String, ClientError> {
        let cmd = CustomCommand::new_static(name, ClusterHash::FirstKey, false);
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        self.client
            .custom::<String, _>(cmd, args)
            .await
            .map_err(|e| ClientError::from_fred(&e))
    }
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
                        let cert = cert.map_err(|e| ClientError::Tls(format!("tls_ca_file: {e}")))?;
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
            verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
