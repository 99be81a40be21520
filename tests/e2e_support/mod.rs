//! The end-to-end alerting stack: real `redis-server`s, the exporter binary, Prometheus and
//! Alertmanager, each a child process on a free loopback port in its own temp dir.
//!
//! Every process is owned by a [`Proc`]; dropping it (also while a panic unwinds) sends
//! `SIGKILL` and reaps it, so a failing test leaves nothing running. A start that loses the race
//! for its port (another process bound it between our probe and the child's bind) is retried on
//! a fresh port.
//!
//! Waiting is always for a condition with a deadline ([`wait_for`]), polled every 250 ms; a
//! timeout panics with what was being waited for and the caller's diagnostics.

// Helper surface is shared by the scenarios; not every accessor is used by every build.
#![allow(dead_code)]

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::common::{
    child_pids, redis_cli, start_on_free_port, Proc, ALERTMANAGER, PROMETHEUS, REDIS_SERVER,
};

/// How often a condition is re-checked.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// The longest any single condition may take.
pub const CONDITION_TIMEOUT: Duration = Duration::from_secs(90);
/// Attempts at restarting a server on its own port.
const START_ATTEMPTS: usize = 5;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Polls `check` every [`POLL_EVERY`] until it yields `Some`, or panics after `timeout` with
/// `what` and `diagnostics()`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    diagnostics: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting until {what}\n\n{}",
                diagnostics()
            );
        }
        std::thread::sleep(POLL_EVERY);
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// --- HTTP -----------------------------------------------------------------------------------

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("http client")
}

/// GET `url`: the body of a 2xx response, else an error text.
pub fn get_text(url: &str, query: &[(&str, &str)]) -> Result<String, String> {
    let response = http()
        .get(url)
        .query(query)
        .send()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let body = response
        .text()
        .map_err(|e| format!("GET {url}: body: {e}"))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("GET {url}: {status}: {body}"))
    }
}

pub fn get_json(url: &str, query: &[(&str, &str)]) -> Result<Value, String> {
    let body = get_text(url, query)?;
    serde_json::from_str(&body).map_err(|e| format!("GET {url}: not JSON ({e}): {body}"))
}

fn is_ready(url: &str) -> bool {
    get_text(url, &[]).is_ok()
}

// --- Redis ----------------------------------------------------------------------------------

/// A `redis-server` with AOF on, no RDB schedule and DEBUG allowed from loopback.
pub struct Redis {
    dir: TempDir,
    port: u16,
    /// `None` while stopped. A cell so that a shared stack can stop and restart it.
    proc: RefCell<Option<Proc>>,
}

impl Redis {
    pub fn start() -> Redis {
        let dir = tempdir("rpe-e2e-redis-");
        let (proc, port) = start_on_free_port(
            "redis-server",
            &dir.path().join("redis.out"),
            |port| redis_command(dir.path(), port),
            |port, _| redis_cli(port, &["PING"]) == "PONG",
        );
        Redis {
            dir,
            port,
            proc: RefCell::new(Some(proc)),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.proc
            .borrow()
            .as_ref()
            .expect("redis-server is not running")
            .pid()
    }

    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }

    /// Runs a command that must answer `OK`.
    pub fn ok(&self, args: &[&str]) {
        let reply = self.cli(args);
        assert_eq!(reply, "OK", "redis-cli {args:?} on port {}", self.port);
    }

    /// One field of `INFO persistence`.
    pub fn info_field(&self, field: &str) -> Option<String> {
        info_value(&self.cli(&["INFO", "persistence"]), field)
    }

    /// The rewrite status and whether a rewrite runs now, e.g. `("err", false)`, from ONE
    /// `INFO` reply: two replies could straddle the end of a rewrite and pair the old status
    /// with "not running".
    pub fn rewrite_state(&self) -> (String, bool) {
        let info = self.cli(&["INFO", "persistence"]);
        (
            info_value(&info, "aof_last_bgrewrite_status").unwrap_or_default(),
            info_value(&info, "aof_rewrite_in_progress").as_deref() == Some("1"),
        )
    }

