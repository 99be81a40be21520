//! Harness for `tests/security.rs`: a throwaway PKI made with `openssl`, `redis-server` in
//! plain or TLS mode, the exporter binary with its output captured to files, `curl` for
//! HTTPS (reqwest is built without TLS here), and a real Prometheus.
//!
//! Every process is a child owned by a guard whose `Drop` kills and reaps it, so a failed
//! assertion never leaks a server. Waiting is always for a condition, polled with a deadline.

#![allow(dead_code)]

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::common::{
    free_port, poll_until_every, run_check, EXPORTER, PROMETHEUS, REDIS_CLI, REDIS_SERVER,
};

/// Generous: other test binaries share the two cores.
pub const DEADLINE: Duration = Duration::from_secs(60);
const POLL_EVERY: Duration = Duration::from_millis(100);
const START_ATTEMPTS: usize = 5;

/// Polls `condition` every 100 ms until it holds or `timeout` passes.
pub fn poll_until(timeout: Duration, condition: impl FnMut() -> bool) -> bool {
    poll_until_every(timeout, POLL_EVERY, condition)
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).is_ok()
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A random string of `len` ASCII letters and digits, safe inside a URL, TOML and a shell.
/// Seeded from the clock and the process id: unique enough to search logs for.
pub fn random_secret(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut state = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let x = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            ALPHABET[(x >> 33) as usize % ALPHABET.len()] as char
        })
        .collect()
}

/// A bcrypt hash of `password` for `basic_auth_users`, from Python's `bcrypt` module or,
/// failing that, `htpasswd` (Debian `apache2-utils`).
pub fn bcrypt_hash(password: &str) -> String {
    let python = Command::new("python3")
        .args([
            "-c",
            "import bcrypt, sys; print(bcrypt.hashpw(sys.stdin.readline().strip().encode(), bcrypt.gensalt(10)).decode())",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes())?;
            child.wait_with_output()
        });
    if let Ok(out) = python {
        let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && hash.starts_with("$2") {
            return hash;
        }
    }
    if let Ok(out) = Command::new("htpasswd")
        .args(["-nbBC", "10", "", password])
        .output()
    {
        let hash = String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches(':')
            .to_owned();
        if out.status.success() && hash.starts_with("$2") {
            return hash;
        }
    }
    panic!(
        "no bcrypt hasher: install the Python module (`pip install bcrypt` or Debian \
         `python3-bcrypt`) or `htpasswd` (Debian `apache2-utils`)"
    );
}

/// A test certificate authority and the leaf certificates it signs, all in one temp dir.
pub struct Pki {
    pub dir: TempDir,
}

/// A leaf certificate and its key.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// A fresh CA named `name` (P-256 keys: quick to make).
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("rpe-pki-")
            .tempdir()
            .unwrap();
        let pki = Pki { dir };
        let (key, crt) = (pki.path("ca.key"), pki.path("ca.crt"));
        run_ok(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                s(&key),
                "-out",
                s(&crt),
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.path("ca.crt")
    }

    /// A leaf for both server and client use, with `san` like `DNS:redis.test,IP:127.0.0.1`.
    pub fn leaf(&self, name: &str, san: &str) -> Leaf {
        let key = self.path(&format!("{name}.key"));
        let csr = self.path(&format!("{name}.csr"));
        let cert = self.path(&format!("{name}.crt"));
        let ext = self.path(&format!("{name}.ext"));
        fs::write(
            &ext,
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={san}\n"
            ),
        )
        .unwrap();
        run_ok(
            "openssl",
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                s(&key),
                "-out",
                s(&csr),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        run_ok(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                s(&csr),
                "-CA",
                s(&self.ca()),
                "-CAkey",
                s(&self.path("ca.key")),
                "-CAcreateserial",
                "-out",
                s(&cert),
                "-days",
                "2",
                "-extfile",
                s(&ext),
            ],
        );
        Leaf { cert, key }
    }
}

pub fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// How a [`Redis`] listens.
pub enum Listen {
    Plain,
    /// TLS only (`--port 0`), with this server certificate, CA for clients, and whether
    /// clients must present a certificate.
    Tls {
        server: Leaf,
        ca: PathBuf,
        client: Leaf,
        auth_clients: bool,
    },
}

/// A `redis-server` child in its own temp dir; dropping it kills it.
pub struct Redis {
    pub dir: TempDir,
    pub port: u16,
    listen: Listen,
    child: Child,
}

