//! An exhaustive breadth-first model check of the election machine for 2
//! and 3 workers sharing one linearizable register (our own BFS over
//! cloned [`Machine`]s; no model-checking library).
//!
//! # The model
//!
//! * **Time** advances in ticks of true time. At every tick each worker's
//!   local clock advances by its own integer rate (9, 10 or 11 units per tick
//!   against a nominal 10: ρ = 0.1), then every worker whose timer is due
//!   handles it. The config is in the same units (a config "millisecond" is
//!   one unit, a nominal tick ten), jitter is zero. A worker's rate is fixed
//!   for a run and every assignment of rates to workers is an initial state
//!   (a constant slow leader against a constant fast follower is the worst
//!   case of the deadline race). Workers start with wildly different clock
//!   offsets and wall clocks: nothing may compare two clocks.
//! * **Lease requests** (reads and writes of `state.json`) go in flight.
//!   Each applies to the register either atomically with its sending or when
//!   its answer is delivered (both are explored; `apply_anytime` also allows
//!   any step in between). Answers are delivered in any order, interleaved
//!   with everything else. Within a tick every request is answered before
//!   time passes, except for a budget of *slow* requests, which may stay in
//!   flight for up to `max_delay` ticks (a renewal that lands after the
//!   leader's deadline, a read that shows an old version late).
//! * **Other requests** (heartbeats, listings, roster, metadata) are
//!   answered at once: they are not part of the lease protocol, and
//!   interleaving them too only multiplies the states.
//! * **Faults**, each within a budget per run, one class per test: a crash
//!   (its requests may still land, its answers are lost); a pause of 4 ticks
//!   (past the renew deadline, short of the lease) or 9 (past both) while the
//!   clock runs on; a graceful stop; a failed answer, transient (not applied)
//!   or ambiguous (applied already, or still in flight and free to land
//!   within `max_delay` ticks, or never). Crashes, pauses and stops happen
//!   between ticks.
//! * **Dedup** by an exact canonical encoding: each machine's `Debug`
//!   rendering (its fields are private), the register's objects and the
//!   in-flight messages are interned to small ids, and the state key is a
//!   128-bit hash of those ids with the tick, clocks, flags and budgets.
//!   Machines are deterministic, so the outcome of (machine, input) is
//!   computed once and reused.
//! * **Bounds**: a horizon in ticks, and a cap on states; every test asserts
//!   that its exploration finished below the cap (it is exhaustive within
//!   the horizon and budgets) and prints the number of states.
//!
//! # The property
//!
//! No reachable state has two live workers with `is_leader(local_now)`.
//! Also checked on every step: acquired epochs strictly increase, a
//! worker's epoch view never goes back, and no request writes shared state
//! unconditionally.
//!
//! # The checker can fail
//!
//! The same checker, given clocks drifting beyond the tolerance (rates 8 and
//! 12 against a config validated for ρ = 0.1), or a config that understates
//! the drift (ρ = 0 declared, rates 9 and 11), or a driver that judges
//! leadership by the term flag the deadline *timer* clears instead of by
//! `is_leader(now)`, finds a split brain and prints the shortest trace to
//! it; the tests assert that it does (mutation sanity for invariant 1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::time::Duration;

use coordinator_core::*;
use support::{describe_request, describe_response, Register};

/// Nominal units (config "milliseconds") per tick of true time.
const NOMINAL: u64 = 10;

/// Timings in model units: a poll or renewal every 3 ticks, a renew deadline
/// of 5 ticks, a lease timeout of 7 ticks (nominal). Valid for ρ = 0.1:
/// 70 / 50 = 1.4 > 1.1 / 0.9; followers wait
/// max(70, 50 × 1.1/0.9 + 1) = 70 units.
fn model_config() -> Config {
    let ms = Duration::from_millis;
    let config = Config {
        heartbeat_interval: ms(30),
        heartbeat_jitter: ms(0),
        lease_timeout: ms(70),
        renew_deadline: ms(50),
        worker_timeout: ms(10_000_000),
        membership_interval: ms(1_000_000),
        // The successor's faster reads change no decision, only timing;
        // keeping one cadence keeps the state space small.
        successor_poll_interval: ms(30),
        worker_list_interval: ms(1_000_000),
        drift_tolerance: 0.1,
        request_timeout: ms(10),
        retry_backoff: ms(10),
        succession_step: ms(0),
        successors_in_lease: 8,
        stale_takeover: StaleTakeover::Never,
        stale_takeover_margin: ms(0),
        recovery_wait: ms(100),
        metadata_refresh_interval: ms(1_000_000),
    };
    config.validate().unwrap();
    config
}

/// How the property judges that a worker believes it leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Belief {
    /// `is_leader(local_now)`: the machine's own guard, as the docs require.
    IsLeaderNow,
    /// A deliberately broken driver: leadership as a flag that only the
    /// deadline *timer* clears (`view().is_leader`), so a paused leader
    /// wakes up still "leading".
    TermFlag,
}

