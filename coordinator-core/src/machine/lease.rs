//! The lease: observing it, taking it over, renewing, stepping down,
//! releasing, and resolving writes whose outcome was unknown.

use std::time::Duration;

use super::{
    AbsenceRecheck, LeaderTerm, LeaseContent, Machine, Mutation, Observation, PendingWrite, Phase,
    Purpose, WriteKind,
};
use crate::action::{Failure, Request, Response, Version};
use crate::event::{Event, StepDownReason};
use crate::machine::timers::Timer;
use crate::records::{decode, encode, LeaseRecord, MetadataRecord, RecordError, FORMAT};
use crate::time::{duration_millis, Instant};

/// A lease with no leader that was not released: written in place of a
/// missing lease (see `write_vacancy`); whoever held the lease before is
/// unknown.
pub(super) fn is_vacant(record: &LeaseRecord) -> bool {
    record.leader.is_none() && !record.released
}

impl Machine {
    // ----- reading -----

    pub(super) fn on_poll(&mut self, _now: Instant) {
        if self.phase != Phase::Running || self.term.is_some() || self.lease_request.is_some() {
            return;
        }
        self.counters.heartbeats += 1;
        self.read_lease();
    }

    pub(super) fn read_lease(&mut self) {
        let if_changed = if self.traits.conditional_get {
            self.observed.as_ref().and_then(|o| o.version.clone())
        } else {
            None
        };
        let key = self.keys.lease();
        let id = self.send(Request::Get { key, if_changed }, Purpose::ReadLease);
        self.lease_request = Some(id);
    }

    pub(super) fn schedule_poll(&mut self, now: Instant, delay: Duration) {
        if self.phase == Phase::Running && self.term.is_none() {
            self.timers.set(Timer::Poll, now + delay);
        }
    }

    /// The wait before the next lease read. The designated successor (the
    /// first successor the lease lists) reads more often, so that it sees a
    /// release, or the last renewal before a crash, sooner; the others keep
    /// the heartbeat cadence, so the cost per worker stays flat.
    pub(super) fn next_poll_delay(&mut self) -> Duration {
        if self.is_designated_successor() {
            let interval = self
                .config
                .successor_poll_interval
                .min(self.config.heartbeat_interval);
            let spread = self.rng.up_to(duration_millis(interval) / 10);
            interval + Duration::from_millis(spread)
        } else {
            self.config.heartbeat_interval + self.jitter()
        }
    }

    fn is_designated_successor(&self) -> bool {
        match self.observed.as_ref().map(|o| &o.content) {
            Some(LeaseContent::Ours(record)) => {
                record.leader.as_ref() != Some(&self.identity)
                    && record.successors.first() == Some(&self.identity.worker_id)
            }
            _ => false,
        }
    }

    pub(super) fn on_lease_read(&mut self, response: Response, now: Instant) {
        match response {
            Response::Unchanged => {
                self.consecutive_errors = 0;
                // Decide as a full read of the same version would (`observe`):
                // our own lease, which we no longer lead on, is handed on.
                // Otherwise a leader that stepped down at its deadline never
                // leaves its own lease (takeover skips leases we hold).
                if self.term.is_none() {
                    self.release_if_ours(now);
                }
            }
            Response::Object {
                body,
                version,
                store_time_ms,
            } => {
                self.consecutive_errors = 0;
                self.observe(&body, version, store_time_ms, now);
            }
            Response::Absent => {
                self.consecutive_errors = 0;
                self.on_lease_absent(now);
                return;
            }
            Response::Failed(failure) => {
                self.consecutive_errors += 1;
                let delay = self.backoff(Some(&failure));
                if self.term.is_some() {
                    self.retry_renewal(now, delay);
                } else {
                    self.schedule_poll(now, delay);
                }
                return;
            }
            _ => {}
        }
        if self.phase != Phase::Running {
            return;
        }
        if self.term.is_some() {
            // A confirming read while leading: a renewal round may still need
            // to succeed.
            if self
                .term
                .as_ref()
                .is_some_and(|t| t.round_started.is_some())
            {
                let delay = self.config.retry_backoff;
                self.retry_renewal(now, delay);
            }
            return;
        }
        if self.lease_request.is_none() {
            self.evaluate_takeover(now);
        }
        if self.term.is_none() && self.lease_request.is_none() {
            let delay = self.next_poll_delay();
            self.schedule_poll(now, delay);
        }
    }