impl Redis {
    pub fn start(listen: Listen) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("rpe-sec-redis-")
            .tempdir()
            .unwrap();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let mut args: Vec<String> = vec![
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                "".into(),
                "--appendonly".into(),
                "no".into(),
                "--dir".into(),
                s(dir.path()).into(),
                "--logfile".into(),
                s(&dir.path().join("redis.log")).into(),
            ];
            match &listen {
                Listen::Plain => args.extend(["--port".into(), port.to_string()]),
                Listen::Tls {
                    server,
                    ca,
                    auth_clients,
                    ..
                } => args.extend([
                    "--port".into(),
                    "0".into(),
                    "--tls-port".into(),
                    port.to_string(),
                    "--tls-cert-file".into(),
                    s(&server.cert).into(),
                    "--tls-key-file".into(),
                    s(&server.key).into(),
                    "--tls-ca-cert-file".into(),
                    s(ca).into(),
                    "--tls-auth-clients".into(),
                    if *auth_clients { "yes" } else { "no" }.into(),
                ]),
            }
            let child = Command::new(REDIS_SERVER)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server");
            let mut child = child;
            let ready = poll_until(Duration::from_secs(20), || {
                matches!(child.try_wait(), Ok(None))
                    && fs::read_to_string(dir.path().join("redis.log"))
                        .is_ok_and(|log| log.contains("Ready to accept connections"))
                    && cli_as_admin(port, &listen, &["PING"]) == "PONG"
            });
            if ready {
                return Redis {
                    dir,
                    port,
                    listen,
                    child,
                };
            }
            kill_and_reap(&mut child);
        }
        panic!("redis-server did not start in {START_ATTEMPTS} attempts");
    }

    /// `redis-cli` as the default (all-powerful) user; trimmed stdout, or the error.
    pub fn cli(&self, args: &[&str]) -> String {
        cli_as_admin(self.port, &self.listen, args)
    }

    /// `redis-cli` that must answer OK.
    pub fn cli_ok(&self, args: &[&str]) {
        let reply = self.cli(args);
        assert_eq!(reply, "OK", "redis-cli {args:?}");
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

fn cli_as_admin(port: u16, listen: &Listen, args: &[&str]) -> String {
    let mut all: Vec<String> = vec![
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ];
    if let Listen::Tls { ca, client, .. } = listen {
        all.extend([
            "--tls".into(),
            "--sni".into(),
            "redis.test".into(),
            "--cacert".into(),
            s(ca).into(),
            "--cert".into(),
            s(&client.cert).into(),
            "--key".into(),
            s(&client.key).into(),
        ]);
    }
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = run(REDIS_CLI, &refs);
    let mut text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        text.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    text
}

impl Drop for Redis {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// How to start an [`Exporter`].
#[derive(Default)]
pub struct ExporterOptions {
    pub web_config: Option<PathBuf>,
    pub log_level: Option<&'static str>,
    pub log_format: Option<&'static str>,
    pub env: Vec<(String, String)>,
}

/// The exporter binary, output captured in files; dropping it kills it.
pub struct Exporter {
    pub port: u16,
    pub dir: TempDir,
    child: Child,
    /// `http` or `https`.
    scheme: &'static str,
    /// Extra curl arguments for every request (CA, credentials, client certificate).
    client_args: Vec<String>,
}

impl Exporter {
    /// Starts on a free port and waits until it accepts TCP connections.
    pub fn start(config: &Path, options: ExporterOptions) -> Exporter {
        let dir = tempfile::Builder::new()
            .prefix("rpe-sec-exp-")
            .tempdir()
            .unwrap();
        for attempt in 0..START_ATTEMPTS {
            let port = free_port();
            let mut command = Command::new(EXPORTER);
            command
                .arg("--config")
                .arg(config)
                .arg("--web.listen-address")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--web.enable-lifecycle");
            if let Some(web) = &options.web_config {
                command.arg("--web.config.file").arg(web);
            }
            if let Some(level) = options.log_level {
                command.args(["--log.level", level]);
            }
            if let Some(format) = options.log_format {
                command.args(["--log.format", format]);
            }
            for (key, _) in std::env::vars() {
                if key.starts_with("REDIS_PERSISTENCE_EXPORTER") || key == "RUST_LOG" {
                    command.env_remove(key);
                }
            }
            command.envs(options.env.iter().map(|(k, v)| (k, v)));
            let stdout = fs::File::create(dir.path().join(format!("stdout.{attempt}"))).unwrap();
            let stderr = fs::File::create(dir.path().join(format!("stderr.{attempt}"))).unwrap();
            let mut child = command
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .expect("start the exporter");
            let up = poll_until(DEADLINE, || {
                matches!(child.try_wait(), Ok(None)) && port_open(port)
            });
            if up {
                return Exporter {
                    port,
                    dir,
                    child,
                    scheme: "http",
                    client_args: Vec::new(),
                };
            }
            kill_and_reap(&mut child);
            let err = fs::read_to_string(dir.path().join(format!("stderr.{attempt}")))
                .unwrap_or_default();
            assert!(
                err.contains("cannot listen"),
                "exporter did not start and not because of its port:\n{err}"
            );
        }
        panic!("exporter did not start in {START_ATTEMPTS} attempts");
    }

    /// Everything the process wrote to stdout and stderr, over all start attempts.
    pub fn output(&self) -> String {
        let mut all = String::new();
        let mut names: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        for path in names {
            all.push_str(&fs::read_to_string(path).unwrap_or_default());
        }
        all
    }

    /// Requests go over `scheme` with these curl arguments from now on.
    pub fn set_client(&mut self, scheme: &'static str, args: &[&str]) {
        self.scheme = scheme;
        self.client_args = args.iter().map(|a| (*a).to_owned()).collect();
    }

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

    /// GET; the body when the answer is 200, else "".
    pub fn get(&self, path: &str) -> String {
        let reply = self.request(path, &[]);
        if reply.status == Some(200) {
            reply.body
        } else {
            String::new()
        }
    }

    /// Waits until `/metrics` satisfies `condition`; panics with the scrape and log if not.
    pub fn wait_for(&self, what: &str, mut condition: impl FnMut(&Metrics) -> bool) -> Metrics {
        let mut last = Metrics(String::new());
        if poll_until(DEADLINE, || {
            last = Metrics(self.get("/metrics"));
            condition(&last)
        }) {
            return last;
        }
        panic!(
            "timed out waiting until {what}\n--- last scrape ---\n{}\n--- exporter output ---\n{}",
            last.0,
            self.output()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

pub fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A `/metrics` body, with a lookup by name and labels.
#[derive(Clone, Debug)]
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the sample `name` whose labels include all of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0.lines().find_map(|line| {
            if line.starts_with('#') {
                return None;
            }
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let all = labels.iter().all(|(k, v)| {
                label_text
                    .split(',')
                    .any(|pair| pair == format!("{k}=\"{v}\""))
            });
            all.then(|| value.parse().ok()).flatten()
        })
    }

    /// `redis_up` of target `name`.
    pub fn up(&self, target: &str) -> Option<f64> {
        self.value("redis_up", &[("target", target)])
    }

    /// The reason of the last failed poll of `target`, if its last poll failed.
    pub fn failure_reason(&self, target: &str) -> Option<String> {
        let needle = format!("redis_persistence_exporter_last_poll_failed{{target=\"{target}\",");
        self.0.lines().find_map(|line| {
            let rest = line.strip_prefix(&needle)?;
            let reason = rest.split("reason=\"").nth(1)?.split('"').next()?;
            Some(reason.to_owned())
        })
    }
}

/// The outcome of one `curl` call.
#[derive(Debug)]
pub struct CurlReply {
    /// The HTTP status, or `None` when no HTTP answer came (TLS or connection failure).
    pub status: Option<u16>,
    pub headers: String,
    pub body: String,
    /// curl's stderr, for messages.
    pub error: String,
}

/// Runs `curl` with `args` plus the output plumbing; never panics on HTTP errors.
pub fn curl(args: &[&str]) -> CurlReply {
    let dir = tempfile::tempdir().unwrap();
    let (headers, body) = (dir.path().join("h"), dir.path().join("b"));
    let mut all = vec![
        "-sS",
        "--max-time",
        "60",
        "-D",
        s(&headers),
        "-o",
        s(&body),
        "-w",
        "%{http_code}",
    ];
    all.extend_from_slice(args);
    let out = run("curl", &all);
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|c| *c != 0);
    CurlReply {
        status: code.filter(|_| out.status.success()),
        headers: fs::read_to_string(&headers).unwrap_or_default(),
        body: fs::read_to_string(&body).unwrap_or_default(),
        error: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A real Prometheus server with its own config and TSDB in a temp dir.
pub struct Prometheus {
    pub port: u16,
    pub dir: TempDir,
    child: Child,
}

impl Prometheus {
    /// Starts Prometheus with `scrape_configs` (YAML, already indented as a list) and waits
    /// until it is ready.
    pub fn start(scrape_configs: &str) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("rpe-sec-prom-")
            .tempdir()
            .unwrap();
        let config = dir.path().join("prometheus.yml");
        fs::write(
            &config,
            format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{scrape_configs}"),
        )
        .unwrap();
        for attempt in 0..START_ATTEMPTS {
            let port = free_port();
            let log =
                fs::File::create(dir.path().join(format!("prometheus.{attempt}.log"))).unwrap();
            let mut child = Command::new(PROMETHEUS)
                .arg(format!("--config.file={}", s(&config)))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    s(&dir.path().join("data"))
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start prometheus");
            let ready = poll_until(Duration::from_secs(90), || {
                matches!(child.try_wait(), Ok(None))
                    && http_client()
                        .get(format!("http://127.0.0.1:{port}/-/ready"))
                        .send()
                        .is_ok_and(|r| r.status().is_success())
            });
            if ready {
                return Prometheus { port, dir, child };
            }
            kill_and_reap(&mut child);
        }
        panic!("prometheus did not start; logs in {}", dir.path().display());
    }

    /// The result vector of an instant query, as JSON.
    pub fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let reply = http_client()
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", promql)])
            .send()
            .and_then(|r| r.text());
        let Ok(text) = reply else { return Vec::new() };
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The scrape targets' health and last errors, for failure messages.
    pub fn targets(&self) -> String {
        http_client()
            .get(format!("http://127.0.0.1:{}/api/v1/targets", self.port))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// Runs the exporter's `check` subcommand with `args` (60 s limit, no config override from
/// the environment); returns (exit code, stdout, stderr), the code `None` if killed by a signal.
pub fn check(args: &[&str]) -> (Option<i32>, String, String) {
    let run = run_check(args);
    // `run_check` reports "killed by a signal" as -1, which no exit status can be.
    let code = (run.code >= 0).then_some(run.code);
    (code, run.stdout, run.stderr)
}
