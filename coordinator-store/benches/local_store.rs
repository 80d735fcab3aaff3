//! Throughput of the local-directory store from one process: compare-and-swap
//! on one key, create of fresh keys, and get. Every write takes the key's
//! lock, writes and fsyncs a temp file, renames it and fsyncs the directory,
//! so these numbers are mostly the disk's fsync latency.
//!
//! Run: `cargo bench -p coordinator-store --bench local_store`.
//! `COORD_BENCH_DIR` picks the directory (default: the system temp dir).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use coordinator_store::{LeaseStore, LocalDirStore};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A lease-sized body (about 400 bytes) that differs on every write.
fn body(i: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"format":1,"leader":"worker-0001","incarnation":"8f3a91c2","epoch":42,"nonce":{i},"counter":{i},"lease_ms":15000,"renew_deadline_ms":10000,"drift":0.05,"successors":["worker-0002","worker-0003","worker-0004"],"written_at_ms":1767225600000,"padding":"{}"}}"#,
        "x".repeat(120)
    ))
}

fn local_store(c: &mut Criterion) {
    let base = std::env::var_os("COORD_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let store = LocalDirStore::new(dir.path().to_path_buf());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut group = c.benchmark_group("local_dir");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));

    // Criterion calls each closure more than once (warm-up, measurement):
    // state that must survive between calls lives outside them.
    let key = "bench/ns/state.json";
    let mut version = rt.block_on(store.put(key, body(0))).unwrap().version;
    let mut n = 0u64;
    group.bench_function("compare_and_swap", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    n += 1;
                    version = store
                        .compare_and_swap(key, &version, body(n))
                        .await
                        .unwrap()
                        .version;
                }
                start.elapsed()
            })
        });
    });

    group.bench_function("create", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    n += 1;
                    // 1,000 keys per directory, like a large roster.
                    let key = format!("bench/create/d{}/k{n}.json", n / 1000);
                    store.create(&key, body(n)).await.unwrap();
                }
                start.elapsed()
            })
        });
    });

    group.bench_function("get", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(store.get(key).await.unwrap());
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

criterion_group!(benches, local_store);
criterion_main!(benches);
