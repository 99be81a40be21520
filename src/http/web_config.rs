//! The exporter's own HTTP security: TLS and basic auth from `--web.config.file`, in the web
//! configuration format Prometheus and its exporters use, so existing files can be reused.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional
//!   client_ca_file: ca.crt                          # with client auth
//!   min_version: TLS12                              # optional, TLS12 or TLS13
//! basic_auth_users:
//!   prometheus: $2y$10$...   # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')
//! ```
//!
//! Keys of that format this exporter does not implement (custom cipher suites, HTTP headers,
//! …) are rejected by name rather than silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// A problem with the web config file.
#[derive(Debug, thiserror::Error)]
#[error("web config file {file}: {message}")]
pub struct WebConfigError {
    file: String,
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    /// TLS for the exporter's own endpoints.
    tls_server_config: Option<TlsServerConfig>,
    /// Username to bcrypt hash.
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsServerConfig {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
}

/// The loaded web configuration.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// The TLS acceptor, when TLS is on.
    pub tls: Option<TlsAcceptor>,
    /// Basic auth, when users are configured.
    pub auth: Option<Arc<BasicAuth>>,
    /// Whether `POST /-/reload` is served (`--web.enable-lifecycle`, not part of the file).
    pub lifecycle: bool,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("basic_auth", &self.auth.is_some())
            .field("lifecycle", &self.lifecycle)
            .finish()
    }
}

