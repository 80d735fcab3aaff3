//! Walking the tree: listing data files and sweeping stale temp files,
//! skipping the lock directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::{io_err, store_err, LocalError};
use super::files::{mtime_ms, read_file};
use super::paths::{validate, LOCK_DIR, TEMP_PREFIX};
use super::version::version_of;
use super::{Inner, BACKEND};
use crate::{ObjectMeta, StoreError};

impl Inner {
    /// Up to `limit` objects under `prefix` whose keys sort after
    /// `start_after`, sorted by key. Collects the names first and reads
    /// only the files of the page; a file removed between the walk and its
    /// read is skipped and the next name taken, so a short page is still
    /// the last.
    pub(super) fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        validate(prefix, true).map_err(|e| store_err("list", prefix, e))?;
        let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
        let dir = if trimmed.is_empty() {
            self.root.clone()
        } else {
            self.path_of(trimmed)
        };
        let mut names = Vec::new();
        self.walk(&dir, trimmed, &mut |key, path| {
            if start_after.is_none_or(|after| key.as_str() > after) {
                names.push((key, path.to_path_buf()));
            }
            Ok(())
        })
        .map_err(|e| store_err("list", prefix, e))?;
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::new();
        for (key, path) in names {
            if out.len() >= limit {
                break;
            }
            let read = read_file(&path).map_err(|e| store_err("list", prefix, e))?;
            if let Some((body, meta)) = read {
                out.push(ObjectMeta {
                    key,
                    version: version_of(&body),
                    size: body.len() as u64,
                    store_time: mtime_ms(&meta),
                });
            }
        }
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

    pub(super) fn remove_stale_temp_files(&self) -> Result<usize, StoreError> {
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
