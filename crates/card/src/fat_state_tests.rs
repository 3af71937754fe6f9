//! Tests of [`super`] on volumes made by `mkfs.fat` and checked by `fsck.fat -n` (dosfstools,
//! the reference checker), the way a power cut leaves them: the dirty bit set by a read-write
//! mount, the free-cluster count wrong.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

fn volume(dir: &Path, fat: &str) -> PathBuf {
    let path = dir.join(format!("fat{fat}.img"));
    File::create(&path)
        .and_then(|f| f.set_len(64 << 20))
        .expect("image");
    let out = Command::new("mkfs.fat")
        .args(["-F", fat])
        .arg(&path)
        .output()
        .expect("mkfs.fat (dosfstools)");
    assert!(out.status.success(), "{out:?}");
    path
}

fn fsck_clean(path: &Path) -> (bool, String) {
    let out = Command::new("fsck.fat")
        .arg("-n")
        .arg(path)
        .output()
        .expect("fsck.fat (dosfstools)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success(), text)
}

/// What a power cut while mounted read-write leaves: the dirty bit, a stale free count.
fn cut(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[STATE_BYTE] |= DIRTY;
    bytes[SECTOR + FSINFO_FREE..SECTOR + FSINFO_FREE + 4].copy_from_slice(&16u32.to_le_bytes());
    std::fs::write(path, bytes).expect("write");
}

fn open(path: &Path) -> File {
    File::options()
        .read(true)
        .write(true)
        .open(path)
        .expect("open")
}

#[test]
fn a_fresh_volume_is_clean_and_repair_leaves_it_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = volume(dir.path(), "32");
    let before = std::fs::read(&path).expect("read");
    let state = inspect(&mut open(&path)).expect("state");
    assert!(!state.dirty);
    assert_eq!(state.fsinfo_sector, Some(1));
    assert!(state.free_clusters.is_some_and(|n| n > 60_000), "{state:?}");
    let found = repair(&mut open(&path), |f| f.sync_data()).expect("repair");
    assert_eq!(found, state);
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "nothing written"
    );
}

#[test]
fn a_cut_volume_fails_fsck_and_passes_it_after_the_repair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = volume(dir.path(), "32");
    let fresh = std::fs::read(&path).expect("read");
    cut(&path);
    let (clean, text) = fsck_clean(&path);
    assert!(!clean, "the cut is what fsck.fat complains about: {text}");
    assert!(text.contains("Dirty bit is set"), "{text}");
    assert!(text.contains("Free cluster summary wrong"), "{text}");

    let found = repair(&mut open(&path), |f| f.sync_data()).expect("repair");
    assert!(found.dirty && found.free_clusters == Some(16), "{found:?}");
    let (clean, text) = fsck_clean(&path);
    assert!(clean, "{text}");
    let after = inspect(&mut open(&path)).expect("state");
    assert!(!after.dirty && after.free_clusters.is_none(), "{after:?}");
    // Only the state byte and the two FSInfo numbers differ from the fresh volume.
    let repaired = std::fs::read(&path).expect("read");
    let changed: Vec<usize> = (0..fresh.len())
        .filter(|&i| fresh[i] != repaired[i])
        .collect();
    assert!(
        changed
            .iter()
            .all(|&i| (SECTOR + FSINFO_FREE..SECTOR + FSINFO_NEXT + 4).contains(&i)),
        "{changed:?}"
    );
}

#[test]
fn only_fat32_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fat16 = volume(dir.path(), "16");
    assert!(matches!(
        inspect(&mut open(&fat16)),
        Err(FatStateError::NotFat32(_))
    ));
    let zeros = dir.path().join("zeros");
    std::fs::write(&zeros, vec![0u8; 4096]).expect("zeros");
    assert!(matches!(
        inspect(&mut open(&zeros)),
        Err(FatStateError::NotFat32(_))
    ));
    let short = dir.path().join("short");
    std::fs::write(&short, [0u8; 100]).expect("short");
    assert!(matches!(
        inspect(&mut open(&short)),
        Err(FatStateError::Io { .. })
    ));
}
