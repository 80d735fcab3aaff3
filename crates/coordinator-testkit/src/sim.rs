//! The discrete-event simulator: true time, an event queue keyed by
//! (time, sequence), workers with their own clocks, the simulated store,
//! the fault schedule and the oracle.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use coordinator_core::{
    decode, encode, Action, Config, Event, Failure, Identity, Incarnation, Instant, Keys,
    LeaseRecord, Machine, MetadataRecord, Namespace, Request, RequestId, Response, RosterRecord,
    StoreTraits, WorkerId, FORMAT,
};

use crate::clock::{SimClock, PPM};
use crate::faults::{Episodes, FaultSet, RequestFault, StoreFlavor};
use crate::fenced::{self, FencedWriter, Next};
use crate::naive::NaiveMachine;
use crate::report::{round3, FencedStats, Report, RoleRequests, Summary, Violation, ViolationKind};
use crate::scenario::{Mode, Scenario};
use crate::seed::{mix, SeedTree, SplitMix64};
use crate::store::{is_write, Requests, SimStore};

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
    LivenessCheck {
        group: usize,
        since: u64,
        old_node: usize,
        handover: bool,
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
}

/// One election (one per plugin in per-plugin mode).
struct Group {
    keys: Keys,
    fenced_key: String,
    holders: Vec<usize>,
    max_acquired: u64,
    max_sealed: u64,
    first_acquired: Option<u64>,
    last_acquirer: Option<usize>,
    last_acquired_t: u64,
    refused: u64,
}