/// Loads and checks a web config file: hashes parse, certificates and keys load.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let error = |message: String| WebConfigError {
        file: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
    let file: WebConfigFile = serde_yaml_ng::from_str(&text).map_err(|e| {
        // serde_yaml_ng errors name the key and position, never a value beyond the key.
        error(format!("{e} (supported keys: tls_server_config.{{cert_file,key_file,client_auth_type,client_ca_file,min_version}}, basic_auth_users)"))
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &Path| {
        if p.is_relative() {
            base.join(p)
        } else {
            p.to_owned()
        }
    };

    let mut users = BTreeMap::new();
    for (user, hash) in file.basic_auth_users {
        hash.parse::<bcrypt::HashParts>().map_err(|_| {
            error(format!("basic_auth_users.{user}: expected a bcrypt hash ($2y$…), as made by `htpasswd -nBC 10`"))
        })?;
        users.insert(user, hash);
    }
    let auth = (!users.is_empty()).then(|| Arc::new(BasicAuth::new(users)));

    let tls = match file.tls_server_config {
        None => None,
        Some(tls) => Some(tls_acceptor(&tls, &resolve).map_err(error)?),
    };
    Ok(WebConfig {
        tls,
        auth,
        lifecycle: false,
    })
}

fn tls_acceptor(
    config: &TlsServerConfig,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<TlsAcceptor, String> {
    let cert_file = resolve(&config.cert_file);
    let key_file = resolve(&config.key_file);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|iter| iter.collect())
        .map_err(|e| {
            format!(
                "tls_server_config.cert_file ({}): expected PEM certificates ({e})",
                cert_file.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.cert_file ({}): no certificate found",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| {
        format!(
            "tls_server_config.key_file ({}): expected a PEM private key ({e})",
            key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match config.min_version.as_deref() {
        None | Some("TLS12") => &[&rustls::version::TLS12, &rustls::version::TLS13],
        Some("TLS13") => &[&rustls::version::TLS13],
        Some(other) => {
            return Err(format!(
                "tls_server_config.min_version: expected TLS12 or TLS13, got {other}"
            ))
        }
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match config.client_auth_type.as_deref() {
        None | Some("NoClientCert") => builder.with_no_client_auth(),
        Some(kind @ ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven")) => {
            let ca_file = config
                .client_ca_file
                .as_deref()
                .map(resolve)
                .ok_or_else(|| format!("tls_server_config.client_ca_file: required with client_auth_type {kind}"))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&ca_file)
                .map_err(|e| format!("tls_server_config.client_ca_file ({}): {e}", ca_file.display()))?
            {
                let cert = cert.map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
                roots.add(cert).map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if kind == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier.build().map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?,
            )
        }
        Some(other) => {
            return Err(format!(
                "tls_server_config.client_auth_type: expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert, got {other}"
            ))
        }
    };
    let mut server = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: certificate and key do not fit together ({e})"))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Basic auth against bcrypt hashes.
///
/// bcrypt is slow on purpose (tens of milliseconds), too slow to run on every scrape. A
/// successful check is remembered as a SHA-256 of the password, so a scraper that keeps
/// sending the same credentials costs one hash, and a wrong password still pays bcrypt.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<BTreeMap<String, [u8; 32]>>,
    /// Used for unknown users so their check takes as long as a known user's.
    dummy_hash: String,
}

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> Self {
        let dummy_hash = users.values().next().cloned().unwrap_or_default();
        BasicAuth {
            users,
            verified: Mutex::new(BTreeMap::new()),
            dummy_hash,
        }
    }

    /// Whether `user` / `password` are valid. Constant-time in the password.
    pub fn check(&self, user: &str, password: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .copied();
        if let Some(cached) = cached {
            if bool::from(cached.ct_eq(&digest)) {
                return true;
            }
        }
        let (hash, known) = match self.users.get(user) {
            Some(hash) => (hash.as_str(), true),
            None => (self.dummy_hash.as_str(), false),
        };
        let ok = bcrypt::verify(password, hash).unwrap_or(false) && known;
        if ok {
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(user.to_owned(), digest);
        }
        ok
    }
}

/// The credentials of a `Basic` Authorization header. The scheme is case-insensitive
/// (RFC 7235 section 2.1): `basic` and `BASIC` are `Basic`.
fn basic_credentials(header: &str) -> Option<&str> {
    let (scheme, credentials) = header.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("basic")
        .then_some(credentials.trim())
}

/// Middleware: 401 with a challenge unless the request carries valid credentials.
pub async fn require_basic_auth(
    State(auth): State<Arc<BasicAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let credentials = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(basic_credentials)
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    let authorised = match credentials.as_deref().and_then(|c| c.split_once(':')) {
        Some((user, password)) => {
            let (user, password) = (user.to_owned(), password.to_owned());
            let auth = auth.clone();
            // bcrypt takes tens of milliseconds of CPU: keep it off the async threads.
            tokio::task::spawn_blocking(move || auth.check(&user, &password))
                .await
                .unwrap_or(false)
        }
        None => false,
    };
    if authorised {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"redis-persistence-exporter\"",
            )],
            "Unauthorized\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        path
    }

    #[test]
    fn basic_auth_checks_bcrypt_and_caches() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("prom".to_owned(), hash)]));
        assert!(!auth.check("prom", "wrong"));
        assert!(auth.check("prom", "s3cret"));
        assert!(auth.check("prom", "s3cret"), "cached path");
        assert!(
            !auth.check("prom", "s3cre"),
            "cache must not accept another password"
        );
        assert!(!auth.check("nobody", "s3cret"));
    }

    #[test]
    fn the_basic_scheme_is_case_insensitive() {
        for header in ["Basic dTpw", "basic dTpw", "BASIC  dTpw", "bAsIc dTpw"] {
            assert_eq!(basic_credentials(header), Some("dTpw"), "{header}");
        }
        for header in ["Bearer dTpw", "Basicx dTpw", "Basic", "dTpw"] {
            assert_eq!(basic_credentials(header), None, "{header}");
        }
    }

    #[test]
    fn bad_hash_and_unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "web.yml",
            "basic_auth_users:\n  prom: notahash\n",
        );
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("basic_auth_users.prom"), "{err}");
        let path = write(
            dir.path(),
            "web.yml",
            "http_server_config:\n  http2: false\n",
        );
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("http_server_config"), "{err}");
        let path = write(
            dir.path(),
            "web.yml",
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
        );
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("cert_file"), "{err}");
    }

    #[test]
    fn empty_file_means_plain_http() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "web.yml", "{}\n");
        let config = load(&path).unwrap();
        assert!(config.tls.is_none() && config.auth.is_none());
    }
}
