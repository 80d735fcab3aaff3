//! What one simulation run is: workers, mode, timings, faults, schedule.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use coordinator_core::Config;
use serde::Serialize;

use crate::bounds::{hidden_wait_ms, Follower, Promise, Rtt};
use crate::faults::{FaultSet, LatencyModel, OperatorFault};
use crate::seed::SeedTree;

/// Which algorithm the workers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// One core machine per worker serves every plugin.
    Global,
    /// One core machine per worker *and plugin*, each with its own keys
    /// ([`Keys::per_plugin`](coordinator_core::Keys::per_plugin)).
    PerPlugin,
    /// The replaced system ([`NaiveMachine`](crate::NaiveMachine)).
    Naive,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Global => "global",
            Mode::PerPlugin => "per-plugin",
            Mode::Naive => "naive",
        })
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "global" => Ok(Mode::Global),
            "per-plugin" => Ok(Mode::PerPlugin),
            "naive" => Ok(Mode::Naive),
            other => Err(format!(
                "unknown mode `{other}`; use global, per-plugin or naive"
            )),
        }
    }
}

/// How the emulated plugin writes its fenced object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Fencing {
    /// Correctly: a new leader seals the object by compare-and-swap of its
    /// epoch, then writes only by compare-and-swap on the version it holds.
    #[default]
    Cas,
    /// Broken on purpose (oracle proofs): unconditional PUTs carrying the
    /// epoch.
    Unconditional,
}

