//! Harness for real-fault tests: real `redis-server` processes (optionally as an unprivileged
//! uid, on a tmpfs, with a redis.conf), the real exporter binary, a small RESP client for
//! driving faults, and an exposition parser.
//!
//! Everything a test starts is owned by a value whose `Drop` undoes it: servers and the
//! exporter are killed and reaped, tmpfs mounts are unmounted, so a failing assertion leaves
//! nothing behind. Declare a [`Tmpfs`] *before* the [`Redis`] living on it: locals drop in
//! reverse order, so the server dies before the unmount.
//!
//! Waiting is always for a condition up to a deadline ([`wait_until`]); a timeout panics with
//! what was awaited and the last evidence. Nothing asserts on speed.

// Each test binary uses a different subset.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::common::{free_port, poll_until, toml_string, REDIS_SERVER};

const POLL_EVERY: Duration = Duration::from_millis(50);
const START_TIMEOUT: Duration = Duration::from_secs(20);
const START_ATTEMPTS: usize = 5;

/// Deadline for anything the exporter must notice (several 500 ms polls plus slack).
pub const SEE: Duration = Duration::from_secs(20);
/// Deadline for a Redis-side state change (a rewrite to finish, a child to appear).
pub const REDIS_CHANGE: Duration = Duration::from_secs(60);

/// [`poll_until`] that panics with `what` and `evidence()` on timeout.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    condition: impl FnMut() -> bool,
    evidence: impl FnOnce() -> String,
) {
    if !poll_until(timeout, condition) {
        panic!(
            "timed out after {timeout:?} waiting until {what}\n{}",
            evidence()
        );
    }
}

/// Runs a command to completion, panicking if it cannot be started.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn describe(output: &Output) -> String {
    format!(
        "status {}, stdout {:?}, stderr {:?}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

/// `ps --ppid <pid> -o pid=`: the live children of a process (a rewrite or save child).
pub fn children_of(pid: u32) -> Vec<u32> {
    let output = run("ps", &["--ppid", &pid.to_string(), "-o", "pid=,stat="]);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let pid = parts.next()?.parse().ok()?;
            // A zombie is already dead; killing it proves nothing.
            let stat = parts.next().unwrap_or("");
            (!stat.starts_with('Z')).then_some(pid)
        })
        .collect()
}

/// `kill -KILL <pid>`.
pub fn sigkill(pid: u32) -> bool {
    run("kill", &["-KILL", &pid.to_string()]).status.success()
}

/// Tasks (threads included) owned by `uid`, as `ps -L -u <uid>` counts them: what
/// `RLIMIT_NPROC` is checked against at `fork()`.
pub fn tasks_of_uid(uid: u32) -> usize {
    let output = run("ps", &["-L", "-u", &uid.to_string(), "--no-headers"]);
    String::from_utf8_lossy(&output.stdout).lines().count()
}

// ---------------------------------------------------------------------------------------------
// RESP client

/// One RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR …`
    Error(String),
    /// `:1`
    Int(i64),
    /// `$…`; `None` is the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*…`
    Array(Vec<Reply>),
}

impl Reply {
    /// The reply as text, for messages and simple comparisons.
    pub fn text(&self) -> String {
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.clone(),
            Reply::Int(i) => i.to_string(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Bulk(None) => "(nil)".into(),
            Reply::Array(items) => items.iter().map(Reply::text).collect::<Vec<_>>().join(" "),
        }
    }

    /// Whether it is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// A blocking RESP2 connection, enough to drive faults with binary values.
pub struct Resp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Resp {
    /// Connects to `127.0.0.1:port`.
    pub fn connect(port: u16) -> std::io::Result<Resp> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(Resp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one command and reads its reply. Panics on I/O errors.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        self.try_cmd(args).expect("a command to redis")
    }

    /// Sends one command and reads its reply.
    pub fn try_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> std::io::Result<Reply> {
        let mut out = Vec::new();
        write!(out, "*{}\r\n", args.len()).unwrap();
        for arg in args {
            let arg = arg.as_ref();
            write!(out, "${}\r\n", arg.len()).unwrap();
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out)?;
        self.read_reply()
    }

    fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        if line.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }

    fn read_reply(&mut self) -> std::io::Result<Reply> {
        let line = self.read_line()?;
        let (kind, rest) = line.split_at(1);
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad reply line {line:?}"),
            )
        };
        Ok(match kind {
            "+" => Reply::Simple(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Int(rest.parse().map_err(|_| bad())?),
            "$" => {
                let len: i64 = rest.parse().map_err(|_| bad())?;
                if len < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut buf = vec![0; len as usize + 2];
                    self.reader.read_exact(&mut buf)?;
                    buf.truncate(len as usize);
                    Reply::Bulk(Some(buf))
                }
            }
            "*" => {
                let len: i64 = rest.parse().map_err(|_| bad())?;
                let mut items = Vec::new();
                for _ in 0..len.max(0) {
                    items.push(self.read_reply()?);
                }
                Reply::Array(items)
            }
            _ => return Err(bad()),
        })
    }
}

/// Deterministic, incompressible bytes (xorshift64*), so an RDB-preamble rewrite cannot
/// shrink them and a filled disk stays full.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Parses `INFO` text into field → value.
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .filter(|(k, _)| !k.starts_with('#'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Redis

/// How to start a [`Redis`].
#[derive(Debug, Clone, Default)]
pub struct RedisSpec {
    /// `appendonly yes` when true.
    pub appendonly: bool,
    /// `--dir`; default: a `data` folder in the server's own temp dir.
    pub data_dir: Option<PathBuf>,
    /// Run as this uid/gid (through `setpriv`) instead of root. Its temp dir is chowned to it.
    pub run_as: Option<u32>,
    /// Lines of a redis.conf passed as the first argument (for config-file-only directives
    /// such as `rename-command`).
    pub conf_lines: Vec<String>,
    /// The name the harness uses for `CONFIG SET` (default `CONFIG`); `Some("")` when the
    /// server has none, and then rewrites run at whatever speed redis.conf set.
    pub config_name: Option<String>,
}

impl RedisSpec {
    /// AOF on, everything else default.
    pub fn aof() -> Self {
        RedisSpec {
            appendonly: true,
            ..Self::default()
        }
    }
}

/// A `redis-server` in its own temp dir, logging to `<tmp>/redis.log`. Dropping it kills it.
pub struct Redis {
    dir: TempDir,
    spec: RedisSpec,
    port: u16,
    child: Option<Child>,
    conn: Option<Resp>,
}

impl Redis {
    /// Starts a server on a free loopback port and waits until it answers `PING`.
    pub fn start(spec: RedisSpec) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("rpe-fault-redis-")
            .tempdir()
            .expect("temp dir");
        let mut redis = Redis {
            dir,
            spec,
            port: 0,
            child: None,
            conn: None,
        };
        let data = redis.data_dir();
        fs::create_dir_all(&data).expect("create the data dir");
        if let Some(uid) = redis.spec.run_as {
            for path in [redis.dir.path(), data.as_path()] {
                std::os::unix::fs::chown(path, Some(uid), Some(uid)).expect("chown the redis dirs");
            }
        }
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            redis.port = free_port();
            match redis.spawn() {
                Ok(()) => return redis,
                Err(error) => last_error = error,
            }
        }
        panic!("redis-server did not start after {START_ATTEMPTS} attempts: {last_error}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut args: Vec<String> = Vec::new();
        if !self.spec.conf_lines.is_empty() {
            let conf = self.dir.path().join("redis.conf");
            fs::write(&conf, self.spec.conf_lines.join("\n") + "\n").expect("write redis.conf");
            args.push(conf.display().to_string());
        }
        for (key, value) in [
            ("--bind", "127.0.0.1".to_owned()),
            ("--port", self.port.to_string()),
            ("--dir", self.data_dir().display().to_string()),
            ("--logfile", self.log_path().display().to_string()),
            ("--daemonize", "no".to_owned()),
            ("--save", String::new()),
            (
                "--appendonly",
                if self.spec.appendonly { "yes" } else { "no" }.to_owned(),
            ),
            ("--appendfsync", "everysec".to_owned()),
            ("--enable-debug-command", "local".to_owned()),
        ] {
            args.push(key.to_owned());
            args.push(value);
        }
        let mut command = match self.spec.run_as {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(REDIS_SERVER);
                c
            }
            None => Command::new(REDIS_SERVER),
        };
        let child = command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {REDIS_SERVER}: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(mut conn) = Resp::connect(self.port) {
                // Whoever answers must be our server, not a process that won the port race.
                let pid = self.child.as_ref().map(Child::id).unwrap_or(0);
                let answered = conn
                    .try_cmd(&["INFO", "server"])
                    .map(|r| parse_info(&r.text()));
                if let Ok(info) = answered {
                    if info.get("process_id") == Some(&pid.to_string()) {
                        self.conn = Some(conn);
                        return Ok(());
                    }
                    if !info.is_empty() {
                        self.kill();
                        return Err(format!("port {} belongs to another server", self.port));
                    }
                }
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(format!(
                    "redis-server exited with {status}; log:\n{}",
                    self.log()
                ));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "redis-server did not answer PING; log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// The server's data directory (`dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.spec
            .data_dir
            .clone()
            .unwrap_or_else(|| self.dir.path().join("data"))
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `n` log lines that are not the long startup warnings.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().filter(|l| !l.contains("WARNING")).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Log lines after the first `skip` bytes (what a step added).
    pub fn log_since(&self, offset: usize) -> String {
        let log = self.log();
        log.get(offset..).unwrap_or("").to_owned()
    }

    /// Current length of the log, for [`Redis::log_since`].
    pub fn log_len(&self) -> usize {
        self.log().len()
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's pid (setpriv execs it, so it is the child's pid).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("redis-server is not running")
            .id()
    }

    /// Runs one command on the harness's own connection.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        if self.conn.is_none() {
            self.conn = Some(Resp::connect(self.port).expect("connect to redis"));
        }
        self.conn.as_mut().expect("connected").cmd(args)
    }

    /// [`Redis::cmd`] that panics on an error reply.
    pub fn ok<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let reply = self.cmd(args);
        if reply.is_error() {
            let shown: Vec<String> = args
                .iter()
                .map(|a| {
                    String::from_utf8_lossy(&a.as_ref()[..a.as_ref().len().min(40)]).into_owned()
                })
                .collect();
            panic!(
                "{shown:?} failed: {}\nredis log:\n{}",
                reply.text(),
                self.log_tail(20)
            );
        }
        reply
    }

    /// `INFO persistence` as a map.
    pub fn persistence(&mut self) -> BTreeMap<String, String> {
        parse_info(&self.cmd(&["INFO", "persistence"]).text())
    }

    /// One `INFO persistence` field.
    pub fn field(&mut self, name: &str) -> String {
        self.persistence().get(name).cloned().unwrap_or_default()
    }

    /// The AOF fields a report should show, on one line.
    pub fn aof_fields(&mut self) -> String {
        let info = self.persistence();
        [
            "aof_enabled",
            "aof_rewrite_in_progress",
            "aof_last_bgrewrite_status",
            "aof_rewrites",
            "aof_rewrites_consecutive_failures",
            "aof_last_write_status",
            "aof_current_size",
            "aof_base_size",
        ]
        .iter()
        .map(|k| format!("{k}:{}", info.get(*k).map(String::as_str).unwrap_or("-")))
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// The rewrite or save children now.
    pub fn children(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// `DEBUG POPULATE n`.
    pub fn populate(&mut self, keys: u64) {
        self.ok(&["DEBUG", "POPULATE", &keys.to_string()]);
    }

    /// `CONFIG SET name value` under the server's name for CONFIG; skipped when it has none.
    pub fn config_set(&mut self, name: &str, value: &str) {
        let command = self
            .spec
            .config_name
            .clone()
            .unwrap_or_else(|| "CONFIG".into());
        if !command.is_empty() {
            self.ok(&[command.as_str(), "SET", name, value]);
        }
    }

    /// Starts a rewrite slowed by `rdb-key-save-delay` and returns its child's pid.
    pub fn start_slow_rewrite(&mut self) -> u32 {
        self.config_set("rdb-key-save-delay", "100");
        self.ok(&["BGREWRITEAOF"]);
        let mut child = None;
        wait_until(
            REDIS_CHANGE,
            "the rewrite child appears under redis-server",
            || {
                child = self.children().first().copied();
                child.is_some()
            },
            || self.log_tail(10),
        );
        child.expect("child")
    }

    /// Kills the running rewrite's child with SIGKILL and waits until Redis has reaped it
    /// and says `aof_last_bgrewrite_status:err`. Returns the child's pid.
    pub fn kill_rewrite_child(&mut self) -> u32 {
        let child = self.start_slow_rewrite();
        assert!(sigkill(child), "kill -KILL {child}");
        let mut last = String::new();
        let done = poll_until(REDIS_CHANGE, || {
            let info = self.persistence();
            last = format!("{info:?}");
            info.get("aof_rewrite_in_progress").map(String::as_str) == Some("0")
                && info.get("aof_last_bgrewrite_status").map(String::as_str) == Some("err")
        });
        assert!(
            done,
            "the killed rewrite did not end in err: {last}\n{}",
            self.log_tail(10)
        );
        child
    }

    /// A rewrite at full speed, waited for until `aof_rewrites` moved and nothing runs.
    /// Returns `aof_last_bgrewrite_status` afterwards.
    pub fn clean_rewrite(&mut self) -> String {
        self.config_set("rdb-key-save-delay", "0");
        let before: u64 = self.field("aof_rewrites").parse().unwrap_or(0);
        let reply = self.cmd(&["BGREWRITEAOF"]);
        let mut last = String::new();
        let done = poll_until(REDIS_CHANGE, || {
            let info = self.persistence();
            last = format!("{info:?}");
            let rewrites: u64 = info
                .get("aof_rewrites")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            rewrites > before
                && info.get("aof_rewrite_in_progress").map(String::as_str) == Some("0")
        });
        assert!(
            done,
            "BGREWRITEAOF ({}) did not finish: {last}\n{}",
            reply.text(),
            self.log_tail(10)
        );
        self.field("aof_last_bgrewrite_status")
    }

    /// Kills the server and reaps it.
    pub fn kill(&mut self) {
        self.conn = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The soft and hard `Max processes` limits of the server, from `/proc/<pid>/limits`.
    pub fn nproc_limits(&self) -> (String, String) {
        let limits = fs::read_to_string(format!("/proc/{}/limits", self.pid())).unwrap_or_default();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max processes"))
            .unwrap_or("")
            .trim_start_matches("Max processes")
            .to_owned();
        let mut parts = line.split_whitespace();
        (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        )
    }

    /// Sets the server's soft `RLIMIT_NPROC` with `prlimit --pid`. Root here lacks
    /// `CAP_SYS_RESOURCE` in many containers, and without it the kernel only lets a process
    /// of the same uid change another's limits; lowering the soft limit only keeps the way
    /// back open (an unprivileged process may raise a soft limit up to the hard one).
    pub fn set_soft_nproc(&self, soft: &str) -> Result<(), String> {
        let uid = self.spec.run_as.expect("set_soft_nproc needs run_as");
        let pid = self.pid().to_string();
        let limit = format!("--nproc={soft}:");
        let as_root = run("prlimit", &["--pid", &pid, &limit]);
        if as_root.status.success() {
            return Ok(());
        }
        let as_owner = run(
            "setpriv",
            &[
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "prlimit",
                "--pid",
                &pid,
                &limit,
            ],
        );
        if as_owner.status.success() {
            Ok(())
        } else {
            Err(format!(
                "prlimit as root: {}; as uid {uid}: {}",
                describe(&as_root),
                describe(&as_owner)
            ))
        }
    }

    /// Lowers the soft `RLIMIT_NPROC` to the tasks its uid owns now, so `fork()` fails with
    /// EAGAIN. Returns the limit set.
    pub fn block_fork(&self) -> usize {
        let uid = self.spec.run_as.expect("block_fork needs run_as");
        let tasks = tasks_of_uid(uid);
        assert!(tasks > 0, "no task owned by uid {uid}");
        self.set_soft_nproc(&tasks.to_string())
            .unwrap_or_else(|e| panic!("cannot lower RLIMIT_NPROC: {e}"));
        tasks
    }

    /// Raises the soft `RLIMIT_NPROC` back to the hard limit.
    pub fn unblock_fork(&self) {
        let (_, hard) = self.nproc_limits();
        let hard = if hard.is_empty() {
            "unlimited".to_owned()
        } else {
            hard
        };
        self.set_soft_nproc(&hard)
            .unwrap_or_else(|e| panic!("cannot raise RLIMIT_NPROC: {e}"));
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A unique uid for an unprivileged server. Each test gets its own, so `RLIMIT_NPROC` (which
/// counts every task of the uid) is not disturbed by another test's servers. The uid need not
/// exist in /etc/passwd.
pub fn private_uid() -> u32 {
    // Ports are unique among live listeners; the offset keeps clear of real accounts.
    3_000_000 + u32::from(free_port())
}

// ---------------------------------------------------------------------------------------------
// tmpfs

/// A tmpfs mounted on a fresh temp dir; unmounted (lazily, so a straggler cannot block it)
/// on drop.
pub struct Tmpfs {
    dir: TempDir,
    mounted: bool,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`4m`) with mode 1777.
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("rpe-fault-tmpfs-")
            .tempdir()
            .expect("temp dir");
        let output = run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=1777"),
                "tmpfs",
                &dir.path().display().to_string(),
            ],
        );
        assert!(
            output.status.success(),
            "mount tmpfs: {}",
            describe(&output)
        );
        Tmpfs { dir, mounted: true }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Free bytes as `df` would say.
    pub fn free_bytes(&self) -> u64 {
        let output = run(
            "df",
            &["-B1", "--output=avail", &self.path().display().to_string()],
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let path = self.path().display().to_string();
            let _ = run("umount", &[&path]);
            // Lazy as a fallback: never leave a mount behind a failed test.
            if run("mountpoint", &["-q", &path]).status.success() {
                let _ = run("umount", &["-l", &path]);
            }
            self.mounted = false;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Exporter

/// One `[[targets]]` entry of the exporter's config.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `name`
    pub name: String,
    /// `url`
    pub url: String,
    /// `log_file`
    pub log_file: Option<PathBuf>,
    /// `data_dir`
    pub data_dir: Option<PathBuf>,
    /// `username`
    pub username: Option<String>,
    /// `password`
    pub password: Option<String>,
    /// `config_command`
    pub config_command: Option<String>,
}

impl Target {
    /// A target for `redis` with its log and data dir (host access).
    pub fn host(name: &str, redis: &Redis) -> Target {
        Target {
            name: name.to_owned(),
            url: redis.url(),
            log_file: Some(redis.log_path()),
            data_dir: Some(redis.data_dir()),
            ..Target::default()
        }
    }

    /// A target reached by URL only.
    pub fn url(name: &str, url: &str) -> Target {
        Target {
            name: name.to_owned(),
            url: url.to_owned(),
            ..Target::default()
        }
    }
}

/// The config the fault tests run with: 500 ms polls, 400 ms timeout, CONFIG re-read every
/// second.
pub fn config_toml(targets: &[Target]) -> String {
    let mut out = String::from(
        "poll_interval = \"500ms\"\npoll_timeout = \"400ms\"\nconfig_refresh_interval = \"1s\"\n",
    );
    for t in targets {
        let _ = write!(
            out,
            "\n[[targets]]\nname = {}\nurl = {}\n",
            toml_string(&t.name),
            toml_string(&t.url)
        );
        let optional = [
            (
                "log_file",
                t.log_file.as_ref().map(|p| p.display().to_string()),
            ),
            (
                "data_dir",
                t.data_dir.as_ref().map(|p| p.display().to_string()),
            ),
            ("username", t.username.clone()),
            ("password", t.password.clone()),
            ("config_command", t.config_command.clone()),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                let _ = writeln!(out, "{key} = {}", toml_string(&value));
            }
        }
    }
    out
}

/// A running exporter at its default log level, read as parsed [`Metrics`]. Dropping it
/// kills it.
pub struct Exporter(crate::common::Exporter);

impl Exporter {
    /// Writes the config for `targets` and starts the exporter on a free port.
    pub fn start(targets: &[Target]) -> Exporter {
        Self::start_with(&config_toml(targets))
    }

    /// Starts the exporter with a config text, waiting until `/metrics` answers.
    pub fn start_with(config: &str) -> Exporter {
        Exporter(crate::common::Exporter::start_logging_at(config, None))
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.0.config_path()
    }

    /// The exporter's output so far.
    pub fn log(&self) -> String {
        self.0.log()
    }

    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// `/metrics`, parsed. Panics with the log if the scrape fails.
    pub fn metrics(&self) -> Metrics {
        match http_get(self.port(), "/metrics") {
            Ok(body) => Metrics::parse(&body),
            Err(e) => panic!("scrape failed: {e}\nexporter log:\n{}", self.log()),
        }
    }

    /// Scrapes until `condition` holds or `timeout` passes; `Ok` with the scrape that met it,
    /// `Err` with the last one.
    pub fn try_wait_for(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&Metrics) -> bool,
    ) -> Result<Metrics, Metrics> {
        let mut last = Metrics::default();
        let met = poll_until(timeout, || match http_get(self.port(), "/metrics") {
            Ok(body) => {
                last = Metrics::parse(&body);
                condition(&last)
            }
            Err(_) => false,
        });
        if met {
            Ok(last)
        } else {
            Err(last)
        }
    }

    /// Scrapes until `condition` holds; returns that scrape. On timeout panics with `what`,
    /// the last scrape's lines for the target and the exporter log.
    pub fn wait_for(&self, what: &str, mut condition: impl FnMut(&Metrics) -> bool) -> Metrics {
        let mut last = Metrics::default();
        let met = poll_until(SEE, || match http_get(self.port(), "/metrics") {
            Ok(body) => {
                last = Metrics::parse(&body);
                condition(&last)
            }
            Err(_) => false,
        });
        if !met {
            panic!(
                "timed out after {SEE:?} waiting until {what}\n--- last scrape (persistence series) ---\n{}\n--- exporter log ---\n{}",
                last.persistence_lines(),
                self.log()
            );
        }
        last
    }
}

/// `GET http://127.0.0.1:<port><path>` with a 5 s timeout; the body on 200.
pub fn http_get(port: u16, path: &str) -> Result<String, String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.text().map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("HTTP {status}: {body}"));
    }
    Ok(body)
}

