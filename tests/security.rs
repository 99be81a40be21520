//! Security, black-box: the exporter's own HTTPS and basic auth (checked with `curl` and a real
//! Prometheus), TLS and ACLs towards Redis, password rotation, and that a Redis password never
//! shows up in anything the exporter prints or serves.
//!
//! Needs, besides `redis-server`/`redis-cli` (built with TLS, as Debian's is): `openssl`,
//! `curl`, `/usr/bin/prometheus`, and a bcrypt hasher: Python's `bcrypt` module
//! (`pip install bcrypt` or Debian `python3-bcrypt`) or `htpasswd` (Debian `apache2-utils`).
//!
//! Run with `cargo test --test security -- --test-threads=2`.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use std::time::Duration;

use support::*;

/// Generous: other test binaries share the two cores.
const DEADLINE: Duration = Duration::from_secs(60);

/// Fast polling so state changes show up quickly; the timeout may not exceed the interval.
const POLL: &str = "poll_interval = \"1s\"\npoll_timeout = \"1s\"\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// An RDB-only Redis, and a fresh temp dir holding `exporter.toml` that polls it as `plain`:
/// the target behind the web endpoint tests.
fn plain_target() -> (Redis, tempfile::TempDir, PathBuf) {
    let redis = Redis::start(RedisSpec::rdb());
    let dir = tempdir();
    let config = write(
        dir.path(),
        "exporter.toml",
        &format!(
            "{POLL}[[targets]]\nurl = \"redis://127.0.0.1:{}\"\nname = \"plain\"\n",
            redis.port()
        ),
    );
    (redis, dir, config)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rpe-sec-")
        .tempdir()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. The exporter's own endpoints over TLS with basic auth.
// ---------------------------------------------------------------------------------------------

#[test]
fn web_tls_and_basic_auth_with_curl_and_prometheus() {
    let pki = Pki::new("web-ca");
    let server = pki.leaf("exporter", "DNS:localhost,IP:127.0.0.1");
    let ca = pki.ca();
    let (_redis, dir, config) = plain_target();
    let web_password = random_secret(20);
    let hash = bcrypt_hash(&web_password);
    let web = write(
        dir.path(),
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  prom: '{hash}'\n",
            s(&server.cert),
            s(&server.key)
        ),
    );
    let mut exporter = Exporter::launch(
        &config,
        ExporterOptions {
            web_config: Some(web),
            ..Default::default()
        },
    );
    exporter.set_client("https", &["--cacert", s(&ca)]);

    // Without credentials, with a wrong password, with an unknown user: 401 and a challenge.
    for (what, extra) in [
        ("no credentials", vec![]),
        ("a wrong password", vec!["-u", "prom:not-the-password"]),
        ("an unknown user", vec!["-u", "mallory:x"]),
    ] {
        for path in ["/metrics", "/", "/-/healthy"] {
            let reply = exporter.request(path, &extra);
            assert_eq!(reply.status, Some(401), "GET {path} with {what}: {reply:?}");
            assert!(
                reply
                    .headers
                    .to_ascii_lowercase()
                    .contains("www-authenticate: basic"),
                "GET {path} with {what}: no Basic challenge in {}",
                reply.headers
            );
            assert!(
                !reply.body.contains("redis_up"),
                "GET {path} with {what} leaked metrics"
            );
        }
    }

    // The right credentials: 200 and an OpenMetrics body that shows the target up.
    let credentials = format!("prom:{web_password}");
    exporter.set_client("https", &["--cacert", s(&ca), "-u", &credentials]);
    exporter.wait_metrics(
        DEADLINE,
        "the target is up, scraped over HTTPS with basic auth",
        |m| m.up("plain") == Some(1.0),
    );
    let reply = exporter.request("/metrics", &[]);
    assert_eq!(reply.status, Some(200), "{reply:?}");
    assert!(
        reply
            .headers
            .to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{}",
        reply.headers
    );
    assert!(
        reply.body.ends_with("# EOF\n"),
        "not OpenMetrics: {}",
        reply.body
    );
    for path in ["/", "/-/healthy"] {
        assert_eq!(exporter.request(path, &[]).status, Some(200), "GET {path}");
    }
    assert_eq!(
        exporter.request("/metrics", &["--head"]).status,
        Some(200),
        "HEAD /metrics"
    );

    // Plain HTTP to the TLS port gets no HTTP answer at all.
    let plain = curl(&[&format!("http://127.0.0.1:{}/metrics", exporter.port())]);
    assert_eq!(
        plain.status, None,
        "plain HTTP to the TLS port answered: {plain:?}"
    );
    assert!(!plain.body.contains("redis_up"), "{plain:?}");

    // Other methods on read endpoints, and oversized bodies.
    for (method, path) in [
        ("POST", "/metrics"),
        ("PUT", "/metrics"),
        ("DELETE", "/"),
        ("POST", "/-/healthy"),
    ] {
        let reply = exporter.request(path, &["-X", method]);
        assert_eq!(reply.status, Some(405), "{method} {path}: {reply:?}");
    }
    let big = write(dir.path(), "big.bin", &"x".repeat(20 * 1024));
    let big_arg = format!("@{}", s(&big));
    let reply = exporter.request("/-/reload", &["-X", "POST", "--data-binary", &big_arg]);
    assert_eq!(
        reply.status,
        Some(413),
        "20 KiB body to /-/reload: {reply:?}"
    );
    let reply = exporter.request("/-/reload", &["-X", "POST"]);
    assert_eq!(
        reply.status,
        Some(200),
        "an empty reload is still accepted: {reply:?}"
    );

    // A real Prometheus scraping over HTTPS with basic auth; a second job with a wrong
    // password shows the check is real.
    let job = |name: &str, password: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      username: prom\n      password: '{password}'\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            s(&ca),
            exporter.port()
        )
    };
    let prometheus = Prometheus::start(&prometheus_config(
        None,
        None,
        &(job("rpe-tls", &web_password) + &job("rpe-tls-wrong", "wrong")),
    ));
    let value = |promql: &str| -> Option<String> {
        prometheus
            .query(promql)
            .unwrap_or_default()
            .first()
            .and_then(|r| r["value"][1].as_str().map(str::to_owned))
    };
    let ok = poll_until(std::time::Duration::from_secs(120), || {
        value("up{job=\"rpe-tls\"}").as_deref() == Some("1")
            && value("redis_up{job=\"rpe-tls\",target=\"plain\"}").as_deref() == Some("1")
            && value("up{job=\"rpe-tls-wrong\"}").as_deref() == Some("0")
    });
    assert!(
        ok,
        "Prometheus did not see up==1 (right password), redis_up==1 and up==0 (wrong password):\n{}",
        prometheus.targets()
    );
    assert!(
        value("redis_up{job=\"rpe-tls-wrong\"}").is_none(),
        "a rejected scrape stored samples"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Client certificates on the exporter's endpoints.
// ---------------------------------------------------------------------------------------------

#[test]
fn web_tls_requires_a_client_certificate_from_the_configured_ca() {
    let pki = Pki::new("web-ca");
    let server = pki.leaf("exporter", "DNS:localhost,IP:127.0.0.1");
    let client = pki.leaf("prometheus", "DNS:prometheus");
    let rogue_pki = Pki::new("rogue-ca");
    let rogue = rogue_pki.leaf("prometheus", "DNS:prometheus");
    let ca = pki.ca();
    let (_redis, dir, config) = plain_target();
    let web = write(
        dir.path(),
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            s(&server.cert),
            s(&server.key),
            s(&ca)
        ),
    );
    let mut exporter = Exporter::launch(
        &config,
        ExporterOptions {
            web_config: Some(web),
            ..Default::default()
        },
    );

    exporter.set_client(
        "https",
        &[
            "--cacert",
            s(&ca),
            "--cert",
            s(&client.cert),
            "--key",
            s(&client.key),
        ],
    );
    exporter.wait_metrics(
        DEADLINE,
        "the target is up, scraped with a client certificate",
        |m| m.up("plain") == Some(1.0),
    );

    exporter.set_client("https", &["--cacert", s(&ca)]);
    let reply = exporter.request("/metrics", &[]);
    assert_eq!(
        reply.status, None,
        "answered without a client certificate: {reply:?}"
    );
    assert!(!reply.body.contains("redis_up"));

    exporter.set_client(
        "https",
        &[
            "--cacert",
            s(&ca),
            "--cert",
            s(&rogue.cert),
            "--key",
            s(&rogue.key),
        ],
    );
    let reply = exporter.request("/metrics", &[]);
    assert_eq!(
        reply.status, None,
        "answered a certificate from another CA: {reply:?}"
    );

    // Refused handshakes do not hurt the next good client.
    exporter.set_client(
        "https",
        &[
            "--cacert",
            s(&ca),
            "--cert",
            s(&client.cert),
            "--key",
            s(&client.key),
        ],
    );
    assert_eq!(exporter.request("/metrics", &[]).status, Some(200));
}

