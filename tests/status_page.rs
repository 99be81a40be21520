//! The status pages as a browser renders them: real targets in each card state (ok, err from
//! a killed rewrite, AOF off = n/a, and one that is down), the real exporter, and headless
//! Chromium for the DOM and screenshots (copied to `target/status-page*.png`). The fleet page
//! `/` is checked for its summary counts, its worst-first order and its filters (`?state=`,
//! `?label=`); the per-target page for its card changes and failed attempts.
//!
//! Needs the Debian `chromium` package (`/usr/bin/chromium`) and `/usr/bin/redis-server`.

mod support;

use std::fs;
use std::path::Path;

use support::chromium::{png_size, Chromium};
use support::free_port;
use support::{Exporter, Redis, RedisSpec, Target, SEE};

/// The value of attribute `name` in one start tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

/// One card of the page: its target, its classes and its inner HTML.
#[derive(Debug)]
struct Section {
    target: String,
    classes: Vec<String>,
    html: String,
}

/// Every card (`<section>`) of the page, in page order.
fn sections(dom: &str) -> Vec<Section> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(start) = rest.find("<section") {
        let after = &rest[start..];
        let tag_end = after.find('>').expect("a closed <section> tag");
        let tag = &after[..tag_end];
        let body_end = after.find("</section>").unwrap_or(after.len());
        out.push(Section {
            target: attribute(tag, "id")
                .unwrap_or_default()
                .trim_start_matches("target-")
                .to_owned(),
            classes: attribute(tag, "class")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            html: after[tag_end + 1..body_end].to_owned(),
        });
        rest = &after[body_end..];
        if body_end == after.len() {
            break;
        }
    }
    out
}

fn order(dom: &str) -> Vec<String> {
    sections(dom).into_iter().map(|s| s.target).collect()
}

/// The number in the summary link `#count-<state>`.
fn count(dom: &str, state: &str) -> Option<usize> {
    let at = dom.find(&format!("id=\"count-{state}\""))?;
    let from = at + dom[at..].find("<b>")? + 3;
    dom[from..from + dom[from..].find('<')?].parse().ok()
}

/// Copies a screenshot to `target/<name>` for people to look at, after checking it is a PNG.
fn keep_screenshot(shot: &Path, name: &str) {
    let png = fs::read(shot).expect("chromium wrote the screenshot");
    let (width, height) = png_size(&png).expect("the screenshot is a PNG");
    assert!(
        width > 0 && height > 0 && png.len() > 1000,
        "a non-empty PNG"
    );
    let keep = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name);
    fs::create_dir_all(keep.parent().expect("target dir")).expect("target dir");
    fs::copy(shot, &keep).expect("copy the screenshot to target/");
    eprintln!("screenshot ({width}x{height}): {}", keep.display());
}