    fn on_lease_absent(&mut self, now: Instant) {
        self.pending_writes.retain(|w| w.expected.is_none());
        if self.term.is_some() {
            self.counters.renewal_failures += 1;
            self.step_down(StepDownReason::LeaseLost, now);
        }
        self.report_leader(None);
        let already_watching = matches!(
            self.observed.as_ref().map(|o| &o.content),
            Some(LeaseContent::Absent)
        );
        if !already_watching {
            // Observer time starts now, when the absence was first seen;
            // what it takes to judge it (metadata, perhaps a survey) is
            // learned before any decision (`evaluate_takeover` asks).
            self.observed = Some(Observation::new(None, LeaseContent::Absent, now));
            self.timers.stop(Timer::Takeover);
        }
        self.evaluate_takeover(now);
        if self.term.is_none() && self.lease_request.is_none() && self.survey.is_none() {
            let delay = self.next_poll_delay();
            self.schedule_poll(now, delay);
        }
    }

    pub(super) fn learn_metadata(&mut self, body: &[u8], version: Version) {
        let key = self.keys.metadata();
        self.metadata.foreign = false;
        self.metadata.version = Some(version);
        self.metadata.longest_wait_ms = 0;
        match decode::<MetadataRecord>(&key, body) {
            Ok(record) => {
                self.metadata.learn_high_water(record.epoch_high_water);
                self.metadata.longest_wait_ms = record.longest_takeover_wait_ms;
                self.longest_wait_seen = self
                    .longest_wait_seen
                    .max(Duration::from_millis(record.longest_takeover_wait_ms));
            }
            Err(error @ RecordError::Foreign { .. }) => {
                // Never overwrite another implementation's metadata.
                self.report_problem(error);
                self.metadata.forget();
                self.metadata.foreign = true;
            }
            Err(error) => {
                // Corrupt, or left by a newer release (a canary rolled
                // back): replaced by compare-and-swap at the next
                // reservation, with the mark kept where it can be read.
                self.report_problem(error);
                self.metadata.high_water_known = false;
                if let Some(mark) = MetadataRecord::high_water_of_any_format(body) {
                    self.metadata.learn_high_water(mark);
                }
            }
        }
    }

    /// The takeover wait a lease record's holder was promised.
    pub(super) fn promised_wait(&self, record: &LeaseRecord) -> Duration {
        Duration::from_millis(record.lease_timeout_ms).max(self.config.minimum_safe_wait(
            Duration::from_millis(record.renew_deadline_ms),
            record.drift_tolerance,
        ))
    }

