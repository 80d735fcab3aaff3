//! Issue 7's meter: requests per worker-hour at default timings must not
//! rise more than 5% over the recorded figure (docs/benchmarks.md,
//! "Simulator"). Lower the figure when the protocol gets cheaper.

use std::time::Duration;

use coordinator_testkit::{Mode, Scenario, Sim};

/// Measured: `coordinator-sim --workers 10 --plugins 10 --mode global
/// --duration 1h --faults none --seed 7 --json` → `requests_per_worker_hour`.
/// (994.6 before the designated successor read every 2 s and the leader
/// listed every 12 s instead of 10 s, which bought fail-over and hand-over
/// within their targets for about 98 more requests per worker-hour at 10
/// workers and none at 1,000.)
const MEASURED_REQUESTS_PER_WORKER_HOUR: f64 = 1092.6;

/// The budget: the measured figure + 5%.
const BUDGET: f64 = MEASURED_REQUESTS_PER_WORKER_HOUR * 1.05;

#[test]
fn requests_per_worker_hour_stay_within_budget() {
    let mut scenario = Scenario::new(7, 10);
    scenario.plugins = 10;
    scenario.mode = Mode::Global;
    scenario.duration = Duration::from_secs(3600);
    let report = Sim::new(scenario).run();
    eprintln!("{}", report.table());
    assert!(report.passed(), "{}", report.table());
    assert!(
        report.requests_per_worker_hour <= BUDGET,
        "{:.1} requests per worker-hour exceed the budget {BUDGET:.1} (recorded {MEASURED_REQUESTS_PER_WORKER_HOUR} + 5%)",
        report.requests_per_worker_hour
    );
    // Issue 7's absolute targets.
    assert!(
        report.requests_per_worker_hour <= 1100.0,
        "{}",
        report.table()
    );
    assert!(report.usd_per_worker_month <= 1.80, "{}", report.table());
}

#[test]
fn global_mode_is_far_cheaper_than_per_plugin_mode() {
    let run = |mode| {
        let mut scenario = Scenario::new(7, 10);
        scenario.plugins = 10;
        scenario.mode = mode;
        scenario.duration = Duration::from_secs(1800);
        Sim::new(scenario).run()
    };
    let global = run(Mode::Global);
    let per_plugin = run(Mode::PerPlugin);
    let ratio = global.requests.total() as f64 / per_plugin.requests.total() as f64;
    eprintln!("global / per-plugin requests with 10 plugins: {ratio:.3}");
    assert!(ratio <= 1.0 / 9.0, "ratio {ratio}");
}
