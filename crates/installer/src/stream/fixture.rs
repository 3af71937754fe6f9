//! Test fixture: a synthetic root image shaped like the builder's output (tests only).

use k8r_manifest::Range;
use sha2::{Digest, Sha256};

use super::hex;

pub(crate) const MIB: u64 = 1024 * 1024;

/// Size of the synthetic image.
pub(crate) const TOTAL: u64 = 20 * MIB;

/// `(offset, length)` of the used ranges: block-aligned, some longer than a 4 MiB chunk, some
/// crossing chunk boundaries, one only 1024-aligned (an ext4 with 1 KiB blocks), one ending at
/// the image's end.
pub(crate) const LAYOUT: [(u64, u64); 6] = [
    (0, 64 * 1024),
    (MIB + 3 * 4096, 5 * MIB + 8192),
    (8 * MIB, MIB),
    (12 * MIB - 4096, 2 * 4096),
    (15 * MIB + 1024, 5 * 1024),
    (19 * MIB, MIB),
];

/// A synthetic image: data (low-entropy noise, with some zero runs) inside [`LAYOUT`], zeros
/// elsewhere; and its manifest ranges.
pub(crate) fn image() -> (Vec<u8>, Vec<Range>) {
    static IMAGE: std::sync::OnceLock<(Vec<u8>, Vec<Range>)> = std::sync::OnceLock::new();
    IMAGE.get_or_init(make_image).clone()
}

/// [`image`] compressed as the builder does (multi-block `.xz`).
pub(crate) fn image_xz() -> Vec<u8> {
    static XZ: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    XZ.get_or_init(|| super::decode::tests::compress_blocks(&image().0))
        .clone()
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
pub(crate) fn ranges_of(img: &[u8]) -> Vec<Range> {
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

pub(crate) fn to_usize(n: u64) -> usize {
    usize::try_from(n).expect("fits")
}

/// Bytes not inside any range.
pub(crate) fn outside(offset: u64) -> bool {
    !LAYOUT.iter().any(|&(o, l)| offset >= o && offset < o + l)
}

/// The gaps between the ranges, as `(offset, length)`.
pub(crate) fn gaps() -> Vec<(u64, u64)> {
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
