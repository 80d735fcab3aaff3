//! TTL behaviour on the memory store under paused time: actions, refresh,
//! 5,000 records expired within one bucket width plus one sweep interval and
//! never before, and nothing orphaned after an outage.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{clock, registry, standalone, virtual_store, TestRng};
use coordinator_plugins::ttl::{
    CallbackError, ExpiredRecord, Expiry, ExpiryAction, Ttl, TtlConfig,
};
use coordinator_runtime::Clock;
use coordinator_store::{LeaseStore, LeaseStoreExt, Metered, RequestKind};

fn config(action: ExpiryAction) -> TtlConfig {
    TtlConfig {
        bucket_width: Duration::from_secs(60),
        sweep_interval: Duration::from_secs(10),
        clock_skew_margin: Duration::ZERO,
        action,
        seed: Some(9),
        ..TtlConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn actions_refresh_and_remove() {
    for action in [
        ExpiryAction::HardDelete,
        ExpiryAction::SoftDelete,
        ExpiryAction::Archive,
    ] {
        let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
        let clock = clock();
        let ttl = Ttl::builder(&registry(store.clone(), "w1", &clock), "ns", "t")
            .config(config(action))
            .build()
            .unwrap();
        let sweeper = ttl.sweeper();
        let ctx = standalone(1, store.clone(), &clock, Duration::from_secs(86_400));
        ttl.put("a/1", "one", Expiry::After(Duration::from_secs(90)))
            .await
            .unwrap();
        ttl.put("b", "two", Expiry::After(Duration::from_secs(90)))
            .await
            .unwrap();
        ttl.put("gone", "x", Expiry::After(Duration::from_secs(90)))
            .await
            .unwrap();
        assert!(ttl.remove("gone").await.unwrap());
        tokio::time::sleep(Duration::from_secs(80)).await;
        ttl.refresh("b", Expiry::After(Duration::from_secs(600)))
            .await
            .unwrap();
        for _ in 0..20 {
            sweeper.sweep(&ctx).await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        let a = ttl.get("a/1").await.unwrap();
        match action {
            ExpiryAction::SoftDelete => assert!(a.unwrap().soft_deleted),
            _ => assert!(a.is_none(), "{action:?}"),
        }
        let b = ttl.get("b").await.unwrap().unwrap();
        assert!(!b.soft_deleted, "refreshed, so kept");
        assert!(ttl.get("gone").await.unwrap().is_none());
        let archived = store
            .list(&format!("{}/archive/", ttl.prefix()))
            .await
            .unwrap();
        assert_eq!(archived.len(), usize::from(action == ExpiryAction::Archive));
        // Nothing left in the index but b's live entry.
        let index = store
            .list(&format!("{}/index/", ttl.prefix()))
            .await
            .unwrap();
        assert_eq!(index.len(), 1, "{index:?}");
    }
}

type Log = Arc<Mutex<HashMap<String, Vec<u64>>>>;

fn recording(
    log: &Log,
    clock: Arc<coordinator_runtime::TokioClock>,
) -> impl Fn(ExpiredRecord) -> std::future::Ready<Result<(), CallbackError>> + Send + Sync + 'static
{
    let log = log.clone();
    move |record: ExpiredRecord| {
        log.lock()
            .unwrap()
            .entry(record.key)
            .or_default()
            .push(clock.unix_ms());
        std::future::ready(Ok(()))
    }
}

/// 5,000 records over two hours, a tenth of them refreshed before they
/// expire, swept by the leader of a real coordinator.
#[tokio::test(start_paused = true)]
async fn five_thousand_records_expire_within_a_bucket_and_a_sweep_never_before() {
    let metered = Arc::new(Metered::new(virtual_store()));
    let store: Arc<dyn LeaseStore> = metered.clone();
    let clock = clock();
    let log: Log = Arc::default();
    let worker = registry(store.clone(), "t1", &clock);
    let ttl = Ttl::builder(&worker, "ns", "sessions")
        .config(config(ExpiryAction::Callback))
        .callback(recording(&log, clock.clone()))
        .build()
        .unwrap();
    worker.attach("ns", Arc::new(ttl.sweeper())).await.unwrap();
    let mut rng = TestRng::new(77);
    let mut expiry: HashMap<String, u64> = HashMap::new();
    let mut refresh_at: Vec<(u64, String)> = Vec::new();
    for i in 0..5_000u32 {
        let key = format!("session/{i}");
        let reg = ttl
            .put(
                &key,
                "payload",
                Expiry::After(Duration::from_millis(1_000 + rng.below(7_200_000))),
            )
            .await
            .unwrap();
        if i.is_multiple_of(10) && reg.expires_at_unix_ms > clock.unix_ms() + 120_000 {
            refresh_at.push((reg.expires_at_unix_ms - 60_000, key.clone()));
        }
        expiry.insert(key, reg.expires_at_unix_ms);
    }
    refresh_at.sort();
    let base = metered.snapshot();
    for (at, key) in refresh_at {
        let now = clock.unix_ms();
        if at > now {
            tokio::time::sleep(Duration::from_millis(at - now)).await;
        }
        let reg = ttl
            .refresh(&key, Expiry::After(Duration::from_secs(1800)))
            .await
            .unwrap();
        expiry.insert(key, reg.expires_at_unix_ms);
    }
    let last = *expiry.values().max().unwrap();
    tokio::time::sleep(Duration::from_millis(last + 200_000 - clock.unix_ms())).await;
    worker.close().await;
    let log = log.lock().unwrap().clone();
    let bound = 60_000 + 10_000;
    let mut worst = 0;
    for (key, at) in &expiry {
        let acted = log
            .get(key)
            .unwrap_or_else(|| panic!("{key} never expired"));
        assert_eq!(acted.len(), 1, "{key} expired {} times", acted.len());
        assert!(acted[0] >= *at, "{key} expired {} ms early", at - acted[0]);
        assert!(
            acted[0] - at <= bound,
            "{key} expired {} ms late",
            acted[0] - at
        );
        worst = worst.max(acted[0] - at);
    }
    assert_eq!(ttl.get("session/7").await.unwrap(), None);
    let used = metered.snapshot();
    let per = |kind| (used.of(kind) - base.of(kind)) as f64 / 5_000.0;
    eprintln!(
        "ttl: 5000 expiries, worst {worst} ms after expiry; per expiry (incl. 500 refreshes and the election): get {:.2} put {:.2} list {:.2} delete {:.2}",
        per(RequestKind::Get), per(RequestKind::Put), per(RequestKind::List), per(RequestKind::Delete)
    );
}

/// Nobody leads for three hours: the next leader's first sweep expires
/// everything overdue, through the whole-index listing (many buckets) or
/// bucket by bucket (few).
#[tokio::test(start_paused = true)]
async fn nothing_is_orphaned_after_an_outage() {
    for max_bucket_listings in [5usize, 1_000] {
        let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
        let clock = clock();
        let log: Log = Arc::default();
        let config = TtlConfig {
            max_bucket_listings,
            ..config(ExpiryAction::Callback)
        };
        let ttl = Ttl::builder(&registry(store.clone(), "w1", &clock), "ns", "t")
            .config(config)
            .callback(recording(&log, clock.clone()))
            .build()
            .unwrap();
        for i in 0..500 {
            ttl.put(
                &format!("k{i}"),
                "v",
                Expiry::After(Duration::from_secs(20 * i + 30)),
            )
            .await
            .unwrap();
        }
        let first = ttl.sweeper();
        let ctx = standalone(1, store.clone(), &clock, Duration::from_secs(600));
        for _ in 0..60 {
            first.sweep(&ctx).await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        let before = log.lock().unwrap().len();
        assert!(before > 20 && before < 40, "{before}");
        tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
        let second = ttl.sweeper();
        let ctx = standalone(2, store.clone(), &clock, Duration::from_secs(600));
        second.sweep(&ctx).await.unwrap();
        let now = clock.unix_ms();
        assert_eq!(
            log.lock().unwrap().len(),
            500,
            "everything overdue expired at the first sweep"
        );
        assert!(log
            .lock()
            .unwrap()
            .values()
            .all(|v| v.len() == 1 && v[0] <= now));
        // The position moved, so the next sweep lists only new buckets.
        tokio::time::sleep(Duration::from_secs(10)).await;
        second.sweep(&ctx).await.unwrap();
        assert!(store
            .list(&format!("{}/index/", ttl.prefix()))
            .await
            .unwrap()
            .is_empty());
    }
}
