//! Executing one core [`Request`] against a [`LeaseStore`], and mapping the
//! outcome onto a core [`Response`]. No decisions: only translation.

use std::time::Duration;

use bytes::Bytes;
use coordinator_core::{Failure, Listed, Request, Response};
use coordinator_store::{
    Conditional, LeaseStore, LeaseStoreExt, StoreError, StoredObject, Written,
};

/// Whether a request may change the store (its timeout is then ambiguous).
pub(crate) fn is_write(request: &Request) -> bool {
    !matches!(request, Request::Get { .. } | Request::List { .. })
}

/// A short name of the request for logs (`get`, `create`, `cas`, …).
pub(crate) fn op_name(request: &Request) -> &'static str {
    match request {
        Request::Get {
            if_changed: Some(_),
            ..
        } => "get_if_changed",
        Request::Get { .. } => "get",
        Request::Create { .. } => "create",
        Request::CompareAndSwap { .. } => "compare_and_swap",
        Request::Put { .. } => "put",
        Request::List { .. } => "list",
        Request::Delete {
            if_version: Some(_),
            ..
        } => "delete_if_version",
        Request::Delete { .. } => "delete",
    }
}

/// Runs `request` with a time limit: a write that times out is
/// [`Failure::Ambiguous`] (it may still land), a read [`Failure::Transient`].
pub(crate) async fn execute_with_timeout(
    store: &dyn LeaseStore,
    request: Request,
    timeout: Duration,
) -> Response {
    let write = is_write(&request);
    let op = op_name(&request);
    match tokio::time::timeout(timeout, execute(store, request)).await {
        Ok(response) => response,
        Err(_) => {
            let message = format!("{op} timed out after {timeout:?}");
            Response::Failed(if write {
                Failure::Ambiguous { message }
            } else {
                Failure::Transient { message }
            })
        }
    }
}

fn object(object: StoredObject) -> Response {
    Response::Object {
        body: object.body.to_vec(),
        version: object.version,
        store_time_ms: object.store_time.map(|t| t.0),
    }
}

fn written(written: Written) -> Response {
    Response::Written {
        version: written.version,
        store_time_ms: written.store_time.map(|t| t.0),
    }
}

/// The failure a store error means for the machine. Expected outcomes
/// (`AlreadyExists`, `Conflict`, `NotFound`) are mapped by the caller first.
pub(crate) fn failure(error: &StoreError) -> Failure {
    match error {
        StoreError::Throttled { retry_after, .. } => Failure::Throttled {
            retry_after_ms: retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        },
        StoreError::Ambiguous { .. } => Failure::Ambiguous {
            message: error.to_string(),
        },
        _ => Failure::Transient {
            message: error.to_string(),
        },
    }
}

