//! The `metrics` feature: real queue, scheduler and TTL work moves the
//! documented counters (`coordinator_plugins::PLUGIN_COUNTERS`) of an
//! installed `metrics` recorder, with the `namespace`, `worker_id` and
//! `plugin_name` labels.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{clock, lead_standalone, registry, standalone, virtual_store, A_DAY};
use coordinator_plugins::queue::{Queue, QueueConfig};
use coordinator_plugins::scheduler::{JobContext, JobError, JobSpec, MissedRunPolicy, Scheduler};
use coordinator_plugins::ttl::{Expiry, Ttl, TtlConfig};
use coordinator_plugins::{RetryPolicy, PLUGIN_COUNTERS};
use coordinator_runtime::CoordinatorPlugin;
use coordinator_store::LeaseStore;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

type Totals = Arc<Mutex<BTreeMap<String, u64>>>;

/// Sums every counter's increments by `name{label=value,…}`.
#[derive(Clone, Default)]
struct Capture(Totals);

struct Cell {
    key: String,
    totals: Totals,
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        *self
            .totals
            .lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default() += value;
    }
    fn absolute(&self, value: u64) {
        self.totals.lock().unwrap().insert(self.key.clone(), value);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, _: f64) {}
}

impl HistogramFn for Cell {
    fn record(&self, _: f64) {}
}

impl Capture {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        Arc::new(Cell {
            key: format!("{}{{{}}}", key.name(), labels.join(",")),
            totals: self.0.clone(),
        })
    }

    /// The counter `name` of `plugin_name` in `namespace`, 0 if never moved.
    fn total(&self, name: &str, namespace: &str, plugin_name: &str) -> u64 {
        assert!(
            PLUGIN_COUNTERS.iter().any(|(n, _, _)| *n == name),
            "{name} is not documented"
        );
        let key = format!("{name}{{namespace={namespace},worker_id=w1,plugin_name={plugin_name}}}");
        self.0.lock().unwrap().get(&key).copied().unwrap_or(0)
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

/// One recorder for the process; each test uses its own namespace.
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        metrics::set_global_recorder(capture.clone()).unwrap();
        capture
    })
}

#[tokio::test(start_paused = true)]
async fn queue_work_moves_its_counters() {
    let m = capture();
    let (ns, plugin) = ("q-ns", "queue.orders");
    let count = |name: &str| m.total(name, ns, plugin);
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let queue = Queue::builder(&registry(store.clone(), "w1", &clock), ns, "orders")
        .config(QueueConfig {
            visibility_timeout: Duration::from_secs(10),
            retry: RetryPolicy {
                max_attempts: 2,
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(1),
                multiplier: 1.0,
            },
            seed: Some(7),
            ..QueueConfig::default()
        })
        .build()
        .unwrap();
    let leader = queue.maintenance();
    let ctx = standalone(1, store.clone(), &clock, Duration::from_secs(3600));
    queue.enqueue_batch(["a", "b", "c"]).await.unwrap();
    assert_eq!(count("coordinator_queue_enqueued_total"), 3);

    let consumer = queue.consumer();
    let mut claimed = consumer.claim(3).await.unwrap();
    let c = claimed.pop().unwrap();
    let b = claimed.pop().unwrap();
    let a = claimed.pop().unwrap();
    a.complete().await.unwrap();
    assert_eq!(count("coordinator_queue_handled_total"), 1);
    b.fail("boom 1").await.unwrap();
    leader.sweep(&ctx).await.unwrap();
    assert_eq!(count("coordinator_queue_retried_total"), 1, "b again");
    // c is left to stall: recovered after the visibility (10 s stretched
    // by the drift, plus the grace) on the leader's clock, then retried.
    drop(c);
    let mut retry = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        leader.sweep(&ctx).await.unwrap();
        retry = consumer.claim(1).await.unwrap();
        if !retry.is_empty() {
            break;
        }
    }
    let b2 = retry.pop().expect("b's retry");
    assert_eq!(b2.message().attempt, 2);
    b2.fail("boom 2").await.unwrap();
    leader.sweep(&ctx).await.unwrap();
    assert_eq!(count("coordinator_queue_dead_lettered_total"), 1);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        leader.sweep(&ctx).await.unwrap();
    }
    assert_eq!(count("coordinator_queue_recovered_claims_total"), 1);
    assert_eq!(count("coordinator_queue_retried_total"), 2, "b and c");
    assert_eq!(
        count("coordinator_queue_enqueued_total"),
        3,
        "retries apart"
    );
}

