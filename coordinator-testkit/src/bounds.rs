//! The oracle's time bounds: how long a take-over may take, per situation.
//!
//! A take-over has four parts, each bounded from what the oracle knows
//! (every duration a machine measures is on its own clock, so it lasts
//! `d / rate` of true time, `rate` being that clock's true rate, at worst
//! `1 − ρ`):
//!
//! 1. **First sight.** The event happens at true time `E`: the holder's
//!    last lease write lands (crash), its release lands (graceful stop),
//!    the lease is deleted or overwritten (operator), or a canary's last
//!    write lands. Follower `f`, polling every `P_f` of its clock, first
//!    sees the result by `E + P_f / rate_f + reply + read` (its read
//!    applied before `E` answers within `reply`; the next is sent within
//!    `P_f` and answers within one read). `P_f` is the successor poll
//!    (`min(successor_poll_interval, heartbeat_interval)`, + 10% spread)
//!    for the designated successor, once it has read a lease that names
//!    it, and `heartbeat_interval + heartbeat_jitter` for everyone else. A
//!    follower that starts after `E` sees it by `start + read`.
//! 2. **The wait** `W_f`, from first sight, on `f`'s clock:
//!    * crash: `max(lease_timeout_f, promise of the holder) + rank_f ×
//!      succession_step`, the holder's promise being `max(its
//!      lease_timeout, its renew_deadline × (1+ρ)/(1−ρ))`, and `rank_f` its
//!      place among the successors the lease lists (their number if it is
//!      not listed);
//!    * graceful stop: none (a release is taken by whoever sees it first);
//!    * a fault that hides the holder (lease deleted or corrupt, election
//!      or namespace wiped, a canary's lease left behind): the longest
//!      takeover wait of every timing set in use, and the bound
//!      `metadata.json` records; the recovery wait as well when that bound
//!      is not on record (metadata gone or unreadable) or the lease is of a
//!      newer format. A lease that is still there (corrupt, a canary's) is
//!      watched from first sight; a missing one is first assessed (`3 ×
//!      read`: the metadata, a survey's LIST, marker and heartbeat GETs) and
//!      replaced by a vacant lease (`write`, and a `read` for a follower
//!      whose create lost to another's), whose version is watched.
//! 3. **Acquiring**: a lease read still in flight when the wait ends, the
//!    metadata read, the reservation and the lease write: `2 × read + 2 ×
//!    write`. (A contender whose reservation lands first finishes sooner
//!    than this; the pre-reserved path is one write.)
//! 4. The bound is the **smallest** `first sight + W_f / rate_f + acquiring`
//!    over the followers alive when it is computed: whoever is fastest
//!    leads by then, or someone else did before.
//!
//! `read` and `write` are the longest round trips of the latency model in
//! calm (no injected faults: the S3-like model's 600 ms, 900 ms for a
//! write) and `reply` the longest part of a read after its linearization
//! point (70%). At the defaults with perfect clocks that is, after a crash,
//! `E + 2.2 s + 1.02 s + 15 s + 3 s = E + 21.2 s` for the designated
//! successor (the crash follows `E` by up to a renewal period), after a
//! graceful stop `E + 6.2 s`, after a deleted lease with the bound on
//! record `E + 24.5 s` (2.2 + 1.02 + 1.8 + 0.9 + 0.6 + 15 + 3 s).

use coordinator_core::Config;

use crate::faults::LatencyModel;

/// The longest request times in calm, ms.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rtt {
    /// A read's round trip.
    pub(crate) read: u64,
    /// A write's round trip.
    pub(crate) write: u64,
    /// The part of a read after its linearization point.
    pub(crate) read_reply: u64,
    /// The part of a write before its linearization point.
    pub(crate) write_apply: u64,
}

impl Rtt {
    pub(crate) fn of(latency: &LatencyModel) -> Self {
        Self {
            read: latency.max_round_trip_ms(false),
            write: latency.max_round_trip_ms(true),
            read_reply: latency.max_half_ms(false),
            write_apply: latency.max_half_ms(true),
        }
    }

    /// Part 3: the lease read in flight, the metadata read, the
    /// reservation, the lease write.
    pub(crate) fn acquiring(&self) -> u64 {
        2 * self.read + 2 * self.write
    }
}

/// Rounding of local instants to true milliseconds, per conversion.
const ROUNDING_MS: u64 = 2;

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A local duration on a clock of `rate`, in true ms (rounded up).
pub(crate) fn on_clock(local_ms: u64, rate: f64) -> u64 {
    (local_ms as f64 / rate.max(1e-6)).ceil() as u64 + ROUNDING_MS
}

/// The poll period of a follower, ms of its clock (part 1).
pub(crate) fn poll_ms(config: &Config, designated: bool) -> u64 {
    if designated {
        let interval = ms(config
            .successor_poll_interval
            .min(config.heartbeat_interval));
        interval + interval / 10
    } else {
        ms(config.heartbeat_interval + config.heartbeat_jitter)
    }
}

/// The timings a lease's holder was promised: `(lease_timeout,
/// renew_deadline, ρ)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Promise {
    pub(crate) lease_timeout_ms: u64,
    pub(crate) renew_deadline_ms: u64,
    pub(crate) drift_tolerance: f64,
}

impl Promise {
    pub(crate) fn of(config: &Config) -> Self {
        Self {
            lease_timeout_ms: ms(config.lease_timeout),
            renew_deadline_ms: ms(config.renew_deadline),
            drift_tolerance: config.drift_tolerance,
        }
    }
}

