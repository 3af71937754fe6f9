//! The upgrade artefacts: `image.img.xz` (the root partition, multi-block xz so the installer
//! decodes on all cores), `boot.tar.xz` (the working boot partition's files) and the digests
//! the manifest carries.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use k8r_card::digest::{hex, HashingReader, HashingWriter};
use sha2::{Digest, Sha256};

use crate::image::{io_err, ImageError};

/// xz block size for `image.img.xz`: each block decodes independently, so the installer can
/// run one decoder thread per core (qemu-notes.md: parallel decode needs several blocks).
pub const XZ_BLOCK_SIZE: u64 = 32 * 1024 * 1024;

/// Sizes and digests of a compressed artefact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Compressed bytes.
    pub compressed_size: u64,
    /// SHA-256 of the compressed file.
    pub compressed_sha256: String,
    /// Uncompressed bytes.
    pub size: u64,
    /// SHA-256 of the uncompressed bytes.
    pub sha256: String,
}

/// Compresses `input` into `output` as multi-block xz (preset `preset`, `threads` encoder
/// threads; the output does not depend on the thread count), hashing both sides.
pub fn compress_xz(
    input: &Path,
    output: &Path,
    preset: u32,
    threads: u32,
    progress: &dyn Fn(u64),
) -> Result<Digests, ImageError> {
    let stream = liblzma::stream::MtStreamBuilder::new()
        .threads(threads.max(1))
        .block_size(XZ_BLOCK_SIZE)
        .preset(preset)
        .check(liblzma::stream::Check::Crc64)
        .encoder()
        .map_err(|e| ImageError::Layout(format!("xz encoder: {e}")))?;
    let out = File::create(output).map_err(io_err(output))?;
    let mut encoder =
        liblzma::write::XzEncoder::new_stream(HashingWriter::new(BufWriter::new(out)), stream);
    let mut src = HashingReader::new(File::open(input).map_err(io_err(input))?);
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = src.read(&mut buf).map_err(io_err(input))?;
        if n == 0 {
            break;
        }
        encoder.write_all(&buf[..n]).map_err(io_err(output))?;
        progress(src.count());
    }
    let hashing = encoder.finish().map_err(io_err(output))?;
    finish(hashing, src, output)
}

/// Flushes and syncs the compressed `output`, and the digests of both sides.
fn finish(
    mut sink: HashingWriter<BufWriter<File>>,
    src: HashingReader<File>,
    output: &Path,
) -> Result<Digests, ImageError> {
    sink.flush().map_err(io_err(output))?;
    let (compressed_sha256, compressed_size, writer) = sink.finish();
    writer
        .into_inner()
        .map_err(|e| io_err(output)(e.into_error()))?
        .sync_all()
        .map_err(io_err(output))?;
    let (sha256, size) = src.finish();
    Ok(Digests {
        compressed_size,
        compressed_sha256,
        size,
        sha256,
    })
}

/// Compresses `input` into `output` as independent zstd frames of
/// [`k8r_card::stream::zstd_frames::FRAME_SIZE`] input bytes each (level `level`, each frame
/// with its content size and checksum), on `threads` threads, hashing both sides. Frames are
/// written in order and do not depend on the thread count, so the output is reproducible;
/// the installer decodes them on all cores.
pub fn compress_zstd(
    input: &Path,
    output: &Path,
    level: i32,
    threads: u32,
    progress: &dyn Fn(u64),
) -> Result<Digests, ImageError> {
    use std::sync::mpsc;
    type Reply = mpsc::Receiver<std::io::Result<Vec<u8>>>;
    let frame_size = k8r_card::stream::zstd_frames::FRAME_SIZE;
    let threads = threads.max(1) as usize;
    let out = File::create(output).map_err(io_err(output))?;
    let mut sink = HashingWriter::new(BufWriter::new(out));
    let mut src = HashingReader::new(File::open(input).map_err(io_err(input))?);
    let (job_tx, job_rx) =
        mpsc::sync_channel::<(Vec<u8>, mpsc::SyncSender<std::io::Result<Vec<u8>>>)>(threads);
    let job_rx = std::sync::Mutex::new(job_rx);
    std::thread::scope(|scope| -> Result<(), ImageError> {
        for _ in 0..threads {
            let job_rx = &job_rx;
            scope.spawn(move || {
                let mut compressor = zstd::bulk::Compressor::new(level).and_then(|mut c| {
                    c.include_checksum(true)?;
                    c.include_contentsize(true)?;
                    Ok(c)
                });
                loop {
                    let job = job_rx
                        .lock()
                        .map_err(|_| ())
                        .and_then(|rx| rx.recv().map_err(|_| ()));
                    let Ok((chunk, reply)) = job else { return };
                    let result = match &mut compressor {
                        Ok(c) => c.compress(&chunk),
                        Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                    };
                    let _ = reply.send(result);
                }
            });
        }
        let mut pending: std::collections::VecDeque<Reply> = std::collections::VecDeque::new();
        let mut write_next =
            |pending: &mut std::collections::VecDeque<Reply>| -> Result<(), ImageError> {
                if let Some(reply) = pending.pop_front() {
                    let frame = reply
                        .recv()
                        .map_err(|_| ImageError::Layout("a zstd compressor thread died".into()))?
                        .map_err(io_err(output))?;
                    sink.write_all(&frame).map_err(io_err(output))?;
                }
                Ok(())
            };
        let result = (|| {
            loop {
                let mut chunk = vec![0u8; frame_size];
                let n =
                    crate::image::card::read_full(&mut src, &mut chunk).map_err(io_err(input))?;
                if n == 0 {
                    break;
                }
                chunk.truncate(n);
                let (reply_tx, reply_rx) = mpsc::sync_channel(1);
                job_tx.send((chunk, reply_tx)).map_err(|_| {
                    ImageError::Layout("the zstd compressor threads stopped".into())
                })?;
                pending.push_back(reply_rx);
                if pending.len() > threads {
                    write_next(&mut pending)?;
                }
                progress(src.count());
            }
            while !pending.is_empty() {
                write_next(&mut pending)?;
            }
            Ok(())
        })();
        drop(job_tx);
        result
    })?;
    finish(sink, src, output)
}

