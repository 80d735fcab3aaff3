//! The mode chosen per plugin: in one registry, plugins under the shared
//! election and plugins under their own, each plugin's leader work under
//! the election its mode names, and one name under one election only.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{virtual_memory_store, wait_until, worker_with};
use coordinator_core::LeaseRecord;
use coordinator_runtime::{
    async_trait, CoordinationMode, CoordinatorConfig, CoordinatorError, CoordinatorPlugin,
    ErrorKind, LeaderContext, PluginError, StepDownReason, TokioClock,
};
use coordinator_store::{LeaseStore, LeaseStoreExt, MemoryStore};

const NS: &str = "orders";
const GLOBAL_LEASE: &str = "plg_coordinator_global/orders/state.json";

/// `(plugin, worker, election, epoch)` of every `on_become_coordinator`.
type Log = Arc<Mutex<Vec<(String, String, String, u64)>>>;

/// Records under which election (the lease key) its leader work runs.
struct Probe {
    name: &'static str,
    worker: String,
    log: Log,
}

#[async_trait]
impl CoordinatorPlugin for Probe {
    fn name(&self) -> &str {
        self.name
    }
    async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
        self.log.lock().unwrap().push((
            self.name.to_owned(),
            self.worker.clone(),
            ctx.election().to_owned(),
            ctx.epoch(),
        ));
        Ok(())
    }
    async fn on_stop_being_coordinator(&self, _: StepDownReason) -> Result<(), PluginError> {
        Ok(())
    }
}

fn probe(name: &'static str, worker: &str, log: &Log) -> Arc<Probe> {
    Arc::new(Probe {
        name,
        worker: worker.to_owned(),
        log: log.clone(),
    })
}

async fn lease(store: &dyn LeaseStore, key: &str) -> LeaseRecord {
    let object = store.get(key).await.unwrap().expect("a lease");
    serde_json::from_slice(&object.body).unwrap()
}

#[tokio::test(start_paused = true)]
async fn each_plugin_runs_under_the_election_its_mode_names() {
    let memory = virtual_memory_store();
    let store: Arc<dyn LeaseStore> = Arc::new(memory.clone());
    let clock = Arc::new(TokioClock::new());
    let log: Log = Arc::default();
    // Every plugin per plugin, except `canary`, moved to the shared election.
    let config = |id: &str| {
        common::config(id)
            .with_mode(CoordinationMode::PerPlugin)
            .with_plugin_mode("canary", CoordinationMode::Global)
    };
    let mut registries = Vec::new();
    for id in ["w1", "w2", "w3"] {
        let registry = worker_with(store.clone(), config(id), &clock);
        let canary = registry
            .attach(NS, probe("canary", id, &log))
            .await
            .unwrap();
        let legacy = registry
            .attach(NS, probe("legacy", id, &log))
            .await
            .unwrap();
        assert_eq!(canary.plugin(), None, "canary: the shared election");
        assert_eq!(legacy.plugin().map(|p| p.as_str()), Some("legacy"));
        registries.push(registry);
    }
    wait_until(
        "both plugins lead somewhere",
        Duration::from_secs(30),
        || {
            let log = log.lock().unwrap();
            ["canary", "legacy"]
                .iter()
                .all(|p| log.iter().any(|(name, ..)| name == p))
        },
    )
    .await;
    // Let the elections settle for a few heartbeats: nothing more may start.
    tokio::time::sleep(Duration::from_secs(20)).await;

    let legacy_lease = "plg_coordinator_plugin/legacy/orders/state.json";
    let global = lease(&memory, GLOBAL_LEASE).await;
    let own = lease(&memory, legacy_lease).await;
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 2, "one term each, on one worker each: {log:?}");
    for (plugin, worker, election, epoch) in &log {
        let (key, record) = match plugin.as_str() {
            "canary" => (GLOBAL_LEASE, &global),
            _ => (legacy_lease, &own),
        };
        assert_eq!(election, key, "{plugin} ran under the wrong election");
        assert_eq!(
            record.leader.as_ref().map(|l| l.worker_id.as_str()),
            Some(worker.as_str())
        );
        assert_eq!(record.epoch, *epoch);
    }
    // Storage: each election's lease and every worker's heartbeat under
    // its own prefix, and no per-plugin election of the canary.
    for prefix in [
        "plg_coordinator_global/orders/workers/",
        "plg_coordinator_plugin/legacy/orders/workers/",
    ] {
        assert_eq!(memory.list(prefix).await.unwrap().len(), 3, "{prefix}");
    }
    assert!(memory
        .list("plg_coordinator_plugin/canary/")
        .await
        .unwrap()
        .is_empty());
    for registry in &registries {
        assert_eq!(registry.coordinators().len(), 2);
        registry.close().await;
    }
}

