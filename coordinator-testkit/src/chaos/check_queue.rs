//! The checker's queue part: no message held by two live consumers at
//! once, none lost, every dead letter accounted for.
//!
//! * **Held twice**: a consumer holds a message from its claim's answer to
//!   the earliest of the claim's deadline, the answer to its completion or
//!   failure, and its process's end; two processes holding one message id
//!   at one instant is a violation.
//! * **Lost**: a message enqueued without error is accounted for if a
//!   completion of it was accepted (or answered with an error: it may have
//!   landed), if the auditor drained it (or its completion by the auditor
//!   answered an error), or if it is a dead letter. One
//!   that is none of these is lost — judged only when the audit emptied
//!   the queue (otherwise it is counted as unresolved). A process that was
//!   killed or stopped may have completed the message it held and died
//!   before printing it: consumers print `taken` when a claim comes back,
//!   before the handler, so only a message a process that ended had taken
//!   and not finished is explained (as unresolved), however long it had
//!   waited in the queue.
//! * **Dead letters**: each must carry a payload someone enqueued, appear
//!   once, and not belong to a message whose completion was accepted. A
//!   producer is sequential and prints each enqueue after its answer, so
//!   a process that was killed may have sent one more than it printed: the
//!   payload after its last one (`worker-tag-n+1`, or `worker-…-0` if it
//!   printed none) counts as enqueued.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::check::{Violation, ViolationKind, TOLERANCE_NS};
use super::events::{Claim, Finish, Outcome, RunLog, WorkerEvent};

/// What the queue part counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Messages enqueued without error.
    pub enqueued: u64,
    /// Enqueues answered with an error.
    pub enqueue_errors: u64,
    /// Claims, by how they ended: completed, failed, expired, lost, error.
    pub claims: [u64; 5],
    /// Messages the auditor drained.
    pub drained: u64,
    /// Dead letters.
    pub dead: u64,
    /// Messages neither accounted for nor judged: the audit did not empty
    /// the queue, or a process that ended soon after its enqueue may have
    /// completed it without printing it.
    pub unresolved: u64,
}

/// A claim held by a process: (worker, life, from, to, the claim).
type Hold<'a> = (&'a str, u32, u64, u64, &'a Claim);

