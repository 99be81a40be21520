//! Hardening against bad input (issue 10): discovery files that expand without bound,
//! password files that block or never end, secrets in config errors, hostile error text in
//! the log, and schedules that would poll thousands of times a second.
//!
//! Run with `cargo test --test hardening_input`.

mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use support::{run_exporter, toml_string, wait_until, Behavior, Exporter, FakeRedis};

/// Long enough for a 1 s poll schedule to show a change on a loaded machine.
const STATE_TIMEOUT: Duration = Duration::from_secs(30);

/// A fast schedule, spelled out in full so these tests do not depend on the defaults.
const POLL: &str = "poll_interval = \"1s\"\npoll_timeout = \"900ms\"\n";

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rpe-input-")
        .tempdir()
        .expect("temp dir")
}

/// `--check-config` on `config`: the exit code and stderr.
fn check_config(dir: &Path, config: &str) -> (Option<i32>, String) {
    let path = dir.join("config.toml");
    fs::write(&path, config).expect("write config");
    let output = run_exporter(["--config", &path.display().to_string(), "--check-config"]);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A kilobyte field of `/proc/<pid>/status`, like `VmHWM`.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

// ---------------------------------------------------------------------------------------------
// Item 6: a YAML alias bomb in a file_sd file.
// ---------------------------------------------------------------------------------------------

/// One anchor of 200 targets referenced 20,000 times: 4 million entries once expanded, from a
/// file of about 100 KiB.
fn alias_bomb() -> String {
    let mut out = String::from("- &g\n  targets:\n");
    for i in 0..200 {
        out.push_str(&format!("    - \"unix:///nonexistent/bomb-{i}.sock\"\n"));
    }
    for _ in 0..20_000 {
        out.push_str("- *g\n");
    }
    out
}

#[test]
fn file_sd_alias_bomb_is_rejected_and_previous_targets_stay() {
    let dir = tempdir();
    let sd = dir.path().join("sd");
    fs::create_dir(&sd).unwrap();
    let file = sd.join("fleet.yml");
    fs::write(
        &file,
        "- targets: [\"unix:///nonexistent/kept.sock\"]\n  labels: {name: kept}\n",
    )
    .unwrap();
    let config = format!(
        "{POLL}[[file_sd]]\nfiles = [{}]\nrefresh_interval = \"1s\"\n",
        toml_string(&sd.join("*.yml").display().to_string())
    );
    let mut exporter = Exporter::start(&config);
    exporter.wait_for(STATE_TIMEOUT, "the file_sd target is polled", |body| {
        body.contains("redis_up{target=\"kept\"}")
    });

    fs::write(&file, alias_bomb()).unwrap();
    wait_until(STATE_TIMEOUT, "a warning names the bomb file", || {
        exporter
            .log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("fleet.yml"))
    });
    assert!(exporter.is_running(), "{}", exporter.log_tail(20));
    let body = exporter.scrape();
    assert!(body.contains("redis_up{target=\"kept\"}"), "{body}");
    assert!(!body.contains("bomb-"), "bomb targets were added");
    // The high-water mark of resident memory: the expansion never happened.
    let peak = proc_status_kib(exporter.pid(), "VmHWM").expect("VmHWM");
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
}

// ---------------------------------------------------------------------------------------------
// Item 7: password files that block or never end.
// ---------------------------------------------------------------------------------------------

#[test]
fn password_file_that_is_a_fifo_or_device_is_a_config_error() {
    let dir = tempdir();
    let fifo = dir.path().join("password.fifo");
    mkfifo(&fifo);
    for path in [fifo.as_path(), Path::new("/dev/zero")] {
        let config = format!(
            "[[targets]]\nurl = \"redis://127.0.0.1:1\"\npassword_file = {}\n",
            toml_string(&path.display().to_string())
        );
        let (code, stderr) = check_config(dir.path(), &config);
        assert_eq!(code, Some(2), "{}: {stderr}", path.display());
        assert!(stderr.contains("targets[0].password_file"), "{stderr}");
        assert!(stderr.contains("regular file"), "{stderr}");
    }
}

#[test]
fn password_file_replaced_by_a_fifo_at_runtime_blocks_nothing() {
    let dir = tempdir();
    let password = dir.path().join("password");
    fs::write(&password, "s3cret\n").unwrap();
    // More pollers than runtime threads: a blocking read in each would freeze them all.
    let pollers = std::thread::available_parallelism().map_or(2, |n| n.get()) + 2;
    let mut config = String::from(POLL);
    for i in 0..pollers {
        config.push_str(&format!(
            "[[targets]]\nurl = \"unix:///nonexistent/t{i}.sock\"\nname = \"t{i}\"\npassword_file = {}\n",
            toml_string(&password.display().to_string())
        ));
    }
    let mut exporter = Exporter::start(&config);
    exporter.wait_for(STATE_TIMEOUT, "the targets are polled", |body| {
        body.contains("reason=\"refused\"")
    });

    fs::remove_file(&password).unwrap();
    mkfifo(&password);
    exporter.wait_for(STATE_TIMEOUT, "the FIFO is reported", |body| {
        body.lines().any(|l| {
            l.starts_with("redis_persistence_exporter_poll_failures_total")
                && l.contains("reason=\"password_file\"")
                && !l.ends_with(" 0")
        })
    });
    // /metrics still answers (wait_for scraped it), and SIGTERM still stops the process.
    exporter.signal("-TERM");
    let status = exporter.wait_exit(STATE_TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        exporter.log_tail(20)
    );
}

