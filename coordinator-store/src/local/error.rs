//! The store's private error, [`LocalError`], and its mapping onto the
//! shared [`StoreError`].

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::lock::holder_hint;
use super::BACKEND;
use crate::StoreError;

/// What went wrong in the local store, carried as the source of a
/// [`StoreError`].
#[derive(Debug, thiserror::Error)]
pub(super) enum LocalError {
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

pub(super) const HINT_STATFS: &str = "the store reads the file system type to refuse network file \
    systems; if it cannot be read here and you have verified that this file system honours \
    flock, add ?allow_network_filesystem=true to the file:// URL";

pub(super) fn io_err(action: &'static str, path: &Path, source: io::Error) -> LocalError {
    LocalError::Io {
        action,
        path: path.to_path_buf(),
        hint: HINT_IO,
        source,
    }
}

/// Maps a local failure of `op` on `key` into the shared error type.
pub(super) fn store_err(op: &'static str, key: &str, error: LocalError) -> StoreError {
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
