//! Command-line entry point: flags, exit codes and logging. The running exporter is
//! `run_daemon`; the one-shot `check` is `check_targets`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use redis_persistence_exporter as exporter;
use redis_persistence_exporter::{PasswordSource, Settings};

/// Exit code for any configuration error.
const EXIT_CONFIG: u8 = 2;

/// Runtime worker threads, unless `TOKIO_WORKER_THREADS` says otherwise. Polls are short
/// bursts woken together by one timer per 100 ms slot: with a worker per core, each burst is
/// spread over threads that wake, steal from each other and park again, which cost more than
/// the polls themselves (see docs/benchmarks.md, "CPU per poll unpinned"). One worker carries
/// 10,000 targets at 15 s in ~3 % of a core; renders, log reads and disk checks run on the
/// blocking pool, not on it.
const WORKER_THREADS: usize = 1;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Prometheus exporter for Redis persistence health (AOF rewrite and write status, RDB saves).
#[derive(Debug, Clone, Parser)]
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
    /// Serve `POST /-/reload` (as Prometheus's flag of the same name). Off by default: anyone
    /// who reaches the port could otherwise make the exporter re-read its config. SIGHUP
    /// always reloads.
    #[arg(long = "web.enable-lifecycle")]
    web_enable_lifecycle: bool,
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

#[derive(Debug, Clone, Subcommand)]
enum Command {
    /// Poll every target once and print its Last AOF Rewrite Status card with the brief's
    /// reading. Exit 0: all ok or not applicable; 1: any err; 2: config error; 3: a target
    /// cannot be reached (and none is err).
    Check(CheckArgs),
}

#[derive(Debug, Clone, Args)]
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
    let mut web = match &cli.web_config_file {
        Some(path) => match exporter::load_web_config(path) {
            Ok(web) => web,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        None => exporter::WebConfig::default(),
    };
    web.lifecycle = cli.web_enable_lifecycle;
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
        exporter::load_settings(args.config.as_deref())
    } else {
        exporter::settings_from_urls(&args.urls)
    };
    let settings = match settings {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(exporter::EXIT_CONFIG);
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
    let reports = runtime.block_on(exporter::check_targets(&settings));
    exporter::remove_relay_sockets();
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
            print!("{}", exporter::report_text(target));
        }
    }
    ExitCode::from(exporter::check_exit_code(&reports))
}

fn load_settings(cli: &Cli) -> Result<Settings, exporter::ConfigError> {
    let mut settings = exporter::load_settings(cli.config.as_deref())?;
    if let Some(spec) = &cli.shard {
        settings.shard = Some(spec.parse().map_err(|e: exporter::ShardError| {
            exporter::ConfigError::Invalid {
                source_name: "command line".into(),
                key: "--shard".into(),
                expected: e.to_string(),
            }
        })?);
    }
    if let Some(address) = &cli.web_listen_address {
        settings.listen_address = address
            .parse()
            .map_err(|_| exporter::ConfigError::Invalid {
                source_name: "command line".into(),
                key: "--web.listen-address".into(),
                expected: "an IP address and port like 0.0.0.0:9645".into(),
            })?;
    }
    Ok(settings)
}

fn print_summary(cli: &Cli, settings: &Settings) {
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
            (_, Some(PasswordSource::File(_))) => "password from file",
            (_, Some(PasswordSource::Inline(_))) => "inline password",
            (_, Some(PasswordSource::Env(_))) => "password from environment",
        };
        println!("    - {} ({auth})", target.name);
    }
    println!(
        "\n# The effective configuration: defaults filled in, file_sd targets added, this\n# shard's targets only, secrets redacted.\n{}",
        exporter::render_effective(&exporter::with_file_sd_targets(settings))
    );
}

fn init_logging(level: tracing::Level, format: LogFormat) {
    // The Redis client logs at debug and trace about connection internals; cap it so a
    // verbose exporter log stays about targets, and nothing it might echo ends up there. Its
    // warnings quote a server's error reply whole and raw (5 KB, control bytes and all); the
    // poller logs the same failure escaped and bounded, so only fred's errors pass.
    let filter =
        tracing_subscriber::EnvFilter::new(format!("{level},fred=error,hyper=warn,rustls=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: &Cli, settings: Settings, web: exporter::WebConfig) -> anyhow::Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // tokio reads TOKIO_WORKER_THREADS only when the builder is not told a number.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(WORKER_THREADS);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let reloader: exporter::Reloader = cli.config.is_some().then(|| {
        let cli = cli.clone();
        Box::new(move || load_settings(&cli)) as Box<_>
    });
    runtime.block_on(exporter::run_daemon(settings, web, reloader))?;
    Ok(())
}
