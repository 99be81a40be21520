//! Real faults against real `redis-server` 7.0.15 processes, read by the real exporter binary:
//! AOF writes failing on a full disk, `CONFIG` denied or renamed, growth overdue while `fork()`
//! is blocked, and the `check` subcommand. Each test shows the healthy state, then the fault,
//! then the recovery.
//!
//! The rewrite and save faults every server must get right (killed children, refused forks,
//! full disks, AOF off over a stale `err`, hung children) are in tests/server_faults.rs, which
//! runs each on Redis 6.2, Redis 7.0, Valkey 8.1 and Valkey 9.1. The full-disk test here
//! stays for what that suite does not cover: `aof_last_write_status` and its `aof_write`
//! cause when writes, not a rewrite, hit the full disk.
//!
//! Divergences between what Redis says and what the exporter derives (stuck, counters, causes)
//! are recorded as findings and reported together at the end of the scenario, with a
//! transcript of the real INFO fields, log lines and series at each step; run with
//! `--nocapture` to see the transcript of a passing run too.
//!
//! Needs root (tmpfs mounts, `setpriv`, `prlimit`) and `/usr/bin/redis-server`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::run_check;
use support::{
    noise, private_uid, Exporter, Findings, Metrics, Redis, RedisSpec, Reply, Target, Tmpfs,
    REDIS_CHANGE, SEE,
};

/// Keys that make a rewrite slow enough to find and kill its child (100 µs each).
const SLOW_KEYS: u64 = 100_000;
/// Value size used to fill disks and grow the AOF.
const VALUE: usize = 64 * 1024;

fn info_u64(info: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    info.get(key).and_then(|v| v.parse::<f64>().ok())
}

fn status_flag(info: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    info.get(key).map(|v| if v == "ok" { 1.0 } else { 0.0 })
}

/// The exporter's last poll of `target` saw exactly this INFO state (counters, statuses,
/// whether a rewrite runs), so what it derived from it can be judged.
fn caught_up(m: &Metrics, target: &str, info: &BTreeMap<String, String>) -> bool {
    let pairs = [
        ("redis_aof_rewrites_total", info_u64(info, "aof_rewrites")),
        (
            "redis_aof_rewrites_consecutive_failures",
            info_u64(info, "aof_rewrites_consecutive_failures"),
        ),
        (
            "redis_aof_rewrite_in_progress",
            info_u64(info, "aof_rewrite_in_progress"),
        ),
        (
            "redis_aof_last_bgrewrite_status",
            status_flag(info, "aof_last_bgrewrite_status"),
        ),
        (
            "redis_aof_last_write_status",
            status_flag(info, "aof_last_write_status"),
        ),
        ("redis_aof_enabled", info_u64(info, "aof_enabled")),
    ];
    m.value("redis_up", target) == Some(1.0)
        && pairs
            .iter()
            .all(|(name, want)| m.value(name, target) == *want)
}

/// Waits until the exporter has polled the state Redis is in now.
fn wait_caught_up(exporter: &Exporter, redis: &mut Redis, target: &str, what: &str) -> Metrics {
    let info = redis.persistence();
    exporter.wait_metrics(
        SEE,
        &format!("{what} (exporter caught up with {info:?})"),
        |m| caught_up(m, target, &info),
    )
}

/// The probable cause is read from the log just after a poll records a new state; give it a
/// few polls to match `want`. Returns the last scrape (the one that matched, or the last one
/// seen when it never did, so the caller can record what it showed instead), falling back to
/// `seen` if no scrape answered.
fn wait_reason(
    exporter: &Exporter,
    target: &str,
    mechanism: &str,
    want: Option<&str>,
    seen: Metrics,
) -> Metrics {
    let last = match exporter.try_wait_metrics(Duration::from_secs(5), |m| {
        m.reason(target, mechanism).as_deref() == want
    }) {
        Ok(m) | Err(m) => m,
    };
    if last.samples.is_empty() {
        seen
    } else {
        last
    }
}

