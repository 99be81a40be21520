//! One target's page at `/target?name=<target>`: its card unfolded, the recent card changes
//! with their times, and the failed-attempt counters the exporter keeps for the AOF rewrite
//! and the RDB save. An unknown name is a 404 page.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::status_page::{ago, card_section, error_page, escape, page, Card};
use super::AppState;
use crate::card::{CardChange, CardState};
use crate::history::History;
use crate::state::{lock, unix_seconds, Store, TargetState};

/// Renders the page of target `name` at `now_unix`; `None` when no such target exists.
pub fn target_page(store: &Store, name: &str, now_unix: f64) -> Option<String> {
    let cell = store.get(name)?;
    let state = lock(&cell);
    let card = Card::read(&state, store.backups(), now_unix);
    let mut body = String::with_capacity(8192);
    card_section(&mut body, &card, now_unix, true);
    changes(&mut body, &state, now_unix);
    attempts(&mut body, &state, now_unix);
    polls(&mut body, &state);
    Some(page(&escape(name), &body))
}

fn label(card: Option<CardState>) -> &'static str {
    card.map_or("(first seen)", CardState::label)
}

/// `2024-05-01T10:00:00Z (5m ago)`.
fn when(at_unix: f64, now_unix: f64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(at_unix.max(0.0) as u64);
    format!(
        "{} ({} ago)",
        humantime::format_rfc3339_seconds(at),
        ago(now_unix - at_unix)
    )
}

/// The kept card changes, newest first.
fn changes(body: &mut String, state: &TargetState, now_unix: f64) {
    let kept = &state.card_changes;
    let _ = write!(
        body,
        "<h2>Card changes</h2><p>The last {} change(s) this exporter saw (up to {}).</p>",
        kept.len(),
        crate::card::CARD_CHANGES_KEPT
    );
    if kept.is_empty() {
        body.push_str("<p class=\"empty\">None yet: the target has not been read.</p>");
        return;
    }
    body.push_str("<table class=\"changes\"><tr><th>when</th><th>from</th><th>to</th></tr>");
    for CardChange { from, to, at_unix } in kept.iter().rev() {
        let _ = write!(
            body,
            "<tr class=\"change\"><td>{}</td><td>{}</td><td class=\"to {}\">{}</td></tr>",
            when(*at_unix, now_unix),
            label(*from),
            to.label(),
            to.label()
        );
    }
    body.push_str("</table>");
}

/// The history counters, one row per mechanism.
fn attempts(body: &mut String, state: &TargetState, now_unix: f64) {
    body.push_str(
        "<h2>Failed attempts</h2><table class=\"attempts\"><tr><th></th><th>failed attempts (total)</th>\
         <th>in the current streak</th><th>transient recoveries</th><th>err since</th></tr>",
    );
    let rows: [(&str, &str, &History); 2] = [
        ("aof-rewrite", "AOF rewrite", &state.diagnosis.aof),
        ("rdb-save", "RDB save", &state.diagnosis.rdb),
    ];
    for (id, name, history) in rows {
        let _ = write!(
            body,
            "<tr id=\"attempts-{id}\"><th>{name}</th><td class=\"total\">{}</td><td class=\"streak\">{}{}</td>\
             <td class=\"transient\">{}</td><td class=\"since\">{}</td></tr>",
            history.failed_attempts_total,
            history.streak_failures,
            if history.stuck() { " (stuck)" } else { "" },
            history.transient_recoveries_total,
            history
                .err_since_unix
                .map_or_else(|| "&mdash;".to_owned(), |at| when(at, now_unix)),
        );
    }
    body.push_str("</table>");
}

/// The poll bookkeeping: how often it was read and why reads failed.
fn polls(body: &mut String, state: &TargetState) {
    let _ = write!(
        body,
        "<h2>Polls</h2><p class=\"polls\">{} poll(s), {} failed",
        state.polls_total,
        state.failures_total.values().sum::<u64>()
    );
    if !state.failures_total.is_empty() {
        let reasons: Vec<String> = state
            .failures_total
            .iter()
            .map(|(reason, count)| format!("{} &times; {count}", escape(reason)))
            .collect();
        let _ = write!(body, " ({})", reasons.join(", "));
    }
    body.push_str(".</p>");
}

/// `GET /target?name=`.
pub(super) async fn target(
    State(AppState { store, .. }): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let name = url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, value)| key == "name" && !value.is_empty())
        .map(|(_, value)| value.into_owned());
    let Some(name) = name else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "which target? Use /target?name=<target>.",
        );
    };
    // One target: cheap to render, no render turn needed.
    match target_page(&store, &name, unix_seconds(SystemTime::now())) {
        Some(body) => Html(body).into_response(),
        None => error_page(
            StatusCode::NOT_FOUND,
            &format!("no target named {name:?} is configured or discovered."),
        ),
    }
}
