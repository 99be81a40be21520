//! The fleet status page at `/`: a summary of counts by state, filters, and one card per
//! target, worst first. Plain HTML that refreshes itself; no JavaScript, no external assets.
//! Every name, label and reason shown comes from config or a peer and is escaped.
//!
//! The query parameters are a contract: `state=ok|err|stuck|not_applicable|unknown` (at most
//! once) and `label=key:value` (repeatable; all must match). A bad value is a 400 that says
//! what is accepted; an unknown parameter is ignored with a note on the page.

use std::fmt::Write;
use std::time::SystemTime;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use crate::backup::Board;
use crate::card::CardState;
use crate::report::{self, human_bytes, TargetReport};
use crate::state::{unix_seconds, Store, TargetState};

/// How often the page reloads itself, in seconds.
const REFRESH_SECONDS: u32 = 5;

/// A state to filter on: the card's, with `stuck` (an err that survived more than one
/// attempt) as its own choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// The card is ok.
    Ok,
    /// The card is err, stuck or not.
    Err,
    /// The card is err and stuck.
    Stuck,
    /// AOF is off.
    NotApplicable,
    /// The target is down or not polled yet.
    Unknown,
}

impl StateFilter {
    /// Every choice, in the summary's order, with its query value.
    pub const ALL: [(StateFilter, &'static str); 5] = [
        (StateFilter::Err, "err"),
        (StateFilter::Stuck, "stuck"),
        (StateFilter::Unknown, "unknown"),
        (StateFilter::Ok, "ok"),
        (StateFilter::NotApplicable, "not_applicable"),
    ];

    fn value(self) -> &'static str {
        StateFilter::ALL
            .iter()
            .find(|(state, _)| *state == self)
            .map_or("", |(_, value)| value)
    }

    fn matches(self, report: &TargetReport) -> bool {
        match self {
            StateFilter::Ok => report.card == Some(CardState::Ok),
            StateFilter::Err => report.card == Some(CardState::Err),
            StateFilter::Stuck => {
                report.card == Some(CardState::Err) && report.fields.aof_rewrite_stuck
            }
            StateFilter::NotApplicable => report.card == Some(CardState::NotApplicable),
            StateFilter::Unknown => report.card.is_none(),
        }
    }
}

/// A query parameter the page cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// `state=` with a value outside the list.
    #[error("unknown state {0:?}: use one of ok, err, stuck, not_applicable, unknown")]
    UnknownState(String),
    /// `state=` given twice with different values.
    #[error("state given more than once: filter on one state at a time")]
    TwoStates,
    /// `label=` without a `key:value` shape.
    #[error("label filter {0:?} is not key:value (for example label=env:prod)")]
    BadLabel(String),
}

/// What the page shows, from its query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only targets in this state.
    pub state: Option<StateFilter>,
    /// Only targets with every one of these labels.
    pub labels: Vec<(String, String)>,
    /// Parameters the page does not know, ignored.
    pub ignored: Vec<String>,
}

impl Filter {
    /// Reads a raw query string (`state=err&label=env:prod`).
    pub fn parse(query: &str) -> Result<Filter, FilterError> {
        let mut filter = Filter::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "state" => {
                    let state = StateFilter::ALL
                        .iter()
                        .find(|(_, name)| *name == value)
                        .map(|(state, _)| *state)
                        .ok_or_else(|| FilterError::UnknownState(value.clone().into_owned()))?;
                    if filter.state.is_some_and(|s| s != state) {
                        return Err(FilterError::TwoStates);
                    }
                    filter.state = Some(state);
                }
                "label" => match value.split_once(':') {
                    Some((k, v)) if !k.is_empty() => {
                        filter.labels.push((k.to_owned(), v.to_owned()));
                    }
                    _ => return Err(FilterError::BadLabel(value.into_owned())),
                },
                _ => filter.ignored.push(key.into_owned()),
            }
        }
        Ok(filter)
    }

    fn labels_match(&self, labels: &[(String, String)]) -> bool {
        self.labels
            .iter()
            .all(|wanted| labels.iter().any(|have| have == wanted))
    }

    /// The query string for this filter's labels with `state` instead of its own.
    fn query_with(&self, state: Option<StateFilter>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(state) = state {
            query.append_pair("state", state.value());
        }
        for (k, v) in &self.labels {
            query.append_pair("label", &format!("{k}:{v}"));
        }
        let query = query.finish();
        if query.is_empty() {
            "/".to_owned()
        } else {
            format!("/?{query}")
        }
    }
}

