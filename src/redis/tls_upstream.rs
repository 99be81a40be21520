//! TLS to a `rediss://` target, ended in the relay rather than in the client.
//!
//! The relay checks each reply's bytes and shape before the client decodes it; over TLS it
//! can only do that if it holds the plaintext. So the relay makes the TLS connection (with
//! the same rustls configuration the client had) and the client talks plain RESP to the
//! relay's private unix socket.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::{rustls, TlsConnector};

use super::relay::{accept_reply, Cut, CutCell};
use super::resp_shape::ShapeScanner;
use super::{tls, ClientError};
use crate::target::TlsClient;

/// A TLS connection to the target.
pub type Stream = tokio_rustls::client::TlsStream<TcpStream>;

/// Requests are a few dozen bytes (`INFO`, `CONFIG GET`, `AUTH`).
const REQUEST_BUFFER: usize = 1024;
/// Replies arrive in TLS records of at most 16 KiB; a smaller buffer only means more reads.
const REPLY_BUFFER: usize = 8192;

/// Makes the TLS connection over `stream`, verifying the certificate for `server_name` (or
/// `host`) as configured.
pub async fn handshake(
    stream: TcpStream,
    host: &str,
    settings: &TlsClient,
) -> Result<Stream, ClientError> {
    let config = Arc::new(tls::client_config(settings)?);
    let name = settings.server_name.as_deref().unwrap_or(host).to_owned();
    let name = ServerName::try_from(name).map_err(|e| ClientError::Tls(e.to_string()))?;
    TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| ClientError::Tls(e.to_string()))
}

/// Copies both ways between the client and the TLS target, with the relay's reply budget
/// and shape check, until either side ends.
pub async fn pump(client: UnixStream, upstream: Stream, limit: usize, cut: CutCell) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = tokio::io::split(upstream);
    let budget = AtomicUsize::new(limit);
    let requests = async {
        let mut buffer = vec![0u8; REQUEST_BUFFER];
        loop {
            let read = match from_client.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            budget.store(limit, std::sync::atomic::Ordering::Relaxed);
            if to_server.write_all(&buffer[..read]).await.is_err()
                || to_server.flush().await.is_err()
            {
                return;
            }
        }
    };
    let replies = async {
        let mut shape = ShapeScanner::default();
        let mut buffer = vec![0u8; REPLY_BUFFER];
        loop {
            let read = match from_server.read(&mut buffer).await {
                Ok(0) => return,
                Ok(read) => read,
                Err(error) => {
                    // A TLS failure (an alert: the server refused our certificate) is `tls`;
                    // anything else (a reset, a close without close_notify) stays `io`.
                    if let Some(tls) = error
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    {
                        cut.set(Cut::Tls(tls.to_string()));
                    }
                    return;
                }
            };
            if !accept_reply(&budget, &mut shape, &cut, &buffer[..read])
                || to_client.write_all(&buffer[..read]).await.is_err()
            {
                return;
            }
        }
    };
    // Whichever direction ends first ends both.
    tokio::select! {
        _ = requests => {}
        _ = replies => {}
    }
}