#[derive(Clone, Debug)]
struct Model {
    config: Config,
    /// Per worker, the clock rates (units per tick) to try.
    rates: Vec<Vec<u64>>,
    horizon: u32,
    crashes: u8,
    pauses: u8,
    stops: u8,
    failures: u8,
    /// The lengths a pause may have, in ticks.
    pause_ticks: Vec<u32>,
    /// How many requests per run may still be in flight when time passes
    /// (all others are applied and answered within the tick they are sent,
    /// in any order).
    slow: u8,
    /// A slow request is applied and answered within this many ticks of
    /// being sent (unless its worker is paused or dead).
    max_delay: u32,
    /// Requests may apply at any step between sending and delivery, not
    /// only at one of the two ends.
    apply_anytime: bool,
    max_states: usize,
    belief: Belief,
}

impl Model {
    fn new(workers: usize, rates: &[u64], horizon: u32) -> Self {
        Self {
            config: model_config(),
            rates: vec![rates.to_vec(); workers],
            horizon,
            crashes: 0,
            pauses: 0,
            stops: 0,
            failures: 0,
            // Past the renew deadline but short of the lease, and past both.
            pause_ticks: vec![4, 9],
            slow: 0,
            max_delay: 6,
            apply_anytime: false,
            max_states: 2_000_000,
            belief: Belief::IsLeaderNow,
        }
    }
}

/// Where a lease request is.
#[derive(Clone, Debug)]
enum Flight {
    /// Sent, not applied yet; the sender waits for the answer.
    Pending(Request),
    /// Just sent: may still apply as if atomically with the send.
    Fresh(Request),
    /// Applied; the answer waits to be delivered.
    Answered(Response),
    /// The sender was told it failed (or crashed); the request may still
    /// apply later, and nobody hears of it.
    Orphan(Request),
}

#[derive(Clone, Debug)]
struct Msg {
    node: usize,
    id: RequestId,
    /// The tick it was sent (or given up on, for an orphan).
    sent: u32,
    /// It was in flight while time passed.
    slow: bool,
    flight: Flight,
}

#[derive(Clone)]
struct NodeState {
    /// Shared between states until one of them changes it.
    machine: Rc<Machine>,
    rate: u64,
    clock: u64,
    alive: bool,
    stopped: bool,
    paused_until: u32,
    machine_id: u32,
    max_epoch_view: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    Tick,
    Apply {
        node: usize,
        id: u64,
    },
    Deliver {
        node: usize,
        id: u64,
    },
    FailTransient {
        node: usize,
        id: u64,
    },
    FailAmbiguous {
        node: usize,
        id: u64,
    },
    /// An orphaned request that never applies.
    Drop {
        node: usize,
        id: u64,
    },
    Crash(usize),
    Pause(usize, u32),
    Stop(usize),
}

#[derive(Clone)]
struct World {
    tick: u32,
    nodes: Vec<NodeState>,
    register: Rc<Register>,
    register_id: u32,
    msgs: Vec<Msg>,
    crashes: u8,
    pauses: u8,
    stops: u8,
    failures: u8,
    slow: u8,
    max_acquired: u64,
    /// Nothing has happened yet in this tick: crashes, pauses and stops
    /// happen only here (between ticks), which keeps the state count down.
    tick_start: bool,
    violation: Option<String>,
}

/// A 128-bit, two-lane multiply-xorshift hash over 8-byte words: much
/// faster than SipHash in an unoptimized test build, and wide enough that a
/// collision (which would merge two distinct states) is not a concern at
/// these state counts.
#[derive(Default)]
struct Fingerprint {
    a: u64,
    b: u64,
    len: u64,
}

impl Fingerprint {
    fn word(&mut self, w: u64) {
        self.a = (self.a ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.a ^= self.a >> 29;
        self.b = (self.b ^ w.rotate_left(23)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        self.b ^= self.b >> 31;
    }
}

impl Hasher for Fingerprint {
    fn write(&mut self, bytes: &[u8]) {
        self.len = self.len.wrapping_add(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.word(u64::from_le_bytes(chunk.try_into().unwrap()));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(last) ^ (rest.len() as u64) << 56);
    }

    fn write_u64(&mut self, i: u64) {
        self.word(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.word(i as u64);
    }

    fn finish(&self) -> u64 {
        self.a ^ self.b.rotate_left(32) ^ self.len
    }
}

impl Fingerprint {
    fn finish128(&self) -> u128 {
        let mix = |mut x: u64| {
            x ^= x >> 33;
            x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
            x ^= x >> 33;
            x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
            x ^ (x >> 33)
        };
        (u128::from(mix(self.a ^ self.len)) << 64) | u128::from(mix(self.b))
    }
}

/// Exact interning of canonical encodings: equal bytes get equal ids.
/// Lookups compare bytes with `memcmp`, which is fast even in an
/// unoptimized build, unlike hashing long strings.
#[derive(Default)]
struct Interner {
    ids: BTreeMap<Vec<u8>, u32>,
}

impl Interner {
    fn id(&mut self, bytes: &[u8]) -> u32 {
        if let Some(&id) = self.ids.get(bytes) {
            return id;
        }
        let id = u32::try_from(self.ids.len()).unwrap();
        self.ids.insert(bytes.to_vec(), id);
        id
    }
}

thread_local! {
    static MACHINES: RefCell<Interner> = RefCell::new(Interner::default());
    static REGISTERS: RefCell<Interner> = RefCell::new(Interner::default());
    static FLIGHTS: RefCell<Interner> = RefCell::new(Interner::default());
    static INPUTS: RefCell<Interner> = RefCell::new(Interner::default());
    static MEMO: RefCell<HashMap<(u32, u32), Rc<Stepped>>> = RefCell::new(HashMap::new());
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
}

fn reset_interners() {
    for interner in [&MACHINES, &REGISTERS, &FLIGHTS, &INPUTS] {
        interner.with(|i| i.borrow_mut().ids.clear());
    }
    MEMO.with(|memo| memo.borrow_mut().clear());
}

/// Interns the canonical bytes `fill` writes.
fn intern(
    table: &'static std::thread::LocalKey<RefCell<Interner>>,
    fill: impl FnOnce(&mut Vec<u8>),
) -> u32 {
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        buffer.clear();
        fill(&mut buffer);
        table.with(|t| t.borrow_mut().id(&buffer))
    })
}

fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    buf.extend_from_slice(bytes);
}

