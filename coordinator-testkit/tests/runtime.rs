//! The real runtime under paused tokio time, seeded store latency and
//! faults: one leader at a time, epochs never go back, fail-over bounded.

use std::time::Duration;

use coordinator_testkit::runtime::{run_runtime, RuntimeScenario};
use coordinator_testkit::{seeds_from_env, RequestFaults};

#[test]
fn the_runtime_elects_one_leader_and_fails_over() {
    for seed in seeds_from_env(&[1]) {
        let mut scenario = RuntimeScenario::new(seed, 5, Duration::from_secs(300));
        scenario.crash_leader_every = Some(Duration::from_secs(60));
        scenario.clock_drift = Some(0.9);
        let report = run_runtime(&scenario);
        eprintln!(
            "runtime seed={seed} terms={} failover={:?} requests={:?}",
            report.terms, report.failover_seconds, report.requests
        );
        assert!(
            report.violations.is_empty(),
            "seed {seed} (rerun: COORD_SIM_SEED={seed} cargo test -p coordinator-testkit --features runtime --test runtime): {:#?}",
            report.violations
        );
        assert!(report.failover_seconds.count >= 3, "{report:?}");
        assert!(report.failover_seconds.max.unwrap() < 36.3, "{report:?}");
    }
}

#[test]
fn the_runtime_stays_safe_under_store_faults() {
    for seed in seeds_from_env(&[2]) {
        let mut scenario = RuntimeScenario::new(seed, 5, Duration::from_secs(300));
        scenario.crash_leader_every = Some(Duration::from_secs(90));
        scenario.clock_drift = Some(0.9);
        scenario.faults = Some(RequestFaults {
            transient: 0.02,
            throttled: 0.01,
            ambiguous_applied: 0.02,
            ambiguous_not_applied: 0.02,
            late_write: 0.01,
            hidden_retry: 0.02,
            late_max_ms: 20_000,
            spike: 0.02,
            spike_ms: 3_000,
        });
        let report = run_runtime(&scenario);
        eprintln!(
            "runtime seed={seed} terms={} failover={:?}",
            report.terms, report.failover_seconds
        );
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:#?}",
            report.violations
        );
    }
}

#[test]
fn a_runtime_seed_replays() {
    let run = || {
        let mut scenario = RuntimeScenario::new(3, 4, Duration::from_secs(120));
        scenario.crash_leader_every = Some(Duration::from_secs(50));
        run_runtime(&scenario)
    };
    let (a, b) = (run(), run());
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.requests, b.requests);
}
