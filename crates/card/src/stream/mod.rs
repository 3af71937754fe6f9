//! The data path of a stored image: `image.img.xz` → partition 3, composed of small adapters.
//!
//! - [`decode`]: [`decoder`] for an artefact's compression: the multi-threaded xz decoder
//!   ([`xz_reader`]) or the zstd one ([`zstd_reader`], independent frames split by
//!   [`zstd_frames`] and decoded on a thread pool), with memory limits that fit a 1 GB Pi 4,
//!   plus helpers to size them ([`online_cpus`], [`mem_total_from_meminfo`]).
//! - [`ranges`]: [`write_ranges`], the core: reads the decompressed image sequentially, writes
//!   only the manifest's used ranges (at their offsets in the partition), insists that every
//!   byte outside them is zero, hashes each range on a pool of worker threads and the whole
//!   stream on one more thread.
//! - [`direct_write`]: [`DirectWriter`], the partition handle `write_ranges` writes through:
//!   `O_DIRECT` for the aligned parts of each write (no copy into the page cache), buffered
//!   for the unaligned edges.
//! - [`verify`]: [`verify_ranges`], reads the ranges back from the card (with `O_DIRECT`, so
//!   past the page cache) on all cores and checks each digest again: this catches failing and
//!   counterfeit cards.
//!
//! The installer composes them: `File` → [`decoder`] → [`write_ranges`] onto the partition
//! ([`DirectWriter`]) → `fsync` → [`crate::io::drop_page_cache`] → [`verify_ranges`]. The
//! compressed file's own digest is checked once, before anything is written
//! ([`crate::store::Build::check_compressed`]).

mod aligned;
pub mod decode;
pub mod direct_write;
pub mod ranges;
pub mod verify;
pub mod zstd_frames;
pub mod zstd_reader;

pub use aligned::{AlignedBuf, ALIGN};
pub use decode::{decoder, mem_total_from_meminfo, online_cpus, xz_reader};
pub use direct_write::DirectWriter;
pub use ranges::{write_ranges, Progress, WriteOptions, WriteReport};
pub use verify::{verify_ranges, VerifyProgress};

use std::io;

/// Everything that can go wrong while streaming the root image onto the card or reading it
/// back.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading (and decompressing) `image.img.xz` or `.zst` failed: a damaged or truncated
    /// download.
    #[error("reading the image stream at uncompressed byte {offset}: {source} (the root image file is damaged or truncated: download it again)")]
    Read {
        /// Uncompressed bytes read successfully before the failure.
        offset: u64,
        /// The underlying error (from the file or the xz decoder).
        source: io::Error,
    },
    /// Writing to the partition failed.
    #[error("writing {length} bytes at partition offset {offset}: {source} (the card may be failing or read-only)")]
    Write {
        /// Partition offset of the failed write.
        offset: u64,
        /// Bytes in the failed write.
        length: u64,
        /// The underlying error.
        source: io::Error,
    },
    /// The manifest's ranges are not sorted, overlap, or leave the image.
    #[error("manifest range {index} (offset {offset}, length {length}) is invalid: {reason}")]
    InvalidRange {
        /// Index of the range in `root.ranges`.
        index: usize,
        /// Its offset.
        offset: u64,
        /// Its length.
        length: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The image has data outside the manifest's ranges: skipping it would damage the image.
    #[error("image byte {offset} is outside every manifest range but not zero (the manifest's ranges do not match the image: rebuild both)")]
    NonZeroOutsideRanges {
        /// Offset of the first non-zero byte outside the ranges.
        offset: u64,
    },
    /// The decompressed image ended before `root.size` bytes.
    #[error("the decompressed image ended after {got} bytes, the manifest says {want} (truncated image or wrong manifest)")]
    Truncated {
        /// Bytes received.
        got: u64,
        /// `root.size`.
        want: u64,
    },
    /// The decompressed image is longer than `root.size`.
    #[error("the decompressed image is longer than the manifest's {want} bytes (wrong manifest)")]
    TooLong {
        /// `root.size`.
        want: u64,
    },
    /// A range's bytes in the image do not match its manifest digest.
    #[error("range {index} (offset {offset}, length {length}) of the image has sha256 {actual}, the manifest says {expected} (image and manifest do not match: download both again)")]
    RangeDigest {
        /// Index of the range in `root.ranges`.
        index: usize,
        /// Its offset.
        offset: u64,
        /// Its length.
        length: u64,
        /// The manifest's digest.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// A range read back from the card does not match its digest.
    #[error("range {index} (offset {offset}, length {length}) read back from the card has sha256 {actual}, expected {expected} (the card does not keep what was written: it is failing or counterfeit)")]
    ReadbackMismatch {
        /// Index of the range in `root.ranges`.
        index: usize,
        /// Its offset.
        offset: u64,
        /// Its length.
        length: u64,
        /// The manifest's digest.
        expected: String,
        /// The digest of the bytes read back.
        actual: String,
    },
    /// Reading a range back from the card failed.
    #[error("reading back range {index} (offset {offset}, length {length}) from the card: {source} (the card is failing or smaller than it claims)")]
    ReadError {
        /// Index of the range in `root.ranges`.
        index: usize,
        /// The range's offset.
        offset: u64,
        /// The range's length.
        length: u64,
        /// The underlying error.
        source: io::Error,
    },
    /// Opening the device for read-back failed.
    #[error("opening {path} for read-back: {source}")]
    Open {
        /// The device (or file).
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A worker thread died (a bug); the write cannot be trusted.
    #[error("a hashing worker thread failed: {0}")]
    Worker(&'static str),
}
