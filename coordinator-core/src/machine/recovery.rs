//! A lease whose holder cannot be known: `state.json` missing, corrupt or
//! of a newer format. Such a lease is watched like any other version, for
//! the longest wait any holder may have been promised, and a namespace that
//! shows traces of earlier use is never recreated as if it were new.
//!
//! The wait comes from three places, the longest winning: every lease
//! record this process has seen (its holder's timings), the bound
//! `metadata.json` keeps (raised at every reservation, so a restarted
//! worker learns holders it never saw), and, when that bound is not on
//! record (metadata gone, unreadable, written before the bound existed) or
//! the lease is of a newer format (its holder's rules are unknown),
//! [`Config::recovery_wait`](crate::Config::recovery_wait).
//!
//! When `metadata.json` is gone too, one survey tells a new namespace from
//! a wiped one: a LIST of the election's prefix (heartbeats, the roster), a
//! GET of the election's marker beside the plugins' data (a copy of the
//! epoch mark the leader keeps outside the election's prefix), and a GET of
//! the roster and of each other worker's heartbeat, which carry the epochs
//! their writers saw. Plugin data alone is not a trace: clients write
//! messages and jobs before any worker starts, and a new namespace must not
//! wait for that.

use std::time::Duration;

use super::{AbsenceRecheck, LeaseContent, Machine, Phase, Purpose};
use crate::action::{Listed, Request, Response, Version};
use crate::records::{decode, HeartbeatRecord, MetadataRecord, RosterRecord};
use crate::time::Instant;

/// At most this many heartbeats are read by one survey; a namespace with
/// more counts as used without reading them.
const SURVEY_READ_LIMIT: usize = 64;

/// The shortest wait before a worker that found the lease missing reads it
/// again, before it writes a vacant lease in its place: four round trips
/// of its metadata read, but never less than this (nor more than
/// `request_timeout`). Round trips vary, and a vacant lease written while
/// the founder of a new namespace is still creating the lease costs every
/// worker a full takeover wait.
///
/// Public so that tests and simulators that bound a take-over after a
/// deleted lease count the same wait instead of a copy of it.
pub const ABSENCE_RECHECK_MIN: Duration = Duration::from_millis(250);

/// How many round trips of its metadata read a worker waits before it
/// reads a missing lease again (see `AbsenceRecheck`).
const ABSENCE_RECHECK_ROUND_TRIPS: u32 = 4;

/// A survey in progress.
#[derive(Clone, Debug)]
pub(super) struct Survey {
    pub(super) id: u64,
    pending: usize,
    reads: usize,
    traces: bool,
    epoch_floor: u64,
    longest_wait_ms: u64,
    /// The bound a readable marker records; 0 if it has none, is missing
    /// or unreadable.
    marker_bound_ms: u64,
    then: SurveyThen,
}

/// What a survey was started for.
#[derive(Clone, Debug)]
pub(super) enum SurveyThen {
    /// Judging a missing or unusable lease.
    Assess,
    /// Reserving an epoch for an acquisition when `metadata.json` is gone:
    /// recreated above every epoch the traces carry.
    Reserve { expected: Option<Version> },
    /// The leader reserving its successor's epoch when `metadata.json` is
    /// gone.
    ReserveNext,
}

/// What a survey request was for.
#[derive(Clone, Debug)]
pub(super) enum SurveyStep {
    /// The LIST of the election's own prefix.
    ListElection,
    /// The GET of this election's marker beside the plugins' data.
    ReadMarker,
    /// A GET of the roster or of another worker's heartbeat.
    Read { key: String },
}

impl Machine {
    /// How long a lease whose holder is unknown must stay unchanged (or
    /// absent) before this worker may take it.
    pub(super) fn unknown_holder_wait(&self, newer_format: bool) -> Duration {
        if self.mutated(super::Mutation::OwnTimeoutForUnknownHolder) {
            return self.config.lease_timeout;
        }
        let on_record =
            Duration::from_millis(self.metadata.longest_wait_ms.max(self.marker.bound_ms));
        let mut wait = self
            .longest_wait_seen
            .max(self.config.takeover_wait())
            .max(on_record);
        if newer_format || on_record.is_zero() {
            wait = wait.max(self.config.recovery_wait);
        }
        wait
    }

    /// Learns what a missing or unusable lease needs before it may be
    /// taken: the bound and mark in `metadata.json`, then, if that is gone
    /// too, a survey of the namespace.
    pub(super) fn assess(&mut self, now: Instant) {
        if self.lease_request.is_some() || self.survey.is_some() || self.term.is_some() {
            return;
        }
        let key = self.keys.metadata();
        let id = self.send(
            Request::Get {
                key,
                if_changed: None,
            },
            Purpose::ReadMetadataForRecovery { sent: now },
        );
        self.lease_request = Some(id);
    }