    /// Live (non-zombie) child processes of the server: the rewrite child while one runs.
    pub fn child_pids(&self) -> Vec<u32> {
        child_pids(self.pid())
    }

    /// The server's log (for diagnostics).
    pub fn log_tail(&self, lines: usize) -> String {
        tail(
            &fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default(),
            lines,
        )
    }

    /// Kills the server (SIGKILL) and reaps it; port and dir are kept for [`Redis::restart`].
    pub fn stop(&self) {
        if let Some(mut proc) = self.proc.borrow_mut().take() {
            proc.kill();
        }
    }

    /// Starts the server again on the same port and dir.
    pub fn restart(&self) {
        assert!(self.proc.borrow().is_none(), "restart() needs stop() first");
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let mut proc = Proc::spawn(
                "redis-server",
                redis_command(self.dir.path(), self.port),
                self.dir.path().join("redis.out"),
            );
            match proc.await_ready(|_| self.cli(&["PING"]) == "PONG") {
                Ok(()) => {
                    *self.proc.borrow_mut() = Some(proc);
                    return;
                }
                Err(error) => last = format!("{error}\n{}", self.log_tail(20)),
            }
            proc.kill();
            // The old socket may take a moment to be released.
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "redis-server did not restart on port {}:\n{last}",
            self.port
        );
    }
}

fn info_value(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|line| {
        line.trim()
            .strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::to_owned)
    })
}

fn redis_command(dir: &Path, port: u16) -> Command {
    let mut command = Command::new(REDIS_SERVER);
    command
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .args(["--daemonize", "no", "--save", "", "--appendonly", "yes"])
        .args(["--enable-debug-command", "local"]);
    command
}

fn tempdir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

// --- The exporter ---------------------------------------------------------------------------

/// The exporter at its default log level (common's, which waits for its own "serving"
/// line), with the e2e config.
pub struct Exporter(crate::common::Exporter);

impl Exporter {
    /// Polls `targets` (`(name, url)`) every 500 ms, each with the label `env="e2e"`.
    pub fn start(targets: &[(&str, String)]) -> Exporter {
        let mut toml = String::from(
            "poll_interval = \"500ms\"\npoll_timeout = \"400ms\"\nconfig_refresh_interval = \"5s\"\n",
        );
        for (name, url) in targets {
            toml.push_str(&format!(
                "\n[[targets]]\nurl = \"{url}\"\nname = \"{name}\"\nlabels = {{ env = \"e2e\" }}\n"
            ));
        }
        Exporter(crate::common::Exporter::start_logging_at(&toml, None))
    }

    pub fn port(&self) -> u16 {
        self.0.port()
    }

    pub fn scrape(&self) -> String {
        get_text(&format!("http://127.0.0.1:{}/metrics", self.port()), &[]).unwrap_or_else(|e| e)
    }

    /// The value of the sample whose line starts with `name{` and carries every `labels`
    /// pair.
    pub fn sample(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        find_sample(&self.scrape(), name, labels)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.0.log_tail(lines)
    }
}

/// Finds one sample in exposition text by metric name and label subset.
pub fn find_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

// --- Alertmanager ---------------------------------------------------------------------------

pub struct Alertmanager {
    _dir: TempDir,
    proc: Proc,
    port: u16,
}

