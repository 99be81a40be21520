//! The running exporter: serve `/metrics`, poll the fleet, and follow reloads, discovery
//! changes and shutdown signals until told to stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::config::{ConfigError, Settings};
use crate::discovery::Discovery;
use crate::fleet::Fleet;
use crate::http::{self, WebConfig};
use crate::persist;
use crate::signal;
use crate::state::Store;

/// How long in-flight HTTP requests get to finish on shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
    /// The HTTP server task panicked.
    #[error("HTTP server task failed")]
    HttpTask,
}

/// Reads the config again, for SIGHUP and `POST /-/reload`; `None` when there is no config
/// file to re-read.
pub type Reloader = Option<Box<dyn Fn() -> Result<Settings, ConfigError> + Send>>;

/// Runs until SIGTERM or SIGINT: binds `settings.listen_address`, starts discovery and the
/// pollers, serves, and applies each reload and discovery change.
pub async fn run(
    settings: Settings,
    web: WebConfig,
    reloader: Reloader,
) -> Result<(), DaemonError> {
    // Polls and connections share one descriptor budget; take all the system allows.
    let descriptors = http::raise_descriptor_limit();
    let address = settings.listen_address;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| DaemonError::Listen { address, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen { address, source })?;
    let store = Arc::new(Store::new());
    // Before the first target is inserted, so each takes up its own history.
    let (stop_keeper, keeper_stopped) = oneshot::channel::<()>();
    let keeper = settings.state_file.clone().map(|path| {
        persist::restore(&store, &path);
        tokio::spawn(persist::keep(
            store.clone(),
            path,
            settings.poll_interval,
            async {
                let _ = keeper_stopped.await;
            },
        ))
    });
    let mut fleet = Fleet::new(store.clone());
    let mut discovery = Discovery::start(&settings);
    let effective = discovery.effective();
    fleet.apply(&effective);
    store.record_reload(true, SystemTime::now());
    let max_connections =
        http::connection_cap(descriptors.unwrap_or(u64::MAX), effective.targets.len());
    tracing::info!(
        address = %local,
        targets = effective.targets.len(),
        descriptors = descriptors.map(|d| d.to_string()).unwrap_or_else(|| "unlimited".into()),
        max_connections,
        "serving /metrics"
    );

    let (reload_tx, mut reload_rx) = mpsc::channel::<http::ReloadRequest>(4);
    let (stop_http, http_stopped) = oneshot::channel::<()>();
    let app = http::AppState::new(
        store.clone(),
        reloader.is_some().then_some(reload_tx),
        Arc::new(settings.clone()),
    );
    let current = app.settings.clone();
    let server = tokio::spawn(http::serve(listener, app, web, max_connections, async {
        let _ = http_stopped.await;
    }));

    let mut settings = settings;
    let mut hangups = signal::Hangups::new();
    let terminate = signal::terminate();
    tokio::pin!(terminate);
    loop {
        let reply = tokio::select! {
            _ = &mut terminate => break,
            _ = discovery.changed() => {
                let changes = fleet.apply(&discovery.effective());
                tracing::info!(%changes, "discovered targets changed");
                continue;
            }
            _ = hangups.next() => None,
            Some(reply) = reload_rx.recv() => Some(reply),
        };
        let outcome = match reload(&reloader, &settings) {
            Ok(new) => {
                settings = new;
                discovery = discovery.restart(&settings);
                let changes = fleet.apply(&discovery.effective());
                *current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(settings.clone());
                tracing::info!(%changes, "config reloaded");
                Ok(changes.to_string())
            }
            Err(error) => Err(error),
        };
        store.record_reload(outcome.is_ok(), SystemTime::now());
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }

    // Stop polling first so nothing new starts, then let in-flight scrapes finish.
    tracing::info!("shutting down");
    fleet.stop().await;
    // The pollers are stopped: this last write holds everything they saw.
    let _ = stop_keeper.send(());
    if let Some(keeper) = keeper {
        let _ = keeper.await;
    }
    crate::redis::cleanup();
    let _ = stop_http.send(());
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(Ok(result)) => result.map_err(DaemonError::Http),
        Ok(Err(_)) => Err(DaemonError::HttpTask),
        Err(_) => {
            tracing::warn!("in-flight requests did not finish within 5s; exiting anyway");
            Ok(())
        }
    }
}

/// Re-reads the config. On error the running config stays and the error is logged.
fn reload(reloader: &Reloader, current: &Settings) -> Result<Settings, String> {
    let Some(reload) = reloader else {
        return Err("no --config file to reload".into());
    };
    match reload() {
        Ok(settings) => {
            if settings.listen_address != current.listen_address {
                tracing::warn!("listen_address changed; it takes effect only after a restart");
            }
            if settings.state_file != current.state_file {
                tracing::warn!("state_file changed; it takes effect only after a restart");
            }
            Ok(settings)
        }
        Err(error) => {
            tracing::error!(error = %error, "config reload failed; the previous config keeps running");
            Err(error.to_string())
        }
    }
}
