//! The newc ("070701") cpio writer.
//!
//! Format: Linux `Documentation/driver-api/early-userspace/buffer-format.rst`. Each entry is a
//! 110-byte header of `070701` and thirteen 8-digit hex fields, the NUL-terminated name padded
//! so header + name is a multiple of 4, then the data padded to a multiple of 4. The archive
//! ends with an entry named `TRAILER!!!`. Hex digits are upper case, as the kernel's own
//! `usr/gen_init_cpio.c` writes them; readers accept either case.

use std::io::{self, Write};

use flate2::{Compression, GzBuilder};

use crate::archive::{Archive, Node};

const MAGIC: &[u8] = b"070701";
const HEADER_LEN: u64 = 110;
const TRAILER: &str = "TRAILER!!!";

/// The numeric fields of one newc header, in file order (after the magic).
#[derive(Debug, Default, Clone, Copy)]
struct Header {
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    filesize: u32,
    devmajor: u32,
    devminor: u32,
    rdevmajor: u32,
    rdevminor: u32,
    namesize: u32,
    check: u32,
}

/// Bytes needed to bring `offset` up to a multiple of 4.
fn pad4(offset: u64) -> usize {
    // The result is 0..=3, so the conversion cannot fail.
    usize::try_from((4 - offset % 4) % 4).unwrap_or(0)
}

fn too_big(what: &str, path: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} of {path:?} does not fit a 32-bit newc field"),
    )
}

/// Writes newc entries to `inner`, keeping the offset for alignment.
struct NewcWriter<W: Write> {
    inner: W,
    offset: u64,
}

