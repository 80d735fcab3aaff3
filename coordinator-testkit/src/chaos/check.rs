//! The checker: a pure function from a run's logs ([`RunLog`]) to the
//! invariants it broke, and the [`Timeline`] to draw.
//!
//! **Beliefs.** A worker process believes it leads under epoch `e` from
//! the first `leading` line of `e` to the earliest of: its `not_leading`
//! or `term_ended` line, the latest deadline it printed for `e` (in a `leading` line or a
//! register operation of `e`: past it the runtime no longer leads, whether
//! or not its loop has noticed, and a paused process never notices), and
//! the end of the process. Lines are printed a little after the fact, so a
//! belief starts late (a true overlap may be seen shorter) and the deadline
//! of a renewal not yet printed when a process is frozen is missed: both
//! can hide an overlap, neither can invent one.
//!
//! **Checks.**
//! * two processes believe at one instant (with their epochs);
//! * an epoch believed by two processes, or a belief under an epoch not
//!   above every earlier one;
//! * a register write accepted under an epoch after a write under a newer
//!   epoch had completed (or over a register holding a newer epoch);
//! * a register write started after its context's deadline, or after the
//!   plugin was told its term ended;
//! * no leader within an action's take-over bound;
//! * a worker process that exited on its own after it was ready (a crash,
//!   or a loop that gave up); one that exited before (its store probe
//!   failed under the faults, as a real process's would) is only counted,
//!   and the supervisor restarts both;
//! * the queue's checks ([`check_queue`](super::check_queue)).
//!
//! Conversions between the runtime's millisecond clock and nanoseconds
//! leave up to [`TOLERANCE_NS`] of error; comparisons allow it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::events::{Line, Outcome, RegisterKind, RegisterOp, RunLog, WorkerEvent};
use crate::timeline::{Down, Lane, Mark, Term, Timeline, TimelineViolation};

/// Slack for the runtime's whole milliseconds converted to nanoseconds.
pub const TOLERANCE_NS: u64 = 1_000_000;

/// What kind of invariant broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// Two processes believed they led at one instant.
    OverlappingBeliefs,
    /// One epoch was believed by two processes.
    EpochIssuedTwice,
    /// A belief's epoch was not above every earlier belief's.
    EpochWentBack,
    /// A register write was accepted under an epoch older than one
    /// already used.
    StaleWriteAccepted,
    /// A register write started after its context's deadline or after the
    /// plugin's term ended.
    EffectAfterDeadline,
    /// No leader within a take-over's bound.
    SlowTakeover,
    /// Two live consumers held one message at once, or one message was
    /// completed twice.
    MessageHeldTwice,
    /// A message enqueued was never completed, drained or dead-lettered.
    MessageLost,
    /// A dead letter that was never enqueued, appears twice, or was also
    /// completed.
    DeadLetterUnaccounted,
    /// A worker process exited on its own after it was ready.
    WorkerExited,
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The kind.
    pub kind: ViolationKind,
    /// Where it starts.
    pub start_ns: u64,
    /// Where it ends.
    pub end_ns: u64,
    /// The workers involved.
    pub workers: Vec<String>,
    /// A sentence with the epochs and times.
    pub what: String,
}

/// One belief interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Belief {
    /// The worker id.
    pub worker: String,
    /// The process (life) of that worker.
    pub life: u32,
    /// The epoch.
    pub epoch: u64,
    /// From.
    pub start_ns: u64,
    /// To.
    pub end_ns: u64,
}

/// A take-over the checker measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TakeoverTime {
    /// The action's label.
    pub after: String,
    /// Which bound.
    pub bound: String,
    /// The bound, seconds.
    pub bound_seconds: f64,
    /// From the bound's origin to the first new belief, seconds (`None`:
    /// the leader kept leading throughout).
    pub seconds: Option<f64>,
}

/// The checker's verdict.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Checked {
    /// Every broken invariant.
    pub violations: Vec<Violation>,
    /// Every belief interval, by start.
    pub beliefs: Vec<Belief>,
    /// Register writes accepted.
    pub register_writes_ok: u64,
    /// Register writes refused because a newer epoch held it.
    pub register_writes_fenced: u64,
    /// Register writes that failed or conflicted otherwise.
    pub register_writes_failed: u64,
    /// The take-overs held to a bound.
    pub takeovers: Vec<TakeoverTime>,
    /// Take-overs whose bound ran past the end of the run (not checked).
    pub takeovers_unchecked: u64,
    /// The queue's counts (runs with the queue only).
    pub queue: Option<super::check_queue::QueueStats>,
    /// Worker processes that exited on their own before they were ready.
    pub start_failures: u64,
}

