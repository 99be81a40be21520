//! What the host and the cgroup allow a fork: the overcommit policy, `/proc/meminfo` and the
//! cgroup v2 memory limits above the exporter. Read only in sidecar mode, where the exporter
//! shares the Redis host. Each file has one small reader and one pure parser, so the parsers
//! are tested with fixture text.

use std::path::{Path, PathBuf};

/// `vm.overcommit_memory`: how the kernel decides whether a fork's memory may be promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overcommit {
    /// 0: the heuristic. On current kernels it refuses only a single mapping larger than
    /// RAM + swap, so a fork of Redis (whose heap is many mappings) is not refused by it.
    Heuristic,
    /// 1: always promise. A fork is never refused for memory.
    Always,
    /// 2: strict accounting. A fork is refused when its private writable memory would take
    /// `Committed_AS` past `CommitLimit`.
    Never,
}

/// The host's memory, as far as it could be read; each reading is absent when unreadable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostMemory {
    /// `/proc/sys/vm/overcommit_memory`.
    pub overcommit: Option<Overcommit>,
    /// `MemAvailable`: what can be handed out without swapping.
    pub mem_available_bytes: Option<u64>,
    /// `CommitLimit`: the ceiling of promised memory under strict accounting.
    pub commit_limit_bytes: Option<u64>,
    /// `Committed_AS`: memory promised now.
    pub committed_bytes: Option<u64>,
    /// The tightest `memory.max - memory.current` of the cgroups above the exporter's own;
    /// absent when none of them sets a limit or cgroup v2 is not mounted.
    pub cgroup_headroom_bytes: Option<u64>,
}

/// Reads everything; never fails, a reading it cannot get is absent.
pub fn read_memory() -> HostMemory {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name| meminfo_field(&meminfo, name);
    HostMemory {
        overcommit: std::fs::read_to_string("/proc/sys/vm/overcommit_memory")
            .ok()
            .and_then(|text| parse_overcommit(&text)),
        mem_available_bytes: field("MemAvailable"),
        commit_limit_bytes: field("CommitLimit"),
        committed_bytes: field("Committed_AS"),
        cgroup_headroom_bytes: own_cgroup()
            .and_then(|own| cgroup_headroom(Path::new("/sys/fs/cgroup"), &own)),
    }
}

/// `0`, `1` or `2`; anything else is unknown.
pub fn parse_overcommit(text: &str) -> Option<Overcommit> {
    match text.trim() {
        "0" => Some(Overcommit::Heuristic),
        "1" => Some(Overcommit::Always),
        "2" => Some(Overcommit::Never),
        _ => None,
    }
}

/// One `Name:   1234 kB` line of `/proc/meminfo`, in bytes.
pub fn meminfo_field(meminfo: &str, name: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let (key, rest) = line.split_once(':')?;
        if key.trim() != name {
            return None;
        }
        let mut words = rest.split_whitespace();
        let value: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") => value.checked_mul(1024),
            None => Some(value),
            Some(_) => None,
        }
    })
}

/// The exporter's own cgroup v2 path, from the `0::/path` line of `/proc/self/cgroup`.
fn own_cgroup() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    parse_cgroup_v2(&text)
}

/// The path of the `0::` (unified hierarchy) line, relative.
pub fn parse_cgroup_v2(text: &str) -> Option<PathBuf> {
    let path = text.lines().find_map(|line| line.strip_prefix("0::"))?;
    Some(PathBuf::from(path.trim().trim_start_matches('/')))
}

/// The tightest `memory.max - memory.current` among the ancestors of `own` under `root`,
/// `own` itself left out: the exporter's own container or service is its own, not Redis's,
/// while the pod (Kubernetes) or slice (systemd) above it holds Redis too.
pub fn cgroup_headroom(root: &Path, own: &Path) -> Option<u64> {
    let mut tightest: Option<u64> = None;
    let mut dir = own.parent();
    while let Some(relative) = dir {
        let at = root.join(relative);
        let read = |file: &str| std::fs::read_to_string(at.join(file)).ok();
        if let (Some(max), Some(current)) = (read("memory.max"), read("memory.current")) {
            if let (Ok(max), Ok(current)) =
                (max.trim().parse::<u64>(), current.trim().parse::<u64>())
            {
                let left = max.saturating_sub(current);
                tightest = Some(tightest.map_or(left, |t| t.min(left)));
            }
            // "max" (no limit) does not parse and limits nothing.
        }
        dir = relative.parent();
    }
    tightest
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:        8041540 kB\nMemFree:          311212 kB\nMemAvailable:    2046000 kB\nSwapTotal:             0 kB\nCommitLimit:     4020768 kB\nCommitted_AS:    3900000 kB\nHugePages_Total:       0\n";

    #[test]
    fn reads_meminfo_fields_in_bytes() {
        assert_eq!(meminfo_field(MEMINFO, "MemAvailable"), Some(2046000 * 1024));
        assert_eq!(meminfo_field(MEMINFO, "CommitLimit"), Some(4020768 * 1024));
        assert_eq!(meminfo_field(MEMINFO, "HugePages_Total"), Some(0));
        assert_eq!(meminfo_field(MEMINFO, "Mem"), None);
        assert_eq!(meminfo_field("MemAvailable: lots kB", "MemAvailable"), None);
        assert_eq!(meminfo_field("MemAvailable: 1 MB", "MemAvailable"), None);
        assert_eq!(
            meminfo_field("MemAvailable: 18446744073709551615 kB", "MemAvailable"),
            None,
            "an overflow is unknown, not a wrapped number"
        );
    }

    #[test]
    fn reads_the_overcommit_policy() {
        assert_eq!(parse_overcommit("0\n"), Some(Overcommit::Heuristic));
        assert_eq!(parse_overcommit("1"), Some(Overcommit::Always));
        assert_eq!(parse_overcommit("2\n"), Some(Overcommit::Never));
        assert_eq!(parse_overcommit("3"), None);
        assert_eq!(parse_overcommit(""), None);
    }

    #[test]
    fn finds_the_unified_cgroup_line() {
        let text = "12:memory:/legacy\n0::/kubepods/pod1/ctr\n";
        assert_eq!(
            parse_cgroup_v2(text),
            Some(PathBuf::from("kubepods/pod1/ctr"))
        );
        assert_eq!(parse_cgroup_v2("0::/\n"), Some(PathBuf::from("")));
        assert_eq!(parse_cgroup_v2("12:memory:/legacy\n"), None);
    }

    #[test]
    fn headroom_is_the_tightest_limit_above_the_own_cgroup() {
        let root = tempfile::tempdir().unwrap();
        let write = |dir: &str, max: &str, current: &str| {
            let at = root.path().join(dir);
            std::fs::create_dir_all(&at).unwrap();
            std::fs::write(at.join("memory.max"), max).unwrap();
            std::fs::write(at.join("memory.current"), current).unwrap();
        };
        write("kubepods", "max\n", "500\n");
        write("kubepods/pod1", "1000\n", "700\n");
        // The exporter's own container: tiny, and not Redis's, so ignored.
        write("kubepods/pod1/exporter", "10\n", "9\n");
        let own = Path::new("kubepods/pod1/exporter");
        assert_eq!(cgroup_headroom(root.path(), own), Some(300));
        write("kubepods", "2000\n", "1950\n");
        assert_eq!(cgroup_headroom(root.path(), own), Some(50));
        assert_eq!(cgroup_headroom(root.path(), Path::new("")), None);
        assert_eq!(cgroup_headroom(Path::new("/nonexistent"), own), None);
    }
}