    /// Takes in a lease read from the store.
    fn observe(&mut self, body: &[u8], version: Version, store_time_ms: Option<i64>, now: Instant) {
        let key = self.keys.lease();
        let content = match decode::<LeaseRecord>(&key, body) {
            Ok(record) => LeaseContent::Ours(record),
            Err(error @ RecordError::Foreign { .. }) => {
                self.refuse(error);
                return;
            }
            Err(error @ RecordError::NewerFormat { .. }) => {
                // Followed while a newer release keeps renewing it; taken
                // over only once it has been left unchanged for the
                // recovery wait (a canary that was rolled back).
                self.report_problem(error);
                if self.term.is_some() {
                    self.step_down(StepDownReason::Refused, now);
                }
                LeaseContent::Unusable { newer_format: true }
            }
            Err(error) => {
                self.report_problem(error);
                if self.term.is_some() && !self.mutated(Mutation::LeadThroughUnusableLease) {
                    self.counters.renewal_failures += 1;
                    self.step_down(StepDownReason::LeaseUnusable, now);
                }
                LeaseContent::Unusable {
                    newer_format: false,
                }
            }
        };
        let is_new = self.observed.as_ref().map(|o| o.version.as_ref()) != Some(Some(&version));
        if is_new {
            let mut observation = Observation::new(Some(version.clone()), content.clone(), now);
            observation.store_time_ms = store_time_ms;
            self.observed = Some(observation);
        }
        let LeaseContent::Ours(record) = content else {
            self.pending_writes
                .retain(|w| w.expected.as_ref() == Some(&version));
            self.report_leader(None);
            return;
        };
        self.epoch_seen = self.epoch_seen.max(record.epoch);
        if !is_vacant(&record) {
            // A vacant lease's wait is owed to its unknown predecessor, not
            // promised to a holder: it must not outlive that lease.
            self.longest_wait_seen = self.longest_wait_seen.max(self.promised_wait(&record));
        }

        if let Some(index) = self
            .pending_writes
            .iter()
            .position(|w| w.nonce == record.nonce)
        {
            let write = self.pending_writes.swap_remove(index);
            self.pending_writes.clear();
            self.on_write_succeeded(write, version, now);
            return;
        }
        // Attempts made on another version can no longer land.
        self.pending_writes
            .retain(|w| w.expected.as_ref() == Some(&version));

        match &record.leader {
            Some(holder) if *holder == self.identity => {
                if self.term.is_none() {
                    // Our own write landed after we stopped counting on it
                    // (a late renewal): never resume on it; hand it on.
                    self.release_if_ours(now);
                }
            }
            Some(holder) => {
                if holder.worker_id == self.identity.worker_id
                    && !self.reported_duplicates.contains(&holder.incarnation.0)
                {
                    self.reported_duplicates.push(holder.incarnation.0);
                    self.events.push_back(Event::DuplicateWorkerId {
                        worker_id: holder.worker_id.clone(),
                        other: holder.incarnation,
                    });
                }
                if self.term.is_some() {
                    self.counters.renewal_failures += 1;
                    self.step_down(StepDownReason::LeaseLost, now);
                }
            }
            None => {
                if self.term.is_some() {
                    self.step_down(StepDownReason::LeaseLost, now);
                }
            }
        }
        self.report_leader(record.leader.as_ref().map(|l| l.worker_id.clone()));
        self.check_stale(now);
    }

    /// Marks the observed lease as long dead if the store's own timestamps
    /// say so: the lease version is older than the leader's renew deadline
    /// (stretched by the drift bound) plus a margin, measured against this
    /// worker's fresh heartbeat on the same store clock.
    pub(super) fn check_stale(&mut self, _now: Instant) {
        if !self.stale_takeover_enabled() {
            return;
        }
        let Some(own_ms) = self.membership.own_store_time_ms else {
            return;
        };
        let margin = self.config.stale_takeover_margin;
        let Some(observation) = self.observed.as_mut() else {
            return;
        };
        let (LeaseContent::Ours(record), Some(lease_ms)) =
            (&observation.content, observation.store_time_ms)
        else {
            return;
        };
        if record.released || record.leader.as_ref() == Some(&self.identity) {
            return;
        }
        let bound = self.config.minimum_safe_wait(
            Duration::from_millis(record.renew_deadline_ms),
            record.drift_tolerance,
        ) + margin;
        let age = own_ms.saturating_sub(lease_ms);
        if age > 0 && u64::try_from(age).unwrap_or(0) > duration_millis(bound) {
            observation.stale_on_store_clock = true;
        }
    }

    // ----- taking over -----

