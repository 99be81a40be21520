//! Real faults on every server: Redis 6.2.14, Redis 7.0.15, Valkey 8.1.8 and Valkey 9.1.2
//! ([`Server::ALL`]), read by the real exporter binary in sidecar mode (the target's
//! `log_file` is the server's log). One scenario is one function; [`on_every_server!`] makes
//! one test of it per server, so a failure names the server and the servers run in parallel.
//!
//! Every scenario shows the healthy state, then the fault, then the recovery, and asserts on
//! each step the card, stuck, failed attempts, transient recoveries and the probable cause.
//! Divergences are recorded as findings and reported together, with a transcript of the
//! server's INFO fields, its new log lines and the exporter's series at every step (printed
//! with `--nocapture` for a passing run too). docs/servers.md says what each server was
//! measured to count per fault; where INFO alone cannot tell, a second target without the log
//! shows what it can, and a comment says why.
//!
//! A missing server binary fails the test (see `Server::binary_path`). Needs root (tmpfs
//! mounts, `setpriv`, `prlimit`).

mod support;

use std::collections::BTreeMap;
use std::time::Instant;

use support::{
    config_toml, noise, poll_until, private_uid, sigcont, sigkill, sigstop, Exporter, Findings,
    Metrics, Redis, RedisSpec, Reply, Server, Target, Tmpfs, REDIS_CHANGE, SEE,
};

/// Keys that slow a child to about 2 s at `rdb-key-save-delay 100` (100 µs a key).
const KEYS: u64 = 20_000;
/// Size of one incompressible value, for disk-filling scenarios.
const VALUE: usize = 64 * 1024;
/// The sidecar target: the exporter reads the server's log.
const SIDECAR: &str = "r";
/// The same server without the log: what INFO alone shows.
const INFO_ONLY: &str = "info";

/// One test per server for each scenario `fn name(server: Server)`.
macro_rules! on_every_server {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::Server;
            #[test]
            fn redis_6_2() {
                super::$scenario(Server::Redis62);
            }
            #[test]
            fn redis_7_0() {
                super::$scenario(Server::Redis70);
            }
            #[test]
            fn valkey_8_1() {
                super::$scenario(Server::Valkey81);
            }
            #[test]
            fn valkey_9_1() {
                super::$scenario(Server::Valkey91);
            }
        }
    )*};
}

on_every_server!(
    rewrite_killed_once,
    rewrite_killed_repeatedly,
    rewrite_fork_refused,
    disk_already_full,
    disk_fills_during_rewrite,
    failure_and_success_between_polls,
    aof_off_over_stale_err,
    rdb_save_failures,
    hung_rewrite_child,
);

