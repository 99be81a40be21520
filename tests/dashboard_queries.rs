//! Every query of both dashboards returns data from a real stack of 1,001 targets.
//!
//! Four real `redis-server`s, each polled as 250 targets (labels `env` and `shard`) by the real
//! exporter every 2 s, plus one target on a closed port; Debian's `/usr/bin/prometheus` scrapes
//! the exporter every 2 s under the job name the dashboards and the alert rules expect. The
//! servers carry the states the panels show:
//!
//! - `fleet-0000`…`0249`: AOF, one completed rewrite, `maxmemory` set: the per-target dashboard
//!   opens on `fleet-0000`.
//! - `fleet-0250`…`0499`: AOF whose last two rewrites were killed: card err, stuck, failure
//!   reason `child_killed` from the Redis log.
//! - `fleet-0500`…`0749`: RDB only: card n/a.
//! - `fleet-0750`…`0999`: AOF, never rewritten.
//! - `fleet-down`: nothing listens: `redis_up` 0, poll failures.
//!
//! Each panel query, with the template variables filled in the way Grafana would, runs the way
//! Grafana runs it (instant for tables, range otherwise) and must return at least one series,
//! except the few listed in [`EMPTY_HERE`] with the reason, which must return none: a query that
//! silently breaks cannot hide either way. Evaluation times at this scale are measured by
//! `scripts/bench-dashboard-queries.sh`, not here.
//!
//! Needs `redis-server` and `prometheus` on PATH; `bash scripts/test.sh` installs them.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    config_toml, default_range, free_port, label_values, load_dashboard, panels,
    parse_label_values, prometheus_config_every, queries, run_query, static_job, substitute,
    Exporter, Prometheus, QueryError, Redis, RedisSpec, Target, FLEET_DASHBOARD,
    PER_TARGET_DASHBOARD,
};

/// The scrape job name; the dashboards' `$job` variable and the alert rules key off it.
const JOB: &str = "redis-persistence-exporter";
/// The target the per-target dashboard is opened on: healthy, rewritten once, maxmemory set.
const TARGET: &str = "fleet-0000";
/// The target on a closed port.
const DOWN: &str = "fleet-down";
/// Targets per redis-server.
const PER_SERVER: usize = 250;
/// Real redis-servers; with [`DOWN`], `SERVERS * PER_SERVER + 1` targets.
const SERVERS: usize = 4;
/// Exporter poll and Prometheus scrape interval.
const INTERVAL: &str = "2s";
/// How long any one readiness condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(90);
/// How long one query may stay empty (a rate needs two scrapes) before it counts as broken.
const QUERY_DEADLINE: Duration = Duration::from_secs(30);

/// The fleet's card counts in this stack. These queries end in `or vector(0)`, so a result
/// alone proves nothing; the count must match the faults put in.
const CARD_COUNTS: &[(&str, f64)] = &[
    ("ok", 500.0),
    ("err", 250.0),
    ("stuck", 250.0),
    ("n/a", 250.0),
    ("unknown (down)", 1.0),
    ("targets", 1001.0),
];

/// Panels that legitimately show nothing in this stack, with why. Their queries must return
/// nothing; anything else must return something.
const EMPTY_HERE: &[(&str, &str, &str)] = &[(
    FLEET_DASHBOARD,
    "Past their rewrite threshold",
    "no AOF here reaches auto-aof-rewrite-min-size (64 MB), and a server past its threshold \
     starts the rewrite itself within 100 ms, so overdue is 0 everywhere",
)];

