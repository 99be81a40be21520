//! One Prometheus and one Alertmanager launcher, each a child on a free loopback port in its
//! own temp dir.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

use super::exposition::parse_samples;
use super::http::{get_json, get_text, http_client};
use super::process::{start_on_free_port, tempdir, Proc};

/// Prometheus, for the tests that run a real server against the exporter.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";
/// Alertmanager, for the end-to-end alerting tests.
pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A prometheus.yml scraping and evaluating every second (as `write_prometheus_config` in
/// scripts/lib/stack.sh writes it; change both together): `rules` when given, alerts to the
/// Alertmanager on `alertmanager_port` when given, and `scrape_configs` (YAML, already
/// indented as a list).
pub fn prometheus_config(
    rules: Option<&Path>,
    alertmanager_port: Option<u16>,
    scrape_configs: &str,
) -> String {
    let mut out = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
    );
    if let Some(rules) = rules {
        out.push_str(&format!("rule_files:\n  - {}\n", rules.display()));
    }
    if let Some(port) = alertmanager_port {
        out.push_str(&format!(
            "alerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs:\n        - targets: ['127.0.0.1:{port}']\n"
        ));
    }
    out.push_str("scrape_configs:\n");
    out.push_str(scrape_configs);
    out
}

/// [`prometheus_config`] without rules or alerting, scraping every `interval` (timeout the
/// same): for an exposition too large to scrape every second on a loaded machine.
pub fn prometheus_config_every(interval: &str, scrape_configs: &str) -> String {
    format!(
        "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: {interval}\nscrape_configs:\n{scrape_configs}"
    )
}

/// A scrape config for one job of static `127.0.0.1:<port>` targets.
pub fn static_job(job: &str, port: u16) -> String {
    format!("  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
}

fn is_ready(port: u16) -> bool {
    get_text(&format!("http://127.0.0.1:{port}/-/ready"), &[]).is_ok()
}

/// A real Alertmanager with clustering off. Dropping it kills it.
pub struct Alertmanager {
    _dir: TempDir,
    proc: Proc,
    port: u16,
}

impl Alertmanager {
    /// Runs the given config file unchanged, with clustering off.
    pub fn start(config: &Path) -> Alertmanager {
        let dir = tempdir("rpe-alertmanager-");
        let storage = dir.path().join("data");
        let (proc, port) = start_on_free_port(
            "alertmanager",
            &dir.path().join("alertmanager.log"),
            |port| {
                let mut command = Command::new(ALERTMANAGER);
                command
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.path={}", storage.display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .arg("--cluster.listen-address=");
                command
            },
            |port, _| is_ready(port),
        );
        Alertmanager {
            _dir: dir,
            proc,
            port,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `GET /api/v2/alerts` (active, suppressed and unprocessed; never resolved).
    pub fn alerts(&self) -> Result<Vec<Value>, String> {
        let value = get_json(
            &format!("http://127.0.0.1:{}/api/v2/alerts", self.port),
            &[],
        )?;
        value
            .as_array()
            .cloned()
            .ok_or_else(|| format!("/api/v2/alerts is not an array: {value}"))
    }

    /// `POST /api/v2/alerts` with one alert of `labels` (no start/end: Alertmanager uses now
    /// and its resolve_timeout).
    pub fn post_alert(&self, labels: &serde_json::Map<String, Value>) {
        let body = serde_json::json!([{ "labels": labels }]);
        let response = http_client(std::time::Duration::from_secs(5))
            .post(format!("http://127.0.0.1:{}/api/v2/alerts", self.port))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .expect("POST /api/v2/alerts");
        let status = response.status();
        assert!(
            status.is_success(),
            "POST /api/v2/alerts: {status}: {}",
            response.text().unwrap_or_default()
        );
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.log_tail(lines)
    }
}

/// A real Prometheus with its config and TSDB in a temp dir. Dropping it kills it.
pub struct Prometheus {
    _dir: TempDir,
    proc: Proc,
    port: u16,
}

impl Prometheus {
    /// Runs with `config` (a whole prometheus.yml) and waits until it is ready.
    pub fn start(config: &str) -> Prometheus {
        let dir = tempdir("rpe-prometheus-");
        let path = dir.path().join("prometheus.yml");
        fs::write(&path, config).expect("write prometheus config");
        let storage = dir.path().join("data");
        let (proc, port) = start_on_free_port(
            "prometheus",
            &dir.path().join("prometheus.log"),
            |port| {
                let mut command = Command::new(PROMETHEUS);
                command
                    .arg(format!("--config.file={}", path.display()))
                    .arg(format!("--storage.tsdb.path={}", storage.display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"));
                command
            },
            |port, _| is_ready(port),
        );
        Prometheus {
            _dir: dir,
            proc,
            port,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The scrape targets' health and last errors, for failure messages.
    pub fn targets(&self) -> String {
        get_text(&format!("{}/api/v1/targets", self.url()), &[]).unwrap_or_else(|e| e)
    }

    fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let value = get_json(&format!("http://127.0.0.1:{}{path}", self.port), query)?;
        if value["status"] != "success" {
            return Err(format!("{path}: {value}"));
        }
        Ok(value["data"].clone())
    }

    /// An instant query's result vector.
    pub fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/query", &[("query", promql)])?;
        data["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("{promql}: not a vector: {data}"))
    }

    /// The single value of an instant query, if it returns exactly one series.
    pub fn scalar(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).ok()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `GET /api/v1/alerts`: pending and firing alerts.
    pub fn alerts(&self) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/alerts", &[])?;
        data["alerts"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("/api/v1/alerts: {data}"))
    }

    /// `GET /api/v1/rules` groups.
    pub fn rule_groups(&self) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/rules", &[])?;
        data["groups"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("/api/v1/rules: {data}"))
    }

    /// How many times the rule group `group` has been evaluated, from Prometheus's own
    /// `prometheus_rule_group_iterations_total`.
    pub fn group_iterations(&self, group: &str) -> Option<f64> {
        let text = get_text(&format!("http://127.0.0.1:{}/metrics", self.port), &[]).ok()?;
        parse_samples(&text)
            .into_iter()
            .find(|s| {
                s.name == "prometheus_rule_group_iterations_total"
                    && s.label("rule_group")
                        .is_some_and(|g| g.ends_with(&format!(";{group}")))
            })
            .map(|s| s.value)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.log_tail(lines)
    }
}
