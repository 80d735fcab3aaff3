//! The runtime under paused tokio time with the in-memory store: elections,
//! fail-over, hand-over, hooks, the registry, isolation and metrics.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{leaders, virtual_memory_store, wait_until, worker, worker_with, Hook, Recorder};
use coordinator_core::{Config, LeaseRecord};
use coordinator_runtime::{
    async_trait, CoordinationMode, Coordinator, CoordinatorError, CoordinatorPlugin,
    CoordinatorRegistry, CoordinatorState, ErrorKind, Event, LeaderContext, PluginError,
    PluginScope, StepDownReason, TokioClock,
};
use coordinator_store::{
    FailingStore, Fault, FaultKind, LeaseStore, LeaseStoreExt, MemoryStore, Metered,
};
use futures::StreamExt;

const NS: &str = "orders";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

async fn start_workers(
    store: &Arc<dyn LeaseStore>,
    clock: &Arc<TokioClock>,
    n: usize,
) -> (Vec<CoordinatorRegistry>, Vec<Arc<Coordinator>>) {
    let registries: Vec<CoordinatorRegistry> = (0..n)
        .map(|i| worker(store.clone(), &format!("w{i:02}"), clock))
        .collect();
    let coordinators = futures::future::join_all(registries.iter().map(|r| r.get(NS)))
        .await
        .into_iter()
        .map(|c| c.unwrap())
        .collect();
    (registries, coordinators)
}

async fn lease(store: &dyn LeaseStore) -> LeaseRecord {
    let object = store
        .get("plg_coordinator_global/orders/state.json")
        .await
        .unwrap()
        .expect("a lease");
    serde_json::from_slice(&object.body).unwrap()
}

#[tokio::test(start_paused = true)]
async fn ten_workers_converge_on_one_leader_and_agree() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_memory_store());
    let clock = Arc::new(TokioClock::new());
    let (registries, cs) = start_workers(&store, &clock, 10).await;

    let took = wait_until("one leader", secs(30), || leaders(&cs).len() == 1).await;
    println!("10 workers: first leader after {took:?}");
    // Everyone agrees, and at most one leader at every sampled instant.
    wait_until("agreement", secs(30), || {
        let leader = cs[leaders(&cs)[0]].worker_id().clone();
        cs.iter().all(|c| c.leader().as_ref() == Some(&leader))
    })
    .await;
    for _ in 0..600 {
        assert!(leaders(&cs).len() <= 1, "two leaders at {:?}", clock);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leader = &cs[leaders(&cs)[0]];
    assert_eq!(leader.epoch(), 1, "one acquisition only");
    assert!(cs.iter().all(|c| c.epoch() == 1));
    // The leader's roster has everybody after a listing.
    wait_until("full roster", secs(30), || leader.workers().len() == 10).await;
    assert_eq!(leader.metrics().worker_count, 10);
    for registry in &registries {
        registry.close().await;
    }
}

#[tokio::test(start_paused = true)]
async fn aborted_leader_is_replaced_within_lease_timeout_plus_one_poll() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_memory_store());
    let clock = Arc::new(TokioClock::new());
    let (registries, cs) = start_workers(&store, &clock, 3).await;
    wait_until("one leader", secs(30), || leaders(&cs).len() == 1).await;
    // Let the roster settle so successors are ranked.
    tokio::time::sleep(secs(30)).await;
    let old = leaders(&cs)[0];
    let epoch = cs[old].epoch();
    cs[old].abort();

    let config = Config::default();
    let bound = config.lease_timeout + config.heartbeat_interval + config.heartbeat_jitter;
    let took = wait_until("a new leader", bound + secs(1), || {
        leaders(&cs).iter().any(|&i| i != old)
    })
    .await;
    println!("fail-over after abort: {took:?} (bound {bound:?})");
    assert!(took <= bound, "fail-over took {took:?}, bound {bound:?}");
    // Never two leaders: the aborted one's deadline (10 s) passed long ago.
    assert_eq!(leaders(&cs).len(), 1);
    let new = leaders(&cs)[0];
    assert!(cs[new].epoch() > epoch);
    assert_eq!(cs[old].state(), CoordinatorState::Aborted);
    for registry in &registries {
        registry.close().await;
    }
}