fn value(m: &Metrics, name: &str, target: &str) -> Option<f64> {
    m.value(name, target)
}

/// Lines Redis wrote since `offset`, without the long startup warnings.
fn new_log_lines(redis: &Redis, offset: usize) -> String {
    redis
        .log_since(offset)
        .lines()
        .filter(|l| !l.contains("WARNING") && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sets `key` to `VALUE` incompressible bytes; returns the reply.
fn set_noise(redis: &mut Redis, key: &str, seed: u64) -> Reply {
    let value = noise(VALUE, seed);
    redis.cmd(&[b"SET".as_slice(), key.as_bytes(), value.as_slice()])
}

// ---------------------------------------------------------------------------------------------

#[test]
fn full_disk_fails_rewrite_then_writes_and_recovers() {
    let mut f = Findings::new("disk_full");
    // Declared first so it is unmounted last, after the server on it is dead.
    let mount = Tmpfs::mount("8m");
    // Room that can be given back later: after the fill, removing it leaves space for a
    // rewrite of everything written.
    let filler = mount.path().join("filler");
    std::fs::write(&filler, vec![0u8; 5 << 20]).expect("write the filler");
    let data = mount.path().join("data");
    let mut redis = Redis::start(RedisSpec {
        data_dir: Some(data.clone()),
        ..RedisSpec::aof()
    });
    let exporter = Exporter::start_targets(&[Target::host("r", &redis)]);

    let m = wait_caught_up(&exporter, &mut redis, "r", "healthy");
    f.note(format!(
        "healthy: df avail {} | redis {} | exporter {}",
        mount.free_bytes(),
        redis.aof_fields(),
        m.summary("r")
    ));
    assert_eq!(m.card("r").as_deref(), Some("ok"));
    let free = value(&m, "redis_persistence_dir_free_bytes", "r");
    f.expect(
        free.is_some_and(|b| b > 2.0 * 1024.0 * 1024.0),
        format!("healthy: >2 MiB free on the data dir, got {free:?}"),
    );

    // 2 MiB of incompressible data: it fits, but a rewrite of it does not.
    for i in 0..32u64 {
        let reply = set_noise(&mut redis, &format!("a{i}"), i + 1);
        assert_eq!(
            reply,
            Reply::Simple("OK".into()),
            "write {i} before the disk is full"
        );
    }
    let offset = redis.log_len();
    let reply = redis.failing_rewrite("on a nearly full disk");
    let m = wait_caught_up(&exporter, &mut redis, "r", "the failed rewrite is seen");
    let m = wait_reason(&exporter, "r", "aof_rewrite", Some("disk_full"), m);
    f.note(format!(
        "BGREWRITEAOF on a nearly full disk: reply {:?} | df avail {} | redis {} | log:\n{}\n| exporter {}",
        reply.text(),
        mount.free_bytes(),
        redis.aof_fields(),
        new_log_lines(&redis, offset),
        m.summary("r")
    ));
    assert_eq!(m.card("r").as_deref(), Some("err"));
    f.expect(
        value(&m, "redis_aof_last_write_status", "r") == Some(1.0),
        "rewrite failed, writes still ok",
    );
    f.expect(
        m.reason("r", "aof_rewrite").as_deref() == Some("disk_full"),
        format!(
            "rewrite on a full disk: reason disk_full, got {:?}",
            m.reasons("r")
        ),
    );

    // Now fill it: writes fail.
    let offset = redis.log_len();
    let mut refused = None;
    for i in 0..100u64 {
        let reply = set_noise(&mut redis, &format!("b{i}"), 1000 + i);
        if reply.is_error() {
            refused = Some(reply.text());
            break;
        }
    }
    let refused = refused.expect("100 more 64 KiB values did not fill an 8 MiB tmpfs");
    let mut last = String::new();
    let write_err = support::poll_until(REDIS_CHANGE, || {
        last = redis.aof_fields();
        redis.field("aof_last_write_status") == "err"
    });
    assert!(write_err, "aof_last_write_status did not turn err: {last}");
    let m = wait_caught_up(&exporter, &mut redis, "r", "the write failure is seen");
    let m = wait_reason(&exporter, "r", "aof_write", Some("disk_full"), m);
    f.note(format!(
        "disk filled: first refused write {refused:?} | df avail {} | redis {} | log:\n{}\n| exporter {}",
        mount.free_bytes(),
        redis.aof_fields(),
        new_log_lines(&redis, offset),
        m.summary("r")
    ));
    f.expect(
        value(&m, "redis_aof_last_write_status", "r") == Some(0.0),
        "full disk: write status 0",
    );
    f.expect(
        m.reason("r", "aof_write").as_deref() == Some("disk_full"),
        format!(
            "full disk: aof_write reason disk_full, got {:?}",
            m.reasons("r")
        ),
    );
    let free = value(&m, "redis_persistence_dir_free_bytes", "r");
    f.expect(
        free.is_some_and(|b| b < 256.0 * 1024.0),
        format!("full disk: free bytes < 256 KiB, got {free:?}"),
    );
    assert_eq!(
        m.card("r").as_deref(),
        Some("err"),
        "the rewrite card stays err"
    );

    // Give the space back: Redis retries the pending write by itself.
    std::fs::remove_file(&filler).expect("remove the filler");
    let offset = redis.log_len();
    let healed = support::poll_until(Duration::from_secs(10), || {
        redis.field("aof_last_write_status") == "ok"
    });
    let prompt = if healed {
        None
    } else {
        // Not retried on its own: a new write makes Redis flush again.
        Some(redis.cmd(&["SET", "prompt", "1"]).text())
    };
    let mut last = String::new();
    let healed = support::poll_until(REDIS_CHANGE, || {
        last = redis.aof_fields();
        redis.field("aof_last_write_status") == "ok"
    });
    assert!(
        healed,
        "writes did not recover after freeing space: {last}\n{}",
        redis.log_tail(10)
    );
    let after = redis.cmd(&["SET", "after", "1"]);
    assert_eq!(
        after,
        Reply::Simple("OK".into()),
        "a write after freeing space"
    );
    let m = wait_caught_up(&exporter, &mut redis, "r", "the write recovery is seen");
    let m = wait_reason(&exporter, "r", "aof_write", None, m);
    f.note(format!(
        "space freed: needed a new write: {prompt:?} | df avail {} | redis {} | log:\n{}\n| exporter {}",
        mount.free_bytes(),
        redis.aof_fields(),
        new_log_lines(&redis, offset),
        m.summary("r")
    ));
    assert_eq!(
        m.card("r").as_deref(),
        Some("err"),
        "writes recovered but the rewrite card stays err"
    );
    f.expect(
        value(&m, "redis_aof_last_write_status", "r") == Some(1.0),
        "space freed: write status 1",
    );
    f.expect(
        m.reason("r", "aof_write").is_none(),
        format!("space freed: no aof_write reason, got {:?}", m.reasons("r")),
    );
    let free = value(&m, "redis_persistence_dir_free_bytes", "r");
    f.expect(
        free.is_some_and(|b| b > 1024.0 * 1024.0),
        format!("space freed: free bytes > 1 MiB, got {free:?}"),
    );

    let offset = redis.log_len();
    let status = redis.clean_rewrite();
    let m = wait_caught_up(&exporter, &mut redis, "r", "the clean rewrite is seen");
    f.note(format!(
        "BGREWRITEAOF with space: status {status} | df avail {} | redis {} | log:\n{}\n| exporter {}",
        mount.free_bytes(),
        redis.aof_fields(),
        new_log_lines(&redis, offset),
        m.summary("r")
    ));
    assert_eq!(status, "ok");
    assert_eq!(m.card("r").as_deref(), Some("ok"));
    f.expect(
        value(&m, "redis_aof_rewrite_stuck", "r") == Some(0.0),
        "recovered: stuck 0",
    );
    f.expect(
        value(&m, "redis_aof_rewrite_transient_recoveries_total", "r") == Some(1.0),
        "one failed rewrite then ok: transient 1",
    );
    drop(exporter);
    drop(redis);
    f.finish();
}

/// The exporter log lines about CONFIG being unavailable.
fn config_unavailable_lines(exporter: &Exporter) -> Vec<String> {
    exporter
        .log()
        .lines()
        .filter(|l| l.contains("CONFIG"))
        .map(str::to_owned)
        .collect()
}

/// Waits for at least `polls` more polls of `target`.
fn wait_polls(exporter: &Exporter, target: &str, polls: f64) -> Metrics {
    let start = exporter
        .metrics()
        .value("redis_persistence_exporter_polls_total", target)
        .unwrap_or(0.0);
    exporter.wait_metrics(SEE, &format!("{polls} more polls of {target}"), |m| {
        m.value("redis_persistence_exporter_polls_total", target)
            .is_some_and(|n| n >= start + polls)
    })
}

/// CONFIG unavailable: the settings series say so once, everything else keeps working,
/// including the card through a real failure and recovery.
fn config_unavailable_scenario(f: &mut Findings, redis: &mut Redis, exporter: &Exporter) {
    wait_caught_up(exporter, redis, "r", "healthy");
    // Ten polls at 500 ms span about five config refreshes (1 s).
    let m = wait_polls(exporter, "r", 10.0);
    f.note(format!(
        "healthy, CONFIG unavailable: redis {} | exporter {}",
        redis.aof_fields(),
        m.summary("r")
    ));
    assert_eq!(m.value("redis_up", "r"), Some(1.0));
    assert_eq!(m.card("r").as_deref(), Some("ok"));
    f.expect(
        m.value("redis_config_available", "r") == Some(0.0),
        format!(
            "redis_config_available 0, got {:?}",
            m.value("redis_config_available", "r")
        ),
    );
    f.expect(
        m.value("redis_config_aof_rewrite_percentage", "r")
            .is_none(),
        "no settings series without CONFIG",
    );

    redis.kill_rewrite_child();
    let m = wait_caught_up(exporter, redis, "r", "the killed rewrite is seen");
    let m = wait_reason(exporter, "r", "aof_rewrite", Some("child_killed"), m);
    f.note(format!(
        "killed rewrite: redis {} | exporter {}",
        redis.aof_fields(),
        m.summary("r")
    ));
    assert_eq!(m.card("r").as_deref(), Some("err"));
    f.expect(
        m.value("redis_aof_rewrite_stuck", "r") == Some(0.0),
        "one failure: stuck 0",
    );
    f.expect(
        m.reason("r", "aof_rewrite").as_deref() == Some("child_killed"),
        format!("reason child_killed, got {:?}", m.reasons("r")),
    );
    f.expect(
        m.value("redis_aof_rewrite_overdue", "r").is_none(),
        "overdue needs CONFIG: absent",
    );

    assert_eq!(redis.clean_rewrite(), "ok");
    wait_caught_up(exporter, redis, "r", "the recovery is seen");
    let m = wait_polls(exporter, "r", 4.0);
    assert_eq!(m.card("r").as_deref(), Some("ok"));
    f.expect(
        m.value("redis_config_available", "r") == Some(0.0),
        "still redis_config_available 0",
    );
    let lines = config_unavailable_lines(exporter);
    f.note(format!(
        "after {} polls, exporter log lines mentioning CONFIG: {lines:#?}",
        m.value("redis_persistence_exporter_polls_total", "r")
            .unwrap_or(0.0)
    ));
    f.expect(
        lines.len() == 1,
        format!("exactly one log line about CONFIG, got {}", lines.len()),
    );
}

#[test]
fn config_denied_by_acl() {
    let mut f = Findings::new("config_acl_denied");
    let mut redis = Redis::start(RedisSpec::aof());
    redis.populate(SLOW_KEYS);
    redis.ok(&[
        "ACL", "SETUSER", "exp", "on", ">pw", "~*", "+info", "+ping", "+client", "-config",
    ]);
    let mut target = Target::host("r", &redis);
    target.username = Some("exp".into());
    target.password = Some("pw".into());
    let exporter = Exporter::start_targets(&[target]);
    config_unavailable_scenario(&mut f, &mut redis, &exporter);
    f.finish();
}

#[test]
fn config_renamed_away() {
    let mut f = Findings::new("config_renamed_empty");
    // rename-command is config-file only. The harness cannot slow rewrites without CONFIG,
    // so redis.conf slows them and the key count keeps them short.
    let mut redis = Redis::start(RedisSpec {
        conf_lines: vec![
            "rename-command CONFIG \"\"".into(),
            "rdb-key-save-delay 100".into(),
        ],
        config_name: Some(String::new()),
        ..RedisSpec::aof()
    });
    assert!(
        redis.cmd(&["CONFIG", "GET", "dir"]).is_error(),
        "CONFIG is gone"
    );
    redis.populate(30_000);
    let exporter = Exporter::start_targets(&[Target::host("r", &redis)]);
    config_unavailable_scenario(&mut f, &mut redis, &exporter);
    f.finish();
}

#[test]
fn config_renamed_and_configured() {
    let mut f = Findings::new("config_renamed_configured");
    let mut redis = Redis::start(RedisSpec {
        conf_lines: vec!["rename-command CONFIG MYCONFIG".into()],
        config_name: Some("MYCONFIG".into()),
        ..RedisSpec::aof()
    });
    let mut renamed = Target::host("renamed", &redis);
    renamed.config_command = Some("MYCONFIG".into());
    let default_name = Target::host("default", &redis);
    let exporter = Exporter::start_targets(&[renamed, default_name]);

    let m = exporter.wait_metrics(SEE, "both targets report whether CONFIG works", |m| {
        m.value("redis_config_available", "renamed").is_some()
            && m.value("redis_config_available", "default").is_some()
    });
    f.note(format!(
        "renamed: {}\ndefault: {}",
        m.summary("renamed"),
        m.summary("default")
    ));
    f.expect(
        m.value("redis_config_available", "renamed") == Some(1.0),
        "config_command = MYCONFIG: available 1",
    );
    f.expect(
        m.value("redis_config_available", "default") == Some(0.0),
        "plain CONFIG on a renamed server: available 0",
    );
    f.expect(
        m.value("redis_config_aof_rewrite_percentage", "renamed") == Some(100.0),
        "percentage 100 read through MYCONFIG",
    );
    f.expect(
        m.value("redis_config_appendonly", "renamed") == Some(1.0),
        "appendonly read through MYCONFIG",
    );
    f.expect(
        m.get(
            "redis_config_appendfsync",
            "renamed",
            &[("policy", "everysec")],
        ) == Some(1.0),
        "appendfsync policy everysec",
    );
    assert_eq!(m.value("redis_up", "default"), Some(1.0));
    assert_eq!(m.card("default").as_deref(), Some("ok"));

    // A change is picked up at the next refresh.
    redis.config_set("auto-aof-rewrite-percentage", "150");
    let m = exporter.wait_metrics(SEE, "the new percentage is read", |m| {
        m.value("redis_config_aof_rewrite_percentage", "renamed") == Some(150.0)
    });
    f.note(format!(
        "after MYCONFIG SET auto-aof-rewrite-percentage 150: {}",
        m.summary("renamed")
    ));
    f.finish();
}

#[test]
fn check_reads_real_targets() {
    let mut f = Findings::new("check");
    let mut healthy = Redis::start(RedisSpec::aof());
    let mut failing = Redis::start(RedisSpec::aof());
    failing.populate(SLOW_KEYS);
    let nobody = format!("redis://127.0.0.1:{}", support::free_port());

    // Healthy first: both ok.
    let both = run_check(&[&healthy.url(), &failing.url()]);
    assert_eq!(both.code, 0, "two healthy targets: {both:?}");
    assert!(both.stdout.contains("= ok"), "{}", both.stdout);

    // The fault.
    failing.kill_rewrite_child();
    let err = run_check(&[&failing.url()]);
    f.note(format!(
        "check on an err target: exit {}\n{}",
        err.code, err.stdout
    ));
    assert_eq!(err.code, 1, "an err target: {err:?}");
    assert!(
        err.stdout.contains("err") && err.stdout.contains("BGREWRITEAOF"),
        "{}",
        err.stdout
    );
    assert_eq!(
        run_check(&[&healthy.url()]).code,
        0,
        "the healthy one alone"
    );

    let unreachable = run_check(&[&nobody]);
    f.note(format!(
        "check on an unreachable target: exit {}\n{}{}",
        unreachable.code, unreachable.stdout, unreachable.stderr
    ));
    assert_eq!(unreachable.code, 3, "{unreachable:?}");
    assert!(
        unreachable.stdout.contains("unknown"),
        "{}",
        unreachable.stdout
    );
    assert_eq!(
        run_check(&[&healthy.url(), &nobody]).code,
        3,
        "ok + unreachable"
    );
    assert_eq!(
        run_check(&[&failing.url(), &nobody]).code,
        1,
        "err takes precedence over unreachable"
    );

    // A config file with host access, as JSON.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("check.toml");
    std::fs::write(
        &config,
        support::fault_config(&[
            Target::host("healthy", &healthy),
            Target::host("failing", &failing),
        ]),
    )
    .unwrap();
    let json = run_check(&["--config", config.to_str().unwrap(), "--json"]);
    assert_eq!(json.code, 1, "{json:?}");
    let parsed: serde_json::Value =
        serde_json::from_str(&json.stdout).expect("check --json is JSON");
    let reports = parsed.as_array().expect("a JSON array of reports");
    assert_eq!(reports.len(), 2);
    let by_name = |name: &str| {
        reports
            .iter()
            .find(|r| r["target"] == name)
            .cloned()
            .expect(name)
    };
    assert_eq!(by_name("healthy")["card"], "ok");
    let failing_report = by_name("failing");
    f.note(format!("check --json, failing target: {failing_report:#}"));
    assert_eq!(failing_report["card"], "err");
    assert_eq!(failing_report["up"], true);
    f.expect(
        failing_report["causes"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["mechanism"] == "aof_rewrite" && c["reason"] == "child_killed")
        }),
        format!(
            "check --json names child_killed: {}",
            failing_report["causes"]
        ),
    );
    f.expect(
        failing_report["next_steps"]
            .to_string()
            .contains("BGREWRITEAOF"),
        "next steps name BGREWRITEAOF",
    );

    // Config errors.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "poll_interval = \"1s\"\npoll_timeout = \"5s\"\n[[targets]]\nurl = \"redis://127.0.0.1:1\"\n").unwrap();
    let bad_run = run_check(&["--config", bad.to_str().unwrap()]);
    f.note(format!(
        "check on a bad config: exit {} stderr {}",
        bad_run.code,
        bad_run.stderr.trim()
    ));
    assert_eq!(bad_run.code, 2, "{bad_run:?}");
    assert!(
        bad_run.stderr.contains("poll_timeout"),
        "the error names the key: {}",
        bad_run.stderr
    );
    let unknown_key = dir.path().join("unknown.toml");
    std::fs::write(&unknown_key, "pol_interval = \"1s\"\n").unwrap();
    assert_eq!(
        run_check(&["--config", unknown_key.to_str().unwrap()]).code,
        2
    );
    assert_eq!(
        run_check(&["not-a-url"]).code,
        2,
        "a bad URL is a config error"
    );

    // Recovery.
    assert_eq!(failing.clean_rewrite(), "ok");
    let recovered = run_check(&[&failing.url()]);
    assert_eq!(recovered.code, 0, "{recovered:?}");
    let _ = &mut healthy;
    f.finish();
}

