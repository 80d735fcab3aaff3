//! The `metrics` feature: the coordinator's counters, gauges and histograms
//! reach an installed `metrics` recorder under the documented names.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coordinator_runtime::{CoordinatorConfig, CoordinatorRegistry, TokioClock};
use coordinator_store::MemoryStore;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

type Values = Arc<Mutex<BTreeMap<String, Vec<f64>>>>;

/// Keeps the last value of each counter and gauge and every histogram
/// sample, by `name{label=value,…}`.
#[derive(Clone, Default)]
struct Capture(Values);

struct Cell {
    key: String,
    values: Values,
    histogram: bool,
}

impl Cell {
    fn put(&self, value: f64) {
        let mut values = self.values.lock().unwrap();
        let entry = values.entry(self.key.clone()).or_default();
        if self.histogram {
            entry.push(value);
        } else {
            *entry = vec![value];
        }
    }
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.put(value as f64);
    }
    fn absolute(&self, value: u64) {
        self.put(value as f64);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        self.put(value);
    }
    fn decrement(&self, value: f64) {
        self.put(-value);
    }
    fn set(&self, value: f64) {
        self.put(value);
    }
}

impl HistogramFn for Cell {
    fn record(&self, value: f64) {
        self.put(value);
    }
}

impl Capture {
    fn cell(&self, key: &Key, histogram: bool) -> Arc<Cell> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        Arc::new(Cell {
            key: format!("{}{{{}}}", key.name(), labels.join(",")),
            values: self.0.clone(),
            histogram,
        })
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key, false))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key, false))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key, true))
    }
}

#[tokio::test(start_paused = true)]
async fn values_reach_the_installed_recorder() {
    let capture = Capture::default();
    metrics::set_global_recorder(capture.clone()).unwrap();
    let registry = CoordinatorRegistry::builder(Arc::new(MemoryStore::new()))
        .config(CoordinatorConfig::default().with_worker_id("w1"))
        .clock(Arc::new(TokioClock::new()))
        .build()
        .unwrap();
    let c = registry.get("orders").await.unwrap();
    c.leadership().wait_for(|v| v.is_leader).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let values = capture.0.lock().unwrap().clone();
    let labels = "namespace=orders,worker_id=w1,plugin=";
    let one = |name: &str| -> f64 {
        values
            .get(&format!("{name}{{{labels}}}"))
            .and_then(|v| v.last().copied())
            .unwrap_or_else(|| {
                panic!(
                    "{name} not recorded: {:?}",
                    values.keys().collect::<Vec<_>>()
                )
            })
    };
    assert_eq!(one("coordinator_is_leader"), 1.0);
    assert_eq!(one("coordinator_epoch"), 1.0);
    assert_eq!(one("coordinator_acquisitions_total"), 1.0);
    assert!(one("coordinator_renewals_total") >= 4.0);
    let margins = &values[&format!("coordinator_renewal_margin_seconds{{{labels}}}")];
    assert!(margins.len() >= 4, "{margins:?}");
    // Renewals start every heartbeat (5 s + jitter) of a 10 s deadline.
    assert!(
        margins.iter().all(|m| *m > 2.0 && *m <= 10.0),
        "{margins:?}"
    );
    assert!(values.contains_key(&format!(
        "coordinator_store_requests_total{{{labels},source=election,kind=put}}"
    )));
    assert!(!values[&format!("coordinator_store_request_seconds{{{labels}}}")].is_empty());
    drop(c);
    registry.close().await;
}
