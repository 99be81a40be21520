//! Targets that are not Redis, or not a well-behaved one: fake servers that never answer,
//! answer garbage, hang up mid-reply, trickle, or send an enormous reply, polled by the real
//! exporter beside a real `redis-server`.
//!
//! Each fake starts healthy (a real INFO reply), turns hostile, then recovers, so every case
//! shows the healthy state, the fault and the recovery against the same target. Assertions
//! are on counts and reasons, never on speed: a hostile target must fail with its own reason,
//! the healthy target must keep its poll count, and the exporter's peak memory must stay
//! bounded while it is offered replies far larger than its budget.
//!
//! Also here: the `INFO` parser, fed every reference reply truncated at every byte and with
//! random byte flips, never panics; and every saved fuzzer finding parses without a panic.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::{bulk, noise, saved_fuzz_findings, Behavior, FakeRedis};
use support::{
    config_toml, failures, polls, samples, try_scrape, up, Exporter, Redis, RedisSpec, Target,
};

use proptest::prelude::*;
use redis_persistence_exporter::info;

/// Poll every second with half a second per poll: the schedule the brief asks for.
const POLL_INTERVAL: &str = "1s";
const POLL_TIMEOUT: &str = "500ms";
/// Generous bound for a state to show in a scrape; a correct exporter meets it by far.
const STATE_TIMEOUT: Duration = Duration::from_secs(30);
/// Failed polls each hostile target must show before the fault phase ends.
const FAULT_POLLS: f64 = 5.0;
/// Peak resident memory the exporter may reach while offered enormous replies. Its budget
/// is 1 MiB per reply; 200 MiB leaves room for the runtime and allocator, and is still far
/// below what buffering a 2 GB reply (or even one 64 MiB slice of it) would cost.
const MEMORY_BOUND_KIB: u64 = 200 * 1024;

// ---------------------------------------------------------------------------------------------
// Reading a scrape.

/// `reason -> failed polls` for `target`, sorted by reason.
fn failure_counts(body: &str, target: &str) -> Vec<(String, f64)> {
    let mut counts: Vec<(String, f64)> = samples(
        body,
        "redis_persistence_exporter_poll_failures_total",
        &[("target", target)],
    )
    .iter()
    .filter_map(|s| s.label("reason").map(|r| (r.to_owned(), s.value)))
    .collect();
    counts.sort_by(|a, b| a.0.cmp(&b.0));
    counts
}

/// Failures of `target` since `before`, per reason, leaving out reasons that did not move.
fn new_failures(before: &str, after: &str, target: &str) -> Vec<(String, f64)> {
    failure_counts(after, target)
        .into_iter()
        .filter_map(|(reason, count)| {
            let new = count - failures(before, target, &reason);
            (new > 0.0).then_some((reason, new))
        })
        .collect()
}

fn last_failure_reason(body: &str, target: &str) -> Option<String> {
    samples(
        body,
        "redis_persistence_exporter_last_poll_failed",
        &[("target", target)],
    )
    .first()
    .and_then(|s| s.label("reason").map(str::to_owned))
}

/// A scrape with the instants just before and after it, so a count between two scrapes can
/// be compared with the time that certainly passed and the time that possibly passed.
struct TimedScrape {
    before: Instant,
    after: Instant,
    body: String,
}

fn timed_scrape(exporter: &Exporter) -> TimedScrape {
    let before = Instant::now();
    let body = exporter.scrape();
    TimedScrape {
        before,
        after: Instant::now(),
        body,
    }
}

/// Polls due between two scrapes, at one per second: at least the ticks in the time that
/// surely passed, at most those in the time that possibly passed, each widened by one.
fn expected_polls(first: &TimedScrape, second: &TimedScrape) -> (f64, f64) {
    let surely = second
        .before
        .saturating_duration_since(first.after)
        .as_secs_f64();
    let possibly = second.after.duration_since(first.before).as_secs_f64();
    (surely.floor() - 1.0, possibly.ceil() + 1.0)
}

// ---------------------------------------------------------------------------------------------
// The exporter process.

/// A `kB` field of `/proc/<pid>/status`, such as `VmHWM` (peak resident set).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

