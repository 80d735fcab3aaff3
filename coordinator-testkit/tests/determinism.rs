//! A seed replays exactly: two runs of one seed hash to the same trace.

use std::time::Duration;

use coordinator_testkit::{seeds_from_env, Mode, Scenario, Sim};

#[test]
fn a_seed_replays_exactly() {
    for seed in seeds_from_env(&[42, 43]) {
        let run = || {
            let mut scenario = Scenario::swarm(seed, 15);
            scenario.duration = Duration::from_secs(600);
            Sim::new(scenario).run()
        };
        let (a, b) = (run(), run());
        assert_eq!(
            a.trace_hash, b.trace_hash,
            "non-determinism detected [scenario=swarm, seed={seed}]"
        );
        assert_eq!(a.events, b.events);
        assert_eq!(a.requests, b.requests);
        assert_eq!(a.violations, b.violations);
        eprintln!(
            "dst seed={seed} trace_hash={} events={}",
            a.trace_hash, a.events
        );
    }
}

#[test]
fn different_seeds_differ() {
    let run = |seed| {
        let mut scenario = Scenario::swarm(seed, 10);
        scenario.mode = Mode::Global;
        scenario.duration = Duration::from_secs(120);
        Sim::new(scenario).run().trace_hash
    };
    assert_ne!(run(1), run(2));
}