// ---------------------------------------------------------------------------------------------
// Item 10: secrets in config errors.
// ---------------------------------------------------------------------------------------------

#[test]
fn config_errors_name_the_key_but_never_a_secret() {
    let dir = tempdir();
    let secret = "hunter2-Zq9-secret";
    let cases = [
        (
            format!("[[targets]]\nurl = \"redis://127.0.0.1:1\"\npassword_file = \"{secret}\"\n"),
            "targets[0].password_file",
        ),
        (
            format!("[[targets]]\nurl = \"redis://127.0.0.1:1\"\npassword_env = \"{secret}\"\n"),
            "targets[0].password_env",
        ),
        (
            format!("targets = \"redis://user:{secret}@127.0.0.1:6379\"\n"),
            "targets",
        ),
        (
            format!("[[file_sd]]\nfiles = [\"x\"]\ndefaults = \"redis://:{secret}@h\"\n"),
            "defaults",
        ),
    ];
    for (config, key) in cases {
        let (code, stderr) = check_config(dir.path(), &config);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(key), "{key} not named: {stderr}");
        assert!(!stderr.contains(secret), "secret echoed: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Item 11: hostile error text in the log.
// ---------------------------------------------------------------------------------------------

#[test]
fn hostile_error_text_reaches_the_log_escaped_and_bounded() {
    let mut reply = b"-ERR \x1b[31mred\x07 ".to_vec();
    reply.extend(std::iter::repeat_n(b'A', 5000));
    reply.extend_from_slice(b"\r\n");
    let server = FakeRedis::start(Behavior::Healthy);
    let config = format!(
        "{POLL}[[targets]]\nurl = {}\nname = \"hostile\"\n",
        toml_string(&server.url())
    );
    let exporter = Exporter::start(&config);
    exporter.wait_for(STATE_TIMEOUT, "the target is up", |body| {
        body.contains("redis_up{target=\"hostile\"} 1")
    });

    server.set(Behavior::Reply(reply));
    exporter.wait_for(STATE_TIMEOUT, "the error reply is counted", |body| {
        body.contains("redis_up{target=\"hostile\"} 0")
    });
    wait_until(STATE_TIMEOUT, "the error is logged", || {
        exporter.log().contains("red")
    });
    let log = fs::read(exporter_log_path(&exporter)).expect("read log");
    assert!(!log.contains(&0x1b), "raw ESC in the log");
    assert!(!log.contains(&0x07), "raw BEL in the log");
    let longest = log.split(|b| *b == b'\n').map(<[u8]>::len).max();
    assert!(
        longest.is_some_and(|n| n <= 2048),
        "a log line of {longest:?} bytes"
    );
}

/// The exporter's log as bytes: `Exporter::log` goes through a lossy UTF-8 conversion.
fn exporter_log_path(exporter: &Exporter) -> std::path::PathBuf {
    exporter
        .config_path()
        .parent()
        .expect("config dir")
        .join("exporter.log")
}

// ---------------------------------------------------------------------------------------------
// Item 13: poll schedules.
// ---------------------------------------------------------------------------------------------

#[test]
fn poll_intervals_below_the_floor_are_rejected() {
    let dir = tempdir();
    let target = "[[targets]]\nurl = \"redis://127.0.0.1:1\"\n";
    for (schedule, key) in [
        (
            "poll_interval = \"1ns\"\npoll_timeout = \"1ns\"\n",
            "poll_interval",
        ),
        (
            "poll_interval = \"50ms\"\npoll_timeout = \"40ms\"\n",
            "poll_interval",
        ),
        (
            "poll_interval = \"1s\"\npoll_timeout = \"1us\"\n",
            "poll_timeout",
        ),
    ] {
        let (code, stderr) = check_config(dir.path(), &format!("{schedule}{target}"));
        assert_eq!(code, Some(2), "{schedule}: {stderr}");
        assert!(stderr.contains(&format!("key `{key}`")), "{stderr}");
    }
}

#[test]
fn poll_timeout_defaults_to_at_most_the_poll_interval() {
    let dir = tempdir();
    let target = "[[targets]]\nurl = \"redis://127.0.0.1:1\"\n";
    let path = dir.path().join("config.toml");
    for (schedule, expected) in [
        ("poll_interval = \"1s\"\n", "timeout 1s"),
        ("poll_interval = \"10s\"\n", "timeout 2s"),
    ] {
        fs::write(&path, format!("{schedule}{target}")).unwrap();
        let output = run_exporter(["--config", &path.display().to_string(), "--check-config"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{schedule}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(expected), "{stdout}");
    }
}
