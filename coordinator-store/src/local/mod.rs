//! [`LocalDirStore`]: a [`LeaseStore`] in a directory, with real
//! create-if-absent, compare-and-swap and conditional delete between the
//! processes of **one machine**.
//!
//! # Single host only
//!
//! This store is safe between threads and OS processes on one host, on a
//! local filesystem (ext4, xfs, btrfs, APFS, tmpfs). Network filesystems (NFS,
//! SMB, many FUSE mounts) may not honour `flock`-style locks, or honour them
//! only per client, and then two machines can both win a compare-and-swap.
//! **Do not share a `LocalDirStore` directory between machines**: use an
//! object store for that.
//!
//! # Network file systems are refused
//!
//! On Linux the store reads the file system type (`statfs`) of its lock
//! directory when it first takes a lock, and
//! [`open`](crate::open) reads that of the directory (or of its nearest
//! existing parent) before handing the store out. NFS, SMB/CIFS, CephFS,
//! AFS, Coda, 9P, GFS2, OCFS2, Lustre, NCP and every FUSE mount (sshfs,
//! s3fs, gcsfuse, but also fuse-overlayfs) are refused with
//! [`StoreError::Misconfigured`], which names the file system, unless
//! [`LocalDirStore::with_network_filesystem_allowed`] (URL:
//! `file:///dir?allow_network_filesystem=true`) says the user has verified
//! that its locks hold between every process and machine that uses the
//! directory. On other systems the type is not checked: keeping the
//! directory on a local disk is up to you. A file system mounted *below*
//! the store's directory is not detected either.
//!
//! # On-disk layout
//!
//! ```text
//! <root>/<key>                    the object's bytes, nothing else
//! <root>/<dir of key>/.tmp.<name> the write in progress (or left by a crash)
//! <root>/.locks/<nn>.lock         lock files, 256 stripes, never renamed
//! ```
//!
//! # How a conditional write works
//!
//! 1. Take an exclusive lock (`File::try_lock`, `flock` on Unix) on the lock
//!    file of the key's stripe (a digest of the key picks one of 256). Lock
//!    files are never renamed or deleted: a lock on the data file itself would
//!    be worthless, because the rename in step 4 replaces its inode and the
//!    next writer would lock a different file. Two keys that share a stripe
//!    only wait for each other.
//! 2. Read the current content and compare its digest with the expected
//!    version (or check that there is no file, for create).
//! 3. Write `.tmp.<name>` in the same directory, `fsync` it.
//! 4. `rename` it over the target (atomic: readers see the old file or the
//!    new one, never a torn one), then `fsync` the directory so the rename
//!    survives a crash.
//!
//! Reads take no lock: an open file descriptor keeps reading the inode it
//! opened, and a written inode is never modified again. A crash at any point
//! leaves the old or the new value; a leftover temp file is ignored by
//! listings ([`list_page`](LeaseStore::list_page)), overwritten by the next write of its key,
//! removed by the next delete, and [`LocalDirStore::remove_stale_temp_files`]
//! sweeps the whole tree.
//!
//! # A stopped lock holder
//!
//! Waiting for a lock is bounded by [`LocalDirStore::with_lock_timeout`]
//! (2 s by default): a write that cannot get it fails with
//! [`StoreError::Unavailable`] rather than hanging. That bounds each wait,
//! not the outage. A process stopped while it holds a lock (`SIGSTOP`,
//! `Ctrl-Z`, a debugger, a frozen container) keeps it for as long as it
//! stays stopped, and every key of that lock's stripe (about 1 in 256, the
//! lease among them if it hashes there) cannot be written until the holder
//! resumes or dies (the kernel releases the lock when the process exits).
//! Each holder writes its process id into the lock file when it takes the
//! lock, and the timeout error names it (`is process 1234 stopped?`); the
//! id is a hint (it is the one of the last process that got far enough to
//! record it, as seen from its PID namespace).
//!
//! # Versions and ABA
//!
//! A version is the 128-bit FNV-1a digest of the content (32 hex digits),
//! never the inode, mtime or size (an inode number is reused, an mtime has
//! coarse granularity and can be stepped). FNV-1a is implemented here rather
//! than pulling in `sha2`: versions only have to tell contents apart, not
//! resist an adversary (anyone who can write to the directory can write any
//! bytes anyway), and with an odd multiplier two bodies of the same length
//! that differ in a single byte can never collide.
//!
//! Because versions are content digests, writing the same bytes again brings
//! the old version back (ABA): a compare-and-swap holding a version read
//! before an intervening write would succeed if the bytes returned to what
//! they were. S3's ETag (an MD5) behaves the same. The coordinator's records
//! carry a nonce and a counter that change on every write, so their bodies,
//! and therefore their versions, never repeat.
//!
//! # Store times
//!
//! Store times are the file's mtime in milliseconds. The machine's clock can
//! be stepped by NTP, so [`Capabilities::trusted_clock`] is false.
//!
//! # Limits
//!
//! * A key cannot be both an object and a prefix of other keys (`a` and
//!   `a/b`): a path is a file or a directory. Other stores allow it.
//! * Directories left empty by deletes stay (removing them would race with a
//!   concurrent create under them).
//! * Listing reads every listed file to compute its version.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    Capabilities, Conditional, LeaseStore, ObjectMeta, StoreError, StoredObject, Version, Written,
};

