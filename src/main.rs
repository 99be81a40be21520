//! Command-line entry point: parse flags, load config, start pollers and the HTTP server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::time::SystemTime;

use redis_persistence_exporter::discovery::{self, FileSd};
use redis_persistence_exporter::fleet::Fleet;
use redis_persistence_exporter::redis_discovery::RedisSd;
use redis_persistence_exporter::{check, config, http, report, signal, state::Store, web};
use tokio::sync::{mpsc, oneshot};

/// Exit code for any configuration error.
const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Prometheus exporter for Redis persistence health (AOF rewrite and write status, RDB saves).
#[derive(Debug, Parser)]
#[command(name = "redis-persistence-exporter", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML config file. Without it, redis://127.0.0.1:6379 is polled.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address to serve /metrics on; overrides `listen_address` in the config.
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    web_listen_address: Option<String>,
    /// TLS and basic auth for /metrics, in the Prometheus web configuration file format.
    #[arg(long = "web.config.file", value_name = "PATH")]
    web_config_file: Option<PathBuf>,
    /// Poll only this replica's share of the targets, "k/n" (overrides `shard` in the config).
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Validate the config, print a summary and exit (0 if valid, 2 if not).
    #[arg(long)]
    check_config: bool,
    /// Log level: error, warn, info, debug or trace. Default info (warn for `check`).
    #[arg(long = "log.level", value_name = "LEVEL", global = true)]
    log_level: Option<tracing::Level>,
    /// Log format.
    #[arg(long = "log.format", value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Poll every target once and print its Last AOF Rewrite Status card with the brief's
    /// reading. Exit 0: all ok or not applicable; 1: any err; 2: config error; 3: a target
    /// cannot be reached (and none is err).
    Check(CheckArgs),
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// TOML config file whose targets to check.
    #[arg(long, value_name = "PATH", conflicts_with = "urls")]
    config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Target URLs (redis://, rediss://, unix://) instead of a config file.
    urls: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Some(Command::Check(_)) => tracing::Level::WARN,
        None => tracing::Level::INFO,
    };
    init_logging(cli.log_level.unwrap_or(default_level), cli.log_format);
    if let Some(Command::Check(args)) = &cli.command {
        return run_check(args);
    }
    let settings = match load_settings(&cli) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let web = match &cli.web_config_file {
        Some(path) => match web::load(path) {
            Ok(web) => web,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        None => web::WebConfig::default(),
    };
    if cli.check_config {
        print_summary(&cli, &settings);
        println!("  web: {web:?}");
        return ExitCode::SUCCESS;
    }
    match run(&cli, settings, web) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_check(args: &CheckArgs) -> ExitCode {
    let settings = if args.urls.is_empty() {
        config::load(args.config.as_deref())
    } else {
        config::from_urls(&args.urls)
    };
    let settings = match settings {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(check::EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let reports = runtime.block_on(check::run(&settings));
    redis_persistence_exporter::redis_client::cleanup();
    if args.json {
        match serde_json::to_string_pretty(&reports) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        for target in &reports {
            print!("{}", report::to_text(target));
        }
    }
    ExitCode::from(check::exit_code(&reports))
}

fn load_settings(cli: &Cli) -> Result<config::Settings, config::ConfigError> {
    let mut settings = config::load(cli.config.as_deref())?;
    if let Some(spec) = &cli.shard {
        settings.shard = Some(spec.parse().map_err(
            |e: redis_persistence_exporter::shard::ShardError| config::ConfigError::Invalid {
                source_name: "command line".into(),
                key: "--shard".into(),
                expected: e.to_string(),
            },
        )?);
    }
    if let Some(address) = &cli.web_listen_address {
        settings.listen_address = address.parse().map_err(|_| config::ConfigError::Invalid {
            source_name: "command line".into(),
            key: "--web.listen-address".into(),
            expected: "an IP address and port like 0.0.0.0:9645".into(),
        })?;
    }
    Ok(settings)
}

fn print_summary(cli: &Cli, settings: &config::Settings) {
    let source = cli
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in defaults".into());
    println!("config OK: {source}");
    println!(
        "  poll every {} (timeout {}), serving on {}",
        humantime::format_duration(settings.poll_interval),
        humantime::format_duration(settings.poll_timeout),
        settings.listen_address
    );
    if let Some(shard) = settings.shard {
        println!(
            "  shard {shard}: polling the targets that hash to bucket {} of {}",
            shard.index, shard.count
        );
    }
    let sources = [
        ("file_sd", settings.file_sd.len()),
        ("cluster", settings.cluster.len()),
        ("sentinel", settings.sentinel.len()),
    ];
    for (kind, count) in sources.iter().filter(|(_, count)| *count > 0) {
        println!("  {count} {kind} discovery source(s)");
    }
    if let Some(probe) = &settings.probe {
        println!(
            "  /probe enabled for {} allowed pattern(s)",
            probe.allowed_targets.len()
        );
    }
    println!("  {} target(s):", settings.targets.len());
    for target in &settings.targets {
        if settings.shard.is_some_and(|s| !s.owns(&target.name)) {
            continue;
        }
        let auth = match (&target.username, &target.password) {
            (_, None) => "no password",
            (_, Some(config::PasswordSource::File(_))) => "password from file",
            (_, Some(config::PasswordSource::Inline(_))) => "inline password",
            (_, Some(config::PasswordSource::Env(_))) => "password from environment",
        };
        println!("    - {} ({auth})", target.name);
    }
}

fn init_logging(level: tracing::Level, format: LogFormat) {
    // The Redis client logs at debug and trace about connection internals; cap it so a
    // verbose exporter log stays about targets, and nothing it might echo ends up there.
    let filter =
        tracing_subscriber::EnvFilter::new(format!("{level},fred=warn,hyper=warn,rustls=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn run(cli: &Cli, settings: config::Settings, web: web::WebConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.listen_address)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen_address))?;
    let store = Arc::new(Store::new());
    let mut fleet = Fleet::new(store.clone());
    let mut file_sd = FileSd::new();
    let discovered = file_sd.refresh(&settings).unwrap_or_default();
    // Cluster and Sentinel nodes arrive through `redis_sd.changed()` once their first refresh
    // answers, so a slow seed does not hold up serving.
    let mut redis_sd = RedisSd::start(&settings);
    fleet.apply(&with_discovered(&settings, &discovered));
    store.record_reload(true, SystemTime::now());
    tracing::info!(
        address = %listener.local_addr()?,
        targets = settings.targets.len() + discovered.len(),
        "serving /metrics"
    );

    let (reload_tx, mut reload_rx) = mpsc::channel::<http::ReloadRequest>(4);
    let (stop_http, http_stopped) = oneshot::channel::<()>();
    let app = http::AppState::new(
        store.clone(),
        cli.config.as_ref().map(|_| reload_tx),
        Arc::new(settings.clone()),
    );
    let current = app.settings.clone();
    let server = tokio::spawn(http::serve(listener, app, web, async {
        let _ = http_stopped.await;
    }));

    let mut settings = settings;
    let mut hangups = signal::Hangups::new();
    let terminate = signal::terminate();
    tokio::pin!(terminate);
    // One ticker across loop turns: a timer restarted on every turn would never fire while
    // Cluster or Sentinel discovery keeps changing.
    let mut file_sd_ticks = file_sd_ticker(&settings);
    loop {
        let reply = tokio::select! {
            _ = &mut terminate => break,
            _ = next_tick(&mut file_sd_ticks) => {
                if file_sd.refresh(&settings).is_some() {
                    apply_discovered(&mut fleet, &settings, &file_sd, &redis_sd);
                }
                continue;
            }
            _ = redis_sd.changed() => {
                apply_discovered(&mut fleet, &settings, &file_sd, &redis_sd);
                continue;
            }
            _ = hangups.next() => None,
            Some(reply) = reload_rx.recv() => Some(reply),
        };
        let outcome = match reload(cli, &settings) {
            Ok(new) => {
                settings = new;
                file_sd = FileSd::new();
                file_sd.refresh(&settings);
                redis_sd = redis_sd.restart(&settings);
                file_sd_ticks = file_sd_ticker(&settings);
                let discovered = all_discovered(&file_sd, &redis_sd);
                let changes = fleet.apply(&with_discovered(&settings, &discovered));
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
    redis_persistence_exporter::redis_client::cleanup();
    let _ = stop_http.send(());
    match tokio::time::timeout(std::time::Duration::from_secs(5), server).await {
        Ok(Ok(result)) => result.context("HTTP server failed")?,
        Ok(Err(_)) => anyhow::bail!("HTTP server task failed"),
        Err(_) => tracing::warn!("in-flight requests did not finish within 5s; exiting anyway"),
    }
    Ok(())
}

/// Targets from `file_sd` files, then from Redis Cluster and Sentinel discovery.
fn all_discovered(file_sd: &FileSd, redis_sd: &RedisSd) -> Vec<config::Target> {
    let mut all = file_sd.targets();
    all.extend(redis_sd.targets());
    all
}

/// Starts what the fleet polls over again from the configured and discovered targets.
fn apply_discovered(
    fleet: &mut Fleet,
    settings: &config::Settings,
    file_sd: &FileSd,
    redis_sd: &RedisSd,
) {
    let discovered = all_discovered(file_sd, redis_sd);
    let changes = fleet.apply(&with_discovered(settings, &discovered));
    tracing::info!(%changes, "discovered targets changed");
}

/// Ticks at the shortest `[[file_sd]]` refresh interval, if there is any file source.
fn file_sd_ticker(settings: &config::Settings) -> Option<tokio::time::Interval> {
    let every = settings.file_sd.iter().map(|s| s.refresh_interval).min()?;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(ticks)
}

/// The next tick, or never without a ticker.
async fn next_tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The settings with discovered targets added to the configured ones.
fn with_discovered(settings: &config::Settings, discovered: &[config::Target]) -> config::Settings {
    let mut effective = settings.clone();
    effective.targets = discovery::merge(&settings.targets, discovered);
    effective
}

/// Re-reads the config. On error the running config stays and the error is logged.
fn reload(cli: &Cli, current: &config::Settings) -> Result<config::Settings, String> {
    if cli.config.is_none() {
        return Err("no --config file to reload".into());
    }
    match load_settings(cli) {
        Ok(settings) => {
            if settings.listen_address != current.listen_address {
                tracing::warn!("listen_address changed; it takes effect only after a restart");
            }
            Ok(settings)
        }
        Err(error) => {
            tracing::error!(error = %error, "config reload failed; the previous config keeps running");
            Err(error.to_string())
        }
    }
}
