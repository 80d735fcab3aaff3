//! The epoch high-water mark: an epoch is reserved in `metadata.json`
//! before any lease carries it, so that even if the lease object is deleted
//! (by an operator or a lifecycle rule) no epoch is ever issued twice.

use std::time::Duration;

use super::lease::is_vacant;
use super::recovery::SurveyThen;
use super::{LeaseContent, Machine, Phase, Purpose};
use crate::action::{Request, Response, Version};
use crate::machine::timers::Timer;
use crate::records::{encode, MetadataRecord, FORMAT};
use crate::time::{duration_millis, Instant};

impl Machine {
    /// Starts an acquisition of the lease at `expected` (`None`: create it).
    /// `metadata_fresh` says the high-water mark was read just now, so the
    /// reservation can be written without reading it again.
    pub(super) fn acquire(
        &mut self,
        now: Instant,
        expected: Option<Version>,
        metadata_fresh: bool,
    ) {
        self.counters.elections += 1;
        if let Some(epoch) = self.pre_reserved_epoch(expected.as_ref()) {
            self.write_acquisition(now, expected, epoch);
        } else {
            self.start_reservation(now, expected, metadata_fresh);
        }
    }

    /// The epoch the holder of the exact version being replaced reserved
    /// for its successor, if any. Safe to use without touching the mark for
    /// the same reason a shared reservation is (see `reserve_epoch`): at most
    /// one acquisition from that version can succeed.
    fn pre_reserved_epoch(&self, expected: Option<&Version>) -> Option<u64> {
        let observation = self.observed.as_ref()?;
        if expected.is_none() || observation.version.as_ref() != expected {
            return None;
        }
        match &observation.content {
            // Only if this worker promises its followers no more than the
            // holder being replaced did: that holder's reservation put its
            // wait on record in `metadata.json`, and a longer one must be
            // put there before any lease carries it.
            LeaseContent::Ours(record)
                if record.reserved_epoch > record.epoch
                    && record.reserved_epoch > self.epoch_seen
                    && self.config.takeover_wait() <= self.promised_wait(record) =>
            {
                Some(record.reserved_epoch)
            }
            _ => None,
        }
    }

    // ----- the leader reserves its successor's epoch -----

    /// Raises the mark to `epoch + 1` right after acquiring, off the
    /// successor's critical path; renewals then advertise it.
    pub(super) fn reserve_next_epoch(&mut self) {
        if self.metadata.foreign || self.term.is_none() {
            return;
        }
        match self.metadata.version.clone() {
            Some(version) => self.write_next_reservation(Some(version)),
            None => {
                let key = self.keys.metadata();
                self.send(
                    Request::Get {
                        key,
                        if_changed: None,
                    },
                    Purpose::ReserveNextRead,
                );
            }
        }
    }

    pub(super) fn write_next_reservation(&mut self, expected: Option<Version>) {
        let Some(epoch) = self.term.as_ref().map(|t| t.epoch) else {
            return;
        };
        if self.metadata.high_water > epoch
            && self.metadata.high_water_known
            && !self.metadata_refresh_due
        {
            // Already reserved above this term (by a racing follower, or
            // earlier): advertise it rather than raise it again.
            self.marker.advertise = self.marker.advertise.max(self.metadata.high_water);
            self.write_marker();
            return;
        }
        // Recreating a missing `metadata.json` (after a survey): above every
        // epoch this worker knows of, the marker's included.
        let floor = match expected {
            Some(_) => self.metadata.high_water,
            None => self.metadata.highest_reserved + 1,
        };
        let next = (epoch + 1).max(floor);
        let key = self.keys.metadata();
        let body = encode(&self.metadata_record(next));
        let request = match expected {
            Some(expected) => Request::CompareAndSwap {
                key,
                expected,
                body,
            },
            None => Request::Create { key, body },
        };
        self.send(request, Purpose::ReserveNextWrite { epoch: next });
    }

    pub(super) fn on_reserve_next_read(&mut self, response: Response) {
        match response {
            Response::Object { body, version, .. } => {
                self.learn_metadata(&body, version);
                if !self.metadata.foreign {
                    let expected = self.metadata.version.clone();
                    self.write_next_reservation(expected);
                }
            }
            Response::Absent => {
                // Recreated above every epoch the namespace's traces carry
                // (the marker above all), never from this term's memory.
                self.metadata.forget();
                self.start_survey(SurveyThen::ReserveNext);
            }
            // Not needed for safety: the successor reserves its own.
            _ => {}
        }
    }

