//! Black-box checks of the shipped monitoring configuration:
//! `deploy/prometheus/rules.yml` (+ its `promtool test rules` unit tests),
//! `deploy/alertmanager/alertmanager.yml` (+ the routing cases in
//! `deploy/alertmanager/routes_test.txt`) and `docs/runbook.md`.
//!
//! The real tools do the checking: `promtool` and `amtool`. They are required,
//! not optional: a missing tool fails the test with the command that installs
//! it, because a skipped check would read as a passing one.
//!
//! Besides running the tools, this file checks that the pieces agree with each
//! other (every alert has a unit test that sees it fire, a routing case with
//! its exact labels and a runbook section) and that the unit tests have teeth:
//! known-wrong variants of the rules and routes must make them fail.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const INSTALL_HINT: &str = "apt-get install prometheus prometheus-alertmanager";

const RULES: &str = "deploy/prometheus/rules.yml";
const RULE_TESTS_DIR: &str = "deploy/prometheus/tests";
const ALERTMANAGER: &str = "deploy/alertmanager/alertmanager.yml";
const ROUTE_CASES: &str = "deploy/alertmanager/routes_test.txt";
const RUNBOOK: &str = "docs/runbook.md";

/// The alert names are a contract with users' silences and dashboards.
const ALERTS: &[&str] = &[
    "RedisAOFRewriteFailed",
    "RedisAOFRewriteStuck",
    "RedisAOFWriteFailed",
    "RedisAOFGrowingUncompacted",
    "RedisPersistenceChildHung",
    "RedisAOFRewriteWillNotFit",
    "RedisRDBBGSaveWillNotFit",
    "RedisForkAtRisk",
    "RedisRDBSaveFailed",
    "RedisRDBSaveStale",
    "RedisBackupStale",
    "RedisBackupCheckFailing",
    "RedisDurabilityGap",
    "RedisRDBDurabilityGap",
    "RedisDurabilityGapReplicated",
    "RedisTargetDown",
    "RedisPersistenceExporterDown",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Runs `tool` from the repository root. A missing tool is a failure.
fn run(tool: &str, args: &[String], dir: &Path) -> Output {
    match Command::new(tool).args(args).current_dir(dir).output() {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`{tool}` was not found on PATH; the deploy checks need it. Install with: {INSTALL_HINT}"
        ),
        Err(e) => panic!("could not run `{tool}`: {e}"),
    }
}

fn describe(tool: &str, args: &[String], out: &Output) -> String {
    format!(
        "$ {tool} {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_ok(tool: &str, args: &[String], dir: &Path) -> Output {
    let out = run(tool, args, dir);
    assert!(
        out.status.success(),
        "command failed:\n{}",
        describe(tool, args, &out)
    );
    out
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------
// Prometheus rules
// ---------------------------------------------------------------------------

#[test]
fn promtool_check_rules() {
    run_ok(
        "promtool",
        &strings(&["check", "rules", "--lint=all", "--lint-fatal", RULES]),
        &repo(),
    );
}

/// Unit-test files, each run by its own #[test] below.
const RULE_TEST_FILES: &[&str] = &[
    "aof_rewrite.yml",
    "aof_write_rdb.yml",
    "availability.yml",
    "backup.yml",
    "child_hung.yml",
    "durability_replicas.yml",
    "health_score.yml",
    "prediction.yml",
];

fn promtool_test(file: &str) {
    let rel = format!("{RULE_TESTS_DIR}/{file}");
    let out = run_ok("promtool", &strings(&["test", "rules", &rel]), &repo());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("SUCCESS"),
        "promtool did not report SUCCESS for {rel}:\n{stdout}"
    );
}

#[test]
fn promtool_test_aof_rewrite() {
    promtool_test("aof_rewrite.yml");
}

#[test]
fn promtool_test_aof_write_rdb() {
    promtool_test("aof_write_rdb.yml");
}

#[test]
fn promtool_test_availability() {
    promtool_test("availability.yml");
}

#[test]
fn promtool_test_backup() {
    promtool_test("backup.yml");
}

#[test]
fn promtool_test_child_hung() {
    promtool_test("child_hung.yml");
}

#[test]
fn promtool_test_durability_replicas() {
    promtool_test("durability_replicas.yml");
}

#[test]
fn promtool_test_health_score() {
    promtool_test("health_score.yml");
}

#[test]
fn promtool_test_prediction() {
    promtool_test("prediction.yml");
}

#[test]
fn every_rule_test_file_is_run() {
    let mut on_disk: Vec<String> = fs::read_dir(repo().join(RULE_TESTS_DIR))
        .expect("rule tests directory")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yml") || n.ends_with(".yaml"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = RULE_TEST_FILES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "add a #[test] for each file in {RULE_TESTS_DIR}"
    );
}