// ---------------------------------------------------------------------------------------------
// 3. TLS towards Redis.
// ---------------------------------------------------------------------------------------------

#[test]
fn redis_tls_verification_and_client_certificates() {
    let pki = Pki::new("redis-ca");
    let ca = pki.ca();
    let other_pki = Pki::new("unrelated-ca");
    let tls = |auth_clients| RedisSpec {
        tls: Some(Tls {
            server: pki.leaf(
                if auth_clients { "redis-mtls" } else { "redis" },
                "DNS:redis.test",
            ),
            ca: ca.clone(),
            client: pki.leaf("admin", "DNS:admin"),
            auth_clients,
        }),
        ..RedisSpec::default()
    };
    let redis = Redis::start(tls(false));
    let mtls = Redis::start(tls(true));
    let client = pki.leaf("exporter-client", "DNS:exporter");
    let dir = tempdir();
    let target = |name: &str, port: u16, extra: &str| {
        format!("[[targets]]\nurl = \"rediss://127.0.0.1:{port}\"\nname = \"{name}\"\n{extra}\n")
    };
    let ca_line = format!("tls_ca_file = \"{}\"\n", s(&ca));
    let config = [
        POLL.to_owned(),
        target("verified", redis.port(), &format!("{ca_line}tls_server_name = \"redis.test\"")),
        target("by-ip", redis.port(), &ca_line),
        target("wrong-ca", redis.port(), &format!("tls_ca_file = \"{}\"\ntls_server_name = \"redis.test\"", s(&other_pki.ca()))),
        target("insecure", redis.port(), "tls_insecure_skip_verify = true"),
        target(
            "mtls-with-cert",
            mtls.port(),
            &format!(
                "{ca_line}tls_server_name = \"redis.test\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
                s(&client.cert),
                s(&client.key)
            ),
        ),
        target("mtls-without-cert", mtls.port(), &format!("{ca_line}tls_server_name = \"redis.test\"")),
    ]
    .concat();
    let config = write(dir.path(), "exporter.toml", &config);
    let exporter = Exporter::launch(&config, ExporterOptions::default());

    let metrics = exporter.wait_metrics(DEADLINE, "every TLS target has a verdict", |m| {
        m.up("verified") == Some(1.0)
            && m.up("insecure") == Some(1.0)
            && m.up("mtls-with-cert") == Some(1.0)
            && m.failure_reason("by-ip").as_deref() == Some("tls")
            && m.failure_reason("wrong-ca").as_deref() == Some("tls")
            // Refused after the handshake's last flight (TLS 1.3), yet still a TLS failure.
            && m.failure_reason("mtls-without-cert").as_deref() == Some("tls")
    });
    for name in ["by-ip", "wrong-ca", "mtls-without-cert"] {
        assert_eq!(metrics.up(name), Some(0.0), "{name}");
    }

    let output = exporter.output();
    let warnings: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("tls_insecure_skip_verify"))
        .collect();
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("WARN") && l.contains("insecure")),
        "no loud warning for tls_insecure_skip_verify:\n{output}"
    );
    for line in warnings {
        assert!(
            line.contains("target_name=insecure"),
            "the insecure warning names another target: {line}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The minimal ACL of docs/acl.md.
// ---------------------------------------------------------------------------------------------

/// The documented rule's words after `ACL SETUSER`, for `user` with `password`.
fn documented_acl(user: &str, password: &str) -> Vec<String> {
    let doc = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/acl.md"))
        .expect("docs/acl.md");
    let line = doc
        .lines()
        .find(|l| l.trim_start().starts_with("ACL SETUSER exporter "))
        .expect("docs/acl.md has an `ACL SETUSER exporter …` line");
    let words: Vec<String> = line.split_whitespace().skip(2).map(str::to_owned).collect();
    assert!(
        words.iter().any(|w| w == ">CHANGE_ME"),
        "the documented rule's password placeholder moved: {line}"
    );
    words
        .into_iter()
        .enumerate()
        .map(|(i, w)| match (i, w.as_str()) {
            (0, _) => user.to_owned(),
            (_, ">CHANGE_ME") => format!(">{password}"),
            _ => w,
        })
        .collect()
}

fn setuser(redis: &Redis, rule: &[String]) {
    let mut args = vec!["ACL", "SETUSER"];
    args.extend(rule.iter().map(String::as_str));
    redis.cli_ok(&args);
}

/// `ACL LOG` entries (refused commands or logins) of `user`.
fn acl_log_entries(redis: &Redis, user: &str) -> usize {
    let log = redis.cli(&["ACL", "LOG"]);
    let lines: Vec<&str> = log.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter(|w| w[0] == "username" && w[1] == user)
        .count()
}

#[test]
fn minimal_acl_from_the_docs_is_enough_and_each_permission_matters() {
    let redis = Redis::start(RedisSpec::rdb());
    let password = random_secret(24);
    let full = documented_acl("exporter", &password);
    let without = |user: &str, permission: &str| -> Vec<String> {
        let mut rule = documented_acl(user, &password);
        let before = rule.len();
        rule.retain(|w| w != permission);
        assert_eq!(
            rule.len() + 1,
            before,
            "the documented rule has no {permission}"
        );
        rule
    };
    setuser(&redis, &full);
    setuser(&redis, &without("noinfo", "+info"));
    setuser(&redis, &without("noconfig", "+config|get"));
    redis.cli_ok(&["ACL", "LOG", "RESET"]);

    let dir = tempdir();
    let target = |user: &str| {
        format!(
            "[[targets]]\nurl = \"redis://127.0.0.1:{}\"\nname = \"{user}\"\nusername = \"{user}\"\npassword = \"{password}\"\n",
            redis.port()
        )
    };
    // A short config refresh so a granted +config|get shows up within the test.
    let config = format!(
        "{POLL}config_refresh_interval = \"1s\"\n{}{}{}",
        target("exporter"),
        target("noinfo"),
        target("noconfig")
    );
    let config = write(dir.path(), "exporter.toml", &config);
    let exporter = Exporter::launch(&config, ExporterOptions::default());

    let metrics = exporter.wait_metrics(
        DEADLINE,
        "the documented user polls fully, the others degrade",
        |m| {
            m.up("exporter") == Some(1.0)
                && m.first("redis_config_available", &[("target", "exporter")]) == Some(1.0)
                && m.failure_reason("noinfo").as_deref() == Some("permission")
                && m.up("noconfig") == Some(1.0)
                && m.first("redis_config_available", &[("target", "noconfig")]) == Some(0.0)
        },
    );
    assert_eq!(metrics.up("noinfo"), Some(0.0));
    assert!(metrics.failure_reason("exporter").is_none());

    // Nothing the exporter sent as the documented user was refused. The refusals of the
    // user without +info show this check can see them.
    assert!(
        acl_log_entries(&redis, "noinfo") > 0,
        "ACL LOG shows no refusal at all:\n{}",
        redis.cli(&["ACL", "LOG"])
    );
    assert_eq!(
        acl_log_entries(&redis, "exporter"),
        0,
        "the documented ACL is missing a command the exporter sends:\n{}",
        redis.cli(&["ACL", "LOG"])
    );

    // Granting the missing permissions recovers both, without a restart.
    redis.cli_ok(&["ACL", "SETUSER", "noinfo", "+info"]);
    redis.cli_ok(&["ACL", "SETUSER", "noconfig", "+config|get"]);
    exporter.wait_metrics(DEADLINE, "granted permissions take effect", |m| {
        m.up("noinfo") == Some(1.0)
            && m.failure_reason("noinfo").is_none()
            && m.first("redis_config_available", &[("target", "noconfig")]) == Some(1.0)
    });
}

// ---------------------------------------------------------------------------------------------
// 5. Password rotation.
// ---------------------------------------------------------------------------------------------

/// Ids of the server's connections authenticated as `user`.
fn connection_ids(redis: &Redis, user: &str) -> Vec<String> {
    let needle = format!(" user={user} ");
    redis
        .cli(&["CLIENT", "LIST"])
        .lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| {
            l.split_whitespace()
                .next()?
                .strip_prefix("id=")
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn password_file_rotation_and_password_env() {
    let redis = Redis::start(RedisSpec::rdb());
    let first = random_secret(24);
    setuser(&redis, &documented_acl("exporter", &first));
    let env_password = random_secret(24);
    setuser(&redis, &documented_acl("envuser", &env_password));

    let dir = tempdir();
    let password_file = write(dir.path(), "password", &format!("{first}\n"));
    let port = redis.port();
    let config = format!(
        "{POLL}\
         [[targets]]\nurl = \"redis://127.0.0.1:{port}\"\nname = \"rotating\"\nusername = \"exporter\"\npassword_file = \"{}\"\n\
         [[targets]]\nurl = \"redis://127.0.0.1:{port}\"\nname = \"from-env\"\nusername = \"envuser\"\npassword_env = \"RPE_TEST_PASSWORD\"\n\
         [[targets]]\nurl = \"redis://127.0.0.1:{port}\"\nname = \"from-env-wrong\"\nusername = \"envuser\"\npassword_env = \"RPE_TEST_WRONG_PASSWORD\"\n",
        s(&password_file)
    );
    let config = write(dir.path(), "exporter.toml", &config);
    let mut exporter = Exporter::launch(
        &config,
        ExporterOptions {
            env: vec![
                ("RPE_TEST_PASSWORD".into(), env_password.clone()),
                ("RPE_TEST_WRONG_PASSWORD".into(), "not-it".into()),
            ],
            ..Default::default()
        },
    );
    exporter.wait_metrics(
        DEADLINE,
        "file and env passwords work, a wrong env password does not",
        |m| {
            m.up("rotating") == Some(1.0)
                && m.up("from-env") == Some(1.0)
                && m.failure_reason("from-env-wrong").as_deref() == Some("auth")
        },
    );
    let pid = exporter.pid();

    // Graceful rotation: the server accepts old and new, the file changes, the exporter
    // reconnects by itself (a new connection id) and no poll fails.
    let before = connection_ids(&redis, "exporter");
    assert_eq!(before.len(), 1, "one connection per target: {before:?}");
    let second = random_secret(30);
    redis.cli_ok(&["ACL", "SETUSER", "exporter", &format!(">{second}")]);
    fs::write(&password_file, format!("{second}\n")).unwrap();
    let reconnected = poll_until(DEADLINE, || {
        let now = connection_ids(&redis, "exporter");
        now.len() == 1 && now != before
    });
    assert!(
        reconnected,
        "no reconnect after the password file changed:\n{}",
        exporter.output()
    );
    redis.cli_ok(&["ACL", "SETUSER", "exporter", &format!("<{first}")]);
    let metrics = exporter.wait_metrics(
        DEADLINE,
        "still up after the old password is removed",
        |m| m.up("rotating") == Some(1.0),
    );
    assert_eq!(
        metrics.first(
            "redis_persistence_exporter_poll_failures_total",
            &[("target", "rotating")]
        ),
        None,
        "a poll failed during a graceful rotation"
    );

    // Abrupt rotation: the server drops the old password and the connection first; the target
    // is down (auth) until the file catches up, then recovers without a restart.
    let third = random_secret(26);
    redis.cli_ok(&[
        "ACL",
        "SETUSER",
        "exporter",
        "resetpass",
        &format!(">{third}"),
    ]);
    redis.cli(&["CLIENT", "KILL", "USER", "exporter"]);
    exporter.wait_metrics(DEADLINE, "the stale password fails with reason auth", |m| {
        m.up("rotating") == Some(0.0) && m.failure_reason("rotating").as_deref() == Some("auth")
    });
    fs::write(&password_file, format!("{third}\n")).unwrap();
    exporter.wait_metrics(DEADLINE, "the new password from the file is used", |m| {
        m.up("rotating") == Some(1.0) && m.failure_reason("rotating").is_none()
    });
    assert_eq!(exporter.pid(), pid);
    exporter.set_client("http", &[]);
    assert!(
        exporter.request("/-/healthy", &[]).status == Some(200),
        "the exporter died"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Secrets appear nowhere.
// ---------------------------------------------------------------------------------------------

/// Everything a run printed or served, by where it came from.
#[derive(Default)]
struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn add(&mut self, source: impl Into<String>, text: impl Into<String>) {
        self.0.push((source.into(), text.into()));
    }

    /// Panics naming every source that contains `secret`, with the line.
    fn assert_free_of(&self, secret: &str) {
        let leaks: Vec<String> = self
            .0
            .iter()
            .flat_map(|(source, text)| {
                text.lines()
                    .filter(|l| l.contains(secret))
                    .map(move |l| format!("  {source}: {}", l.replace(secret, "<SECRET>")))
            })
            .collect();
        assert!(
            leaks.is_empty(),
            "the password appears {} time(s):\n{}",
            leaks.len(),
            leaks.join("\n")
        );
    }
}

/// Runs `check` on `config` in text and JSON, and `--check-config`, at trace level.
fn run_checks(config: &Path, format: &'static str, outputs: &mut Outputs) {
    for json in [false, true] {
        let mut args = vec![
            "--config",
            s(config),
            "--log.level",
            "trace",
            "--log.format",
            format,
        ];
        if json {
            args.push("--json");
        }
        let (code, stdout, stderr) = check(&args);
        assert!(
            matches!(code, Some(1) | Some(3)),
            "check {args:?} exited {code:?}:\n{stdout}{stderr}"
        );
        assert!(stdout.contains("good"), "check printed no report: {stdout}");
        outputs.add(format!("check {args:?} stdout"), stdout);
        outputs.add(format!("check {args:?} stderr"), stderr);
    }
    let out = exporter_command([
        "--config",
        s(config),
        "--check-config",
        "--log.level",
        "trace",
        "--log.format",
        format,
    ])
    .output()
    .unwrap();
    assert!(out.status.success());
    outputs.add(
        "--check-config stdout",
        String::from_utf8_lossy(&out.stdout),
    );
    outputs.add(
        "--check-config stderr",
        String::from_utf8_lossy(&out.stderr),
    );
}

/// A plain and a TLS Redis (certificate for `redis.test`, CA `ca`), each with the documented
/// `exporter` ACL user whose password is `secret`.
struct SecretServers {
    /// Keeps the certificates on disk while the servers run.
    _pki: Pki,
    ca: PathBuf,
    secret: String,
    redis: Redis,
    tls: Redis,
}

impl SecretServers {
    fn start() -> Self {
        let pki = Pki::new("redis-ca");
        let ca = pki.ca();
        let secret = random_secret(24);
        let redis = Redis::start(RedisSpec::rdb());
        let tls = Redis::start(RedisSpec {
            tls: Some(Tls {
                server: pki.leaf("redis", "DNS:redis.test"),
                ca: ca.clone(),
                client: pki.leaf("admin", "DNS:admin"),
                auth_clients: false,
            }),
            ..RedisSpec::default()
        });
        for server in [&redis, &tls] {
            setuser(server, &documented_acl("exporter", &secret));
        }
        SecretServers {
            _pki: pki,
            ca,
            secret,
            redis,
            tls,
        }
    }
}

fn secrets_stay_secret(format: &'static str) {
    let SecretServers {
        _pki,
        ca,
        secret,
        redis,
        tls,
    } = SecretServers::start();
    // A user whose password is something else: the secret is the wrong password for it.
    setuser(&redis, &documented_acl("other", &random_secret(24)));

    let dir = tempdir();
    let web_password = random_secret(20);
    let web = write(
        dir.path(),
        "web.yml",
        &format!(
            "basic_auth_users:\n  prom: '{}'\n",
            bcrypt_hash(&web_password)
        ),
    );
    let target = |name: &str, url: String, extra: &str| {
        format!(
            "[[targets]]\nurl = \"{url}\"\nname = \"{name}\"\npassword = \"{secret}\"\n{extra}\n"
        )
    };
    let config_text = |good_extra: &str| {
        [
            POLL.to_owned(),
            target("good", format!("redis://127.0.0.1:{}", redis.port()), &format!("username = \"exporter\"\n{good_extra}")),
            target("wrong-password", format!("redis://127.0.0.1:{}", redis.port()), "username = \"other\""),
            target(
                "tls-failure",
                format!("rediss://127.0.0.1:{}", tls.port()),
                &format!("username = \"exporter\"\ntls_ca_file = \"{}\"", s(&ca)),
            ),
            target(
                "tls-good",
                format!("rediss://127.0.0.1:{}", tls.port()),
                &format!("username = \"exporter\"\ntls_ca_file = \"{}\"\ntls_server_name = \"redis.test\"", s(&ca)),
            ),
        ]
        .concat()
    };
    let config = write(dir.path(), "exporter.toml", &config_text(""));
    let mut exporter = Exporter::launch(
        &config,
        ExporterOptions {
            web_config: Some(web),
            log_level: Some("trace"),
            log_format: Some(format),
            ..Default::default()
        },
    );
    let credentials = format!("prom:{web_password}");
    exporter.set_client("http", &["-u", &credentials]);
    let mut outputs = Outputs::default();

    let metrics = exporter.wait_metrics(
        DEADLINE,
        "right password up, wrong password auth, wrong name tls",
        |m| {
            m.up("good") == Some(1.0)
                && m.up("tls-good") == Some(1.0)
                && m.failure_reason("wrong-password").as_deref() == Some("auth")
                && m.failure_reason("tls-failure").as_deref() == Some("tls")
        },
    );
    outputs.add("/metrics", metrics.text);
    outputs.add("/", exporter.get("/"));

    // A reload that changes the target, so it reconnects with the password again.
    write(
        dir.path(),
        "exporter.toml",
        &config_text("labels = { env = \"reloaded\" }"),
    );
    let reply = exporter.request("/-/reload", &["-X", "POST"]);
    assert_eq!(reply.status, Some(200), "{reply:?}");
    outputs.add("/-/reload", reply.body);
    let metrics = exporter.wait_metrics(DEADLINE, "the reloaded target is up", |m| {
        m.first("redis_up", &[("target", "good"), ("env", "reloaded")]) == Some(1.0)
            && m.failure_reason("wrong-password").as_deref() == Some("auth")
    });
    outputs.add("/metrics after reload", metrics.text);
    outputs.add("/ after reload", exporter.get("/"));

    run_checks(&config, format, &mut outputs);
    outputs.add("exporter stdout+stderr", exporter.output());
    // The exporter has no trace events of its own yet; its debug lines (one per failed poll)
    // show the verbose level is really on.
    assert!(
        exporter.output().contains("DEBUG"),
        "no debug lines at --log.level trace; the search would prove little"
    );
    outputs.assert_free_of(&secret);
    outputs.assert_free_of(&web_password);
}

#[test]
fn secrets_appear_nowhere_with_text_logs() {
    secrets_stay_secret("text");
}

#[test]
fn secrets_appear_nowhere_with_json_logs() {
    secrets_stay_secret("json");
}

#[test]
fn password_inline_in_the_url_appears_nowhere() {
    let SecretServers {
        _pki,
        ca,
        secret,
        redis,
        tls,
    } = SecretServers::start();
    // A second server, so the wrong-password target gets a name of its own.
    let other = Redis::start(RedisSpec::rdb());
    setuser(&other, &documented_acl("other", &random_secret(24)));
    let good = format!("redis://exporter:{secret}@127.0.0.1:{}", redis.port());
    let wrong = format!("redis://other:{secret}@127.0.0.1:{}", other.port());
    let tls_failure = format!("rediss://exporter:{secret}@127.0.0.1:{}", tls.port());
    let dir = tempdir();
    // No `name`: the default name comes from the URL and must drop the credentials.
    let config = format!(
        "{POLL}[[targets]]\nurl = \"{good}\"\n[[targets]]\nurl = \"{wrong}\"\n\
         [[targets]]\nurl = \"{tls_failure}\"\ntls_ca_file = \"{}\"\n",
        s(&ca)
    );
    let config = write(dir.path(), "exporter.toml", &config);
    let good_name = format!("redis://127.0.0.1:{}", redis.port());
    let tls_name = format!("rediss://127.0.0.1:{}", tls.port());
    let mut outputs = Outputs::default();
    for format in ["text", "json"] {
        let exporter = Exporter::launch(
            &config,
            ExporterOptions {
                log_level: Some("trace"),
                log_format: Some(format),
                ..Default::default()
            },
        );
        let metrics = exporter.wait_metrics(DEADLINE, "URL credentials are used", |m| {
            m.first("redis_up", &[("target", &good_name)]) == Some(1.0)
                && m.failure_reason(&tls_name).as_deref() == Some("tls")
                && m.text.contains("reason=\"auth\"")
        });
        outputs.add(format!("/metrics ({format})"), metrics.text);
        outputs.add(format!("/ ({format})"), exporter.get("/"));
        let reply = exporter.request("/-/reload", &["-X", "POST"]);
        assert_eq!(reply.status, Some(200), "{reply:?}");
        outputs.add(format!("/-/reload ({format})"), reply.body);
        outputs.add(format!("exporter output ({format})"), exporter.output());
        drop(exporter);

        // `check` with the config, and with the URLs on its command line.
        for json in [false, true] {
            let mut args = vec![
                "--config",
                s(&config),
                "--log.level",
                "trace",
                "--log.format",
                format,
            ];
            let mut url_args = vec![
                good.as_str(),
                wrong.as_str(),
                "--log.level",
                "trace",
                "--log.format",
                format,
            ];
            if json {
                args.push("--json");
                url_args.push("--json");
            }
            for args in [args, url_args] {
                let (code, stdout, stderr) = check(&args);
                assert!(
                    code.is_some_and(|c| c != 2),
                    "check exited {code:?}: {stderr}"
                );
                assert!(
                    stdout.contains(&good_name),
                    "check named no target: {stdout}"
                );
                let shown: Vec<&str> = args
                    .iter()
                    .map(|a| if a.contains(&secret) { "<url>" } else { a })
                    .collect();
                outputs.add(format!("check {shown:?} stdout"), stdout);
                outputs.add(format!("check {shown:?} stderr"), stderr);
            }
        }
    }
    outputs.assert_free_of(&secret);
}

#[test]
fn config_errors_about_the_password_do_not_echo_it() {
    let secret = random_secret(24);
    let redis = Redis::start(RedisSpec::rdb());
    let port = redis.port();
    let dir = tempdir();
    let valid =
        format!("{POLL}[[targets]]\nurl = \"redis://127.0.0.1:{port}\"\nname = \"valid\"\n");
    let config = write(dir.path(), "exporter.toml", &valid);
    let exporter = Exporter::launch(
        &config,
        ExporterOptions {
            log_level: Some("trace"),
            ..Default::default()
        },
    );
    exporter.wait_metrics(DEADLINE, "the valid config polls", |m| {
        m.up("valid") == Some(1.0)
    });

    let head = format!("{POLL}[[targets]]\nurl = \"redis://127.0.0.1:{port}\"\n");
    let cases: Vec<(&str, String)> = vec![
        ("unterminated string", format!("{head}password = \"{secret}\n")),
        ("trailing garbage", format!("{head}password = \"{secret}\" x\n")),
        ("duplicate key", format!("{head}password = \"{secret}\"\npassword = \"{secret}\"\n")),
        ("array instead of string", format!("{head}password = [\"{secret}\"]\n")),
        ("table instead of string", format!("{head}password = {{ value = \"{secret}\" }}\n")),
        ("misspelt key", format!("{head}pasword = \"{secret}\"\n")),
        ("password and password_file", format!("{head}password = \"{secret}\"\npassword_file = \"/etc/hostname\"\n")),
        ("password in URL and key", format!("{POLL}[[targets]]\nurl = \"redis://u:{secret}@127.0.0.1:{port}\"\npassword = \"{secret}\"\n")),
        ("URL with password and bad port", format!("{POLL}[[targets]]\nurl = \"redis://u:{secret}@127.0.0.1:99999\"\n")),
        ("URL with password and bad scheme", format!("{POLL}[[targets]]\nurl = \"http://u:{secret}@127.0.0.1:{port}\"\n")),
        ("URL with password and a path", format!("{POLL}[[targets]]\nurl = \"redis://u:{secret}@127.0.0.1:{port}/0\"\n")),
        ("URL with password and username key", format!("{POLL}[[targets]]\nurl = \"redis://u:{secret}@127.0.0.1:{port}\"\nusername = \"x\"\n")),
        ("duplicate names of URLs with passwords", format!("{POLL}[[targets]]\nurl = \"redis://u:{secret}@127.0.0.1:{port}\"\n[[targets]]\nurl = \"redis://v:{secret}@127.0.0.1:{port}\"\n")),
    ];
    let mut outputs = Outputs::default();
    for (case, text) in &cases {
        let bad = write(dir.path(), "bad.toml", text);
        let out = exporter_command(["--config", s(&bad), "--check-config"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{case}: --check-config accepted it"
        );
        outputs.add(
            format!("{case}: --check-config stderr"),
            String::from_utf8_lossy(&out.stderr),
        );
        outputs.add(
            format!("{case}: --check-config stdout"),
            String::from_utf8_lossy(&out.stdout),
        );
        let (code, stdout, stderr) = check(&["--config", s(&bad)]);
        assert_eq!(code, Some(2), "{case}: check accepted it");
        outputs.add(format!("{case}: check stderr"), stderr);
        outputs.add(format!("{case}: check stdout"), stdout);

        // The same file as a reload of the running exporter: refused, and the old config stays.
        fs::write(&config, text).unwrap();
        let reply = exporter.request("/-/reload", &["-X", "POST"]);
        assert_eq!(reply.status, Some(400), "{case}: reload answered {reply:?}");
        outputs.add(format!("{case}: /-/reload reply"), reply.body);
    }
    fs::write(&config, &valid).unwrap();
    let metrics = exporter.wait_metrics(DEADLINE, "the previous config still runs", |m| {
        m.up("valid") == Some(1.0)
    });
    assert_eq!(
        metrics.first(
            "redis_persistence_exporter_config_last_reload_successful",
            &[]
        ),
        Some(0.0)
    );
    outputs.add("exporter output", exporter.output());
    outputs.assert_free_of(&secret);
}

/// Runs the exporter's `check` subcommand with `args`; returns (exit code, stdout, stderr),
/// the code `None` if killed by a signal.
fn check(args: &[&str]) -> (Option<i32>, String, String) {
    let run = run_check(args);
    // `run_check` reports "killed by a signal" as -1, which no exit status can be.
    let code = (run.code >= 0).then_some(run.code);
    (code, run.stdout, run.stderr)
}
