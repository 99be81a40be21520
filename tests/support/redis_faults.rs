//! Driving real faults in a [`Redis`]: commands on the harness's own RESP connection,
//! rewrites that are slowed, killed or run clean, and `fork()` blocked through
//! `RLIMIT_NPROC` for a server run as its own uid.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use super::process::{
    describe, free_port, poll_until, run, sigkill, tasks_of_uid, wait_until_shown,
};
use super::redis::Redis;
use super::resp::{parse_info, Reply};

/// Deadline for anything the exporter must notice (several 500 ms polls plus slack).
pub const SEE: Duration = Duration::from_secs(20);
/// Deadline for a Redis-side state change (a rewrite to finish, a child to appear).
pub const REDIS_CHANGE: Duration = Duration::from_secs(60);

impl Redis {
    /// Issues `BGREWRITEAOF`, expected to fail (`why`: what should make it), and waits until
    /// the rewrite has ended with `aof_last_bgrewrite_status:err`. Returns the reply.
    pub fn failing_rewrite(&mut self, why: &str) -> Reply {
        let reply = self.cmd(&["BGREWRITEAOF"]);
        let mut last = String::new();
        let failed = poll_until(REDIS_CHANGE, || {
            let info = self.persistence();
            last = format!("{info:?}");
            info.get("aof_rewrite_in_progress").map(String::as_str) == Some("0")
                && info.get("aof_last_bgrewrite_status").map(String::as_str) == Some("err")
        });
        assert!(
            failed,
            "BGREWRITEAOF ({}) {why} did not fail: {last}\n{}",
            reply.text(),
            self.log_tail(10)
        );
        reply
    }