mod error;
mod files;
mod filesystem;
mod lock;
mod paths;
mod version;
mod walk;

#[cfg(test)]
mod tests;

use error::{store_err, LocalError};
use filesystem::{statfs_magic, FsMagic};
pub(crate) use version::fnv1a_128;
use version::version_of;

const BACKEND: &str = "local";
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// A [`LeaseStore`] in a local directory, safe between the processes of one
/// machine (and never between machines). See the [module docs](self).
///
/// Cloning is cheap and shares the configuration.
///
/// # Examples
///
/// ```
/// use coordinator_store::{LeaseStore, LocalDirStore};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = LocalDirStore::new(dir.path().to_path_buf());
/// let written = store.create("ns/state.json", "v1".into()).await?;
/// let object = store.get("ns/state.json").await?.expect("just written");
/// assert_eq!(object.version, written.version);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LocalDirStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    lock_timeout: Duration,
    /// The user's override of the refusal of network file systems.
    allow_network_filesystem: bool,
    fs_magic: FsMagic,
    /// Set once the lock directory's file system passed the check; a
    /// refusal is not cached, so it is reported on every write.
    fs_checked: OnceLock<()>,
}

impl Inner {
    fn new(root: PathBuf) -> Self {
        Self {
            root,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            allow_network_filesystem: false,
            fs_magic: statfs_magic,
            fs_checked: OnceLock::new(),
        }
    }

    /// A copy of the configuration, with nothing learnt yet.
    fn reconfigured(&self, change: impl FnOnce(&mut Self)) -> Self {
        let mut inner = Self {
            root: self.root.clone(),
            lock_timeout: self.lock_timeout,
            allow_network_filesystem: self.allow_network_filesystem,
            fs_magic: self.fs_magic,
            fs_checked: OnceLock::new(),
        };
        change(&mut inner);
        inner
    }
}

impl fmt::Debug for LocalDirStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalDirStore")
            .field("root", &self.inner.root)
            .field("lock_timeout", &self.inner.lock_timeout)
            .field(
                "allow_network_filesystem",
                &self.inner.allow_network_filesystem,
            )
            .finish()
    }
}

impl LocalDirStore {
    /// A store rooted at `root`. The directory is created on the first
    /// write; until then reads find nothing.
    ///
    /// Nothing is checked here: the first write refuses a directory on a
    /// network file system (see the [module docs](self)), and
    /// [`check_filesystem`](Self::check_filesystem) checks at once.
    pub fn new(root: PathBuf) -> Self {
        Self {
            inner: Arc::new(Inner::new(root)),
        }
    }

    /// Sets how long a write waits for a key's lock before failing with
    /// [`StoreError::Unavailable`] (2 s by default).
    pub fn with_lock_timeout(self, lock_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(
                self.inner
                    .reconfigured(|inner| inner.lock_timeout = lock_timeout),
            ),
        }
    }

    /// Allows (with `true`) a directory on a network, cluster or FUSE file
    /// system, which the store otherwise refuses (see the
    /// [module docs](self#network-file-systems-are-refused)). The URL form
    /// is `file:///dir?allow_network_filesystem=true`.
    ///
    /// Only allow one whose locks you have verified: the store's
    /// compare-and-swap is as good as the file system's `flock` between
    /// every process and machine that uses the directory, and where a lock
    /// is not honoured two writers can both win, which means two leaders.
    /// The store logs a warning when it first takes a lock there.
    pub fn with_network_filesystem_allowed(self, allowed: bool) -> Self {
        Self {
            inner: Arc::new(
                self.inner
                    .reconfigured(|inner| inner.allow_network_filesystem = allowed),
            ),
        }
    }

    /// Checks now, without writing, that the directory (or, if it does not
    /// exist yet, its nearest existing parent) is not on a network, cluster
    /// or FUSE file system; [`open`](crate::open) calls it. Writes check
    /// the lock directory anyway, so calling this is optional.
    ///
    /// Always succeeds where the file system type is not detected (systems
    /// other than Linux) and under
    /// [`with_network_filesystem_allowed`](Self::with_network_filesystem_allowed).
    ///
    /// # Errors
    ///
    /// [`StoreError::Misconfigured`] naming the file system and what to do
    /// instead; [`StoreError::Backend`] (or `Misconfigured` for a permission
    /// error) if its type cannot be read.
    pub fn check_filesystem(&self) -> Result<(), StoreError> {
        let root = &self.inner.root;
        // `statfs` needs an existing path; the store's directories will be
        // created on the file system of the nearest existing one.
        let existing = root
            .ancestors()
            .map(|dir| {
                if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                }
            })
            .find(|dir| dir.exists())
            .unwrap_or(root);
        // The result is only cached when it concerns the directory itself.
        self.inner
            .check_filesystem_at(existing, existing == root)
            .map_err(|e| store_err("open", "", e))
    }

    /// The directory this store lives in.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Removes every temp file a crashed writer left behind, taking each
    /// key's lock first so that no write in progress loses its temp file.
    /// Returns how many were removed.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the tree cannot be read or a file cannot
    /// be removed.
    pub async fn remove_stale_temp_files(&self) -> Result<usize, StoreError> {
        let inner = self.inner.clone();
        blocking("remove_stale_temp_files", "", false, move || {
            inner.remove_stale_temp_files()
        })
        .await
    }
}