impl<W: Write> NewcWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes)?;
        self.offset += u64::try_from(bytes.len()).map_err(io::Error::other)?;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let zeros = [0u8; 3];
        self.put(&zeros[..pad4(self.offset)])
    }

    /// Write one entry; `header.namesize` and `header.filesize` are filled in here.
    fn entry(&mut self, mut header: Header, name: &str, data: &[u8]) -> io::Result<()> {
        header.namesize = u32::try_from(name.len() + 1).map_err(|_| too_big("name", name))?;
        header.filesize = u32::try_from(data.len()).map_err(|_| too_big("size", name))?;
        let h = header;
        let fields = [
            h.ino,
            h.mode,
            h.uid,
            h.gid,
            h.nlink,
            h.mtime,
            h.filesize,
            h.devmajor,
            h.devminor,
            h.rdevmajor,
            h.rdevminor,
            h.namesize,
            h.check,
        ];
        let mut text = Vec::with_capacity(110);
        text.extend_from_slice(MAGIC);
        for field in fields {
            text.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        debug_assert_eq!(u64::try_from(text.len()).ok(), Some(HEADER_LEN));
        self.put(&text)?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn finish(mut self) -> io::Result<W> {
        let trailer = Header {
            nlink: 1,
            ..Header::default()
        };
        self.entry(trailer, TRAILER, &[])?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl Archive {
    /// Write the archive as uncompressed newc to `w`.
    ///
    /// Entries come in path-byte order with inode numbers 1, 2, … in that order; uid and gid
    /// are 0; directories have nlink 2, everything else 1. The output length is a multiple
    /// of 4, so another archive can follow directly (see [`concat()`]).
    ///
    /// # Errors
    /// Errors from `w`, or an archive too large for newc's 32-bit fields.
    pub fn write_newc<W: Write>(&self, w: W) -> io::Result<()> {
        let mut out = NewcWriter {
            inner: io::BufWriter::new(w),
            offset: 0,
        };
        for (index, (path, entry)) in self.entries.iter().enumerate() {
            let ino = index
                .checked_add(1)
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| too_big("inode number", path))?;
            let kind = entry.node.kind();
            let mut header = Header {
                ino,
                mode: kind.type_bits() | entry.permissions,
                nlink: 1,
                mtime: self.mtime,
                ..Header::default()
            };
            let data: &[u8] = match &entry.node {
                Node::Directory { .. } => {
                    header.nlink = 2;
                    &[]
                }
                Node::File(data) => data,
                Node::Symlink(target) => target.as_bytes(),
                Node::CharDevice { major, minor } | Node::BlockDevice { major, minor } => {
                    header.rdevmajor = *major;
                    header.rdevminor = *minor;
                    &[]
                }
            };
            out.entry(header, path, data)?;
        }
        out.finish()?
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        Ok(())
    }

    /// The archive as uncompressed newc bytes.
    #[must_use]
    pub fn to_newc(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.write_newc(&mut bytes)
            .expect("newc fields were checked when entries were added; a Vec does not fail");
        bytes
    }

    /// Write the archive as one gzip member of newc, deterministically: the gzip header has
    /// no file name and mtime 0, and the level is fixed (best).
    ///
    /// # Errors
    /// Errors from `w`.
    pub fn write_newc_gzip<W: Write>(&self, w: W) -> io::Result<()> {
        let mut gz = GzBuilder::new().mtime(0).write(w, Compression::best());
        self.write_newc(&mut gz)?;
        gz.finish()?.flush()
    }

    /// The archive as gzip-compressed newc bytes (see [`Archive::write_newc_gzip`]).
    #[must_use]
    pub fn to_newc_gzip(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.write_newc_gzip(&mut bytes)
            .expect("newc fields were checked when entries were added; a Vec does not fail");
        bytes
    }
}

/// Join archives (newc or compressed) into one initramfs image.
///
/// The kernel unpacks a buffer holding several archives one after another, later entries
/// overwriting earlier ones (`init/initramfs.c` `unpack_to_rootfs`), and the Raspberry Pi
/// firmware's `initramfs a,b` in `config.txt` loads the files back to back into one buffer.
/// The kernel skips NUL bytes between members but only takes an uncompressed header that
/// starts at an offset that is a multiple of 4 from the start of the buffer, so each part is
/// padded here with NULs to a multiple of 4. [`Archive::to_newc`] output already is; gzip
/// output may not be, which matters when files are concatenated by the firmware instead:
/// put uncompressed parts first there, or pad with this function.
#[must_use]
pub fn concat<P: AsRef<[u8]>>(parts: &[P]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(part.as_ref());
        let len = u64::try_from(out.len()).unwrap_or(0);
        out.resize(out.len() + pad4(len), 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// One parsed newc entry: name, the 13 header fields, data.
    type Parsed = (String, [u32; 13], Vec<u8>);

    /// A strict test-side reader: checks magic and alignment of every entry.
    fn parse(bytes: &[u8]) -> Vec<Parsed> {
        let mut entries = Vec::new();
        let mut at = 0usize;
        loop {
            assert_eq!(at % 4, 0, "entry at {at} is not 4-aligned");
            assert_eq!(&bytes[at..at + 6], MAGIC, "magic at {at}");
            let mut fields = [0u32; 13];
            for (i, field) in fields.iter_mut().enumerate() {
                let start = at + 6 + 8 * i;
                let hex = std::str::from_utf8(&bytes[start..start + 8]).expect("ascii");
                *field = u32::from_str_radix(hex, 16).expect("hex field");
            }
            let namesize = usize::try_from(fields[11]).expect("namesize");
            let filesize = usize::try_from(fields[6]).expect("filesize");
            let name_start = at + 110;
            let name = &bytes[name_start..name_start + namesize];
            assert_eq!(name.last(), Some(&0), "name is NUL-terminated");
            let name = String::from_utf8(name[..namesize - 1].to_vec()).expect("utf8 name");
            let data_start = (name_start + namesize).next_multiple_of(4);
            assert!(
                bytes[name_start + namesize..data_start]
                    .iter()
                    .all(|b| *b == 0),
                "name padding is NUL"
            );
            let data = bytes[data_start..data_start + filesize].to_vec();
            at = (data_start + filesize).next_multiple_of(4);
            let done = name == TRAILER;
            entries.push((name, fields, data));
            if done {
                assert_eq!(at, bytes.len(), "nothing after the trailer");
                return entries;
            }
        }
    }

    #[test]
    fn one_file_exact_bytes() {
        let mut a = Archive::new().with_mtime(0x6500_0000);
        a.add_file("hi", 0o644, "abcde").expect("file");
        let expected = [
            // header: magic ino mode uid gid nlink mtime filesize devmaj devmin rdevmaj rdevmin namesize check
            "070701",
            "00000001",
            "000081A4",
            "00000000",
            "00000000",
            "00000001",
            "65000000",
            "00000005",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000003",
            "00000000",
            // 110 + 3 = 113 → 3 NULs of padding to 116
            "hi\0\0\0\0",
            // 5 data bytes → 3 NULs to 124
            "abcde\0\0\0",
            // trailer: ino 0, mode 0, nlink 1, namesize 11; 110 + 11 = 121 → 3 NULs
            "070701",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "0000000B",
            "00000000",
            "TRAILER!!!\0\0\0\0",
        ]
        .concat();
        let bytes = a.to_newc();
        assert_eq!(String::from_utf8_lossy(&bytes), expected);
        assert_eq!(bytes.len(), 124 + 124);
    }

    #[test]
    fn header_fields_for_every_kind() {
        let mut a = Archive::new().with_mtime(1_700_000_000);
        a.add_dir("dev", 0o755)
            .expect("dir")
            .add_char_device("dev/console", 0o600, 5, 1)
            .expect("chr")
            .add_block_device("dev/mmcblk0", 0o660, 179, 0)
            .expect("blk")
            .add_symlink("sbin/init", "../bin/busybox")
            .expect("symlink")
            .add_file("bin/busybox", 0o4755, vec![0x7f, b'E', b'L', b'F'])
            .expect("file");
        let entries = parse(&a.to_newc());
        let summary: Vec<(&str, u32, u32, u32, u32, u32)> = entries
            .iter()
            .map(|(name, f, _)| (name.as_str(), f[0], f[1], f[4], f[9], f[10]))
            .collect();
        assert_eq!(
            summary,
            [
                // name, ino, mode, nlink, rdevmajor, rdevminor
                ("bin", 1, 0o040_755, 2, 0, 0),
                ("bin/busybox", 2, 0o104_755, 1, 0, 0),
                ("dev", 3, 0o040_755, 2, 0, 0),
                ("dev/console", 4, 0o020_600, 1, 5, 1),
                ("dev/mmcblk0", 5, 0o060_660, 1, 179, 0),
                ("sbin", 6, 0o040_755, 2, 0, 0),
                ("sbin/init", 7, 0o120_777, 1, 0, 0),
                (TRAILER, 0, 0, 1, 0, 0),
            ]
        );
        for (name, f, _) in &entries[..entries.len() - 1] {
            assert_eq!((f[2], f[3]), (0, 0), "{name} owned by root");
            assert_eq!(f[5], 1_700_000_000, "{name} mtime");
        }
        assert_eq!(
            entries[6].2, b"../bin/busybox",
            "symlink data is the target"
        );
        assert_eq!(entries[6].1[6], 14, "symlink size is the target length");
        assert_eq!(entries[1].2, [0x7f, b'E', b'L', b'F']);
        assert!(entries[3].2.is_empty(), "device nodes have no data");
    }

    fn build(order: &[usize]) -> Archive {
        let mut a = Archive::new().with_mtime(42);
        for i in order {
            match i {
                0 => a.add_file("etc/passwd", 0o644, "root:x:0:0::/root:/bin/sh\n"),
                1 => a.add_dir("etc", 0o755),
                2 => a.add_symlink("bin/sh", "busybox"),
                3 => a.add_char_device("dev/null", 0o666, 1, 3),
                _ => a.add_file("init", 0o755, "#!/bin/sh\nexec sh\n"),
            }
            .expect("add");
        }
        a
    }

    #[test]
    fn deterministic_across_runs_and_insertion_order() {
        let a = build(&[0, 1, 2, 3, 4]).to_newc();
        assert_eq!(a, build(&[0, 1, 2, 3, 4]).to_newc());
        assert_eq!(a, build(&[4, 3, 2, 1, 0]).to_newc());
        assert_eq!(a, build(&[2, 0, 4, 1, 3]).to_newc());
        let gz = build(&[0, 1, 2, 3, 4]).to_newc_gzip();
        assert_eq!(gz, build(&[3, 1, 4, 0, 2]).to_newc_gzip());
    }

    #[test]
    fn mtime_changes_output() {
        let a = build(&[0, 1]);
        let b = a.clone().with_mtime(43);
        assert_ne!(a.to_newc(), b.to_newc());
    }

    #[test]
    fn gzip_decompresses_to_newc_and_has_fixed_header() {
        let archive = build(&[0, 1, 2, 3, 4]);
        let gz = archive.to_newc_gzip();
        assert_eq!(&gz[..3], [0x1f, 0x8b, 8], "gzip magic and deflate");
        assert_eq!(gz[3], 0, "no FNAME/FCOMMENT/FEXTRA flags");
        assert_eq!(&gz[4..8], [0, 0, 0, 0], "mtime 0");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .expect("valid gzip");
        assert_eq!(out, archive.to_newc());
    }

    #[test]
    fn empty_archive_is_just_a_trailer() {
        let entries = parse(&Archive::new().to_newc());
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, TRAILER);
    }

    #[test]
    fn concat_pads_each_part_to_four() {
        let newc = build(&[0]).to_newc();
        assert_eq!(newc.len() % 4, 0);
        let joined = concat(&[&b"abcde"[..], &newc, b"z"]);
        assert_eq!(&joined[..8], b"abcde\0\0\0");
        assert_eq!(&joined[8..8 + newc.len()], &newc[..]);
        assert_eq!(&joined[8 + newc.len()..], b"z\0\0\0");
        assert_eq!(
            concat(&[newc.clone(), newc.clone()]),
            [newc.clone(), newc].concat()
        );
    }
}