// ---------------------------------------------------------------------------------------------
// The hostile cases.

/// One hostile target: its name, what it does, and the reason it must be reported with.
struct Case {
    name: &'static str,
    fault: Behavior,
    reason: &'static str,
}

/// Every case, with the classification the exporter owes it.
fn cases() -> Vec<Case> {
    let mut random = noise(4096, 0x5eed_1234_abcd);
    // A first byte that is no RESP type: the reply is garbage from its first byte on, and
    // the case cannot turn into "a valid header announcing more" by chance.
    random[0] = 0xff;
    vec![
        Case {
            name: "never-answers",
            fault: Behavior::Silent,
            reason: "timeout",
        },
        Case {
            name: "garbage-simple-ok",
            fault: Behavior::Reply(b"+OK\r\n".to_vec()),
            reason: "parse",
        },
        Case {
            name: "garbage-bulk-not-info",
            fault: Behavior::Reply(bulk(b"<html><body>this is not an INFO reply</body></html>\n")),
            reason: "parse",
        },
        Case {
            name: "garbage-null-bulk",
            // A nil where text is due is "not what the command returns": the client's
            // conversion refuses it before the INFO parser sees anything.
            fault: Behavior::Reply(b"$-1\r\n".to_vec()),
            reason: "protocol",
        },
        Case {
            name: "garbage-array",
            fault: Behavior::Reply(b"*2\r\n$4\r\nrole\r\n$6\r\nmaster\r\n".to_vec()),
            reason: "protocol",
        },
        Case {
            name: "garbage-http",
            fault: Behavior::Reply(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nBad Request"
                    .to_vec(),
            ),
            reason: "protocol",
        },
        Case {
            name: "garbage-random",
            fault: Behavior::Reply(random),
            reason: "protocol",
        },
        Case {
            name: "closes-mid-reply",
            fault: Behavior::ReplyThenClose(b"$5000\r\n# Server\r\nredis_version:7.0.15\r\nredis_mo".to_vec()),
            reason: "io",
        },
        Case {
            name: "slow-byte-every-100ms",
            fault: Behavior::Trickle {
                every: Duration::from_millis(100),
            },
            reason: "timeout",
        },
        Case {
            name: "enormous-reply",
            fault: Behavior::Enormous,
            reason: "reply_too_large",
        },
    ]
}

