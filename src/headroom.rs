//! Predicting the failure: will the next AOF rewrite or BGSAVE fit on the data volume, and is
//! its fork likely to be refused or killed? Pure: INFO, free space and host readings in, a
//! prediction out.
//!
//! # The disk estimate
//! Both a rewrite and a BGSAVE write the whole dataset as RDB (a rewrite's new base is an RDB
//! with `aof-use-rdb-preamble yes`, the default since 4.0) into a new file while the old files
//! stay until it finishes. Its size is not in INFO, so it is bounded from above:
//! - with AOF on, by `aof_current_size`: replaying the AOF rebuilds the dataset, and RDB
//!   encodes a value no larger than the commands that wrote it. Tight after bulk loads, loose
//!   (up to the auto-rewrite growth, 2x by default) when writes overwrite the same keys.
//! - with AOF off, by `used_memory_dataset`: RDB is more compact than memory (no pointers or
//!   allocator rounding, LZF on strings). It is a memory-section field, read every
//!   `siblings_refresh_interval` (30 s), so it lags fast growth by that much. With AOF on it is
//!   not used, though often tighter: measured on 7.0 during a bulk write, the stale figure was
//!   half the dataset (1.16 MB for 2.1 MB written), which would have called a failing rewrite
//!   a fit.
//!
//! A rewrite also needs room for the writes made while it runs (they go to a new incremental
//! file on 7.0+, to the rewrite buffer before): the AOF growth rate the exporter saw times the
//! last rewrite's duration. While the matching child runs, only the part it has not written
//! yet (`current_fork_perc`) is still needed.
//!
//! It is an upper bound, so "fits" is reliable and "does not fit" may be a false alarm by at
//! most that looseness; the runbook says how to tell.
//!
//! # The fork
//! A fork duplicates the page tables, then every page either side writes is copied (COW).
//! - `vm.overcommit_memory=2` refuses the fork when `CommitLimit - Committed_AS` is below the
//!   child's private writable memory, of which `used_memory_rss` is a lower bound: below
//!   `used_memory_rss` the refusal is certain, above it likely but not certain.
//! - `0` (the heuristic) and `1` do not refuse a fork of Redis on current kernels; the risk is
//!   the OOM killer while the child copies pages. The last fork's COW (the largest of
//!   `aof_last_cow_size`, `rdb_last_cow_size`, `current_cow_peak`) is the best estimate of the
//!   next one at a similar write load; it is compared with `MemAvailable` and the cgroup's
//!   headroom. Before the first fork there is no COW figure and only the commit check applies.

use crate::cause::FreeSpace;
use crate::host::{HostMemory, Overcommit};
use crate::info::Info;

/// What the next rewrite and BGSAVE need on disk, and whether it is there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskPrediction {
    /// Bytes the next AOF rewrite needs; absent while AOF is off.
    pub rewrite_needed_bytes: Option<u64>,
    /// Bytes the next BGSAVE needs.
    pub bgsave_needed_bytes: u64,
    /// Free bytes on the data volume.
    pub free_bytes: u64,
}

impl DiskPrediction {
    /// Whether the next rewrite fits; absent while AOF is off.
    pub fn rewrite_fits(&self) -> Option<bool> {
        self.rewrite_needed_bytes.map(|n| n <= self.free_bytes)
    }

    /// Whether the next BGSAVE fits.
    pub fn bgsave_fits(&self) -> bool {
        self.bgsave_needed_bytes <= self.free_bytes
    }
}

/// The upper bound of the dataset's size as RDB (see the module docs).
pub fn dataset_as_rdb(info: &Info) -> Option<u64> {
    match info.aof_enabled {
        Some(true) => info.aof_current_size_bytes,
        _ => info.used_memory_dataset_bytes,
    }
}

/// What is left to write of `total` when the child writing it is `running` at `perc` percent.
fn still_needed(total: u64, running: Option<bool>, perc: Option<f64>) -> u64 {
    match (running, perc) {
        (Some(true), Some(perc)) if (0.0..=100.0).contains(&perc) => {
            (total as f64 * (1.0 - perc / 100.0)).ceil() as u64
        }
        _ => total,
    }
}

