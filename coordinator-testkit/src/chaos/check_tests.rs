//! The checker on hand-made logs: a clean run passes, and each check fires
//! on the one thing it looks for.

use super::*;
use crate::chaos::events::{Action, Life, Takeover};
use crate::timeline::MarkKind;

const S: u64 = 1_000_000_000;

fn line(worker: &str, at_s: f64, event: WorkerEvent) -> Line {
    Line {
        worker: worker.into(),
        mono_ns: (at_s * S as f64) as u64,
        event,
    }
}

fn leading(worker: &str, at_s: f64, epoch: u64, deadline_s: f64) -> Line {
    line(
        worker,
        at_s,
        WorkerEvent::Leading {
            epoch,
            deadline_ns: (deadline_s * S as f64) as u64,
        },
    )
}

fn write(worker: &str, epoch: u64, start_s: f64, end_s: f64, deadline_s: f64, ok: bool) -> Line {
    line(
        worker,
        end_s,
        WorkerEvent::Register(RegisterOp {
            op: RegisterKind::Write,
            epoch,
            seq: 1,
            start_ns: (start_s * S as f64) as u64,
            end_ns: (end_s * S as f64) as u64,
            deadline_ns: (deadline_s * S as f64) as u64,
            seen_epoch: Some(epoch),
            outcome: if ok { Outcome::Ok } else { Outcome::Fenced },
        }),
    )
}

fn life(worker: &str, life: u32, end_s: Option<f64>, lines: Vec<Line>) -> Life {
    Life {
        worker: worker.into(),
        life,
        start_ns: 0,
        end_ns: end_s.map(|s| (s * S as f64) as u64),
        exit: None,
        lines,
    }
}

/// w0 leads epoch 1 from 1 s, renews to 12 s, is killed at 10 s; w1 takes
/// over at 13 s under epoch 2 and leads to the end (30 s).
fn clean() -> RunLog {
    RunLog {
        title: "hand-made".into(),
        workers: vec!["w0".into(), "w1".into()],
        start_ns: 0,
        end_ns: 30 * S,
        lives: vec![
            life(
                "w0",
                0,
                Some(10.0),
                vec![
                    leading("w0", 1.0, 1, 3.0),
                    write("w0", 1, 1.5, 1.6, 3.0, true),
                    leading("w0", 2.0, 1, 12.0),
                    write("w0", 1, 9.0, 9.1, 12.0, true),
                ],
            ),
            life(
                "w1",
                0,
                None,
                vec![
                    leading("w1", 13.0, 2, 15.0),
                    write("w1", 2, 13.5, 13.6, 15.0, true),
                    leading("w1", 14.0, 2, 40.0),
                ],
            ),
        ],
        actions: vec![Action {
            at_ns: 10 * S,
            until_ns: None,
            worker: Some("w0".into()),
            kind: MarkKind::Nemesis,
            label: "SIGKILL w0".into(),
            takeover: Some(Takeover {
                from_ns: 10 * S,
                bound_ns: 5 * S,
                bound: "liveness".into(),
            }),
        }],
        queue: None,
    }
}

fn kinds(log: &RunLog) -> Vec<ViolationKind> {
    check(log).violations.iter().map(|v| v.kind).collect()
}

#[test]
fn a_clean_run_passes_and_is_measured() {
    let log = clean();
    let checked = check(&log);
    assert!(checked.violations.is_empty(), "{:?}", checked.violations);
    assert_eq!(checked.beliefs.len(), 2);
    // w0's belief ends at its kill (10 s), before its deadline (12 s).
    assert_eq!(checked.beliefs[0].end_ns, 10 * S);
    assert_eq!(checked.register_writes_ok, 3);
    assert_eq!(checked.takeovers.len(), 1);
    assert_eq!(checked.takeovers[0].seconds, Some(3.0));
    let timeline = timeline(&log, &checked);
    assert_eq!(timeline.lanes.len(), 2);
    assert_eq!(timeline.lanes[0].terms.len(), 1);
    assert_eq!(timeline.lanes[0].down.len(), 1, "w0 is down after its kill");
    assert_eq!(timeline.marks.len(), 1);
}

