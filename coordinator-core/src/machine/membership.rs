//! Membership: this worker's heartbeat object, and the leader's roster.

use std::collections::{BTreeMap, BTreeSet};

use super::{Machine, Phase, Purpose};
use crate::action::{Listed, Request, Response, Version};
use crate::event::Event;
use crate::ids::WorkerId;
use crate::machine::timers::Timer;
use crate::records::{
    decode, encode, HeartbeatRecord, MetadataRecord, RecordError, RosterRecord, FORMAT,
};
use crate::time::{duration_millis, Instant};

/// A worker as the leader last listed it.
#[derive(Clone, Debug)]
struct Member {
    version: Version,
    /// The leader's instant when it first listed this version.
    first_seen: Instant,
}

/// Membership state: the worker's own heartbeat and, while leading, the roster.
#[derive(Clone, Debug, Default)]
pub(super) struct Membership {
    /// The first heartbeat was sent (after the first answered lease read).
    started: bool,
    sequence: u64,
    put_in_flight: bool,
    /// The version of this worker's last heartbeat write: a graceful stop
    /// deletes only that version.
    pub(super) own_version: Option<Version>,
    /// The store's timestamp of this worker's latest heartbeat write.
    pub(super) own_store_time_ms: Option<i64>,
    own_read_requested: bool,
    pub(super) deleted_own: bool,
    // Leader side, reset every term.
    members: BTreeMap<WorkerId, Member>,
    list_in_flight: bool,
    listed_once: bool,
    known_before_term: BTreeSet<WorkerId>,
    roster_read: bool,
    roster_version: Option<Version>,
    roster_foreign: bool,
    roster_revision: u64,
    roster_in_flight: bool,
    published: Option<Vec<WorkerId>>,
}

/// State of the epoch high-water mark object.
#[derive(Clone, Debug, Default)]
pub(super) struct MetadataState {
    pub(super) version: Option<Version>,
    /// The high-water mark last read or written.
    pub(super) high_water: u64,
    /// The highest mark ever read or written; never goes back. Epochs
    /// reserved but never acquired count here, not in the leadership view.
    pub(super) highest_reserved: u64,
    /// The last version read or written carried a readable mark.
    pub(super) high_water_known: bool,
    /// The longest takeover wait on record in the last version read or
    /// written; 0 when none is (see `MetadataRecord`).
    pub(super) longest_wait_ms: u64,
    /// Another implementation owns the object: it is read but never
    /// written.
    pub(super) foreign: bool,
}

/// The leader's copy of the epoch mark beside the plugins' data (see
/// [`Keys::election_marker`](crate::Keys::election_marker)).
#[derive(Clone, Debug, Default)]
pub(super) struct MarkerState {
    /// The version last read or written; `None` with `known` when absent.
    pub(super) version: Option<Version>,
    /// `version` reflects the store (read or written since the last conflict).
    pub(super) known: bool,
    /// The highest mark found in it.
    pub(super) mark: u64,
    pub(super) in_flight: bool,
    /// The longest takeover wait a marker read by a survey carried (a
    /// copy of `metadata.json`'s bound); 0 when none was read.
    pub(super) bound_ms: u64,
    /// The epoch the leader reserved for its successor, advertised in the
    /// lease once the marker covers it.
    pub(super) advertise: u64,
    /// Conflicts in a row: a leader that keeps losing stops until the next
    /// refresh rather than loop.
    pub(super) conflicts: u8,
}

impl MarkerState {
    /// The marker was read: `body` is `None` when it is absent. Returns the
    /// mark it carries (0 when absent or unreadable).
    pub(super) fn read(&mut self, found: Option<(&[u8], Version)>) -> u64 {
        self.known = true;
        let Some((body, version)) = found else {
            self.version = None;
            return 0;
        };
        self.version = Some(version);
        let mark = MetadataRecord::high_water_of_any_format(body).unwrap_or(0);
        self.mark = self.mark.max(mark);
        mark
    }
}

impl MetadataState {
    /// The object is gone (or not ours): nothing on record.
    pub(super) fn forget(&mut self) {
        self.version = None;
        self.high_water = 0;
        self.high_water_known = false;
        self.longest_wait_ms = 0;
    }

    pub(super) fn learn_high_water(&mut self, mark: u64) {
        self.high_water = mark;
        self.highest_reserved = self.highest_reserved.max(mark);
        self.high_water_known = true;
    }

    /// After a successful write of this mark and bound at `version`.
    pub(super) fn wrote(&mut self, version: Version, high_water: u64, longest_wait_ms: u64) {
        self.version = Some(version);
        self.learn_high_water(high_water);
        self.longest_wait_ms = longest_wait_ms;
    }
}

impl Membership {
    pub(super) fn begin_term(&mut self, known: Vec<WorkerId>) {
        self.forget_leader_state();
        self.known_before_term = known.into_iter().collect();
    }

