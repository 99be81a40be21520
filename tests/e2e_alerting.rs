//! End to end: real `redis-server` → the exporter → Prometheus (1 s scrape and evaluation,
//! the shipped `deploy/prometheus/rules.yml`) → Alertmanager (the shipped
//! `deploy/alertmanager/alertmanager.yml`, unchanged).
//!
//! One stack, one test, scenarios in sequence (the suite runs on 2 cores; starting the stack
//! once is most of the cost). Each fault first shows the healthy state, then the fault, then
//! the recovery:
//!
//! 1. Baseline: both targets `ok`, no alert for either.
//! 2. Kill target `a`'s rewrite child (SIGKILL): `RedisAOFRewriteFailed` fires in Prometheus
//!    and is active in Alertmanager.
//! 3. A clean rewrite resolves it in both.
//! 4. Target `b`: kill a rewrite, then turn AOF off. The raw status stays `err` (the trap a naive
//!    rule would fall into), the card reads `not_applicable`, and over 15 rule evaluations after
//!    that nothing alerts for `b`.
//! 5. Fail `a`'s rewrite again, then stop `a`: `RedisTargetDown` fires and the persistence alert
//!    is not active in Alertmanager while it does (inhibited or resolved), and a copy of the
//!    persistence alert carrying the exact labels Prometheus produced is inhibited by it.
//! 6. Restart `a`: `RedisTargetDown` resolves and the inhibition lifts.
//!
//! Rules are used from a copy in a temp dir whose `for: 30s` / `for: 1m` are shortened to
//! `for: 5s`, so the test waits seconds instead of minutes. 5 s, not less: in step 4 the `err`
//! is visible to Prometheus for up to ~1.5 s (exporter poll 0.5 s + scrape 1 s) before AOF is
//! off, so a shorter `for` would let our own fault injection race the rule; 5 s is still well
//! inside the 15-evaluation window, so a rule that ignored `aof_enabled` would fire there.
//!
//! Every wait is for a condition, polled every 250 ms with a deadline of at most 90 s; no
//! assertion is on wall-clock speed.

mod support;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    find_sample, prometheus_config, refreshing_config, repo, static_job, wait_for, Alertmanager,
    Exporter, Prometheus, Redis, RedisSpec, Target,
};
use tempfile::TempDir;

/// The `for:` every 30 s / 1 m rule gets in the test copy of the rules.
const SHORT_FOR: &str = "5s";
/// Rule group holding the alerts (its evaluations measure the step-4 window).
const ALERT_GROUP: &str = "redis-persistence.alerts";
/// Evaluations of the alert group that must pass after AOF is off (≥ 10, and > SHORT_FOR).
/// The longest any single condition may take.
const CONDITION_TIMEOUT: Duration = Duration::from_secs(90);
const QUIET_EVALUATIONS: f64 = 15.0;
/// Label marking the alert this test posts itself (step 5), so it never merges with the
/// real one Prometheus resends.
const PROBE_LABEL: &str = "e2e_probe";

fn step(message: &str) {
    eprintln!("[e2e_alerting] {message}");
}

fn label<'a>(alert: &'a Value, key: &str) -> &'a str {
    alert["labels"][key].as_str().unwrap_or("")
}

fn is_probe(alert: &Value) -> bool {
    !alert["labels"][PROBE_LABEL].is_null()
}

