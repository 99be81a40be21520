use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::http::target_page::target_page;
use crate::info::parse;
use crate::state::{lock, Snapshot};
use crate::target::{Address, Target};

const NOW: f64 = 10_000.0;

fn target(name: &str, labels: &[(&str, &str)]) -> Arc<Target> {
    Arc::new(Target {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        address: Address::Tcp {
            host: "127.0.0.1".into(),
            port: 6379,
            tls: false,
        },
        username: None,
        password: None,
        rdb_max_age: Duration::from_secs(3600),
        config_command: None,
        log_file: None,
        data_dir: None,
        tls: None,
    })
}

/// INFO for an AOF instance whose rewrite has failed `failures` times in a row (0: ok).
fn aof(failures: u64, write: &str) -> String {
    let status = if failures > 0 { "err" } else { "ok" };
    format!(
        "run_id:abc\nuptime_in_seconds:7200\nused_memory:1048576\nmaxmemory:4194304\n\
         aof_enabled:1\naof_last_bgrewrite_status:{status}\naof_last_write_status:{write}\n\
         aof_rewrites:{failures}\naof_rewrites_consecutive_failures:{failures}\n\
         rdb_last_bgsave_status:ok\nrdb_last_save_time:9000\nconnected_slaves:0\n"
    )
}

fn poll(store: &Store, name: &str, info: &str, at: u64) {
    let cell = store.get(name).expect("inserted");
    lock(&cell).record_success(
        Snapshot::new(parse(info).unwrap(), UNIX_EPOCH + Duration::from_secs(at)),
        Duration::ZERO,
        None,
    );
}

/// One target in each place of the order, inserted in name order that is not the rank order.
fn fleet() -> Store {
    let store = Store::new();
    store.insert(target("a-ok", &[("env", "prod")]));
    store.insert(target("b-down", &[("env", "prod")]));
    store.insert(target("c-err", &[("env", "staging")]));
    store.insert(target("d-stuck", &[("env", "prod")]));
    store.insert(target("e-writes", &[]));
    store.insert(target("f-na", &[]));
    poll(&store, "a-ok", &aof(0, "ok"), 9_900);
    poll(&store, "c-err", &aof(0, "ok"), 9_800);
    poll(&store, "c-err", &aof(1, "ok"), 9_900);
    poll(&store, "d-stuck", &aof(1, "ok"), 9_800);
    poll(&store, "d-stuck", &aof(2, "ok"), 9_900);
    poll(&store, "e-writes", &aof(0, "err"), 9_900);
    poll(
        &store,
        "f-na",
        "aof_enabled:0\nrdb_last_bgsave_status:ok\n",
        9_900,
    );
    store
}

/// The target names of the cards, in page order.
fn order(page: &str) -> Vec<String> {
    page.split("<section class=\"target ")
        .skip(1)
        .map(|s| {
            let start = s.find("id=\"target-").unwrap() + "id=\"target-".len();
            s[start..start + s[start..].find('"').unwrap()].to_owned()
        })
        .collect()
}

fn count(page: &str, state: &str) -> usize {
    let at = page.find(&format!("id=\"count-{state}\"")).unwrap();
    let from = at + page[at..].find("<b>").unwrap() + 3;
    page[from..from + page[from..].find('<').unwrap()]
        .parse()
        .unwrap()
}

#[test]
fn the_filter_reads_its_contract_and_refuses_the_rest() {
    let filter = Filter::parse("state=err&label=env:prod&label=team%3Aa&x=1").unwrap();
    assert_eq!(filter.state, Some(StateFilter::Err));
    assert_eq!(
        filter.labels,
        [("env".into(), "prod".into()), ("team".into(), "a".into())]
    );
    assert_eq!(filter.ignored, ["x"]);
    assert_eq!(Filter::parse("").unwrap(), Filter::default());
    assert_eq!(
        Filter::parse("state=bad"),
        Err(FilterError::UnknownState("bad".into()))
    );
    assert_eq!(
        Filter::parse("state=ok&state=err"),
        Err(FilterError::TwoStates)
    );
    assert_eq!(
        Filter::parse("label=envprod"),
        Err(FilterError::BadLabel("envprod".into()))
    );
    assert!(Filter::parse("label=:x").is_err());
    assert!(
        Filter::parse("state=%FF%FE").is_err(),
        "bad UTF-8 is refused, not a panic"
    );
}

