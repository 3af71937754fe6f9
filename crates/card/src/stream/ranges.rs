//! [`write_ranges`]: the decompressed root image → the partition, writing only the used
//! ranges and hashing each of them on a pool of worker threads.
//!
//! Threads (all scoped, joined before returning):
//! - the caller's thread reads the image in chunk-aligned buffers (the chunk is a multiple of
//!   1 MiB, so writes start and end on 1 MiB boundaries unless a range starts or ends inside
//!   a chunk), checks that bytes outside the ranges are zero and writes the ranges to `dev`;
//! - `threads` range hashers: range `i` belongs to worker `i % threads`, which gets that
//!   range's pieces in order over its own channel and keeps one SHA-256 per range;
//! - one whole-stream hasher (`root.sha256`), which sees every buffer including the zeros.
//!
//! A Pi 4 has no SHA instructions: on one core, hashing would be as slow as decoding. Buffers
//! come from a fixed pool and return to it when the last thread drops them, which bounds the
//! memory in flight to `pool × chunk` and makes the reader wait when the hashers fall behind.
//! Each buffer starts on an [`super::ALIGN`] boundary in memory and holds the image from a
//! multiple of the chunk on, so a piece's address and its partition offset agree modulo
//! [`super::ALIGN`]: written through a [`super::DirectWriter`], every range whose ends lie on
//! 4 KiB boundaries goes to the card with `O_DIRECT`, from the buffer itself.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8r_manifest::Range;
use sha2::{Digest, Sha256};

use super::aligned::AlignedBuf;
use super::StreamError;
use crate::digest::hex;

const MIB: usize = 1024 * 1024;

/// How [`write_ranges`] works. Memory: `2 × threads + 2` buffers of `chunk` bytes (40 MiB
/// for 4 threads and 4 MiB chunks, [`WriteOptions::pool_bytes`]), on top of the decoder's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// Range-hashing worker threads (at least 1; pass the number of online CPUs).
    pub threads: usize,
    /// Read and write buffer size in bytes; rounded up to a multiple of 1 MiB.
    pub chunk: usize,
    /// Also hash the whole decompressed stream (`WriteReport::sha256`). The range digests,
    /// the zero check outside them and the compressed file's digest already pin every byte,
    /// so the installer turns this off: on a small machine it is one more core-bound pass
    /// over the free space.
    pub whole_digest: bool,
}

impl WriteOptions {
    /// The write pool's buffers: enough for every hashing worker to hold a couple while the
    /// reader fills the next one.
    fn pool_len(&self) -> usize {
        2 * self.threads.max(1) + 2
    }

    /// The chunk size in use: [`WriteOptions::chunk`] rounded up to a multiple of 1 MiB.
    fn chunk_bytes(&self) -> usize {
        self.chunk.max(1).div_ceil(MIB) * MIB
    }

    /// The memory [`write_ranges`] holds beside the decoder: its buffer pool. The caller
    /// reserves it from the decoder's limits ([`super::decoder`]'s `reserved`).
    pub fn pool_bytes(&self) -> u64 {
        (self.pool_len() * self.chunk_bytes()) as u64
    }
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            threads: usize::try_from(super::online_cpus()).unwrap_or(1),
            chunk: 4 * MIB,
            whole_digest: true,
        }
    }
}

/// Progress of [`write_ranges`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Uncompressed bytes read so far.
    pub done: u64,
    /// `root.size`.
    pub total: u64,
    /// Bytes written to the partition so far.
    pub written: u64,
}

/// What [`write_ranges`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// Bytes written (the sum of the range lengths).
    pub written: u64,
    /// Zero bytes outside the ranges, not written.
    pub skipped_zero: u64,
    /// Lowercase hex SHA-256 of the whole decompressed image (compare with `root.sha256`);
    /// empty when `WriteOptions::whole_digest` is off.
    pub sha256: String,
}

