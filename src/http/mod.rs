//! The exporter's HTTP surface. It only serves: a scrape reads the store and never talks to
//! Redis.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use std::time::{Duration, SystemTime};

use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

mod allow_list;
mod probe;
mod server;
mod web_config;

use crate::card::CardState;
use crate::config::Settings;
use crate::metrics;
use crate::report::{self, TargetReport};
use crate::state::{unix_seconds, Store};
use probe::ProbeError;
pub use server::{connection_cap, raise_descriptor_limit};
use web_config::BasicAuth;
pub use web_config::{load as load_web_config, WebConfig};

/// A reload request from `POST /-/reload`; the answer is the outcome to report.
pub type ReloadRequest = tokio::sync::oneshot::Sender<Result<String, String>>;

/// How long any request may take before it is answered 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request body accepted; no endpoint needs one.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// Renders of /metrics allowed at once; more wait their turn, so a scrape storm costs memory
/// for a few renders only.
const MAX_CONCURRENT_RENDERS: usize = 4;
/// Probes allowed at once. A probe waits on a Redis for up to `poll_timeout`, so probes have
/// their own bound and never hold a render's turn: a scrape never waits behind a probe.
const MAX_CONCURRENT_PROBES: usize = 8;
/// How long a probe waits for its turn before it is answered 503.
const PROBE_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// The gzip level of compressed responses. Prometheus always asks for gzip; at fleet scale the
/// exposition is megabytes of highly repetitive text, and level 1 already shrinks it about
/// 15-fold at a fraction of the default level's CPU (see docs/benchmarks.md).
pub const GZIP_LEVEL: u32 = 1;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The state to render.
    pub store: Arc<Store>,
    /// Where reload requests go; `None` when reloading is not possible (no config file).
    pub reload: Option<tokio::sync::mpsc::Sender<ReloadRequest>>,
    /// Bounds concurrent renders of `/metrics` and `/`.
    pub renders: Arc<tokio::sync::Semaphore>,
    /// Bounds concurrent probes, apart from renders.
    pub probes: Arc<tokio::sync::Semaphore>,
    /// The running settings (for `/probe`), replaced on reload.
    pub settings: Arc<std::sync::RwLock<Arc<Settings>>>,
}

impl AppState {
    /// State for `store`, optionally accepting reloads.
    pub fn new(
        store: Arc<Store>,
        reload: Option<tokio::sync::mpsc::Sender<ReloadRequest>>,
        settings: Arc<Settings>,
    ) -> Self {
        AppState {
            store,
            reload,
            renders: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_RENDERS)),
            probes: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_PROBES)),
            settings: Arc::new(std::sync::RwLock::new(settings)),
        }
    }
}

/// Builds the router. Read endpoints answer GET and HEAD only; anything else gets 405.
/// `POST /-/reload` exists only with `lifecycle` (`--web.enable-lifecycle`, as in
/// Prometheus); without it the path is 404. With basic auth configured, every endpoint
/// requires it.
pub fn router(state: AppState, auth: Option<Arc<BasicAuth>>, lifecycle: bool) -> Router {
    let mut router = Router::new()
        .route("/", get(landing))
        .route("/metrics", get(scrape))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(|| async { "OK\n" }))
        .route("/probe", get(probe));
    if lifecycle {
        router = router.route("/-/reload", post(reload));
    }
    let mut router = router.with_state(state);
    if let Some(auth) = auth {
        router = router.layer(axum::middleware::from_fn_with_state(
            auth,
            web_config::require_basic_auth,
        ));
    }
    router
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        // Only when the client asks (Accept-Encoding); the Content-Type stays as it was.
        .layer(CompressionLayer::new().quality(CompressionLevel::Precise(GZIP_LEVEL as i32)))
}

/// Serves on `listener` (with TLS and auth per `web`), at most `max_connections` at once,
/// until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    web: WebConfig,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state, web.auth, web.lifecycle);
    server::serve(listener, app, web.tls, max_connections, shutdown).await
}

async fn reload(State(state): State<AppState>) -> Response {
    let Some(sender) = state.reload else {
        return (StatusCode::BAD_REQUEST, "no config file to reload\n").into_response();
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if sender.send(reply).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match answer.await {
        Ok(Ok(summary)) => (StatusCode::OK, format!("reloaded: {summary}\n")).into_response(),
        Ok(Err(error)) => (
            StatusCode::BAD_REQUEST,
            format!("reload failed, previous config still running: {error}\n"),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
    }
}

async fn probe(
    State(state): State<AppState>,
    Query(query): Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    let settings = state
        .settings
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if settings.probe.is_none() {
        let error = ProbeError::Disabled;
        return (StatusCode::NOT_FOUND, format!("{error}\n")).into_response();
    }
    // The turn is taken before resolving the target: a lookup can take a while too.
    let permit = tokio::time::timeout(PROBE_QUEUE_TIMEOUT, state.probes.acquire_owned()).await;
    let Ok(Ok(_permit)) = permit else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many probes in flight; try again\n",
        )
            .into_response();
    };
    let raw = query.get("target").map(String::as_str).unwrap_or("");
    let target = match probe::prepare(&settings, raw).await {
        Ok(target) => target,
        Err(error @ ProbeError::Disabled) => {
            return (StatusCode::NOT_FOUND, format!("{error}\n")).into_response()
        }
        Err(error @ ProbeError::NotAllowed) => {
            return (StatusCode::FORBIDDEN, format!("{error}\n")).into_response()
        }
        Err(error) => return (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    };
    // One target's series: cheap to render, so no render turn is needed.
    let body = probe::run(&settings, target).await;
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
}

async fn scrape(State(AppState { store, renders, .. }): State<AppState>) -> Response {
    let Ok(_permit) = renders.acquire_owned().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    };
    // Rendering is pure CPU; keep it off the threads that drive polls.
    match tokio::task::spawn_blocking(move || metrics::render(&store)).await {
        Ok(body) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response(),
    }
}

