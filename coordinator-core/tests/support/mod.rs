//! A quinn-style cluster simulation for the core's tests: several machines
//! with their own clock rates sharing one linearizable modelled register, in
//! virtual true time, with the invariant checks of DESIGN.md section 4.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use coordinator_core::*;

/// One object in the modelled store.
#[derive(Clone, Debug)]
pub struct Object {
    pub body: Vec<u8>,
    pub version: u64,
    pub store_time_ms: i64,
}

/// A linearizable store: each request is applied atomically when sent.
#[derive(Clone, Debug, Default)]
pub struct Register {
    pub objects: BTreeMap<String, Object>,
    next_version: u64,
    pub conditional_delete: bool,
}

impl Register {
    /// The version number the next write will get, minus one.
    pub fn next_version(&self) -> u64 {
        self.next_version
    }

    /// The answer to a read (`Get` or `List`), which changes nothing.
    pub fn read(&self, request: &Request) -> Option<Response> {
        Some(match request {
            Request::Get { key, if_changed } => match self.objects.get(key) {
                None => Response::Absent,
                Some(o)
                    if if_changed.as_ref().map(|v| v.as_str()) == Some(&o.version.to_string()) =>
                {
                    Response::Unchanged
                }
                Some(o) => Response::Object {
                    body: o.body.clone(),
                    version: Version::new(o.version.to_string()),
                    store_time_ms: Some(o.store_time_ms),
                },
            },
            Request::List { prefix } => Response::Listed(
                self.objects
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                    .map(|(k, o)| Listed {
                        key: k.clone(),
                        version: Version::new(o.version.to_string()),
                    })
                    .collect(),
            ),
            _ => return None,
        })
    }

    pub fn apply(&mut self, request: &Request, true_ms: u64) -> Response {
        if let Some(response) = self.read(request) {
            return response;
        }
        let mut write = |objects: &mut BTreeMap<String, Object>, key: &str, body: &[u8]| {
            self.next_version += 1;
            objects.insert(
                key.to_owned(),
                Object {
                    body: body.to_vec(),
                    version: self.next_version,
                    store_time_ms: true_ms as i64,
                },
            );
            Response::Written {
                version: Version::new(self.next_version.to_string()),
                store_time_ms: Some(true_ms as i64),
            }
        };
        match request {
            Request::Create { key, body } => {
                if self.objects.contains_key(key) {
                    Response::AlreadyExists
                } else {
                    write(&mut self.objects, key, body)
                }
            }
            Request::CompareAndSwap {
                key,
                expected,
                body,
            } => match self.objects.get(key) {
                Some(o) if o.version.to_string() == expected.as_str() => {
                    write(&mut self.objects, key, body)
                }
                _ => Response::Conflict,
            },
            Request::Put { key, body } => write(&mut self.objects, key, body),
            Request::Get { .. } | Request::List { .. } => unreachable!(),
            Request::Delete { key, if_version } => match (if_version, self.objects.get(key)) {
                (Some(v), Some(o)) if o.version.to_string() != v.as_str() => Response::Conflict,
                _ => {
                    self.objects.remove(key);
                    Response::Deleted
                }
            },
        }
    }

    pub fn lease(&self, ns: &str) -> Option<LeaseRecord> {
        let key = format!("plg_coordinator_global/{ns}/state.json");
        self.objects
            .get(&key)
            .and_then(|o| decode::<LeaseRecord>(&key, &o.body).ok())
    }
}

