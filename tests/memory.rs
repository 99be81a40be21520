//! What the exporter remembers and what it adds to the card, on real servers: derived history
//! across an exporter restart (`state_file`), a Redis restart while the card is err with the
//! load that followed, and replicas in sync as a live copy.

mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use support::*;

/// Keys enough for a rewrite slowed by `rdb-key-save-delay` to be caught running.
const SLOW_KEYS: u64 = 20_000;

/// The fault tests' config with a state file. Every poll reads the sibling sections too:
/// `total_forks` (the only attempt count on 6.2 without the log) and `run_id` (a restart)
/// are in them.
fn config_with_state(state_file: &Path, targets: &[Target]) -> String {
    format!(
        "state_file = {}\nsiblings_refresh_interval = \"500ms\"\n{}",
        toml_string(&state_file.display().to_string()),
        fault_config(targets)
    )
}

fn stopped(mut exporter: Exporter) {
    exporter.signal("-TERM");
    assert!(
        exporter.wait_exit(Duration::from_secs(15)).is_some(),
        "the exporter did not stop on SIGTERM:\n{}",
        exporter.log_tail(20)
    );
}

fn warnings(exporter: &Exporter, about: &str) -> usize {
    exporter
        .log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(about))
        .count()
}

/// Redis 6.2 reports no failures-in-a-row count, so without the state file a restarted
/// exporter would read a stuck err as a first failure (stuck 0) dated at its own start.
#[test]
fn a_stuck_rewrite_is_still_stuck_after_an_exporter_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("state.json");
    let mut redis = RedisSpec::aof().on(Server::Redis62).start();
    redis.populate(SLOW_KEYS);
    let config = config_with_state(&state_file, &[Target::url("r", &redis.url())]);
    let exporter = Exporter::start(&config);

    let m = exporter.wait_metrics(SEE, "healthy", |m| m.card("r").as_deref() == Some("ok"));
    assert_eq!(m.value("redis_aof_rewrite_stuck", "r"), Some(0.0));

    redis.kill_rewrite_child();
    exporter.wait_metrics(SEE, "the first failure is seen", |m| {
        m.card("r").as_deref() == Some("err")
    });
    redis.kill_rewrite_child();
    let m = exporter.wait_metrics(SEE, "the second failure makes it stuck", |m| {
        m.value("redis_aof_rewrite_stuck", "r") == Some(1.0)
    });
    let err_since = m
        .value("redis_aof_rewrite_err_since_timestamp_seconds", "r")
        .expect("err since");
    let failed = m.value("redis_aof_rewrite_failed_attempts_total", "r");
    stopped(exporter);
    let saved = fs::read_to_string(&state_file).expect("the state file was written");
    assert!(saved.starts_with("{\"version\":1,"), "{saved}");

    let exporter = Exporter::start(&config);
    let first = exporter.wait_metrics(SEE, "the target is up again", |m| {
        m.up("r") == Some(1.0) && m.card("r").is_some()
    });
    assert_eq!(
        first.value("redis_aof_rewrite_stuck", "r"),
        Some(1.0),
        "stuck from the first scrape that shows the target:\n{}",
        first.summary("r")
    );
    assert_eq!(
        first.value("redis_aof_rewrite_err_since_timestamp_seconds", "r"),
        Some(err_since),
        "err-since keeps its time"
    );
    assert_eq!(
        first.value("redis_aof_rewrite_failed_attempts_total", "r"),
        failed
    );
    assert_eq!(warnings(&exporter, "state file"), 0);

    // A clean rewrite (clean_rewrite() waits on aof_rewrites, which 6.2 lacks).
    redis.config_set("rdb-key-save-delay", "0");
    redis.ok(&["BGREWRITEAOF"]);
    let m = exporter.wait_metrics(SEE, "the recovery", |m| {
        m.card("r").as_deref() == Some("ok")
    });
    assert_eq!(m.value("redis_aof_rewrite_stuck", "r"), Some(0.0));
    assert_eq!(
        m.value("redis_aof_rewrite_transient_recoveries_total", "r"),
        Some(0.0),
        "a stuck err that ends is not a transient one"
    );
}

/// Garbage, another version and a folder in its place: each starts empty with one warning,
/// the exporter serves, and a bad file is replaced by a good one.
#[test]
fn a_corrupt_or_foreign_state_file_starts_empty_with_one_warning() {
    let redis = RedisSpec::aof().start();
    for case in ["garbage", "version", "folder"] {
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("state.json");
        match case {
            "garbage" => fs::write(&state_file, b"{\"version\":1,\"targ\xff").unwrap(),
            "version" => fs::write(
                &state_file,
                br#"{"version":99,"written_at_unix":0,"targets":{}}"#,
            )
            .unwrap(),
            _ => fs::create_dir(&state_file).unwrap(),
        }
        let config = config_with_state(&state_file, &[Target::url("r", &redis.url())]);
        let mut exporter = Exporter::start(&config);
        let m = exporter.wait_metrics(SEE, "the target is up", |m| {
            m.card("r").as_deref() == Some("ok")
        });
        assert_eq!(
            m.value("redis_aof_rewrite_failed_attempts_total", "r"),
            Some(0.0)
        );
        // A few keeper intervals (500 ms) pass: still one warning each.
        std::thread::sleep(Duration::from_secs(2));
        assert!(exporter.is_running(), "{case}: {}", exporter.log_tail(20));
        assert_eq!(
            warnings(&exporter, "ignoring the state file"),
            1,
            "{case}: {}",
            exporter.log_tail(20)
        );
        if case == "folder" {
            assert_eq!(
                warnings(&exporter, "cannot write the state file"),
                1,
                "once per streak of failed writes: {}",
                exporter.log_tail(20)
            );
            stopped(exporter);
            continue;
        }
        stopped(exporter);
        let replaced: serde_json::Value =
            serde_json::from_slice(&fs::read(&state_file).unwrap()).expect("valid JSON now");
        assert_eq!(replaced["version"], 1, "{case}");
        assert!(replaced["targets"]["r"].is_object(), "{case}: {replaced}");
    }
}