#[test]
fn a_belief_ends_at_its_deadline_when_the_process_is_frozen() {
    let mut log = clean();
    // w0 is not killed but frozen: no more lines; its belief ends at 12 s.
    log.lives[0].end_ns = None;
    log.lives[1].lines[0].mono_ns = 12 * S;
    let checked = check(&log);
    assert_eq!(checked.beliefs[0].end_ns, 12 * S);
    assert!(checked.violations.is_empty(), "{:?}", checked.violations);
}

#[test]
fn overlapping_beliefs_are_caught() {
    let mut log = clean();
    // w1 starts believing at 11 s, before w0's deadline of 12 s, and w0
    // is not killed.
    log.lives[0].end_ns = None;
    log.lives[1].lines[0].mono_ns = 11 * S;
    let checked = check(&log);
    let v = &checked.violations[0];
    assert_eq!(v.kind, ViolationKind::OverlappingBeliefs);
    assert_eq!((v.start_ns, v.end_ns), (11 * S, 12 * S));
    assert!(
        v.what.contains("epoch 1") && v.what.contains("epoch 2"),
        "{}",
        v.what
    );
}

#[test]
fn an_epoch_issued_twice_is_caught() {
    let mut log = clean();
    log.lives[1].lines[0] = leading("w1", 13.0, 1, 15.0);
    log.lives[1].lines[2] = leading("w1", 14.0, 1, 40.0);
    log.lives[1].lines[1] = line("w1", 13.5, WorkerEvent::Ready);
    assert_eq!(kinds(&log), [ViolationKind::EpochIssuedTwice]);
}

#[test]
fn an_epoch_going_back_is_caught() {
    let mut log = clean();
    log.lives[0].lines = vec![leading("w0", 1.0, 5, 12.0)];
    log.lives[1].lines = vec![leading("w1", 13.0, 4, 40.0)];
    assert_eq!(kinds(&log), [ViolationKind::EpochWentBack]);
}

#[test]
fn a_stale_write_accepted_is_caught() {
    let mut log = clean();
    // w0's write under epoch 1 starts at 14 s, after w1's write under
    // epoch 2 completed (13.6 s), and is accepted; its deadline (20 s)
    // would allow it, so only the fencing check fires.
    log.lives[0].end_ns = None;
    log.lives[0].lines = vec![
        leading("w0", 1.0, 1, 3.0),
        write("w0", 1, 1.5, 1.6, 3.0, true),
        line("w0", 2.5, WorkerEvent::NotLeading { epoch: 1 }),
    ];
    log.lives[0]
        .lines
        .push(write("w0", 1, 14.0, 14.1, 20.0, true));
    let found = kinds(&log);
    assert_eq!(found, [ViolationKind::StaleWriteAccepted]);
    // Refused (fenced), the same write is fine.
    log.lives[0].lines[3] = write("w0", 1, 14.0, 14.1, 20.0, false);
    assert!(kinds(&log).is_empty());
}

#[test]
fn a_write_over_a_newer_epoch_is_caught() {
    let mut log = clean();
    let mut op = write("w1", 2, 20.0, 20.1, 40.0, true);
    if let WorkerEvent::Register(op) = &mut op.event {
        op.seen_epoch = Some(3);
    }
    log.lives[1].lines.push(op);
    assert_eq!(kinds(&log), [ViolationKind::StaleWriteAccepted]);
}

#[test]
fn an_effect_after_the_deadline_is_caught() {
    let mut log = clean();
    // A write w0 starts at 11 s under a context whose deadline was 10.5 s:
    // refused by the store (fenced), it is still an effect sent too late.
    log.lives[0].end_ns = None;
    log.lives[0].lines = vec![
        leading("w0", 1.0, 1, 10.5),
        write("w0", 1, 11.0, 11.1, 10.5, false),
    ];
    assert_eq!(kinds(&log), [ViolationKind::EffectAfterDeadline]);
}

