//! Keys and paths: key validation, the reserved names, a key's data and
//! temp file paths, and creating and syncing directories.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::error::LocalError;
use super::Inner;

pub(super) const LOCK_DIR: &str = ".locks";
pub(super) const TEMP_PREFIX: &str = ".tmp.";
const MAX_KEY_LEN: usize = 1024;
const MAX_SEGMENT_LEN: usize = 200;

/// Checks a key (or, with `prefix`, a listing prefix, which may be empty or
/// end in `/`).
pub(super) fn validate(key: &str, prefix: bool) -> Result<(), LocalError> {
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

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing ancestors, fsyncing each new entry's
/// parent so the directories survive a crash.
pub(super) fn ensure_dir(dir: &Path) -> io::Result<()> {
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

pub(super) fn temp_path(target: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(TEMP_PREFIX);
    if let Some(file_name) = target.file_name() {
        name.push(file_name);
    }
    target.with_file_name(name)
}

impl Inner {
    pub(super) fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}
