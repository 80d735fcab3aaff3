//! The oracle works: broken variants make it report violations.

use std::time::Duration;

use coordinator_testkit::{
    Episodes, FaultSet, Fencing, Mode, RequestFaults, Scenario, Sim, ViolationKind,
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
