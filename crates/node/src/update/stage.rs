//! Staging a build into the image store of a (mounted) recovery partition, in an order where
//! an interruption at any point leaves the current build current and intact:
//!
//! 1. checks before any byte: not already current, the arch, the room on the partition
//!    (giving up the previous build only if that makes it fit; refusing otherwise);
//! 2. leftovers of an interrupted staging of another build are removed; the new build's
//!    directory `k8r/images/<build id>/` is made (its `.part` files of an interrupted run of
//!    the same build are resumed);
//! 3. each artefact fetched, its size and SHA-256 checked, then named;
//! 4. the signature, then the manifest (its bytes as they came, which the signature covers)
//!    written into the directory, the whole build verified as the installer will (the
//!    signature against the card's keys, decode, every range digest);
//! 5. the pointer replaced the careful way: only now is the new build current; the old one
//!    becomes previous (kept for a rollback);
//! 6. builds the pointer does not name are removed.
//!
//! Failpoints after each step (`after-mkdir`, `after-root`, `after-boot`, `after-manifest`,
//! `after-verify`, `after-pointer`) stop it as a power cut would.

use std::path::Path;

use anyhow::{bail, Context, Result};
use k8r_card::store::{Pointer, Store, StoreError, VerifyOptions};
use k8r_manifest::signature::{TrustedKeys, SIGNATURE_FILE};
use k8r_manifest::{Manifest, MANIFEST_FILE};

use super::fetch::{Source, Wanted};
use crate::failpoint::Failpoints;
use crate::host::write_atomic;

/// Room kept free on the recovery partition beyond the build itself (the install log, the
/// settings, FAT's own bookkeeping).
pub const SLACK: u64 = 4 << 20;

/// What staging did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staged {
    /// The build was already current: nothing changed.
    AlreadyCurrent,
    /// The build is current now; `kept_previous` says whether the old one was kept.
    Done {
        /// The previous build (the old current), when it was kept.
        previous: Option<String>,
        /// Builds removed.
        removed: Vec<String>,
    },
}

/// The build offered for staging: its manifest as parsed, the bytes it was parsed from, its
/// signature, and the card's trusted keys the staged copy is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The validated manifest.
    pub manifest: &'a Manifest,
    /// Its text as fetched (staged byte for byte: the signature covers these bytes).
    pub text: &'a str,
    /// `manifest.toml.minisig`, when the build has one.
    pub signature: Option<&'a str>,
    /// The card's trusted keys.
    pub trusted: &'a TrustedKeys,
}

/// Makes the progress reporter of one file, given its name.
pub type ProgressFactory<'a> = &'a dyn Fn(&str) -> Box<dyn FnMut(u64, u64)>;

