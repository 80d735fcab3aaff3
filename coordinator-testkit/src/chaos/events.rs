//! What the chaos worker prints (one JSON object a line on stdout) and what
//! the run records beside it: the checker's whole input.
//!
//! Every time is nanoseconds on `CLOCK_MONOTONIC` of the one machine
//! ([`monotonic_ns`](super::monotonic_ns)); the runtime's deadlines
//! (`CLOCK_BOOTTIME` milliseconds) are converted when printed.

use serde::{Deserialize, Serialize};

use crate::timeline::MarkKind;

/// One line of a worker's stdout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The worker id.
    pub worker: String,
    /// When it was printed.
    pub mono_ns: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: WorkerEvent,
}

/// The events of a chaos worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// The worker joined the namespace.
    Ready,
    /// The worker believes it leads under `epoch` until `deadline_ns`
    /// (printed when the belief starts and each time a renewal moves the
    /// deadline).
    Leading {
        /// The term's epoch.
        epoch: u64,
        /// Its deadline as of now.
        deadline_ns: u64,
    },
    /// The worker's view no longer says it leads (the belief ended here at
    /// the latest; earlier if its last deadline passed before).
    NotLeading {
        /// The epoch of the term that ended.
        epoch: u64,
    },
    /// The register plugin was told its term ended
    /// (`on_stop_being_coordinator`: the term's token has fired).
    TermEnded {
        /// The epoch of the term.
        epoch: u64,
    },
    /// One request of the fenced register.
    Register(RegisterOp),
    /// A message enqueued (`ok`) or an enqueue that failed (`error`; it
    /// may have landed).
    Enqueued {
        /// The payload: unique per message.
        payload: String,
        /// `ok` or `error`.
        outcome: Outcome,
    },
    /// A claim came back: printed before the handler runs, so that a
    /// process that dies holding a message has said which (the checker
    /// then knows what it may have completed without printing it).
    Taken {
        /// The message id.
        id: String,
        /// Its payload.
        payload: String,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// One claim of a message, from the claim request to its end.
    Claimed(Claim),
    /// SIGTERM: stopping gracefully.
    Stopping,
    /// Stopped (the lease released).
    Stopped,
}

/// One request to the fenced register: its seal at the start of a term, or
/// a write within it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterOp {
    /// `seal` or `write`.
    pub op: RegisterKind,
    /// The epoch written.
    pub epoch: u64,
    /// The sequence number written (0 for a seal).
    pub seq: u64,
    /// When the write was decided: read before the context's validity was
    /// checked, so a valid context was valid at this instant.
    pub start_ns: u64,
    /// When its answer came.
    pub end_ns: u64,
    /// The context's deadline, read just after the check.
    pub deadline_ns: u64,
    /// The epoch the register held before, if the writer read it.
    pub seen_epoch: Option<u64>,
    /// What came of it.
    pub outcome: Outcome,
}

/// The two kinds of register write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterKind {
    /// The first write of a term: the epoch compare-and-swapped in.
    Seal,
    /// A later write of the term.
    Write,
}

/// What came of a register write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The store accepted it (or a re-read found it applied by a hidden
    /// retry: our nonce is in the object).
    Ok,
    /// A newer epoch holds the register: the writer stops for this term.
    Fenced,
    /// The version changed under us, and not to a newer epoch.
    Conflict,
    /// The request failed (it may still have been applied).
    Error,
}

/// One claim of a queue message by a consumer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The message id.
    pub id: String,
    /// Its payload.
    pub payload: String,
    /// The attempt, from 1.
    pub attempt: u32,
    /// When the claim came back: the consumer holds the message from here.
    pub got_ns: u64,
    /// The claim's deadline (it holds the message until then at most).
    pub deadline_ns: u64,
    /// When the consumer let go (its completion or failure answered).
    pub end_ns: u64,
    /// How it ended.
    pub finish: Finish,
}

/// How a claim ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// Completed: the store accepted it.
    Completed,
    /// Failed on purpose (a retry or a dead letter follows).
    Failed,
    /// The claim had expired before the handler was done: let go.
    Expired,
    /// The completion or failure was refused: the claim was recovered.
    Lost,
    /// The completion or failure failed (it may have landed).
    Error,
}

/// What the queue held after the run, read back by an auditor that led
/// the namespace alone, recovered every claim and drained the queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueAudit {
    /// Payloads the auditor claimed and completed.
    pub drained: Vec<String>,
    /// Payloads the auditor claimed whose completion answered an error
    /// (it may have landed: the auditor's store is slow by the end of a
    /// run), with the error.
    #[serde(default)]
    pub unsure: Vec<(String, String)>,
    /// Dead letters: (message id, payload).
    pub dead: Vec<(String, String)>,
    /// Messages still there when the audit gave up (pending, delayed, in
    /// flight or finishing).
    pub left: u64,
}

/// A worker process's life, as the run saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Life {
    /// The worker id.
    pub worker: String,
    /// 0 for the first process of this id, then 1, 2…
    pub life: u32,
    /// When it was launched.
    pub start_ns: u64,
    /// When it ended (killed, or exited), if it did before the run's end.
    pub end_ns: Option<u64>,
    /// How it ended if it exited on its own (not by the nemesis's or the
    /// run's end's signal): its exit status, as the supervisor saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<String>,
    /// Its lines, in order.
    pub lines: Vec<Line>,
}

/// A fault, nemesis action or operator event the run played.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// When.
    pub at_ns: u64,
    /// Until when it lasted (a pause, a partition, a network fault).
    pub until_ns: Option<u64>,
    /// The worker it concerns, or `None` for all.
    pub worker: Option<String>,
    /// Network fault, process, or operator.
    pub kind: MarkKind,
    /// A few words: "SIGKILL", "503 SlowDown 30%".
    pub label: String,
    /// The take-over this action must be followed by, if any.
    pub takeover: Option<Takeover>,
}

/// A take-over the checker holds to a bound.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Takeover {
    /// The instant the bound counts from (the kill, the fault's end).
    pub from_ns: u64,
    /// The bound.
    pub bound_ns: u64,
    /// Which bound: "liveness", "handover", "recovery".
    pub bound: String,
}

/// Everything a run recorded: the checker's input.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLog {
    /// What ran, one line.
    pub title: String,
    /// The worker ids, in lane order.
    pub workers: Vec<String>,
    /// The run's start.
    pub start_ns: u64,
    /// The run's end (every process was stopped or killed by then).
    pub end_ns: u64,
    /// Every process.
    pub lives: Vec<Life>,
    /// Every action.
    pub actions: Vec<Action>,
    /// The queue after the run (runs with the queue only).
    #[serde(default)]
    pub queue: Option<QueueAudit>,
}