/// What a fault hook decides for one request.
#[derive(Clone, Debug)]
pub enum Intercept {
    /// Apply and answer normally.
    Pass,
    /// Answer with a failure without applying.
    Fail(Failure),
    /// Apply, then answer with a failure (an ambiguous success).
    ApplyThenFail(Failure),
    /// Apply, then answer as if a retry of it was refused (a client's
    /// hidden retry of a write that landed: `Conflict` or `AlreadyExists`).
    ApplyThenAnswer(Response),
    /// Apply only after this many extra milliseconds, answer after that.
    Delay(u64),
    /// The general case, for random latencies and ambiguous outcomes: apply
    /// `apply_after` ms after sending (`None`: never), answer `reply_after`
    /// ms after sending, with `fail` instead of the store's answer if given.
    /// An answer due before the request applies is always a failure (the
    /// client gave up on a request that lands later); `fail` defaults to an
    /// ambiguous one then, and to a transient one when nothing applies.
    Timed {
        apply_after: Option<u64>,
        reply_after: u64,
        fail: Option<Failure>,
    },
}

pub type Hook = Box<dyn FnMut(usize, &Request, u64) -> Intercept>;

/// One simulated worker.
pub struct Node {
    pub machine: Machine,
    /// Local clock: `offset + true × rate`.
    pub rate: f64,
    pub offset: u64,
    pub alive: bool,
    /// The process does nothing until this true time (a GC pause).
    pub paused_until: u64,
    pub events: Vec<Event>,
    pub max_epoch_view: u64,
}

impl Node {
    pub fn local(&self, true_ms: u64) -> Instant {
        Instant::from_millis(self.offset + (true_ms as f64 * self.rate).floor() as u64)
    }

    /// The first true millisecond at which the local clock reads `local`.
    pub fn true_of(&self, local: Instant) -> u64 {
        let l = local.as_millis().saturating_sub(self.offset) as f64;
        let mut t = (l / self.rate).floor() as u64;
        while self.local(t) < local {
            t += 1;
        }
        while t > 0 && self.local(t - 1) >= local {
            t -= 1;
        }
        t
    }
}

#[derive(Clone, Debug)]
struct Delivery {
    node: usize,
    id: RequestId,
    /// Applied when delivered, not when sent.
    request: Option<Request>,
    response: Response,
    then: Then,
}

/// What a due entry does after applying its request (if any).
#[derive(Clone, Debug)]
enum Then {
    /// Hand the response to the node.
    Deliver,
    /// Queue the answer (the store's, or this failure) for a later time.
    Reply { at: u64, fail: Option<Failure> },
    /// Nothing: the client already gave up on this request.
    Nothing,
}

fn ambiguous() -> Failure {
    Failure::Ambiguous {
        message: "timed out".into(),
    }
}

fn short_nonce(nonce: u64) -> String {
    format!("{:04x}", nonce & 0xffff)
}

/// A one-line description of a record body (lease bodies decoded).
pub fn describe_body(key: &str, body: &[u8]) -> String {
    if key.ends_with("state.json") {
        if let Ok(l) = decode::<LeaseRecord>(key, body) {
            let leader = l
                .leader
                .map(|id| format!("{}#{}", id.worker_id, id.incarnation.0 % 1000))
                .unwrap_or_else(|| "-".into());
            return format!(
                "lease{{leader {leader} epoch {} renewals {}{} nonce {}}}",
                l.epoch,
                l.renewals,
                if l.released { " released" } else { "" },
                short_nonce(l.nonce)
            );
        }
    }
    if key.ends_with("metadata.json") {
        if let Ok(m) = decode::<MetadataRecord>(key, body) {
            return format!("metadata{{high water {}}}", m.epoch_high_water);
        }
    }
    format!("{} bytes", body.len())
}

fn short_key(key: &str) -> &str {
    key.rsplit_once("/ns/").map_or(key, |(_, k)| k)
}

/// A one-line description of a request.
pub fn describe_request(request: &Request) -> String {
    match request {
        Request::Get { key, if_changed } => match if_changed {
            Some(v) => format!("GET {} if-changed {}", short_key(key), v.as_str()),
            None => format!("GET {}", short_key(key)),
        },
        Request::Create { key, body } => {
            format!("CREATE {} {}", short_key(key), describe_body(key, body))
        }
        Request::CompareAndSwap {
            key,
            expected,
            body,
        } => format!(
            "CAS {} on v{} {}",
            short_key(key),
            expected.as_str(),
            describe_body(key, body)
        ),
        Request::Put { key, .. } => format!("PUT {}", short_key(key)),
        Request::List { prefix } => format!("LIST {}", short_key(prefix)),
        Request::Delete { key, if_version } => match if_version {
            Some(v) => format!("DELETE {} if v{}", short_key(key), v.as_str()),
            None => format!("DELETE {}", short_key(key)),
        },
    }
}

