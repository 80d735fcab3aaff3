//! The invariants hold under swarm faults, and the measured bounds hold
//! without faults. CI-sized: 20 workers × 10 simulated minutes per seed.
//!
//! Replay a seed with `COORD_SIM_SEED=<seed> cargo test -p coordinator-testkit --test invariants`.

use std::time::Duration;

use coordinator_testkit::{seeds_from_env, Mode, Report, Scenario, Sim};

fn check(report: &Report) {
    eprintln!(
        "dst seed={} mode={} faults=[{}] violations={} checks(liveness={}, roster={}) wall={:.2}s",
        report.seed,
        report.mode,
        report.faults.join(","),
        report.violation_count,
        report.liveness_checks,
        report.roster_checks,
        report.wall_seconds
    );
    assert!(
        report.passed(),
        "invariants broken for seed {} (rerun: COORD_SIM_SEED={} cargo test -p coordinator-testkit --test invariants, or {}):\n{}",
        report.seed,
        report.seed,
        report.rerun_hint(),
        report.table()
    );
}

#[test]
fn swarm_faults_global_mode() {
    for seed in seeds_from_env(&[1, 2, 3, 4, 5, 6]) {
        let mut scenario = Scenario::swarm(seed, 20);
        scenario.duration = Duration::from_secs(600);
        check(&Sim::new(scenario).run());
    }
}

#[test]
fn swarm_faults_per_plugin_mode() {
    for seed in seeds_from_env(&[11, 12]) {
        let mut scenario = Scenario::swarm(seed, 8);
        scenario.mode = Mode::PerPlugin;
        scenario.plugins = 3;
        scenario.duration = Duration::from_secs(600);
        check(&Sim::new(scenario).run());
    }
}

#[test]
fn crashes_and_graceful_stops_without_faults_meet_their_bounds() {
    let mut scenario = Scenario::new(21, 10);
    scenario.duration = Duration::from_secs(1800);
    scenario.crash_leader_every = Some(Duration::from_secs(300));
    scenario.stop_leader_every = Some(Duration::from_secs(300));
    let liveness = scenario.liveness_bound().as_secs_f64();
    let handover = scenario.handover_bound().as_secs_f64();
    let report = Sim::new(scenario).run();
    check(&report);
    assert!(report.failover_seconds.count >= 5, "{}", report.table());
    assert!(report.handover_seconds.count >= 5, "{}", report.table());
    assert!(report.failover_seconds.max.unwrap() <= liveness);
    assert!(report.handover_seconds.max.unwrap() <= handover);
    assert!(report.liveness_checks >= 10);
}

#[test]
fn a_fresh_namespace_converges_within_a_second() {
    let mut scenario = Scenario::new(5, 20);
    scenario.duration = Duration::from_secs(60);
    let report = Sim::new(scenario).run();
    check(&report);
    let c = report.convergence_seconds.unwrap();
    assert!(c < 1.0, "convergence {c} s");
}

#[test]
fn a_stale_lease_is_measured_at_start_up() {
    // A leader died 16 s (lease_timeout + 1 s) before the workers start.
    let mut scenario = Scenario::new(6, 10);
    scenario.duration = Duration::from_secs(120);
    scenario.stale_lease_age = Some(Duration::from_secs(16));
    let report = Sim::new(scenario).run();
    check(&report);
    let c = report.convergence_seconds.unwrap();
    // Within the liveness bound at worst; the target is 3 s.
    assert!(c < 36.3, "convergence after a stale lease {c} s");
    eprintln!("stale-lease convergence: {c} s");
}

#[test]
fn hidden_retries_and_late_writes_keep_one_leader() {
    use coordinator_testkit::RequestFaults;
    for seed in seeds_from_env(&[31, 32]) {
        let mut scenario = Scenario::new(seed, 5);
        scenario.duration = Duration::from_secs(600);
        scenario.storm_share = 1.0;
        scenario.faults.requests = Some(RequestFaults {
            hidden_retry: 0.2,
            ambiguous_applied: 0.05,
            late_write: 0.05,
            late_max_ms: 30_000,
            ..RequestFaults::default()
        });
        let report = Sim::new(scenario).run();
        check(&report);
        eprintln!(
            "hidden retries: {} acquisitions, {} leader changes",
            report.acquisitions, report.leader_changes
        );
    }
}

/// Seeds the 2,000-seed sweep (100 workers × 1 h) once failed: an epoch
/// reissued after an election wipe (1151: metadata.json recreated from a
/// stale mark), and two leaders after a wipe that left a rolled-back
/// canary's newer-format marker (1678: a bound remembered from an earlier
/// survey stood in for the recovery wait). The whole hour: a swarm's fault
/// schedule depends on the duration.
#[test]
fn sweep_regressions_hold() {
    for seed in seeds_from_env(&[1151, 1678]) {
        let mut scenario = Scenario::swarm(seed, 100);
        scenario.duration = Duration::from_secs(3_600);
        check(&Sim::new(scenario).run());
    }
}
