//! The election state machine of one worker in one namespace.
//!
//! How a driver runs it is on [`Machine`], which is public.

mod epoch;
mod lease;
mod marker;
mod membership;
mod recovery;
mod timers;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::action::{Action, Failure, Request, RequestId, Response, Version};
use crate::config::{Config, StaleTakeover};
use crate::event::{Event, StepDownReason};
use crate::ids::{Identity, Namespace, WorkerId};
use crate::keys::Keys;
use crate::metrics::Counters;
use crate::records::LeaseRecord;
use crate::rng::SplitMix64;

use crate::time::{duration_millis, Instant};
pub use recovery::ABSENCE_RECHECK_MIN;

use self::marker::MarkerThen;
use self::membership::{MarkerState, Membership, MetadataState};
use self::recovery::{Survey, SurveyStep};
use self::timers::{Timer, Timers};

/// A deliberately broken variant of the machine: the code path of a bug
/// that was fixed, kept so that the model check and the simulator can show
/// they still catch that class of bug. Only settable with the `mutations`
/// feature; never enable it in production.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "mutations"), allow(unreachable_pub, dead_code))]
pub enum Mutation {
    /// Watch a missing or unusable lease for this worker's own
    /// `lease_timeout` only, ignoring longer waits other holders were
    /// promised (two leaders during a rolling change of timings).
    OwnTimeoutForUnknownHolder,
    /// Recreate a missing lease at once whenever `metadata.json` is missing
    /// too, without surveying the namespace for traces of earlier use.
    RecreateWipedNamespace,
    /// Keep leading to the deadline after reading an unusable lease.
    LeadThroughUnusableLease,
}

impl Mutation {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// What the machine needs to know about the store it is driven against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StoreTraits {
    /// Conditional GETs are real (an unchanged object transfers no body).
    pub conditional_get: bool,
    /// Deletes can be conditional on a version.
    pub conditional_delete: bool,
    /// Store timestamps come from a clock worth comparing with itself.
    pub trusted_clock: bool,
}

/// The leadership as this worker currently sees it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LeadershipView {
    /// The leader this worker last saw, if any.
    pub leader: Option<WorkerId>,
    /// The highest epoch this worker has seen; never goes back.
    pub epoch: u64,
    /// Whether this worker leads (as of the last input).
    pub is_leader: bool,
    /// When this worker stops leading unless it renews.
    pub deadline: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Stopping,
    Stopped,
    Refused,
}

/// The parsed content of an observed lease.
#[derive(Clone, Debug, PartialEq)]
enum LeaseContent {
    Ours(LeaseRecord),
    /// Corrupt or of a newer format: its holder is unknown.
    Unusable {
        /// Written by a newer release, whose rules are unknown.
        newer_format: bool,
    },
    /// No lease object, although one existed before (the epoch high-water
    /// mark is above zero): someone deleted it, and its last holder may
    /// still believe it leads.
    Absent,
}

/// A lease version as this worker observed it.
#[derive(Clone, Debug)]
struct Observation {
    /// `None` when the observation is of an absent lease.
    version: Option<Version>,
    content: LeaseContent,
    /// The local instant the response first showing this version arrived.
    first_seen: Instant,
    store_time_ms: Option<i64>,
    /// The store's own timestamps show the lease is long dead.
    stale_on_store_clock: bool,
    /// For a lease whose holder is unknown: what it takes to judge it
    /// (the metadata, a survey) has been learned since it was first seen.
    assessed: bool,
    /// For a missing lease: when to read it once more before writing a
    /// vacant lease in its place (see `Machine::recheck_absence`).
    absence_recheck: AbsenceRecheck,
}

/// A missing lease in a namespace in use is read once more, four round
/// trips after the metadata was, before a vacant lease replaces it: at a
/// cold start the worker that reserved the first epoch is creating the
/// lease right then, and a vacant lease written first would make everyone,
/// that worker included, wait a full takeover wait for nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AbsenceRecheck {
    /// Not judged yet.
    Pending,
    /// Read the lease again this long after the assessment ends.
    After(Duration),
    /// Read the lease again at this instant.
    Due(Instant),
    /// Read again and still missing.
    Done,
}

