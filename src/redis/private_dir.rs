//! The folder that holds the relay's unix sockets: unguessable, and reachable only by the
//! exporter's own user.
//!
//! The client connects to the relay by path, and sends the target's password over that
//! socket. A folder another local user can predict and create first (it used to be
//! `/tmp/redis-persistence-exporter-<pid>`, reused if it existed) lets them break every poll
//! or put their own socket there and read the password. So the folder gets a random name,
//! is created with mode 0700 (failing if the path exists), and is checked with `lstat`
//! before use: a directory, not a symlink, ours, 0700.

use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The start of every relay folder's name; the pid and a random suffix follow.
pub const PREFIX: &str = "redis-persistence-exporter-";

/// Why a relay folder may not be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// Creating or reading it failed (including: something already has the name).
    #[error("relay folder {path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// It is a symlink, file or anything but a directory.
    #[error("relay folder {0} is not a directory")]
    NotADirectory(PathBuf),
    /// Another user owns it.
    #[error("relay folder {path} is owned by uid {owner}, not {expected}")]
    Owner {
        /// The folder.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our effective uid.
        expected: u32,
    },
    /// Others may enter or write it.
    #[error("relay folder {path} has mode {mode:o}, not 700")]
    Mode {
        /// The folder.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Creates a fresh relay folder in `base`, named for this process and 64 random bits, and
/// checks it before returning it.
pub fn create(base: &Path) -> Result<PathBuf, DirError> {
    let path = base.join(format!(
        "{PREFIX}{}-{}",
        std::process::id(),
        random_suffix().map_err(|source| DirError::Io {
            path: base.to_owned(),
            source,
        })?
    ));
    // `create`, not `create_all`: an existing path is an error, never reused.
    DirBuilder::new()
        .mode(0o700)
        .create(&path)
        .map_err(|source| DirError::Io {
            path: path.clone(),
            source,
        })?;
    verify(&path)?;
    Ok(path)
}

/// Checks, without following a symlink, that `path` is a directory owned by our effective
/// uid with mode 0700.
pub fn verify(path: &Path) -> Result<(), DirError> {
    let meta = std::fs::symlink_metadata(path).map_err(|source| DirError::Io {
        path: path.to_owned(),
        source,
    })?;
    if !meta.file_type().is_dir() {
        return Err(DirError::NotADirectory(path.to_owned()));
    }
    let expected = effective_uid();
    if meta.uid() != expected {
        return Err(DirError::Owner {
            path: path.to_owned(),
            owner: meta.uid(),
            expected,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode != 0o700 {
        return Err(DirError::Mode {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Removes relay folders in `base` left by exporters that died without cleaning up
/// (kill -9): only real directories, owned by us, whose pid (the part of the name after the
/// prefix, up to `-`) is not a running process and is not ours.
pub fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let uid = effective_uid();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        // Folders from before the random suffix are `<prefix><pid>`.
        let pid = rest.split_once('-').map_or(rest, |(pid, _)| pid);
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let path = entry.path();
        let ours = std::fs::symlink_metadata(&path)
            .is_ok_and(|meta| meta.file_type().is_dir() && meta.uid() == uid);
        if ours && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// 16 hex digits from the operating system's CSPRNG.
fn random_suffix() -> io::Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).map_err(io::Error::other)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
#[path = "private_dir_tests.rs"]
mod tests;