struct Pending {
    group: usize,
    since: u64,
    old_node: usize,
    handover: bool,
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
    latency_rng: SplitMix64,
    fault_rng: SplitMix64,
    sched_rng: SplitMix64,
    // accounting
    requests: Requests,
    leader_requests: Requests,
    fenced: FencedStats,
    violations: Vec<Violation>,
    violation_count: u64,
    split_pairs: BTreeSet<(usize, usize)>,
    pending: Vec<Pending>,
    failovers: Vec<f64>,
    handovers: Vec<f64>,
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
                let fenced_key = format!("{}/fenced/object.json", keys.base());
                Group {
                    keys,
                    fenced_key,
                    holders: Vec::new(),
                    max_acquired: 0,
                    max_sealed: 0,
                    first_acquired: None,
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
        let f = &scenario.faults;
        let (traits, granularity, returns_time) = match f.store {
            StoreFlavor::S3 => (
                StoreTraits {
                    conditional_get: true,
                    conditional_delete: false,
                    trusted_clock: true,
                },
                1000,
                false,
            ),
            StoreFlavor::Memory => (
                StoreTraits {
                    conditional_get: true,
                    conditional_delete: true,
                    trusted_clock: true,
                },
                1,
                true,
            ),
            StoreFlavor::Local => (
                StoreTraits {
                    conditional_get: true,
                    conditional_delete: true,
                    trusted_clock: false,
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
            latency_rng: seeds.latency(),
            fault_rng: seeds.faults(),
            sched_rng: seeds.schedule(),
            requests: Requests::default(),
            leader_requests: Requests::default(),
            fenced: FencedStats::default(),
            violations: Vec::new(),
            violation_count: 0,
            split_pairs: BTreeSet::new(),
            pending: Vec::new(),
            failovers: Vec::new(),
            handovers: Vec::new(),
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
            let config = match rolling {
                Some(share) if sched.chance(share) => alternate.clone(),
                _ => self.sc.config.clone(),
            };
            let rate_ppm = self.rate_for(i, rho, &mut sched);
            let start_at = if i == 0 { 0 } else { sched.below(spread) };
            self.slots.push(Slot {
                worker_id,
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
            let period = ms(self.sc.fault_period).max(1);
            let calm_start = (period as f64 * self.sc.storm_share) as u64;
            let need = ms(self.sc.liveness_bound()) + ms(self.sc.roster_bound()) + 10_000;
            let mut base = 0;
            while base + calm_start + 40_000 < duration {
                let at = base + calm_start + 40_000;
                if base + period >= at + need && at + need <= duration {
                    self.push(at, Ev::Probe);
                }
                base += period;
            }
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
        self.hash = mix(self.hash ^ x).wrapping_add(self.t);
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
                _ => Elector::Core(Machine::with_keys(
                    config.clone(),
                    namespace.clone(),
                    keys,
                    identity.clone(),
                    self.traits,
                    seed,
                    now,
                    unix_ms,
                )),
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
            let g = self.nodes[n].group;
            self.groups[g].holders.retain(|&h| h != n);
            self.nodes[n].holder = false;
        }
    }

    fn crash(&mut self, p: usize, restart_after: Option<u64>) {
        if !self.procs[p].alive {
            return;
        }
        let slot = self.procs[p].slot;
        let id = self.slots[slot].worker_id.clone();
        self.log(|| format!("{id} crashes"));
        self.note(0xC4A5 ^ p as u64);
        // Pending fail-overs for every election it led.
        let nodes = self.procs[p].nodes.clone();
        for n in nodes {
            self.pend_if_leading(n, false);
        }
        self.kill(p);
        if let Some(after) = restart_after {
            self.push(self.t + after, Ev::Start { slot });
        }
    }

    fn stop_gracefully(&mut self, p: usize, restart_after: u64) {
        if !self.procs[p].alive {
            return;
        }
        let slot = self.procs[p].slot;
        let id = self.slots[slot].worker_id.clone();
        self.log(|| format!("{id} stops gracefully"));
        let nodes = self.procs[p].nodes.clone();
        for n in nodes {
            if let Some(group) = self.pend_if_leading(n, true) {
                let bound = ms(self.sc.handover_bound());
                if self.calm_through(self.t, self.t + bound) && self.foreign_at.is_none() {
                    self.push(
                        self.t + bound,
                        Ev::LivenessCheck {
                            group,
                            since: self.t,
                            old_node: n,
                            handover: true,
                        },
                    );
                }
            }
            let now = self.local(n);
            self.nodes[n].elector.stop(now);
            self.after_input(n);
        }
        self.push(self.t + restart_after, Ev::Start { slot });
    }

    /// Records a pending fail-over (or hand-over) if node `n` believes it
    /// leads; its group if so.
    fn pend_if_leading(&mut self, n: usize, handover: bool) -> Option<usize> {
        if !self.believes(n) {
            return None;
        }
        let group = self.nodes[n].group;
        self.pending.push(Pending {
            group,
            since: self.t,
            old_node: n,
            handover,
        });
        Some(group)
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
        self.finish(wall.elapsed().as_secs_f64())
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
                    self.crash_with_check(p, 30_000);
                }
            }
            Ev::StopLeader => {
                if let Some(p) = self.leader_proc() {
                    self.stop_gracefully(p, 10_000);
                }
            }
            Ev::Probe => self.on_probe(),
            Ev::Foreign => self.on_foreign(),
            Ev::LivenessCheck {
                group,
                since,
                old_node,
                handover,
            } => self.on_liveness_check(group, since, old_node, handover),
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
        self.rearm(n);
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
        for h in others {
            let pair = (n.min(h), n.max(h));
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

    fn on_event(&mut self, n: usize, event: Event) {
        let g = self.nodes[n].group;
        match event {
            Event::BecameLeader { epoch, .. } => {
                self.note(0xBEC0 ^ epoch);
                let id = self.worker_of(n);
                self.log(|| format!("{id} became leader of group {g}, epoch {epoch}"));
                self.acquisitions += 1;
                if self.sc.mode != Mode::Naive {
                    let max = self.groups[g].max_acquired;
                    if epoch <= max {
                        self.violation(
                            ViolationKind::EpochNotIncreasing,
                            format!("group {g}: {id} acquired epoch {epoch}, not above {max}"),
                        );
                    }
                    self.groups[g].max_acquired = max.max(epoch);
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
                let t = self.t;
                let mut i = 0;
                while i < self.pending.len() {
                    let p = &self.pending[i];
                    if p.group == g && p.old_node != n {
                        let secs = (t - p.since) as f64 / 1000.0;
                        if p.handover {
                            self.handovers.push(secs);
                        } else {
                            self.failovers.push(secs);
                        }
                        self.pending.swap_remove(i);
                    } else {
                        i += 1;
                    }
                }
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

    fn send(&mut self, n: usize, id: RequestId, tag: Tag, request: Request) {
        let t = self.t;
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
        let mut response = self.store.apply(&request, self.t, skew);
        if tag == Tag::Fenced {
            self.check_fenced(n, &request, &response);
        }
        if matches!(then, Then::Retry(_)) {
            response = self.store.apply(&request, self.t, skew);
            if tag == Tag::Fenced {
                self.check_fenced(n, &request, &response);
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
                    self.procs[p].paused_until = self.t + clipped;
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
                    self.crash(p, Some(length));
                }
            }
            EpisodeKind::Partition => {
                if let Some(p) = self.leader_proc() {
                    let id = self.slots[self.procs[p].slot].worker_id.clone();
                    self.log(|| format!("{id} (leader) partitioned for {clipped} ms"));
                    self.procs[p].partitioned_until = self.t + clipped;
                }
            }
            EpisodeKind::GracefulRestart => {
                if let Some(p) = self.leader_proc() {
                    self.stop_gracefully(p, length);
                }
            }
        }
    }

    fn crash_with_check(&mut self, p: usize, restart_after: u64) {
        let before = self.pending.len();
        self.crash(p, Some(restart_after));
        let bound = ms(self.sc.liveness_bound());
        if self.calm_through(self.t, self.t + bound) && self.foreign_at.is_none() {
            let new: Vec<(usize, usize)> = self.pending[before..]
                .iter()
                .map(|q| (q.group, q.old_node))
                .collect();
            for (group, old_node) in new {
                self.push(
                    self.t + bound,
                    Ev::LivenessCheck {
                        group,
                        since: self.t,
                        old_node,
                        handover: false,
                    },
                );
            }
        }
    }

    fn on_probe(&mut self) {
        if self.foreign_at.is_some() {
            return;
        }
        let roster_bound = ms(self.sc.roster_bound());
        let restart = roster_bound * 2 + ms(self.sc.liveness_bound()) + 10_000;
        // The leader dies…
        let leader = self.leader_proc();
        if let Some(p) = leader {
            let id = self.slots[self.procs[p].slot].worker_id.clone();
            self.crash_with_check(p, restart);
            self.roster_probe(id);
        }
        // …and so does a follower.
        let pick = self.sched_rng.next_u64();
        if let Some(p) = self.random_proc(pick) {
            if Some(p) != leader {
                let id = self.slots[self.procs[p].slot].worker_id.clone();
                self.crash(p, Some(restart));
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

    fn on_liveness_check(&mut self, group: usize, since: u64, old_node: usize, handover: bool) {
        if self.foreign_at.is_some() {
            return;
        }
        self.liveness_checks += 1;
        let g = &self.groups[group];
        let ok = g.last_acquired_t >= since && g.last_acquirer.is_some_and(|n| n != old_node);
        if ok {
            return;
        }
        // Is there anyone who could lead, and since when?
        let earliest = self
            .procs
            .iter()
            .filter(|p| {
                p.alive
                    && p.nodes
                        .iter()
                        .any(|&n| self.nodes[n].group == group && n != old_node)
            })
            .map(|p| p.started)
            .min();
        let Some(earliest) = earliest else {
            return;
        };
        let bound = if handover {
            self.sc.handover_bound()
        } else {
            self.sc.liveness_bound()
        };
        if earliest > since {
            // Nobody could lead until a worker (re)started: the bound runs
            // from then.
            let at = earliest + ms(bound);
            if self.calm_through(earliest, at) {
                self.push(
                    at,
                    Ev::LivenessCheck {
                        group,
                        since: earliest,
                        old_node,
                        handover,
                    },
                );
            }
            self.liveness_checks -= 1;
            return;
        }
        let old = self.worker_of(old_node);
        let kind = if handover {
            ViolationKind::Handover
        } else {
            ViolationKind::Liveness
        };
        self.violation(
            kind,
            format!(
                "group {group}: no new leader {:.1} s after {old} {} at {:.3} s (bound {:.1} s)",
                self.t.saturating_sub(since) as f64 / 1000.0,
                if handover { "stopped" } else { "crashed" },
                since as f64 / 1000.0,
                bound.as_secs_f64()
            ),
        );
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

    fn on_foreign(&mut self) {
        self.foreign_at = Some(self.t);
        self.log(|| "a foreign writer overwrites the lease".into());
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
            self.groups
                .iter()
                .map(|g| g.first_acquired)
                .collect::<Option<Vec<u64>>>()
                .map(|v| v.into_iter().max().unwrap_or(0) as f64 / 1000.0)
        };
        Report {
            seed: self.sc.seed,
            workers: self.sc.workers,
            plugins: self.sc.plugins,
            mode: self.sc.mode,
            faults: self.sc.faults.names(),
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
            leader_changes: self.leader_changes,
            acquisitions: self.acquisitions,
            liveness_checks: self.liveness_checks,
            roster_checks: self.roster_checks,
            foreign_detected: self.foreign_detected,
            duplicate_ids_reported: self.duplicates_reported,
            fenced: self.fenced,
            events: self.events,
            trace_hash: format!("{:016x}", mix(self.hash ^ self.events)),
            trace_tail: self
                .trace
                .map(|t| t[t.len().saturating_sub(200)..].to_vec())
                .unwrap_or_default(),
        }
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