/// "Recent restart plus prior err equals investigate the AOF-load time."
#[test]
fn a_redis_restart_while_err_is_recorded_with_its_load_time() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("state.json");
    let mut redis = RedisSpec::aof().start();
    redis.populate(SLOW_KEYS);
    let config = config_with_state(&state_file, &[Target::host("r", &redis)]);
    let exporter = Exporter::start(&config);

    let m = exporter.wait_metrics(SEE, "healthy", |m| m.card("r").as_deref() == Some("ok"));
    assert_eq!(
        m.value("redis_restart_while_err_timestamp_seconds", "r"),
        None
    );

    redis.kill_rewrite_child();
    exporter.wait_metrics(SEE, "the err", |m| m.card("r").as_deref() == Some("err"));
    redis.kill();
    redis.restart();
    let m = exporter.wait_metrics(SEE, "the restart while err and its load", |m| {
        m.value("redis_restart_while_err_timestamp_seconds", "r")
            .is_some()
            && m.value("redis_last_load_duration_seconds", "r").is_some()
    });
    let loaded = m.value("redis_last_load_duration_seconds", "r").unwrap();
    let logged = redis
        .log()
        .lines()
        .rev()
        .filter_map(|l| l.split_once("DB loaded from append only file: "))
        .filter_map(|(_, rest)| rest.trim().strip_suffix(" seconds")?.parse::<f64>().ok())
        .next()
        .expect("the restarted server logged its load time");
    assert_eq!(loaded, logged, "the exported load time is the log's");

    let page = exporter.get("/");
    assert!(
        page.contains("Restarted while the AOF rewrite was failing; loading took"),
        "status page:\n{page}"
    );
    // `check` goes on from the state file the running exporter keeps.
    std::thread::sleep(Duration::from_secs(1));
    let check = run_check(&["--config", &exporter.config_path().display().to_string()]);
    assert!(
        check
            .stdout
            .contains("Restarted while the AOF rewrite was failing; loading took"),
        "check:\n{}\n{}",
        check.stdout,
        check.stderr
    );

    // A restart while ok clears it.
    exporter.wait_metrics(SEE, "the card is ok again", |m| {
        m.card("r").as_deref() == Some("ok")
    });
    redis.kill();
    redis.restart();
    exporter.wait_metrics(SEE, "a restart while ok is not recorded", |m| {
        m.up("r") == Some(1.0)
            && m.value("redis_restart_while_err_timestamp_seconds", "r")
                .is_none()
    });
}

/// A restarted server is only reached on a new connection, so the first poll of every
/// connection reads the server section (`run_id`), whatever `siblings_refresh_interval` says:
/// a restart is seen on the first poll that reaches the new server, never a poll later. With
/// a connection per poll, every poll is a first poll.
#[test]
fn every_new_connection_reads_the_server_section_first() {
    let fake = FakeRedis::start(Behavior::Healthy);
    let config = format!(
        "keep_connections = false\nsiblings_refresh_interval = \"1h\"\n{}",
        config_toml("500ms", "400ms", &[Target::new(fake.url(), "f")])
    );
    let exporter = Exporter::start(&config);
    exporter.wait_metrics(SEE, "three polls", |m| {
        m.value("redis_persistence_exporter_polls_total", "f")
            .is_some_and(|n| n >= 3.0)
    });
    let sections = fake.stats().info_sections.lock().unwrap().clone();
    assert!(sections.len() >= 3, "{sections:?}");
    assert!(
        sections.iter().all(|s| s.split(' ').any(|w| w == "server")),
        "an INFO on a new connection skipped the server section: {sections:?}"
    );
}

/// "AOF err on primary but a healthy in-sync replica equals data still has a live copy."
#[test]
fn a_replica_in_sync_is_counted_and_its_loss_seen() {
    let primary = RedisSpec::aof().start();
    let replica = RedisSpec {
        args: vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port().to_string(),
        ],
        ..RedisSpec::aof()
    }
    .start();
    let config = format!(
        "siblings_refresh_interval = \"500ms\"\n{}",
        fault_config(&[Target::url("p", &primary.url())])
    );
    let exporter = Exporter::start(&config);
    exporter.wait_metrics(SEE, "the replica is in sync", |m| {
        m.value("redis_replicas_in_sync", "p") == Some(1.0)
    });
    replica.kill();
    exporter.wait_metrics(SEE, "the stopped replica is no live copy", |m| {
        m.value("redis_replicas_in_sync", "p") == Some(0.0)
    });
    replica.restart();
    exporter.wait_metrics(SEE, "the restarted replica is in sync again", |m| {
        m.value("redis_replicas_in_sync", "p") == Some(1.0)
    });
}