#[test]
fn each_hostile_target_fails_with_its_own_reason_while_a_healthy_one_keeps_its_schedule() {
    let redis = Redis::start(RedisSpec::rdb());
    let cases = cases();
    let fakes: Vec<FakeRedis> = cases
        .iter()
        .map(|_| FakeRedis::start(Behavior::Healthy))
        .collect();
    let mut targets = vec![Target::new(redis.url(), "real-redis")];
    targets.extend(
        cases
            .iter()
            .zip(&fakes)
            .map(|(case, fake)| Target::new(fake.url(), case.name)),
    );
    let exporter = Exporter::start(&config_toml(POLL_INTERVAL, POLL_TIMEOUT, &targets));

    // Healthy: every target, fake or real, is up on a real INFO reply.
    exporter.wait_for(STATE_TIMEOUT, "every target is up", |body| {
        targets.iter().all(|t| up(body, &t.name) == Some(1.0))
    });

    // Fault: each fake turns hostile at once, while the real Redis is polled beside them.
    let fault_start = timed_scrape(&exporter);
    for (case, fake) in cases.iter().zip(&fakes) {
        fake.set(case.fault.clone());
    }
    let mut healthy_was_down = Vec::new();
    let fault = exporter.wait_for(
        STATE_TIMEOUT + Duration::from_secs(FAULT_POLLS as u64 * 2),
        "every hostile target has failed several polls with its own reason",
        |body| {
            if up(body, "real-redis") != Some(1.0) {
                healthy_was_down.push(body.to_owned());
            }
            // Any reason counts here; which reason is checked below, with a precise message.
            cases.iter().all(|c| {
                let new: f64 = new_failures(&fault_start.body, body, c.name)
                    .iter()
                    .map(|(_, n)| n)
                    .sum();
                new >= FAULT_POLLS
            })
        },
    );
    let fault_end = timed_scrape(&exporter);

    let mut wrong = Vec::new();
    for case in &cases {
        let seen = new_failures(&fault_start.body, &fault_end.body, case.name);
        let reasons: Vec<&str> = seen.iter().map(|(r, _)| r.as_str()).collect();
        // The first poll after the switch may still be the last healthy one; every failure
        // must carry the case's reason.
        if reasons != [case.reason]
            || up(&fault_end.body, case.name) != Some(0.0)
            || last_failure_reason(&fault_end.body, case.name).as_deref() != Some(case.reason)
        {
            wrong.push(format!(
                "{}: expected only `{}`, saw new failures {seen:?}, redis_up {:?}, last reason {:?}",
                case.name,
                case.reason,
                up(&fault_end.body, case.name),
                last_failure_reason(&fault_end.body, case.name),
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "misclassified hostile targets:\n{}\n--- exporter log (tail) ---\n{}",
        wrong.join("\n"),
        exporter.log_tail(80)
    );

    // The real Redis never noticed: up at every scrape, no failures, and one poll a second
    // over the whole fault window. Hostile targets keep that schedule too, since each poll
    // ends at its timeout, well inside the interval.
    assert!(
        healthy_was_down.is_empty(),
        "the real Redis was reported down during the fault:\n{}",
        healthy_was_down[0]
    );
    assert!(
        failure_counts(&fault_end.body, "real-redis").is_empty(),
        "the real Redis failed polls: {:?}",
        failure_counts(&fault_end.body, "real-redis")
    );
    let (low, high) = expected_polls(&fault_start, &fault_end);
    let mut off_schedule = Vec::new();
    for name in std::iter::once("real-redis").chain(cases.iter().map(|c| c.name)) {
        let made = polls(&fault_end.body, name) - polls(&fault_start.body, name);
        if made < low || made > high {
            off_schedule.push(format!("{name}: {made} polls, expected {low}..={high}"));
        }
    }
    assert!(
        off_schedule.is_empty(),
        "targets off their one-per-second schedule during the fault:\n{}\n--- last scrape ---\n{fault}",
        off_schedule.join("\n")
    );

    // The fakes really did what they claim: each failed poll reached its fault (a silent
    // server never gets as far as an INFO, so there each poll is a fresh connection). A fake
    // counts an enormous reply only once its write fails, which can be after the exporter
    // has recorded the failure: wait for the count, with a deadline.
    for (case, fake) in cases.iter().zip(&fakes) {
        let stats = fake.stats();
        let (what, count) = match case.fault {
            Behavior::Silent => ("connections", &stats.connections),
            Behavior::Enormous => ("replies past the budget", &stats.oversized_replies),
            _ => ("INFO requests", &stats.info_requests),
        };
        let deadline = Instant::now() + STATE_TIMEOUT;
        while count.load(Ordering::Relaxed) < FAULT_POLLS as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let count = count.load(Ordering::Relaxed);
        assert!(
            count >= FAULT_POLLS as u64,
            "{}: only {count} {what}, expected at least {FAULT_POLLS}",
            case.name
        );
    }

    // Recovery: the same fakes answer properly again, and every target comes back up.
    for fake in &fakes {
        fake.set(Behavior::Healthy);
    }
    exporter.wait_for(STATE_TIMEOUT, "every target is up again", |body| {
        targets.iter().all(|t| up(body, &t.name) == Some(1.0))
    });
}

#[test]
fn enormous_replies_leave_the_exporter_memory_bounded() {
    const TARGETS: usize = 3;
    let fakes: Vec<FakeRedis> = (0..TARGETS)
        .map(|_| FakeRedis::start(Behavior::Healthy))
        .collect();
    let names: Vec<String> = (0..TARGETS).map(|i| format!("enormous-{i}")).collect();
    let targets: Vec<Target> = fakes
        .iter()
        .zip(&names)
        .map(|(fake, name)| Target::new(fake.url(), name.as_str()))
        .collect();
    let exporter = Exporter::start(&config_toml(POLL_INTERVAL, POLL_TIMEOUT, &targets));
    let pid = exporter.pid();

    exporter.wait_for(STATE_TIMEOUT, "every target is up", |body| {
        names.iter().all(|n| up(body, n) == Some(1.0))
    });
    let baseline_kib = status_kib(pid, "VmHWM");

    for fake in &fakes {
        fake.set(Behavior::Enormous);
    }
    let offered = |fake: &FakeRedis| fake.stats().oversized_replies.load(Ordering::Relaxed);
    exporter.wait_for(
        STATE_TIMEOUT + Duration::from_secs(FAULT_POLLS as u64 * 2),
        "every target was offered several enormous replies and refused them",
        |body| {
            fakes.iter().all(|f| offered(f) >= FAULT_POLLS as u64)
                && names
                    .iter()
                    .all(|n| failures(body, n, "reply_too_large") >= FAULT_POLLS)
        },
    );
    let peak_kib = status_kib(pid, "VmHWM");
    let largest = fakes
        .iter()
        .map(|f| f.stats().largest_reply_bytes.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    eprintln!(
        "exporter VmHWM: {baseline_kib} KiB healthy, {peak_kib} KiB after {} enormous replies \
         (largest got {largest} bytes into the socket); VmPeak {} KiB",
        fakes.iter().map(offered).sum::<u64>(),
        status_kib(pid, "VmPeak"),
    );
    assert!(
        peak_kib < MEMORY_BOUND_KIB,
        "exporter peak RSS {peak_kib} KiB (healthy: {baseline_kib} KiB) exceeds {MEMORY_BOUND_KIB} KiB"
    );

    for fake in &fakes {
        fake.set(Behavior::Healthy);
    }
    exporter.wait_for(STATE_TIMEOUT, "every target is up again", |body| {
        names.iter().all(|n| up(body, n) == Some(1.0))
    });
    assert!(try_scrape(exporter.port()).is_ok());
}

// ---------------------------------------------------------------------------------------------
// The parser on damaged replies.

/// The reference `INFO` replies (name, bytes), read once.
fn reference_replies() -> &'static [(String, Vec<u8>)] {
    static REPLIES: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    REPLIES.get_or_init(read_reference_replies)
}

fn read_reference_replies() -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/tests/data/info/reference", env!("CARGO_MANIFEST_DIR"));
    let mut replies: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            let bytes = std::fs::read(&path).expect("read reference reply");
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                bytes,
            )
        })
        .collect();
    replies.sort();
    assert!(replies.len() >= 10, "reference replies missing from {dir}");
    replies
}

