//! `metrics::render` for 1, 100 and 1,000 targets, each with two labels (`env`, `shard`) and
//! a realistic snapshot: the parsed `healthy_aof_info_everything.txt` reference reply,
//! recorded as a successful poll. At 1,000 targets it also measures the body gzipped the way
//! a scrape from Prometheus gets it (`Accept-Encoding: gzip`, the level `/metrics` uses).
//!
//! The store is built through the public API only (`Store::insert`, `record_success`), the
//! same calls the poller makes. Run with `cargo bench --bench metrics_render`.
//!
//! `RENDER_ONCE=N target/release/deps/metrics_render-*` builds the 1,000-target store, renders
//! and gzips it N times and exits. The difference between two N under `perf stat -e
//! task-clock` (CPU time) or `valgrind --tool=callgrind` (instructions) is the cost of N
//! scrapes, which a loaded machine blurs far less than wall-clock time.

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput};
use flate2::write::GzEncoder;
use flate2::Compression;
use redis_persistence_exporter::{
    info, lock_target, render_metrics, Snapshot, Store, Target, GZIP_LEVEL,
};

const REPLY: &str = "healthy_aof_info_everything.txt";

fn reply_text() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/info/reference")
        .join(REPLY);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A target as the config validator would produce it: a distinct name, two labels, the same
/// few Redis servers shared by many targets.
fn target(i: usize) -> Target {
    Target {
        labels: vec![
            ("env".to_owned(), ["prod", "staging"][i % 2].to_owned()),
            ("shard".to_owned(), format!("shard-{}", i % 16)),
        ],
        rdb_max_age: Duration::from_secs(24 * 3600),
        config_command: Some("CONFIG".to_owned()),
        ..Target::plain_tcp(&format!("redis-{i:05}"), "127.0.0.1", 6379 + (i % 4) as u16)
    }
}

fn store_with(targets: usize, text: &str) -> Arc<Store> {
    let store = Arc::new(Store::new());
    store.record_reload(true, SystemTime::now());
    for i in 0..targets {
        let cell = store.insert(Arc::new(target(i)));
        let parsed = info::parse(text).expect("reference reply parses");
        // Two polls, as after a few seconds of running: the histogram and counters move.
        let mut guard = lock_target(&cell);
        guard.record_success(
            Snapshot::new(parsed.clone(), SystemTime::now()),
            Duration::from_micros(300),
            None,
        );
        guard.record_success(
            Snapshot::new(parsed, SystemTime::now()),
            Duration::from_micros(450),
            None,
        );
    }
    store
}

/// The body gzipped at the level `/metrics` uses.
fn gzip(body: &str) -> Vec<u8> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        Compression::new(GZIP_LEVEL),
    );
    encoder.write_all(body.as_bytes()).expect("in memory");
    encoder.finish().expect("in memory")
}

fn bench_render(c: &mut Criterion) {
    let text = reply_text();
    let mut group = c.benchmark_group("metrics_render");
    for targets in [1usize, 100, 1_000] {
        let store = store_with(targets, &text);
        let body = render_metrics(&store);
        assert!(body.ends_with("# EOF\n"), "render must end with # EOF");
        let per_target = body
            .lines()
            .filter(|l| l.contains("target=\"redis-00000\""))
            .count();
        println!(
            "metrics_render/{targets}: body {} bytes ({} gzipped), {} lines; redis-00000 has {per_target} series, {} bytes per target",
            body.len(),
            gzip(&body).len(),
            body.lines().count(),
            body.len() / targets,
        );
        group.throughput(Throughput::Elements(targets as u64));
        if targets >= 1_000 {
            group.sample_size(30);
        }
        group.bench_with_input(BenchmarkId::from_parameter(targets), &store, |b, store| {
            b.iter(|| render_metrics(black_box(store)))
        });
        if targets >= 1_000 {
            group.bench_with_input(BenchmarkId::new("gzip", targets), &store, |b, store| {
                b.iter(|| gzip(&render_metrics(black_box(store))))
            });
        }
    }
    group.finish();
}

fn main() {
    if let Some(times) = std::env::var_os("RENDER_ONCE") {
        let times: usize = times.to_string_lossy().parse().unwrap_or(1);
        let store = store_with(1_000, &reply_text());
        let skip_gzip = std::env::var_os("RENDER_NO_GZIP").is_some();
        for _ in 0..times {
            let body = render_metrics(&store);
            let zipped = if skip_gzip { Vec::new() } else { gzip(&body) };
            black_box((body.len(), zipped.len()));
        }
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    bench_render(&mut criterion);
    criterion.final_summary();
}
