//! What operators do to a namespace, and what the election does then:
//! deleted and corrupt records, a rolling change of timings, wipes,
//! duplicate worker ids. Each test is a regression test of a bug that was
//! reproduced with this harness; where the bug's code path is kept as a
//! [`Mutation`], a twin test shows the same scenario catches it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use coordinator_core::*;
use support::*;

const NS: &str = "ns";

fn key(name: &str) -> String {
    format!("plg_coordinator_global/{NS}/{name}")
}

fn put_raw(c: &mut Cluster, key: &str, body: &[u8]) {
    let t = c.t;
    c.register.apply(
        &Request::Put {
            key: key.into(),
            body: body.to_vec(),
        },
        t,
    );
}

fn delete(c: &mut Cluster, name: &str) {
    c.register.objects.remove(&key(name));
}

/// The old fleet's timings: three times the new one's (like 45 s / 30 s
/// against the defaults' 15 s / 10 s). Both are valid.
fn old_fleet_config() -> Config {
    let mut config = fast_config();
    config.lease_timeout = Duration::from_millis(4_500);
    config.renew_deadline = Duration::from_millis(3_000);
    config.heartbeat_interval = Duration::from_millis(1_500);
    config.request_timeout = Duration::from_millis(400);
    config.recovery_wait = Duration::from_millis(6_000);
    config.validate().unwrap();
    config
}

/// Runs until the leader's next renewal lands, so that it has its whole
/// renew deadline ahead (the worst moment for the fault that follows).
fn run_until_renewed(c: &mut Cluster) {
    let renewals = c.register.lease(NS).map(|l| l.renewals);
    while c.register.lease(NS).map(|l| l.renewals) == renewals {
        assert!(c.step());
    }
}

/// Cuts node `i` off the store from now on: every request fails unapplied.
fn cut_off(c: &mut Cluster, i: usize) {
    c.hook = Some(Box::new(move |node, _, _| {
        if node == i {
            Intercept::Fail(Failure::Transient {
                message: "partitioned".into(),
            })
        } else {
            Intercept::Pass
        }
    }));
}

/// A rolling change of timings: an old-fleet leader, a new-fleet follower.
/// The lease is deleted while the leader is cut off from the store, so the
/// leader leads on to its (longer) deadline. Then a new-fleet worker that
/// never saw the old lease starts. Returns the cluster after the leader's
/// deadline and a little more.
fn rolling_timings_then_lease_deleted(mutate: fn(&mut Machine)) -> Cluster {
    let mut c = Cluster::new(old_fleet_config(), &[1.0], 21);
    c.run_until_leader(2_000).expect("the old fleet leads");
    let follower = c.add_node(fast_config(), 1, 1.0, 22);
    mutate(&mut c.nodes[follower].machine);
    c.run_for(3_000);
    assert_eq!(c.leader_now(), Some(0));
    run_until_renewed(&mut c);
    cut_off(&mut c, 0);
    delete(&mut c, "state.json");
    let restarted = c.add_node(fast_config(), 2, 1.0, 23);
    mutate(&mut c.nodes[restarted].machine);
    c.run_for(8_000);
    c
}

#[test]
fn a_deleted_lease_is_watched_for_the_longest_wait_any_holder_was_promised() {
    let mut c = rolling_timings_then_lease_deleted(|_| {});
    c.assert_no_violations();
    // Liveness: the new fleet leads once the old leader's promise is over.
    c.run_for(4_000);
    let leader = c.leader_now().expect("someone leads");
    assert_ne!(leader, 0);
    c.assert_no_violations();
}

#[cfg(feature = "mutations")]
#[test]
fn waiting_only_ones_own_lease_timeout_for_a_deleted_lease_makes_two_leaders() {
    let c = rolling_timings_then_lease_deleted(|m| {
        m.set_mutation(Mutation::OwnTimeoutForUnknownHolder)
    });
    assert!(
        c.violations.iter().any(|v| v.contains("split brain")),
        "{:?}",
        c.violations
    );
}

/// A corrupt lease during a rolling change of timings: the connected
/// leader that reads it stops leading at once, and nobody takes the lease
/// before the longest promise on record is over.
fn rolling_timings_then_lease_corrupted(mutate: fn(&mut Machine)) -> (Cluster, u64) {
    let mut c = Cluster::new(old_fleet_config(), &[1.0], 31);
    mutate(&mut c.nodes[0].machine);
    c.run_until_leader(2_000).expect("the old fleet leads");
    let follower = c.add_node(fast_config(), 1, 1.0, 32);
    mutate(&mut c.nodes[follower].machine);
    c.run_for(3_000);
    assert_eq!(c.leader_now(), Some(0));
    run_until_renewed(&mut c);
    put_raw(&mut c, &key("state.json"), b"\x00 not json");
    let corrupted = c.t;
    c.run_for(6_000);
    (c, corrupted)
}

