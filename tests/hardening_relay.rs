//! The relay between the client and a target, against replies and surroundings built to hurt
//! it: a reply nested thousands deep (which overflowed the client's stack and aborted the
//! whole process), a Redis 5 wrong-password reply, and the folder that holds the relay's
//! sockets.
//!
//! Each fault test shows the healthy state, the fault, and the recovery, with a real
//! `redis-server` polled beside the fake to show that the fault stays with its target.

mod support;

use std::time::Duration;

use support::{
    config_toml, failures, poll_until, run_check, saved_fuzz_findings, up, Behavior, Exporter,
    FakeRedis, RedisSpec, Target,
};

/// Poll every second with half a second per poll.
const POLL_INTERVAL: &str = "1s";
const POLL_TIMEOUT: &str = "500ms";
/// Generous bound for a state to show in a scrape; a correct exporter meets it by far.
const STATE_TIMEOUT: Duration = Duration::from_secs(30);
/// `run_check`'s code for a process killed by a signal: a stack overflow in the client made
/// the exporter abort (SIGABRT, 134 in a shell).
const KILLED_BY_SIGNAL: i32 = -1;

/// `depth` arrays of one element around `:1`: 8 KB at depth 2,000, far under the byte budget.
fn nested_reply(depth: usize) -> Vec<u8> {
    let mut bytes = b"*1\r\n".repeat(depth);
    bytes.extend_from_slice(b":1\r\n");
    bytes
}

/// Scrapes until `condition` holds, failing at once (not at the timeout) if the exporter
/// process died meanwhile.
fn wait_alive(exporter: &mut Exporter, what: &str, mut condition: impl FnMut(&str) -> bool) {
    let mut died = None;
    let mut last = String::new();
    let met = poll_until(STATE_TIMEOUT, || {
        if let Some(status) = exporter.wait_exit(Duration::ZERO) {
            died = Some(status);
            return true;
        }
        match support::try_scrape(exporter.port()) {
            Ok(scrape) => {
                last = scrape.body;
                condition(&last)
            }
            Err(_) => false,
        }
    });
    if let Some(status) = died {
        panic!(
            "the exporter died ({status}) while waiting until {what}\n--- log (tail) ---\n{}",
            exporter.log_tail(40)
        );
    }
    assert!(
        met,
        "timed out waiting until {what}\n--- last scrape ---\n{last}\n--- log (tail) ---\n{}",
        exporter.log_tail(40)
    );
}

#[test]
fn a_deeply_nested_reply_fails_its_target_as_protocol_and_nothing_else() {
    let redis = RedisSpec::rdb().start();
    let fake = FakeRedis::start(Behavior::Healthy);
    let targets = [
        Target::new(redis.url(), "real-redis"),
        Target::new(fake.url(), "nested"),
    ];
    let mut exporter = Exporter::start(&config_toml(POLL_INTERVAL, POLL_TIMEOUT, &targets));

    wait_alive(&mut exporter, "both targets are up", |body| {
        up(body, "real-redis") == Some(1.0) && up(body, "nested") == Some(1.0)
    });

    fake.set(Behavior::Reply(nested_reply(2_000)));
    wait_alive(
        &mut exporter,
        "the nested target failed 3 polls as `protocol`",
        |body| up(body, "nested") == Some(0.0) && failures(body, "nested", "protocol") >= 3.0,
    );
    let body = exporter.scrape();
    assert_eq!(up(&body, "real-redis"), Some(1.0), "{body}");
    for reason in ["protocol", "io", "timeout", "reply_too_large", "parse"] {
        assert_eq!(
            failures(&body, "real-redis", reason),
            0.0,
            "{reason}\n{body}"
        );
    }

    fake.set(Behavior::Healthy);
    wait_alive(&mut exporter, "the nested target is up again", |body| {
        up(body, "nested") == Some(1.0) && up(body, "real-redis") == Some(1.0)
    });
}

