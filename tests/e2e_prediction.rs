//! Predicting the failure, end to end: a real `redis-server` 7.0 whose data dir is on a real
//! 8 MiB tmpfs, the exporter beside it (sidecar: `data_dir` and `log_file`), and a real
//! Prometheus with the shipped rules.
//!
//! 1. Healthy: the next rewrite fits; no `RedisAOFRewriteWillNotFit` over 10 evaluations.
//! 2. Fault: 2 MiB of incompressible values fit on the volume, but a rewrite of them does not
//!    (5 MiB of it is a filler file). The exporter says `redis_aof_next_rewrite_fits 0` and the
//!    alert fires in Prometheus while no rewrite has been attempted.
//! 3. The prediction comes true: BGREWRITEAOF fails, the card is err, the cause `disk_full`.
//! 4. Recovery: the filler goes, the rewrite fits again, the alert resolves, and a rewrite
//!    then succeeds.
//!
//! Rules are used from a copy whose `for:` are 5 s and whose 1 h trend windows are 20 s, so
//! the test waits seconds instead of minutes and hours: with an hour's window the freed space
//! would read as a margin still shrinking from the filling minutes before. Every wait is for a
//! condition with a deadline; nothing asserts on speed.
//!
//! Needs root (the tmpfs mount), `/usr/bin/redis-server` and `/usr/bin/prometheus`.

mod support;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use support::{
    fault_config, noise, poll_until, prometheus_config, repo, static_job, Exporter, Findings,
    Metrics, Prometheus, Redis, RedisSpec, Reply, Target, Tmpfs, SEE,
};
use tempfile::TempDir;

const ALERT: &str = "RedisAOFRewriteWillNotFit";
const ALERT_GROUP: &str = "redis-persistence.alerts";
/// The longest a Prometheus-side condition may take (scrape 1 s, `for` 5 s, slack).
const PROMETHEUS_SEES: Duration = Duration::from_secs(90);
/// Value size that fills the disk: incompressible, so its RDB is as large as its AOF.
const VALUE: usize = 64 * 1024;

/// The shipped rules with every `for:` at 5 s and the `[1h]` trend windows at 20 s.
fn short_rules(dir: &TempDir) -> PathBuf {
    let original = fs::read_to_string(repo().join("deploy/prometheus/rules.yml"))
        .expect("read deploy/prometheus/rules.yml");
    let windows = original.matches("[1h]").count();
    assert!(
        windows >= 2,
        "expected the 1h trend windows, found {windows}"
    );
    let text: Vec<String> = original
        .replace("[1h]", "[20s]")
        .lines()
        .map(|line| match line.trim().strip_prefix("for: ") {
            Some(_) => {
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}for: 5s")
            }
            None => line.to_owned(),
        })
        .collect();
    let path = dir.path().join("rules.yml");
    fs::write(&path, text.join("\n") + "\n").expect("write rules copy");
    path
}

/// The state (`pending`, `firing`) of `ALERT` for target `r`, or `None` when not active.
fn alert_state(prometheus: &Prometheus) -> Result<Option<String>, String> {
    let alerts = prometheus.alerts()?;
    Ok(alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == ALERT && a["labels"]["target"] == "r")
        .and_then(|a| a["state"].as_str().map(str::to_owned)))
}

fn wait_alert(prometheus: &Prometheus, want: Option<&str>, what: &str) {
    let mut last = Ok(None);
    let met = poll_until(PROMETHEUS_SEES, || {
        last = alert_state(prometheus);
        last.as_ref().ok().map(Option::as_deref) == Some(want)
    });
    assert!(
        met,
        "{what}: {ALERT} should be {want:?}, last {last:?}\nprometheus targets: {}\nlog:\n{}",
        prometheus.targets(),
        prometheus.log_tail(20)
    );
}

fn set_noise(redis: &mut Redis, key: &str, seed: u64) -> Reply {
    let value = noise(VALUE, seed);
    redis.cmd(&[b"SET".as_slice(), key.as_bytes(), value.as_slice()])
}

fn prediction(m: &Metrics) -> String {
    format!(
        "fits {:?}, needed {:?}, free {:?}, bgsave fits {:?}, fork headroom {:?}",
        m.value("redis_aof_next_rewrite_fits", "r"),
        m.value("redis_aof_next_rewrite_needed_bytes", "r"),
        m.value("redis_persistence_dir_free_bytes", "r"),
        m.value("redis_rdb_next_bgsave_fits", "r"),
        m.value("redis_fork_headroom_ratio", "r"),
    )
}

