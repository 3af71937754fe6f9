//! [`DirectWriter`]: the partition handle [`super::write_ranges`] writes through, with
//! `O_DIRECT` wherever a write allows it.
//!
//! A buffered write makes the kernel copy every byte into the page cache and write it back
//! later, on the same cores the decoder needs: on the bench's 2-core host that was most of
//! the gap between k8r's write path and the xz decode floor (docs/performance.md). A direct
//! write hands the caller's buffer to the device instead. It needs the buffer address, the
//! file offset and the length aligned to the device's logical block size ([`ALIGN`] covers
//! 512 and 4096), so each write is split: the aligned middle goes direct, an unaligned head
//! or tail (a 1 KiB-block root's range edges, the image's last bytes) goes buffered through a
//! second handle on the same device. A write whose buffer and offset disagree modulo
//! [`ALIGN`] goes buffered whole. Where direct I/O does not work at all (tmpfs refuses the
//! open, a device may refuse a write with `EINVAL`) everything goes buffered: the bytes on
//! the device are the same either way, only the cost differs.
//!
//! Both handles are the same inode, so one `fsync` ([`DirectWriter::sync_all`]) covers both:
//! the direct writes are complete when they return, the buffered ones reach the device then,
//! and on a block device it also flushes the device's own write cache.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::aligned::{align, ALIGN};

/// A partition (or image file) opened for [`super::write_ranges`]: positioned writes, the
/// aligned parts with `O_DIRECT`.
#[derive(Debug)]
pub struct DirectWriter {
    buffered: File,
    direct: Option<File>,
    pos: u64,
    direct_bytes: u64,
    buffered_bytes: u64,
}

impl DirectWriter {
    /// Opens `path` (which must exist: a partition, or a file already sized) for writing,
    /// once buffered and once with `O_DIRECT`. A file system that refuses `O_DIRECT` (`EINVAL`)
    /// leaves the writer buffered only.
    ///
    /// # Errors
    /// What `open(2)` says for the buffered handle, or for the direct one other than `EINVAL`.
    pub fn open(path: &Path) -> io::Result<Self> {
        let buffered = OpenOptions::new().write(true).open(path)?;
        let direct = match crate::io::open_direct_write(path) {
            Ok(file) => Some(file),
            Err(e) if is_einval(&e) => None,
            Err(e) => return Err(e),
        };
        Ok(Self::from_files(buffered, direct))
    }

    /// A writer over handles the caller opened: `direct`, when given, must be the same file
    /// as `buffered`, opened with `O_DIRECT`.
    pub fn from_files(buffered: File, direct: Option<File>) -> Self {
        Self {
            buffered,
            direct,
            pos: 0,
            direct_bytes: 0,
            buffered_bytes: 0,
        }
    }

    /// Bytes written with `O_DIRECT` so far.
    pub fn direct_bytes(&self) -> u64 {
        self.direct_bytes
    }

    /// Bytes written through the page cache so far (the tests check the split with it).
    #[cfg(test)]
    pub(crate) fn buffered_bytes(&self) -> u64 {
        self.buffered_bytes
    }

    /// `fsync(2)`: every write so far is on the device (and out of its write cache).
    ///
    /// # Errors
    /// What `fsync(2)` says.
    pub fn sync_all(&self) -> io::Result<()> {
        self.buffered.sync_all()
    }

    /// The buffered handle, e.g. to drop the file's cached pages after the sync.
    pub fn file(&self) -> &File {
        &self.buffered
    }

    /// Writes a prefix of `buf` at `self.pos`; returns its length.
    fn write_some(&mut self, buf: &[u8]) -> io::Result<usize> {
        let split = direct_prefix(buf.as_ptr() as usize, self.pos, buf.len());
        if let (Some(direct), Split::Direct(len)) = (&self.direct, split) {
            match direct.write_at(&buf[..len], self.pos) {
                Ok(n) => {
                    self.direct_bytes += n as u64;
                    return Ok(n);
                }
                // The device refuses this alignment (a logical block above ALIGN): this
                // write and the rest go buffered.
                Err(e) if is_einval(&e) => self.direct = None,
                Err(e) => return Err(e),
            }
        }
        let (Split::Direct(len) | Split::Buffered(len)) = split;
        self.write_buffered(&buf[..len])
    }

    fn write_buffered(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.buffered.write_at(buf, self.pos)?;
        self.buffered_bytes += n as u64;
        Ok(n)
    }
}

/// How the next write of a buffer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    /// This many bytes with `O_DIRECT`.
    Direct(usize),
    /// This many bytes buffered.
    Buffered(usize),
}

