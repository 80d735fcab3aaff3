//! `docs/architecture.md` against the workspace: the crate map lists every
//! workspace member, and the plugin data layout matches the objects the
//! plugins really write (every key pattern the document lists is the key of
//! an object written here, or, for the per-plugin election's marker, of the
//! key the core computes; every object under `plg_coordinator_data/`
//! matches one of the listed patterns).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{clock, lead_standalone, registry, standalone, virtual_store, A_DAY};
use coordinator_core::{Keys, Namespace};
use coordinator_plugins::queue::{FailOutcome, Queue, QueueConfig};
use coordinator_plugins::scheduler::{JobContext, JobError, JobSpec, Scheduler};
use coordinator_plugins::ttl::{Expiry, ExpiryAction, Ttl, TtlConfig};
use coordinator_plugins::RetryPolicy;
use coordinator_store::{LeaseStore, LeaseStoreExt};

const ARCHITECTURE: &str = include_str!("../../docs/architecture.md");

const WORKSPACE: &str = include_str!("../../Cargo.toml");

#[test]
fn the_crate_map_lists_every_workspace_member() {
    let members: BTreeSet<&str> = WORKSPACE
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("[workspace] members")
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .collect();
    let map = ARCHITECTURE
        .split("## Crate map")
        .nth(1)
        .and_then(|section| section.split("```").nth(1))
        .expect("a code block under `## Crate map`");
    let listed: BTreeSet<&str> = map
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(listed, members);
}

/// The patterns of the "Plugin data layout" block, with the `<root>/`
/// header's prefix, `<namespace>` replaced by `ns`.
fn patterns() -> Vec<String> {
    let section = ARCHITECTURE
        .split("## Plugin data layout")
        .nth(1)
        .expect("a `## Plugin data layout` section");
    let block = section
        .split("```")
        .nth(1)
        .expect("a code block in the section");
    let mut lines = block.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().unwrap().trim();
    let root = header
        .strip_prefix("<root>/")
        .expect("the block starts at <root>/")
        .replace("<namespace>", "ns");
    lines
        .map(|l| {
            let pattern = l.split_whitespace().next().unwrap();
            format!("{root}{pattern}")
        })
        .collect()
}

/// Does `key` match `pattern`, segment by segment, where `<name>` stands
/// for any non-empty text without `/`?
fn matches(pattern: &str, key: &str) -> bool {
    let (p, k): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), key.split('/').collect());
    p.len() == k.len() && p.iter().zip(&k).all(|(p, k)| segment(p, k))
}

fn segment(pattern: &str, text: &str) -> bool {
    // Literal pieces between placeholders, in order.
    let mut pieces = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('<') {
        pieces.push(&rest[..open]);
        let close = rest[open..].find('>').map_or(rest.len(), |c| open + c + 1);
        rest = &rest[close..];
    }
    pieces.push(rest);
    if pieces.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if text.len() <= first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut middle = &text[first.len()..text.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        // Each placeholder takes at least one character.
        match middle.get(1..).and_then(|m| m.find(piece)) {
            Some(at) => middle = &middle[at + 1 + piece.len()..],
            None => return false,
        }
    }
    !middle.is_empty()
}

#[test]
fn the_segment_matcher() {
    assert!(segment("s<ms>.json", "s000001700000060000.json"));
    assert!(!segment("s<ms>.json", "s.json"));
    assert!(segment("<id>-<attempt>.json", "01abc-1.json"));
    assert!(segment(
        "<id>-<attempt>.delay-<ms>.json",
        "01abc-1.delay-5000.json"
    ));
    assert!(!segment("<id>-<attempt>.delay-<ms>.json", "01abc-1.json"));
    assert!(segment("stats.json", "stats.json"));
    assert!(!segment("stats.json", "stats.jsonx"));
    assert!(matches("a/<b>/c", "a/x/c"));
    assert!(!matches("a/<b>/c", "a/x/y/c"));
}

