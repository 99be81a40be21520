//! The "Last AOF Rewrite Status" card: ok, err or not applicable.
//!
//! The card keys off `aof_enabled`, not the status field alone, because Redis keeps the last
//! `aof_last_bgrewrite_status` after AOF is turned off: a stale `err` on an instance that no
//! longer uses AOF must read as not applicable. A rewrite in progress does not change the card;
//! it shows the last *completed* rewrite until the running one finishes.

use crate::info::{Info, OpStatus};

/// The card's three states. Exactly one holds at a time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CardState {
    /// AOF is on and the last rewrite finished cleanly.
    Ok,
    /// AOF is on and the last rewrite failed.
    Err,
    /// AOF is off (or the server does not report it): the rewrite status means nothing.
    NotApplicable,
}

impl CardState {
    /// Every state, in the order series are rendered.
    pub const ALL: [CardState; 3] = [CardState::Ok, CardState::Err, CardState::NotApplicable];

    /// Reads the card from one INFO reply.
    pub fn from_info(info: &Info) -> CardState {
        match (info.aof_enabled, info.aof_last_bgrewrite_status) {
            (Some(true), Some(OpStatus::Ok)) => CardState::Ok,
            (Some(true), Some(OpStatus::Err)) => CardState::Err,
            _ => CardState::NotApplicable,
        }
    }

    /// The `state` label value.
    pub fn label(self) -> &'static str {
        match self {
            CardState::Ok => "ok",
            CardState::Err => "err",
            CardState::NotApplicable => "not_applicable",
        }
    }
}

/// How many card changes a target remembers: enough to see a flapping card on its page,
/// small enough that 1,000 targets hold well under a megabyte of history.
pub const CARD_CHANGES_KEPT: usize = 20;

/// One change of the card, as the exporter saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CardChange {
    /// The card before; `None` for the first reading this exporter took.
    pub from: Option<CardState>,
    /// The card after.
    pub to: CardState,
    /// When the change was seen, Unix seconds.
    pub at_unix: f64,
}

/// The last [`CARD_CHANGES_KEPT`] card changes, oldest first.
#[derive(Debug, Clone, Default)]
pub struct CardChanges(std::collections::VecDeque<CardChange>);

impl CardChanges {
    /// Records a change, dropping the oldest beyond [`CARD_CHANGES_KEPT`].
    pub fn push(&mut self, change: CardChange) {
        if self.0.len() == CARD_CHANGES_KEPT {
            self.0.pop_front();
        }
        self.0.push_back(change);
    }

    /// The kept changes, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &CardChange> {
        self.0.iter()
    }

    /// How many changes are kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no change was seen yet.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::parse;

    fn card_of(file: &str) -> CardState {
        let path = format!(
            "{}/tests/data/info/reference/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        CardState::from_info(&parse(&std::fs::read_to_string(path).unwrap()).unwrap())
    }

    #[test]
    fn reference_states() {
        assert_eq!(card_of("aof_ok_before.txt"), CardState::Ok);
        assert_eq!(card_of("aof_rewrite_in_progress.txt"), CardState::Ok);
        assert_eq!(card_of("aof_rewrite_scheduled.txt"), CardState::Ok);
        assert_eq!(card_of("aof_rewrite_killed_err.txt"), CardState::Err);
        assert_eq!(card_of("aof_rewrite_killed_x3_err.txt"), CardState::Err);
        assert_eq!(card_of("aof_rewrite_recovered_ok.txt"), CardState::Ok);
        assert_eq!(
            card_of("aof_disabled_stale_err.txt"),
            CardState::NotApplicable
        );
        assert_eq!(card_of("rdb_before_ok.txt"), CardState::NotApplicable);
        assert_eq!(
            card_of("rdb_bgsave_killed_err.txt"),
            CardState::NotApplicable
        );
    }

    #[test]
    fn write_failure_alone_does_not_turn_the_card_red() {
        // The brief: write status is a different signal from rewrite status.
        let info =
            parse("aof_enabled:1\naof_last_bgrewrite_status:ok\naof_last_write_status:err\n")
                .unwrap();
        assert_eq!(CardState::from_info(&info), CardState::Ok);
    }

    #[test]
    fn card_changes_keep_the_last_twenty() {
        let mut changes = CardChanges::default();
        for i in 0..25 {
            changes.push(CardChange {
                from: Some(CardState::Ok),
                to: CardState::Err,
                at_unix: f64::from(i),
            });
        }
        assert_eq!(changes.len(), CARD_CHANGES_KEPT);
        assert_eq!(changes.iter().next().map(|c| c.at_unix), Some(5.0));
        assert_eq!(changes.iter().last().map(|c| c.at_unix), Some(24.0));
    }
}