#[tokio::test(start_paused = true)]
async fn graceful_stop_hands_over_within_about_one_poll() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_memory_store());
    let clock = Arc::new(TokioClock::new());
    let (registries, cs) = start_workers(&store, &clock, 3).await;
    wait_until("one leader", secs(30), || leaders(&cs).len() == 1).await;
    tokio::time::sleep(secs(30)).await;
    let old = leaders(&cs)[0];
    let epoch = cs[old].epoch();
    let stopping = cs[old].clone();
    let stop = tokio::spawn(async move { stopping.stop().await });

    let config = Config::default();
    let bound = config.heartbeat_interval + config.heartbeat_jitter + config.succession_step;
    let took = wait_until("a successor", bound + secs(1), || {
        leaders(&cs).iter().any(|&i| i != old)
    })
    .await;
    println!("hand-over after graceful stop: {took:?} (bound {bound:?})");
    assert!(took <= bound, "hand-over took {took:?}");
    stop.await.unwrap();
    assert_eq!(cs[old].state(), CoordinatorState::Stopped);
    assert!(!cs[old].is_leader());
    let new = leaders(&cs)[0];
    assert_eq!(cs[new].epoch(), epoch + 1);
    // The stopped worker's heartbeat is gone; the lease was released then
    // re-acquired.
    assert!(store
        .get(&format!(
            "plg_coordinator_global/{NS}/workers/{}.json",
            cs[old].worker_id()
        ))
        .await
        .unwrap()
        .is_none());
    assert_eq!(lease(store.as_ref()).await.epoch, epoch + 1);
    for registry in &registries {
        registry.close().await;
    }
}

#[tokio::test(start_paused = true)]
async fn hooks_run_once_per_term_in_order_and_never_overlap_across_workers() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_memory_store());
    let clock = Arc::new(TokioClock::new());
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut registries = Vec::new();
    let mut cs = Vec::new();
    for i in 0..3 {
        let id = format!("w{i}");
        let registry = worker(store.clone(), &id, &clock);
        let mut recorder = Recorder::new("recorder", &id, &clock, &log);
        recorder.work_interval = Some(secs(2));
        cs.push(registry.attach(NS, Arc::new(recorder)).await.unwrap());
        registries.push(registry);
    }
    // First election, then a crash, then a graceful stop.
    wait_until("one leader", secs(30), || leaders(&cs).len() == 1).await;
    tokio::time::sleep(secs(20)).await;
    let first = leaders(&cs)[0];
    cs[first].abort();
    wait_until("fail-over", secs(30), || {
        leaders(&cs).iter().any(|&i| i != first)
    })
    .await;
    tokio::time::sleep(secs(20)).await;
    let second = leaders(&cs)[0];
    cs[second].stop().await;
    wait_until("hand-over", secs(10), || {
        leaders(&cs).iter().any(|&i| i != first && i != second)
    })
    .await;
    tokio::time::sleep(secs(10)).await;
    for registry in &registries {
        registry.close().await;
    }
    cs[first].wait_stopped().await;

    let log = log.lock().unwrap().clone();
    // Per worker: become, (work)*, stop, strictly alternating, epochs rising.
    let mut terms = Vec::new();
    for i in 0..3 {
        let id = format!("w{i}");
        let mine: Vec<&Hook> = log
            .iter()
            .filter(|(w, _)| *w == id)
            .map(|(_, h)| h)
            .collect();
        let mut open: Option<(u64, u64)> = None;
        let mut last_epoch = 0;
        for hook in mine {
            match hook {
                Hook::Become { epoch, at_ms } => {
                    assert!(open.is_none(), "{id}: become while leading: {log:?}");
                    assert!(*epoch > last_epoch);
                    last_epoch = *epoch;
                    open = Some((*epoch, *at_ms));
                }
                Hook::Work { epoch, .. } => {
                    assert_eq!(
                        open.map(|o| o.0),
                        Some(*epoch),
                        "{id}: work outside its term"
                    );
                }
                Hook::Stop { .. } => {
                    assert!(open.is_some(), "{id}: stop without become: {log:?}");
                    open = None;
                }
                Hook::Cancelled { .. } => {}
            }
        }
        assert!(open.is_none(), "{id}: a term never stopped");
    }
    // Terms in true time: from become to the token's cancellation.
    for (worker, hook) in &log {
        if let Hook::Become { epoch, at_ms } = hook {
            let end = log
                .iter()
                .find_map(|(w, h)| match h {
                    Hook::Cancelled { epoch: e, at_ms } if w == worker && e == epoch => {
                        Some(*at_ms)
                    }
                    _ => None,
                })
                .expect("every term's token fires");
            terms.push((*at_ms, end, *epoch, worker.clone()));
        }
    }
    terms.sort();
    println!("terms (become ms, cancelled ms, epoch, worker): {terms:?}");
    assert_eq!(
        terms.len(),
        3,
        "three terms: first, after the crash, after the stop"
    );
    let epochs: Vec<u64> = terms.iter().map(|t| t.2).collect();
    assert_eq!(epochs, vec![1, 2, 3], "once per term");
    for pair in terms.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "terms overlap: {pair:?}");
    }
    // The crashed leader's term ended at its deadline, with that reason.
    let crashed = format!("w{first}");
    assert!(log.iter().any(|(w, h)| *w == crashed
        && matches!(
            h,
            Hook::Stop {
                reason: StepDownReason::RenewDeadlineExceeded,
                ..
            }
        )));
    let stopped = format!("w{second}");
    assert!(log.iter().any(|(w, h)| *w == stopped
        && matches!(
            h,
            Hook::Stop {
                reason: StepDownReason::Stopping,
                ..
            }
        )));
    assert!(log.iter().any(|(_, h)| matches!(h, Hook::Work { .. })));
}