/// Report progress after this many bytes …
const PROGRESS_BYTES: u64 = 64 * 1024 * 1024;
/// … or this much time, whichever comes first.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Streams the decompressed root image `plain` (exactly `total` bytes) onto `dev`, a handle
/// on the partition (offsets in `dev` are image offsets; the installer passes a
/// [`super::DirectWriter`]).
///
/// Only the bytes inside `ranges` are written; everything outside them must be zero
/// ([`StreamError::NonZeroOutsideRanges`]) and is left untouched on the card. Each range's
/// SHA-256 is checked against the manifest ([`StreamError::RangeDigest`], the lowest failing
/// index) once the whole stream has been read; the whole stream's digest is returned for the
/// caller to check against `root.sha256`. `ranges` must be sorted, non-overlapping and inside
/// `total` ([`StreamError::InvalidRange`]), as the manifest's validation guarantees.
///
/// On error, parts of the ranges may already be written: the caller keeps the card pointing
/// at recovery. `dev` is neither flushed nor synced: the caller does both before reading the
/// ranges back.
pub fn write_ranges<R: Read, W: Write + Seek>(
    mut plain: R,
    dev: &mut W,
    ranges: &[Range],
    total: u64,
    opts: &WriteOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<WriteReport, StreamError> {
    check_ranges(ranges, total)?;
    let threads = opts.threads.max(1);
    let chunk = opts.chunk_bytes();

    std::thread::scope(|scope| {
        let (pool_tx, pool_rx) = mpsc::channel::<AlignedBuf>();
        for _ in 0..opts.pool_len() {
            // Fails only if the receiver is gone, and it lives on this stack.
            let _ = pool_tx.send(AlignedBuf::new(chunk));
        }

        let mut workers = Vec::with_capacity(threads);
        let mut senders = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (tx, rx) = mpsc::channel::<Piece>();
            senders.push(tx);
            workers.push(scope.spawn(move || hash_ranges(rx)));
        }
        let (whole_tx, whole_rx) = mpsc::channel::<(Arc<PoolBuf>, usize)>();
        let whole_digest = opts.whole_digest;
        let whole = scope.spawn(move || {
            if !whole_digest {
                for _ in whole_rx {}
                return String::new();
            }
            let mut hasher = Sha256::new();
            for (buf, len) in whole_rx {
                hasher.update(&buf.data.as_slice()[..len]);
            }
            hex(&hasher.finalize())
        });

        let mut copier = Copier {
            dev,
            ranges,
            total,
            chunk,
            senders,
            whole_tx,
            pool_tx,
            pool_rx,
            next_range: 0,
            done: 0,
            written: 0,
            skipped_zero: 0,
        };
        let copied = copier.run(&mut plain, progress);
        let (written, skipped_zero) = (copier.written, copier.skipped_zero);
        // Closing the channels ends the workers.
        drop(copier);

        let mut digests: Vec<Option<String>> = vec![None; ranges.len()];
        let mut worker_failed = false;
        for worker in workers {
            match worker.join() {
                Ok(done) => {
                    for (index, digest) in done {
                        if let Some(slot) = digests.get_mut(index) {
                            *slot = Some(digest);
                        }
                    }
                }
                Err(_) => worker_failed = true,
            }
        }
        let sha256 = whole.join();
        copied?;
        let sha256 = sha256.map_err(|_| StreamError::Worker("whole-stream hasher panicked"))?;
        if worker_failed {
            return Err(StreamError::Worker("range hasher panicked"));
        }
        for (index, (range, digest)) in ranges.iter().zip(digests).enumerate() {
            // A range that never received a piece is empty.
            let actual = digest.unwrap_or_else(|| hex(&Sha256::digest([])));
            if !actual.eq_ignore_ascii_case(&range.sha256) {
                return Err(StreamError::RangeDigest {
                    index,
                    offset: range.offset,
                    length: range.length,
                    expected: range.sha256.clone(),
                    actual,
                });
            }
        }
        progress(Progress {
            done: total,
            total,
            written,
        });
        Ok(WriteReport {
            written,
            skipped_zero,
            sha256,
        })
    })
}

fn check_ranges(ranges: &[Range], total: u64) -> Result<(), StreamError> {
    let mut prev_end = 0;
    for (index, r) in ranges.iter().enumerate() {
        let invalid = |reason| StreamError::InvalidRange {
            index,
            offset: r.offset,
            length: r.length,
            reason,
        };
        let end = r
            .offset
            .checked_add(r.length)
            .ok_or_else(|| invalid("its end overflows"))?;
        if r.offset < prev_end {
            return Err(invalid("it starts before the previous range ends"));
        }
        if end > total {
            return Err(invalid("it ends after the image"));
        }
        prev_end = end;
    }
    Ok(())
}

/// A pool buffer; goes back to the pool when the last `Arc` to it is dropped.
struct PoolBuf {
    data: AlignedBuf,
    home: Sender<AlignedBuf>,
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        // After the copy is over, nobody takes buffers back; dropping them is fine.
        let _ = self.home.send(std::mem::take(&mut self.data));
    }
}

