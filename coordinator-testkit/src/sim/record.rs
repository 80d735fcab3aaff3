//! What `coordinator-sim --timeline` draws, collected during a run: each
//! machine's leader beliefs (epoch, from the instant it first believes to
//! the true instant its deadline passes, it stops, or its process dies),
//! the spans processes were down, the faults and the oracle's violations.
//! Times come in as the simulator's true time (ms) and leave as ns.
//!
//! The recorder only watches: it draws no randomness and feeds nothing
//! back, so a seed's run (and `Report::trace_hash`) is the same with or
//! without it.

use std::collections::BTreeMap;

use crate::report::ViolationKind;
use crate::timeline::{Down, Lane, Mark, MarkKind, Term, Timeline, TimelineViolation};

const NS_PER_MS: u64 = 1_000_000;
/// More than this many violations add nothing to a picture.
const MAX_VIOLATIONS: usize = 1_000;

/// A belief being followed: the lane, its epoch, since when, and the true
/// instant its deadline passes (`u64::MAX`: it does not expire by itself).
struct Open {
    lane: usize,
    epoch: u64,
    start: u64,
    until: u64,
}

struct Recorded {
    violation: TimelineViolation,
    /// A split brain: drawn over the overlap of the beliefs it names.
    overlap: bool,
}

/// Collects a run's [`Timeline`] (see the module doc).
pub(super) struct Recorder {
    lanes: Vec<Lane>,
    /// What identifies each lane's worker in the oracle's sentences: the
    /// worker id, or a canary's name.
    ids: Vec<String>,
    /// Each lane's election.
    elections: Vec<usize>,
    groups: usize,
    open: BTreeMap<usize, Open>,
    /// A slot's process killed or stopped, until its next start.
    gone: BTreeMap<usize, (&'static str, u64)>,
    canaries: BTreeMap<usize, usize>,
    marks: Vec<Mark>,
    violations: Vec<Recorded>,
    /// Request faults injected, by fault period.
    request_faults: BTreeMap<u64, u64>,
}

fn ns(ms: u64) -> u64 {
    ms.saturating_mul(NS_PER_MS)
}

impl Recorder {
    /// One lane per slot and election: `workers[slot]` is the slot's
    /// worker id, and whether it duplicates an earlier slot's.
    pub(super) fn new(workers: &[(String, bool)], groups: usize) -> Self {
        let groups = groups.max(1);
        let mut lanes = Vec::new();
        let mut ids = Vec::new();
        let mut elections = Vec::new();
        for (id, duplicate) in workers {
            for g in 0..groups {
                let mut name = id.clone();
                if *duplicate {
                    name.push_str(" (same id)");
                }
                if groups > 1 {
                    name.push_str(&format!(" plugin-{g}"));
                }
                lanes.push(Lane {
                    worker: name,
                    ..Lane::default()
                });
                ids.push(id.clone());
                elections.push(g);
            }
        }
        Recorder {
            lanes,
            ids,
            elections,
            groups,
            open: BTreeMap::new(),
            gone: BTreeMap::new(),
            canaries: BTreeMap::new(),
            marks: Vec::new(),
            violations: Vec::new(),
            request_faults: BTreeMap::new(),
        }
    }

    fn lane(&self, slot: usize, group: usize) -> usize {
        slot * self.groups + group
    }

    /// A mark on every lane of `slot` (one per election), or on the run.
    fn mark_on(&mut self, t: u64, slot: Option<usize>, kind: MarkKind, label: String) {
        let Some(slot) = slot else {
            return self.mark(t, None, kind, label);
        };
        for g in 0..self.groups {
            let who = self.lanes.get(self.lane(slot, g)).map(|l| l.worker.clone());
            if who.is_some() {
                self.mark(t, who, kind, label.clone());
            }
        }
    }

    /// Node `node` (of `slot`, in election `group`) after an input at `t`:
    /// it believes it leads under `belief = (epoch, until)`, or not.
    pub(super) fn belief(
        &mut self,
        node: usize,
        slot: usize,
        group: usize,
        t: u64,
        belief: Option<(u64, u64)>,
    ) {
        let belief = belief.filter(|&(_, until)| until > t);
        if let (Some(open), Some((epoch, until))) = (self.open.get_mut(&node), belief) {
            if open.epoch == epoch && open.until >= t {
                open.until = until;
                return;
            }
        }
        self.end_belief(node, t);
        if let Some((epoch, until)) = belief {
            let lane = self.lane(slot, group);
            self.open.insert(
                node,
                Open {
                    lane,
                    epoch,
                    start: t,
                    until,
                },
            );
        }
    }