fn put_u64(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(&n.to_le_bytes());
}

/// Everything a machine holds, through its `Debug` rendering (its fields
/// are private).
fn machine_id(machine: &Machine) -> u32 {
    TEXT.with(|text| {
        let mut text = text.borrow_mut();
        text.clear();
        // `fmt::Write for String` is std's own, optimized code.
        write!(text, "{machine:?}").unwrap();
        MACHINES.with(|t| t.borrow_mut().id(text.as_bytes()))
    })
}

/// An input to a machine.
enum Input {
    Timeout,
    Response(RequestId, Response),
    Stop,
}

/// A machine after one input, and what it asked for.
struct Stepped {
    machine: Rc<Machine>,
    id: u32,
    actions: Vec<Action>,
    events: Vec<Event>,
}

/// Gives a node's machine one input. Machines are deterministic, so the
/// outcome of (machine state, input) is computed once and reused: most
/// states of the search share their machines' states with others.
fn step_machine(node: &mut NodeState, input: &Input, now: Instant) -> (Vec<Action>, Vec<Event>) {
    let input_id = intern(&INPUTS, |buf| {
        put_u64(buf, now.as_millis());
        match input {
            Input::Timeout => buf.push(0),
            Input::Stop => buf.push(1),
            Input::Response(id, response) => {
                buf.push(2);
                put_u64(buf, id.0);
                put_response(buf, response);
            }
        }
    });
    let key = (node.machine_id, input_id);
    if let Some(known) = MEMO.with(|memo| memo.borrow().get(&key).cloned()) {
        node.machine = known.machine.clone();
        node.machine_id = known.id;
        return (known.actions.clone(), known.events.clone());
    }
    let mut machine = Machine::clone(&node.machine);
    match input {
        Input::Timeout => machine.handle_timeout(now),
        Input::Stop => machine.stop(now),
        Input::Response(id, response) => machine.handle_response(*id, response.clone(), now),
    }
    let actions: Vec<Action> = std::iter::from_fn(|| machine.poll_action()).collect();
    let events: Vec<Event> = std::iter::from_fn(|| machine.poll_event()).collect();
    let id = machine_id(&machine);
    let stepped = Rc::new(Stepped {
        machine: Rc::new(machine),
        id,
        actions: actions.clone(),
        events: events.clone(),
    });
    node.machine = stepped.machine.clone();
    node.machine_id = id;
    MEMO.with(|memo| memo.borrow_mut().insert(key, stepped));
    (actions, events)
}

fn put_version(buf: &mut Vec<u8>, v: Option<&Version>) {
    match v {
        Some(v) => put(buf, v.0.as_bytes()),
        None => put_u64(buf, u64::MAX),
    }
}

fn put_request(buf: &mut Vec<u8>, r: &Request) {
    match r {
        Request::Get { key, if_changed } => {
            buf.push(0);
            put(buf, key.as_bytes());
            put_version(buf, if_changed.as_ref());
        }
        Request::Create { key, body } | Request::Put { key, body } => {
            buf.push(if matches!(r, Request::Create { .. }) {
                1
            } else {
                3
            });
            put(buf, key.as_bytes());
            put(buf, body);
        }
        Request::CompareAndSwap {
            key,
            expected,
            body,
        } => {
            buf.push(2);
            put(buf, key.as_bytes());
            put_version(buf, Some(expected));
            put(buf, body);
        }
        Request::List { prefix } => {
            buf.push(4);
            put(buf, prefix.as_bytes());
        }
        Request::Delete { key, if_version } => {
            buf.push(5);
            put(buf, key.as_bytes());
            put_version(buf, if_version.as_ref());
        }
    }
}

fn put_response(buf: &mut Vec<u8>, r: &Response) {
    match r {
        Response::Object {
            body,
            version,
            store_time_ms,
        } => {
            buf.push(0);
            put(buf, body);
            put_version(buf, Some(version));
            put_u64(buf, store_time_ms.map_or(u64::MAX, |t| t as u64));
        }
        Response::Written {
            version,
            store_time_ms,
        } => {
            buf.push(1);
            put_version(buf, Some(version));
            put_u64(buf, store_time_ms.map_or(u64::MAX, |t| t as u64));
        }
        // The rest are few and small.
        other => {
            buf.push(2);
            put(buf, format!("{other:?}").as_bytes());
        }
    }
}

fn is_lease_key(key: &str) -> bool {
    key.ends_with("/state.json")
}

fn local(n: &NodeState) -> Instant {
    Instant::from_millis(n.clock)
}