/// `alert name -> labels` as written in rules.yml. The file's layout is ours,
/// so a line-based reading is enough and keeps this test free of a YAML crate.
fn alert_labels(rules: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut alerts = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut labels_indent: Option<usize> = None;
    for line in rules.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if let Some(name) = text.strip_prefix("- alert:") {
            let name = name.trim().to_string();
            alerts.insert(name.clone(), BTreeMap::new());
            current = Some(name);
            labels_indent = None;
        } else if text.starts_with("- record:") {
            current = None;
            labels_indent = None;
        } else if text == "labels:" && current.is_some() {
            labels_indent = Some(indent);
        } else if let (Some(li), Some(name)) = (labels_indent, &current) {
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            if indent <= li {
                labels_indent = None;
                continue;
            }
            let (k, v) = text.split_once(':').expect("label line is `key: value`");
            let v = v.trim().trim_matches('"').to_string();
            alerts
                .get_mut(name)
                .unwrap()
                .insert(k.trim().to_string(), v);
        }
    }
    alerts
}

#[test]
fn rules_define_exactly_the_contracted_alerts_with_routing_labels() {
    let alerts = alert_labels(&read(RULES));
    let names: Vec<&str> = alerts.keys().map(String::as_str).collect();
    let mut expected = ALERTS.to_vec();
    expected.sort();
    assert_eq!(names, expected);
    for (name, labels) in &alerts {
        let severity = labels.get("severity").map(String::as_str);
        assert!(
            matches!(severity, Some("critical") | Some("warning")),
            "{name}: severity must be critical or warning, got {severity:?}"
        );
        let team = labels.get("team").map(String::as_str);
        assert!(
            matches!(team, Some("sre") | Some("dba") | Some("platform")),
            "{name}: team must be sre, dba or platform, got {team:?}"
        );
    }
}

#[test]
fn every_alert_has_a_runbook_section_and_url() {
    let rules = read(RULES);
    let runbook = read(RUNBOOK);
    for alert in ALERTS {
        assert!(
            runbook.lines().any(|l| l.trim() == format!("## {alert}")),
            "{RUNBOOK} has no `## {alert}` section"
        );
        let url = format!(
            "runbook_url: \"https://github.com/redis-persistence-exporter/redis-persistence-exporter/blob/main/docs/runbook.md#{}\"",
            alert.to_lowercase()
        );
        assert_eq!(
            rules.matches(&url).count(),
            1,
            "{RULES}: {alert} should carry exactly one runbook_url to its own anchor ({url})"
        );
    }
}