/// The disk prediction; `None` when the dataset's size cannot be estimated.
/// `aof_growth_bytes_per_second` is the AOF growth the exporter observed between polls.
pub fn disk(
    info: &Info,
    free: FreeSpace,
    aof_growth_bytes_per_second: Option<f64>,
) -> Option<DiskPrediction> {
    let dataset = dataset_as_rdb(info)?;
    let perc = info.current_fork_perc;
    let rewrite_needed_bytes = (info.aof_enabled == Some(true)).then(|| {
        let seconds = info.aof_last_rewrite_duration_seconds.unwrap_or(0).max(1) as f64;
        let rate = aof_growth_bytes_per_second.filter(|r| r.is_finite() && *r > 0.0);
        let during = rate.map_or(0, |rate| (rate * seconds).ceil() as u64);
        still_needed(dataset, info.aof_rewrite_in_progress, perc).saturating_add(during)
    });
    Some(DiskPrediction {
        rewrite_needed_bytes,
        bgsave_needed_bytes: still_needed(dataset, info.rdb_bgsave_in_progress, perc),
        free_bytes: free.bytes,
    })
}

/// The limit that leaves the least room for the next fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkLimit {
    /// `vm.overcommit_memory=2`: `CommitLimit - Committed_AS` against `used_memory_rss`.
    CommitLimit,
    /// `MemAvailable` against the last fork's copy-on-write.
    MemAvailable,
    /// The cgroup's `memory.max - memory.current` against the last fork's copy-on-write.
    Cgroup,
}

impl ForkLimit {
    /// Words for reports.
    pub fn describe(self) -> &'static str {
        match self {
            ForkLimit::CommitLimit => "vm.overcommit_memory=2 and the commit limit left is below the instance's RSS: the kernel will refuse the fork",
            ForkLimit::MemAvailable => "the host's MemAvailable is below the last fork's copy-on-write: the OOM killer may kill the child (or Redis)",
            ForkLimit::Cgroup => "the cgroup memory limit leaves less than the last fork's copy-on-write: the cgroup OOM killer may kill the child (or Redis)",
        }
    }
}

/// The fork headroom: room over need of the tightest limit, below 1 at risk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForkHeadroom {
    /// Room / need of the binding limit.
    pub ratio: f64,
    /// The binding limit.
    pub limit: ForkLimit,
}

impl ForkHeadroom {
    /// Whether the next fork is likely refused or killed.
    pub fn at_risk(&self) -> bool {
        self.ratio < 1.0
    }
}

/// The copy-on-write the next fork is expected to need: the largest the last ones used.
pub fn expected_cow(info: &Info) -> Option<u64> {
    [
        info.aof_last_cow_size_bytes,
        info.rdb_last_cow_size_bytes,
        info.current_cow_peak_bytes,
        info.current_cow_size_bytes,
    ]
    .into_iter()
    .flatten()
    .max()
    .filter(|cow| *cow > 0)
}

