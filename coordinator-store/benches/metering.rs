//! The cost of [`Metered`]: the same workload on a bare [`MemoryStore`] and
//! on `Metered<MemoryStore>`, both behind `Arc<dyn LeaseStore>` as the
//! runtime holds them.
//!
//! * `heartbeat_round`: what one worker does per heartbeat in the worst
//!   case: a conditional GET of the lease, a compare-and-swap renewal, a put
//!   of its own worker record and a plain GET (4 requests).
//! * `get`: the cheapest single request, where the wrapper's share is
//!   largest.
//! * (paired run only) `heartbeat_round_with_records`: the same four
//!   requests plus what the runtime does around them: decode the lease
//!   record (JSON), encode the renewed lease and the worker record.
//!
//! After the criterion groups, a paired A/B run alternates the two stores in
//! short chunks and prints the median ratio: on a shared or loaded machine
//! that is far steadier than comparing two criterion results taken seconds
//! apart. The in-memory chunks are timed in thread CPU time, so time spent
//! preempted by other processes does not count. It runs the same workloads
//! over the local-directory store too. Whatever the wrapper costs is a fixed
//! few tens of nanoseconds per request (its counter, and one more boxed
//! future: the wrapper's own, around the wrapped store's), which only a
//! backend as cheap as a `BTreeMap` under a mutex could notice.
//!
//! Run: `cargo bench -p coordinator-store --bench metering`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use coordinator_store::{LeaseStore, LocalDirStore, MemoryStore, Metered};
use criterion::{criterion_group, Criterion, Throughput};
use futures::executor::block_on;

fn body(i: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"format":1,"leader":"worker-0001","epoch":42,"nonce":{i},"counter":{i},"lease_ms":15000}}"#
    ))
}

async fn heartbeat_rounds(store: &dyn LeaseStore, iters: u64) -> Duration {
    let lease = "plg_coordinator_global/ns/state.json";
    let worker = "plg_coordinator_global/ns/workers/worker-0001.json";
    let mut version = store.put(lease, body(0)).await.unwrap().version;
    let bodies: Vec<Bytes> = (0..64).map(body).collect();
    let start = Instant::now();
    for i in 0..iters {
        let b = &bodies[(i % 64) as usize];
        std::hint::black_box(store.get_if_changed(lease, &version).await.unwrap());
        version = store
            .compare_and_swap(lease, &version, b.clone())
            .await
            .unwrap()
            .version;
        store.put(worker, b.clone()).await.unwrap();
        std::hint::black_box(store.get(lease).await.unwrap());
    }
    start.elapsed()
}

/// A lease record of the coordinator's shape (about 300 bytes of JSON).
#[derive(serde::Serialize, serde::Deserialize)]
struct LeaseRecord {
    format: u32,
    leader: String,
    incarnation: String,
    epoch: u64,
    nonce: u64,
    counter: u64,
    lease_ms: u64,
    renew_deadline_ms: u64,
    drift_ppm: u32,
    successors: Vec<String>,
    written_at_ms: i64,
}

fn record(counter: u64) -> LeaseRecord {
    LeaseRecord {
        format: 1,
        leader: "worker-0001".to_owned(),
        incarnation: "8f3a91c2d4e5".to_owned(),
        epoch: 42,
        nonce: counter.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        counter,
        lease_ms: 15_000,
        renew_deadline_ms: 10_000,
        drift_ppm: 50_000,
        successors: vec!["worker-0002".to_owned(), "worker-0003".to_owned()],
        written_at_ms: 1_767_225_600_000 + counter as i64,
    }
}

async fn heartbeat_rounds_with_records(store: &dyn LeaseStore, iters: u64) -> Duration {
    let lease = "plg_coordinator_global/ns/state.json";
    let worker = "plg_coordinator_global/ns/workers/worker-0001.json";
    let first = Bytes::from(serde_json::to_vec(&record(0)).unwrap());
    store.put(lease, first).await.unwrap();
    let start = Instant::now();
    for _ in 0..iters {
        let current = store.get(lease).await.unwrap().unwrap();
        let mut lease_record: LeaseRecord = serde_json::from_slice(&current.body).unwrap();
        lease_record.counter += 1;
        lease_record.nonce = lease_record.nonce.wrapping_add(1);
        let body = Bytes::from(serde_json::to_vec(&lease_record).unwrap());
        let written = store
            .compare_and_swap(lease, &current.version, body)
            .await
            .unwrap();
        let heartbeat = Bytes::from(serde_json::to_vec(&record(lease_record.counter)).unwrap());
        store.put(worker, heartbeat).await.unwrap();
        std::hint::black_box(store.get_if_changed(lease, &written.version).await.unwrap());
    }
    start.elapsed()
}

async fn gets(store: &dyn LeaseStore, iters: u64) -> Duration {
    let key = "plg_coordinator_global/ns/state.json";
    store.put(key, body(0)).await.unwrap();
    let start = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(store.get(key).await.unwrap());
    }
    start.elapsed()
}

