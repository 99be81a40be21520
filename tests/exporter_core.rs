//! Black-box tests of the core exporter: a real `redis-server` (7.0.15), the real binary, real
//! faults (a `kill -9` of the rewrite child, `SIGSTOP`, a dead server), scraped over HTTP.
//!
//! Every fault test shows the healthy state, then the fault, then the recovery. Tests wait for
//! conditions with deadlines, never for fixed times, and never assert on speed. Each test owns
//! its servers, ports and temp dirs, so they run in parallel.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{
    config_toml, failures, free_port, parse_samples, poll_until, polls, run_exporter, sample,
    samples, sigkill, try_scrape, up, value, wait_until, Exporter, Redis, RedisSpec, Target,
};

/// Upper bound for a state change to show up in a scrape: several poll intervals, plus room
/// for a loaded machine. Never a speed assertion; a correct exporter meets it by far.
const STATE_TIMEOUT: Duration = Duration::from_secs(20);
/// Keys loaded before a rewrite or save that a test wants to catch (and kill) while it runs.
const SLOW_JOB_KEYS: &str = "200000";
/// `rdb-key-save-delay` in microseconds per key: 200k keys take about 20 s to write, ample
/// time to find and kill the child.
const SLOW_KEY_DELAY_US: &str = "100";

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

// ---------------------------------------------------------------------------------------------
// Reading a scrape.

/// The `reason` labels `target` has failed with so far, sorted.
fn failure_reasons(body: &str, target: &str) -> Vec<String> {
    let mut reasons: Vec<String> = samples(
        body,
        "redis_persistence_exporter_poll_failures_total",
        &[("target", target)],
    )
    .iter()
    .filter_map(|s| s.label("reason").map(str::to_owned))
    .collect();
    reasons.sort_unstable();
    reasons
}

