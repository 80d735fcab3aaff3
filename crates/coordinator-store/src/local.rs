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
//! [`list`](LeaseStore::list), overwritten by the next write of its key,
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
use std::fs::{self, File, Metadata, OpenOptions};
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    Capabilities, Conditional, LeaseStore, ObjectMeta, StoreError, StoreTime, StoredObject,
    Version, Written,
};

const BACKEND: &str = "local";
const LOCK_DIR: &str = ".locks";
const TEMP_PREFIX: &str = ".tmp.";
const LOCK_STRIPES: u128 = 256;
const MAX_KEY_LEN: usize = 1024;
const MAX_SEGMENT_LEN: usize = 200;
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

/// How the store learns a file system's type: its `statfs` magic number,
/// or `None` where this system does not say. A field so that tests can
/// pretend to be on NFS.
type FsMagic = fn(&Path) -> io::Result<Option<u32>>;

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

/// What went wrong in the local store, carried as the source of a
/// [`StoreError`].
#[derive(Debug, thiserror::Error)]
enum LocalError {
    #[error("invalid key: {reason}; keys are relative `/`-separated paths without empty, `.` or `..` segments, and may not use the reserved names `.locks` (first segment) or `.tmp.*`")]
    InvalidKey { reason: &'static str },
    #[error("could not {action} `{}`: {source}; {hint}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "waited {waited:?} for the lock `{}`: {}; until it is released no key of this lock's \
         stripe can be written, so retry later",
        path.display(),
        holder_hint(*.holder)
    )]
    LockTimeout {
        path: PathBuf,
        waited: Duration,
        /// The process id the holder wrote into the lock file, if any.
        holder: Option<u32>,
    },
    #[error(
        "`{}` is on a file system of type {name} (statfs magic {magic:#x}), and the local directory \
         store refuses network, cluster and FUSE file systems: their locks may not be honoured \
         (or only per client), so a compare-and-swap could let two writers win and two workers \
         lead at once; keep the directory on a local disk (ext4, xfs, btrfs, tmpfs) or use an \
         object store (s3://, gs://, az://), or, only if you have verified that this file \
         system honours flock between every process and machine that uses the directory, add \
         ?allow_network_filesystem=true to the file:// URL \
         (LocalDirStore::with_network_filesystem_allowed(true))",
        path.display()
    )]
    NetworkFilesystem {
        path: PathBuf,
        name: &'static str,
        magic: u32,
    },
    #[error("the blocking task failed: {0}")]
    Join(#[source] tokio::task::JoinError),
}

const HINT_IO: &str = "check that the directory exists, is writable and is on a local filesystem";

const HINT_STATFS: &str = "the store reads the file system type to refuse network file \
    systems; if it cannot be read here and you have verified that this file system honours \
    flock, add ?allow_network_filesystem=true to the file:// URL";

/// The lock timeout's words about who holds the lock.
fn holder_hint(holder: Option<u32>) -> String {
    match holder {
        Some(pid) if pid == std::process::id() => format!(
            "it is held by process {pid}, this one (recorded in the lock file): another of its \
             threads is slow or stuck in a write"
        ),
        Some(pid) => format!(
            "it is held by process {pid} (recorded in the lock file): is process {pid} stopped? \
             One stopped by SIGSTOP, Ctrl-Z, a debugger or a frozen container keeps its locks \
             until `kill -CONT {pid}` resumes it, one that hangs until it exits"
        ),
        None => "another process or thread holds it (it recorded no pid); is one stopped or \
                 hung?"
            .to_owned(),
    }
}

