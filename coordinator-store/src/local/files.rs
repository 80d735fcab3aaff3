//! Data files: reading one, writing one atomically (temp file, fsync,
//! rename, directory fsync) under its key's lock, and removing one.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::UNIX_EPOCH;

use bytes::Bytes;

use super::error::{io_err, store_err, LocalError};
use super::paths::{ensure_dir, sync_dir, temp_path, validate};
use super::version::version_of;
use super::{Inner, BACKEND};
use crate::{StoreError, StoreTime, StoredObject, Written};

pub(super) fn mtime_ms(meta: &Metadata) -> Option<StoreTime> {
    let modified = meta.modified().ok()?;
    Some(StoreTime(match modified.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }))
}

/// The current content of a file and its metadata, or `None` if there is no
/// file (a directory counts as no object).
pub(super) fn read_file(path: &Path) -> Result<Option<(Vec<u8>, Metadata)>, LocalError> {
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

impl Inner {
    /// Writes `body` to `target` by temp file, fsync, rename and directory
    /// fsync. The caller holds the key's lock.
    pub(super) fn write_atomic(
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

    pub(super) fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        validate(key, false).map_err(|e| store_err("get", key, e))?;
        let current = read_file(&self.path_of(key)).map_err(|e| store_err("get", key, e))?;
        Ok(current.map(|(body, meta)| stored(body, &meta)))
    }

    /// Runs `write` under the key's lock, with the current content.
    pub(super) fn locked<T>(
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

    pub(super) fn remove(
        &self,
        op: &'static str,
        key: &str,
        target: &Path,
    ) -> Result<(), StoreError> {
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
}