    /// The metadata record to write with mark `epoch_high_water`: the
    /// longest takeover wait on record is raised to this worker's own and
    /// to every holder's it has seen, never lowered.
    pub(super) fn metadata_record(&mut self, epoch_high_water: u64) -> MetadataRecord {
        MetadataRecord {
            format: FORMAT,
            epoch_high_water,
            nonce: self.rng.next_u64(),
            longest_takeover_wait_ms: self.longest_wait_to_record(),
        }
    }

    fn longest_wait_to_record(&self) -> u64 {
        let longest = self
            .longest_wait_seen
            .max(self.config.takeover_wait())
            .max(Duration::from_millis(self.metadata.longest_wait_ms));
        duration_millis(longest)
    }

    /// A missing or unusable lease has not yet been watched for the bound
    /// the metadata just read puts on record.
    fn must_wait_longer(&self, now: Instant) -> bool {
        let Some(observation) = self.observed.as_ref() else {
            return false;
        };
        match &observation.content {
            LeaseContent::Ours(record) => {
                is_vacant(record) && now < observation.first_seen + self.vacancy_wait(record)
            }
            // A missing lease is never taken by waiting (see
            // `write_vacancy`).
            LeaseContent::Absent => true,
            LeaseContent::Unusable { newer_format } => {
                now < observation.first_seen + self.unknown_holder_wait(*newer_format)
            }
        }
    }

    /// The leader rewrites `metadata.json` now and then, so that an
    /// age-based lifecycle rule never finds it the oldest object of a
    /// namespace in use.
    pub(super) fn on_refresh_metadata_timer(&mut self, now: Instant) {
        if self.phase != Phase::Running || self.term.is_none() {
            return;
        }
        self.metadata_refresh_due = true;
        // The roster too, at the next listing: unchanged membership would
        // otherwise leave it the oldest object for a lifecycle rule.
        self.membership.forget_published_roster();
        self.reserve_next_epoch();
        self.timers.set(
            Timer::RefreshMetadata,
            now + self.config.metadata_refresh_interval,
        );
    }

    pub(super) fn on_reserve_next_written(&mut self, epoch: u64, response: Response) {
        match response {
            Response::Written { version, .. } => {
                let longest = self.longest_wait_to_record();
                self.metadata.wrote(version, epoch, longest);
                self.metadata_refresh_due = false;
                self.marker.conflicts = 0;
                self.marker.advertise = self.marker.advertise.max(epoch);
                self.write_marker();
            }
            Response::Conflict | Response::AlreadyExists => {
                self.metadata.version = None;
                self.reserve_next_epoch();
            }
            // An ambiguous or failed write: the successor reserves its own.
            _ => {}
        }
    }

    fn start_reservation(&mut self, now: Instant, expected: Option<Version>, metadata_fresh: bool) {
        if self.metadata.foreign {
            // Never write another implementation's metadata; the lease's
            // own epoch chain still increases by compare-and-swap.
            let epoch = self.next_epoch();
            self.acquire_covered(now, expected, epoch);
        } else if metadata_fresh {
            self.reserve_epoch(now, expected);
        } else {
            let key = self.keys.metadata();
            let id = self.send(
                Request::Get {
                    key,
                    if_changed: None,
                },
                Purpose::ReserveRead { expected },
            );
            self.lease_request = Some(id);
        }
    }

    /// Takes a reserved but unused epoch, or reserves a new one.
    ///
    /// A mark above the epoch of the exact lease version being replaced was
    /// reserved by a worker whose acquisition has not replaced that version
    /// (had it, this compare-and-swap would fail): at most one acquisition
    /// from that version can succeed, so the epoch can be shared and stays
    /// contiguous. An absent or unreadable lease gives no such bound, so a
    /// new epoch is reserved.
    pub(super) fn reserve_epoch(&mut self, now: Instant, expected: Option<Version>) {
        let replaced_epoch = match (&expected, self.observed.as_ref()) {
            (Some(version), Some(observation)) if observation.version.as_ref() == Some(version) => {
                match &observation.content {
                    // A vacant lease says nothing of the epochs its unknown
                    // predecessor used: always reserve a new one.
                    LeaseContent::Ours(record) if !is_vacant(record) => Some(record.epoch),
                    _ => None,
                }
            }
            _ => None,
        };
        let high_water = self.metadata.high_water;
        if replaced_epoch.is_some_and(|epoch| high_water > epoch) && high_water >= self.epoch_seen {
            self.acquire_covered(now, expected, high_water);
            return;
        }
        let epoch = self.next_epoch();
        let key = self.keys.metadata();
        let body = encode(&self.metadata_record(epoch));
        let request = match self.metadata.version.clone() {
            Some(version) => Request::CompareAndSwap {
                key,
                expected: version,
                body,
            },
            None => Request::Create { key, body },
        };
        let id = self.send(
            request,
            Purpose::ReserveWrite {
                expected,
                epoch,
                sent: now,
            },
        );
        self.lease_request = Some(id);
    }

