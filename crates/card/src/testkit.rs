//! Test fixtures (this crate's tests, and other crates' with the `testkit` feature): a
//! synthetic root image shaped like the builder's output, its multi-block `.xz`, and a whole
//! stored build (manifest, `image.img.xz`, `boot.tar.xz`) written into a directory.
//!
//! Not for production code: everything here panics on failure.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::io::Write;
use std::path::Path;

use k8r_manifest::{Artifact, Compression, Manifest, Range, RootImage, MANIFEST_FILE};
use liblzma::stream::MtStreamBuilder;
use sha2::{Digest, Sha256};

use crate::digest::{hex, sha256_hex};

pub const MIB: u64 = 1024 * 1024;

/// Size of the synthetic image.
pub const TOTAL: u64 = 20 * MIB;

/// `(offset, length)` of the used ranges: block-aligned, some longer than a 4 MiB chunk, some
/// crossing chunk boundaries, one only 1024-aligned (an ext4 with 1 KiB blocks), one ending at
/// the image's end.
pub const LAYOUT: [(u64, u64); 6] = [
    (0, 64 * 1024),
    (MIB + 3 * 4096, 5 * MIB + 8192),
    (8 * MIB, MIB),
    (12 * MIB - 4096, 2 * 4096),
    (15 * MIB + 1024, 5 * 1024),
    (19 * MIB, MIB),
];

/// A synthetic image: data (low-entropy noise, with some zero runs) inside [`LAYOUT`], zeros
/// elsewhere; and its manifest ranges.
pub fn image() -> (Vec<u8>, Vec<Range>) {
    static IMAGE: std::sync::OnceLock<(Vec<u8>, Vec<Range>)> = std::sync::OnceLock::new();
    IMAGE.get_or_init(make_image).clone()
}

/// [`image`] compressed as the builder does (multi-block `.xz`).
pub fn image_xz() -> Vec<u8> {
    static XZ: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    XZ.get_or_init(|| compress_blocks(&image().0)).clone()
}

/// [`image`] compressed as the builder does with `COMPRESSION="zstd"` (1 MiB frames here).
pub fn image_zst() -> Vec<u8> {
    static ZST: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ZST.get_or_init(|| compress_zstd_frames(&image().0, 1024 * 1024))
        .clone()
}

/// [`image`] compressed the way `compression` says.
pub fn image_compressed(compression: Compression) -> Vec<u8> {
    match compression {
        Compression::Xz => image_xz(),
        Compression::Zstd => image_zst(),
    }
}

/// Compresses `data` as independent zstd frames of `frame` bytes each (level 3, content size
/// and checksum in every frame), the shape k8r-builder writes.
pub fn compress_zstd_frames(data: &[u8], frame: usize) -> Vec<u8> {
    let mut c = zstd::bulk::Compressor::new(3).expect("compressor");
    c.include_checksum(true).expect("checksum");
    c.include_contentsize(true).expect("content size");
    let mut out = Vec::new();
    for chunk in data.chunks(frame.max(1)) {
        out.extend_from_slice(&c.compress(chunk).expect("compress"));
    }
    out
}

fn make_image() -> (Vec<u8>, Vec<Range>) {
    let mut img = vec![0u8; to_usize(TOTAL)];
    let mut state = 0x9e37_79b9_u32;
    for &(offset, length) in &LAYOUT {
        let bytes = &mut img[to_usize(offset)..to_usize(offset + length)];
        for (i, b) in bytes.iter_mut().enumerate() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            // A zero run every 64 KiB: ranges hold zeros too.
            *b = if i % 65536 < 512 {
                0
            } else {
                state.to_le_bytes()[1] & 0x0f
            };
        }
        // Make each range's first and last byte non-zero, so writing a range short is seen.
        bytes[0] = 0x5a;
        bytes[bytes.len() - 1] = 0xa5;
    }
    let ranges = ranges_of(&img);
    (img, ranges)
}

/// The manifest ranges of [`LAYOUT`] over `img`.
pub fn ranges_of(img: &[u8]) -> Vec<Range> {
    LAYOUT
        .iter()
        .map(|&(offset, length)| Range {
            offset,
            length,
            sha256: hex(&Sha256::digest(
                &img[to_usize(offset)..to_usize(offset + length)],
            )),
        })
        .collect()
}

pub fn to_usize(n: u64) -> usize {
    usize::try_from(n).expect("fits")
}

/// Bytes not inside any range.
pub fn outside(offset: u64) -> bool {
    !LAYOUT.iter().any(|&(o, l)| offset >= o && offset < o + l)
}

/// The gaps between the ranges, as `(offset, length)`.
pub fn gaps() -> Vec<(u64, u64)> {
    let mut gaps = Vec::new();
    let mut pos = 0;
    for &(offset, length) in &LAYOUT {
        if offset > pos {
            gaps.push((pos, offset - pos));
        }
        pos = offset + length;
    }
    if pos < TOTAL {
        gaps.push((pos, TOTAL - pos));
    }
    gaps
}

