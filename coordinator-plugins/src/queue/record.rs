//! The queue's objects and keys.
//!
//! ```text
//! <base>/messages/<origin>-<attempt>[.delay-<ms>].json  one per delivery attempt, written once
//! <base>/claims/<origin>-<attempt>.json                 the claim of that message (lease pattern)
//! <base>/dead/<origin>.json                             a dead letter: errors + payload
//! <base>/stats.json                                     counters, written by the leader (epoch-fenced)
//! ```
//!
//! A message object is written once (create-if-absent) and never rewritten.
//! A retry is a *new* message object (`attempt + 1`, with the back-off in
//! its key so that workers see it from a listing) whose key the failing
//! claim fixed; so no key is ever reused and the leader's clean-up is
//! idempotent.

use serde::{Deserialize, Serialize};

use crate::id::SortableId;

/// The keys of one queue.
#[derive(Clone, Debug)]
pub(crate) struct QueueKeys {
    base: String,
}

impl QueueKeys {
    pub(crate) fn new(base: String) -> Self {
        Self { base }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn messages(&self) -> String {
        format!("{}/messages/", self.base)
    }

    pub(crate) fn claims(&self) -> String {
        format!("{}/claims/", self.base)
    }

    pub(crate) fn dead_prefix(&self) -> String {
        format!("{}/dead/", self.base)
    }

    pub(crate) fn stats(&self) -> String {
        format!("{}/stats.json", self.base)
    }

    pub(crate) fn message(&self, stem: &Stem, delay_ms: u64) -> String {
        if delay_ms == 0 {
            format!("{}/messages/{stem}.json", self.base)
        } else {
            format!("{}/messages/{stem}.delay-{delay_ms}.json", self.base)
        }
    }

    pub(crate) fn claim(&self, stem: &Stem) -> String {
        format!("{}/claims/{stem}.json", self.base)
    }

    pub(crate) fn dead(&self, origin: &SortableId) -> String {
        format!("{}/dead/{origin}.json", self.base)
    }

    /// Parses a message key from a listing: its stem and delay.
    pub(crate) fn parse_message(&self, key: &str) -> Option<(Stem, u64)> {
        let name = key.strip_prefix(&self.messages())?.strip_suffix(".json")?;
        let (stem, delay) = match name.split_once(".delay-") {
            Some((stem, delay)) => (stem, delay.parse().ok()?),
            None => (name, 0),
        };
        Some((Stem::parse(stem)?, delay))
    }

    /// Parses a claim key from a listing.
    pub(crate) fn parse_claim(&self, key: &str) -> Option<Stem> {
        let name = key.strip_prefix(&self.claims())?.strip_suffix(".json")?;
        Stem::parse(name)
    }
}

/// One delivery attempt of one message: `<origin>-<attempt>`, the name of
/// its message and claim objects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Stem {
    pub(crate) origin: SortableId,
    pub(crate) attempt: u32,
}

impl Stem {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (origin, attempt) = text.rsplit_once('-')?;
        Some(Self {
            origin: SortableId::parse(origin)?,
            attempt: attempt.parse().ok().filter(|&a| a >= 1)?,
        })
    }

    pub(crate) fn next(&self) -> Self {
        Self {
            origin: self.origin.clone(),
            attempt: self.attempt.saturating_add(1),
        }
    }
}

impl std::fmt::Display for Stem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{:03}", self.origin, self.attempt)
    }
}

/// The header of a message object; the payload follows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MessageHeader {
    pub(crate) format: u32,
    /// When the first attempt was enqueued (informational, producer's clock).
    pub(crate) enqueued_unix_ms: u64,
    /// The errors of earlier attempts, oldest first (at most
    /// `max_errors_kept`).
    #[serde(default)]
    pub(crate) errors: Vec<String>,
}

/// A claim object's body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClaimRecord {
    pub(crate) format: u32,
    /// The message key this claims.
    pub(crate) message: String,
    /// Changes on every write, so the version does (ETags are content
    /// hashes).
    pub(crate) nonce: String,
    /// The writer's wall clock (informational only).
    pub(crate) updated_unix_ms: u64,
    pub(crate) state: ClaimState,
}

