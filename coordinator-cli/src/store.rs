//! Opening stores for the commands: the read-only commands get
//! [`coordinator_store::open_read_only`]'s store (no probe; every write
//! refused before it reaches the backend), counted by [`Metered`].

use std::sync::Arc;

use coordinator_store::{LeaseStore, Metered, RequestCounter, StoreError};

use crate::{redact, Failure};

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
    let read_only = coordinator_store::open_read_only(url)
        .await
        .map_err(|e| store_failure(&e))?;
    let metered = Metered::new(read_only);
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
    let metered = Metered::new(store);
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
