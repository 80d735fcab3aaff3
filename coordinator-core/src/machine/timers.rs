//! The machine's timers: a closed set, one deadline each.

use crate::time::Instant;

/// Every timer the machine can arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// A follower's next lease read (also the retry after a lease error).
    Poll,
    /// A follower may try to take over the lease it watches.
    Takeover,
    /// The leader's next renewal attempt.
    Renew,
    /// The leader's renew deadline: step down if still not renewed.
    Deadline,
    /// The next write of this worker's heartbeat object.
    Membership,
    /// The leader's next listing of heartbeat objects.
    ListWorkers,
    /// The leader's next rewrite of `metadata.json`, so that a lifecycle
    /// rule never finds it old.
    RefreshMetadata,
}

const COUNT: usize = 7;

impl Timer {
    // The deadline is handled first: a renewal due at the same instant must
    // not run as if the worker still led.
    const ALL: [Timer; COUNT] = [
        Timer::Deadline,
        Timer::Poll,
        Timer::Takeover,
        Timer::Renew,
        Timer::Membership,
        Timer::ListWorkers,
        Timer::RefreshMetadata,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// A fixed table of optional deadlines.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timers {
    deadlines: [Option<Instant>; COUNT],
}

impl Timers {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer.index()] = Some(at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    pub(crate) fn clear(&mut self) {
        self.deadlines = [None; COUNT];
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Disarms and returns, in a fixed order, every timer due at `now`.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<Timer> {
        let mut due = Vec::new();
        for timer in Timer::ALL {
            if let Some(at) = self.deadlines[timer.index()] {
                if at <= now {
                    self.deadlines[timer.index()] = None;
                    due.push(timer);
                }
            }
        }
        due
    }
}