#[tokio::test(start_paused = true)]
async fn a_slow_become_hook_is_cancelled_at_the_deadline() {
    // The store stops answering the leader right after it acquired: it
    // cannot renew, and its hook is still running at the deadline.
    let memory = virtual_memory_store();
    let failing = Arc::new(FailingStore::new(memory.clone(), 1));
    let store: Arc<dyn LeaseStore> = failing.clone();
    let clock = Arc::new(TokioClock::new());
    let log = Arc::new(Mutex::new(Vec::new()));
    let registry = worker(store, "slow", &clock);
    let mut recorder = Recorder::new("slow", "slow", &clock, &log);
    recorder.become_delay = secs(3600);
    let c = registry.attach(NS, Arc::new(recorder)).await.unwrap();
    wait_until("leading", secs(10), || c.is_leader()).await;
    let became = clock_ms(&clock);
    failing.set_faults(vec![Fault::new(FaultKind::Unavailable)]);
    let deadline = c.deadline().unwrap().as_millis();
    wait_until("stop hook", secs(30), || {
        log.lock()
            .unwrap()
            .iter()
            .any(|(_, h)| matches!(h, Hook::Stop { .. }))
    })
    .await;
    let log_now = log.lock().unwrap().clone();
    let cancelled = log_now
        .iter()
        .find_map(|(_, h)| match h {
            Hook::Cancelled { at_ms, .. } => Some(*at_ms),
            _ => None,
        })
        .unwrap();
    println!("became at {became} ms, deadline {deadline} ms, cancelled at {cancelled} ms");
    assert!(cancelled <= deadline, "cancelled after the deadline");
    assert!(!c.is_leader());
    // The loop survived the errors and counted them.
    assert_eq!(c.state(), CoordinatorState::Running);
    assert!(c.metrics().counters.store_errors > 0);
    failing.clear_faults();
    wait_until("leading again", secs(60), || c.is_leader()).await;
    registry.close().await;
}

fn clock_ms(clock: &TokioClock) -> u64 {
    coordinator_runtime::Clock::now(clock).as_millis()
}

