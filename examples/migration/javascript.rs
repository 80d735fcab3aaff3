//! Step 5: taking a namespace over from the JavaScript system.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coordinator_core::{Keys, Namespace};
use coordinator_runtime::{CoordinatorConfig, CoordinatorError, CoordinatorRegistry};
use coordinator_store::LeaseStore;

use crate::{ms, Error};

/// Writes what the JavaScript system leaves in `namespace`: a lease, a
/// metadata object and a heartbeat, none with a `format` field.
async fn write_javascript_records(store: &dyn LeaseStore, keys: &Keys) -> Result<(), Error> {
    let records = [
        (
            keys.lease(),
            r#"{"leader":"js-host-1","expiresAt":1765000000000}"#,
        ),
        (
            keys.metadata(),
            r#"{"service":"billing","version":"2.3.0"}"#,
        ),
        (
            format!("{}js-host-1.json", keys.workers_prefix()),
            r#"{"id":"js-host-1","lastSeen":1765000000000}"#,
        ),
    ];
    for (key, body) in records {
        store.put(&key, body.into()).await?;
    }
    Ok(())
}

/// Starts a worker of `namespace` and waits until it leads; how long that took.
async fn lead(store: &Arc<dyn LeaseStore>, namespace: &str) -> Result<Duration, Error> {
    let ours = CoordinatorRegistry::new(
        store.clone(),
        CoordinatorConfig::default().with_worker_id("w1"),
    )?;
    let began = Instant::now();
    let coordinator = ours.get(namespace).await?;
    coordinator
        .leadership()
        .wait_for(|view| view.is_leader)
        .await
        .map_err(|_| "the coordinator stopped")?;
    let took = began.elapsed();
    ours.close().await;
    Ok(took)
}

/// Step 5: namespaces whose records the JavaScript system wrote.
pub(crate) async fn from_javascript(
    store: &Arc<dyn LeaseStore>,
) -> Result<(String, Duration, Duration), Error> {
    println!("\n== 5. From the JavaScript system: its records have no `format` field");
    let legacy = Keys::global(&Namespace::new("legacy")?);
    write_javascript_records(store.as_ref(), &legacy).await?;
    let ours = CoordinatorRegistry::new(
        store.clone(),
        CoordinatorConfig::default().with_worker_id("w1"),
    )?;
    let refusal = match ours.get("legacy").await {
        Err(error @ CoordinatorError::Refused { .. }) => error.to_string(),
        Err(other) => return Err(other.into()),
        Ok(_) => return Err("the foreign lease was not refused".into()),
    };
    ours.close().await;
    println!("   our worker refuses `legacy`: {refusal}");
    println!("   the operator stops every JavaScript worker of `legacy`, then deletes its state.json, metadata.json and workers/");
    for key in [
        legacy.lease(),
        legacy.metadata(),
        format!("{}js-host-1.json", legacy.workers_prefix()),
    ] {
        store.delete(&key).await?;
    }
    let taken = lead(store, "legacy").await?;
    println!(
        "   a worker of ours leads `legacy` {} after it started",
        ms(taken)
    );

    let partly = Keys::global(&Namespace::new("legacy-2")?);
    write_javascript_records(store.as_ref(), &partly).await?;
    store.delete(&partly.lease()).await?;
    println!("   in `legacy-2` the operator deletes state.json only: the foreign metadata.json leaves the epoch unknown");
    let waited = lead(store, "legacy-2").await?;
    println!(
        "   a worker of ours leads `legacy-2` {} after it started (recovery_wait, {:?})",
        ms(waited),
        coordinator_core::Config::default().recovery_wait
    );
    Ok((refusal, taken, waited))
}
