//! The HTTP surface under hostile or careless clients: the `/probe` allow-list against names,
//! probes next to scrapes, slow and idle connections, a low descriptor limit, the lifecycle
//! flag and the basic-auth scheme. Real binary, real redis-server, loopback only.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{sample, wait_until, Behavior, FakeRedis, Proc, Redis, RedisSpec};

const WAIT: Duration = Duration::from_secs(30);
/// Comfortably past the exporter's 10 s header-read timeout.
const CLOSE_DEADLINE: Duration = Duration::from_secs(40);

/// An exporter started with extra flags, optionally under `prlimit`.
struct Exporter {
    /// Holds the config while the exporter runs.
    dir: tempfile::TempDir,
    proc: Proc,
    port: u16,
}

impl Exporter {
    fn start(config: &str, flags: &[&str], nofile: Option<u64>) -> Exporter {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        Self::start_in(dir, &[], flags, nofile)
    }

    fn start_in(
        dir: tempfile::TempDir,
        files: &[(&str, &str)],
        flags: &[&str],
        nofile: Option<u64>,
    ) -> Exporter {
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let config_path = dir.path().join("config.toml");
        let (proc, port) = support::start_on_free_port(
            "redis-persistence-exporter",
            &dir.path().join("exporter.log"),
            |port| {
                let mut command = match nofile {
                    Some(n) => {
                        let mut c = Command::new("prlimit");
                        c.arg(format!("--nofile={n}:{n}"))
                            .arg("--")
                            .arg(support::EXPORTER);
                        c
                    }
                    None => Command::new(support::EXPORTER),
                };
                for (key, _) in std::env::vars_os() {
                    if key
                        .to_string_lossy()
                        .starts_with("REDIS_PERSISTENCE_EXPORTER_")
                    {
                        command.env_remove(key);
                    }
                }
                command
                    .arg("--config")
                    .arg(&config_path)
                    .arg("--web.listen-address")
                    .arg(format!("127.0.0.1:{port}"))
                    .args(["--log.level", "debug"])
                    .args(flags)
                    .env("NO_COLOR", "1");
                command
            },
            |_, proc| proc.log().contains("serving /metrics"),
        );
        Exporter { dir, proc, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn get(&self, path: &str) -> (u16, String) {
        request(reqwest::blocking::Client::new().get(self.url(path)))
    }

    fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}\n{}", self.proc.log_tail(30));
        body
    }

    fn wait_for(&self, what: &str, mut condition: impl FnMut(&str) -> bool) -> String {
        let mut last = String::new();
        let met = support::poll_until(WAIT, || match support::try_scrape(self.port) {
            Ok(scrape) => {
                last = scrape.body;
                condition(&last)
            }
            Err(error) => {
                last = error;
                false
            }
        });
        assert!(
            met,
            "timed out waiting until {what}\n{last}\n{}",
            self.proc.log_tail(40)
        );
        last
    }
}

fn request(builder: reqwest::blocking::RequestBuilder) -> (u16, String) {
    let response = builder
        .timeout(Duration::from_secs(60))
        .send()
        .expect("HTTP request");
    let status = response.status().as_u16();
    (status, response.text().unwrap_or_default())
}

