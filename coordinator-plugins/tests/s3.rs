//! All three plugins end to end over S3 (moto in CI), 3 workers in global
//! mode, with the leader crashed half-way. Set `COORD_S3_ENDPOINT`
//! (scripts/moto.sh prints it); skipped, loudly, when it is unset; fails
//! when `COORD_REQUIRE_S3=1`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coordinator_core::Config;
use coordinator_plugins::queue::{ClaimHandle, HandlerError, Message, Queue, QueueConfig};
use coordinator_plugins::scheduler::{JobContext, JobError, JobSpec, Scheduler, SchedulerConfig};
use coordinator_plugins::ttl::{Expiry, Ttl, TtlConfig};
use coordinator_plugins::RetryPolicy;
use coordinator_runtime::{Coordinator, CoordinatorConfig, CoordinatorRegistry};
use coordinator_store::LeaseStore;
use tokio_util::sync::CancellationToken;

fn timings() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(300),
        heartbeat_jitter: Duration::from_millis(100),
        lease_timeout: Duration::from_millis(2400),
        renew_deadline: Duration::from_millis(1600),
        worker_timeout: Duration::from_millis(2400),
        membership_interval: Duration::from_millis(800),
        worker_list_interval: Duration::from_millis(800),
        request_timeout: Duration::from_millis(500),
        retry_backoff: Duration::from_millis(50),
        succession_step: Duration::from_millis(100),
        ..Config::default()
    }
}