/// A one-line description of a response.
pub fn describe_response(response: &Response) -> String {
    match response {
        Response::Object { version, body, .. } => {
            let text = String::from_utf8_lossy(body);
            let key = if text.contains("\"epoch_high_water\"") {
                "metadata.json"
            } else if text.contains("\"renew_deadline_ms\"") {
                "state.json"
            } else {
                "object"
            };
            format!("object v{} {}", version.as_str(), describe_body(key, body))
        }
        Response::Written { version, .. } => format!("written v{}", version.as_str()),
        Response::Listed(entries) => format!("listed {} objects", entries.len()),
        Response::Failed(Failure::Ambiguous { .. }) => "FAILED (ambiguous)".into(),
        Response::Failed(Failure::Transient { .. }) => "FAILED (transient)".into(),
        Response::Failed(Failure::Throttled { .. }) => "FAILED (throttled)".into(),
        other => format!("{other:?}"),
    }
}

/// The cluster: nodes, a register, virtual true time and in-flight replies.
pub struct Cluster {
    pub t: u64,
    pub register: Register,
    pub nodes: Vec<Node>,
    pub latency_ms: u64,
    pub traits: StoreTraits,
    pub hook: Option<Hook>,
    pub namespace: Namespace,
    deliveries: BTreeMap<(u64, u64), Delivery>,
    seq: u64,
    pub acquired_epochs: Vec<(u64, usize, u64)>,
    pub violations: Vec<String>,
    pub steps: u64,
    /// When `Some`, every send, apply, delivery, timer and event is logged
    /// here with its true time, for failure messages.
    pub trace: Option<Vec<String>>,
}

pub fn id(i: usize) -> WorkerId {
    WorkerId::new(format!("w{i}")).unwrap()
}

impl Cluster {
    pub fn new(config: Config, rates: &[f64], seed: u64) -> Self {
        let mut cluster = Self {
            t: 0,
            register: Register {
                conditional_delete: true,
                ..Register::default()
            },
            nodes: Vec::new(),
            latency_ms: 20,
            traits: StoreTraits {
                conditional_get: true,
                conditional_delete: true,
                trusted_clock: false,
            },
            hook: None,
            namespace: Namespace::new("ns").unwrap(),
            deliveries: BTreeMap::new(),
            seq: 0,
            acquired_epochs: Vec::new(),
            violations: Vec::new(),
            steps: 0,
            trace: None,
        };
        for (i, rate) in rates.iter().enumerate() {
            cluster.add_node(config.clone(), i, *rate, seed.wrapping_add(i as u64));
        }
        cluster
    }

    pub fn add_node(&mut self, config: Config, i: usize, rate: f64, seed: u64) -> usize {
        self.add_node_with(config, id(i), Incarnation(seed ^ 0xABCD), rate, seed)
    }

    pub fn add_node_with(
        &mut self,
        config: Config,
        worker_id: WorkerId,
        incarnation: Incarnation,
        rate: f64,
        seed: u64,
    ) -> usize {
        let offset = 1_000_000 * (self.nodes.len() as u64 + 1);
        let unix_ms = self.t;
        self.add_node_at(config, worker_id, incarnation, rate, seed, offset, unix_ms)
    }

