//! Whether a primary's data has a live copy: replicas that are online and in sync ("AOF err on
//! primary but a healthy in-sync replica equals data still has a live copy").
//!
//! A replica counts as in sync when its link is `online`, it acknowledged within
//! [`MAX_LAG_SECONDS`] (replicas ack every second), and the offset it acknowledged is within
//! [`MAX_OFFSET_BEHIND`] bytes of the primary's `master_repl_offset`. The offset test is
//! skipped when either offset is missing (servers before 2.8 did not report them).

use crate::info::{Info, Replica};

/// Longest time since a replica's last ack for it to count as in sync, in seconds.
pub const MAX_LAG_SECONDS: u64 = 10;

/// Most replication stream, in bytes, a replica may not have acknowledged yet to count as in
/// sync: about a second of a busy primary's writes.
pub const MAX_OFFSET_BEHIND: u64 = 1 << 20;

/// Whether one replica holds a live, current copy of the primary's data.
pub fn in_sync(replica: &Replica, master_repl_offset: Option<u64>) -> bool {
    let fresh = replica.lag_seconds.is_none_or(|lag| lag <= MAX_LAG_SECONDS);
    let close = match (master_repl_offset, replica.offset) {
        (Some(primary), Some(acked)) => primary.saturating_sub(acked) <= MAX_OFFSET_BEHIND,
        _ => true,
    };
    replica.state == "online" && fresh && close
}

/// How many of the target's replicas are in sync; `None` when the replication section was
/// never read (no `role`).
pub fn count_in_sync(info: &Info) -> Option<usize> {
    info.role.as_ref()?;
    Some(
        info.replicas
            .iter()
            .filter(|r| in_sync(r, info.master_repl_offset))
            .count(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(text: &str) -> Info {
        crate::info::parse(&text.replace(' ', "\r\n")).unwrap()
    }

    #[test]
    fn online_recent_and_close_counts_others_do_not() {
        let primary = info(
            "role:master connected_slaves:4 master_repl_offset:5000000 \
             slave0:ip=10.0.0.1,port=6379,state=online,offset=5000000,lag=0 \
             slave1:ip=10.0.0.2,port=6379,state=online,offset=5000000,lag=11 \
             slave2:ip=10.0.0.3,port=6379,state=online,offset=100,lag=0 \
             slave3:ip=10.0.0.4,port=6379,state=wait_bgsave,offset=0,lag=0",
        );
        assert_eq!(count_in_sync(&primary), Some(1));
    }

    #[test]
    fn no_replication_section_is_unknown_and_no_replicas_is_zero() {
        assert_eq!(count_in_sync(&info("aof_enabled:1")), None);
        assert_eq!(
            count_in_sync(&info("role:master connected_slaves:0")),
            Some(0)
        );
    }
}