/// Free bytes on the filesystem of `dir`.
pub fn free_bytes(dir: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(dir).with_context(|| format!("statvfs {}", dir.display()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The files of `m` to fetch.
pub fn wanted(m: &Manifest) -> Vec<Wanted> {
    vec![
        Wanted {
            name: m.root.file.clone(),
            size: m.root.compressed_size,
            sha256: m.root.compressed_sha256.clone(),
        },
        Wanted {
            name: m.boot.file.clone(),
            size: m.boot.compressed_size,
            sha256: m.boot.compressed_sha256.clone(),
        },
    ]
}

/// How much a staging of `m` needs, with what `dir` already holds of it subtracted.
pub fn needed(m: &Manifest, dir: &Path) -> u64 {
    let have = |name: &str| {
        std::fs::metadata(dir.join(format!("{name}.part")))
            .or_else(|_| std::fs::metadata(dir.join(name)))
            .map_or(0, |md| md.len())
    };
    wanted(m)
        .iter()
        .map(|w| w.size.saturating_sub(have(&w.name)))
        .sum::<u64>()
        + SLACK
}

/// Stages `m` from `source` into `store` (module docs). `free` says how many bytes the
/// partition has free (a function, so tests can play a small card).
pub fn stage(
    store: &Store,
    incoming: &Incoming<'_>,
    source: &Source,
    free: &dyn Fn() -> Result<u64>,
    failpoints: &Failpoints,
    verify: VerifyOptions,
    progress: ProgressFactory<'_>,
) -> Result<Staged> {
    let m = incoming.manifest;
    let pointer = match store.pointer() {
        Ok(p) => Some(p),
        Err(StoreError::NoPointer { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if pointer.as_ref().is_some_and(|p| p.current == m.build_id) {
        return Ok(Staged::AlreadyCurrent);
    }
    let dir = store.build_dir(&m.build_id)?;

    // 1. Room, before anything is written.
    let leftovers: u64 = store
        .build_dirs()?
        .iter()
        .filter(|n| {
            **n != m.build_id
                && !pointer
                    .as_ref()
                    .is_some_and(|p| p.names().any(|x| x == n.as_str()))
        })
        .map(|n| store.build_bytes(n))
        .sum();
    let need = needed(m, &dir);
    let mut have = free()?.saturating_add(leftovers);
    let previous = pointer.as_ref().and_then(|p| p.previous.clone());
    let mut drop_previous = false;
    if have < need {
        if let Some(prev) = &previous {
            have = have.saturating_add(store.build_bytes(prev));
            drop_previous = true;
        }
    }
    if have < need {
        bail!(
            "the recovery partition has {} MiB free{}, build {} needs {} MiB: nothing was changed \
             (make room on the card, or rebuild the card with a larger recovery partition)",
            have >> 20,
            if drop_previous {
                " even without the previous build"
            } else {
                ""
            },
            m.build_id,
            need.div_ceil(1 << 20)
        );
    }

    // 2. Leftovers go; the previous build too if room needs it.
    let keep_names: Vec<&str> = vec![m.build_id.as_str()];
    if let Some(p) = &pointer {
        if drop_previous {
            let without = p.without_previous();
            store.set_pointer(&without)?;
            log::info!(
                "giving up the previous build {} to make room",
                p.previous.as_deref().unwrap_or_default()
            );
            store.prune(&without, &keep_names)?;
        } else {
            store.prune(p, &keep_names)?;
        }
    } else {
        store.prune(&Pointer::to(&m.build_id)?, &[])?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // A manifest left by an interrupted run must not make the directory look complete.
    let _ = std::fs::remove_file(dir.join(MANIFEST_FILE));
    let _ = std::fs::remove_file(dir.join(SIGNATURE_FILE));
    failpoints.hit("after-mkdir")?;

    // 3. The artefacts.
    for (want, point) in wanted(m).iter().zip(["after-root", "after-boot"]) {
        let mut report = progress(&want.name);
        if let Err(e) = source.fetch(want, &dir, &mut *report) {
            if e.chain().any(|c| c.is::<super::fetch::Mismatch>()) {
                // Not this build's file: the directory goes, the store is as it was.
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(e.context(format!("fetching {}", source.location(&want.name))));
        }
        failpoints.hit(point)?;
    }

    // 4. The manifest, then the whole build checked as the installer will.
    if let Some(sig) = incoming.signature {
        write_atomic(&dir.join(SIGNATURE_FILE), sig.as_bytes(), 0o644)?;
    }
    write_atomic(&dir.join(MANIFEST_FILE), incoming.text.as_bytes(), 0o644)?;
    failpoints.hit("after-manifest")?;
    let build = store.build(&m.build_id)?;
    let checked = build
        .check_signature(incoming.trusted)
        .and_then(|_| build.verify(verify, &mut |_| {}));
    if let Err(e) = checked {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(anyhow::Error::new(e).context(format!(
            "build {} does not verify after staging; it was removed, the current build is unchanged",
            m.build_id
        )));
    }
    failpoints.hit("after-verify")?;

    // 5. The commit: one careful replace of the pointer.
    let new = match &pointer {
        Some(p) if drop_previous => p.without_previous().advance(&m.build_id),
        Some(p) => p.advance(&m.build_id),
        None => Pointer::to(&m.build_id)?,
    };
    store.set_pointer(&new)?;
    failpoints.hit("after-pointer")?;

    // 6. Whatever the pointer does not name.
    let removed = store.prune(&new, &[])?;
    Ok(Staged::Done {
        previous: new.previous.clone(),
        removed,
    })
}

#[cfg(test)]
#[path = "stage_tests.rs"]
mod tests;