    /// Adds a node whose monotonic clock reads `offset + true × rate` and
    /// whose wall clock reads `unix_ms` now.
    #[allow(clippy::too_many_arguments)]
    pub fn add_node_at(
        &mut self,
        config: Config,
        worker_id: WorkerId,
        incarnation: Incarnation,
        rate: f64,
        seed: u64,
        offset: u64,
        unix_ms: u64,
    ) -> usize {
        let identity = Identity {
            worker_id,
            incarnation,
        };
        let local_now = Instant::from_millis(offset + (self.t as f64 * rate).floor() as u64);
        let node = Node {
            machine: Machine::new(
                config,
                self.namespace.clone(),
                identity,
                self.traits,
                seed,
                local_now,
                unix_ms,
            ),
            rate,
            offset,
            alive: true,
            paused_until: 0,
            events: Vec::new(),
            max_epoch_view: 0,
        };
        self.nodes.push(node);
        let index = self.nodes.len() - 1;
        self.log(|| format!("w{index} starts (rate {rate})"));
        self.drain(index);
        index
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = self.trace.as_mut() {
            let t = self.t;
            trace.push(format!("t={t:>6} {}", line()));
        }
    }

    /// The last lines of the trace, for a failure message.
    pub fn trace_tail(&self, lines: usize) -> String {
        match &self.trace {
            None => "(trace off)".into(),
            Some(trace) => trace[trace.len().saturating_sub(lines)..].join("\n"),
        }
    }

    /// The latest true time at which something sent is still due to apply
    /// or answer.
    pub fn in_flight_until(&self) -> Option<u64> {
        self.deliveries.keys().map(|(t, _)| *t).max()
    }

    /// Flags requests that write shared state without a condition.
    fn check_request(&mut self, i: usize, request: &Request) {
        let machine = &self.nodes[i].machine;
        let own = machine.keys().worker(&machine.identity().worker_id);
        let bad = match request {
            Request::Put { key, .. } => *key != own,
            Request::Delete { key, if_version } => {
                *key != own
                    && (!key.contains("/workers/")
                        || (if_version.is_none() && self.traits.conditional_delete))
            }
            _ => false,
        };
        if bad {
            self.violations.push(format!(
                "t={} w{i}: unconditional write of shared state {}",
                self.t,
                describe_request(request)
            ));
        }
    }

    /// Sends the node's queued actions and collects its events.
    pub fn drain(&mut self, i: usize) {
        while let Some(action) = self.nodes[i].machine.poll_action() {
            self.check_request(i, &action.request);
            let intercept = match self.hook.as_mut() {
                Some(hook) => hook(i, &action.request, self.t),
                None => Intercept::Pass,
            };
            self.log(|| {
                format!(
                    "w{i} sends #{} {} [{intercept:?}]",
                    action.id.0,
                    describe_request(&action.request)
                )
            });
            let t = self.t;
            let latency = self.latency_ms;
            let mut entries = Vec::new();
            match intercept {
                Intercept::Pass => {
                    let response = self.register.apply(&action.request, t);
                    entries.push((t + latency, None, response, Then::Deliver));
                }
                Intercept::Fail(f) => {
                    entries.push((t + latency, None, Response::Failed(f), Then::Deliver))
                }
                Intercept::ApplyThenFail(f) => {
                    self.register.apply(&action.request, t);
                    entries.push((t + latency, None, Response::Failed(f), Then::Deliver));
                }
                Intercept::ApplyThenAnswer(answer) => {
                    self.register.apply(&action.request, t);
                    entries.push((t + latency, None, answer, Then::Deliver));
                }
                Intercept::Delay(extra) => entries.push((
                    t + latency + extra,
                    Some(action.request.clone()),
                    Response::Unchanged,
                    Then::Deliver,
                )),
                Intercept::Timed {
                    apply_after,
                    reply_after,
                    fail,
                } => match apply_after {
                    None => {
                        let f = fail.unwrap_or(Failure::Transient {
                            message: "refused".into(),
                        });
                        entries.push((t + reply_after, None, Response::Failed(f), Then::Deliver));
                    }
                    Some(0) => {
                        let response = self.register.apply(&action.request, t);
                        let response = fail.map_or(response, Response::Failed);
                        entries.push((t + reply_after, None, response, Then::Deliver));
                    }
                    Some(a) if a <= reply_after => entries.push((
                        t + a,
                        Some(action.request.clone()),
                        Response::Unchanged,
                        Then::Reply {
                            at: t + reply_after,
                            fail,
                        },
                    )),
                    Some(a) => {
                        let f = fail.unwrap_or_else(ambiguous);
                        entries.push((t + reply_after, None, Response::Failed(f), Then::Deliver));
                        entries.push((
                            t + a,
                            Some(action.request.clone()),
                            Response::Unchanged,
                            Then::Nothing,
                        ));
                    }
                },
            }
            for (at, request, response, then) in entries {
                self.seq += 1;
                self.deliveries.insert(
                    (at, self.seq),
                    Delivery {
                        node: i,
                        id: action.id,
                        request,
                        response,
                        then,
                    },
                );
            }
        }
        while let Some(event) = self.nodes[i].machine.poll_event() {
            self.log(|| format!("w{i} event {event:?}"));
            if let Event::BecameLeader { epoch, .. } = &event {
                if let Some((_, who, last)) = self.acquired_epochs.last() {
                    if epoch <= last {
                        self.violations.push(format!(
                            "t={} w{i} acquired epoch {epoch} after w{who} acquired {last}",
                            self.t
                        ));
                    }
                }
                self.acquired_epochs.push((self.t, i, *epoch));
            }
            self.nodes[i].events.push(event);
        }
        let epoch = self.nodes[i].machine.view().epoch;
        if epoch < self.nodes[i].max_epoch_view {
            self.violations.push(format!(
                "t={} w{i}: epoch view went back to {epoch}",
                self.t
            ));
        }
        self.nodes[i].max_epoch_view = self.nodes[i].max_epoch_view.max(epoch);
    }

