//! [`LeaseStoreExt`]: the conveniences every store gets from the contract.

use std::future::Future;

use crate::{LeaseStore, ObjectMeta, StoreError, LIST_PAGE_SIZE};

/// Conveniences built on the methods of [`LeaseStore`], for every store
/// (`dyn LeaseStore` and `Arc<dyn LeaseStore>` included).
///
/// Implemented once, for every `T: LeaseStore`: you cannot implement it
/// yourself, and a wrapper has nothing to forward here. Bring it into scope
/// with `use coordinator_store::LeaseStoreExt;`.
///
/// # Examples
///
/// ```
/// use coordinator_store::{LeaseStore, LeaseStoreExt, MemoryStore};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), coordinator_store::StoreError> {
/// let store: std::sync::Arc<dyn LeaseStore> = std::sync::Arc::new(MemoryStore::new());
/// for i in 0..2_500 {
///     store.put(&format!("queue/{i:05}"), "m".into()).await?;
/// }
/// // Three pages of up to 1,000 keys, one request each.
/// let all = store.list("queue").await?;
/// assert_eq!(all.len(), 2_500);
/// assert!(all.windows(2).all(|pair| pair[0].key < pair[1].key));
/// # Ok(())
/// # }
/// ```
pub trait LeaseStoreExt: LeaseStore {
    /// Lists every object under `prefix`, sorted by key: one
    /// [`list_page`](LeaseStore::list_page) of [`LIST_PAGE_SIZE`] keys
    /// after another, each starting after the last key of the one before,
    /// until a page comes back short (so a listing of exactly 1,000 keys
    /// takes two requests, the second one empty).
    ///
    /// `prefix` matches whole `/`-separated segments, as in
    /// [`list_page`](LeaseStore::list_page). The pages are separate
    /// requests: keys written or deleted between them may or may not be
    /// seen, as with any paged listing of S3, GCS or Azure.
    ///
    /// # Errors
    ///
    /// The first page's error, as the store returned it.
    /// [`StoreError::Backend`] if a page does not continue after the last
    /// key of the one before (a store that breaks the paging contract),
    /// rather than looping over it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<ObjectMeta>, StoreError>> + Send;
}

impl<T: LeaseStore + ?Sized> LeaseStoreExt for T {
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let mut all: Vec<ObjectMeta> = Vec::new();
        loop {
            let after = all.last().map(|meta| meta.key.clone());
            let page = self
                .list_page(prefix, after.as_deref(), LIST_PAGE_SIZE)
                .await?;
            if let (Some(after), Some(first)) = (&after, page.first()) {
                if first.key.as_str() <= after.as_str() {
                    return Err(StoreError::Backend {
                        op: "list",
                        key: prefix.to_owned(),
                        backend: self.backend(),
                        source: format!(
                            "list_page after `{after}` returned `{}`, which does not sort after \
                             it; a store's pages must continue where the last one ended (run the \
                             conformance suite against it)",
                            first.key
                        )
                        .into(),
                    });
                }
            }
            let last = page.len() < LIST_PAGE_SIZE;
            all.extend(page);
            if last {
                return Ok(all);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use bytes::Bytes;

    use super::*;
    use crate::{Capabilities, MemoryStore, StoredObject, Version, Written};

    /// Answers every `list_page` with the first page, whatever `start_after`
    /// says: a store that breaks the paging contract.
    #[derive(Debug)]
    struct FirstPageAgain(MemoryStore);

    #[async_trait]
    impl LeaseStore for FirstPageAgain {
        fn backend(&self) -> &'static str {
            "first-page-again"
        }
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
        async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
            self.0.get(key).await
        }
        async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
            self.0.create(key, body).await
        }
        async fn compare_and_swap(
            &self,
            key: &str,
            expected: &Version,
            body: Bytes,
        ) -> Result<Written, StoreError> {
            self.0.compare_and_swap(key, expected, body).await
        }
        async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
            self.0.put(key, body).await
        }
        async fn list_page(
            &self,
            prefix: &str,
            _start_after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<ObjectMeta>, StoreError> {
            self.0.list_page(prefix, None, limit).await
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.0.delete(key).await
        }
        async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError> {
            self.0.delete_if_version(key, expected).await
        }
    }

    async fn fill(store: &dyn LeaseStore, keys: usize) {
        for i in 0..keys {
            store.put(&format!("p/{i:05}"), "x".into()).await.unwrap();
        }
        // A neighbour that shares only a string prefix.
        store.put("pq", "x".into()).await.unwrap();
    }

    #[tokio::test]
    async fn walks_every_page_and_stops_at_a_short_one() {
        for keys in [
            0,
            1,
            LIST_PAGE_SIZE - 1,
            LIST_PAGE_SIZE,
            2 * LIST_PAGE_SIZE + 1,
        ] {
            let store = MemoryStore::new();
            fill(&store, keys).await;
            let listed = store.list("p").await.unwrap();
            assert_eq!(listed.len(), keys);
            assert!(listed.windows(2).all(|pair| pair[0].key < pair[1].key));
        }
    }

    #[tokio::test]
    async fn a_page_that_does_not_move_on_is_an_error_not_a_loop() {
        let store = FirstPageAgain(MemoryStore::new());
        fill(&store, LIST_PAGE_SIZE + 1).await;
        let err = store.list("p").await.unwrap_err();
        assert!(
            matches!(
                &err,
                StoreError::Backend {
                    op: "list",
                    backend: "first-page-again",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("does not sort after"), "{err}");
    }
}
