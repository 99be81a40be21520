//! One exporter launcher: the binary cargo built, its config written from [`Target`]s, run to
//! completion (`check`, `--check-config`) or served on a free loopback port.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::exposition::Metrics;
use super::http::{curl, http_get, try_scrape, CurlReply};
use super::process::{poll_until, port_open, start_on_free_port, tempdir, Proc};
use super::redis::Redis;

/// The exporter binary cargo built for this test run.
pub const EXPORTER: &str = env!("CARGO_BIN_EXE_redis-persistence-exporter");
/// Prefix of the environment variables the exporter reads config overrides from; stripped
/// (with `RUST_LOG`) from every child so the developer's shell cannot change a test.
const ENV_PREFIX: &str = "REDIS_PERSISTENCE_EXPORTER_";
const POLL_EVERY: Duration = Duration::from_millis(50);

/// One `[[targets]]` entry of the exporter's config.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `name`
    pub name: String,
    /// `url`
    pub url: String,
    /// `labels`
    pub labels: Vec<(String, String)>,
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
    /// A target at `url` named `name`, nothing else set.
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Target {
        Target {
            name: name.into(),
            url: url.into(),
            ..Target::default()
        }
    }

    /// [`Target::new`] with the name first.
    pub fn url(name: &str, url: &str) -> Target {
        Target::new(url, name)
    }

    /// A target for `redis` with its log and data dir (host access).
    pub fn host(name: &str, redis: &Redis) -> Target {
        Target {
            log_file: Some(redis.log_path()),
            data_dir: Some(redis.data_dir()),
            ..Target::new(redis.url(), name)
        }
    }

    /// Adds an extra label.
    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.labels.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A config file polling `targets` every `poll_interval`.
pub fn config_toml(poll_interval: &str, poll_timeout: &str, targets: &[Target]) -> String {
    let mut out = format!(
        "poll_interval = {}\npoll_timeout = {}\n",
        toml_string(poll_interval),
        toml_string(poll_timeout)
    );
    push_targets(&mut out, targets);
    out
}

/// The config the fault tests run with: 500 ms polls, 400 ms timeout, CONFIG re-read every
/// second.
pub fn fault_config(targets: &[Target]) -> String {
    refreshing_config("1s", targets)
}

/// 500 ms polls, 400 ms timeout, CONFIG re-read every `refresh`.
pub fn refreshing_config(refresh: &str, targets: &[Target]) -> String {
    let mut out = config_toml("500ms", "400ms", &[]);
    let _ = writeln!(out, "config_refresh_interval = {}", toml_string(refresh));
    push_targets(&mut out, targets);
    out
}

