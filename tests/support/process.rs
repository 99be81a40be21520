//! One owner for every child process the tests start, one spawn-and-retry loop, and waiting
//! on conditions with deadlines.
//!
//! A [`Proc`] is killed (`SIGKILL`) and reaped on drop, also while a failing test unwinds.
//! Ports come from binding port 0 on loopback; [`start_on_free_port`] retries a start that
//! lost the race for its port on a fresh one, so tests can run in parallel.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How often [`poll_until`] re-checks its condition.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// How long a process gets to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at starting on a fresh port after losing a port race.
pub const START_ATTEMPTS: usize = 5;

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
    pub fn spawn(name: &'static str, command: Command, log: PathBuf) -> Proc {
        let out = fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        Proc::start(name, command, out, err, log)
    }

    /// [`Proc::spawn`] with stdout in its own file, for a process whose output is its result
    /// (`chromium --dump-dom`); stderr still goes to `log`.
    pub fn spawn_with_stdout(
        name: &'static str,
        command: Command,
        stdout: &Path,
        log: PathBuf,
    ) -> Proc {
        let out = fs::File::create(stdout).expect("create stdout file");
        let err = fs::File::create(&log).expect("create log file");
        Proc::start(name, command, out, err, log)
    }

    fn start(
        name: &'static str,
        mut command: Command,
        out: fs::File,
        err: fs::File,
        log: PathBuf,
    ) -> Proc {
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
        tail(&self.log(), lines)
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
    start_retrying(name, log, free_port, make, ready)
}

/// [`start_on_free_port`] on `port` every time: a restart on the port a killed process
/// held, which may take a moment to be released.
pub fn start_on_port(
    name: &'static str,
    log: &Path,
    port: u16,
    make: impl Fn(u16) -> Command,
    ready: impl Fn(u16, &Proc) -> bool,
) -> Proc {
    start_retrying(name, log, || port, make, ready).0
}

/// The one spawn-and-retry loop.
fn start_retrying(
    name: &'static str,
    log: &Path,
    mut next_port: impl FnMut() -> u16,
    make: impl Fn(u16) -> Command,
    ready: impl Fn(u16, &Proc) -> bool,
) -> (Proc, u16) {
    let mut failures = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let port = next_port();
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

/// [`wait_until`] that adds `evidence()` to the panic message.
pub fn wait_until_shown(
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

/// Polls `check` until it yields `Some`, or panics after `timeout` with `what` and
/// `diagnostics()`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    diagnostics: impl FnOnce() -> String,
) -> T {
    let mut found = None;
    if poll_until(timeout, || {
        found = check();
        found.is_some()
    }) {
        if let Some(value) = found {
            return value;
        }
    }
    panic!(
        "timed out after {timeout:?} waiting until {what}\n\n{}",
        diagnostics()
    );
}

/// Whether something accepts TCP connections on loopback `port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).is_ok()
}

/// Runs a command to completion, panicking if it cannot be started.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// [`run`] with `input` on its standard input.
pub fn run_with_input(program: &str, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits early closes its end; its status says why.
        let _ = stdin.write_all(input);
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot read {program}'s output: {e}"))
}

/// [`run`] that must succeed; its stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's status and output on one line, for messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {}, stdout {:?}, stderr {:?}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

/// Tasks (threads included) owned by `uid`, as `ps -L -u <uid>` counts them: what
/// `RLIMIT_NPROC` is checked against at `fork()`.
pub fn tasks_of_uid(uid: u32) -> usize {
    let output = run("ps", &["-L", "-u", &uid.to_string(), "--no-headers"]);
    String::from_utf8_lossy(&output.stdout).lines().count()
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A fresh temp dir named `<prefix>…`.
pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}