#[test]
fn every_truncation_of_every_reference_reply_parses_without_panic() {
    for (name, bytes) in reference_replies() {
        let bytes = bytes.as_slice();
        let full = info::parse(std::str::from_utf8(bytes).expect("reference is UTF-8"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let version_line_end = bytes
            .windows(b"redis_version:".len())
            .position(|w| w == b"redis_version:")
            .and_then(|at| {
                bytes[at..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map(|end| at + end + 1)
            });
        for cut in 0..=bytes.len() {
            let text = String::from_utf8_lossy(&bytes[..cut]);
            let parsed = info::parse(&text);
            // A prefix that holds the whole `redis_version` line reads it exactly as the
            // whole reply does: truncation costs only what was cut.
            if version_line_end.is_some_and(|end| cut >= end) {
                let parsed = parsed.unwrap_or_else(|e| panic!("{name} cut at {cut}: {e}"));
                assert_eq!(
                    parsed.redis_version, full.redis_version,
                    "{name} cut at {cut}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn reference_replies_with_flipped_bytes_parse_without_panic(
        pick in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let replies = reference_replies();
        let (_, bytes) = &replies[pick.index(replies.len())];
        let mut bytes = bytes.clone();
        for (at, mask) in &flips {
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let _ = info::parse(&String::from_utf8_lossy(&bytes));
    }
}

/// Every input the fuzzer ever crashed on, kept under `tests/fuzz_regressions/`.
#[test]
fn saved_fuzzer_findings_parse_without_panic() {
    for bytes in saved_fuzz_findings() {
        // The fuzz target feeds the parser exactly this: lossy UTF-8 of the raw bytes.
        let _ = info::parse(&String::from_utf8_lossy(&bytes));
    }
}