/// Where a claim is in its life. Every state but `Claimed` is terminal:
/// never rewritten, only deleted by the leader once its work is done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum ClaimState {
    /// A worker holds the message.
    Claimed {
        worker: String,
        token: String,
        visibility_ms: u64,
        renewals: u32,
    },
    /// The handler succeeded; the leader deletes the message and the claim.
    Completed { worker: String },
    /// The attempt failed (or its claim stalled); the leader writes `next`,
    /// then deletes the message and the claim.
    Failed {
        worker: String,
        error: String,
        next: Next,
        /// The epoch of the leader that recovered a stalled claim.
        by_epoch: Option<u64>,
        /// The leader wrote `next` (the retry message or the dead letter);
        /// no later finish writes it again, so its key is never reused.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        followed_up: bool,
    },
    /// The claimed message no longer existed (a stale listing); nothing to do.
    Abandoned { reason: String },
}

impl ClaimState {
    pub(crate) fn is_live(&self) -> bool {
        matches!(self, ClaimState::Claimed { .. })
    }
}

/// What follows a failed attempt; fixed by the compare-and-swap that
/// records the failure, so every leader that finishes it writes the same
/// keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "then", rename_all = "snake_case")]
pub(crate) enum Next {
    /// Another attempt, as message `<origin>-<attempt+1>` delayed by
    /// `delay_ms`.
    Retry { delay_ms: u64 },
    /// Attempts exhausted: a dead letter.
    Dead,
}

/// The header of a dead letter; the payload follows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DeadHeader {
    pub(crate) format: u32,
    pub(crate) attempts: u32,
    pub(crate) errors: Vec<String>,
    pub(crate) enqueued_unix_ms: u64,
    pub(crate) dead_unix_ms: u64,
}

/// The leader's counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatsRecord {
    pub(crate) format: u32,
    /// The epoch of the leader that wrote it last (its seal).
    pub(crate) epoch: u64,
    pub(crate) nonce: String,
    #[serde(default)]
    pub(crate) counts: Counts,
    /// Claims whose counts are in `counts` and that may not be deleted
    /// yet: a later leader deletes them without counting them again.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub(crate) counted: std::collections::BTreeSet<String>,
}

/// Counters the leader keeps as it cleans up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counts {
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) retried: u64,
    pub(crate) dead: u64,
    pub(crate) recovered: u64,
}

impl Counts {
    /// One failed attempt, what follows it, and whether the leader
    /// recovered it (`by_epoch`).
    pub(crate) fn add_failure(&mut self, next: &Next, by_epoch: Option<u64>) {
        self.failed += 1;
        match next {
            Next::Retry { .. } => self.retried += 1,
            Next::Dead => self.dead += 1,
        }
        if by_epoch.is_some() {
            self.recovered += 1;
        }
    }

    pub(crate) fn add(&mut self, other: &Counts) {
        self.completed += other.completed;
        self.failed += other.failed;
        self.retried += other.retried;
        self.dead += other.dead;
        self.recovered += other.recovered;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let keys = QueueKeys::new("b".into());
        let stem = Stem {
            origin: SortableId::parse("018f3a2b4c5d0000039f1e2d3c4b5a").unwrap(),
            attempt: 2,
        };
        let key = keys.message(&stem, 1500);
        assert_eq!(keys.parse_message(&key), Some((stem.clone(), 1500)));
        assert_eq!(
            keys.parse_message(&keys.message(&stem, 0)),
            Some((stem.clone(), 0))
        );
        assert_eq!(keys.parse_claim(&keys.claim(&stem)), Some(stem.clone()));
        assert_eq!(stem.next().attempt, 3);
        assert!(keys.parse_message("b/messages/junk.json").is_none());
        let state = ClaimState::Failed {
            worker: "w".into(),
            error: "e".into(),
            next: Next::Retry { delay_ms: 5 },
            by_epoch: None,
            followed_up: false,
        };
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<ClaimState>(&json).unwrap(), state);
        assert!(!state.is_live());
    }
}
