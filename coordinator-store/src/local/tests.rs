//! Unit tests of the local directory store's internals.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::error::store_err;
use super::filesystem::{filesystem_verdict, network_filesystem, statfs_magic};
use super::lock::{holder_hint, read_holder, record_holder};
use super::paths::validate;
use super::version::version_of;
use super::{fnv1a_128, Inner, LocalDirStore};
use crate::{LeaseStore, StoreError};

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
    let StoreError::Misconfigured { backend, message } = store_err("create", "ns/k", err) else {
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
    let store =
        LocalDirStore::new(dir.path().to_path_buf()).with_lock_timeout(Duration::from_millis(50));
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
    let store =
        LocalDirStore::new(dir.path().to_path_buf()).with_lock_timeout(Duration::from_millis(50));
    store.create("k", "v".into()).await.unwrap();
    // Hold the key's stripe lock through a separate open file description.
    let held = File::open(store.inner.lock_path("k")).unwrap();
    held.lock().unwrap();
    let err = store.put("k", "w".into()).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    drop(held);
    store.put("k", "w".into()).await.unwrap();
}
