//! [`verify_ranges`]: read the written ranges back from the card, past the page cache, and
//! check each digest again. A card that loses or invents data (failing, or counterfeit: it
//! claims more capacity than it has and wraps writes around) fails here before the card is
//! made to boot the new system.
//!
//! Alignment: `O_DIRECT` wants the offset, the length and the buffer address aligned to the
//! device's logical block size (512 or 4096 bytes on SD cards and USB sticks). Range offsets
//! and lengths are only multiples of the ext4 block size (≥ 1024), so every read here covers
//! the range rounded out to 4096-byte boundaries, into a 4096-aligned buffer, and only the
//! range's own bytes are hashed. That works for both sector sizes without a fallback. The
//! rounded-up end may lie past the end of the partition (a 512-byte-sector partition whose
//! size is not a multiple of 4096): the kernel then returns a short read, which is fine as
//! long as it covers the range; a read that stops inside the range is an
//! [`StreamError::ReadError`] (`UnexpectedEof`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use k8r_manifest::Range;
use sha2::{Digest, Sha256};

use super::aligned::{AlignedBuf, ALIGN};
use super::StreamError;
use crate::digest::hex;

/// Bytes per read.
const READ_SIZE: usize = 4 * 1024 * 1024;

/// Progress of [`verify_ranges`], reported from the worker threads after each read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyProgress {
    /// Range bytes checked so far.
    pub verified: u64,
    /// The sum of all range lengths.
    pub total: u64,
}

/// Reads every range of `device` (the partition, or an image file) back on `threads` threads
/// and compares its SHA-256 with the manifest.
///
/// With `direct`, the device is opened with `O_DIRECT` ([`crate::io::open_direct`]) so the
/// bytes come from the card, not from the page cache (the caller syncs the written data
/// first; dirty pages would be written back before a direct read anyway). Without it (file
/// systems that refuse `O_DIRECT`, such as tmpfs), reads are buffered.
///
/// Returns the error of the lowest failing range: [`StreamError::ReadbackMismatch`] or
/// [`StreamError::ReadError`].
pub fn verify_ranges(
    device: &Path,
    ranges: &[Range],
    threads: usize,
    direct: bool,
    progress: &(dyn Fn(VerifyProgress) + Sync),
) -> Result<(), StreamError> {
    let open = || {
        if direct {
            crate::io::open_direct(device)
        } else {
            File::open(device)
        }
    };
    let opened = |source| StreamError::Open {
        path: device.display().to_string(),
        source,
    };
    // Open once here so that a missing device is reported as such, not per range.
    let first = open().map_err(opened)?;

    let total: u64 = ranges.iter().map(|r| r.length).sum();
    let verified = AtomicU64::new(0);
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<(usize, StreamError)>> = Mutex::new(Vec::new());
    let threads = threads.clamp(1, ranges.len().max(1));

    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(threads);
        let mut first = Some(first);
        for _ in 0..threads {
            let file = match first.take() {
                Some(file) => Ok(file),
                None => open(),
            };
            let (next, failures, verified) = (&next, &failures, &verified);
            handles.push(scope.spawn(move || -> Result<(), StreamError> {
                let file = file.map_err(opened)?;
                let mut buf = AlignedBuf::new(READ_SIZE);
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(range) = ranges.get(index) else {
                        return Ok(());
                    };
                    let report = |n: u64| {
                        let done = verified.fetch_add(n, Ordering::Relaxed) + n;
                        progress(VerifyProgress {
                            verified: done,
                            total,
                        });
                    };
                    if let Err(e) = check_range(&file, index, range, &mut buf, &report) {
                        failures
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push((index, e));
                    }
                }
            }));
        }
        for handle in handles {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(StreamError::Worker("read-back worker panicked")),
            }
        }
        Ok(())
    })?;

    let mut failures = failures
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    failures.sort_by_key(|(index, _)| *index);
    match failures.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// Reads one range (rounded out to [`ALIGN`]) and compares its digest.
fn check_range(
    file: &File,
    index: usize,
    range: &Range,
    buf: &mut AlignedBuf,
    report: &dyn Fn(u64),
) -> Result<(), StreamError> {
    let read_error = |source| StreamError::ReadError {
        index,
        offset: range.offset,
        length: range.length,
        source,
    };
    let end = range.end();
    let mut hasher = Sha256::new();
    let mut pos = range.offset - range.offset % ALIGN;
    while pos < end {
        let window = buf.as_mut_slice();
        let span = (end - pos).div_ceil(ALIGN) * ALIGN;
        let want = usize::try_from(span).map_or(window.len(), |s| s.min(window.len()));
        let got = read_full_at(file, &mut window[..want], pos).map_err(read_error)?;
        let got_end = pos + got as u64;
        // The range's bytes within this window.
        let from = range.offset.max(pos);
        let to = end.min(pos + want as u64);
        if got_end < to {
            return Err(read_error(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the device ends at byte {got_end}"),
            )));
        }
        let slice = &window[to_index(from - pos)..to_index(to - pos)];
        hasher.update(slice);
        report(slice.len() as u64);
        pos += want as u64;
    }
    let actual = hex(&hasher.finalize());
    if actual.eq_ignore_ascii_case(&range.sha256) {
        Ok(())
    } else {
        Err(StreamError::ReadbackMismatch {
            index,
            offset: range.offset,
            length: range.length,
            expected: range.sha256.clone(),
            actual,
        })
    }
}