async fn keys(store: &dyn LeaseStore) -> BTreeSet<String> {
    store
        .list("plg_coordinator_data/ns")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn every_listed_pattern_is_written_and_every_object_is_listed() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let worker = registry(store.clone(), "w1", &clock);
    let mut seen = BTreeSet::new();

    // The election writes its marker.
    let coordinator = worker.get("ns").await.unwrap();
    coordinator
        .leadership()
        .wait_for(|v| v.is_leader)
        .await
        .unwrap();

    // Queue: waiting, delayed, claimed, dead-lettered, counted.
    let queue = Queue::builder(&worker, "ns", "orders")
        .config(QueueConfig {
            retry: RetryPolicy::none(),
            ..QueueConfig::default()
        })
        .build()
        .unwrap();
    queue.enqueue("a").await.unwrap();
    queue.enqueue("b").await.unwrap();
    queue
        .enqueue_delayed("later", Duration::from_secs(3600))
        .await
        .unwrap();
    let consumer = queue.consumer();
    let mut claimed = consumer.claim(2).await.unwrap();
    let failed = claimed.pop().unwrap();
    assert_eq!(
        failed.fail("boom").await.unwrap(),
        FailOutcome::DeadLettered
    );
    let _held = claimed.pop().unwrap();
    seen.extend(keys(store.as_ref()).await);
    let ctx = standalone(1, store.clone(), &clock, Duration::from_secs(86_400));
    queue.maintenance().sweep(&ctx).await.unwrap();
    seen.extend(keys(store.as_ref()).await);

    // Scheduler: a job, a run-now request, then scheduled and run-now slots.
    let scheduler = Scheduler::builder(&worker, "ns", "cron")
        .handler("tick", |_ctx: JobContext| async { Ok::<(), JobError>(()) })
        .build()
        .unwrap();
    scheduler
        .add(JobSpec::new("tick", "* * * * * *"))
        .await
        .unwrap();
    scheduler.run_now("tick").await.unwrap();
    seen.extend(keys(store.as_ref()).await);
    let _plugin = lead_standalone(&scheduler, 2, store.clone(), &clock, A_DAY).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    seen.extend(keys(store.as_ref()).await);

    // TTL: a record, its index entry, an archived record, the sweep position.
    let ttl = Ttl::builder(&worker, "ns", "sessions")
        .config(TtlConfig {
            bucket_width: Duration::from_secs(1),
            clock_skew_margin: Duration::from_millis(100),
            action: ExpiryAction::Archive,
            ..TtlConfig::default()
        })
        .build()
        .unwrap();
    ttl.put("kept", "x", Expiry::After(Duration::from_secs(3600)))
        .await
        .unwrap();
    ttl.put("gone", "y", Expiry::After(Duration::from_millis(100)))
        .await
        .unwrap();
    seen.extend(keys(store.as_ref()).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    ttl.sweeper().sweep(&ctx).await.unwrap();
    seen.extend(keys(store.as_ref()).await);

    // The per-plugin election's marker: the key the core computes.
    seen.insert(
        Keys::per_plugin(
            &Namespace::new("queue").unwrap(),
            &Namespace::new("ns").unwrap(),
        )
        .election_marker()
        .to_owned(),
    );

    let patterns = patterns();
    assert!(patterns.len() >= 15, "{patterns:?}");
    let unwritten: Vec<&String> = patterns
        .iter()
        .filter(|p| !seen.iter().any(|k| matches(p, k)))
        .collect();
    assert!(
        unwritten.is_empty(),
        "listed in docs/architecture.md but never written: {unwritten:?}\nwritten: {seen:#?}"
    );
    let unlisted: Vec<&String> = seen
        .iter()
        .filter(|k| !patterns.iter().any(|p| matches(p, k)))
        .collect();
    assert!(
        unlisted.is_empty(),
        "written but not in docs/architecture.md: {unlisted:?}"
    );
    worker.close().await;
}
