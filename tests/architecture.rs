//! The module graph flows one way: each module of `src/` may import only from modules in
//! lower layers. A cycle, or a pure reading that starts doing I/O through the Redis client,
//! fails this test with the offending line.
//!
//! The layers, lowest first. A new module must be placed here, in the lowest layer above
//! everything it imports; the README's "Code map" says what each one is for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const LAYERS: &[&[&str]] = &[
    // Plain data and pure readings: no dependency on the rest of the crate.
    &[
        "target", "info", "cause", "shard", "signal", "host", "process",
    ],
    // Readings derived from INFO (and the Redis log text, free space, host memory).
    &["card", "history", "redis_settings", "headroom", "replicas"],
    // Readings that need the card.
    &["restart"],
    &["config"],
    // The only code that knows the Redis client library.
    &["redis"],
    &["discovery", "backup"],
    // The store: the poller writes snapshots into it, the renderers read them.
    &["state"],
    &["poller", "persist"],
    &["fleet", "report"],
    &["metrics", "check"],
    &["http"],
    &["daemon"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file under `src/`, keyed by the top-level module it belongs to.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src");
            let first = relative.components().next().expect("a component");
            let module = first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            out.entry(module).or_default().push(path);
        }
    }
    out
}

/// The crate modules a line refers to with `crate::name`.
fn crate_references(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
        rest = after;
    }
    found
}

#[test]
fn modules_import_only_from_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    for (module, files) in modules(&src) {
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            problems.push(format!(
                "src/{module}: not placed in a layer of tests/architecture.rs"
            ));
            continue;
        };
        for file in files {
            let text = std::fs::read_to_string(&file).expect("source is readable");
            for (number, line) in text.lines().enumerate() {
                for used in crate_references(line) {
                    if used == module {
                        continue;
                    }
                    match layer_of(&used) {
                        Some(layer) if layer < own => {}
                        _ => problems.push(format!(
                            "{}:{}: `{module}` (layer {own}) imports `{used}` (layer {}): {}",
                            file.strip_prefix(&src).unwrap_or(&file).display(),
                            number + 1,
                            layer_of(&used).map_or("none".into(), |l| l.to_string()),
                            line.trim()
                        )),
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the module graph must flow one way:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_references() {
    assert_eq!(
        crate_references("use crate::config::{Settings}; // crate::http"),
        ["config"]
    );
    assert_eq!(
        crate_references("    let x = crate::info::parse(crate::target::X);"),
        ["info", "target"]
    );
}

/// No file under `src/` is longer than 600 lines, not counting its unit tests: past that a
/// file holds more than one concept and should split along its seams.
#[test]
fn no_source_file_is_too_long() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut long = Vec::new();
    for files in modules(&src).values() {
        for file in files {
            let text = std::fs::read_to_string(file).expect("source is readable");
            let code = text.split("\n#[cfg(test)]\n").next().unwrap_or("");
            let lines = code.lines().count();
            if lines > 600 {
                long.push(format!("{}: {lines} lines", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "files to split:\n{}", long.join("\n"));
}