/// An offset inside a buffer: always fits.
fn to_index(offset: u64) -> usize {
    usize::try_from(offset).unwrap_or(usize::MAX)
}

/// `pread` until `buf` is full or the file ends; returns the bytes read.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
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
    use crate::testkit::{self as fixture, image, to_usize};
    use std::io::Write;

    /// The fixture image in a temp file (the ranges as written, the gaps as garbage).
    fn image_file() -> (tempfile::NamedTempFile, Vec<Range>) {
        let (mut img, ranges) = image();
        for (offset, length) in fixture::gaps() {
            img[to_usize(offset)..to_usize(offset + length)].fill(0xA5);
        }
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(&img).expect("write");
        file.as_file().sync_all().expect("sync");
        (file, ranges)
    }

    fn flip(file: &tempfile::NamedTempFile, offset: u64) {
        let mut byte = [0u8; 1];
        file.as_file()
            .read_exact_at(&mut byte, offset)
            .expect("read");
        byte[0] ^= 0x01;
        file.as_file().write_all_at(&byte, offset).expect("write");
        file.as_file().sync_all().expect("sync");
    }

    /// Whether `O_DIRECT` works where the temp files live (tmpfs refuses it).
    fn direct_supported(path: &Path) -> bool {
        match crate::io::open_direct(path) {
            Ok(_) => true,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                println!(
                    "note: O_DIRECT is not supported on {}: skipped",
                    path.display()
                );
                false
            }
            Err(e) => panic!("open_direct {}: {e}", path.display()),
        }
    }

    fn modes(path: &Path) -> Vec<bool> {
        if direct_supported(path) {
            vec![false, true]
        } else {
            vec![false]
        }
    }

    #[test]
    fn intact_image_verifies_and_reports_progress() {
        let (file, ranges) = image_file();
        let total: u64 = ranges.iter().map(|r| r.length).sum();
        for direct in modes(file.path()) {
            for threads in [1, 3, 16] {
                let last = AtomicU64::new(0);
                let calls = AtomicUsize::new(0);
                verify_ranges(file.path(), &ranges, threads, direct, &|p| {
                    assert_eq!(p.total, total);
                    last.fetch_max(p.verified, Ordering::Relaxed);
                    calls.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap_or_else(|e| panic!("direct {direct}, {threads} threads: {e}"));
                assert_eq!(last.load(Ordering::Relaxed), total);
                assert!(calls.load(Ordering::Relaxed) >= ranges.len());
            }
        }
    }

    #[test]
    fn flipped_byte_names_its_range() {
        let (file, ranges) = image_file();
        // First byte of range 1, inside the 1024-aligned range 4, last byte of the image.
        for (k, offset) in [
            (1, ranges[1].offset),
            (4, ranges[4].offset + 2047),
            (5, ranges[5].end() - 1),
        ] {
            flip(&file, offset);
            for direct in modes(file.path()) {
                match verify_ranges(file.path(), &ranges, 4, direct, &|_| {}) {
                    Err(StreamError::ReadbackMismatch {
                        index,
                        offset,
                        length,
                        expected,
                        actual,
                    }) => {
                        assert_eq!(index, k);
                        assert_eq!((offset, length), fixture::LAYOUT[k]);
                        assert_eq!(expected, ranges[k].sha256);
                        assert_ne!(actual, expected);
                    }
                    other => panic!(
                        "range {k}, direct {direct}: expected ReadbackMismatch, got {other:?}"
                    ),
                }
            }
            flip(&file, offset);
        }
    }

    #[test]
    fn garbage_outside_ranges_is_not_checked() {
        let (file, ranges) = image_file();
        let gap = fixture::gaps()[1].0;
        flip(&file, gap);
        verify_ranges(file.path(), &ranges, 2, false, &|_| {}).expect("gaps are not verified");
    }

    #[test]
    fn short_device_is_a_read_error_naming_the_range() {
        let (file, ranges) = image_file();
        let cut = ranges[5].offset + 4096;
        file.as_file().set_len(cut).expect("truncate");
        for direct in modes(file.path()) {
            match verify_ranges(file.path(), &ranges, 2, direct, &|_| {}) {
                Err(StreamError::ReadError {
                    index,
                    offset,
                    source,
                    ..
                }) => {
                    assert_eq!((index, offset), (5, ranges[5].offset));
                    assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof);
                }
                other => panic!("direct {direct}: expected ReadError, got {other:?}"),
            }
        }
    }

    #[test]
    fn dropping_the_page_cache_of_a_regular_file_is_fine() {
        let (file, ranges) = image_file();
        crate::io::drop_page_cache(file.as_file()).expect("fadvise on a regular file");
        verify_ranges(file.path(), &ranges, 2, false, &|_| {}).expect("still verifies");
    }

    #[test]
    fn missing_device_is_an_open_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, ranges) = image();
        let result = verify_ranges(&dir.path().join("nope"), &ranges, 2, false, &|_| {});
        assert!(
            matches!(result, Err(StreamError::Open { .. })),
            "{result:?}"
        );
    }
}
