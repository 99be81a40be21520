//! What one scrape costs the Prometheus that makes it: series per target (the cardinality
//! budget stated in the README), gzip when asked, and the standard `process_*` series. A real
//! `redis-server`, the real binary, scraped over HTTP. Nothing here measures speed.

mod support;

use std::io::Read;
use std::time::Duration;

use support::{config_toml, http_client, up, value, Exporter, Redis, RedisSpec, Target};

/// Sample lines one healthy, labelled AOF target may add to a scrape, everything it can show
/// at once included (a completed rewrite, `CONFIG GET`, the sibling sections, Redis 7.0). The
/// README's "Cardinality budget" states it; 54 are used today, 69 were before the
/// poll-duration histogram became one for the whole fleet.
const SERIES_PER_TARGET_BUDGET: usize = 55;

const STATE_TIMEOUT: Duration = Duration::from_secs(20);
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The sample lines of `target` in `body`.
fn series_of<'a>(body: &'a str, target: &str) -> Vec<&'a str> {
    let label = format!("target=\"{target}\"");
    body.lines()
        .filter(|line| !line.starts_with('#') && line.contains(&label))
        .collect()
}

/// Every series of `body`, values left out: two scrapes a moment apart compare equal.
fn series_names(body: &str) -> Vec<&str> {
    body.lines()
        .filter(|line| !line.starts_with("process_"))
        .map(|line| line.rsplit_once(' ').map_or(line, |(series, _)| series))
        .collect()
}

fn labelled_target(redis: &Redis) -> Target {
    Target::new(redis.url(), "t")
        .label("env", "prod")
        .label("shard", "shard-7")
}

/// A healthy target as much as it can show: a rewrite has completed (its duration series
/// exists), CONFIG GET has answered, and at least two polls are counted.
fn healthy_with_everything(exporter: &Exporter) -> String {
    exporter.wait_for(STATE_TIMEOUT, "t up, rewritten, CONFIG read", |body| {
        up(body, "t") == Some(1.0)
            && value(body, "redis_aof_last_rewrite_duration_seconds", "t").is_some()
            && value(body, "redis_config_available", "t") == Some(1.0)
            && value(body, "redis_persistence_exporter_polls_total", "t") >= Some(2.0)
    })
}

#[test]
fn a_target_stays_within_the_series_budget_and_the_histogram_is_the_fleets() {
    let redis = Redis::start(RedisSpec::aof());
    assert!(redis.cli(&["BGREWRITEAOF"]).contains("started"));
    let exporter = Exporter::start(&config_toml("500ms", "400ms", &[labelled_target(&redis)]));
    let body = healthy_with_everything(&exporter);

    let series = series_of(&body, "t");
    assert!(
        series.len() <= SERIES_PER_TARGET_BUDGET,
        "{} series for one target, budget {SERIES_PER_TARGET_BUDGET}:\n{}",
        series.len(),
        series.join("\n")
    );
    // The budget counts what a target really shows: not a scrape of a half-read target.
    assert!(series.len() >= 50, "{}", series.join("\n"));
    assert!(
        !body.contains("redis_persistence_exporter_poll_duration_seconds_bucket{target="),
        "no per-target histogram by default"
    );
    let count = body
        .lines()
        .find_map(|l| l.strip_prefix("redis_persistence_exporter_poll_duration_seconds_count "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("the fleet's histogram");
    assert!(count >= 2.0, "{count}");
}

#[test]
fn the_per_target_histogram_is_there_when_opted_in() {
    let redis = Redis::start(RedisSpec::aof());
    let config = config_toml("500ms", "400ms", &[labelled_target(&redis)]).replacen(
        "\n",
        "\nper_target_poll_duration_histogram = true\n",
        1,
    );
    let exporter = Exporter::start(&config);
    let body = exporter.wait_for(STATE_TIMEOUT, "t up", |body| up(body, "t") == Some(1.0));
    let histogram: Vec<_> = series_of(&body, "t")
        .into_iter()
        .filter(|l| l.starts_with("redis_persistence_exporter_poll_duration_seconds"))
        .collect();
    assert_eq!(
        histogram.len(),
        15,
        "12 buckets, +Inf, sum, count: {histogram:?}"
    );
    assert!(
        !body.contains("redis_persistence_exporter_poll_duration_seconds_count "),
        "the fleet's histogram gives way to the targets'"
    );
}

#[test]
fn metrics_are_gzipped_when_the_client_asks_and_plain_otherwise() {
    let redis = Redis::start(RedisSpec::aof());
    let exporter = Exporter::start(&config_toml("500ms", "400ms", &[labelled_target(&redis)]));
    exporter.wait_for(STATE_TIMEOUT, "t up", |body| up(body, "t") == Some(1.0));
    let url = format!("http://127.0.0.1:{}/metrics", exporter.port());
    let client = http_client(Duration::from_secs(5));

    let plain = client.get(&url).send().expect("plain scrape");
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers().get("content-encoding"), None);
    assert_eq!(plain.headers()["content-type"], OPENMETRICS);
    let plain = plain.text().expect("body");
    assert!(plain.ends_with("# EOF\n"), "{plain}");

    // reqwest is built without gzip here: it neither asks nor decodes unless told.
    let zipped = client
        .get(&url)
        .header("Accept-Encoding", "gzip")
        .send()
        .expect("gzip scrape");
    assert_eq!(zipped.status(), 200);
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["content-type"], OPENMETRICS);
    let raw = zipped.bytes().expect("body");
    // One target's body is mostly help text; a fleet's compresses about 15-fold.
    assert!(
        raw.len() * 2 < plain.len(),
        "{} of {}",
        raw.len(),
        plain.len()
    );
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_string(&mut decoded)
        .expect("valid gzip");
    assert!(decoded.ends_with("# EOF\n"));
    assert_eq!(series_names(&decoded), series_names(&plain));
}

#[test]
fn process_series_are_there_and_sane() {
    let redis = Redis::start(RedisSpec::aof());
    let exporter = Exporter::start(&config_toml("500ms", "400ms", &[labelled_target(&redis)]));
    let body = exporter.wait_for(STATE_TIMEOUT, "t up", |body| up(body, "t") == Some(1.0));
    let read = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{body}"))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = read("process_start_time_seconds");
    assert!(
        start <= now && start > now - 600.0,
        "started {start}, now {now}"
    );
    assert!(read("process_cpu_seconds_total") >= 0.0);
    let rss = read("process_resident_memory_bytes");
    assert!(
        rss > 1e6 && rss <= read("process_virtual_memory_bytes"),
        "{rss}"
    );
    // The listener, the Redis connection and its relay at least; within the limit.
    let open = read("process_open_fds");
    assert!(open >= 3.0 && open <= read("process_max_fds"), "{open}");
    assert!(body.contains("# TYPE process_cpu_seconds counter\n"));
}