/// Writes a reproducible tar of the tree under `dir` (sorted, owner root, fixed mtime,
/// 0644 files, 0755 directories) and compresses it to `output` as xz with `threads` encoder
/// threads (the output does not depend on them), calling `progress` with the tar bytes read.
pub fn boot_tar_xz(
    dir: &Path,
    output: &Path,
    epoch: u64,
    preset: u32,
    threads: u32,
    progress: &dyn Fn(u64, u64),
) -> Result<Digests, ImageError> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    let mut paths = Vec::new();
    collect(dir, dir, &mut paths)?;
    paths.sort();
    for (rel, is_dir) in &paths {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(epoch);
        let full = dir.join(rel);
        if *is_dir {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            tar.append_data(&mut header, format!("{rel}/"), std::io::empty())
                .map_err(io_err(&full))?;
        } else {
            let data = std::fs::read(&full).map_err(io_err(&full))?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            tar.append_data(&mut header, rel, &data[..])
                .map_err(io_err(&full))?;
        }
    }
    let bytes = tar.into_inner().map_err(io_err(output))?;
    let tar_path = output.with_extension("");
    std::fs::write(&tar_path, &bytes).map_err(io_err(&tar_path))?;
    let total = bytes.len() as u64;
    let digests = compress_xz(&tar_path, output, preset, threads, &|n| progress(n, total));
    let _ = std::fs::remove_file(&tar_path);
    digests
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, bool)>) -> Result<(), ImageError> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = entry.file_type().map_err(io_err(&path))?;
        if kind.is_dir() {
            out.push((rel, true));
            collect(root, &path, out)?;
        } else if kind.is_file() {
            out.push((rel, false));
        } else {
            return Err(ImageError::Layout(format!(
                "{}: the boot partition holds only files and directories",
                path.display()
            )));
        }
    }
    Ok(())
}

/// SHA-256 of each `(offset, length)` range of `file`, computed on `threads` threads;
/// `progress` is called on this thread with the bytes hashed so far.
pub fn hash_ranges(
    file: &Path,
    ranges: &[(u64, u64)],
    threads: usize,
    progress: &dyn Fn(u64),
) -> Result<Vec<String>, ImageError> {
    type Slot = Option<Result<String, ImageError>>;
    let mut results: Vec<Slot> = (0..ranges.len()).map(|_| None).collect();
    let per = ranges.len().div_ceil(threads.max(1)).max(1);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<u64>();
    std::thread::scope(|scope| {
        for (chunk, slots) in results.chunks_mut(per).enumerate() {
            let start = chunk * per;
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                for (k, slot) in slots.iter_mut().enumerate() {
                    let (offset, length) = ranges[start + k];
                    *slot = Some(hash_range(file, offset, length, &|n| {
                        let _ = done_tx.send(n);
                    }));
                }
            });
        }
        // Ends when every worker has finished (and dropped its sender).
        drop(done_tx);
        let mut done = 0u64;
        for n in done_rx {
            done += n;
            progress(done);
        }
    });
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ImageError::Layout("range not hashed".into()))))
        .collect()
}

