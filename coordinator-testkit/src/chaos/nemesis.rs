//! The nemesis's schedule: a list of steps drawn from one seed
//! ([`SeedTree::schedule`](crate::SeedTree::schedule) and
//! [`SeedTree::faults`](crate::SeedTree::faults)), played one after the
//! other, each followed by a calm spell long enough for the take-over it
//! may cause to be checked against its bound.
//!
//! Which worker a step hits is decided when it is played: "the leader" is
//! whoever believes it leads then, "a follower" is drawn among the others.

use std::time::Duration;

use coordinator_core::SplitMix64;
use serde::Serialize;

use super::faults::NetFault;
use crate::SeedTree;

/// Whom a process step hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The worker that believes it leads when the step is played (a random
    /// one if none does).
    Leader,
    /// Another worker, the `n`-th among the followers (modulo their
    /// number).
    Follower(usize),
}

/// A coordinator object an operator deletes or corrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// `state.json`.
    Lease,
    /// `metadata.json`.
    Metadata,
    /// The election marker beside the plugins' data.
    Marker,
}

/// One step of the nemesis.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Network faults on every listener (or one worker's) for `hold`.
    Net {
        /// The faults.
        faults: Vec<NetFault>,
        /// Only this worker's listener (`None`: every worker).
        target: Option<Target>,
        /// How long.
        hold: Duration,
    },
    /// SIGKILL, then a restart after `down`.
    Kill {
        /// Whom.
        target: Target,
        /// How long it stays dead.
        down: Duration,
    },
    /// SIGSTOP for `hold` (longer than the lease), then SIGCONT.
    Pause {
        /// Whom.
        target: Target,
        /// How long.
        hold: Duration,
    },
    /// SIGTERM (graceful: the lease released), then a restart after `down`.
    Terminate {
        /// Whom.
        target: Target,
        /// How long it stays stopped.
        down: Duration,
    },
    /// The worker's listener holds every request for `hold`.
    Partition {
        /// Whom.
        target: Target,
        /// How long.
        hold: Duration,
    },
    /// Every worker, one after the other, stopped with SIGTERM and
    /// restarted with the other set of timings (the first roll-out
    /// switches to the alternate timings, the next one back).
    RollingRestart,
    /// An operator deletes a coordinator record.
    Delete(Record),
    /// An operator overwrites a coordinator record with junk (half of its
    /// bytes).
    Corrupt(Record),
}

impl Step {
    /// A short name for counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Net { target: None, .. } => "net",
            Self::Net {
                target: Some(_), ..
            } => "net_one_worker",
            Self::Kill { .. } => "kill",
            Self::Pause { .. } => "pause",
            Self::Terminate { .. } => "terminate",
            Self::Partition { .. } => "partition",
            Self::RollingRestart => "rolling_restart",
            Self::Delete(_) => "operator_delete",
            Self::Corrupt(_) => "operator_corrupt",
        }
    }
}

/// Draws the steps for a run of `duration`: about one step every
/// `period` (a step's own length plus its calm spell), until the time is
/// used up; the run plays as many as fit.
pub fn plan(seed: u64, duration: Duration, period: Duration, lease: Duration) -> Vec<Step> {
    let tree = SeedTree::new(seed);
    let mut rng = tree.schedule();
    let mut faults = tree.faults();
    let count = (duration.as_secs_f64() / period.as_secs_f64().max(1.0)).ceil() as usize + 1;
    let mut steps = Vec::with_capacity(count);
    let mut rolled = false;
    for _ in 0..count {
        steps.push(step(&mut rng, &mut faults, lease, &mut rolled));
    }
    steps
}

fn target(rng: &mut SplitMix64) -> Target {
    if rng.chance(0.7) {
        Target::Leader
    } else {
        Target::Follower(rng.below(8) as usize)
    }
}

fn record(rng: &mut SplitMix64) -> Record {
    match rng.below(3) {
        0 => Record::Lease,
        1 => Record::Metadata,
        _ => Record::Marker,
    }
}