/// Checks the queue's events of `log`; `None` if the run had no queue.
pub fn check(log: &RunLog, out: &mut Vec<Violation>) -> Option<QueueStats> {
    let audit = log.queue.as_ref()?;
    let mut stats = QueueStats::default();
    // payload → when its enqueue was printed
    let mut enqueued: BTreeMap<&str, u64> = BTreeMap::new();
    let mut tried: BTreeSet<&str> = BTreeSet::new();
    let mut holds: BTreeMap<&str, Vec<Hold<'_>>> = BTreeMap::new();
    let mut completed: BTreeMap<&str, u32> = BTreeMap::new();
    let mut maybe_done: BTreeSet<&str> = BTreeSet::new();
    // Payloads a process that ended had taken and not finished.
    let mut held_at_end: BTreeSet<&str> = BTreeSet::new();
    for life in &log.lives {
        let end_of_life = life.end_ns.unwrap_or(log.end_ns);
        let mut unfinished: BTreeMap<(&str, u32), &str> = BTreeMap::new();
        for line in &life.lines {
            match &line.event {
                WorkerEvent::Taken {
                    id,
                    payload,
                    attempt,
                } => {
                    unfinished.insert((id.as_str(), *attempt), payload.as_str());
                }
                WorkerEvent::Enqueued { payload, outcome } => {
                    tried.insert(payload);
                    if *outcome == Outcome::Ok {
                        enqueued.insert(payload, line.mono_ns);
                        stats.enqueued += 1;
                    } else {
                        stats.enqueue_errors += 1;
                    }
                }
                WorkerEvent::Claimed(claim) => {
                    unfinished.remove(&(claim.id.as_str(), claim.attempt));
                    let slot = match claim.finish {
                        Finish::Completed => 0,
                        Finish::Failed => 1,
                        Finish::Expired => 2,
                        Finish::Lost => 3,
                        Finish::Error => 4,
                    };
                    stats.claims[slot] += 1;
                    match claim.finish {
                        Finish::Completed => {
                            *completed.entry(&claim.payload).or_default() += 1;
                            maybe_done.insert(&claim.payload);
                        }
                        Finish::Error => {
                            maybe_done.insert(&claim.payload);
                        }
                        _ => {}
                    }
                    let to = claim.end_ns.min(claim.deadline_ns).min(end_of_life);
                    holds.entry(&claim.id).or_default().push((
                        &life.worker,
                        life.life,
                        claim.got_ns,
                        to,
                        claim,
                    ));
                }
                _ => {}
            }
        }
        if life.end_ns.is_some() {
            held_at_end.extend(unfinished.into_values());
        }
    }
    for (id, mut list) in holds {
        list.sort_by_key(|h| h.2);
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                if (a.0, a.1) == (b.0, b.1) || b.2 + TOLERANCE_NS >= a.3 {
                    continue;
                }
                out.push(Violation {
                    kind: ViolationKind::MessageHeldTwice,
                    start_ns: b.2,
                    end_ns: a.3.min(b.3),
                    workers: vec![a.0.to_owned(), b.0.to_owned()],
                    what: format!(
                        "message {id} ({}) held by {} (attempt {}) and {} (attempt {}) at once",
                        a.4.payload, a.0, a.4.attempt, b.0, b.4.attempt
                    ),
                });
            }
        }
    }
    for (payload, n) in &completed {
        if *n > 1 {
            out.push(violation(
                ViolationKind::MessageHeldTwice,
                log,
                format!("message {payload} completed {n} times"),
            ));
        }
    }
    // A completion by the auditor that answered an error may have landed,
    // like a consumer's.
    let drained: BTreeSet<&str> = audit
        .drained
        .iter()
        .map(String::as_str)
        .chain(audit.unsure.iter().map(|(payload, _)| payload.as_str()))
        .collect();
    stats.drained = drained.len() as u64;
    stats.dead = audit.dead.len() as u64;
    let mut dead: BTreeSet<&str> = BTreeSet::new();
    let in_flight = in_flight_at_end(log);
    for (id, payload) in &audit.dead {
        if !dead.insert(payload) {
            out.push(violation(
                ViolationKind::DeadLetterUnaccounted,
                log,
                format!("dead letter {payload} (message {id}) appears twice"),
            ));
        }
        if !tried.contains(payload.as_str()) && !in_flight.accepts(payload) {
            out.push(violation(
                ViolationKind::DeadLetterUnaccounted,
                log,
                format!("dead letter {payload} (message {id}) was never enqueued"),
            ));
        }
        if completed.contains_key(payload.as_str()) {
            out.push(violation(
                ViolationKind::DeadLetterUnaccounted,
                log,
                format!("dead letter {payload} (message {id}) had also been completed"),
            ));
        }
    }
    let mut unaccounted: Vec<(u64, &str)> = enqueued
        .into_iter()
        .filter(|(p, _)| !maybe_done.contains(p) && !drained.contains(p) && !dead.contains(p))
        .map(|(p, at)| (at, p))
        .collect();
    unaccounted.sort_unstable();
    for (_, payload) in unaccounted {
        if held_at_end.contains(payload) || audit.left > 0 {
            stats.unresolved += 1;
        } else {
            out.push(violation(
                ViolationKind::MessageLost,
                log,
                format!(
                    "message {payload} was enqueued and never completed, drained or dead-lettered"
                ),
            ));
        }
    }
    Some(stats)
}

/// What producers whose process ended may have sent unprinted.
struct InFlight {
    /// `worker-tag-n+1` after each ended life's last printed payload.
    next: BTreeSet<String>,
    /// Workers with an ended life that printed no enqueue.
    silent: BTreeSet<String>,
}

impl InFlight {
    fn accepts(&self, payload: &str) -> bool {
        self.next.contains(payload)
            || (payload.ends_with("-0")
                && payload
                    .split_once('-')
                    .is_some_and(|(worker, _)| self.silent.contains(worker)))
    }
}

