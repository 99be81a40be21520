//! Fake Redis servers that misbehave in ways a real `redis-server` never does.
//!
//! A [`FakeRedis`] listens on a free loopback port and speaks just enough RESP for the
//! exporter's client to connect (`PING`, `CLIENT ID`, `INFO`), then answers every `INFO`
//! according to its current [`Behavior`]. The behaviour can be switched while the exporter
//! polls, so a test shows the healthy state, the fault and the recovery against one target.
//!
//! Everything is bounded: the accept loop and every connection thread stop when the server is
//! dropped, a connection lives at most [`CONNECTION_LIFETIME`], and the enormous reply stops
//! at [`ENORMOUS_CAP`] bytes.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::resp::bulk;

/// The exporter's per-reply budget (`redis_client::MAX_REPLY_BYTES`).
pub const MAX_REPLY_BYTES: u64 = 1 << 20;
/// The longest any one connection is served, whatever the client does.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// The most an enormous reply sends before giving up on its own.
pub const ENORMOUS_CAP: u64 = 256 << 20;
/// How often blocked reads and writes wake up to look at the stop flag.
const WAKE_EVERY: Duration = Duration::from_millis(100);

/// How the server answers `INFO` (and, for [`Behavior::Silent`], everything).
#[derive(Debug, Clone)]
pub enum Behavior {
    /// A real `INFO` reply (a reference reply from Redis 7.0.15) as a bulk string.
    Healthy,
    /// Reads every request and never writes a byte.
    Silent,
    /// Answers `INFO` with these bytes and keeps the connection open.
    Reply(Vec<u8>),
    /// Answers `INFO` with these bytes, then closes the connection.
    ReplyThenClose(Vec<u8>),
    /// Answers `INFO` with the healthy reply, one byte per `every`.
    Trickle { every: Duration },
    /// Answers `INFO` with a `$2000000000` header and then as many bytes as the socket
    /// takes, up to [`ENORMOUS_CAP`] or [`CONNECTION_LIFETIME`].
    Enormous,
}

/// What the server saw and did, for asserting that a fault was really exercised.
#[derive(Debug, Default)]
pub struct Stats {
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// `INFO` requests received.
    pub info_requests: AtomicU64,
    /// The sections each `INFO` asked for, space-separated ("" for plain `INFO`), in order.
    pub info_sections: Mutex<Vec<String>>,
    /// Enormous replies that got more than [`MAX_REPLY_BYTES`] into the socket.
    pub oversized_replies: AtomicU64,
    /// Bytes written in the largest single enormous reply.
    pub largest_reply_bytes: AtomicU64,
}