/// The first piece of a `len`-byte write from address `addr` to file offset `pos`: an
/// unaligned head buffered, then the aligned middle direct, then a tail shorter than
/// [`ALIGN`] buffered. Buffer and offset must agree modulo [`ALIGN`] for any of it to go
/// direct.
fn direct_prefix(addr: usize, pos: u64, len: usize) -> Split {
    let align = align();
    // Below ALIGN: fits.
    let pos_mod = usize::try_from(pos % ALIGN).unwrap_or(0);
    if addr % align != pos_mod {
        return Split::Buffered(len);
    }
    let head = (align - pos_mod) % align;
    if head > 0 {
        return Split::Buffered(head.min(len));
    }
    match len / align * align {
        0 => Split::Buffered(len),
        middle => Split::Direct(middle),
    }
}

fn is_einval(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

impl Write for DirectWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.write_some(buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    /// Nothing is held in user space; [`DirectWriter::sync_all`] is what makes writes
    /// durable.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for DirectWriter {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(n) => n,
            SeekFrom::Current(d) => self.pos.checked_add_signed(d).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "seek before the start")
            })?,
            // The buffered handle's own offset is never used for writing (positioned writes
            // only), so it can compute the end.
            SeekFrom::End(d) => self.buffered.seek(SeekFrom::End(d))?,
        };
        Ok(self.pos)
    }
}

