//! Splitting a fleet across exporter replicas with no coordination: replica `k` of `n` keeps
//! the targets whose name hashes to bucket `k`.
//!
//! The bucket is Lamping and Veach's jump consistent hash of a 64-bit FNV-1a hash of the
//! target name. Every name lands in exactly one bucket (no overlap, no gap), and going from
//! `n` to `n + 1` replicas moves only about `1 / (n + 1)` of the targets, all of them to the
//! new replica.

use std::fmt;
use std::str::FromStr;

/// This replica's share: `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index of this replica.
    pub index: u32,
    /// Number of replicas.
    pub count: u32,
}

impl Shard {
    /// Whether this replica polls the target called `name`.
    pub fn owns(&self, name: &str) -> bool {
        bucket(name, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why a shard spec is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected \"k/n\" with 0 <= k < n, like \"0/3\" (got {0:?})")]
pub struct ShardError(String);

impl FromStr for Shard {
    type Err = ShardError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ShardError(text.chars().take(32).collect());
        let (index, count) = text.trim().split_once('/').ok_or_else(error)?;
        let index: u32 = index.trim().parse().map_err(|_| error())?;
        let count: u32 = count.trim().parse().map_err(|_| error())?;
        if count == 0 || index >= count {
            return Err(error());
        }
        Ok(Shard { index, count })
    }
}

/// The bucket in `[0, buckets)` of `name`.
pub fn bucket(name: &str, buckets: u32) -> u32 {
    jump_consistent_hash(fnv1a(name), buckets.max(1))
}

fn fnv1a(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm" (2014).
fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let mut bucket: i64 = -1;
    let mut next: i64 = 0;
    while next < i64::from(buckets) {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    bucket as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(count: usize) -> Vec<String> {
        (0..count)
            .map(|i| {
                format!(
                    "redis://10.{}.{}.{}:6379",
                    i / 65536,
                    (i / 256) % 256,
                    i % 256
                )
            })
            .collect()
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["3/3", "0/0", "a/b", "1", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_target_has_exactly_one_owner() {
        let names = names(5000);
        for count in 1..=8u32 {
            for name in &names {
                let owners = (0..count)
                    .filter(|&index| Shard { index, count }.owns(name))
                    .count();
                assert_eq!(owners, 1, "{name} with {count} shards");
            }
        }
    }

    #[test]
    fn shares_are_balanced() {
        let names = names(10_000);
        let count = 5u32;
        let mut sizes = vec![0usize; count as usize];
        for name in &names {
            sizes[bucket(name, count) as usize] += 1;
        }
        // 2000 expected each; allow 10%.
        assert!(
            sizes.iter().all(|&s| (1800..=2200).contains(&s)),
            "{sizes:?}"
        );
    }

    #[test]
    fn growing_the_fleet_moves_few_targets_and_only_to_the_new_shard() {
        let names = names(10_000);
        for count in 1..=7u32 {
            let mut moved = 0;
            for name in &names {
                let before = bucket(name, count);
                let after = bucket(name, count + 1);
                if before != after {
                    assert_eq!(after, count, "moves only go to the new shard");
                    moved += 1;
                }
            }
            let ideal = names.len() / (count as usize + 1);
            assert!(
                moved <= ideal + ideal / 5,
                "{count}->{}: moved {moved}, ideal {ideal}",
                count + 1
            );
        }
    }

    #[test]
    fn buckets_are_stable_across_runs() {
        // Pinned values: a change here would reshuffle every deployed fleet.
        let pinned = [
            ("redis://10.0.0.1:6379", 2, 4),
            ("cache-1", 2, 4),
            ("c1/10.0.0.7:7000", 1, 7),
            ("queue-2", 2, 2),
        ];
        for (name, of_3, of_10) in pinned {
            assert_eq!(bucket(name, 3), of_3, "{name} of 3");
            assert_eq!(bucket(name, 10), of_10, "{name} of 10");
        }
        assert_eq!(bucket("anything", 1), 0);
    }
}
