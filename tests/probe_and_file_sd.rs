//! The allow-listed `/probe` endpoint and `file_sd` discovery, against a real redis-server and
//! the real binary.

mod support;

use std::time::Duration;

use support::{sample, Exporter, Redis, RedisSpec};

const WAIT: Duration = Duration::from_secs(30);

fn get(port: u16, path_and_query: &str) -> (u16, String) {
    let response = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{port}{path_and_query}"))
        .timeout(Duration::from_secs(10))
        .send()
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.text().unwrap_or_default())
}

#[test]
fn probe_polls_allowed_targets_only() {
    let redis = Redis::start(RedisSpec::aof());
    let sd_dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::start(&format!(
        "poll_interval = \"500ms\"\npoll_timeout = \"400ms\"\n\
         [[file_sd]]\nfiles = [\"{}/*.json\"]\nrefresh_interval = \"500ms\"\n\
         [probe]\nenabled = true\nallowed_targets = [\"redis://127.0.0.1:{}\"]\n",
        sd_dir.path().display(),
        redis.port()
    ));
    let name = format!("redis://127.0.0.1:{}", redis.port());

    let (status, body) = get(
        exporter.port(),
        &format!("/probe?target=127.0.0.1:{}", redis.port()),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sample(&body, "redis_up", &[("target", &name)]),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "redis_aof_rewrite_state",
            &[("target", &name), ("state", "ok")]
        ),
        Some(1.0)
    );
    assert!(body.trim_end().ends_with("# EOF"));

    // Not on the allow-list: refused without connecting anywhere.
    let (status, body) = get(exporter.port(), "/probe?target=127.0.0.1:1");
    assert_eq!(status, 403, "{body}");
    let (status, _) = get(exporter.port(), "/probe?target=169.254.169.254:80");
    assert_eq!(status, 403);
    // Credentials in the probed URL are refused, and not echoed.
    let (status, body) = get(
        exporter.port(),
        &format!("/probe?target=redis://u:hunter2@127.0.0.1:{}", redis.port()),
    );
    assert_eq!(status, 400);
    assert!(!body.contains("hunter2"), "{body}");
    let (status, _) = get(exporter.port(), "/probe");
    assert_eq!(status, 400);
    // A probe adds nothing to /metrics: the exporter polls no configured target.
    assert_eq!(
        sample(&exporter.scrape(), "redis_up", &[("target", &name)]),
        None
    );
}

#[test]
fn file_sd_targets_follow_the_file() {
    let redis = Redis::start(RedisSpec::aof());
    let sd_dir = tempfile::tempdir().unwrap();
    let file = sd_dir.path().join("targets.json");
    std::fs::write(
        &file,
        format!(
            r#"[{{"targets": ["127.0.0.1:{}"], "labels": {{"name": "from-file", "env": "sd"}}}}]"#,
            redis.port()
        ),
    )
    .unwrap();
    let exporter = Exporter::start(&format!(
        "poll_interval = \"500ms\"\npoll_timeout = \"400ms\"\n\
         [[file_sd]]\nfiles = [\"{}/*.json\"]\nrefresh_interval = \"500ms\"\n",
        sd_dir.path().display()
    ));
    exporter.wait_for(WAIT, "the file's target is polled", |m| {
        sample(m, "redis_up", &[("target", "from-file"), ("env", "sd")]) == Some(1.0)
    });

    // A half-written file keeps the targets it had.
    std::fs::write(&file, "[{\"targets\": [").unwrap();
    support::wait_until(WAIT, "the broken file is noticed", || {
        exporter.log().contains("file_sd file unusable")
    });
    let noticed = exporter.scrape();
    let polls = |m: &str| {
        sample(
            m,
            "redis_persistence_exporter_polls_total",
            &[("target", "from-file")],
        )
        .unwrap_or(0.0)
    };
    let kept = exporter.wait_for(WAIT, "the target keeps being polled", |m| {
        polls(m) >= polls(&noticed) + 2.0
    });
    assert_eq!(
        sample(&kept, "redis_up", &[("target", "from-file")]),
        Some(1.0)
    );

    // Emptying the file removes the target and its series.
    std::fs::write(&file, "[]").unwrap();
    exporter.wait_for(WAIT, "the target is gone", |m| {
        sample(m, "redis_up", &[("target", "from-file")]).is_none()
    });
}

#[test]
fn check_includes_file_sd_targets() {
    let redis = Redis::start(RedisSpec::aof());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("targets.json"),
        format!(
            r#"[{{"targets": ["127.0.0.1:{}"], "labels": {{"name": "discovered"}}}}]"#,
            redis.port()
        ),
    )
    .unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "poll_timeout = \"2s\"\n[[file_sd]]\nfiles = [\"*.json\"]\n",
    )
    .unwrap();
    let output = support::run_exporter(["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("discovered: Last AOF Rewrite Status = ok"),
        "{stdout}"
    );
}

#[test]
fn insecure_tls_is_warned_about_once_per_target_not_per_discovery_change() {
    let redis = Redis::start(RedisSpec::aof());
    let sd_dir = tempfile::tempdir().unwrap();
    let file = sd_dir.path().join("targets.json");
    let entries = |names: &[&str]| {
        let groups: Vec<String> = names
            .iter()
            .map(|name| {
                format!(
                    r#"{{"targets": ["127.0.0.1:{}"], "labels": {{"name": "{name}"}}}}"#,
                    redis.port()
                )
            })
            .collect();
        format!("[{}]", groups.join(","))
    };
    std::fs::write(&file, entries(&["a"])).unwrap();
    // Nothing listens there: the warning is about the setting, not about a handshake.
    let exporter = Exporter::start(&format!(
        "poll_interval = \"500ms\"\npoll_timeout = \"400ms\"\n\
         [[targets]]\nurl = \"rediss://127.0.0.1:{}\"\nname = \"insecure\"\n\
         tls_insecure_skip_verify = true\n\
         [[file_sd]]\nfiles = [\"{}/*.json\"]\nrefresh_interval = \"200ms\"\n",
        support::free_port(),
        sd_dir.path().display()
    ));
    let warnings = || {
        exporter
            .log()
            .lines()
            .filter(|l| l.contains("tls_insecure_skip_verify is on") && l.contains("insecure"))
            .count()
    };
    let up = |m: &str, name: &str| sample(m, "redis_up", &[("target", name)]);
    exporter.wait_for(WAIT, "the file's target is polled", |m| {
        up(m, "a") == Some(1.0)
    });
    assert_eq!(warnings(), 1, "{}", exporter.log_tail(40));

    // Three changes of the discovered set; the insecure target itself does not change.
    std::fs::write(&file, entries(&["a", "b"])).unwrap();
    exporter.wait_for(WAIT, "b is added", |m| up(m, "b") == Some(1.0));
    std::fs::write(&file, entries(&["b"])).unwrap();
    exporter.wait_for(WAIT, "a is removed", |m| up(m, "a").is_none());
    std::fs::write(&file, entries(&["a", "b"])).unwrap();
    exporter.wait_for(WAIT, "a is back", |m| up(m, "a") == Some(1.0));
    assert_eq!(warnings(), 1, "{}", exporter.log_tail(40));
}
