//! The byte-budget relay between the Redis client and the target.
//!
//! fred buffers any reply whole, so a hostile server could otherwise make the exporter hold
//! gigabytes, and decodes replies recursively, so a reply nested a few thousand deep
//! overflows its stack. The client talks to this relay (a unix socket in a private folder),
//! and the relay forwards to the target, cutting the connection when a reply exceeds its
//! byte budget or its shape budget ([`ShapeScanner`]). For `rediss://` the relay speaks TLS
//! to the target itself (`tls_upstream`), so it checks plain RESP there too.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::net::{lookup_host, TcpSocket, TcpStream, UnixListener, UnixStream};

use super::private_dir;
use super::resp_shape::{ShapeError, ShapeScanner};
use super::tls_upstream;
use super::ClientError;
use crate::target::{Address, TlsClient};

/// Why the relay cut a connection. Set once by the relay, read by the connection to tell the
/// poll's failure reason: the client itself only sees the socket close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cut {
    /// The server sent more than the byte budget between two requests.
    TooLarge,
    /// A reply was out of shape: too deep, too many elements, or not RESP.
    Shape(ShapeError),
    /// TLS to the target failed after the handshake (a refused client certificate shows
    /// only there in TLS 1.3).
    Tls(String),
}

/// Where the relay records its [`Cut`], shared with the connection.
pub type CutCell = Arc<CutSignal>;

/// A [`Cut`] set at most once, and a wake-up for whoever waits for it. The client does not
/// always fail a command when its connection closes before any of the reply arrived (it
/// then waits out the poll timeout), so the connection races each command against this.
#[derive(Debug, Default)]
pub struct CutSignal {
    cut: OnceLock<Cut>,
    notify: tokio::sync::Notify,
}

impl CutSignal {
    /// Records why the relay cut the connection (the first reason only) and wakes waiters.
    pub(super) fn set(&self, cut: Cut) {
        if self.cut.set(cut).is_ok() {
            self.notify.notify_waiters();
        }
    }

    /// Why the relay cut the connection, if it did.
    pub fn get(&self) -> Option<Cut> {
        self.cut.get().cloned()
    }

    /// Waits until the relay cuts the connection.
    pub async fn cut(&self) -> Cut {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before looking, so a cut between the look and the wait still wakes.
            notified.as_mut().enable();
            if let Some(cut) = self.get() {
                return cut;
            }
            notified.await;
        }
    }
}

/// A connected upstream socket.
pub enum Upstream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// TLS ended here rather than in the client, so the relay reads (and checks) RESP.
    Tls(Box<tls_upstream::Stream>),
}

/// Connects to the target itself, with TLS when `tls` is given.
pub async fn connect(address: &Address, tls: Option<&TlsClient>) -> Result<Upstream, ClientError> {
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
                    Ok(stream) => {
                        return match tls {
                            Some(settings) => tls_upstream::handshake(stream, host, settings)
                                .await
                                .map(|stream| Upstream::Tls(Box::new(stream))),
                            None => Ok(Upstream::Tcp(stream)),
                        }
                    }
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

/// Removes this process's relay folder; called on the way out.
pub fn remove_own_dir() {
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

static DIR: OnceLock<PathBuf> = OnceLock::new();

/// This process's relay folder, created on first use.
fn own_dir() -> Result<&'static PathBuf, private_dir::DirError> {
    if let Some(dir) = DIR.get() {
        return Ok(dir);
    }
    // One folder per process even when the first connections open at once.
    static CREATING: Mutex<()> = Mutex::new(());
    let _creating = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = DIR.get() {
        return Ok(dir);
    }
    let base = std::env::temp_dir();
    private_dir::remove_stale(&base);
    let dir = private_dir::create(&base)?;
    Ok(DIR.get_or_init(|| dir))
}

/// Starts a relay on a unix socket in a private folder and returns its path. The socket
/// file is removed as soon as the client has connected. A client that has not connected
/// within `accept_within` (the connect's own bound) never will: the relay then closes,
/// and with it the connection to the target.
pub fn relay_unix(
    upstream: Upstream,
    limit: usize,
    cut: CutCell,
    accept_within: std::time::Duration,
) -> Result<PathBuf, ClientError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let io_err = |e: io::Error| ClientError::Io(format!("relay: {e}"));
    let path = own_dir()
        .map_err(|e| ClientError::Io(format!("relay: {e}")))?
        .join(format!("{}.sock", NEXT.fetch_add(1, Ordering::Relaxed)));
    let listener = UnixListener::bind(&path).map_err(io_err)?;
    let socket_path = path.clone();
    tokio::spawn(async move {
        let accepted = tokio::time::timeout(accept_within, listener.accept()).await;
        // One client per relay: close the listening socket now, not with the connection.
        drop(listener);
        let _ = std::fs::remove_file(&socket_path);
        if let Ok(Ok((client, _))) = accepted {
            pump(client, upstream, limit, cut).await;
        }
    });
    Ok(path)
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
async fn pump(client: UnixStream, upstream: Upstream, limit: usize, cut: CutCell) {
    match upstream {
        Upstream::Tcp(upstream) => pump_pair(client, upstream, limit, cut).await,
        Upstream::Unix(upstream) => pump_pair(client, upstream, limit, cut).await,
        Upstream::Tls(upstream) => tls_upstream::pump(client, *upstream, limit, cut).await,
    }
}

/// Copies both ways. Every request from the client restores the reply budget; the
/// server may send at most `limit` bytes between two requests, and no reply out of shape,
/// or both sides close before the client sees the offending bytes.
async fn pump_pair(client: impl Socket, upstream: impl Socket, limit: usize, cut: CutCell) {
    // Both directions run in this one task: the budget needs no Arc.
    let budget = AtomicUsize::new(limit);
    let mut shape = ShapeScanner::default();
    let requests = forward(&client, &upstream, |_| {
        budget.store(limit, Ordering::Relaxed);
        true
    });
    let replies = forward(&upstream, &client, |read| {
        accept_reply(&budget, &mut shape, &cut, read)
    });
    // Whichever direction ends first ends both.
    tokio::select! {
        _ = requests => {}
        _ = replies => {}
    }
}

/// Whether reply bytes from the server may pass: within the byte budget `left` (which they
/// then use up) and in shape. If not, records why in `cut`.
pub(super) fn accept_reply(
    left: &AtomicUsize,
    shape: &mut ShapeScanner,
    cut: &CutSignal,
    bytes: &[u8],
) -> bool {
    let budget = left.load(Ordering::Relaxed);
    if bytes.len() > budget {
        cut.set(Cut::TooLarge);
        return false;
    }
    if let Err(error) = shape.feed(bytes) {
        cut.set(Cut::Shape(error));
        return false;
    }
    left.store(budget - bytes.len(), Ordering::Relaxed);
    true
}

/// Moves everything `from` sends to `to` until `from` closes, a write fails, or `accept`
/// refuses a read (given the bytes read, before they are passed on). The copy buffer is the thread's, used only between
/// waits: an idle relay, which is what a relay is almost all the time, holds none.
async fn forward(from: &impl Socket, to: &impl Socket, mut accept: impl FnMut(&[u8]) -> bool) {
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
    accept: &mut impl FnMut(&[u8]) -> bool,
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
        if !accept(&buffer[..read]) {
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
