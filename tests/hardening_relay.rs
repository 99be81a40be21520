//! The relay between the client and a target, against replies and surroundings built to hurt
//! it: a reply nested thousands deep (which overflowed the client's stack and aborted the
//! whole process), a Redis 5 wrong-password reply, and the folder that holds the relay's
//! sockets.
//!
//! Each fault test shows the healthy state, the fault, and the recovery, with a real
//! `redis-server` polled beside the fake to show that the fault stays with its target.

mod common;
mod hostile_support;

use std::time::Duration;

use common::{
    config_toml, failures, poll_until, run_check, up, Exporter, Redis, RedisOptions, TargetSpec,
};
use hostile_support::{Behavior, FakeRedis};

/// Poll every second with half a second per poll.
const POLL_INTERVAL: &str = "1s";
const POLL_TIMEOUT: &str = "500ms";
/// Generous bound for a state to show in a scrape; a correct exporter meets it by far.
const STATE_TIMEOUT: Duration = Duration::from_secs(30);
/// `run_check`'s code for a process killed by a signal: a stack overflow in the client made
/// the exporter abort (SIGABRT, 134 in a shell).
const KILLED_BY_SIGNAL: i32 = -1;

/// `depth` arrays of one element around `:1`: 8 KB at depth 2,000, far under the byte budget.
fn nested_reply(depth: usize) -> Vec<u8> {
    let mut bytes = b"*1\r\n".repeat(depth);
    bytes.extend_from_slice(b":1\r\n");
    bytes
}

/// Scrapes until `condition` holds, failing at once (not at the timeout) if the exporter
/// process died meanwhile.
fn wait_alive(exporter: &mut Exporter, what: &str, mut condition: impl FnMut(&str) -> bool) {
    let mut died = None;
    let mut last = String::new();
    let met = poll_until(STATE_TIMEOUT, || {
        if let Some(status) = exporter.wait_exit(Duration::ZERO) {
            died = Some(status);
            return true;
        }
        match common::try_scrape(exporter.port()) {
            Ok(scrape) => {
                last = scrape.body;
                condition(&last)
            }
            Err(_) => false,
        }
    });
    if let Some(status) = died {
        panic!(
            "the exporter died ({status}) while waiting until {what}\n--- log (tail) ---\n{}",
            exporter.log_tail(40)
        );
    }
    assert!(
        met,
        "timed out waiting until {what}\n--- last scrape ---\n{last}\n--- log (tail) ---\n{}",
        exporter.log_tail(40)
    );
}

#[test]
fn a_deeply_nested_reply_fails_its_target_as_protocol_and_nothing_else() {
    let redis = Redis::start(RedisOptions::rdb());
    let fake = FakeRedis::start(Behavior::Healthy);
    let targets = [
        TargetSpec::new(redis.url(), "real-redis"),
        TargetSpec::new(fake.url(), "nested"),
    ];
    let mut exporter = Exporter::start(&config_toml(POLL_INTERVAL, POLL_TIMEOUT, &targets));

    wait_alive(&mut exporter, "both targets are up", |body| {
        up(body, "real-redis") == Some(1.0) && up(body, "nested") == Some(1.0)
    });

    fake.set(Behavior::Reply(nested_reply(2_000)));
    wait_alive(
        &mut exporter,
        "the nested target failed 3 polls as `protocol`",
        |body| up(body, "nested") == Some(0.0) && failures(body, "nested", "protocol") >= 3.0,
    );
    let body = exporter.scrape();
    assert_eq!(up(&body, "real-redis"), Some(1.0), "{body}");
    for reason in ["protocol", "io", "timeout", "reply_too_large", "parse"] {
        assert_eq!(
            failures(&body, "real-redis", reason),
            0.0,
            "{reason}\n{body}"
        );
    }

    fake.set(Behavior::Healthy);
    wait_alive(&mut exporter, "the nested target is up again", |body| {
        up(body, "nested") == Some(1.0) && up(body, "real-redis") == Some(1.0)
    });
}

#[test]
fn check_reports_a_deeply_nested_reply_as_unreachable_instead_of_aborting() {
    let fake = FakeRedis::start(Behavior::Healthy);
    assert_eq!(run_check(&[&fake.url()]).code, 0, "check on a healthy fake");

    fake.set(Behavior::Reply(nested_reply(200_000)));
    let check = run_check(&[&fake.url()]);
    assert_ne!(check.code, KILLED_BY_SIGNAL, "check aborted: {check:?}");
    assert_eq!(check.code, 3, "expected exit 3 (unreachable): {check:?}");
    assert!(
        check.stdout.contains("protocol") || check.stderr.contains("protocol"),
        "no `protocol` in the report: {check:?}"
    );
}
