//! Splitting a zstd stream into its frames without decoding them (RFC 8878 §3.1), so that
//! [`super::zstd_reader`] can decode independent frames on all cores.
//!
//! Pure parsing over any `Read`: the frame header says whether the frame carries its content
//! size (k8r-builder always writes it, the reader needs it to size the output), each block
//! header says how many bytes follow it, and a content checksum may close the frame.
//! Skippable frames are skipped. Nothing here allocates more than [`MAX_FRAME_INPUT`] for one
//! frame, whatever the input claims.

use std::io::{self, Read};

/// The zstd frame magic number (little-endian on the wire).
const FRAME_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames have magics `0x184D2A50..=0x184D2A5F`.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
/// A block's content is at most 128 KiB (`Block_Maximum_Size`).
const MAX_BLOCK: u32 = 128 * 1024;

/// The uncompressed size of the frames k8r-builder writes: each 8 MiB of input is its own
/// frame (zstd's window at the builder's level is no larger, so little ratio is lost).
pub const FRAME_SIZE: usize = 8 * 1024 * 1024;

/// The largest frame content a reader accepts (the memory one frame may take when decoded).
pub const MAX_FRAME: u64 = 64 * 1024 * 1024;

/// The most compressed bytes one frame may have: incompressible content is stored in raw
/// blocks of at most 128 KiB with a 3-byte header each, well under 1/64 overhead.
pub const MAX_FRAME_INPUT: u64 = MAX_FRAME + MAX_FRAME / 64 + 64;

/// One zstd frame, read whole.
#[derive(Debug, Default)]
pub struct Frame {
    /// The frame's bytes, magic to checksum: what `ZSTD_decompress` takes.
    pub bytes: Vec<u8>,
    /// Its `Frame_Content_Size`: the exact number of bytes it decodes to.
    pub content_size: u64,
}

/// Reads zstd frames one by one from a compressed stream.
#[derive(Debug)]
pub struct FrameSplitter<R> {
    input: R,
    /// Compressed bytes consumed so far (for error messages).
    offset: u64,
}

impl<R: Read> FrameSplitter<R> {
    /// Splits the stream read from `input`.
    pub fn new(input: R) -> Self {
        FrameSplitter { input, offset: 0 }
    }

