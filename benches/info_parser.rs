//! `info::parse` on every reference INFO reply in `tests/data/info/reference/`.
//!
//! The replies are read at run time from `$CARGO_MANIFEST_DIR/tests/data/info/reference`, so
//! a new reference file is benchmarked without touching this file. Run with
//! `cargo bench --bench info_parser`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use redis_persistence_exporter::info;

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/info/reference")
}

/// Every `*.txt` reply, sorted by name, as `(name, text)`.
fn reference_replies() -> Vec<(String, String)> {
    let dir = reference_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read reference replies in {}: {e}", dir.display()));
    let mut replies: Vec<(String, String)> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .map(|path| {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (name, text)
        })
        .collect();
    replies.sort();
    assert!(
        !replies.is_empty(),
        "no reference replies in {}",
        dir.display()
    );
    replies
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("info_parse");
    for (name, text) in reference_replies() {
        // A reply the parser rejects would benchmark the error path; say so instead.
        if let Err(error) = info::parse(&text) {
            panic!("reference reply {name} does not parse: {error}");
        }
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(&name), &text, |b, text| {
            b.iter(|| info::parse(black_box(text)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