#[test]
fn the_macro_covers_every_server() {
    // If a server is added to the harness, on_every_server! must gain a test for it.
    assert_eq!(
        Server::ALL,
        [
            Server::Redis62,
            Server::Redis70,
            Server::Valkey81,
            Server::Valkey91
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Expectations

/// Which background operation a step is about, and its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mech {
    Aof,
    Rdb,
}

/// One mechanism's series: its raw last status, stuck flag, failed-attempt and
/// transient-recovery counters, and its `mechanism` label.
struct Series {
    status: &'static str,
    stuck: &'static str,
    failed: &'static str,
    transient: &'static str,
    label: &'static str,
}

impl Mech {
    fn series(self) -> Series {
        match self {
            Mech::Aof => Series {
                status: "redis_aof_last_bgrewrite_status",
                stuck: "redis_aof_rewrite_stuck",
                failed: "redis_aof_rewrite_failed_attempts_total",
                transient: "redis_aof_rewrite_transient_recoveries_total",
                label: "aof_rewrite",
            },
            Mech::Rdb => Series {
                status: "redis_rdb_last_bgsave_status",
                stuck: "redis_rdb_bgsave_stuck",
                failed: "redis_rdb_bgsave_failed_attempts_total",
                transient: "redis_rdb_bgsave_transient_recoveries_total",
                label: "rdb_bgsave",
            },
        }
    }
}

/// What one step expects of one target; `None` fields are not checked.
#[derive(Debug, Clone, Copy)]
struct Want {
    mech: Mech,
    card: Option<&'static str>,
    /// The raw last status series (1 ok, 0 err).
    status: Option<f64>,
    stuck: Option<f64>,
    failed: Option<f64>,
    transient: Option<f64>,
    /// `Some(None)`: no probable cause shown.
    reason: Option<Option<&'static str>>,
}

impl Want {
    fn aof() -> Want {
        Want {
            mech: Mech::Aof,
            card: None,
            status: None,
            stuck: None,
            failed: None,
            transient: None,
            reason: None,
        }
    }
    /// The healthy state: ok, nothing failed, no cause.
    fn healthy(mech: Mech) -> Want {
        Want {
            mech,
            card: (mech == Mech::Aof).then_some("ok"),
            status: Some(1.0),
            stuck: Some(0.0),
            failed: Some(0.0),
            transient: Some(0.0),
            reason: Some(None),
        }
    }
    /// In err after `failed` attempts, stuck from the second, with `reason`.
    fn failing(mech: Mech, failed: u32, transient: u32, reason: Option<&'static str>) -> Want {
        Want {
            mech,
            card: (mech == Mech::Aof).then_some("err"),
            status: Some(0.0),
            stuck: Some(if failed >= 2 { 1.0 } else { 0.0 }),
            failed: Some(f64::from(failed)),
            transient: Some(f64::from(transient)),
            reason: Some(reason),
        }
    }
    /// Recovered after `failed` attempts in all, `transient` of the streaks transient.
    fn recovered(mech: Mech, failed: u32, transient: u32) -> Want {
        Want {
            failed: Some(f64::from(failed)),
            transient: Some(f64::from(transient)),
            ..Want::healthy(mech)
        }
    }
    fn card(mut self, card: &'static str) -> Want {
        self.card = Some(card);
        self
    }

    /// Every way `m` differs from this for `target`.
    fn mismatches(&self, m: &Metrics, target: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(card) = self.card {
            let got = m.card(target);
            if got.as_deref() != Some(card) {
                out.push(format!("card {card}, got {got:?}"));
            }
        }
        let series = self.mech.series();
        let numbers = [
            (series.status, self.status),
            (series.stuck, self.stuck),
            (series.failed, self.failed),
            (series.transient, self.transient),
        ];
        for (name, want) in numbers {
            if let Some(want) = want {
                let got = m.value(name, target);
                if got != Some(want) {
                    out.push(format!("{name} {want}, got {got:?}"));
                }
            }
        }
        if let Some(want) = self.reason {
            let got = m.reason(target, series.label);
            if got.as_deref() != want {
                out.push(format!(
                    "{} cause {want:?}, got {got:?} (all: {:?})",
                    series.label,
                    m.reasons(target)
                ));
            }
        }
        out
    }
}

fn info_number(info: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    info.get(key).and_then(|v| v.parse::<f64>().ok())
}

fn info_status(info: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    info.get(key).map(|v| if v == "ok" { 1.0 } else { 0.0 })
}

/// The exporter's last poll of `target` saw this INFO state of `mech`, so what it derived
/// from it can be judged.
fn caught_up(m: &Metrics, target: &str, mech: Mech, info: &BTreeMap<String, String>) -> bool {
    let pairs = match mech {
        Mech::Aof => [
            ("redis_aof_enabled", info_number(info, "aof_enabled")),
            (
                "redis_aof_rewrite_in_progress",
                info_number(info, "aof_rewrite_in_progress"),
            ),
            (
                "redis_aof_last_bgrewrite_status",
                info_status(info, "aof_last_bgrewrite_status"),
            ),
            (
                "redis_aof_rewrites_total",
                info_number(info, "aof_rewrites"),
            ),
        ],
        Mech::Rdb => [
            (
                "redis_rdb_bgsave_in_progress",
                info_number(info, "rdb_bgsave_in_progress"),
            ),
            (
                "redis_rdb_last_bgsave_status",
                info_status(info, "rdb_last_bgsave_status"),
            ),
            (
                "redis_rdb_bgsave_attempts_total",
                info_number(info, "rdb_saves"),
            ),
            ("redis_up", Some(1.0)),
        ],
    };
    m.up(target) == Some(1.0)
        && pairs
            .iter()
            .all(|(name, want)| m.value(name, target) == *want)
}

// ---------------------------------------------------------------------------------------------
// The rig

/// One server, one exporter reading it, and the record of a scenario.
struct Rig {
    redis: Redis,
    exporter: Exporter,
    f: Findings,
    log_offset: usize,
}

impl Rig {
    /// Starts `spec` and an exporter polling it every `interval` as [`SIDECAR`] (and, with
    /// `info_only`, as [`INFO_ONLY`] too).
    fn start(scenario: &str, spec: RedisSpec, interval: &str, info_only: bool) -> Rig {
        let name = format!("{scenario}/{}", spec.server.name());
        let redis = spec.start();
        let mut targets = vec![Target::host(SIDECAR, &redis)];
        if info_only {
            targets.push(Target::url(INFO_ONLY, &redis.url()));
        }
        // A timeout below the interval, as the config requires.
        let timeout = if interval.ends_with("ms") {
            "200ms"
        } else {
            "1s"
        };
        let exporter = Exporter::start_logging_at(&config_toml(interval, timeout, &targets), None);
        Rig {
            redis,
            exporter,
            f: Findings::new(&name),
            log_offset: 0,
        }
    }

    /// Server log lines since the last step, without the long startup warnings.
    fn new_log_lines(&mut self) -> String {
        let text = self.redis.log_since(self.log_offset);
        self.log_offset += text.len();
        text.lines()
            .filter(|l| !l.contains("WARNING") && !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until the exporter has polled the server's current state into `target` and
    /// shows `want` there; records every difference when it does not within [`SEE`]. Notes
    /// the step in the transcript. Returns the last scrape.
    fn step_on(&mut self, what: &str, target: &str, want: Want) -> Metrics {
        let info = self.redis.persistence();
        let scrape = self
            .exporter
            .try_wait_metrics(SEE, |m| {
                caught_up(m, target, want.mech, &info) && want.mismatches(m, target).is_empty()
            })
            .unwrap_or_else(|last| {
                if !caught_up(&last, target, want.mech, &info) {
                    self.f.expect(
                        false,
                        format!("{what} [{target}]: the exporter never showed INFO {info:?}"),
                    );
                }
                for miss in want.mismatches(&last, target) {
                    self.f.expect(false, format!("{what} [{target}]: {miss}"));
                }
                last
            });
        let fields = match want.mech {
            Mech::Aof => self.redis.aof_fields(),
            Mech::Rdb => self.redis.rdb_fields(),
        };
        let log = self.new_log_lines();
        self.f.note(format!(
            "{what} [{target}]: server {fields}\n  log: {}\n  exporter: {}",
            log.replace('\n', "\n       "),
            scrape.summary(target)
        ));
        scrape
    }

    /// [`Rig::step_on`] the sidecar target.
    fn step(&mut self, what: &str, want: Want) -> Metrics {
        self.step_on(what, SIDECAR, want)
    }

    /// Waits for `n` more polls of `target`, so a state that must NOT change has had the
    /// time to.
    fn polls(&self, target: &str, n: f64) -> Metrics {
        let polls = |m: &Metrics| {
            m.value("redis_persistence_exporter_polls_total", target)
                .unwrap_or(0.0)
        };
        let start = polls(&self.exporter.metrics());
        self.exporter
            .wait_metrics(SEE, &format!("{n} more polls of {target}"), |m| {
                polls(m) >= start + n
            })
    }

    fn server(&self) -> Server {
        self.redis.server()
    }

    fn finish(self) {
        self.f.finish();
    }

    /// The recovery of the refused-fork scenarios: forks are allowed again and a clean
    /// rewrite or BGSAVE ends a streak of `failed` attempts (stuck, so no transient one).
    fn fork_allowed_then_clean(&mut self, mech: Mech, failed: u32) {
        self.redis.unblock_fork();
        let (reply, what) = match mech {
            Mech::Aof => (self.redis.clean_rewrite(), "fork allowed, clean rewrite"),
            Mech::Rdb => (self.redis.clean_bgsave(), "fork allowed, clean BGSAVE"),
        };
        assert_eq!(reply, "ok");
        self.step(what, Want::recovered(mech, failed, 0));
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// One killed rewrite child: err, one failed attempt, not stuck; the clean rewrite after it
/// is a transient recovery. Every server logs `Background AOF rewrite terminated by signal 9`.
fn rewrite_killed_once(server: Server) {
    let mut rig = Rig::start("killed_once", RedisSpec::aof().on(server), "250ms", false);
    rig.redis.populate(KEYS);
    rig.step("healthy", Want::healthy(Mech::Aof));

    rig.redis.kill_rewrite_child();
    rig.step(
        "rewrite child killed",
        Want::failing(Mech::Aof, 1, 0, Some("child_killed")),
    );

    assert_eq!(rig.redis.clean_rewrite(), "ok");
    rig.step("clean rewrite", Want::recovered(Mech::Aof, 1, 1));
    rig.finish();
}

/// Three killed rewrites in a row: stuck from the second, three failed attempts; the
/// recovery ends a stuck streak, which is not transient.
fn rewrite_killed_repeatedly(server: Server) {
    let mut rig = Rig::start("killed_x3", RedisSpec::aof().on(server), "250ms", false);
    rig.redis.populate(KEYS);
    rig.step("healthy", Want::healthy(Mech::Aof));

    for kill in 1..=3 {
        rig.redis.kill_rewrite_child();
        rig.step(
            &format!("rewrite child killed ({kill})"),
            Want::failing(Mech::Aof, kill, 0, Some("child_killed")),
        );
    }
    let page = support::http_get(rig.exporter.port(), "/").expect("status page");
    rig.f.expect(
        page.contains("stuck"),
        "the status page shows the stuck tag",
    );

    assert_eq!(rig.redis.clean_rewrite(), "ok");
    rig.step("clean rewrite", Want::recovered(Mech::Aof, 3, 0));
    rig.finish();
}

/// `fork()` refused by `RLIMIT_NPROC`, twice. From 7.0 (and on Valkey) the status turns err
/// and `aof_rewrites` counts the attempts. Redis 6.2 leaves `aof_last_bgrewrite_status:ok`
/// and only adds to `total_forks` (which a refused BGSAVE fork would move too), so INFO alone
/// cannot tell that a rewrite failed; the log's `Can't rewrite append only file in
/// background: fork: …` can, and in sidecar mode the card turns err on every server.
fn rewrite_fork_refused(server: Server) {
    let spec = RedisSpec {
        run_as: Some(private_uid()),
        ..RedisSpec::aof().on(server)
    };
    let mut rig = Rig::start("fork_refused", spec, "250ms", true);
    rig.redis.populate(10_000);
    rig.step("healthy", Want::healthy(Mech::Aof));
    // A fork works before the limit: the fault is the limit, not the rig.
    assert_eq!(rig.redis.clean_rewrite(), "ok");
    rig.step("clean rewrite before the fault", Want::healthy(Mech::Aof));
    // Between full reads total_forks is carried over; a rewrite must still not look refused.
    rig.step_on(
        "clean rewrite before the fault, INFO alone",
        INFO_ONLY,
        Want::healthy(Mech::Aof),
    );

    let limit = rig.redis.block_fork();
    rig.f
        .note(format!("RLIMIT_NPROC soft limit lowered to {limit}"));
    for attempt in 1..=2 {
        let reply = rig.redis.cmd(&["BGREWRITEAOF"]);
        assert!(
            reply.is_error(),
            "BGREWRITEAOF with fork blocked should be refused, got {reply:?}"
        );
        let mut want = Want::failing(Mech::Aof, attempt, 0, Some("fork_failed"));
        if rig.server() == Server::Redis62 {
            // 6.2 never sets aof_last_bgrewrite_status:err for a refused fork; the card is
            // err from the log, the raw status stays 1.
            want.status = Some(1.0);
        }
        rig.step(
            &format!("BGREWRITEAOF refused ({attempt}): {}", reply.text()),
            want,
        );
    }
    // INFO alone, after the two refusals have had time to show.
    rig.polls(INFO_ONLY, 2.0);
    let info_alone = if rig.server() == Server::Redis62 {
        // 6.2: status ok, no attempt counter; total_forks +2 is not a rewrite's evidence.
        Want::healthy(Mech::Aof)
    } else {
        // 7.0+: err, and aof_rewrites moved 2 with total_forks still: two refused forks.
        Want {
            reason: Some(None),
            ..Want::failing(Mech::Aof, 2, 0, None)
        }
    };
    rig.step_on("two refusals, INFO alone", INFO_ONLY, info_alone);

    rig.fork_allowed_then_clean(Mech::Aof, 2);
    rig.finish();
}

/// The data dir's disk is full before `BGREWRITEAOF`. 7.0+ fail before any fork, on the
/// temporary manifest (`Error trying to write the temporary AOF manifest file …: No space
/// left on device`) and no INFO counter moves after the first failure: only the log counts
/// the second. 6.2 forks and its child fails writing (`Write error writing append only file
/// on disk: No space left on device`). Freeing the disk lets a rewrite succeed.
fn disk_already_full(server: Server) {
    // Declared first so it is unmounted last, after the server on it is dead.
    let mount = Tmpfs::mount("2m");
    let spec = RedisSpec {
        data_dir: Some(mount.path().join("data")),
        ..RedisSpec::aof().on(server)
    };
    let mut rig = Rig::start("disk_already_full", spec, "250ms", false);
    rig.redis.populate(1_000);
    assert_eq!(rig.redis.clean_rewrite(), "ok");
    rig.step("healthy", Want::healthy(Mech::Aof));

    let filler = mount.fill(0);
    rig.f
        .note(format!("tmpfs filled: {} bytes free", mount.free_bytes()));
    for attempt in 1..=2 {
        let reply = rig.redis.cmd(&["BGREWRITEAOF"]);
        let mut last = String::new();
        let failed = poll_until(REDIS_CHANGE, || {
            let (status, running) = rig.redis.rewrite_state();
            last = format!("{status} running={running}");
            status == "err" && !running && rig.redis.log_since(rig.log_offset).contains("No space")
        });
        assert!(
            failed,
            "BGREWRITEAOF ({reply:?}) on a full disk did not fail: {last}\n{}",
            rig.redis.log_tail(10)
        );
        rig.step(
            &format!("BGREWRITEAOF on a full disk ({attempt}): {}", reply.text()),
            Want::failing(Mech::Aof, attempt, 0, Some("disk_full")),
        );
    }

    std::fs::remove_file(&filler).expect("remove the filler");
    assert_eq!(rig.redis.clean_rewrite(), "ok");
    rig.step(
        "disk freed, clean rewrite",
        Want::recovered(Mech::Aof, 2, 0),
    );
    drop(rig);
    drop(mount);
}

/// Room for the AOF but not for its rewrite: every server forks and the child runs out of
/// space, then the parent logs `Background AOF rewrite terminated with error`.
fn disk_fills_during_rewrite(server: Server) {
    let mount = Tmpfs::mount("4m");
    let spec = RedisSpec {
        data_dir: Some(mount.path().join("data")),
        ..RedisSpec::aof().on(server)
    };
    let mut rig = Rig::start("disk_fills", spec, "250ms", false);
    // 1 MiB of incompressible values: the rewrite needs about as much again.
    for i in 0..16u64 {
        let value = noise(VALUE, i + 1);
        let reply = rig
            .redis
            .cmd(&[b"SET".as_slice(), format!("k{i}").as_bytes(), &value]);
        assert_eq!(reply, Reply::Simple("OK".into()), "write {i}");
    }
    rig.step("healthy, 1 MiB written", Want::healthy(Mech::Aof));

    // Enough for the manifest and a new incremental file, not for a 1 MiB base.
    let filler = mount.fill(256 * 1024);
    rig.f
        .note(format!("tmpfs filled but {} bytes", mount.free_bytes()));
    let reply = rig.redis.cmd(&["BGREWRITEAOF"]);
    let mut last = String::new();
    let failed = poll_until(REDIS_CHANGE, || {
        let (status, running) = rig.redis.rewrite_state();
        last = format!("{status} running={running}");
        status == "err" && !running
    });
    assert!(
        failed,
        "BGREWRITEAOF ({reply:?}) with too little room did not fail: {last}\n{}",
        rig.redis.log_tail(10)
    );
    rig.step(
        &format!("BGREWRITEAOF runs out of space: {}", reply.text()),
        Want::failing(Mech::Aof, 1, 0, Some("disk_full")),
    );

    std::fs::remove_file(&filler).expect("remove the filler");
    assert_eq!(rig.redis.clean_rewrite(), "ok");
    rig.step(
        "disk freed, clean rewrite",
        Want::recovered(Mech::Aof, 1, 1),
    );
    drop(rig);
    drop(mount);
}

/// A killed rewrite and a clean one within one poll interval (3 s): the status is ok at both
/// polls. INFO alone cannot show the failure on any server (6.2 has no counter; 7.0+ move
/// `aof_rewrites` by 2 with `total_forks` by 2 and consecutive failures back to 0, as two
/// successes would); the log names both, so the failure is counted and recovered from.
fn failure_and_success_between_polls(server: Server) {
    let mut rig = Rig::start("between_polls", RedisSpec::aof().on(server), "3s", true);
    rig.redis.populate(KEYS);
    rig.step("healthy", Want::healthy(Mech::Aof));

    // Start just after a poll, so both rewrites fit in the interval before the next one.
    let polls_now = rig.polls(SIDECAR, 1.0);
    let polls_before = polls_now.value("redis_persistence_exporter_polls_total", SIDECAR);
    let started = Instant::now();
    rig.redis.kill_rewrite_child();
    assert_eq!(rig.redis.clean_rewrite(), "ok");
    let took = started.elapsed();
    let polls_after = rig
        .exporter
        .metrics()
        .value("redis_persistence_exporter_polls_total", SIDECAR);
    rig.f.note(format!(
        "kill and clean rewrite took {took:?}; polls {polls_before:?} -> {polls_after:?}"
    ));
    rig.f.expect(
        polls_before == polls_after,
        format!("the kill and the clean rewrite fell between two polls (took {took:?}, polls {polls_before:?} -> {polls_after:?})"),
    );
    rig.step(
        "killed and clean rewrite between two polls",
        Want::recovered(Mech::Aof, 1, 1),
    );
    // Noted, not asserted: INFO alone sees nothing here; this is what the log adds.
    let info_alone = rig.exporter.metrics();
    rig.f
        .note(format!("INFO alone: {}", info_alone.summary(INFO_ONLY)));
    rig.finish();
}

/// AOF turned off over a stale err: the server keeps `aof_last_bgrewrite_status:err`, the
/// card is not applicable and nothing is stuck; turning it on again rewrites cleanly.
fn aof_off_over_stale_err(server: Server) {
    let mut rig = Rig::start("aof_off", RedisSpec::aof().on(server), "250ms", false);
    rig.redis.populate(KEYS);
    rig.step("healthy", Want::healthy(Mech::Aof));
    rig.redis.kill_rewrite_child();
    rig.step(
        "rewrite child killed",
        Want::failing(Mech::Aof, 1, 0, Some("child_killed")),
    );

    rig.redis.config_set("rdb-key-save-delay", "0");
    rig.redis.config_set("appendonly", "no");
    assert_eq!(rig.redis.field("aof_last_bgrewrite_status"), "err");
    rig.step(
        "AOF off, stale err",
        Want {
            status: Some(0.0),
            stuck: Some(0.0),
            ..Want::aof()
        }
        .card("not_applicable"),
    );

    rig.redis.config_set("appendonly", "yes");
    let mut last = String::new();
    let on = poll_until(REDIS_CHANGE, || {
        last = rig.redis.aof_fields();
        let info = rig.redis.persistence();
        info.get("aof_enabled").map(String::as_str) == Some("1")
            && info.get("aof_rewrite_in_progress").map(String::as_str) == Some("0")
            && info.get("aof_last_bgrewrite_status").map(String::as_str) == Some("ok")
    });
    assert!(on, "AOF did not come back on cleanly: {last}");
    rig.step(
        "AOF on again",
        Want {
            card: Some("ok"),
            status: Some(1.0),
            stuck: Some(0.0),
            ..Want::aof()
        },
    );
    rig.finish();
}

/// RDB saves: a killed BGSAVE child, then a refused BGSAVE fork; the status series turns
/// 0, the RDB history counts both attempts (stuck at the second), then a clean save recovers.
fn rdb_save_failures(server: Server) {
    let spec = RedisSpec {
        run_as: Some(private_uid()),
        ..RedisSpec::rdb().on(server)
    };
    let mut rig = Rig::start("rdb_failures", spec, "250ms", false);
    rig.redis.populate(KEYS);
    assert_eq!(rig.redis.clean_bgsave(), "ok");
    rig.step("healthy", Want::healthy(Mech::Rdb));

    rig.redis.kill_bgsave_child();
    rig.step(
        "BGSAVE child killed",
        Want::failing(Mech::Rdb, 1, 0, Some("child_killed")),
    );

    rig.redis.block_fork();
    let reply = rig.redis.cmd(&["BGSAVE"]);
    assert!(reply.is_error(), "BGSAVE with fork blocked: {reply:?}");
    rig.step(
        &format!("BGSAVE refused: {}", reply.text()),
        Want::failing(Mech::Rdb, 2, 0, Some("fork_failed")),
    );

    rig.fork_allowed_then_clean(Mech::Rdb, 2);
    rig.finish();
}

/// A rewrite child that hangs (SIGSTOP): `redis_aof_rewrite_current_duration_seconds` keeps
/// growing while the server waits on it; once it is killed the series is gone.
fn hung_rewrite_child(server: Server) {
    let mut rig = Rig::start("hung_child", RedisSpec::aof().on(server), "250ms", false);
    rig.redis.populate(KEYS);
    rig.step("healthy", Want::healthy(Mech::Aof));
    let duration = |m: &Metrics| m.value("redis_aof_rewrite_current_duration_seconds", SIDECAR);
    rig.f.expect(
        duration(&rig.exporter.metrics()).is_none(),
        "no rewrite runs: no current duration",
    );

    let child = rig.redis.start_slow_rewrite();
    assert!(sigstop(child), "kill -STOP {child}");
    let first = rig
        .exporter
        .wait_metrics(SEE, "a current duration of 1 s or more", |m| {
            duration(m).is_some_and(|d| d >= 1.0)
        });
    let first = duration(&first).unwrap_or(0.0);
    let later = rig
        .exporter
        .wait_metrics(SEE, "the current duration grows", |m| {
            duration(m).is_some_and(|d| d > first)
        });
    rig.f.note(format!(
        "child {child} stopped: current duration {first} s, then {:?} s; {}",
        duration(&later),
        later.summary(SIDECAR)
    ));

    assert!(sigcont(child), "kill -CONT {child}");
    assert!(sigkill(child), "kill -KILL {child}");
    let mut last = String::new();
    let ended = poll_until(REDIS_CHANGE, || {
        let (status, running) = rig.redis.rewrite_state();
        last = format!("{status} running={running}");
        status == "err" && !running
    });
    assert!(ended, "the killed hung child did not end in err: {last}");
    let m = rig.step(
        "hung child killed",
        Want::failing(Mech::Aof, 1, 0, Some("child_killed")),
    );
    rig.f.expect(
        duration(&m).is_none(),
        format!(
            "no rewrite runs: no current duration, got {:?}",
            duration(&m)
        ),
    );
    assert_eq!(rig.redis.clean_rewrite(), "ok");
    rig.step("clean rewrite", Want::recovered(Mech::Aof, 1, 1));
    rig.finish();
}