impl Alertmanager {
    /// Runs the given config file unchanged, with clustering off.
    pub fn start(config: &Path) -> Alertmanager {
        let dir = tempdir("rpe-e2e-alertmanager-");
        let storage = dir.path().join("data");
        let (proc, port) = start_on_free_port(
            "alertmanager",
            &dir.path().join("alertmanager.log"),
            |port| {
                let mut command = Command::new(ALERTMANAGER);
                command
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.path={}", storage.display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .arg("--cluster.listen-address=");
                command
            },
            |port, _| is_ready(&format!("http://127.0.0.1:{port}/-/ready")),
        );
        Alertmanager {
            _dir: dir,
            proc,
            port,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `GET /api/v2/alerts` (active, suppressed and unprocessed; never resolved).
    pub fn alerts(&self) -> Result<Vec<Value>, String> {
        let value = get_json(
            &format!("http://127.0.0.1:{}/api/v2/alerts", self.port),
            &[],
        )?;
        value
            .as_array()
            .cloned()
            .ok_or_else(|| format!("/api/v2/alerts is not an array: {value}"))
    }

    /// `POST /api/v2/alerts` with one alert of `labels` (no start/end: Alertmanager uses now
    /// and its resolve_timeout).
    pub fn post_alert(&self, labels: &serde_json::Map<String, Value>) {
        let body = serde_json::json!([{ "labels": labels }]);
        let response = http()
            .post(format!("http://127.0.0.1:{}/api/v2/alerts", self.port))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .expect("POST /api/v2/alerts");
        let status = response.status();
        assert!(
            status.is_success(),
            "POST /api/v2/alerts: {status}: {}",
            response.text().unwrap_or_default()
        );
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.log_tail(lines)
    }
}

// --- Prometheus -----------------------------------------------------------------------------

pub struct Prometheus {
    _dir: TempDir,
    proc: Proc,
    port: u16,
}

impl Prometheus {
    /// Scrapes the exporter as job `redis-persistence-exporter` and evaluates `rules` every
    /// second, sending alerts to the Alertmanager on `alertmanager_port`.
    pub fn start(rules: &Path, exporter_port: u16, alertmanager_port: u16) -> Prometheus {
        let dir = tempdir("rpe-e2e-prometheus-");
        let config = dir.path().join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
alerting:
  alertmanagers:
    - api_version: v2
      static_configs:
        - targets: ['127.0.0.1:{alertmanager_port}']
scrape_configs:
  - job_name: redis-persistence-exporter
    static_configs:
      - targets: ['127.0.0.1:{exporter_port}']
",
                rules = rules.display()
            ),
        )
        .expect("write prometheus config");
        let storage = dir.path().join("data");
        let (proc, port) = start_on_free_port(
            "prometheus",
            &dir.path().join("prometheus.log"),
            |port| {
                let mut command = Command::new(PROMETHEUS);
                command
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.tsdb.path={}", storage.display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"));
                command
            },
            |port, _| is_ready(&format!("http://127.0.0.1:{port}/-/ready")),
        );
        Prometheus {
            _dir: dir,
            proc,
            port,
        }
    }

    fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let value = get_json(&format!("http://127.0.0.1:{}{path}", self.port), query)?;
        if value["status"] != "success" {
            return Err(format!("{path}: {value}"));
        }
        Ok(value["data"].clone())
    }

    /// An instant query's result vector.
    pub fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/query", &[("query", promql)])?;
        data["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("{promql}: not a vector: {data}"))
    }

    /// The single value of an instant query, if it returns exactly one series.
    pub fn scalar(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).ok()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `GET /api/v1/alerts`: pending and firing alerts.
    pub fn alerts(&self) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/alerts", &[])?;
        data["alerts"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("/api/v1/alerts: {data}"))
    }

    /// `GET /api/v1/rules` groups.
    pub fn rule_groups(&self) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/rules", &[])?;
        data["groups"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("/api/v1/rules: {data}"))
    }

    /// How many times the rule group `group` has been evaluated, from Prometheus's own
    /// `prometheus_rule_group_iterations_total`.
    pub fn group_iterations(&self, group: &str) -> Option<f64> {
        let text = get_text(&format!("http://127.0.0.1:{}/metrics", self.port), &[]).ok()?;
        text.lines()
            .filter(|line| line.starts_with("prometheus_rule_group_iterations_total{"))
            .find(|line| line.contains(&format!(";{group}\"")))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.log_tail(lines)
    }
}
