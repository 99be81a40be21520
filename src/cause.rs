//! Probable cause of a persistence failure, for exporters that run on the Redis host.
//!
//! With access to the Redis log and data directory (a sidecar, or the same machine, and the
//! target's `log_file` / `data_dir` keys), the exporter reads the latest failure line Redis
//! wrote and the free space where the files live. Without that access nothing is guessed.
//! Classification is a pure function of log text so it can be tested on real lines.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// How much of the end of the log is read: enough for hours of a normal Redis log, small
/// enough to read on every failure without cost.
pub const LOG_TAIL_BYTES: u64 = 256 * 1024;

/// The four causes the brief names, plus what the log could not tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// ENOSPC or a quota: the disk is full.
    DiskFull,
    /// `fork()` was refused (memory or process limits).
    ForkFailed,
    /// EIO and other I/O errors on the directory.
    IoError,
    /// The child was killed by a signal (often the OOM killer).
    ChildKilled,
    /// A failure line exists but matches none of the above.
    Unknown,
}

impl Reason {
    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            Reason::DiskFull => "disk_full",
            Reason::ForkFailed => "fork_failed",
            Reason::IoError => "io_error",
            Reason::ChildKilled => "child_killed",
            Reason::Unknown => "unknown",
        }
    }

    /// What on-call should do about it, in the brief's words.
    pub fn advice(self) -> &'static str {
        match self {
            Reason::DiskFull => "free space on the AOF/RDB volume (df -h on `dir`), then run BGREWRITEAOF",
            Reason::ForkFailed => "fork() needs memory headroom: check vm.overcommit_memory=1, maxmemory and process limits",
            Reason::IoError => "the disk under `dir` reports I/O errors: check dmesg and the volume's health",
            Reason::ChildKilled => "the child was killed (often by the OOM killer): check dmesg and memory headroom",
            Reason::Unknown => "read the Redis log around the failure time",
        }
    }
}

/// Which failure a log line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A background AOF rewrite or a rewrite/fork of it.
    AofRewrite,
    /// An append to the AOF (write or fsync).
    AofWrite,
    /// A background RDB save.
    RdbBgsave,
}

impl FailureKind {
    /// The `mechanism` label value.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::AofRewrite => "aof_rewrite",
            FailureKind::AofWrite => "aof_write",
            FailureKind::RdbBgsave => "rdb_bgsave",
        }
    }
}

/// Classifies one log line: which failure it reports and why, or `None` if it reports none.
pub fn classify_line(line: &str) -> Option<(FailureKind, Reason)> {
    let lower = line.to_ascii_lowercase();
    // Redis prefixes each line with `pid:role`; role `C` is a forked child, which only ever
    // rewrites the AOF or saves the RDB, so its write errors belong to that operation.
    let from_child = from_child(line);
    let mentions_aof = lower.contains("append only") || lower.contains("aof");
    let kind = if from_child {
        if mentions_aof {
            FailureKind::AofRewrite
        } else if lower.contains("db") || lower.contains("sav") {
            FailureKind::RdbBgsave
        } else {
            return None;
        }
    } else if lower.contains("rewrite")
        || lower.contains("append only file in background")
        // Redis 7.0+ and Valkey write the AOF manifest only when a rewrite starts or ends;
        // on a full disk BGREWRITEAOF fails there, before any fork, with no "rewrite" word.
        || lower.contains("aof manifest")
    {
        FailureKind::AofRewrite
    } else if mentions_aof {
        FailureKind::AofWrite
    } else if lower.contains("background saving")
        || lower.contains("save in background")
        || lower.contains("saving db")
        || lower.contains("rdb")
    {
        FailureKind::RdbBgsave
    } else {
        return None;
    };
    let failure_words = [
        "error",
        "can't",
        "cannot",
        "failed",
        "terminated by signal",
        "killed",
        "no space",
        "short write",
    ];
    if !failure_words.iter().any(|w| lower.contains(w)) || lower.contains("terminated with success")
    {
        return None;
    }
    // "Short write while writing to the AOF file" is what Redis logs when a partly full
    // disk takes only part of a write; the ENOSPC line only comes once zero bytes are free.
    let reason = if lower.contains("no space left")
        || lower.contains("quota exceeded")
        || lower.contains("enospc")
        || lower.contains("short write")
    {
        Reason::DiskFull
    } else if lower.contains("fork:") || lower.contains("fork()") || lower.contains("can't fork") {
        Reason::ForkFailed
    } else if lower.contains("terminated by signal") || lower.contains("killed") {
        Reason::ChildKilled
    } else if lower.contains("input/output error")
        || lower.contains("eio")
        || lower.contains("i/o error")
    {
        Reason::IoError
    } else {
        Reason::Unknown
    };
    Some((kind, reason))
}