impl Observation {
    fn new(version: Option<Version>, content: LeaseContent, first_seen: Instant) -> Self {
        let assessed = matches!(content, LeaseContent::Ours(_));
        Self {
            version,
            content,
            first_seen,
            store_time_ms: None,
            stale_on_store_clock: false,
            assessed,
            absence_recheck: AbsenceRecheck::Pending,
        }
    }
}

#[derive(Clone, Debug)]
struct LeaderTerm {
    epoch: u64,
    deadline: Instant,
    renewals: u64,
    /// The instant before the first attempt of the renewal round under way.
    round_started: Option<Instant>,
    /// The epoch reserved for this term's successor (see
    /// [`LeaseRecord::reserved_epoch`]); `epoch` until that reservation lands.
    reserved_for_successor: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteKind {
    Acquire,
    Renew,
    Release,
    /// A vacant lease (no leader, not released) in place of a missing one,
    /// so that followers watch a version rather than an absence.
    Vacate,
}

/// A lease write whose outcome is not known yet.
#[derive(Clone, Debug)]
struct PendingWrite {
    kind: WriteKind,
    nonce: u64,
    expected: Option<Version>,
    record: LeaseRecord,
    started: Instant,
}

/// What an in-flight request was for.
#[derive(Clone, Debug)]
enum Purpose {
    ReadLease,
    /// Reading `metadata.json` to judge a missing or unusable lease.
    ReadMetadataForRecovery {
        sent: Instant,
    },
    /// One request of a survey of a namespace whose lease and metadata are
    /// both gone.
    Survey {
        survey: u64,
        step: SurveyStep,
    },
    WriteLease(PendingWrite),
    PutHeartbeat {
        sequence: u64,
    },
    ReadOwnHeartbeat,
    ListWorkers,
    DeleteWorker,
    ReadRoster,
    WriteRoster {
        workers: Vec<WorkerId>,
    },
    /// Reading the high-water mark before reserving an epoch.
    ReserveRead {
        expected: Option<Version>,
    },
    /// Raising the high-water mark to `epoch` before a lease carries it.
    ReserveWrite {
        expected: Option<Version>,
        epoch: u64,
        sent: Instant,
    },
    /// The leader reading the mark to reserve its successor's epoch.
    ReserveNextRead,
    /// The leader raising the mark to its successor's epoch.
    ReserveNextWrite {
        epoch: u64,
    },
    /// Reading the election's marker before raising it.
    ReadMarker {
        then: MarkerThen,
    },
    /// Raising the election's marker to `mark`.
    WriteMarker {
        mark: u64,
        then: MarkerThen,
    },
    DeleteOwnHeartbeat,
}

/// The election and membership state machine of one worker in one namespace.
///
/// # Driving it
///
/// The machine does no I/O and reads no clock. A driver:
///
/// 1. creates it with [`Machine::new`] (a seed for jitter and nonces, the
///    current instant and wall time),
/// 2. after **every** input (`handle_timeout`, `handle_response`, `stop`)
///    drains, in this order, [`poll_action`](Machine::poll_action) (execute
///    each, concurrently if it likes, and report each outcome with
///    [`handle_response`](Machine::handle_response)),
///    [`poll_event`](Machine::poll_event), then re-arms its one timer at
///    [`poll_timeout`](Machine::poll_timeout),
/// 3. calls [`handle_timeout`](Machine::handle_timeout) when that timer
///    fires. An early or extra call is harmless.
///
/// The instants given must never go backwards. Leader-only work should check
/// [`is_leader`](Machine::is_leader) with a fresh instant just before each
/// effect, not only when a timer fires.
///
/// ```
/// use coordinator_core::*;
/// let identity = Identity { worker_id: WorkerId::new("w1").unwrap(), incarnation: Incarnation(1) };
/// let mut machine = Machine::new(
///     Config::default(), Namespace::new("orders").unwrap(), identity,
///     StoreTraits::default(), 42, Instant::from_millis(0), 1_700_000_000_000,
/// );
/// // The first action reads the lease; nothing is written before a read
/// // has answered (a lease another implementation wrote is refused first).
/// let first: Vec<_> = std::iter::from_fn(|| machine.poll_action()).collect();
/// assert!(matches!(first[..], [Action { request: Request::Get { .. }, .. }]));
/// ```
#[derive(Clone, Debug)]
pub struct Machine {
    config: Config,
    namespace: Namespace,
    identity: Identity,
    keys: Keys,
    traits: StoreTraits,
    rng: SplitMix64,
    start: Instant,
    start_unix_ms: u64,
    phase: Phase,
    term: Option<LeaderTerm>,
    observed: Option<Observation>,
    /// The one lease request (read or write) in flight, if any.
    lease_request: Option<RequestId>,
    pending_writes: Vec<PendingWrite>,
    epoch_seen: u64,
    reported_leader: Option<WorkerId>,
    /// The longest takeover wait this worker knows any holder was
    /// promised: its own, every lease record it has read, the bound in
    /// `metadata.json`, and a survey's findings. Never lowered.
    longest_wait_seen: Duration,
    survey: Option<Survey>,
    next_survey: u64,
    /// A survey found traces of earlier use: never treat the namespace as new.
    traces_seen: bool,
    /// The nonce of the last release this worker wrote, so it lets its
    /// successors take that release first.
    own_release_nonce: Option<u64>,
    /// A refresh of `metadata.json` is due (see `Timer::RefreshMetadata`).
    metadata_refresh_due: bool,
    marker: MarkerState,
    mutations: u8,
    reported_problems: Vec<String>,
    reported_duplicates: Vec<u64>,
    membership: Membership,
    metadata: MetadataState,
    consecutive_errors: u32,
    timers: Timers,
    next_request: u64,
    in_flight: BTreeMap<RequestId, Purpose>,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    counters: Counters,
}

impl Machine {
    /// Creates the machine of `identity` in `namespace`.
    ///
    /// `seed` drives jitter and nonces (draw it from the OS in production, fix
    /// it in simulation). `now` is the driver's monotonic reading and
    /// `unix_ms` the wall clock at the same moment, used only for
    /// informational timestamps in records. The config should have passed
    /// [`Config::validate`].
    pub fn new(
        config: Config,
        namespace: Namespace,
        identity: Identity,
        traits: StoreTraits,
        seed: u64,
        now: Instant,
        unix_ms: u64,
    ) -> Self {
        let keys = Keys::global(&namespace);
        Self::with_keys(
            config, namespace, keys, identity, traits, seed, now, unix_ms,
        )
    }