#[tokio::test(start_paused = true)]
async fn registry_caches_and_concurrent_first_callers_share_one_loop() {
    let memory = virtual_memory_store();
    let metered = Arc::new(Metered::new(memory.clone()));
    let store: Arc<dyn LeaseStore> = metered.clone();
    let clock = Arc::new(TokioClock::new());
    let registry = Arc::new(worker(store, "w1", &clock));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let registry = registry.clone();
            tokio::spawn(async move { registry.get(NS).await.unwrap() })
        })
        .collect();
    let got: Vec<Arc<Coordinator>> = futures::future::join_all(handles)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(got.iter().all(|c| Arc::ptr_eq(c, &got[0])));
    assert_eq!(registry.coordinators().len(), 1);
    let again = registry.get(NS).await.unwrap();
    assert!(Arc::ptr_eq(&again, &got[0]));
    // One loop: exactly one heartbeat write and one acquisition so far.
    wait_until("leading", secs(10), || again.is_leader()).await;
    let counts = metered.snapshot();
    assert_eq!(
        again.metrics().requests,
        counts,
        "only one loop made requests"
    );
    assert_eq!(again.metrics().counters.acquisitions, 1);
    // Another namespace is another coordinator.
    let other = registry.get("billing").await.unwrap();
    assert!(!Arc::ptr_eq(&other, &again));
    assert_eq!(registry.coordinators().len(), 2);
    // Bad names are refused with a clear error.
    let err = registry.get("../x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    registry.close().await;
    assert_eq!(
        registry.get(NS).await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    assert!(
        memory.is_empty() || {
            // Only leases and metadata remain: no heartbeat objects.
            let keys = memory.list("").await.unwrap();
            keys.iter().all(|m| !m.key.contains("/workers/"))
        }
    );
}

#[tokio::test(start_paused = true)]
async fn namespaces_are_isolated() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_memory_store());
    let clock = Arc::new(TokioClock::new());
    let r1 = worker(store.clone(), "w1", &clock);
    let r2 = worker(store.clone(), "w2", &clock);
    let a1 = r1.get("alpha").await.unwrap();
    let b2 = r2.get("beta").await.unwrap();
    wait_until("both lead", secs(30), || a1.is_leader() && b2.is_leader()).await;
    tokio::time::sleep(secs(30)).await;
    assert_eq!(a1.workers(), vec![a1.worker_id().clone()]);
    assert_eq!(b2.workers(), vec![b2.worker_id().clone()]);
    assert_eq!((a1.epoch(), b2.epoch()), (1, 1));
    // Now w2 joins alpha as well: alpha gets two workers, beta keeps one.
    let a2 = r2.get("alpha").await.unwrap();
    wait_until("alpha roster", secs(60), || a1.workers().len() == 2).await;
    assert!(!a2.is_leader());
    assert_eq!(a2.leader().as_ref(), Some(a1.worker_id()));
    assert_eq!(b2.workers().len(), 1);
    // A crash in alpha does not touch beta.
    a1.abort();
    wait_until("alpha fail-over", secs(40), || a2.is_leader()).await;
    assert!(b2.is_leader());
    assert_eq!(b2.epoch(), 1);
    r1.close().await;
    r2.close().await;
}

#[tokio::test(start_paused = true)]
async fn metrics_match_the_metered_store() {
    let memory = virtual_memory_store();
    let metered = Arc::new(Metered::new(memory));
    let store: Arc<dyn LeaseStore> = metered.clone();
    let clock = Arc::new(TokioClock::new());
    let (registries, cs) = start_workers(&store, &clock, 3).await;
    tokio::time::sleep(secs(120)).await;
    let sum = cs
        .iter()
        .fold(coordinator_store::RequestCounts::default(), |acc, c| {
            let r = c.metrics().requests;
            coordinator_store::RequestCounts {
                get: acc.get + r.get,
                head: acc.head + r.head,
                put: acc.put + r.put,
                list: acc.list + r.list,
                delete: acc.delete + r.delete,
                errors: acc.errors + r.errors,
            }
        });
    assert_eq!(sum, metered.snapshot());
    let leader = &cs[leaders(&cs)[0]];
    let m = leader.metrics();
    println!(
        "leader metrics after 120 s: {}",
        serde_json::to_string(&m).unwrap()
    );
    assert!(m.is_leader && m.counters.acquisitions == 1 && m.counters.renewals > 10);
    assert_eq!(m.counters.store_errors, 0);
    assert_eq!(m.worker_count, 3);
    assert!(m.last_heartbeat_at_unix_ms.is_some());
    assert!((m.requests_usd - m.requests.usd_s3_standard()).abs() < 1e-12);
    for c in &cs {
        let m = c.metrics();
        // One lease read or renewal per heartbeat cycle.
        assert!(m.counters.heartbeats >= 18, "{m:?}");
        assert_eq!(m.plugin_requests.total(), 0);
    }
    for registry in &registries {
        registry.close().await;
    }
}