fn step(rng: &mut SplitMix64, faults: &mut SplitMix64, lease: Duration, rolled: &mut bool) -> Step {
    let secs =
        |rng: &mut SplitMix64, lo: f64, hi: f64| Duration::from_secs_f64(rng.between(lo, hi));
    let lease_s = lease.as_secs_f64();
    // Weights: network 30, kill 12, pause 12, terminate 10, partition 12,
    // one worker's network 8, operator 12, rolling restart 4.
    let roll = rng.below(100);
    match roll {
        0..30 => Step::Net {
            faults: net_faults(faults),
            target: None,
            hold: secs(rng, 2.0, 8.0),
        },
        30..42 => Step::Kill {
            target: target(rng),
            down: secs(rng, 0.5, 4.0),
        },
        42..54 => Step::Pause {
            target: target(rng),
            hold: secs(rng, 1.2 * lease_s, 3.0 * lease_s),
        },
        54..64 => Step::Terminate {
            target: target(rng),
            down: secs(rng, 0.5, 3.0),
        },
        64..76 => Step::Partition {
            target: target(rng),
            hold: secs(rng, 1.2 * lease_s, 3.0 * lease_s),
        },
        76..84 => Step::Net {
            faults: net_faults(faults),
            target: Some(target(rng)),
            hold: secs(rng, 2.0, 8.0),
        },
        84..96 => {
            if rng.chance(0.5) {
                Step::Delete(record(rng))
            } else {
                Step::Corrupt(record(rng))
            }
        }
        _ if !*rolled || rng.chance(0.5) => {
            *rolled = true;
            Step::RollingRestart
        }
        _ => Step::Kill {
            target: Target::Leader,
            down: secs(rng, 0.5, 4.0),
        },
    }
}

/// One to three network faults with their intensities.
fn net_faults(rng: &mut SplitMix64) -> Vec<NetFault> {
    let n = 1 + rng.below(3);
    let mut out = Vec::new();
    for _ in 0..n {
        let share =
            |rng: &mut SplitMix64, lo: f64, hi: f64| (rng.between(lo, hi) * 100.0).round() / 100.0;
        out.push(match rng.below(14) {
            0..3 => NetFault::Latency {
                base_ms: rng.in_range(20..300),
                jitter_ms: rng.in_range(0..300),
            },
            3..5 => NetFault::Drop {
                share: share(rng, 0.1, 0.5),
            },
            5..7 => NetFault::Reset {
                share: share(rng, 0.1, 0.5),
            },
            7 => NetFault::Blackhole,
            8..10 => NetFault::SlowDown {
                share: share(rng, 0.2, 0.8),
            },
            10..11 => NetFault::ServerError {
                share: share(rng, 0.1, 0.5),
            },
            _ => NetFault::LoseAnswer {
                share: share(rng, 0.2, 0.7),
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_its_plan_and_seeds_differ() {
        let period = Duration::from_secs(15);
        let lease = Duration::from_secs(3);
        let a = plan(1, Duration::from_secs(600), period, lease);
        assert_eq!(a, plan(1, Duration::from_secs(600), period, lease));
        assert_ne!(a, plan(2, Duration::from_secs(600), period, lease));
        assert_eq!(a.len(), 41);
        // Over a few seeds, every kind of step comes up.
        let mut kinds: Vec<&str> = (0..5)
            .flat_map(|seed| plan(seed, Duration::from_secs(600), period, lease))
            .map(|s| s.kind())
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), 9, "{kinds:?}");
    }

    #[test]
    fn pauses_and_partitions_outlast_the_lease() {
        let lease = Duration::from_secs(3);
        for step in plan(3, Duration::from_secs(3600), Duration::from_secs(15), lease) {
            if let Step::Pause { hold, .. } | Step::Partition { hold, .. } = step {
                assert!(hold > lease, "{hold:?}");
            }
        }
    }
}
