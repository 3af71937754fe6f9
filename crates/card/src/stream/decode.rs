//! The xz decoder: liblzma's multi-threaded decoder with memory limits that fit the smallest
//! supported Pi (a 1 GB Pi 4).
//!
//! `liblzma::read::XzDecoder::new_parallel` silently decodes on one thread (its
//! `memlimit_threading` is 0), so the stream is built by hand with [`MtStreamBuilder`]. The
//! decoder only runs blocks in parallel when the `.xz` has several of them (the builder
//! compresses with `--block-size`); a single-block file decodes on one thread, correctly.

use std::io::{self, Read};

use k8r_manifest::Compression;
use liblzma::stream::MtStreamBuilder;

use super::zstd_reader::ZstdReader;

const MIB: u64 = 1024 * 1024;

/// Upper bound of the memory the decoder may use for parallel decoding.
pub const MAX_THREADING_MEMORY: u64 = 512 * MIB;

/// What [`xz_reader`] assumes when the memory size is unknown (`mem_total == 0`).
pub const ASSUMED_MEM_TOTAL: u64 = 1024 * MIB;

/// The decoder's memory limits for a machine with `mem_total` bytes of RAM:
/// `(memlimit_threading, memlimit_stop)`.
///
/// - `memlimit_threading = min(mem_total / 4, 512 MiB)`: liblzma starts fewer threads when
///   more would exceed it. Each thread holds about one block's input and output plus the
///   dictionary: with the builder's 32 MiB blocks and an 8 MiB dictionary roughly 70 MiB, so a
///   1 GB Pi 4 (≈ 900 MiB `MemTotal`) decodes on 3 threads and leaves the rest to the
///   installer (write buffers, hashing queues) and the page cache.
/// - `memlimit_stop = mem_total / 2`: the hard limit; above it decoding fails with a memory
///   error instead of the kernel's OOM killer ending PID 1. A single-threaded decode of a
///   normal `.xz` needs only the dictionary, far below it.
pub fn memory_limits(mem_total: u64) -> (u64, u64) {
    let mem_total = if mem_total == 0 {
        ASSUMED_MEM_TOTAL
    } else {
        mem_total
    };
    ((mem_total / 4).min(MAX_THREADING_MEMORY), mem_total / 2)
}

/// Decompresses the `.xz` stream read from `input` on up to `threads` threads (the caller
/// passes [`online_cpus`]), within [`memory_limits`]`(mem_total)`.
///
/// Decodes one xz stream; whatever follows it is ignored. A truncated or corrupt stream is an
/// `io::Error` from `read` (kind `UnexpectedEof` or `InvalidData`); the integrity check of
/// each block and the stream index are verified as they pass, so read to the end (`Ok(0)`).
pub fn xz_reader<R: Read>(input: R, threads: u32, mem_total: u64) -> io::Result<impl Read> {
    let (threading, stop) = memory_limits(mem_total);
    let stream = MtStreamBuilder::new()
        .threads(threads.max(1))
        .memlimit_threading(threading)
        .memlimit_stop(stop)
        .decoder()
        .map_err(io::Error::other)?;
    Ok(liblzma::read::XzDecoder::new_stream(input, stream))
}

/// The decompressed bytes of `input`, an artefact compressed as `compression` (the
/// manifest's `compression`): [`xz_reader`] or [`ZstdReader`], on up to `threads` threads and
/// within [`memory_limits`]`(mem_total)`. The input is read on the calling thread, in order.
pub fn decoder<'a, R: Read + 'a>(
    compression: Compression,
    input: R,
    threads: u32,
    mem_total: u64,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::Xz => Box::new(xz_reader(input, threads, mem_total)?),
        Compression::Zstd => Box::new(ZstdReader::new(input, threads, memory_limits(mem_total).0)?),
    })
}

/// The `MemTotal` line of `/proc/meminfo`, in bytes (`MemTotal:  1234 kB` → 1263616).
pub fn mem_total_from_meminfo(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let mut words = rest.split_whitespace();
        let value: u64 = words.next()?.parse().ok()?;
        let factor = match words.next() {
            Some("kB") => 1024,
            None => 1,
            Some(_) => return None,
        };
        value.checked_mul(factor)
    })
}