/// The card of `target`: `None` when its series are absent. Panics unless the card is
/// exactly one-hot over ok, err and not_applicable, at every scrape it is read from.
fn card(body: &str, target: &str) -> Option<String> {
    let series = samples(body, "redis_aof_rewrite_state", &[("target", target)]);
    if series.is_empty() {
        return None;
    }
    let mut states: Vec<&str> = series.iter().filter_map(|s| s.label("state")).collect();
    states.sort_unstable();
    assert_eq!(
        states,
        ["err", "not_applicable", "ok"],
        "card of {target} must have one series per state: {series:?}"
    );
    let hot: Vec<&str> = series
        .iter()
        .filter(|s| s.value == 1.0)
        .filter_map(|s| s.label("state"))
        .collect();
    assert!(
        hot.len() == 1 && series.iter().all(|s| s.value == 0.0 || s.value == 1.0),
        "card of {target} must be one-hot: {series:?}"
    );
    Some(hot[0].to_owned())
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// The healthy AOF card: up, AOF on, last rewrite ok.
fn aof_healthy(body: &str, target: &str) -> bool {
    up(body, target) == Some(1.0)
        && card(body, target).as_deref() == Some("ok")
        && value(body, "redis_aof_last_bgrewrite_status", target) == Some(1.0)
}

// ---------------------------------------------------------------------------------------------
// Driving Redis into faults.

/// Loads keys and slows every key written by a fork child, so the next rewrite or save runs
/// long enough to be caught.
fn load_and_slow_down(redis: &Redis) {
    assert_eq!(redis.cli(&["DEBUG", "POPULATE", SLOW_JOB_KEYS]), "OK");
    assert_eq!(
        redis.cli(&["CONFIG", "SET", "rdb-key-save-delay", SLOW_KEY_DELAY_US]),
        "OK"
    );
}

/// An AOF Redis loaded and slowed down by [`load_and_slow_down`], polled every 500 ms as
/// target `aof` (shaped by `target`, e.g. labels added) by a new exporter.
fn slow_aof_target(target: impl FnOnce(Target) -> Target) -> (Redis, Exporter) {
    let redis = Redis::start(RedisSpec::aof());
    load_and_slow_down(&redis);
    let exporter = Exporter::start(&config_toml(
        "500ms",
        "400ms",
        &[target(Target::new(redis.url(), "aof"))],
    ));
    (redis, exporter)
}

/// Waits for the fork child of a background job `command` just issued and returns its pid.
fn wait_for_fork_child(redis: &Redis, what: &str) -> u32 {
    let mut child = None;
    let found = poll_until(STATE_TIMEOUT, || {
        child = redis.child_pids().first().copied();
        child.is_some()
    });
    assert!(
        found,
        "no {what} child process appeared\nredis log:\n{}",
        redis.log()
    );
    child.expect("found above")
}

/// Starts a slow `BGREWRITEAOF`, shows that the card stays ok while it runs, and kills the
/// rewrite child with `SIGKILL`, then waits for the exporter to show the failed rewrite.
/// Needs [`load_and_slow_down`] first.
fn fail_a_rewrite(redis: &Redis, exporter: &Exporter, target: &str) {
    let reply = redis.cli(&["BGREWRITEAOF"]);
    assert!(reply.contains("rewriting started"), "BGREWRITEAOF: {reply}");
    let child = wait_for_fork_child(redis, "AOF rewrite");
    exporter.wait_for(
        STATE_TIMEOUT,
        "the running rewrite shows, and the card still reads ok",
        |body| {
            value(body, "redis_aof_rewrite_in_progress", target) == Some(1.0)
                && card(body, target).as_deref() == Some("ok")
        },
    );
    assert!(sigkill(child), "kill -9 {child}");
    // Redis may start another rewrite on its own after the failure; the status stays err
    // until one completes, and with the delay still set none completes within the deadline.
    exporter.wait_for(STATE_TIMEOUT, "the killed rewrite reads as err", |body| {
        value(body, "redis_aof_last_bgrewrite_status", target) == Some(0.0)
            && card(body, target).as_deref() == Some("err")
            && value(body, "redis_aof_rewrites_consecutive_failures", target)
                .is_some_and(|n| n >= 1.0)
            && up(body, target) == Some(1.0)
    });
}

/// Removes the slowdown and runs a rewrite that completes. Any rewrite still running (one
/// Redis retried on its own with the old delay) is killed first, since it would take long.
fn run_a_clean_rewrite(redis: &Redis) {
    assert_eq!(
        redis.cli(&["CONFIG", "SET", "rdb-key-save-delay", "0"]),
        "OK"
    );
    let mut last_reply = String::new();
    let started = poll_until(STATE_TIMEOUT, || {
        for pid in redis.child_pids() {
            sigkill(pid);
        }
        last_reply = redis.cli(&["BGREWRITEAOF"]);
        last_reply.contains("rewriting started") || last_reply.contains("rewriting scheduled")
    });
    assert!(
        started,
        "no clean BGREWRITEAOF started; last reply: {last_reply}\nredis log:\n{}",
        redis.log()
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Every core series, on an AOF and an RDB-only target.

#[test]
fn aof_and_rdb_targets_expose_every_core_series() {
    let aof = Redis::start(RedisSpec::aof());
    let rdb = Redis::start(RedisSpec::rdb());
    let exporter = Exporter::start(&config_toml(
        "500ms",
        "400ms",
        &[
            Target::new(aof.url(), "aof")
                .label("env", "test")
                .label("team", "payments"),
            Target::new(rdb.url(), "rdb").label("env", "staging"),
        ],
    ));
    let body = exporter.wait_for(STATE_TIMEOUT, "both targets are up", |body| {
        up(body, "aof") == Some(1.0) && up(body, "rdb") == Some(1.0)
    });

    // The AOF target.
    for (name, expected) in [
        ("redis_aof_enabled", 1.0),
        ("redis_aof_rewrite_in_progress", 0.0),
        ("redis_aof_rewrite_scheduled", 0.0),
        ("redis_aof_last_bgrewrite_status", 1.0),
        ("redis_aof_last_write_status", 1.0),
        ("redis_aof_rewrites_total", 0.0),
        ("redis_aof_rewrites_consecutive_failures", 0.0),
        ("redis_rdb_last_bgsave_status", 1.0),
        ("redis_rdb_bgsave_in_progress", 0.0),
        ("redis_rdb_changes_since_last_save", 0.0),
    ] {
        assert_eq!(
            value(&body, name, "aof"),
            Some(expected),
            "{name} of aof\n{body}"
        );
    }
    for name in [
        "redis_aof_current_size_bytes",
        "redis_aof_base_size_bytes",
        "redis_aof_last_cow_size_bytes",
    ] {
        let bytes = value(&body, name, "aof").unwrap_or_else(|| panic!("{name} of aof\n{body}"));
        assert!(bytes >= 0.0, "{name} of aof is {bytes}");
    }
    assert_eq!(card(&body, "aof").as_deref(), Some("ok"), "{body}");
    assert_eq!(
        value(&body, "redis_aof_last_rewrite_duration_seconds", "aof"),
        None,
        "no rewrite ran yet, so no duration\n{body}"
    );

    // The RDB-only target: AOF off, so the card is not applicable and the size series absent.
    for (name, expected) in [
        ("redis_aof_enabled", 0.0),
        ("redis_aof_rewrite_in_progress", 0.0),
        ("redis_rdb_last_bgsave_status", 1.0),
        ("redis_rdb_bgsave_in_progress", 0.0),
        ("redis_rdb_changes_since_last_save", 0.0),
    ] {
        assert_eq!(
            value(&body, name, "rdb"),
            Some(expected),
            "{name} of rdb\n{body}"
        );
    }
    assert_eq!(
        card(&body, "rdb").as_deref(),
        Some("not_applicable"),
        "{body}"
    );
    for name in ["redis_aof_current_size_bytes", "redis_aof_base_size_bytes"] {
        assert_eq!(
            value(&body, name, "rdb"),
            None,
            "{name} must be absent while AOF is off"
        );
    }

    // Both: RDB save time and the exporter's own series.
    for target in ["aof", "rdb"] {
        let saved = value(&body, "redis_rdb_last_save_timestamp_seconds", target)
            .unwrap_or_else(|| panic!("last save time of {target}\n{body}"));
        // Redis sets it to its start time when no save ran: within the last hour, not future.
        assert!(
            saved > now_unix() - 3600.0 && saved <= now_unix() + 60.0,
            "last save time of {target}: {saved}"
        );
        assert!(polls(&body, target) >= 1.0, "polls of {target}\n{body}");
        let polled = value(
            &body,
            "redis_persistence_exporter_last_successful_poll_timestamp_seconds",
            target,
        )
        .unwrap_or_else(|| panic!("last successful poll of {target}\n{body}"));
        assert!(
            (polled - now_unix()).abs() < 3600.0,
            "last poll of {target}: {polled}"
        );
        assert!(
            samples(
                &body,
                "redis_persistence_exporter_poll_failures_total",
                &[("target", target)]
            )
            .is_empty(),
            "a healthy target has no failures\n{body}"
        );
    }
    assert_eq!(
        sample(&body, "redis_persistence_exporter_targets", &[]),
        Some(2.0)
    );
    // One poll-duration histogram for the fleet (tests/scrape_cost.rs has the per-target one).
    assert!(
        sample(
            &body,
            "redis_persistence_exporter_poll_duration_seconds_count",
            &[]
        )
        .is_some_and(|n| n >= 2.0),
        "the fleet's poll duration histogram\n{body}"
    );
    assert!(
        sample(
            &body,
            "redis_persistence_exporter_poll_duration_seconds_bucket",
            &[("le", "+Inf")]
        )
        .is_some(),
        "+Inf bucket of the fleet's histogram"
    );
    assert_eq!(
        sample(
            &body,
            "redis_persistence_exporter_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0),
        "{body}"
    );

    // Extra labels ride on every series of their target, and only on it.
    let all = parse_samples(&body);
    let of = |target| {
        all.iter()
            .filter(|s| s.label("target") == Some(target))
            .collect::<Vec<_>>()
    };
    assert!(of("aof").len() >= 20, "few series for aof\n{body}");
    for s in of("aof") {
        assert_eq!(s.label("env"), Some("test"), "{s:?}");
        assert_eq!(s.label("team"), Some("payments"), "{s:?}");
    }
    for s in of("rdb") {
        assert_eq!(s.label("env"), Some("staging"), "{s:?}");
        assert_eq!(s.label("team"), None, "{s:?}");
    }

    // Values follow the server: writes count as unsaved changes until a save, and a rewrite
    // brings its duration and counter.
    for key in ["a", "b", "c"] {
        assert_eq!(rdb.cli(&["SET", key, "1"]), "OK");
    }
    exporter.wait_for(STATE_TIMEOUT, "three unsaved changes on rdb", |body| {
        value(body, "redis_rdb_changes_since_last_save", "rdb") == Some(3.0)
    });
    let before = value(&body, "redis_rdb_last_save_timestamp_seconds", "rdb").expect("read above");
    assert!(rdb.cli(&["BGSAVE"]).contains("started"));
    exporter.wait_for(STATE_TIMEOUT, "the save on rdb is seen", |body| {
        value(body, "redis_rdb_changes_since_last_save", "rdb") == Some(0.0)
            && value(body, "redis_rdb_last_save_timestamp_seconds", "rdb")
                .is_some_and(|t| t >= before)
            && value(body, "redis_rdb_last_bgsave_status", "rdb") == Some(1.0)
    });

    assert_eq!(aof.cli(&["SET", "k", "v"]), "OK");
    assert!(aof.cli(&["BGREWRITEAOF"]).contains("started"));
    exporter.wait_for(STATE_TIMEOUT, "the rewrite on aof is counted", |body| {
        value(body, "redis_aof_rewrites_total", "aof") == Some(1.0)
            && value(body, "redis_aof_rewrite_in_progress", "aof") == Some(0.0)
            && value(body, "redis_aof_last_rewrite_duration_seconds", "aof").is_some()
            && value(body, "redis_aof_base_size_bytes", "aof").is_some_and(|b| b > 0.0)
            && aof_healthy(body, "aof")
    });
}

// ---------------------------------------------------------------------------------------------
// 2. A real rewrite failure and its recovery.

#[test]
fn killed_rewrite_turns_the_card_err_until_a_clean_rewrite() {
    let (redis, exporter) = slow_aof_target(|t| t);
    exporter.wait_for(STATE_TIMEOUT, "the target is healthy", |body| {
        aof_healthy(body, "aof")
            && value(body, "redis_aof_rewrites_consecutive_failures", "aof") == Some(0.0)
    });

    fail_a_rewrite(&redis, &exporter, "aof");
    let failed = exporter.scrape();
    assert_eq!(
        value(&failed, "redis_aof_enabled", "aof"),
        Some(1.0),
        "a failed rewrite leaves AOF on"
    );
    assert_eq!(card(&failed, "aof").as_deref(), Some("err"));

    run_a_clean_rewrite(&redis);
    let recovered = exporter.wait_for(STATE_TIMEOUT, "a clean rewrite turns the card ok", |body| {
        aof_healthy(body, "aof")
            && value(body, "redis_aof_rewrites_consecutive_failures", "aof") == Some(0.0)
            && value(body, "redis_aof_rewrite_in_progress", "aof") == Some(0.0)
    });
    assert!(
        value(&recovered, "redis_aof_rewrites_total", "aof").is_some_and(|n| n >= 2.0),
        "both rewrites are counted\n{recovered}"
    );
    assert!(value(&recovered, "redis_aof_last_rewrite_duration_seconds", "aof").is_some());
}

// ---------------------------------------------------------------------------------------------
// 3. AOF turned off after a failure: the stale err must not show.

#[test]
fn aof_turned_off_after_a_failure_reads_not_applicable() {
    let (redis, exporter) = slow_aof_target(|t| t.label("env", "test"));
    exporter.wait_for(STATE_TIMEOUT, "the target is healthy", |body| {
        aof_healthy(body, "aof")
    });
    fail_a_rewrite(&redis, &exporter, "aof");

    assert_eq!(redis.cli(&["CONFIG", "SET", "appendonly", "no"]), "OK");
    let off = exporter.wait_for(STATE_TIMEOUT, "AOF off reads not_applicable", |body| {
        value(body, "redis_aof_enabled", "aof") == Some(0.0)
            && card(body, "aof").as_deref() == Some("not_applicable")
    });
    assert_eq!(
        value(&off, "redis_aof_last_bgrewrite_status", "aof"),
        Some(0.0),
        "Redis keeps the stale err, and the raw series shows it\n{off}"
    );
    assert_eq!(
        value(&off, "redis_aof_current_size_bytes", "aof"),
        None,
        "{off}"
    );
    // It stays so: later polls do not bring the err back.
    let polled = polls(&off, "aof");
    let later = exporter.wait_for(STATE_TIMEOUT, "two more polls", |body| {
        polls(body, "aof") >= polled + 2.0
    });
    assert_eq!(
        card(&later, "aof").as_deref(),
        Some("not_applicable"),
        "{later}"
    );

    // Turning AOF back on starts a rewrite; without the slowdown it completes.
    assert_eq!(
        redis.cli(&["CONFIG", "SET", "rdb-key-save-delay", "0"]),
        "OK"
    );
    assert_eq!(redis.cli(&["CONFIG", "SET", "appendonly", "yes"]), "OK");
    exporter.wait_for(STATE_TIMEOUT, "AOF back on and ok", |body| {
        aof_healthy(body, "aof") && value(body, "redis_aof_enabled", "aof") == Some(1.0)
    });
}

// ---------------------------------------------------------------------------------------------
// A failed RDB save is not an AOF rewrite failure.

#[test]
fn killed_bgsave_shows_in_rdb_status_but_not_in_the_card() {
    let (redis, exporter) = slow_aof_target(|t| t);
    exporter.wait_for(STATE_TIMEOUT, "the target is healthy", |body| {
        aof_healthy(body, "aof") && value(body, "redis_rdb_last_bgsave_status", "aof") == Some(1.0)
    });

    assert!(redis.cli(&["BGSAVE"]).contains("started"));
    let child = wait_for_fork_child(&redis, "BGSAVE");
    exporter.wait_for(STATE_TIMEOUT, "the running save shows", |body| {
        value(body, "redis_rdb_bgsave_in_progress", "aof") == Some(1.0)
    });
    assert!(sigkill(child), "kill -9 {child}");
    let failed = exporter.wait_for(STATE_TIMEOUT, "the killed save reads as err", |body| {
        value(body, "redis_rdb_last_bgsave_status", "aof") == Some(0.0)
            && value(body, "redis_rdb_bgsave_in_progress", "aof") == Some(0.0)
    });
    assert_eq!(card(&failed, "aof").as_deref(), Some("ok"), "{failed}");
    assert_eq!(
        value(&failed, "redis_aof_last_bgrewrite_status", "aof"),
        Some(1.0)
    );

    assert_eq!(
        redis.cli(&["CONFIG", "SET", "rdb-key-save-delay", "0"]),
        "OK"
    );
    assert!(redis.cli(&["BGSAVE"]).contains("started"));
    exporter.wait_for(STATE_TIMEOUT, "a clean save reads ok", |body| {
        value(body, "redis_rdb_last_bgsave_status", "aof") == Some(1.0) && aof_healthy(body, "aof")
    });
}

// ---------------------------------------------------------------------------------------------
// 4. A frozen and a dead target cost only their own pollers.

#[test]
fn frozen_and_dead_targets_go_down_without_delaying_the_healthy_one() {
    let healthy = Redis::start(RedisSpec::aof());
    let frozen = Redis::start(RedisSpec::aof());
    let dead = Redis::start(RedisSpec::aof());
    const INTERVAL: Duration = Duration::from_secs(1);
    let exporter = Exporter::start(&config_toml(
        "1s",
        "500ms",
        &[
            Target::new(healthy.url(), "healthy"),
            Target::new(frozen.url(), "frozen"),
            Target::new(dead.url(), "dead"),
        ],
    ));
    exporter.wait_for(STATE_TIMEOUT, "all three are up", |body| {
        ["healthy", "frozen", "dead"]
            .iter()
            .all(|t| up(body, t) == Some(1.0) && card(body, t).is_some())
    });

    frozen.sigstop();
    dead.kill();
    let down = exporter.wait_for(STATE_TIMEOUT, "frozen and dead are down", |body| {
        up(body, "frozen") == Some(0.0)
            && up(body, "dead") == Some(0.0)
            && failures(body, "frozen", "timeout") >= 1.0
            && failures(body, "dead", "refused") >= 1.0
    });
    assert_eq!(up(&down, "healthy"), Some(1.0), "{down}");
    // A frozen server accepts connections (the kernel does) but never answers: every failure
    // is a timeout, whether it hit an open connection or a new one.
    assert_eq!(
        failure_reasons(&down, "frozen"),
        ["timeout"],
        "frozen target\n{down}\n--- exporter log ---\n{}",
        exporter.log_tail(30)
    );
    // The poll that still used the connection to the killed server may end as a timeout (it
    // waits on the dead socket); every later one opens a new connection and is refused.
    assert!(
        failures(&down, "dead", "timeout") <= 1.0,
        "dead keeps timing out\n{down}"
    );
    assert!(
        failure_reasons(&down, "dead")
            .iter()
            .all(|r| r == "refused" || r == "timeout"),
        "dead target\n{down}"
    );
    for (target, reason) in [("frozen", "timeout"), ("dead", "refused")] {
        assert_eq!(
            sample(
                &down,
                "redis_persistence_exporter_last_poll_failed",
                &[("target", target), ("reason", reason)]
            ),
            Some(1.0),
            "{down}"
        );
        // A down target shows no stale persistence state.
        for name in [
            "redis_aof_enabled",
            "redis_aof_last_bgrewrite_status",
            "redis_rdb_last_bgsave_status",
        ] {
            assert_eq!(
                value(&down, name, target),
                None,
                "{name} of down {target}\n{down}"
            );
        }
        assert_eq!(card(&down, target), None, "card of down {target}\n{down}");
        assert!(
            value(
                &down,
                "redis_persistence_exporter_last_successful_poll_timestamp_seconds",
                target
            )
            .is_some(),
            "the last success before the fault is kept\n{down}"
        );
    }

    // Observe a window of several intervals: the healthy target is polled once per interval
    // throughout, and so is the frozen one (each of its polls ends at the timeout).
    let start = exporter.scrape();
    let opened = Instant::now();
    let (healthy_before, frozen_before) = (polls(&start, "healthy"), polls(&start, "frozen"));
    let mut end = start;
    wait_until(
        Duration::from_secs(30),
        "a 6-interval window has passed",
        || {
            end = exporter.scrape();
            assert_eq!(up(&end, "healthy"), Some(1.0), "healthy went down\n{end}");
            assert_eq!(up(&end, "frozen"), Some(0.0), "{end}");
            assert_eq!(
                failure_reasons(&end, "frozen"),
                ["timeout"],
                "frozen target\n{end}\n--- exporter log ---\n{}",
                exporter.log_tail(30)
            );
            assert_eq!(up(&end, "dead"), Some(0.0), "{end}");
            opened.elapsed() >= INTERVAL * 6
        },
    );
    let window = opened.elapsed();
    let expected = (window.as_secs_f64() / INTERVAL.as_secs_f64()).floor();
    for (target, before) in [("healthy", healthy_before), ("frozen", frozen_before)] {
        let done = polls(&end, target) - before;
        assert!(
            done >= expected - 1.0 && done <= expected + 1.0,
            "{target}: {done} polls in a window of {window:?} that holds {expected}\n{}",
            exporter.log()
        );
    }

    // Recovery without restarting the exporter.
    frozen.sigcont();
    dead.restart();
    let recovered = exporter.wait_for(STATE_TIMEOUT, "frozen and dead recover", |body| {
        ["healthy", "frozen", "dead"]
            .iter()
            .all(|t| up(body, t) == Some(1.0) && card(body, t).as_deref() == Some("ok"))
    });
    for target in ["frozen", "dead"] {
        assert_eq!(
            samples(
                &recovered,
                "redis_persistence_exporter_last_poll_failed",
                &[("target", target)]
            ),
            [],
            "{recovered}"
        );
        // Failure counters are counters: they keep their totals across the recovery.
        assert!(
            failures(&recovered, target, "timeout") + failures(&recovered, target, "refused")
                >= 1.0
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Config errors, --check-config and --version.

#[test]
fn config_errors_exit_2_and_name_the_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing_secret = dir.path().join("missing-secret");
    let cases: [(&str, String, &[&str]); 4] = [
        (
            "unknown key",
            "pol_interval = \"5s\"\n[[targets]]\nurl = \"redis://127.0.0.1:6379\"\n".into(),
            &["pol_interval", "poll_interval"],
        ),
        (
            "bad URL",
            "[[targets]]\nurl = \"http://127.0.0.1:6379\"\n".into(),
            &["targets[0].url", "redis://"],
        ),
        (
            "bad duration",
            "poll_interval = \"often\"\n[[targets]]\nurl = \"redis://127.0.0.1:6379\"\n".into(),
            &["poll_interval", "duration"],
        ),
        (
            "missing password file",
            format!(
                "[[targets]]\nurl = \"redis://127.0.0.1:6379\"\npassword_file = \"{}\"\n",
                missing_secret.display()
            ),
            // The key, never the value: a password pasted into password_file by mistake
            // would otherwise be printed (issue 10's secret-echo fix).
            &["targets[0].password_file", "regular file"],
        ),
    ];
    for (index, (case, text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case-{index}.toml"));
        std::fs::write(&path, text).expect("write config");
        for check_only in [false, true] {
            let mut args = vec!["--config".to_owned(), path.display().to_string()];
            if check_only {
                args.push("--check-config".into());
            }
            let output = run_exporter(&args);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{case} (check-config: {check_only}): exit status\nstderr: {stderr}"
            );
            assert!(
                stderr.contains(&path.display().to_string()),
                "{case}: the message names the file\nstderr: {stderr}"
            );
            for needle in *expected {
                assert!(
                    stderr.contains(needle),
                    "{case}: message lacks {needle:?}\nstderr: {stderr}"
                );
            }
            assert!(
                !stderr.contains("panicked"),
                "{case}: a panic\nstderr: {stderr}"
            );
            assert!(
                !stderr.contains("missing-secret"),
                "{case}: the password file's path is echoed\nstderr: {stderr}"
            );
        }
    }

    // The shipped example validates; --check-config never connects to its targets.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
    let output = run_exporter(["--check-config", "--config", example]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "--check-config example.toml: {:?}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("config OK"), "{stdout}");
    assert!(stdout.contains("3 target(s)"), "{stdout}");
    for name in ["cache-1", "queue-1", "local-socket"] {
        assert!(stdout.contains(name), "summary lacks {name}: {stdout}");
    }
    let secret = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/example-password.txt"
    ))
    .expect("example password file");
    assert!(
        secret.trim().is_empty() || !stdout.contains(secret.trim()),
        "the summary prints the password: {stdout}"
    );

    let output = run_exporter(["--version"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "--version: {:?}", output.status);
    assert!(
        stdout.contains("redis-persistence-exporter") && stdout.contains(env!("CARGO_PKG_VERSION")),
        "--version: {stdout}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. The exposition is valid OpenMetrics by an independent, strict parser.

const OPENMETRICS_CHECKER: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openmetrics_strict.py");

/// Runs the Python checker on `body`; `Err` carries its message.
fn check_openmetrics(body: &str) -> Result<String, String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = support::run_with_input(&python, &[OPENMETRICS_CHECKER], body.as_bytes());
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    match output.status.code() {
        Some(0) => Ok(stdout),
        Some(3) => panic!(
            "the OpenMetrics check needs the Python package prometheus_client: \
             pip install prometheus-client\n{stderr}"
        ),
        _ => Err(format!("{stderr}{stdout}")),
    }
}

#[test]
fn openmetrics_exposition_is_strictly_valid() {
    let redis = Redis::start(RedisSpec::aof());
    let exporter = Exporter::start(&config_toml(
        "500ms",
        "400ms",
        &[
            Target::new(redis.url(), "healthy").label("env", "test"),
            // Nothing listens there: a down target with failure series.
            Target::new(format!("redis://127.0.0.1:{}", free_port()), "down"),
        ],
    ));
    // A finished rewrite adds the duration series, so every core family is in the body.
    assert!(redis.cli(&["BGREWRITEAOF"]).contains("started"));
    exporter.wait_for(
        STATE_TIMEOUT,
        "one target up with a rewrite, one down",
        |body| {
            aof_healthy(body, "healthy")
                && value(body, "redis_aof_last_rewrite_duration_seconds", "healthy").is_some()
                && up(body, "down") == Some(0.0)
                && failures(body, "down", "refused") >= 1.0
        },
    );

    let response = try_scrape(exporter.port()).expect("scrape");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.content_type.as_deref(),
        Some(OPENMETRICS_CONTENT_TYPE),
        "Content-Type of /metrics"
    );
    match check_openmetrics(&response.body) {
        Ok(summary) => assert!(summary.starts_with("ok:"), "{summary}"),
        Err(problem) => panic!("{problem}\n--- body ---\n{}", response.body),
    }

    // The checker itself rejects a broken body, so the pass above means something.
    let truncated = response.body.trim_end().trim_end_matches("# EOF");
    assert!(
        check_openmetrics(truncated).is_err(),
        "a body without # EOF passed"
    );
    let duplicated = format!("{truncated}redis_up{{target=\"healthy\",env=\"test\"}} 1\n# EOF\n");
    assert!(
        check_openmetrics(&duplicated).is_err(),
        "a clashing family passed"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. A unix-socket target.

#[test]
fn unix_socket_target_is_polled() {
    let redis = Redis::start(RedisSpec {
        unix_socket: true,
        ..RedisSpec::aof()
    });
    assert!(redis.url().starts_with("unix:///"), "{}", redis.url());
    let exporter = Exporter::start(&config_toml(
        "500ms",
        "400ms",
        &[Target::new(redis.url(), "socket")],
    ));
    exporter.wait_for(STATE_TIMEOUT, "the socket target is up", |body| {
        aof_healthy(body, "socket") && value(body, "redis_aof_enabled", "socket") == Some(1.0)
    });

    // kill -9 leaves the socket file behind; connecting to it is refused.
    redis.kill();
    exporter.wait_for(STATE_TIMEOUT, "the socket target is down", |body| {
        up(body, "socket") == Some(0.0)
            && card(body, "socket").is_none()
            && failures(body, "socket", "refused") >= 1.0
    });

    redis.restart();
    exporter.wait_for(STATE_TIMEOUT, "the socket target is back", |body| {
        aof_healthy(body, "socket")
    });
}

/// A counter from `INFO section` of `redis`; the `redis-cli` asking counts as a client.
fn info_count(redis: &Redis, section: &str, field: &str) -> u64 {
    let info = redis.cli(&["INFO", section]);
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in:\n{info}"))
}

/// `total_connections_received` of `redis`, the asking `redis-cli` included.
fn connections_received(redis: &Redis) -> u64 {
    info_count(redis, "stats", "total_connections_received")
}

/// Waits until `target` has been polled `more` times from now, and returns the last body.
fn wait_for_more_polls(exporter: &Exporter, target: &str, more: f64) -> String {
    let before = polls(&exporter.scrape(), target);
    exporter.wait_for(STATE_TIMEOUT, "more polls", |body| {
        polls(body, target) >= before + more
    })
}

/// Local ports of the sockets in TIME_WAIT towards `127.0.0.1:port`: left on this host by
/// whichever side closed a TCP connection first without a reset. Other processes on the host
/// may leave some too; callers match the local ports against the connections they made.
fn time_wait_ports_towards(port: u16) -> Vec<u16> {
    let remote = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() > 3 && fields[2] == remote && fields[3] == "06")
                .then(|| fields[1].rsplit(':').next())
                .flatten()
                .and_then(|local| u16::from_str_radix(local, 16).ok())
        })
        .collect()
}

/// Client ports of the connections Redis logged as accepted (`loglevel verbose`) in `log`.
fn accepted_ports(log: &str) -> Vec<u16> {
    log.lines()
        .filter_map(|line| line.split(" Accepted 127.0.0.1:").nth(1))
        .filter_map(|port| port.trim().parse().ok())
        .collect()
}

#[test]
fn connections_are_kept_between_polls_unless_keep_connections_is_false() {
    let redis = Redis::start(RedisSpec::aof());
    let kept = Exporter::start(&config_toml(
        "300ms",
        "250ms",
        &[Target::new(redis.url(), "kept")],
    ));
    kept.wait_for(STATE_TIMEOUT, "the target is up", |body| {
        aof_healthy(body, "kept")
    });
    let before = connections_received(&redis);
    wait_for_more_polls(&kept, "kept", 4.0);
    // Only the second redis-cli connected: four polls went over the one kept connection.
    assert_eq!(connections_received(&redis) - before, 1);
    drop(kept);

    let per_poll = Exporter::start(&format!(
        "keep_connections = false\n{}",
        config_toml("300ms", "250ms", &[Target::new(redis.url(), "per_poll")])
    ));
    per_poll.wait_for(STATE_TIMEOUT, "the target is up", |body| {
        aof_healthy(body, "per_poll")
    });
    // From here on only the exporter connects over TCP, and Redis logs each connection it
    // accepts with the client's port: those ports are exactly the exporter's connections.
    redis.cli(&["CONFIG", "SET", "loglevel", "verbose"]);
    let log_start = redis.log().len();
    let body = wait_for_more_polls(&per_poll, "per_poll", 4.0);
    let log = redis.log();
    let exporter_ports = accepted_ports(&log[log_start..]);
    // A connection per poll, and every poll still succeeds.
    assert!(exporter_ports.len() >= 4, "{exporter_ports:?}");
    // The exporter closes with a reset, so none of its connections lingers in TIME_WAIT.
    let time_wait = time_wait_ports_towards(redis.port());
    let lingering: Vec<&u16> = exporter_ports
        .iter()
        .filter(|port| time_wait.contains(port))
        .collect();
    assert!(
        lingering.is_empty(),
        "exporter connections in TIME_WAIT: {lingering:?} (of {exporter_ports:?})"
    );
    assert_eq!(failure_reasons(&body, "per_poll"), Vec::<String>::new());
    assert!(aof_healthy(&body, "per_poll"));
}

#[test]
fn replicas_that_leave_disappear_from_the_next_full_read() {
    let primary = Redis::start(RedisSpec::aof());
    let replica = Redis::start(RedisSpec::aof());
    // Every poll reads the replication section.
    let exporter = Exporter::start(&format!(
        "siblings_refresh_interval = \"300ms\"\n{}",
        config_toml("300ms", "250ms", &[Target::new(primary.url(), "primary")])
    ));
    replica.cli(&["REPLICAOF", "127.0.0.1", &primary.port().to_string()]);
    exporter.wait_for(STATE_TIMEOUT, "the replica shows online", |body| {
        samples(
            body,
            "redis_connected_replica_online",
            &[("target", "primary")],
        )
        .iter()
        .any(|s| s.value == 1.0)
    });

    replica.cli(&["REPLICAOF", "NO", "ONE"]);
    exporter.wait_for(STATE_TIMEOUT, "the replica is gone", |body| {
        value(body, "redis_connected_slaves", "primary") == Some(0.0)
            && samples(
                body,
                "redis_connected_replica_online",
                &[("target", "primary")],
            )
            .is_empty()
    });
}

/// `connected_clients` of `redis`, the asking `redis-cli` included.
fn connected_clients(redis: &Redis) -> u64 {
    info_count(redis, "clients", "connected_clients")
}

#[test]
fn connects_cut_short_by_the_poll_timeout_leave_no_connection_behind() {
    let redis = Redis::start(RedisSpec::aof());
    let targets: Vec<Target> = (0..200)
        .map(|i| Target::new(redis.url(), format!("t{i:03}")))
        .collect();
    // A timeout far shorter than a connect: most connects are cut short, some of them after
    // the client's handshake has already gone out.
    let exporter = Exporter::start(&config_toml("500ms", "2ms", &targets));
    exporter.wait_for(STATE_TIMEOUT, "connects time out", |body| {
        targets
            .iter()
            .filter(|t| failures(body, &t.name, "timeout") >= 2.0)
            .count()
            >= 100
    });

    // A workable timeout: every target ends with exactly one connection, none left over
    // from the cut-short connects.
    std::fs::write(
        exporter.config_path(),
        config_toml("500ms", "400ms", &targets),
    )
    .expect("rewrite config");
    exporter.signal("-HUP");
    exporter.wait_for(STATE_TIMEOUT, "every target is up", |body| {
        targets.iter().all(|t| up(body, &t.name) == Some(1.0))
    });
    let deadline = std::time::Instant::now() + STATE_TIMEOUT;
    let mut clients = connected_clients(&redis);
    while clients != 201 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        clients = connected_clients(&redis);
    }
    // 200 targets and this redis-cli.
    assert_eq!(clients, 201, "connections held by Redis for 200 targets");
}