    /// Node `node` stops believing at `t` at the latest (its process died).
    pub(super) fn end_belief(&mut self, node: usize, t: u64) {
        if let Some(open) = self.open.remove(&node) {
            self.close(open, t);
        }
    }

    fn close(&mut self, open: Open, t: u64) {
        if let Some(lane) = self.lanes.get_mut(open.lane) {
            lane.terms.push(Term {
                epoch: open.epoch,
                start_ns: ns(open.start),
                end_ns: ns(open.until.min(t).max(open.start)),
            });
        }
    }

    fn mark(&mut self, t: u64, worker: Option<String>, kind: MarkKind, label: String) {
        self.marks.push(Mark {
            at_ns: ns(t),
            worker,
            kind,
            label,
        });
    }

    /// A nemesis action on `slot`'s process.
    pub(super) fn nemesis(&mut self, t: u64, slot: usize, label: &str) {
        self.mark_on(t, Some(slot), MarkKind::Nemesis, label.to_owned());
    }

    /// A fault of the store or the network: on `slot`'s process, or on
    /// every worker.
    pub(super) fn fault(&mut self, t: u64, slot: Option<usize>, label: String) {
        self.mark_on(t, slot, MarkKind::Fault, label);
    }

    /// An operator's action: on `slot`'s process, or on the namespace.
    pub(super) fn operator(&mut self, t: u64, slot: Option<usize>, label: String) {
        self.mark_on(t, slot, MarkKind::Operator, label);
    }

    /// `slot`'s process was killed (`"killed"`) or stopped gracefully
    /// (`"stopped"`) at `t`: down until it starts again.
    pub(super) fn gone(&mut self, slot: usize, why: &'static str, t: u64) {
        self.gone.entry(slot).or_insert((why, t));
    }

    /// `slot` starts a process at `t`.
    pub(super) fn started(&mut self, slot: usize, t: u64) {
        if let Some((why, since)) = self.gone.remove(&slot) {
            self.down(slot, why, since, t);
        }
    }

    /// `slot`'s process cannot act from `from` to `to` (paused,
    /// partitioned). A pause (or partition) set while one runs replaces
    /// it: the earlier span ends here.
    pub(super) fn down(&mut self, slot: usize, why: &str, from: u64, to: u64) {
        for g in 0..self.groups {
            let lane = self.lane(slot, g);
            if let Some(lane) = self.lanes.get_mut(lane) {
                if let Some(last) = lane.down.iter_mut().rev().find(|d| d.why == why) {
                    last.end_ns = last.end_ns.min(ns(from)).max(last.start_ns);
                }
                lane.down.push(Down {
                    why: why.to_owned(),
                    start_ns: ns(from),
                    end_ns: ns(to),
                });
            }
        }
    }

    /// A per-request fault was injected at `t` (in fault period `period`).
    pub(super) fn request_fault(&mut self, period: u64) {
        *self.request_faults.entry(period).or_insert(0) += 1;
    }

    /// Canary `k` (`name`) leads election `group` under `epoch` from `t`;
    /// its belief ends where [`Recorder::canary_ends`] says.
    pub(super) fn canary_leads(&mut self, k: usize, name: &str, group: usize, epoch: u64, t: u64) {
        let lane = self.lanes.len();
        let worker = if self.groups > 1 {
            format!("{name} plugin-{group}")
        } else {
            name.to_owned()
        };
        self.lanes.push(Lane {
            worker,
            ..Lane::default()
        });
        self.ids.push(name.to_owned());
        self.elections.push(group);
        self.canaries.insert(k, lane);
        self.open.insert(
            usize::MAX - k,
            Open {
                lane,
                epoch,
                start: t,
                until: u64::MAX,
            },
        );
    }

    /// Canary `k` believes it leads until `until` (its renewals and its
    /// roll-back move this).
    pub(super) fn canary_until(&mut self, k: usize, until: u64) {
        if let Some(open) = self.open.get_mut(&(usize::MAX - k)) {
            open.until = until;
        }
    }

