//! The oracle works: broken variants make it report violations.

use std::time::Duration;

use coordinator_core::Config;
use coordinator_testkit::{
    ClockSteps, Episodes, FaultSet, Fencing, Mode, OperatorFault, RequestFaults, Scenario,
    Scripted, Sim, StoreFlavor, ViolationKind,
};

fn partitions() -> Episodes {
    Episodes {
        mean_every_ms: 60_000,
        min_ms: 30_000,
        max_ms: 40_000,
    }
}

#[test]
fn drift_beyond_tolerance_with_a_cut_off_leader_gives_split_brain() {
    // ρ = 0.1 is configured, but the first leader's clock runs at half speed
    // and the others' 50% fast: its 10 s deadline lasts 20 s of true time,
    // their 15 s lease timeout 10 s.
    let mut scenario = Scenario::new(1, 3);
    scenario.duration = Duration::from_secs(300);
    scenario.storm_share = 1.0;
    scenario.clock_rates = Some(vec![0.5, 1.5, 1.5]);
    scenario.faults.leader_partitions = Some(partitions());
    let report = Sim::new(scenario).run();
    eprintln!("{}", report.table());
    assert!(report.split_brain_count > 0, "{}", report.table());
    assert!(report
        .violations
        .iter()
        .any(|v| v.kind == ViolationKind::SplitBrain));
}

#[test]
fn the_same_partitions_within_tolerance_are_safe() {
    let mut scenario = Scenario::new(1, 3);
    scenario.duration = Duration::from_secs(300);
    scenario.storm_share = 1.0;
    scenario.clock_rates = Some(vec![0.901, 1.099, 1.099]);
    scenario.faults.leader_partitions = Some(partitions());
    let report = Sim::new(scenario).run();
    assert!(report.passed(), "{}", report.table());
    assert!(report.leader_changes > 0, "{}", report.table());
}

#[test]
fn swarm_drift_beyond_tolerance_is_caught() {
    let mut found = 0;
    for seed in 0..4 {
        let mut scenario = Scenario::new(seed, 10);
        scenario.duration = Duration::from_secs(600);
        scenario.storm_share = 1.0;
        scenario.faults = FaultSet {
            drift_beyond_tolerance: Some(0.45),
            leader_partitions: Some(partitions()),
            ..FaultSet::none()
        };
        let report = Sim::new(scenario).run();
        eprintln!(
            "seed {seed}: {} split-brain pairs",
            report.split_brain_count
        );
        found += report.split_brain_count;
    }
    assert!(found > 0, "drift of ±45% with ρ = 10% went unnoticed");
}

#[test]
fn the_replaced_system_is_caught() {
    let mut split = 0;
    for seed in 0..6 {
        let mut scenario = Scenario::swarm(seed, 10);
        scenario.mode = Mode::Naive;
        scenario.duration = Duration::from_secs(600);
        let report = Sim::new(scenario).run();
        // It always writes the lease unconditionally.
        assert!(report
            .violations
            .iter()
            .any(|v| v.kind == ViolationKind::UnconditionalWrite));
        eprintln!(
            "naive seed {seed}: {} split-brain pairs, faults {:?}",
            report.split_brain_count, report.faults
        );
        split += report.split_brain_count;
    }
    assert!(split > 0, "the naive model never split its brain");
}

#[test]
fn the_replaced_system_splits_when_its_leader_pauses() {
    let mut scenario = Scenario::new(3, 5);
    scenario.mode = Mode::Naive;
    scenario.duration = Duration::from_secs(600);
    scenario.storm_share = 1.0;
    scenario.faults.pauses = Some(Episodes {
        mean_every_ms: 90_000,
        min_ms: 30_000,
        max_ms: 60_000,
    });
    scenario.faults.pause_leader = true;
    let report = Sim::new(scenario).run();
    assert!(report.split_brain_count > 0, "{}", report.table());
}

#[test]
fn unconditional_fenced_writes_are_caught() {
    let mut found = 0;
    for seed in 0..4 {
        let mut scenario = Scenario::new(seed, 5);
        scenario.duration = Duration::from_secs(600);
        scenario.storm_share = 1.0;
        scenario.fencing = Fencing::Unconditional;
        scenario.faults.requests = Some(RequestFaults {
            late_write: 0.2,
            late_max_ms: 40_000,
            ..RequestFaults::default()
        });
        let report = Sim::new(scenario).run();
        found += report
            .violations
            .iter()
            .filter(|v| v.kind == ViolationKind::FencedWriteApplied)
            .count();
    }
    assert!(
        found > 0,
        "late unconditional writes under old epochs went unnoticed"
    );
}

#[test]
fn the_same_late_writes_are_refused_with_cas_fencing() {
    let mut rejected = 0;
    for seed in 0..4 {
        let mut scenario = Scenario::new(seed, 5);
        scenario.duration = Duration::from_secs(600);
        scenario.storm_share = 1.0;
        scenario.faults.requests = Some(RequestFaults {
            late_write: 0.2,
            late_max_ms: 40_000,
            ..RequestFaults::default()
        });
        let report = Sim::new(scenario).run();
        assert!(report.passed(), "seed {seed}:\n{}", report.table());
        rejected += report.fenced.old_epoch_rejected;
    }
    eprintln!("old-epoch fenced writes refused by the store: {rejected}");
}

