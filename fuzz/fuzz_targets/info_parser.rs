//! Fuzzes `info::parse` with arbitrary bytes, read as the exporter reads a reply: lossy
//! UTF-8. Beyond "never panics", it checks the bounds the parser documents, since those are
//! what keep a hostile server from making the exporter hold arbitrary text per target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redis_persistence_exporter::info;

/// `Reader::text` keeps at most this many bytes of free text.
const MAX_TEXT: usize = 128;
/// `Reader::replicas` keeps at most this many replicas.
const MAX_REPLICAS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(parsed) = info::parse(&text) else {
        return;
    };
    for (field, value) in [
        ("redis_version", &parsed.redis_version),
        ("run_id", &parsed.run_id),
        ("role", &parsed.role),
    ] {
        if let Some(value) = value {
            assert!(
                !value.is_empty() && value.len() <= MAX_TEXT,
                "{field}: {} bytes",
                value.len()
            );
            assert!(
                !value.chars().any(char::is_control),
                "{field} holds a control character"
            );
        }
    }
    assert!(
        parsed.replicas.len() <= MAX_REPLICAS,
        "{} replicas",
        parsed.replicas.len()
    );
    if let Some(ratio) = parsed.mem_fragmentation_ratio {
        assert!(ratio.is_finite(), "mem_fragmentation_ratio {ratio}");
    }
    // Never more errors than fields the parser reads plus one per replica line.
    assert!(parsed.field_errors.len() <= 64 + text.lines().count());
});