    pub(super) fn on_metadata_for_recovery(
        &mut self,
        response: Response,
        sent: Instant,
        now: Instant,
    ) {
        if let Some(observation) = self.observed.as_mut() {
            if matches!(observation.content, LeaseContent::Absent)
                && observation.absence_recheck == AbsenceRecheck::Pending
            {
                // A few round trips of this very read: more than a worker
                // that reserved the mark just read needs to cover it in the
                // marker and create the lease (two).
                let round_trip = now.saturating_since(sent);
                let delay = (round_trip * ABSENCE_RECHECK_ROUND_TRIPS)
                    .max(ABSENCE_RECHECK_MIN)
                    .min(self.config.request_timeout);
                observation.absence_recheck = AbsenceRecheck::After(delay);
            }
        }
        match response {
            Response::Object { body, version, .. } => self.learn_metadata(&body, version),
            Response::Absent => self.metadata.forget(),
            Response::Failed(failure) => {
                self.consecutive_errors += 1;
                let delay = self.backoff(Some(&failure));
                self.schedule_poll(now, delay);
                return;
            }
            _ => {}
        }
        if self.phase != Phase::Running || self.term.is_some() {
            return;
        }
        let skip_survey = self.mutated(super::Mutation::RecreateWipedNamespace);
        if self.metadata.high_water_known || self.metadata.foreign || skip_survey {
            self.finish_assessment(now);
        } else {
            self.start_survey(SurveyThen::Assess);
        }
    }

    pub(super) fn start_survey(&mut self, then: SurveyThen) {
        if self.survey.is_some() {
            return;
        }
        self.next_survey += 1;
        let id = self.next_survey;
        self.survey = Some(Survey {
            id,
            pending: 2,
            reads: 0,
            traces: false,
            epoch_floor: 0,
            longest_wait_ms: 0,
            marker_bound_ms: 0,
            then,
        });
        self.counters.surveys += 1;
        let prefix = self.keys.election_prefix();
        self.send(
            Request::List { prefix },
            Purpose::Survey {
                survey: id,
                step: SurveyStep::ListElection,
            },
        );
        let key = self.keys.election_marker().to_owned();
        self.send(
            Request::Get {
                key,
                if_changed: None,
            },
            Purpose::Survey {
                survey: id,
                step: SurveyStep::ReadMarker,
            },
        );
    }

    pub(super) fn on_survey_response(
        &mut self,
        survey: u64,
        step: SurveyStep,
        response: Response,
        now: Instant,
    ) {
        if self.survey.as_ref().map(|s| s.id) != Some(survey) {
            return;
        }
        if let Response::Failed(failure) = &response {
            // Start again from the lease at the next poll.
            self.survey = None;
            self.consecutive_errors += 1;
            let delay = self.backoff(Some(failure));
            if self.term.is_none() {
                self.schedule_poll(now, delay);
            }
            return;
        }
        match (step, response) {
            (SurveyStep::ListElection, Response::Listed(entries)) => self.survey_listing(entries),
            // Known absent: an acquisition creates it without a read.
            (SurveyStep::ReadMarker, Response::Absent) if !self.marker.in_flight => {
                self.marker.read(None);
            }
            (SurveyStep::ReadMarker, Response::Object { body, version, .. }) => {
                if !self.marker.in_flight {
                    self.marker.read(Some((&body, version)));
                }
                let key = self.keys.election_marker().to_owned();
                match decode::<MetadataRecord>(&key, &body) {
                    Ok(marker) => {
                        // A copy of the bound too, written before any lease
                        // promised it (see `marker.rs`).
                        if let Some(s) = self.survey.as_mut() {
                            s.marker_bound_ms = marker.longest_takeover_wait_ms;
                        }
                        self.note_trace(marker.epoch_high_water, marker.longest_takeover_wait_ms)
                    }
                    // Unreadable or of a newer format: its writer's rules are
                    // unknown, so the bound is not on record and the
                    // recovery wait applies (as for a newer-format lease).
                    Err(_) => self.note_trace(
                        MetadataRecord::high_water_of_any_format(&body).unwrap_or(0),
                        0,
                    ),
                }
            }
            (SurveyStep::Read { key }, Response::Object { body, version, .. })
                if key == self.keys.metadata() =>
            {
                // Created since it was found missing (by a worker founding
                // the namespace right now, perhaps): its bound and mark are
                // on record after all.
                self.learn_metadata(&body, version);
                let (mark, bound) = (self.metadata.high_water, self.metadata.longest_wait_ms);
                self.note_trace(mark, bound);
            }
            (SurveyStep::Read { key }, Response::Object { body, .. }) => {
                self.survey_record(&key, &body)
            }
            _ => {}
        }
        let Some(current) = self.survey.as_mut() else {
            return;
        };
        current.pending = current.pending.saturating_sub(1);
        if current.pending > 0 {
            return;
        }
        let Some(done) = self.survey.take() else {
            return;
        };
        self.metadata.highest_reserved = self.metadata.highest_reserved.max(done.epoch_floor);
        self.longest_wait_seen = self
            .longest_wait_seen
            .max(Duration::from_millis(done.longest_wait_ms));
        self.traces_seen |= done.traces;
        // What this survey found, not what an earlier one did: a marker
        // since replaced by a newer release's no longer tells the bound.
        self.marker.bound_ms = done.marker_bound_ms;
        match done.then {
            SurveyThen::Assess => {
                if self.phase == Phase::Running && self.term.is_none() {
                    self.finish_assessment(now);
                }
            }
            SurveyThen::Reserve { expected } => {
                if self.may_still_acquire() {
                    self.reserve_epoch(now, expected);
                }
            }
            SurveyThen::ReserveNext => {
                if self.term.is_some() && self.metadata.version.is_none() {
                    self.write_next_reservation(None);
                }
            }
        }
    }

