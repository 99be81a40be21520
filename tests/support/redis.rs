//! One `redis-server` (or `valkey-server`) launcher: [`RedisSpec`] says how, [`Redis`] owns
//! the running server and its temp dir.
//!
//! Every server logs to `<tmp>/redis.log`, keeps its data in `<tmp>/data` unless told
//! otherwise, and counts as started only once `INFO server` names its own pid, so a process
//! that won the race for the port is never mistaken for it.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::pki::Leaf;
use super::process::{
    child_pids, process_state, sigcont, sigstop, start_on_free_port, start_on_port, tail, tempdir,
    wait_until, Proc,
};
use super::resp::{parse_info, Resp};
use super::server::Server;

/// Redis's client, for driving faults and checking readiness.
pub const REDIS_CLI: &str = "/usr/bin/redis-cli";

/// TLS on the server's only port.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The server's certificate.
    pub server: Leaf,
    /// The CA clients are checked against.
    pub ca: PathBuf,
    /// The certificate the harness's own `redis-cli` presents.
    pub client: Leaf,
    /// `tls-auth-clients`: whether clients must present a certificate.
    pub auth_clients: bool,
}

/// How to start a [`Redis`]. The default: Redis 7.0 on TCP, AOF and RDB saves off.
#[derive(Debug, Clone, Default)]
pub struct RedisSpec {
    /// Which server binary.
    pub server: Server,
    /// `appendonly yes` when true.
    pub appendonly: bool,
    /// `--save`; `None` means `--save ""` (no automatic RDB saves).
    pub save: Option<String>,
    /// Listen on a unix socket in the temp dir instead of TCP.
    pub unix_socket: bool,
    /// `--dir`; default: a `data` folder in the server's own temp dir.
    pub data_dir: Option<PathBuf>,
    /// Run as this uid/gid (through `setpriv`) instead of root. Its dirs are chowned to it.
    pub run_as: Option<u32>,
    /// Lines of a redis.conf passed as the first argument (for config-file-only directives
    /// such as `rename-command`).
    pub conf_lines: Vec<String>,
    /// The name the harness uses for `CONFIG SET` (default `CONFIG`); `Some("")` when the
    /// server has none, and then rewrites run at whatever speed redis.conf set.
    pub config_name: Option<String>,
    /// Serve TLS only (`--port 0`, `--tls-port`).
    pub tls: Option<Tls>,
    /// `--requirepass`; the harness's own client authenticates with it.
    pub password: Option<String>,
    /// More arguments, after the harness's own.
    pub args: Vec<String>,
}

impl RedisSpec {
    /// AOF on, everything else default.
    pub fn aof() -> Self {
        RedisSpec {
            appendonly: true,
            ..Self::default()
        }
    }

    /// AOF off, RDB only.
    pub fn rdb() -> Self {
        Self::default()
    }

    /// The same, on `server`.
    pub fn on(mut self, server: Server) -> Self {
        self.server = server;
        self
    }

    /// Starts it.
    pub fn start(self) -> Redis {
        Redis::start(self)
    }
}

/// A running server in its own temp dir. Dropping it kills it.
pub struct Redis {
    spec: RedisSpec,
    /// TCP (or TLS) port, or `None` for a unix-socket-only server.
    port: Option<u16>,
    /// `None` while killed. A cell so that a shared stack can stop and restart it.
    proc: RefCell<Option<Proc>>,
    /// The harness's own RESP connection, made on first use.
    conn: RefCell<Option<Resp>>,
    dir: TempDir,
}

impl Redis {
    /// Starts a server on a free loopback port (or a unix socket) and waits until it answers.
    pub fn start(spec: RedisSpec) -> Redis {
        let dir = tempdir("rpe-redis-");
        let mut redis = Redis {
            spec,
            port: None,
            proc: RefCell::new(None),
            conn: RefCell::new(None),
            dir,
        };
        let data = redis.data_dir();
        fs::create_dir_all(&data).expect("create the data dir");
        if let Some(uid) = redis.spec.run_as {
            for path in [redis.dir.path(), data.as_path()] {
                std::os::unix::fs::chown(path, Some(uid), Some(uid)).expect("chown the redis dirs");
            }
        }
        let (proc, port) = start_on_free_port(
            redis.spec.server.name(),
            &redis.out_path(),
            |port| redis.command(port),
            |port, proc| redis.answers_as(port, proc.pid()),
        );
        if !redis.spec.unix_socket {
            redis.port = Some(port);
        }
        *redis.proc.borrow_mut() = Some(proc);
        redis
    }