    /// A mark on canary `k`'s lane.
    pub(super) fn canary_mark(&mut self, k: usize, t: u64, label: String) {
        let who = self
            .canaries
            .get(&k)
            .and_then(|&l| self.lanes.get(l))
            .map(|l| l.worker.clone());
        self.mark(t, who, MarkKind::Operator, label);
    }

    /// The oracle found `kind` at `t`; the lanes it concerns are those whose
    /// worker (or canary) the sentence names, in the election it names
    /// (`group N: …`), if it names one.
    pub(super) fn violation(&mut self, t: u64, kind: ViolationKind, detail: &str) {
        if self.violations.len() >= MAX_VIOLATIONS {
            return;
        }
        let election = election_of(detail);
        let workers = (0..self.lanes.len())
            .filter(|&i| election.is_none_or(|g| self.elections[i] == g))
            .filter(|&i| names(detail, &self.ids[i]))
            .map(|i| self.lanes[i].worker.clone())
            .collect();
        self.violations.push(Recorded {
            violation: TimelineViolation {
                start_ns: ns(t),
                end_ns: ns(t),
                workers,
                what: format!("{kind:?}: {detail}"),
            },
            overlap: kind == ViolationKind::SplitBrain,
        });
    }

    /// The timeline of a run that ended at `end`; `storms` are the fault
    /// periods' storms `(period, from, to)`.
    pub(super) fn finish(
        mut self,
        title: String,
        end: u64,
        storms: &[(u64, u64, u64)],
    ) -> Timeline {
        for open in std::mem::take(&mut self.open).into_values() {
            self.close(open, end);
        }
        for (slot, (why, since)) in std::mem::take(&mut self.gone) {
            self.down(slot, why, since, end);
        }
        for lane in &mut self.lanes {
            lane.terms.sort_by_key(|t| (t.start_ns, t.end_ns));
            for d in &mut lane.down {
                d.end_ns = d.end_ns.min(ns(end));
            }
        }
        for &(period, from, to) in storms {
            let faults = self.request_faults.get(&period).copied().unwrap_or(0);
            let label = if faults > 0 {
                format!("storm: {faults} request faults")
            } else {
                "storm".to_owned()
            };
            self.mark(from, None, MarkKind::Fault, label);
            if to < end {
                self.mark(to, None, MarkKind::Fault, "calm".to_owned());
            }
        }
        self.marks.sort_by_key(|m| m.at_ns);
        let violations = self
            .violations
            .iter()
            .map(|r| {
                let mut v = r.violation.clone();
                if r.overlap {
                    v.end_ns = overlap_end(&self.lanes, &v);
                }
                v
            })
            .collect();
        Timeline {
            title,
            start_ns: 0,
            end_ns: ns(end),
            lanes: self.lanes,
            marks: self.marks,
            violations,
        }
    }
}

/// Whether the oracle's sentence names `id` (followed by `#`, a space,
/// punctuation or the end; ids of one run have one width, so `w0001`
/// never matches inside `w00012`).
fn names(detail: &str, id: &str) -> bool {
    detail.match_indices(id).any(|(i, _)| {
        let before = detail[..i].chars().next_back();
        let after = detail[i + id.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '-')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '-')
    })
}

/// The election an oracle's sentence is about: `group 1: …` is about 1.
fn election_of(detail: &str) -> Option<usize> {
    let (group, _) = detail.strip_prefix("group ")?.split_once(':')?;
    group.parse().ok()
}