async fn landing(State(AppState { store, renders, .. }): State<AppState>) -> Response {
    // The same bound and thread as a scrape: it reads every target too.
    let Ok(_permit) = renders.acquire_owned().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    };
    let page = move || {
        let now = unix_seconds(SystemTime::now());
        let mut reports: Vec<TargetReport> = store.with_all(|targets| {
            targets
                .iter()
                .map(|t| report::read_with_backup(t, store.backups(), now))
                .collect()
        });
        // What needs someone first: err, then unreachable, then the rest; by name within each.
        let rank = |r: &TargetReport| match r.card {
            Some(CardState::Err) => 0,
            None => 1,
            Some(CardState::Ok) => 2,
            Some(CardState::NotApplicable) => 3,
        };
        reports.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.target.cmp(&b.target)));
        status_page(&reports, now)
    };
    match tokio::task::spawn_blocking(page).await {
        Ok(body) => Html(body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response(),
    }
}

/// The status page: every target's card with the brief's reading. Plain HTML that refreshes
/// itself; no JavaScript, no external assets.
pub fn status_page(reports: &[TargetReport], now_unix: f64) -> String {
    use std::fmt::Write;
    let mut body = String::new();
    let errs = reports
        .iter()
        .filter(|r| r.card == Some(CardState::Err))
        .count();
    let down = reports.iter().filter(|r| !r.up).count();
    let _ = write!(
        body,
        "<p class=\"summary\">{} target(s): {errs} err, {down} unreachable.</p>",
        reports.len()
    );
    for r in reports {
        let (class, label) = match r.card {
            Some(CardState::Ok) => ("ok", "ok"),
            Some(CardState::Err) => ("err", "err"),
            Some(CardState::NotApplicable) => ("na", "n/a"),
            None => ("unknown", "unknown"),
        };
        let since = r
            .card_since_unix
            .map(|at| {
                format!(
                    "since {} ago",
                    humantime::format_duration(
                        Duration::from_secs((now_unix - at).max(0.0) as u64)
                    )
                )
            })
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
            "<section class=\"target {class}\" id=\"target-{id}\"><h2><span class=\"card {class}\">{label}</span> {name}</h2>\
             <p class=\"since\">Last AOF Rewrite Status {since} {streak}</p><p class=\"headline\">{headline}</p>",
            id = escape(&r.target).replace([' ', '/', ':'], "-"),
            name = escape(&r.target),
            headline = escape(&r.headline),
        );
        if let Some(backup) = &r.backup {
            let _ = write!(body, "<p class=\"backup\">{}</p>", escape(&backup.line));
        }
        if !r.causes.is_empty() {
            body.push_str("<ul class=\"causes\">");
            for c in &r.causes {
                let _ = write!(
                    body,
                    "<li>probable cause ({}): <b>{}</b> &mdash; {}</li>",
                    c.mechanism,
                    c.reason,
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
            body.push_str("<ol class=\"steps\">");
            for step in &r.next_steps {
                let _ = write!(body, "<li>{}</li>", escape(step));
            }
            body.push_str("</ol>");
        }
        body.push_str("</section>\n");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\"><title>redis-persistence-exporter</title>\
         <style>body{{font-family:sans-serif;margin:1.5em;max-width:70em}}\
         .card{{display:inline-block;min-width:4.5em;text-align:center;color:#fff;border-radius:4px;padding:.1em .4em}}\
         .card.ok{{background:#2e7d32}}.card.err{{background:#c62828}}.card.na{{background:#9e9e9e}}.card.unknown{{background:#ef6c00}}\
         section{{border-left:6px solid #ccc;padding:.2em 1em;margin:1em 0}}section.ok{{border-color:#2e7d32}}\
         section.err{{border-color:#c62828}}section.na{{border-color:#9e9e9e}}section.unknown{{border-color:#ef6c00}}\
         .tag{{background:#eee;border-radius:3px;padding:0 .3em;margin-left:.5em}}.tag.stuck{{background:#ffcdd2}}\
         h2{{font-size:1.1em}}</style></head><body>\
         <h1>Redis persistence</h1><p><a href=\"/metrics\">/metrics</a> &middot; refreshes every 5 s &middot; version {}</p>{body}</body></html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Minimal HTML escaping for names that come from the config.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