#[tokio::test(start_paused = true)]
async fn attach_with_mode_overrides_the_config_and_one_name_runs_under_one_election() {
    let memory = virtual_memory_store();
    let store: Arc<dyn LeaseStore> = Arc::new(memory.clone());
    let clock = Arc::new(TokioClock::new());
    let log: Log = Arc::default();
    let registry = worker_with(store, common::config("w1"), &clock);

    let own = registry
        .attach_with_mode(NS, probe("queue", "w1", &log), CoordinationMode::PerPlugin)
        .await
        .unwrap();
    assert_eq!(own.plugin().map(|p| p.as_str()), Some("queue"));
    let shared = registry
        .attach(NS, probe("cron", "w1", &log))
        .await
        .unwrap();
    assert_eq!(shared.plugin(), None);

    // The same name again, in the other mode or the same one: refused, and
    // the shared election never gets it.
    for mode in [CoordinationMode::Global, CoordinationMode::PerPlugin] {
        let err = registry
            .attach_with_mode(NS, probe("queue", "w1", &log), mode)
            .await
            .unwrap_err();
        assert!(
            matches!(err, CoordinatorError::PluginAlreadyAttached { ref plugin, .. } if plugin == "queue"),
            "{err}"
        );
    }
    // Nor directly on the shared coordinator.
    let err = shared.add_plugin(probe("queue", "w1", &log)).unwrap_err();
    assert!(
        matches!(err, CoordinatorError::PluginAlreadyAttached { .. }),
        "{err}"
    );
    assert_eq!(shared.plugins(), vec!["cron".to_owned()]);
    // Another namespace is another election: the name is free there.
    let billing = registry.attach("billing", probe("queue", "w1", &log)).await;
    assert!(billing.is_ok());

    wait_until("three terms", Duration::from_secs(30), || {
        log.lock().unwrap().len() == 3
    })
    .await;
    let log = log.lock().unwrap().clone();
    let election = |plugin: &str, ns: &str| {
        log.iter()
            .find(|(name, _, election, _)| name == plugin && election.contains(ns))
            .map(|(_, _, election, _)| election.clone())
    };
    assert_eq!(
        election("queue", "/orders/").as_deref(),
        Some("plg_coordinator_plugin/queue/orders/state.json")
    );
    assert_eq!(election("cron", "/orders/").as_deref(), Some(GLOBAL_LEASE));
    assert_eq!(
        election("queue", "/billing/").as_deref(),
        Some("plg_coordinator_global/billing/state.json")
    );
    registry.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_attach_leaves_the_name_free_for_the_other_mode() {
    // The replaced system's lease (no `format`): the shared election is refused.
    let memory = MemoryStore::new();
    memory
        .create(GLOBAL_LEASE, r#"{"leader":"legacy-host"}"#.into())
        .await
        .unwrap();
    let store: Arc<dyn LeaseStore> = Arc::new(memory.clone());
    let clock = Arc::new(TokioClock::new());
    let log: Log = Arc::default();
    let registry = worker_with(store, common::config("w1"), &clock);

    let err = registry
        .attach(NS, probe("queue", "w1", &log))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    let own = registry
        .attach_with_mode(NS, probe("queue", "w1", &log), CoordinationMode::PerPlugin)
        .await
        .unwrap();
    wait_until("leading per plugin", Duration::from_secs(10), || {
        own.is_leader()
    })
    .await;
    registry.close().await;
}

#[test]
fn plugin_modes_are_read_from_config_and_their_names_checked() {
    let config: CoordinatorConfig = serde_json::from_str(
        r#"{ "mode": "global", "plugin_modes": { "queue.jobs": "per_plugin" } }"#,
    )
    .unwrap();
    assert_eq!(config.mode_for("queue.jobs"), CoordinationMode::PerPlugin);
    assert_eq!(config.mode_for("ttl.sessions"), CoordinationMode::Global);
    config.validate().unwrap();

    let bad = CoordinatorConfig::default().with_plugin_mode("queue/jobs", CoordinationMode::Global);
    let err = bad.validate().unwrap_err().to_string();
    assert!(
        err.contains("plugin_modes") && err.contains("queue/jobs"),
        "{err}"
    );
    let err = serde_json::from_str::<CoordinatorConfig>(r#"{ "plugin_modes": { "a": "both" } }"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("both"), "{err}");
}
