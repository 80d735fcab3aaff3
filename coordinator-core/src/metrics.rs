//! Counters the machine keeps; the runtime adds store request counts.

use serde::Serialize;

/// Monotonic counters of one machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Heartbeat cycles: a follower's lease read or a leader's renewal round.
    pub heartbeats: u64,
    /// Successful writes of this worker's own heartbeat object.
    pub membership_writes: u64,
    /// Acquisition attempts (create or compare-and-swap of a free lease).
    pub elections: u64,
    /// Acquisitions that succeeded.
    pub acquisitions: u64,
    /// Changes of the leader this worker observed.
    pub leader_changes: u64,
    /// Successful renewals.
    pub renewals: u64,
    /// Renewal attempts that failed (error, conflict or too late).
    pub renewal_failures: u64,
    /// Workers the leader saw join.
    pub worker_registrations: u64,
    /// Workers the leader timed out.
    pub worker_timeouts: u64,
    /// Store requests that failed.
    pub store_errors: u64,
    /// Surveys of a namespace whose lease and metadata were both missing
    /// (each one LIST of the election, one of the plugins' data, and a GET
    /// per other heartbeat): a new namespace's first workers, or a wipe.
    pub surveys: u64,
}