/// Part of one range inside one buffer.
struct Piece {
    index: usize,
    buf: Arc<PoolBuf>,
    start: usize,
    end: usize,
}

/// One range hasher: pieces of its ranges arrive in order, one range after the other.
fn hash_ranges(rx: Receiver<Piece>) -> Vec<(usize, String)> {
    let mut done = Vec::new();
    let mut current: Option<(usize, Sha256)> = None;
    for piece in rx {
        match &mut current {
            Some((index, hasher)) if *index == piece.index => {
                hasher.update(&piece.buf.data.as_slice()[piece.start..piece.end]);
            }
            _ => {
                if let Some((index, hasher)) = current.take() {
                    done.push((index, hex(&hasher.finalize())));
                }
                let mut hasher = Sha256::new();
                hasher.update(&piece.buf.data.as_slice()[piece.start..piece.end]);
                current = Some((piece.index, hasher));
            }
        }
    }
    if let Some((index, hasher)) = current {
        done.push((index, hex(&hasher.finalize())));
    }
    done
}

/// The reader's state.
struct Copier<'a, W> {
    dev: &'a mut W,
    ranges: &'a [Range],
    total: u64,
    chunk: usize,
    senders: Vec<Sender<Piece>>,
    whole_tx: Sender<(Arc<PoolBuf>, usize)>,
    pool_tx: Sender<AlignedBuf>,
    pool_rx: Receiver<AlignedBuf>,
    /// The first range not yet completely seen.
    next_range: usize,
    done: u64,
    written: u64,
    skipped_zero: u64,
}

