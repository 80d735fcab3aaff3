//! Opening stores for the commands: the read-only commands get a store
//! that cannot write, counted by [`Metered`].

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use coordinator_store::{
    Capabilities, Conditional, LeaseStore, Metered, ObjectMeta, RequestCounter, StoreError,
    StoredObject, Version, Written,
};

use crate::{redact, Failure};

/// The backend name of the refusals of [`ReadOnly`].
const READ_ONLY: &str = "read-only";

/// A store whose writes are refused before they reach the backend: what
/// `status`, `watch` and `diagnose` read through, so that "never writes"
/// holds by construction, not by care. With `read_only` false it forwards
/// everything (for `probe`, which writes scratch objects).
#[derive(Debug)]
pub(crate) struct ReadOnly {
    pub(crate) inner: Arc<dyn LeaseStore>,
    pub(crate) read_only: bool,
}

impl ReadOnly {
    fn check(&self, op: &'static str) -> Result<(), StoreError> {
        if self.read_only {
            Err(refused(op))
        } else {
            Ok(())
        }
    }
}

fn refused(op: &'static str) -> StoreError {
    StoreError::NotSupported {
        op,
        backend: READ_ONLY,
    }
}

#[async_trait]
impl LeaseStore for ReadOnly {
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

    async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        self.check("create")?;
        self.inner.create(key, body).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &Version,
        body: Bytes,
    ) -> Result<Written, StoreError> {
        self.check("compare_and_swap")?;
        self.inner.compare_and_swap(key, expected, body).await
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        self.check("put")?;
        self.inner.put(key, body).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.list_page(prefix, start_after, limit).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check("delete")?;
        self.inner.delete(key).await
    }

    async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError> {
        self.check("delete_if_version")?;
        self.inner.delete_if_version(key, expected).await
    }
}

/// A read-only, metered store for `url`, and its request counter. No
/// request is made to open it (no probe: the probe writes). A `file://`
/// directory that does not exist is an error here (rather than an empty
/// namespace), and it is not created.
pub(crate) async fn open_read_only(
    url: &str,
) -> Result<(Arc<dyn LeaseStore>, Arc<RequestCounter>), Failure> {
    if let Some(dir) = missing_directory(url) {
        return Err(Failure::error(format!(
            "local store: the directory `{}` does not exist (nothing was created); check the \
             file:/// URL",
            dir.display()
        )));
    }
    open_read_only_anywhere(url).await
}

/// [`open_read_only`] without the check for a missing directory (which
/// then reads as empty).
pub(crate) async fn open_read_only_anywhere(
    url: &str,
) -> Result<(Arc<dyn LeaseStore>, Arc<RequestCounter>), Failure> {
    redact::url(url);
    let inner = coordinator_store::open_unprobed(url)
        .await
        .map_err(|e| store_failure(&e))?;
    let metered = Metered::new(ReadOnly {
        inner,
        read_only: true,
    });
    let counter = metered.counter();
    Ok((Arc::new(metered), counter))
}

/// The directory of a `file://` URL, if it does not exist.
fn missing_directory(url: &str) -> Option<std::path::PathBuf> {
    let parsed = url::Url::parse(url).ok()?;
    if parsed.scheme() != "file" {
        return None;
    }
    let dir = parsed.to_file_path().ok()?;
    (!dir.is_dir()).then_some(dir)
}

/// `store` (already opened) counted, writes allowed.
pub(crate) fn metered(store: Arc<dyn LeaseStore>) -> (Arc<dyn LeaseStore>, Arc<RequestCounter>) {
    let metered = Metered::new(ReadOnly {
        inner: store,
        read_only: false,
    });
    let counter = metered.counter();
    (Arc::new(metered), counter)
}

/// A store error as the command's failure, with a hint for the usual
/// causes.
pub(crate) fn store_failure(e: &StoreError) -> Failure {
    Failure::error(store_message(e))
}

pub(crate) fn store_message(e: &StoreError) -> String {
    let hint = match e {
        StoreError::Unavailable { .. } => {
            " (is the endpoint right and the server up? for a local S3-compatible server, add \
             ?endpoint=http://host:port to the URL)"
        }
        _ => "",
    };
    format!("{e}{hint}")
}