/// The number of CPUs this process may run on (at least 1).
pub fn online_cpus() -> u32 {
    std::thread::available_parallelism()
        .ok()
        .and_then(|n| u32::try_from(n.get()).ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::compress_blocks;

    fn sample(len: usize) -> Vec<u8> {
        // Deterministic, partly compressible data.
        let mut state = 0x1234_5678_u32;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                if i % 3 == 0 {
                    0
                } else {
                    state.to_le_bytes()[0]
                }
            })
            .collect()
    }

    fn decode_all(xz: &[u8], threads: u32) -> Vec<u8> {
        let mut out = Vec::new();
        xz_reader(xz, threads, 1 << 30)
            .expect("decoder")
            .read_to_end(&mut out)
            .expect("decode");
        out
    }

    #[test]
    fn multi_threaded_decode_gives_the_same_bytes_as_single() {
        let data = sample(5 * 1024 * 1024 + 123);
        let xz = compress_blocks(&data);
        let single = decode_all(&xz, 1);
        let multi = decode_all(&xz, 4);
        assert_eq!(single.len(), data.len());
        assert!(single == data, "single-threaded decode differs");
        assert!(multi == data, "multi-threaded decode differs");
    }

    #[test]
    fn truncated_xz_is_an_error() {
        let data = sample(3 * 1024 * 1024);
        let xz = compress_blocks(&data);
        let mut out = Vec::new();
        let err = xz_reader(&xz[..xz.len() - 100], 2, 0)
            .expect("decoder")
            .read_to_end(&mut out)
            .expect_err("truncated stream must fail");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }

    #[test]
    fn corrupt_xz_is_an_error() {
        let data = sample(3 * 1024 * 1024);
        let mut xz = compress_blocks(&data);
        let mid = xz.len() / 2;
        xz[mid] ^= 0x55;
        let mut out = Vec::new();
        let result = xz_reader(&xz[..], 2, 0)
            .expect("decoder")
            .read_to_end(&mut out);
        assert!(result.is_err(), "corrupt stream decoded");
    }

    #[test]
    fn decoder_reads_each_compression() {
        let data = sample(3 * 1024 * 1024 + 7);
        let xz = compress_blocks(&data);
        let zst = crate::testkit::compress_zstd_frames(&data, 1024 * 1024);
        for (compression, bytes) in [(Compression::Xz, &xz), (Compression::Zstd, &zst)] {
            let mut out = Vec::new();
            decoder(compression, &bytes[..], 2, 1 << 30)
                .expect("decoder")
                .read_to_end(&mut out)
                .expect("decode");
            assert!(out == data, "{compression}");
        }
        // The wrong decoder for the file is an error, not garbage.
        let mut out = Vec::new();
        assert!(decoder(Compression::Xz, &zst[..], 2, 0)
            .expect("decoder")
            .read_to_end(&mut out)
            .is_err());
    }

    #[test]
    fn meminfo_total() {
        let text = "MemTotal:         948232 kB\nMemFree:          812345 kB\n";
        assert_eq!(mem_total_from_meminfo(text), Some(948_232 * 1024));
        let later = "MemFree: 1 kB\nMemTotal: 2 kB\n";
        assert_eq!(mem_total_from_meminfo(later), Some(2048));
        assert_eq!(mem_total_from_meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total_from_meminfo("MemTotal: lots kB\n"), None);
        assert_eq!(mem_total_from_meminfo("MemTotal: 1 MB\n"), None);
        assert_eq!(mem_total_from_meminfo(""), None);
    }

    #[test]
    fn limits_fit_a_small_pi() {
        let gb = 948_232 * 1024;
        let (threading, stop) = memory_limits(gb);
        assert_eq!(threading, gb / 4);
        assert_eq!(stop, gb / 2);
        let (threading, _) = memory_limits(8 << 30);
        assert_eq!(threading, MAX_THREADING_MEMORY);
        assert_eq!(memory_limits(0), memory_limits(ASSUMED_MEM_TOTAL));
    }

    #[test]
    fn online_cpus_is_positive() {
        assert!(online_cpus() >= 1);
    }
}