/// What the oracle knows of one follower that may take over.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Follower<'a> {
    /// Its timings (or the ones the oracle is told it runs).
    pub(crate) config: &'a Config,
    /// Its clock's true rate (1.0 is perfect).
    pub(crate) rate: f64,
    /// When it started, true ms.
    pub(crate) started: u64,
    /// It is the designated successor and has read a lease naming it.
    pub(crate) designated: bool,
    /// Its place among the lease's successors (their number if unlisted).
    pub(crate) rank: usize,
}

impl Follower<'_> {
    /// Part 1: when it has seen what happened at true time `event`.
    pub(crate) fn first_sight(&self, event: u64, rtt: &Rtt) -> u64 {
        if self.started >= event {
            self.started + rtt.read
        } else {
            event
                + on_clock(poll_ms(self.config, self.designated), self.rate)
                + rtt.read_reply
                + rtt.read
        }
    }

    /// Part 2 after a crash: its own wait for a lease of `holder`.
    pub(crate) fn takeover_wait_ms(&self, holder: &Promise) -> u64 {
        let c = self.config;
        let safe = ms(c.minimum_safe_wait(
            std::time::Duration::from_millis(holder.renew_deadline_ms),
            holder.drift_tolerance,
        ));
        let rank = u32::try_from(self.rank).unwrap_or(u32::MAX);
        ms(c.lease_timeout).max(holder.lease_timeout_ms).max(safe) + ms(c.succession_step * rank)
    }

    /// The bound after a crash, from the holder's last lease write.
    pub(crate) fn after_crash(&self, last_write: u64, holder: &Promise, rtt: &Rtt) -> u64 {
        self.first_sight(last_write, rtt)
            + on_clock(self.takeover_wait_ms(holder), self.rate)
            + rtt.acquiring()
    }

    /// The bound after a graceful stop, from the release landing.
    pub(crate) fn after_release(&self, release: u64, rtt: &Rtt) -> u64 {
        self.first_sight(release, rtt) + rtt.acquiring()
    }

    /// The bound after a fault that hides the holder, with `wait_ms` the
    /// wait on record (see [`hidden_wait_ms`]). A lease that is still there
    /// (corrupt, a canary's) is watched from first sight; a missing one is
    /// first assessed (the metadata read, perhaps a survey: a LIST, the
    /// marker and heartbeat GETs) and replaced by a vacant lease whose
    /// version is watched from its write (a follower whose create loses
    /// reads the winner's one read later).
    pub(crate) fn after_hiding(&self, fault: u64, wait_ms: u64, missing: bool, rtt: &Rtt) -> u64 {
        let assessing = 3 * rtt.read;
        let sight = self.first_sight(fault, rtt);
        let wait = on_clock(wait_ms, self.rate);
        if missing {
            sight + assessing + rtt.write + rtt.read + wait + rtt.acquiring()
        } else {
            sight + wait.max(assessing) + rtt.acquiring()
        }
    }
}

/// Part 2 after a fault that hides the holder, for a follower with
/// `config`: the longest takeover wait of every timing set in use
/// (`longest_in_use_ms`, which covers every record the follower can have
/// seen), the bound `metadata.json` records, and `recovery_wait` when that
/// bound is not on record (`recorded_ms` is `None`) or the lease is of a
/// newer format.
pub(crate) fn hidden_wait_ms(
    config: &Config,
    longest_in_use_ms: u64,
    recorded_ms: Option<u64>,
    newer_format: bool,
) -> u64 {
    let mut wait = ms(config.takeover_wait())
        .max(longest_in_use_ms)
        .max(recorded_ms.unwrap_or(0));
    if newer_format || recorded_ms.is_none_or(|b| b == 0) {
        wait = wait.max(ms(config.recovery_wait));
    }
    wait
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_give_the_documented_figures() {
        let c = Config::default();
        let rtt = Rtt::of(&LatencyModel::s3_like());
        assert_eq!((rtt.read, rtt.write, rtt.read_reply), (600, 900, 420));
        let successor = Follower {
            config: &c,
            rate: 1.0,
            started: 0,
            designated: true,
            rank: 0,
        };
        let holder = Promise::of(&c);
        // 2.2 s + 1.02 s + 15 s + 3 s, and the roundings.
        assert_eq!(
            successor.after_crash(100_000, &holder, &rtt),
            100_000 + 2_202 + 1_020 + 15_002 + 3_000
        );
        assert_eq!(
            successor.after_release(100_000, &rtt),
            100_000 + 2_202 + 1_020 + 3_000
        );
        // A deleted lease, the bound on record: 2.2 + 1.02 + 1.8 + 0.9 +
        // 0.6 + 15 + 3 s.
        let wait = hidden_wait_ms(&c, 15_000, Some(15_000), false);
        assert_eq!(
            successor.after_hiding(100_000, wait, true, &rtt),
            100_000 + 2_202 + 1_020 + 1_800 + 900 + 600 + 15_002 + 3_000
        );
        assert_eq!(hidden_wait_ms(&c, 15_001, Some(15_000), false), 15_001);
        assert_eq!(hidden_wait_ms(&c, 15_001, None, false), 60_000);
        assert_eq!(hidden_wait_ms(&c, 15_001, Some(15_000), true), 60_000);
    }
}