impl World {
    fn initial(model: &Model, rates: &[u64], log: &mut Option<Vec<String>>) -> Self {
        let namespace = Namespace::new("ns").unwrap();
        let traits = StoreTraits {
            conditional_get: true,
            conditional_delete: true,
            trusted_clock: false,
        };
        let nodes = rates
            .iter()
            .enumerate()
            .map(|(i, &rate)| {
                // Wildly different offsets: only rates matter.
                let clock = 1_000 + (i as u64) * 7_777_777;
                let identity = Identity {
                    worker_id: WorkerId::new(format!("w{i}")).unwrap(),
                    incarnation: Incarnation(100 + i as u64),
                };
                let machine = Machine::new(
                    model.config.clone(),
                    namespace.clone(),
                    identity,
                    traits,
                    0xC0FFEE + i as u64,
                    Instant::from_millis(clock),
                    1_700_000_000_000 + (i as u64) * 86_400_000,
                );
                NodeState {
                    machine_id: 0,
                    machine: Rc::new(machine),
                    rate,
                    clock,
                    alive: true,
                    stopped: false,
                    paused_until: 0,
                    max_epoch_view: 0,
                }
            })
            .collect();
        let mut world = World {
            tick: 0,
            nodes,
            register: {
                let mut register = Register::default();
                register.conditional_delete = true;
                Rc::new(register)
            },
            register_id: 0,
            msgs: Vec::new(),
            crashes: model.crashes,
            pauses: model.pauses,
            stops: model.stops,
            failures: model.failures,
            slow: model.slow,
            max_acquired: 0,
            tick_start: true,
            violation: None,
        };
        if let Some(log) = log.as_mut() {
            log.push(format!(
                "start: rates {:?} units/tick (nominal {NOMINAL}), clocks {:?}",
                rates,
                world.nodes.iter().map(|n| n.clock).collect::<Vec<_>>()
            ));
        }
        world.intern_register();
        for i in 0..world.nodes.len() {
            let machine = Rc::make_mut(&mut world.nodes[i].machine);
            let actions: Vec<Action> = std::iter::from_fn(|| machine.poll_action()).collect();
            let events: Vec<Event> = std::iter::from_fn(|| machine.poll_event()).collect();
            world.nodes[i].machine_id = machine_id(&world.nodes[i].machine);
            world.process(i, actions, events, log);
        }
        world.check(model, log);
        world
    }

    /// The store's timestamps. The model's store has no trusted clock (no
    /// stale takeover), so the machine must not care: a constant lets
    /// states that differ only in when a request applied merge.
    fn store_ms(&self) -> u64 {
        0
    }

    /// Applies a request to the register.
    fn store(&mut self, request: &Request) -> Response {
        let at = self.store_ms();
        if let Some(response) = self.register.read(request) {
            return response;
        }
        let response = Rc::make_mut(&mut self.register).apply(request, at);
        self.intern_register();
        response
    }

    fn intern_register(&mut self) {
        let register = &self.register;
        self.register_id = intern(&REGISTERS, |buf| {
            put_u64(buf, register.next_version());
            for (key, o) in &register.objects {
                put(buf, key.as_bytes());
                put(buf, &o.body);
                put_u64(buf, o.version);
                put_u64(buf, o.store_time_ms as u64);
            }
        });
    }

    /// Sends a node's queued requests (answering non-lease ones at once),
    /// collects its events, and checks what they say.
    /// Gives a node one input, then handles what it asked for.
    fn feed(&mut self, i: usize, input: Input, log: &mut Option<Vec<String>>) {
        let now = local(&self.nodes[i]);
        let (actions, events) = step_machine(&mut self.nodes[i], &input, now);
        self.process(i, actions, events, log);
    }

    /// Checks a node's events, sends its lease requests, and answers its
    /// other requests at once.
    fn process(
        &mut self,
        i: usize,
        actions: Vec<Action>,
        events: Vec<Event>,
        log: &mut Option<Vec<String>>,
    ) {
        for event in events {
            if let Some(log) = log.as_mut() {
                log.push(format!("    w{i} event {event:?}"));
            }
            if let Event::BecameLeader { epoch, .. } = event {
                if epoch <= self.max_acquired && self.violation.is_none() {
                    self.violation = Some(format!(
                        "w{i} acquired epoch {epoch}, not above {}",
                        self.max_acquired
                    ));
                }
                self.max_acquired = self.max_acquired.max(epoch);
            }
        }
        for action in actions {
            let own = {
                let m = &self.nodes[i].machine;
                m.keys().worker(&m.identity().worker_id)
            };
            let unconditional = match &action.request {
                Request::Put { key, .. } => *key != own,
                Request::Delete { key, if_version } => *key != own && if_version.is_none(),
                _ => false,
            };
            if unconditional && self.violation.is_none() {
                self.violation = Some(format!(
                    "w{i} writes shared state unconditionally: {}",
                    describe_request(&action.request)
                ));
            }
            if is_lease_key(action.request.key()) {
                if let Some(log) = log.as_mut() {
                    log.push(format!(
                        "    w{i} sends #{} {}",
                        action.id.0,
                        describe_request(&action.request)
                    ));
                }
                self.msgs.push(Msg {
                    node: i,
                    id: action.id,
                    sent: self.tick,
                    slow: false,
                    flight: Flight::Fresh(action.request),
                });
            } else {
                let response = self.store(&action.request);
                if let Some(log) = log.as_mut() {
                    log.push(format!(
                        "    w{i} {} -> {} (answered at once)",
                        describe_request(&action.request),
                        describe_response(&response)
                    ));
                }
                self.feed(i, Input::Response(action.id, response), log);
            }
        }
        self.msgs.sort_by_key(|m| (m.node, m.id));
        let node = &mut self.nodes[i];
        let epoch = node.machine.view().epoch;
        if epoch < node.max_epoch_view && self.violation.is_none() {
            self.violation = Some(format!("w{i}: epoch view went back to {epoch}"));
        }
        node.max_epoch_view = node.max_epoch_view.max(epoch);
    }