/// For each `alertname: X` in the unit tests, whether that expectation has a
/// firing alert (`exp_labels`) before the next `eval_time`.
#[test]
fn every_alert_is_seen_firing_and_silent_in_unit_tests() {
    let mut firing = BTreeMap::<String, bool>::new();
    let mut silent = BTreeMap::<String, bool>::new();
    for file in RULE_TEST_FILES {
        let text = read(&format!("{RULE_TESTS_DIR}/{file}"));
        for chunk in text.split("alertname: ").skip(1) {
            let name = chunk
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            let body = chunk.split("eval_time:").next().unwrap_or_default();
            if body.contains("exp_labels:") {
                firing.insert(name.clone(), true);
            }
            if body.contains("exp_alerts: []") {
                silent.insert(name, true);
            }
        }
    }
    for alert in ALERTS {
        assert!(
            firing.contains_key(*alert),
            "no unit test sees {alert} fire"
        );
        assert!(
            silent.contains_key(*alert),
            "no unit test sees {alert} stay silent"
        );
    }
}

// ---------------------------------------------------------------------------
// Alertmanager
// ---------------------------------------------------------------------------

#[test]
fn amtool_check_config() {
    run_ok("amtool", &strings(&["check-config", ALERTMANAGER]), &repo());
}

struct RouteCase {
    name: String,
    receivers: String,
    labels: Vec<String>,
}

fn route_cases() -> Vec<RouteCase> {
    read(ROUTE_CASES)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let parts: Vec<&str> = l.split('|').map(str::trim).collect();
            assert_eq!(
                parts.len(),
                3,
                "{ROUTE_CASES}: `name | receivers | labels`, got {l:?}"
            );
            RouteCase {
                name: parts[0].to_string(),
                receivers: parts[1].to_string(),
                labels: parts[2].split_whitespace().map(str::to_string).collect(),
            }
        })
        .collect()
}

fn routes_test(config: &Path, case: &RouteCase) -> Output {
    let mut args = strings(&["config", "routes", "test"]);
    args.push(format!("--config.file={}", config.display()));
    args.push(format!("--verify.receivers={}", case.receivers));
    args.extend(case.labels.iter().cloned());
    run("amtool", &args, &repo())
}

fn route_case(name: &str) {
    let cases = route_cases();
    let case = cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{ROUTE_CASES} has no case named {name}"));
    let out = routes_test(&repo().join(ALERTMANAGER), case);
    let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && got == case.receivers,
        "route case `{name}`: {} should go to `{}`, amtool resolved `{got}`\n{}",
        case.labels.join(" "),
        case.receivers,
        describe("amtool", &case.labels, &out)
    );
}

/// One #[test] per case in routes_test.txt, so a failure names its case.
macro_rules! route_cases {
    ($($case:ident),* $(,)?) => {
        const ROUTE_CASE_NAMES: &[&str] = &[$(stringify!($case)),*];
        mod route {
            $(#[test] fn $case() { super::route_case(stringify!($case)); })*
        }
    };
}

route_cases!(
    rewrite_failed,
    rewrite_stuck,
    aof_write_failed,
    growing_uncompacted,
    child_hung,
    rewrite_will_not_fit,
    bgsave_will_not_fit,
    fork_at_risk,
    rdb_save_failed,
    rdb_save_stale,
    backup_stale,
    backup_check_failing,
    durability_gap,
    rdb_durability_gap,
    durability_gap_replicated,
    target_down,
    exporter_down,
    exporter_absent,
    platform_critical,
    sre_warning,
    unknown_team_not_lost,
    unlabelled_not_lost,
);

#[test]
fn every_route_case_has_a_test() {
    let mut in_file: Vec<String> = route_cases().into_iter().map(|c| c.name).collect();
    in_file.sort();
    let mut listed: Vec<String> = ROUTE_CASE_NAMES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        in_file, listed,
        "route_cases!(...) must list every case in {ROUTE_CASES}"
    );
}

