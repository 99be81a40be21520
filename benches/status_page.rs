//! The fleet status page (`GET /`) for 1,000 targets: every card unfiltered, and the same
//! fleet filtered to `?state=err`. One target in ten holds a stuck AOF rewrite (the parsed
//! `aof_rewrite_killed_x3_err.txt` reference reply), the rest a healthy one, so the page has
//! the long err cards it would have on a bad day.
//!
//! The store is built through the public API only, as in `metrics_render`. Run with
//! `cargo bench --bench status_page`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use redis_persistence_exporter::{
    info, lock_target, render_status_page, Snapshot, StatusFilter, Store, Target,
};

const TARGETS: usize = 1_000;

fn reply(file: &str) -> info::Info {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/info/reference")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    info::parse(&text).expect("reference reply parses")
}

fn target(i: usize) -> Target {
    Target {
        labels: vec![
            ("team".to_owned(), format!("team-{}", i % 8)),
            (
                "env".to_owned(),
                if i % 3 == 0 { "prod" } else { "staging" }.to_owned(),
            ),
        ],
        rdb_max_age: Duration::from_secs(24 * 3600),
        ..Target::plain_tcp(&format!("redis-{i:05}"), "127.0.0.1", 6379 + (i % 4) as u16)
    }
}

fn fleet() -> Store {
    let healthy = reply("healthy_aof_info_everything.txt");
    let stuck = reply("aof_rewrite_killed_x3_err.txt");
    let store = Store::new();
    for i in 0..TARGETS {
        let cell = store.insert(Arc::new(target(i)));
        let info = if i % 10 == 0 { &stuck } else { &healthy };
        lock_target(&cell).record_success(
            Snapshot::new(info.clone(), SystemTime::now()),
            Duration::from_micros(300),
            None,
        );
    }
    store
}

fn bench_page(c: &mut Criterion) {
    let store = fleet();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let mut group = c.benchmark_group("status_page");
    group.throughput(Throughput::Elements(TARGETS as u64));
    group.sample_size(20);
    for query in ["", "state=err"] {
        let filter = StatusFilter::parse(query).expect("a valid filter");
        let page = render_status_page(&store, &filter, now);
        println!(
            "status_page/{TARGETS} ?{query}: {} bytes, {} cards",
            page.len(),
            page.matches("<section class=\"target ").count()
        );
        let id = if query.is_empty() { "all" } else { query };
        group.bench_function(format!("{TARGETS}/{id}"), |b| {
            b.iter(|| render_status_page(black_box(&store), black_box(&filter), now))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_page);
criterion_main!(benches);