/// One sample of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Name with suffixes (`redis_aof_rewrite_failed_attempts_total`).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
    /// The line as served.
    pub line: String,
}

/// A parsed `/metrics` body.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Every sample.
    pub samples: Vec<Sample>,
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if name.is_empty() || chars.next() != Some('=') || chars.next() != Some('"') {
            return labels;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(name.trim().to_owned(), value);
    }
}

impl Metrics {
    /// Parses OpenMetrics/Prometheus text.
    pub fn parse(body: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in body.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = match line.rsplit_once('}') {
                Some((head, tail)) => (format!("{head}}}"), tail.trim().to_owned()),
                None => match line.split_once(' ') {
                    Some((name, rest)) => (name.to_owned(), rest.trim().to_owned()),
                    None => continue,
                },
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name.to_owned(), parse_labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            // A timestamp may follow the value.
            let value = value.split_whitespace().next().unwrap_or("");
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            samples.push(Sample {
                name,
                labels,
                value,
                line: line.to_owned(),
            });
        }
        Metrics { samples }
    }

    /// The value of `name` for target `target` whose other labels include `labels`.
    pub fn get(&self, name: &str, target: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.get("target").map(String::as_str) == Some(target)
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }

    /// `get` without extra labels.
    pub fn value(&self, name: &str, target: &str) -> Option<f64> {
        self.get(name, target, &[])
    }