/// What the Redis log says happened since the poller last read it (sidecar mode): the
/// evidence INFO's counters miss (a refused fork on 6.2, a full disk before any fork).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogEvidence {
    /// AOF rewrite attempts that ended in failure, one per attempt.
    pub aof_rewrite_failures: u32,
    /// AOF rewrites that finished successfully.
    pub aof_rewrite_successes: u32,
    /// RDB background saves that ended in failure, one per attempt.
    pub rdb_bgsave_failures: u32,
    /// RDB background saves that finished successfully.
    pub rdb_bgsave_successes: u32,
    /// AOF rewrite failures after the last success in the text (all of them without one).
    pub aof_rewrite_trailing_failures: u32,
    /// RDB save failures after the last success in the text (all of them without one).
    pub rdb_bgsave_trailing_failures: u32,
    /// Reason of the latest AOF rewrite failure in the text (the latest specific one).
    pub aof_rewrite_cause: Option<Reason>,
    /// Reason of the latest RDB save failure in the text (the latest specific one).
    pub rdb_bgsave_cause: Option<Reason>,
    /// How long the latest data load at startup took, in milliseconds, from its "DB loaded
    /// from append only file: N seconds" (or "… from disk", RDB) line.
    pub db_loaded_millis: Option<u64>,
}

/// The load time of a startup load line. Measured wording, the same on Redis 6.2, 7.0 and
/// Valkey 8.1, 9.1: "DB loaded from append only file: 0.012 seconds" and "DB loaded from disk:
/// 0.012 seconds"; the per-file lines of a multi-part AOF ("DB loaded from base file …") are
/// parts of the first and are skipped.
fn db_loaded_millis(line: &str) -> Option<u64> {
    let (_, rest) = line
        .split_once("DB loaded from append only file: ")
        .or_else(|| line.split_once("DB loaded from disk: "))?;
    let seconds: f64 = rest.trim_end().strip_suffix(" seconds")?.parse().ok()?;
    // Redis prints three decimals: milliseconds lose nothing.
    (seconds.is_finite() && (0.0..1e12).contains(&seconds))
        .then(|| (seconds * 1000.0).round() as u64)
}

/// Counts attempts in the log text written since the last poll. One failed attempt can take
/// two lines (the child's specific one and the parent's "terminated with error"), so only the
/// parent's lines are counted; the child's only sharpen the cause.
pub fn log_evidence(text: &str) -> LogEvidence {
    let mut evidence = LogEvidence::default();
    for line in text.lines() {
        if let Some(millis) = db_loaded_millis(line) {
            evidence.db_loaded_millis = Some(millis);
            continue;
        }
        if is_success(line, FailureKind::AofRewrite)
            && !line
                .to_ascii_lowercase()
                .contains("terminated with success")
        {
            // 7.0+ log "terminated with success" when the child exits, then may still fail
            // on the manifest; "finished successfully" is the end of a good rewrite.
            evidence.aof_rewrite_successes += 1;
            evidence.aof_rewrite_trailing_failures = 0;
            continue;
        }
        if is_success(line, FailureKind::RdbBgsave) {
            evidence.rdb_bgsave_successes += 1;
            evidence.rdb_bgsave_trailing_failures = 0;
            continue;
        }
        let Some((kind, reason)) = classify_line(line) else {
            continue;
        };
        let (failures, trailing, cause) = match kind {
            FailureKind::AofRewrite => (
                &mut evidence.aof_rewrite_failures,
                &mut evidence.aof_rewrite_trailing_failures,
                &mut evidence.aof_rewrite_cause,
            ),
            FailureKind::RdbBgsave => (
                &mut evidence.rdb_bgsave_failures,
                &mut evidence.rdb_bgsave_trailing_failures,
                &mut evidence.rdb_bgsave_cause,
            ),
            FailureKind::AofWrite => continue,
        };
        if !from_child(line) {
            *failures = failures.saturating_add(1);
            *trailing = trailing.saturating_add(1);
        }
        // A specific reason is not overwritten by the parent's generic line that follows it.
        if reason != Reason::Unknown || cause.is_none() {
            *cause = Some(reason);
        }
    }
    evidence
}

