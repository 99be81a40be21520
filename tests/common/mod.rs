//! Black-box test harness: a real `redis-server`, the real exporter binary, and a scraper.
//!
//! Every helper owns its processes and temp dirs; dropping it kills the process (`SIGKILL`,
//! then `wait`), so a failing test never leaks a server. Ports come from binding port 0 on
//! loopback; a start that loses the race for its port is retried on a fresh one, so tests can
//! run in parallel.
//!
//! Waiting is always for a *condition* ([`wait_until`], [`Exporter::wait_for`]), polled every
//! 50 ms up to a deadline, and a timeout panics with the last scrape and the exporter log.

// Each test binary uses a different subset of the harness.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The Redis under test: the Debian 12 package, 7.0.15.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// Its client, for driving faults.
pub const REDIS_CLI: &str = "/usr/bin/redis-cli";
/// Prometheus, for the tests that run a real server against the exporter.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";
/// Alertmanager, for the end-to-end alerting tests.
pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
/// The exporter binary cargo built for this test run.
pub const EXPORTER: &str = env!("CARGO_BIN_EXE_redis-persistence-exporter");
/// Prefix of the environment variables the exporter reads config overrides from; stripped
/// from every child so the developer's shell cannot change a test.
const ENV_PREFIX: &str = "REDIS_PERSISTENCE_EXPORTER_";

/// How often [`wait_until`] re-checks its condition.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// How long a process gets to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at starting on a fresh port after losing a port race.
const START_ATTEMPTS: usize = 5;

/// A currently free loopback port. Another process may take it before we use it; starters
/// retry on a new one when that happens.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A child process whose stdout and stderr go to `log`. Killed (`SIGKILL`) and reaped on
/// drop, also while a failing test unwinds.
pub struct Proc {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `command` with stdin closed and its output in `log`.
    pub fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> Proc {
        let out = fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name,
            child: Some(child),
            log,
        }
    }

    /// Polls `ready` until it holds. The process exiting first, or [`START_TIMEOUT`] passing
    /// (the process is then killed), is an error with the end of its output.
    pub fn await_ready(&mut self, mut ready: impl FnMut(&Proc) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ready(self) {
                return Ok(());
            }
            if let Some(status) = self.exited() {
                return Err(format!(
                    "{} exited with {status}:\n{}",
                    self.name,
                    self.log_tail(20)
                ));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "{} not ready in {START_TIMEOUT:?}:\n{}",
                    self.name,
                    self.log_tail(20)
                ));
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// The process id. Panics once the process was killed.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.name))
            .id()
    }

    /// `Some(description)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }

    /// Waits up to `timeout` for the process to exit and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        poll_until(timeout, || {
            status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            status.is_some()
        });
        status
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines the process wrote.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `SIGKILL`, then reap. Nothing if it is no longer running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `make(port)` on a free loopback port until `ready(port, process)` holds, retrying
/// on a fresh port when the process exits early (typically: the port was taken) or never
/// becomes ready.
pub fn start_on_free_port(
    name: &'static str,
    log: &Path,
    make: impl Fn(u16) -> Command,
    ready: impl Fn(u16, &Proc) -> bool,
) -> (Proc, u16) {
    let mut failures = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port();
        let mut proc = Proc::spawn(name, make(port), log.to_path_buf());
        match proc.await_ready(|proc| ready(port, proc)) {
            Ok(()) => return (proc, port),
            Err(error) => failures.push(format!("port {port}: {error}")),
        }
    }
    panic!(
        "{name} did not start after {START_ATTEMPTS} attempts:\n{}",
        failures.join("\n---\n")
    );
}

/// Polls `condition` every 50 ms until it holds (`true`) or `timeout` passes (`false`).
pub fn poll_until(timeout: Duration, condition: impl FnMut() -> bool) -> bool {
    poll_until_every(timeout, POLL_EVERY, condition)
}