#[test]
fn growth_is_overdue_while_fork_is_blocked() {
    let mut f = Findings::new("overdue");
    let uid = private_uid();
    let mut redis = Redis::start(RedisSpec {
        run_as: Some(uid),
        ..RedisSpec::aof()
    });
    // 1 MiB of incompressible data, compacted into the base.
    for i in 0..16u64 {
        assert_eq!(
            set_noise(&mut redis, &format!("base{i}"), i + 7),
            Reply::Simple("OK".into())
        );
    }
    assert_eq!(redis.clean_rewrite(), "ok");
    redis.config_set("auto-aof-rewrite-percentage", "100");
    redis.config_set("auto-aof-rewrite-min-size", "1mb");
    let exporter = Exporter::start_targets(&[Target::host("r", &redis)]);
    let m = exporter.wait_metrics(SEE, "settings read and the healthy state seen", |m| {
        m.value("redis_config_aof_rewrite_min_size_bytes", "r") == Some(1024.0 * 1024.0)
            && m.card("r").as_deref() == Some("ok")
    });
    f.note(format!(
        "healthy: redis {} | exporter {}",
        redis.aof_fields(),
        m.summary("r")
    ));
    f.expect(
        m.value("redis_aof_rewrite_overdue", "r") == Some(0.0),
        "healthy: overdue 0",
    );
    f.expect(
        m.value("redis_aof_growth_ratio", "r")
            .is_some_and(|r| r < 1.5),
        "healthy: growth ratio near 1",
    );

    redis.block_fork();
    let offset = redis.log_len();
    // 1.5 MiB more: past 100% growth, so Redis tries (and fails) to rewrite on its own.
    for i in 0..24u64 {
        assert_eq!(
            set_noise(&mut redis, &format!("grow{i}"), 100 + i),
            Reply::Simple("OK".into())
        );
    }
    let m = exporter.wait_metrics(SEE, "overdue and growth past 2x", |m| {
        m.value("redis_aof_rewrite_overdue", "r") == Some(1.0)
            && m.value("redis_aof_growth_ratio", "r")
                .is_some_and(|r| r > 2.0)
    });
    let m = wait_reason(&exporter, "r", "aof_rewrite", Some("fork_failed"), m);
    let log = new_log_lines(&redis, offset);
    let attempts = log.matches("Starting automatic rewriting of AOF").count();
    let incr_files = std::fs::read_dir(redis.data_dir().join("appendonlydir"))
        .map(|d| d.count())
        .unwrap_or(0);
    f.note(format!(
        "growing with fork blocked: redis {} | {attempts} automatic attempts logged so far, {incr_files} files in appendonlydir | last log lines:\n{}\n| exporter {}",
        redis.aof_fields(),
        log.lines().rev().take(4).collect::<Vec<_>>().join("\n"),
        m.summary("r")
    ));
    f.expect(
        m.card("r").as_deref() == Some("err"),
        "automatic rewrites fail: err",
    );
    f.expect(
        m.value("redis_aof_rewrite_stuck", "r") == Some(1.0),
        "repeated automatic failures: stuck 1",
    );
    f.expect(
        m.reason("r", "aof_rewrite").as_deref() == Some("fork_failed"),
        format!("reason fork_failed, got {:?}", m.reasons("r")),
    );

    redis.unblock_fork();
    // Redis's own automatic rewrite now succeeds: the self-healing case.
    let m = exporter.wait_metrics(SEE, "the automatic rewrite succeeds", |m| {
        m.card("r").as_deref() == Some("ok")
            && m.value("redis_aof_rewrite_overdue", "r") == Some(0.0)
    });
    let log = new_log_lines(&redis, offset);
    f.note(format!(
        "fork allowed again: redis {} | {} automatic attempts logged in all | log since the limit (last 12 lines):\n{}\n| exporter {}",
        redis.aof_fields(),
        log.matches("Starting automatic rewriting of AOF").count(),
        log.lines().filter(|l| !l.contains("history file")).rev().take(16).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"),
        m.summary("r")
    ));
    f.expect(
        m.value("redis_aof_growth_ratio", "r")
            .is_some_and(|r| r < 2.0),
        "compacted: growth ratio below 2",
    );
    f.expect(
        m.value("redis_aof_rewrite_stuck", "r") == Some(0.0),
        "recovered: stuck 0",
    );
    f.finish();
}