impl<W: Write + Seek> Copier<'_, W> {
    fn run<R: Read>(
        &mut self,
        plain: &mut R,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), StreamError> {
        let mut last_report = (0u64, Instant::now());
        while self.done < self.total {
            let mut data = self
                .pool_rx
                .recv()
                .map_err(|_| StreamError::Worker("buffer pool closed"))?;
            let want = usize::try_from(self.total - self.done)
                .map_or(self.chunk, |left| left.min(self.chunk));
            let got = fill(plain, &mut data.as_mut_slice()[..want]).map_err(|source| {
                StreamError::Read {
                    offset: self.done,
                    source,
                }
            })?;
            let buf = Arc::new(PoolBuf {
                data,
                home: self.pool_tx.clone(),
            });
            self.process(&buf, got)?;
            self.done += got as u64;
            if got < want {
                return Err(StreamError::Truncated {
                    got: self.done,
                    want: self.total,
                });
            }
            let now = Instant::now();
            if self.done - last_report.0 >= PROGRESS_BYTES
                || now.duration_since(last_report.1) >= PROGRESS_INTERVAL
            {
                progress(Progress {
                    done: self.done,
                    total: self.total,
                    written: self.written,
                });
                last_report = (self.done, now);
            }
        }
        // The stream must end here; reading on also lets the xz decoder check its index.
        let mut probe = [0u8; 1];
        match fill(plain, &mut probe) {
            Ok(0) => Ok(()),
            Ok(_) => Err(StreamError::TooLong { want: self.total }),
            Err(source) => Err(StreamError::Read {
                offset: self.done,
                source,
            }),
        }
    }

    /// Handles the first `len` bytes of `buf`, which start at image offset `self.done`.
    fn process(&mut self, buf: &Arc<PoolBuf>, len: usize) -> Result<(), StreamError> {
        self.whole_tx
            .send((Arc::clone(buf), len))
            .map_err(|_| StreamError::Worker("whole-stream hasher stopped"))?;
        let base = self.done;
        let end = base + len as u64;
        let mut pos = base;
        while pos < end {
            let Some(range) = self.ranges.get(self.next_range) else {
                self.check_zero(buf, base, pos, end)?;
                break;
            };
            if pos < range.offset {
                let gap_end = range.offset.min(end);
                self.check_zero(buf, base, pos, gap_end)?;
                pos = gap_end;
                continue;
            }
            let piece_end = range.end().min(end);
            if piece_end > pos {
                let start = to_index(pos - base);
                let stop = to_index(piece_end - base);
                self.write_at(pos, &buf.data.as_slice()[start..stop])?;
                let worker = self.next_range % self.senders.len();
                self.senders[worker]
                    .send(Piece {
                        index: self.next_range,
                        buf: Arc::clone(buf),
                        start,
                        end: stop,
                    })
                    .map_err(|_| StreamError::Worker("range hasher stopped"))?;
                pos = piece_end;
            }
            if pos >= range.end() {
                self.next_range += 1;
            }
        }
        Ok(())
    }

    fn check_zero(
        &mut self,
        buf: &PoolBuf,
        base: u64,
        from: u64,
        to: u64,
    ) -> Result<(), StreamError> {
        let bytes = &buf.data.as_slice()[to_index(from - base)..to_index(to - base)];
        if let Some(at) = first_non_zero(bytes) {
            return Err(StreamError::NonZeroOutsideRanges {
                offset: from + at as u64,
            });
        }
        self.skipped_zero += to - from;
        Ok(())
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), StreamError> {
        let failed = |source| StreamError::Write {
            offset,
            length: bytes.len() as u64,
            source,
        };
        self.dev.seek(SeekFrom::Start(offset)).map_err(failed)?;
        self.dev.write_all(bytes).map_err(failed)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// An offset inside a buffer of at most `chunk` bytes: always fits.
fn to_index(offset: u64) -> usize {
    usize::try_from(offset).unwrap_or(usize::MAX)
}

/// Index of the first non-zero byte. ORs 64-byte blocks first (the compiler vectorises
/// that): most of an image is zeros and this runs on the reader's thread.
fn first_non_zero(bytes: &[u8]) -> Option<usize> {
    let mut blocks = bytes.chunks_exact(64);
    let mut at = 0;
    for block in blocks.by_ref() {
        if block.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            return block.iter().position(|&b| b != 0).map(|i| at + i);
        }
        at += 64;
    }
    blocks
        .remainder()
        .iter()
        .position(|&b| b != 0)
        .map(|i| at + i)
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn fill<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::xz_reader;
    use crate::testkit::{self as fixture, image, to_usize, MIB, TOTAL};
    use std::io::Cursor;

    const GARBAGE: u8 = 0xA5;

    fn opts(threads: usize, chunk: u64) -> WriteOptions {
        WriteOptions {
            threads,
            chunk: to_usize(chunk),
            whole_digest: true,
        }
    }

    #[test]
    fn whole_digest_can_be_skipped() {
        let (img, ranges) = image();
        let xz = fixture::image_xz();
        let plain = xz_reader(&xz[..], 2, 1 << 30).expect("decoder");
        let mut dev = std::io::Cursor::new(vec![0xA5u8; img.len()]);
        let o = WriteOptions {
            whole_digest: false,
            ..opts(2, MIB)
        };
        let report = write_ranges(plain, &mut dev, &ranges, TOTAL, &o, &mut |_| {}).expect("write");
        assert!(report.sha256.is_empty());
        for r in &ranges {
            let (a, b) = (to_usize(r.offset), to_usize(r.offset + r.length));
            assert!(dev.get_ref()[a..b] == img[a..b]);
        }
    }

    fn run(
        plain: &[u8],
        dev: &mut Cursor<Vec<u8>>,
        ranges: &[Range],
        total: u64,
    ) -> Result<WriteReport, StreamError> {
        write_ranges(plain, dev, ranges, total, &opts(3, MIB), &mut |_| {})
    }

    /// Ranges equal the source, everything else is still garbage.
    fn assert_written(img: &[u8], dev: &[u8]) {
        assert_eq!(dev.len(), img.len());
        for &(offset, length) in &fixture::LAYOUT {
            let r = to_usize(offset)..to_usize(offset + length);
            assert!(
                dev[r.clone()] == img[r.clone()],
                "range at {offset} differs"
            );
        }
        for (offset, length) in fixture::gaps() {
            let gap = &dev[to_usize(offset)..to_usize(offset + length)];
            let touched = gap.iter().position(|&b| b != GARBAGE);
            assert_eq!(touched, None, "gap at {offset} was written");
        }
    }

    fn whole_digest(img: &[u8]) -> String {
        hex(&Sha256::digest(img))
    }

    #[test]
    fn writes_ranges_from_xz_to_memory_and_leaves_the_rest() {
        let (img, ranges) = image();
        let xz = fixture::image_xz();
        let plain = xz_reader(&xz[..], 4, 1 << 30).expect("decoder");
        let mut dev = Cursor::new(vec![GARBAGE; img.len()]);
        let mut reports = Vec::new();
        let report = write_ranges(
            plain,
            &mut dev,
            &ranges,
            TOTAL,
            &opts(3, 4 * MIB),
            &mut |p| reports.push(p),
        )
        .expect("write");
        let sum: u64 = ranges.iter().map(|r| r.length).sum();
        assert_eq!(report.written, sum);
        assert_eq!(report.skipped_zero, TOTAL - sum);
        assert_eq!(report.sha256, whole_digest(&img));
        assert_written(&img, dev.get_ref());
        let last = reports.last().copied().expect("progress reported");
        assert_eq!(
            last,
            Progress {
                done: TOTAL,
                total: TOTAL,
                written: sum
            }
        );
        assert!(reports.windows(2).all(|w| w[0].done <= w[1].done));
    }

    #[test]
    fn writes_ranges_to_a_file_and_leaves_the_rest() {
        let (img, ranges) = image();
        let xz = fixture::image_xz();
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(&vec![GARBAGE; img.len()]).expect("garbage");
        let plain = xz_reader(&xz[..], 2, 0).expect("decoder");
        let report = write_ranges(plain, &mut file, &ranges, TOTAL, &opts(2, MIB), &mut |_| {})
            .expect("write");
        file.sync_all().expect("sync");
        assert_eq!(report.sha256, whole_digest(&img));
        let mut back = Vec::new();
        file.seek(SeekFrom::Start(0)).expect("seek");
        file.read_to_end(&mut back).expect("read back");
        assert_written(&img, &back);
    }

    #[test]
    fn through_a_direct_writer_the_aligned_ranges_bypass_the_page_cache() {
        let Some(dir) = crate::stream::direct_write::direct_io_dir() else {
            return;
        };
        let (img, ranges) = image();
        let path = dir.path().join("p3");
        std::fs::write(&path, vec![GARBAGE; img.len()]).expect("garbage");
        let mut dev = crate::stream::DirectWriter::open(&path).expect("open");
        let xz = fixture::image_xz();
        let plain = xz_reader(&xz[..], 2, 0).expect("decoder");
        let report = write_ranges(plain, &mut dev, &ranges, TOTAL, &opts(2, MIB), &mut |_| {})
            .expect("write");
        dev.sync_all().expect("sync");
        // Every range is 4 KiB-aligned except the 1 KiB-block one (15 MiB + 1 KiB, 5 KiB),
        // which is too short to hold an aligned 4 KiB block: it alone goes buffered.
        let used: u64 = ranges.iter().map(|r| r.length).sum();
        assert_eq!(report.written, used);
        assert_eq!(dev.buffered_bytes(), 5 * 1024);
        assert_eq!(dev.direct_bytes(), used - 5 * 1024);
        drop(dev);
        assert_written(&img, &std::fs::read(&path).expect("read back"));
    }

    #[test]
    fn every_thread_count_and_chunk_size_gives_the_same_result() {
        let (img, ranges) = image();
        for (threads, chunk) in [(1, 1), (1, 8 * MIB), (2, 3 * MIB), (7, 2 * MIB), (16, MIB)] {
            let mut dev = Cursor::new(vec![GARBAGE; img.len()]);
            let report = write_ranges(
                &img[..],
                &mut dev,
                &ranges,
                TOTAL,
                &opts(threads, chunk),
                &mut |_| {},
            )
            .unwrap_or_else(|e| panic!("{threads} threads, chunk {chunk}: {e}"));
            assert_eq!(report.sha256, whole_digest(&img));
            assert_written(&img, dev.get_ref());
        }
    }

    #[test]
    fn wrong_range_digest_names_the_range() {
        let (img, mut ranges) = image();
        for k in [0, 1, 3, 5] {
            let saved = ranges[k].sha256.clone();
            ranges[k].sha256 = whole_digest(b"something else");
            let mut dev = Cursor::new(vec![GARBAGE; img.len()]);
            match run(&img, &mut dev, &ranges, TOTAL) {
                Err(StreamError::RangeDigest {
                    index,
                    offset,
                    length,
                    expected,
                    actual,
                }) => {
                    assert_eq!(index, k);
                    assert_eq!((offset, length), fixture::LAYOUT[k]);
                    assert_eq!(expected, ranges[k].sha256);
                    assert_eq!(actual, saved);
                }
                other => panic!("range {k}: expected RangeDigest, got {other:?}"),
            }
            ranges[k].sha256 = saved;
        }
    }

    #[test]
    fn uppercase_manifest_digest_is_accepted() {
        let (img, mut ranges) = image();
        ranges[2].sha256 = ranges[2].sha256.to_uppercase();
        let mut dev = Cursor::new(vec![GARBAGE; img.len()]);
        run(&img, &mut dev, &ranges, TOTAL).expect("write");
    }

    #[test]
    fn non_zero_byte_outside_ranges_is_refused_with_its_offset() {
        let (img, ranges) = image();
        // Between ranges, right after a range, right before one, in the last chunk's gap.
        for offset in [
            64 * 1024,
            6 * MIB + 3 * 4096 + 8192,
            8 * MIB - 1,
            10 * MIB + 12_345,
            19 * MIB - 1,
        ] {
            assert!(fixture::outside(offset));
            let mut bad = img.clone();
            bad[to_usize(offset)] = 1;
            let mut dev = Cursor::new(vec![GARBAGE; img.len()]);
            match run(&bad, &mut dev, &ranges, TOTAL) {
                Err(StreamError::NonZeroOutsideRanges { offset: at }) => assert_eq!(at, offset),
                other => panic!("offset {offset}: expected NonZeroOutsideRanges, got {other:?}"),
            }
        }
    }

    #[test]
    fn truncated_stream_is_refused() {
        let (img, ranges) = image();
        for cut in [0, 5 * MIB + 17, TOTAL - 1] {
            let mut dev = Cursor::new(vec![GARBAGE; img.len()]);
            match run(&img[..to_usize(cut)], &mut dev, &ranges, TOTAL) {
                Err(StreamError::Truncated { got, want }) => {
                    assert_eq!((got, want), (cut, TOTAL));
                }
                other => panic!("cut {cut}: expected Truncated, got {other:?}"),
            }
        }
    }

    #[test]
    fn truncated_xz_is_a_read_error() {
        let (img, ranges) = image();
        let xz = fixture::image_xz();
        let plain = xz_reader(&xz[..xz.len() * 2 / 3], 2, 0).expect("decoder");
        let mut dev = Cursor::new(vec![GARBAGE; img.len()]);
        match write_ranges(plain, &mut dev, &ranges, TOTAL, &opts(2, MIB), &mut |_| {}) {
            Err(StreamError::Read { source, .. }) => {
                assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof);
            }
            other => panic!("expected Read, got {other:?}"),
        }
    }

    #[test]
    fn too_long_stream_is_refused() {
        let (mut img, ranges) = image();
        img.extend_from_slice(&[0; 4096]);
        let mut dev = Cursor::new(vec![GARBAGE; to_usize(TOTAL)]);
        match run(&img, &mut dev, &ranges, TOTAL) {
            Err(StreamError::TooLong { want }) => assert_eq!(want, TOTAL),
            other => panic!("expected TooLong, got {other:?}"),
        }
    }

    #[test]
    fn invalid_ranges_are_refused_before_reading() {
        let (img, ranges) = image();
        let mut overlapping = ranges.clone();
        overlapping[2].offset = overlapping[1].offset;
        let mut outside = ranges.clone();
        outside[5].length += 4096;
        let mut unsorted = ranges.clone();
        unsorted.swap(3, 4);
        for (bad, want) in [(overlapping, 2), (outside, 5), (unsorted, 4)] {
            let mut dev = Cursor::new(vec![GARBAGE; img.len()]);
            match run(&img, &mut dev, &bad, TOTAL) {
                Err(StreamError::InvalidRange { index, .. }) => assert_eq!(index, want),
                other => panic!("expected InvalidRange, got {other:?}"),
            }
            assert!(dev.get_ref().iter().all(|&b| b == GARBAGE), "wrote anyway");
        }
    }

    #[test]
    fn empty_and_full_range_lists() {
        let zeros = vec![0u8; to_usize(3 * MIB)];
        let mut dev = Cursor::new(vec![GARBAGE; zeros.len()]);
        let report = run(&zeros, &mut dev, &[], 3 * MIB).expect("all zeros, no ranges");
        assert_eq!((report.written, report.skipped_zero), (0, 3 * MIB));
        assert!(dev.get_ref().iter().all(|&b| b == GARBAGE));

        let (img, _) = image();
        let all = [Range {
            offset: 0,
            length: TOTAL,
            sha256: whole_digest(&img),
        }];
        let mut dev = Cursor::new(vec![GARBAGE; img.len()]);
        let report = run(&img, &mut dev, &all, TOTAL).expect("one range");
        assert_eq!(report.written, TOTAL);
        assert!(dev.get_ref() == &img);
    }

    #[test]
    fn first_non_zero_finds_the_first() {
        let mut v = vec![0u8; 200];
        assert_eq!(first_non_zero(&v), None);
        for at in [199, 130, 64, 63, 1, 0] {
            v[at] = 3;
            assert_eq!(first_non_zero(&v), Some(at));
        }
    }
}
