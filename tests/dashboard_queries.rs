//! Every query in `dashboards/redis-persistence.json` returns data from a real stack.
//!
//! A real `redis-server` (AOF on), the real exporter binary polling it every second, and
//! Debian's `/usr/bin/prometheus` scraping the exporter every second under the job name the
//! dashboard and the alert rules expect. Each panel query, with the dashboard's template
//! variables filled in the way Grafana would, must return at least one series through
//! Prometheus's HTTP API. A panel whose series the exporter does not (or no longer) export
//! therefore fails here instead of showing "No data" to on-call.
//!
//! The stack mirrors `scripts/local-stack.sh` (same Redis flags, same Prometheus scrape config).
//! Needs `redis-server` and `prometheus` on PATH; `bash scripts/test.sh` installs them.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    config_toml, prometheus_config, static_job, Exporter, Prometheus, Redis, RedisSpec, Target,
};

/// The scrape job name; the dashboard's `$job` variable and the alert rules key off it.
const JOB: &str = "redis-persistence-exporter";
/// The exporter's `target` label for the Redis under test.
const TARGET: &str = "dashboard-test";
/// How long any one readiness condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

fn dashboard_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/redis-persistence.json")
}

fn load_dashboard() -> Value {
    let path = dashboard_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every non-row panel, including those nested in collapsed rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a [Value], out: &mut Vec<&'a Value>) {
        for panel in list {
            if panel["type"] == "row" {
                walk(
                    panel["panels"].as_array().map_or(&[][..], Vec::as_slice),
                    out,
                );
            } else {
                out.push(panel);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        dashboard["panels"]
            .as_array()
            .expect("dashboard has panels"),
        &mut out,
    );
    out
}

/// `(panel title, refId, expression)` for every query of every panel.
fn queries(dashboard: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("<untitled>").to_owned();
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        assert!(!targets.is_empty(), "panel {title:?} has no queries");
        for target in targets {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {title:?} has a query without expr"));
            let ref_id = target["refId"].as_str().unwrap_or("?").to_owned();
            out.push((title.clone(), ref_id, expr.to_owned()));
        }
    }
    out
}

/// Fills in template variables as Grafana would for a single selected job and target.
fn substitute(expr: &str) -> String {
    let replacements = [
        ("${job}", JOB),
        ("$job", JOB),
        ("${target}", TARGET),
        ("$target", TARGET),
        ("$__rate_interval", "1m"),
        ("$__interval", "1s"),
        ("$__range", "5m"),
    ];
    let mut out = expr.to_owned();
    for (from, to) in replacements {
        out = out.replace(from, to);
    }
    assert!(
        !out.contains('$'),
        "unknown template variable left in {out:?} (from {expr:?})"
    );
    out
}

#[test]
fn dashboard_is_well_formed() {
    let dashboard = load_dashboard();
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for name in ["datasource", "job", "target"] {
        assert!(
            variables.contains(&name),
            "variable {name} missing: {variables:?}"
        );
    }

    let mut ids = std::collections::BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or("<untitled>");
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate id on {title:?}"
        );
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {title:?} must use the datasource variable"
        );
        for (_, _, expr) in queries(&serde_json::json!({ "panels": [panel] })) {
            for variable in ["$job", "$target"] {
                // `up` has no target label; everything else must honour both filters.
                if variable == "$target" && expr.starts_with("up{") {
                    continue;
                }
                assert!(
                    expr.contains(variable),
                    "panel {title:?} ignores {variable}: {expr}"
                );
            }
        }
    }

    // The card maps exactly the values its query can produce.
    let card = panels(&dashboard)
        .into_iter()
        .find(|p| p["title"] == "Last AOF Rewrite Status")
        .expect("the card panel");
    let mapping = &card["fieldConfig"]["defaults"]["mappings"][0]["options"];
    for (value, text, color) in [
        ("2", "err", "red"),
        ("1", "ok", "green"),
        ("0", "n/a", "#8e8e8e"),
        ("-1", "unreachable", "orange"),
    ] {
        assert_eq!(mapping[value]["text"], text, "card mapping for {value}");
        assert_eq!(mapping[value]["color"], color, "card colour for {value}");
    }
}

#[test]
fn every_dashboard_query_returns_data() {
    let dashboard = load_dashboard();
    let stack = Stack::start();
    let prometheus = stack.prometheus_url();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    // Prometheus has scraped the exporter, and the exporter has polled Redis.
    let up = format!("redis_up{{job=\"{JOB}\",target=\"{TARGET}\"}} == 1");
    wait_for(&format!("Prometheus to see {up}"), || {
        let result = instant_query(&client, &prometheus, &up).ok()?;
        (!result.is_empty()).then_some(())
    });

    // The template variables resolve to the job and target.
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(definition) = variable["definition"].as_str() else {
            continue;
        };
        let (selector, label) = parse_label_values(definition);
        let selector = substitute(selector);
        let expected = if label == "job" { JOB } else { TARGET };
        wait_for(
            &format!("variable {} to offer {expected}", variable["name"]),
            || {
                let values = label_values(&client, &prometheus, &selector, label).ok()?;
                values.iter().any(|v| v == expected).then_some(())
            },
        );
    }

    // Every panel query returns data. Some need a few scrapes (increase() needs two samples),
    // so each is polled until its own deadline; all misses are reported together.
    let mut missing = Vec::new();
    for (title, ref_id, expr) in queries(&dashboard) {
        let query = substitute(&expr);
        let started = Instant::now();
        let outcome = loop {
            match instant_query(&client, &prometheus, &query) {
                Ok(result) if !result.is_empty() => break Ok(()),
                Ok(_) if started.elapsed() < Duration::from_secs(20) => {
                    std::thread::sleep(Duration::from_millis(250))
                }
                Ok(_) => break Err("no data".to_owned()),
                Err(QueryError::Rejected(message)) => break Err(message),
                Err(QueryError::Transport(_)) if started.elapsed() < Duration::from_secs(20) => {
                    std::thread::sleep(Duration::from_millis(250))
                }
                Err(QueryError::Transport(message)) => break Err(message),
            }
        };
        if let Err(why) = outcome {
            missing.push(format!("  {title:?} {ref_id}: {why}\n    {query}"));
        }
    }
    assert!(
        missing.is_empty(),
        "{} dashboard quer{} returned nothing:\n{}\n\nexporter /metrics:\n{}",
        missing.len(),
        if missing.len() == 1 { "y" } else { "ies" },
        missing.join("\n"),
        stack.metrics(&client),
    );
}