fn in_flight_at_end(log: &RunLog) -> InFlight {
    let mut next = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for life in log.lives.iter().filter(|l| l.end_ns.is_some()) {
        let last = life.lines.iter().rev().find_map(|l| match &l.event {
            WorkerEvent::Enqueued { payload, .. } => Some(payload),
            _ => None,
        });
        match last.and_then(|p| p.rsplit_once('-')) {
            Some((prefix, n)) => {
                if let Ok(n) = n.parse::<u64>() {
                    next.insert(format!("{prefix}-{}", n + 1));
                }
            }
            None => {
                silent.insert(life.worker.clone());
            }
        }
    }
    InFlight { next, silent }
}

fn violation(kind: ViolationKind, log: &RunLog, what: String) -> Violation {
    Violation {
        kind,
        start_ns: log.end_ns,
        end_ns: log.end_ns,
        workers: Vec::new(),
        what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::events::{Life, Line, QueueAudit};

    const S: u64 = 1_000_000_000;

    fn claim(
        id: &str,
        payload: &str,
        got_s: u64,
        end_s: u64,
        deadline_s: u64,
        finish: Finish,
    ) -> Line {
        Line {
            worker: String::new(),
            mono_ns: end_s * S,
            event: WorkerEvent::Claimed(Claim {
                id: id.into(),
                payload: payload.into(),
                attempt: 1,
                got_ns: got_s * S,
                deadline_ns: deadline_s * S,
                end_ns: end_s * S,
                finish,
            }),
        }
    }

    fn enqueued(payload: &str, outcome: Outcome) -> Line {
        Line {
            worker: String::new(),
            mono_ns: 0,
            event: WorkerEvent::Enqueued {
                payload: payload.into(),
                outcome,
            },
        }
    }

    fn life(worker: &str, end_s: Option<u64>, lines: Vec<Line>) -> Life {
        Life {
            worker: worker.into(),
            life: 0,
            start_ns: 0,
            end_ns: end_s.map(|s| s * S),
            exit: None,
            lines,
        }
    }

    /// w0 enqueues a, b, c and d; w0 completes a; w1 fails b (dead
    /// letter); w1's claim of c expires at 5 s and w0 takes it at 6 s and
    /// completes it; d is drained by the auditor.
    fn clean() -> RunLog {
        RunLog {
            end_ns: 30 * S,
            lives: vec![
                life(
                    "w0",
                    None,
                    vec![
                        enqueued("a", Outcome::Ok),
                        enqueued("b", Outcome::Ok),
                        enqueued("c", Outcome::Ok),
                        enqueued("d", Outcome::Ok),
                        claim("1", "a", 1, 2, 4, Finish::Completed),
                        claim("3", "c", 6, 7, 9, Finish::Completed),
                    ],
                ),
                life(
                    "w1",
                    None,
                    vec![
                        claim("2", "b", 1, 2, 4, Finish::Failed),
                        claim("3", "c", 2, 8, 5, Finish::Lost),
                    ],
                ),
            ],
            queue: Some(QueueAudit {
                drained: vec!["d".into()],
                unsure: Vec::new(),
                dead: vec![("2".into(), "b".into())],
                left: 0,
            }),
            ..RunLog::default()
        }
    }

    fn kinds(log: &RunLog) -> Vec<ViolationKind> {
        let mut out = Vec::new();
        check(log, &mut out);
        out.iter().map(|v| v.kind).collect()
    }

    #[test]
    fn a_clean_queue_passes() {
        let mut out = Vec::new();
        let stats = check(&clean(), &mut out).unwrap();
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(stats.enqueued, 4);
        assert_eq!(stats.claims, [2, 1, 0, 1, 0]);
        assert_eq!((stats.drained, stats.dead, stats.unresolved), (1, 1, 0));
        assert!(check(&RunLog::default(), &mut out).is_none());
    }

    #[test]
    fn two_live_holders_are_caught() {
        let mut log = clean();
        // w0 takes c at 4 s, before w1's claim's deadline (5 s).
        log.lives[0].lines[5] = claim("3", "c", 4, 7, 9, Finish::Completed);
        assert_eq!(kinds(&log), [ViolationKind::MessageHeldTwice]);
        // Unless w1's process had died at 3 s.
        log.lives[1].end_ns = Some(3 * S);
        assert!(kinds(&log).is_empty());
    }

    #[test]
    fn a_double_completion_is_caught() {
        let mut log = clean();
        log.lives[1].lines[1] = claim("3", "c", 2, 4, 5, Finish::Completed);
        assert_eq!(kinds(&log), [ViolationKind::MessageHeldTwice]);
    }

    #[test]
    fn a_lost_message_is_caught_once_the_queue_was_emptied() {
        let mut log = clean();
        if let Some(audit) = &mut log.queue {
            audit.drained.clear();
        }
        assert_eq!(kinds(&log), [ViolationKind::MessageLost]);
        // The auditor's completion answered an error: it may have landed.
        if let Some(audit) = &mut log.queue {
            audit.unsure.push(("d".into(), "outcome unknown".into()));
        }
        assert!(kinds(&log).is_empty());
        if let Some(audit) = &mut log.queue {
            audit.unsure.clear();
            audit.left = 1;
        }
        let mut out = Vec::new();
        let stats = check(&log, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(stats.unresolved, 1);
    }

    #[test]
    fn dead_letters_are_accounted_for() {
        let mut log = clean();
        if let Some(audit) = &mut log.queue {
            audit.dead.push(("9".into(), "never".into()));
            audit.dead.push(("2".into(), "b".into()));
            audit.dead.push(("1".into(), "a".into()));
        }
        let found = kinds(&log);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found
            .iter()
            .all(|k| *k == ViolationKind::DeadLetterUnaccounted));
    }

    fn taken(id: &str, payload: &str, at_s: u64) -> Line {
        Line {
            worker: String::new(),
            mono_ns: at_s * S,
            event: WorkerEvent::Taken {
                id: id.into(),
                payload: payload.into(),
                attempt: 1,
            },
        }
    }

    #[test]
    fn with_taken_lines_only_a_message_a_dead_consumer_held_is_explained() {
        let mut log = clean();
        if let Some(audit) = &mut log.queue {
            audit.drained.clear();
        }
        // Consumers print `taken`: w1 took something else and finished it,
        // then ended shortly after d's enqueue. It did not hold d, so d is
        // lost, however close its end.
        log.lives[1].lines.insert(0, taken("2", "b", 1));
        log.lives[1].end_ns = Some(5 * S);
        assert_eq!(kinds(&log), [ViolationKind::MessageLost]);
        // w1 took d and died before printing how it ended: explained,
        // however long d had waited in the queue.
        log.lives[1].lines.push(taken("4", "d", 9));
        log.lives[1].end_ns = Some(300 * S);
        let mut out = Vec::new();
        let stats = check(&log, &mut out).unwrap();
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(stats.unresolved, 1);
        // A process still running at the end explains nothing.
        log.lives[1].end_ns = None;
        assert_eq!(kinds(&log), [ViolationKind::MessageLost]);
    }

    #[test]
    fn a_killed_producer_may_have_sent_one_more_than_it_printed() {
        let mut log = clean();
        log.lives[0].lines.push(enqueued("w0-ab-7", Outcome::Ok));
        if let Some(audit) = &mut log.queue {
            audit.drained.push("w0-ab-7".into());
            audit.dead.push(("8".into(), "w0-ab-8".into()));
        }
        // Still running at the end: w0-ab-8 was never sent.
        assert_eq!(kinds(&log), [ViolationKind::DeadLetterUnaccounted]);
        // Killed: it may have been in flight.
        log.lives[0].end_ns = Some(20 * S);
        assert!(kinds(&log).is_empty());
        // But not two past the last.
        if let Some(audit) = &mut log.queue {
            audit.dead.push(("9".into(), "w0-ab-9".into()));
        }
        assert_eq!(kinds(&log), [ViolationKind::DeadLetterUnaccounted]);
    }
}