/// Runs one request and maps its outcome.
///
/// * reads: an object, [`Response::Unchanged`], or [`Response::Absent`]
///   (also for `NotFound`);
/// * create: `AlreadyExists` → [`Response::AlreadyExists`];
/// * compare-and-swap: `Conflict` (or `NotFound`) → [`Response::Conflict`];
/// * delete with a version: a conditional delete where the store has one,
///   otherwise a plain delete; `NotFound` → [`Response::Deleted`];
/// * `Throttled` → [`Failure::Throttled`], `Ambiguous` →
///   [`Failure::Ambiguous`], everything else [`Failure::Transient`].
pub(crate) async fn execute(store: &dyn LeaseStore, request: Request) -> Response {
    match request {
        Request::Get {
            key,
            if_changed: None,
        } => match store.get(&key).await {
            Ok(Some(found)) => object(found),
            Ok(None) | Err(StoreError::NotFound { .. }) => Response::Absent,
            Err(error) => Response::Failed(failure(&error)),
        },
        Request::Get {
            key,
            if_changed: Some(known),
        } => match store.get_if_changed(&key, &known).await {
            Ok(Conditional::Unchanged) => Response::Unchanged,
            Ok(Conditional::Changed(found)) => object(found),
            Ok(Conditional::Absent) | Err(StoreError::NotFound { .. }) => Response::Absent,
            Err(error) => Response::Failed(failure(&error)),
        },
        Request::Create { key, body } => match store.create(&key, Bytes::from(body)).await {
            Ok(w) => written(w),
            Err(StoreError::AlreadyExists { .. }) => Response::AlreadyExists,
            Err(error) => Response::Failed(failure(&error)),
        },
        Request::CompareAndSwap {
            key,
            expected,
            body,
        } => match store
            .compare_and_swap(&key, &expected, Bytes::from(body))
            .await
        {
            Ok(w) => written(w),
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => Response::Conflict,
            Err(error) => Response::Failed(failure(&error)),
        },
        Request::Put { key, body } => match store.put(&key, Bytes::from(body)).await {
            Ok(w) => written(w),
            Err(error) => Response::Failed(failure(&error)),
        },
        Request::List { prefix } => match store.list(&prefix).await {
            Ok(entries) => Response::Listed(
                entries
                    .into_iter()
                    .map(|meta| Listed {
                        key: meta.key,
                        version: meta.version,
                    })
                    .collect(),
            ),
            Err(error) => Response::Failed(failure(&error)),
        },
        Request::Delete { key, if_version } => {
            let result = match if_version {
                Some(version) if store.capabilities().conditional_delete => {
                    match store.delete_if_version(&key, &version).await {
                        Err(StoreError::NotSupported { .. }) => store.delete(&key).await,
                        other => other,
                    }
                }
                _ => store.delete(&key).await,
            };
            match result {
                Ok(()) | Err(StoreError::NotFound { .. }) => Response::Deleted,
                Err(StoreError::Conflict { .. }) => Response::Conflict,
                Err(error) => Response::Failed(failure(&error)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coordinator_core::Version;
    use coordinator_store::{FailingStore, Fault, FaultKind, MemoryStore, RequestKind};

    fn get(key: &str) -> Request {
        Request::Get {
            key: key.into(),
            if_changed: None,
        }
    }

    #[tokio::test]
    async fn maps_expected_outcomes() {
        let store = MemoryStore::new();
        assert_eq!(execute(&store, get("a")).await, Response::Absent);
        let created = execute(
            &store,
            Request::Create {
                key: "a".into(),
                body: b"1".to_vec(),
            },
        )
        .await;
        let Response::Written { version, .. } = created else {
            panic!("{created:?}")
        };
        assert_eq!(
            execute(
                &store,
                Request::Create {
                    key: "a".into(),
                    body: b"2".to_vec()
                }
            )
            .await,
            Response::AlreadyExists
        );
        assert_eq!(
            execute(
                &store,
                Request::Get {
                    key: "a".into(),
                    if_changed: Some(version.clone())
                }
            )
            .await,
            Response::Unchanged
        );
        assert_eq!(
            execute(
                &store,
                Request::CompareAndSwap {
                    key: "a".into(),
                    expected: Version::new("nope"),
                    body: b"3".to_vec()
                }
            )
            .await,
            Response::Conflict
        );
        assert_eq!(
            execute(
                &store,
                Request::CompareAndSwap {
                    key: "missing".into(),
                    expected: version.clone(),
                    body: b"3".to_vec()
                }
            )
            .await,
            Response::Conflict
        );
        let listed = execute(
            &store,
            Request::List {
                prefix: String::new(),
            },
        )
        .await;
        assert!(
            matches!(listed, Response::Listed(ref l) if l.len() == 1 && l[0].version == version)
        );
        assert_eq!(
            execute(
                &store,
                Request::Delete {
                    key: "a".into(),
                    if_version: Some(Version::new("other"))
                }
            )
            .await,
            Response::Conflict
        );
        assert_eq!(
            execute(
                &store,
                Request::Delete {
                    key: "a".into(),
                    if_version: Some(version)
                }
            )
            .await,
            Response::Deleted
        );
        assert_eq!(
            execute(
                &store,
                Request::Delete {
                    key: "a".into(),
                    if_version: None
                }
            )
            .await,
            Response::Deleted
        );
    }

    #[tokio::test]
    async fn maps_failures() {
        let store = FailingStore::with_faults(
            MemoryStore::new(),
            1,
            vec![Fault::new(FaultKind::Throttled).on(RequestKind::Get)],
        );
        assert!(matches!(
            execute(&store, get("a")).await,
            Response::Failed(Failure::Throttled { .. })
        ));
        store.set_faults(vec![Fault::new(FaultKind::AmbiguousNotApplied)]);
        assert!(matches!(
            execute(
                &store,
                Request::Put {
                    key: "a".into(),
                    body: vec![]
                }
            )
            .await,
            Response::Failed(Failure::Ambiguous { .. })
        ));
        store.set_faults(vec![Fault::new(FaultKind::Unavailable)]);
        assert!(matches!(
            execute(&store, get("a")).await,
            Response::Failed(Failure::Transient { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_are_ambiguous_for_writes_and_transient_for_reads() {
        let store = FailingStore::with_faults(
            MemoryStore::new(),
            1,
            vec![Fault::new(FaultKind::Latency(Duration::from_secs(10)))],
        );
        let t = Duration::from_secs(1);
        assert!(matches!(
            execute_with_timeout(&store, get("a"), t).await,
            Response::Failed(Failure::Transient { .. })
        ));
        assert!(matches!(
            execute_with_timeout(
                &store,
                Request::Create {
                    key: "a".into(),
                    body: vec![]
                },
                t
            )
            .await,
            Response::Failed(Failure::Ambiguous { .. })
        ));
    }
}