/// [`poll_until`] re-checking every `every` instead of every 50 ms.
pub fn poll_until_every(
    timeout: Duration,
    every: Duration,
    mut condition: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// [`poll_until`] that panics with `what` on timeout.
pub fn wait_until(timeout: Duration, what: &str, condition: impl FnMut() -> bool) {
    if !poll_until(timeout, condition) {
        panic!("timed out after {timeout:?} waiting until {what}");
    }
}

fn kill_pid(signal: &str, pid: u32) -> bool {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Sends `SIGKILL` to `pid` with the `kill` command (no `unsafe`, no libc).
pub fn sigkill(pid: u32) -> bool {
    kill_pid("-KILL", pid)
}

/// Sends `SIGSTOP` to `pid`.
pub fn sigstop(pid: u32) -> bool {
    kill_pid("-STOP", pid)
}

/// Sends `SIGCONT` to `pid`.
pub fn sigcont(pid: u32) -> bool {
    kill_pid("-CONT", pid)
}

/// Live (non-zombie) children of `parent`, read from `/proc/*/stat`.
pub fn child_pids(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && state != "Z" && state != "X" {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// The process state letter of `pid` (`R`, `S`, `T` for stopped, …), if it exists.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Runs `redis-cli -p <port> <args>` and returns its trimmed stdout.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let mut cli_args = vec![
        "-h".to_owned(),
        "127.0.0.1".to_owned(),
        "-p".to_owned(),
        port.to_string(),
    ];
    cli_args.extend(args.iter().map(|a| (*a).to_owned()));
    run_cli(&cli_args)
}

fn run_cli(args: &[String]) -> String {
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

/// How to start a [`Redis`].
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// `--appendonly yes|no`.
    pub appendonly: bool,
    /// `--save`; `None` means `--save ""` (no automatic RDB saves).
    pub save: Option<String>,
    /// Listen on a unix socket in the temp dir instead of TCP.
    pub unix_socket: bool,
}

impl RedisOptions {
    /// AOF on.
    pub fn aof() -> Self {
        RedisOptions {
            appendonly: true,
            ..Self::default()
        }
    }
    /// AOF off, RDB only.
    pub fn rdb() -> Self {
        Self::default()
    }
}

/// A `redis-server` child in its own temp dir. Dropping it kills it.
pub struct Redis {
    dir: TempDir,
    options: RedisOptions,
    /// TCP port, or `None` for a unix-socket-only server.
    port: Option<u16>,
    /// `None` while killed.
    proc: Option<Proc>,
}

impl Redis {
    /// Starts a server on a free loopback port (or a unix socket) and waits for `PING`.
    pub fn start(options: RedisOptions) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("rpe-redis-")
            .tempdir()
            .expect("temp dir");
        let mut redis = Redis {
            dir,
            port: None,
            options,
            proc: None,
        };
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            if !redis.options.unix_socket {
                redis.port = Some(free_port());
            }
            match redis.spawn() {
                Ok(()) => return redis,
                Err(error) => last_error = error,
            }
        }
        panic!("redis-server did not start after {START_ATTEMPTS} attempts: {last_error}");
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut command = Command::new(REDIS_SERVER);
        command
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(self.port.unwrap_or(0).to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .arg("--daemonize")
            .arg("no")
            .arg("--save")
            .arg(self.options.save.clone().unwrap_or_default())
            .arg("--appendonly")
            .arg(if self.options.appendonly { "yes" } else { "no" })
            .arg("--enable-debug-command")
            .arg("local");
        if self.options.unix_socket {
            command
                .arg("--unixsocket")
                .arg(self.socket_path())
                .arg("--unixsocketperm")
                .arg("700");
        }
        // Its own log goes to `--logfile`; stdout and stderr only ever hold start-up errors.
        let mut proc = Proc::spawn("redis-server", command, self.dir.path().join("redis.out"));
        proc.await_ready(|_| self.cli(&["PING"]) == "PONG")
            .map_err(|error| format!("{error}\nlog:\n{}", self.log()))?;
        self.proc = Some(proc);
        Ok(())
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
        match self.port {
            Some(port) => format!("redis://127.0.0.1:{port}"),
            None => format!("unix://{}", self.socket_path().display()),
        }
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's pid. Panics if it is not running.
    pub fn pid(&self) -> u32 {
        self.proc
            .as_ref()
            .expect("redis-server is not running")
            .pid()
    }

    /// Live children of the server: the rewrite or BGSAVE child while one runs.
    pub fn child_pids(&self) -> Vec<u32> {
        child_pids(self.pid())
    }

    /// Runs `redis-cli` against this server and returns its trimmed stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        match self.port {
            Some(port) => redis_cli(port, args),
            None => {
                let mut cli_args = vec!["-s".to_owned(), self.socket_path().display().to_string()];
                cli_args.extend(args.iter().map(|a| (*a).to_owned()));
                run_cli(&cli_args)
            }
        }
    }

    /// One field of `INFO persistence`, for diagnostics and fault set-up.
    pub fn info_field(&self, field: &str) -> Option<String> {
        let info = self.cli(&["INFO", "persistence"]);
        info.lines().find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_owned())
        })
    }

    /// Freezes the server with `SIGSTOP`.
    pub fn sigstop(&self) {
        assert!(sigstop(self.pid()), "kill -STOP {}", self.pid());
        let pid = self.pid();
        wait_until(Duration::from_secs(5), "redis-server is stopped", || {
            process_state(pid) == Some('T')
        });
    }

    /// Thaws the server with `SIGCONT`.
    pub fn sigcont(&self) {
        assert!(sigcont(self.pid()), "kill -CONT {}", self.pid());
    }

    /// Kills the server with `SIGKILL` and reaps it. Its port and dir are kept for
    /// [`Redis::restart`].
    pub fn kill(&mut self) {
        self.proc = None;
    }

    /// Starts the server again on the same port (or socket) and dir, after [`Redis::kill`].
    pub fn restart(&mut self) {
        assert!(self.proc.is_none(), "restart() needs kill() first");
        let mut last_error = String::new();
        // The port was ours until the kill; a retry covers a slow socket release.
        for _ in 0..START_ATTEMPTS {
            match self.spawn() {
                Ok(()) => return,
                Err(error) => last_error = error,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "redis-server did not restart on {}: {last_error}",
            self.url()
        );
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `[[targets]]` entry, rendered by [`config_toml`].
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// `url`.
    pub url: String,
    /// `name`.
    pub name: String,
    /// `labels`.
    pub labels: Vec<(String, String)>,
}

impl TargetSpec {
    /// A target with no extra labels.
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Self {
        TargetSpec {
            url: url.into(),
            name: name.into(),
            labels: Vec::new(),
        }
    }

    /// Adds an extra label.
    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.labels.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// `value` as a TOML basic string: quoted, with `"` and `\` escaped.
pub fn toml_string(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A config file with the given schedule and targets.
pub fn config_toml(poll_interval: &str, poll_timeout: &str, targets: &[TargetSpec]) -> String {
    let mut out = format!(
        "poll_interval = {}\npoll_timeout = {}\n",
        toml_string(poll_interval),
        toml_string(poll_timeout)
    );
    for target in targets {
        let _ = write!(
            out,
            "\n[[targets]]\nurl = {}\nname = {}\n",
            toml_string(&target.url),
            toml_string(&target.name)
        );
        if !target.labels.is_empty() {
            let labels: Vec<String> = target
                .labels
                .iter()
                .map(|(k, v)| format!("{k} = {}", toml_string(v)))
                .collect();
            let _ = writeln!(out, "labels = {{ {} }}", labels.join(", "));
        }
    }
    out
}

/// The exporter binary with `args`, with no config override from the environment.
pub fn exporter_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(EXPORTER);
    command.args(args).env("NO_COLOR", "1").stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with(ENV_PREFIX) {
            command.env_remove(key);
        }
    }
    command
}

/// Runs the exporter to completion (for `--check-config`, `--version`, config errors).
pub fn run_exporter<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = exporter_command(args);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the exporter");
    // A config error or a summary returns at once; a run that would serve is a test bug.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect output");
            panic!(
                "the exporter did not exit within 20s; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// The result of one `check` run.
#[derive(Debug)]
pub struct CheckRun {
    /// Exit code.
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

/// Runs `redis-persistence-exporter check <args>`, killed if it has not finished in 60 s.
pub fn run_check(args: &[&str]) -> CheckRun {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = exporter_command(std::iter::once("check").chain(args.iter().copied()))
        .stdout(fs::File::create(&out_path).expect("stdout file"))
        .stderr(fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("run check");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`check {args:?}` did not finish within 60 s");
        }
        std::thread::sleep(POLL_EVERY);
    };
    CheckRun {
        code: status.code().unwrap_or(-1),
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// A running exporter with a generated config. Dropping it kills it.
pub struct Exporter {
    dir: TempDir,
    proc: Proc,
    port: u16,
}

impl Exporter {
    /// Writes `config` to a temp dir, starts the exporter on a free loopback port with
    /// `--log.level debug`, and waits until `/metrics` answers.
    pub fn start(config: &str) -> Exporter {
        Self::start_logging_at(config, Some("debug"))
    }

    /// [`Exporter::start`] with `--log.level level`, or the exporter's default level.
    pub fn start_logging_at(config: &str, level: Option<&str>) -> Exporter {
        let dir = tempfile::Builder::new()
            .prefix("rpe-exporter-")
            .tempdir()
            .expect("temp dir");
        let config_path = dir.path().join("config.toml");
        fs::write(&config_path, config).expect("write config");
        let (proc, port) = start_on_free_port(
            "redis-persistence-exporter",
            &dir.path().join("exporter.log"),
            |port| {
                let mut args = vec![
                    "--config".to_owned(),
                    config_path.display().to_string(),
                    "--web.listen-address".to_owned(),
                    format!("127.0.0.1:{port}"),
                    "--web.enable-lifecycle".to_owned(),
                ];
                if let Some(level) = level {
                    args.extend(["--log.level".to_owned(), level.to_owned()]);
                }
                exporter_command(args)
            },
            // Its own log saying it listens proves the answer comes from this process and not
            // from whoever else may hold the port.
            |port, proc| proc.log().contains("serving /metrics") && try_scrape(port).is_ok(),
        );
        Exporter { dir, proc, port }
    }

    /// The generated config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// The exporter's output so far.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// The port `/metrics` is served on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The exporter's process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Sends a signal (`-HUP`, `-TERM`, …) with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Waits up to `timeout` for the process to exit and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.proc.wait_exit(timeout)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// The body of `/metrics`. Panics (with the log) if the scrape fails.
    pub fn scrape(&self) -> String {
        match try_scrape(self.port) {
            Ok(response) => response.body,
            Err(error) => panic!("scrape failed: {error}\nexporter log:\n{}", self.log()),
        }
    }

    /// Scrapes until `condition` holds on the body, and returns that body. On timeout panics
    /// with `what`, the last body and the exporter log.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut condition: impl FnMut(&str) -> bool,
    ) -> String {
        let mut last = String::new();
        let mut last_error = String::new();
        let met = poll_until(timeout, || match try_scrape(self.port) {
            Ok(response) => {
                last = response.body;
                condition(&last)
            }
            Err(error) => {
                last_error = error;
                false
            }
        });
        if !met {
            panic!(
                "timed out after {timeout:?} waiting until {what}\n{}",
                self.diagnostics(&last, &last_error)
            );
        }
        last
    }

    /// The last `lines` lines of the exporter's log: what matters, since it logs at debug.
    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.log_tail(lines)
    }

    fn diagnostics(&self, last: &str, last_error: &str) -> String {
        format!(
            "last scrape error: {last_error}\n--- last scrape ---\n{last}\n--- exporter log (tail) ---\n{}",
            self.log_tail(60)
        )
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // Before the temp dir (the first field) goes.
        self.proc.kill();
    }
}

/// One HTTP response from `/metrics`.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: String,
}

/// `GET http://127.0.0.1:<port>/metrics`.
pub fn try_scrape(port: u16) -> Result<Scrape, String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("HTTP {status}: {body}"));
    }
    Ok(Scrape {
        status,
        content_type,
        body,
    })
}