/// The shipped rules with `for: 30s` and `for: 1m` shortened to [`SHORT_FOR`].
fn shortened_rules(dir: &TempDir) -> std::path::PathBuf {
    let original = fs::read_to_string(repo().join("deploy/prometheus/rules.yml"))
        .expect("read deploy/prometheus/rules.yml");
    let mut changed = 0;
    let text: Vec<String> = original
        .lines()
        .map(|line| {
            let trimmed = line.trim();
            if trimmed == "for: 30s" || trimmed == "for: 1m" {
                changed += 1;
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}for: {SHORT_FOR}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(
        changed >= 2,
        "expected to shorten the 30s/1m `for:` of the rules, changed {changed}"
    );
    let path = dir.path().join("rules.yml");
    fs::write(&path, text.join("\n") + "\n").expect("write rules copy");
    path
}

/// The whole stack. Field order is drop order: Prometheus first, Redis last.
struct Stack {
    prometheus: Prometheus,
    alertmanager: Alertmanager,
    exporter: Exporter,
    a: Redis,
    b: Redis,
    _rules_dir: TempDir,
}

impl Stack {
    fn start() -> Stack {
        let a = Redis::start(RedisSpec::aof());
        let b = Redis::start(RedisSpec::aof());
        let targets = [
            Target::new(a.url(), "a").label("env", "e2e"),
            Target::new(b.url(), "b").label("env", "e2e"),
        ];
        let exporter = Exporter::start_logging_at(&refreshing_config("5s", &targets), None);
        let alertmanager =
            Alertmanager::start(&repo().join("deploy/alertmanager/alertmanager.yml"));
        let rules_dir = tempfile::Builder::new()
            .prefix("rpe-e2e-rules-")
            .tempdir()
            .expect("temp dir");
        let rules = shortened_rules(&rules_dir);
        let prometheus = Prometheus::start(&prometheus_config(
            Some(&rules),
            Some(alertmanager.port()),
            &static_job("redis-persistence-exporter", exporter.port()),
        ));
        Stack {
            prometheus,
            alertmanager,
            exporter,
            a,
            b,
            _rules_dir: rules_dir,
        }
    }

    fn redis(&self, target: &str) -> &Redis {
        match target {
            "a" => &self.a,
            _ => &self.b,
        }
    }

    /// Prometheus's pending/firing alert `name` for `target`.
    fn prom_alert(&self, name: &str, target: &str) -> Option<Value> {
        self.prometheus
            .alerts()
            .ok()?
            .into_iter()
            .find(|a| label(a, "alertname") == name && label(a, "target") == target)
    }

    /// Alertmanager's (unresolved) alert `name` for `target`, not counting our probe.
    fn am_alert(&self, name: &str, target: &str) -> Result<Option<Value>, String> {
        Ok(self.alertmanager.alerts()?.into_iter().find(|a| {
            label(a, "alertname") == name && label(a, "target") == target && !is_probe(a)
        }))
    }

    fn am_state(alert: &Value) -> &str {
        alert["status"]["state"].as_str().unwrap_or("")
    }

    /// Everything that helps read a timeout.
    fn diagnostics(&self) -> String {
        let prom_alerts = match self.prometheus.alerts() {
            Ok(alerts) => alerts
                .iter()
                .map(|a| {
                    format!(
                        "  {} target={} state={} value={}",
                        label(a, "alertname"),
                        label(a, "target"),
                        a["state"],
                        a["value"]
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => e,
        };
        let am_alerts = match self.alertmanager.alerts() {
            Ok(alerts) => alerts
                .iter()
                .map(|a| {
                    format!(
                        "  {} target={} probe={} status={}",
                        label(a, "alertname"),
                        label(a, "target"),
                        is_probe(a),
                        a["status"]
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => e,
        };
        let scrape = self.exporter.try_get("/metrics").unwrap_or_else(|e| e);
        let exporter_lines: Vec<&str> = scrape
            .lines()
            .filter(|l| {
                l.starts_with("redis_up")
                    || l.starts_with("redis_aof_rewrite_state")
                    || l.starts_with("redis_aof_enabled")
                    || l.starts_with("redis_aof_last_bgrewrite_status")
                    || l.starts_with("redis_persistence_exporter_last_poll_failed")
            })
            .collect();
        let redis_state = |r: &Redis| {
            format!(
                "status={:?} in_progress={:?} aof_enabled={:?}",
                r.info_field("aof_last_bgrewrite_status"),
                r.info_field("aof_rewrite_in_progress"),
                r.info_field("aof_enabled")
            )
        };
        format!(
            "--- Prometheus /api/v1/alerts ---\n{prom_alerts}\n\
             --- Alertmanager /api/v2/alerts ---\n{am_alerts}\n\
             --- exporter /metrics (excerpt) ---\n{}\n\
             --- redis a: {} ---\n{}\n--- redis b: {} ---\n{}\n\
             --- exporter log ---\n{}\n--- prometheus log ---\n{}\n--- alertmanager log ---\n{}",
            exporter_lines.join("\n"),
            redis_state(&self.a),
            self.a.log_tail(15),
            redis_state(&self.b),
            self.b.log_tail(15),
            self.exporter.log_tail(30),
            self.prometheus.log_tail(20),
            self.alertmanager.log_tail(20),
        )
    }

    fn wait<T>(&self, what: &str, check: impl FnMut() -> Option<T>) -> T {
        wait_for(what, CONDITION_TIMEOUT, check, || self.diagnostics())
    }

    /// Waits until Prometheus's last scrape shows `target`'s card in `state`.
    fn wait_card_in_prometheus(&self, target: &str, state: &str) {
        let query = format!(
            "redis_aof_rewrite_state{{job=\"redis-persistence-exporter\",target=\"{target}\",state=\"{state}\"}} == 1"
        );
        self.wait(
            &format!("Prometheus shows target {target}'s card as {state}"),
            || self.prometheus.scalar(&query).map(|_| ()),
        );
    }

    /// Starts a slowed-down rewrite on `target`, SIGKILLs its child and waits until Redis
    /// reports `aof_last_bgrewrite_status:err` with no rewrite running. Redis may start or
    /// schedule rewrites itself, so each step waits for a state rather than assuming one.
    fn fail_rewrite(&self, target: &str) {
        let redis = self.redis(target);
        // 200 000 keys × 100 µs: the child needs ~20 s, ample time to find and kill it.
        redis.cli_ok(&["CONFIG", "SET", "rdb-key-save-delay", "100"]);
        for attempt in 1..=3 {
            self.wait(&format!("no rewrite is running on {target}"), || {
                (!redis.rewrite_state().1 && redis.child_pids().is_empty()).then_some(())
            });
            let reply = redis.cli(&["BGREWRITEAOF"]);
            assert!(
                reply.contains("rewriting started") || reply.contains("rewriting scheduled"),
                "BGREWRITEAOF on {target}: {reply}"
            );
            let child = self.wait(&format!("a rewrite child runs under {target}"), || {
                let pids = redis.child_pids();
                (redis.rewrite_state().1 && !pids.is_empty()).then(|| pids[0])
            });
            let killed = Command::new("kill")
                .args(["-9", &child.to_string()])
                .status()
                .expect("run kill");
            assert!(
                killed.success(),
                "kill -9 {child} (rewrite child of {target})"
            );
            let status = self.wait(&format!("{target}'s killed rewrite has ended"), || {
                let (status, running) = redis.rewrite_state();
                (!running).then_some(status)
            });
            if status == "err" {
                step(&format!(
                    "  {target}: rewrite child {child} killed, aof_last_bgrewrite_status:err"
                ));
                return;
            }
            step(&format!(
                "  {target}: attempt {attempt} ended with {status:?}, retrying; redis log:\n{}",
                redis.log_tail(5)
            ));
        }
        panic!(
            "could not make a rewrite fail on {target}\n{}",
            self.diagnostics()
        );
    }

    /// Runs clean rewrites on `target` until Redis reports `ok` with none running.
    fn clean_rewrite(&self, target: &str) {
        let redis = self.redis(target);
        redis.cli_ok(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
        let mut last_request: Option<Instant> = None;
        self.wait(
            &format!("{target} reports aof_last_bgrewrite_status:ok"),
            || {
                let (status, running) = redis.rewrite_state();
                if status == "ok" && !running {
                    return Some(());
                }
                // (Re)request a rewrite when idle; Redis may have been busy with its own retry.
                let due = last_request.is_none_or(|t| t.elapsed() > Duration::from_secs(3));
                if !running && due {
                    let reply = redis.cli(&["BGREWRITEAOF"]);
                    step(&format!("  {target}: BGREWRITEAOF -> {reply}"));
                    last_request = Some(Instant::now());
                }
                None
            },
        );
    }
}

#[test]
fn alerts_flow_from_redis_to_alertmanager() {
    let started = Instant::now();
    step("starting redis a + b, exporter, alertmanager, prometheus");
    let stack = Stack::start();
    let prom = &stack.prometheus;
    let am = &stack.alertmanager;

    // ---- 1. Plumbing and baseline ---------------------------------------------------------
    step("1. plumbing: rules loaded with the shortened `for`, Alertmanager discovered, exporter scraped");
    stack.wait(
        "Prometheus loaded RedisAOFRewriteFailed and RedisTargetDown with for: 5s",
        || {
            let groups = prom.rule_groups().ok()?;
            let durations: Vec<(String, f64)> = groups
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .filter(|r| r["type"] == "alerting")
                .map(|r| {
                    (
                        r["name"].as_str().unwrap_or("").to_owned(),
                        r["duration"].as_f64().unwrap_or(-1.0),
                    )
                })
                .collect();
            ["RedisAOFRewriteFailed", "RedisTargetDown"]
                .iter()
                .all(|name| durations.iter().any(|(n, d)| n == name && *d == 5.0))
                .then_some(())
        },
    );
    stack.wait("Prometheus has discovered the Alertmanager", || {
        let data = support::get_json(
            &format!("http://127.0.0.1:{}/api/v1/alertmanagers", prom.port()),
            &[],
        )
        .ok()?;
        let active = data["data"]["activeAlertmanagers"].as_array()?.clone();
        active
            .iter()
            .any(|a| {
                a["url"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!(":{}/", am.port()))
            })
            .then_some(())
    });
    stack.wait(
        "Prometheus scrapes the exporter (redis_persistence_exporter:up == 1)",
        || {
            prom.scalar("redis_persistence_exporter:up == 1")
                .map(|_| ())
        },
    );

    for redis in [&stack.a, &stack.b] {
        redis.cli_ok(&["DEBUG", "POPULATE", "200000"]);
    }
    step("1. baseline: both targets up with card ok, and no alert for either");
    for target in ["a", "b"] {
        stack.wait_card_in_prometheus(target, "ok");
    }
    stack.wait(
        "no alert (pending or firing) for a or b in Prometheus or Alertmanager",
        || {
            let prom_alerts = prom.alerts().ok()?;
            let am_alerts = am.alerts().ok()?;
            let ours = |a: &Value| matches!(label(a, "target"), "a" | "b");
            (!prom_alerts.iter().any(ours) && !am_alerts.iter().any(ours)).then_some(())
        },
    );

    // ---- 2. Killed rewrite fires --------------------------------------------------------------
    step("2. kill a's rewrite child");
    stack.fail_rewrite("a");
    stack.wait_card_in_prometheus("a", "err");
    let firing = stack.wait(
        "RedisAOFRewriteFailed{target=a} is firing in Prometheus",
        || {
            stack
                .prom_alert("RedisAOFRewriteFailed", "a")
                .filter(|a| a["state"] == "firing")
        },
    );
    assert_eq!(label(&firing, "severity"), "warning", "{firing}");
    assert_eq!(label(&firing, "team"), "dba", "{firing}");
    assert_eq!(label(&firing, "env"), "e2e", "{firing}");
    let active = stack.wait(
        "RedisAOFRewriteFailed{target=a} is active in Alertmanager",
        || {
            stack
                .am_alert("RedisAOFRewriteFailed", "a")
                .ok()?
                .filter(|a| Stack::am_state(a) == "active")
        },
    );
    step(&format!(
        "  firing in Prometheus, active in Alertmanager: {}",
        active["labels"]
    ));
    assert!(
        stack.prom_alert("RedisAOFRewriteFailed", "b").is_none(),
        "a's failure must not alert for b\n{}",
        stack.diagnostics()
    );

    // ---- 3. Clean rewrite resolves ----------------------------------------------------------
    step("3. clean rewrite on a");
    stack.clean_rewrite("a");
    stack.wait_card_in_prometheus("a", "ok");
    stack.wait(
        "RedisAOFRewriteFailed{target=a} is gone from Prometheus (neither pending nor firing)",
        || {
            stack
                .prom_alert("RedisAOFRewriteFailed", "a")
                .is_none()
                .then_some(())
        },
    );
    stack.wait(
        "RedisAOFRewriteFailed{target=a} is resolved in Alertmanager",
        || {
            stack
                .am_alert("RedisAOFRewriteFailed", "a")
                .ok()?
                .is_none()
                .then_some(())
        },
    );

    // ---- 4. Failure then AOF off: no alert ---------------------------------------------------
    step("4. b: kill a rewrite, then immediately turn AOF off");
    let b_started = Instant::now();
    stack.fail_rewrite("b");
    stack.b.cli_ok(&["CONFIG", "SET", "appendonly", "no"]);
    assert_eq!(
        stack.b.info_field("aof_last_bgrewrite_status").as_deref(),
        Some("err"),
        "Redis keeps the stale err after AOF is off; without it this step tests nothing"
    );
    stack.wait(
        "the exporter shows redis_aof_rewrite_state{target=b,state=not_applicable} 1",
        || {
            let scrape = stack.exporter.try_get("/metrics").unwrap_or_else(|e| e);
            (find_sample(
                &scrape,
                "redis_aof_rewrite_state",
                &[("target", "b"), ("state", "not_applicable")],
            ) == Some(1.0))
            .then_some(())
        },
    );
    let evaluations_at_na = stack.wait("Prometheus reports its alert-group evaluations", || {
        prom.group_iterations(ALERT_GROUP)
    });
    step(&format!(
        "  b reads not_applicable; watching {QUIET_EVALUATIONS} evaluations (from #{evaluations_at_na})"
    ));
    stack.wait(
        &format!("{QUIET_EVALUATIONS} evaluations pass with nothing firing for b"),
        || {
            let prom_alerts = prom.alerts().ok()?;
            let am_alerts = am.alerts().ok()?;
            let firing_b: Vec<&Value> = prom_alerts
                .iter()
                .filter(|a| label(a, "target") == "b" && a["state"] == "firing")
                .collect();
            assert!(
                firing_b.is_empty(),
                "alert firing for b after AOF off: {firing_b:?}\n{}",
                stack.diagnostics()
            );
            let am_b: Vec<&Value> = am_alerts
                .iter()
                .filter(|a| label(a, "target") == "b")
                .collect();
            assert!(
                am_b.is_empty(),
                "Alertmanager has an alert for b after AOF off: {am_b:?}\n{}",
                stack.diagnostics()
            );
            let now = prom.group_iterations(ALERT_GROUP)?;
            (now >= evaluations_at_na + QUIET_EVALUATIONS).then_some(())
        },
    );
    // The trap is really there: the raw status is still 0 (err) in Prometheus.
    assert_eq!(
        prom.scalar("redis_aof_last_bgrewrite_status{target=\"b\"}"),
        Some(0.0),
        "raw status for b should be the stale err\n{}",
        stack.diagnostics()
    );
    assert_eq!(prom.scalar("redis_aof_enabled{target=\"b\"}"), Some(0.0));
    let leftover = prom.query("ALERTS{target=\"b\"}").expect("query ALERTS");
    assert!(
        leftover.is_empty(),
        "ALERTS for b after the quiet window: {leftover:?}\n{}",
        stack.diagnostics()
    );
    let window = b_started.elapsed().as_secs() + 5;
    let ever_fired = prom
        .query(&format!(
            "max_over_time(ALERTS{{target=\"b\",alertstate=\"firing\"}}[{window}s])"
        ))
        .expect("query ALERTS history");
    assert!(
        ever_fired.is_empty(),
        "an alert fired for b during step 4: {ever_fired:?}"
    );

    // ---- 5. Target down inhibits persistence alerts ------------------------------------------
    step("5. fail a's rewrite again, then stop redis a");
    stack.fail_rewrite("a");
    let real = stack.wait(
        "RedisAOFRewriteFailed{target=a} is active in Alertmanager again",
        || {
            stack
                .am_alert("RedisAOFRewriteFailed", "a")
                .ok()?
                .filter(|a| Stack::am_state(a) == "active")
        },
    );
    // A copy of the persistence alert with the exact labels Prometheus produced (plus a probe
    // label so it never merges with the real one): the real alert resolves once the exporter
    // stops reporting a's persistence series, so the copy is what shows that the inhibit
    // rule's `equal` labels match real alerts. Control: with a up it is not inhibited.
    let mut probe_labels = real["labels"].as_object().cloned().expect("labels object");
    probe_labels.insert(PROBE_LABEL.into(), Value::from("inhibition"));
    am.post_alert(&probe_labels);
    let probe = |am_alerts: &[Value]| -> Option<Value> {
        am_alerts
            .iter()
            .find(|a| is_probe(a) && label(a, "target") == "a")
            .cloned()
    };
    stack.wait(
        "the probe copy is active (not inhibited) while a is up",
        || probe(&am.alerts().ok()?).filter(|p| Stack::am_state(p) == "active"),
    );

    stack.a.stop();
    let down = stack.wait("RedisTargetDown{target=a} is firing in Prometheus", || {
        stack
            .prom_alert("RedisTargetDown", "a")
            .filter(|a| a["state"] == "firing")
    });
    assert_eq!(label(&down, "severity"), "critical", "{down}");
    assert_eq!(label(&down, "team"), "sre", "{down}");
    let (real_outcome, probe_inhibitor) = stack.wait(
        "Alertmanager: TargetDown{a} active, RewriteFailed{a} absent or inhibited, probe inhibited by TargetDown",
        || {
            let am_alerts = am.alerts().ok()?;
            let target_down = am_alerts.iter().find(|a| {
                label(a, "alertname") == "RedisTargetDown"
                    && label(a, "target") == "a"
                    && Stack::am_state(a) == "active"
            })?;
            let fingerprint = target_down["fingerprint"].as_str()?.to_owned();
            let real = am_alerts.iter().find(|a| {
                label(a, "alertname") == "RedisAOFRewriteFailed" && label(a, "target") == "a" && !is_probe(a)
            });
            let inhibited = |a: &Value| {
                Stack::am_state(a) == "suppressed"
                    && a["status"]["inhibitedBy"].as_array().is_some_and(|v| !v.is_empty())
            };
            let real_outcome = match real {
                None => "absent (resolved)".to_owned(),
                Some(r) if inhibited(r) => format!("suppressed, inhibitedBy {}", r["status"]["inhibitedBy"]),
                Some(_) => return None,
            };
            let p = probe(&am_alerts)?;
            let by = p["status"]["inhibitedBy"].as_array()?;
            (inhibited(&p) && by.iter().any(|f| f.as_str() == Some(fingerprint.as_str())))
                .then_some((real_outcome, fingerprint))
        },
    );
    step(&format!(
        "  TargetDown active ({probe_inhibitor}); real RewriteFailed{{a}}: {real_outcome}; probe suppressed by TargetDown"
    ));

    // ---- 6. Recovery -------------------------------------------------------------------------
    step("6. restart redis a");
    stack.a.restart();
    stack.wait("Prometheus sees a up again", || {
        prom.scalar("redis_up{target=\"a\"} == 1").map(|_| ())
    });
    stack.wait("RedisTargetDown{target=a} is gone from Prometheus", || {
        stack
            .prom_alert("RedisTargetDown", "a")
            .is_none()
            .then_some(())
    });
    stack.wait(
        "TargetDown{a} resolved in Alertmanager and the probe no longer inhibited",
        || {
            let am_alerts = am.alerts().ok()?;
            let down = am_alerts
                .iter()
                .any(|a| label(a, "alertname") == "RedisTargetDown" && label(a, "target") == "a");
            let p = probe(&am_alerts)?;
            (!down && Stack::am_state(&p) == "active").then_some(())
        },
    );

    step(&format!("done in {:.0?}", started.elapsed()));
}
