//! A store that reads and never writes: [`ReadOnlyStore`], and
//! [`open_read_only`] to get one from a URL without the probe.
//!
//! For tools that look at a namespace without taking part in it (the
//! `coordinator status`, `watch` and `diagnose` commands): [`open`](crate::open)
//! probes the backend's conditional writes, and the probe writes (and
//! deletes) a scratch object, which a reader must not. Here "never writes"
//! holds by construction: every write is refused before it reaches the
//! backend, whoever calls it.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::open::open_unprobed_inner;
use crate::{
    Capabilities, Conditional, LeaseStore, ObjectMeta, StoreError, StoreOptions, StoredObject,
    Version, Written,
};

/// The `backend` of the [`StoreError::NotSupported`] a refused write
/// returns: "create is not supported by the read-only store".
pub const READ_ONLY_BACKEND: &str = "read-only";

/// Wraps a store so that it can only read: `get`, `get_if_changed` and
/// `list_page` are forwarded; `create`, `compare_and_swap`, `put`, `delete`
/// and `delete_if_version` return [`StoreError::NotSupported`] with the
/// operation and [`READ_ONLY_BACKEND`], without a request.
///
/// [`backend`](LeaseStore::backend) and
/// [`capabilities`](LeaseStore::capabilities) are the wrapped store's (what
/// the backend can do, for a reader that reports it), not a promise that
/// writes go through.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use coordinator_store::{LeaseStore, MemoryStore, ReadOnlyStore, StoreError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let memory = Arc::new(MemoryStore::new());
/// memory.create("a", Bytes::from_static(b"1")).await.unwrap();
/// let reader = ReadOnlyStore::new(memory.clone());
/// assert_eq!(&reader.get("a").await.unwrap().unwrap().body[..], b"1");
/// let refused = reader.put("a", Bytes::from_static(b"2")).await.unwrap_err();
/// assert!(matches!(refused, StoreError::NotSupported { op: "put", backend: "read-only" }));
/// assert_eq!(&memory.get("a").await.unwrap().unwrap().body[..], b"1");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ReadOnlyStore {
    inner: Arc<dyn LeaseStore>,
}

impl ReadOnlyStore {
    /// Reads through `inner`; refuses every write.
    pub fn new(inner: Arc<dyn LeaseStore>) -> Self {
        Self { inner }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn LeaseStore> {
        &self.inner
    }
}

fn refused(op: &'static str) -> StoreError {
    StoreError::NotSupported {
        op,
        backend: READ_ONLY_BACKEND,
    }
}

#[async_trait]
impl LeaseStore for ReadOnlyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        self.inner.get(key).await
    }

    async fn get_if_changed(&self, key: &str, known: &Version) -> Result<Conditional, StoreError> {
        self.inner.get_if_changed(key, known).await
    }

    async fn create(&self, _key: &str, _body: Bytes) -> Result<Written, StoreError> {
        Err(refused("create"))
    }

    async fn compare_and_swap(
        &self,
        _key: &str,
        _expected: &Version,
        _body: Bytes,
    ) -> Result<Written, StoreError> {
        Err(refused("compare_and_swap"))
    }

    async fn put(&self, _key: &str, _body: Bytes) -> Result<Written, StoreError> {
        Err(refused("put"))
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.list_page(prefix, start_after, limit).await
    }

    async fn delete(&self, _key: &str) -> Result<(), StoreError> {
        Err(refused("delete"))
    }

    async fn delete_if_version(&self, _key: &str, _expected: &Version) -> Result<(), StoreError> {
        Err(refused("delete_if_version"))
    }
}

/// Opens the store at `url` for reading only: the URL forms of
/// [`open`](crate::open), but **no probe and no request** (the probe
/// writes), and a [`ReadOnlyStore`] that refuses every write. For tools
/// that inspect a namespace (status, watch, diagnostics); a worker that
/// elects a leader must use [`open`](crate::open), whose probe refuses a
/// store whose conditional writes are not real.
///
/// Nothing is created: a `file://` directory that does not exist reads as
/// empty (check it yourself if that should be an error). Conditional
/// delete is reported off on S3, as for any store that was not probed.
///
/// # Errors
///
/// [`StoreError::Misconfigured`] for the URL problems [`open`](crate::open)
/// finds before a request (a malformed URL, an unknown scheme, a relative
/// `file:` path, a local directory on a network file system);
/// [`StoreError::NotCompiled`] for a backend left out of the build. A
/// missing bucket or refused credentials show on the first read.
///
/// # Cancel safety
///
/// Cancel safe: it only builds the client.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let url = format!("file://{}", dir.path().join("missing").display());
/// let store = coordinator_store::open_read_only(&url).await.unwrap();
/// assert!(store.get("plg_coordinator_global/demo/state.json").await.unwrap().is_none());
/// assert!(!dir.path().join("missing").exists(), "nothing created");
/// # }
/// ```
pub async fn open_read_only(url: &str) -> Result<Arc<dyn LeaseStore>, StoreError> {
    open_read_only_with(url, StoreOptions::default()).await
}

/// [`open_read_only`] with explicit timeouts and retries.
///
/// # Errors
///
/// As for [`open_read_only`].
///
/// # Cancel safety
///
/// Cancel safe: it only builds the client.
pub async fn open_read_only_with(
    url: &str,
    options: StoreOptions,
) -> Result<Arc<dyn LeaseStore>, StoreError> {
    let inner = open_unprobed_inner(url, options)?;
    Ok(Arc::new(ReadOnlyStore::new(inner)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[tokio::test]
    async fn every_write_is_refused_and_reaches_nothing() {
        let memory = Arc::new(MemoryStore::new());
        let written = memory.create("k", Bytes::from_static(b"v")).await.unwrap();
        let reader = ReadOnlyStore::new(memory.clone());
        let body = || Bytes::from_static(b"x");
        let errors = [
            reader.create("new", body()).await.unwrap_err(),
            reader
                .compare_and_swap("k", &written.version, body())
                .await
                .unwrap_err(),
            reader.put("k", body()).await.unwrap_err(),
            reader.delete("k").await.unwrap_err(),
            reader
                .delete_if_version("k", &written.version)
                .await
                .unwrap_err(),
        ];
        let ops: Vec<&str> = errors
            .iter()
            .map(|e| match e {
                StoreError::NotSupported { op, backend } => {
                    assert_eq!(*backend, READ_ONLY_BACKEND);
                    *op
                }
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(
            ops,
            [
                "create",
                "compare_and_swap",
                "put",
                "delete",
                "delete_if_version"
            ]
        );
        let now = memory.get("k").await.unwrap().unwrap();
        assert_eq!(now.version, written.version);
        assert!(memory.get("new").await.unwrap().is_none());
        assert_eq!(reader.list_page("", None, 10).await.unwrap().len(), 1);
        assert!(matches!(
            reader.get_if_changed("k", &written.version).await.unwrap(),
            Conditional::Unchanged
        ));
    }

    #[tokio::test]
    async fn opening_reads_a_missing_directory_as_empty_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("not-yet");
        let url = format!("file://{}", root.display());
        let store = open_read_only(&url).await.unwrap();
        assert_eq!(store.backend(), "local");
        assert!(store.get("a/b.json").await.unwrap().is_none());
        assert!(store.list_page("a/", None, 10).await.unwrap().is_empty());
        assert!(store.create("a/b.json", Bytes::new()).await.is_err());
        assert!(!root.exists());
        assert!(matches!(
            open_read_only("file:relative/dir").await,
            Err(StoreError::Misconfigured { .. })
        ));
    }
}