#[test]
fn check_reports_a_deeply_nested_reply_as_unreachable_instead_of_aborting() {
    let fake = FakeRedis::start(Behavior::Healthy);
    assert_eq!(run_check(&[&fake.url()]).code, 0, "check on a healthy fake");

    fake.set(Behavior::Reply(nested_reply(200_000)));
    let check = run_check(&[&fake.url()]);
    assert_ne!(check.code, KILLED_BY_SIGNAL, "check aborted: {check:?}");
    assert_eq!(check.code, 3, "expected exit 3 (unreachable): {check:?}");
    assert!(
        check.stdout.contains("protocol") || check.stderr.contains("protocol"),
        "no `protocol` in the report: {check:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Redis 5 and older answer a wrong password with `-ERR invalid password`.

/// The password the exporter sends to the AUTH fake.
const PASSWORD: &str = "secret";
/// The exact request the exporter's client sends for it.
const AUTH_REQUEST: &[u8] = b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n";

/// A Redis 5 in front of a real `redis-server` (which has no password): it answers the
/// client's `AUTH` itself, `+OK` or, while `reject` is set, `-ERR invalid password` as Redis
/// 5 does, and passes everything after it through. Dropping it stops accepting.
struct LegacyAuthFront {
    port: u16,
    reject: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LegacyAuthFront {
    fn start(backend_port: u16) -> LegacyAuthFront {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local addr").port();
        let reject = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (reject_flag, stop_flag) = (reject.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let reject = reject_flag.load(Ordering::Relaxed);
                        std::thread::spawn(move || serve_legacy_auth(client, backend_port, reject));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        LegacyAuthFront { port, reject, stop }
    }

    fn url(&self) -> String {
        format!("redis://:{PASSWORD}@127.0.0.1:{}", self.port)
    }

    fn reject(&self, reject: bool) {
        self.reject
            .store(reject, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for LegacyAuthFront {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn serve_legacy_auth(mut client: std::net::TcpStream, backend_port: u16, reject: bool) {
    use std::io::{Read, Write};
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while request.len() < AUTH_REQUEST.len() {
        match client.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    if !request.starts_with(AUTH_REQUEST) {
        let _ = client.write_all(b"-ERR expected AUTH first\r\n");
        return;
    }
    if reject {
        let _ = client.write_all(b"-ERR invalid password\r\n");
        return;
    }
    let _ = client.write_all(b"+OK\r\n");
    let Ok(mut backend) = std::net::TcpStream::connect(("127.0.0.1", backend_port)) else {
        return;
    };
    let _ = client.set_read_timeout(None);
    let _ = backend.write_all(&request[AUTH_REQUEST.len()..]);
    let (Ok(mut client_reader), Ok(mut backend_writer)) = (client.try_clone(), backend.try_clone())
    else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_reader, &mut backend_writer);
        let _ = backend_writer.shutdown(std::net::Shutdown::Both);
    });
    let _ = std::io::copy(&mut backend, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Both);
}

#[test]
fn a_redis_5_wrong_password_reply_is_an_auth_failure() {
    let redis = RedisSpec::rdb().start();
    let front = LegacyAuthFront::start(redis.port());
    let targets = [
        Target::new(redis.url(), "real-redis"),
        Target::new(front.url(), "redis-5"),
    ];
    // A connection per poll, so every poll authenticates.
    let config = format!(
        "keep_connections = false\n{}",
        config_toml(POLL_INTERVAL, POLL_TIMEOUT, &targets)
    );
    let mut exporter = Exporter::start(&config);
    wait_alive(&mut exporter, "both targets are up", |body| {
        up(body, "real-redis") == Some(1.0) && up(body, "redis-5") == Some(1.0)
    });

    front.reject(true);
    wait_alive(
        &mut exporter,
        "the redis-5 target failed 2 polls as `auth`",
        |body| up(body, "redis-5") == Some(0.0) && failures(body, "redis-5", "auth") >= 2.0,
    );
    let body = exporter.scrape();
    assert_eq!(failures(&body, "redis-5", "server_error"), 0.0, "{body}");
    assert_eq!(up(&body, "real-redis"), Some(1.0), "{body}");

    let check = run_check(&[&front.url()]);
    assert_eq!(check.code, 3, "expected exit 3 (unreachable): {check:?}");
    assert!(
        check.stdout.contains("auth"),
        "no `auth` in the report: {check:?}"
    );

    front.reject(false);
    wait_alive(&mut exporter, "the redis-5 target is up again", |body| {
        up(body, "redis-5") == Some(1.0)
    });
}

// ---------------------------------------------------------------------------------------------
// The relay's socket folder.

/// The relay folders of process `pid` in the temp dir: `(random suffix, path)`.
fn relay_dirs(pid: u32) -> Vec<(String, std::path::PathBuf)> {
    let prefix = format!("redis-persistence-exporter-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .expect("read temp dir")
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            let suffix = name.strip_prefix(&prefix)?.to_owned();
            Some((suffix, entry.path()))
        })
        .collect()
}

#[test]
fn the_relay_folder_is_private_and_unpredictable() {
    use std::os::unix::fs::MetadataExt;
    let redis = RedisSpec::rdb().start();
    let targets = [Target::new(redis.url(), "real-redis")];
    let config = config_toml(POLL_INTERVAL, POLL_TIMEOUT, &targets);
    // The owner of a file we create: our effective uid, without unsafe code.
    let our_uid = tempfile::tempfile()
        .and_then(|probe| probe.metadata())
        .expect("probe file")
        .uid();

    let mut suffixes = Vec::new();
    for _ in 0..2 {
        let mut exporter = Exporter::start(&config);
        wait_alive(&mut exporter, "the target is up", |body| {
            up(body, "real-redis") == Some(1.0)
        });
        let dirs = relay_dirs(exporter.pid());
        assert_eq!(
            dirs.len(),
            1,
            "relay folders of pid {}: {dirs:?}",
            exporter.pid()
        );
        let (suffix, path) = &dirs[0];
        assert!(
            suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit()),
            "not 64 random bits: {path:?}"
        );
        let meta = std::fs::symlink_metadata(path).expect("lstat");
        assert!(meta.file_type().is_dir(), "{path:?}");
        assert_eq!(meta.mode() & 0o7777, 0o700, "{path:?}");
        assert_eq!(meta.uid(), our_uid, "{path:?}");
        suffixes.push(suffix.clone());
    }
    assert_ne!(suffixes[0], suffixes[1], "two runs picked the same name");
}

/// Every input a fuzzer ever failed on (`scripts/fuzz.sh` saves both targets' findings in
/// `tests/fuzz_regressions/`), run through the reply path's own checks.
#[test]
fn saved_fuzzer_findings_pass_the_reply_path_checks() {
    for finding in saved_fuzz_findings() {
        redis_persistence_exporter::fuzz_reply(&finding);
    }
}
