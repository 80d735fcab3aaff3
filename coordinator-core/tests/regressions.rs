//! Deterministic reproducers of machine bugs found by `properties.rs` and
//! `model_check.rs`, one test each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use coordinator_core::Request;
use support::*;

/// Found by `random_faults_keep_every_invariant` (shrunk): a leader that is
/// paused past its renew deadline steps down and then watches its own lease.
/// With conditional GETs every later read answers `Unchanged`, and the
/// machine never re-observes the body, so it neither releases its own lease
/// (as it does after a full read of it) nor takes it over (the takeover
/// evaluation skips leases held by this worker). A lone worker then never
/// led again; with several workers, the others cover for it. Fixed in
/// `on_lease_read`: an `Unchanged` answer now hands on our own lease like a
/// full read of it does.
#[test]
fn a_lone_leader_paused_past_its_deadline_leads_again() {
    for conditional_get in [false, true] {
        let config = fast_config();
        let mut c = Cluster::new(config.clone(), &[], 1);
        c.traits.conditional_get = conditional_get;
        c.trace = Some(Vec::new());
        c.add_node(config.clone(), 0, 1.0, 1);
        c.run_for(2_000);
        assert_eq!(c.leader_now(), Some(0));
        // Longer than renew_deadline: it wakes with too little time to renew.
        c.pause(0, 1_200);
        c.run_for(1_300);
        assert_eq!(c.leader_now(), None, "stepped down at its deadline");
        let bound =
            config.lease_timeout + (config.heartbeat_interval + config.heartbeat_jitter) * 2;
        let took = c.run_until_leader(20_000);
        assert!(
            took.is_some_and(|ms| ms <= bound.as_millis() as u64),
            "conditional_get={conditional_get}: no leader {took:?} ms after the pause (bound {bound:?})\n{}",
            c.trace_tail(40)
        );
        c.assert_no_violations();
    }
}

/// Epochs repeat if `state.json` is deleted (by an operator or a bucket
/// lifecycle rule) after an acquisition and before the new leader has
/// raised the epoch high-water mark in `metadata.json`: a worker that never
/// saw the new epoch then re-issues it, and two terms share one fencing
/// token (invariant 2). The machine wrote the high-water mark *after* it
/// acquired; it now reserves the epoch in `metadata.json` first
/// (`machine/epoch.rs`), which closes the gap.
#[test]
fn an_epoch_is_never_reissued_after_the_lease_object_is_deleted() {
    let config = fast_config();
    let mut c = Cluster::new(config.clone(), &[1.0, 1.0], 31);
    c.trace = Some(Vec::new());
    c.run_for(2_000);
    let first = c.leader_now().unwrap();
    let other = 1 - first;
    // The new leader's write of the high-water mark is slow (200 ms).
    c.hook = Some(Box::new(move |node, request, _| match request {
        Request::CompareAndSwap { key, .. } if node == other && key.ends_with("metadata.json") => {
            Intercept::Delay(200)
        }
        _ => Intercept::Pass,
    }));
    c.crash(first);
    // Step until the other worker takes over (epoch 2); its high-water
    // update is in flight at this instant.
    while !c.leaders().contains(&other) {
        assert!(c.step());
    }
    assert_eq!(c.register.lease("ns").unwrap().epoch, 2);
    c.register.objects.retain(|k, _| !k.ends_with("state.json"));
    // A worker that never saw epoch 2 starts.
    c.add_node(config, 5, 1.0, 55);
    c.run_for(10_000);
    let epochs: Vec<u64> = c.acquired_epochs.iter().map(|(_, _, e)| *e).collect();
    assert!(
        c.violations.is_empty(),
        "acquired epochs {epochs:?}: {:#?}\n{}",
        c.violations,
        c.trace_tail(60)
    );
}