    /// A missing lease is judged again from scratch (metadata, perhaps a
    /// survey) at its next read.
    fn forget_absence_assessment(&mut self) {
        if let Some(observation) = self.observed.as_mut() {
            if matches!(observation.content, LeaseContent::Absent) {
                observation.assessed = false;
                observation.absence_recheck = super::AbsenceRecheck::Pending;
            }
        }
    }

    /// One above every epoch seen in a lease or reserved in the mark.
    fn next_epoch(&self) -> u64 {
        self.epoch_seen.max(self.metadata.highest_reserved) + 1
    }

    pub(super) fn may_still_acquire(&self) -> bool {
        self.phase == Phase::Running && self.term.is_none()
    }

    pub(super) fn on_reserve_read(
        &mut self,
        expected: Option<Version>,
        response: Response,
        now: Instant,
    ) {
        match response {
            Response::Object { body, version, .. } => self.learn_metadata(&body, version),
            Response::Absent => self.metadata.forget(),
            failed => return self.abandon_acquisition(failed, now),
        }
        if !self.may_still_acquire() {
            return;
        }
        if self.must_wait_longer(now) {
            // The bound on record is longer than the wait already served:
            // watch on (the takeover timer is re-armed for the new bound).
            let delay = self.next_poll_delay();
            self.schedule_poll(now, delay);
            self.evaluate_takeover(now);
            return;
        }
        if self.metadata.foreign {
            let epoch = self.next_epoch();
            self.acquire_covered(now, expected, epoch);
        } else if self.metadata.version.is_none() {
            // `metadata.json` is gone: a survey (the marker above all) puts
            // the recreated mark above every epoch ever used.
            self.start_survey(SurveyThen::Reserve { expected });
        } else {
            self.reserve_epoch(now, expected);
        }
    }

    pub(super) fn on_reserve_written(
        &mut self,
        expected: Option<Version>,
        epoch: u64,
        sent: Instant,
        response: Response,
        now: Instant,
    ) {
        match response {
            Response::Written { version, .. } => {
                let longest = self.longest_wait_to_record();
                self.metadata.wrote(version, epoch, longest);
                if self.may_still_acquire() {
                    self.acquire_covered(now, expected, epoch);
                }
            }
            // Another worker reserved first. Taking over an existing lease,
            // read its mark and share it (see `reserve_epoch`).
            Response::Conflict | Response::AlreadyExists
                if self.may_still_acquire() && expected.is_some() =>
            {
                self.start_reservation(now, expected, false);
            }
            // Creating a missing lease: the winner writes the lease right
            // after its reservation landed, about one round trip from now.
            // Read it then (one GET), rather than raise the mark once per
            // contender or learn the leader only at the next heartbeat.
            Response::Conflict | Response::AlreadyExists if self.may_still_acquire() => {
                // If the lease is still missing then, it is judged again
                // with the metadata the winner wrote (its bound included).
                self.forget_absence_assessment();
                let round_trip = now.saturating_since(sent);
                let delay = (round_trip * 2)
                    .max(Duration::from_millis(10))
                    .min(self.config.request_timeout);
                self.schedule_poll(now, delay);
            }
            other => self.abandon_acquisition(other, now),
        }
    }

    /// Gives up this acquisition attempt; the next poll re-reads the lease.
    pub(super) fn abandon_acquisition(&mut self, response: Response, now: Instant) {
        // A namespace whose first reservation failed is still new, not one
        // in use whose lease went missing.
        self.forget_absence_assessment();
        if let Response::Failed(failure) = &response {
            self.consecutive_errors += 1;
            let delay = self.backoff(Some(failure));
            self.schedule_poll(now, delay);
        } else {
            let delay = self.config.retry_backoff;
            self.schedule_poll(now, delay);
        }
    }
}
