//! SHA-256 helpers shared by every k8r program: lowercase hex, the digest of a file, and
//! `Read`/`Write` adapters that hash (and count) what passes through them.
//!
//! Digests travel as 64 lowercase hex characters everywhere (manifests, `SHA256SUMS`, error
//! messages), so [`hex`] is the one formatter.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Lowercase hex of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Lowercase hex SHA-256 of `data`.
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Lowercase hex SHA-256 of a whole file.
///
/// # Errors
/// The file cannot be opened or read.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    sha256_file_with_progress(path, &|_| {})
}

/// Lowercase hex SHA-256 of a whole file; `progress` is called after each megabyte with the
/// bytes hashed so far (a base image of several GiB takes a while on a slow disk).
///
/// # Errors
/// The file cannot be opened or read.
pub fn sha256_file_with_progress(path: &Path, progress: &dyn Fn(u64)) -> io::Result<String> {
    let mut reader = HashingReader::new(File::open(path)?);
    let mut buf = vec![0u8; 1 << 20];
    while reader.read(&mut buf)? != 0 {
        progress(reader.count());
    }
    Ok(reader.finish().0)
}

/// The error a [`HashingReader`] with a limit returns once more bytes than the limit passed.
#[derive(Debug, thiserror::Error)]
#[error("the stream is longer than the {limit} bytes expected")]
pub struct LimitExceeded {
    /// The limit.
    pub limit: u64,
}

/// A `Read` adapter that hashes (SHA-256) and counts the bytes passing through, optionally
/// refusing to go past a size limit (a download or an archive that is longer than its
/// manifest says is refused while it streams, not after it filled the disk).
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    limit: Option<u64>,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
            limit: None,
        }
    }

    /// Wraps `inner`; a read that takes the count past `limit` fails with [`LimitExceeded`]
    /// (as an `io::Error` of kind `InvalidData`; see [`HashingReader::exceeded`]).
    pub fn with_limit(inner: R, limit: u64) -> Self {
        Self {
            limit: Some(limit),
            ..Self::new(inner)
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether more bytes than the limit came through.
    pub fn exceeded(&self) -> bool {
        self.limit.is_some_and(|l| self.count > l)
    }

    /// The wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The lowercase hex SHA-256 of the bytes read and their count.
    pub fn finish(self) -> (String, u64) {
        (hex(&self.hasher.finalize()), self.count)
    }

    /// The raw digest, the count and the wrapped reader.
    pub fn into_parts(self) -> ([u8; 32], u64, R) {
        (self.hasher.finalize().into(), self.count, self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let passed = &buf[..n];
        self.hasher.update(passed);
        self.count += passed.len() as u64;
        if let Some(limit) = self.limit {
            if self.count > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    LimitExceeded { limit },
                ));
            }
        }
        Ok(n)
    }
}

/// A `Write` adapter that hashes (SHA-256) and counts the bytes the inner writer accepted.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The lowercase hex SHA-256 of the bytes written, their count, and the inner writer.
    pub fn finish(self) -> (String, u64, W) {
        (hex(&self.hasher.finalize()), self.count, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A `Write + Seek` target that discards data and tracks its position (for verifying a
/// stored image without writing it anywhere).
#[derive(Debug, Default)]
pub struct NullDevice {
    pos: u64,
    len: u64,
}

impl Write for NullDevice {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pos += buf.len() as u64;
        self.len = self.len.max(self.pos);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for NullDevice {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before start"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // sha256("abc"), FIPS 180-2 appendix B.1.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
        assert_eq!(sha256_hex(b"abc"), ABC);
    }

    #[test]
    fn hashes_and_counts_what_passes() {
        let mut r = HashingReader::new(&b"abc"[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        assert_eq!(out, b"abc");
        assert_eq!(r.count(), 3);
        assert_eq!(r.finish(), (ABC.to_string(), 3));
    }

    #[test]
    fn small_reads_give_the_same_digest() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = HashingReader::new(&data[..]);
        let mut buf = [0u8; 7];
        while r.read(&mut buf).expect("read") != 0 {}
        assert_eq!(r.finish(), (sha256_hex(&data), 10_000));
    }

    #[test]
    fn empty_input() {
        let r = HashingReader::new(&b""[..]);
        assert_eq!(r.finish(), (EMPTY.to_string(), 0));
    }

    #[test]
    fn limit_refuses_longer_streams_and_passes_exact_ones() {
        let mut exact = HashingReader::with_limit(&b"abc"[..], 3);
        io::copy(&mut exact, &mut io::sink()).expect("exactly the limit is fine");
        assert!(!exact.exceeded());

        let mut long = HashingReader::with_limit(&b"abcd"[..], 3);
        let err = io::copy(&mut long, &mut io::sink()).expect_err("one byte too many");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("longer than the 3 bytes"), "{err}");
        assert!(long.exceeded());
    }

    #[test]
    fn writer_hashes_what_was_accepted() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"ab").expect("write");
        w.write_all(b"c").expect("write");
        let (digest, n, inner) = w.finish();
        assert_eq!(
            (digest.as_str(), n, inner.as_slice()),
            (ABC, 3, &b"abc"[..])
        );
    }

    #[test]
    fn null_device_tracks_position() {
        let mut d = NullDevice::default();
        d.write_all(b"abc").expect("write");
        assert_eq!(d.stream_position().expect("pos"), 3);
        assert_eq!(d.seek(SeekFrom::Start(100)).expect("seek"), 100);
        assert!(d.seek(SeekFrom::Current(-200)).is_err());
    }

    #[test]
    fn file_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").expect("write");
        assert_eq!(sha256_file(&p).expect("sha"), ABC);
        assert!(sha256_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn a_whole_file_hashes_as_sha256sum_would_with_progress() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("f");
        let data = vec![7u8; (5 << 20) + 3];
        std::fs::write(&f, &data).expect("write");
        let seen = std::cell::RefCell::new(Vec::new());
        let got = sha256_file_with_progress(&f, &|n| seen.borrow_mut().push(n)).expect("hash");
        assert_eq!(got, sha256_hex(&data));
        let seen = seen.into_inner();
        assert!(seen.len() >= 5, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(seen.last(), Some(&(data.len() as u64)));
    }
}
