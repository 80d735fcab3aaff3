//! The discrete-event simulator: true time, an event queue keyed by
//! (time, sequence), workers with their own clocks, the simulated store,
//! the fault schedule and the oracle.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use coordinator_core::{
    decode, encode, mix64, Action, Config, Event, Failure, HeartbeatRecord, Identity, Incarnation,
    Instant, Keys, LeaseRecord, Machine, MetadataRecord, Namespace, Request, RequestId, Response,
    RosterRecord, SplitMix64, StoreTraits, WorkerId, FORMAT,
};

use crate::bounds::{self, hidden_wait_ms, Follower, Promise, Rtt};
use crate::clock::{SimClock, PPM, UNIX_BASE_MS};
use crate::faults::{Episodes, FaultSet, OperatorFault, RequestFault, StoreFlavor};
use crate::fenced::{self, FencedWriter, Next};
use crate::naive::NaiveMachine;
use crate::report::{round3, FencedStats, Report, RoleRequests, Summary, Violation, ViolationKind};
use crate::scenario::{Mode, Scenario, Scripted};
use crate::seed::SeedTree;
use crate::store::{is_write, Requests, SimStore};
use crate::timeline::Timeline;

mod record;
use record::Recorder;

const MAX_VIOLATIONS_KEPT: usize = 100;
const TRACE_LINES: usize = 4000;

/// A worker's election machine: the core one or the replaced system's.
// The core machine is much larger than the naive one; both live in a Vec
// that is indexed, not moved, so the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Elector {
    /// The core machine.
    Core(Machine),
    /// The replaced system.
    Naive(NaiveMachine),
}

impl Elector {
    fn is_leader(&self, now: Instant) -> bool {
        match self {
            Elector::Core(m) => m.is_leader(now),
            Elector::Naive(m) => m.is_leader(now),
        }
    }
    fn holds_term(&self) -> bool {
        match self {
            Elector::Core(m) => m.term().is_some(),
            Elector::Naive(m) => m.is_leader(Instant::from_millis(0)),
        }
    }
    fn is_finished(&self) -> bool {
        match self {
            Elector::Core(m) => m.is_finished(),
            Elector::Naive(_) => false,
        }
    }
    fn poll_action(&mut self) -> Option<Action> {
        match self {
            Elector::Core(m) => m.poll_action(),
            Elector::Naive(m) => m.poll_action(),
        }
    }
    fn poll_event(&mut self) -> Option<Event> {
        match self {
            Elector::Core(m) => m.poll_event(),
            Elector::Naive(m) => m.poll_event(),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Elector::Core(m) => m.poll_timeout(),
            Elector::Naive(m) => m.poll_timeout(),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Elector::Core(m) => m.handle_timeout(now),
            Elector::Naive(m) => m.handle_timeout(now),
        }
    }
    fn handle_response(&mut self, id: RequestId, response: Response, now: Instant) {
        match self {
            Elector::Core(m) => m.handle_response(id, response, now),
            Elector::Naive(m) => m.handle_response(id, response, now),
        }
    }
    fn stop(&mut self, now: Instant) {
        match self {
            Elector::Core(m) => m.stop(now),
            Elector::Naive(m) => m.stop(now),
        }
    }
}

/// Who a reply is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Machine,
    Fenced,
}

/// What happens after a request is applied.
#[derive(Clone, Debug)]
enum Then {
    /// Reply with the store's answer after this many ms.
    Reply(u64),
    /// Reply with this failure after this many ms (applied but reported
    /// failed).
    Fail(Failure, u64),
    /// Apply once more (a hidden retry), then reply with that answer
    /// after this many ms.
    Retry(u64),
    /// No reply: the client already gave up.
    Discard,
}

#[derive(Clone, Debug)]
enum Ev {
    Start {
        slot: usize,
    },
    Timer {
        node: usize,
        gen: u32,
    },
    FencedTimer {
        node: usize,
        token: u64,
    },
    Apply {
        node: usize,
        id: RequestId,
        tag: Tag,
        request: Request,
        then: Then,
    },
    Reply {
        node: usize,
        id: RequestId,
        tag: Tag,
        response: Response,
    },
    Episode(EpisodeKind),
    CrashLeader,
    StopLeader,
    Probe,
    Foreign,
    /// An operator fault in a storm.
    Operator,
    /// A scripted fault (`Scenario::script`).
    Script(usize),
    /// A fault that hides the holder, in calm, with a recovery check.
    RecoveryProbe,
    Lifecycle,
    ClockStep,
    Rollout,
    CanaryStart {
        probe: bool,
    },
    CanaryRenew {
        canary: usize,
    },
    CanaryRollback {
        canary: usize,
    },
    CanaryGiveUp {
        canary: usize,
    },
    /// A take-over being watched: compute its bound once the event it
    /// counts from has surely happened.
    WatchSettle {
        watch: usize,
    },
    /// A take-over's bound has passed.
    WatchCheck {
        watch: usize,
        deadline: u64,
    },
    RosterCheck {
        group: usize,
        worker_id: WorkerId,
        since: u64,
        until: u64,
    },
    ForeignCheck,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EpisodeKind {
    Pause,
    Crash,
    Partition,
    GracefulRestart,
}

/// A worker slot: a worker id that processes (lives) come and go under.
struct Slot {
    worker_id: WorkerId,
    config: Config,
    /// The timings it started with (a roll-back returns to them).
    original: Config,
    rate_ppm: u64,
    lives: u64,
    proc: Option<usize>,
    start_at: u64,
}

/// One process: one life of a slot.
struct Proc {
    slot: usize,
    clock: SimClock,
    config: Config,
    alive: bool,
    started: u64,
    ended: Option<u64>,
    paused_until: u64,
    partitioned_until: u64,
    nodes: Vec<usize>,
}

/// One machine of a process (one per plugin in per-plugin mode).
struct Node {
    proc: usize,
    group: usize,
    elector: Elector,
    armed: Option<Instant>,
    gen: u32,
    max_epoch_view: u64,
    holder: bool,
    own_key: String,
    writer: Option<FencedWriter>,
    acquired_at: u64,
    /// Its current term is the documented residual case (see
    /// `ViolationKind`): it recreated a wiped namespace as new.
    residual_term: bool,
    /// When its last survey listed the election's prefix and read the
    /// election's marker, and whether each showed nothing that could tell
    /// the namespace from a new one (only heartbeats of workers that never
    /// saw a lease; no marker).
    listed_election: Option<(u64, bool)>,
    read_marker: Option<(u64, bool)>,
}

/// One election (one per plugin in per-plugin mode).
struct Group {
    keys: Keys,
    fenced_key: String,
    lease_facts: LeaseFacts,
    holders: Vec<usize>,
    max_acquired: u64,
    max_sealed: u64,
    /// When nothing of the election was last left (its prefix empty, its
    /// marker gone).
    wiped_at: Option<u64>,
    acquired_since_wipe: bool,
    /// Since the highest epoch was acquired, every record that carries it
    /// (lease, metadata.json, the marker) was absent at one instant.
    carriers_gone: bool,
    first_acquired: Option<u64>,
    /// When every live worker of the group first named the same leader,
    /// after every initial worker had started (the wire's definition of
    /// convergence).
    all_agree_at: Option<u64>,
    last_acquirer: Option<usize>,
    last_acquired_t: u64,
    refused: u64,
}

/// What a watched take-over follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WatchKind {
    /// The holder crashed.
    Crash,
    /// The holder stopped gracefully.
    Stop,
    /// An operator fault hid the holder (or a canary's lease was left
    /// behind, `newer_format`); `missing`: the lease is gone (replaced by
    /// a vacant lease before the wait), not unreadable.
    Hidden { newer_format: bool, missing: bool },
}

/// A take-over the oracle waits for: from `since` until any node other
/// than `old_node` acquires in `group`.
struct Watch {
    group: usize,
    since: u64,
    old_node: Option<usize>,
    kind: WatchKind,
    what: String,
    /// How its bound was derived (for the violation's message).
    how: String,
    /// Held to its bound (the period stays calm).
    checked: bool,
    /// The bound `metadata.json` recorded right after a hiding fault.
    recorded_wait_ms: Option<u64>,
    /// The designated successor (and since when) as the followers knew it
    /// when the holder stopped or the fault happened (`None`: nobody polls
    /// faster, e.g. the lease was already unreadable).
    designation: Option<(WorkerId, u64)>,
    /// For a crash or a stop: the holder's last lease write that landed
    /// (its record and when), followed until the take-over (a renewal in
    /// flight may land after the crash), and when its release landed.
    holder_write: Option<(u64, LeaseRecord)>,
    released_at: Option<u64>,
    acquired: Option<u64>,
    done: bool,
}

/// The last write to a group's lease, as the oracle saw it land.
#[derive(Clone, Debug, Default)]
struct LeaseFacts {
    /// True time it landed (or the lease was deleted).
    at: u64,
    /// The record, if it is one of ours.
    record: Option<LeaseRecord>,
    /// The first successor it names, and since when the lease has named
    /// that worker first (reset when the lease was unreadable meanwhile:
    /// followers then poll at the heartbeat cadence).
    designated: Option<WorkerId>,
    designated_since: u64,
    /// The lease is missing or not ours (deleted, corrupt, a canary's).
    unreadable: bool,
}

impl LeaseFacts {
    /// The designated successor as the followers know it, if they do.
    fn designation(&self) -> Option<(WorkerId, u64)> {
        if self.unreadable {
            return None;
        }
        self.designated.clone().map(|d| (d, self.designated_since))
    }
}

/// A canary of a newer release (see [`crate::Canary`]).
struct CanaryRun {
    group: usize,
    name: String,
    renew_every_ms: u64,
    renew_deadline_ms: u64,
    cut_off: bool,
    /// Waiting for the lease to be released, until then.
    awaiting_until: Option<u64>,
    leading: bool,
    /// Its lease's version while it leads.
    version: u64,
    epoch: u64,
    nonce: u64,
    last_write: u64,
    leads_until: u64,
    believes_until: u64,
}