/// A fault at an exact instant, for hand-written scenarios (the oracle
/// proofs): [`Scenario::script`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scripted {
    /// An operator fault on the first election (a wipe of the namespace
    /// on all); one that hides the holder is held to the recovery bound.
    Operator(OperatorFault),
    /// The leader (of the first election) cut off from the store for this
    /// long.
    PartitionLeader(#[serde(serialize_with = "secs")] Duration),
    /// A follower crashes and starts again, a new process, this much later.
    RestartFollower(#[serde(serialize_with = "secs")] Duration),
    /// The leader stops gracefully (it releases the lease; its designated
    /// successor usually takes it) and starts again, a new process, this
    /// much later.
    StopLeader(#[serde(serialize_with = "secs")] Duration),
    /// A follower (the first in worker order) pauses for this long (a GC,
    /// a suspended VM): it does nothing, its clock runs on.
    PauseFollower(#[serde(serialize_with = "secs")] Duration),
    /// A canary of a newer format takes over the first election's lease
    /// at its leader's graceful stop, leads for `leads` renewing every 5 s,
    /// and is rolled back: cut off first (it then believes it leads to its
    /// `renew_deadline`) or killed.
    Canary {
        /// How long it leads.
        #[serde(serialize_with = "secs")]
        leads: Duration,
        /// Its renew deadline.
        #[serde(serialize_with = "secs")]
        renew_deadline: Duration,
        /// Cut off before the roll-back.
        cut_off: bool,
    },
}

/// One simulation run.
///
/// ```
/// use std::time::Duration;
/// use coordinator_testkit::{Scenario, Sim};
/// let mut scenario = Scenario::new(7, 5);
/// scenario.duration = Duration::from_secs(120);
/// let report = Sim::new(scenario).run();
/// assert!(report.violations.is_empty());
/// assert!(report.convergence_seconds.unwrap() < 1.0);
/// ```
#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    /// The root seed.
    pub seed: u64,
    /// Worker processes (duplicates from faults come on top).
    pub workers: usize,
    /// Plugins per worker (one machine each in per-plugin mode).
    pub plugins: usize,
    /// The algorithm.
    pub mode: Mode,
    /// Simulated time.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// Every worker's timings (some get [`Scenario::alternate_config`]
    /// under the rolling-timings fault).
    #[serde(skip)]
    pub config: Config,
    /// The faults.
    pub faults: FaultSet,
    /// Faults come in periods: a storm of `storm_share` of the period, then
    /// calm (where the liveness probes run).
    #[serde(serialize_with = "secs")]
    pub fault_period: Duration,
    /// The share of each period with faults on.
    pub storm_share: f64,
    /// Crash the leader (and a follower) in each calm period and check
    /// that a new leader comes within the liveness bound and the dead
    /// follower leaves the roster within the roster bound.
    pub probes: bool,
    /// Crash the leader this often (it restarts 30 s later).
    #[serde(serialize_with = "opt_secs")]
    pub crash_leader_every: Option<Duration>,
    /// Stop the leader gracefully this often, half a period after the
    /// crashes (it restarts 10 s later).
    #[serde(serialize_with = "opt_secs")]
    pub stop_leader_every: Option<Duration>,
    /// Store latency.
    pub latency: LatencyModel,
    /// Workers start at random instants in `0..start_spread`; worker 0 at 0.
    #[serde(serialize_with = "secs")]
    pub start_spread: Duration,
    /// Explicit clock rates per worker slot (1.0 is perfect), overriding
    /// the drift faults.
    pub clock_rates: Option<Vec<f64>>,
    /// Emulate a plugin that writes a fenced object while leading (its
    /// requests are counted apart from the election's).
    pub fenced_writes: bool,
    /// How it writes.
    pub fencing: Fencing,
    /// Start with a lease left by a leader that died this long ago (and
    /// its heartbeat object), to measure start-up convergence.
    #[serde(serialize_with = "opt_secs")]
    pub stale_lease_age: Option<Duration>,
    /// Keep a readable trace of the last events (slower).
    pub trace: bool,
    /// With `trace`: also every request and answer of these workers'
    /// processes (a comma-separated list of worker ids, or `all`), to
    /// follow their view.
    pub trace_worker: Option<String>,
    /// Explicit timings per worker slot, overriding `config` (hand-written
    /// scenarios; slots beyond the list run `config`).
    #[serde(skip)]
    pub configs: Option<Vec<Config>>,
    /// The timings the oracle is told every worker runs, when they are not
    /// the real ones: its bounds are computed from these (to show that a
    /// slowed machine is caught). `None`: the real ones.
    #[serde(skip)]
    pub told: Option<Config>,
    /// Faults at exact instants (hand-written scenarios), on top of
    /// `faults`. They do not count as storms: what follows them in a calm
    /// run is held to the bounds.
    #[serde(skip)]
    pub script: Vec<(Duration, Scripted)>,
    /// How the faults were chosen, for the replay hint: `none`, `swarm`, a
    /// comma-separated list of kinds, or `custom` (a hand-made set).
    pub fault_spec: String,
    /// Deliberately broken machines (oracle proofs): every core machine
    /// gets these mutations.
    #[cfg(feature = "mutations")]
    #[serde(skip)]
    pub mutations: Vec<coordinator_core::Mutation>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl Scenario {
    /// `workers` workers in global mode for an hour, default timings, no
    /// faults.
    pub fn new(seed: u64, workers: usize) -> Self {
        Self {
            seed,
            workers,
            plugins: 1,
            mode: Mode::Global,
            duration: Duration::from_secs(3600),
            config: Config::default(),
            faults: FaultSet::none(),
            fault_period: Duration::from_secs(600),
            storm_share: 0.6,
            probes: false,
            crash_leader_every: None,
            stop_leader_every: None,
            latency: LatencyModel::s3_like(),
            start_spread: Duration::from_secs(1),
            clock_rates: None,
            fenced_writes: true,
            fencing: Fencing::Cas,
            stale_lease_age: None,
            trace: false,
            trace_worker: None,
            configs: None,
            told: None,
            script: Vec::new(),
            fault_spec: "none".into(),
            #[cfg(feature = "mutations")]
            mutations: Vec::new(),
        }
    }

    /// Like [`Scenario::new`] with a swarm of faults drawn from the seed,
    /// and liveness probes in the calm periods.
    pub fn swarm(seed: u64, workers: usize) -> Self {
        let mut scenario = Self::new(seed, workers);
        scenario.faults = FaultSet::swarm(&mut SeedTree::new(seed).swarm());
        scenario.probes = true;
        scenario.fault_spec = "swarm".into();
        scenario
    }

    /// The timings of workers under the rolling-timings fault: lease
    /// 30 s, renew deadline 20 s (longer than the default's, so followers
    /// on the default timings have a *shorter* lease_timeout than such a
    /// leader).
    pub fn alternate_config(&self) -> Config {
        Config {
            lease_timeout: Duration::from_secs(30),
            renew_deadline: Duration::from_secs(20),
            ..self.config.clone()
        }
    }

    /// The timings of workers restarted by the timing-rollout fault: three
    /// times the lease timeout and renew deadline of `config` (45 s / 30 s
    /// at the defaults), a change an operator may roll out and back.
    pub fn rollout_config(&self) -> Config {
        Config {
            lease_timeout: self.config.lease_timeout * 3,
            renew_deadline: self.config.renew_deadline * 3,
            ..self.config.clone()
        }
    }

    /// Every set of timings a worker of this run may have, as the oracle
    /// knows them (only [`Scenario::told`] if it is set).
    pub fn timing_sets(&self) -> Vec<Config> {
        if let Some(told) = &self.told {
            return vec![told.clone()];
        }
        let mut sets = vec![self.config.clone()];
        if self.faults.rolling_timings.is_some() {
            sets.push(self.alternate_config());
        }
        if self.faults.timing_rollout.is_some() {
            sets.push(self.rollout_config());
        }
        if let Some(configs) = &self.configs {
            sets.extend(configs.iter().cloned());
        }
        sets
    }

    /// The longest takeover wait of every timing set, ms.
    pub(crate) fn longest_takeover_wait_ms(&self) -> u64 {
        self.timing_sets()
            .iter()
            .map(|c| u64::try_from(c.takeover_wait().as_millis()).unwrap_or(u64::MAX))
            .max()
            .unwrap_or(0)
    }

    /// The slowest follower the oracle allows for: polling at the
    /// heartbeat cadence, ranked last, its clock as slow as `config`'s
    /// tolerance allows.
    fn slowest(config: &Config) -> Follower<'_> {
        Follower {
            config,
            rate: 1.0 - config.drift_tolerance,
            started: 0,
            designated: false,
            rank: config.successors_in_lease,
        }
    }

    /// The worst case, over every situation, of the bound within which a
    /// new leader must lead after the leader crashes once faults have
    /// stopped. The oracle holds each crash to its own, tighter bound (see
    /// the `bounds` module: the holder's last write, the designated
    /// successor's faster polls, each follower's rank, timings and real
    /// clock rate); this one is when it looks.
    ///
    /// The formula, for a crash at 0 whose holder's last renewal lands one
    /// write later: first sight `(heartbeat_interval + heartbeat_jitter) /
    /// (1−ρ) + reply + read`, then `(max(lease_timeout, the holder's
    /// promise) + successors_in_lease × succession_step) / (1−ρ)`, then `2
    /// × read + 2 × write` to acquire. Defaults: 0.63 + 7.69 + 17.56 + 3 =
    /// 28.9 s (the designated successor with perfect clocks: 21.2 s after
    /// the holder's last write).
    pub fn liveness_bound(&self) -> Duration {
        let rtt = Rtt::of(&self.latency);
        let sets = self.timing_sets();
        let mut worst = 0;
        for holder in &sets {
            let promise = Promise::of(holder);
            for follower in &sets {
                let f = Self::slowest(follower);
                worst = worst.max(f.after_crash(rtt.write_apply, &promise, &rtt));
            }
        }
        Duration::from_millis(worst)
    }

    /// The worst case of the bound within which a successor leads after a
    /// graceful stop: the release lands after a renewal in flight, then
    /// first sight and acquiring as above, with no wait (defaults: 12.2 s;
    /// per situation, with the designated successor: 6.2 s after the
    /// release lands).
    pub fn handover_bound(&self) -> Duration {
        let rtt = Rtt::of(&self.latency);
        let landed = rtt.write + rtt.write_apply;
        let worst = self
            .timing_sets()
            .iter()
            .map(|c| Self::slowest(c).after_release(landed, &rtt))
            .max()
            .unwrap_or(0);
        Duration::from_millis(worst)
    }

    /// The worst case of the bound within which a new leader must lead
    /// after an operator fault that hides the lease's holder (the lease
    /// deleted or corrupt, a wipe, a canary's lease left behind): first
    /// sight, the assessment and the vacant lease written in place of a
    /// missing one, then the recovery wait (or a longer takeover wait in
    /// use) on the slowest clock, then acquiring (defaults: 7.69 + 3.3 +
    /// 66.67 + 3 = 80.7 s; with the bound still on record in
    /// `metadata.json`, the oracle uses it instead: 24.5 s at the defaults
    /// for the designated successor).
    pub fn recovery_bound(&self) -> Duration {
        let rtt = Rtt::of(&self.latency);
        let longest = self.longest_takeover_wait_ms();
        let worst = self
            .timing_sets()
            .iter()
            .map(|c| {
                let wait = hidden_wait_ms(c, longest, None, true);
                // The fault 1 ms after the follower started (it was
                // polling already).
                Self::slowest(c).after_hiding(1, wait, true, &rtt) - 1
            })
            .max()
            .unwrap_or(0);
        Duration::from_millis(worst)
    }

    /// The bound within which a dead worker leaves the roster (the lease's
    /// successors and `roster.json`), counted from the later of its death
    /// and the current leader's acquisition:
    /// `worker_timeout / (1−ρ) + 2 × (worker_list_interval +
    /// heartbeat_jitter) + heartbeat_interval + heartbeat_jitter + 2 ×
    /// request_timeout` (defaults: 22.2 s + 22 s + 6 s + 4 s = 54.2 s).
    pub fn roster_bound(&self) -> Duration {
        let c = &self.config;
        let list = c.worker_list_interval + c.heartbeat_jitter;
        c.worker_timeout.div_f64(1.0 - c.drift_tolerance)
            + list * 2
            + c.heartbeat_interval
            + c.heartbeat_jitter
            + c.request_timeout * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_case_bounds_at_the_defaults() {
        let s = Scenario::new(0, 3);
        // A renewal in flight lands 630 ms after the crash; the slowest
        // follower sees it 6.669 + 0.42 + 0.6 s later, waits (15 + 0.8) /
        // 0.9 s and acquires in 3 s.
        assert_eq!(s.liveness_bound(), Duration::from_millis(28_877));
        // The release lands after a renewal in flight: 1.53 s; first sight
        // and acquiring as above.
        assert_eq!(s.handover_bound(), Duration::from_millis(12_219));
        // First sight 7.689 s, assessing and the vacant lease 3.3 s, the
        // recovery wait 60 / 0.9 s, acquiring 3 s.
        assert_eq!(s.recovery_bound(), Duration::from_millis(80_658));
    }
}
