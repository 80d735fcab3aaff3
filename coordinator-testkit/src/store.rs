//! The simulated object store: linearizable, with store-assigned versions
//! and timestamps, and request counting by kind.

use std::collections::{BTreeSet, HashMap};

use coordinator_core::{Listed, Request, Response, Version};
use serde::Serialize;

use crate::clock::UNIX_BASE_MS;

/// The keys S3 returns per LIST page.
pub const LIST_PAGE: usize = 1000;

/// S3 Standard price of a PUT, COPY, POST or LIST request, in US dollars.
pub const USD_PER_PUT: f64 = 0.005 / 1000.0;
/// S3 Standard price of a GET or HEAD request (a `304 Not Modified` too).
pub const USD_PER_GET: f64 = 0.0004 / 1000.0;
/// DELETE requests are free on S3.
pub const USD_PER_DELETE: f64 = 0.0;
/// Hours in the month the prices are quoted for (365 × 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// One stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// The bytes.
    pub body: Vec<u8>,
    /// The version: a store-wide counter, unique per write.
    pub version: u64,
    /// The store's timestamp of this version (Unix ms).
    pub store_time_ms: i64,
}

/// Requests by kind, as S3 bills them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Requests {
    /// GETs, plain and conditional (a conditional GET that answers
    /// "unchanged" is still a GET).
    pub get: u64,
    /// HEADs (the protocol makes none; kept for the report's shape).
    pub head: u64,
    /// Writes: create-if-absent, compare-and-swap and unconditional put.
    pub put: u64,
    /// LIST pages (one per started 1,000 keys, at least one per listing).
    pub list: u64,
    /// DELETEs, conditional or not.
    pub delete: u64,
}

impl Requests {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.get + self.head + self.put + self.list + self.delete
    }

    /// Their price on S3 Standard, in US dollars.
    pub fn usd(&self) -> f64 {
        (self.get + self.head) as f64 * USD_PER_GET
            + (self.put + self.list) as f64 * USD_PER_PUT
            + self.delete as f64 * USD_PER_DELETE
    }

    /// Counts one request as sent (a LIST counts its first page).
    pub fn count(&mut self, request: &Request) {
        match request {
            Request::Get { .. } => self.get += 1,
            Request::Create { .. } | Request::CompareAndSwap { .. } | Request::Put { .. } => {
                self.put += 1
            }
            Request::List { .. } => self.list += 1,
            Request::Delete { .. } => self.delete += 1,
        }
    }

    /// Adds another count.
    pub fn add(&mut self, other: &Requests) {
        self.get += other.get;
        self.head += other.head;
        self.put += other.put;
        self.list += other.list;
        self.delete += other.delete;
    }
}

/// True for requests that write.
pub fn is_write(request: &Request) -> bool {
    !matches!(request, Request::Get { .. } | Request::List { .. })
}

/// A linearizable key-value store: every request is applied atomically at
/// one instant of true time (its linearization point, chosen by the
/// simulator), in the order of those instants.
///
/// * create-if-absent refuses an existing key; compare-and-swap and a
///   conditional delete refuse any version but the one given;
/// * every write gets a new version from one store-wide counter (no ABA);
/// * timestamps are the store's own clock: true time plus a skew the caller
///   gives, truncated to `granularity_ms` (S3's `Last-Modified` has whole
///   seconds).
///
/// ```
/// use coordinator_core::{Request, Response};
/// use coordinator_testkit::SimStore;
/// let mut store = SimStore::new(1, false);
/// let put = Request::Create { key: "k".into(), body: b"a".to_vec() };
/// assert!(matches!(store.apply(&put, 0, 0), Response::Written { .. }));
/// assert_eq!(store.apply(&put, 1, 0), Response::AlreadyExists);
/// ```
#[derive(Clone, Debug)]
pub struct SimStore {
    /// Lookups by key (hashing a key is cheaper than a dozen comparisons of
    /// keys with long common prefixes).
    objects: HashMap<String, Object>,
    /// The keys in order, for listings.
    index: BTreeSet<String>,
    next_version: u64,
    granularity_ms: u64,
    write_returns_time: bool,
    /// Extra LIST pages beyond the first of each listing, counted at apply
    /// time (the first is counted when the request is sent).
    pub extra_list_pages: u64,
}

impl SimStore {
    /// An empty store whose timestamps have `granularity_ms` resolution and
    /// whose write responses carry the timestamp only if
    /// `write_returns_time` (S3's do not).
    pub fn new(granularity_ms: u64, write_returns_time: bool) -> Self {
        Self {
            objects: HashMap::new(),
            index: BTreeSet::new(),
            next_version: 0,
            granularity_ms: granularity_ms.max(1),
            write_returns_time,
            extra_list_pages: 0,
        }
    }

    /// The object at `key`, if any.
    pub fn object(&self, key: &str) -> Option<&Object> {
        self.objects.get(key)
    }

    /// Every key under `prefix`.
    pub fn keys_under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.index
            .range(prefix.to_owned()..)
            .take_while(move |k| k.starts_with(prefix))
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    fn stamp(&self, t: u64, skew_ms: i64) -> i64 {
        let raw = i64::try_from(UNIX_BASE_MS + t).unwrap_or(i64::MAX) + skew_ms;
        let g = i64::try_from(self.granularity_ms).unwrap_or(1);
        raw - raw.rem_euclid(g)
    }