    /// Acquires the lease once this worker's own clock says it is free (and
    /// its rank's turn has come), or arms the timer for that moment.
    pub(super) fn evaluate_takeover(&mut self, now: Instant) {
        if self.phase != Phase::Running
            || self.term.is_some()
            || self.lease_request.is_some()
            || self.survey.is_some()
        {
            return;
        }
        let Some(observation) = &self.observed else {
            self.timers.stop(Timer::Takeover);
            return;
        };
        let free_at = match &observation.content {
            LeaseContent::Ours(record) => {
                if record.leader.as_ref() == Some(&self.identity) {
                    return;
                }
                let rank = record
                    .successors
                    .iter()
                    .filter(|id| record.leader.as_ref().map(|l| &l.worker_id) != Some(*id))
                    .position(|id| *id == self.identity.worker_id)
                    .unwrap_or(record.successors.len());
                let rank_wait =
                    self.config.succession_step * u32::try_from(rank).unwrap_or(u32::MAX);
                if is_vacant(record) {
                    observation.first_seen + self.vacancy_wait(record)
                } else if record.released && self.own_release_nonce != Some(record.nonce) {
                    // A release is deliberate and seen by few followers
                    // within one round trip: whoever sees it first takes
                    // it, without a rank wait (hand-over in one poll).
                    observation.first_seen
                } else if record.released && !record.successors.is_empty() {
                    // Our own release (after stepping down at a deadline):
                    // the workers it lists go first (the designated
                    // successor reads once per successor poll); we retake
                    // it only if none of them does.
                    let successor_poll = self
                        .config
                        .successor_poll_interval
                        .min(self.config.heartbeat_interval);
                    observation.first_seen + successor_poll + rank_wait
                } else if record.released {
                    observation.first_seen
                } else {
                    let expiry = if observation.stale_on_store_clock {
                        observation.first_seen
                    } else {
                        let wait = self
                            .config
                            .lease_timeout
                            .max(Duration::from_millis(record.lease_timeout_ms))
                            .max(self.config.minimum_safe_wait(
                                Duration::from_millis(record.renew_deadline_ms),
                                record.drift_tolerance,
                            ));
                        observation.first_seen + wait
                    };
                    expiry + rank_wait
                }
            }
            LeaseContent::Unusable { newer_format } => {
                if !observation.assessed {
                    self.assess(now);
                    return;
                }
                observation.first_seen + self.unknown_holder_wait(*newer_format)
            }
            LeaseContent::Absent => {
                if !observation.assessed {
                    self.assess(now);
                    return;
                }
                match observation.absence_recheck {
                    AbsenceRecheck::Done => {
                        // An absence has no version: two reads that both
                        // find nothing may straddle a lease that was
                        // created, renewed and deleted in between. Watch a
                        // version instead: a vacant lease, created in its
                        // place.
                        self.write_vacancy(now);
                    }
                    AbsenceRecheck::Due(at) if now < at => self.timers.set(Timer::Takeover, at),
                    AbsenceRecheck::Pending | AbsenceRecheck::After(_) | AbsenceRecheck::Due(_) => {
                        if let Some(observation) = self.observed.as_mut() {
                            observation.absence_recheck = AbsenceRecheck::Done;
                        }
                        self.timers.stop(Timer::Takeover);
                        self.timers.stop(Timer::Poll);
                        self.read_lease();
                    }
                }
                return;
            }
        };
        if now >= free_at {
            self.timers.stop(Timer::Takeover);
            let expected = observation.version.clone();
            self.acquire(now, expected, false);
        } else {
            self.timers.set(Timer::Takeover, free_at);
        }
    }

