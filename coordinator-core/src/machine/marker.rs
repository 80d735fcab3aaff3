//! The election's marker: a copy of the epoch mark beside the plugins' data
//! (`plg_coordinator_data/<ns>/.elections/…`), outside the prefix an
//! operator wipes when he deletes an election. It is what a survey reads to
//! put a recreated `metadata.json` above every epoch ever used.
//!
//! For that the marker must cover an epoch *before* anyone uses it: an
//! acquisition raises it to its epoch before the lease carries that epoch
//! (one more write, on acquisitions only), and a leader advertises an epoch
//! it reserved for its successor only once the marker covers it, so the
//! successor that takes it needs no write of its own.

use super::{Machine, Purpose};
use crate::action::{Request, Response, Version};
use crate::records::encode;
use crate::time::Instant;

/// Conflicts in a row after which a marker write is given up (the next
/// refresh or acquisition tries again) rather than looped on.
const MAX_MARKER_CONFLICTS: u8 = 3;

/// What a marker request leads to once the marker covers its epoch.
#[derive(Clone, Debug)]
pub(super) enum MarkerThen {
    /// The leader's background copy: advertise the epoch reserved for the
    /// successor.
    Advertise,
    /// An acquisition waiting to write the lease under `epoch`.
    Acquire {
        expected: Option<Version>,
        epoch: u64,
    },
}

impl Machine {
    /// Writes the lease under `epoch` once the marker covers it.
    pub(super) fn acquire_covered(&mut self, now: Instant, expected: Option<Version>, epoch: u64) {
        if self.marker.known && self.marker.mark >= epoch {
            self.write_acquisition(now, expected, epoch);
            return;
        }
        self.marker.conflicts = 0;
        self.send_marker_request(MarkerThen::Acquire { expected, epoch });
    }

    /// The leader copies the mark into the marker after each of its
    /// reservations and refreshes; the successor's epoch is advertised in
    /// the lease once the copy landed.
    pub(super) fn write_marker(&mut self) {
        if self.term.is_none() || self.marker.in_flight {
            return;
        }
        if self.marker.conflicts >= MAX_MARKER_CONFLICTS {
            return;
        }
        self.send_marker_request(MarkerThen::Advertise);
    }

    fn send_marker_request(&mut self, then: MarkerThen) {
        let key = self.keys.election_marker().to_owned();
        let acquiring = matches!(then, MarkerThen::Acquire { .. });
        self.marker.in_flight = true;
        let id = if self.marker.known {
            let target = match &then {
                MarkerThen::Acquire { epoch, .. } => *epoch,
                MarkerThen::Advertise => self.marker.advertise,
            };
            let mark = target.max(self.metadata.high_water).max(self.marker.mark);
            let body = encode(&self.metadata_record(mark));
            let request = match self.marker.version.clone() {
                Some(expected) => Request::CompareAndSwap {
                    key,
                    expected,
                    body,
                },
                None => Request::Create { key, body },
            };
            self.send(request, Purpose::WriteMarker { mark, then })
        } else {
            self.send(
                Request::Get {
                    key,
                    if_changed: None,
                },
                Purpose::ReadMarker { then },
            )
        };
        if acquiring {
            self.lease_request = Some(id);
        }
    }

    pub(super) fn on_marker_read(&mut self, then: MarkerThen, response: Response, now: Instant) {
        self.marker.in_flight = false;
        let mark = match response {
            Response::Object { body, version, .. } => self.marker.read(Some((&body, version))),
            Response::Absent => self.marker.read(None),
            other => return self.marker_failed(then, other, now),
        };
        self.metadata.highest_reserved = self.metadata.highest_reserved.max(mark);
        self.marker_continue(then, now);
    }

    pub(super) fn on_marker_written(
        &mut self,
        mark: u64,
        then: MarkerThen,
        response: Response,
        now: Instant,
    ) {
        self.marker.in_flight = false;
        match response {
            Response::Written { version, .. } => {
                self.marker.version = Some(version);
                self.marker.known = true;
                self.marker.mark = self.marker.mark.max(mark);
                self.marker.conflicts = 0;
                self.marker_continue(then, now);
            }
            Response::Conflict | Response::AlreadyExists => {
                self.marker.known = false;
                self.marker.conflicts += 1;
                if self.marker.conflicts < MAX_MARKER_CONFLICTS {
                    match then {
                        MarkerThen::Acquire { .. } if !self.may_still_acquire() => {}
                        then => self.send_marker_request(then),
                    }
                } else {
                    self.marker_failed(then, Response::Conflict, now);
                }
            }
            // Unknown outcome: read it again before the next write.
            other => {
                self.marker.known = false;
                self.marker_failed(then, other, now);
            }
        }
    }

    /// The marker is known; go on to what it was read or written for.
    fn marker_continue(&mut self, then: MarkerThen, now: Instant) {
        match then {
            MarkerThen::Advertise => {
                if self.marker.mark >= self.marker.advertise {
                    let advertise = self.marker.advertise;
                    if let Some(term) = self.term.as_mut() {
                        if term.epoch < advertise {
                            term.reserved_for_successor =
                                term.reserved_for_successor.max(advertise);
                        }
                    }
                } else {
                    self.write_marker();
                }
            }
            MarkerThen::Acquire { expected, epoch } => {
                if self.may_still_acquire() {
                    self.acquire_covered(now, expected, epoch);
                }
            }
        }
    }

    fn marker_failed(&mut self, then: MarkerThen, response: Response, now: Instant) {
        match then {
            // Written again at the next reservation or refresh; until then
            // the successor reserves (and covers) its own epoch.
            MarkerThen::Advertise => {}
            MarkerThen::Acquire { .. } => self.abandon_acquisition(response, now),
        }
    }
}