async fn wait_for(what: &str, max: Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(
            start.elapsed() < max,
            "timed out after {max:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Worker {
    registry: CoordinatorRegistry,
    coordinator: Arc<Coordinator>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<coordinator_plugins::queue::WorkerStats>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_all_plugins_three_workers_global_mode() {
    let Ok(endpoint) = std::env::var("COORD_S3_ENDPOINT") else {
        if std::env::var("COORD_REQUIRE_S3").as_deref() == Ok("1") {
            panic!("COORD_REQUIRE_S3=1 but COORD_S3_ENDPOINT is unset: start moto with scripts/moto.sh start");
        }
        eprintln!();
        eprintln!(
            "*************************************************************************************"
        );
        eprintln!(
            "** SKIPPED s3_all_plugins_three_workers_global_mode: COORD_S3_ENDPOINT is not set. **"
        );
        eprintln!("** Run `eval \"$(scripts/moto.sh start)\"` first (or scripts/test).                 **");
        eprintln!(
            "*************************************************************************************"
        );
        eprintln!();
        return;
    };
    let bucket = std::env::var("COORD_S3_BUCKET").unwrap_or_else(|_| "coordinator-test".into());
    let unique = format!(
        "plugins-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let store: Arc<dyn LeaseStore> =
        coordinator_store::open(&format!("s3://{bucket}/{unique}?endpoint={endpoint}"))
            .await
            .expect("open the S3 store");
    assert_eq!(store.backend(), "s3");
    assert!(
        store.capabilities().conditional_delete,
        "moto honours If-Match on DELETE, so S3 takes the conditional-delete paths"
    );

    let queue_config = QueueConfig {
        visibility_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(1),
            multiplier: 2.0,
        },
        poll_interval: Duration::from_millis(200),
        max_poll_interval: Duration::from_millis(800),
        sweep_interval: Duration::from_millis(500),
        recovery_grace: Duration::from_millis(500),
        claim_window: 8,
        ..QueueConfig::default()
    };
    let ttl_config = TtlConfig {
        bucket_width: Duration::from_secs(1),
        sweep_interval: Duration::from_millis(500),
        clock_skew_margin: Duration::ZERO, // one machine, one clock
        ..TtlConfig::default()
    };
    let scheduler_config = SchedulerConfig {
        reload_interval: Duration::from_secs(1),
        run_lease: Duration::from_secs(3),
        ..SchedulerConfig::default()
    };
    let slots: Arc<Mutex<BTreeMap<u64, u32>>> = Arc::default();
    let completed: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();

    // The admin only writes: its registry never starts a coordinator.
    let admin = CoordinatorRegistry::new(
        store.clone(),
        CoordinatorConfig::default().with_worker_id("admin"),
    )
    .unwrap();
    let admin_queue = Queue::builder(&admin, "e2e", "jobs")
        .config(queue_config.clone())
        .build()
        .unwrap();
    let admin_ttl = Ttl::builder(&admin, "e2e", "sessions")
        .config(ttl_config.clone())
        .build()
        .unwrap();
    let make_scheduler = |registry: &CoordinatorRegistry| {
        let slots = slots.clone();
        Scheduler::builder(registry, "e2e", "cron")
            .config(scheduler_config.clone())
            .handler("tick", move |ctx: JobContext| {
                if let Some(slot) = ctx.slot_unix_ms() {
                    *slots.lock().unwrap().entry(slot).or_default() += 1;
                }
                std::future::ready(Ok::<(), JobError>(()))
            })
            .build()
            .unwrap()
    };
    make_scheduler(&admin)
        .add(JobSpec::new("tick", "* * * * * *").late_tolerance(Duration::from_secs(10)))
        .await
        .unwrap();

    let mut workers = Vec::new();
    for id in ["p1", "p2", "p3"] {
        let config = CoordinatorConfig::default()
            .with_election(timings())
            .with_worker_id(id);
        let registry = CoordinatorRegistry::new(store.clone(), config).unwrap();
        let queue = Queue::builder(&registry, "e2e", "jobs")
            .config(queue_config.clone())
            .build()
            .unwrap();
        let ttl = Ttl::builder(&registry, "e2e", "sessions")
            .config(ttl_config.clone())
            .build()
            .unwrap();
        let coordinator = registry
            .attach("e2e", Arc::new(queue.maintenance()))
            .await
            .unwrap();
        registry
            .attach("e2e", Arc::new(make_scheduler(&registry).plugin()))
            .await
            .unwrap();
        registry
            .attach("e2e", Arc::new(ttl.sweeper()))
            .await
            .unwrap();
        let completed = completed.clone();
        let handler = move |message: Message, _claim: ClaimHandle| {
            let completed = completed.clone();
            async move {
                let text = String::from_utf8_lossy(&message.payload).into_owned();
                if text.ends_with('7') && message.attempt == 1 {
                    return Err::<(), HandlerError>("first attempts of …7 fail".into());
                }
                *completed.lock().unwrap().entry(text).or_default() += 1;
                Ok(())
            }
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(queue.worker(handler).run(stop.clone()));
        workers.push(Worker {
            registry,
            coordinator,
            stop,
            task,
        });
    }
    assert_eq!(
        workers[0].coordinator.plugins().len(),
        3,
        "one election loop serves all three plugins"
    );

    admin_queue
        .enqueue_batch((0..40).map(|i| format!("m{i}")))
        .await
        .unwrap();
    for i in 0..20u64 {
        admin_ttl
            .put(
                &format!("s{i}"),
                "v",
                Expiry::After(Duration::from_millis(500 + 150 * i)),
            )
            .await
            .unwrap();
    }
    admin_ttl
        .put("long", "v", Expiry::After(Duration::from_secs(3600)))
        .await
        .unwrap();

    // Crash the leader half-way.
    wait_for("a leader", Duration::from_secs(20), async || {
        workers.iter().any(|w| w.coordinator.is_leader())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leader = workers
        .iter()
        .position(|w| w.coordinator.is_leader())
        .expect("a leader");
    let crashed = workers.swap_remove(leader);
    crashed.coordinator.abort();
    crashed.task.abort();
    eprintln!("s3 e2e: crashed leader {}", crashed.coordinator.worker_id());

    wait_for("the queue to drain", Duration::from_secs(60), async || {
        let stats = admin_queue.stats().await.unwrap();
        stats.pending + stats.delayed + stats.in_flight + stats.finishing == 0
    })
    .await;
    wait_for(
        "every short session to expire",
        Duration::from_secs(30),
        async || {
            let mut left = 0;
            for i in 0..20 {
                left += usize::from(admin_ttl.get(&format!("s{i}")).await.unwrap().is_some());
            }
            left == 0
        },
    )
    .await;
    assert!(
        admin_ttl.get("long").await.unwrap().is_some(),
        "not expired early"
    );
    wait_for(
        "cron slots after the fail-over",
        Duration::from_secs(30),
        async || slots.lock().unwrap().len() >= 12,
    )
    .await;

    let completed = completed.lock().unwrap().clone();
    assert_eq!(
        completed.len(),
        40,
        "every message completed: {completed:?}"
    );
    let slots = slots.lock().unwrap().clone();
    let twice: Vec<_> = slots.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "slots run twice: {twice:?}");
    let stats = admin_queue.stats().await.unwrap();
    assert!(stats.completed >= 40 - 1 && stats.failed >= 4, "{stats:?}");
    for w in workers {
        w.stop.cancel();
        let _ = w.task.await;
        w.registry.close().await;
    }
    drop(crashed.registry);
    eprintln!(
        "s3 e2e: {} messages completed, {} cron slots, stats {stats:?}",
        completed.len(),
        slots.len()
    );
}