    /// The true time of the next delivery or timer, if any.
    pub fn next_time(&self) -> Option<u64> {
        let delivery = self.deliveries.keys().next().map(|(t, _)| *t);
        let timers = self.nodes.iter().filter(|n| n.alive).filter_map(|n| {
            n.machine
                .poll_timeout()
                .map(|l| n.true_of(l).max(n.paused_until))
        });
        delivery.into_iter().chain(timers).min()
    }

    /// Advances to the next event and processes everything due then.
    pub fn step(&mut self) -> bool {
        let Some(next) = self.next_time() else {
            return false;
        };
        self.t = self.t.max(next);
        self.steps += 1;
        let due: Vec<(u64, u64)> = self
            .deliveries
            .range(..=(self.t, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let delivery = self.deliveries.remove(&key).unwrap();
            let node = delivery.node;
            let response = match &delivery.request {
                Some(request) => {
                    let response = self.register.apply(request, self.t);
                    self.log(|| {
                        format!(
                            "store applies w{node}'s late #{} {} -> {}",
                            delivery.id.0,
                            describe_request(request),
                            describe_response(&response)
                        )
                    });
                    response
                }
                None => delivery.response,
            };
            match delivery.then {
                Then::Deliver => {}
                Then::Nothing => continue,
                Then::Reply { at, fail } => {
                    self.seq += 1;
                    self.deliveries.insert(
                        (at, self.seq),
                        Delivery {
                            node,
                            id: delivery.id,
                            request: None,
                            response: fail.map_or(response, Response::Failed),
                            then: Then::Deliver,
                        },
                    );
                    continue;
                }
            }
            if !self.nodes[node].alive {
                continue;
            }
            if self.nodes[node].paused_until > self.t {
                // A paused process reads the reply when it wakes.
                self.deliveries.insert(
                    (self.nodes[node].paused_until, key.1),
                    Delivery {
                        node,
                        id: delivery.id,
                        request: None,
                        response,
                        then: Then::Deliver,
                    },
                );
                continue;
            }
            let now = self.nodes[node].local(self.t);
            self.log(|| {
                format!(
                    "w{node} receives #{} {}",
                    delivery.id.0,
                    describe_response(&response)
                )
            });
            self.nodes[node]
                .machine
                .handle_response(delivery.id, response, now);
            self.drain(node);
            self.check_leaders();
        }
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if !n.alive || n.paused_until > self.t {
                continue;
            }
            let now = n.local(self.t);
            if n.machine.poll_timeout().is_some_and(|at| at <= now) {
                self.log(|| format!("w{i} timer at local {now:?}"));
                self.nodes[i].machine.handle_timeout(now);
                self.drain(i);
                self.check_leaders();
            }
        }
        true
    }