#[test]
fn a_leader_that_reads_a_corrupt_lease_steps_down_at_once() {
    let (c, _) = rolling_timings_then_lease_corrupted(|_| {});
    c.assert_no_violations();
    assert!(c.nodes[0].events.iter().any(|e| matches!(
        e,
        Event::StoppedLeading {
            reason: StepDownReason::LeaseUnusable,
            ..
        }
    )));
    assert_eq!(c.leader_now(), Some(1), "the new fleet replaced the lease");
}

#[cfg(feature = "mutations")]
#[test]
fn leading_through_a_corrupt_lease_with_a_short_follower_wait_makes_two_leaders() {
    // Both bugs of the report together: the leader keeps leading to its
    // deadline, the follower waits its own lease timeout.
    let (c, _) = rolling_timings_then_lease_corrupted(|m| {
        m.set_mutation(Mutation::LeadThroughUnusableLease);
        m.set_mutation(Mutation::OwnTimeoutForUnknownHolder);
    });
    assert!(
        c.violations.iter().any(|v| v.contains("split brain")),
        "{:?}",
        c.violations
    );
}

/// Everything of the election is deleted (a lifecycle rule, an operator)
/// while its leader is cut off: the survey finds the followers' heartbeats,
/// so the namespace is not created as new, and the new epoch is above the
/// old one.
fn wiped_while_the_leader_is_cut_off(mutate: fn(&mut Machine)) -> (Cluster, u64) {
    let mut c = Cluster::new(fast_config(), &[1.0, 1.0], 41);
    c.run_for(3_000);
    let leader = c.leader_now().expect("leads");
    let epoch = c.register.lease(NS).unwrap().epoch;
    cut_off(&mut c, leader);
    delete(&mut c, "state.json");
    delete(&mut c, "metadata.json");
    delete(&mut c, "roster.json");
    let fresh = c.add_node(fast_config(), 5, 1.0, 45);
    mutate(&mut c.nodes[fresh].machine);
    c.run_for(2_000);
    (c, epoch)
}

#[test]
fn a_wiped_namespace_with_live_workers_is_not_recreated_at_once() {
    let (mut c, epoch) = wiped_while_the_leader_is_cut_off(|_| {});
    c.assert_no_violations();
    c.run_for(fast_config().recovery_wait.as_millis() as u64 + 2_000);
    c.assert_no_violations();
    assert!(c.leader_now().is_some(), "the namespace leads again");
    assert!(c.register.lease(NS).unwrap().epoch > epoch);
    assert!(c.nodes.iter().any(|n| n.machine.counters().surveys > 0));
}

#[cfg(feature = "mutations")]
#[test]
fn recreating_a_wiped_namespace_at_once_is_caught() {
    let (c, _) =
        wiped_while_the_leader_is_cut_off(|m| m.set_mutation(Mutation::RecreateWipedNamespace));
    assert!(!c.violations.is_empty(), "nothing caught");
}

#[test]
fn a_new_namespace_is_still_created_at_once_by_workers_starting_together() {
    let mut c = Cluster::new(fast_config(), &[1.0, 1.0, 1.0, 1.0, 1.0], 51);
    let took = c.run_until_leader(5_000).expect("someone leads");
    assert!(took <= 300, "a new namespace took {took} ms");
    c.run_for(3_000);
    assert_eq!(c.register.lease(NS).unwrap().epoch, 1);
    c.assert_no_violations();
}

#[test]
fn plugin_data_written_before_any_worker_starts_is_no_trace() {
    // Clients enqueue messages and add jobs before the first worker runs:
    // the namespace is still new, and its first leader is elected at once.
    let mut c = Cluster::new(fast_config(), &[], 61);
    put_raw(
        &mut c,
        &format!("{DATA_PREFIX}/{NS}/queue/jobs/messages/0001.json"),
        b"{}",
    );
    c.add_node(fast_config(), 0, 1.0, 61);
    let took = c.run_until_leader(3_000).expect("leads");
    assert!(took <= 200, "took {took} ms");
    c.assert_no_violations();
}