#[test]
fn a_foreign_writer_is_detected_not_a_violation() {
    let mut scenario = Scenario::new(9, 5);
    scenario.duration = Duration::from_secs(300);
    scenario.faults.foreign_writer = Some(0.5);
    let report = Sim::new(scenario).run();
    assert!(report.passed(), "{}", report.table());
    assert_eq!(report.foreign_detected, 1);
}

/// A self-hosted S3-compatible store whose clock steps forward and back,
/// with workers restarting often (a starting worker judges the lease's age
/// on the store's timestamps when the store's clock is trusted).
fn stepping_store_clock(seed: u64, claims_trusted_clock: bool) -> Scenario {
    let mut scenario = Scenario::new(seed, 8);
    scenario.duration = Duration::from_secs(900);
    scenario.storm_share = 1.0;
    scenario.faults = FaultSet {
        store: StoreFlavor::SelfHosted,
        store_clock_steps: Some(ClockSteps {
            mean_every_ms: 15_000,
            max_step_ms: 40_000,
        }),
        crashes: Some(Episodes {
            mean_every_ms: 8_000,
            min_ms: 500,
            max_ms: 3_000,
        }),
        store_claims_trusted_clock: claims_trusted_clock,
        ..FaultSet::none()
    };
    scenario
}

#[test]
fn a_store_that_wrongly_claims_a_trusted_clock_while_it_steps_is_caught() {
    // The stale-lease shortcut reads a live lease as long dead when the
    // store's clock stepped forward between its last renewal and the
    // starting worker's heartbeat: the starting worker takes it at once.
    let found: u64 = (0..4)
        .map(|seed| {
            let report = Sim::new(stepping_store_clock(seed, true)).run();
            eprintln!(
                "seed {seed}: {} split-brain pairs",
                report.split_brain_count
            );
            report.split_brain_count
        })
        .sum();
    assert!(found > 0, "a trusted stepping clock went unnoticed");
}

#[test]
fn the_same_store_clock_steps_are_safe_when_it_is_not_trusted() {
    for seed in 0..4 {
        let report = Sim::new(stepping_store_clock(seed, false)).run();
        assert!(report.passed(), "seed {seed}:\n{}", report.table());
        assert!(report.store_clock_steps > 0);
    }
}

/// Crashes and graceful stops of the leader every 5 minutes, no faults,
/// every worker on `real` timings while the oracle is told `told`.
fn slowed(real: Config, told: Option<Config>) -> Scenario {
    let mut scenario = Scenario::new(21, 10);
    scenario.duration = Duration::from_secs(1800);
    scenario.crash_leader_every = Some(Duration::from_secs(300));
    scenario.stop_leader_every = Some(Duration::from_secs(300));
    scenario.config = real;
    scenario.told = told;
    scenario
}

/// The defaults, but followers take over 6 s late (21 s lease timeout).
fn six_seconds_slower() -> Config {
    Config {
        lease_timeout: Duration::from_secs(21),
        ..Config::default()
    }
}

#[test]
fn a_take_over_slower_than_its_bound_is_caught() {
    let report = Sim::new(slowed(six_seconds_slower(), Some(Config::default()))).run();
    eprintln!("{}", report.table());
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.kind == ViolationKind::Liveness),
        "a fail-over 6 s slower than the design went unnoticed:\n{}",
        report.table()
    );
}

#[test]
fn the_same_timings_pass_when_the_oracle_knows_them() {
    let report = Sim::new(slowed(six_seconds_slower(), None)).run();
    assert!(report.passed(), "{}", report.table());
    assert!(report.liveness_checks >= 10, "{}", report.table());
}

/// The election's marker, metadata.json and the lease are deleted in calm:
/// the bound is nowhere on record, so the recovery wait applies.
fn deleted_with_its_bound(real: Config, told: Option<Config>) -> Scenario {
    let mut scenario = Scenario::new(22, 5);
    scenario.duration = Duration::from_secs(300);
    scenario.config = real;
    scenario.told = told;
    scenario.script = vec![
        (
            Duration::from_secs(59),
            Scripted::Operator(OperatorFault::DeleteMarker),
        ),
        (
            Duration::from_secs(60),
            Scripted::Operator(OperatorFault::DeleteMetadata),
        ),
        (
            Duration::from_secs(61),
            Scripted::Operator(OperatorFault::DeleteLease),
        ),
    ];
    scenario
}

/// A recovery wait 10 s longer than the default's.
fn slow_recovery() -> Config {
    Config {
        recovery_wait: Duration::from_secs(70),
        ..Config::default()
    }
}

#[test]
fn a_recovery_slower_than_its_bound_is_caught() {
    let report = Sim::new(deleted_with_its_bound(
        slow_recovery(),
        Some(Config::default()),
    ))
    .run();
    eprintln!("{}", report.table());
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.kind == ViolationKind::Recovery),
        "{}",
        report.table()
    );
}

#[test]
fn the_same_recovery_passes_when_the_oracle_knows_its_wait() {
    let report = Sim::new(deleted_with_its_bound(slow_recovery(), None)).run();
    assert!(report.passed(), "{}", report.table());
    assert_eq!(report.recovery_checks, 1, "{}", report.table());
}