    fn write(&mut self, key: &str, body: &[u8], t: u64, skew_ms: i64) -> Response {
        self.next_version += 1;
        let store_time_ms = self.stamp(t, skew_ms);
        let version = self.next_version;
        match self.objects.get_mut(key) {
            Some(object) => {
                object.body.clear();
                object.body.extend_from_slice(body);
                object.version = version;
                object.store_time_ms = store_time_ms;
            }
            None => {
                self.index.insert(key.to_owned());
                self.objects.insert(
                    key.to_owned(),
                    Object {
                        body: body.to_vec(),
                        version,
                        store_time_ms,
                    },
                );
            }
        }
        Response::Written {
            version: Version::new(version.to_string()),
            store_time_ms: self.write_returns_time.then_some(store_time_ms),
        }
    }

    /// Writes `body` at `key` unconditionally, outside any worker (a
    /// foreign writer, or setting up a scenario).
    pub fn force_put(&mut self, key: &str, body: &[u8], t: u64) -> u64 {
        self.write(key, body, t, 0);
        self.next_version
    }

    /// Deletes `key` outside any worker (an operator, a lifecycle rule);
    /// true if it was there.
    pub fn force_delete(&mut self, key: &str) -> bool {
        let found = self.objects.remove(key).is_some();
        if found {
            self.index.remove(key);
        }
        found
    }

    /// Writes `body` at `key` unconditionally with the store's clock
    /// `skew_ms` off true time `t`; the new version.
    pub fn force_put_skewed(&mut self, key: &str, body: &[u8], t: u64, skew_ms: i64) -> u64 {
        self.write(key, body, t, skew_ms);
        self.next_version
    }

    /// Writes `body` at `key` with a given store timestamp (setting up a
    /// stale lease left by a long-dead leader).
    pub fn force_put_at(&mut self, key: &str, body: &[u8], store_time_ms: i64) {
        self.next_version += 1;
        self.index.insert(key.to_owned());
        self.objects.insert(
            key.to_owned(),
            Object {
                body: body.to_vec(),
                version: self.next_version,
                store_time_ms,
            },
        );
    }

    /// Applies one request atomically at true time `t`, stamping writes with
    /// the store clock `t + skew_ms`.
    pub fn apply(&mut self, request: &Request, t: u64, skew_ms: i64) -> Response {
        match request {
            Request::Get { key, if_changed } => match self.objects.get(key) {
                None => Response::Absent,
                Some(o) if if_changed.as_ref().is_some_and(|v| same(v, o.version)) => {
                    Response::Unchanged
                }
                Some(o) => Response::Object {
                    body: o.body.clone(),
                    version: Version::new(o.version.to_string()),
                    store_time_ms: Some(o.store_time_ms),
                },
            },
            Request::Create { key, body } => {
                if self.objects.contains_key(key) {
                    Response::AlreadyExists
                } else {
                    self.write(key, body, t, skew_ms)
                }
            }
            Request::CompareAndSwap {
                key,
                expected,
                body,
            } => match self.objects.get(key) {
                Some(o) if same(expected, o.version) => self.write(key, body, t, skew_ms),
                _ => Response::Conflict,
            },
            Request::Put { key, body } => self.write(key, body, t, skew_ms),
            Request::List { prefix } => {
                let entries: Vec<Listed> = self
                    .index
                    .range(prefix.clone()..)
                    .take_while(|k| k.starts_with(prefix.as_str()))
                    .filter_map(|k| {
                        self.objects.get(k).map(|o| Listed {
                            key: k.clone(),
                            version: Version::new(o.version.to_string()),
                        })
                    })
                    .collect();
                let pages = entries.len().div_ceil(LIST_PAGE).max(1) as u64;
                self.extra_list_pages += pages - 1;
                Response::Listed(entries)
            }
            Request::Delete { key, if_version } => match (if_version, self.objects.get(key)) {
                (Some(v), Some(o)) if !same(v, o.version) => Response::Conflict,
                (Some(_), None) => Response::Conflict,
                _ => {
                    if self.objects.remove(key).is_some() {
                        self.index.remove(key);
                    }
                    Response::Deleted
                }
            },
        }
    }
}

fn same(version: &Version, current: u64) -> bool {
    version.as_str().parse::<u64>().ok() == Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_conditional_delete_and_pages() {
        let mut s = SimStore::new(1000, true);
        let Response::Written {
            version,
            store_time_ms,
        } = s.apply(
            &Request::Put {
                key: "a".into(),
                body: vec![1],
            },
            1500,
            0,
        )
        else {
            panic!()
        };
        assert_eq!(store_time_ms, Some(1_700_000_001_000));
        let cas = |v: &Version| Request::CompareAndSwap {
            key: "a".into(),
            expected: v.clone(),
            body: vec![2],
        };
        let Response::Written { version: v2, .. } = s.apply(&cas(&version), 2000, 0) else {
            panic!()
        };
        assert_eq!(s.apply(&cas(&version), 2001, 0), Response::Conflict);
        let get = Request::Get {
            key: "a".into(),
            if_changed: Some(v2.clone()),
        };
        assert_eq!(s.apply(&get, 2002, 0), Response::Unchanged);
        let del = |v: &Version| Request::Delete {
            key: "a".into(),
            if_version: Some(v.clone()),
        };
        assert_eq!(s.apply(&del(&version), 2003, 0), Response::Conflict);
        assert_eq!(s.apply(&del(&v2), 2004, 0), Response::Deleted);
        for i in 0..2001 {
            s.force_put(&format!("w/{i:05}"), b"x", 0);
        }
        let Response::Listed(entries) = s.apply(
            &Request::List {
                prefix: "w/".into(),
            },
            0,
            0,
        ) else {
            panic!()
        };
        assert_eq!(entries.len(), 2001);
        assert_eq!(s.extra_list_pages, 2);
    }
}
