//! The scheduler's objects and keys.
//!
//! ```text
//! <base>/jobs/<job>.json                   the definition (compare-and-swap; removal: see `delete`)
//! <base>/slots/<job>/s<unix ms>.json       one per scheduled slot: the claim and the run's history
//! <base>/slots/<job>/m<id>.json            one per run-now request served
//! <base>/requests/<job>/<id>.json          run-now requests (written once)
//! ```
//!
//! A slot object is created once (create-if-absent, carrying the epoch):
//! that is the claim. The runner renews it while the job runs and ends it
//! in a terminal state with the outcome; the slot names of scheduled runs
//! are their instants (zero-padded, so they sort), and the newest one marks
//! where the schedule stands.

use serde::{Deserialize, Serialize};

use super::job::JobSpec;

/// The keys of one scheduler.
#[derive(Clone, Debug)]
pub(crate) struct SchedulerKeys {
    base: String,
}

impl SchedulerKeys {
    pub(crate) fn new(base: String) -> Self {
        Self { base }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn jobs(&self) -> String {
        format!("{}/jobs/", self.base)
    }

    pub(crate) fn job(&self, job: &str) -> String {
        format!("{}/jobs/{job}.json", self.base)
    }

    pub(crate) fn job_of_key(&self, key: &str) -> Option<String> {
        key.strip_prefix(&self.jobs())?
            .strip_suffix(".json")
            .map(str::to_owned)
    }

    pub(crate) fn slots(&self, job: &str) -> String {
        format!("{}/slots/{job}/", self.base)
    }

    pub(crate) fn scheduled_slot(&self, job: &str, unix_ms: u64) -> String {
        format!("{}/slots/{job}/s{unix_ms:015}.json", self.base)
    }

    pub(crate) fn manual_slot(&self, job: &str, id: &str) -> String {
        format!("{}/slots/{job}/m{id}.json", self.base)
    }

    /// The instant of a scheduled slot's key.
    pub(crate) fn slot_instant(&self, job: &str, key: &str) -> Option<u64> {
        key.strip_prefix(&self.slots(job))?
            .strip_prefix('s')?
            .strip_suffix(".json")?
            .parse()
            .ok()
    }

    pub(crate) fn requests(&self) -> String {
        format!("{}/requests/", self.base)
    }

    pub(crate) fn request(&self, job: &str, id: &str) -> String {
        format!("{}/requests/{job}/{id}.json", self.base)
    }

    /// `(job, id)` of a request key.
    pub(crate) fn parse_request(&self, key: &str) -> Option<(String, String)> {
        let rest = key.strip_prefix(&self.requests())?.strip_suffix(".json")?;
        let (job, id) = rest.split_once('/')?;
        Some((job.to_owned(), id.to_owned()))
    }
}

/// A job definition object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    pub(crate) format: u32,
    pub(crate) spec: JobSpec,
    pub(crate) enabled: bool,
    /// Slots before this (the writer's wall clock at add or enable) are
    /// never caught up.
    pub(crate) active_since_unix_ms: u64,
    pub(crate) nonce: String,
    /// A tombstone: the job was removed (backends without conditional
    /// delete).
    #[serde(default)]
    pub(crate) removed: bool,
}

/// How a slot was claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotKind {
    /// On time (within the job's late tolerance).
    Scheduled,
    /// A missed slot run once, late.
    CatchUp,
    /// A run-now request.
    Manual,
}

/// How an attempt or a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunOutcome {
    /// The job returned `Ok`.
    Succeeded,
    /// The job returned an error.
    Failed {
        /// Its text.
        error: String,
    },
    /// The attempt ran past the job's timeout and was cancelled.
    TimedOut,
    /// The run stopped without an outcome: the leader lost its term or its
    /// lease on the slot, or (at most once) a new leader found it cut short.
    Abandoned {
        /// Why.
        reason: String,
    },
}

/// One attempt of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// 1-based.
    pub attempt: u32,
    /// The worker that ran it.
    pub worker: String,
    /// Its epoch.
    pub epoch: u64,
    /// Start, the runner's wall clock (ms since the epoch).
    pub start_unix_ms: u64,
    /// End, if it ended.
    pub end_unix_ms: Option<u64>,
    /// Outcome, if it ended.
    pub outcome: Option<RunOutcome>,
}

/// How many attempts a slot object keeps: the newest. Every renewal
/// rewrites the whole object, and `retry.max_attempts` has no upper bound,
/// so a job that fails or is cut short again and again would otherwise
/// write ever larger objects. What the list is used for needs only the
/// newest entry: its `attempt` counts the attempts (1-based), whatever was
/// dropped before it.
pub(crate) const ATTEMPTS_KEPT: usize = 16;

/// A slot object: the claim and its run's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SlotRecord {
    pub(crate) format: u32,
    pub(crate) job: String,
    pub(crate) kind: SlotKind,
    /// The slot's instant (scheduled and catch-up runs).
    pub(crate) slot_unix_ms: Option<u64>,
    pub(crate) nonce: String,
    /// The run lease in force, for observers.
    pub(crate) lease_ms: u64,
    /// True while a runner holds it.
    pub(crate) running: bool,
    pub(crate) outcome: Option<RunOutcome>,
    /// The newest [`ATTEMPTS_KEPT`] attempts; add with
    /// [`push_attempt`](Self::push_attempt).
    pub(crate) attempts: Vec<AttemptRecord>,
}

impl SlotRecord {
    /// The attempt number of the newest attempt (0 before the first).
    pub(crate) fn last_attempt(&self) -> u32 {
        self.attempts.last().map_or(0, |a| a.attempt)
    }

    /// Adds the next attempt, dropping the oldest beyond [`ATTEMPTS_KEPT`].
    pub(crate) fn push_attempt(&mut self, attempt: AttemptRecord) {
        self.attempts.push(attempt);
        let excess = self.attempts.len().saturating_sub(ATTEMPTS_KEPT);
        self.attempts.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_keeps_its_newest_attempts_and_their_count() {
        let mut record = SlotRecord {
            format: 1,
            job: "j".into(),
            kind: SlotKind::Scheduled,
            slot_unix_ms: Some(0),
            nonce: "n".into(),
            lease_ms: 1,
            running: true,
            outcome: None,
            attempts: Vec::new(),
        };
        assert_eq!(record.last_attempt(), 0);
        for n in 1..=100 {
            record.push_attempt(AttemptRecord {
                attempt: record.last_attempt() + 1,
                worker: "w".into(),
                epoch: 1,
                start_unix_ms: n,
                end_unix_ms: None,
                outcome: None,
            });
        }
        assert_eq!(record.attempts.len(), ATTEMPTS_KEPT);
        assert_eq!(record.last_attempt(), 100);
        assert_eq!(record.attempts[0].attempt, 101 - ATTEMPTS_KEPT as u32);
    }

    #[test]
    fn keys() {
        let keys = SchedulerKeys::new("b".into());
        assert_eq!(keys.job_of_key(&keys.job("j")).as_deref(), Some("j"));
        let slot = keys.scheduled_slot("j", 1_700_000_000_000);
        assert_eq!(keys.slot_instant("j", &slot), Some(1_700_000_000_000));
        assert_eq!(keys.slot_instant("j", &keys.manual_slot("j", "x")), None);
        assert!(keys.scheduled_slot("j", 9) < keys.scheduled_slot("j", 10));
        assert_eq!(
            keys.parse_request(&keys.request("j", "abc")),
            Some(("j".into(), "abc".into()))
        );
    }
}