    /// Like [`Machine::new`] with an explicit key layout (per-plugin mode).
    #[allow(clippy::too_many_arguments)]
    pub fn with_keys(
        config: Config,
        namespace: Namespace,
        keys: Keys,
        identity: Identity,
        traits: StoreTraits,
        seed: u64,
        now: Instant,
        unix_ms: u64,
    ) -> Self {
        let mut machine = Self {
            longest_wait_seen: config.takeover_wait(),
            config,
            namespace,
            identity,
            keys,
            traits,
            rng: SplitMix64::new(seed),
            start: now,
            start_unix_ms: unix_ms,
            phase: Phase::Running,
            term: None,
            observed: None,
            lease_request: None,
            pending_writes: Vec::new(),
            epoch_seen: 0,
            reported_leader: None,
            survey: None,
            next_survey: 0,
            traces_seen: false,
            own_release_nonce: None,
            metadata_refresh_due: false,
            marker: MarkerState::default(),
            mutations: 0,
            reported_problems: Vec::new(),
            reported_duplicates: Vec::new(),
            membership: Membership::default(),
            metadata: MetadataState::default(),
            consecutive_errors: 0,
            timers: Timers::default(),
            next_request: 0,
            in_flight: BTreeMap::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
        };
        // The lease is read first; this worker's heartbeat is written only
        // once a read has answered and the namespace was not refused (see
        // `start_membership`), so that nothing is ever written to a
        // namespace another implementation owns.
        machine.timers.set(Timer::Poll, now);
        machine.handle_timeout(now);
        machine
    }

    // ----- getters -----

    /// The namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// This worker's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// True while this worker leads *at `now`*: it holds the lease and its
    /// renew deadline has not passed. Call it with a fresh instant just
    /// before every leader-only effect.
    pub fn is_leader(&self, now: Instant) -> bool {
        self.term.as_ref().is_some_and(|t| now < t.deadline)
    }