/// SHA-256 of one range; `hashed` is told each piece's length as it is hashed.
fn hash_range(
    file: &Path,
    offset: u64,
    length: u64,
    hashed: &dyn Fn(u64),
) -> Result<String, ImageError> {
    let mut f = File::open(file).map_err(io_err(file))?;
    f.seek(SeekFrom::Start(offset)).map_err(io_err(file))?;
    let mut h = Sha256::new();
    let mut left = length;
    let mut buf = vec![0u8; 1024 * 1024];
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        f.read_exact(&mut buf[..want]).map_err(io_err(file))?;
        h.update(&buf[..want]);
        left -= want as u64;
        hashed(want as u64);
    }
    Ok(hex(&h.finalize()))
}

/// Makes every byte outside `used` (sorted, non-overlapping `(offset, length)` extents) zero,
/// writing only where something non-zero is found. Free blocks of a vendor image can hold old
/// data; the installer skips free space and insists it is zero in the stream. Returns the
/// bytes zeroed. `progress` is called with the free bytes checked so far and their total.
pub fn zero_outside(
    file: &Path,
    used: &[(u64, u64)],
    total: u64,
    progress: &dyn Fn(u64, u64),
) -> Result<u64, ImageError> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .map_err(io_err(file))?;
    let mut gaps = Vec::new();
    let mut pos = 0u64;
    for &(offset, length) in used {
        if offset > pos {
            gaps.push((pos, offset - pos));
        }
        pos = pos.max(offset + length);
    }
    if total > pos {
        gaps.push((pos, total - pos));
    }
    let free: u64 = gaps.iter().map(|&(_, length)| length).sum();
    let (mut zeroed, mut checked) = (0u64, 0u64);
    let mut buf = vec![0u8; 1 << 20];
    let zeros = vec![0u8; 1 << 20];
    for (start, length) in gaps {
        let mut at = start;
        while at < start + length {
            let n =
                usize::try_from((start + length - at).min(buf.len() as u64)).unwrap_or(buf.len());
            f.seek(SeekFrom::Start(at)).map_err(io_err(file))?;
            f.read_exact(&mut buf[..n]).map_err(io_err(file))?;
            if buf[..n].iter().any(|&b| b != 0) {
                f.seek(SeekFrom::Start(at)).map_err(io_err(file))?;
                f.write_all(&zeros[..n]).map_err(io_err(file))?;
                zeroed += n as u64;
            }
            at += n as u64;
            checked += n as u64;
            progress(checked, free);
        }
    }
    f.sync_all().map_err(io_err(file))?;
    Ok(zeroed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xz_round_trip_is_multi_block_and_thread_independent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in");
        let mut data = vec![0u8; 70 * 1024 * 1024];
        for (i, b) in data.iter_mut().enumerate().step_by(4096) {
            *b = u8::try_from(i % 251).unwrap_or(0);
        }
        std::fs::write(&input, &data).expect("write");
        let one = dir.path().join("one.xz");
        let two = dir.path().join("two.xz");
        let d1 = compress_xz(&input, &one, 0, 1, &|_| {}).expect("xz 1");
        let d2 = compress_xz(&input, &two, 0, 2, &|_| {}).expect("xz 2");
        assert_eq!(d1, d2, "same digests whatever the thread count");
        assert_eq!(d1.size, data.len() as u64);
        assert_eq!(d1.sha256, hex(&Sha256::digest(&data)));
        assert_eq!(
            d1.compressed_sha256,
            k8r_card::digest::sha256_file(&one).expect("sha")
        );
        let list = crate::process::run(
            std::process::Command::new("xz")
                .args(["-lvv", "--robot"])
                .arg(&one),
        )
        .expect("xz -l");
        let text = String::from_utf8_lossy(&list.stdout);
        let blocks = text.lines().filter(|l| l.starts_with("block\t")).count();
        assert_eq!(blocks, 3, "70 MiB in 32 MiB blocks: {text}");
        let back = crate::process::run(std::process::Command::new("xz").args(["-dc"]).arg(&one))
            .expect("xz -d");
        assert!(back.stdout == data);
    }

    #[test]
    fn zstd_frames_are_thread_independent_and_decode_with_zstd_and_the_installer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in");
        let frame = k8r_card::stream::zstd_frames::FRAME_SIZE;
        let mut data = vec![0u8; 2 * frame + 12_345];
        for (i, b) in data.iter_mut().enumerate().step_by(512) {
            *b = u8::try_from(i % 251).unwrap_or(0);
        }
        std::fs::write(&input, &data).expect("write");
        let one = dir.path().join("one.zst");
        let three = dir.path().join("three.zst");
        let d1 = compress_zstd(&input, &one, 3, 1, &|_| {}).expect("zstd 1");
        let d3 = compress_zstd(&input, &three, 3, 3, &|_| {}).expect("zstd 3");
        assert_eq!(d1, d3, "same bytes whatever the thread count");
        assert_eq!(d1.size, data.len() as u64);
        assert_eq!(d1.sha256, hex(&Sha256::digest(&data)));
        let bytes = std::fs::read(&one).expect("read");
        assert_eq!(d1.compressed_sha256, k8r_card::digest::sha256_hex(&bytes));
        // Three independent frames, each with its content size.
        let mut split = k8r_card::stream::zstd_frames::FrameSplitter::new(&bytes[..]);
        let mut sizes = Vec::new();
        while let Some(f) = split.next_frame().expect("frame") {
            sizes.push(f.content_size);
        }
        assert_eq!(sizes, [frame as u64, frame as u64, 12_345]);
        // The zstd tool reads it (the files are plain zstd) ...
        let back = crate::process::run(std::process::Command::new("zstd").args(["-dc"]).arg(&one))
            .expect("zstd -d");
        assert!(back.stdout == data);
        // ... and so does the installer's decoder.
        let mut out = Vec::new();
        let mut r = k8r_card::stream::decoder(k8r_manifest::Compression::Zstd, &bytes[..], 2, 0, 0)
            .expect("decoder");
        r.read_to_end(&mut out).expect("decode");
        assert!(out == data);
    }

    #[test]
    fn free_space_is_zeroed_and_used_bytes_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("f");
        std::fs::write(&f, vec![0xA5u8; 3 << 20]).expect("write");
        let used = [(1 << 20, 4096)];
        let seen = std::cell::RefCell::new(Vec::new());
        let zeroed = zero_outside(&f, &used, 3 << 20, &|n, total| {
            seen.borrow_mut().push((n, total))
        })
        .expect("zero");
        assert_eq!(zeroed, (3 << 20) - 4096);
        let free = (3 << 20) - 4096;
        let seen = seen.into_inner();
        assert!(seen.len() >= 3, "progress per MiB checked: {seen:?}");
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
        assert_eq!(seen.last(), Some(&(free, free)), "ends at the free bytes");
        let data = std::fs::read(&f).expect("read");
        assert!(data[..1 << 20].iter().all(|&b| b == 0));
        assert!(data[1 << 20..(1 << 20) + 4096].iter().all(|&b| b == 0xA5));
        assert!(data[(1 << 20) + 4096..].iter().all(|&b| b == 0));
        assert_eq!(
            zero_outside(&f, &used, 3 << 20, &|_, _| {}).expect("again"),
            0,
            "nothing left to zero"
        );
    }

    #[test]
    fn ranges_hash_like_the_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("f");
        let data: Vec<u8> = (0..100_000u32)
            .map(|i| u8::try_from(i % 256).unwrap_or(0))
            .collect();
        std::fs::write(&f, &data).expect("write");
        let ranges = [(0, 10), (4096, 5000), (99_000, 1000)];
        let done = std::cell::Cell::new(0);
        let got = hash_ranges(&f, &ranges, 2, &|n| {
            assert!(n > done.get(), "progress only grows");
            done.set(n);
        })
        .expect("hash");
        assert_eq!(done.get(), 6010, "progress ends at the bytes hashed");
        for ((o, l), h) in ranges.iter().zip(&got) {
            let (o, l) = (
                usize::try_from(*o).expect("o"),
                usize::try_from(*l).expect("l"),
            );
            assert_eq!(h, &hex(&Sha256::digest(&data[o..o + l])));
        }
        assert!(
            hash_ranges(&f, &[(99_999, 10)], 1, &|_| {}).is_err(),
            "past the end"
        );
    }

    #[test]
    fn boot_tar_is_reproducible_and_lists_sorted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join("boot");
        std::fs::create_dir_all(tree.join("current/overlays")).expect("mkdir");
        std::fs::write(tree.join("config.txt"), "x").expect("w");
        std::fs::write(tree.join("current/vmlinuz"), "k").expect("w");
        let a = dir.path().join("a.tar.xz");
        let b = dir.path().join("b.tar.xz");
        let da = boot_tar_xz(&tree, &a, 1000, 6, 1, &|_, _| {}).expect("a");
        let db = boot_tar_xz(&tree, &b, 1000, 6, 2, &|_, _| {}).expect("b");
        assert_eq!(da, db);
        assert!(std::fs::read(&a).expect("a") == std::fs::read(&b).expect("b"));
        let list = crate::process::run(std::process::Command::new("tar").arg("-tvJf").arg(&a))
            .expect("tar");
        let text = String::from_utf8_lossy(&list.stdout);
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .collect();
        assert_eq!(
            names,
            [
                "config.txt",
                "current/",
                "current/overlays/",
                "current/vmlinuz"
            ]
        );
        assert!(text.contains("root/root") || text.contains("0/0"), "{text}");
    }
}