#[tokio::test(start_paused = true)]
async fn scheduler_runs_and_skips_move_their_counters() {
    let m = capture();
    let (ns, plugin) = ("s-ns", "scheduler.cron");
    let count = |name: &str| m.total(name, ns, plugin);
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let scheduler = Scheduler::builder(&registry(store.clone(), "w1", &clock), ns, "cron")
        .handler("ok", |_: JobContext| async { Ok::<(), JobError>(()) })
        .handler("bad", |_: JobContext| async {
            Err::<(), JobError>("no".into())
        })
        .build()
        .unwrap();
    scheduler
        .add(JobSpec::new("ok", "* * * * *"))
        .await
        .unwrap();
    let mut bad = JobSpec::new("bad", "* * * * *");
    bad.retry.max_attempts = 1;
    bad.missed = MissedRunPolicy::Skip;
    scheduler.add(bad).await.unwrap();
    // No leader for five minutes: `bad`'s missed slots are skipped when
    // one starts (`ok` runs its newest missed slot once).
    tokio::time::sleep(Duration::from_secs(5 * 60)).await;
    let plugin_part = lead_standalone(&scheduler, 1, store.clone(), &clock, A_DAY).await;
    tokio::time::sleep(Duration::from_secs(3 * 60 + 30)).await;
    assert_eq!(count("coordinator_scheduler_missed_skipped_total"), 1);
    let started = count("coordinator_scheduler_runs_started_total");
    let succeeded = count("coordinator_scheduler_runs_succeeded_total");
    let failed = count("coordinator_scheduler_runs_failed_total");
    // Both jobs run the same on-time slots (`bad` one attempt each);
    // `ok` also runs its catch-up.
    assert!(failed >= 3, "{failed}");
    assert_eq!(succeeded, failed + 1);
    assert_eq!(started, succeeded + failed);
    plugin_part
        .on_stop_being_coordinator(coordinator_runtime::StepDownReason::Stopping)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn ttl_expiry_moves_its_counter() {
    let m = capture();
    let (ns, plugin) = ("t-ns", "ttl.sessions");
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let ttl = Ttl::builder(&registry(store.clone(), "w1", &clock), ns, "sessions")
        .config(TtlConfig {
            bucket_width: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(10),
            clock_skew_margin: Duration::ZERO,
            seed: Some(9),
            ..TtlConfig::default()
        })
        .build()
        .unwrap();
    let sweeper = ttl.sweeper();
    let ctx = standalone(1, store.clone(), &clock, Duration::from_secs(86_400));
    for key in ["a", "b"] {
        ttl.put(key, "v", Expiry::After(Duration::from_secs(30)))
            .await
            .unwrap();
    }
    ttl.put("later", "v", Expiry::After(Duration::from_secs(3600)))
        .await
        .unwrap();
    sweeper.sweep(&ctx).await.unwrap();
    assert_eq!(
        m.total("coordinator_ttl_expired_total", ns, plugin),
        0,
        "never early"
    );
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        sweeper.sweep(&ctx).await.unwrap();
    }
    assert_eq!(m.total("coordinator_ttl_expired_total", ns, plugin), 2);
}

/// The one table of every metric (coordinator-runtime's `export` module
/// docs, rendered on `prometheus_text`) lists each plugin counter with the
/// unit and meaning `PLUGIN_COUNTERS` gives.
#[test]
fn every_plugin_counter_is_in_the_one_metrics_table() {
    let table = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../coordinator-runtime/src/export.rs"
    ))
    .unwrap();
    for (name, unit, what) in PLUGIN_COUNTERS {
        let row = format!("//! | `{name}` | counter | {unit} | {what} |");
        assert!(table.contains(&row), "missing from the table: {row}");
    }
}