#[test]
fn a_rewrite_that_will_not_fit_alerts_before_it_fails() {
    let mut f = Findings::new("prediction");
    // Declared first so it is unmounted last, after the server on it is dead.
    let mount = Tmpfs::mount("8m");
    let filler = mount.path().join("filler");
    fs::write(&filler, vec![0u8; 5 << 20]).expect("write the filler");
    let mut redis = Redis::start(RedisSpec {
        data_dir: Some(mount.path().join("data")),
        ..RedisSpec::aof()
    });
    let exporter = Exporter::start(&fault_config(&[Target::host("r", &redis)]));
    let rules_dir = tempfile::Builder::new()
        .prefix("rpe-prediction-rules-")
        .tempdir()
        .expect("temp dir");
    let prometheus = Prometheus::start(&prometheus_config(
        Some(&short_rules(&rules_dir)),
        None,
        &static_job("redis-persistence-exporter", exporter.port()),
    ));

    // 1. Healthy.
    let m = exporter.wait_metrics(SEE, "healthy: the next rewrite fits", |m| {
        m.value("redis_aof_next_rewrite_fits", "r") == Some(1.0)
            && m.card("r").as_deref() == Some("ok")
    });
    f.note(format!(
        "healthy: df avail {} | redis {} | {}",
        mount.free_bytes(),
        redis.aof_fields(),
        prediction(&m)
    ));
    let seen = poll_until(PROMETHEUS_SEES, || {
        prometheus.scalar(r#"redis_aof_next_rewrite_fits{target="r"}"#) == Some(1.0)
    });
    assert!(
        seen,
        "Prometheus never scraped the prediction: {}",
        prometheus.targets()
    );
    let start = prometheus.group_iterations(ALERT_GROUP).unwrap_or(0.0);
    let evaluated = poll_until(PROMETHEUS_SEES, || {
        prometheus
            .group_iterations(ALERT_GROUP)
            .is_some_and(|n| n >= start + 10.0)
    });
    assert!(evaluated, "the alert group did not evaluate 10 times");
    assert_eq!(alert_state(&prometheus), Ok(None), "healthy: no {ALERT}");

    // 2. Fault: the data fits, its rewrite will not.
    let rewrites_before = redis.field("aof_rewrites");
    for i in 0..32u64 {
        let reply = set_noise(&mut redis, &format!("k{i}"), i + 1);
        assert_eq!(reply, Reply::Simple("OK".into()), "write {i}");
    }
    let m = exporter.wait_metrics(SEE, "the rewrite is predicted not to fit", |m| {
        m.value("redis_aof_next_rewrite_fits", "r") == Some(0.0)
    });
    f.note(format!(
        "2 MiB written: df avail {} | redis {} | {}",
        mount.free_bytes(),
        redis.aof_fields(),
        prediction(&m)
    ));
    let needed = m.value("redis_aof_next_rewrite_needed_bytes", "r");
    let free = m.value("redis_persistence_dir_free_bytes", "r");
    f.expect(
        matches!((needed, free), (Some(n), Some(fr)) if n > fr && n >= 2.0 * 1024.0 * 1024.0),
        format!("needed ≥ 2 MiB and above free: {needed:?} vs {free:?}"),
    );
    f.expect(
        m.value("redis_rdb_next_bgsave_fits", "r") == Some(0.0),
        "a BGSAVE of the same data does not fit either",
    );
    wait_alert(&prometheus, Some("firing"), "predicted not to fit");
    let info = redis.persistence();
    assert_eq!(
        (
            info.get("aof_rewrites").cloned().unwrap_or_default(),
            info.get("aof_last_bgrewrite_status").map(String::as_str),
            info.get("aof_rewrite_in_progress").map(String::as_str),
        ),
        (rewrites_before, Some("ok"), Some("0")),
        "{ALERT} fired before any rewrite was attempted"
    );
    f.note("RedisAOFRewriteWillNotFit firing; no rewrite attempted yet, card ok");

    // 3. The prediction comes true.
    let reply = redis.failing_rewrite("predicted not to fit");
    let m = exporter.wait_metrics(SEE, "the failed rewrite and its cause are seen", |m| {
        m.card("r").as_deref() == Some("err")
            && m.reason("r", "aof_rewrite").as_deref() == Some("disk_full")
    });
    f.note(format!(
        "BGREWRITEAOF: {:?} | redis {} | card err, cause disk_full | {}",
        reply.text(),
        redis.aof_fields(),
        prediction(&m)
    ));
    f.expect(
        m.value("redis_aof_next_rewrite_fits", "r") == Some(0.0),
        "still predicted not to fit after the failure",
    );

    // 4. Recovery.
    fs::remove_file(&filler).expect("remove the filler");
    let m = exporter.wait_metrics(SEE, "the space is seen and the rewrite fits again", |m| {
        m.value("redis_aof_next_rewrite_fits", "r") == Some(1.0)
            && m.value("redis_persistence_dir_free_bytes", "r")
                .is_some_and(|b| b > 4.0 * 1024.0 * 1024.0)
    });
    f.note(format!(
        "filler removed: df avail {} | {}",
        mount.free_bytes(),
        prediction(&m)
    ));
    wait_alert(&prometheus, None, "space freed");
    let status = redis.clean_rewrite();
    assert_eq!(
        status,
        "ok",
        "the rewrite that fits succeeds:\n{}",
        redis.log_tail(10)
    );
    let m = exporter.wait_metrics(SEE, "the card is ok again", |m| {
        m.card("r").as_deref() == Some("ok")
    });
    f.note(format!(
        "clean rewrite: redis {} | {}",
        redis.aof_fields(),
        prediction(&m)
    ));
    f.expect(
        m.value("redis_aof_next_rewrite_fits", "r") == Some(1.0),
        "after the rewrite: still fits",
    );
    assert_eq!(alert_state(&prometheus), Ok(None), "recovered: no {ALERT}");
    f.finish();
}
