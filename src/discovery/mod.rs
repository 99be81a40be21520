//! Every source of targets besides the `[[targets]]` list: `file_sd` files, Redis Cluster
//! membership and Sentinel topology, behind one [`Discovery`] that the daemon and `check`
//! drive the same way, and the one merge of configured and discovered targets.
//!
//! - `file_sd`: files in Prometheus's `file_sd` format, re-read when they change.
//! - `redis_sd`: Cluster and Sentinel sources, one task each.
//! - `replies`: the pure parsers of `CLUSTER NODES` and `SENTINEL` replies.

mod file_sd;
mod redis_sd;
mod replies;

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::config::Settings;
use crate::target::Target;
use file_sd::FileSd;
use redis_sd::RedisSd;

/// The running discovery of one config: every source, and what they found so far.
pub struct Discovery {
    settings: Settings,
    file_sd: FileSd,
    redis_sd: RedisSd,
    /// Ticks at the shortest `[[file_sd]]` refresh interval. One ticker for the life of the
    /// config: a timer restarted on every wake-up would never fire while Cluster or Sentinel
    /// discovery keeps changing.
    file_ticks: Option<Interval>,
}

impl Discovery {
    /// Reads the `file_sd` files once and starts the Cluster and Sentinel tasks, whose nodes
    /// arrive through [`Discovery::changed`] once they answer, so a slow seed does not hold up
    /// serving. Must be called inside a Tokio runtime.
    pub fn start(settings: &Settings) -> Self {
        Self::with_redis_sd(settings, RedisSd::start(settings))
    }

    /// Follows a reloaded config. Cluster and Sentinel sources whose settings did not change
    /// keep their nodes until their first refresh, so a reload does not drop their pollers.
    pub fn restart(self, settings: &Settings) -> Self {
        let redis_sd = self.redis_sd.restart(settings);
        Self::with_redis_sd(settings, redis_sd)
    }

    fn with_redis_sd(settings: &Settings, redis_sd: RedisSd) -> Self {
        let mut file_sd = FileSd::new();
        file_sd.refresh(settings);
        let file_ticks = settings
            .file_sd
            .iter()
            .map(|s| s.refresh_interval)
            .min()
            .map(|every| {
                let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
                ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                ticks
            });
        Discovery {
            settings: settings.clone(),
            file_sd,
            redis_sd,
            file_ticks,
        }
    }

    /// The config's settings with the discovered targets added to the configured ones.
    pub fn effective(&self) -> Settings {
        let mut discovered = self.file_sd.targets();
        discovered.extend(self.redis_sd.targets());
        let mut effective = self.settings.clone();
        effective.targets = merge(&self.settings.targets, &discovered);
        effective
    }

    /// Resolves when any source's list changed; read it with [`Discovery::effective`].
    /// Cancel-safe, for use in `select!`.
    pub async fn changed(&mut self) {
        loop {
            tokio::select! {
                _ = next_tick(&mut self.file_ticks) => {
                    if self.file_sd.refresh(&self.settings).is_some() {
                        return;
                    }
                }
                _ = self.redis_sd.changed() => return,
            }
        }
    }

    /// The configured targets plus one round of every source, for `check`. Cluster and
    /// Sentinel sources get a few poll timeouts to answer; a source that does not answer in
    /// time adds nothing (its seeds are not targets themselves).
    pub async fn once(settings: &Settings) -> Vec<Target> {
        let mut discovery = Discovery::start(settings);
        // Only the Redis sources are waited for: the files were read at the start.
        discovery.file_ticks = None;
        let deadline = Instant::now() + (settings.poll_timeout * 3).max(Duration::from_secs(3));
        for _ in 0..settings.cluster.len() + settings.sentinel.len() {
            if tokio::time::timeout_at(deadline, discovery.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        discovery.effective().targets
    }
}

/// The settings with the targets found without the network: the configured ones plus those
/// of the `file_sd` files as they are now. For `--check-config`, which must not connect.
pub fn offline(settings: &Settings) -> Settings {
    let mut file_sd = FileSd::new();
    let discovered = file_sd.refresh(settings).unwrap_or_default();
    let mut effective = settings.clone();
    effective.targets = merge(&settings.targets, &discovered);
    effective
}

/// The next tick, or never without a ticker.
async fn next_tick(ticks: &mut Option<Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The static targets plus the discovered ones whose names are not taken.
pub fn merge(statics: &[Target], discovered: &[Target]) -> Vec<Target> {
    let mut names: BTreeSet<&str> = statics.iter().map(|t| t.name.as_str()).collect();
    let mut all = statics.to_vec();
    for target in discovered {
        if names.insert(target.name.as_str()) {
            all.push(target.clone());
        } else {
            tracing::debug!(target_name = %target.name, "discovered target has the name of a configured one; the configured one wins");
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_names_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[[targets]]\nurl = \"redis://a\"\nname = \"x\"\n[[targets]]\nurl = \"redis://b\"\nname = \"y\"\n").unwrap();
        let settings = crate::config::load_with_env(Some(&path), Vec::new()).unwrap();
        let merged = merge(&settings.targets[..1], &settings.targets);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].address, settings.targets[0].address);
    }
}