/// The statfs magic numbers of file systems whose locks the store cannot
/// rely on, with their names. Checked against Linux's `linux/magic.h`
/// (GFS2 and Lustre: their own headers); FUSE covers every FUSE mount.
const NETWORK_FILESYSTEMS: &[(u32, &str)] = &[
    (0x6969, "NFS"),
    (0x517B, "SMB"),
    (0xFE53_4D42, "SMB2"),
    (0xFF53_4D42, "CIFS"),
    (0x6573_5546, "FUSE"),
    (0x00C3_6400, "CephFS"),
    (0x5346_414F, "AFS"),
    (0x6B41_4653, "AFS (kAFS)"),
    (0x7375_7245, "Coda"),
    (0x0102_1997, "9P"),
    (0x0116_1970, "GFS2"),
    (0x7461_636F, "OCFS2"),
    (0x0BD0_0BD0, "Lustre"),
    (0x564C, "NCP"),
];

/// The name of the network, cluster or FUSE file system with this statfs
/// magic number, or `None` for any other (local) one.
fn network_filesystem(magic: u32) -> Option<&'static str> {
    NETWORK_FILESYSTEMS
        .iter()
        .find(|(known, _)| *known == magic)
        .map(|(_, name)| *name)
}

/// Whether a file system of type `magic` at `path` may hold the store.
fn filesystem_verdict(path: &Path, magic: u32, allowed: bool) -> Result<(), LocalError> {
    match network_filesystem(magic) {
        Some(name) if allowed => {
            tracing::warn!(
                backend = BACKEND,
                path = %path.display(),
                filesystem = name,
                "the store's directory is on a network file system, allowed by \
                 allow_network_filesystem: compare-and-swap is only as safe as its locks"
            );
            Ok(())
        }
        Some(name) => Err(LocalError::NetworkFilesystem {
            path: path.to_path_buf(),
            name,
            magic,
        }),
        None => Ok(()),
    }
}

/// The statfs magic number of the file system holding `path`.
#[cfg(target_os = "linux")]
fn statfs_magic(path: &Path) -> io::Result<Option<u32>> {
    let stat = rustix::fs::statfs(path)?;
    // Magic numbers are 32 bits. `f_type` is a C `long`, negative on
    // 32-bit targets for magics above 0x7fff_ffff (CIFS, SMB2): its low
    // 32 bits are the magic everywhere.
    #[allow(clippy::unnecessary_cast, reason = "`f_type` is u32 on s390x only")]
    Ok(Some(stat.f_type as u32))
}

/// Elsewhere the type is not detected (see the module docs).
#[cfg(not(target_os = "linux"))]
fn statfs_magic(_path: &Path) -> io::Result<Option<u32>> {
    Ok(None)
}

/// Writes this process's id at the start of a lock file this process has
/// just locked, so that a writer that times out waiting can name the
/// holder. Fixed width, so it always covers a longer id written before
/// without a truncate. A failure only loses the hint, not the lock, so it
/// is logged and ignored.
fn record_holder(file: &File, path: &Path) {
    let pid = format!("{:>10}\n", std::process::id());
    let mut writer = file;
    let written = writer
        .seek(SeekFrom::Start(0))
        .and_then(|_| writer.write_all(pid.as_bytes()));
    if let Err(e) = written {
        tracing::debug!(
            backend = BACKEND,
            path = %path.display(),
            error = %e,
            "could not record the lock holder's pid"
        );
    }
}