/// Checks a run.
pub fn check(log: &RunLog) -> Checked {
    let beliefs = beliefs(log);
    let mut checked = Checked::default();
    overlaps(&beliefs, &mut checked.violations);
    epochs(&beliefs, &mut checked.violations);
    register(log, &mut checked);
    takeovers(log, &beliefs, &mut checked);
    exits(log, &mut checked);
    checked.queue = super::check_queue::check(log, &mut checked.violations);
    checked.violations.sort_by_key(|v| (v.start_ns, v.kind));
    checked.beliefs = beliefs;
    checked
}

/// Processes that exited on their own: a violation once ready, counted
/// before.
fn exits(log: &RunLog, checked: &mut Checked) {
    for life in &log.lives {
        let Some(status) = &life.exit else { continue };
        let ready = life
            .lines
            .iter()
            .any(|l| matches!(l.event, WorkerEvent::Ready));
        if !ready {
            checked.start_failures += 1;
            continue;
        }
        let at = life.end_ns.unwrap_or(log.end_ns);
        checked.violations.push(Violation {
            kind: ViolationKind::WorkerExited,
            start_ns: at,
            end_ns: at,
            workers: vec![life.worker.clone()],
            what: format!(
                "{} (process {}) exited on its own after it was ready: {status}",
                life.worker, life.life
            ),
        });
    }
}

/// The belief intervals of every process, sorted by start.
pub fn beliefs(log: &RunLog) -> Vec<Belief> {
    let mut all = Vec::new();
    for life in &log.lives {
        let end_of_life = life.end_ns.unwrap_or(log.end_ns);
        // (epoch, start, latest deadline)
        let mut open: Option<(u64, u64, u64)> = None;
        let close = |open: &mut Option<(u64, u64, u64)>, at: u64, all: &mut Vec<Belief>| {
            if let Some((epoch, start, deadline)) = open.take() {
                all.push(Belief {
                    worker: life.worker.clone(),
                    life: life.life,
                    epoch,
                    start_ns: start,
                    end_ns: at.min(deadline).max(start),
                });
            }
        };
        for line in &life.lines {
            match &line.event {
                WorkerEvent::Leading { epoch, deadline_ns } => match &mut open {
                    Some((e, _, d)) if e == epoch => *d = (*d).max(*deadline_ns),
                    _ => {
                        close(&mut open, line.mono_ns, &mut all);
                        open = Some((*epoch, line.mono_ns, *deadline_ns));
                    }
                },
                // The term's end as the register plugin was told it: on a
                // graceful stop the worker's loop has already left (it
                // printed `stopping`), so no `not_leading` follows, and the
                // runtime releases the lease only after this (seed 28 of
                // the fourth long run: a successor 1 ms after the term's end
                // and 1 ms before the process's).
                WorkerEvent::NotLeading { epoch } | WorkerEvent::TermEnded { epoch }
                    if open.as_ref().is_some_and(|(e, _, _)| e == epoch) =>
                {
                    close(&mut open, line.mono_ns, &mut all);
                }
                WorkerEvent::Register(op) => {
                    if let Some((e, _, d)) = &mut open {
                        if *e == op.epoch {
                            *d = (*d).max(op.deadline_ns);
                        }
                    }
                }
                _ => {}
            }
        }
        close(&mut open, end_of_life, &mut all);
    }
    all.sort_by_key(|b| (b.start_ns, b.end_ns));
    all
}

fn overlaps(beliefs: &[Belief], out: &mut Vec<Violation>) {
    for (i, a) in beliefs.iter().enumerate() {
        for b in &beliefs[i + 1..] {
            if b.start_ns >= a.end_ns {
                break;
            }
            if (a.worker.as_str(), a.life) == (b.worker.as_str(), b.life) {
                continue;
            }
            let end = a.end_ns.min(b.end_ns);
            if end <= b.start_ns + TOLERANCE_NS {
                continue;
            }
            out.push(Violation {
                kind: ViolationKind::OverlappingBeliefs,
                start_ns: b.start_ns,
                end_ns: end,
                workers: vec![a.worker.clone(), b.worker.clone()],
                what: format!(
                    "{} (epoch {}) and {} (epoch {}) both believed they led for {:.3} s",
                    a.worker,
                    a.epoch,
                    b.worker,
                    b.epoch,
                    (end - b.start_ns) as f64 / 1e9
                ),
            });
        }
    }
}

