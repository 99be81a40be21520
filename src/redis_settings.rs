//! The few server settings that change what INFO fields mean, read with `CONFIG GET`.
//!
//! They are read occasionally, not every poll (`config_refresh_interval`), because they rarely
//! change and `CONFIG GET` is far more expensive for Redis than `INFO`. Managed services often
//! rename or forbid `CONFIG`; then the target says so through `redis_config_available 0` and
//! everything else keeps working.

/// The keys read, in one `CONFIG GET` on Redis 7.0+ (one per key on older servers).
pub const KEYS: &[&str] = &[
    "appendonly",
    "appendfsync",
    "auto-aof-rewrite-percentage",
    "auto-aof-rewrite-min-size",
];

/// The settings, each absent if the server did not return it or returned nonsense.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisSettings {
    /// `appendonly`
    pub appendonly: Option<bool>,
    /// `appendfsync`: `always`, `everysec` or `no`.
    pub appendfsync: Option<&'static str>,
    /// `auto-aof-rewrite-percentage`; 0 disables automatic rewrites.
    pub aof_rewrite_percentage: Option<u64>,
    /// `auto-aof-rewrite-min-size` in bytes.
    pub aof_rewrite_min_size_bytes: Option<u64>,
}

impl RedisSettings {
    /// Builds the settings from `CONFIG GET` name/value pairs; unknown names are ignored.
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut config = RedisSettings::default();
        for (name, value) in pairs {
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "appendonly" => {
                    config.appendonly = match value {
                        "yes" => Some(true),
                        "no" => Some(false),
                        _ => None,
                    }
                }
                "appendfsync" => {
                    config.appendfsync = ["always", "everysec", "no"]
                        .into_iter()
                        .find(|policy| *policy == value)
                }
                "auto-aof-rewrite-percentage" => config.aof_rewrite_percentage = value.parse().ok(),
                "auto-aof-rewrite-min-size" => {
                    config.aof_rewrite_min_size_bytes = value.parse().ok()
                }
                _ => {}
            }
        }
        config
    }

    /// Whether the AOF is past the size at which Redis's own rule says it should have been
    /// rewritten: larger than the minimum size and grown by at least the percentage over the
    /// size after the last rewrite. `None` when a needed value is unknown.
    pub fn rewrite_overdue(&self, current: u64, base: u64) -> Option<bool> {
        let percentage = self.aof_rewrite_percentage?;
        let min_size = self.aof_rewrite_min_size_bytes?;
        if percentage == 0 {
            // Automatic rewrites are off: nothing is ever "due".
            return Some(false);
        }
        // Redis treats a zero base as 1 byte.
        let base = base.max(1) as u128;
        let growth_percent = (current as u128 * 100 / base).saturating_sub(100);
        Some(current > min_size && growth_percent >= u128::from(percentage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_the_keys() {
        let config = RedisSettings::from_pairs(&pairs(&[
            ("appendonly", "yes"),
            ("appendfsync", "everysec"),
            ("auto-aof-rewrite-percentage", "100"),
            ("auto-aof-rewrite-min-size", "67108864"),
            ("dir", "/var/lib/redis"),
            ("unrelated", "x"),
        ]));
        assert_eq!(config.appendonly, Some(true));
        assert_eq!(config.appendfsync, Some("everysec"));
        assert_eq!(config.aof_rewrite_percentage, Some(100));
        assert_eq!(config.aof_rewrite_min_size_bytes, Some(64 << 20));
    }

    #[test]
    fn overdue_follows_redis_rule() {
        let config = RedisSettings {
            aof_rewrite_percentage: Some(100),
            aof_rewrite_min_size_bytes: Some(64 << 20),
            ..RedisSettings::default()
        };
        assert_eq!(
            config.rewrite_overdue(10 << 20, 1 << 20),
            Some(false),
            "below min size"
        );
        assert_eq!(
            config.rewrite_overdue(100 << 20, 60 << 20),
            Some(false),
            "grew 66%"
        );
        assert_eq!(
            config.rewrite_overdue(130 << 20, 60 << 20),
            Some(true),
            "more than doubled"
        );
        let off = RedisSettings {
            aof_rewrite_percentage: Some(0),
            ..config.clone()
        };
        assert_eq!(off.rewrite_overdue(u64::MAX, 1), Some(false));
        assert_eq!(RedisSettings::default().rewrite_overdue(1, 1), None);
    }
}