/// The process id the holder of a lock file recorded, if it did.
fn read_holder(file: &File) -> Option<u32> {
    let mut reader = file;
    reader.seek(SeekFrom::Start(0)).ok()?;
    let mut buf = [0u8; 32];
    let read = reader.read(&mut buf).ok()?;
    std::str::from_utf8(buf.get(..read)?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn io_err(action: &'static str, path: &Path, source: io::Error) -> LocalError {
    LocalError::Io {
        action,
        path: path.to_path_buf(),
        hint: HINT_IO,
        source,
    }
}

/// Maps a local failure of `op` on `key` into the shared error type.
fn store_err(op: &'static str, key: &str, error: LocalError) -> StoreError {
    match &error {
        LocalError::Io { source, path, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
            StoreError::Misconfigured {
                backend: BACKEND,
                message: format!(
                    "{op} on `{key}`: permission denied on `{}`; give this process read and write access to the store directory",
                    path.display()
                ),
            }
        }
        LocalError::NetworkFilesystem { .. } => StoreError::Misconfigured {
            backend: BACKEND,
            message: if key.is_empty() {
                format!("{op}: {error}")
            } else {
                format!("{op} on `{key}`: {error}")
            },
        },
        LocalError::LockTimeout { .. } => StoreError::Unavailable {
            key: key.to_owned(),
            backend: BACKEND,
            source: Box::new(error),
        },
        _ => StoreError::Backend {
            op,
            key: key.to_owned(),
            backend: BACKEND,
            source: Box::new(error),
        },
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

/// The 128-bit FNV-1a digest of `bytes`.
pub(crate) fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes.iter().fold(OFFSET, |hash, &byte| {
        (hash ^ u128::from(byte)).wrapping_mul(PRIME)
    })
}

fn version_of(bytes: &[u8]) -> Version {
    Version::new(format!("{:032x}", fnv1a_128(bytes)))
}

fn mtime_ms(meta: &Metadata) -> Option<StoreTime> {
    let modified = meta.modified().ok()?;
    Some(StoreTime(match modified.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }))
}

/// Checks a key (or, with `prefix`, a listing prefix, which may be empty or
/// end in `/`).
fn validate(key: &str, prefix: bool) -> Result<(), LocalError> {
    let invalid = |reason| Err(LocalError::InvalidKey { reason });
    let key = if prefix {
        if key.is_empty() {
            return Ok(());
        }
        key.strip_suffix('/').unwrap_or(key)
    } else {
        key
    };
    if key.is_empty() {
        return invalid("it is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return invalid("it is longer than 1024 bytes");
    }
    if key.contains(['\0', '\\']) {
        return invalid("it contains a NUL byte or a backslash");
    }
    for (index, segment) in key.split('/').enumerate() {
        if segment.is_empty() {
            return invalid("it has an empty segment (a leading, trailing or double `/`)");
        }
        if segment == "." || segment == ".." {
            return invalid("it has a `.` or `..` segment");
        }
        if segment.len() > MAX_SEGMENT_LEN {
            return invalid("a segment is longer than 200 bytes");
        }
        if segment.starts_with(TEMP_PREFIX) {
            return invalid("a segment starts with the reserved `.tmp.`");
        }
        if index == 0 && segment == LOCK_DIR {
            return invalid("its first segment is the reserved `.locks`");
        }
    }
    Ok(())
}

/// The current content of a file and its metadata, or `None` if there is no
/// file (a directory counts as no object).
fn read_file(path: &Path) -> Result<Option<(Vec<u8>, Metadata)>, LocalError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Ok(None),
        Err(e) => return Err(io_err("open", path, e)),
    };
    let meta = file.metadata().map_err(|e| io_err("stat", path, e))?;
    if !meta.is_file() {
        return Ok(None);
    }
    let mut body = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut body)
        .map_err(|e| io_err("read", path, e))?;
    Ok(Some((body, meta)))
}