/// The tightest of the checks that apply; `None` when none can be made.
pub fn fork(info: &Info, host: &HostMemory) -> Option<ForkHeadroom> {
    let mut checks: Vec<(Option<u64>, Option<u64>, ForkLimit)> = Vec::with_capacity(3);
    if host.overcommit == Some(Overcommit::Never) {
        let left = host
            .commit_limit_bytes
            .zip(host.committed_bytes)
            .map(|(limit, committed)| limit.saturating_sub(committed));
        checks.push((left, info.used_memory_rss_bytes, ForkLimit::CommitLimit));
    }
    let cow = expected_cow(info);
    checks.push((host.mem_available_bytes, cow, ForkLimit::MemAvailable));
    checks.push((host.cgroup_headroom_bytes, cow, ForkLimit::Cgroup));
    checks
        .into_iter()
        .filter_map(|(room, need, limit)| match (room, need) {
            (Some(room), Some(need)) if need > 0 => Some(ForkHeadroom {
                ratio: room as f64 / need as f64,
                limit,
            }),
            _ => None,
        })
        .min_by(|a, b| a.ratio.total_cmp(&b.ratio))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(text: &str) -> Info {
        crate::info::parse(text).unwrap()
    }

    const MIB: u64 = 1 << 20;

    fn free(bytes: u64) -> FreeSpace {
        FreeSpace {
            bytes,
            inodes: 1000,
        }
    }

    /// The card's worked example: a 0.7 GB base, the AOF grown to 3 GB, 4 GB free at 20:00
    /// and falling, 0.4 GB free at 08:00.
    #[test]
    fn the_aof_bounds_the_estimate_with_aof_on() {
        let i = info("aof_enabled:1\naof_current_size:3000000000\naof_base_size:700000000\nused_memory_dataset:800000000\naof_last_rewrite_time_sec:20\n");
        assert_eq!(dataset_as_rdb(&i), Some(3_000_000_000));
        // 1 MB/s of writes for a 20 s rewrite.
        let p = disk(&i, free(4_000_000_000), Some(1.0e6)).unwrap();
        assert_eq!(p.rewrite_needed_bytes, Some(3_020_000_000));
        assert_eq!(p.rewrite_fits(), Some(true));
        assert!(p.bgsave_fits());
        let p = disk(&i, free(400_000_000), Some(1.0e6)).unwrap();
        assert_eq!(p.rewrite_fits(), Some(false));
        assert!(!p.bgsave_fits());
    }

    #[test]
    fn a_bulk_load_does_not_fit_twice() {
        let i = info("aof_enabled:1\naof_current_size:2097152\nused_memory_dataset:1161781\n");
        let p = disk(&i, free(MIB), None).unwrap();
        assert_eq!(p.rewrite_needed_bytes, Some(2 * MIB));
        assert_eq!(p.rewrite_fits(), Some(false));
        assert_eq!(
            disk(&i, free(3 * MIB), None).unwrap().rewrite_fits(),
            Some(true)
        );
    }

    #[test]
    fn aof_off_predicts_the_bgsave_only() {
        // A stale aof_current_size is never read with AOF off.
        let i = info("aof_enabled:0\naof_current_size:1\nused_memory_dataset:5000\n");
        let p = disk(&i, free(4000), None).unwrap();
        assert_eq!(p.rewrite_needed_bytes, None);
        assert_eq!(p.rewrite_fits(), None);
        assert_eq!(p.bgsave_needed_bytes, 5000);
        assert!(!p.bgsave_fits());
        assert_eq!(disk(&info("aof_enabled:0\n"), free(1), None), None);
    }

    #[test]
    fn a_running_child_needs_only_what_it_has_not_written() {
        let i = info("aof_enabled:1\naof_current_size:1000\nused_memory_dataset:4000\naof_rewrite_in_progress:1\nrdb_bgsave_in_progress:0\ncurrent_fork_perc:75.00\n");
        let p = disk(&i, free(300), None).unwrap();
        assert_eq!(p.rewrite_needed_bytes, Some(250));
        assert_eq!(p.bgsave_needed_bytes, 1000);
        // Nonsense progress counts as none.
        let i = info("aof_enabled:1\naof_current_size:1000\naof_rewrite_in_progress:1\ncurrent_fork_perc:250\n");
        assert_eq!(
            disk(&i, free(0), None).unwrap().rewrite_needed_bytes,
            Some(1000)
        );
        // A negative or absurd growth rate adds nothing.
        assert_eq!(
            disk(&i, free(0), Some(f64::NAN))
                .unwrap()
                .rewrite_needed_bytes,
            Some(1000)
        );
    }

    fn host(overcommit: Overcommit) -> HostMemory {
        HostMemory {
            overcommit: Some(overcommit),
            mem_available_bytes: Some(4000 * MIB),
            commit_limit_bytes: Some(8000 * MIB),
            committed_bytes: Some(7000 * MIB),
            cgroup_headroom_bytes: None,
        }
    }

    #[test]
    fn strict_overcommit_refuses_below_the_rss() {
        let i = info("used_memory_rss:2097152000\naof_last_cow_size:10485760\n");
        // 1000 MiB of commit left for a 2000 MiB RSS.
        let h = fork(&i, &host(Overcommit::Never)).unwrap();
        assert_eq!(h.limit, ForkLimit::CommitLimit);
        assert!((h.ratio - 0.5).abs() < 1e-9 && h.at_risk());
        // The same host under the heuristic: only the COW against MemAvailable counts.
        let h = fork(&i, &host(Overcommit::Heuristic)).unwrap();
        assert_eq!(h.limit, ForkLimit::MemAvailable);
        assert!((h.ratio - 400.0).abs() < 1e-9 && !h.at_risk());
    }

    #[test]
    fn copy_on_write_against_memory_and_cgroup() {
        let i = info("used_memory_rss:100\naof_last_cow_size:300\nrdb_last_cow_size:500\ncurrent_cow_peak:0\n");
        assert_eq!(expected_cow(&i), Some(500));
        let mut h = host(Overcommit::Always);
        h.mem_available_bytes = Some(1000);
        h.cgroup_headroom_bytes = Some(400);
        let f = fork(&i, &h).unwrap();
        assert_eq!(f.limit, ForkLimit::Cgroup);
        assert!((f.ratio - 0.8).abs() < 1e-9 && f.at_risk());
        h.cgroup_headroom_bytes = Some(10_000);
        assert!(!fork(&i, &h).unwrap().at_risk());
    }

    #[test]
    fn nothing_to_compare_is_no_verdict() {
        // Never forked, not strict: no COW figure, no check.
        let i = info("used_memory_rss:100\naof_last_cow_size:0\n");
        assert_eq!(fork(&i, &host(Overcommit::Always)), None);
        assert_eq!(fork(&i, &HostMemory::default()), None);
    }
}
