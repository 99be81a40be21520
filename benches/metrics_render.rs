//! `metrics::render` for 1, 100 and 1,000 targets, each holding a realistic snapshot: the
//! parsed `healthy_aof_info_everything.txt` reference reply, recorded as a successful poll.
//!
//! The store is built through the public API only (`Store::insert`, `record_success`), the
//! same calls the poller makes. Run with `cargo bench --bench metrics_render`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use redis_persistence_exporter::{
    info, lock_target, render_metrics, Address, Snapshot, Store, Target,
};

const REPLY: &str = "healthy_aof_info_everything.txt";

fn reply_text() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/reference/info")
        .join(REPLY);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A target as the config validator would produce it: a distinct name, one extra label, the
/// same few Redis servers shared by many targets.
fn target(i: usize) -> Target {
    Target {
        name: format!("redis-{i:05}"),
        labels: vec![("team".to_owned(), format!("team-{}", i % 8))],
        address: Address::Tcp {
            host: "127.0.0.1".to_owned(),
            port: 6379 + (i % 4) as u16,
            tls: false,
        },
        username: None,
        password: None,
        rdb_max_age: Duration::from_secs(24 * 3600),
        config_command: Some("CONFIG".to_owned()),
        log_file: None,
        data_dir: None,
        tls: None,
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

fn bench_render(c: &mut Criterion) {
    let text = reply_text();
    let mut group = c.benchmark_group("metrics_render");
    for targets in [1usize, 100, 1_000] {
        let store = store_with(targets, &text);
        let body = render_metrics(&store);
        assert!(body.ends_with("# EOF\n"), "render must end with # EOF");
        println!(
            "metrics_render/{targets}: body {} bytes, {} lines",
            body.len(),
            body.lines().count()
        );
        group.throughput(Throughput::Elements(targets as u64));
        if targets >= 1_000 {
            group.sample_size(30);
        }
        group.bench_with_input(BenchmarkId::from_parameter(targets), &store, |b, store| {
            b.iter(|| render_metrics(black_box(store)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