/// Runs blocking filesystem work off the async threads: on tokio's blocking
/// pool inside a runtime, inline outside one.
async fn blocking<T, F>(op: &'static str, key: &str, write: bool, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => match handle.spawn_blocking(f).await {
            Ok(result) => result,
            // A write whose task died may or may not have renamed its file.
            Err(join) if write => Err(StoreError::Ambiguous {
                op,
                key: key.to_owned(),
                backend: BACKEND,
                source: Box::new(LocalError::Join(join)),
            }),
            Err(join) => Err(store_err(op, key, LocalError::Join(join))),
        },
        Err(_) => f(),
    }
}

#[async_trait]
impl LeaseStore for LocalDirStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            conditional_delete: true,
            // Comparing a digest costs no transfer here.
            conditional_get: true,
            // The machine's clock can be stepped by NTP.
            trusted_clock: false,
        }
    }

    /// Reads the object (no lock needed: renames are atomic).
    ///
    /// # Cancel safety
    /// Safe: dropping the future abandons a read.
    async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        let inner = self.inner.clone();
        let owned = key.to_owned();
        blocking("get", key, false, move || inner.get(&owned)).await
    }

    async fn get_if_changed(&self, key: &str, known: &Version) -> Result<Conditional, StoreError> {
        let inner = self.inner.clone();
        let owned = key.to_owned();
        let known = known.clone();
        blocking("get_if_changed", key, false, move || {
            Ok(match inner.get(&owned)? {
                None => Conditional::Absent,
                Some(object) if object.version == known => Conditional::Unchanged,
                Some(object) => Conditional::Changed(object),
            })
        })
        .await
    }

    /// Creates the object under the key's lock.
    ///
    /// # Cancel safety
    /// Dropping the future does not stop the write: it runs to completion on
    /// the blocking pool, like a request already sent.
    async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        let inner = self.inner.clone();
        let owned = key.to_owned();
        blocking("create", key, true, move || {
            inner.locked("create", &owned, |target, current| match current {
                Some(_) => Err(StoreError::AlreadyExists {
                    key: owned.clone(),
                    backend: BACKEND,
                }),
                None => inner.write_atomic("create", &owned, target, &body),
            })
        })
        .await
    }

    /// Replaces the object under the key's lock if its digest is `expected`.
    ///
    /// # Cancel safety
    /// Dropping the future does not stop the write (see
    /// [`create`](LeaseStore::create)).
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &Version,
        body: Bytes,
    ) -> Result<Written, StoreError> {
        let inner = self.inner.clone();
        let owned = key.to_owned();
        let expected = expected.clone();
        blocking("compare_and_swap", key, true, move || {
            inner.locked(
                "compare_and_swap",
                &owned,
                |target, current| match current {
                    Some((bytes, _)) if version_of(&bytes) == expected => {
                        inner.write_atomic("compare_and_swap", &owned, target, &body)
                    }
                    _ => Err(StoreError::Conflict {
                        key: owned.clone(),
                        backend: BACKEND,
                    }),
                },
            )
        })
        .await
    }

    /// Writes the object under the key's lock (the lock also guards the
    /// key's temp file).
    async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        let inner = self.inner.clone();
        let owned = key.to_owned();
        blocking("put", key, true, move || {
            inner.locked("put", &owned, |target, _| {
                inner.write_atomic("put", &owned, target, &body)
            })
        })
        .await
    }

    /// Lists the data files under `prefix` (whole segments) after
    /// `start_after`, sorted by key, skipping temp files and lock files.
    /// Walks the names under `prefix`, then reads only the page's files
    /// (for their versions): the head of a deep prefix costs one directory
    /// walk and `limit` reads.
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        let inner = self.inner.clone();
        let owned = prefix.to_owned();
        let after = start_after.map(str::to_owned);
        blocking("list", prefix, false, move || {
            inner.list_page(&owned, after.as_deref(), limit)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let owned = key.to_owned();
        blocking("delete", key, true, move || {
            inner.locked("delete", &owned, |target, _| {
                inner.remove("delete", &owned, target)
            })
        })
        .await
    }

    async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let owned = key.to_owned();
        let expected = expected.clone();
        blocking("delete_if_version", key, true, move || {
            inner.locked(
                "delete_if_version",
                &owned,
                |target, current| match current {
                    Some((bytes, _)) if version_of(&bytes) == expected => {
                        inner.remove("delete_if_version", &owned, target)
                    }
                    _ => Err(StoreError::Conflict {
                        key: owned.clone(),
                        backend: BACKEND,
                    }),
                },
            )
        })
        .await
    }
}