/// The body of `/metrics` on `port`; panics if the scrape fails.
pub fn scrape(port: u16) -> String {
    try_scrape(port)
        .unwrap_or_else(|e| panic!("scrape of port {port} failed: {e}"))
        .body
}

/// One sample line of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Sample name, suffix included (`redis_aof_rewrites_total`).
    pub name: String,
    /// Labels in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn matches(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name == name && labels.iter().all(|(k, v)| self.label(k) == Some(v))
    }
}

/// Parses every sample line of an OpenMetrics/Prometheus text body. Panics on a line it
/// cannot read: the body is the exporter's, and an unreadable line is a finding.
pub fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| parse_line(line).unwrap_or_else(|| panic!("unreadable sample line: {line:?}")))
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            inner = inner.strip_prefix(',').unwrap_or(inner);
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after_key) = inner.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after_key.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break i + 1,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            };
            labels.push((key.to_owned(), value));
            inner = &after_key[end..];
        }
    }
    let value_text = rest.split_whitespace().next()?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Every sample named `name` carrying (at least) `labels`.
pub fn samples(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<Sample> {
    parse_samples(text)
        .into_iter()
        .filter(|s| s.matches(name, labels))
        .collect()
}

/// The value of the one sample named `name` carrying (at least) `labels`; `None` if there is
/// none. Panics if several match, since the test then meant a more specific series.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found = samples(text, name, labels);
    assert!(
        found.len() <= 1,
        "{name} {labels:?} matches {} series: {found:?}",
        found.len()
    );
    found.first().map(|s| s.value)
}

/// The value of `name` for `target` (matched on the `target` label alone).
pub fn value(body: &str, name: &str, target: &str) -> Option<f64> {
    sample(body, name, &[("target", target)])
}

/// `redis_up` for `target`.
pub fn up(body: &str, target: &str) -> Option<f64> {
    value(body, "redis_up", target)
}

/// `redis_persistence_exporter_polls_total` for `target`; 0 before the first poll.
pub fn polls(body: &str, target: &str) -> f64 {
    value(body, "redis_persistence_exporter_polls_total", target).unwrap_or(0.0)
}

/// `redis_persistence_exporter_poll_failures_total` for `target` and `reason`; 0 if absent.
pub fn failures(body: &str, target: &str, reason: &str) -> f64 {
    sample(
        body,
        "redis_persistence_exporter_poll_failures_total",
        &[("target", target), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_escapes() {
        let s = parse_line(r#"a_total{target="x\"y",le="+Inf"} 3"#).unwrap();
        assert_eq!(s.name, "a_total");
        assert_eq!(s.label("target"), Some("x\"y"));
        assert_eq!(s.label("le"), Some("+Inf"));
        assert_eq!(s.value, 3.0);
        assert_eq!(parse_line("b 1.5").unwrap().value, 1.5);
    }
}