/// One target as a card shows it: the shared report plus what the page adds.
pub(super) struct Card {
    pub(super) report: TargetReport,
    /// The user's labels (not `target`).
    pub(super) labels: Vec<(String, String)>,
    pub(super) uptime_seconds: Option<u64>,
    pub(super) used_memory_bytes: Option<u64>,
    pub(super) maxmemory_bytes: Option<u64>,
}

impl Card {
    pub(super) fn read(state: &TargetState, backups: &Board, now_unix: f64) -> Card {
        let info = state.current().map(|s| &s.info);
        Card {
            report: report::read_with_backup(state, backups, now_unix),
            labels: state.target.labels.clone(),
            uptime_seconds: info.and_then(|i| i.uptime_seconds),
            used_memory_bytes: info.and_then(|i| i.used_memory_bytes),
            maxmemory_bytes: info.and_then(|i| i.maxmemory_bytes),
        }
    }

    /// Worst first: writes failing, stuck, err, down, RDB save failing, ok, n/a.
    fn rank(&self) -> u8 {
        let r = &self.report;
        let f = &r.fields;
        if r.up && f.aof_enabled == Some(true) && f.aof_write_ok == Some(false) {
            0
        } else if r.card == Some(CardState::Err) && f.aof_rewrite_stuck {
            1
        } else if r.card == Some(CardState::Err) {
            2
        } else if r.card.is_none() {
            3
        } else if f.rdb_last_bgsave_ok == Some(false) {
            4
        } else if r.card == Some(CardState::Ok) {
            5
        } else {
            6
        }
    }
}

/// Renders the fleet page for `filter` at `now_unix`: what `GET /` answers.
pub fn fleet_page(store: &Store, filter: &Filter, now_unix: f64) -> String {
    let mut cards: Vec<Card> = store.with_all(|targets| {
        targets
            .iter()
            .filter(|t| filter.labels_match(&t.target.labels))
            .map(|t| Card::read(t, store.backups(), now_unix))
            .collect()
    });
    let mut body = String::with_capacity(2048 + cards.len() * 1024);
    summary(&mut body, &cards, filter, store.len());
    cards.retain(|c| filter.state.is_none_or(|s| s.matches(&c.report)));
    cards.sort_by(|a, b| {
        a.rank()
            .cmp(&b.rank())
            .then_with(|| a.report.target.cmp(&b.report.target))
    });
    if cards.is_empty() {
        body.push_str("<p class=\"empty\">No target matches this filter.</p>");
    }
    for card in &cards {
        card_section(&mut body, card, now_unix, false);
    }
    page("Redis persistence", &body)
}

/// The counts by state (each a link to that filter) and the filter in force.
fn summary(body: &mut String, cards: &[Card], filter: &Filter, fleet: usize) {
    let _ = write!(
        body,
        "<nav class=\"summary\"><a class=\"count all\" id=\"count-all\" href=\"{}\"><b>{}</b> targets</a>",
        escape(&filter.query_with(None)),
        cards.len()
    );
    for (state, value) in StateFilter::ALL {
        let count = cards.iter().filter(|c| state.matches(&c.report)).count();
        let current = if filter.state == Some(state) {
            " current"
        } else {
            ""
        };
        let _ = write!(
            body,
            " <a class=\"count {value}{current}\" id=\"count-{value}\" href=\"{}\"><b>{count}</b> {}</a>",
            escape(&filter.query_with(Some(state))),
            value.replace('_', " "),
        );
    }
    body.push_str("</nav>");
    if filter.state.is_some() || !filter.labels.is_empty() {
        let mut what = Vec::new();
        if let Some(state) = filter.state {
            what.push(format!("state <b>{}</b>", state.value()));
        }
        for (k, v) in &filter.labels {
            what.push(format!("label <b>{}</b>", escape(&format!("{k}={v}"))));
        }
        let _ = write!(
            body,
            "<p class=\"filter\">Filtered by {} ({fleet} targets in all). <a href=\"/\">Show all</a></p>",
            what.join(", "),
        );
    }
    if !filter.ignored.is_empty() {
        let names: Vec<String> = filter.ignored.iter().map(|n| escape(n)).collect();
        let _ = write!(
            body,
            "<p class=\"note\">Ignored unknown parameter(s): {}. The page knows <code>state</code> and <code>label</code>.</p>",
            names.join(", ")
        );
    }
}

