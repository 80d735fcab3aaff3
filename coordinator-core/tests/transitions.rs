//! One test per transition of the election machine, driven through the
//! cluster simulation (virtual time, linearizable register).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use coordinator_core::*;
use support::*;

const NS: &str = "ns";

fn lease_key() -> String {
    format!("plg_coordinator_global/{NS}/state.json")
}

fn is_lease_write(r: &Request) -> bool {
    matches!(r, Request::Create { key, .. } | Request::CompareAndSwap { key, .. } if key.ends_with("state.json"))
}

fn stored_lease(c: &Cluster) -> LeaseRecord {
    c.register.lease(NS).expect("a lease is stored")
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

#[test]
fn a_fresh_namespace_elects_the_first_worker_at_once() {
    let mut c = Cluster::new(fast_config(), &[1.0, 1.0, 1.0], 1);
    let took = c.run_until_leader(5_000).expect("someone leads");
    assert!(took <= 200, "fresh election took {took} ms");
    c.run_for(10_000);
    c.assert_no_violations();
    let leader = c.leader_now().unwrap();
    let lease = stored_lease(&c);
    assert_eq!(lease.epoch, 1);
    assert_eq!(lease.leader.unwrap().worker_id, id(leader));
    // The leader publishes the others, in order, as successors.
    let mut expected: Vec<_> = (0..3).filter(|&i| i != leader).map(id).collect();
    expected.sort();
    assert_eq!(lease.successors, expected);
    assert_eq!(lease.roster_size, 3);
    for i in 0..3 {
        assert_eq!(c.nodes[i].machine.view().leader, Some(id(leader)), "w{i}");
    }
}

#[test]
fn crashed_leader_is_replaced_by_a_listed_successor_within_the_bound() {
    let config = fast_config();
    let mut c = Cluster::new(config.clone(), &[1.0, 1.0, 1.0, 1.0], 2);
    c.run_for(5_000);
    let old = c.leader_now().unwrap();
    let successors = stored_lease(&c).successors.clone();
    let old_epoch = stored_lease(&c).epoch;
    c.crash(old);
    let took = c.run_until_leader(20_000).expect("a new leader");
    let new = c.leader_now().unwrap();
    // Rank order is a preference (followers observe at different poll
    // phases); compare-and-swap keeps it safe when views disagree.
    assert!(successors.contains(&id(new)));
    // lease_timeout after the last observation, which is at most one poll
    // (interval + jitter) after the last renewal, plus the rank-0 wait (none).
    let bound = config.lease_timeout + config.heartbeat_interval * 2 + config.heartbeat_jitter;
    assert!(took <= bound.as_millis() as u64, "fail-over took {took} ms");
    // Racing followers share one reserved epoch: the new epoch is the
    // high-water mark, not one more per contender.
    let new_epoch = stored_lease(&c).epoch;
    assert_eq!(new_epoch, old_epoch + 1, "{:?}", c.acquired_epochs);
    let metadata = &c.register.objects["plg_coordinator_global/ns/metadata.json"];
    let mark: MetadataRecord = decode("metadata.json", &metadata.body).unwrap();
    assert_eq!(mark.epoch_high_water, new_epoch, "{:?}", c.acquired_epochs);
    c.run_for(10_000);
    c.assert_no_violations();
    // The dead worker leaves the roster.
    assert!(!stored_lease(&c).successors.contains(&id(old)));
}

#[test]
fn graceful_stop_hands_over_within_about_one_poll() {
    let config = fast_config();
    let mut c = Cluster::new(config.clone(), &[1.0, 1.0, 1.0], 3);
    c.run_for(5_000);
    let old = c.leader_now().unwrap();
    let old_epoch = stored_lease(&c).epoch;
    c.stop(old);
    c.run_for(50);
    let released = stored_lease(&c);
    assert!(released.released && released.leader.is_none());
    assert_eq!(released.epoch, old_epoch, "release keeps the epoch");
    let took = c.run_until_leader(10_000).expect("a successor");
    let poll = config.heartbeat_interval + config.heartbeat_jitter + config.succession_step;
    assert!(
        took <= poll.as_millis() as u64 + 100,
        "hand-over took {took} ms"
    );
    assert!(c.nodes[old].events.iter().any(|e| matches!(
        e,
        Event::StoppedLeading {
            reason: StepDownReason::Stopping,
            ..
        }
    )));
    assert!(c.nodes[old].events.contains(&Event::Stopped));
    assert!(c.nodes[old].machine.is_finished());
    assert!(!c
        .worker_keys()
        .iter()
        .any(|k| k.ends_with(&format!("/w{old}.json"))));
    c.assert_no_violations();
}

#[test]
fn cas_conflict_makes_the_loser_follow() {
    // Two workers see the same released lease and race; one CAS loses.
    let mut c = Cluster::new(fast_config(), &[1.0, 1.0], 4);
    c.run_for(3_000);
    c.assert_no_violations();
    let elections: u64 = c.nodes.iter().map(|n| n.machine.counters().elections).sum();
    let acquisitions: u64 = c
        .nodes
        .iter()
        .map(|n| n.machine.counters().acquisitions)
        .sum();
    assert_eq!(acquisitions, 1);
    assert!(elections >= 1);
    let follower = 1 - c.leader_now().unwrap();
    assert_eq!(
        c.nodes[follower].machine.view().leader,
        Some(id(c.leader_now().unwrap()))
    );
}

#[test]
fn ambiguous_acquisition_that_landed_is_recognised_by_its_nonce() {
    let mut c = Cluster::new(fast_config(), &[], 5);
    let mut first = true;
    c.hook = Some(Box::new(move |_, request, _| {
        if first && is_lease_write(request) {
            first = false;
            return Intercept::ApplyThenFail(Failure::Ambiguous {
                message: "timeout".into(),
            });
        }
        Intercept::Pass
    }));
    c.add_node(fast_config(), 0, 1.0, 5);
    let took = c.run_until_leader(2_000).expect("leads after re-reading");
    assert!(took < 500, "took {took}");
    assert_eq!(
        stored_lease(&c).epoch,
        1,
        "no second acquisition was needed"
    );
    assert_eq!(c.nodes[0].machine.counters().elections, 1);
    c.assert_no_violations();
}

#[test]
fn ambiguous_acquisition_that_did_not_land_is_retried() {
    let mut c = Cluster::new(fast_config(), &[], 6);
    let mut failures = 1;
    c.hook = Some(Box::new(move |_, request, _| {
        if failures > 0 && is_lease_write(request) {
            failures -= 1;
            return Intercept::Fail(Failure::Ambiguous {
                message: "reset".into(),
            });
        }
        Intercept::Pass
    }));
    c.add_node(fast_config(), 0, 1.0, 6);
    c.run_until_leader(5_000).expect("leads eventually");
    // The failed attempt had reserved epoch 1 in the high-water mark, and a
    // reserved epoch is never issued twice to an absent lease.
    assert_eq!(stored_lease(&c).epoch, 2);
    c.assert_no_violations();
}

#[test]
fn a_hidden_retry_of_a_landed_write_is_recognised_not_taken_for_a_lost_race() {
    let mut c = Cluster::new(fast_config(), &[1.0, 1.0], 22);
    c.run_for(3_000);
    let leader = c.leader_now().unwrap();
    let epoch = stored_lease(&c).epoch;
    // Every lease write of the leader lands, but its client's retry of it
    // is refused and that refusal is all the machine hears.
    c.hook = Some(Box::new(move |node, request, _| {
        if node == leader && is_lease_write(request) {
            return Intercept::ApplyThenAnswer(Response::Conflict);
        }
        Intercept::Pass
    }));
    c.run_for(10_000);
    assert_eq!(c.leader_now(), Some(leader), "kept leading");
    assert!(!c.nodes[leader]
        .events
        .iter()
        .any(|e| matches!(e, Event::StoppedLeading { .. })));
    let counters = c.nodes[leader].machine.counters();
    assert!(counters.renewals >= 10, "{counters:?}");
    assert_eq!(stored_lease(&c).epoch, epoch);
    c.assert_no_violations();
}

#[test]
fn a_renewal_that_lands_after_the_deadline_is_not_resumed_on() {
    let config = fast_config();
    let mut c = Cluster::new(config.clone(), &[1.0, 1.0], 7);
    c.run_for(3_000);
    let leader = c.leader_now().unwrap();
    // Every renewal of the leader from now on is delayed past its deadline.
    let renew_deadline = config.renew_deadline.as_millis() as u64;
    c.hook = Some(Box::new(move |node, request, _| {
        if node == leader
            && matches!(request, Request::CompareAndSwap { key, .. } if key.ends_with("state.json"))
        {
            return Intercept::Delay(renew_deadline + 200);
        }
        Intercept::Pass
    }));
    c.run_for(renew_deadline + 100);
    assert!(!c.nodes[leader]
        .machine
        .is_leader(c.nodes[leader].local(c.t)));
    assert!(c.nodes[leader].events.iter().any(|e| matches!(
        e,
        Event::StoppedLeading {
            reason: StepDownReason::RenewDeadlineExceeded,
            ..
        }
    )));
    c.hook = None;
    c.run_for(3_000);
    // The late renewal landed, but the old leader released rather than resumed.
    let became: usize = c.nodes[leader]
        .events
        .iter()
        .filter(|e| matches!(e, Event::BecameLeader { .. }))
        .count();
    let lease = stored_lease(&c);
    assert!(lease.epoch >= 2, "a new term started: {lease:?}");
    assert!(became == 1 || lease.leader.as_ref().map(|l| &l.worker_id) == Some(&id(leader)));
    c.assert_no_violations();
}

#[test]
fn a_leader_that_cannot_reach_the_store_steps_down_at_its_deadline_never_later() {
    let config = fast_config();
    let mut c = Cluster::new(config.clone(), &[1.0, 1.0, 1.0], 8);
    c.run_for(3_000);
    let leader = c.leader_now().unwrap();
    let (_, deadline) = c.nodes[leader].machine.term().unwrap();
    c.hook = Some(Box::new(move |node, _, _| {
        if node == leader {
            Intercept::Fail(Failure::Transient {
                message: "partitioned".into(),
            })
        } else {
            Intercept::Pass
        }
    }));
    c.run_for(5_000);
    let stepped = c.nodes[leader].events.iter().any(|e| {
        matches!(
            e,
            Event::StoppedLeading {
                reason: StepDownReason::RenewDeadlineExceeded,
                ..
            }
        )
    });
    assert!(stepped);
    assert!(!c.nodes[leader].machine.is_leader(deadline));
    let new = c.leader_now().expect("another worker leads");
    assert_ne!(new, leader);
    c.assert_no_violations();
}

#[test]
fn a_corrupt_lease_is_reported_then_replaced_by_cas_after_the_lease_timeout() {
    let config = fast_config();
    let mut c = Cluster::new(config.clone(), &[], 9);
    put_raw(&mut c, &lease_key(), br#"{"format":1,"leader":nul"#);
    put_raw(
        &mut c,
        &format!("plg_coordinator_global/{NS}/metadata.json"),
        br#"{"format":1,"epoch_high_water":41,"nonce":1}"#,
    );
    c.add_node(config.clone(), 0, 1.0, 9);
    c.run_for(500);
    assert!(
        c.leader_now().is_none(),
        "must not take a corrupt lease at once"
    );
    assert!(c.nodes[0].events.iter().any(|e| matches!(
        e,
        Event::RecordProblem {
            error: RecordError::Corrupt { .. }
        }
    )));
    let took = c.run_until_leader(10_000).expect("replaced");
    // The mark predates the bound on record (no `longest_takeover_wait_ms`):
    // whoever held the corrupt lease may have been promised anything up to
    // the recovery wait.
    assert!(took + 500 >= config.recovery_wait.as_millis() as u64);
    // Epochs stay above the high-water mark on record; the write was a CAS
    // over the corrupt version.
    assert_eq!(stored_lease(&c).epoch, 42);
    c.assert_no_violations();
}

#[test]
fn a_lease_of_a_newer_format_is_followed_while_it_changes_and_replaced_once_abandoned() {
    let config = fast_config();
    let mut c = Cluster::new(config.clone(), &[], 10);
    let newer = |n: u64| format!(r#"{{"format":2,"holder":"canary","nonce":{n}}}"#);
    put_raw(&mut c, &lease_key(), newer(0).as_bytes());
    c.add_node(config.clone(), 0, 1.0, 10);
    c.add_node(config.clone(), 1, 1.0, 11);
    let recovery = config.recovery_wait.as_millis() as u64;
    // A live canary keeps renewing its lease for two recovery waits: nobody
    // writes the lease meanwhile.
    let until = 2 * recovery;
    c.hook = Some(Box::new(move |_, request, t| {
        if is_lease_write(request) && t < until {
            panic!("wrote over a newer-format lease that was still renewed: {request:?}");
        }
        Intercept::Pass
    }));
    let mut n = 0;
    while c.t < until {
        n += 1;
        put_raw(&mut c, &lease_key(), newer(n).as_bytes());
        c.run_for(500);
        assert!(c.leader_now().is_none());
    }
    assert!(c.nodes[0].events.iter().any(|e| matches!(
        e,
        Event::RecordProblem {
            error: RecordError::NewerFormat { found: 2, .. }
        }
    )));
    // The canary is rolled back: its lease is left as it was. The old
    // workers take it over, but not before the recovery wait.
    let rolled_back = c.t;
    let took = c
        .run_until_leader(4 * recovery)
        .expect("the namespace leads again");
    assert!(took + 600 >= recovery, "took over after {took} ms");
    assert!(c.t - rolled_back <= recovery + 2_000);
    c.assert_no_violations();
}

#[test]
fn a_foreign_state_json_is_refused_before_anything_is_written() {
    let mut c = Cluster::new(fast_config(), &[], 12);
    put_raw(
        &mut c,
        &lease_key(),
        br#"{"leader":"js-worker","expiresAt":1700000000000}"#,
    );
    let stored = |c: &Cluster| -> Vec<(String, Vec<u8>, u64)> {
        c.register
            .objects
            .iter()
            .map(|(k, o)| (k.clone(), o.body.clone(), o.version))
            .collect()
    };
    let before = stored(&c);
    c.add_node(fast_config(), 0, 1.0, 12);
    c.run_for(200);
    assert!(c.nodes[0].machine.is_finished());
    assert!(c.nodes[0].events.iter().any(|e| matches!(
        e,
        Event::Refused {
            error: RecordError::Foreign { .. }
        }
    )));
    c.run_for(10_000);
    assert_eq!(c.nodes[0].machine.poll_timeout(), None);
    // Not even a heartbeat: the lease is read before the first write.
    assert_eq!(stored(&c), before);
    assert_eq!(c.nodes[0].machine.counters().membership_writes, 0);
    assert!(c.leader_now().is_none());
}

/// The first request of a new machine is the lease read, alone; the
/// heartbeat follows its answer.
#[test]
fn the_lease_is_read_before_the_first_heartbeat() {
    let identity = Identity {
        worker_id: id(0),
        incarnation: Incarnation(1),
    };
    let mut m = Machine::new(
        fast_config(),
        Namespace::new(NS).unwrap(),
        identity,
        StoreTraits::default(),
        7,
        Instant::from_millis(0),
        1_700_000_000_000,
    );
    let first: Vec<Action> = std::iter::from_fn(|| m.poll_action()).collect();
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(matches!(&first[0].request, Request::Get { key, .. } if *key == lease_key()));
    // A failed read announces nothing; the retry reads again.
    m.handle_response(
        first[0].id,
        Response::Failed(Failure::Transient {
            message: "503".into(),
        }),
        Instant::from_millis(5),
    );
    assert!(m.poll_action().is_none());
    let at = m.poll_timeout().unwrap();
    m.handle_timeout(at);
    let retry: Vec<Action> = std::iter::from_fn(|| m.poll_action()).collect();
    assert!(
        matches!(
            &retry[..],
            [Action {
                request: Request::Get { .. },
                ..
            }]
        ),
        "{retry:?}"
    );
    m.handle_response(retry[0].id, Response::Absent, at);
    let next: Vec<Action> = std::iter::from_fn(|| m.poll_action()).collect();
    assert!(
        next.iter()
            .any(|a| matches!(&a.request, Request::Put { key, .. } if key.contains("/workers/"))),
        "the heartbeat follows the answered read: {next:?}"
    );
}

#[test]
fn a_duplicate_worker_id_is_reported_and_its_lease_never_adopted() {
    let config = fast_config();
    let mut c = Cluster::new(config.clone(), &[], 13);
    c.add_node_with(config.clone(), id(0), Incarnation(1), 1.0, 13);
    c.run_for(2_000);
    assert_eq!(c.leader_now(), Some(0));
    c.add_node_with(config.clone(), id(0), Incarnation(2), 1.0, 14);
    c.run_for(5_000);
    assert!(c.nodes[1].events.iter().any(|e| matches!(
        e,
        Event::DuplicateWorkerId {
            other: Incarnation(1),
            ..
        }
    )));
    assert_eq!(
        c.leader_now(),
        Some(0),
        "the impostor did not adopt the lease"
    );
    assert_eq!(stored_lease(&c).epoch, 1);
    c.assert_no_violations();
}

#[test]
fn followers_with_a_shorter_lease_timeout_wait_for_the_leaders() {
    let leader_config = Config {
        lease_timeout: Duration::from_millis(4_000),
        renew_deadline: Duration::from_millis(3_000),
        ..fast_config()
    };
    let follower_config = fast_config(); // lease_timeout 1.5 s
    let mut c = Cluster::new(leader_config, &[1.0], 15);
    c.run_for(2_000);
    assert_eq!(c.leader_now(), Some(0));
    c.add_node(follower_config, 1, 1.0, 16);
    c.run_for(2_000);
    // Leader stalls (no renewals), still valid for up to 3 s on its clock.
    c.pause(0, 10_000);
    let start = c.t;
    let mut last_leader_write = 0;
    while !c.leaders().contains(&1) && c.t - start < 20_000 {
        if stored_lease(&c).leader.map(|l| l.worker_id) == Some(id(0)) {
            last_leader_write = c.register.objects[&lease_key()].store_time_ms as u64;
        }
        c.step();
    }
    c.assert_no_violations();
    assert!(c.leaders().contains(&1), "the follower takes over");
    // The leader's record says 4 s; the follower's own 1.5 s must not win.
    let waited = c.t - last_leader_write;
    assert!(
        waited >= 4_000,
        "took over {waited} ms after the last renewal"
    );
}

#[test]
fn stop_while_a_cas_is_in_flight_releases_after_it_lands() {
    use std::cell::Cell;
    use std::rc::Rc;
    let config = fast_config();
    let mut c = Cluster::new(config.clone(), &[1.0, 1.0], 17);
    c.run_for(3_000);
    let leader = c.leader_now().unwrap();
    let sent = Rc::new(Cell::new(0));
    let flag = sent.clone();
    let written = Rc::new(std::cell::RefCell::new(Vec::<LeaseRecord>::new()));
    let log = written.clone();
    c.hook = Some(Box::new(move |node, request, _| {
        if node == leader && is_lease_write(request) {
            flag.set(flag.get() + 1);
            if let Request::CompareAndSwap { body, .. } = request {
                log.borrow_mut().push(decode("state.json", body).unwrap());
            }
            return Intercept::Delay(300);
        }
        Intercept::Pass
    }));
    while sent.get() == 0 {
        c.step();
    }
    // The renewal is in flight (it lands in 300 ms + latency): stop now.
    let before = stored_lease(&c);
    c.stop(leader);
    assert!(!c.nodes[leader]
        .machine
        .is_leader(c.nodes[leader].local(c.t)));
    assert!(!c.nodes[leader].machine.is_finished(), "waits for the CAS");
    c.run_for(330);
    let renewed = stored_lease(&c);
    assert_eq!(renewed.renewals, before.renewals + 1, "the renewal landed");
    c.run_for(400);
    assert_eq!(sent.get(), 2, "then exactly one more write: the release");
    let released = written.borrow()[1].clone();
    assert!(
        released.released && released.epoch == before.epoch && released.leader.is_none(),
        "{released:?}"
    );
    assert!(c.nodes[leader].machine.is_finished());
    c.run_for(1_000);
    assert_eq!(c.leader_now(), Some(1 - leader));
    c.assert_no_violations();
}

#[test]
fn a_dead_worker_is_timed_out_and_its_object_removed() {
    let config = fast_config();
    let mut c = Cluster::new(config.clone(), &[1.0, 1.0, 1.0], 18);
    c.run_for(4_000);
    let leader = c.leader_now().unwrap();
    let victim = (0..3).find(|&i| i != leader).unwrap();
    c.crash(victim);
    c.run_for(config.worker_timeout.as_millis() as u64 + 3_000);
    assert!(c.nodes[leader].events.iter().any(|e| *e
        == Event::WorkerTimedOut {
            worker_id: id(victim)
        }));
    assert!(!c
        .worker_keys()
        .iter()
        .any(|k| k.ends_with(&format!("/w{victim}.json"))));
    assert!(!stored_lease(&c).successors.contains(&id(victim)));
    assert_eq!(c.nodes[leader].machine.counters().worker_timeouts, 1);
    c.assert_no_violations();
}

#[test]
fn epochs_never_go_back_when_the_lease_object_is_deleted() {
    let mut c = Cluster::new(fast_config(), &[1.0, 1.0], 19);
    c.run_for(3_000);
    for _ in 0..3 {
        let leader = c.leader_now().unwrap();
        c.stop(leader);
        c.run_for(100);
        let i = c.add_node(fast_config(), c.nodes.len(), 1.0, c.nodes.len() as u64 * 7);
        let _ = i;
        c.run_for(3_000);
    }
    let epoch = stored_lease(&c).epoch;
    assert!(epoch >= 4);
    c.register.objects.remove(&lease_key());
    // A brand-new worker that never saw any epoch.
    let fresh = c.add_node(fast_config(), 99, 1.0, 99);
    c.run_for(5_000);
    let after = stored_lease(&c).epoch;
    assert!(after > epoch, "epoch went from {epoch} to {after}");
    assert!(c.nodes[fresh].machine.view().epoch >= after);
    c.assert_no_violations();
}

#[test]
fn a_stale_lease_is_taken_at_once_where_the_store_clock_is_trusted() {
    let mut config = fast_config();
    config.lease_timeout = Duration::from_secs(15);
    config.renew_deadline = Duration::from_secs(10);
    config.heartbeat_interval = Duration::from_secs(5);
    config.heartbeat_jitter = Duration::from_secs(1);
    config.worker_timeout = Duration::from_secs(20);
    config.membership_interval = Duration::from_secs(10);
    config.request_timeout = Duration::from_secs(1);
    config.stale_takeover_margin = Duration::from_secs(2);
    for trusted in [true, false] {
        let mut c = Cluster::new(config.clone(), &[], 20);
        c.traits.trusted_clock = trusted;
        c.add_node(config.clone(), 0, 1.0, 20);
        c.run_for(2_000);
        assert_eq!(c.leader_now(), Some(0));
        c.crash(0);
        // Long after the crash, a new worker starts.
        c.run_for(60_000);
        let fresh = c.add_node(config.clone(), 1, 1.0, 21);
        let took = c.run_until_leader(30_000).unwrap();
        assert_eq!(c.leader_now(), Some(fresh));
        if trusted {
            assert!(took < 1_000, "stale lease taken after {took} ms");
        } else {
            assert!(
                took >= 15_000,
                "untrusted clock must wait the lease out ({took} ms)"
            );
        }
        c.assert_no_violations();
    }
}

#[test]
fn drift_within_tolerance_keeps_one_leader() {
    let config = fast_config(); // ρ = 0.1
    let mut c = Cluster::new(config, &[0.91, 1.09, 1.0, 0.95], 21);
    for round in 0..6 {
        c.run_for(4_000);
        if let Some(leader) = c.leader_now() {
            if round % 2 == 0 {
                c.pause(leader, 3_000);
            } else {
                c.crash(leader);
                c.add_node(fast_config(), 10 + round, 1.05, round as u64);
            }
        }
    }
    c.run_for(5_000);
    c.assert_no_violations();
    assert!(c.acquired_epochs.len() >= 3);
}

#[test]
fn every_worker_of_a_cold_start_knows_the_leader_within_a_few_round_trips() {
    // Ten workers start together in a new namespace (20 ms per request):
    // those that lose the race to reserve the first epoch read the lease
    // again about one round trip later, not at their next heartbeat.
    let mut c = Cluster::new(fast_config(), &[1.0; 10], 17);
    c.run_until_leader(1_000).expect("someone leads");
    let leader = c.leader_now().unwrap();
    let mut agreed_at = None;
    while c.t <= 1_000 {
        if (0..10).all(|i| c.nodes[i].machine.view().leader == Some(id(leader))) {
            agreed_at = Some(c.t);
            break;
        }
        assert!(c.step());
    }
    let agreed_at = agreed_at.expect("every worker knows the leader within 1 s");
    // A heartbeat is 500 ms here: well under one.
    assert!(agreed_at <= 300, "all agreed only at {agreed_at} ms");
    c.assert_no_violations();
}
