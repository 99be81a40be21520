//! The byte-budget relay between the Redis client and the target.
//!
//! fred buffers any reply whole, so a hostile server could otherwise make the exporter hold
//! gigabytes. The client talks to this relay (a unix socket in a private folder, or a loopback
//! TCP port for TLS), and the relay forwards to the target, cutting the connection when a
//! reply exceeds its budget.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::net::{lookup_host, TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream};

use super::ClientError;
use crate::target::Address;

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
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
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
async fn pump(client: impl Socket, upstream: Upstream, limit: usize, oversized: Arc<AtomicBool>) {
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