/// The failures of the current episode in a log tail: per mechanism, the failed attempts
/// after its last success. For the first poll of a target (and `check`), which has no earlier
/// poll to count from: with it one poll can tell a stuck failure from a first one.
pub fn streak_evidence(tail: &str) -> LogEvidence {
    let all = log_evidence(tail);
    LogEvidence {
        aof_rewrite_failures: all.aof_rewrite_trailing_failures,
        aof_rewrite_trailing_failures: all.aof_rewrite_trailing_failures,
        rdb_bgsave_failures: all.rdb_bgsave_trailing_failures,
        rdb_bgsave_trailing_failures: all.rdb_bgsave_trailing_failures,
        aof_rewrite_cause: all
            .aof_rewrite_cause
            .filter(|_| all.aof_rewrite_trailing_failures > 0),
        rdb_bgsave_cause: all
            .rdb_bgsave_cause
            .filter(|_| all.rdb_bgsave_trailing_failures > 0),
        ..LogEvidence::default()
    }
}

/// Redis prefixes each line with `pid:role`; role `C` is a forked child.
fn from_child(line: &str) -> bool {
    line.split_once(':').is_some_and(|(pid, rest)| {
        pid.bytes().all(|b| b.is_ascii_digit()) && rest.starts_with("C ")
    })
}

/// Whether a line says `kind` succeeded (or recovered), which ends a failure episode.
fn is_success(line: &str, kind: FailureKind) -> bool {
    let lower = line.to_ascii_lowercase();
    match kind {
        FailureKind::AofRewrite => {
            lower.contains("background aof rewrite terminated with success")
                || lower.contains("background aof rewrite finished successfully")
        }
        FailureKind::AofWrite => lower.contains("aof write error looks solved"),
        FailureKind::RdbBgsave => lower.contains("background saving terminated with success"),
    }
}

/// The probable reason of the latest failure episode of `kind` in `log`: the most specific
/// reason on the lines since the last success of that kind. A failure is often logged twice,
/// first with its cause by the child ("Write error … No space left on device") and then
/// generically by the parent ("terminated with error"); the specific line wins.
pub fn latest_reason(log: &str, kind: FailureKind) -> Option<Reason> {
    let mut found = None;
    for line in log.lines().rev() {
        if is_success(line, kind) {
            break;
        }
        match classify_line(line) {
            Some((k, Reason::Unknown)) if k == kind => {
                found.get_or_insert(Reason::Unknown);
            }
            Some((k, reason)) if k == kind => return Some(reason),
            _ => {}
        }
    }
    found
}

/// Reads the last [`LOG_TAIL_BYTES`] of a log file.
pub fn read_log_tail(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES)))?;
    let mut bytes = Vec::with_capacity(LOG_TAIL_BYTES.min(length) as usize);
    file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// At most this much new log text is read per poll; a log that grew more is read on over the
/// next polls, so one burst of log lines never costs one poll more than a bounded read.
pub const MAX_NEW_LOG_BYTES: u64 = 1024 * 1024;

/// Reads what a Redis log gained since the last read (sidecar mode), for [`log_evidence`].
///
/// It keeps the file open, so lines written to a log just before it was rotated (renamed,
/// then a new file created) are still read from the old file before the new one is started
/// from its beginning. A file that shrank was truncated in place (`copytruncate`) and is read
/// from its start again. Only whole lines are consumed; a line still being written is read on
/// the next poll. The first read only finds the end: what happened before the exporter
/// started is not "since the last poll".
#[derive(Debug, Default)]
pub struct LogCursor {
    open: Option<OpenLog>,
}

#[derive(Debug)]
struct OpenLog {
    file: std::fs::File,
    inode: u64,
    offset: u64,
    /// The last bytes before `offset`, as read. A file truncated and refilled past `offset`
    /// between two polls keeps its size; its bytes there tell.
    seen: Vec<u8>,
}

/// How many bytes before the read position are compared to tell an unchanged file.
const SEEN_BYTES: u64 = 64;

impl OpenLog {
    fn new(file: std::fs::File, inode: u64) -> Self {
        OpenLog {
            file,
            inode,
            offset: 0,
            seen: Vec::new(),
        }
    }

    /// Reads the whole new lines into `out`, from the start when the file was truncated.
    fn read_into(&mut self, length: u64, out: &mut Vec<u8>) -> std::io::Result<()> {
        if length < self.offset || self.bytes_before(self.offset)? != self.seen {
            self.offset = 0;
        }
        let start = out.len();
        self.offset += read_lines(&mut self.file, self.offset, out)?;
        if out.len() > start {
            self.seen = self.bytes_before(self.offset)?;
        } else if self.offset == 0 {
            self.seen.clear();
        }
        Ok(())
    }

