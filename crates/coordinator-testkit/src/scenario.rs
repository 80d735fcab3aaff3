//! What one simulation run is: workers, mode, timings, faults, schedule.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use coordinator_core::Config;
use serde::Serialize;

use crate::faults::{FaultSet, LatencyModel};
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
        }
    }

    /// Like [`Scenario::new`] with a swarm of faults drawn from the seed,
    /// and liveness probes in the calm periods.
    pub fn swarm(seed: u64, workers: usize) -> Self {
        let mut scenario = Self::new(seed, workers);
        scenario.faults = FaultSet::swarm(&mut SeedTree::new(seed).swarm());
        scenario.probes = true;
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

    /// The bound within which a new leader must lead after the leader
    /// crashes, once faults have stopped:
    /// `W × (1+ρ)/(1−ρ) + 2 × (heartbeat_interval + heartbeat_jitter) +
    /// successors_in_lease × succession_step + 2 × request_timeout`, where
    /// `W` is the longest wait a follower may need (the largest
    /// `lease_timeout` in use, or `renew_deadline × (1+ρ)/(1−ρ)` if larger).
    ///
    /// Defaults: 15 s × 1.222 + 12 s + 2 s + 4 s = 36.3 s (54.7 s when some
    /// workers run the alternate 30 s lease).
    pub fn liveness_bound(&self) -> Duration {
        let c = &self.config;
        let ratio = Config::required_ratio(c.drift_tolerance);
        let mut wait = c
            .lease_timeout
            .max(c.minimum_safe_wait(c.renew_deadline, c.drift_tolerance));
        if self.faults.rolling_timings.is_some() {
            let a = self.alternate_config();
            wait = wait
                .max(a.lease_timeout)
                .max(a.minimum_safe_wait(a.renew_deadline, a.drift_tolerance));
        }
        wait.mul_f64(ratio) + self.margins()
    }

    /// The bound within which a successor leads after a graceful stop:
    /// `2 × (heartbeat_interval + heartbeat_jitter) + successors_in_lease ×
    /// succession_step + 2 × request_timeout` (defaults: 18 s).
    pub fn handover_bound(&self) -> Duration {
        self.margins()
    }

    fn margins(&self) -> Duration {
        let c = &self.config;
        let cycle = c.heartbeat_interval + c.heartbeat_jitter;
        cycle * 2
            + c.succession_step * u32::try_from(c.successors_in_lease).unwrap_or(u32::MAX)
            + c.request_timeout * 2
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