/// The link to a target's own page.
pub(super) fn target_href(name: &str) -> String {
    let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    escape(&format!("/target?name={name}"))
}

/// One card. On a target's own page (`open`) the next steps are unfolded.
pub(super) fn card_section(body: &mut String, card: &Card, now_unix: f64, open: bool) {
    let r = &card.report;
    let (class, label) = match r.card {
        Some(CardState::Ok) => ("ok", "ok"),
        Some(CardState::Err) => ("err", "err"),
        Some(CardState::NotApplicable) => ("na", "n/a"),
        None => ("unknown", "unknown"),
    };
    let since = r
        .card_since_unix
        .map(|at| format!("since {} ago", ago(now_unix - at)))
        .unwrap_or_default();
    let streak = if r.fields.aof_rewrite_stuck {
        format!(
            "<span class=\"tag stuck\">stuck: {} failed attempts</span>",
            r.fields.aof_rewrite_failures_in_streak
        )
    } else if r.card == Some(CardState::Err) {
        "<span class=\"tag\">1 failed attempt so far</span>".to_owned()
    } else if r.fields.aof_rewrite_transient_recoveries > 0 {
        format!(
            "<span class=\"tag\">{} transient err(s) recovered</span>",
            r.fields.aof_rewrite_transient_recoveries
        )
    } else {
        String::new()
    };
    let _ = write!(
        body,
        "<section class=\"target {class}\" id=\"target-{id}\"><h2><span class=\"card {class}\">{label}</span> \
         <a class=\"name\" href=\"{href}\">{name}</a></h2>",
        id = escape(&r.target).replace([' ', '/', ':'], "-"),
        href = target_href(&r.target),
        name = escape(&r.target),
    );
    if !card.labels.is_empty() {
        body.push_str("<p class=\"labels\">");
        for (k, v) in &card.labels {
            let filter: String =
                url::form_urlencoded::byte_serialize(format!("{k}:{v}").as_bytes()).collect();
            let _ = write!(
                body,
                "<a class=\"label\" href=\"{}\">{}={}</a> ",
                escape(&format!("/?label={filter}")),
                escape(k),
                escape(v)
            );
        }
        body.push_str("</p>");
    }
    let _ = write!(
        body,
        "<p class=\"since\">Last AOF Rewrite Status {since} {streak}</p>"
    );
    if r.up {
        siblings(body, card);
    }
    let _ = write!(body, "<p class=\"headline\">{}</p>", escape(&r.headline));
    if let Some(backup) = &r.backup {
        let _ = write!(body, "<p class=\"backup\">{}</p>", escape(&backup.line));
    }
    if !r.causes.is_empty() {
        body.push_str("<ul class=\"causes\">");
        for c in &r.causes {
            let _ = write!(
                body,
                "<li>probable cause ({}): <b>{}</b> &mdash; {}</li>",
                escape(c.mechanism),
                escape(c.reason),
                escape(c.advice)
            );
        }
        body.push_str("</ul>");
    }
    if !r.context.is_empty() {
        body.push_str("<ul class=\"context\">");
        for line in &r.context {
            let _ = write!(body, "<li>{}</li>", escape(line));
        }
        body.push_str("</ul>");
    }
    if !r.next_steps.is_empty() {
        let _ = write!(
            body,
            "<details class=\"steps\"{}><summary>Next steps ({})</summary><ol>",
            if open { " open" } else { "" },
            r.next_steps.len()
        );
        for step in &r.next_steps {
            let _ = write!(body, "<li>{}</li>", escape(step));
        }
        body.push_str("</ol></details>");
    }
    body.push_str("</section>\n");
}

