//! A model of the system this library replaces, to show that the oracle
//! catches what it gets wrong.
//!
//! Each heartbeat a worker PUTs its own heartbeat object, LISTs the
//! heartbeat objects and GETs the lease. A worker is live while its
//! listed version keeps changing (within `worker_timeout`). The lease is
//! `{"leader": id, "expiresAt": unix_ms}` with **no `format` field**; it is
//! valid while its holder is live and `expiresAt` is ahead of the *reader's
//! own wall clock* (comparing one machine's clock with another's). When it
//! is not, the lexicographically first live worker writes itself into it
//! with an **unconditional PUT** and believes it leads; the lease is **never
//! renewed** (it is rewritten only once it has expired), and a leader
//! believes it leads until a read shows someone else: no deadline guards it.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use coordinator_core::{
    Action, Config, Event, Identity, Instant, Keys, Request, RequestId, Response, SplitMix64,
    StepDownReason, Version, WorkerId,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Heartbeat,
    List,
    ReadLease,
    WriteLease,
}

/// The replaced system's election loop, driven like the core
/// [`Machine`](coordinator_core::Machine).
#[derive(Clone, Debug)]
pub struct NaiveMachine {
    identity: Identity,
    keys: Keys,
    config: Config,
    rng: SplitMix64,
    start: Instant,
    start_unix_ms: u64,
    next_cycle: Option<Instant>,
    next_id: u64,
    in_flight: BTreeMap<RequestId, Purpose>,
    listing: Option<Vec<(WorkerId, Version)>>,
    lease: Option<Option<(WorkerId, u64)>>,
    seen: BTreeMap<WorkerId, (Version, Instant)>,
    believes: bool,
    stopped: bool,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
}

impl NaiveMachine {
    /// A worker of the replaced system; the first cycle starts at once.
    pub fn new(
        config: Config,
        keys: Keys,
        identity: Identity,
        seed: u64,
        now: Instant,
        unix_ms: u64,
    ) -> Self {
        let mut machine = Self {
            identity,
            keys,
            config,
            rng: SplitMix64::new(seed),
            start: now,
            start_unix_ms: unix_ms,
            next_cycle: Some(now),
            next_id: 0,
            in_flight: BTreeMap::new(),
            listing: None,
            lease: None,
            seen: BTreeMap::new(),
            believes: false,
            stopped: false,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        };
        machine.handle_timeout(now);
        machine
    }

    /// Whether it believes it leads (it has no deadline: `now` is ignored).
    pub fn is_leader(&self, _now: Instant) -> bool {
        self.believes
    }

    /// The next request.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When its next cycle is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_cycle
    }

    /// Stops: no more requests (the replaced system does not release).
    pub fn stop(&mut self, _now: Instant) {
        self.stopped = true;
        self.next_cycle = None;
        self.set_belief(false);
        self.events.push_back(Event::Stopped);
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        self.start_unix_ms + now.as_millis().saturating_sub(self.start.as_millis())
    }

    fn send(&mut self, request: Request, purpose: Purpose) {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.in_flight.insert(id, purpose);
        self.actions.push_back(Action { id, request });
    }

    fn set_belief(&mut self, believes: bool) {
        if believes && !self.believes {
            self.events.push_back(Event::BecameLeader {
                epoch: 0,
                deadline: Instant::from_millis(u64::MAX),
            });
        } else if !believes && self.believes {
            self.events.push_back(Event::StoppedLeading {
                epoch: 0,
                reason: StepDownReason::LeaseLost,
            });
        }
        self.believes = believes;
    }

    /// Runs a heartbeat cycle if one is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.stopped || self.next_cycle.is_none_or(|at| at > now) {
            return;
        }
        let jitter = self
            .rng
            .below(self.config.heartbeat_jitter.as_millis() as u64 + 1);
        self.next_cycle =
            Some(now + self.config.heartbeat_interval + Duration::from_millis(jitter));
        if !self.in_flight.is_empty() {
            return;
        }
        let body = format!(
            r#"{{"workerId":"{}","ts":{}}}"#,
            self.identity.worker_id,
            self.unix_ms(now)
        );
        let key = self.keys.worker(&self.identity.worker_id);
        self.send(
            Request::Put {
                key,
                body: body.into_bytes(),
            },
            Purpose::Heartbeat,
        );
        let prefix = self.keys.workers_prefix();
        self.send(Request::List { prefix }, Purpose::List);
        let key = self.keys.lease();
        self.send(
            Request::Get {
                key,
                if_changed: None,
            },
            Purpose::ReadLease,
        );
        self.listing = None;
        self.lease = None;
    }

    /// Takes in a store reply.
    pub fn handle_response(&mut self, id: RequestId, response: Response, now: Instant) {
        let Some(purpose) = self.in_flight.remove(&id) else {
            return;
        };
        if self.stopped {
            return;
        }
        match (purpose, response) {
            (Purpose::List, Response::Listed(entries)) => {
                let listing = entries
                    .into_iter()
                    .filter_map(|e| Some((self.keys.worker_of_key(&e.key)?, e.version)))
                    .collect();
                self.listing = Some(listing);
            }
            (Purpose::ReadLease, Response::Object { body, .. }) => {
                self.lease = Some(parse_lease(&body));
            }
            (Purpose::ReadLease, Response::Absent) => self.lease = Some(None),
            (Purpose::WriteLease, Response::Written { .. }) => self.set_belief(true),
            _ => {}
        }
        if self.listing.is_some() && self.lease.is_some() {
            self.decide(now);
        }
    }

    fn decide(&mut self, now: Instant) {
        let (Some(listing), Some(lease)) = (self.listing.take(), self.lease.take()) else {
            return;
        };
        for (worker, version) in listing {
            match self.seen.get_mut(&worker) {
                Some((v, at)) if *v != version => {
                    *v = version;
                    *at = now;
                }
                Some(_) => {}
                None => {
                    self.seen.insert(worker, (version, now));
                }
            }
        }
        let timeout = self.config.worker_timeout;
        let me = self.identity.worker_id.clone();
        let live = |w: &WorkerId, seen: &BTreeMap<WorkerId, (Version, Instant)>| {
            *w == me
                || seen
                    .get(w)
                    .is_some_and(|(_, at)| now.saturating_since(*at) < timeout)
        };
        let wall = self.unix_ms(now);
        match lease {
            Some((leader, expires_at)) if expires_at > wall && live(&leader, &self.seen) => {
                self.set_belief(leader == me);
            }
            _ => {
                let first = self
                    .seen
                    .keys()
                    .filter(|w| live(w, &self.seen))
                    .chain(std::iter::once(&me))
                    .min()
                    .cloned();
                if first.as_ref() == Some(&me) {
                    let body = format!(
                        r#"{{"leader":"{me}","expiresAt":{}}}"#,
                        wall + self.config.lease_timeout.as_millis() as u64
                    );
                    let key = self.keys.lease();
                    self.send(
                        Request::Put {
                            key,
                            body: body.into_bytes(),
                        },
                        Purpose::WriteLease,
                    );
                } else {
                    self.set_belief(false);
                }
            }
        }
    }
}

fn parse_lease(body: &[u8]) -> Option<(WorkerId, u64)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let leader = WorkerId::new(value.get("leader")?.as_str()?).ok()?;
    let expires_at = value.get("expiresAt")?.as_u64()?;
    Some((leader, expires_at))
}