    fn believes(&self, model: &Model, i: usize) -> bool {
        let n = &self.nodes[i];
        n.alive
            && match model.belief {
                Belief::IsLeaderNow => n.machine.is_leader(local(n)),
                Belief::TermFlag => n.machine.view().is_leader,
            }
    }

    fn leaders(&self, model: &Model) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.believes(model, i))
            .collect()
    }

    fn check(&mut self, model: &Model, log: &mut Option<Vec<String>>) {
        let leaders = self.leaders(model);
        if leaders.len() > 1 && self.violation.is_none() {
            let clocks: Vec<String> = leaders
                .iter()
                .map(|&i| {
                    let n = &self.nodes[i];
                    format!(
                        "w{i} (clock {}, term {:?})",
                        n.clock,
                        n.machine.term().map(|(e, d)| (e, d.as_millis()))
                    )
                })
                .collect();
            self.violation = Some(format!(
                "SPLIT BRAIN at tick {}: {}",
                self.tick,
                clocks.join(" and ")
            ));
        }
        if let (Some(log), Some(v)) = (log.as_mut(), &self.violation) {
            log.push(format!("    !!! {v}"));
        }
    }

    fn can_deliver(&self, node: usize) -> bool {
        let n = &self.nodes[node];
        n.alive && n.paused_until <= self.tick
    }

    fn enabled(&self, model: &Model) -> Vec<Step> {
        let mut steps = Vec::new();
        // Time passes only once every request and answer that can move is
        // done, except for a budget of slow ones, each done within
        // `max_delay` ticks of its sending.
        let waiting = |m: &Msg| match m.flight {
            Flight::Orphan(_) => false,
            _ => self.can_deliver(m.node),
        };
        let overdue = self.msgs.iter().any(|m| {
            m.slow
                && self.tick - m.sent >= model.max_delay
                && (waiting(m) || matches!(m.flight, Flight::Orphan(_)))
        });
        let laggards = self.msgs.iter().filter(|m| !m.slow && waiting(m)).count();
        if self.tick < model.horizon && !overdue && laggards <= usize::from(self.slow) {
            steps.push(Step::Tick);
        }
        for m in &self.msgs {
            let (node, id) = (m.node, m.id.0);
            match &m.flight {
                Flight::Fresh(_) | Flight::Pending(_) => {
                    if matches!(m.flight, Flight::Fresh(_)) || model.apply_anytime {
                        steps.push(Step::Apply { node, id });
                    }
                    if self.can_deliver(node) {
                        steps.push(Step::Deliver { node, id });
                        if self.failures > 0 {
                            steps.push(Step::FailTransient { node, id });
                            steps.push(Step::FailAmbiguous { node, id });
                        }
                    }
                }
                Flight::Answered(_) => {
                    if self.can_deliver(node) {
                        steps.push(Step::Deliver { node, id });
                        if self.failures > 0 {
                            steps.push(Step::FailAmbiguous { node, id });
                        }
                    }
                }
                Flight::Orphan(_) => {
                    steps.push(Step::Apply { node, id });
                    steps.push(Step::Drop { node, id });
                }
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.alive || !self.tick_start {
                continue;
            }
            if self.crashes > 0 {
                steps.push(Step::Crash(i));
            }
            if self.pauses > 0 && n.paused_until <= self.tick {
                for &ticks in &model.pause_ticks {
                    steps.push(Step::Pause(i, ticks));
                }
            }
            if self.stops > 0 && !n.stopped && n.paused_until <= self.tick {
                steps.push(Step::Stop(i));
            }
        }
        steps
    }

    fn take_msg(&mut self, node: usize, id: u64) -> Msg {
        let at = self
            .msgs
            .iter()
            .position(|m| m.node == node && m.id.0 == id)
            .unwrap();
        self.msgs.remove(at)
    }

    fn deliver(
        &mut self,
        node: usize,
        id: RequestId,
        response: Response,
        log: &mut Option<Vec<String>>,
    ) {
        if let Some(log) = log.as_mut() {
            log.push(format!(
                "    w{node} receives #{} {}",
                id.0,
                describe_response(&response)
            ));
        }
        self.feed(node, Input::Response(id, response), log);
    }

    fn apply(&mut self, model: &Model, step: &Step, log: &mut Option<Vec<String>>) {
        if let Some(log) = log.as_mut() {
            let clocks: Vec<u64> = self.nodes.iter().map(|n| n.clock).collect();
            log.push(format!("[tick {} clocks {clocks:?}] {step:?}", self.tick));
        }
        // A request applies atomically with its sending only if nothing
        // else happens in between; otherwise it applies when delivered.
        let applies_at_send = match *step {
            Step::Apply { node, id } => self
                .msgs
                .iter()
                .any(|m| m.node == node && m.id.0 == id && matches!(m.flight, Flight::Fresh(_))),
            _ => false,
        };
        self.tick_start = match step {
            Step::Tick | Step::Crash(_) | Step::Pause(..) | Step::Stop(_) => true,
            _ => self.tick_start && applies_at_send,
        };
        if !applies_at_send {
            for m in &mut self.msgs {
                if let Flight::Fresh(r) = &m.flight {
                    m.flight = Flight::Pending(r.clone());
                }
            }
        }
        match *step {
            Step::Tick => {
                for i in 0..self.msgs.len() {
                    let m = &self.msgs[i];
                    let waiting =
                        !matches!(m.flight, Flight::Orphan(_)) && self.can_deliver(m.node);
                    if !m.slow && waiting {
                        self.msgs[i].slow = true;
                        self.slow -= 1;
                        if let Some(log) = log.as_mut() {
                            let m = &self.msgs[i];
                            log.push(format!(
                                "    w{}'s #{} is slow: still in flight",
                                m.node, m.id.0
                            ));
                        }
                    }
                }
                self.tick += 1;
                for n in &mut self.nodes {
                    n.clock += n.rate;
                }
                for i in 0..self.nodes.len() {
                    let n = &self.nodes[i];
                    if !n.alive || n.paused_until > self.tick {
                        continue;
                    }
                    let now = local(n);
                    if n.machine.poll_timeout().is_some_and(|t| t <= now) {
                        if let Some(log) = log.as_mut() {
                            log.push(format!("    w{i} timer at clock {}", now.as_millis()));
                        }
                        self.feed(i, Input::Timeout, log);
                    }
                }
            }
            Step::Apply { node, id } => {
                let m = self.take_msg(node, id);
                let request = match m.flight {
                    Flight::Fresh(r) | Flight::Pending(r) => (r, false),
                    Flight::Orphan(r) => (r, true),
                    Flight::Answered(_) => unreachable!(),
                };
                let response = self.store(&request.0);
                if let Some(log) = log.as_mut() {
                    log.push(format!(
                        "    store applies w{node}'s #{id} {} -> {}{}",
                        describe_request(&request.0),
                        describe_response(&response),
                        if request.1 {
                            " (nobody hears of it)"
                        } else {
                            ""
                        }
                    ));
                }
                if !request.1 {
                    self.msgs.push(Msg {
                        node,
                        id: m.id,
                        sent: m.sent,
                        slow: m.slow,
                        flight: Flight::Answered(response),
                    });
                    self.msgs.sort_by_key(|m| (m.node, m.id));
                }
            }
            Step::Deliver { node, id } => {
                let m = self.take_msg(node, id);
                let response = match m.flight {
                    Flight::Fresh(r) | Flight::Pending(r) => {
                        let response = self.store(&r);
                        if let Some(log) = log.as_mut() {
                            log.push(format!("    store applies #{id} {}", describe_request(&r)));
                        }
                        response
                    }
                    Flight::Answered(r) => r,
                    Flight::Orphan(_) => unreachable!(),
                };
                self.deliver(node, m.id, response, log);
            }
            Step::FailTransient { node, id } => {
                self.failures -= 1;
                let m = self.take_msg(node, id);
                let failure = Failure::Transient {
                    message: "503".into(),
                };
                self.deliver(node, m.id, Response::Failed(failure), log);
            }
            Step::FailAmbiguous { node, id } => {
                self.failures -= 1;
                let m = self.take_msg(node, id);
                if let Flight::Fresh(r) | Flight::Pending(r) = m.flight {
                    // Still in the network: it may apply later, or never.
                    self.msgs.push(Msg {
                        node,
                        id: m.id,
                        sent: self.tick,
                        slow: true,
                        flight: Flight::Orphan(r),
                    });
                }
                let failure = Failure::Ambiguous {
                    message: "timed out".into(),
                };
                self.deliver(node, m.id, Response::Failed(failure), log);
            }
            Step::Drop { node, id } => {
                self.take_msg(node, id);
            }
            Step::Crash(i) => {
                self.crashes -= 1;
                self.nodes[i].alive = false;
                // Its requests may still land; its answers are lost.
                self.msgs
                    .retain(|m| m.node != i || !matches!(m.flight, Flight::Answered(_)));
                let tick = self.tick;
                for m in &mut self.msgs {
                    if m.node == i {
                        if let Flight::Fresh(r) | Flight::Pending(r) = &m.flight {
                            m.flight = Flight::Orphan(r.clone());
                            m.sent = tick;
                            m.slow = true;
                        }
                    }
                }
            }
            Step::Pause(i, ticks) => {
                self.pauses -= 1;
                self.nodes[i].paused_until = self.tick + ticks;
            }
            Step::Stop(i) => {
                self.stops -= 1;
                self.nodes[i].stopped = true;
                self.feed(i, Input::Stop, log);
            }
        }
        self.check(model, log);
    }

    fn key(&self) -> u128 {
        let msgs = intern(&FLIGHTS, |buf| {
            for m in &self.msgs {
                put_u64(buf, m.node as u64);
                put_u64(buf, m.id.0);
                put_u64(buf, u64::from(m.sent));
                buf.push(u8::from(m.slow));
                match &m.flight {
                    Flight::Pending(r) => {
                        buf.push(0);
                        put_request(buf, r);
                    }
                    Flight::Fresh(r) => {
                        buf.push(1);
                        put_request(buf, r);
                    }
                    Flight::Answered(r) => {
                        buf.push(2);
                        put_response(buf, r);
                    }
                    Flight::Orphan(r) => {
                        buf.push(3);
                        put_request(buf, r);
                    }
                }
            }
        });
        let mut h = Fingerprint::default();
        (
            self.tick,
            self.crashes,
            self.pauses,
            self.stops,
            self.failures,
            self.slow,
            self.max_acquired,
            self.tick_start,
            self.register_id,
            msgs,
        )
            .hash(&mut h);
        for n in &self.nodes {
            (
                n.rate,
                n.clock,
                n.alive,
                n.stopped,
                n.paused_until,
                n.machine_id,
                n.max_epoch_view,
            )
                .hash(&mut h);
        }
        h.finish128()
    }
}