    /// Writes the lease for a new term under `epoch`, already reserved in
    /// the high-water mark.
    pub(super) fn write_acquisition(
        &mut self,
        now: Instant,
        expected: Option<Version>,
        epoch: u64,
    ) {
        let successors = match self.observed.as_ref().map(|o| &o.content) {
            Some(LeaseContent::Ours(previous)) => previous
                .successors
                .iter()
                .filter(|id| **id != self.identity.worker_id)
                .take(self.config.successors_in_lease)
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        let roster_size = successors.len() + 1;
        let record = LeaseRecord {
            format: FORMAT,
            leader: Some(self.identity.clone()),
            epoch,
            nonce: self.rng.next_u64(),
            renewals: 0,
            released: false,
            lease_timeout_ms: duration_millis(self.config.lease_timeout),
            renew_deadline_ms: duration_millis(self.config.renew_deadline),
            drift_tolerance: self.config.drift_tolerance,
            successors,
            roster_size,
            reserved_epoch: epoch,
            acquired_at_unix_ms: self.unix_ms(now),
            written_at_unix_ms: self.unix_ms(now),
        };
        self.timers.stop(Timer::Poll);
        self.write_lease(WriteKind::Acquire, expected, record, now);
    }

    fn write_lease(
        &mut self,
        kind: WriteKind,
        expected: Option<Version>,
        record: LeaseRecord,
        started: Instant,
    ) {
        let key = self.keys.lease();
        let body = encode(&record);
        let request = match &expected {
            Some(version) => Request::CompareAndSwap {
                key,
                expected: version.clone(),
                body,
            },
            None => Request::Create { key, body },
        };
        let write = PendingWrite {
            kind,
            nonce: record.nonce,
            expected,
            record,
            started,
        };
        let id = self.send(request, Purpose::WriteLease(write));
        self.lease_request = Some(id);
    }

    // ----- the outcome of a lease write -----

    pub(super) fn on_lease_written(
        &mut self,
        write: PendingWrite,
        response: Response,
        now: Instant,
    ) {
        match response {
            Response::Written { version, .. } => {
                self.consecutive_errors = 0;
                self.pending_writes.clear();
                self.on_write_succeeded(write, version, now);
            }
            Response::Conflict | Response::AlreadyExists => {
                self.consecutive_errors = 0;
                // A client's hidden retry of a write that landed answers
                // exactly like a lost race. Keep the attempt and re-read:
                // its nonce in the lease means it landed; another holder
                // means we lost (and `observe` steps down).
                self.pending_writes.push(write);
                self.read_lease();
            }
            Response::Failed(Failure::Ambiguous { .. }) => {
                self.consecutive_errors += 1;
                if write.kind == WriteKind::Renew {
                    self.counters.renewal_failures += 1;
                }
                self.pending_writes.push(write);
                self.read_lease();
            }
            Response::Failed(failure) => {
                self.consecutive_errors += 1;
                let delay = self.backoff(Some(&failure));
                match write.kind {
                    WriteKind::Renew => {
                        self.counters.renewal_failures += 1;
                        self.retry_renewal(now, delay);
                    }
                    WriteKind::Acquire | WriteKind::Vacate => self.schedule_poll(now, delay),
                    WriteKind::Release => {
                        if self.phase == Phase::Running {
                            self.schedule_poll(now, delay);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A lease write is known to have landed (from its response, or from a
    /// re-read showing its nonce).
    fn on_write_succeeded(&mut self, write: PendingWrite, version: Version, now: Instant) {
        self.observed = Some(Observation::new(
            Some(version),
            LeaseContent::Ours(write.record.clone()),
            now,
        ));
        self.epoch_seen = self.epoch_seen.max(write.record.epoch);
        let deadline = write.started + self.config.renew_deadline;
        match write.kind {
            WriteKind::Acquire => {
                if self.phase == Phase::Running && now < deadline {
                    self.become_leader(write.record, deadline, now);
                } else {
                    self.release_if_ours(now);
                }
            }
            WriteKind::Renew => {
                let round_deadline = self
                    .term
                    .as_ref()
                    .and_then(|t| t.round_started)
                    .map_or(deadline, |start| start + self.config.renew_deadline);
                let valid = self.term.as_ref().is_some_and(|t| now < t.deadline);
                if self.phase == Phase::Running && valid && now < round_deadline {
                    self.counters.renewals += 1;
                    if let Some(term) = self.term.as_mut() {
                        term.deadline = term.deadline.max(round_deadline);
                        term.renewals = write.record.renewals;
                        term.round_started = None;
                        self.timers.set(Timer::Deadline, term.deadline);
                    }
                    let delay = self.next_poll_delay();
                    self.timers.set(Timer::Renew, now + delay);
                } else {
                    // Landed, but after this worker stopped counting on it:
                    // never resume on it; hand the lease on instead.
                    if self.term.is_some() {
                        self.counters.renewal_failures += 1;
                        self.step_down(StepDownReason::RenewDeadlineExceeded, now);
                    }
                    self.release_if_ours(now);
                }
            }
            WriteKind::Release | WriteKind::Vacate => {
                self.report_leader(None);
                if self.phase == Phase::Running {
                    self.evaluate_takeover(now);
                    let delay = self.next_poll_delay();
                    self.schedule_poll(now, delay);
                }
            }
        }
    }

    /// How long a vacant lease must stay unchanged before it is taken: the
    /// wait its writer recorded (the writer judged the missing lease with
    /// the metadata it had just read, and `recovery_wait` if none), or the
    /// longest this worker knows, whichever is longer.
    pub(super) fn vacancy_wait(&self, record: &LeaseRecord) -> Duration {
        if self.mutated(Mutation::OwnTimeoutForUnknownHolder) {
            return self.config.lease_timeout;
        }
        self.promised_wait(record)
            .max(self.longest_wait_seen)
            .max(self.config.takeover_wait())
            .max(Duration::from_millis(self.metadata.longest_wait_ms))
    }

    /// Creates a vacant lease where the lease is missing from a namespace
    /// in use: no leader, not released, an epoch at the highest this worker
    /// knows (so no reservation above the mark is shared from it), and as
    /// its lease timeout the wait owed to the unknown last holder, so that
    /// every reader, this release or an older one, watches it that long.
    fn write_vacancy(&mut self, now: Instant) {
        if self.lease_request.is_some() || self.term.is_some() || self.phase != Phase::Running {
            return;
        }
        let epoch = self.epoch_seen.max(self.metadata.highest_reserved);
        let wait = self.unknown_holder_wait(false);
        // A renew deadline whose drift-stretched wait is that same wait, so
        // that every rule that reads the record's timings (the stale-lease
        // shortcut on a trusted store clock too) owes it as long.
        let rho = self.config.drift_tolerance;
        let renew_deadline = wait.mul_f64((1.0 - rho) / (1.0 + rho));
        let record = LeaseRecord {
            format: FORMAT,
            leader: None,
            epoch,
            nonce: self.rng.next_u64(),
            renewals: 0,
            released: false,
            lease_timeout_ms: duration_millis(wait),
            renew_deadline_ms: duration_millis(renew_deadline),
            drift_tolerance: self.config.drift_tolerance,
            successors: Vec::new(),
            roster_size: 0,
            reserved_epoch: epoch,
            acquired_at_unix_ms: 0,
            written_at_unix_ms: self.unix_ms(now),
        };
        self.timers.stop(Timer::Poll);
        self.write_lease(WriteKind::Vacate, None, record, now);
    }

    fn become_leader(&mut self, record: LeaseRecord, deadline: Instant, now: Instant) {
        let epoch = record.epoch;
        self.marker.advertise = 0;
        self.counters.acquisitions += 1;
        self.term = Some(LeaderTerm {
            epoch,
            deadline,
            renewals: 0,
            round_started: None,
            reserved_for_successor: epoch,
        });
        self.timers.stop(Timer::Poll);
        self.timers.stop(Timer::Takeover);
        self.timers.stop(Timer::Membership);
        self.timers.set(Timer::Deadline, deadline);
        let delay = self.next_poll_delay();
        self.timers.set(Timer::Renew, now + delay);
        self.events
            .push_back(Event::BecameLeader { epoch, deadline });
        self.report_leader(Some(self.identity.worker_id.clone()));
        let known: Vec<_> = record.successors.clone();
        self.membership.begin_term(known);
        self.timers.set(Timer::ListWorkers, now);
        self.timers.set(
            Timer::RefreshMetadata,
            now + self.config.metadata_refresh_interval,
        );
        self.reserve_next_epoch();
    }

    // ----- renewing -----

    pub(super) fn on_renew(&mut self, now: Instant) {
        if self.phase != Phase::Running || self.lease_request.is_some() {
            return;
        }
        let Some(term) = self.term.as_mut() else {
            return;
        };
        // No attempt may start that could still be in flight at the deadline.
        if now + self.config.request_timeout >= term.deadline {
            return;
        }
        term.round_started.get_or_insert(now);
        let renewals = term.renewals + 1;
        let Some(observation) = &self.observed else {
            return;
        };
        let (LeaseContent::Ours(current), Some(expected)) =
            (&observation.content, observation.version.clone())
        else {
            return;
        };
        let reserved = term.reserved_for_successor;
        let mut record = current.clone();
        record.renewals = renewals;
        record.reserved_epoch = record.reserved_epoch.max(reserved);
        record.nonce = self.rng.next_u64();
        record.successors = self
            .membership
            .successors(&self.identity.worker_id, self.config.successors_in_lease);
        record.roster_size = self.membership.roster_size();
        record.written_at_unix_ms = self.unix_ms(now);
        self.counters.heartbeats += 1;
        self.write_lease(WriteKind::Renew, Some(expected), record, now);
    }

    fn retry_renewal(&mut self, now: Instant, delay: Duration) {
        if let Some(term) = &self.term {
            let at = now + delay;
            if at + self.config.request_timeout < term.deadline {
                self.timers.set(Timer::Renew, at);
            }
        }
    }

    pub(super) fn on_deadline(&mut self, now: Instant) {
        let expired = self.term.as_ref().is_some_and(|t| now >= t.deadline);
        if !expired {
            if let Some(term) = &self.term {
                self.timers.set(Timer::Deadline, term.deadline);
            }
            return;
        }
        self.counters.renewal_failures += 1;
        self.step_down(StepDownReason::RenewDeadlineExceeded, now);
        // Watch our own last lease like any follower would.
        if let Some(observation) = self.observed.as_mut() {
            observation.first_seen = now;
        }
        if self.lease_request.is_none() {
            let delay = self.next_poll_delay();
            self.schedule_poll(now, delay);
        }
    }

    // ----- releasing -----

    /// Releases the lease if the last version this worker knows is its own
    /// and nothing else is in flight on it.
    pub(super) fn release_if_ours(&mut self, now: Instant) {
        if self.lease_request.is_some() {
            return;
        }
        let Some(observation) = &self.observed else {
            return;
        };
        let (LeaseContent::Ours(current), Some(expected)) =
            (&observation.content, observation.version.clone())
        else {
            return;
        };
        if current.released || current.leader.as_ref() != Some(&self.identity) {
            return;
        }
        let mut record = current.clone();
        record.leader = None;
        record.released = true;
        record.renewals += 1;
        record.nonce = self.rng.next_u64();
        record.successors = self
            .membership
            .successors(&self.identity.worker_id, self.config.successors_in_lease);
        if record.successors.is_empty() {
            record.successors = current
                .successors
                .iter()
                .filter(|id| **id != self.identity.worker_id)
                .cloned()
                .collect();
        }
        record.written_at_unix_ms = self.unix_ms(now);
        self.own_release_nonce = Some(record.nonce);
        self.write_lease(WriteKind::Release, Some(expected), record, now);
    }

    // ----- refusing -----

    fn refuse(&mut self, error: RecordError) {
        self.phase = Phase::Refused;
        self.step_down(StepDownReason::Refused, Instant::from_millis(0));
        self.timers.clear();
        self.actions.clear();
        self.events.push_back(Event::Refused { error });
    }

    pub(super) fn report_problem(&mut self, error: RecordError) {
        let text = error.to_string();
        if !self.reported_problems.contains(&text) {
            self.reported_problems.push(text);
            self.events.push_back(Event::RecordProblem { error });
        }
    }
}
