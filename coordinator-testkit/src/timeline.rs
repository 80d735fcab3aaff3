//! What a run looked like, as data for a picture: one lane per worker,
//! its leadership terms by epoch, the spans it was down or paused, the
//! faults and nemesis actions, and the violations a checker found.
//!
//! Both the real-stack chaos checker (issue 14) and `coordinator-sim
//! --timeline` fill a [`Timeline`]; one renderer draws it, so a simulated
//! run and a real one read the same way. Times are nanoseconds on one
//! clock (CLOCK_MONOTONIC for real processes on one machine, the
//! simulator's true time for a simulated run); only differences matter.

use serde::{Deserialize, Serialize};

mod svg;

pub use svg::{epoch_colour, mark_colour, render_svg, EPOCH_PALETTE, VIOLATION_RED};

/// A run, ready to draw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// One line above the lanes: what ran (seed, duration, faults).
    pub title: String,
    /// Where the picture starts.
    pub start_ns: u64,
    /// Where the picture ends.
    pub end_ns: u64,
    /// One lane per worker, top to bottom in this order.
    pub lanes: Vec<Lane>,
    /// Faults, nemesis actions and operator events, on a lane or on all.
    pub marks: Vec<Mark>,
    /// What the checker found; drawn in red.
    pub violations: Vec<TimelineViolation>,
}

/// One worker's row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lane {
    /// The worker id.
    pub worker: String,
    /// The intervals this worker believed it led, with the epoch.
    pub terms: Vec<Term>,
    /// The intervals its process was not running, or was paused.
    pub down: Vec<Down>,
}

/// An interval during which a worker believed it led under `epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    /// The fencing epoch of the term.
    pub epoch: u64,
    /// When the worker began to lead.
    pub start_ns: u64,
    /// When it stopped (or the run's end, if it still led).
    pub end_ns: u64,
}

/// An interval a worker could not act: killed, stopped, or cut off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Down {
    /// Why: "killed", "paused", "partitioned", …
    pub why: String,
    /// From.
    pub start_ns: u64,
    /// To.
    pub end_ns: u64,
}

/// A point event worth seeing: a fault switched on, a nemesis action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// When.
    pub at_ns: u64,
    /// The worker it concerns, or `None` for the whole run (a network
    /// fault for everyone, an operator deleting a record).
    pub worker: Option<String>,
    /// What kind of event; decides the colour.
    pub kind: MarkKind,
    /// A few words: "SIGKILL", "503 SlowDown on", "lease deleted".
    pub label: String,
}

/// The kinds of [`Mark`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkKind {
    /// The network or the store misbehaves (the fault proxy, the simulated
    /// store's faults).
    Fault,
    /// A process is killed, paused, resumed, stopped or restarted.
    Nemesis,
    /// Someone deletes or corrupts coordinator records.
    Operator,
}

/// A broken invariant, drawn in red across the lanes it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineViolation {
    /// Where it starts.
    pub start_ns: u64,
    /// Where it ends (equal to `start_ns` for a point).
    pub end_ns: u64,
    /// The workers involved (empty: the whole run).
    pub workers: Vec<String>,
    /// The checker's sentence.
    pub what: String,
}