/// Compresses `data` into a multi-block `.xz` (1 MiB blocks, preset 0) as the builder does
/// with its block size.
pub fn compress_blocks(data: &[u8]) -> Vec<u8> {
    let stream = MtStreamBuilder::new()
        .threads(2)
        .block_size(MIB)
        .preset(0)
        .encoder()
        .expect("mt encoder");
    let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    enc.write_all(data).expect("compress");
    enc.finish().expect("finish")
}

/// Options for [`write_build`].
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// `build_id` (also the directory name the caller chose).
    pub build_id: String,
    /// `kubernetes_version`.
    pub kubernetes_version: String,
    /// `arch`.
    pub arch: String,
    /// The content of `boot.tar.xz` (any bytes: only its size and digests are checked by the
    /// store; the installer unpacks real ones).
    pub boot: Vec<u8>,
    /// How `image.img.*` is compressed (and so the manifest's format and the file name).
    pub compression: Compression,
}

impl BuildSpec {
    /// A build with id `id`, Kubernetes 1.31.2, arm64.
    pub fn new(id: &str) -> BuildSpec {
        BuildSpec {
            build_id: id.to_owned(),
            kubernetes_version: "1.31.2".into(),
            arch: "arm64".into(),
            boot: format!("boot archive of {id}").into_bytes(),
            compression: Compression::Xz,
        }
    }
}

/// The manifest of [`write_build`]'s build, without writing anything.
pub fn build_manifest(spec: &BuildSpec) -> Manifest {
    let (img, ranges) = image();
    let xz = image_compressed(spec.compression);
    Manifest {
        format: spec.compression.format(),
        build_id: spec.build_id.clone(),
        arch: spec.arch.clone(),
        kubernetes_version: spec.kubernetes_version.clone(),
        created: "2026-04-23T00:00:00Z".into(),
        base_image: "testkit.img".into(),
        base_shape: "ubuntu-26.04".into(),
        root: RootImage {
            file: spec.compression.root_file().into(),
            compression: spec.compression,
            compressed_size: xz.len() as u64,
            compressed_sha256: sha256_hex(&xz),
            size: img.len() as u64,
            sha256: sha256_hex(&img),
            block_size: 1024,
            ranges,
        },
        boot: Artifact {
            file: "boot.tar.xz".into(),
            compressed_size: spec.boot.len() as u64,
            compressed_sha256: sha256_hex(&spec.boot),
            size: spec.boot.len() as u64,
            sha256: sha256_hex(&spec.boot),
        },
    }
}

/// Writes a complete, valid build into `dir` (created): `manifest.toml`, `image.img.xz` (the
/// synthetic image) and `boot.tar.xz` (`spec.boot`). Returns its manifest.
pub fn write_build(dir: &Path, spec: &BuildSpec) -> Manifest {
    let m = build_manifest(spec);
    std::fs::create_dir_all(dir).expect("build dir");
    std::fs::write(dir.join(&m.root.file), image_compressed(spec.compression))
        .expect("image.img.*");
    std::fs::write(dir.join(&m.boot.file), &spec.boot).expect("boot.tar.xz");
    std::fs::write(dir.join(MANIFEST_FILE), m.render()).expect("manifest");
    m
}

/// A signing key pair made by [`keypair`].
pub type KeyPair = minisign::KeyPair;

/// A new passwordless minisign key pair.
pub fn keypair() -> minisign::KeyPair {
    minisign::KeyPair::generate_unencrypted_keypair().expect("keypair")
}

/// `pair`'s public key as a trusted key.
pub fn trusted_key(pair: &minisign::KeyPair) -> k8r_manifest::signature::TrustedKey {
    k8r_manifest::signature::TrustedKey::from_base64(&pair.pk.to_base64()).expect("public key")
}

/// A trusted key list of `pairs`.
pub fn trusted(pairs: &[&minisign::KeyPair]) -> k8r_manifest::signature::TrustedKeys {
    k8r_manifest::signature::TrustedKeys::new(pairs.iter().map(|p| trusted_key(p))).expect("keys")
}

/// A minisign signature of `data` by `pair`, as `manifest.toml.minisig` holds it.
pub fn sign(pair: &minisign::KeyPair, data: &[u8]) -> String {
    minisign::sign(Some(&pair.pk), &pair.sk, data, Some("testkit"), None)
        .expect("sign")
        .into_string()
}

/// Signs the manifest in `dir` with `pair` (writes `manifest.toml.minisig` beside it).
pub fn sign_build(dir: &Path, pair: &minisign::KeyPair) {
    let manifest = std::fs::read(dir.join(MANIFEST_FILE)).expect("manifest");
    std::fs::write(
        dir.join(k8r_manifest::signature::SIGNATURE_FILE),
        sign(pair, &manifest),
    )
    .expect("signature");
}
