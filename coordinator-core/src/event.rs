//! What the machine tells the application.

use crate::ids::{Incarnation, Namespace, WorkerId};
use crate::records::RecordError;
use crate::time::Instant;

/// Why a worker stopped acting as leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepDownReason {
    /// No renewal succeeded within `renew_deadline` of the last one's start.
    RenewDeadlineExceeded,
    /// The lease was found held by another worker.
    LeaseLost,
    /// The worker is stopping (it releases the lease).
    Stopping,
    /// The lease turned out to be foreign or of a newer format.
    Refused,
    /// The lease could not be read (corrupt bytes, or overwritten by an
    /// operator): nobody can show this worker still holds it, so it stops
    /// at once rather than at its deadline.
    LeaseUnusable,
}

/// A change the application or its plugins may act on.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The leader this worker knows of changed (including to none).
    LeaderChanged {
        /// The namespace.
        namespace: Namespace,
        /// The leader before.
        previous: Option<WorkerId>,
        /// The leader now.
        current: Option<WorkerId>,
        /// The lease's epoch now.
        epoch: u64,
    },
    /// This worker now leads.
    BecameLeader {
        /// The fencing token of this term.
        epoch: u64,
        /// Leader-only work must stop by this instant unless renewed.
        deadline: Instant,
    },
    /// This worker no longer leads.
    StoppedLeading {
        /// The term's epoch.
        epoch: u64,
        /// Why.
        reason: StepDownReason,
    },
    /// The leader saw a new worker.
    WorkerJoined {
        /// The worker.
        worker_id: WorkerId,
    },
    /// The leader timed out a worker whose heartbeat stopped changing.
    WorkerTimedOut {
        /// The worker.
        worker_id: WorkerId,
    },
    /// The leader saw a worker's heartbeat object disappear (a graceful stop).
    WorkerLeft {
        /// The worker.
        worker_id: WorkerId,
    },
    /// Another process uses this worker's id. Never adopted; fix the
    /// configuration.
    DuplicateWorkerId {
        /// The id both use.
        worker_id: WorkerId,
        /// The other process's incarnation.
        other: Incarnation,
    },
    /// A record could not be used (corrupt, or of a newer format); the
    /// machine carries on as the error's text says.
    RecordProblem {
        /// What is wrong with which key.
        error: RecordError,
    },
    /// The namespace's lease belongs to another implementation; the machine
    /// has stopped and will write nothing.
    Refused {
        /// What was found.
        error: RecordError,
    },
    /// The machine has finished a graceful stop.
    Stopped,
}
