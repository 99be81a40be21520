//! The status page (`GET /`) as a browser renders it: real targets in each card state (ok,
//! err from a killed rewrite, AOF off = n/a, and one that is down), the real exporter, and
//! headless Chromium for the DOM and a screenshot (copied to `target/status-page.png`).
//!
//! Needs the Debian `chromium` package (`/usr/bin/chromium`) and `/usr/bin/redis-server`.

mod support;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::free_port;
use support::{run, Exporter, Redis, RedisSpec, Target, SEE};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Chromium gets this long per run, then its whole process group is killed.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(60);

/// Runs headless Chromium on `url` with `extra` flags in its own process group; returns its
/// stdout. The group is killed afterwards (helpers may outlive the browser) and on timeout.
fn chromium(profile: &Path, url: &str, extra: &[String]) -> String {
    let out_path = profile.with_extension("stdout");
    let err_path = profile.with_extension("stderr");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .env("HOME", profile)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("stdout file"))
        .stderr(fs::File::create(&err_path).expect("stderr file"))
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {CHROMIUM} (Debian package `chromium`): {e}"));
    let group = child.id();
    let deadline = Instant::now() + CHROMIUM_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = run("kill", &["-KILL", "--", &format!("-{group}")]);
    let _ = child.wait();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    match status {
        Some(status) if status.success() => {}
        Some(status) => panic!("chromium {extra:?} exited with {status}; stderr:\n{stderr}"),
        None => panic!(
            "chromium {extra:?} did not finish within {CHROMIUM_DEADLINE:?}; stderr:\n{stderr}"
        ),
    }
    fs::read_to_string(&out_path).unwrap_or_default()
}

/// The value of attribute `name` in one start tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

/// Every `<section>` of the page as (id, class list, inner text until `</section>`).
fn sections(dom: &str) -> Vec<(String, Vec<String>, String)> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(start) = rest.find("<section") {
        let after = &rest[start..];
        let tag_end = after.find('>').expect("a closed <section> tag");
        let tag = &after[..tag_end];
        let body_end = after.find("</section>").unwrap_or(after.len());
        out.push((
            attribute(tag, "id").unwrap_or_default(),
            attribute(tag, "class")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            after[tag_end + 1..body_end].to_owned(),
        ));
        rest = &after[body_end.min(after.len())..];
        if body_end == after.len() {
            break;
        }
    }
    out
}

/// Width and height from a PNG's IHDR chunk, if `bytes` is a PNG.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    Some((word(16), word(20)))
}

#[test]
fn status_page_shows_each_card_state_in_a_browser() {
    let mut healthy = Redis::start(RedisSpec::aof());
    let mut failing = Redis::start(RedisSpec::aof());
    let mut aof_off = Redis::start(RedisSpec::default());
    failing.populate(100_000);
    let down_url = format!("redis://127.0.0.1:{}", free_port());

    let exporter = Exporter::start_targets(&[
        Target::host("ok-target", &healthy),
        Target::host("err-target", &failing),
        Target::host("na-target", &aof_off),
        Target::url("down-target", &down_url),
    ]);
    // Healthy before the fault: the page shows ok for both AOF targets.
    exporter.wait_metrics(SEE, "both AOF targets ok", |m| {
        m.card("ok-target").as_deref() == Some("ok")
            && m.card("err-target").as_deref() == Some("ok")
    });
    failing.kill_rewrite_child();
    exporter.wait_metrics(SEE, "each target in its state", |m| {
        m.card("ok-target").as_deref() == Some("ok")
            && m.card("err-target").as_deref() == Some("err")
            && m.reason("err-target", "aof_rewrite").is_some()
            && m.card("na-target").as_deref() == Some("not_applicable")
            && m.value("redis_up", "down-target") == Some(0.0)
    });
    assert_eq!(healthy.field("aof_last_bgrewrite_status"), "ok");
    assert_eq!(aof_off.field("aof_enabled"), "0");

    let scratch = tempfile::Builder::new()
        .prefix("rpe-chromium-")
        .tempdir()
        .expect("temp dir");
    let url = format!("http://127.0.0.1:{}/", exporter.port());
    let dom = chromium(
        &scratch.path().join("dom-profile"),
        &url,
        &["--dump-dom".to_owned()],
    );
    assert!(
        dom.contains("Redis persistence"),
        "the DOM is the status page:\n{dom}"
    );
    assert!(
        !dom.to_ascii_lowercase().contains("<script"),
        "the page needs no JavaScript"
    );
    assert!(
        dom.contains("http-equiv=\"refresh\""),
        "the page refreshes itself"
    );

    let found = sections(&dom);
    for (name, class, must_say) in [
        ("ok-target", "ok", "ok"),
        ("err-target", "err", "BGREWRITEAOF"),
        ("na-target", "na", "not applicable"),
        ("down-target", "unknown", "unreachable"),
    ] {
        let id = format!("target-{name}");
        let (_, classes, text) = found
            .iter()
            .find(|(section_id, _, _)| *section_id == id)
            .unwrap_or_else(|| panic!("no section #{id} in the DOM; sections: {found:?}"));
        assert!(
            classes.iter().any(|c| c == class)
                && classes.iter().all(|c| c == "target" || c == class),
            "section #{id} should have class {class}, has {classes:?}"
        );
        assert!(
            text.contains(must_say),
            "section #{id} should mention {must_say:?}:\n{text}"
        );
    }
    let (_, _, err_text) = found
        .iter()
        .find(|(id, _, _)| id == "target-err-target")
        .expect("err section");
    assert!(
        err_text.contains("child_killed"),
        "the err section names the probable cause:\n{err_text}"
    );
    assert!(
        err_text.contains("1 failed attempt"),
        "the err section says how many attempts failed:\n{err_text}"
    );

    let shot = scratch.path().join("status.png");
    chromium(
        &scratch.path().join("shot-profile"),
        &url,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,1400".to_owned(),
        ],
    );
    let png = fs::read(&shot).expect("chromium wrote the screenshot");
    let size = png_size(&png);
    assert!(
        size.is_some(),
        "the screenshot is a PNG ({} bytes)",
        png.len()
    );
    let (width, height) = size.unwrap();
    assert!(
        width > 0 && height > 0 && png.len() > 1000,
        "a non-empty PNG: {width}x{height}, {} bytes",
        png.len()
    );
    let keep: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("status-page.png");
    fs::create_dir_all(keep.parent().expect("target dir")).expect("target dir");
    fs::copy(&shot, &keep).expect("copy the screenshot to target/");
    eprintln!(
        "status page screenshot ({width}x{height}): {}",
        keep.display()
    );
    let _ = &mut healthy;
}