struct Report {
    states: usize,
    transitions: usize,
    /// The highest epoch acquired in any explored state: above 1 means the
    /// search reached takeovers, not only the first election.
    max_epoch: u64,
    complete: bool,
    elapsed: Duration,
    /// The violation and the trace that leads to it.
    violation: Option<(String, String)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} states, {} transitions, epochs up to {}, {:.1} s, {}",
            self.states,
            self.transitions,
            self.max_epoch,
            self.elapsed.as_secs_f64(),
            if self.complete {
                "exhaustive"
            } else {
                "TRUNCATED at the state cap"
            }
        )
    }
}

fn rate_assignments(rates: &[Vec<u64>]) -> Vec<Vec<u64>> {
    let mut out = vec![Vec::new()];
    for choices in rates {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                choices.iter().map(move |&r| {
                    let mut v = prefix.clone();
                    v.push(r);
                    v
                })
            })
            .collect();
    }
    out
}

/// Replays the steps from the initial state with the log on.
fn replay(model: &Model, rates: &[u64], steps: &[Step]) -> String {
    let mut log = Some(Vec::new());
    let mut world = World::initial(model, rates, &mut log);
    for step in steps {
        world.apply(model, step, &mut log);
    }
    log.unwrap().join("\n")
}

fn check(model: &Model) -> Report {
    let started = std::time::Instant::now();
    reset_interners();
    // State key -> (parent key, step); roots have no parent.
    let mut seen: HashMap<u128, Option<(u128, Step)>> = HashMap::new();
    let mut roots: HashMap<u128, Vec<u64>> = HashMap::new();
    let mut queue: VecDeque<(u128, World)> = VecDeque::new();
    let mut transitions = 0usize;
    let mut max_epoch = 0;
    let mut found: Option<(u128, String)> = None;
    for rates in rate_assignments(&model.rates) {
        let world = World::initial(model, &rates, &mut None);
        let key = world.key();
        if seen.insert(key, None).is_none() {
            roots.insert(key, rates);
            if let Some(v) = world.violation.clone() {
                found = Some((key, v));
                break;
            }
            queue.push_back((key, world));
        }
    }
    let mut complete = true;
    'search: while let Some((parent, world)) = queue.pop_front() {
        if found.is_some() {
            break;
        }
        for step in world.enabled(model) {
            let mut next = world.clone();
            next.apply(model, &step, &mut None);
            transitions += 1;
            max_epoch = max_epoch.max(next.max_acquired);
            let key = next.key();
            if seen.contains_key(&key) {
                continue;
            }
            seen.insert(key, Some((parent, step)));
            if let Some(v) = next.violation.clone() {
                found = Some((key, v));
                break 'search;
            }
            if seen.len() >= model.max_states {
                complete = false;
                break 'search;
            }
            queue.push_back((key, next));
        }
    }
    let violation = found.map(|(mut key, v)| {
        let mut steps = Vec::new();
        while let Some(Some((parent, step))) = seen.get(&key) {
            steps.push(step.clone());
            key = *parent;
        }
        steps.reverse();
        let rates = &roots[&key];
        (v, replay(model, rates, &steps))
    });
    Report {
        states: seen.len(),
        transitions,
        max_epoch,
        complete,
        elapsed: started.elapsed(),
        violation,
    }
}