/// A temp dir where `O_DIRECT` opens work, or `None` (tmpfs): beside the build output, which
/// is never on tmpfs in this project's CI.
#[cfg(test)]
pub(crate) fn direct_io_dir() -> Option<tempfile::TempDir> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    std::fs::create_dir_all(&base).expect("target dir");
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let probe = dir.path().join("probe");
    std::fs::write(&probe, [0u8; 4096]).expect("probe");
    match crate::io::open_direct_write(&probe) {
        Ok(_) => Some(dir),
        Err(e) if is_einval(&e) => {
            println!("note: O_DIRECT is not supported under target/: skipped");
            None
        }
        Err(e) => panic!("open_direct_write: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::aligned::AlignedBuf;
    use crate::stream::direct_write::direct_io_dir as direct_dir;

    #[test]
    fn aligned_writes_go_direct_and_edges_buffered() {
        let a = align();
        // Aligned address and offset: the whole multiple of ALIGN goes direct.
        assert_eq!(direct_prefix(a * 3, 8192, 5 * a), Split::Direct(5 * a));
        assert_eq!(
            direct_prefix(a * 3, 8192, 5 * a + 100),
            Split::Direct(5 * a)
        );
        // The tail after it, shorter than ALIGN, buffered.
        assert_eq!(
            direct_prefix(a * 8, 8192 + 5 * 4096, 100),
            Split::Buffered(100)
        );
        // An unaligned start (a 1 KiB-block range edge): buffered up to the next boundary.
        assert_eq!(
            direct_prefix(a + 1024, 1024, 10 * a),
            Split::Buffered(a - 1024)
        );
        assert_eq!(direct_prefix(a + 1024, 1024, 100), Split::Buffered(100));
        // Buffer and offset disagree: nothing can go direct.
        assert_eq!(direct_prefix(a + 512, 0, 10 * a), Split::Buffered(10 * a));
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i.to_le_bytes()[0]).wrapping_mul(31).wrapping_add(seed) | 1)
            .collect()
    }

    #[test]
    fn mixed_writes_land_exactly_and_the_aligned_ones_go_direct() {
        let Some(dir) = direct_dir() else { return };
        let path = dir.path().join("part");
        let size = 64 * 4096;
        std::fs::write(&path, vec![0xA5u8; size]).expect("part");
        let mut expected = vec![0xA5u8; size];
        let mut dev = DirectWriter::open(&path).expect("open");
        assert!(
            dev.direct.is_some(),
            "O_DIRECT works here (direct_dir checked)"
        );
        let mut buf = AlignedBuf::new(size);
        let data = pattern(size, 3);
        buf.as_mut_slice().copy_from_slice(&data);
        let slice = buf.as_slice();
        // (offset, length): aligned, 1 KiB edges on both sides, a tail, a single byte.
        let writes = [
            (0usize, 8 * 4096),
            (9 * 4096 + 1024, 6 * 4096 + 2048),
            (20 * 4096, 4096 + 7),
            (40 * 4096 + 4095, 1),
            (50 * 4096, 14 * 4096),
        ];
        for (offset, len) in writes {
            dev.seek(SeekFrom::Start(offset as u64)).expect("seek");
            // The source slice sits at the same offset in an aligned buffer, as in
            // write_ranges' pool.
            dev.write_all(&slice[offset..offset + len]).expect("write");
            expected[offset..offset + len].copy_from_slice(&data[offset..offset + len]);
        }
        dev.sync_all().expect("sync");
        // 8 pages, 5 between the 1 KiB edges, 1 before the 7-byte tail, 14.
        let direct = (8 + 5 + 1 + 14) * 4096;
        let total: usize = writes.iter().map(|w| w.1).sum();
        assert_eq!(dev.direct_bytes(), direct as u64);
        assert_eq!(dev.buffered_bytes(), (total - direct) as u64);
        drop(dev);
        assert!(std::fs::read(&path).expect("read") == expected);
    }

    #[test]
    fn a_misaligned_buffer_is_written_buffered_and_still_lands() {
        let Some(dir) = direct_dir() else { return };
        let path = dir.path().join("part");
        std::fs::write(&path, vec![0u8; 16 * 4096]).expect("part");
        let mut dev = DirectWriter::open(&path).expect("open");
        let mut buf = AlignedBuf::new(16 * 4096);
        let data = pattern(8 * 4096, 9);
        buf.as_mut_slice()[512..512 + data.len()].copy_from_slice(&data);
        dev.seek(SeekFrom::Start(4096)).expect("seek");
        dev.write_all(&buf.as_slice()[512..512 + data.len()])
            .expect("write");
        assert_eq!(dev.direct_bytes(), 0);
        assert_eq!(dev.buffered_bytes(), data.len() as u64);
        dev.sync_all().expect("sync");
        let back = std::fs::read(&path).expect("read");
        assert!(back[4096..4096 + data.len()] == data[..]);
        assert!(back[..4096].iter().all(|&b| b == 0));
    }

    /// A zeroed temp file of `len` bytes and a writer over it whose direct handle is `direct`.
    fn writer_over_temp(
        len: usize,
        direct: Option<File>,
    ) -> (tempfile::NamedTempFile, DirectWriter) {
        let file = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(file.path(), vec![0u8; len]).expect("size");
        let handle = OpenOptions::new()
            .write(true)
            .open(file.path())
            .expect("open");
        (file, DirectWriter::from_files(handle, direct))
    }

    #[test]
    fn a_direct_handle_that_answers_einval_is_dropped_and_the_bytes_still_land() {
        // Stands in for a device that refuses a direct write's alignment (a logical block
        // above 4 KiB): /proc/self/oom_score_adj answers EINVAL to anything not a number.
        let Ok(refuser) = OpenOptions::new()
            .write(true)
            .open("/proc/self/oom_score_adj")
        else {
            println!("note: /proc/self/oom_score_adj is not writable here: skipped");
            return;
        };
        let (file, mut dev) = writer_over_temp(8 * 4096, Some(refuser));
        let mut buf = AlignedBuf::new(8 * 4096);
        buf.as_mut_slice().copy_from_slice(&pattern(8 * 4096, 5));
        dev.write_all(buf.as_slice()).expect("write");
        assert!(dev.direct.is_none(), "the refusing handle is dropped");
        assert_eq!((dev.direct_bytes(), dev.buffered_bytes()), (0, 8 * 4096));
        assert!(std::fs::read(file.path()).expect("read") == buf.as_slice());
    }

    #[test]
    fn without_direct_io_everything_goes_buffered() {
        let (file, mut dev) = writer_over_temp(8 * 4096, None);
        let mut buf = AlignedBuf::new(8 * 4096);
        buf.as_mut_slice().copy_from_slice(&pattern(8 * 4096, 1));
        dev.write_all(buf.as_slice()).expect("write");
        assert_eq!(dev.stream_position().expect("pos"), 8 * 4096);
        assert_eq!((dev.direct_bytes(), dev.buffered_bytes()), (0, 8 * 4096));
        assert!(std::fs::read(file.path()).expect("read") == buf.as_slice());
    }

    #[test]
    fn seeking_is_positional() {
        let (file, mut dev) = writer_over_temp(100, None);
        assert_eq!(dev.seek(SeekFrom::End(-10)).expect("end"), 90);
        assert_eq!(dev.seek(SeekFrom::Current(-40)).expect("back"), 50);
        assert!(dev.seek(SeekFrom::Current(-51)).is_err());
        dev.write_all(b"xy").expect("write");
        let back = std::fs::read(file.path()).expect("read");
        assert_eq!(&back[50..52], b"xy");
    }
}
