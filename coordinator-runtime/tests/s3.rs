//! Fail-over and hand-over over S3 (moto in CI): set `COORD_S3_ENDPOINT`
//! (scripts/moto.sh prints it). Skipped, loudly, when it is unset; fails
//! when `COORD_REQUIRE_S3=1`.
#![cfg(feature = "aws")]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod failover;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_fail_over_and_hand_over() {
    let Ok(endpoint) = std::env::var("COORD_S3_ENDPOINT") else {
        if std::env::var("COORD_REQUIRE_S3").as_deref() == Ok("1") {
            panic!("COORD_REQUIRE_S3=1 but COORD_S3_ENDPOINT is unset: start moto with scripts/moto.sh start");
        }
        eprintln!();
        eprintln!("************************************************************************");
        eprintln!("** SKIPPED s3_fail_over_and_hand_over: COORD_S3_ENDPOINT is not set.  **");
        eprintln!("** Run `eval \"$(scripts/moto.sh start)\"` first (or scripts/test).    **");
        eprintln!("************************************************************************");
        eprintln!();
        return;
    };
    let bucket = std::env::var("COORD_S3_BUCKET").unwrap_or_else(|_| "coordinator-test".into());
    let unique = failover::unique("runtime");
    let url = format!("s3://{bucket}/{unique}?endpoint={endpoint}");
    let store = coordinator_store::open(&url)
        .await
        .expect("open the S3 store");
    assert_eq!(store.backend(), "s3");
    failover::fail_over_and_hand_over("s3", store).await;
}