    /// Compressed bytes read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next frame, skipping skippable frames; `Ok(None)` at the end of the stream (which
    /// must fall between frames). A stream that ends inside a frame is `UnexpectedEof`; one
    /// that is not zstd, or a frame k8r cannot decode in parallel, is `InvalidData`, naming
    /// the compressed offset.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            let start = self.offset;
            let mut magic = [0u8; 4];
            let got = self.read_some(&mut magic)?;
            if got == 0 {
                return Ok(None);
            }
            if got < magic.len() {
                return Err(eof(start));
            }
            let magic = u32::from_le_bytes(magic);
            if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
                let mut size = [0u8; 4];
                self.read_exact_at(&mut size)?;
                self.skip(u64::from(u32::from_le_bytes(size)))?;
                continue;
            }
            if magic != FRAME_MAGIC {
                return Err(invalid(
                    start,
                    format!("not a zstd frame (magic {magic:#010x})"),
                ));
            }
            return self.frame_after_magic(start).map(Some);
        }
    }

    fn frame_after_magic(&mut self, start: u64) -> io::Result<Frame> {
        let mut bytes = FRAME_MAGIC.to_le_bytes().to_vec();
        let descriptor = self.take(&mut bytes, 1)?[0];
        let fcs_flag = descriptor >> 6;
        let single_segment = descriptor & 0x20 != 0;
        let has_checksum = descriptor & 0x04 != 0;
        if descriptor & 0x08 != 0 {
            return Err(invalid(
                start,
                "reserved bit set in the frame header".into(),
            ));
        }
        if !single_segment {
            self.take(&mut bytes, 1)?; // Window_Descriptor
        }
        let dictionary_bytes = [0, 1, 2, 4][usize::from(descriptor & 0x03)];
        if dictionary_bytes > 0 {
            let id = self.take(&mut bytes, dictionary_bytes)?;
            if id.iter().any(|&b| b != 0) {
                return Err(invalid(
                    start,
                    "a frame that needs a dictionary (k8r-builder never writes one)".into(),
                ));
            }
        }
        let fcs_bytes = match (fcs_flag, single_segment) {
            (0, false) => 0,
            (0, true) => 1,
            (1, _) => 2,
            (2, _) => 4,
            _ => 8,
        };
        if fcs_bytes == 0 {
            return Err(invalid(
                start,
                "a frame without its content size (k8r-builder always writes it: rebuild the \
                 artefact with k8r-builder)"
                    .into(),
            ));
        }
        let raw = self.take(&mut bytes, fcs_bytes)?;
        let mut le = [0u8; 8];
        le[..fcs_bytes].copy_from_slice(raw);
        let mut content_size = u64::from_le_bytes(le);
        if fcs_bytes == 2 {
            content_size += 256;
        }
        if content_size > MAX_FRAME {
            return Err(invalid(
                start,
                format!(
                    "a frame of {content_size} bytes (at most {MAX_FRAME}: k8r-builder writes \
                     frames of {FRAME_SIZE})"
                ),
            ));
        }
        loop {
            let header = self.take(&mut bytes, 3)?;
            let header =
                u32::from(header[0]) | u32::from(header[1]) << 8 | u32::from(header[2]) << 16;
            let last = header & 1 != 0;
            let block_size = header >> 3;
            let wire = match (header >> 1) & 0x03 {
                0 | 2 => block_size, // raw, compressed
                1 => 1,              // RLE: one byte repeated block_size times
                _ => return Err(invalid(start, "a reserved block type".into())),
            };
            if block_size > MAX_BLOCK {
                return Err(invalid(
                    start,
                    format!("a block of {block_size} bytes (at most {MAX_BLOCK})"),
                ));
            }
            if (bytes.len() as u64).saturating_add(u64::from(wire)) > MAX_FRAME_INPUT {
                return Err(invalid(
                    start,
                    format!("a frame longer than {MAX_FRAME_INPUT} compressed bytes"),
                ));
            }
            self.take(&mut bytes, wire as usize)?;
            if last {
                break;
            }
        }
        if has_checksum {
            self.take(&mut bytes, 4)?;
        }
        Ok(Frame {
            bytes,
            content_size,
        })
    }

    /// Appends exactly `n` bytes from the input to `bytes` and returns them.
    fn take<'b>(&mut self, bytes: &'b mut Vec<u8>, n: usize) -> io::Result<&'b [u8]> {
        let at = bytes.len();
        bytes.resize(at + n, 0);
        self.read_exact_at(&mut bytes[at..])?;
        Ok(&bytes[at..])
    }

    fn read_exact_at(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let start = self.offset;
        if self.read_some(buf)? < buf.len() {
            return Err(eof(start));
        }
        Ok(())
    }

    /// Fills `buf` as far as the input goes; returns how many bytes it got.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let got = super::ranges::fill(&mut self.input, buf)?;
        self.offset += got as u64;
        Ok(got)
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let start = self.offset;
        let skipped = io::copy(&mut (&mut self.input).take(n), &mut io::sink())?;
        self.offset += skipped;
        if skipped < n {
            return Err(eof(start));
        }
        Ok(())
    }
}

fn eof(offset: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the zstd stream ends inside a frame (compressed byte {offset}): truncated"),
    )
}