/// Rules and routing must not drift: the labels each alert really carries have
/// a routing case.
#[test]
fn every_alert_has_a_route_case_with_its_labels() {
    let cases = route_cases();
    for (alert, labels) in alert_labels(&read(RULES)) {
        let covered = cases.iter().any(|c| {
            c.labels.contains(&format!("alertname={alert}"))
                && labels
                    .iter()
                    .all(|(k, v)| c.labels.contains(&format!("{k}={v}")))
                && c.labels
                    .iter()
                    .filter_map(|l| l.split_once('='))
                    .filter(|(k, _)| ["severity", "team", "notify_owner"].contains(k))
                    .all(|(k, v)| labels.get(k).map(String::as_str) == Some(v))
        });
        assert!(
            covered,
            "{ROUTE_CASES} has no case for {alert} with exactly its routing labels {labels:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// The tests have teeth: known-wrong variants must be caught.
// ---------------------------------------------------------------------------

/// Writes rules.yml with `from` replaced by `to` next to a copy of one unit
/// test file, runs promtool on it and returns its output.
fn promtool_on_mutant(from: &str, to: &str, test_file: &str) -> String {
    let rules = read(RULES);
    assert_eq!(
        rules.matches(from).count(),
        1,
        "mutation anchor {from:?} must occur once in {RULES}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("tests")).unwrap();
    fs::write(dir.path().join("rules.yml"), rules.replace(from, to)).unwrap();
    let test_text = read(&format!("{RULE_TESTS_DIR}/{test_file}"));
    fs::write(dir.path().join("tests").join(test_file), test_text).unwrap();
    let args = strings(&["test", "rules", &format!("tests/{test_file}")]);
    let out = run("promtool", &args, dir.path());
    assert!(
        !out.status.success(),
        "the unit tests did not catch the mutant rule `{to}`:\n{}",
        describe("promtool", &args, &out)
    );
    // promtool prints the failing test names on stderr.
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn unit_tests_reject_alerting_on_the_raw_stale_rewrite_status() {
    let out = promtool_on_mutant(
        "expr: redis:aof_rewrite_failed == 1\n",
        "expr: redis_aof_last_bgrewrite_status == 0\n",
        "aof_rewrite.yml",
    );
    assert!(
        out.contains("AOF disabled with a stale err raw status"),
        "{out}"
    );
}

/// The Last Successful Backup card is the backup itself, not the RDB save (a sibling card).
#[test]
fn unit_tests_reject_a_durability_gap_read_from_the_rdb_save() {
    let out = promtool_on_mutant(
        "redis:backup_stale == 1\n              and (redis:aof_rewrite_failed",
        "redis:rdb_save_stale == 1\n              and (redis:aof_rewrite_failed",
        "backup.yml",
    );
    assert!(
        out.contains("the durability gap is an AOF err plus a stale backup"),
        "{out}"
    );
}

#[test]
fn unit_tests_reject_a_stuck_alert_on_any_single_err() {
    let out = promtool_on_mutant(
        "expr: redis_aof_rewrite_stuck == 1 and redis:aof_rewrite_failed == 1",
        "expr: redis:aof_rewrite_failed == 1",
        "aof_rewrite.yml",
    );
    assert!(
        out.contains("a single self-recovered err does not trigger Stuck"),
        "{out}"
    );
}

#[test]
fn unit_tests_reject_an_exporter_alert_that_is_silent_when_absent() {
    let out = promtool_on_mutant(
        "\n            or absent(redis_persistence_exporter:up)",
        "",
        "availability.yml",
    );
    assert!(
        out.contains("no exporter scrape target at all is not silence"),
        "{out}"
    );
}

#[test]
fn route_cases_reject_routing_without_the_owner_copy() {
    let config = read(ALERTMANAGER);
    let anchor = "\n      continue: true\n";
    assert_eq!(
        config.matches(anchor).count(),
        1,
        "mutation anchor must occur once"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mutant = dir.path().join("alertmanager.yml");
    fs::write(&mutant, config.replace(anchor, "\n      continue: false\n")).unwrap();
    let cases = route_cases();
    let case = cases
        .iter()
        .find(|c| c.name == "durability_gap")
        .expect("durability_gap case");
    let out = routes_test(&mutant, case);
    assert!(
        !out.status.success(),
        "route case durability_gap did not notice the owner copy was dropped:\n{}",
        describe("amtool", &case.labels, &out)
    );
}
