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

/// The memory the whole install data path may hold on a machine with `mem_total` bytes of
/// RAM (`0`: unknown, [`ASSUMED_MEM_TOTAL`]): `min(mem_total / 4, 512 MiB)`. A 1 GB Pi 4
/// (≈ 926 MiB `MemTotal`) gets ≈ 231 MiB, inside the 256 MiB k8r promises it, and the rest
/// stays with the kernel, the page cache and the installer itself.
pub fn data_path_budget(mem_total: u64) -> u64 {
    (known(mem_total) / 4).min(MAX_THREADING_MEMORY)
}

/// `mem_total`, or [`ASSUMED_MEM_TOTAL`] when it is unknown (`0`).
fn known(mem_total: u64) -> u64 {
    if mem_total == 0 {
        ASSUMED_MEM_TOTAL
    } else {
        mem_total
    }
}

/// The decoder's memory limits for a machine with `mem_total` bytes of RAM when the rest of
/// the data path holds `reserved` bytes beside it (the write buffers:
/// [`super::WriteOptions::pool_bytes`]): `(memlimit_threading, memlimit_stop)`.
///
/// - `memlimit_threading = data_path_budget(mem_total) − reserved`: liblzma starts fewer
///   threads when more would exceed it (single-threaded when not even one fits). Each thread
///   holds about one block's input and output plus the dictionary, and the thread count is
///   also capped at what [`XZ_THREAD_MEMORY`] each fits ([`xz_threads`]): a 1 GB Pi 4 with
///   40 MiB of write buffers decodes on 2 threads (≈ 160 MB/s, several times what its SD
///   card writes) and the data path stays within its budget.
/// - `memlimit_stop = mem_total / 2`: the hard limit; above it decoding fails with a memory
///   error instead of the kernel's OOM killer ending PID 1. A single-threaded decode of a
///   normal `.xz` needs only the dictionary, far below it.
pub fn memory_limits(mem_total: u64, reserved: u64) -> (u64, u64) {
    (
        data_path_budget(mem_total).saturating_sub(reserved),
        known(mem_total) / 2,
    )
}

/// Decompresses the `.xz` stream read from `input` on up to `threads` threads (the caller
/// passes [`online_cpus`]), within [`memory_limits`]`(mem_total, 0)`: the decoder alone.
///
/// Decodes one xz stream; whatever follows it is ignored. A truncated or corrupt stream is an
/// `io::Error` from `read` (kind `UnexpectedEof` or `InvalidData`); the integrity check of
/// each block and the stream index are verified as they pass, so read to the end (`Ok(0)`).
pub fn xz_reader<R: Read>(input: R, threads: u32, mem_total: u64) -> io::Result<impl Read> {
    xz_within(input, threads, memory_limits(mem_total, 0))
}

/// What one xz decoder thread adds to the process's peak memory with the builder's 32 MiB
/// blocks and preset 6 (8 MiB dictionary), measured by `cargo xtask bench` (its row sized
/// for a 1 GB Pi 4): 2 threads 184 MiB, 3 threads 266 MiB peak RSS. liblzma's own accounting
/// for `memlimit_threading` counts less per thread (it let 3 threads start in 191 MiB), so
/// the thread count is capped from this figure as well.
pub const XZ_THREAD_MEMORY: u64 = 80 * MIB;

/// The xz decoder threads to start: `threads` (the online CPUs), at most as many as
/// [`XZ_THREAD_MEMORY`] fits in `threading` bytes, at least one.
pub fn xz_threads(threads: u32, threading: u64) -> u32 {
    let fit = u32::try_from(threading / XZ_THREAD_MEMORY).unwrap_or(u32::MAX);
    threads.min(fit).max(1)
}

/// [`xz_reader`] within explicit `(memlimit_threading, memlimit_stop)`.
fn xz_within<R: Read>(input: R, threads: u32, limits: (u64, u64)) -> io::Result<impl Read> {
    let (threading, stop) = limits;
    let stream = MtStreamBuilder::new()
        .threads(xz_threads(threads, threading))
        .memlimit_threading(threading)
        .memlimit_stop(stop)
        .decoder()
        .map_err(io::Error::other)?;
    Ok(liblzma::read::XzDecoder::new_stream(input, stream))
}

