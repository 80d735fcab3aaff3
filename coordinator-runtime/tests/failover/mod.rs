//! The fail-over and hand-over scenario every real-server backend runs
//! (moto for S3, Azurite for Azure): three workers on one namespace, the
//! leader aborted (fail-over within the lease timeout plus a heartbeat),
//! then the next leader stopped (hand-over within 1.5 s).
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use coordinator_core::Config;
use coordinator_runtime::{Coordinator, CoordinatorConfig, CoordinatorRegistry};
use coordinator_store::LeaseStore;

pub fn timings() -> Config {
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

async fn wait_for(
    what: &str,
    max: Duration,
    cs: &[Arc<Coordinator>],
    pick: impl Fn(&[Arc<Coordinator>]) -> Option<usize>,
) -> (usize, Duration) {
    let start = Instant::now();
    loop {
        if let Some(i) = pick(cs) {
            return (i, start.elapsed());
        }
        assert!(
            start.elapsed() < max,
            "timed out after {max:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A prefix no other run shares.
pub fn unique(test: &str) -> String {
    format!(
        "{test}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// Runs the scenario on `store`, printing its timings under `label`.
pub async fn fail_over_and_hand_over(label: &str, store: Arc<dyn LeaseStore>) {
    let config = CoordinatorConfig::default().with_election(timings());
    let mut registries = Vec::new();
    let mut cs = Vec::new();
    for id in ["s1", "s2", "s3"] {
        let registry =
            CoordinatorRegistry::new(store.clone(), config.clone().with_worker_id(id)).unwrap();
        cs.push(registry.get("orders").await.unwrap());
        registries.push(registry);
    }
    let leaders = |cs: &[Arc<Coordinator>]| {
        let leading: Vec<usize> = (0..cs.len()).filter(|&i| cs[i].is_leader()).collect();
        assert!(leading.len() <= 1, "two leaders");
        leading.first().copied()
    };
    let (first, took) = wait_for("a first leader", Duration::from_secs(20), &cs, leaders).await;
    println!(
        "{label}: first leader {} after {took:?}",
        cs[first].worker_id()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let epoch = cs[first].epoch();
    cs[first].abort();
    let t = timings();
    let bound =
        t.lease_timeout + t.heartbeat_interval + t.heartbeat_jitter + Duration::from_secs(1);
    let (second, failover) = wait_for("fail-over", bound + Duration::from_secs(10), &cs, |cs| {
        leaders(cs).filter(|&i| cs[i].epoch() > epoch)
    })
    .await;
    println!(
        "{label}: abort {} -> {} leads after {failover:?} (bound {bound:?})",
        cs[first].worker_id(),
        cs[second].worker_id()
    );
    assert!(failover <= bound, "fail-over took {failover:?}");

    tokio::time::sleep(Duration::from_secs(1)).await;
    let epoch = cs[second].epoch();
    let stopping = cs[second].clone();
    let stop = tokio::spawn(async move { stopping.stop().await });
    let (third, handover) = wait_for("hand-over", Duration::from_secs(10), &cs, |cs| {
        leaders(cs).filter(|&i| cs[i].epoch() > epoch)
    })
    .await;
    stop.await.unwrap();
    println!(
        "{label}: stop {} -> {} leads after {handover:?}",
        cs[second].worker_id(),
        cs[third].worker_id()
    );
    assert!(
        handover <= Duration::from_millis(1500),
        "hand-over took {handover:?}"
    );
    for registry in &registries {
        registry.close().await;
    }
    let m = cs[third].metrics();
    println!(
        "{label}: last leader's requests {:?}, {:.7} USD",
        m.requests, m.requests_usd
    );
}