/// `label_values(SELECTOR, LABEL)` → `(SELECTOR, LABEL)`.
fn parse_label_values(definition: &str) -> (&str, &str) {
    let inner = definition
        .trim()
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unsupported variable query {definition:?}"));
    let (selector, label) = inner
        .rsplit_once(',')
        .unwrap_or_else(|| panic!("label_values without a metric: {definition:?}"));
    (selector.trim(), label.trim())
}

#[derive(Debug)]
enum QueryError {
    /// Prometheus could not be reached or answered garbage; may be transient.
    Transport(String),
    /// Prometheus refused the query (bad syntax, unknown function); never transient.
    Rejected(String),
}

fn api_get(
    client: &reqwest::blocking::Client,
    url: &str,
    params: &[(&str, &str)],
) -> Result<Value, QueryError> {
    let response = client
        .get(url)
        .query(params)
        .send()
        .map_err(|e| QueryError::Transport(e.to_string()))?;
    let text = response
        .text()
        .map_err(|e| QueryError::Transport(e.to_string()))?;
    let body: Value =
        serde_json::from_str(&text).map_err(|e| QueryError::Transport(format!("{e}: {text}")))?;
    if body["status"] != "success" {
        return Err(QueryError::Rejected(format!(
            "{}: {}",
            body["errorType"], body["error"]
        )));
    }
    Ok(body["data"].clone())
}

/// The series an instant query returns now.
fn instant_query(
    client: &reqwest::blocking::Client,
    prometheus: &str,
    query: &str,
) -> Result<Vec<Value>, QueryError> {
    let data = api_get(
        client,
        &format!("{prometheus}/api/v1/query"),
        &[("query", query)],
    )?;
    match data["resultType"].as_str() {
        Some("vector") | Some("matrix") => {
            Ok(data["result"].as_array().cloned().unwrap_or_default())
        }
        // A scalar is always "data".
        Some("scalar") => Ok(vec![data["result"].clone()]),
        other => Err(QueryError::Rejected(format!(
            "unexpected result type {other:?}"
        ))),
    }
}

fn label_values(
    client: &reqwest::blocking::Client,
    prometheus: &str,
    selector: &str,
    label: &str,
) -> Result<Vec<String>, QueryError> {
    let data = api_get(
        client,
        &format!("{prometheus}/api/v1/label/{label}/values"),
        &[("match[]", selector)],
    )?;
    Ok(data
        .as_array()
        .map(|values| {
            values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// Polls `check` until it returns `Some`, failing the test after [`DEADLINE`].
fn wait_for<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    support::wait_for(what, DEADLINE, check, String::new)
}

fn require(program: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{program} not found; install it with `apt-get install {package}` (bash scripts/test.sh does)"
    );
}

/// Prometheus, the exporter and Redis. Fields drop in declaration order, so Prometheus
/// stops scraping before the exporter goes, and the exporter before Redis.
struct Stack {
    prometheus: Prometheus,
    exporter: Exporter,
    _redis: Redis,
}

impl Stack {
    fn start() -> Stack {
        require("redis-server", "redis-server");
        require("prometheus", "prometheus");
        let mut redis = Redis::start(RedisSpec {
            // Without a limit Redis reports no used/max ratio and the
            // "Memory used vs maxmemory" panel is rightly empty.
            args: vec!["--maxmemory".into(), "256mb".into()],
            ..RedisSpec::aof()
        });
        // One completed rewrite of a non-empty dataset, so the rewrite duration, base size
        // and growth ratio panels have something to show.
        redis.ok(&["SET", "dashboard-test:key", "value"]);
        wait_for("BGREWRITEAOF to be accepted", || {
            (!redis.cmd(&["BGREWRITEAOF"]).is_error()).then_some(())
        });
        wait_for("the AOF rewrite to finish", || {
            let info = redis.persistence();
            let done = info.get("aof_rewrite_in_progress").map(String::as_str) == Some("0")
                && info.get("aof_rewrite_scheduled").map(String::as_str) == Some("0")
                && info.get("aof_last_rewrite_time_sec").map(String::as_str) != Some("-1");
            done.then_some(())
        });
        redis.ok(&["SET", "dashboard-test:after-rewrite", "value"]);

        let target = Target {
            data_dir: Some(redis.data_dir()),
            ..Target::new(redis.url(), TARGET)
        };
        let exporter = Exporter::start_logging_at(&config_toml("1s", "900ms", &[target]), None);
        let prometheus = Prometheus::start(&prometheus_config(
            None,
            None,
            &static_job(JOB, exporter.port()),
        ));
        Stack {
            prometheus,
            exporter,
            _redis: redis,
        }
    }

    fn prometheus_url(&self) -> String {
        self.prometheus.url()
    }

    /// The exporter's current exposition, for failure messages.
    fn metrics(&self, client: &reqwest::blocking::Client) -> String {
        client
            .get(format!("http://127.0.0.1:{}/metrics", self.exporter.port()))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_else(|e| format!("<unavailable: {e}>"))
    }
}
