//! An `Arc` of a store is a store: `Arc<dyn LeaseStore>` goes into
//! [`Metered`](crate::Metered) and other wrappers as it is.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    Capabilities, Conditional, LeaseStore, ObjectMeta, StoreError, StoredObject, Version, Written,
};

/// The future type `#[async_trait]` gives every method.
type Boxed<'f, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'f>>;

/// Forwards every method to the shared store. Each method hands back the
/// shared store's own future instead of boxing one around it, so the `Arc`
/// adds no allocation to a call.
#[async_trait]
impl<S: LeaseStore + ?Sized> LeaseStore for Arc<S> {
    fn backend(&self) -> &'static str {
        (**self).backend()
    }

    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }

    fn get<'s, 'k, 'f>(&'s self, key: &'k str) -> Boxed<'f, Option<StoredObject>>
    where
        's: 'f,
        'k: 'f,
    {
        (**self).get(key)
    }

    fn get_if_changed<'s, 'k, 'v, 'f>(
        &'s self,
        key: &'k str,
        known: &'v Version,
    ) -> Boxed<'f, Conditional>
    where
        's: 'f,
        'k: 'f,
        'v: 'f,
    {
        (**self).get_if_changed(key, known)
    }

    fn create<'s, 'k, 'f>(&'s self, key: &'k str, body: Bytes) -> Boxed<'f, Written>
    where
        's: 'f,
        'k: 'f,
    {
        (**self).create(key, body)
    }

    fn compare_and_swap<'s, 'k, 'v, 'f>(
        &'s self,
        key: &'k str,
        expected: &'v Version,
        body: Bytes,
    ) -> Boxed<'f, Written>
    where
        's: 'f,
        'k: 'f,
        'v: 'f,
    {
        (**self).compare_and_swap(key, expected, body)
    }

    fn put<'s, 'k, 'f>(&'s self, key: &'k str, body: Bytes) -> Boxed<'f, Written>
    where
        's: 'f,
        'k: 'f,
    {
        (**self).put(key, body)
    }

    fn list_page<'s, 'p, 'a, 'f>(
        &'s self,
        prefix: &'p str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> Boxed<'f, Vec<ObjectMeta>>
    where
        's: 'f,
        'p: 'f,
        'a: 'f,
    {
        (**self).list_page(prefix, start_after, limit)
    }

    fn delete<'s, 'k, 'f>(&'s self, key: &'k str) -> Boxed<'f, ()>
    where
        's: 'f,
        'k: 'f,
    {
        (**self).delete(key)
    }

    fn delete_if_version<'s, 'k, 'v, 'f>(
        &'s self,
        key: &'k str,
        expected: &'v Version,
    ) -> Boxed<'f, ()>
    where
        's: 'f,
        'k: 'f,
        'v: 'f,
    {
        (**self).delete_if_version(key, expected)
    }
}
