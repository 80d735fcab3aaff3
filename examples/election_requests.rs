//! What the election costs in store requests on a real server, at the
//! default timings: N workers (default 3) on one namespace for a warm-up
//! (default 30 s, which covers the first election) and then a measured
//! window of real time (default 60 s). Prints the requests of the window by
//! kind, for the leader and per follower, scaled to one worker-hour.
//!
//! The counts are `coordinator-store`'s `Metered` counters, which the
//! runtime wraps around each coordinator's store (`metrics().requests`): the
//! election loop's own requests, one per store call whatever its outcome
//! (a refused conditional write counts, as services bill it); `open()`'s
//! probes are not in them.
//!
//! ```text
//! eval "$(scripts/moto.sh start)";    cargo run --release --example election_requests -- "s3://$COORD_S3_BUCKET/bench?endpoint=$COORD_S3_ENDPOINT"
//! eval "$(scripts/azurite.sh start)"; cargo run --release --example election_requests -- "az://$COORD_AZURE_CONTAINER/bench?endpoint=$COORD_AZURE_ENDPOINT"
//! cargo run --release --example election_requests -- memory:// [SECONDS] [WORKERS] [WARM-UP SECONDS]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use coordinator_runtime::{Coordinator, CoordinatorConfig, CoordinatorRegistry};
use coordinator_store::RequestCounts;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or(
        "usage: election_requests URL [SECONDS (60)] [WORKERS (3)] [WARM-UP SECONDS (30)]",
    )?;
    let seconds: u64 = args.next().map_or(Ok(60), |a| a.parse())?;
    let workers: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let warm_up: u64 = args.next().map_or(Ok(30), |a| a.parse())?;

    let store = coordinator_store::open(&url).await?;
    let capabilities = store.capabilities();
    // A namespace no earlier run used.
    let namespace = format!(
        "bench-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let config = CoordinatorConfig::default();
    let mut registries = Vec::new();
    let mut coordinators: Vec<Arc<Coordinator>> = Vec::new();
    for i in 0..workers {
        let registry = CoordinatorRegistry::new(
            store.clone(),
            config.clone().with_worker_id(format!("w{i}")),
        )?;
        coordinators.push(registry.get(&namespace).await?);
        registries.push(registry);
    }

    tokio::time::sleep(Duration::from_secs(warm_up)).await;
    let before: Vec<RequestCounts> = coordinators.iter().map(|c| c.metrics().requests).collect();
    let leader_before: Vec<bool> = coordinators.iter().map(|c| c.is_leader()).collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = started.elapsed();
    let after: Vec<RequestCounts> = coordinators.iter().map(|c| c.metrics().requests).collect();
    let leader_after: Vec<bool> = coordinators.iter().map(|c| c.is_leader()).collect();
    for registry in &registries {
        registry.close().await;
    }

    let per_hour = 3600.0 / elapsed.as_secs_f64();
    let row = |who: &str, counts: RequestCounts, n: f64| {
        let scale = per_hour / n;
        println!(
            "| {who} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            counts.get as f64 * scale,
            counts.head as f64 * scale,
            counts.put as f64 * scale,
            counts.list as f64 * scale,
            counts.delete as f64 * scale,
            counts.total() as f64 * scale,
            counts.errors as f64 * scale,
        );
    };
    println!(
        "{url}: backend {}, {workers} workers, default timings, {:.1} s measured after a {warm_up} s \
         warm-up; {capabilities:?}",
        store.backend(),
        elapsed.as_secs_f64()
    );
    let changed = leader_before != leader_after;
    if changed {
        println!(
            "NOTE: the leader changed during the window ({leader_before:?} -> {leader_after:?})"
        );
    }
    println!("requests per worker-hour:");
    println!("| worker | GET | HEAD | PUT | LIST | DELETE | total | of which errors |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut all = RequestCounts::default();
    let mut followers = RequestCounts::default();
    let mut follower_count = 0.0;
    for (i, (a, b)) in after.iter().zip(&before).enumerate() {
        let delta = *a - *b;
        add(&mut all, delta);
        if leader_after[i] {
            row("leader", delta, 1.0);
        } else {
            add(&mut followers, delta);
            follower_count += 1.0;
        }
    }
    if follower_count > 0.0 {
        row("follower (mean)", followers, follower_count);
    }
    row("all (mean)", all, workers as f64);
    Ok(())
}

/// `sum += counts`, kind by kind.
fn add(sum: &mut RequestCounts, counts: RequestCounts) {
    sum.get += counts.get;
    sum.head += counts.head;
    sum.put += counts.put;
    sum.list += counts.list;
    sum.delete += counts.delete;
    sum.errors += counts.errors;
}