#[test]
fn status_pages_summarise_sort_filter_and_drill_down_in_a_browser() {
    let healthy = Redis::start(RedisSpec::aof());
    let mut failing = Redis::start(RedisSpec::aof());
    let mut aof_off = Redis::start(RedisSpec::default());
    failing.populate(100_000);
    let down_url = format!("redis://127.0.0.1:{}", free_port());

    let exporter = Exporter::start_targets(&[
        Target::host("ok-target", &healthy).label("env", "prod"),
        Target::host("err-target", &failing).label("env", "prod"),
        Target::host("na-target", &aof_off).label("env", "staging"),
        Target::url("down-target", &down_url).label("env", "prod"),
    ]);
    let browser = Chromium::new();
    let page = |path: &str| browser.dom(&exporter.url(path));

    // Healthy before the fault: both AOF cards ok, nothing in err.
    exporter.wait_metrics(SEE, "both AOF targets ok", |m| {
        m.card("ok-target").as_deref() == Some("ok")
            && m.card("err-target").as_deref() == Some("ok")
            && m.value("redis_up", "down-target") == Some(0.0)
    });
    let before = page("/");
    assert_eq!(count(&before, "err"), Some(0), "{before}");
    assert_eq!(count(&before, "ok"), Some(2), "{before}");

    failing.kill_rewrite_child();
    exporter.wait_metrics(SEE, "each target in its state", |m| {
        m.card("ok-target").as_deref() == Some("ok")
            && m.card("err-target").as_deref() == Some("err")
            && m.reason("err-target", "aof_rewrite").is_some()
            && m.card("na-target").as_deref() == Some("not_applicable")
    });
    assert_eq!(aof_off.field("aof_enabled"), "0");

    // The fleet: summary counts, then the cards worst first.
    let dom = page("/");
    assert!(dom.contains("Redis persistence"), "the status page:\n{dom}");
    assert!(
        !dom.to_ascii_lowercase().contains("<script"),
        "no JavaScript"
    );
    assert!(dom.contains("http-equiv=\"refresh\""), "refreshes itself");
    for (state, expected) in [
        ("all", 4),
        ("err", 1),
        ("stuck", 0),
        ("unknown", 1),
        ("ok", 1),
        ("not_applicable", 1),
    ] {
        assert_eq!(
            count(&dom, state),
            Some(expected),
            "count of {state}:\n{dom}"
        );
    }
    assert!(
        dom.contains("href=\"/?state=err\""),
        "the err count links to its filter"
    );
    assert_eq!(
        order(&dom),
        ["err-target", "down-target", "ok-target", "na-target"],
        "worst first"
    );
    let cards = sections(&dom);
    for (card, class, must_say) in [
        (&cards[0], "err", "BGREWRITEAOF"),
        (&cards[1], "unknown", "unreachable"),
        (&cards[2], "ok", "RDB saved"),
        (&cards[3], "na", "not applicable"),
    ] {
        assert!(
            card.classes.iter().all(|c| c == "target" || c == class),
            "{} should be {class}: {:?}",
            card.target,
            card.classes
        );
        assert!(
            card.html.contains(must_say),
            "{} says {must_say:?}:\n{}",
            card.target,
            card.html
        );
    }
    let err = &cards[0].html;
    assert!(err.contains("child_killed"), "the probable cause:\n{err}");
    assert!(err.contains("1 failed attempt"), "attempts so far:\n{err}");
    assert!(err.contains("env=prod"), "the labels:\n{err}");
    let ok = &cards[2].html;
    for sibling in ["RDB saved", "memory ", "replicas 0/0 in sync", "up "] {
        assert!(
            ok.contains(sibling),
            "the siblings line has {sibling:?}:\n{ok}"
        );
    }

    // Filters: by state, by label, both.
    let only_err = page("/?state=err");
    assert_eq!(order(&only_err), ["err-target"]);
    assert_eq!(count(&only_err, "all"), Some(4), "the summary stays whole");
    let prod = page("/?label=env:prod");
    assert_eq!(order(&prod), ["err-target", "down-target", "ok-target"]);
    assert_eq!(count(&prod, "all"), Some(3));
    let staging_err = page("/?state=err&label=env:staging");
    assert!(order(&staging_err).is_empty(), "{staging_err}");
    assert!(staging_err.contains("No target matches"));
    let bad = exporter.request("/?state=%3Cscript%3E", &[]);
    assert_eq!(bad.status, Some(400), "a bad filter is a 400: {}", bad.body);
    assert!(bad.body.contains("unknown state") && !bad.body.contains("<script"));

    // The target's own page, through the link on its card.
    let href = err
        .split("class=\"name\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the card links to its page");
    assert_eq!(href, "/target?name=err-target");
    let own = page(href);
    let changes: Vec<&str> = own.split("<tr class=\"change\">").skip(1).collect();
    assert!(changes.len() >= 2, "ok then err:\n{own}");
    assert!(
        changes[0].contains("class=\"to err\""),
        "newest first:\n{own}"
    );
    assert!(changes.last().unwrap().contains("(first seen)"), "{own}");
    let aof_row = own
        .split("id=\"attempts-aof-rewrite\"")
        .nth(1)
        .expect("the AOF rewrite attempts row");
    assert!(aof_row.contains("<td class=\"total\">1</td>"), "{aof_row}");
    assert!(own.contains("id=\"attempts-rdb-save\""));
    let missing = exporter.request("/target?name=nope", &[]);
    assert_eq!(missing.status, Some(404), "{}", missing.body);

    let scratch = support::tempdir("rpe-shots-");
    let fleet_shot = scratch.path().join("fleet.png");
    browser.screenshot(&exporter.url("/?label=env:prod"), &fleet_shot, 1280, 900);
    keep_screenshot(&fleet_shot, "status-page.png");
    let target_shot = scratch.path().join("target.png");
    browser.screenshot(&exporter.url(href), &target_shot, 1280, 900);
    keep_screenshot(&target_shot, "status-page-target.png");
}
