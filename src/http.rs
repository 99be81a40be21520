//! The exporter's HTTP surface. It only serves: a scrape reads the store and never talks to
//! Redis.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::card::CardState;
use crate::metrics;
use crate::state::Store;

/// Builds the router. Read endpoints answer GET and HEAD only; anything else gets 405.
pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(scrape))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(|| async { "OK\n" }))
        .with_state(store)
}

/// Serves on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    store: Arc<Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(store))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn scrape(State(store): State<Arc<Store>>) -> Response {
    // Rendering is pure CPU; keep it off the threads that drive polls.
    match tokio::task::spawn_blocking(move || metrics::render(&store)).await {
        Ok(body) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response(),
    }
}

async fn landing(State(store): State<Arc<Store>>) -> Html<String> {
    let rows: String = store.with_all(|targets| {
        targets
            .iter()
            .map(|t| {
                let (card, colour) = match t.current().map(|s| s.card) {
                    Some(CardState::Ok) => ("ok", "#2e7d32"),
                    Some(CardState::Err) => ("err", "#c62828"),
                    Some(CardState::NotApplicable) => ("n/a", "#757575"),
                    None => ("unknown (target down)", "#ef6c00"),
                };
                format!(
                    "<tr><td>{}</td><td style=\"color:{colour};font-weight:bold\">{card}</td><td>{}</td></tr>\n",
                    escape(&t.target.name),
                    if t.up { "up" } else { t.last_failure_reason.unwrap_or("not polled yet") },
                )
            })
            .collect()
    });
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>redis-persistence-exporter</title>\
         <meta http-equiv=\"refresh\" content=\"10\"></head><body>\
         <h1>redis-persistence-exporter</h1><p><a href=\"/metrics\">/metrics</a></p>\
         <table border=\"1\" cellpadding=\"4\"><tr><th>target</th><th>Last AOF Rewrite Status</th><th>poll</th></tr>\n{rows}</table>\
         <p>version {}</p></body></html>\n",
        env!("CARGO_PKG_VERSION")
    ))
}

/// Minimal HTML escaping for names that come from the config.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
