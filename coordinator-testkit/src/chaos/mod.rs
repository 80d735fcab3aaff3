//! The real-stack chaos test (issue 14): real worker processes running the
//! real runtime on a real S3 server (moto), behind a fault proxy, under a
//! nemesis, checked afterwards from their own logs.
//!
//! Every process runs on one machine, so every timestamp is one clock
//! (`CLOCK_MONOTONIC`, [`monotonic_ns`]) and beliefs of different processes
//! can be compared exactly.
//!
//! * [`proxy`]: the fault proxy. One listener per worker (so one worker
//!   can be cut off), each client connection paired with its own upstream
//!   connection, requests and answers framed; faults ([`faults`]) switch on
//!   and off on the schedule.
//! * [`register`]: the fenced register plugin every worker runs, and the
//!   JSON lines ([`events`]) the worker prints.
//! * [`queue`]: the queue under the same faults (producers, consumers,
//!   the leader's maintenance) and the auditor that drains it afterwards;
//!   [`check_queue`] checks it.
//! * [`nemesis`]: the schedule drawn from one seed: network faults, kills,
//!   pauses, graceful stops, a rolling restart with other timings,
//!   partitions of one worker, operator faults.
//! * [`check`]: the checker, a pure function from the collected logs to
//!   the violations and a [`Timeline`](crate::timeline::Timeline).
//! * [`run`]: starts the proxy and the workers, plays the schedule,
//!   collects the logs, checks them.
//!
//! The `coordinator-chaos` binary (`scripts/chaos`) runs it; the worker is
//! `coordinator-chaos-worker`; `tests/chaos.rs` runs a short version with
//! fixed seeds, and a deliberately broken worker that must be caught.

pub mod check;
pub mod check_queue;
pub mod events;
pub mod faults;
pub mod nemesis;
pub mod proxy;
pub mod queue;
pub mod register;
pub mod run;

/// Now on `CLOCK_MONOTONIC`, in nanoseconds: one clock for every process
/// on the machine.
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    timespec_ns(ts.tv_sec, ts.tv_nsec)
}

/// `CLOCK_MONOTONIC` minus `CLOCK_BOOTTIME`'s reading now, in nanoseconds
/// (zero or negative: boot time also counts suspend). The runtime's
/// [`SystemClock`](coordinator_runtime::SystemClock) reads
/// `CLOCK_BOOTTIME` on Linux; this converts its deadlines.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn boottime_ms_to_monotonic_ns(boot_ms: u64) -> u64 {
    let boot = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    let mono = monotonic_ns();
    let boot_now = timespec_ns(boot.tv_sec, boot.tv_nsec);
    let target = boot_ms.saturating_mul(1_000_000);
    // mono_target = mono_now + (target - boot_now)
    if target >= boot_now {
        mono.saturating_add(target - boot_now)
    } else {
        mono.saturating_sub(boot_now - target)
    }
}

/// Elsewhere the runtime's clock is `std::time::Instant` from its first
/// reading: no machine-wide conversion exists, so the chaos test is
/// Linux-only in practice.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn boottime_ms_to_monotonic_ns(boot_ms: u64) -> u64 {
    boot_ms.saturating_mul(1_000_000)
}

fn timespec_ns(secs: i64, nanos: i64) -> u64 {
    let secs = u64::try_from(secs).unwrap_or(0);
    let nanos = u64::try_from(nanos).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}