fn metering(c: &mut Criterion) {
    let bare: Arc<dyn LeaseStore> = Arc::new(MemoryStore::new());
    let metered: Arc<dyn LeaseStore> = Arc::new(Metered::new(MemoryStore::new()));

    let mut group = c.benchmark_group("metering");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.throughput(Throughput::Elements(4));
    for (name, store) in [("bare", &bare), ("metered", &metered)] {
        group.bench_function(format!("heartbeat_round/{name}"), |b| {
            b.iter_custom(|iters| block_on(heartbeat_rounds(&**store, iters)))
        });
    }
    group.throughput(Throughput::Elements(1));
    for (name, store) in [("bare", &bare), ("metered", &metered)] {
        group.bench_function(format!("get/{name}"), |b| {
            b.iter_custom(|iters| block_on(gets(&**store, iters)))
        });
    }
    group.finish();
}

/// Runs `n` rounds of a workload on a store and returns the time taken.
type Runner<'r> = &'r dyn Fn(&dyn LeaseStore, u64) -> Duration;

/// Alternates bare and metered chunks of `rounds` rounds `trials` times;
/// returns (median bare ns/request, median metered ns/request, median of
/// the per-trial ratios).
fn paired(
    bare: &dyn LeaseStore,
    metered: &dyn LeaseStore,
    trials: usize,
    rounds: u64,
    requests_per_round: f64,
    run: Runner<'_>,
) -> (f64, f64, f64) {
    let per_request = |d: Duration| d.as_nanos() as f64 / (rounds as f64 * requests_per_round);
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for trial in 0..trials {
        let (x, y) = if trial % 2 == 0 {
            let x = run(bare, rounds);
            (x, run(metered, rounds))
        } else {
            let y = run(metered, rounds);
            (run(bare, rounds), y)
        };
        a.push(per_request(x));
        b.push(per_request(y));
        ratios.push(per_request(y) / per_request(x));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut a), median(&mut b), median(&mut ratios))
}

fn report(name: &str, trials: usize, rounds: u64, result: (f64, f64, f64)) {
    let (a, b, ratio) = result;
    println!(
        "metering/paired/{name}: bare {a:.1} ns/request, metered {b:.1} ns/request, \
         overhead {:+.2}% ({:+.1} ns/request; median of {trials} alternating trials of {rounds} rounds)",
        (ratio - 1.0) * 100.0,
        b - a
    );
}

/// The CPU time this thread spends in `f`: unlike wall time, it does not
/// count time the thread waited while other processes ran, so the paired
/// comparison stays meaningful on a loaded machine. (The in-memory workloads
/// run entirely on this thread.)
fn on_cpu(f: impl FnOnce() -> Duration) -> Duration {
    let cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    };
    let before = cpu();
    std::hint::black_box(f());
    cpu() - before
}

fn paired_report() {
    let trials = 41;
    let bare = MemoryStore::new();
    let metered = Metered::new(MemoryStore::new());
    let rounds = 20_000;
    let run = |s: &dyn LeaseStore, n| on_cpu(|| block_on(heartbeat_rounds(s, n)));
    report(
        "memory/heartbeat_round",
        trials,
        rounds,
        paired(&bare, &metered, trials, rounds, 4.0, &run),
    );
    let run = |s: &dyn LeaseStore, n| on_cpu(|| block_on(heartbeat_rounds_with_records(s, n)));
    report(
        "memory/heartbeat_round_with_records",
        trials,
        rounds,
        paired(&bare, &metered, trials, rounds, 4.0, &run),
    );
    let run = |s: &dyn LeaseStore, n| on_cpu(|| block_on(gets(s, n)));
    report(
        "memory/get",
        trials,
        rounds,
        paired(&bare, &metered, trials, rounds, 1.0, &run),
    );

    // The same wrapper over a real backend: the local directory, driven
    // from a tokio runtime as the coordinator drives it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = std::env::var_os("COORD_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let bare = LocalDirStore::new(dir.path().join("bare"));
    let metered = Metered::new(LocalDirStore::new(dir.path().join("metered")));
    let rounds = 50;
    let run = |s: &dyn LeaseStore, n| rt.block_on(heartbeat_rounds(s, n));
    report(
        "local/heartbeat_round",
        trials,
        rounds,
        paired(&bare, &metered, trials, rounds, 4.0, &run),
    );
    let rounds = 1_000;
    let run = |s: &dyn LeaseStore, n| rt.block_on(gets(s, n));
    report(
        "local/get",
        trials,
        rounds,
        paired(&bare, &metered, trials, rounds, 1.0, &run),
    );
}

criterion_group!(benches, metering);

fn main() {
    benches();
    paired_report();
    Criterion::default().configure_from_args().final_summary();
}