/// Where a split brain ends: the earliest end of the beliefs, in the lanes
/// it names, that hold at its start.
fn overlap_end(lanes: &[Lane], v: &TimelineViolation) -> u64 {
    lanes
        .iter()
        .filter(|l| v.workers.contains(&l.worker))
        .filter_map(|l| {
            l.terms
                .iter()
                .find(|t| t.start_ns <= v.start_ns && v.start_ns <= t.end_ns)
                .map(|t| t.end_ns)
        })
        .min()
        .unwrap_or(v.start_ns)
        .max(v.start_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_id_is_named_only_as_a_whole_word() {
        assert!(names("group 0: w0001#3 (epoch 2) and w0002#4", "w0001"));
        assert!(names("w0001 left the roster late", "w0001"));
        assert!(!names("w00012#3 leads", "w0001"));
        assert!(!names("canary-10 leads", "canary-1"));
        assert!(names("while canary-1 (epoch 4, format 2)", "canary-1"));
    }

    #[test]
    fn a_violation_in_one_election_is_drawn_on_that_elections_lanes() {
        let workers = [("w0".to_owned(), false), ("w1".to_owned(), false)];
        let mut r = Recorder::new(&workers, 2);
        r.canary_leads(0, "canary-0", 1, 5, 0);
        r.violation(
            10,
            ViolationKind::SplitBrain,
            "group 1: w0#0 (epoch 4) believes it leads while canary-0 (epoch 5, format 2) does",
        );
        r.violation(
            20,
            ViolationKind::EpochViewDecreased,
            "w1#1: epoch view went back from 3 to 2",
        );
        let t = r.finish("t".into(), 100, &[]);
        assert_eq!(
            t.violations[0].workers,
            ["w0 plugin-1", "canary-0 plugin-1"]
        );
        assert_eq!(t.violations[1].workers, ["w1 plugin-0", "w1 plugin-1"]);
        assert_eq!(election_of("group 12: x"), Some(12));
        assert_eq!(election_of("w0#0: group 1"), None);
    }

    #[test]
    fn a_second_pause_replaces_the_first() {
        let mut r = Recorder::new(&[("w0".into(), false)], 1);
        r.down(0, "paused", 100, 5_000);
        r.down(0, "partitioned", 200, 9_000);
        r.down(0, "paused", 1_000, 2_000);
        let t = r.finish("t".into(), 10_000, &[]);
        let spans: Vec<(&str, u64, u64)> = t.lanes[0]
            .down
            .iter()
            .map(|d| (d.why.as_str(), d.start_ns / NS_PER_MS, d.end_ns / NS_PER_MS))
            .collect();
        assert_eq!(
            spans,
            [
                ("paused", 100, 1_000),
                ("partitioned", 200, 9_000),
                ("paused", 1_000, 2_000)
            ]
        );
    }

    #[test]
    fn a_renewed_belief_is_one_term_and_a_lapsed_one_ends_at_its_deadline() {
        let mut r = Recorder::new(&[("w0".into(), false), ("w1".into(), false)], 1);
        r.belief(0, 0, 0, 100, Some((3, 1_000)));
        r.belief(0, 0, 0, 900, Some((3, 2_000)));
        // Its deadline passed unseen; the machine learns it at 2 500.
        r.belief(0, 0, 0, 2_500, None);
        r.belief(1, 1, 0, 2_600, Some((4, 9_000)));
        let t = r.finish("t".into(), 5_000, &[]);
        assert_eq!(
            t.lanes[0].terms,
            vec![Term {
                epoch: 3,
                start_ns: ns(100),
                end_ns: ns(2_000)
            }]
        );
        assert_eq!(
            t.lanes[1].terms,
            vec![Term {
                epoch: 4,
                start_ns: ns(2_600),
                end_ns: ns(5_000)
            }]
        );
    }

    #[test]
    fn a_new_epoch_after_a_lapse_is_a_new_term() {
        let mut r = Recorder::new(&[("w0".into(), false)], 1);
        r.belief(0, 0, 0, 0, Some((1, 1_000)));
        r.belief(0, 0, 0, 1_500, Some((2, 3_000)));
        r.end_belief(0, 2_000);
        let t = r.finish("t".into(), 5_000, &[]);
        let spans: Vec<(u64, u64, u64)> = t.lanes[0]
            .terms
            .iter()
            .map(|t| (t.epoch, t.start_ns / NS_PER_MS, t.end_ns / NS_PER_MS))
            .collect();
        assert_eq!(spans, vec![(1, 0, 1_000), (2, 1_500, 2_000)]);
    }

    #[test]
    fn a_split_brain_is_drawn_over_the_overlap() {
        let mut r = Recorder::new(&[("w0".into(), false), ("w1".into(), false)], 1);
        r.belief(0, 0, 0, 0, Some((1, 4_000)));
        r.belief(1, 1, 0, 1_000, Some((2, 9_000)));
        r.violation(
            1_000,
            ViolationKind::SplitBrain,
            "group 0: w1#1 (epoch 2) and w0#0 (epoch 1) both believe they lead",
        );
        let t = r.finish("t".into(), 10_000, &[]);
        let v = &t.violations[0];
        assert_eq!(v.workers, vec!["w0".to_owned(), "w1".to_owned()]);
        assert_eq!((v.start_ns, v.end_ns), (ns(1_000), ns(4_000)));
    }
}
