//! The exporter's own process, as every official Prometheus client reports it (`process_*`):
//! CPU time, memory, descriptors, start time. Linux only; read from `/proc/self` at scrape
//! time. The parsers are pure; [`read`] does the I/O.

use std::path::Path;

/// One reading of the process. A field is `None` when its source cannot be read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, bytes.
    pub resident_memory_bytes: Option<u64>,
    /// Virtual memory size, bytes.
    pub virtual_memory_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// Start time, Unix seconds.
    pub start_time_seconds: Option<f64>,
}

/// The fields of `/proc/<pid>/stat` the `process_*` series need, in the kernel's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `utime` + `stime`, clock ticks.
    pub cpu_ticks: u64,
    /// `starttime`, clock ticks after boot.
    pub start_ticks: u64,
    /// `vsize`, bytes.
    pub virtual_bytes: u64,
    /// `rss`, pages.
    pub rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: field 3 (state) is index 0, so field N is index N - 3.
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: field(14)? + field(15)?,
        start_ticks: field(22)?,
        virtual_bytes: field(23)?,
        rss_pages: field(24)?,
    })
}

/// The boot time (`btime`, Unix seconds) from `/proc/stat`.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// Reads the running process.
pub fn read() -> ProcessStats {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|text| parse_stat(&text));
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|text| parse_boot_time(&text));
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as u64;
    ProcessStats {
        cpu_seconds: stat.map(|s| s.cpu_ticks as f64 / ticks),
        resident_memory_bytes: stat.map(|s| s.rss_pages * page),
        virtual_memory_bytes: stat.map(|s| s.virtual_bytes),
        open_fds: count_entries(Path::new("/proc/self/fd")),
        max_fds: rustix::process::getrlimit(rustix::process::Resource::Nofile).current,
        start_time_seconds: stat
            .zip(boot)
            .map(|(s, boot)| boot as f64 + s.start_ticks as f64 / ticks),
    }
}

fn count_entries(dir: &Path) -> Option<u64> {
    // The directory handle itself is one of the entries while it is being read.
    Some(std::fs::read_dir(dir).ok()?.count().saturating_sub(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        // A real line, with a name holding a space and a parenthesis.
        let line = "4242 (redis) exp)orter) S 1 4242 4242 0 -1 4194560 2913 0 0 0 150 37 0 0 20 0 3 0 1234567 1052672000 2560 18446744073709551615 1 1 0 0 0 0 0 4096 17475 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                cpu_ticks: 187,
                start_ticks: 1_234_567,
                virtual_bytes: 1_052_672_000,
                rss_pages: 2560,
            })
        );
        assert_eq!(parse_stat("4242 (cut short) S 1 2"), None);
        assert_eq!(parse_stat("no name at all"), None);
    }

    #[test]
    fn boot_time_is_the_btime_line() {
        let text = "cpu  1 2 3 4\nintr 5\nctxt 6\nbtime 1764671400\nprocesses 7\n";
        assert_eq!(parse_boot_time(text), Some(1_764_671_400));
        assert_eq!(parse_boot_time("cpu 1 2\n"), None);
    }

    #[test]
    fn the_running_process_reads_sanely() {
        let stats = read();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = stats.start_time_seconds.expect("start time");
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "{start} vs {now}"
        );
        assert!(stats.cpu_seconds.expect("cpu") >= 0.0);
        let rss = stats.resident_memory_bytes.expect("rss");
        assert!(rss > 1 << 20 && rss <= stats.virtual_memory_bytes.expect("vsize"));
        let open = stats.open_fds.expect("fds");
        assert!(open >= 3 && open <= stats.max_fds.expect("limit"), "{open}");
    }
}