/// A fake server on a loopback port. Dropping it stops it.
pub struct FakeRedis {
    port: u16,
    behavior: Arc<Mutex<Behavior>>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeRedis {
    /// Starts a server with `behavior` on a free loopback port.
    pub fn start(behavior: Behavior) -> FakeRedis {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("local addr").port();
        let behavior = Arc::new(Mutex::new(behavior));
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (behavior, stats, stop) = (behavior.clone(), stats.clone(), stop.clone());
            std::thread::spawn(move || accept_loop(listener, behavior, stats, stop))
        };
        FakeRedis {
            port,
            behavior,
            stats,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// The URL the exporter should poll.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Switches behaviour; it applies to the next request on every connection.
    pub fn set(&self, behavior: Behavior) {
        *self.behavior.lock().unwrap_or_else(|e| e.into_inner()) = behavior;
    }

    /// What the server saw so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

impl Drop for FakeRedis {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    behavior: Arc<Mutex<Behavior>>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) {
    let mut connections = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                stats.connections.fetch_add(1, Ordering::Relaxed);
                let (behavior, stats, stop) = (behavior.clone(), stats.clone(), stop.clone());
                connections.push(std::thread::spawn(move || {
                    serve(stream, &behavior, &stats, &stop)
                }));
                connections.retain(|c: &JoinHandle<()>| !c.is_finished());
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// The healthy `INFO` text: a reference reply captured from Redis 7.0.15.
pub fn healthy_info_text() -> Vec<u8> {
    let path = format!(
        "{}/tests/data/info/reference/healthy_rdb_info_everything.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

struct Conn<'a> {
    stream: TcpStream,
    stop: &'a AtomicBool,
    deadline: Instant,
}

impl Conn<'_> {
    fn ended(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }

    /// Writes all of `bytes`; `false` when the peer is gone or the connection must end.
    fn write_all(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.ended() {
                return false;
            }
            match self.stream.write(bytes) {
                Ok(0) => return false,
                Ok(n) => bytes = &bytes[n..],
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => return false,
            }
        }
        true
    }
}

fn serve(stream: TcpStream, behavior: &Mutex<Behavior>, stats: &Stats, stop: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(WAKE_EVERY));
    let _ = stream.set_write_timeout(Some(WAKE_EVERY));
    let mut conn = Conn {
        stream,
        stop,
        deadline: Instant::now() + CONNECTION_LIFETIME,
    };
    let mut pending = Vec::new();
    let mut buffer = [0u8; 4096];
    while !conn.ended() {
        match conn.stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        while let Some(parsed) = next_command(&pending) {
            let (command, used) = match parsed {
                Ok(found) => found,
                Err(()) => return,
            };
            pending.drain(..used);
            let current = behavior.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if !answer(&mut conn, &command, &current, stats) {
                let _ = conn.stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// Answers one command; `false` when the connection must end.
fn answer(conn: &mut Conn<'_>, command: &[Vec<u8>], behavior: &Behavior, stats: &Stats) -> bool {
    if matches!(behavior, Behavior::Silent) {
        return true;
    }
    let name = command
        .first()
        .map(|n| String::from_utf8_lossy(n).to_ascii_uppercase())
        .unwrap_or_default();
    match name.as_str() {
        "PING" => conn.write_all(b"+PONG\r\n"),
        "CLIENT" => conn.write_all(b":7\r\n"),
        "QUIT" => {
            let _ = conn.write_all(b"+OK\r\n");
            false
        }
        "CONFIG" => conn.write_all(b"*0\r\n"),
        "INFO" => {
            stats.info_requests.fetch_add(1, Ordering::Relaxed);
            let sections: Vec<String> = command[1..]
                .iter()
                .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
                .collect();
            stats
                .info_sections
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(sections.join(" "));
            answer_info(conn, behavior, stats)
        }
        _ => conn.write_all(b"-ERR unknown command\r\n"),
    }
}

fn answer_info(conn: &mut Conn<'_>, behavior: &Behavior, stats: &Stats) -> bool {
    match behavior {
        Behavior::Silent => true,
        Behavior::Healthy => conn.write_all(&bulk(&healthy_info_text())),
        Behavior::Reply(bytes) => conn.write_all(bytes),
        Behavior::ReplyThenClose(bytes) => {
            let _ = conn.write_all(bytes);
            false
        }
        Behavior::Trickle { every } => {
            for byte in bulk(&healthy_info_text()) {
                if !conn.write_all(&[byte]) {
                    return false;
                }
                // The server's own pace, not a wait for a state.
                std::thread::sleep(*every);
            }
            true
        }
        Behavior::Enormous => {
            let mut sent = 0u64;
            let mut ok = conn.write_all(b"$2000000000\r\n");
            let filler = vec![b'x'; 64 << 10];
            while ok && sent < ENORMOUS_CAP {
                ok = conn.write_all(&filler);
                if ok {
                    sent += filler.len() as u64;
                }
            }
            if sent > MAX_REPLY_BYTES {
                stats.oversized_replies.fetch_add(1, Ordering::Relaxed);
            }
            stats.largest_reply_bytes.fetch_max(sent, Ordering::Relaxed);
            false
        }
    }
}

/// A request's arguments, the command name first.
type Command = Vec<Vec<u8>>;

/// The next complete RESP command (an array of bulk strings) in `buf` and the bytes it used;
/// `None` while incomplete, `Err` for something no Redis client sends.
fn next_command(buf: &[u8]) -> Option<Result<(Command, usize), ()>> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        Some((&buf[at..at + end], at + end + 2))
    }
    fn number(text: &[u8]) -> Result<usize, ()> {
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(())
    }
    let (header, mut at) = line(buf, 0)?;
    let Some(count) = header.strip_prefix(b"*") else {
        return Some(Err(()));
    };
    let count = match number(count) {
        Ok(n) if n <= 1024 => n,
        _ => return Some(Err(())),
    };
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        let (header, next) = line(buf, at)?;
        let Some(len) = header.strip_prefix(b"$") else {
            return Some(Err(()));
        };
        let len = match number(len) {
            Ok(n) if n <= 1 << 20 => n,
            _ => return Some(Err(())),
        };
        let end = next + len;
        if buf.len() < end + 2 {
            return None;
        }
        args.push(buf[next..end].to_vec());
        at = end + 2;
    }
    Some(Ok((args, at)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_commands_split_anywhere() {
        let request = b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n";
        for cut in 0..request.len() {
            assert!(next_command(&request[..cut]).is_none(), "cut at {cut}");
        }
        let (args, used) = next_command(request).unwrap().unwrap();
        assert_eq!(args, vec![b"INFO".to_vec(), b"server".to_vec()]);
        assert_eq!(used, request.len());
    }
}
