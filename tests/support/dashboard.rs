//! The dashboards as Grafana reads them: panels (rows unfolded), each panel's queries, template
//! variables filled in the way Grafana fills them, and running a query through Prometheus's
//! HTTP API the way Grafana does (instant for tables, range for everything else).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The per-target dashboard.
pub const PER_TARGET_DASHBOARD: &str = "dashboards/redis-persistence.json";
/// The fleet dashboard.
pub const FLEET_DASHBOARD: &str = "dashboards/redis-persistence-fleet.json";

/// Reads and parses a dashboard, `path` relative to the repository root.
pub fn load_dashboard(path: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every non-row panel, including those nested in collapsed rows.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
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

/// One query of one panel.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    /// The panel's title.
    pub title: String,
    /// The query's `refId` (A, B, …).
    pub ref_id: String,
    /// The expression with its template variables still in.
    pub expr: String,
    /// Grafana runs it as an instant query (tables); otherwise as a range query.
    pub instant: bool,
}

/// Every query of every panel.
pub fn queries(dashboard: &Value) -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("<untitled>").to_owned();
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        assert!(!targets.is_empty(), "panel {title:?} has no queries");
        for target in targets {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {title:?} has a query without expr"));
            out.push(PanelQuery {
                title: title.clone(),
                ref_id: target["refId"].as_str().unwrap_or("?").to_owned(),
                expr: expr.to_owned(),
                instant: target["instant"] == true && target["range"] != true,
            });
        }
    }
    out
}

/// The dashboard's default time range (`time.from` is `now-6h`) as a PromQL duration (`6h`):
/// what Grafana puts in `$__range` when the dashboard opens.
pub fn default_range(dashboard: &Value) -> String {
    let from = dashboard["time"]["from"].as_str().expect("time.from");
    from.strip_prefix("now-")
        .unwrap_or_else(|| panic!("time.from {from:?} is not now-<duration>"))
        .to_owned()
}

/// Fills template variables as Grafana would: `vars` are `(name, value)` for the dashboard's
/// own variables (`job`, `target`) and `$__range`; `$__rate_interval` is what Grafana computes
/// for the data source's default 15 s scrape interval (4 × 15 s). Panics on anything left over,
/// so a new variable cannot slip through unfilled.
pub fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut out = expr.to_owned();
    for (name, value) in vars {
        out = out.replace(&format!("${{{name}}}"), value);
        out = out.replace(&format!("${name}"), value);
    }
    out = out.replace("$__rate_interval", "1m");
    assert!(
        !out.contains('$'),
        "unknown template variable left in {out:?} (from {expr:?})"
    );
    out
}

/// Why a query gave no answer.
#[derive(Debug)]
pub enum QueryError {
    /// Prometheus could not be reached or answered garbage; may be transient.
    Transport(String),
    /// Prometheus refused the query (bad syntax, unknown function); never transient.
    Rejected(String),
}

/// `GET <prometheus><path>` with `params`: the `data` of a successful answer.
pub fn api_get(
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

/// The series a query returns: evaluated now when `instant`, else over the last `window` at
/// `step` (Grafana's range query). A scalar counts as one series.
pub fn run_query(
    client: &reqwest::blocking::Client,
    prometheus: &str,
    query: &str,
    instant: bool,
    window: Duration,
    step: Duration,
) -> Result<Vec<Value>, QueryError> {
    let data = if instant {
        api_get(
            client,
            &format!("{prometheus}/api/v1/query"),
            &[("query", query)],
        )?
    } else {
        let end = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs_f64();
        let start = format!("{:.3}", end - window.as_secs_f64());
        let end = format!("{end:.3}");
        let step = format!("{}s", step.as_secs_f64());
        api_get(
            client,
            &format!("{prometheus}/api/v1/query_range"),
            &[
                ("query", query),
                ("start", &start),
                ("end", &end),
                ("step", &step),
            ],
        )?
    };
    match data["resultType"].as_str() {
        Some("vector") | Some("matrix") => {
            Ok(data["result"].as_array().cloned().unwrap_or_default())
        }
        Some("scalar") => Ok(vec![data["result"].clone()]),
        other => Err(QueryError::Rejected(format!(
            "unexpected result type {other:?}"
        ))),
    }
}

/// `label_values(SELECTOR, LABEL)` → `(SELECTOR, LABEL)`.
pub fn parse_label_values(definition: &str) -> (&str, &str) {
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

/// The values a variable query `label_values(selector, label)` offers.
pub fn label_values(
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