/// The simulator of one [`Scenario`].
///
/// Runs in true time (ms). Every worker process has its own
/// [`SimClock`]; machines are only ever given their own clock's reading.
/// Events are ordered by (true time, sequence number), and each worker's
/// next timer is one entry in the queue (superseded entries are skipped by
/// a generation number), so a step costs O(log queue) whatever the number
/// of workers.
pub struct Sim {
    sc: Scenario,
    seeds: SeedTree,
    t: u64,
    seq: u64,
    /// (true time, sequence, index into `slab`): small entries keep the
    /// heap's sifting cheap; the payloads stay put in the slab.
    queue: BinaryHeap<Reverse<(u64, u64, u32)>>,
    slab: Vec<Option<Ev>>,
    free: Vec<u32>,
    store: SimStore,
    traits: StoreTraits,
    slots: Vec<Slot>,
    procs: Vec<Proc>,
    nodes: Vec<Node>,
    groups: Vec<Group>,
    fenced_keys: HashMap<String, usize>,
    lease_keys: HashMap<String, usize>,
    latency_rng: SplitMix64,
    fault_rng: SplitMix64,
    sched_rng: SplitMix64,
    /// Operator-level faults: deletions, canaries, roll-outs, clock steps.
    op_rng: SplitMix64,
    rtt: Rtt,
    /// The store's clock step so far, ms.
    store_clock_offset_ms: i64,
    canaries: Vec<CanaryRun>,
    rollout_slots: Vec<usize>,
    rollout_next: usize,
    rollout_back: bool,
    watches: Vec<Watch>,
    open_watches: Vec<usize>,
    /// The longest takeover wait of every worker started so far, ms.
    longest_wait_started_ms: u64,
    /// When the last of the initial workers started.
    last_initial_start: u64,
    // accounting
    requests: Requests,
    leader_requests: Requests,
    fenced: FencedStats,
    violations: Vec<Violation>,
    violation_count: u64,
    split_pairs: BTreeSet<(usize, usize)>,
    failovers: Vec<f64>,
    handovers: Vec<f64>,
    recoveries: Vec<f64>,
    margins: Vec<f64>,
    operator_faults: u64,
    canary_runs: u64,
    rollout_restarts: u64,
    clock_steps: u64,
    lifecycle_deletions: u64,
    recovery_checks: u64,
    residual_cases: u64,
    epochs_restarted: u64,
    leader_changes: u64,
    acquisitions: u64,
    liveness_checks: u64,
    roster_checks: u64,
    foreign_at: Option<u64>,
    foreign_detected: u64,
    duplicates_reported: u64,
    events: u64,
    hash: u64,
    trace: Option<Vec<String>>,
    first_violation_trace: Vec<String>,
    /// Collects the picture of the run, when asked for
    /// ([`Sim::run_with_timeline`]).
    recorder: Option<Recorder>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Sim {
    /// Sets up the run: slots, clocks, the schedule. Nothing runs yet.
    pub fn new(scenario: Scenario) -> Self {
        let seeds = SeedTree::new(scenario.seed);
        let namespace = Namespace::new("sim").unwrap_or_else(|_| unreachable!());
        let group_count = match scenario.mode {
            Mode::PerPlugin => scenario.plugins.max(1),
            _ => 1,
        };
        let groups: Vec<Group> = (0..group_count)
            .map(|g| {
                let keys = match scenario.mode {
                    Mode::PerPlugin => {
                        let plugin = Namespace::new(format!("plugin-{g}"))
                            .unwrap_or_else(|_| unreachable!());
                        Keys::per_plugin(&plugin, &namespace)
                    }
                    _ => Keys::global(&namespace),
                };
                // Plugins keep their data under `plg_coordinator_data/<ns>/`
                // (shared by both modes), where a survey looks for traces.
                let fenced_key = format!("{}fenced/group-{g}.json", keys.data_prefix());
                Group {
                    keys,
                    fenced_key,
                    lease_facts: LeaseFacts::default(),
                    holders: Vec::new(),
                    max_acquired: 0,
                    max_sealed: 0,
                    wiped_at: None,
                    acquired_since_wipe: false,
                    carriers_gone: false,
                    first_acquired: None,
                    all_agree_at: None,
                    last_acquirer: None,
                    last_acquired_t: 0,
                    refused: 0,
                }
            })
            .collect();
        let fenced_keys = groups
            .iter()
            .enumerate()
            .map(|(g, group)| (group.fenced_key.clone(), g))
            .collect();
        let lease_keys = groups
            .iter()
            .enumerate()
            .map(|(g, group)| (group.keys.lease(), g))
            .collect();
        let f = &scenario.faults;
        // What the machines are told: the clock is trusted only for AWS S3
        // proper (and the simulated memory store, whose clock is true
        // time), unless the store misdeclares it.
        let trusted_clock = f.told_trusted_clock();
        let (traits, granularity, returns_time) = match f.store {
            StoreFlavor::S3 | StoreFlavor::SelfHosted => (
                StoreTraits {
                    conditional_get: true,
                    conditional_delete: false,
                    trusted_clock,
                },
                1000,
                false,
            ),
            StoreFlavor::Memory => (
                StoreTraits {
                    conditional_get: true,
                    conditional_delete: true,
                    trusted_clock,
                },
                1,
                true,
            ),
            StoreFlavor::Local => (
                StoreTraits {
                    conditional_get: true,
                    conditional_delete: true,
                    trusted_clock,
                },
                1,
                true,
            ),
        };
        let mut sim = Self {
            seeds,
            t: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            store: SimStore::new(granularity, returns_time),
            traits,
            slots: Vec::new(),
            procs: Vec::new(),
            nodes: Vec::new(),
            groups,
            fenced_keys,
            lease_keys,
            latency_rng: seeds.latency(),
            fault_rng: seeds.faults(),
            sched_rng: seeds.schedule(),
            op_rng: seeds.operator(),
            rtt: Rtt::of(&scenario.latency),
            store_clock_offset_ms: 0,
            canaries: Vec::new(),
            rollout_slots: Vec::new(),
            rollout_next: 0,
            rollout_back: false,
            watches: Vec::new(),
            open_watches: Vec::new(),
            longest_wait_started_ms: 0,
            last_initial_start: 0,
            requests: Requests::default(),
            leader_requests: Requests::default(),
            fenced: FencedStats::default(),
            violations: Vec::new(),
            violation_count: 0,
            split_pairs: BTreeSet::new(),
            failovers: Vec::new(),
            handovers: Vec::new(),
            recoveries: Vec::new(),
            margins: Vec::new(),
            operator_faults: 0,
            canary_runs: 0,
            rollout_restarts: 0,
            clock_steps: 0,
            lifecycle_deletions: 0,
            recovery_checks: 0,
            residual_cases: 0,
            epochs_restarted: 0,
            leader_changes: 0,
            acquisitions: 0,
            liveness_checks: 0,
            roster_checks: 0,
            foreign_at: None,
            foreign_detected: 0,
            duplicates_reported: 0,
            events: 0,
            hash: 0xC0FF_EE00_D15E_A5E5,
            trace: scenario.trace.then(Vec::new),
            first_violation_trace: Vec::new(),
            recorder: None,
            sc: scenario,
        };
        sim.setup();
        sim
    }

    fn setup(&mut self) {
        let width = self.sc.workers.max(1).to_string().len().max(4);
        let alternate = self.sc.alternate_config();
        let rolling = self.sc.faults.rolling_timings;
        let rho = self.sc.config.drift_tolerance;
        let mut sched = self.sched_rng.clone();
        let spread = ms(self.sc.start_spread);
        for i in 0..self.sc.workers {
            let worker_id =
                WorkerId::new(format!("w{i:0width$}")).unwrap_or_else(|_| unreachable!());
            let mut config = match rolling {
                Some(share) if sched.chance(share) => alternate.clone(),
                _ => self.sc.config.clone(),
            };
            if let Some(given) = self.sc.configs.as_ref().and_then(|c| c.get(i)) {
                config = given.clone();
            }
            let rate_ppm = self.rate_for(i, rho, &mut sched);
            let start_at = if i == 0 { 0 } else { sched.below(spread) };
            self.slots.push(Slot {
                worker_id,
                original: config.clone(),
                config,
                rate_ppm,
                lives: 0,
                proc: None,
                start_at,
            });
        }
        // Duplicates: extra slots sharing an existing worker id.
        for _ in 0..self.sc.faults.duplicate_ids {
            if self.sc.workers == 0 {
                break;
            }
            let of = sched.below(self.sc.workers as u64) as usize;
            let worker_id = self.slots[of].worker_id.clone();
            let config = self.slots[of].config.clone();
            let slot = self.slots.len();
            let rate_ppm = self.rate_for(slot, rho, &mut sched);
            let start_at = sched.below(ms(self.sc.duration).max(1) / 2);
            self.slots.push(Slot {
                worker_id,
                original: config.clone(),
                config,
                rate_ppm,
                lives: 0,
                proc: None,
                start_at,
            });
        }
        if let Some(age) = self.sc.stale_lease_age {
            self.plant_stale_lease(age);
        }
        for slot in 0..self.slots.len() {
            let at = self.slots[slot].start_at;
            self.push(at, Ev::Start { slot });
        }
        // Episodic faults.
        let f = self.sc.faults.clone();
        let kinds = [
            (f.pauses, EpisodeKind::Pause),
            (f.crashes, EpisodeKind::Crash),
            (f.leader_partitions, EpisodeKind::Partition),
            (f.graceful_restarts, EpisodeKind::GracefulRestart),
        ];
        for (episodes, kind) in kinds {
            if let Some(e) = episodes {
                let at = e.next_gap(&mut sched);
                self.push(at, Ev::Episode(kind));
            }
        }
        let duration = ms(self.sc.duration);
        if let Some(every) = self.sc.crash_leader_every.map(ms).filter(|e| *e > 0) {
            let mut at = every;
            while at < duration {
                self.push(at, Ev::CrashLeader);
                at += every;
            }
        }
        if let Some(every) = self.sc.stop_leader_every.map(ms).filter(|e| *e > 0) {
            let mut at = every / 2;
            while at < duration {
                self.push(at, Ev::StopLeader);
                at += every;
            }
        }
        if self.sc.probes && self.sc.mode != Mode::Naive {
            // In each calm period, once late writes from the storm have
            // landed: a crash probe, and a recovery probe (a fault that
            // hides the holder) if such faults are on; both if they fit,
            // otherwise one each in turn.
            let period = ms(self.sc.fault_period).max(1);
            let calm_start = (period as f64 * self.sc.storm_share) as u64;
            let need = ms(self.sc.liveness_bound()) + ms(self.sc.roster_bound()) + 10_000;
            let recovery = self
                .hiding_faults_on()
                .then(|| ms(self.sc.recovery_bound()) + 5_000);
            let mut base = 0;
            let mut turn = 0;
            while base + calm_start + 40_000 < duration {
                let at = base + calm_start + 40_000;
                let end = (base + period).min(duration);
                let crash_fits = at + need <= end;
                match recovery {
                    Some(r) if crash_fits && at + need + r <= end => {
                        self.push(at, Ev::Probe);
                        self.push(at + need, Ev::RecoveryProbe);
                    }
                    Some(r) if turn % 2 == 1 && at + r <= end => {
                        self.push(at, Ev::RecoveryProbe);
                    }
                    _ if crash_fits => self.push(at, Ev::Probe),
                    _ => {}
                }
                turn += 1;
                base += period;
            }
        }
        if self.sc.mode != Mode::Naive {
            self.schedule_operator_faults();
        }
        for i in 0..self.sc.script.len() {
            let at = ms(self.sc.script[i].0);
            self.push(at, Ev::Script(i));
        }
        if let Some(share) = f.foreign_writer {
            if self.sc.mode != Mode::Naive {
                let at = (duration as f64 * share) as u64;
                self.push(at, Ev::Foreign);
            }
        }
        self.sched_rng = sched;
    }

    fn rate_for(&self, slot: usize, rho: f64, rng: &mut SplitMix64) -> u64 {
        let f = &self.sc.faults;
        let error = if let Some(rates) = &self.sc.clock_rates {
            rates.get(slot).copied().unwrap_or(1.0) - 1.0
        } else if let Some(max) = f.drift_beyond_tolerance {
            rng.between(-max, max)
        } else if let Some(share) = f.clock_drift {
            // Strictly inside the tolerance.
            rng.between(-1.0, 1.0) * share.min(0.999) * rho
        } else {
            0.0
        };
        ((1.0 + error) * PPM as f64).round().max(1.0) as u64
    }

    /// Whether some fault that hides the lease's holder is on (the calm
    /// periods then get a recovery probe).
    fn hiding_faults_on(&self) -> bool {
        let f = &self.sc.faults;
        f.canary.is_some()
            || f.operator
                .as_ref()
                .is_some_and(|o| o.kinds.iter().any(|k| k.hides_holder()))
    }

    /// The first schedule of the operator-level faults, from their own
    /// stream.
    fn schedule_operator_faults(&mut self) {
        let f = self.sc.faults.clone();
        let period = ms(self.sc.fault_period).max(1);
        let storm = (period as f64 * self.sc.storm_share) as u64;
        let duration = ms(self.sc.duration);
        let mut rng = std::mem::replace(&mut self.op_rng, SplitMix64::new(0));
        if let Some(o) = &f.operator {
            let at = gap(&mut rng, o.mean_every_ms);
            self.push(at, Ev::Operator);
        }
        if f.lifecycle_rule.is_some() {
            let mut base = 0;
            while base < duration {
                let at = base + rng.below(storm.max(1));
                self.push(at, Ev::Lifecycle);
                base += period;
            }
        }
        if f.clock_steps_apply() {
            if let Some(c) = f.store_clock_steps {
                let at = gap(&mut rng, c.mean_every_ms);
                self.push(at, Ev::ClockStep);
            }
        }
        if let Some(c) = f.canary {
            let at = gap(&mut rng, c.mean_every_ms);
            self.push(at, Ev::CanaryStart { probe: false });
        }
        if let Some(r) = f.timing_rollout {
            let workers = self.sc.workers;
            let count = ((workers as f64 * r.share).ceil() as usize).clamp(1, workers.max(1));
            let mut order: Vec<usize> = (0..workers).collect();
            for i in (1..order.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                order.swap(i, j);
            }
            order.truncate(count);
            self.rollout_slots = order;
            let at = rng.below(duration.max(1) / 2);
            self.push(at, Ev::Rollout);
        }
        self.op_rng = rng;
    }

    fn plant_stale_lease(&mut self, age: Duration) {
        if self.sc.mode == Mode::Naive {
            return;
        }
        let gone = Identity {
            worker_id: WorkerId::new("w-gone").unwrap_or_else(|_| unreachable!()),
            incarnation: Incarnation(1),
        };
        let stamp = i64::try_from(crate::clock::UNIX_BASE_MS).unwrap_or(0)
            - i64::try_from(ms(age)).unwrap_or(0);
        let c = &self.sc.config;
        for g in 0..self.groups.len() {
            let keys = self.groups[g].keys.clone();
            let lease = LeaseRecord {
                format: FORMAT,
                leader: Some(gone.clone()),
                epoch: 3,
                nonce: 77,
                renewals: 12,
                released: false,
                lease_timeout_ms: ms(c.lease_timeout),
                renew_deadline_ms: ms(c.renew_deadline),
                drift_tolerance: c.drift_tolerance,
                successors: Vec::new(),
                roster_size: 1,
                reserved_epoch: 3,
                acquired_at_unix_ms: 0,
                written_at_unix_ms: 0,
            };
            self.store
                .force_put_at(&keys.lease(), &encode(&lease), stamp);
            let meta = MetadataRecord {
                format: FORMAT,
                epoch_high_water: 3,
                nonce: 5,
                longest_takeover_wait_ms: ms(c.takeover_wait()),
            };
            self.store
                .force_put_at(&keys.metadata(), &encode(&meta), stamp);
            self.store
                .force_put_at(&keys.worker(&gone.worker_id), b"{\"format\":1}", stamp);
        }
    }

    // ----- queue -----

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        let index = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(ev);
                i
            }
            None => {
                self.slab.push(Some(ev));
                u32::try_from(self.slab.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.queue.push(Reverse((at, self.seq, index)));
    }

    fn note(&mut self, x: u64) {
        self.hash = mix64(self.hash ^ x).wrapping_add(self.t);
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = self.trace.as_mut() {
            if trace.len() >= TRACE_LINES * 2 {
                trace.drain(..TRACE_LINES);
            }
            trace.push(format!("t={:>9.3}s {}", self.t as f64 / 1000.0, line()));
        }
    }

    fn violation(&mut self, kind: ViolationKind, detail: String) {
        self.violation_count += 1;
        self.log(|| format!("VIOLATION {kind:?}: {detail}"));
        if let Some(r) = self.recorder.as_mut() {
            r.violation(self.t, kind, &detail);
        }
        if self.violation_count == 1 {
            if let Some(trace) = &self.trace {
                // Following workers' requests takes more lines.
                let keep = if self.sc.trace_worker.is_some() {
                    TRACE_LINES
                } else {
                    400
                };
                self.first_violation_trace = trace[trace.len().saturating_sub(keep)..].to_vec();
            }
        }
        if self.violations.len() < MAX_VIOLATIONS_KEPT {
            self.violations.push(Violation {
                kind,
                at_seconds: round3(self.t as f64 / 1000.0),
                detail,
            });
        }
    }

    // ----- time helpers -----

    fn in_storm(&self, t: u64) -> bool {
        let period = ms(self.sc.fault_period).max(1);
        (t % period) < (period as f64 * self.sc.storm_share) as u64
    }

    fn storm_end(&self, t: u64) -> u64 {
        let period = ms(self.sc.fault_period).max(1);
        t - t % period + (period as f64 * self.sc.storm_share) as u64
    }

    fn calm_through(&self, from: u64, to: u64) -> bool {
        if self.sc.faults == FaultSet::none() {
            return true;
        }
        let period = ms(self.sc.fault_period).max(1);
        !self.in_storm(from) && from / period == to / period
    }

    fn local(&self, node: usize) -> Instant {
        self.procs[self.nodes[node].proc].clock.local(self.t)
    }

    fn node_alive(&self, node: usize) -> bool {
        self.procs[self.nodes[node].proc].alive
    }

    fn believes(&self, node: usize) -> bool {
        self.node_alive(node) && self.nodes[node].elector.is_leader(self.local(node))
    }

    /// The node that believes it leads `group` now, if exactly one does.
    fn leader_of(&self, group: usize) -> Option<usize> {
        let mut found = None;
        for &n in &self.groups[group].holders {
            if self.believes(n) {
                if found.is_some() {
                    return None;
                }
                found = Some(n);
            }
        }
        found
    }

    // ----- processes -----

    fn start(&mut self, slot: usize) {
        if let Some(p) = self.slots[slot].proc {
            if self.procs[p].alive {
                self.kill(p);
            }
        }
        if let Some(r) = self.recorder.as_mut() {
            r.started(slot, self.t);
        }
        let life = self.slots[slot].lives;
        self.slots[slot].lives += 1;
        let mut rng = self.seeds.worker(slot as u64, life);
        let incarnation = Incarnation(rng.next_u64());
        let wall_offset_ms = match self.sc.faults.wall_offset_ms {
            Some(max) if max > 0 => {
                i64::try_from(rng.below(2 * max)).unwrap_or(0) - i64::try_from(max).unwrap_or(0)
            }
            _ => 0,
        };
        // A monotonic clock's origin is arbitrary (boot time): up to a day.
        let offset_ms = rng.below(86_400_000);
        let clock = SimClock::new(self.slots[slot].rate_ppm, offset_ms, wall_offset_ms);
        let config = self.slots[slot].config.clone();
        self.longest_wait_started_ms = self.longest_wait_started_ms.max(ms(config.takeover_wait()));
        let p = self.procs.len();
        self.procs.push(Proc {
            slot,
            clock,
            config: config.clone(),
            alive: true,
            started: self.t,
            ended: None,
            paused_until: 0,
            partitioned_until: 0,
            nodes: Vec::new(),
        });
        if self.procs.len() == self.sc.workers {
            self.last_initial_start = self.t;
        }
        self.slots[slot].proc = Some(p);
        let identity = Identity {
            worker_id: self.slots[slot].worker_id.clone(),
            incarnation,
        };
        let now = clock.local(self.t);
        let unix_ms = clock.unix_ms(self.t);
        let namespace = Namespace::new("sim").unwrap_or_else(|_| unreachable!());
        let worker_id = identity.worker_id.clone();
        self.log(|| {
            format!(
                "{worker_id} starts (incarnation {incarnation}, rate {})",
                clock.rate()
            )
        });
        for g in 0..self.groups.len() {
            let keys = self.groups[g].keys.clone();
            let own_key = keys.worker(&identity.worker_id);
            let seed = rng.next_u64();
            let elector = match self.sc.mode {
                Mode::Naive => Elector::Naive(NaiveMachine::new(
                    config.clone(),
                    keys,
                    identity.clone(),
                    seed,
                    now,
                    unix_ms,
                )),
                _ => {
                    #[allow(unused_mut)]
                    let mut machine = Machine::with_keys(
                        config.clone(),
                        namespace.clone(),
                        keys,
                        identity.clone(),
                        self.traits,
                        seed,
                        now,
                        unix_ms,
                    );
                    #[cfg(feature = "mutations")]
                    for mutation in &self.sc.mutations {
                        machine.set_mutation(*mutation);
                    }
                    Elector::Core(machine)
                }
            };
            let writer = (self.sc.fenced_writes && self.sc.mode != Mode::Naive)
                .then(|| FencedWriter::new(self.groups[g].fenced_key.clone(), self.sc.fencing));
            let n = self.nodes.len();
            self.nodes.push(Node {
                proc: p,
                group: g,
                elector,
                armed: None,
                gen: 0,
                max_epoch_view: 0,
                holder: false,
                own_key,
                writer,
                acquired_at: 0,
                residual_term: false,
                listed_election: None,
                read_marker: None,
            });
            self.procs[p].nodes.push(n);
            self.after_input(n);
        }
    }

    fn kill(&mut self, p: usize) {
        if !self.procs[p].alive {
            return;
        }
        self.procs[p].alive = false;
        self.procs[p].ended = Some(self.t);
        let nodes = self.procs[p].nodes.clone();
        for n in nodes {
            if let Some(r) = self.recorder.as_mut() {
                r.end_belief(n, self.t);
            }
            let g = self.nodes[n].group;
            self.groups[g].holders.retain(|&h| h != n);
            self.nodes[n].holder = false;
        }
    }

    /// Crashes process `p` (restarting it after `restart_after`); with
    /// `check`, a take-over of every election it led is held to its bound
    /// if the period stays calm.
    fn crash(&mut self, p: usize, restart_after: Option<u64>, check: bool) {
        if !self.procs[p].alive {
            return;
        }
        let slot = self.procs[p].slot;
        let id = self.slots[slot].worker_id.clone();
        self.log(|| format!("{id} crashes"));
        if let Some(r) = self.recorder.as_mut() {
            r.nemesis(self.t, slot, "crash");
            r.gone(slot, "killed", self.t);
        }
        self.note(0xC4A5 ^ p as u64);
        let checked = check
            && self.foreign_at.is_none()
            && self.calm_through(self.t, self.t + ms(self.sc.liveness_bound()));
        let nodes = self.procs[p].nodes.clone();
        for n in nodes {
            self.watch_if_leading(n, WatchKind::Crash, checked);
        }
        self.kill(p);
        if let Some(after) = restart_after {
            self.push(self.t + after, Ev::Start { slot });
        }
    }

    /// Stops process `p` gracefully and restarts it after `restart_after`;
    /// with `check`, the hand-over of every election it led is watched
    /// (and held to its bound if the period stays calm).
    fn stop_gracefully(&mut self, p: usize, restart_after: u64, check: bool) {
        if !self.procs[p].alive {
            return;
        }
        let slot = self.procs[p].slot;
        let id = self.slots[slot].worker_id.clone();
        self.log(|| format!("{id} stops gracefully"));
        if let Some(r) = self.recorder.as_mut() {
            r.nemesis(self.t, slot, "graceful stop");
            r.gone(slot, "stopped", self.t);
        }
        let checked = check
            && self.foreign_at.is_none()
            && self.calm_through(self.t, self.t + ms(self.sc.handover_bound()));
        let nodes = self.procs[p].nodes.clone();
        for n in nodes {
            if check {
                self.watch_if_leading(n, WatchKind::Stop, checked);
            }
            let now = self.local(n);
            self.nodes[n].elector.stop(now);
            self.after_input(n);
        }
        self.push(self.t + restart_after, Ev::Start { slot });
    }

    /// Pauses process `p` (SIGSTOP) for `length` ms.
    fn pause(&mut self, p: usize, length: u64) {
        self.procs[p].paused_until = self.t + length;
        let (slot, t) = (self.procs[p].slot, self.t);
        if let Some(r) = self.recorder.as_mut() {
            r.nemesis(t, slot, &format!("pause {}", secs(length)));
            r.down(slot, "paused", t, t + length);
        }
    }

    /// Cuts process `p` off from the store for `length` ms.
    fn partition(&mut self, p: usize, length: u64) {
        self.procs[p].partitioned_until = self.t + length;
        let (slot, t) = (self.procs[p].slot, self.t);
        if let Some(r) = self.recorder.as_mut() {
            r.fault(t, Some(slot), format!("partition {}", secs(length)));
            r.down(slot, "partitioned", t, t + length);
        }
    }

    /// Watches the take-over after node `n` stops leading, if it leads.
    fn watch_if_leading(&mut self, n: usize, kind: WatchKind, checked: bool) {
        if !self.believes(n) {
            return;
        }
        let group = self.nodes[n].group;
        let what = format!(
            "{} {}",
            self.worker_of(n),
            if kind == WatchKind::Stop {
                "stopped"
            } else {
                "crashed"
            }
        );
        let w = self.watches.len();
        self.watch(group, Some(n), kind, what, checked, None, self.t);
        let facts = &self.groups[group].lease_facts;
        let epoch = self.nodes[n].elector_epoch();
        let holder_write = facts
            .record
            .clone()
            .filter(|r| r.epoch == epoch)
            .map(|r| (facts.at, r));
        let designation = facts.designation();
        let watch = &mut self.watches[w];
        watch.holder_write = holder_write;
        watch.designation = designation;
    }

    /// Starts watching for a take-over in `group` since `since`; a checked
    /// watch settles its bound once the event it counts from has surely
    /// happened (the holder's renewal in flight, or its release, landed).
    #[allow(clippy::too_many_arguments)]
    fn watch(
        &mut self,
        group: usize,
        old_node: Option<usize>,
        kind: WatchKind,
        what: String,
        checked: bool,
        recorded_wait_ms: Option<u64>,
        since: u64,
    ) {
        let w = self.watches.len();
        self.watches.push(Watch {
            group,
            since,
            old_node,
            kind,
            what,
            how: String::new(),
            checked,
            recorded_wait_ms,
            designation: None,
            holder_write: None,
            released_at: None,
            acquired: None,
            done: false,
        });
        self.open_watches.push(w);
        if checked {
            let settle = match kind {
                WatchKind::Crash => self.rtt.write + 1,
                WatchKind::Stop => 2 * self.rtt.write + 1,
                WatchKind::Hidden { .. } => 1,
            };
            let at = (since + settle).max(self.t);
            self.push(at, Ev::WatchSettle { watch: w });
        }
    }

    /// A random live process, not paused.
    fn random_proc(&mut self, rng_pick: u64) -> Option<usize> {
        let live: Vec<usize> = self
            .slots
            .iter()
            .filter_map(|s| s.proc)
            .filter(|&p| self.procs[p].alive && self.procs[p].paused_until <= self.t)
            .collect();
        if live.is_empty() {
            None
        } else {
            Some(live[(rng_pick % live.len() as u64) as usize])
        }
    }

    fn leader_proc(&self) -> Option<usize> {
        (0..self.groups.len())
            .find_map(|g| self.leader_of(g))
            .map(|n| self.nodes[n].proc)
    }

    // ----- the main loop -----

    /// Runs the scenario to its end and reports.
    pub fn run(mut self) -> Report {
        let wall = std::time::Instant::now();
        self.drive();
        self.finish(wall.elapsed().as_secs_f64())
    }

    /// Runs the scenario like [`Sim::run`] (the same events, the same
    /// report) and draws it: one lane per worker slot (and election, in
    /// per-plugin mode; a canary gets its own), each machine's leader
    /// beliefs on true time with their epochs, its process's down spans
    /// (killed, stopped, paused, partitioned), the faults and operator
    /// actions as marks, and the oracle's violations.
    pub fn run_with_timeline(mut self) -> (Report, Timeline) {
        let wall = std::time::Instant::now();
        let workers: Vec<(String, bool)> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.worker_id.to_string(), i >= self.sc.workers))
            .collect();
        self.recorder = Some(Recorder::new(&workers, self.groups.len()));
        self.drive();
        let title = format!(
            "coordinator-sim --seed {} --workers {} --mode {} --duration {} --faults {}: {} violation{}",
            self.sc.seed,
            self.sc.workers,
            self.sc.mode,
            coordinator_core::format_duration(self.sc.duration),
            self.sc.fault_spec,
            self.violation_count,
            if self.violation_count == 1 { "" } else { "s" },
        );
        let storms = self.storms();
        let end = self.t;
        let timeline = self
            .recorder
            .take()
            .map(|r| r.finish(title, end, &storms))
            .unwrap_or_default();
        (self.finish(wall.elapsed().as_secs_f64()), timeline)
    }

    /// Each fault period's storm, `(period, from, to)`, when faults are on.
    fn storms(&self) -> Vec<(u64, u64, u64)> {
        if self.sc.faults == FaultSet::none() {
            return Vec::new();
        }
        let period = ms(self.sc.fault_period).max(1);
        let storm = (period as f64 * self.sc.storm_share) as u64;
        (0..self.t.div_ceil(period))
            .map(|i| (i, i * period, i * period + storm))
            .filter(|(_, from, to)| to > from)
            .collect()
    }

    fn drive(&mut self) {
        let end = ms(self.sc.duration);
        while let Some(Reverse((at, _, index))) = self.queue.pop() {
            if at > end {
                break;
            }
            let Some(ev) = self.slab[index as usize].take() else {
                continue;
            };
            self.free.push(index);
            self.t = at;
            self.events += 1;
            self.dispatch(ev);
        }
        self.t = end;
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Start { slot } => self.start(slot),
            Ev::Timer { node, gen } => self.on_timer(node, gen),
            Ev::FencedTimer { node, token } => self.on_fenced_timer(node, token),
            Ev::Apply {
                node,
                id,
                tag,
                request,
                then,
            } => self.on_apply(node, id, tag, request, then),
            Ev::Reply {
                node,
                id,
                tag,
                response,
            } => self.on_reply(node, id, tag, response),
            Ev::Episode(kind) => self.on_episode(kind),
            Ev::CrashLeader => {
                if let Some(p) = self.leader_proc() {
                    self.crash(p, Some(30_000), true);
                }
            }
            Ev::StopLeader => {
                if let Some(p) = self.leader_proc() {
                    self.stop_gracefully(p, 10_000, true);
                }
            }
            Ev::Probe => self.on_probe(),
            Ev::Foreign => self.on_foreign(),
            Ev::Operator => self.on_operator(),
            Ev::Script(i) => self.on_script(i),
            Ev::RecoveryProbe => self.on_recovery_probe(),
            Ev::Lifecycle => self.on_lifecycle(),
            Ev::ClockStep => self.on_clock_step(),
            Ev::Rollout => self.on_rollout(),
            Ev::CanaryStart { probe } => self.on_canary_start(probe),
            Ev::CanaryRenew { canary } => self.on_canary_renew(canary),
            Ev::CanaryRollback { canary } => self.on_canary_rollback(canary),
            Ev::CanaryGiveUp { canary } => self.on_canary_give_up(canary),
            Ev::WatchSettle { watch } => self.on_watch_settle(watch),
            Ev::WatchCheck { watch, deadline } => self.on_watch_check(watch, deadline),
            Ev::RosterCheck {
                group,
                worker_id,
                since,
                until,
            } => self.on_roster_check(group, worker_id, since, until),
            Ev::ForeignCheck => self.on_foreign_check(),
        }
    }

    fn on_timer(&mut self, node: usize, gen: u32) {
        if self.nodes[node].gen != gen || !self.node_alive(node) {
            return;
        }
        let p = self.nodes[node].proc;
        if self.procs[p].paused_until > self.t {
            let at = self.procs[p].paused_until;
            self.push(at, Ev::Timer { node, gen });
            return;
        }
        self.note(node as u64);
        self.nodes[node].armed = None;
        let now = self.local(node);
        self.nodes[node].elector.handle_timeout(now);
        self.after_input(node);
    }

    fn on_reply(&mut self, node: usize, id: RequestId, tag: Tag, response: Response) {
        if !self.node_alive(node) {
            return;
        }
        let p = self.nodes[node].proc;
        if self.procs[p].paused_until > self.t {
            let at = self.procs[p].paused_until;
            self.push(
                at,
                Ev::Reply {
                    node,
                    id,
                    tag,
                    response,
                },
            );
            return;
        }
        self.note((node as u64) << 20 ^ id.0 ^ response_code(&response));
        if self.traced(node) {
            let who = self.worker_of(node);
            let what = match &response {
                Response::Object { body, version, .. } => {
                    format!(
                        "object v{} {}",
                        version.as_str(),
                        String::from_utf8_lossy(body)
                    )
                }
                Response::Listed(entries) => format!("{} keys", entries.len()),
                other => format!("{other:?}"),
            };
            self.log(|| format!("{who} gets #{} {tag:?}: {what}", id.0));
        }
        let now = self.local(node);
        match tag {
            Tag::Machine => {
                self.nodes[node].elector.handle_response(id, response, now);
                self.after_input(node);
            }
            Tag::Fenced => {
                let leading = self.nodes[node].elector.is_leader(now);
                let next = match self.nodes[node].writer.as_mut() {
                    Some(w) => w.on_reply(id, response, leading),
                    None => Next::Idle,
                };
                self.fenced_next(node, next);
            }
        }
    }

    /// Drains a machine after an input: sends its requests, takes its
    /// events, checks the invariants and re-arms its timer.
    fn after_input(&mut self, n: usize) {
        while let Some(action) = self.nodes[n].elector.poll_action() {
            self.send(n, action.id, Tag::Machine, action.request);
        }
        while let Some(event) = self.nodes[n].elector.poll_event() {
            self.on_event(n, event);
        }
        self.note_agreement(self.nodes[n].group);
        if let Elector::Core(m) = &self.nodes[n].elector {
            let epoch = m.view().epoch;
            let max = self.nodes[n].max_epoch_view;
            if epoch < max {
                let id = self.worker_of(n);
                self.violation(
                    ViolationKind::EpochViewDecreased,
                    format!("{id}: epoch view went back from {max} to {epoch}"),
                );
            }
            self.nodes[n].max_epoch_view = max.max(epoch);
        }
        self.update_holder(n);
        self.record_belief(n);
        self.rearm(n);
    }

    /// Tells the recorder, if any, what node `n` believes now.
    fn record_belief(&mut self, n: usize) {
        if self.recorder.is_none() {
            return;
        }
        let node = &self.nodes[n];
        let proc = &self.procs[node.proc];
        let belief = if !proc.alive {
            None
        } else {
            match &node.elector {
                Elector::Core(m) => m
                    .term()
                    .map(|(epoch, deadline)| (epoch, proc.clock.true_at(deadline))),
                // The replaced system believes until it learns otherwise.
                Elector::Naive(m) => m.is_leader(self.local(n)).then_some((0, u64::MAX)),
            }
        };
        let (slot, group, t) = (proc.slot, node.group, self.t);
        if let Some(r) = self.recorder.as_mut() {
            r.belief(n, slot, group, t, belief);
        }
    }

    /// A node of group `g` acquired: every take-over watched in `g` (that
    /// did not stop with this node) is done, and sampled.
    fn took_over(&mut self, g: usize, n: usize) {
        let t = self.t;
        let mut i = 0;
        while i < self.open_watches.len() {
            let w = &mut self.watches[self.open_watches[i]];
            if w.group == g && w.old_node != Some(n) && t >= w.since {
                w.acquired = Some(t);
                let secs = (t - w.since) as f64 / 1000.0;
                match w.kind {
                    WatchKind::Crash => self.failovers.push(secs),
                    WatchKind::Stop => self.handovers.push(secs),
                    WatchKind::Hidden { .. } => self.recoveries.push(secs),
                }
                self.open_watches.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    fn worker_of(&self, n: usize) -> String {
        let p = self.nodes[n].proc;
        format!("{}#{}", self.slots[self.procs[p].slot].worker_id, p)
    }

    fn update_holder(&mut self, n: usize) {
        let g = self.nodes[n].group;
        let holds = self.node_alive(n) && self.nodes[n].elector.holds_term();
        if holds != self.nodes[n].holder {
            self.nodes[n].holder = holds;
            if holds {
                self.groups[g].holders.push(n);
            } else {
                self.groups[g].holders.retain(|&h| h != n);
            }
        }
        if !holds || !self.believes(n) {
            return;
        }
        let others: Vec<usize> = self.groups[g]
            .holders
            .iter()
            .copied()
            .filter(|&h| h != n && self.believes(h))
            .collect();
        let t = self.t;
        let canaries: Vec<usize> = (0..self.canaries.len())
            .filter(|&k| self.canaries[k].group == g && self.canaries[k].believes_until > t)
            .collect();
        for k in canaries {
            self.canary_split(k, n);
        }
        for h in others {
            let pair = (n.min(h), n.max(h));
            // The residual case: the old leader (its term from before the
            // wipe) leads on to its deadline next to the recreated one.
            let residual = |a: usize, b: usize| {
                self.nodes[a].residual_term
                    && self.groups[g]
                        .wiped_at
                        .is_some_and(|w| self.nodes[b].acquired_at <= w)
            };
            if residual(n, h) || residual(h, n) {
                if self.split_pairs.insert(pair) {
                    self.residual_cases += 1;
                    let (a, b) = (self.worker_of(n), self.worker_of(h));
                    self.log(|| format!("residual case: {a} and {b} both lead after the wipe"));
                }
                continue;
            }
            if self.split_pairs.insert(pair) {
                let (a, b) = (self.worker_of(n), self.worker_of(h));
                let ea = self.nodes[n].elector_epoch();
                let eb = self.nodes[h].elector_epoch();
                self.violation(
                    ViolationKind::SplitBrain,
                    format!(
                        "group {g}: {a} (epoch {ea}) and {b} (epoch {eb}) both believe they lead"
                    ),
                );
            }
        }
    }

    fn rearm(&mut self, n: usize) {
        let to = self.nodes[n].elector.poll_timeout();
        if to == self.nodes[n].armed {
            return;
        }
        self.nodes[n].armed = to;
        self.nodes[n].gen = self.nodes[n].gen.wrapping_add(1);
        if let Some(local) = to {
            let p = self.nodes[n].proc;
            let at = self.procs[p].clock.true_at(local).max(self.t);
            let gen = self.nodes[n].gen;
            self.push(at, Ev::Timer { node: n, gen });
        }
    }

    /// Records when every live worker of group `g` first agrees on its
    /// leader (checked only until then).
    fn note_agreement(&mut self, g: usize) {
        let group = &self.groups[g];
        if group.all_agree_at.is_some()
            || group.first_acquired.is_none()
            || self.procs.len() < self.sc.workers
        {
            return;
        }
        let mut agreed: Option<WorkerId> = None;
        for node in self.nodes.iter().filter(|n| n.group == g) {
            if !self.procs[node.proc].alive {
                continue;
            }
            let Elector::Core(m) = &node.elector else {
                return;
            };
            let Some(leader) = m.view().leader else {
                return;
            };
            match &agreed {
                Some(first) if *first != leader => return,
                Some(_) => {}
                None => agreed = Some(leader),
            }
        }
        if agreed.is_some() {
            self.groups[g].all_agree_at = Some(self.t);
        }
    }

    fn on_event(&mut self, n: usize, event: Event) {
        let g = self.nodes[n].group;
        match event {
            Event::BecameLeader { epoch, .. } => {
                self.note(0xBEC0 ^ epoch);
                let id = self.worker_of(n);
                self.log(|| format!("{id} became leader of group {g}, epoch {epoch}"));
                self.acquisitions += 1;
                // The documented residual case: after everything of the
                // namespace was deleted, a worker that has never seen a
                // lease finds nothing to tell it from a new one and creates
                // it at once; epochs start again.
                let residual = self.groups[g].wiped_at.is_some_and(|wiped| {
                    let clean = |listed: Option<(u64, bool)>| {
                        listed.is_some_and(|(at, clean)| clean && at >= wiped)
                    };
                    !self.groups[g].acquired_since_wipe
                        && self.nodes[n].max_epoch_view == 0
                        && clean(self.nodes[n].listed_election)
                        && clean(self.nodes[n].read_marker)
                });
                self.groups[g].acquired_since_wipe = true;
                self.nodes[n].residual_term = residual;
                if residual {
                    self.residual_cases += 1;
                    let since = self.groups[g].wiped_at.unwrap_or(0) as f64 / 1000.0;
                    self.log(|| {
                        format!("residual case: {id} recreates the namespace wiped at {since:.3} s with epoch {epoch}")
                    });
                    self.groups[g].max_acquired = epoch;
                } else if self.sc.mode != Mode::Naive {
                    let max = self.groups[g].max_acquired;
                    if epoch <= max && self.groups[g].carriers_gone {
                        // Documented: every record carrying the epoch (the
                        // lease, metadata.json and the marker) was deleted
                        // since it was acquired; epochs may start below it.
                        self.epochs_restarted += 1;
                        self.log(|| {
                            format!("{id} acquired epoch {epoch} after every record of epoch {max} was deleted")
                        });
                        self.groups[g].max_acquired = epoch;
                    } else if epoch <= max {
                        self.violation(
                            ViolationKind::EpochNotIncreasing,
                            format!("group {g}: {id} acquired epoch {epoch}, not above {max}"),
                        );
                    }
                    if epoch > max {
                        self.groups[g].carriers_gone = false;
                    }
                    self.groups[g].max_acquired = self.groups[g].max_acquired.max(epoch);
                }
                let previous = self.groups[g].last_acquirer;
                if previous.is_some_and(|p| p != n) {
                    self.leader_changes += 1;
                }
                let group = &mut self.groups[g];
                group.last_acquirer = Some(n);
                group.last_acquired_t = self.t;
                group.first_acquired.get_or_insert(self.t);
                self.nodes[n].acquired_at = self.t;
                self.took_over(g, n);
                if let Some(w) = self.nodes[n].writer.as_mut() {
                    let next = w.begin(epoch);
                    self.fenced_next(n, next);
                }
            }
            Event::StoppedLeading { epoch, reason } => {
                let id = self.worker_of(n);
                self.log(|| format!("{id} stopped leading epoch {epoch}: {reason:?}"));
                self.note(0x5709 ^ epoch);
                if let Some(w) = self.nodes[n].writer.as_mut() {
                    w.end();
                }
            }
            Event::Refused { .. } => {
                self.groups[g].refused += 1;
                let id = self.worker_of(n);
                self.log(|| format!("{id} refused the namespace (foreign lease)"));
            }
            Event::DuplicateWorkerId { .. } => self.duplicates_reported += 1,
            _ => {}
        }
    }

    // ----- requests -----

    fn check_request(&mut self, n: usize, request: &Request) {
        let own = &self.nodes[n].own_key;
        let bad = match request {
            Request::Put { key, .. } => key != own,
            Request::Delete { key, if_version } => {
                key != own
                    && (!key.contains("/workers/")
                        || (if_version.is_none() && self.traits.conditional_delete))
            }
            _ => false,
        };
        if bad {
            let id = self.worker_of(n);
            let key = request.key().to_owned();
            self.violation(
                ViolationKind::UnconditionalWrite,
                format!("{id} wrote shared state `{key}` without a condition"),
            );
        }
    }

    /// Whether node `n`'s requests are traced (`Scenario::trace_worker`).
    fn traced(&self, n: usize) -> bool {
        self.trace.is_some()
            && self.sc.trace_worker.as_deref().is_some_and(|list| {
                let id = self.slots[self.procs[self.nodes[n].proc].slot]
                    .worker_id
                    .as_str();
                list == "all" || list.split(',').any(|w| w.trim() == id)
            })
    }

    fn send(&mut self, n: usize, id: RequestId, tag: Tag, request: Request) {
        let t = self.t;
        if self.traced(n) {
            let who = self.worker_of(n);
            let what = match &request {
                Request::Get { key, if_changed } => {
                    format!(
                        "GET {key}{}",
                        if if_changed.is_some() {
                            " (if changed)"
                        } else {
                            ""
                        }
                    )
                }
                Request::Create { key, body } => {
                    format!("CREATE {key} {}", String::from_utf8_lossy(body))
                }
                Request::CompareAndSwap {
                    key,
                    expected,
                    body,
                } => {
                    format!(
                        "CAS {key} on {} {}",
                        expected.as_str(),
                        String::from_utf8_lossy(body)
                    )
                }
                Request::Put { key, body } => {
                    format!("PUT {key} {}", String::from_utf8_lossy(body))
                }
                Request::List { prefix } => format!("LIST {prefix}"),
                Request::Delete { key, if_version } => format!("DELETE {key} {if_version:?}"),
            };
            self.log(|| format!("{who} sends #{} {tag:?}: {what}", id.0));
        }
        match tag {
            Tag::Machine => {
                self.requests.count(&request);
                if self.believes(n) {
                    self.leader_requests.count(&request);
                }
                self.check_request(n, &request);
            }
            Tag::Fenced => self.fenced.requests += 1,
        }
        let p = self.nodes[n].proc;
        let write = is_write(&request);
        let timeout = ms(self.procs[p].config.request_timeout);
        let timed_out = || {
            if write {
                Failure::Ambiguous {
                    message: "timed out".into(),
                }
            } else {
                Failure::Transient {
                    message: "timed out".into(),
                }
            }
        };
        if self.procs[p].partitioned_until > t {
            let response = Response::Failed(timed_out());
            self.push(
                t + timeout,
                Ev::Reply {
                    node: n,
                    id,
                    tag,
                    response,
                },
            );
            return;
        }
        let lat = self.sc.latency.sample(&mut self.latency_rng, write);
        let fault = match &self.sc.faults.requests {
            Some(r) if self.in_storm(t) => r.sample(&mut self.fault_rng, write, timeout),
            _ => RequestFault::None,
        };
        if !matches!(fault, RequestFault::None) {
            let period = t / ms(self.sc.fault_period).max(1);
            if let Some(r) = self.recorder.as_mut() {
                r.request_fault(period);
            }
        }
        let (mut apply, mut reply) = (lat.apply_ms, lat.reply_ms);
        let mut late = false;
        match fault {
            RequestFault::Refused(failure) => {
                let at = t + (apply + reply).min(timeout);
                self.push(
                    at,
                    Ev::Reply {
                        node: n,
                        id,
                        tag,
                        response: Response::Failed(failure),
                    },
                );
                return;
            }
            RequestFault::AmbiguousNotApplied => {
                let at = t + (apply + reply).min(timeout);
                let response = Response::Failed(Failure::Ambiguous {
                    message: "injected: connection reset".into(),
                });
                self.push(
                    at,
                    Ev::Reply {
                        node: n,
                        id,
                        tag,
                        response,
                    },
                );
                return;
            }
            RequestFault::AmbiguousApplied => {
                let failure = Failure::Ambiguous {
                    message: "injected: reset after commit".into(),
                };
                self.push(
                    t + apply,
                    Ev::Apply {
                        node: n,
                        id,
                        tag,
                        request,
                        then: Then::Fail(failure, reply),
                    },
                );
                return;
            }
            // Lands after the client gave up: the timeout path below.
            RequestFault::Late(after) => {
                apply = after;
                late = true;
            }
            RequestFault::HiddenRetry => {
                self.push(
                    t + apply,
                    Ev::Apply {
                        node: n,
                        id,
                        tag,
                        request,
                        then: Then::Retry(reply),
                    },
                );
                return;
            }
            RequestFault::Spike(extra) => {
                apply += extra / 2;
                reply += extra - extra / 2;
            }
            RequestFault::None => {}
        }
        if late || apply + reply > timeout {
            self.push(
                t + apply,
                Ev::Apply {
                    node: n,
                    id,
                    tag,
                    request,
                    then: Then::Discard,
                },
            );
            let response = Response::Failed(timed_out());
            self.push(
                t + timeout,
                Ev::Reply {
                    node: n,
                    id,
                    tag,
                    response,
                },
            );
        } else {
            self.push(
                t + apply,
                Ev::Apply {
                    node: n,
                    id,
                    tag,
                    request,
                    then: Then::Reply(reply),
                },
            );
        }
    }

    fn on_apply(&mut self, n: usize, id: RequestId, tag: Tag, request: Request, then: Then) {
        let skew = match self.sc.faults.store_clock_skew_ms {
            0 => 0,
            s => {
                i64::try_from(self.fault_rng.below(2 * s + 1)).unwrap_or(0)
                    - i64::try_from(s).unwrap_or(0)
            }
        };
        let skew = skew + self.store_clock_offset_ms;
        let mut response = self.store.apply(&request, self.t, skew);
        if tag == Tag::Fenced {
            self.check_fenced(n, &request, &response);
        } else {
            self.note_lease_write(&request, &response);
            self.note_listing(n, &request, &response);
        }
        if matches!(then, Then::Retry(_)) {
            response = self.store.apply(&request, self.t, skew);
            if tag == Tag::Fenced {
                self.check_fenced(n, &request, &response);
            } else {
                self.note_lease_write(&request, &response);
            }
        }
        match then {
            Then::Reply(after) | Then::Retry(after) => self.push(
                self.t + after,
                Ev::Reply {
                    node: n,
                    id,
                    tag,
                    response,
                },
            ),
            Then::Fail(failure, after) => self.push(
                self.t + after,
                Ev::Reply {
                    node: n,
                    id,
                    tag,
                    response: Response::Failed(failure),
                },
            ),
            Then::Discard => {}
        }
    }

    /// Keeps the facts the oracle's bounds use about a lease write that
    /// landed: when, what it says (its holder's timings, its successors).
    fn note_lease_write(&mut self, request: &Request, response: &Response) {
        if !matches!(response, Response::Written { .. }) {
            return;
        }
        let (key, body) = match request {
            Request::Create { key, body }
            | Request::CompareAndSwap { key, body, .. }
            | Request::Put { key, body } => (key, body),
            _ => return,
        };
        let Some(&g) = self.lease_keys.get(key.as_str()) else {
            return;
        };
        let record = decode::<LeaseRecord>(key, body).ok();
        let released = record.as_ref().is_some_and(|r| r.released);
        if let Some(r) = &record {
            // A write of a holder whose take-over is watched (its renewal
            // in flight at the crash, or its release).
            let t = self.t;
            for &w in &self.open_watches {
                let watch = &mut self.watches[w];
                let Some((_, held)) = &watch.holder_write else {
                    continue;
                };
                if watch.group != g || held.epoch != r.epoch {
                    continue;
                }
                if r.released {
                    watch.released_at.get_or_insert(t);
                } else if r.leader == held.leader {
                    watch.holder_write = Some((t, r.clone()));
                }
            }
        }
        self.set_lease_facts(g, record);
        if released {
            self.canary_takes(g);
        }
    }

    /// What a survey's listing and marker read showed (for the residual
    /// case: only a namespace that looked new may be recreated at once).
    fn note_listing(&mut self, n: usize, request: &Request, response: &Response) {
        let keys = &self.groups[self.nodes[n].group].keys;
        match (request, response) {
            (Request::List { prefix }, Response::Listed(entries))
                if *prefix == keys.election_prefix() =>
            {
                let own = &self.nodes[n].own_key;
                let clean = entries.iter().all(|e| {
                    &e.key == own
                        || (keys.worker_of_key(&e.key).is_some()
                            && self.store.object(&e.key).is_some_and(|o| {
                                decode::<HeartbeatRecord>(&e.key, &o.body)
                                    .is_ok_and(|h| h.epoch_seen == 0)
                            }))
                });
                self.nodes[n].listed_election = Some((self.t, clean));
            }
            (Request::Get { key, .. }, response) if key == keys.election_marker() => {
                let absent = matches!(response, Response::Absent);
                self.nodes[n].read_marker = Some((self.t, absent));
            }
            _ => {}
        }
    }

    fn set_lease_facts(&mut self, g: usize, record: Option<LeaseRecord>) {
        let t = self.t;
        let facts = &mut self.groups[g].lease_facts;
        facts.at = t;
        match &record {
            Some(r) => {
                let first = r.successors.first().cloned();
                if first != facts.designated || facts.unreadable {
                    facts.designated = first;
                    facts.designated_since = t;
                }
                facts.unreadable = false;
            }
            None => facts.unreadable = true,
        }
        facts.record = record;
    }

    fn check_fenced(&mut self, n: usize, request: &Request, response: &Response) {
        let (key, body) = match request {
            Request::Create { key, body }
            | Request::CompareAndSwap { key, body, .. }
            | Request::Put { key, body } => (key, body),
            _ => return,
        };
        let Some(&g) = self.fenced_keys.get(key.as_str()) else {
            return;
        };
        let Some((epoch, _, seal)) = fenced::parse(body) else {
            return;
        };
        let sealed = self.groups[g].max_sealed;
        match response {
            Response::Written { .. } => {
                self.fenced.writes_applied += 1;
                if epoch < sealed {
                    let id = self.worker_of(n);
                    self.violation(
                        ViolationKind::FencedWriteApplied,
                        format!(
                            "group {g}: {id}'s write under epoch {epoch} applied after epoch {sealed} sealed the object"
                        ),
                    );
                }
                if seal {
                    self.fenced.seals += 1;
                    self.groups[g].max_sealed = sealed.max(epoch);
                }
            }
            Response::Conflict | Response::AlreadyExists if epoch < sealed => {
                self.fenced.old_epoch_rejected += 1;
            }
            _ => {}
        }
    }

    fn fenced_next(&mut self, n: usize, next: Next) {
        match next {
            Next::Send(id, request) => {
                let now = self.local(n);
                // The guard is checked synchronously just before the effect.
                if self.nodes[n].elector.is_leader(now) {
                    self.send(n, id, Tag::Fenced, request);
                } else if let Some(w) = self.nodes[n].writer.as_mut() {
                    w.end();
                }
            }
            Next::Wait(after) => {
                if let Some(w) = self.nodes[n].writer.as_mut() {
                    w.timer_token += 1;
                    let token = w.timer_token;
                    // The plugin's timer runs on the worker's clock.
                    let p = self.nodes[n].proc;
                    let clock = self.procs[p].clock;
                    let at = clock.true_at(clock.local(self.t) + Duration::from_millis(after));
                    self.push(at.max(self.t), Ev::FencedTimer { node: n, token });
                }
            }
            Next::Idle => {}
        }
    }

    fn on_fenced_timer(&mut self, n: usize, token: u64) {
        if !self.node_alive(n) {
            return;
        }
        let p = self.nodes[n].proc;
        if self.procs[p].paused_until > self.t {
            let at = self.procs[p].paused_until;
            self.push(at, Ev::FencedTimer { node: n, token });
            return;
        }
        let leading = self.nodes[n].elector.is_leader(self.local(n));
        let next = match self.nodes[n].writer.as_mut() {
            Some(w) => w.on_timer(token, leading),
            None => Next::Idle,
        };
        self.fenced_next(n, next);
    }

    // ----- faults -----

    fn on_episode(&mut self, kind: EpisodeKind) {
        let f = &self.sc.faults;
        let episodes: Option<Episodes> = match kind {
            EpisodeKind::Pause => f.pauses,
            EpisodeKind::Crash => f.crashes,
            EpisodeKind::Partition => f.leader_partitions,
            EpisodeKind::GracefulRestart => f.graceful_restarts,
        };
        let Some(e) = episodes else {
            return;
        };
        let mut rng = std::mem::replace(&mut self.sched_rng, SplitMix64::new(0));
        let gap = e.next_gap(&mut rng);
        let length = e.length(&mut rng);
        let pick = rng.next_u64();
        let prefer_leader = rng.chance(0.5);
        self.sched_rng = rng;
        self.push(self.t + gap, Ev::Episode(kind));
        if !self.in_storm(self.t) || self.foreign_at.is_some() {
            return;
        }
        let storm_end = self.storm_end(self.t);
        let clipped = length.min(storm_end.saturating_sub(self.t));
        match kind {
            EpisodeKind::Pause => {
                let target = if self.sc.faults.pause_leader && prefer_leader {
                    self.leader_proc()
                } else {
                    None
                }
                .or_else(|| self.random_proc(pick));
                if let Some(p) = target {
                    let id = self.slots[self.procs[p].slot].worker_id.clone();
                    self.log(|| format!("{id} pauses for {clipped} ms"));
                    self.pause(p, clipped);
                }
            }
            EpisodeKind::Crash => {
                let target = if prefer_leader {
                    self.leader_proc()
                } else {
                    None
                }
                .or_else(|| self.random_proc(pick));
                if let Some(p) = target {
                    self.crash(p, Some(length), false);
                }
            }
            EpisodeKind::Partition => {
                if let Some(p) = self.leader_proc() {
                    let id = self.slots[self.procs[p].slot].worker_id.clone();
                    self.log(|| format!("{id} (leader) partitioned for {clipped} ms"));
                    self.partition(p, clipped);
                }
            }
            EpisodeKind::GracefulRestart => {
                if let Some(p) = self.leader_proc() {
                    self.stop_gracefully(p, length, true);
                }
            }
        }
    }

    /// Whether a probe may disturb the elections now: nothing is being
    /// held to a bound (a probe's crash or fault would change what the
    /// bound assumed) and no canary is about.
    fn probe_may_run(&self) -> bool {
        self.foreign_at.is_none()
            && !self.watches.iter().any(|w| w.checked && !w.done)
            && !self
                .canaries
                .iter()
                .any(|c| c.awaiting_until.is_some() || c.leading || c.believes_until > self.t)
    }

    fn on_probe(&mut self) {
        if !self.probe_may_run() {
            return;
        }
        let roster_bound = ms(self.sc.roster_bound());
        let restart = roster_bound * 2 + ms(self.sc.liveness_bound()) + 10_000;
        // The leader dies…
        let leader = self.leader_proc();
        if let Some(p) = leader {
            let id = self.slots[self.procs[p].slot].worker_id.clone();
            self.crash(p, Some(restart), true);
            self.roster_probe(id);
        }
        // …and so does a follower.
        let pick = self.sched_rng.next_u64();
        if let Some(p) = self.random_proc(pick) {
            if Some(p) != leader {
                let id = self.slots[self.procs[p].slot].worker_id.clone();
                self.crash(p, Some(restart), false);
                self.roster_probe(id);
            }
        }
    }

    fn roster_probe(&mut self, worker_id: WorkerId) {
        let period = ms(self.sc.fault_period).max(1);
        let until = self.t - self.t % period + period;
        let at = self.t + ms(self.sc.roster_bound());
        for group in 0..self.groups.len() {
            self.push(
                at,
                Ev::RosterCheck {
                    group,
                    worker_id: worker_id.clone(),
                    since: self.t,
                    until,
                },
            );
        }
    }

    // ----- take-overs held to their bounds -----

    fn on_watch_settle(&mut self, w: usize) {
        if self.foreign_at.is_some() || self.watches[w].done {
            return;
        }
        let since = self.watches[w].since;
        let Some((deadline, how)) = self.takeover_deadline(w) else {
            // Nobody alive who could take over: the bound runs from the
            // first (re)start.
            if self.calm_through(since, self.t + 1_000) {
                self.push(self.t + 1_000, Ev::WatchSettle { watch: w });
            } else {
                self.watches[w].done = true;
            }
            return;
        };
        if !self.calm_through(since, deadline) {
            // Faults resume before the bound ends: not held to it.
            self.watches[w].done = true;
            return;
        }
        self.log(|| {
            format!(
                "take-over bound: {:.3} s after {:.3} s {how}",
                (deadline - since) as f64 / 1000.0,
                since as f64 / 1000.0
            )
        });
        self.watches[w].how = how;
        if self.watches[w].acquired.is_some() || deadline < self.t {
            self.conclude(w, deadline);
        } else {
            self.push(deadline + 1, Ev::WatchCheck { watch: w, deadline });
        }
    }

    fn on_watch_check(&mut self, w: usize, deadline: u64) {
        if self.foreign_at.is_some() || self.watches[w].done {
            return;
        }
        self.conclude(w, deadline);
    }

    fn conclude(&mut self, w: usize, deadline: u64) {
        let watch = &mut self.watches[w];
        watch.done = true;
        let (group, since, kind, acquired) = (watch.group, watch.since, watch.kind, watch.acquired);
        match kind {
            WatchKind::Hidden { .. } => self.recovery_checks += 1,
            _ => self.liveness_checks += 1,
        }
        if let Some(at) = acquired.filter(|a| *a <= deadline) {
            self.margins.push((deadline - at) as f64 / 1000.0);
            return;
        }
        let took = match acquired {
            Some(at) => format!(
                "a new leader came {:.3} s after",
                (at - since) as f64 / 1000.0
            ),
            None => format!(
                "no new leader {:.3} s after",
                (self.t - since) as f64 / 1000.0
            ),
        };
        let kind = match kind {
            WatchKind::Crash => ViolationKind::Liveness,
            WatchKind::Stop => ViolationKind::Handover,
            WatchKind::Hidden { .. } => ViolationKind::Recovery,
        };
        let (what, how) = (&self.watches[w].what, &self.watches[w].how);
        let detail = format!(
            "group {group}: {took} {what} at {:.3} s; bound {:.3} s {how}",
            since as f64 / 1000.0,
            (deadline - since) as f64 / 1000.0,
        );
        self.violation(kind, detail);
    }

    /// The true instant by which watch `w`'s take-over must have happened
    /// (see the `bounds` module), and how it was derived; `None` while no
    /// worker that could take over is alive.
    fn takeover_deadline(&self, w: usize) -> Option<(u64, String)> {
        #[derive(Clone, Copy)]
        enum From {
            Crash(Promise),
            Release,
            Hidden {
                recorded: Option<u64>,
                newer: bool,
                missing: bool,
            },
        }
        let watch = &self.watches[w];
        let g = watch.group;
        let facts = &self.groups[g].lease_facts;
        let told = self.sc.told.as_ref();
        let hidden = |recorded, newer, missing| From::Hidden {
            recorded,
            newer,
            missing,
        };
        let designation = watch.designation.clone();
        let (event, from) = match (watch.kind, &watch.holder_write) {
            (
                WatchKind::Hidden {
                    newer_format,
                    missing,
                },
                _,
            ) => (
                watch.since,
                hidden(watch.recorded_wait_ms, newer_format, missing),
            ),
            (WatchKind::Stop, Some(_)) if watch.released_at.is_some() => {
                (watch.released_at.unwrap_or(watch.since), From::Release)
            }
            (_, Some((at, r))) => {
                let promise = match told {
                    Some(c) => Promise::of(c),
                    None => Promise {
                        lease_timeout_ms: r.lease_timeout_ms,
                        renew_deadline_ms: r.renew_deadline_ms,
                        drift_tolerance: r.drift_tolerance,
                    },
                };
                (*at, From::Crash(promise))
            }
            // The holder's lease was already gone or unreadable: its
            // successor waits as for a hidden holder.
            (_, None) => (
                facts.at.min(watch.since),
                hidden(self.recorded_wait_ms(g), false, true),
            ),
        };
        let record = watch.holder_write.as_ref().map(|(_, r)| r);
        let longest = match told {
            Some(c) => ms(c.takeover_wait()),
            None => self.longest_wait_started_ms,
        };
        let mut best: Option<(u64, String)> = None;
        for slot in &self.slots {
            let Some(p) = slot.proc else { continue };
            let proc = &self.procs[p];
            if !proc.alive {
                continue;
            }
            for &n in &proc.nodes {
                if self.nodes[n].group != g
                    || Some(n) == watch.old_node
                    || self.nodes[n].elector.is_finished()
                {
                    continue;
                }
                let config = told.unwrap_or(&proc.config);
                let rate = proc.clock.rate();
                let mut f = Follower {
                    config,
                    rate,
                    started: proc.started,
                    designated: false,
                    rank: 0,
                };
                if let Some(r) = record {
                    let leader = r.leader.as_ref().map(|l| &l.worker_id);
                    let mut listed = r.successors.iter().filter(|id| Some(*id) != leader);
                    f.rank = listed
                        .position(|id| *id == slot.worker_id)
                        .unwrap_or(r.successors.len());
                }
                if let Some((designated, since)) = &designation {
                    // The designated successor polls faster once it has
                    // read a lease that names it first.
                    let learned = (*since).max(proc.started)
                        + bounds::on_clock(bounds::poll_ms(config, false), rate)
                        + self.rtt.read_reply
                        + self.rtt.read;
                    f.designated = *designated == slot.worker_id && event >= learned;
                }
                let (deadline, why) = match from {
                    From::Crash(promise) => (
                        f.after_crash(event, &promise, &self.rtt),
                        format!("waits {} ms", f.takeover_wait_ms(&promise)),
                    ),
                    From::Release => (f.after_release(event, &self.rtt), "no wait".to_owned()),
                    From::Hidden {
                        recorded,
                        newer,
                        missing,
                    } => {
                        let wait = hidden_wait_ms(config, longest, recorded, newer);
                        (
                            f.after_hiding(event, wait, missing, &self.rtt),
                            format!(
                                "waits {wait} ms{}",
                                if missing {
                                    " from its vacant lease"
                                } else {
                                    ""
                                }
                            ),
                        )
                    }
                };
                if best.as_ref().is_none_or(|(d, _)| deadline < *d) {
                    let how = format!(
                        "(from {:.3} s, {}: {}{}, rank {}, clock rate {:.4}, {why})",
                        event as f64 / 1000.0,
                        match from {
                            From::Crash(_) => "the holder's last write",
                            From::Release => "its release",
                            From::Hidden { .. } => "the fault",
                        },
                        slot.worker_id,
                        if f.designated { " designated" } else { "" },
                        f.rank,
                        rate
                    );
                    best = Some((deadline, how));
                }
            }
        }
        best
    }

    /// The takeover bound `metadata.json` records now, if it is usable, or
    /// else its copy in the election's marker (which a survey reads).
    fn recorded_wait_ms(&self, g: usize) -> Option<u64> {
        let keys = &self.groups[g].keys;
        [keys.metadata(), keys.election_marker().to_owned()]
            .iter()
            .find_map(|key| {
                let object = self.store.object(key)?;
                decode::<MetadataRecord>(key, &object.body)
                    .ok()
                    .map(|m| m.longest_takeover_wait_ms)
                    .filter(|b| *b > 0)
            })
    }

    fn on_roster_check(&mut self, group: usize, worker_id: WorkerId, since: u64, until: u64) {
        if self.foreign_at.is_some() || self.t >= until {
            return;
        }
        // Another live process with the same id keeps it in the roster.
        let alive_twin = self
            .procs
            .iter()
            .any(|p| p.alive && p.started <= self.t && self.slots[p.slot].worker_id == worker_id);
        if alive_twin {
            return;
        }
        let bound = ms(self.sc.roster_bound());
        let retry = |sim: &mut Self, at: u64| {
            if at < until {
                sim.push(
                    at,
                    Ev::RosterCheck {
                        group,
                        worker_id: worker_id.clone(),
                        since,
                        until,
                    },
                );
            }
        };
        let Some(leader) = self.leader_of(group) else {
            retry(self, self.t + 1000);
            return;
        };
        let from = since.max(self.nodes[leader].acquired_at);
        if self.t < from + bound {
            retry(self, from + bound);
            return;
        }
        self.roster_checks += 1;
        let keys = &self.groups[group].keys;
        let mut listed = false;
        let lease_key = keys.lease();
        if let Some(o) = self.store.object(&lease_key) {
            if let Ok(lease) = decode::<LeaseRecord>(&lease_key, &o.body) {
                listed |= lease.successors.contains(&worker_id);
            }
        }
        let roster_key = keys.roster();
        if let Some(o) = self.store.object(&roster_key) {
            if let Ok(roster) = decode::<RosterRecord>(&roster_key, &o.body) {
                listed |= roster.workers.contains(&worker_id);
            }
        }
        if listed {
            self.violation(
                ViolationKind::Roster,
                format!(
                    "group {group}: {worker_id}, dead since {:.3} s, still in the roster (bound {:.1} s from {:.3} s)",
                    since as f64 / 1000.0,
                    bound as f64 / 1000.0,
                    from as f64 / 1000.0
                ),
            );
        }
    }

    // ----- operators, lifecycle rules, canaries, roll-outs, store clocks -----

    fn on_operator(&mut self) {
        let Some(o) = self.sc.faults.operator.clone() else {
            return;
        };
        let mut rng = std::mem::replace(&mut self.op_rng, SplitMix64::new(0));
        let next = gap(&mut rng, o.mean_every_ms);
        let kind = o.kinds[rng.below(o.kinds.len() as u64) as usize];
        let group = rng.below(self.groups.len() as u64) as usize;
        let variant = rng.next_u64();
        self.op_rng = rng;
        self.push(self.t + next, Ev::Operator);
        if !self.in_storm(self.t) || self.foreign_at.is_some() {
            return;
        }
        self.operator_fault(kind, group, variant, false);
    }

    fn on_script(&mut self, i: usize) {
        let step = self.sc.script[i].1;
        self.log(|| format!("script: {step:?}"));
        match step {
            Scripted::Operator(kind) => {
                let variant = self.op_rng.next_u64();
                self.operator_fault(kind, 0, variant, true);
            }
            Scripted::PartitionLeader(d) => {
                if let Some(n) = self.leader_of(0) {
                    let p = self.nodes[n].proc;
                    self.partition(p, ms(d));
                }
            }
            Scripted::RestartFollower(d) => {
                let leader = self.leader_of(0).map(|n| self.nodes[n].proc);
                let pick = self.op_rng.next_u64();
                let followers: Vec<usize> = self
                    .slots
                    .iter()
                    .filter_map(|s| s.proc)
                    .filter(|&p| self.procs[p].alive && Some(p) != leader)
                    .collect();
                if !followers.is_empty() {
                    let p = followers[(pick % followers.len() as u64) as usize];
                    self.crash(p, Some(ms(d)), false);
                }
            }
            Scripted::StopLeader(d) => {
                if let Some(n) = self.leader_of(0) {
                    let p = self.nodes[n].proc;
                    self.stop_gracefully(p, ms(d), true);
                }
            }
            Scripted::PauseFollower(d) => {
                let leader = self.leader_of(0).map(|n| self.nodes[n].proc);
                let follower = self
                    .slots
                    .iter()
                    .filter_map(|s| s.proc)
                    .find(|&p| self.procs[p].alive && Some(p) != leader);
                if let Some(p) = follower {
                    let id = self.slots[self.procs[p].slot].worker_id.clone();
                    self.log(|| format!("{id} pauses for {} ms", ms(d)));
                    self.pause(p, ms(d));
                }
            }
            Scripted::Canary {
                leads,
                renew_deadline,
                cut_off,
            } => self.deploy_canary(
                0,
                ms(leads),
                ms(renew_deadline),
                5_000.min(ms(renew_deadline) / 3).max(1),
                cut_off,
            ),
        }
    }

    /// A fault that hides the holder, in calm: the new leader must come
    /// within the recovery bound.
    fn on_recovery_probe(&mut self) {
        if !self.probe_may_run() {
            return;
        }
        let f = &self.sc.faults;
        let mut choices: Vec<Option<OperatorFault>> = f
            .operator
            .as_ref()
            .map(|o| {
                o.kinds
                    .iter()
                    .filter(|k| k.hides_holder())
                    .map(|k| Some(*k))
                    .collect()
            })
            .unwrap_or_default();
        if f.canary.is_some() {
            choices.push(None);
        }
        if choices.is_empty() {
            return;
        }
        let pick = choices[self.op_rng.below(choices.len() as u64) as usize];
        let group = self.op_rng.below(self.groups.len() as u64) as usize;
        let variant = self.op_rng.next_u64();
        match pick {
            Some(kind) => self.operator_fault(kind, group, variant, true),
            None => self.on_canary_start(true),
        }
    }

    /// Applies an operator fault to election `g` (every election and the
    /// plugins' data for a namespace wipe). With `check`, a fault that
    /// hides the holder is followed by a recovery check if the period
    /// stays calm.
    fn operator_fault(&mut self, kind: OperatorFault, g: usize, variant: u64, check: bool) {
        self.operator_faults += 1;
        self.note(0x09E2 ^ (kind as u64) << 8 ^ g as u64);
        self.log(|| format!("operator: {} in group {g}", kind.name()));
        if let Some(r) = self.recorder.as_mut() {
            let label = if self.groups.len() > 1 {
                format!("{} (plugin-{g})", kind.name())
            } else {
                kind.name().to_owned()
            };
            r.operator(self.t, None, label);
        }
        let groups: Vec<usize> = if kind == OperatorFault::WipeNamespace {
            (0..self.groups.len()).collect()
        } else {
            vec![g]
        };
        // What the followers knew before the fault.
        let designations: Vec<Option<(WorkerId, u64)>> = groups
            .iter()
            .map(|&g| self.groups[g].lease_facts.designation())
            .collect();
        let keys = self.groups[g].keys.clone();
        let (t, skew) = (self.t, self.store_clock_offset_ms);
        let corrupt = |store: &mut SimStore, key: &str, variant: u64| {
            let body = corrupt_body(store.object(key).map(|o| o.body.as_slice()), variant);
            store.force_put_skewed(key, &body, t, skew);
        };
        let mut doomed: Vec<String> = Vec::new();
        match kind {
            OperatorFault::DeleteLease => doomed.push(keys.lease()),
            OperatorFault::CorruptLease => corrupt(&mut self.store, &keys.lease(), variant),
            OperatorFault::DeleteMetadata => doomed.push(keys.metadata()),
            OperatorFault::DeleteMarker => doomed.push(keys.election_marker().to_owned()),
            OperatorFault::CorruptMetadata => corrupt(&mut self.store, &keys.metadata(), variant),
            OperatorFault::DeleteRoster => doomed.push(keys.roster()),
            OperatorFault::CorruptRoster => corrupt(&mut self.store, &keys.roster(), variant),
            OperatorFault::DeleteHeartbeats | OperatorFault::CorruptHeartbeats => {
                let heartbeats: Vec<String> = self
                    .store
                    .keys_under(&keys.workers_prefix())
                    .cloned()
                    .collect();
                if kind == OperatorFault::DeleteHeartbeats {
                    doomed = heartbeats;
                } else {
                    for (i, key) in heartbeats.iter().enumerate() {
                        corrupt(&mut self.store, key, variant.wrapping_add(i as u64));
                    }
                }
            }
            OperatorFault::WipeElection => {
                doomed = self
                    .store
                    .keys_under(&keys.election_prefix())
                    .cloned()
                    .collect();
            }
            OperatorFault::WipeNamespace => {
                for &g in &groups {
                    let prefix = self.groups[g].keys.election_prefix();
                    doomed.extend(self.store.keys_under(&prefix).cloned());
                }
                doomed.extend(self.store.keys_under(keys.data_prefix()).cloned());
            }
        }
        for key in doomed {
            self.forget(&key);
        }
        self.note_carriers();
        if !kind.hides_holder() {
            return;
        }
        for (&g, designation) in groups.iter().zip(designations) {
            let missing = kind != OperatorFault::CorruptLease;
            self.hide_holder(
                g,
                kind.name().to_owned(),
                designation,
                check,
                self.t,
                false,
                missing,
            );
        }
    }

    /// Deletes `key` as an operator or a lifecycle rule would. A deleted
    /// fenced object takes its seal with it: the object a late write could
    /// land on is a new one.
    fn forget(&mut self, key: &str) {
        if self.store.force_delete(key) {
            if let Some(&g) = self.fenced_keys.get(key) {
                self.groups[g].max_sealed = 0;
            }
        }
        self.note_carriers();
        // Nothing of an election left (its prefix empty, its marker gone,
        // by one wipe or by several deletions): the residual case may
        // follow.
        for g in 0..self.groups.len() {
            let keys = &self.groups[g].keys;
            let empty = self
                .store
                .keys_under(&keys.election_prefix())
                .next()
                .is_none()
                && self.store.object(keys.election_marker()).is_none();
            if empty && self.groups[g].wiped_at.is_none_or(|w| w < self.t) {
                self.groups[g].wiped_at = Some(self.t);
                self.groups[g].acquired_since_wipe = false;
            }
        }
    }

    /// Marks every election none of whose records carrying the epoch (the
    /// lease, `metadata.json`, the marker) can be read now: deleted, or
    /// overwritten with bytes this release cannot take an epoch from.
    fn note_carriers(&mut self) {
        for g in 0..self.groups.len() {
            let keys = &self.groups[g].keys;
            let lease = keys.lease();
            let lease_gone = self
                .store
                .object(&lease)
                .is_none_or(|o| decode::<LeaseRecord>(&lease, &o.body).is_err());
            let mark_gone = |k: &str| {
                self.store
                    .object(k)
                    .is_none_or(|o| MetadataRecord::high_water_of_any_format(&o.body).is_none())
            };
            if lease_gone && mark_gone(&keys.metadata()) && mark_gone(keys.election_marker()) {
                self.groups[g].carriers_gone = true;
            }
        }
    }

    /// The lease of group `g` was made unreadable at `since` (deleted,
    /// overwritten, or a canary's left behind): a take-over is watched, and
    /// with `check` held to the recovery bound if the period stays calm.
    #[allow(clippy::too_many_arguments)]
    fn hide_holder(
        &mut self,
        g: usize,
        what: String,
        designation: Option<(WorkerId, u64)>,
        check: bool,
        since: u64,
        newer_format: bool,
        missing: bool,
    ) {
        if since >= self.groups[g].lease_facts.at {
            self.set_lease_facts(g, None);
        }
        let recorded = self.recorded_wait_ms(g);
        let checked = check
            && self.foreign_at.is_none()
            && self.calm_through(since, since + ms(self.sc.recovery_bound()));
        let w = self.watches.len();
        self.watch(
            g,
            None,
            WatchKind::Hidden {
                newer_format,
                missing,
            },
            what,
            checked,
            recorded,
            since,
        );
        self.watches[w].designation = if newer_format { None } else { designation };
    }

    /// A bucket lifecycle rule's sweep: objects older than its age go.
    fn on_lifecycle(&mut self) {
        let Some(rule) = self.sc.faults.lifecycle_rule else {
            return;
        };
        if self.foreign_at.is_some() {
            return;
        }
        let now =
            i64::try_from(UNIX_BASE_MS + self.t).unwrap_or(i64::MAX) + self.store_clock_offset_ms;
        let oldest = now - i64::try_from(rule.max_age_ms).unwrap_or(i64::MAX);
        let mut prefixes: BTreeSet<String> = BTreeSet::new();
        for group in &self.groups {
            prefixes.insert(group.keys.election_prefix());
            prefixes.insert(group.keys.data_prefix().to_owned());
        }
        let doomed: Vec<String> = prefixes
            .iter()
            .flat_map(|p| self.store.keys_under(p))
            .filter(|k| {
                self.store
                    .object(k)
                    .is_some_and(|o| o.store_time_ms < oldest)
            })
            .cloned()
            .collect();
        self.log(|| format!("lifecycle rule expires {} objects", doomed.len()));
        if let Some(r) = self.recorder.as_mut().filter(|_| !doomed.is_empty()) {
            r.operator(
                self.t,
                None,
                format!("lifecycle rule: {} objects", doomed.len()),
            );
        }
        for key in doomed {
            self.forget(&key);
            self.lifecycle_deletions += 1;
            if let Some(&g) = self.lease_keys.get(&key) {
                let designation = self.groups[g].lease_facts.designation();
                self.hide_holder(
                    g,
                    "lifecycle rule".into(),
                    designation,
                    false,
                    self.t,
                    false,
                    true,
                );
            }
        }
    }

    fn on_clock_step(&mut self) {
        let Some(c) = self.sc.faults.store_clock_steps else {
            return;
        };
        let next = gap(&mut self.op_rng, c.mean_every_ms);
        let max = i64::try_from(c.max_step_ms).unwrap_or(0);
        let step = i64::try_from(self.op_rng.below(2 * c.max_step_ms + 1)).unwrap_or(0) - max;
        self.push(self.t + next, Ev::ClockStep);
        if !self.in_storm(self.t) || self.foreign_at.is_some() {
            return;
        }
        self.store_clock_offset_ms = (self.store_clock_offset_ms + step).clamp(-600_000, 600_000);
        self.clock_steps += 1;
        self.note(0xC10C ^ step.unsigned_abs());
        let offset = self.store_clock_offset_ms;
        self.log(|| format!("the store's clock steps {step} ms (now {offset} ms off)"));
        if let Some(r) = self.recorder.as_mut() {
            r.fault(self.t, None, format!("store clock {step:+} ms"));
        }
    }

    /// One restart of a rolling change of timings (or of its roll-back).
    fn on_rollout(&mut self) {
        let Some(r) = self.sc.faults.timing_rollout else {
            return;
        };
        if self.rollout_next >= self.rollout_slots.len() {
            return;
        }
        if !self.in_storm(self.t) {
            // Restarts only in storms: wait for the next one.
            let period = ms(self.sc.fault_period).max(1);
            let next = self.t - self.t % period + period + 1;
            self.push(next, Ev::Rollout);
            return;
        }
        let slot = self.rollout_slots[self.rollout_next];
        self.rollout_next += 1;
        let config = if self.rollout_back {
            self.slots[slot].original.clone()
        } else {
            self.sc.rollout_config()
        };
        self.slots[slot].config = config;
        self.rollout_restarts += 1;
        let restart = self.op_rng.in_range(1_000..3_000);
        let step = self
            .op_rng
            .in_range(r.step_ms.0..r.step_ms.1.max(r.step_ms.0 + 1));
        if let Some(p) = self.slots[slot].proc.filter(|&p| self.procs[p].alive) {
            let back = self.rollout_back;
            let id = self.slots[slot].worker_id.clone();
            self.log(|| {
                format!(
                    "{id} restarts with {} timings",
                    if back { "its old" } else { "the rolled-out" }
                )
            });
            if let Some(r) = self.recorder.as_mut() {
                let what = if back { "roll-back" } else { "roll-out" };
                r.operator(self.t, Some(slot), format!("timing {what}"));
            }
            self.stop_gracefully(p, restart, true);
        }
        if self.rollout_next < self.rollout_slots.len() {
            self.push(self.t + step, Ev::Rollout);
        } else if r.roll_back && !self.rollout_back {
            self.rollout_back = true;
            self.rollout_next = 0;
            let later = self.op_rng.in_range(60_000..600_000);
            self.push(self.t + later, Ev::Rollout);
        }
    }

    /// A canary is deployed in place of a leader: the leader stops
    /// gracefully, and the canary takes its release.
    fn on_canary_start(&mut self, probe: bool) {
        let Some(c) = self.sc.faults.canary else {
            return;
        };
        let next = gap(&mut self.op_rng, c.mean_every_ms);
        let leads = if probe {
            self.op_rng.in_range(10_000..20_000)
        } else {
            self.op_rng
                .in_range(c.leads_ms.0..c.leads_ms.1.max(c.leads_ms.0 + 1))
        };
        let cut_off = self.op_rng.below(100) < c.cut_off_percent;
        let group = self.op_rng.below(self.groups.len() as u64) as usize;
        if !probe {
            self.push(self.t + next, Ev::CanaryStart { probe: false });
            if !self.in_storm(self.t) {
                return;
            }
        }
        self.deploy_canary(group, leads, c.renew_deadline_ms, c.renew_every_ms, cut_off);
    }

    /// Deploys a canary in place of election `group`'s leader (which stops
    /// gracefully; the canary takes its release).
    fn deploy_canary(
        &mut self,
        group: usize,
        leads: u64,
        renew_deadline_ms: u64,
        renew_every_ms: u64,
        cut_off: bool,
    ) {
        let busy = self
            .canaries
            .iter()
            .any(|k| k.awaiting_until.is_some() || k.leading || k.believes_until > self.t);
        if busy || self.foreign_at.is_some() {
            return;
        }
        let Some(n) = self.leader_of(group) else {
            return;
        };
        let p = self.nodes[n].proc;
        let k = self.canaries.len();
        let name = format!("canary-{k}");
        self.canaries.push(CanaryRun {
            group,
            name: name.clone(),
            renew_every_ms,
            renew_deadline_ms,
            cut_off,
            awaiting_until: Some(self.t + 10_000),
            leading: false,
            version: 0,
            epoch: 0,
            nonce: 0,
            last_write: 0,
            leads_until: leads,
            believes_until: 0,
        });
        self.canary_runs += 1;
        let replaced = self.worker_of(n);
        self.log(|| format!("{name} (format 2) is deployed in place of {replaced}"));
        let slot = self.procs[p].slot;
        if let Some(r) = self.recorder.as_mut() {
            r.operator(self.t, Some(slot), format!("{name} deployed"));
        }
        // The process it replaces comes back as the old release after the
        // roll-back.
        self.stop_gracefully(p, 10_000 + leads + 30_000, false);
        self.push(self.t + 10_000, Ev::CanaryGiveUp { canary: k });
    }

    /// A release landed in group `g`: a canary waiting for it takes the
    /// lease at once (reserving its epoch in a format-2 `metadata.json`
    /// first, and sealing the fenced object as its plugins would).
    fn canary_takes(&mut self, g: usize) {
        let t = self.t;
        let Some(k) = self
            .canaries
            .iter()
            .position(|c| c.group == g && c.awaiting_until.is_some_and(|u| t <= u))
        else {
            return;
        };
        let Some(released) = self.groups[g].lease_facts.record.clone() else {
            return;
        };
        let keys = self.groups[g].keys.clone();
        let skew = self.store_clock_offset_ms;
        let mark = self
            .store
            .object(&keys.metadata())
            .and_then(|o| MetadataRecord::high_water_of_any_format(&o.body))
            .unwrap_or(0);
        let epoch = released.epoch.max(mark) + 1;
        let nonce = self.op_rng.next_u64();
        let c = &self.canaries[k];
        let wait = c.renew_deadline_ms * 2;
        let meta = format!(
            r#"{{"format":2,"epoch_high_water":{epoch},"nonce":{nonce},"longest_takeover_wait_ms":{wait},"note":"canary"}}"#
        );
        self.store
            .force_put_skewed(&keys.metadata(), meta.as_bytes(), t, skew);
        // It keeps the layout: a copy of its mark beside the plugins' data.
        self.store
            .force_put_skewed(keys.election_marker(), meta.as_bytes(), t, skew);
        let body = canary_lease(&c.name, epoch, nonce, c.renew_deadline_ms);
        let version = self.store.force_put_skewed(&keys.lease(), &body, t, skew);
        let fenced_key = self.groups[g].fenced_key.clone();
        self.store
            .force_put_skewed(&fenced_key, &fenced::body(epoch, 0, true), t, skew);
        self.fenced.seals += 1;
        self.groups[g].max_sealed = self.groups[g].max_sealed.max(epoch);
        self.set_lease_facts(g, None);
        let c = &mut self.canaries[k];
        c.awaiting_until = None;
        c.leading = true;
        c.version = version;
        c.epoch = epoch;
        c.nonce = nonce;
        c.last_write = t;
        c.leads_until += t;
        c.believes_until = t + c.renew_deadline_ms;
        let (name, every, until) = (c.name.clone(), c.renew_every_ms, c.leads_until);
        let believes_until = c.believes_until;
        if let Some(r) = self.recorder.as_mut() {
            r.canary_leads(k, &name, g, epoch, t);
            r.canary_until(k, believes_until);
        }
        self.note(0xCA4A ^ epoch);
        self.log(|| format!("{name} leads group {g} under epoch {epoch} (format 2)"));
        let max = self.groups[g].max_acquired;
        if epoch <= max {
            self.violation(
                ViolationKind::EpochNotIncreasing,
                format!("group {g}: {name} acquired epoch {epoch}, not above {max}"),
            );
        }
        self.groups[g].max_acquired = max.max(epoch);
        self.canary_checks_split(k);
        self.push(t + every, Ev::CanaryRenew { canary: k });
        self.push(until, Ev::CanaryRollback { canary: k });
    }

    fn on_canary_renew(&mut self, k: usize) {
        let t = self.t;
        let c = &self.canaries[k];
        if !c.leading || t >= c.leads_until {
            return;
        }
        let g = c.group;
        let key = self.groups[g].keys.lease();
        let ours = self
            .store
            .object(&key)
            .is_some_and(|o| o.version == c.version);
        if !ours {
            // Replaced: the canary reads it and stops at once.
            let c = &mut self.canaries[k];
            c.leading = false;
            c.believes_until = c.believes_until.min(t);
            let (name, until) = (c.name.clone(), c.believes_until);
            if let Some(r) = self.recorder.as_mut() {
                r.canary_until(k, until);
            }
            self.log(|| format!("{name} finds its lease replaced and stops"));
            return;
        }
        let c = &mut self.canaries[k];
        c.nonce = c.nonce.wrapping_add(1);
        let body = canary_lease(&c.name, c.epoch, c.nonce, c.renew_deadline_ms);
        let every = c.renew_every_ms;
        let skew = self.store_clock_offset_ms;
        let version = self.store.force_put_skewed(&key, &body, t, skew);
        let c = &mut self.canaries[k];
        c.version = version;
        c.last_write = t;
        c.believes_until = t + c.renew_deadline_ms;
        let until = c.believes_until;
        if let Some(r) = self.recorder.as_mut() {
            r.canary_until(k, until);
        }
        self.set_lease_facts(g, None);
        self.canary_checks_split(k);
        self.push(t + every, Ev::CanaryRenew { canary: k });
    }

    /// The canary is rolled back: killed, or (worst case) cut off from the
    /// store first, so that it believes it leads to its deadline. Its
    /// lease is left behind.
    fn on_canary_rollback(&mut self, k: usize) {
        let t = self.t;
        let c = &mut self.canaries[k];
        if !c.leading {
            return;
        }
        c.leading = false;
        if !c.cut_off {
            c.believes_until = t;
        }
        let (g, name, since, cut_off) = (c.group, c.name.clone(), c.last_write, c.cut_off);
        let until = c.believes_until;
        if let Some(r) = self.recorder.as_mut() {
            r.canary_until(k, until);
            let how = if cut_off { ", cut off" } else { "" };
            r.canary_mark(k, t, format!("rolled back{how}"));
        }
        self.log(|| {
            format!(
                "{name} is rolled back{}; its lease stays",
                if cut_off {
                    " after losing the store"
                } else {
                    ""
                }
            )
        });
        self.hide_holder(
            g,
            format!("{name}'s last write"),
            None,
            true,
            since,
            true,
            false,
        );
    }

    fn on_canary_give_up(&mut self, k: usize) {
        let c = &mut self.canaries[k];
        if c.awaiting_until.take().is_some() {
            let name = c.name.clone();
            self.log(|| format!("{name} saw no release and is withdrawn"));
        }
    }

    /// At a canary's acquisition or renewal: nobody else may believe.
    fn canary_checks_split(&mut self, k: usize) {
        let g = self.canaries[k].group;
        let believers: Vec<usize> = self.groups[g]
            .holders
            .iter()
            .copied()
            .filter(|&n| self.believes(n))
            .collect();
        for n in believers {
            self.canary_split(k, n);
        }
    }

    fn canary_split(&mut self, k: usize, n: usize) {
        let pair = (usize::MAX - k, n);
        if self.split_pairs.insert(pair) {
            let c = &self.canaries[k];
            let (name, epoch, until) = (c.name.clone(), c.epoch, c.believes_until);
            let g = c.group;
            let id = self.worker_of(n);
            let e = self.nodes[n].elector_epoch();
            self.violation(
                ViolationKind::SplitBrain,
                format!(
                    "group {g}: {id} (epoch {e}) believes it leads while {name} (epoch {epoch}, format 2) does until {:.3} s",
                    until as f64 / 1000.0
                ),
            );
        }
    }

    fn on_foreign(&mut self) {
        self.foreign_at = Some(self.t);
        self.log(|| "a foreign writer overwrites the lease".into());
        if let Some(r) = self.recorder.as_mut() {
            r.operator(self.t, None, "foreign writer".to_owned());
        }
        let body = br#"{"leader":"legacy-host-1","expiresAt":1700000000000}"#;
        for g in 0..self.groups.len() {
            let key = self.groups[g].keys.lease();
            self.store.force_put(&key, body, self.t);
            self.groups[g].refused = 0;
        }
        self.push(self.t + 60_000, Ev::ForeignCheck);
    }

    fn on_foreign_check(&mut self) {
        for g in 0..self.groups.len() {
            let believer = self.groups[g]
                .holders
                .iter()
                .copied()
                .find(|&n| self.believes(n));
            let anyone_alive = self
                .procs
                .iter()
                .any(|p| p.alive && p.nodes.iter().any(|&n| self.nodes[n].group == g));
            if !anyone_alive {
                // Nobody was up to read the foreign lease.
                continue;
            }
            if self.groups[g].refused > 0 && believer.is_none() {
                self.foreign_detected += 1;
            } else {
                self.violation(
                    ViolationKind::ForeignUndetected,
                    format!(
                        "group {g}: 60 s after a foreign write, {} refusals and leader {:?}",
                        self.groups[g].refused,
                        believer.map(|n| self.worker_of(n))
                    ),
                );
            }
        }
    }

    // ----- the report -----

    fn finish(self, wall_seconds: f64) -> Report {
        let end = self.t;
        let mut requests = self.requests;
        requests.list += self.store.extra_list_pages;
        let worker_ms: u64 = self
            .procs
            .iter()
            .map(|p| p.ended.unwrap_or(end).min(end).saturating_sub(p.started))
            .sum();
        let worker_hours = worker_ms as f64 / 3_600_000.0;
        let sim_hours = end as f64 / 3_600_000.0;
        let mut followers = requests;
        let l = self.leader_requests;
        followers.get -= l.get.min(followers.get);
        followers.put -= l.put.min(followers.put);
        followers.list -= l.list.min(followers.list);
        followers.delete -= l.delete.min(followers.delete);
        let groups = self.groups.len() as f64;
        let per_month = crate::report::usd_per_month;
        let leader_hours = sim_hours * groups;
        let follower_hours = match self.sc.mode {
            // Each worker leads about 1/workers of the elections.
            Mode::PerPlugin => worker_hours - sim_hours,
            _ => worker_hours - leader_hours,
        };
        let convergence = if self.sc.workers == 0 {
            None
        } else {
            // Every live worker agrees (the naive model, which keeps no
            // view, by its first acquisition).
            self.groups
                .iter()
                .map(|g| match self.sc.mode {
                    Mode::Naive => g.first_acquired,
                    _ => g.all_agree_at,
                })
                .collect::<Option<Vec<u64>>>()
                .map(|v| {
                    let agreed = v.into_iter().max().unwrap_or(0);
                    agreed.saturating_sub(self.last_initial_start) as f64 / 1000.0
                })
        };
        let recovery_seconds = Summary::of(&self.recoveries);
        let liveness_margin_seconds = Summary::of(&self.margins);
        Report {
            seed: self.sc.seed,
            workers: self.sc.workers,
            plugins: self.sc.plugins,
            mode: self.sc.mode,
            faults: self.sc.faults.names(),
            fault_spec: if self.sc.fault_spec == "none" && !self.sc.faults.names().is_empty() {
                "custom".into()
            } else {
                self.sc.fault_spec.clone()
            },
            store: self.sc.faults.store,
            simulated_seconds: end as f64 / 1000.0,
            wall_seconds: round3(wall_seconds),
            violation_count: self.violation_count,
            violations: self.violations,
            split_brain_count: self.split_pairs.len() as u64,
            requests,
            requests_by_role: RoleRequests {
                leader: l,
                followers,
            },
            requests_per_worker_hour: if worker_hours > 0.0 {
                round3(requests.total() as f64 / worker_hours)
            } else {
                0.0
            },
            usd_per_worker_month: round4(per_month(&requests, worker_hours)),
            leader_usd_per_month: round4(per_month(&l, leader_hours)),
            follower_usd_per_worker_month: round4(per_month(&followers, follower_hours)),
            worker_hours: round3(worker_hours),
            convergence_seconds: convergence.map(round3),
            failover_seconds: Summary::of(&self.failovers),
            handover_seconds: Summary::of(&self.handovers),
            failover_samples: self.failovers,
            handover_samples: self.handovers,
            recovery_samples: self.recoveries,
            margin_samples: self.margins,
            leader_changes: self.leader_changes,
            acquisitions: self.acquisitions,
            recovery_seconds,
            liveness_checks: self.liveness_checks,
            recovery_checks: self.recovery_checks,
            residual_cases: self.residual_cases,
            epochs_restarted: self.epochs_restarted,
            liveness_margin_seconds,
            operator_faults: self.operator_faults,
            lifecycle_deletions: self.lifecycle_deletions,
            canaries: self.canary_runs,
            rollout_restarts: self.rollout_restarts,
            store_clock_steps: self.clock_steps,
            roster_checks: self.roster_checks,
            foreign_detected: self.foreign_detected,
            duplicate_ids_reported: self.duplicates_reported,
            fenced: self.fenced,
            events: self.events,
            trace_hash: format!("{:016x}", mix64(self.hash ^ self.events)),
            trace_before_first_violation: self.first_violation_trace,
            trace_tail: self
                .trace
                .map(|t| t[t.len().saturating_sub(trace_tail_len())..].to_vec())
                .unwrap_or_default(),
        }
    }
}

/// Bytes an operator or a botched write leaves: not a usable record of
/// ours, but not another implementation's either (those carry no
/// `format`): half of what was there, a record missing its fields, or
/// binary junk.
fn corrupt_body(current: Option<&[u8]>, variant: u64) -> Vec<u8> {
    match variant % 3 {
        0 => current
            .map(|b| b[..b.len() / 2].to_vec())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| b"{\"format\":1,".to_vec()),
        1 => br#"{"format":1}"#.to_vec(),
        _ => b"\x00\xff\x13 not a record".to_vec(),
    }
}

/// A lease of the newer format a canary writes.
fn canary_lease(name: &str, epoch: u64, nonce: u64, renew_deadline_ms: u64) -> Vec<u8> {
    format!(
        r#"{{"format":2,"holder":{{"id":"{name}","release":"2.0.0-rc1"}},"epoch":{epoch},"nonce":{nonce},"timings":{{"renew_deadline_ms":{renew_deadline_ms}}}}}"#
    )
    .into_bytes()
}

/// The time to the next of a fault process with this mean: uniformly
/// 0.5–1.5× it.
fn gap(rng: &mut SplitMix64, mean_ms: u64) -> u64 {
    let m = mean_ms.max(1);
    rng.in_range(m / 2..m + m / 2 + 1)
}

/// A duration in ms as a mark's label shows it: "40 s", "1.5 s".
fn secs(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn response_code(response: &Response) -> u64 {
    match response {
        Response::Object { .. } => 1,
        Response::Unchanged => 2,
        Response::Absent => 3,
        Response::Written { .. } => 4,
        Response::AlreadyExists => 5,
        Response::Conflict => 6,
        Response::Listed(entries) => 7 ^ (entries.len() as u64) << 8,
        Response::Deleted => 8,
        Response::Failed(_) => 9,
    }
}

impl Node {
    fn elector_epoch(&self) -> u64 {
        match &self.elector {
            Elector::Core(m) => m.term().map_or(0, |(e, _)| e),
            Elector::Naive(_) => 0,
        }
    }
}

/// How many trace lines the end of a run keeps: 200, or
/// `COORD_SIM_TRACE_TAIL` (to read a whole short run).
fn trace_tail_len() -> usize {
    std::env::var("COORD_SIM_TRACE_TAIL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}