#[test]
fn the_election_marker_outlives_a_deleted_election_prefix() {
    // Everything under the election's prefix is deleted (heartbeats too)
    // while its leader is cut off; the marker beside the plugins' data
    // still says the namespace was used, and which epochs it issued.
    let mut c = Cluster::new(fast_config(), &[1.0], 62);
    c.run_for(3_000);
    let leader = c.leader_now().expect("leads");
    let epoch = c.register.lease(NS).unwrap().epoch;
    let marker = format!("{DATA_PREFIX}/{NS}/.elections/global.json");
    let record: MetadataRecord = decode("m", &c.register.objects[&marker].body).unwrap();
    assert!(record.epoch_high_water > epoch);
    run_until_renewed(&mut c);
    cut_off(&mut c, leader);
    c.register
        .objects
        .retain(|k, _| !k.starts_with("plg_coordinator_global/"));
    let fresh = c.add_node(fast_config(), 5, 1.0, 63);
    // The marker carries the bound too: the fresh worker watches the
    // missing lease that long (not at once, and not the recovery wait).
    let wait = fast_config().takeover_wait().as_millis() as u64;
    c.run_for(wait / 2);
    assert_ne!(c.leader_now(), Some(fresh), "recreated at once");
    c.run_for(wait * 2);
    assert_eq!(c.leader_now(), Some(fresh));
    assert!(c.register.lease(NS).unwrap().epoch > record.epoch_high_water);
    c.assert_no_violations();
}

#[test]
fn metadata_records_the_longest_promise_and_is_refreshed_by_the_leader() {
    let mut c = Cluster::new(old_fleet_config(), &[1.0], 71);
    c.run_until_leader(2_000).unwrap();
    c.run_for(1_000);
    let read = |c: &Cluster| {
        let object = c.register.objects.get(&key("metadata.json")).unwrap();
        let record: MetadataRecord = decode("m", &object.body).unwrap();
        (object.version, record)
    };
    let (version, record) = read(&c);
    assert_eq!(
        record.longest_takeover_wait_ms,
        old_fleet_config().takeover_wait().as_millis() as u64
    );
    // The new fleet reserves after the old: the bound is never lowered.
    c.add_node(fast_config(), 1, 1.0, 72);
    c.stop(0);
    c.run_for(3_000);
    assert_eq!(c.leader_now(), Some(1));
    let (_, after) = read(&c);
    assert_eq!(
        after.longest_takeover_wait_ms,
        record.longest_takeover_wait_ms
    );
    // A stable leader rewrites it every refresh interval, and the roster
    // (unchanged membership) with it: neither becomes the oldest object.
    let roster_version = |c: &Cluster| c.register.objects.get(&key("roster.json")).unwrap().version;
    let (before_refresh, _) = read(&c);
    let roster_before = roster_version(&c);
    c.run_for(fast_config().metadata_refresh_interval.as_millis() as u64 + 1_000);
    let (refreshed, _) = read(&c);
    assert!(refreshed > before_refresh && before_refresh >= version);
    assert!(
        roster_version(&c) > roster_before,
        "roster.json not refreshed"
    );
    c.assert_no_violations();
}

#[test]
fn a_leader_back_from_an_outage_lets_its_successor_take_its_release() {
    // Followers wait long: the release, not the expiry, decides who leads.
    let mut config = fast_config();
    config.lease_timeout = Duration::from_millis(4_500);
    config.validate().unwrap();
    let mut c = Cluster::new(config.clone(), &[1.0, 1.0], 81);
    c.run_for(3_000);
    let leader = c.leader_now().unwrap();
    let epoch = c.register.lease(NS).unwrap().epoch;
    // Cut off past its deadline but healed long before the follower's wait
    // ends: the old leader finds its own lease unchanged and releases it.
    run_until_renewed(&mut c);
    cut_off(&mut c, leader);
    c.run_for(1_200);
    assert!(c.leader_now().is_none());
    c.hook = None;
    c.run_for(2_000);
    let now = c.leader_now().expect("leads again");
    assert_ne!(
        now, leader,
        "the worker that stepped down retook its own release"
    );
    assert_eq!(c.register.lease(NS).unwrap().epoch, epoch + 1);
    c.assert_no_violations();
}

#[test]
fn a_graceful_stop_never_deletes_the_heartbeat_of_a_duplicate_worker_id() {
    let mut c = Cluster::new(fast_config(), &[], 91);
    let worker = WorkerId::new("twin").unwrap();
    let first = c.add_node_with(fast_config(), worker.clone(), Incarnation(1), 1.0, 91);
    let _second = c.add_node_with(fast_config(), worker.clone(), Incarnation(2), 1.0, 92);
    let heartbeat = key("workers/twin.json");
    let incarnation_there = |c: &Cluster| {
        let body = &c.register.objects.get(&heartbeat)?.body;
        decode::<HeartbeatRecord>("h", body)
            .ok()
            .map(|h| h.incarnation)
    };
    // Wait until the second incarnation wrote last, then stop the first.
    c.run_for(2_000);
    while incarnation_there(&c) != Some(Incarnation(2)) {
        c.run_for(10);
    }
    c.stop(first);
    // Checked the moment the stop is over, before the twin's next write
    // could hide a deletion.
    while !c.nodes[first].machine.is_finished() {
        assert!(c.step());
        assert_eq!(incarnation_there(&c), Some(Incarnation(2)));
    }
}