/// Whether the server has closed `stream`: a read returns end-of-file or a reset. Waits at
/// most `wait` for it.
fn closed_by_server(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn basic_auth_scheme_is_case_insensitive() {
    let redis = RedisSpec::aof().start();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "poll_interval = \"500ms\"\npoll_timeout = \"400ms\"\n[[targets]]\nurl = \"{}\"\nname = \"r\"\n",
        redis.url()
    );
    let web = dir.path().join("web.yml").display().to_string();
    let exporter = Exporter::start_in(
        dir,
        &[
            ("config.toml", &config),
            ("web.yml", &format!("basic_auth_users:\n  prom: '{hash}'\n")),
        ],
        &["--web.config.file", &web],
        None,
    );
    let get = |authorization: Option<String>| {
        let mut builder = reqwest::blocking::Client::new().get(exporter.url("/metrics"));
        if let Some(value) = authorization {
            builder = builder.header("Authorization", value);
        }
        request(builder).0
    };
    use base64::Engine;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    assert_eq!(get(None), 401);
    assert_eq!(get(Some(format!("Basic {}", encode("prom:s3cret")))), 200);
    for scheme in ["basic", "BASIC", "bAsIc"] {
        assert_eq!(
            get(Some(format!("{scheme} {}", encode("prom:s3cret")))),
            200,
            "{scheme}"
        );
        assert_eq!(
            get(Some(format!("{scheme} {}", encode("prom:wrong")))),
            401,
            "{scheme} with a wrong password"
        );
    }
}

fn reload_timestamp(body: &str) -> Option<f64> {
    sample(
        body,
        "redis_persistence_exporter_config_last_reload_success_timestamp_seconds",
        &[],
    )
}

#[test]
fn reload_endpoint_exists_only_with_the_lifecycle_flag() {
    let redis = RedisSpec::aof().start();
    let config = |env: &str| {
        format!(
            "poll_interval = \"500ms\"\npoll_timeout = \"400ms\"\n[[targets]]\nurl = \"{}\"\nname = \"r\"\nlabels = {{ env = \"{env}\" }}\n",
            redis.url()
        )
    };
    let exporter = Exporter::start(&config("before"), &[], None);
    let up = |body: &str, env: &str| sample(body, "redis_up", &[("target", "r"), ("env", env)]);
    let first = exporter.wait_for("the target is up", |m| up(m, "before") == Some(1.0));

    std::fs::write(exporter.dir.path().join("config.toml"), config("after")).unwrap();
    let post = || request(reqwest::blocking::Client::new().post(exporter.url("/-/reload")));
    let (status, body) = post();
    assert!(
        status == 404 || status == 405,
        "POST /-/reload without --web.enable-lifecycle answered {status}: {body}"
    );
    // Nothing was reloaded: the old labels stay, the reload time is the start's.
    let later = exporter.wait_for("two more polls", |m| {
        support::polls(m, "r") >= support::polls(&first, "r") + 2.0
    });
    assert_eq!(up(&later, "before"), Some(1.0), "{later}");
    assert_eq!(reload_timestamp(&later), reload_timestamp(&first));

    // SIGHUP always reloads.
    assert!(Command::new("kill")
        .args(["-HUP", &exporter.proc.pid().to_string()])
        .status()
        .unwrap()
        .success());
    exporter.wait_for("SIGHUP applied the new labels", |m| {
        up(m, "after") == Some(1.0)
    });
    drop(exporter);

    let exporter = Exporter::start(&config("before"), &["--web.enable-lifecycle"], None);
    exporter.wait_for("the target is up", |m| up(m, "before") == Some(1.0));
    std::fs::write(exporter.dir.path().join("config.toml"), config("after")).unwrap();
    let (status, body) = request(reqwest::blocking::Client::new().post(exporter.url("/-/reload")));
    assert_eq!(status, 200, "{body}");
    exporter.wait_for("the reload applied the new labels", |m| {
        up(m, "after") == Some(1.0)
    });
}