    /// Runs one command on the harness's own connection.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        self.with_conn(|conn| conn.cmd(args))
    }

    /// [`Redis::cmd`] that panics on an error reply.
    pub fn ok<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let reply = self.cmd(args);
        if reply.is_error() {
            let shown: Vec<String> = args
                .iter()
                .map(|a| {
                    String::from_utf8_lossy(&a.as_ref()[..a.as_ref().len().min(40)]).into_owned()
                })
                .collect();
            panic!(
                "{shown:?} failed: {}\nredis log:\n{}",
                reply.text(),
                self.log_tail(20)
            );
        }
        reply
    }

    /// `INFO persistence` as a map.
    pub fn persistence(&mut self) -> BTreeMap<String, String> {
        parse_info(&self.cmd(&["INFO", "persistence"]).text())
    }

    /// One `INFO persistence` field.
    pub fn field(&mut self, name: &str) -> String {
        self.persistence().get(name).cloned().unwrap_or_default()
    }

    /// The AOF fields a report should show, on one line.
    pub fn aof_fields(&mut self) -> String {
        let info = self.persistence();
        [
            "aof_enabled",
            "aof_rewrite_in_progress",
            "aof_last_bgrewrite_status",
            "aof_rewrites",
            "aof_rewrites_consecutive_failures",
            "aof_last_write_status",
            "aof_current_size",
            "aof_base_size",
        ]
        .iter()
        .map(|k| format!("{k}:{}", info.get(*k).map(String::as_str).unwrap_or("-")))
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// `DEBUG POPULATE n`.
    pub fn populate(&mut self, keys: u64) {
        self.ok(&["DEBUG", "POPULATE", &keys.to_string()]);
    }

    /// `CONFIG SET name value` under the server's name for CONFIG; skipped when it has none.
    pub fn config_set(&mut self, name: &str, value: &str) {
        let command = self
            .spec()
            .config_name
            .clone()
            .unwrap_or_else(|| "CONFIG".into());
        if !command.is_empty() {
            self.ok(&[command.as_str(), "SET", name, value]);
        }
    }

    /// Starts a rewrite slowed by `rdb-key-save-delay` and returns its child's pid.
    pub fn start_slow_rewrite(&mut self) -> u32 {
        self.config_set("rdb-key-save-delay", "100");
        self.ok(&["BGREWRITEAOF"]);
        let mut child = None;
        wait_until_shown(
            REDIS_CHANGE,
            "the rewrite child appears under redis-server",
            || {
                child = self.child_pids().first().copied();
                child.is_some()
            },
            || self.log_tail(10),
        );
        child.expect("child")
    }

    /// Kills the running rewrite's child with SIGKILL and waits until Redis has reaped it
    /// and says `aof_last_bgrewrite_status:err`. Returns the child's pid.
    pub fn kill_rewrite_child(&mut self) -> u32 {
        let child = self.start_slow_rewrite();
        assert!(sigkill(child), "kill -KILL {child}");
        let mut last = String::new();
        let done = poll_until(REDIS_CHANGE, || {
            let info = self.persistence();
            last = format!("{info:?}");
            info.get("aof_rewrite_in_progress").map(String::as_str) == Some("0")
                && info.get("aof_last_bgrewrite_status").map(String::as_str) == Some("err")
        });
        assert!(
            done,
            "the killed rewrite did not end in err: {last}\n{}",
            self.log_tail(10)
        );
        child
    }

    /// A rewrite at full speed, waited for until it ended (`aof_rewrites` moved, or before
    /// 7.0, which has no such counter, the log says how it ended) and nothing runs. Returns
    /// `aof_last_bgrewrite_status` afterwards.
    pub fn clean_rewrite(&mut self) -> String {
        self.config_set("rdb-key-save-delay", "0");
        let before: Option<u64> = self.field("aof_rewrites").parse().ok();
        let offset = self.log_len();
        let reply = self.cmd(&["BGREWRITEAOF"]);
        let mut last = String::new();
        let done = poll_until(REDIS_CHANGE, || {
            let info = self.persistence();
            last = format!("{info:?}");
            let ended = match before {
                Some(before) => info
                    .get("aof_rewrites")
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|after| after > before),
                None => reply.is_error() || rewrite_ended(&self.log_since(offset)),
            };
            ended && info.get("aof_rewrite_in_progress").map(String::as_str) == Some("0")
        });
        assert!(
            done,
            "BGREWRITEAOF ({}) did not finish: {last}\n{}",
            reply.text(),
            self.log_tail(10)
        );
        self.field("aof_last_bgrewrite_status")
    }

    /// The RDB fields a report should show, on one line.
    pub fn rdb_fields(&mut self) -> String {
        let info = self.persistence();
        [
            "rdb_bgsave_in_progress",
            "rdb_last_bgsave_status",
            "rdb_saves",
            "rdb_current_bgsave_time_sec",
        ]
        .iter()
        .map(|k| format!("{k}:{}", info.get(*k).map(String::as_str).unwrap_or("-")))
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// Starts a `BGSAVE` slowed by `rdb-key-save-delay` and returns its child's pid.
    pub fn start_slow_bgsave(&mut self) -> u32 {
        self.config_set("rdb-key-save-delay", "100");
        self.ok(&["BGSAVE"]);
        let mut child = None;
        wait_until_shown(
            REDIS_CHANGE,
            "the BGSAVE child appears under the server",
            || {
                child = self.child_pids().first().copied();
                child.is_some()
            },
            || self.log_tail(10),
        );
        child.expect("child")
    }

    /// Kills the running `BGSAVE`'s child with SIGKILL and waits until the server has reaped
    /// it and says `rdb_last_bgsave_status:err`. Returns the child's pid.
    pub fn kill_bgsave_child(&mut self) -> u32 {
        let child = self.start_slow_bgsave();
        assert!(sigkill(child), "kill -KILL {child}");
        let mut last = String::new();
        let done = poll_until(REDIS_CHANGE, || {
            let info = self.persistence();
            last = format!("{info:?}");
            info.get("rdb_bgsave_in_progress").map(String::as_str) == Some("0")
                && info.get("rdb_last_bgsave_status").map(String::as_str) == Some("err")
        });
        assert!(
            done,
            "the killed BGSAVE did not end in err: {last}\n{}",
            self.log_tail(10)
        );
        child
    }

    /// A `BGSAVE` at full speed, waited for until the log says how it ended (or it was
    /// refused) and nothing runs. Returns `rdb_last_bgsave_status` afterwards.
    pub fn clean_bgsave(&mut self) -> String {
        self.config_set("rdb-key-save-delay", "0");
        let offset = self.log_len();
        let reply = self.cmd(&["BGSAVE"]);
        let mut last = String::new();
        let done = poll_until(REDIS_CHANGE, || {
            let info = self.persistence();
            last = format!("{info:?}");
            (reply.is_error()
                || self
                    .log_since(offset)
                    .contains("Background saving terminated"))
                && info.get("rdb_bgsave_in_progress").map(String::as_str) == Some("0")
        });
        assert!(
            done,
            "BGSAVE ({}) did not finish: {last}\n{}",
            reply.text(),
            self.log_tail(10)
        );
        self.field("rdb_last_bgsave_status")
    }

    /// The soft and hard `Max processes` limits of the server, from `/proc/<pid>/limits`.
    pub fn nproc_limits(&self) -> (String, String) {
        let limits = fs::read_to_string(format!("/proc/{}/limits", self.pid())).unwrap_or_default();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max processes"))
            .unwrap_or("")
            .trim_start_matches("Max processes")
            .to_owned();
        let mut parts = line.split_whitespace();
        (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        )
    }

    /// Sets the server's soft `RLIMIT_NPROC` with `prlimit --pid`. Root here lacks
    /// `CAP_SYS_RESOURCE` in many containers, and without it the kernel only lets a process
    /// of the same uid change another's limits; lowering the soft limit only keeps the way
    /// back open (an unprivileged process may raise a soft limit up to the hard one).
    pub fn set_soft_nproc(&self, soft: &str) -> Result<(), String> {
        let uid = self.spec().run_as.expect("set_soft_nproc needs run_as");
        let pid = self.pid().to_string();
        let limit = format!("--nproc={soft}:");
        let as_root = run("prlimit", &["--pid", &pid, &limit]);
        if as_root.status.success() {
            return Ok(());
        }
        let as_owner = run(
            "setpriv",
            &[
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "prlimit",
                "--pid",
                &pid,
                &limit,
            ],
        );
        if as_owner.status.success() {
            Ok(())
        } else {
            Err(format!(
                "prlimit as root: {}; as uid {uid}: {}",
                describe(&as_root),
                describe(&as_owner)
            ))
        }
    }

    /// Lowers the soft `RLIMIT_NPROC` to the tasks its uid owns now, so `fork()` fails with
    /// EAGAIN. Returns the limit set.
    pub fn block_fork(&self) -> usize {
        let uid = self.spec().run_as.expect("block_fork needs run_as");
        let tasks = tasks_of_uid(uid);
        assert!(tasks > 0, "no task owned by uid {uid}");
        self.set_soft_nproc(&tasks.to_string())
            .unwrap_or_else(|e| panic!("cannot lower RLIMIT_NPROC: {e}"));
        tasks
    }

    /// Raises the soft `RLIMIT_NPROC` back to the hard limit.
    pub fn unblock_fork(&self) {
        let (_, hard) = self.nproc_limits();
        let hard = if hard.is_empty() {
            "unlimited".to_owned()
        } else {
            hard
        };
        self.set_soft_nproc(&hard)
            .unwrap_or_else(|e| panic!("cannot raise RLIMIT_NPROC: {e}"));
    }
}

/// A unique uid for an unprivileged server. Each test gets its own, so `RLIMIT_NPROC` (which
/// counts every task of the uid) is not disturbed by another test's servers. The uid need not
/// exist in /etc/passwd.
pub fn private_uid() -> u32 {
    // Ports are unique among live listeners; the offset keeps clear of real accounts.
    3_000_000 + u32::from(free_port())
}

/// Whether `log` (what a server wrote since a rewrite was asked for) says the rewrite ended,
/// well or not: the only witness before 7.0, which has no `aof_rewrites`.
fn rewrite_ended(log: &str) -> bool {
    [
        "Background AOF rewrite finished successfully",
        "Background AOF rewrite terminated with error",
        "Background AOF rewrite terminated by signal",
    ]
    .iter()
    .any(|line| log.contains(line))
}