    fn bytes_before(&mut self, offset: u64) -> std::io::Result<Vec<u8>> {
        let from = offset.saturating_sub(SEEN_BYTES);
        self.file.seek(SeekFrom::Start(from))?;
        let mut bytes = Vec::with_capacity(SEEN_BYTES as usize);
        (&mut self.file)
            .take(offset - from)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

impl LogCursor {
    /// Whether a first read has found the log's end already.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The whole lines appended to `path` since the last call (empty on the first).
    pub fn read_new(&mut self, path: &Path) -> std::io::Result<String> {
        use std::os::unix::fs::MetadataExt;
        let at_path = std::fs::metadata(path)?;
        let mut bytes = Vec::new();
        match self.open.take() {
            None => {
                let file = std::fs::File::open(path)?;
                let meta = file.metadata()?;
                let mut log = OpenLog::new(file, meta.ino());
                log.offset = meta.len();
                log.seen = log.bytes_before(log.offset)?;
                self.open = Some(log);
            }
            Some(mut log) if log.inode == at_path.ino() => {
                log.read_into(at_path.len(), &mut bytes)?;
                self.open = Some(log);
            }
            Some(mut old) => {
                // Rotated: finish the old file (a failure is not lost to the rename), then
                // read the new one from its start.
                let _ = read_lines(&mut old.file, old.offset, &mut bytes);
                let file = std::fs::File::open(path)?;
                let inode = file.metadata()?.ino();
                let mut log = OpenLog::new(file, inode);
                log.read_into(at_path.len(), &mut bytes)?;
                self.open = Some(log);
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Appends the whole lines of `file` from `offset` (at most [`MAX_NEW_LOG_BYTES`]) to `out`
/// and returns how many bytes were consumed.
fn read_lines(file: &mut std::fs::File, offset: u64, out: &mut Vec<u8>) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(offset))?;
    let start = out.len();
    file.take(MAX_NEW_LOG_BYTES).read_to_end(out)?;
    let read = out.len() - start;
    let whole = match out[start..].iter().rposition(|&b| b == b'\n') {
        Some(last) => last + 1,
        // A line longer than the whole budget is taken as it is, or the cursor would stall.
        None if read as u64 == MAX_NEW_LOG_BYTES => read,
        None => 0,
    };
    out.truncate(start + whole);
    Ok(whole as u64)
}

/// Free space where the data directory lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace {
    /// Bytes available to an unprivileged writer.
    pub bytes: u64,
    /// Inodes available to an unprivileged writer.
    pub inodes: u64,
}

/// `statvfs` on `dir`.
pub fn free_space(dir: &Path) -> std::io::Result<FreeSpace> {
    let stat = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(FreeSpace {
        bytes: stat.f_bavail.saturating_mul(stat.f_frsize),
        inodes: stat.f_favail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_lines_redis_writes() {
        let cases = [
            ("12:M 24 Nov 2026 10:00:00.000 # Can't rewrite append only file in background: fork: Cannot allocate memory",
             FailureKind::AofRewrite, Reason::ForkFailed),
            ("12:M 24 Nov 2026 10:00:00.000 # Can't rewrite append only file in background: fork: Resource temporarily unavailable",
             FailureKind::AofRewrite, Reason::ForkFailed),
            ("12:M 24 Nov 2026 10:00:00.000 # Background AOF rewrite terminated by signal 9",
             FailureKind::AofRewrite, Reason::ChildKilled),
            ("12:C 24 Nov 2026 10:00:00.000 # Error moving temp append only file on the final destination: No space left on device",
             FailureKind::AofRewrite, Reason::DiskFull),
            ("12:M 24 Nov 2026 10:00:00.000 # Error writing to the AOF file: No space left on device",
             FailureKind::AofWrite, Reason::DiskFull),
            ("12:M 24 Nov 2026 10:00:00.000 # Error writing to the AOF file: Input/output error",
             FailureKind::AofWrite, Reason::IoError),
            ("12:M 24 Nov 2026 10:00:00.000 # Background saving terminated by signal 9",
             FailureKind::RdbBgsave, Reason::ChildKilled),
            ("12:M 24 Nov 2026 10:00:00.000 # Can't save in background: fork: Cannot allocate memory",
             FailureKind::RdbBgsave, Reason::ForkFailed),
            ("12:C 24 Nov 2026 10:00:00.000 # Write error saving DB on disk: No space left on device",
             FailureKind::RdbBgsave, Reason::DiskFull),
        ];
        for (line, kind, reason) in cases {
            assert_eq!(classify_line(line), Some((kind, reason)), "{line}");
        }
    }

    #[test]
    fn full_disk_manifest_line_is_a_rewrite_failure() {
        // Redis 7.0.15, Valkey 8.1.8 and 9.1.2, BGREWRITEAOF on a full tmpfs: no fork happens.
        let line = "18691:M 02 Dec 2026 12:40:52.504 # Error trying to write the temporary AOF manifest file temp-appendonly.aof.manifest: No space left on device";
        assert_eq!(
            classify_line(line),
            Some((FailureKind::AofRewrite, Reason::DiskFull))
        );
        assert_eq!(
            latest_reason(line, FailureKind::AofRewrite),
            Some(Reason::DiskFull)
        );
        assert_eq!(latest_reason(line, FailureKind::AofWrite), None);
    }

    #[test]
    fn log_evidence_counts_one_per_attempt() {
        // Redis 6.2.14: two rewrites on a full disk, each logged by child and parent, then a
        // refused fork, which INFO does not show at all on 6.2.
        let log = "19875:M 02 Dec 2026 12:41:08.052 * Background append only file rewriting started by pid 19915\n\
            19915:C 02 Dec 2026 12:41:08.053 # Write error writing append only file on disk: No space left on device\n\
            19875:M 02 Dec 2026 12:41:08.105 # Background AOF rewrite terminated with error\n\
            19922:C 02 Dec 2026 12:41:08.157 # Write error writing append only file on disk: No space left on device\n\
            19875:M 02 Dec 2026 12:41:08.206 # Background AOF rewrite terminated with error\n\
            19770:M 02 Dec 2026 12:41:06.264 # Can't rewrite append only file in background: fork: Resource temporarily unavailable\n\
            19770:M 02 Dec 2026 12:41:06.469 # Can't save in background: fork: Resource temporarily unavailable\n\
            19539:M 02 Dec 2026 12:41:05.915 # Background saving terminated by signal 9\n\
            19875:M 02 Dec 2026 12:41:08.509 * Background AOF rewrite terminated with success\n\
            19875:M 02 Dec 2026 12:41:08.509 * Background AOF rewrite finished successfully\n";
        assert_eq!(
            log_evidence(log),
            LogEvidence {
                aof_rewrite_failures: 3,
                aof_rewrite_successes: 1,
                rdb_bgsave_failures: 2,
                rdb_bgsave_successes: 0,
                aof_rewrite_trailing_failures: 0,
                rdb_bgsave_trailing_failures: 2,
                aof_rewrite_cause: Some(Reason::ForkFailed),
                rdb_bgsave_cause: Some(Reason::ChildKilled),
                ..LogEvidence::default()
            }
        );
        let manifest = "1:M x # Error trying to write the temporary AOF manifest file temp-appendonly.aof.manifest: No space left on device\n";
        let evidence = log_evidence(&manifest.repeat(2));
        assert_eq!(evidence.aof_rewrite_failures, 2);
        assert_eq!(evidence.aof_rewrite_cause, Some(Reason::DiskFull));
        assert_eq!(log_evidence(""), LogEvidence::default());
    }

    #[test]
    fn success_lines_are_not_failures() {
        for line in [
            "12:M 24 Nov 2026 10:00:00.000 * Background AOF rewrite terminated with success",
            "12:M 24 Nov 2026 10:00:00.000 * Background AOF rewrite finished successfully",
            "12:M 24 Nov 2026 10:00:00.000 * Background saving terminated with success",
            "12:M 24 Nov 2026 10:00:00.000 * Ready to accept connections",
        ] {
            assert_eq!(classify_line(line), None, "{line}");
        }
    }

    #[test]
    fn specific_child_line_beats_generic_parent_line() {
        // Real Redis 7.0.15 lines from a rewrite on a full tmpfs.
        let log = "27773:M 24 Nov 2026 22:00:00.000 * Background append only file rewriting started by pid 27865\n\
                   27865:C 24 Nov 2026 22:00:00.100 # Write error writing append only file on disk: No space left on device\n\
                   27773:M 24 Nov 2026 22:00:00.200 # Background AOF rewrite terminated with error\n";
        assert_eq!(
            latest_reason(log, FailureKind::AofRewrite),
            Some(Reason::DiskFull)
        );
    }

    #[test]
    fn short_write_is_disk_full_and_success_ends_an_episode() {
        let log = "1:M 24 Nov 2026 22:00:00.000 # Short write while writing to the AOF file: (nwritten=52755, expected=65568)\n";
        assert_eq!(
            latest_reason(log, FailureKind::AofWrite),
            Some(Reason::DiskFull)
        );
        let log = "1:M x # Background AOF rewrite terminated by signal 9\n\
                   1:M x * Background AOF rewrite terminated with success\n\
                   1:M x # Background AOF rewrite terminated with error\n";
        assert_eq!(
            latest_reason(log, FailureKind::AofRewrite),
            Some(Reason::Unknown)
        );
    }

    #[test]
    fn latest_line_wins() {
        let log = "x # Background AOF rewrite terminated by signal 9\n\
                   x # Can't rewrite append only file in background: fork: Cannot allocate memory\n\
                   x * Background saving terminated with success\n";
        assert_eq!(
            latest_reason(log, FailureKind::AofRewrite),
            Some(Reason::ForkFailed)
        );
        assert_eq!(latest_reason(log, FailureKind::RdbBgsave), None);
    }

    #[test]
    fn free_space_of_a_real_directory() {
        let space = free_space(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(space.bytes > 0);
        assert!(free_space(Path::new("/nonexistent/dir")).is_err());
    }

    #[test]
    fn the_log_cursor_reads_whole_new_lines_across_rotation_and_truncation() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("redis.log");
        let append = |text: &str| {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            file.write_all(text.as_bytes()).unwrap();
        };
        append("before the exporter started\n");
        let mut cursor = LogCursor::default();
        assert_eq!(
            cursor.read_new(&path).unwrap(),
            "",
            "the first read finds the end"
        );
        append("one\ntw");
        assert_eq!(
            cursor.read_new(&path).unwrap(),
            "one\n",
            "half a line waits"
        );
        append("o\n");
        assert_eq!(cursor.read_new(&path).unwrap(), "two\n");
        // Rotation: a line lands in the old file after our read, then a new file starts.
        append("three\n");
        std::fs::rename(&path, dir.path().join("redis.log.1")).unwrap();
        append("four\n");
        assert_eq!(cursor.read_new(&path).unwrap(), "three\nfour\n");
        // copytruncate: the file shrinks in place and is read from its start.
        std::fs::write(&path, "five\n").unwrap();
        assert_eq!(cursor.read_new(&path).unwrap(), "five\n");
        assert_eq!(cursor.read_new(&path).unwrap(), "");
    }

    #[test]
    fn streak_evidence_counts_failures_after_the_last_success() {
        let tail = "\
1:M 01 Jan 00:00:00.000 # Background AOF rewrite terminated by signal 9
1:M 01 Jan 00:00:01.000 * Background AOF rewrite terminated with success
1:M 01 Jan 00:00:01.000 * Background AOF rewrite finished successfully
1:M 01 Jan 00:00:02.000 # Can't rewrite append only file in background: fork: Resource temporarily unavailable
1:M 01 Jan 00:00:03.000 # Can't rewrite append only file in background: fork: Resource temporarily unavailable
1:M 01 Jan 00:00:04.000 # Background saving terminated by signal 9
";
        let evidence = streak_evidence(tail);
        assert_eq!(evidence.aof_rewrite_failures, 2);
        assert_eq!(evidence.aof_rewrite_cause, Some(Reason::ForkFailed));
        assert_eq!(evidence.rdb_bgsave_failures, 1);
        assert_eq!(streak_evidence("").aof_rewrite_failures, 0);
    }

    #[test]
    fn the_startup_load_time_is_read_from_its_log_line() {
        let log = "1:M 01 Jan 2026 00:00:00.000 * DB loaded from base file appendonly.aof.1.base.rdb: 0.001 seconds\n\
            1:M 01 Jan 2026 00:00:00.000 * DB loaded from incr file appendonly.aof.1.incr.aof: 2.500 seconds\n\
            1:M 01 Jan 2026 00:00:00.000 * DB loaded from append only file: 2.501 seconds\r\n";
        assert_eq!(log_evidence(log).db_loaded_millis, Some(2501));
        let rdb = "1:M 01 Jan 2026 00:00:00.000 * DB loaded from disk: 0.250 seconds";
        assert_eq!(log_evidence(rdb).db_loaded_millis, Some(250));
        assert_eq!(
            log_evidence("DB loaded from disk: nan seconds").db_loaded_millis,
            None
        );
    }
}