fn expect_safe(name: &str, model: &Model) {
    let report = check(model);
    println!("{name}: {report}");
    if let Some((v, trace)) = &report.violation {
        panic!("{name}: {v}\ntrace:\n{trace}");
    }
    assert!(report.complete, "{name}: {report}");
    assert!(
        report.max_epoch >= 2,
        "{name}: too short to reach a takeover: {report}"
    );
}

fn expect_split_brain(name: &str, model: &Model) -> String {
    let report = check(model);
    println!("{name}: {report}");
    let Some((v, trace)) = report.violation else {
        panic!("{name}: the checker found no violation ({report}); it must");
    };
    assert!(v.contains("SPLIT BRAIN"), "{name}: {v}\n{trace}");
    println!("{name}: found, as it must: {v}\ntrace:\n{trace}\n");
    trace
}

// ----- within the tolerance: no split brain -----

// ----- within the tolerance: no split brain -----
//
// Each case is one fault class, exhaustively, for every assignment of the
// rates 9, 10 and 11 (2 workers) or for rates 9, 11 and 10 (3 workers,
// any of whom may win the first election).

fn two(horizon: u32) -> Model {
    Model::new(2, &[9, 10, 11], horizon)
}

fn three(horizon: u32) -> Model {
    let mut model = two(horizon);
    model.rates = vec![vec![9], vec![11], vec![10]];
    model
}