#[test]
fn an_effect_after_the_term_ended_is_caught() {
    let mut log = clean();
    log.lives[0]
        .lines
        .insert(2, line("w0", 5.0, WorkerEvent::TermEnded { epoch: 1 }));
    // The write at 9 s (deadline 12 s) now follows the term's end.
    let checked = check(&log);
    assert_eq!(checked.violations.len(), 1);
    assert_eq!(
        checked.violations[0].kind,
        ViolationKind::EffectAfterDeadline
    );
    assert!(checked.violations[0].what.contains("term ended"));
}

#[test]
fn a_slow_takeover_is_caught_and_one_past_the_end_is_not_judged() {
    let mut log = clean();
    log.actions[0].takeover = Some(Takeover {
        from_ns: 10 * S,
        bound_ns: 2 * S,
        bound: "liveness".into(),
    });
    let checked = check(&log);
    assert_eq!(checked.violations.len(), 1);
    assert_eq!(checked.violations[0].kind, ViolationKind::SlowTakeover);
    assert!(
        checked.violations[0].what.contains("3.0 s after"),
        "{}",
        checked.violations[0].what
    );
    // No leader after the kill at all, but the bound ends after the run.
    log.lives[1].lines.clear();
    log.actions[0].takeover = Some(Takeover {
        from_ns: 10 * S,
        bound_ns: 25 * S,
        bound: "liveness".into(),
    });
    let checked = check(&log);
    assert!(checked.violations.is_empty());
    assert_eq!(checked.takeovers_unchecked, 1);
}

#[test]
fn a_leader_that_kept_leading_needs_no_takeover() {
    let mut log = clean();
    // An action against a follower: w1 leads from 1 s to the end.
    log.lives = vec![life("w1", 0, None, vec![leading("w1", 1.0, 1, 40.0)])];
    let checked = check(&log);
    assert!(checked.violations.is_empty());
    assert_eq!(checked.takeovers[0].seconds, None);
}

#[test]
fn a_process_that_exits_on_its_own_after_ready_is_caught_and_one_before_is_counted() {
    let mut log = clean();
    // A third process whose store probe failed: it never printed `ready`.
    let mut failed_start = life("w2", 0, Some(4.0), Vec::new());
    failed_start.exit = Some("exit status: 1".into());
    log.lives.push(failed_start);
    let checked = check(&log);
    assert!(checked.violations.is_empty(), "{:?}", checked.violations);
    assert_eq!(checked.start_failures, 1);
    // Its next process was ready, then exited on its own: a crash.
    let mut crashed = life(
        "w2",
        1,
        Some(20.0),
        vec![line("w2", 6.0, WorkerEvent::Ready)],
    );
    crashed.exit = Some("exit status: 1".into());
    log.lives.push(crashed);
    assert_eq!(kinds(&log), [ViolationKind::WorkerExited]);
    // Ended by a signal of the run (no exit recorded): nothing to report.
    if let Some(last) = log.lives.last_mut() {
        last.exit = None;
    }
    assert!(kinds(&log).is_empty());
}

#[test]
fn a_graceful_stop_ends_the_belief_at_the_terms_end() {
    let mut log = clean();
    // w0 is stopped gracefully at 10 s: its loop prints `stopping`, the
    // term ends, the lease is released, and w1 leads 10 ms later, before
    // w0's process has exited (at 10.05 s).
    log.lives[0]
        .lines
        .push(line("w0", 9.99, WorkerEvent::Stopping));
    log.lives[0]
        .lines
        .push(line("w0", 10.0, WorkerEvent::TermEnded { epoch: 1 }));
    log.lives[0].end_ns = Some(10 * S + 50_000_000);
    log.lives[1].lines[0] = leading("w1", 10.01, 2, 15.0);
    let checked = check(&log);
    assert_eq!(checked.beliefs[0].end_ns, 10 * S);
    assert!(checked.violations.is_empty(), "{:?}", checked.violations);
    // Without the term's end the belief lasts to the process's end: an
    // overlap.
    log.lives[0].lines.pop();
    assert_eq!(kinds(&log), [ViolationKind::OverlappingBeliefs]);
}