    pub fn run_for(&mut self, ms: u64) {
        let end = self.t + ms;
        let mut guard = 0;
        while self.next_time().is_some_and(|t| t <= end) {
            self.step();
            guard += 1;
            assert!(guard < 1_000_000, "simulation did not settle");
        }
        self.t = end;
        self.check_leaders();
    }

    /// Nodes that believe they lead at the current true time.
    pub fn leaders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                let n = &self.nodes[i];
                n.alive && n.machine.is_leader(n.local(self.t))
            })
            .collect()
    }

    pub fn check_leaders(&mut self) {
        let leaders = self.leaders();
        if leaders.len() > 1 {
            self.log(|| format!("SPLIT BRAIN: leaders {leaders:?}"));
            self.violations
                .push(format!("t={}: split brain, leaders {:?}", self.t, leaders));
        }
    }

    pub fn crash(&mut self, i: usize) {
        self.log(|| format!("w{i} crashes"));
        self.nodes[i].alive = false;
    }

    pub fn pause(&mut self, i: usize, ms: u64) {
        self.log(|| format!("w{i} pauses for {ms} ms"));
        self.nodes[i].paused_until = self.t + ms;
    }

    pub fn stop(&mut self, i: usize) {
        self.log(|| format!("w{i} stops gracefully"));
        let now = self.nodes[i].local(self.t);
        self.nodes[i].machine.stop(now);
        self.drain(i);
    }

    pub fn leader_now(&self) -> Option<usize> {
        let leaders = self.leaders();
        (leaders.len() == 1).then(|| leaders[0])
    }

    /// Runs until some node leads, returning the true time it took.
    pub fn run_until_leader(&mut self, limit_ms: u64) -> Option<u64> {
        let start = self.t;
        while self.t - start <= limit_ms {
            if self.leader_now().is_some() {
                return Some(self.t - start);
            }
            if !self.step() {
                return None;
            }
        }
        None
    }

    pub fn assert_no_violations(&self) {
        assert!(
            self.violations.is_empty(),
            "violations: {:#?}",
            self.violations
        );
    }

    pub fn events_of(&self, i: usize) -> &[Event] {
        &self.nodes[i].events
    }

    pub fn worker_keys(&self) -> BTreeSet<String> {
        self.register
            .objects
            .keys()
            .filter(|k| k.contains("/workers/"))
            .cloned()
            .collect()
    }
}

/// A config with short timings for fast tests (still valid).
pub fn fast_config() -> Config {
    use std::time::Duration;
    Config {
        heartbeat_interval: Duration::from_millis(500),
        heartbeat_jitter: Duration::from_millis(100),
        lease_timeout: Duration::from_millis(1500),
        renew_deadline: Duration::from_millis(1000),
        worker_timeout: Duration::from_millis(2000),
        membership_interval: Duration::from_millis(1000),
        successor_poll_interval: Duration::from_millis(250),
        worker_list_interval: Duration::from_millis(1000),
        drift_tolerance: 0.1,
        request_timeout: Duration::from_millis(150),
        retry_backoff: Duration::from_millis(50),
        succession_step: Duration::from_millis(50),
        successors_in_lease: 8,
        stale_takeover: StaleTakeover::Auto,
        stale_takeover_margin: Duration::from_millis(500),
        recovery_wait: Duration::from_millis(6000),
        metadata_refresh_interval: Duration::from_secs(60),
    }
}