#[test]
fn dashboard_is_well_formed() {
    let dashboard = load_dashboard(PER_TARGET_DASHBOARD);
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
        for query in queries(&serde_json::json!({ "panels": [panel] })) {
            let expr = query.expr;
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
fn fleet_dashboard_is_well_formed() {
    let dashboard = load_dashboard(FLEET_DASHBOARD);
    for query in queries(&dashboard) {
        assert!(
            query.expr.contains("$job"),
            "panel {:?} {} ignores $job: {}",
            query.title,
            query.ref_id,
            query.expr
        );
    }
}

#[test]
fn every_dashboard_query_returns_data_at_1000_targets() {
    let started = Instant::now();
    let stack = Stack::start();
    let prometheus = stack.prometheus.url();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    // Prometheus holds a poll of every target: 1,000 up and the closed port down.
    let real = (SERVERS * PER_SERVER).to_string();
    let all_up = format!("count(redis_up{{job=\"{JOB}\"}} == 1) == {real}");
    let down = format!("redis_up{{job=\"{JOB}\",target=\"{DOWN}\"}} == 0");
    wait_for(&format!("Prometheus to see {all_up} and {down}"), || {
        let up = run_query(
            &client,
            &prometheus,
            &all_up,
            true,
            Duration::ZERO,
            Duration::ZERO,
        );
        let down = run_query(
            &client,
            &prometheus,
            &down,
            true,
            Duration::ZERO,
            Duration::ZERO,
        );
        (!up.ok()?.is_empty() && !down.ok()?.is_empty()).then_some(())
    });

    let per_target = load_dashboard(PER_TARGET_DASHBOARD);
    let fleet = load_dashboard(FLEET_DASHBOARD);
    let per_target_range = default_range(&per_target);
    let fleet_range = default_range(&fleet);
    let dashboards = [
        (
            PER_TARGET_DASHBOARD,
            &per_target,
            vec![
                ("job", JOB),
                ("target", TARGET),
                ("__range", &per_target_range),
            ],
        ),
        (
            FLEET_DASHBOARD,
            &fleet,
            vec![("job", JOB), ("__range", &fleet_range)],
        ),
    ];

    // The template variables offer the job and every target.
    for (name, dashboard, vars) in &dashboards {
        for variable in dashboard["templating"]["list"].as_array().unwrap() {
            let Some(definition) = variable["definition"].as_str() else {
                continue;
            };
            let (selector, label) = parse_label_values(definition);
            let selector = substitute(selector, vars);
            let (expected, at_least) = if label == "job" {
                (JOB, 1)
            } else {
                (TARGET, 1001)
            };
            wait_for(
                &format!("{name} variable {} to offer {expected}", variable["name"]),
                || {
                    let values = label_values(&client, &prometheus, &selector, label).ok()?;
                    (values.len() >= at_least && values.iter().any(|v| v == expected)).then_some(())
                },
            );
        }
    }

    // Every panel query returns data, polled up to its own deadline (increase() needs two
    // samples); the allow-listed ones return none. All misses are reported together.
    let mut wrong = Vec::new();
    let mut ran = 0;
    for (name, dashboard, vars) in &dashboards {
        for query in queries(dashboard) {
            ran += 1;
            let promql = substitute(&query.expr, vars);
            let empty_here = EMPTY_HERE
                .iter()
                .any(|(d, title, _)| d == name && *title == query.title);
            let outcome = if empty_here {
                match stack.run(&client, &promql, query.instant) {
                    Ok(result) if result.is_empty() => Ok(()),
                    Ok(result) => Err(format!(
                        "allow-listed as empty here but returned {} series: update EMPTY_HERE",
                        result.len()
                    )),
                    Err(e) => Err(format!("{e:?}")),
                }
            } else if let Some((_, count)) = CARD_COUNTS
                .iter()
                .find(|(title, _)| *name == FLEET_DASHBOARD && *title == query.title)
            {
                stack.until_value(&client, &promql, *count)
            } else {
                stack.until_data(&client, &promql, query.instant)
            };
            if let Err(why) = outcome {
                wrong.push(format!(
                    "  {name} {:?} {}: {why}\n    {promql}",
                    query.title, query.ref_id
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {ran} dashboard queries are wrong at {} targets:\n{}\n\nPrometheus targets: {}",
        wrong.len(),
        SERVERS * PER_SERVER + 1,
        wrong.join("\n"),
        stack.prometheus.targets(),
    );
    eprintln!(
        "{ran} queries over {} targets on {SERVERS} redis-servers, {:.1?} in all",
        SERVERS * PER_SERVER + 1,
        started.elapsed()
    );
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

/// Prometheus, the exporter and the redis-servers. Fields drop in declaration order, so
/// Prometheus stops scraping before the exporter goes, and the exporter before Redis.
struct Stack {
    prometheus: Prometheus,
    _exporter: Exporter,
    _servers: Vec<Redis>,
}

impl Stack {
    fn start() -> Stack {
        require("redis-server", "redis-server");
        require("prometheus", "prometheus");
        // Without a limit Redis reports no used/max ratio and "Memory used vs maxmemory" is
        // rightly empty.
        let maxmemory = || vec!["--maxmemory".to_owned(), "256mb".to_owned()];
        let mut healthy = Redis::start(RedisSpec {
            args: maxmemory(),
            ..RedisSpec::aof()
        });
        // One completed rewrite of a non-empty dataset: rewrite duration, base size and
        // growth ratio have something to show.
        healthy.ok(&["SET", "dashboard-test:key", "value"]);
        assert_eq!(healthy.clean_rewrite(), "ok", "{}", healthy.aof_fields());
        healthy.ok(&["SET", "dashboard-test:after-rewrite", "value"]);

        // Two killed rewrites: err, and stuck from the first poll (the exporter reads Redis's
        // consecutive-failure counter). Enough keys that the slowed rewrite is still running
        // when it is killed.
        let mut failing = Redis::start(RedisSpec {
            args: maxmemory(),
            ..RedisSpec::aof()
        });
        failing.populate(10_000);
        failing.kill_rewrite_child();
        failing.kill_rewrite_child();

        let rdb_only = Redis::start(RedisSpec::rdb());
        let never_rewritten = Redis::start(RedisSpec::aof());
        let servers = vec![healthy, failing, rdb_only, never_rewritten];

        let mut targets = Vec::with_capacity(SERVERS * PER_SERVER + 1);
        for (i, redis) in servers.iter().enumerate() {
            let env = if i < 2 { "prod" } else { "staging" };
            for j in 0..PER_SERVER {
                let name = format!("fleet-{:04}", i * PER_SERVER + j);
                targets.push(
                    Target::host(&name, redis)
                        .label("env", env)
                        .label("shard", &format!("shard-{}", j % 8)),
                );
            }
        }
        targets.push(
            Target::url(DOWN, &format!("redis://127.0.0.1:{}", free_port()))
                .label("env", "prod")
                .label("shard", "shard-0"),
        );
        let exporter = Exporter::start_logging_at(&config_toml(INTERVAL, "1500ms", &targets), None);
        let prometheus = Prometheus::start(&prometheus_config_every(
            INTERVAL,
            &static_job(JOB, exporter.port()),
        ));
        Stack {
            prometheus,
            _exporter: exporter,
            _servers: servers,
        }
    }

    /// Runs `promql` once as Grafana would: instant, or a range over the last 2 minutes at the
    /// scrape interval.
    fn run(
        &self,
        client: &reqwest::blocking::Client,
        promql: &str,
        instant: bool,
    ) -> Result<Vec<Value>, QueryError> {
        run_query(
            client,
            &self.prometheus.url(),
            promql,
            instant,
            Duration::from_secs(120),
            Duration::from_secs(2),
        )
    }

    /// Runs `promql` (instant) until it returns one series of value `expected`, for up to
    /// [`QUERY_DEADLINE`].
    fn until_value(
        &self,
        client: &reqwest::blocking::Client,
        promql: &str,
        expected: f64,
    ) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let last = match self.run(client, promql, true) {
                Ok(result) => {
                    let values: Vec<f64> = result
                        .iter()
                        .filter_map(|s| s["value"][1].as_str()?.parse().ok())
                        .collect();
                    if values == [expected] {
                        return Ok(());
                    }
                    format!("{values:?}, expected [{expected}]")
                }
                Err(QueryError::Rejected(message)) => return Err(message),
                Err(QueryError::Transport(message)) => message,
            };
            if started.elapsed() >= QUERY_DEADLINE {
                return Err(last);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Runs `promql` until it returns a series, for up to [`QUERY_DEADLINE`].
    fn until_data(
        &self,
        client: &reqwest::blocking::Client,
        promql: &str,
        instant: bool,
    ) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let retry = match self.run(client, promql, instant) {
                Ok(result) if !result.is_empty() => return Ok(()),
                Ok(_) => "no data".to_owned(),
                Err(QueryError::Rejected(message)) => return Err(message),
                Err(QueryError::Transport(message)) => message,
            };
            if started.elapsed() >= QUERY_DEADLINE {
                return Err(retry);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