    /// The roster is written again at the next listing, changed or not.
    pub(super) fn forget_published_roster(&mut self) {
        self.published = None;
    }

    pub(super) fn forget_leader_state(&mut self) {
        self.members.clear();
        self.list_in_flight = false;
        self.listed_once = false;
        self.known_before_term.clear();
        self.roster_read = false;
        self.roster_version = None;
        self.roster_foreign = false;
        self.roster_in_flight = false;
        self.published = None;
    }

    /// Every live worker the leader knows, itself included, sorted.
    pub(super) fn roster_with(&self, me: &WorkerId) -> Vec<WorkerId> {
        let mut roster: Vec<WorkerId> = self.members.keys().cloned().collect();
        if let Err(at) = roster.binary_search(me) {
            roster.insert(at, me.clone());
        }
        roster
    }

    pub(super) fn roster_size(&self) -> usize {
        self.members.len() + 1
    }

    /// The first `n` workers in succession order, `me` excluded.
    pub(super) fn successors(&self, me: &WorkerId, n: usize) -> Vec<WorkerId> {
        self.members
            .keys()
            .filter(|id| *id != me)
            .take(n)
            .cloned()
            .collect()
    }
}

impl Machine {
    // ----- this worker's heartbeat object -----

    /// Writes the first heartbeat, once: called after each answered lease
    /// read, so that a namespace whose lease is refused (another
    /// implementation's) gets no write at all, and a worker that cannot
    /// read the lease does not announce itself.
    pub(super) fn start_membership(&mut self, now: Instant) {
        if self.membership.started || self.phase != Phase::Running {
            return;
        }
        self.membership.started = true;
        self.on_membership_timer(now);
    }

    pub(super) fn on_membership_timer(&mut self, now: Instant) {
        // The leader's renewals prove it alive; it writes no heartbeat.
        if self.phase != Phase::Running || self.term.is_some() || self.membership.put_in_flight {
            return;
        }
        self.membership.sequence += 1;
        let record = HeartbeatRecord {
            format: FORMAT,
            worker_id: self.identity.worker_id.clone(),
            incarnation: self.identity.incarnation,
            sequence: self.membership.sequence,
            started_at_unix_ms: self.start_unix_ms,
            written_at_unix_ms: self.unix_ms(now),
            epoch_seen: self.epoch_seen,
            takeover_wait_ms: duration_millis(self.config.takeover_wait()),
        };
        self.membership.put_in_flight = true;
        let key = self.keys.worker(&self.identity.worker_id);
        let sequence = self.membership.sequence;
        self.send(
            Request::Put {
                key,
                body: encode(&record),
            },
            Purpose::PutHeartbeat { sequence },
        );
    }

    pub(super) fn on_heartbeat_written(
        &mut self,
        _sequence: u64,
        response: Response,
        now: Instant,
    ) {
        self.membership.put_in_flight = false;
        if self.phase != Phase::Running {
            return;
        }
        let next = match response {
            Response::Written {
                store_time_ms,
                version,
            } => {
                self.membership.own_version = Some(version);
                self.counters.membership_writes += 1;
                match store_time_ms {
                    Some(ms) => {
                        self.membership.own_store_time_ms = Some(ms);
                        self.check_stale(now);
                        self.evaluate_takeover(now);
                    }
                    None if self.stale_takeover_enabled()
                        && !self.membership.own_read_requested =>
                    {
                        // One GET at start-up learns the store's clock.
                        self.membership.own_read_requested = true;
                        let key = self.keys.worker(&self.identity.worker_id);
                        self.send(
                            Request::Get {
                                key,
                                if_changed: None,
                            },
                            Purpose::ReadOwnHeartbeat,
                        );
                    }
                    None => {}
                }
                self.config.membership_interval + self.jitter()
            }
            _ => self.config.retry_backoff * 4 + self.jitter(),
        };
        if self.term.is_none() {
            self.timers.set(Timer::Membership, now + next);
        }
    }

    pub(super) fn on_own_heartbeat_read(&mut self, response: Response, now: Instant) {
        if let Response::Object {
            store_time_ms: Some(ms),
            ..
        } = response
        {
            self.membership.own_store_time_ms = Some(ms);
            self.check_stale(now);
            self.evaluate_takeover(now);
        }
    }

    // ----- the leader's roster -----

    pub(super) fn on_list_timer(&mut self, _now: Instant) {
        if self.phase != Phase::Running || self.term.is_none() || self.membership.list_in_flight {
            return;
        }
        self.membership.list_in_flight = true;
        let prefix = self.keys.workers_prefix();
        self.send(Request::List { prefix }, Purpose::ListWorkers);
    }