/// The line of siblings: last RDB save, memory, replicas in sync, uptime.
fn siblings(body: &mut String, card: &Card) {
    let f = &card.report.fields;
    let rdb = match (f.rdb_last_save_age_seconds, f.rdb_last_bgsave_ok) {
        (Some(age), Some(false)) => format!("RDB save <b>failed</b>, last good {} ago", ago(age)),
        (Some(age), _) if f.rdb_stale == Some(true) => {
            format!("RDB saved <b>{} ago (stale)</b>", ago(age))
        }
        (Some(age), _) => format!("RDB saved {} ago", ago(age)),
        (None, _) => "RDB save unknown".to_owned(),
    };
    let memory = match (card.used_memory_bytes, card.maxmemory_bytes) {
        (Some(used), Some(max)) if max > 0 => format!(
            "memory {} / {} ({:.0}%)",
            human_bytes(used),
            human_bytes(max),
            used as f64 * 100.0 / max as f64
        ),
        (Some(used), _) => format!("memory {} (no maxmemory)", human_bytes(used)),
        (None, _) => "memory unknown".to_owned(),
    };
    let replicas = format!(
        "replicas {}/{} in sync",
        f.online_replicas,
        f.connected_replicas.unwrap_or(0)
    );
    let uptime = card.uptime_seconds.map_or_else(
        || "uptime unknown".to_owned(),
        |s| format!("up {}", ago(s as f64)),
    );
    let _ = write!(
        body,
        "<p class=\"siblings\">{rdb} &middot; {memory} &middot; {replicas} &middot; {uptime}</p>"
    );
}

/// A coarse age: `42s`, `17m`, `5h`, `3d`.
pub(super) fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..120 => format!("{s}s"),
        120..7_200 => format!("{}m", s / 60),
        7_200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The page around `body`.
pub(super) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\"><title>{title} &middot; redis-persistence-exporter</title>\
         <style>body{{font-family:sans-serif;margin:1.5em;max-width:70em}}\
         .card{{display:inline-block;min-width:4.5em;text-align:center;color:#fff;border-radius:4px;padding:.1em .4em}}\
         .card.ok{{background:#2e7d32}}.card.err{{background:#c62828}}.card.na{{background:#9e9e9e}}.card.unknown{{background:#ef6c00}}\
         section{{border-left:6px solid #ccc;padding:.2em 1em;margin:1em 0}}section.ok{{border-color:#2e7d32}}\
         section.err{{border-color:#c62828}}section.na{{border-color:#9e9e9e}}section.unknown{{border-color:#ef6c00}}\
         .tag{{background:#eee;border-radius:3px;padding:0 .3em;margin-left:.5em}}.tag.stuck{{background:#ffcdd2}}\
         h2{{font-size:1.1em;margin:.4em 0}}h2 a.name{{color:inherit}}p{{margin:.3em 0}}\
         .summary{{font-size:1.1em;margin:1em 0}}.summary a{{margin-right:.8em;text-decoration:none;padding:.2em .5em;border-radius:4px;border:1px solid #ccc;color:#222}}\
         .summary a.err,.summary a.stuck{{border-color:#c62828}}.summary a.unknown{{border-color:#ef6c00}}.summary a.ok{{border-color:#2e7d32}}\
         .summary a.current{{background:#e3f2fd}}.labels a{{font-size:.85em;background:#e8eaf6;color:#283593;border-radius:3px;padding:0 .3em;text-decoration:none}}\
         .siblings{{color:#444;font-size:.9em}}.filter,.note{{background:#fff8e1;padding:.3em .6em}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;padding:.2em .6em;text-align:left}}</style></head><body>\
         <h1>{title}</h1><p><a href=\"/\">all targets</a> &middot; <a href=\"/metrics\">/metrics</a> &middot; refreshes every {REFRESH_SECONDS} s &middot; version {}</p>{body}</body></html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// A page saying what went wrong, with `status`.
pub(super) fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!("<p class=\"error\">{}</p>", escape(message));
    (status, Html(page(status.as_str(), &body))).into_response()
}

/// HTML escaping for text and attribute values: names and labels come from config and
/// discovery, reasons and log-derived text from peers.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /`.
pub(super) async fn fleet(
    State(AppState { store, renders, .. }): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    let filter = match Filter::parse(query.as_deref().unwrap_or("")) {
        Ok(filter) => filter,
        Err(error) => return error_page(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    // The same bound and thread as a scrape: it reads every target too.
    let Ok(_permit) = renders.acquire_owned().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    };
    let render = move || fleet_page(&store, &filter, unix_seconds(SystemTime::now()));
    match tokio::task::spawn_blocking(render).await {
        Ok(body) => Html(body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response(),
    }
}

#[cfg(test)]
mod tests;
