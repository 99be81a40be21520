//! Reload (POST /-/reload and SIGHUP) and SIGTERM, against real redis-servers and the real
//! binary: unchanged targets keep their connection and state, changed ones reconnect, added
//! ones start, removed ones disappear, a bad config is rejected while the old one keeps
//! running, and SIGTERM exits 0 promptly.

mod support;

use std::time::Duration;

use support::{polls, sample, Exporter, Redis, RedisSpec, Target};

const WAIT: Duration = Duration::from_secs(30);

/// The id of the exporter's connection on `redis` (the only client besides redis-cli).
fn exporter_client_ids(redis: &Redis) -> Vec<String> {
    redis
        .cli(&["CLIENT", "LIST"])
        .lines()
        .filter(|line| !line.contains("cmd=client"))
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

fn http_post(port: u16, path: &str) -> (u16, String) {
    let response = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.text().unwrap_or_default())
}

#[test]
fn reload_keeps_unchanged_targets_and_applies_the_rest_then_sigterm_exits_zero() {
    let a = Redis::start(RedisSpec::aof());
    let b = Redis::start(RedisSpec::aof());
    let c = Redis::start(RedisSpec::rdb());
    let config = |targets: &[Target]| support::config_toml("500ms", "400ms", targets);
    let mut exporter = Exporter::start(&config(&[
        Target::new(a.url(), "a"),
        Target::new(b.url(), "b"),
        Target::new(c.url(), "d"),
    ]));

    // Healthy: all three up, with enough polls that a reset would show.
    let before = exporter.wait_for(WAIT, "a, b and d up with a few polls each", |m| {
        ["a", "b", "d"]
            .iter()
            .all(|t| sample(m, "redis_up", &[("target", t)]) == Some(1.0) && polls(m, t) >= 3.0)
    });
    let a_connection = exporter_client_ids(&a);
    let b_connection = exporter_client_ids(&b);
    assert_eq!(
        a_connection.len(),
        1,
        "one kept connection to a: {a_connection:?}"
    );
    let a_since = sample(
        &before,
        "redis_aof_rewrite_state_since_timestamp_seconds",
        &[("target", "a")],
    );
    assert!(a_since.is_some());

    // Reload: a unchanged, b changed (a label), d removed, c added.
    std::fs::write(
        exporter.config_path(),
        config(&[
            Target::new(a.url(), "a"),
            Target::new(b.url(), "b").label("env", "changed"),
            Target::new(c.url(), "c"),
        ]),
    )
    .unwrap();
    let (status, body) = http_post(exporter.port(), "/-/reload");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("1 added, 1 removed, 1 changed, 1 unchanged"),
        "{body}"
    );

    let after = exporter.wait_for(WAIT, "c up, d gone, b relabelled", |m| {
        sample(m, "redis_up", &[("target", "c")]) == Some(1.0)
            && sample(m, "redis_up", &[("target", "d")]).is_none()
            && sample(m, "redis_up", &[("target", "b"), ("env", "changed")]) == Some(1.0)
    });
    let continued = exporter.wait_for(WAIT, "a polled again after the reload", |m| {
        polls(m, "a") > polls(&before, "a")
    });
    // A reset would restart the counter from zero; continuing state only ever grows.
    assert!(
        polls(&continued, "a") > polls(&before, "a"),
        "a's state continued: {} then {}",
        polls(&before, "a"),
        polls(&continued, "a")
    );
    assert_eq!(
        sample(
            &after,
            "redis_aof_rewrite_state_since_timestamp_seconds",
            &[("target", "a")]
        ),
        a_since,
        "a's derived history survived the reload"
    );
    assert_eq!(
        exporter_client_ids(&a),
        a_connection,
        "a kept its connection"
    );
    support::wait_until(WAIT, "b reconnected with a new connection", || {
        let now = exporter_client_ids(&b);
        now.len() == 1 && now != b_connection
    });
    assert!(
        polls(&after, "b") < polls(&before, "b") + 3.0,
        "b started over with fresh state"
    );

    // An invalid config (SIGHUP) is rejected; the running config keeps polling.
    std::fs::write(exporter.config_path(), "poll_interval = \"often\"\n").unwrap();
    exporter.signal("-HUP");
    let rejected = exporter.wait_for(WAIT, "the reload failure is visible", |m| {
        sample(
            m,
            "redis_persistence_exporter_config_last_reload_successful",
            &[],
        ) == Some(0.0)
    });
    assert!(
        exporter.log().contains("config reload failed"),
        "{}",
        exporter.log_tail(20)
    );
    exporter.wait_for(WAIT, "a still polled on the old config", |m| {
        polls(m, "a") > polls(&rejected, "a") + 1.0
            && sample(m, "redis_up", &[("target", "c")]) == Some(1.0)
    });
    let (status, body) = http_post(exporter.port(), "/-/reload");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("poll_interval"), "{body}");

    // SIGTERM: stops polling and exits 0 within a few seconds.
    exporter.signal("-TERM");
    let exit = exporter.wait_exit(Duration::from_secs(10));
    assert!(
        exit.is_some(),
        "still running 10 s after SIGTERM: {}",
        exporter.log_tail(20)
    );
    assert!(exit.unwrap().success(), "exit status {exit:?}");
    support::wait_until(WAIT, "the connection to a is closed", || {
        exporter_client_ids(&a).is_empty()
    });
}