fn epochs(beliefs: &[Belief], out: &mut Vec<Violation>) {
    let mut holders: BTreeMap<u64, &Belief> = BTreeMap::new();
    let mut highest: Option<&Belief> = None;
    for b in beliefs {
        if let Some(first) = holders.get(&b.epoch) {
            if (first.worker.as_str(), first.life) != (b.worker.as_str(), b.life) {
                out.push(Violation {
                    kind: ViolationKind::EpochIssuedTwice,
                    start_ns: b.start_ns,
                    end_ns: b.end_ns,
                    workers: vec![first.worker.clone(), b.worker.clone()],
                    what: format!(
                        "epoch {} believed by {} (life {}) and again by {} (life {})",
                        b.epoch, first.worker, first.life, b.worker, b.life
                    ),
                });
                continue;
            }
        } else {
            holders.insert(b.epoch, b);
        }
        if let Some(top) = highest {
            if b.epoch < top.epoch {
                out.push(Violation {
                    kind: ViolationKind::EpochWentBack,
                    start_ns: b.start_ns,
                    end_ns: b.end_ns,
                    workers: vec![top.worker.clone(), b.worker.clone()],
                    what: format!(
                        "{} led under epoch {} after {} had led under epoch {}",
                        b.worker, b.epoch, top.worker, top.epoch
                    ),
                });
            }
        }
        if highest.is_none_or(|top| b.epoch > top.epoch) {
            highest = Some(b);
        }
    }
}