#[test]
fn probe_allow_list_checks_addresses_not_names() {
    let redis = RedisSpec::aof().start();
    let fake = FakeRedis::start(Behavior::Healthy);
    let fake_port = fake.url().rsplit(':').next().unwrap().to_owned();
    let config = format!(
        "poll_interval = \"1s\"\npoll_timeout = \"900ms\"\n\
         [probe]\nenabled = true\nallowed_targets = [\"redis://127.0.0.*:{port}\", \"redis://127.*:{fake_port}\", \"redis://*.internal:{fake_port}\"]\n\
         [probe.defaults]\npassword = \"probe-secret\"\n",
        port = redis.port()
    );
    let exporter = Exporter::start(&config, &[], None);
    exporter.metrics();

    // A name spelled like an address in the block, that does not resolve into it (here: not
    // at all), is refused, and nothing is sent anywhere.
    for target in [
        format!("redis://127.0.0.1.nip.io:{fake_port}"),
        format!("redis://127.attacker.example:{fake_port}"),
        // `*` is one label: two labels do not match `*.internal`.
        format!("redis://a.b.internal:{fake_port}"),
        // Other ports and schemes are not in the list at all.
        "redis://localhost:1".to_owned(),
        format!("rediss://localhost:{}", redis.port()),
    ] {
        let (status, body) = exporter.get(&format!("/probe?target={target}"));
        assert_eq!(status, 403, "{target}: {body}");
    }
    assert_eq!(
        fake.stats().connections.load(Ordering::Relaxed),
        0,
        "a refused probe connected (and could have sent AUTH)"
    );
    // An IP literal in the block, and a name that resolves into it, are both probed.
    for target in [
        format!("127.0.0.1:{}", redis.port()),
        format!("redis://localhost:{}", redis.port()),
    ] {
        let (status, body) = exporter.get(&format!("/probe?target={target}"));
        assert_eq!(status, 200, "{target}: {body}");
        assert_eq!(
            sample(&body, "redis_up", &[]),
            Some(1.0),
            "{target}: {body}"
        );
    }
    // The label is the name that was asked for, not the address it was pinned to.
    let (_, body) = exporter.get(&format!("/probe?target=localhost:{}", redis.port()));
    assert!(
        body.contains(&format!("target=\"redis://localhost:{}\"", redis.port())),
        "{body}"
    );

    // The fake itself, by address: allowed, which shows it records connections.
    let (status, _) = exporter.get(&format!("/probe?target=127.0.0.1:{fake_port}"));
    assert_eq!(status, 200);
    assert!(fake.stats().connections.load(Ordering::Relaxed) >= 1);
}