    /// Which card state is 1 for `target` (`ok`, `err`, `not_applicable`).
    pub fn card(&self, target: &str) -> Option<String> {
        self.samples
            .iter()
            .find(|s| {
                s.name == "redis_aof_rewrite_state"
                    && s.labels.get("target").map(String::as_str) == Some(target)
                    && s.value == 1.0
            })
            .and_then(|s| s.labels.get("state").cloned())
    }

    /// The `reason` of `redis_persistence_failure_reason{mechanism}` for `target`.
    pub fn reason(&self, target: &str, mechanism: &str) -> Option<String> {
        self.samples
            .iter()
            .find(|s| {
                s.name == "redis_persistence_failure_reason"
                    && s.labels.get("target").map(String::as_str) == Some(target)
                    && s.labels.get("mechanism").map(String::as_str) == Some(mechanism)
                    && s.value == 1.0
            })
            .and_then(|s| s.labels.get("reason").cloned())
    }

    /// Every reason series for `target`, as `mechanism=reason` strings.
    pub fn reasons(&self, target: &str) -> Vec<String> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == "redis_persistence_failure_reason"
                    && s.labels.get("target").map(String::as_str) == Some(target)
            })
            .map(|s| {
                format!(
                    "{}={}",
                    s.labels.get("mechanism").cloned().unwrap_or_default(),
                    s.labels.get("reason").cloned().unwrap_or_default()
                )
            })
            .collect()
    }

    /// The persistence-related lines, for messages and the report.
    pub fn persistence_lines(&self) -> String {
        self.samples
            .iter()
            .filter(|s| {
                s.name.starts_with("redis_aof_")
                    || s.name.starts_with("redis_persistence_")
                    || s.name.starts_with("redis_config_")
                    || s.name == "redis_up"
                    || s.name.starts_with("redis_rdb_bgsave")
            })
            .map(|s| s.line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The exporter's view of one target on one line, for the report.
    pub fn summary(&self, target: &str) -> String {
        let v = |name: &str| {
            self.value(name, target)
                .map(|v| format!("{v}"))
                .unwrap_or_else(|| "-".into())
        };
        format!(
            "card={} stuck={} failed_attempts_total={} transient_recoveries_total={} raw_rewrite_status={} write_status={} rewrites_total={} consecutive_failures={} growth_ratio={} overdue={} free_bytes={} config_available={} reasons={:?}",
            self.card(target).unwrap_or_else(|| "-".into()),
            v("redis_aof_rewrite_stuck"),
            v("redis_aof_rewrite_failed_attempts_total"),
            v("redis_aof_rewrite_transient_recoveries_total"),
            v("redis_aof_last_bgrewrite_status"),
            v("redis_aof_last_write_status"),
            v("redis_aof_rewrites_total"),
            v("redis_aof_rewrites_consecutive_failures"),
            v("redis_aof_growth_ratio"),
            v("redis_aof_rewrite_overdue"),
            v("redis_persistence_dir_free_bytes"),
            v("redis_config_available"),
            self.reasons(target),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Findings

/// Expectations checked without stopping the scenario, so one run records every divergence
/// between Redis and the exporter; [`Findings::finish`] fails the test if any was recorded.
/// Also keeps a transcript of what Redis and the exporter said at each step (printed with
/// `--nocapture`, and in the failure message).
#[derive(Debug, Default)]
pub struct Findings {
    test: String,
    transcript: Vec<String>,
    failures: Vec<String>,
}

impl Findings {
    /// A fresh record for `test`.
    pub fn new(test: &str) -> Findings {
        Findings {
            test: test.to_owned(),
            ..Findings::default()
        }
    }

    /// Notes a step.
    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("[{}] {text}", self.test);
        self.transcript.push(text);
    }

    /// Records a divergence unless `ok`.
    pub fn expect(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            let what = what.into();
            eprintln!("[{}] FINDING: {what}", self.test);
            self.failures.push(what);
        }
    }

    /// Panics if any expectation failed, with the transcript.
    pub fn finish(self) {
        if !self.failures.is_empty() {
            panic!(
                "{}: {} expectation(s) failed:\n- {}\n--- transcript ---\n{}",
                self.test,
                self.failures.len(),
                self.failures.join("\n- "),
                self.transcript.join("\n")
            );
        }
    }
}
