//! Fail-over and hand-over over Azure Blob Storage (Azurite in CI): set
//! `COORD_AZURE_ENDPOINT`, `AZURE_STORAGE_ACCOUNT_NAME` and
//! `AZURE_STORAGE_ACCOUNT_KEY` (scripts/azurite.sh prints them). Skipped,
//! loudly, when it is unset; fails when `COORD_REQUIRE_AZURE=1`.
#![cfg(feature = "azure")]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod failover;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_fail_over_and_hand_over() {
    let Ok(endpoint) = std::env::var("COORD_AZURE_ENDPOINT") else {
        if std::env::var("COORD_REQUIRE_AZURE").as_deref() == Ok("1") {
            panic!(
                "COORD_REQUIRE_AZURE=1 but COORD_AZURE_ENDPOINT is unset: start Azurite with \
                 scripts/azurite.sh start"
            );
        }
        eprintln!();
        eprintln!("****************************************************************************");
        eprintln!("** SKIPPED azure_fail_over_and_hand_over: COORD_AZURE_ENDPOINT is not set. **");
        eprintln!("** Run `eval \"$(scripts/azurite.sh start)\"` first (or scripts/test).      **");
        eprintln!("****************************************************************************");
        eprintln!();
        return;
    };
    let container =
        std::env::var("COORD_AZURE_CONTAINER").unwrap_or_else(|_| "coordinator-test".into());
    let unique = failover::unique("runtime");
    let url = format!("az://{container}/{unique}?endpoint={endpoint}");
    let store = coordinator_store::open(&url)
        .await
        .expect("open the Azure store");
    assert_eq!(store.backend(), "azure");
    assert!(
        store.capabilities().conditional_delete,
        "Azurite honours If-Match on DELETE"
    );
    failover::fail_over_and_hand_over("azure", store).await;
}