#[test]
fn two_workers_with_a_slow_request_never_split() {
    let mut model = two(12);
    model.slow = 1;
    expect_safe("2 workers, 1 slow request", &model);
}

/// A slow request may also apply at any step between its sending and its
/// answer, not only at one of the two ends.
#[test]
fn two_workers_with_a_request_applied_at_any_moment_never_split() {
    let mut model = two(10);
    model.slow = 1;
    model.apply_anytime = true;
    expect_safe("2 workers, 1 slow request applied at any step", &model);
}

#[test]
fn two_workers_with_a_failed_answer_never_split() {
    let mut model = two(14);
    model.failures = 1;
    expect_safe("2 workers, 1 failed answer", &model);
}

#[test]
fn two_workers_with_a_pause_never_split() {
    let mut model = two(14);
    model.pauses = 1;
    expect_safe("2 workers, 1 pause", &model);
}

#[test]
fn two_workers_with_a_crash_never_split() {
    let mut model = two(16);
    model.crashes = 1;
    expect_safe("2 workers, 1 crash", &model);
}

#[test]
fn two_workers_with_a_graceful_stop_never_split() {
    let mut model = two(16);
    model.stops = 1;
    expect_safe("2 workers, 1 graceful stop", &model);
}

#[test]
fn three_workers_with_a_crash_or_a_pause_never_split() {
    let mut model = three(12);
    model.crashes = 1;
    expect_safe("3 workers, 1 crash", &model);
    let mut model = three(11);
    model.pauses = 1;
    expect_safe("3 workers, 1 pause", &model);
}

#[test]
fn three_workers_with_a_slow_request_or_a_failed_answer_never_split() {
    let mut model = three(10);
    model.slow = 1;
    expect_safe("3 workers, 1 slow request", &model);
    let mut model = three(10);
    model.failures = 1;
    expect_safe("3 workers, 1 failed answer", &model);
}

/// `renew_deadline ≥ lease_timeout` breaks the config rule, yet the machine
/// stays safe: followers wait the longer of their lease timeout and
/// `renew_deadline × (1+ρ)/(1−ρ)` taken from the *record*, so the rule is
/// enforced a second time where it matters.
#[test]
fn a_config_with_renew_deadline_at_the_lease_timeout_is_still_safe() {
    let mut model = two(14);
    model.config.renew_deadline = Duration::from_millis(70);
    assert!(model.config.validate().is_err());
    model.pauses = 1;
    expect_safe("2 workers, renew_deadline = lease_timeout, 1 pause", &model);
}

// ----- mutation sanity: the same checker finds the split brains it must -----

/// Rates 8 and 12 (20% off) against a config validated for ρ = 0.1.
#[test]
fn drift_beyond_the_tolerance_is_found() {
    let mut model = two(16);
    model.rates = vec![vec![8], vec![12]];
    model.slow = 1;
    expect_split_brain("2 workers, rates 8/12, 1 slow request", &model);
}

/// A config that declares ρ = 0, so that lease_timeout / renew_deadline =
/// 55 / 50 passes validation, while the clocks drift by 10%.
#[test]
fn a_config_that_understates_the_drift_is_found() {
    let mut model = two(16);
    model.rates = vec![vec![9, 11]; 2];
    model.config.drift_tolerance = 0.0;
    model.config.lease_timeout = Duration::from_millis(55);
    model.config.validate().unwrap();
    model.slow = 1;
    expect_split_brain(
        "2 workers, ρ declared 0, rates 9/11, 1 slow request",
        &model,
    );
}

/// A driver that trusts the deadline *timer* instead of checking
/// `is_leader(now)` before each effect: a paused leader wakes up still
/// "leading" after a successor took over.
#[test]
fn a_driver_without_the_synchronous_guard_is_found() {
    let mut model = two(16);
    model.belief = Belief::TermFlag;
    model.pauses = 1;
    expect_split_brain("2 workers, leadership by term flag, 1 pause", &model);
}

/// Larger searches with several fault classes at once, for a run by hand
/// (minutes and a few GB): `cargo test -p coordinator-core --test
/// model_check deep -- --ignored --nocapture`.
#[test]
#[ignore = "minutes; run by hand"]
fn deep_searches() {
    let mut model = two(14);
    model.slow = 1;
    model.failures = 1;
    model.crashes = 1;
    model.pauses = 1;
    model.stops = 1;
    model.max_states = 3_000_000;
    expect_safe_or_truncated("2 workers, every fault once", &model);
    let mut model = two(20);
    model.slow = 2;
    model.max_states = 3_000_000;
    expect_safe_or_truncated("2 workers, 2 slow requests, horizon 20", &model);
    let mut model = three(12);
    model.slow = 1;
    model.pauses = 1;
    model.failures = 1;
    model.max_states = 3_000_000;
    expect_safe_or_truncated("3 workers, slow + pause + failure", &model);
}

fn expect_safe_or_truncated(name: &str, model: &Model) {
    let report = check(model);
    println!("{name}: {report}");
    if let Some((v, trace)) = &report.violation {
        panic!("{name}: {v}\ntrace:\n{trace}");
    }
}