fn invalid(offset: u64, what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("zstd frame at compressed byte {offset}: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &[u8], checksum: bool) -> Vec<u8> {
        let mut c = zstd::bulk::Compressor::new(3).expect("compressor");
        c.include_checksum(checksum).expect("checksum");
        c.include_contentsize(true).expect("content size");
        c.compress(data).expect("compress")
    }

    fn split(stream: &[u8]) -> io::Result<Vec<Frame>> {
        let mut s = FrameSplitter::new(stream);
        let mut out = Vec::new();
        while let Some(f) = s.next_frame()? {
            out.push(f);
        }
        assert_eq!(s.offset(), stream.len() as u64);
        Ok(out)
    }

    #[test]
    fn finds_each_frame_and_its_content_size() {
        let sizes = [0usize, 1, 255, 256, 300, 65_791, 200_000, 1 << 20];
        let datas: Vec<Vec<u8>> = sizes
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|i| u8::try_from(i * 7 % 251).unwrap_or(0))
                    .collect()
            })
            .collect();
        let mut stream = Vec::new();
        let mut frames = Vec::new();
        for (i, d) in datas.iter().enumerate() {
            let f = frame(d, i % 2 == 0);
            stream.extend_from_slice(&f);
            frames.push(f);
        }
        let got = split(&stream).expect("split");
        assert_eq!(got.len(), sizes.len());
        for ((g, want), size) in got.iter().zip(&frames).zip(sizes) {
            assert_eq!(&g.bytes, want);
            assert_eq!(g.content_size, size as u64);
        }
    }

    #[test]
    fn incompressible_data_in_raw_blocks_splits_too() {
        let mut state = 0x9e37_79b9_u32;
        let data: Vec<u8> = (0..700_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state.to_le_bytes()[1]
            })
            .collect();
        let f = frame(&data, true);
        let mut stream = f.clone();
        stream.extend_from_slice(&frame(&[0u8; 1 << 20], false));
        let got = split(&stream).expect("split");
        assert_eq!(got[0].bytes, f);
        assert_eq!(got[1].content_size, 1 << 20);
    }

    #[test]
    fn skippable_frames_are_skipped() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&0x184D_2A5Au32.to_le_bytes());
        stream.extend_from_slice(&5u32.to_le_bytes());
        stream.extend_from_slice(b"hello");
        let f = frame(b"data", true);
        stream.extend_from_slice(&f);
        let got = split(&stream).expect("split");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].bytes, f);
    }

    #[test]
    fn a_stream_cut_anywhere_inside_a_frame_is_unexpected_eof() {
        let f = frame(&vec![3u8; 300_000], true);
        for cut in [1, 3, 4, 5, 7, f.len() / 2, f.len() - 1] {
            let err = split(&f[..cut]).map(|_| ()).expect_err("truncated");
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "cut {cut}: {err}");
        }
        assert!(split(&[]).expect("empty").is_empty());
    }

    #[test]
    fn foreign_data_is_invalid_with_its_offset() {
        let mut stream = frame(b"first", true);
        let at = stream.len();
        stream.extend_from_slice(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]); // xz magic
        let err = split(&stream).map(|_| ()).expect_err("xz is not zstd");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains(&format!("compressed byte {at}")),
            "{err}"
        );
    }

    #[test]
    fn a_frame_without_content_size_is_refused() {
        // Descriptor 0x00: no content size, no checksum, a window byte follows.
        let mut stream = FRAME_MAGIC.to_le_bytes().to_vec();
        stream.extend_from_slice(&[0x00, 0x00, 0x01, 0x00, 0x00]);
        let err = split(&stream).map(|_| ()).expect_err("no content size");
        assert!(
            err.to_string().contains("without its content size"),
            "{err}"
        );
    }

    #[test]
    fn a_huge_claimed_frame_is_refused_before_any_allocation() {
        let mut stream = FRAME_MAGIC.to_le_bytes().to_vec();
        // Descriptor 0xe0: 8-byte content size, single segment.
        stream.push(0xe0);
        stream.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = split(&stream).map(|_| ()).expect_err("huge");
        assert!(err.to_string().contains("at most"), "{err}");
        // A block claiming more than 128 KiB.
        let mut stream = FRAME_MAGIC.to_le_bytes().to_vec();
        stream.extend_from_slice(&[0x20, 0x10]); // single segment, 1-byte size 16
        let header: u32 = (200_000 << 3) | 1;
        stream.extend_from_slice(&header.to_le_bytes()[..3]);
        let err = split(&stream).map(|_| ()).expect_err("big block");
        assert!(err.to_string().contains("a block of"), "{err}");
    }

    #[test]
    fn reserved_block_type_and_dictionary_frames_are_refused() {
        let mut stream = FRAME_MAGIC.to_le_bytes().to_vec();
        stream.extend_from_slice(&[0x20, 0x10]);
        stream.extend_from_slice(&[0x07, 0x00, 0x00]); // last, type 3
        let err = split(&stream).map(|_| ()).expect_err("reserved");
        assert!(err.to_string().contains("reserved block type"), "{err}");
        let mut stream = FRAME_MAGIC.to_le_bytes().to_vec();
        stream.extend_from_slice(&[0x21, 0x07, 0x10]); // 1-byte dictionary id 7
        let err = split(&stream).map(|_| ()).expect_err("dictionary");
        assert!(err.to_string().contains("dictionary"), "{err}");
    }
}