    /// The current term's epoch and deadline, if this worker leads.
    pub fn term(&self) -> Option<(u64, Instant)> {
        self.term.as_ref().map(|t| (t.epoch, t.deadline))
    }

    /// The leadership as this worker sees it.
    pub fn view(&self) -> LeadershipView {
        LeadershipView {
            leader: self.reported_leader.clone(),
            epoch: self.epoch_seen,
            is_leader: self.term.is_some(),
            deadline: self.term.as_ref().map(|t| t.deadline),
        }
    }

    /// The live workers as last known: the leader's own roster when leading,
    /// otherwise the leader and the successors the lease lists.
    pub fn roster(&self) -> Vec<WorkerId> {
        if self.term.is_some() {
            return self.membership.roster_with(&self.identity.worker_id);
        }
        let mut roster: Vec<WorkerId> = match self.observed.as_ref().map(|o| &o.content) {
            Some(LeaseContent::Ours(record)) => {
                let mut r = record.successors.clone();
                r.extend(record.leader.as_ref().map(|l| l.worker_id.clone()));
                r
            }
            _ => Vec::new(),
        };
        roster.push(self.identity.worker_id.clone());
        roster.sort();
        roster.dedup();
        roster
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// True once a graceful stop has finished, or the namespace was refused.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Stopped | Phase::Refused)
    }

    // ----- outputs -----

    /// The next request to execute.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Machine::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ----- inputs -----

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.take_expired(now) {
            match timer {
                Timer::Deadline => self.on_deadline(now),
                Timer::Poll => self.on_poll(now),
                Timer::Takeover => self.evaluate_takeover(now),
                Timer::Renew => self.on_renew(now),
                Timer::Membership => self.on_membership_timer(now),
                Timer::ListWorkers => self.on_list_timer(now),
                Timer::RefreshMetadata => self.on_refresh_metadata_timer(now),
            }
        }
    }

    /// Reports the outcome of the request `id`. Unknown ids are ignored.
    pub fn handle_response(&mut self, id: RequestId, response: Response, now: Instant) {
        let Some(purpose) = self.in_flight.remove(&id) else {
            return;
        };
        if matches!(response, Response::Failed(_)) {
            self.counters.store_errors += 1;
        }
        if self.lease_request == Some(id) {
            self.lease_request = None;
        }
        if self.phase == Phase::Refused {
            return;
        }
        match purpose {
            Purpose::ReadLease => {
                let answered = !matches!(response, Response::Failed(_));
                self.on_lease_read(response, now);
                if answered {
                    self.start_membership(now);
                }
            }
            Purpose::ReadMetadataForRecovery { sent } => {
                self.on_metadata_for_recovery(response, sent, now)
            }
            Purpose::Survey { survey, step } => {
                self.on_survey_response(survey, step, response, now)
            }
            Purpose::WriteLease(write) => self.on_lease_written(write, response, now),
            Purpose::PutHeartbeat { sequence } => {
                self.on_heartbeat_written(sequence, response, now)
            }
            Purpose::ReadOwnHeartbeat => self.on_own_heartbeat_read(response, now),
            Purpose::ListWorkers => self.on_listed(response, now),
            Purpose::DeleteWorker => {}
            Purpose::ReadRoster => self.on_roster_read(response, now),
            Purpose::WriteRoster { workers } => self.on_roster_written(workers, response, now),
            Purpose::ReserveRead { expected } => self.on_reserve_read(expected, response, now),
            Purpose::ReserveWrite {
                expected,
                epoch,
                sent,
            } => self.on_reserve_written(expected, epoch, sent, response, now),
            Purpose::ReserveNextRead => self.on_reserve_next_read(response),
            Purpose::ReserveNextWrite { epoch } => self.on_reserve_next_written(epoch, response),
            Purpose::ReadMarker { then } => self.on_marker_read(then, response, now),
            Purpose::WriteMarker { mark, then } => {
                self.on_marker_written(mark, then, response, now)
            }
            Purpose::DeleteOwnHeartbeat => {}
        }
        self.advance_stop(now);
    }

