//! `manifest.toml`: what the installer and the node agent verify a stored build against.

use std::path::Path;

use k8r_manifest::{Artifact as ManifestArtifact, Compression, Manifest, Range, RootImage};

use super::{other, utc_rfc3339, AssembleError, BOOT_TXZ};
use crate::artefacts::{self, Digests};
use crate::base::{BaseImage, Shape};
use crate::image::used_ranges::UsedMap;
use crate::progress::Progress;

/// What the manifest is made from.
#[derive(Debug)]
pub(super) struct ManifestParts<'a> {
    /// The build id.
    pub build_id: &'a str,
    /// `arm64`.
    pub arch: &'a str,
    /// Kubernetes version `X.Y.Z`.
    pub k8s_version: &'a str,
    /// SOURCE_DATE_EPOCH.
    pub epoch: u64,
    /// The vendor image.
    pub base: &'a BaseImage,
    /// Its shape.
    pub shape: Shape,
    /// The customised root filesystem image (uncompressed).
    pub root: &'a Path,
    /// Its used ranges.
    pub used: &'a UsedMap,
    /// How the root image artefact is compressed.
    pub compression: Compression,
    /// `image.img.xz`'s (or `.zst`'s) digests.
    pub root_digests: &'a Digests,
    /// `boot.tar.xz`'s digests.
    pub boot_digests: &'a Digests,
    /// Hashing threads.
    pub threads: usize,
}

/// The validated manifest of a build.
pub(super) fn make_manifest(p: &ManifestParts<'_>) -> Result<Manifest, AssembleError> {
    let (root_digests, boot_digests, used) = (p.root_digests, p.boot_digests, p.used);
    let pieces = k8r_manifest::split_ranges(&used.extents, k8r_manifest::MAX_RANGE);
    let total = pieces.iter().map(|&(_, length)| length).sum();
    let progress = Progress::bytes("range digests", total);
    let digests = artefacts::hash_ranges(p.root, &pieces, p.threads, &|n| progress.set(n))?;
    progress.finish();
    let ranges = pieces
        .iter()
        .zip(digests)
        .map(|(&(offset, length), sha256)| Range {
            offset,
            length,
            sha256,
        })
        .collect();
    let manifest = Manifest {
        // The oldest format that says it: an xz build stays readable by every card.
        format: p.compression.format(),
        build_id: p.build_id.to_owned(),
        arch: p.arch.to_owned(),
        kubernetes_version: p.k8s_version.to_owned(),
        created: utc_rfc3339(p.epoch),
        base_image: p
            .base
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        base_shape: p.shape.name().to_owned(),
        root: RootImage {
            file: p.compression.root_file().to_owned(),
            compression: p.compression,
            compressed_size: root_digests.compressed_size,
            compressed_sha256: root_digests.compressed_sha256.clone(),
            size: root_digests.size,
            sha256: root_digests.sha256.clone(),
            block_size: used.block_size,
            ranges,
        },
        boot: ManifestArtifact {
            file: BOOT_TXZ.to_owned(),
            compressed_size: boot_digests.compressed_size,
            compressed_sha256: boot_digests.compressed_sha256.clone(),
            size: boot_digests.size,
            sha256: boot_digests.sha256.clone(),
        },
    };
    manifest
        .validate()
        .map_err(|e| other(format!("internal: the manifest does not validate: {e}")))?;
    Ok(manifest)
}
