//! Headless Chromium (Debian's `chromium`, `/usr/bin/chromium`): the DOM a browser builds
//! from a page, and screenshots. Each run gets a fresh profile and its own process group,
//! killed afterwards: Chromium's helpers may outlive the browser process.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::{run, tempdir, Proc};

/// The browser binary.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long one run may take before it is killed.
const DEADLINE: Duration = Duration::from_secs(90);

/// A headless browser; runs share a scratch directory for their profiles.
pub struct Chromium {
    scratch: tempfile::TempDir,
    runs: std::cell::Cell<usize>,
}

impl Default for Chromium {
    fn default() -> Self {
        Chromium::new()
    }
}

impl Chromium {
    /// A browser with a fresh scratch directory.
    pub fn new() -> Chromium {
        Chromium {
            scratch: tempdir("rpe-chromium-"),
            runs: std::cell::Cell::new(0),
        }
    }

    /// The DOM after loading `url` (`--dump-dom`).
    pub fn dom(&self, url: &str) -> String {
        self.run(url, &["--dump-dom".to_owned()])
    }

    /// A PNG of `url` at `width`x`height`, written to `path`.
    pub fn screenshot(&self, url: &str, path: &Path, width: u32, height: u32) {
        let _ = fs::remove_file(path);
        self.run(
            url,
            &[
                format!("--screenshot={}", path.display()),
                format!("--window-size={width},{height}"),
            ],
        );
        assert!(
            path.exists(),
            "chromium wrote no screenshot to {}",
            path.display()
        );
    }

    /// Runs Chromium on `url` with `extra` flags; its stdout.
    fn run(&self, url: &str, extra: &[String]) -> String {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let profile: PathBuf = self.scratch.path().join(format!("profile-{n}"));
        let stdout = self.scratch.path().join(format!("run-{n}.stdout"));
        let log = self.scratch.path().join(format!("run-{n}.log"));
        let mut command = Command::new(CHROMIUM);
        command
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
            .env("HOME", &profile)
            .process_group(0);
        let mut browser = Proc::spawn_with_stdout("chromium", command, &stdout, log);
        let group = browser.pid();
        let status = browser.wait_exit(DEADLINE);
        let _ = run("kill", &["-KILL", "--", &format!("-{group}")]);
        match status {
            Some(status) if status.success() => {}
            Some(status) => panic!(
                "chromium {extra:?} {url} exited with {status}:\n{}",
                browser.log_tail(30)
            ),
            None => panic!(
                "chromium {extra:?} {url} did not finish in {DEADLINE:?}:\n{}",
                browser.log_tail(30)
            ),
        }
        fs::read_to_string(&stdout).unwrap_or_default()
    }
}

/// Width and height from a PNG's IHDR chunk, if `bytes` is a PNG.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    Some((word(16), word(20)))
}