    /// Starts a graceful stop: step down at once, release the lease (so a
    /// successor takes over within about one poll), delete this worker's
    /// heartbeat object, then report [`Event::Stopped`].
    pub fn stop(&mut self, now: Instant) {
        if self.phase != Phase::Running {
            return;
        }
        self.phase = Phase::Stopping;
        self.timers.clear();
        let was_leading = self.term.is_some();
        self.step_down(StepDownReason::Stopping, now);
        if was_leading && self.lease_request.is_none() {
            self.release_if_ours(now);
        }
        self.advance_stop(now);
    }

    /// Breaks this machine on purpose (see [`Mutation`]), for tests that
    /// show a checker catches the bug.
    #[cfg(feature = "mutations")]
    pub fn set_mutation(&mut self, mutation: Mutation) {
        self.mutations |= mutation.bit();
    }

    // ----- shared helpers -----

    fn mutated(&self, mutation: Mutation) -> bool {
        self.mutations & mutation.bit() != 0
    }

    fn send(&mut self, request: Request, purpose: Purpose) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.in_flight.insert(id, purpose);
        self.actions.push_back(Action { id, request });
        id
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        self.start_unix_ms
            .saturating_add(now.as_millis().saturating_sub(self.start.as_millis()))
    }

    fn jitter(&mut self) -> Duration {
        Duration::from_millis(
            self.rng
                .up_to(duration_millis(self.config.heartbeat_jitter)),
        )
    }

    /// The back-off after the latest consecutive error: doubling from
    /// `retry_backoff`, capped at `heartbeat_interval`, with up to 50% jitter.
    fn backoff(&mut self, failure: Option<&Failure>) -> Duration {
        let exponent = self.consecutive_errors.saturating_sub(1).min(16);
        let base = self
            .config
            .retry_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.config.heartbeat_interval);
        let spread = self.rng.up_to(duration_millis(base) / 2);
        let mut wait = base + Duration::from_millis(spread);
        if let Some(Failure::Throttled {
            retry_after_ms: Some(ms),
        }) = failure
        {
            wait = wait.max(Duration::from_millis(*ms));
        }
        wait
    }

    fn stale_takeover_enabled(&self) -> bool {
        self.config.stale_takeover == StaleTakeover::Auto && self.traits.trusted_clock
    }

    fn report_leader(&mut self, current: Option<WorkerId>) {
        if current != self.reported_leader {
            let previous = std::mem::replace(&mut self.reported_leader, current.clone());
            self.counters.leader_changes += 1;
            self.events.push_back(Event::LeaderChanged {
                namespace: self.namespace.clone(),
                previous,
                current,
                epoch: self.epoch_seen,
            });
        }
    }

    fn step_down(&mut self, reason: StepDownReason, now: Instant) {
        if let Some(term) = self.term.take() {
            self.timers.stop(Timer::Renew);
            self.timers.stop(Timer::Deadline);
            self.timers.stop(Timer::ListWorkers);
            self.timers.stop(Timer::RefreshMetadata);
            self.metadata_refresh_due = false;
            self.membership.forget_leader_state();
            self.events.push_back(Event::StoppedLeading {
                epoch: term.epoch,
                reason,
            });
            if reason != StepDownReason::Stopping {
                // A former leader writes its heartbeat again at once: while
                // it led, its renewals were its proof of life.
                self.timers.set(Timer::Membership, now);
            }
        }
    }

    /// Moves a graceful stop forward once nothing it waits for is in flight.
    fn advance_stop(&mut self, _now: Instant) {
        if self.phase != Phase::Stopping {
            return;
        }
        let waiting = self.in_flight.values().any(|p| {
            matches!(
                p,
                Purpose::WriteLease(_) | Purpose::PutHeartbeat { .. } | Purpose::DeleteOwnHeartbeat
            )
        }) || self.lease_request.is_some();
        if waiting {
            return;
        }
        if !self.membership.deleted_own {
            self.membership.deleted_own = true;
            let key = self.keys.worker(&self.identity.worker_id);
            // Conditional on our own last write: a second process with the
            // same worker id (a mistake, reported loudly) may be writing
            // the same object, and its heartbeat must survive our stop.
            let if_version = self.membership.own_version.clone();
            self.send(
                Request::Delete { key, if_version },
                Purpose::DeleteOwnHeartbeat,
            );
            return;
        }
        self.phase = Phase::Stopped;
        self.timers.clear();
        self.events.push_back(Event::Stopped);
    }
}
