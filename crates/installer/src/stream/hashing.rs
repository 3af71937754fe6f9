//! [`HashingReader`]: SHA-256 and byte count of everything read through it.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// A `Read` adapter that hashes (SHA-256) and counts the bytes passing through. Used on the
/// compressed `image.img.xz` to check `root.compressed_sha256` and `compressed_size`.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The lowercase hex SHA-256 of the bytes read and their count.
    pub fn finish(self) -> (String, u64) {
        (super::hex(&self.hasher.finalize()), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let passed = &buf[..n];
        self.hasher.update(passed);
        self.count += passed.len() as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // sha256("abc"), FIPS 180-2 appendix B.1.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

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
        loop {
            let n = r.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
        }
        let expected = super::super::hex(&Sha256::digest(&data));
        assert_eq!(r.finish(), (expected, 10_000));
    }

    #[test]
    fn empty_input() {
        let r = HashingReader::new(&b""[..]);
        let (digest, n) = r.finish();
        assert_eq!(n, 0);
        assert_eq!(
            digest,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