#[test]
fn cards_come_worst_first_under_a_summary() {
    let page = fleet_page(&fleet(), &Filter::default(), NOW);
    assert_eq!(
        order(&page),
        ["e-writes", "d-stuck", "c-err", "b-down", "a-ok", "f-na"]
    );
    assert_eq!(count(&page, "all"), 6);
    assert_eq!(count(&page, "err"), 2, "stuck is an err too");
    assert_eq!(count(&page, "stuck"), 1);
    assert_eq!(
        count(&page, "ok"),
        2,
        "a failing write keeps the rewrite card ok"
    );
    assert_eq!(count(&page, "unknown"), 1);
    assert_eq!(count(&page, "not_applicable"), 1);
    assert!(
        page.contains("href=\"/?state=err\""),
        "each count is a link"
    );
    assert!(page.contains("up 2h"), "uptime on the card");
    assert!(page.contains("memory 1.0 MiB / 4.0 MiB (25%)"), "{page}");
    assert!(page.contains("replicas 0/0 in sync"));
    assert!(page.contains("RDB saved 16m ago"));
}

#[test]
fn filters_narrow_the_cards_and_keep_the_counts_honest() {
    let store = fleet();
    let err = fleet_page(&store, &Filter::parse("state=err").unwrap(), NOW);
    assert_eq!(order(&err), ["d-stuck", "c-err"]);
    assert_eq!(
        count(&err, "all"),
        6,
        "the summary still counts the whole fleet"
    );
    let stuck = fleet_page(&store, &Filter::parse("state=stuck").unwrap(), NOW);
    assert_eq!(order(&stuck), ["d-stuck"]);
    let prod = fleet_page(&store, &Filter::parse("label=env:prod").unwrap(), NOW);
    assert_eq!(order(&prod), ["d-stuck", "b-down", "a-ok"]);
    assert_eq!(count(&prod, "all"), 3, "counts are for the labelled set");
    assert!(
        prod.contains("href=\"/?state=err&amp;label=env%3Aprod\""),
        "state links keep the label filter:\n{prod}"
    );
    let both = fleet_page(
        &store,
        &Filter::parse("state=err&label=env:prod").unwrap(),
        NOW,
    );
    assert_eq!(order(&both), ["d-stuck"]);
    let none = fleet_page(&store, &Filter::parse("label=env:nowhere").unwrap(), NOW);
    assert!(order(&none).is_empty() && none.contains("No target matches"));
    let noted = fleet_page(&store, &Filter::parse("statee=err").unwrap(), NOW);
    assert!(noted.contains("Ignored unknown parameter(s): statee"));
}

#[test]
fn names_and_labels_are_escaped_everywhere() {
    let store = Store::new();
    let hostile = "<script>alert('x')</script>&\"";
    store.insert(target(hostile, &[("team", "<b>x</b>")]));
    poll(&store, hostile, &aof(1, "ok"), 9_900);
    let filter = Filter::parse("label=team:<b>x</b>&<i>=1").unwrap();
    let page = fleet_page(&store, &filter, NOW);
    assert!(!page.contains("<script"), "{page}");
    assert!(
        !page.contains("<b>x</b>") && !page.contains("<i>"),
        "{page}"
    );
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
    assert!(page.contains("/target?name=%3Cscript%3Ealert%28%27x%27%29"));
    let own = target_page(&store, hostile, NOW).unwrap();
    assert!(!own.contains("<script"), "{own}");
    assert_eq!(escape("a'b"), "a&#39;b");
}

#[test]
fn a_target_page_shows_its_card_changes_and_attempts() {
    let store = fleet();
    poll(&store, "c-err", &aof(0, "ok"), 9_950);
    let page = target_page(&store, "c-err", NOW).unwrap();
    let changes: Vec<&str> = page.split("<tr class=\"change\">").skip(1).collect();
    assert_eq!(changes.len(), 3, "ok, err, ok again:\n{page}");
    assert!(
        changes[0].contains("1970-01-01T02:45:50Z (50s ago)"),
        "newest first"
    );
    assert!(changes[0].contains("<td>err</td><td class=\"to ok\">ok</td>"));
    assert!(changes[2].contains("(first seen)"));
    let aof_row = &page[page.find("id=\"attempts-aof-rewrite\"").unwrap()..];
    assert!(aof_row.contains("<td class=\"total\">1</td>"), "{aof_row}");
    assert!(
        aof_row.contains("<td class=\"transient\">1</td>"),
        "{aof_row}"
    );
    assert!(page.contains("id=\"attempts-rdb-save\""));
    assert!(target_page(&store, "nope", NOW).is_none());
}