#[tokio::test(start_paused = true)]
async fn late_subscribers_see_the_current_view_and_events_flow() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_memory_store());
    let clock = Arc::new(TokioClock::new());
    let r1 = worker(store.clone(), "w1", &clock);
    let c1 = r1.get(NS).await.unwrap();
    wait_until("leading", secs(10), || c1.is_leader()).await;
    // Subscribing after the fact still shows the leadership at once.
    let late = c1.leadership();
    let view = late.borrow().clone();
    assert!(view.is_leader && view.epoch == 1);
    assert_eq!(view.leader.as_ref().map(|l| l.as_str()), Some("w1"));
    assert!(view.deadline.is_some());

    // Events from now on: a second worker joins, then the leader stops.
    let mut events = c1.events();
    let r2 = worker(store.clone(), "w2", &clock);
    let c2 = r2.get(NS).await.unwrap();
    let mut follower_events = c2.events();
    wait_until("roster", secs(30), || c1.workers().len() == 2).await;
    r1.close().await;
    let seen: Vec<Event> = (&mut events).collect().await;
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::WorkerJoined { worker_id } if worker_id.as_str() == "w2")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|e| matches!(
        e,
        Event::StoppedLeading {
            reason: StepDownReason::Stopping,
            ..
        }
    )));
    assert!(matches!(seen.last(), Some(Event::Stopped)), "{seen:?}");
    assert_eq!(events.missed(), 0);
    // The follower hears about the hand-over.
    wait_until("w2 leads", secs(10), || c2.is_leader()).await;
    let mut follower_seen = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(secs(1), follower_events.next()).await {
        follower_seen.push(event);
    }
    assert!(
        follower_seen
            .iter()
            .any(|e| matches!(e, Event::BecameLeader { epoch: 2, .. })),
        "{follower_seen:?}"
    );
    r2.close().await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_registry_without_close_still_stops_the_loops() {
    let memory = virtual_memory_store();
    let store: Arc<dyn LeaseStore> = Arc::new(memory.clone());
    let clock = Arc::new(TokioClock::new());
    let registry = worker(store, "w1", &clock);
    let c = registry.get(NS).await.unwrap();
    wait_until("leading", secs(10), || c.is_leader()).await;
    drop(registry);
    tokio::time::timeout(secs(10), c.wait_stopped())
        .await
        .unwrap();
    assert_eq!(c.state(), CoordinatorState::Stopped);
    let lease = lease(&memory).await;
    assert!(lease.released && lease.leader.is_none(), "released on drop");
    let keys = memory.list("").await.unwrap();
    assert!(
        keys.iter().all(|m| !m.key.contains("/workers/")),
        "{keys:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn per_plugin_mode_runs_the_same_plugin_under_its_own_prefix() {
    let memory = virtual_memory_store();
    let store: Arc<dyn LeaseStore> = Arc::new(memory.clone());
    let clock = Arc::new(TokioClock::new());
    let log = Arc::new(Mutex::new(Vec::new()));
    let config = common::config("w1").with_mode(CoordinationMode::PerPlugin);
    let registry = worker_with(store, config, &clock);
    let c = registry
        .attach(NS, Arc::new(Recorder::new("queue", "w1", &clock, &log)))
        .await
        .unwrap();
    assert_eq!(c.plugin().map(|p| p.as_str()), Some("queue"));
    wait_until("leading", secs(10), || c.is_leader()).await;
    wait_until("become", secs(1), || !log.lock().unwrap().is_empty()).await;
    assert!(memory
        .get("plg_coordinator_plugin/queue/orders/state.json")
        .await
        .unwrap()
        .is_some());
    assert!(memory
        .get("plg_coordinator_global/orders/state.json")
        .await
        .unwrap()
        .is_none());
    // Attaching the same plugin name twice is refused.
    let err = registry
        .attach(NS, Arc::new(Recorder::new("queue", "w1", &clock, &log)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    registry.close().await;
    let log = log.lock().unwrap().clone();
    assert!(matches!(log[0].1, Hook::Become { epoch: 1, .. }));
    assert!(log.iter().any(|(_, h)| matches!(
        h,
        Hook::Stop {
            reason: StepDownReason::Stopping,
            ..
        }
    )));
}

#[tokio::test(start_paused = true)]
async fn a_foreign_global_lease_is_refused_and_can_fall_back_to_per_plugin() {
    let memory = MemoryStore::new();
    memory
        .create(
            "plg_coordinator_global/orders/state.json",
            r#"{"leader":"legacy-host","expiresAt":1}"#.into(),
        )
        .await
        .unwrap();
    let store: Arc<dyn LeaseStore> = Arc::new(memory.clone());
    let clock = Arc::new(TokioClock::new());
    let log = Arc::new(Mutex::new(Vec::new()));

    let strict = worker(store.clone(), "w1", &clock);
    let err = strict.get(NS).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.to_string().contains("another implementation"), "{err}");
    let err = strict
        .attach(NS, Arc::new(Recorder::new("queue", "w1", &clock, &log)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    strict.close().await;

    let config = common::config("w2").with_fallback_to_per_plugin(true);
    let lenient = worker_with(store, config, &clock);
    let c = lenient
        .attach(NS, Arc::new(Recorder::new("queue", "w2", &clock, &log)))
        .await
        .unwrap();
    assert_eq!(c.plugin().map(|p| p.as_str()), Some("queue"));
    wait_until("leading per plugin", secs(10), || c.is_leader()).await;
    lenient.close().await;
    // The foreign lease was never touched.
    let foreign = memory
        .get("plg_coordinator_global/orders/state.json")
        .await
        .unwrap()
        .unwrap();
    assert!(std::str::from_utf8(&foreign.body)
        .unwrap()
        .contains("legacy-host"));
}

/// Nothing at all is written to a namespace whose lease another
/// implementation wrote: the machine reads the lease before its first
/// heartbeat, and `get` fails with the refusal. Every object, body and
/// version is as before, and the only requests are reads.
#[tokio::test(start_paused = true)]
async fn a_foreign_lease_gets_no_write_not_even_a_heartbeat() {
    let memory = MemoryStore::new();
    memory
        .create(
            "plg_coordinator_global/orders/state.json",
            r#"{"leader":"legacy-host","expiresAt":1}"#.into(),
        )
        .await
        .unwrap();
    let snapshot = |memory: MemoryStore| async move {
        let mut out = Vec::new();
        for meta in memory.list("").await.unwrap() {
            let object = memory.get(&meta.key).await.unwrap().unwrap();
            out.push((meta.key, object.body, object.version));
        }
        out
    };
    let before = snapshot(memory.clone()).await;
    let metered = Metered::new(memory.clone());
    let counter = metered.counter();
    let store: Arc<dyn LeaseStore> = Arc::new(metered);
    let clock = Arc::new(TokioClock::new());
    let registry = worker(store, "w1", &clock);
    let err = registry.get(NS).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    registry.close().await;
    tokio::time::sleep(secs(30)).await;
    assert_eq!(snapshot(memory).await, before);
    let counts = counter.snapshot();
    assert_eq!(
        counts.put + counts.delete,
        0,
        "only reads on a refused namespace: {counts:?}"
    );
    assert!(counts.get >= 1, "{counts:?}");
}

#[tokio::test(start_paused = true)]
async fn plugins_see_their_own_metered_store() {
    struct Writer;
    #[coordinator_runtime::async_trait]
    impl coordinator_runtime::CoordinatorPlugin for Writer {
        fn name(&self) -> &str {
            "writer"
        }
        async fn on_become_coordinator(
            &self,
            ctx: coordinator_runtime::LeaderContext,
        ) -> Result<(), coordinator_runtime::PluginError> {
            assert_eq!(ctx.plugin(), Some("writer"));
            let key = format!("data/{}/fenced.json", ctx.namespace());
            let body = format!("{{\"epoch\":{}}}", ctx.epoch());
            if ctx.is_valid() {
                ctx.store().create(&key, body.into()).await?;
            }
            Ok(())
        }
        async fn on_stop_being_coordinator(
            &self,
            _reason: StepDownReason,
        ) -> Result<(), coordinator_runtime::PluginError> {
            Ok(())
        }
    }
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_memory_store());
    let clock = Arc::new(TokioClock::new());
    let registry = worker(store.clone(), "w1", &clock);
    let c = registry.attach(NS, Arc::new(Writer)).await.unwrap();
    wait_until("plugin wrote", secs(10), || {
        c.metrics().plugin_requests.put == 1
    })
    .await;
    assert!(store
        .get("data/orders/fenced.json")
        .await
        .unwrap()
        .is_some());
    assert_eq!(c.plugins(), vec!["writer".to_owned()]);
    registry.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_hook_is_logged_and_the_plugin_carries_on() {
    struct Panicky {
        stops: Arc<Mutex<Vec<StepDownReason>>>,
    }
    #[coordinator_runtime::async_trait]
    impl coordinator_runtime::CoordinatorPlugin for Panicky {
        fn name(&self) -> &str {
            "panicky"
        }
        async fn on_become_coordinator(
            &self,
            _ctx: coordinator_runtime::LeaderContext,
        ) -> Result<(), coordinator_runtime::PluginError> {
            panic!("boom");
        }
        async fn on_stop_being_coordinator(
            &self,
            reason: StepDownReason,
        ) -> Result<(), coordinator_runtime::PluginError> {
            self.stops.lock().unwrap().push(reason);
            Err("stop failed too".into())
        }
    }
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_memory_store());
    let clock = Arc::new(TokioClock::new());
    let stops = Arc::new(Mutex::new(Vec::new()));
    let registry = worker(store, "w1", &clock);
    let c = registry
        .attach(
            NS,
            Arc::new(Panicky {
                stops: stops.clone(),
            }),
        )
        .await
        .unwrap();
    wait_until("leading", secs(10), || c.is_leader()).await;
    tokio::time::sleep(secs(5)).await;
    assert!(c.is_leader(), "the election is unaffected");
    registry.close().await;
    assert_eq!(*stops.lock().unwrap(), vec![StepDownReason::Stopping]);
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn diagnostics_log_one_line_per_cycle_with_the_span_fields() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("coordinator_runtime::election=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store: Arc<dyn LeaseStore> = Arc::new(virtual_memory_store());
    let clock = Arc::new(TokioClock::new());
    let registry = worker_with(store, common::config("w1").with_diagnostics(true), &clock);
    let c = registry.get(NS).await.unwrap();
    tokio::time::sleep(secs(31)).await;
    let cycles = c.metrics().counters.heartbeats;
    registry.close().await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let cycle_lines: Vec<&str> = text.lines().filter(|l| l.contains(" cycle ")).collect();
    assert!(!cycle_lines.is_empty(), "{text}");
    assert!(
        cycle_lines.len() as u64 >= cycles - 1,
        "{} lines for {cycles} cycles",
        cycle_lines.len()
    );
    for line in &cycle_lines {
        assert!(line.contains("coordinator_runtime::election"), "{line}");
        assert!(
            line.contains("namespace=orders") && line.contains("worker_id=w1"),
            "{line}"
        );
    }
    // Once leading, the span carries the epoch too.
    assert!(
        cycle_lines
            .iter()
            .any(|l| l.contains("worker_id=w1 epoch=1}") && l.contains("is_leader=true")),
        "{text}"
    );
    assert!(text.contains("lease acquired"), "{text}");
}

/// A plugin built for one namespace of one registry, as the plugins of
/// `coordinator-plugins` are.
struct Scoped {
    scope: PluginScope,
    became: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl CoordinatorPlugin for Scoped {
    fn name(&self) -> &str {
        "scoped"
    }
    async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
        self.became
            .lock()
            .unwrap()
            .push(ctx.namespace().to_string());
        Ok(())
    }
    async fn on_stop_being_coordinator(&self, _: StepDownReason) -> Result<(), PluginError> {
        Ok(())
    }
    fn scope(&self) -> Option<&PluginScope> {
        Some(&self.scope)
    }
}

#[tokio::test(start_paused = true)]
async fn a_plugin_attached_outside_the_scope_it_was_built_for_is_refused() {
    let clock = Arc::new(TokioClock::new());
    let bucket_a: Arc<dyn LeaseStore> = Arc::new(virtual_memory_store());
    let bucket_b: Arc<dyn LeaseStore> = Arc::new(virtual_memory_store());
    let a = worker(bucket_a, "w1", &clock);
    let b = worker(bucket_b, "w2", &clock);
    let became = Arc::new(Mutex::new(Vec::new()));
    let built_for = |registry: &CoordinatorRegistry, namespace: &str| {
        Arc::new(Scoped {
            scope: registry.scope(namespace).unwrap(),
            became: became.clone(),
        })
    };

    // Another namespace of the same registry: its data is `orders`', its
    // election would be `billing`'s.
    let err = a.attach("billing", built_for(&a, NS)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let text = err.to_string();
    assert!(
        text.contains("built for namespace `orders` but attached to namespace `billing`"),
        "{text}"
    );
    assert!(text.contains("attach it to `orders`"), "{text}");
    assert!(matches!(
        err,
        CoordinatorError::PluginScopeMismatch {
            same_registry: true,
            ..
        }
    ));

    // Another registry (another worker, store and clock), same namespace.
    let err = b.attach(NS, built_for(&a, NS)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("registry of worker `w1`"), "{text}");
    assert!(text.contains("(worker `w2`, namespace `orders`)"), "{text}");
    assert!(
        text.contains("build its handle from the registry you attach it through"),
        "{text}"
    );

    // Straight onto another registry's coordinator: refused the same way.
    let coordinator = b.get(NS).await.unwrap();
    let err = coordinator.add_plugin(built_for(&a, NS)).unwrap_err();
    assert!(matches!(
        err,
        CoordinatorError::PluginScopeMismatch {
            same_registry: false,
            ..
        }
    ));
    assert!(coordinator.plugins().is_empty());

    // Where it was built for, it runs.
    let c = a.attach(NS, built_for(&a, NS)).await.unwrap();
    wait_until("leading", secs(10), || c.is_leader()).await;
    wait_until("become", secs(1), || !became.lock().unwrap().is_empty()).await;
    assert_eq!(*became.lock().unwrap(), vec![NS.to_owned()]);
    a.close().await;
    b.close().await;
}

/// `health()`: healthy while leading, degraded once every store request
/// fails (the leader steps down at its deadline), healthy again after,
/// unhealthy once stopped.
#[tokio::test(start_paused = true)]
async fn health_follows_the_store_and_the_loop() {
    use coordinator_runtime::HealthStatus;
    let failing = Arc::new(FailingStore::new(MemoryStore::new(), 7));
    let store: Arc<dyn LeaseStore> = failing.clone();
    let clock = Arc::new(TokioClock::new());
    let registry = worker(store, "w1", &clock);
    let c = registry.get(NS).await.unwrap();
    c.leadership().wait_for(|v| v.is_leader).await.unwrap();
    let health = c.health();
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
    assert_eq!(health.reason, "leads at epoch 1");

    failing.set_faults(vec![Fault::new(FaultKind::Unavailable)]);
    wait_until("degraded", secs(60), || {
        c.health().status == HealthStatus::Degraded
    })
    .await;
    assert!(
        c.health().reason.contains("store requests failed"),
        "{:?}",
        c.health()
    );

    failing.clear_faults();
    wait_until("healthy again", secs(60), || {
        c.health().status == HealthStatus::Healthy
    })
    .await;

    drop(c);
    let c = registry.get(NS).await.unwrap();
    c.stop().await;
    assert_eq!(c.health().status, HealthStatus::Unhealthy);
    registry.close().await;
}

/// A plugin hook that fails is counted by plugin and hook, in metrics()
/// and in the Prometheus text.
#[tokio::test(start_paused = true)]
async fn failed_plugin_hooks_are_counted() {
    use coordinator_runtime::{
        async_trait, CoordinatorPlugin, LeaderContext, PluginError, StepDownReason,
    };
    struct Failing;
    #[async_trait]
    impl CoordinatorPlugin for Failing {
        fn name(&self) -> &str {
            "failing"
        }
        async fn on_become_coordinator(&self, _ctx: LeaderContext) -> Result<(), PluginError> {
            Err("no luck".into())
        }
        async fn on_stop_being_coordinator(&self, _r: StepDownReason) -> Result<(), PluginError> {
            Ok(())
        }
    }
    let clock = Arc::new(TokioClock::new());
    let registry = worker(Arc::new(MemoryStore::new()), "w1", &clock);
    let c = registry.attach(NS, Arc::new(Failing)).await.unwrap();
    c.leadership().wait_for(|v| v.is_leader).await.unwrap();
    wait_until("the hook ran", secs(10), || {
        !c.metrics().plugin_hook_failures.is_empty()
    })
    .await;
    let failures = c.metrics().plugin_hook_failures;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].plugin, "failing");
    assert_eq!(failures[0].hook, "on_become_coordinator");
    assert_eq!(failures[0].failures, 1);
    let text = coordinator_runtime::prometheus_text(&registry.coordinators());
    assert!(text.contains(
        r#"coordinator_plugin_hook_failures_total{namespace="orders",worker_id="w1",plugin="",plugin_name="failing",hook="on_become_coordinator"} 1"#
    ), "{text}");
    drop(c);
    registry.close().await;
}
