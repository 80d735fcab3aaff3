//! A seed replays a plugin simulator run exactly: the same report, byte for
//! byte, and the same `trace_hash` (every store request in order), twice
//! in one process and in two processes of `coordinator-plugin-sim`.
//!
//! What used to differ between runs: the queue leader walked its claims in
//! `HashMap` order (std's hasher is seeded at random per map), so a sweep's
//! requests, and the seeded faults they drew, came in another order each
//! run; the scheduler's leader did the same with its jobs and watched
//! slots; and `tokio::select!` picks a random ready branch unless `biased`
//! (tokio's generator is seeded per process unless `tokio_unstable`), in
//! the election's driver, the term watchdog, the plugin runner and the
//! plugins.
//!
//! Rerun other seeds with `COORD_SIM_SEED=<seed>`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use coordinator_testkit::plugins::queue::{run_queue, QueueScenario};
use coordinator_testkit::plugins::scheduler::{run_scheduler, SchedulerScenario};
use coordinator_testkit::plugins::storms::Storms;
use coordinator_testkit::plugins::ttl::{run_ttl, TtlScenario};
use coordinator_testkit::seeds_from_env;

/// The simulator's own printing of a report (`coordinator-plugin-sim`).
fn printed<R: serde::Serialize>(report: &R) -> String {
    serde_json::to_string_pretty(report).unwrap() + "\n"
}

fn queue(seed: u64, storms: bool) -> String {
    let mut sc = QueueScenario::new(seed, 4, 300);
    if storms {
        sc.world.storms = Some(Storms::default());
    }
    printed(&run_queue(&sc))
}

/// Three runs, so that an order drawn at random (a hasher, a `select!`)
/// is very unlikely to come out the same every time.
fn replays(what: &str, seed: u64, run: impl Fn() -> String) {
    let first = run();
    assert!(first.contains("\"trace_hash\""), "{first}");
    for again in 2..=3 {
        let next = run();
        assert_eq!(
            first, next,
            "non-determinism detected [scenario={what}, seed={seed}, run {again}]"
        );
    }
}

#[test]
fn a_queue_seed_replays_in_one_process() {
    for seed in seeds_from_env(&[5]) {
        replays("queue", seed, || queue(seed, false));
        replays("queue --storms", seed, || queue(seed, true));
    }
}

#[test]
fn a_scheduler_seed_replays_in_one_process() {
    for seed in seeds_from_env(&[1]) {
        replays("scheduler --storms", seed, || {
            let mut sc = SchedulerScenario::new(seed, 3, 2);
            sc.world.storms = Some(Storms::default());
            printed(&run_scheduler(&sc))
        });
    }
}

#[test]
fn a_ttl_seed_replays_in_one_process() {
    for seed in seeds_from_env(&[3]) {
        replays("ttl", seed, || {
            printed(&run_ttl(&TtlScenario::new(seed, 3, 300)))
        });
    }
}

/// Two processes seed their hashers and tokio's generator apart: the
/// binary's reports must still match each other and this process's.
#[test]
fn a_seed_replays_across_processes() {
    for seed in seeds_from_env(&[5]) {
        let seed_text = seed.to_string();
        let run = || {
            let out = Command::new(env!("CARGO_BIN_EXE_coordinator-plugin-sim"))
                .args(["queue", "--workers", "4", "--messages", "300", "--storms"])
                .args(["--seed", &seed_text])
                .output()
                .unwrap();
            assert!(
                out.status.code() == Some(0) || out.status.code() == Some(3),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let (a, b) = (run(), run());
        assert_eq!(
            a, b,
            "non-determinism detected across processes [seed={seed}]"
        );
        assert_eq!(
            a,
            queue(seed, true),
            "the binary and the library differ [seed={seed}]"
        );
    }
}
