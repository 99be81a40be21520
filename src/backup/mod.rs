//! Last Successful Backup: the offsite backstop beyond local AOF and RDB, read from the backup
//! itself (the newest file matching a glob, or the newest object under an S3 prefix).
//!
//! Each target with a backup source has its own task (`runner`) that reads the source every
//! `refresh_interval`, under a shared concurrency limit and a timeout per read, and records
//! the outcome on the [`Board`]. Nothing here runs on a poll or a scrape: `/metrics` and the
//! status page only read the board.

mod board;
mod describe;
mod runner;
mod source_file;
mod source_s3;

use std::time::Duration;

pub use board::{BackupStatus, Board};
pub use describe::{describe, BackupReport};
pub use runner::Backups;

use crate::config::{BackupLocation, BackupSource};

/// Why a source could not be read: the bounded `reason` label of
/// `redis_backup_check_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Credentials refused, or permission denied on the files.
    Auth,
    /// The bucket, the directory, or any matching backup is missing.
    NotFound,
    /// No answer within the source's `timeout`.
    Timeout,
    /// The store could not be reached or read (network, disk).
    Io,
    /// Anything else.
    Other,
}

impl Reason {
    /// Every reason, in label order, so each counter is exported from zero.
    pub const ALL: [Reason; 5] = [
        Reason::Auth,
        Reason::NotFound,
        Reason::Timeout,
        Reason::Io,
        Reason::Other,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Auth => "auth",
            Reason::NotFound => "not_found",
            Reason::Timeout => "timeout",
            Reason::Io => "io",
            Reason::Other => "other",
        }
    }
}

/// The newest backup a source holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    /// When it was written (file mtime, object last-modified), Unix seconds.
    pub modified_unix: f64,
    /// Its size.
    pub size_bytes: u64,
}

/// A read of a source that failed. The message never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", reason.label())]
pub struct CheckError {
    /// The bounded reason.
    pub reason: Reason,
    /// What happened, for the log and the status page.
    pub message: String,
}

impl CheckError {
    fn new(reason: Reason, message: impl Into<String>) -> Self {
        CheckError {
            reason,
            message: message.into(),
        }
    }
}

/// Reads `source` once: its newest backup, within its timeout.
pub async fn check(source: &BackupSource) -> Result<Found, CheckError> {
    let read = async {
        match &source.location {
            BackupLocation::Files { pattern } => source_file::newest(pattern.clone()).await,
            BackupLocation::S3 {
                bucket,
                prefix,
                options,
            } => source_s3::newest(bucket, prefix, options, source.timeout).await,
        }
    };
    match tokio::time::timeout(source.timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(CheckError::new(
            Reason::Timeout,
            format!(
                "no answer within {}",
                humantime::format_duration(Duration::from_secs(source.timeout.as_secs()))
            ),
        )),
    }
}
