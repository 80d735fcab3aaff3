//! Refusing network file systems: the statfs magic numbers of network,
//! cluster and FUSE file systems, the verdict on a directory, and `statfs`
//! itself.

use std::io;
use std::path::Path;

use super::error::{LocalError, HINT_STATFS};
use super::{Inner, BACKEND};

/// How the store learns a file system's type: its `statfs` magic number,
/// or `None` where this system does not say. A field so that tests can
/// pretend to be on NFS.
pub(super) type FsMagic = fn(&Path) -> io::Result<Option<u32>>;

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
pub(super) fn network_filesystem(magic: u32) -> Option<&'static str> {
    NETWORK_FILESYSTEMS
        .iter()
        .find(|(known, _)| *known == magic)
        .map(|(_, name)| *name)
}

/// Whether a file system of type `magic` at `path` may hold the store.
pub(super) fn filesystem_verdict(path: &Path, magic: u32, allowed: bool) -> Result<(), LocalError> {
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
pub(super) fn statfs_magic(path: &Path) -> io::Result<Option<u32>> {
    let stat = rustix::fs::statfs(path)?;
    // Magic numbers are 32 bits. `f_type` is a C `long`, negative on
    // 32-bit targets for magics above 0x7fff_ffff (CIFS, SMB2): its low
    // 32 bits are the magic everywhere.
    #[allow(clippy::unnecessary_cast, reason = "`f_type` is u32 on s390x only")]
    Ok(Some(stat.f_type as u32))
}

/// Elsewhere the type is not detected (see the `local` module docs).
#[cfg(not(target_os = "linux"))]
pub(super) fn statfs_magic(_path: &Path) -> io::Result<Option<u32>> {
    Ok(None)
}

impl Inner {
    /// Refuses a network file system at `path` (see the `local` module docs),
    /// once; `cache` says whether a pass holds for the store's directory.
    pub(super) fn check_filesystem_at(&self, path: &Path, cache: bool) -> Result<(), LocalError> {
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
}