    fn out_path(&self) -> PathBuf {
        // Its own log goes to `--logfile`; stdout and stderr only ever hold start-up errors.
        self.dir.path().join("redis.out")
    }

    fn command(&self, port: u16) -> Command {
        let spec = &self.spec;
        let mut args: Vec<String> = Vec::new();
        if !spec.conf_lines.is_empty() {
            let conf = self.dir.path().join("redis.conf");
            fs::write(&conf, spec.conf_lines.join("\n") + "\n").expect("write redis.conf");
            args.push(conf.display().to_string());
        }
        let mut set = |key: &str, value: String| args.extend([key.to_owned(), value]);
        set("--bind", "127.0.0.1".to_owned());
        set("--dir", self.data_dir().display().to_string());
        set("--logfile", self.log_path().display().to_string());
        set("--daemonize", "no".to_owned());
        set("--save", spec.save.clone().unwrap_or_default());
        set(
            "--appendonly",
            if spec.appendonly { "yes" } else { "no" }.to_owned(),
        );
        if spec.server.has_debug_switch() {
            set("--enable-debug-command", "local".to_owned());
        }
        match (&spec.tls, spec.unix_socket) {
            (Some(tls), _) => {
                set("--port", "0".to_owned());
                set("--tls-port", port.to_string());
                set("--tls-cert-file", tls.server.cert.display().to_string());
                set("--tls-key-file", tls.server.key.display().to_string());
                set("--tls-ca-cert-file", tls.ca.display().to_string());
                let auth = if tls.auth_clients { "yes" } else { "no" };
                set("--tls-auth-clients", auth.to_owned());
            }
            (None, true) => {
                set("--port", "0".to_owned());
                set("--unixsocket", self.socket_path().display().to_string());
                set("--unixsocketperm", "700".to_owned());
            }
            (None, false) => set("--port", port.to_string()),
        }
        if let Some(password) = &spec.password {
            set("--requirepass", password.clone());
        }
        args.extend(spec.args.iter().cloned());
        let binary = spec.server.binary_path();
        let mut command = match spec.run_as {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(binary);
                c
            }
            None => Command::new(binary),
        };
        command.args(args);
        command
    }

    /// Whether the server on `port` is the process `pid` (setpriv execs the server, so its
    /// pid is the child's).
    fn answers_as(&self, port: u16, pid: u32) -> bool {
        let info = parse_info(&self.cli_at(port, &["INFO", "server"]));
        info.get("process_id") == Some(&pid.to_string())
    }

    /// Kills the server (`SIGKILL`) and reaps it; port and dir are kept for
    /// [`Redis::restart`].
    pub fn kill(&self) {
        self.conn.borrow_mut().take();
        if let Some(mut proc) = self.proc.borrow_mut().take() {
            proc.kill();
        }
    }

    /// [`Redis::kill`].
    pub fn stop(&self) {
        self.kill();
    }

    /// Starts the server again on the same port (or socket) and dir, after [`Redis::kill`].
    pub fn restart(&self) {
        assert!(self.proc.borrow().is_none(), "restart() needs kill() first");
        let port = self.port.unwrap_or(0);
        let proc = start_on_port(
            self.spec.server.name(),
            &self.out_path(),
            port,
            |port| self.command(port),
            |port, proc| self.answers_as(port, proc.pid()),
        );
        *self.proc.borrow_mut() = Some(proc);
    }

    /// Which server binary runs.
    pub fn server(&self) -> Server {
        self.spec.server
    }

    /// The spec it was started with.
    pub fn spec(&self) -> &RedisSpec {
        &self.spec
    }

    /// The TCP port. Panics for a unix-socket server.
    pub fn port(&self) -> u16 {
        self.port.expect("this Redis listens on a unix socket only")
    }

    /// The unix socket path (used only when started with `unix_socket`).
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// The URL the exporter should poll.
    pub fn url(&self) -> String {
        match (self.port, &self.spec.tls) {
            (Some(port), None) => format!("redis://127.0.0.1:{port}"),
            (Some(port), Some(_)) => format!("rediss://127.0.0.1:{port}"),
            (None, _) => format!("unix://{}", self.socket_path().display()),
        }
    }

    /// The server's own temp dir (log, socket, redis.conf).
    pub fn dir(&self) -> &Path {
        self.dir.path()
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
        tail(&lines.join("\n"), n)
    }

    /// Log text after the first `offset` bytes (what a step added).
    pub fn log_since(&self, offset: usize) -> String {
        self.log().get(offset..).unwrap_or("").to_owned()
    }

    /// Current length of the log, for [`Redis::log_since`].
    pub fn log_len(&self) -> usize {
        self.log().len()
    }

    /// The server's pid. Panics if it is not running.
    pub fn pid(&self) -> u32 {
        self.proc
            .borrow()
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.spec.server.name()))
            .pid()
    }

    /// Live children of the server: the rewrite or BGSAVE child while one runs.
    pub fn child_pids(&self) -> Vec<u32> {
        child_pids(self.pid())
    }

    /// Freezes the server with `SIGSTOP`.
    pub fn sigstop(&self) {
        let pid = self.pid();
        assert!(sigstop(pid), "kill -STOP {pid}");
        wait_until(Duration::from_secs(5), "redis-server is stopped", || {
            process_state(pid) == Some('T')
        });
    }

    /// Thaws the server with `SIGCONT`.
    pub fn sigcont(&self) {
        assert!(sigcont(self.pid()), "kill -CONT {}", self.pid());
    }

    /// Runs `redis-cli` (as the default user, with the TLS client certificate) against this
    /// server and returns its trimmed stdout, or the failure.
    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_at(self.port.unwrap_or(0), args)
    }

    /// [`Redis::cli`] that must answer `OK`.
    pub fn cli_ok(&self, args: &[&str]) {
        let reply = self.cli(args);
        assert_eq!(reply, "OK", "redis-cli {args:?} on {}", self.url());
    }

    fn cli_at(&self, port: u16, args: &[&str]) -> String {
        let mut all: Vec<String> = if self.spec.unix_socket {
            vec!["-s".into(), self.socket_path().display().to_string()]
        } else {
            vec![
                "-h".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ]
        };
        if let Some(tls) = &self.spec.tls {
            all.extend(["--tls".into(), "--sni".into(), "redis.test".into()]);
            for (flag, path) in [
                ("--cacert", &tls.ca),
                ("--cert", &tls.client.cert),
                ("--key", &tls.client.key),
            ] {
                all.extend([flag.to_owned(), path.display().to_string()]);
            }
        }
        if let Some(password) = &self.spec.password {
            all.extend(["--no-auth-warning".into(), "-a".into(), password.clone()]);
        }
        all.extend(args.iter().map(|a| (*a).to_owned()));
        run_cli(&all)
    }

    /// One field of `INFO persistence`, through `redis-cli`.
    pub fn info_field(&self, field: &str) -> Option<String> {
        parse_info(&self.cli(&["INFO", "persistence"])).remove(field)
    }

    /// The rewrite status and whether a rewrite runs now, e.g. `("err", false)`, from ONE
    /// `INFO` reply: two replies could straddle the end of a rewrite and pair the old status
    /// with "not running".
    pub fn rewrite_state(&self) -> (String, bool) {
        let info = parse_info(&self.cli(&["INFO", "persistence"]));
        (
            info.get("aof_last_bgrewrite_status")
                .cloned()
                .unwrap_or_default(),
            info.get("aof_rewrite_in_progress").map(String::as_str) == Some("1"),
        )
    }

    /// The harness's RESP connection (TCP only), made on first use.
    pub(super) fn with_conn<T>(&self, f: impl FnOnce(&mut Resp) -> T) -> T {
        let mut conn = self.conn.borrow_mut();
        let conn =
            conn.get_or_insert_with(|| Resp::connect(self.port()).expect("connect to redis"));
        f(conn)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // Before the temp dir goes.
        self.kill();
    }
}

/// Runs `redis-cli -h 127.0.0.1 -p <port> <args>` and returns its trimmed stdout.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let mut all = vec![
        "-h".to_owned(),
        "127.0.0.1".to_owned(),
        "-p".to_owned(),
        port.to_string(),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    run_cli(&all)
}

/// Runs `redis-cli <args>`: its trimmed stdout, with stderr added when it fails.
pub fn run_cli(args: &[String]) -> String {
    let output = Command::new(REDIS_CLI)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    let mut text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() {
        let _ = write!(
            text,
            "\n(redis-cli failed: {})",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    text
}