fn stored(body: Vec<u8>, meta: &Metadata) -> StoredObject {
    let version = version_of(&body);
    StoredObject {
        body: Bytes::from(body),
        version,
        store_time: mtime_ms(meta),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing ancestors, fsyncing each new entry's
/// parent so the directories survive a crash.
fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => return Err(io::Error::from(io::ErrorKind::NotADirectory)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        ensure_dir(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

fn temp_path(target: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(TEMP_PREFIX);
    if let Some(file_name) = target.file_name() {
        name.push(file_name);
    }
    target.with_file_name(name)
}

/// Holds a key's stripe lock until dropped (closing the file releases it).
struct KeyLock {
    _file: File,
}

impl Inner {
    fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn lock_path(&self, key: &str) -> PathBuf {
        let stripe = fnv1a_128(key.as_bytes()) % LOCK_STRIPES;
        self.root.join(LOCK_DIR).join(format!("{stripe:02x}.lock"))
    }

    /// Takes the exclusive lock of `key`'s stripe, waiting at most
    /// `lock_timeout`.
    ///
    /// Every call opens the lock file anew: `flock` locks belong to an open
    /// file description, so a descriptor shared between threads would let
    /// them all in at once.
    fn lock(&self, key: &str) -> Result<KeyLock, LocalError> {
        let path = self.lock_path(key);
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        };
        let file = match open() {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let dir = self.root.join(LOCK_DIR);
                ensure_dir(&dir).map_err(|e| io_err("create the lock directory", &dir, e))?;
                open().map_err(|e| io_err("open the lock file", &path, e))?
            }
            Err(e) => return Err(io_err("open the lock file", &path, e)),
        };
        // Before trusting the lock at all: on a network file system it may
        // not exclude anyone.
        self.check_filesystem_at(&path, true)?;
        let started = Instant::now();
        let mut pause = Duration::from_micros(20);
        loop {
            match file.try_lock() {
                Ok(()) => {
                    record_holder(&file, &path);
                    return Ok(KeyLock { _file: file });
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(io_err("lock", &path, e));
                }
            }
            let waited = started.elapsed();
            if waited >= self.lock_timeout {
                let holder = read_holder(&file);
                return Err(LocalError::LockTimeout {
                    path,
                    waited,
                    holder,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    /// Refuses a network file system at `path` (see the module docs),
    /// once; `cache` says whether a pass holds for the store's directory.
    fn check_filesystem_at(&self, path: &Path, cache: bool) -> Result<(), LocalError> {
        if self.fs_checked.get().is_some() {
            return Ok(());
        }
        match (self.fs_magic)(path) {
            Ok(Some(magic)) => filesystem_verdict(path, magic, self.allow_network_filesystem)?,
            // Not detected on this system.
            Ok(None) => {}
            // The user has vouched for the file system; the type was only
            // wanted to refuse it.
            Err(_) if self.allow_network_filesystem => {}
            Err(e) => {
                return Err(LocalError::Io {
                    action: "read the file system type (statfs) of",
                    path: path.to_path_buf(),
                    hint: HINT_STATFS,
                    source: e,
                })
            }
        }
        if cache {
            // Another thread may have set it first; either way it passed.
            let _ = self.fs_checked.set(());
        }
        Ok(())
    }

    /// Writes `body` to `target` by temp file, fsync, rename and directory
    /// fsync. The caller holds the key's lock.
    fn write_atomic(
        &self,
        op: &'static str,
        key: &str,
        target: &Path,
        body: &[u8],
    ) -> Result<Written, StoreError> {
        let err = |e| store_err(op, key, e);
        let dir = target.parent().unwrap_or(&self.root);
        ensure_dir(dir).map_err(|e| err(io_err("create the directory", dir, e)))?;
        let temp = temp_path(target);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(|e| err(io_err("create the temp file", &temp, e)))?;
        file.write_all(body)
            .map_err(|e| err(io_err("write the temp file", &temp, e)))?;
        file.sync_all()
            .map_err(|e| err(io_err("fsync the temp file", &temp, e)))?;
        let meta = file
            .metadata()
            .map_err(|e| err(io_err("stat the temp file", &temp, e)))?;
        drop(file);
        fs::rename(&temp, target)
            .map_err(|e| err(io_err("rename the temp file onto", target, e)))?;
        // The new content is visible now; if the directory cannot be synced
        // it may still be lost in a crash, so the outcome is unknown.
        sync_dir(dir).map_err(|e| StoreError::Ambiguous {
            op,
            key: key.to_owned(),
            backend: BACKEND,
            source: Box::new(io_err("fsync the directory", dir, e)),
        })?;
        Ok(Written {
            version: version_of(body),
            store_time: mtime_ms(&meta),
        })
    }

    fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        validate(key, false).map_err(|e| store_err("get", key, e))?;
        let current = read_file(&self.path_of(key)).map_err(|e| store_err("get", key, e))?;
        Ok(current.map(|(body, meta)| stored(body, &meta)))
    }

    /// Runs `write` under the key's lock, with the current content.
    fn locked<T>(
        &self,
        op: &'static str,
        key: &str,
        write: impl FnOnce(&Path, Option<(Vec<u8>, Metadata)>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        validate(key, false).map_err(|e| store_err(op, key, e))?;
        let _lock = self.lock(key).map_err(|e| store_err(op, key, e))?;
        let target = self.path_of(key);
        let current = read_file(&target).map_err(|e| store_err(op, key, e))?;
        write(&target, current)
    }

    fn remove(&self, op: &'static str, key: &str, target: &Path) -> Result<(), StoreError> {
        // A temp file can only be a crash's leftover while we hold the lock.
        let temp = temp_path(target);
        match fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(store_err(op, key, io_err("remove", &temp, e))),
        }
        match fs::remove_file(target) {
            Ok(()) => {}
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                return Ok(())
            }
            Err(e) => return Err(store_err(op, key, io_err("remove", target, e))),
        }
        let dir = target.parent().unwrap_or(&self.root);
        sync_dir(dir).map_err(|e| StoreError::Ambiguous {
            op,
            key: key.to_owned(),
            backend: BACKEND,
            source: Box::new(io_err("fsync the directory", dir, e)),
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        validate(prefix, true).map_err(|e| store_err("list", prefix, e))?;
        let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
        let dir = if trimmed.is_empty() {
            self.root.clone()
        } else {
            self.path_of(trimmed)
        };
        let mut out = Vec::new();
        self.walk(&dir, trimmed, &mut |key, path| {
            if let Some((body, meta)) = read_file(path)? {
                out.push(ObjectMeta {
                    key,
                    version: version_of(&body),
                    size: body.len() as u64,
                    store_time: mtime_ms(&meta),
                });
            }
            Ok(())
        })
        .map_err(|e| store_err("list", prefix, e))?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Calls `visit(key, path)` for every data file under `dir` (whose key
    /// prefix is `rel`), skipping temp files and the lock directory.
    fn walk(
        &self,
        dir: &Path,
        rel: &str,
        visit: &mut dyn FnMut(String, &Path) -> Result<(), LocalError>,
    ) -> Result<(), LocalError> {
        self.walk_entries(dir, rel, &mut |name, path, is_dir| {
            if name.starts_with(TEMP_PREFIX) {
                return Ok(());
            }
            let key = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            if is_dir {
                if rel.is_empty() && name == LOCK_DIR {
                    return Ok(());
                }
                self.walk(path, &key, visit)
            } else {
                visit(key, path)
            }
        })
    }

    /// Calls `visit(name, path, is_dir)` for each regular file and directory
    /// directly in `dir`; a missing `dir` (or a file there) has none.
    fn walk_entries(
        &self,
        dir: &Path,
        rel: &str,
        visit: &mut dyn FnMut(&str, &Path, bool) -> Result<(), LocalError>,
    ) -> Result<(), LocalError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                return Ok(())
            }
            Err(e) => return Err(io_err("read the directory", dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_err("read the directory", dir, e))?;
            let path = entry.path();
            let file_type = match entry.file_type() {
                Ok(file_type) => file_type,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("stat", &path, e)),
            };
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                tracing::warn!(
                    backend = BACKEND,
                    path = %path.display(),
                    prefix = rel,
                    "skipping a file whose name is not UTF-8"
                );
                continue;
            };
            if file_type.is_dir() {
                visit(&name, &path, true)?;
            } else if file_type.is_file() {
                visit(&name, &path, false)?;
            }
        }
        Ok(())
    }

    fn remove_stale_temp_files(&self) -> Result<usize, StoreError> {
        let mut temps = Vec::new();
        self.collect_temps(&self.root.clone(), "", &mut temps)
            .map_err(|e| store_err("remove_stale_temp_files", "", e))?;
        let mut removed = 0;
        for (key, temp) in temps {
            let _lock = self
                .lock(&key)
                .map_err(|e| store_err("remove_stale_temp_files", &key, e))?;
            match fs::remove_file(&temp) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(store_err(
                        "remove_stale_temp_files",
                        &key,
                        io_err("remove", &temp, e),
                    ))
                }
            }
        }
        Ok(removed)
    }

    /// Finds every temp file under `dir` with the key it belongs to.
    fn collect_temps(
        &self,
        dir: &Path,
        rel: &str,
        out: &mut Vec<(String, PathBuf)>,
    ) -> Result<(), LocalError> {
        self.walk_entries(dir, rel, &mut |name, path, is_dir| {
            let join = |name: &str| {
                if rel.is_empty() {
                    name.to_owned()
                } else {
                    format!("{rel}/{name}")
                }
            };
            if is_dir {
                if rel.is_empty() && name == LOCK_DIR {
                    return Ok(());
                }
                self.collect_temps(path, &join(name), out)
            } else {
                if let Some(target) = name.strip_prefix(TEMP_PREFIX) {
                    out.push((join(target), path.to_path_buf()));
                }
                Ok(())
            }
        })
    }
}

#[async_trait]
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` here would be boxed by #[async_trait]: the `*_unboxed` methods must return their `async` blocks"
)]
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

    crate::forward::boxed_methods_via_unboxed!();

    /// Reads the object (no lock needed: renames are atomic).
    ///
    /// # Cancel safety
    /// Safe: dropping the future abandons a read.
    fn get_unboxed<'a>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = Result<Option<StoredObject>, StoreError>> + Send + 'a {
        async move {
            let inner = self.inner.clone();
            let owned = key.to_owned();
            blocking("get", key, false, move || inner.get(&owned)).await
        }
    }

    fn get_if_changed_unboxed<'a>(
        &'a self,
        key: &'a str,
        known: &'a Version,
    ) -> impl Future<Output = Result<Conditional, StoreError>> + Send + 'a {
        async move {
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
    }

    /// Creates the object under the key's lock.
    ///
    /// # Cancel safety
    /// Dropping the future does not stop the write: it runs to completion on
    /// the blocking pool, like a request already sent.
    fn create_unboxed<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send + 'a {
        async move {
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
    }

    /// Replaces the object under the key's lock if its digest is `expected`.
    ///
    /// # Cancel safety
    /// Dropping the future does not stop the write (see
    /// [`create`](LeaseStore::create)).
    fn compare_and_swap_unboxed<'a>(
        &'a self,
        key: &'a str,
        expected: &'a Version,
        body: Bytes,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send + 'a {
        async move {
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
    }

    /// Writes the object under the key's lock (the lock also guards the
    /// key's temp file).
    fn put_unboxed<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send + 'a {
        async move {
            let inner = self.inner.clone();
            let owned = key.to_owned();
            blocking("put", key, true, move || {
                inner.locked("put", &owned, |target, _| {
                    inner.write_atomic("put", &owned, target, &body)
                })
            })
            .await
        }
    }

    /// Lists the data files under `prefix` (whole segments), sorted by key,
    /// skipping temp files and lock files. Reads each file for its version.
    fn list_unboxed<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Future<Output = Result<Vec<ObjectMeta>, StoreError>> + Send + 'a {
        async move {
            let inner = self.inner.clone();
            let owned = prefix.to_owned();
            blocking("list", prefix, false, move || inner.list(&owned)).await
        }
    }

    fn delete_unboxed<'a>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a {
        async move {
            let inner = self.inner.clone();
            let owned = key.to_owned();
            blocking("delete", key, true, move || {
                inner.locked("delete", &owned, |target, _| {
                    inner.remove("delete", &owned, target)
                })
            })
            .await
        }
    }

    fn delete_if_version_unboxed<'a>(
        &'a self,
        key: &'a str,
        expected: &'a Version,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a {
        async move {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_128_matches_reference_vectors() {
        assert_eq!(
            format!("{:032x}", fnv1a_128(b"")),
            "6c62272e07bb014262b821756295c58d"
        );
        assert_eq!(
            format!("{:032x}", fnv1a_128(b"a")),
            "d228cb696f1a8caf78912b704e4a8964"
        );
        assert_eq!(
            format!("{:032x}", fnv1a_128(b"foobar")),
            "343e1662793c64bf6f0d3597ba446f18"
        );
    }

    #[test]
    fn keys_are_validated() {
        for good in ["a", "a/b.json", "ns/workers/w-1.json", ".hidden/x"] {
            assert!(validate(good, false).is_ok(), "{good}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "../a", "a/./b", "a\\b", ".locks/x", "a/.tmp.b",
        ] {
            assert!(validate(bad, false).is_err(), "{bad:?}");
        }
        assert!(validate("", true).is_ok());
        assert!(validate("a/", true).is_ok());
        assert!(validate("/a", true).is_err());
    }

    #[tokio::test]
    async fn invalid_key_names_key_and_backend() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path().to_path_buf());
        let err = store.put("../escape", "x".into()).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("../escape") && text.contains("local"),
            "{text}"
        );
        assert!(!dir.path().parent().unwrap().join("escape").exists());
    }

    #[tokio::test]
    async fn works_outside_a_runtime_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path().join("nested/root"));
        let written = futures::executor::block_on(store.create("k", "v".into())).unwrap();
        let got = futures::executor::block_on(store.get("k"))
            .unwrap()
            .unwrap();
        assert_eq!(got.version, written.version);
        assert_eq!(written.version, version_of(b"v"));
    }

    /// Each network, cluster or FUSE file system by its statfs magic (as in
    /// Linux's `linux/magic.h`), written out here rather than read from the
    /// table under test.
    #[test]
    fn network_filesystems_are_recognised_by_their_magic() {
        for (magic, name) in [
            (0x6969, "NFS"),
            (0x517B, "SMB"),
            (0xFE53_4D42, "SMB2"),
            (0xFF53_4D42, "CIFS"),
            (0x6573_5546, "FUSE"),
            (0x00C3_6400, "CephFS"),
            (0x5346_414F, "AFS"),
            (0x6B41_4653, "AFS (kAFS)"),
            (0x7375_7245, "Coda"),
            (0x0102_1997, "9P"),
            (0x0116_1970, "GFS2"),
            (0x7461_636F, "OCFS2"),
            (0x0BD0_0BD0, "Lustre"),
            (0x564C, "NCP"),
        ] {
            assert_eq!(network_filesystem(magic), Some(name), "{magic:#x}");
            let err = filesystem_verdict(Path::new("/mnt/shared"), magic, false)
                .expect_err("refused without the override");
            assert!(err.to_string().contains(name), "{err}");
            assert!(
                filesystem_verdict(Path::new("/mnt/shared"), magic, true).is_ok(),
                "{name}: allowed by the override"
            );
        }
        // ext4, tmpfs, xfs, btrfs, overlayfs, zfs, APFS-less Linux locals.
        for magic in [
            0xEF53,
            0x0102_1994,
            0x5846_5342,
            0x9123_683E,
            0x794C_7630,
            0x2FC1_2FC1,
        ] {
            assert_eq!(network_filesystem(magic), None, "{magic:#x}");
            assert!(filesystem_verdict(Path::new("/var/lib/x"), magic, false).is_ok());
        }
    }

    #[test]
    fn the_refusal_says_what_was_found_why_and_what_to_do() {
        let err = filesystem_verdict(Path::new("/mnt/nfs/coord"), 0x6969, false).unwrap_err();
        let StoreError::Misconfigured { backend, message } = store_err("create", "ns/k", err)
        else {
            panic!("a refusal is Misconfigured, never retried");
        };
        assert_eq!(backend, "local");
        for needle in [
            "`ns/k`",
            "/mnt/nfs/coord",
            "NFS",
            "0x6969",
            "locks may not be honoured",
            "two writers win",
            "local disk",
            "object store",
            "allow_network_filesystem=true",
        ] {
            assert!(message.contains(needle), "{needle:?} missing: {message}");
        }
    }

    fn pretend_nfs(_: &Path) -> io::Result<Option<u32>> {
        Ok(Some(0x6969))
    }

    fn on_pretend_nfs(root: PathBuf) -> LocalDirStore {
        let mut inner = Inner::new(root);
        inner.fs_magic = pretend_nfs;
        LocalDirStore {
            inner: Arc::new(inner),
        }
    }

    #[tokio::test]
    async fn a_store_on_nfs_refuses_writes_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let store = on_pretend_nfs(dir.path().join("store"));
        let refused = |result: Result<_, StoreError>| match result {
            Err(StoreError::Misconfigured { message, .. }) => {
                assert!(message.contains("NFS"), "{message}")
            }
            other => panic!("expected the NFS refusal, got {other:?}"),
        };
        refused(store.check_filesystem());
        refused(store.create("k", "v".into()).await.map(|_| ()));
        // Not cached: every write is refused.
        refused(store.put("k", "v".into()).await.map(|_| ()));
        assert!(store.get("k").await.unwrap().is_none(), "nothing written");

        // The override, and the builder keeps the rest of the configuration.
        let allowed = store
            .with_lock_timeout(Duration::from_millis(100))
            .with_network_filesystem_allowed(true);
        allowed.check_filesystem().unwrap();
        allowed.create("k", "v".into()).await.unwrap();
        assert_eq!(allowed.inner.lock_timeout, Duration::from_millis(100));
        // Still on the pretend NFS: without the override it is refused again.
        refused(
            allowed
                .with_network_filesystem_allowed(false)
                .put("k", "w".into())
                .await
                .map(|_| ()),
        );
    }

    #[tokio::test]
    async fn a_temporary_directory_is_a_local_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        if cfg!(target_os = "linux") {
            let magic = statfs_magic(dir.path())
                .unwrap()
                .expect("detected on Linux");
            assert_eq!(network_filesystem(magic), None, "tmp is on {magic:#x}");
        }
        // Before the directory exists (its parent is checked) and after.
        let store = LocalDirStore::new(dir.path().join("not/yet"));
        store.check_filesystem().unwrap();
        store.create("k", "v".into()).await.unwrap();
        store.check_filesystem().unwrap();
        assert!(
            store.inner.fs_checked.get().is_some(),
            "checked at the first lock"
        );
    }

    #[tokio::test]
    async fn lock_timeout_names_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path().to_path_buf())
            .with_lock_timeout(Duration::from_millis(50));
        // A second holder in this process: its own open file description,
        // as another process would have.
        let held = store.inner.lock("k").unwrap();
        let err = store.put("k", "w".into()).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
        let text = err.to_string();
        let pid = std::process::id();
        for needle in [
            format!("held by process {pid}, this one"),
            "`k`".to_owned(),
            "local".to_owned(),
            "retry later".to_owned(),
        ] {
            assert!(text.contains(&needle), "{needle:?} missing: {text}");
        }
        drop(held);
        store.put("k", "w".into()).await.unwrap();
    }

    #[test]
    fn the_holder_hint_names_another_process() {
        let hint = holder_hint(Some(1234));
        assert!(
            hint.contains("held by process 1234") && hint.contains("is process 1234 stopped?"),
            "{hint}"
        );
        assert!(hint.contains("kill -CONT 1234"), "{hint}");
        assert!(holder_hint(None).contains("recorded no pid"));
    }

    #[test]
    fn a_shorter_pid_overwrites_a_longer_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00.lock");
        std::fs::write(&path, "4194304\n").unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert_eq!(read_holder(&file), Some(4_194_304));
        record_holder(&file, &path);
        assert_eq!(read_holder(&file), Some(std::process::id()));
    }

    #[tokio::test]
    async fn lock_timeout_reports_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path().to_path_buf())
            .with_lock_timeout(Duration::from_millis(50));
        store.create("k", "v".into()).await.unwrap();
        // Hold the key's stripe lock through a separate open file description.
        let held = File::open(store.inner.lock_path("k")).unwrap();
        held.lock().unwrap();
        let err = store.put("k", "w".into()).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
        drop(held);
        store.put("k", "w".into()).await.unwrap();
    }
}
