//! A size-limited tmpfs for filling a server's disk.

use std::path::Path;

use tempfile::TempDir;

use super::process::{describe, run, tempdir};

/// A tmpfs mounted on a fresh temp dir; unmounted (lazily, so a straggler cannot block it)
/// on drop.
pub struct Tmpfs {
    dir: TempDir,
    mounted: bool,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`4m`) with mode 1777.
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempdir("rpe-tmpfs-");
        let output = run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=1777"),
                "tmpfs",
                &dir.path().display().to_string(),
            ],
        );
        assert!(
            output.status.success(),
            "mount tmpfs: {}",
            describe(&output)
        );
        Tmpfs { dir, mounted: true }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file `filler` at the mount's root so that only `leave` bytes stay free
    /// (`0`: until the tmpfs refuses more). Returns its path; removing it gives the room back.
    pub fn fill(&self, leave: u64) -> std::path::PathBuf {
        use std::io::Write as _;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let chunk = vec![0u8; 64 * 1024];
        let mut room = self.free_bytes().saturating_sub(leave);
        while room > 0 {
            let n = room.min(chunk.len() as u64) as usize;
            if file.write_all(&chunk[..n]).is_err() {
                break;
            }
            room -= n as u64;
        }
        // A page-rounded rest may remain; for `leave` 0 it must not.
        if leave == 0 {
            while file.write_all(&chunk[..4096]).is_ok() {}
        }
        let _ = file.sync_all();
        path
    }

    /// Free bytes as `df` would say.
    pub fn free_bytes(&self) -> u64 {
        let output = run(
            "df",
            &["-B1", "--output=avail", &self.path().display().to_string()],
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let path = self.path().display().to_string();
            let _ = run("umount", &[&path]);
            // Lazy as a fallback: never leave a mount behind a failed test.
            if run("mountpoint", &["-q", &path]).status.success() {
                let _ = run("umount", &["-l", &path]);
            }
            self.mounted = false;
        }
    }
}