    fn survey_listing(&mut self, entries: Vec<Listed>) {
        let own = self.keys.worker(&self.identity.worker_id);
        let roster = self.keys.roster();
        let metadata = self.keys.metadata();
        let mut reads = Vec::new();
        for entry in entries {
            if entry.key == own {
                continue;
            }
            let readable = entry.key == roster
                || entry.key == metadata
                || self.keys.worker_of_key(&entry.key).is_some();
            let room = self
                .survey
                .as_ref()
                .is_some_and(|s| s.reads < SURVEY_READ_LIMIT);
            if readable && room {
                if let Some(s) = self.survey.as_mut() {
                    s.reads += 1;
                    s.pending += 1;
                }
                reads.push(entry.key);
            } else {
                // Anything else here (the lease or metadata reappearing, an
                // object we cannot attribute), or more heartbeats than one
                // survey reads: the namespace has been used.
                self.note_trace(0, 0);
            }
        }
        let Some(id) = self.survey.as_ref().map(|s| s.id) else {
            return;
        };
        for key in reads {
            self.send(
                Request::Get {
                    key: key.clone(),
                    if_changed: None,
                },
                Purpose::Survey {
                    survey: id,
                    step: SurveyStep::Read { key },
                },
            );
        }
    }

    fn survey_record(&mut self, key: &str, body: &[u8]) {
        if key == self.keys.roster() {
            match decode::<RosterRecord>(key, body) {
                Ok(roster) => self.note_trace(roster.epoch, roster.takeover_wait_ms),
                Err(_) => self.note_trace(0, 0),
            }
            return;
        }
        match decode::<HeartbeatRecord>(key, body) {
            // A worker that has never seen a lease: a namespace being
            // created right now, not a trace of earlier use.
            Ok(heartbeat) if heartbeat.epoch_seen == 0 => {}
            Ok(heartbeat) => self.note_trace(heartbeat.epoch_seen, heartbeat.takeover_wait_ms),
            Err(_) => self.note_trace(0, 0),
        }
    }

    fn note_trace(&mut self, epoch: u64, takeover_wait_ms: u64) {
        if let Some(s) = self.survey.as_mut() {
            s.traces = true;
            s.epoch_floor = s.epoch_floor.max(epoch);
            s.longest_wait_ms = s.longest_wait_ms.max(takeover_wait_ms);
        }
    }

    /// Everything needed to judge the unknown lease is known: create a
    /// namespace that is really new at once, watch anything else.
    fn finish_assessment(&mut self, now: Instant) {
        let Some(observation) = self.observed.as_mut() else {
            return;
        };
        observation.assessed = true;
        if let AbsenceRecheck::After(delay) = observation.absence_recheck {
            // From now: a survey may have taken a while, and the founder of
            // a new namespace may have created its metadata meanwhile.
            observation.absence_recheck = AbsenceRecheck::Due(now + delay);
        }
        let absent = matches!(observation.content, LeaseContent::Absent);
        let fresh = absent
            && self.epoch_seen == 0
            && self.metadata.highest_reserved == 0
            && self.metadata.version.is_none()
            && !self.metadata.foreign
            && !self.traces_seen;
        if fresh {
            self.acquire(now, None, true);
            return;
        }
        self.evaluate_takeover(now);
        if self.term.is_none() && self.lease_request.is_none() {
            let delay = self.next_poll_delay();
            self.schedule_poll(now, delay);
        }
    }
}
