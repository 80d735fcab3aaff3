//! Lock stripes: the lock file of a key's stripe, the exclusive lock on it,
//! and the process id its holder records there.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::{io_err, LocalError};
use super::paths::{ensure_dir, LOCK_DIR};
use super::{fnv1a_128, Inner, BACKEND};

const LOCK_STRIPES: u128 = 256;

/// The lock timeout's words about who holds the lock.
pub(super) fn holder_hint(holder: Option<u32>) -> String {
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

/// Writes this process's id at the start of a lock file this process has
/// just locked, so that a writer that times out waiting can name the
/// holder. Fixed width, so it always covers a longer id written before
/// without a truncate. A failure only loses the hint, not the lock, so it
/// is logged and ignored.
pub(super) fn record_holder(file: &File, path: &Path) {
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
pub(super) fn read_holder(file: &File) -> Option<u32> {
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

/// Holds a key's stripe lock until dropped (closing the file releases it).
pub(super) struct KeyLock {
    _file: File,
}

impl Inner {
    pub(super) fn lock_path(&self, key: &str) -> PathBuf {
        let stripe = fnv1a_128(key.as_bytes()) % LOCK_STRIPES;
        self.root.join(LOCK_DIR).join(format!("{stripe:02x}.lock"))
    }

    /// Takes the exclusive lock of `key`'s stripe, waiting at most
    /// `lock_timeout`.
    ///
    /// Every call opens the lock file anew: `flock` locks belong to an open
    /// file description, so a descriptor shared between threads would let
    /// them all in at once.
    pub(super) fn lock(&self, key: &str) -> Result<KeyLock, LocalError> {
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
}