#[test]
fn probes_never_make_a_scrape_wait() {
    let redis = RedisSpec::aof().start();
    let silent = FakeRedis::start(Behavior::Silent);
    let silent_port = silent.url().rsplit(':').next().unwrap().to_owned();
    let config = format!(
        "poll_interval = \"10s\"\npoll_timeout = \"5s\"\n\
         [[targets]]\nurl = \"{}\"\nname = \"r\"\n\
         [probe]\nenabled = true\nallowed_targets = [\"redis://127.0.0.1:{silent_port}\"]\n",
        redis.url()
    );
    let exporter = Arc::new(Exporter::start(&config, &[], None));
    exporter.wait_for("the target is up", |m| {
        sample(m, "redis_up", &[("target", "r")]) == Some(1.0)
    });

    // 40 probes of a port that accepts and never answers: each waits out poll_timeout.
    let answered = Arc::new(AtomicUsize::new(0));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let probes: Vec<_> = (0..40)
        .map(|_| {
            let (exporter, answered, statuses) =
                (exporter.clone(), answered.clone(), statuses.clone());
            let path = format!("/probe?target=127.0.0.1:{silent_port}");
            std::thread::spawn(move || {
                let (status, _) = exporter.get(&path);
                statuses.lock().unwrap().push(status);
                if status == 200 {
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    wait_until(WAIT, "several probes wait on the silent server", || {
        silent.stats().connections.load(Ordering::Relaxed) >= 4
    });

    // Scrapes and the status page answer while every probe that reached the server still
    // waits on it.
    let before = answered.load(Ordering::SeqCst);
    let (status, body) = exporter.get("/metrics");
    let (page_status, _) = exporter.get("/");
    let after = answered.load(Ordering::SeqCst);
    assert_eq!(status, 200, "{body}");
    assert_eq!(page_status, 200);
    assert_eq!(sample(&body, "redis_up", &[("target", "r")]), Some(1.0));
    assert_eq!(
        (before, after),
        (0, 0),
        "the scrape waited until probes finished"
    );

    for probe in probes {
        probe.join().unwrap();
    }
    // Every probe got an answer: its result, or 503 when no probe slot freed in time.
    let statuses = statuses.lock().unwrap();
    assert_eq!(statuses.len(), 40);
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
}

fn simple_config(redis: &Redis) -> String {
    format!(
        "poll_interval = \"500ms\"\npoll_timeout = \"400ms\"\n[[targets]]\nurl = \"{}\"\nname = \"r\"\n",
        redis.url()
    )
}

#[test]
fn slow_headers_are_cut_off() {
    let redis = RedisSpec::aof().start();
    let exporter = Exporter::start(&simple_config(&redis), &[], None);
    exporter.metrics();

    // One header line every 2 s: never a complete request.
    let mut stream = TcpStream::connect(("127.0.0.1", exporter.port)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let closed = support::poll_until_every(CLOSE_DEADLINE, Duration::from_millis(1), || {
        if stream.write_all(b"X-Slow: 1\r\n").is_err() {
            return true;
        }
        closed_by_server(&mut stream, Duration::from_secs(2))
    });
    assert!(closed, "a slowloris connection is still open");
    exporter.metrics();
}

#[test]
fn idle_connections_are_closed() {
    let redis = RedisSpec::aof().start();
    let exporter = Exporter::start(&simple_config(&redis), &[], None);

    // Opened and never used.
    let mut silent = TcpStream::connect(("127.0.0.1", exporter.port)).unwrap();
    // Used once, then left open (keep-alive).
    let mut kept = TcpStream::connect(("127.0.0.1", exporter.port)).unwrap();
    kept.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    kept.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buffer = [0u8; 1024];
    while !String::from_utf8_lossy(&reply).contains("OK\n") {
        let n = kept.read(&mut buffer).expect("the health answer");
        assert!(n > 0, "closed before answering");
        reply.extend_from_slice(&buffer[..n]);
    }
    assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200"));

    for (what, stream) in [("never used", &mut silent), ("kept alive", &mut kept)] {
        let closed = support::poll_until_every(CLOSE_DEADLINE, Duration::from_millis(1), || {
            closed_by_server(stream, Duration::from_secs(1))
        });
        assert!(closed, "an idle connection ({what}) is still open");
    }
}

#[test]
fn idle_connections_cannot_take_the_descriptors_polls_need() {
    let redis = RedisSpec::aof().start();
    // keep_connections = false: every poll opens a connection, so polls need descriptors
    // all the time.
    let config = format!(
        "poll_interval = \"200ms\"\npoll_timeout = \"150ms\"\nkeep_connections = false\n\
         [[targets]]\nurl = \"{}\"\nname = \"r\"\n",
        redis.url()
    );
    let exporter = Exporter::start(&config, &[], Some(64));
    let healthy = exporter.wait_for("the target is up", |m| {
        sample(m, "redis_up", &[("target", "r")]) == Some(1.0)
    });

    let idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(("127.0.0.1", exporter.port)).unwrap())
        .collect();
    // Polls go on, and none fails, while the connections stay open.
    let body = exporter.wait_for("/metrics answers and polls go on", |m| {
        support::polls(m, "r") >= support::polls(&healthy, "r") + 10.0
    });
    assert_eq!(
        sample(&body, "redis_up", &[("target", "r")]),
        Some(1.0),
        "{body}"
    );
    let failures: f64 = support::samples(
        &body,
        "redis_persistence_exporter_poll_failures_total",
        &[("target", "r")],
    )
    .iter()
    .map(|s| s.value)
    .sum();
    assert_eq!(failures, 0.0, "{body}");
    assert!(
        !exporter.proc.log().contains("Too many open files"),
        "{}",
        exporter.proc.log_tail(30)
    );
    drop(idle);
}