fn register(log: &RunLog, checked: &mut Checked) {
    // (worker, op) of every write, and when each process's terms ended.
    let mut ops: Vec<(&str, &RegisterOp)> = Vec::new();
    for life in &log.lives {
        let mut ended: BTreeMap<u64, u64> = BTreeMap::new();
        for Line { mono_ns, event, .. } in &life.lines {
            match event {
                WorkerEvent::TermEnded { epoch } => {
                    ended.entry(*epoch).or_insert(*mono_ns);
                }
                WorkerEvent::Register(op) => {
                    ops.push((&life.worker, op));
                    let late_deadline = op.start_ns > op.deadline_ns + TOLERANCE_NS;
                    let after_end = ended.get(&op.epoch).filter(|&&end| op.start_ns > end);
                    if late_deadline || after_end.is_some() {
                        let why = match after_end {
                            Some(end) => format!(
                                "{:.3} s after the plugin was told its term ended",
                                (op.start_ns - end) as f64 / 1e9
                            ),
                            None => format!(
                                "{:.3} s after its context's deadline",
                                (op.start_ns - op.deadline_ns) as f64 / 1e9
                            ),
                        };
                        checked.violations.push(Violation {
                            kind: ViolationKind::EffectAfterDeadline,
                            start_ns: op.start_ns,
                            end_ns: op.end_ns,
                            workers: vec![life.worker.clone()],
                            what: format!(
                                "{} sent a register {} under epoch {} {why} ({:?})",
                                life.worker,
                                kind_name(op.op),
                                op.epoch,
                                op.outcome
                            ),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    for (_, op) in &ops {
        match op.outcome {
            Outcome::Ok => checked.register_writes_ok += 1,
            Outcome::Fenced => checked.register_writes_fenced += 1,
            Outcome::Conflict | Outcome::Error => checked.register_writes_failed += 1,
        }
    }
    let mut accepted: Vec<(&str, &RegisterOp)> = ops
        .into_iter()
        .filter(|(_, op)| op.outcome == Outcome::Ok)
        .collect();
    accepted.sort_by_key(|(_, op)| op.end_ns);
    // The newest epoch among writes completed before each instant.
    for (worker, op) in &accepted {
        let newer_done = accepted
            .iter()
            .filter(|(_, other)| other.end_ns < op.start_ns && other.epoch > op.epoch)
            .max_by_key(|(_, other)| other.epoch);
        let over_newer = op.seen_epoch.filter(|&seen| seen > op.epoch);
        if newer_done.is_none() && over_newer.is_none() {
            continue;
        }
        let what = match (newer_done, over_newer) {
            (Some((who, newer)), _) => format!(
                "{worker}'s register {} under epoch {} was accepted after {who}'s write under epoch {} had completed",
                kind_name(op.op),
                op.epoch,
                newer.epoch
            ),
            (None, Some(seen)) => format!(
                "{worker}'s register {} under epoch {} was accepted over the register holding epoch {seen}",
                kind_name(op.op),
                op.epoch
            ),
            (None, None) => continue,
        };
        let mut workers = vec![worker.to_string()];
        if let Some((who, _)) = newer_done {
            workers.push(who.to_string());
        }
        checked.violations.push(Violation {
            kind: ViolationKind::StaleWriteAccepted,
            start_ns: op.start_ns,
            end_ns: op.end_ns,
            workers,
            what,
        });
    }
}

fn kind_name(kind: RegisterKind) -> &'static str {
    match kind {
        RegisterKind::Seal => "seal",
        RegisterKind::Write => "write",
    }
}

fn takeovers(log: &RunLog, beliefs: &[Belief], checked: &mut Checked) {
    for action in &log.actions {
        let Some(takeover) = &action.takeover else {
            continue;
        };
        let by = takeover.from_ns.saturating_add(takeover.bound_ns);
        let first_new = beliefs
            .iter()
            .filter(|b| b.start_ns >= action.at_ns)
            .map(|b| b.start_ns)
            .min();
        let covering = beliefs.iter().any(|b| b.start_ns <= by && b.end_ns > by);
        let started_in_time = first_new.is_some_and(|s| s <= by);
        let seconds = first_new
            .filter(|&s| s <= by)
            .map(|s| s.saturating_sub(takeover.from_ns) as f64 / 1e9);
        if covering || started_in_time {
            // Still leading throughout counts as no take-over needed.
            let seconds = if started_in_time { seconds } else { None };
            checked.takeovers.push(TakeoverTime {
                after: action.label.clone(),
                bound: takeover.bound.clone(),
                bound_seconds: takeover.bound_ns as f64 / 1e9,
                seconds,
            });
            continue;
        }
        if by > log.end_ns {
            checked.takeovers_unchecked += 1;
            continue;
        }
        checked.violations.push(Violation {
            kind: ViolationKind::SlowTakeover,
            start_ns: takeover.from_ns,
            end_ns: by,
            workers: action.worker.iter().cloned().collect(),
            what: format!(
                "no leader within the {} bound ({:.1} s) after {}{}",
                takeover.bound,
                takeover.bound_ns as f64 / 1e9,
                action.label,
                match first_new {
                    Some(s) => format!(
                        " (the next leader came {:.1} s after it)",
                        s.saturating_sub(takeover.from_ns) as f64 / 1e9
                    ),
                    None => " (none came)".into(),
                }
            ),
        });
    }
}

/// The timeline of a checked run.
pub fn timeline(log: &RunLog, checked: &Checked) -> Timeline {
    let mut lanes: Vec<Lane> = log
        .workers
        .iter()
        .map(|w| Lane {
            worker: w.clone(),
            terms: Vec::new(),
            down: Vec::new(),
        })
        .collect();
    let lane = |lanes: &mut Vec<Lane>, worker: &str| -> usize {
        match lanes.iter().position(|l| l.worker == worker) {
            Some(i) => i,
            None => {
                lanes.push(Lane {
                    worker: worker.to_owned(),
                    terms: Vec::new(),
                    down: Vec::new(),
                });
                lanes.len() - 1
            }
        }
    };
    for b in &checked.beliefs {
        let i = lane(&mut lanes, &b.worker);
        lanes[i].terms.push(Term {
            epoch: b.epoch,
            start_ns: b.start_ns,
            end_ns: b.end_ns,
        });
    }
    // Down: from a process's end to the next life's start (or the end).
    let mut by_worker: BTreeMap<&str, Vec<(u64, Option<u64>)>> = BTreeMap::new();
    for life in &log.lives {
        by_worker
            .entry(&life.worker)
            .or_default()
            .push((life.start_ns, life.end_ns));
    }
    for (worker, mut lives) in by_worker {
        lives.sort_unstable();
        for (k, (_, end)) in lives.iter().enumerate() {
            let Some(end) = *end else { continue };
            let next = lives.get(k + 1).map_or(log.end_ns, |(s, _)| *s);
            if next > end {
                let i = lane(&mut lanes, worker);
                lanes[i].down.push(Down {
                    why: "not running".into(),
                    start_ns: end,
                    end_ns: next,
                });
            }
        }
    }
    let mut marks = Vec::new();
    for action in &log.actions {
        if let (Some(worker), Some(until)) = (&action.worker, action.until_ns) {
            let i = lane(&mut lanes, worker);
            lanes[i].down.push(Down {
                why: action.label.clone(),
                start_ns: action.at_ns,
                end_ns: until,
            });
        }
        marks.push(Mark {
            at_ns: action.at_ns,
            worker: action.worker.clone(),
            kind: action.kind,
            label: action.label.clone(),
        });
    }
    Timeline {
        title: log.title.clone(),
        start_ns: log.start_ns,
        end_ns: log.end_ns,
        lanes,
        marks,
        violations: checked
            .violations
            .iter()
            .map(|v| TimelineViolation {
                start_ns: v.start_ns,
                end_ns: v.end_ns,
                workers: v.workers.clone(),
                what: v.what.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