    pub(super) fn on_listed(&mut self, response: Response, now: Instant) {
        self.membership.list_in_flight = false;
        if self.phase != Phase::Running || self.term.is_none() {
            return;
        }
        let Response::Listed(entries) = response else {
            let delay = self.backoff(None);
            self.timers.set(Timer::ListWorkers, now + delay);
            return;
        };
        self.apply_listing(entries, now);
        let delay = self.config.worker_list_interval + self.jitter();
        self.timers.set(Timer::ListWorkers, now + delay);
        self.publish_roster();
    }

    fn apply_listing(&mut self, entries: Vec<Listed>, now: Instant) {
        let me = self.identity.worker_id.clone();
        let mut present = BTreeSet::new();
        for entry in entries {
            let Some(worker_id) = self.keys.worker_of_key(&entry.key) else {
                continue;
            };
            if worker_id == me {
                continue;
            }
            present.insert(worker_id.clone());
            match self.membership.members.get_mut(&worker_id) {
                Some(member) if member.version != entry.version => {
                    member.version = entry.version;
                    member.first_seen = now;
                }
                Some(member) => {
                    if now.saturating_since(member.first_seen) >= self.config.worker_timeout {
                        let version = member.version.clone();
                        self.membership.members.remove(&worker_id);
                        self.counters.worker_timeouts += 1;
                        let if_version = self.traits.conditional_delete.then_some(version);
                        self.send(
                            Request::Delete {
                                key: entry.key,
                                if_version,
                            },
                            Purpose::DeleteWorker,
                        );
                        self.events.push_back(Event::WorkerTimedOut { worker_id });
                    }
                }
                None => {
                    let announced = self.membership.listed_once
                        || !self.membership.known_before_term.contains(&worker_id);
                    self.membership.members.insert(
                        worker_id.clone(),
                        Member {
                            version: entry.version,
                            first_seen: now,
                        },
                    );
                    if announced {
                        self.counters.worker_registrations += 1;
                        self.events.push_back(Event::WorkerJoined { worker_id });
                    }
                }
            }
        }
        let gone: Vec<WorkerId> = self
            .membership
            .members
            .keys()
            .filter(|id| !present.contains(*id))
            .cloned()
            .collect();
        for worker_id in gone {
            self.membership.members.remove(&worker_id);
            self.events.push_back(Event::WorkerLeft { worker_id });
        }
        self.membership.listed_once = true;
    }

    /// Writes `roster.json` when the roster differs from what was published,
    /// by compare-and-swap on the version read at the start of the term.
    fn publish_roster(&mut self) {
        let Some(epoch) = self.term.as_ref().map(|t| t.epoch) else {
            return;
        };
        let m = &self.membership;
        if m.roster_in_flight || m.roster_foreign {
            return;
        }
        let roster = m.roster_with(&self.identity.worker_id);
        if m.published.as_ref() == Some(&roster) {
            return;
        }
        let key = self.keys.roster();
        self.membership.roster_in_flight = true;
        if !self.membership.roster_read {
            self.send(
                Request::Get {
                    key,
                    if_changed: None,
                },
                Purpose::ReadRoster,
            );
            return;
        }
        self.membership.roster_revision += 1;
        let body = encode(&RosterRecord {
            format: FORMAT,
            epoch,
            leader: self.identity.worker_id.clone(),
            revision: self.membership.roster_revision,
            workers: roster.clone(),
            takeover_wait_ms: duration_millis(self.config.takeover_wait()),
        });
        let request = match self.membership.roster_version.clone() {
            Some(expected) => Request::CompareAndSwap {
                key,
                expected,
                body,
            },
            None => Request::Create { key, body },
        };
        self.send(request, Purpose::WriteRoster { workers: roster });
    }

    pub(super) fn on_roster_read(&mut self, response: Response, _now: Instant) {
        self.membership.roster_in_flight = false;
        match response {
            Response::Object { body, version, .. } => {
                let key = self.keys.roster();
                match decode::<RosterRecord>(&key, &body) {
                    Ok(record) => {
                        self.membership.roster_revision =
                            self.membership.roster_revision.max(record.revision);
                    }
                    Err(error @ RecordError::Corrupt { .. }) => self.report_problem(error),
                    Err(error) => {
                        self.membership.roster_foreign = true;
                        self.report_problem(error);
                        return;
                    }
                }
                self.membership.roster_version = Some(version);
            }
            Response::Absent => self.membership.roster_version = None,
            // Retried after the next listing.
            _ => return,
        }
        self.membership.roster_read = true;
        self.publish_roster();
    }

    pub(super) fn on_roster_written(
        &mut self,
        workers: Vec<WorkerId>,
        response: Response,
        _now: Instant,
    ) {
        self.membership.roster_in_flight = false;
        match response {
            Response::Written { version, .. } => {
                self.membership.roster_version = Some(version);
                self.membership.published = Some(workers);
                self.publish_roster();
            }
            Response::Conflict | Response::AlreadyExists => {
                self.membership.roster_read = false;
                self.publish_roster();
            }
            // An ambiguous write may have landed: re-read before the next try.
            _ => self.membership.roster_read = false,
        }
    }
}