fn push_targets(out: &mut String, targets: &[Target]) {
    for t in targets {
        let _ = write!(
            out,
            "\n[[targets]]\nurl = {}\nname = {}\n",
            toml_string(&t.url),
            toml_string(&t.name)
        );
        if !t.labels.is_empty() {
            let labels: Vec<String> = t
                .labels
                .iter()
                .map(|(k, v)| format!("{k} = {}", toml_string(v)))
                .collect();
            let _ = writeln!(out, "labels = {{ {} }}", labels.join(", "));
        }
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let optional = [
            ("log_file", path(&t.log_file)),
            ("data_dir", path(&t.data_dir)),
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

/// The exporter binary with `args`, with no config override from the environment.
pub fn exporter_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(EXPORTER);
    command.args(args).env("NO_COLOR", "1").stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with(ENV_PREFIX) || key_text == "RUST_LOG" {
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

/// How to serve an [`Exporter`] beyond its config.
#[derive(Debug, Default)]
pub struct ExporterOptions {
    /// `--web.config.file`.
    pub web_config: Option<PathBuf>,
    /// `--log.level`; the exporter's default when `None`.
    pub log_level: Option<&'static str>,
    /// `--log.format`.
    pub log_format: Option<&'static str>,
    /// More environment variables.
    pub env: Vec<(String, String)>,
}

/// A running exporter on a free loopback port. Dropping it kills it.
pub struct Exporter {
    proc: Proc,
    port: u16,
    config: PathBuf,
    /// `http` or `https`.
    scheme: &'static str,
    /// Extra curl arguments for every request (CA, credentials, client certificate); empty
    /// means plain HTTP through reqwest.
    client_args: Vec<String>,
    dir: TempDir,
}

impl Exporter {
    /// Writes `config` to a temp dir and serves it with `--log.level debug`.
    pub fn start(config: &str) -> Exporter {
        Self::start_logging_at(config, Some("debug"))
    }

    /// [`Exporter::start`] with `--log.level level`, or the exporter's default level.
    pub fn start_logging_at(config: &str, level: Option<&'static str>) -> Exporter {
        let dir = tempdir("rpe-exporter-");
        let path = dir.path().join("config.toml");
        fs::write(&path, config).expect("write config");
        let options = ExporterOptions {
            log_level: level,
            ..ExporterOptions::default()
        };
        Self::serve(dir, path, options)
    }

    /// Writes the fault tests' config for `targets` and serves it at the default level.
    pub fn start_targets(targets: &[Target]) -> Exporter {
        Self::start_logging_at(&fault_config(targets), None)
    }

    /// Serves the config file at `config` with `options`.
    pub fn launch(config: &Path, options: ExporterOptions) -> Exporter {
        Self::serve(tempdir("rpe-exporter-"), config.to_path_buf(), options)
    }

    fn serve(dir: TempDir, config: PathBuf, options: ExporterOptions) -> Exporter {
        let (proc, port) = start_on_free_port(
            "redis-persistence-exporter",
            &dir.path().join("exporter.log"),
            |port| {
                let mut args = vec![
                    "--config".to_owned(),
                    config.display().to_string(),
                    "--web.listen-address".to_owned(),
                    format!("127.0.0.1:{port}"),
                    "--web.enable-lifecycle".to_owned(),
                ];
                if let Some(web) = &options.web_config {
                    args.extend(["--web.config.file".to_owned(), web.display().to_string()]);
                }
                if let Some(level) = options.log_level {
                    args.extend(["--log.level".to_owned(), level.to_owned()]);
                }
                if let Some(format) = options.log_format {
                    args.extend(["--log.format".to_owned(), format.to_owned()]);
                }
                let mut command = exporter_command(args);
                command.envs(options.env.iter().map(|(k, v)| (k, v)));
                command
            },
            // Its own log saying it listens proves the answer comes from this process and not
            // from whoever else may hold the port.
            |port, proc| proc.log().contains("serving /metrics") && port_open(port),
        );
        Exporter {
            proc,
            port,
            config,
            scheme: "http",
            client_args: Vec::new(),
            dir,
        }
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.config.clone()
    }

    /// Everything the exporter wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// [`Exporter::log`].
    pub fn output(&self) -> String {
        self.log()
    }

    /// The last `lines` lines of the exporter's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.log_tail(lines)
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

    /// Requests go over `scheme` with these curl arguments from now on.
    pub fn set_client(&mut self, scheme: &'static str, args: &[&str]) {
        self.scheme = scheme;
        self.client_args = args.iter().map(|a| (*a).to_owned()).collect();
    }

    /// `<scheme>://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    /// A curl request to `path` with the client arguments plus `extra`.
    pub fn request(&self, path: &str, extra: &[&str]) -> CurlReply {
        let url = self.url(path);
        let mut args: Vec<&str> = self.client_args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args)
    }

    /// GET `path` over the current client: the body of a 2xx answer.
    pub fn try_get(&self, path: &str) -> Result<String, String> {
        if self.client_args.is_empty() && self.scheme == "http" {
            return http_get(self.port, path);
        }
        let reply = self.request(path, &[]);
        match reply.status {
            Some(200) => Ok(reply.body),
            other => Err(format!("{other:?}: {}", reply.error)),
        }
    }

    /// GET; the body when the answer is 200, else "".
    pub fn get(&self, path: &str) -> String {
        self.try_get(path).unwrap_or_default()
    }

    /// The body of `/metrics`. Panics (with the log) if the scrape fails.
    pub fn scrape(&self) -> String {
        match self.try_get("/metrics") {
            Ok(body) => body,
            Err(error) => panic!("scrape failed: {error}\nexporter log:\n{}", self.log()),
        }
    }

    /// `/metrics`, parsed. Panics with the log if the scrape fails.
    pub fn metrics(&self) -> Metrics {
        Metrics::parse(&self.scrape())
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
        let met = poll_until(timeout, || match self.try_get("/metrics") {
            Ok(body) => {
                last = body;
                condition(&last)
            }
            Err(error) => {
                last_error = error;
                false
            }
        });
        if !met {
            panic!(
                "timed out after {timeout:?} waiting until {what}\nlast scrape error: {last_error}\n--- last scrape ---\n{last}\n--- exporter log (tail) ---\n{}",
                self.log_tail(60)
            );
        }
        last
    }

    /// Scrapes until `condition` holds or `timeout` passes; `Ok` with the scrape that met it,
    /// `Err` with the last one.
    pub fn try_wait_metrics(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&Metrics) -> bool,
    ) -> Result<Metrics, Metrics> {
        let mut last = Metrics::default();
        let met = poll_until(timeout, || match self.try_get("/metrics") {
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

    /// [`Exporter::wait_for`] on the parsed scrape.
    pub fn wait_metrics(
        &self,
        timeout: Duration,
        what: &str,
        condition: impl FnMut(&Metrics) -> bool,
    ) -> Metrics {
        self.try_wait_metrics(timeout, condition)
            .unwrap_or_else(|last| {
                panic!(
                    "timed out after {timeout:?} waiting until {what}\n--- last scrape (persistence series) ---\n{}\n--- exporter log ---\n{}",
                    last.persistence_lines(),
                    self.log()
                )
            })
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // Before the temp dir goes.
        self.proc.kill();
    }
}

/// The body of `/metrics` on `port`; panics if the scrape fails.
pub fn scrape(port: u16) -> String {
    try_scrape(port)
        .unwrap_or_else(|e| panic!("scrape of port {port} failed: {e}"))
        .body
}
