//! The connection loop: accepts TCP (and TLS), bounds how many connections are open and how
//! long a client may take to send a request, and serves each with hyper.
//!
//! Every open connection holds a descriptor, and the pollers need descriptors too: a client
//! that opens connections and sends nothing must not be able to starve the polls (false
//! `redis_up 0`) or the scrapes. So connections are capped ([`connection_cap`]), a connection
//! must send its request headers within [`HEADER_READ_TIMEOUT`] of opening or of its previous
//! response (else it is closed; this is also the keep-alive idle timeout), and when the cap is
//! reached the open connections that are idle make room for the new one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to send its request headers, counted from the connection
/// opening or from the previous response; then the connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection over the cap waits for a slot before it is closed.
const OVER_CAP_WAIT: Duration = Duration::from_secs(1);
/// A connection that has not sent a request this long after opening may be closed to make
/// room; younger ones get the chance to send theirs.
const EVICT_GRACE: Duration = Duration::from_secs(1);

/// Descriptors kept for everything but HTTP connections and targets: stdio, the listener,
/// the runtime's epoll and wakers, logs, config, password and certificate files, DNS.
const RESERVED_DESCRIPTORS: u64 = 32;
/// Descriptors one target can hold: its connection and the relay's.
const DESCRIPTORS_PER_TARGET: u64 = 2;
/// Never more connections than this, whatever the limit.
const MAX_CONNECTIONS: u64 = 1024;
/// Never fewer: the exporter must still answer its scrapes.
const MIN_CONNECTIONS: u64 = 4;

/// How many HTTP connections may be open with `nofile` descriptors and `targets` targets:
/// at most a quarter of the descriptors, never more than what is left after 2 per target
/// and 32 in reserve, between 4 and 1024.
pub fn connection_cap(nofile: u64, targets: usize) -> usize {
    let spare =
        nofile.saturating_sub(DESCRIPTORS_PER_TARGET * targets as u64 + RESERVED_DESCRIPTORS);
    (nofile / 4)
        .min(spare)
        .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS) as usize
}

/// Raises the soft descriptor limit to the hard one and returns the limit now in force
/// (`None`: unlimited).
pub fn raise_descriptor_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum) {
        if current < maximum {
            let raised = Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => return Some(maximum),
                Err(error) => {
                    tracing::warn!(%error, current, maximum, "cannot raise the descriptor limit")
                }
            }
        }
    }
    limit.current
}

/// Serves `app` on `listener` until `shutdown`, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(max_connections));
    let evict = Arc::new(Notify::new());
    let (stop, stopping) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or memory: back off instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                evict.notify_waiters();
                match tokio::time::timeout(OVER_CAP_WAIT, slots.clone().acquire_owned()).await {
                    Ok(Ok(slot)) => slot,
                    _ => {
                        tracing::debug!(%peer, max_connections, "too many open connections; closing the new one");
                        continue;
                    }
                }
            }
        };
        let connection = Connection {
            app: app.clone(),
            builder: builder.clone(),
            evict: evict.clone(),
            stopping: stopping.clone(),
            opened: Instant::now(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            connection.run(stream, tls).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let _ = slots.acquire_many(max_connections as u32).await;
    Ok(())
}

struct Connection {
    app: Router,
    builder: http1::Builder,
    evict: Arc<Notify>,
    stopping: watch::Receiver<bool>,
    opened: Instant,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = tls else {
            return self.http(stream).await;
        };
        let opened = self.opened;
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
        tokio::pin!(handshake);
        let stream = loop {
            tokio::select! {
                done = &mut handshake => match done {
                    Ok(Ok(stream)) => break stream,
                    Ok(Err(error)) => return tracing::debug!(%error, "TLS handshake failed"),
                    Err(_) => return tracing::debug!("TLS handshake timed out"),
                },
                _ = self.evict.notified() => if opened.elapsed() >= EVICT_GRACE { return },
                _ = self.stopping.wait_for(|stop| *stop) => return,
            }
        };
        self.http(stream).await
    }

    async fn http<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let requested = Arc::new(AtomicBool::new(false));
        let service = {
            let requested = requested.clone();
            let inner = TowerToHyperService::new(self.app.clone());
            hyper::service::service_fn(move |request| {
                requested.store(true, Ordering::Relaxed);
                inner.call(request)
            })
        };
        let connection = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        let opened = self.opened;
        let mut closing = false;
        loop {
            tokio::select! {
                done = connection.as_mut() => {
                    if let Err(error) = done {
                        tracing::debug!(%error, "HTTP connection ended with an error");
                    }
                    return;
                }
                _ = self.evict.notified(), if !closing => {
                    if requested.load(Ordering::Relaxed) {
                        // Closes at once if idle, else after the response in flight.
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    } else if opened.elapsed() >= EVICT_GRACE {
                        return;
                    }
                }
                _ = self.stopping.wait_for(|stop| *stop), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_descriptors_for_the_targets() {
        // A quarter of a small limit.
        assert_eq!(connection_cap(64, 1), 16);
        // Limit minus 2 per target and the reserve, when that is smaller.
        assert_eq!(connection_cap(1024, 400), 1024 - 800 - 32);
        // Never fewer than 4, never more than 1024.
        assert_eq!(connection_cap(64, 100), 4);
        assert_eq!(connection_cap(1 << 20, 10), 1024);
        assert_eq!(connection_cap(20_000, 10_000), 4);
    }
}
