//! [`AlignedBuf`]: heap buffers whose start is aligned to [`ALIGN`], the alignment every
//! `O_DIRECT` read and write of the data path uses (offset, length and buffer address).
//!
//! 4096 covers both logical block sizes SD cards and USB sticks report (512 and 4096): an
//! access aligned to 4096 is aligned to 512 too.

/// Alignment of every direct read and write (offset, length and buffer address).
pub const ALIGN: u64 = 4096;

/// A heap buffer whose start is aligned to [`ALIGN`], without `unsafe`: a `Vec` one
/// alignment longer than needed, used from its first aligned byte on.
#[derive(Debug, Default)]
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer; `len` is rounded up to a multiple of [`ALIGN`] (so every access length stays aligned).
    pub fn new(len: usize) -> Self {
        let align = align();
        let len = len.max(1).div_ceil(align) * align;
        let storage = vec![0u8; len + align];
        // `align_offset` on a byte pointer is always computable and below `align`.
        let start = storage.as_ptr().align_offset(align).min(align);
        Self {
            storage,
            start,
            len,
        }
    }

    /// The buffer.
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// The buffer, to fill.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// [`ALIGN`] as a `usize`.
pub(crate) fn align() -> usize {
    usize::try_from(ALIGN).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_start_aligned_and_round_their_length_up() {
        for len in [1, 4095, 4096, 4097, 3 << 20] {
            let mut buf = AlignedBuf::new(len);
            assert_eq!(buf.as_slice().as_ptr() as usize % align(), 0, "len {len}");
            assert_eq!(buf.as_slice().len(), len.div_ceil(align()) * align());
            buf.as_mut_slice().fill(7);
            assert!(buf.as_slice().iter().all(|&b| b == 7));
        }
    }
}
