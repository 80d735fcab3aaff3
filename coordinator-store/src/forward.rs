//! The boxed `LeaseStore` methods of this crate's stores and wrappers, each
//! a box around the store's own `*_unboxed` future.

/// Expands, inside an `#[async_trait] impl LeaseStore for …` block that
/// defines every `*_unboxed` method, to the eight boxed methods, each one
/// allocation wrapping the matching unboxed future. The signatures are the
/// ones `#[async_trait]` gives the trait's `async fn`s.
macro_rules! boxed_methods_via_unboxed {
    () => {
        fn get<'s, 'k, 'f>(
            &'s self,
            key: &'k str,
        ) -> $crate::forward::Boxed<'f, Option<$crate::StoredObject>>
        where
            's: 'f,
            'k: 'f,
        {
            Box::pin(self.get_unboxed(key))
        }

        fn get_if_changed<'s, 'k, 'v, 'f>(
            &'s self,
            key: &'k str,
            known: &'v $crate::Version,
        ) -> $crate::forward::Boxed<'f, $crate::Conditional>
        where
            's: 'f,
            'k: 'f,
            'v: 'f,
        {
            Box::pin(self.get_if_changed_unboxed(key, known))
        }

        fn create<'s, 'k, 'f>(
            &'s self,
            key: &'k str,
            body: ::bytes::Bytes,
        ) -> $crate::forward::Boxed<'f, $crate::Written>
        where
            's: 'f,
            'k: 'f,
        {
            Box::pin(self.create_unboxed(key, body))
        }

        fn compare_and_swap<'s, 'k, 'v, 'f>(
            &'s self,
            key: &'k str,
            expected: &'v $crate::Version,
            body: ::bytes::Bytes,
        ) -> $crate::forward::Boxed<'f, $crate::Written>
        where
            's: 'f,
            'k: 'f,
            'v: 'f,
        {
            Box::pin(self.compare_and_swap_unboxed(key, expected, body))
        }

        fn put<'s, 'k, 'f>(
            &'s self,
            key: &'k str,
            body: ::bytes::Bytes,
        ) -> $crate::forward::Boxed<'f, $crate::Written>
        where
            's: 'f,
            'k: 'f,
        {
            Box::pin(self.put_unboxed(key, body))
        }

        fn list<'s, 'p, 'f>(
            &'s self,
            prefix: &'p str,
        ) -> $crate::forward::Boxed<'f, Vec<$crate::ObjectMeta>>
        where
            's: 'f,
            'p: 'f,
        {
            Box::pin(self.list_unboxed(prefix))
        }

        fn delete<'s, 'k, 'f>(&'s self, key: &'k str) -> $crate::forward::Boxed<'f, ()>
        where
            's: 'f,
            'k: 'f,
        {
            Box::pin(self.delete_unboxed(key))
        }

        fn delete_if_version<'s, 'k, 'v, 'f>(
            &'s self,
            key: &'k str,
            expected: &'v $crate::Version,
        ) -> $crate::forward::Boxed<'f, ()>
        where
            's: 'f,
            'k: 'f,
            'v: 'f,
        {
            Box::pin(self.delete_if_version_unboxed(key, expected))
        }
    };
}

pub(crate) use boxed_methods_via_unboxed;

/// The future type `#[async_trait]` gives every boxed method.
pub(crate) type Boxed<'f, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, crate::StoreError>> + Send + 'f>>;