/// The decompressed bytes of `input`, an artefact compressed as `compression` (the
/// manifest's `compression`): the xz decoder or [`ZstdReader`], on up to `threads` threads
/// and within [`memory_limits`]`(mem_total, reserved)`, `reserved` being what the caller holds
/// beside the decoder ([`super::WriteOptions::pool_bytes`] for [`super::write_ranges`]). The
/// input is read on the calling thread, in order.
pub fn decoder<'a, R: Read + 'a>(
    compression: Compression,
    input: R,
    threads: u32,
    mem_total: u64,
    reserved: u64,
) -> io::Result<Box<dyn Read + 'a>> {
    let limits = memory_limits(mem_total, reserved);
    Ok(match compression {
        Compression::Xz => Box::new(xz_within(input, threads, limits)?),
        Compression::Zstd => Box::new(ZstdReader::new(input, threads, limits.0)?),
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
            decoder(compression, &bytes[..], 2, 1 << 30, 0)
                .expect("decoder")
                .read_to_end(&mut out)
                .expect("decode");
            assert!(out == data, "{compression}");
        }
        // The wrong decoder for the file is an error, not garbage.
        let mut out = Vec::new();
        assert!(decoder(Compression::Xz, &zst[..], 2, 0, 0)
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
        // A 1 GB Pi 4's MemTotal, and the write pool of 4 hashing threads with 4 MiB chunks.
        let pi = 948_232 * 1024;
        let pool = crate::stream::WriteOptions {
            threads: 4,
            chunk: 4 << 20,
            whole_digest: false,
        }
        .pool_bytes();
        assert_eq!(pool, 40 << 20);
        let (threading, stop) = memory_limits(pi, pool);
        assert_eq!(threading, pi / 4 - pool);
        assert!(threading + pool <= 256 << 20, "{threading} + {pool}");
        assert_eq!(stop, pi / 2);
        // Without a reservation the decoder alone gets the whole budget.
        assert_eq!(memory_limits(pi, 0).0, data_path_budget(pi));
        // Big machines are capped; a reservation larger than the budget leaves the decoder
        // nothing to thread with (it decodes on one thread), never an underflow.
        assert_eq!(memory_limits(8 << 30, 0).0, MAX_THREADING_MEMORY);
        assert_eq!(memory_limits(1 << 30, 1 << 30).0, 0);
        assert_eq!(memory_limits(0, 7), memory_limits(ASSUMED_MEM_TOTAL, 7));
    }

    #[test]
    fn decoder_threads_fit_the_memory_left() {
        let pi = 948_232 * 1024;
        // A 1 GB Pi 4's 4 cores and 40 MiB of write buffers: 2 threads, ≤ 256 MiB in all.
        let (threading, _) = memory_limits(pi, 40 << 20);
        assert_eq!(xz_threads(4, threading), 2);
        // A big machine runs one per core; nothing left still decodes, on one.
        assert_eq!(xz_threads(4, memory_limits(8 << 30, 40 << 20).0), 4);
        assert_eq!(xz_threads(2, memory_limits(8 << 30, 0).0), 2);
        assert_eq!(xz_threads(4, 0), 1);
        assert_eq!(xz_threads(0, 1 << 30), 1);
    }

    #[test]
    fn a_decoder_without_threading_memory_still_decodes_everything() {
        let data = sample(5 * 1024 * 1024 + 1);
        let xz = compress_blocks(&data);
        let mut out = Vec::new();
        decoder(Compression::Xz, &xz[..], 4, 64 << 20, 64 << 20)
            .expect("decoder")
            .read_to_end(&mut out)
            .expect("decode");
        assert!(out == data);
    }

    #[test]
    fn online_cpus_is_positive() {
        assert!(online_cpus() >= 1);
    }
}
