//! The set of running pollers, and how it follows a (re)loaded config.
//!
//! On reload, a target whose settings did not change keeps its poller, its connection and its
//! state, derived history included; a changed target starts over with a fresh connection and
//! state; a removed target's series disappear with it; an added one starts polling.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::backup::Backups;
use crate::config::Settings;
use crate::poller::{self, Schedule};
use crate::state::Store;
use crate::target::Target;

/// What a reload did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// Targets that started polling.
    pub added: usize,
    /// Targets whose series are gone.
    pub removed: usize,
    /// Targets that reconnect with fresh state.
    pub changed: usize,
    /// Targets that kept their connection and state.
    pub unchanged: usize,
}

impl std::fmt::Display for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} added, {} removed, {} changed, {} unchanged",
            self.added, self.removed, self.changed, self.unchanged
        )
    }
}

struct Running {
    target: Arc<Target>,
    task: JoinHandle<()>,
}

/// The running pollers.
pub struct Fleet {
    store: Arc<Store>,
    schedule: Option<Schedule>,
    running: BTreeMap<String, Running>,
    backups: Backups,
}

impl Fleet {
    /// An empty fleet writing into `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Fleet {
            backups: Backups::new(store.backups().clone()),
            store,
            schedule: None,
            running: BTreeMap::new(),
        }
    }

    /// Makes the running pollers match `settings`.
    pub fn apply(&mut self, settings: &Settings) -> Changes {
        self.store
            .set_per_target_poll_duration(settings.per_target_poll_duration_histogram);
        let schedule = Schedule::from(settings);
        let schedule_changed = self.schedule != Some(schedule);
        self.schedule = Some(schedule);
        let mut changes = Changes::default();
        let wanted: BTreeMap<&str, &Target> = settings
            .targets
            .iter()
            .filter(|t| settings.shard.is_none_or(|shard| shard.owns(&t.name)))
            .map(|t| (t.name.as_str(), t))
            .collect();
        // The same targets, each checked apart from its poller: a slow bucket never delays
        // a poll.
        self.backups.apply(
            wanted
                .keys()
                .filter_map(|name| Some((name.to_string(), settings.backup.for_target(name)?)))
                .collect(),
        );

        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|name| !wanted.contains_key(name.as_str()))
            .cloned()
            .collect();
        for name in gone {
            if let Some(running) = self.running.remove(&name) {
                running.task.abort();
            }
            self.store.remove(&name);
            changes.removed += 1;
        }

        for (name, target) in wanted {
            let existing = self.running.get(name);
            let cell = match existing {
                Some(running) if *running.target == *target => {
                    changes.unchanged += 1;
                    if !schedule_changed {
                        continue;
                    }
                    // Same target, new timing: restart the task but keep its state.
                    running.task.abort();
                    self.store.get(name)
                }
                Some(running) => {
                    changes.changed += 1;
                    running.task.abort();
                    None
                }
                None => {
                    changes.added += 1;
                    None
                }
            };
            // Once per target as its settings take effect, not on every discovery change.
            if existing.is_none_or(|running| *running.target != *target)
                && target.tls.as_ref().is_some_and(|t| t.insecure_skip_verify)
            {
                tracing::warn!(target_name = %target.name, "tls_insecure_skip_verify is on: the server's certificate is NOT verified; anyone in the path can impersonate it and read the password");
            }
            let target = Arc::new(target.clone());
            let cell = cell.unwrap_or_else(|| self.store.insert(target.clone()));
            let task = tokio::spawn(poller::run(target.clone(), cell, schedule));
            self.running
                .insert(name.to_owned(), Running { target, task });
        }
        changes
    }

    /// Stops every poller. Aborting drops each poller's connection at once.
    pub async fn stop(self) {
        self.backups.stop().await;
        for running in self.running.values() {
            running.task.abort();
        }
        for (_, running) in self.running {
            let _ = running.task.await;
        }
    }
}
