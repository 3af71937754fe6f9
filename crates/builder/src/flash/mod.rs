//! `k8r-builder flash`: the card image onto one or more SD cards in this machine's readers,
//! writing only what the image holds ([`plan`]), checking every target first ([`target`]),
//! then reading every written byte back from each card past the page cache. A target may get
//! its own node settings (`inject` after the write: a worker's join command, `NODE_NAME`).
//!
//! Several targets are written in one pass over the image: each range is read once and
//! written to every card, then each card is synced and read back on its own thread.

pub mod plan;
pub mod target;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{bail, Context, Result};
use k8r_card::stream::{AlignedBuf, DirectWriter};
use k8r_manifest::Range;

use crate::image::card;
use crate::image::used_ranges::used_ranges;
use crate::progress::Progress;
use plan::{Content, Region};
use target::{BlockTarget, Refusal};

/// Read, write and hash in chunks of this size.
const CHUNK: usize = 4 << 20;

/// One card to write.
#[derive(Debug, Clone)]
pub struct Target {
    /// The device (or a file).
    pub path: PathBuf,
    /// Node settings to inject after the write.
    pub config: Option<PathBuf>,
}

/// What was done to each card.
#[derive(Debug, Clone)]
pub struct Report {
    /// Bytes written to each card.
    pub written: u64,
    /// The image's length.
    pub image_len: u64,
    /// Ranges written.
    pub ranges: usize,
    /// Bytes of `written` that went to every card with `O_DIRECT` (the smallest over the
    /// cards; the rest went through the page cache: unaligned edges, or a target that
    /// refuses direct I/O).
    pub direct: u64,
    /// Per target: its path and the inject report, if it got settings.
    pub targets: Vec<(PathBuf, Option<String>)>,
}

/// Flashes `image` onto every target, or refuses before writing anything.
pub fn flash(image: &Path, targets: &[Target], threads: usize) -> Result<Report> {
    let image_len = std::fs::metadata(image)
        .with_context(|| format!("reading {}", image.display()))?
        .len();
    let ranges = ranges_of(image, image_len)?;
    let written: u64 = ranges.iter().map(|r| r.1).sum();
    check_targets(targets, image_len)?;
    let pieces = k8r_manifest::split_ranges(&ranges, k8r_manifest::MAX_RANGE);
    log::info!(
        "flash: {} MiB of the {} MiB image in {} ranges, to {}",
        written >> 20,
        image_len >> 20,
        pieces.len(),
        targets
            .iter()
            .map(|t| t.path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The image is read once: each range is hashed as it is written to every card.
    let (ranges, direct) = write_all(image, targets, &pieces, written)?;
    read_back(targets, &ranges, threads)?;
    let mut done = Vec::new();
    for t in targets {
        let report = match &t.config {
            Some(cfg) => Some(crate::inject::inject(&t.path, cfg).with_context(|| {
                format!("node settings {} on {}", cfg.display(), t.path.display())
            })?),
            None => None,
        };
        done.push((t.path.clone(), report));
    }
    Ok(Report {
        written,
        image_len,
        ranges: ranges.len(),
        direct,
        targets: done,
    })
}

/// The image's ranges to write ([`plan::ranges`]) from its partition table, file systems and
/// data extents.
fn ranges_of(image: &Path, image_len: u64) -> Result<Vec<(u64, u64)>> {
    let mbr = card::read_mbr(image)?;
    let mut file = File::open(image).with_context(|| format!("opening {}", image.display()))?;
    let mut regions = Vec::new();
    for (number, p) in mbr.numbered() {
        let (start, len) = (p.byte_offset(), p.byte_len());
        let mut head = vec![0u8; 2048];
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(&mut head))
            .with_context(|| format!("{}: partition {number}", image.display()))?;
        // ext4's superblock is at 1024 bytes, its magic 0xef53 at 56 into it.
        let content = if head[1080..1082] == [0x53, 0xef] {
            let mut window = Window::new(&mut file, start, len);
            let used = used_ranges(&mut window)
                .with_context(|| format!("{}: partition {number}'s ext4", image.display()))?;
            Content::Ext4 { used: used.extents }
        } else if let Some(meta_len) = plan::fat_meta_len(&head[..512]) {
            Content::Fat { meta_len }
        } else {
            Content::Unknown
        };
        regions.push(Region {
            start,
            len,
            content,
        });
    }
    let data = data_extents(&file, image_len)?;
    Ok(plan::ranges(image_len, &regions, &data))
}

/// The data extents of a (sparse) file, by `SEEK_DATA`/`SEEK_HOLE`.
fn data_extents(file: &File, len: u64) -> Result<Vec<(u64, u64)>> {
    use rustix::fs::SeekFrom as S;
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < len {
        let start = match rustix::fs::seek(file, S::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(std::io::Error::from(e)).context("SEEK_DATA"),
        };
        let end = rustix::fs::seek(file, S::Hole(start))
            .map_err(std::io::Error::from)
            .context("SEEK_HOLE")?
            .min(len);
        out.push((start, end - start));
        pos = end;
    }
    Ok(out)
}

/// Refuses every target that may not be written, all of them named at once.
fn check_targets(targets: &[Target], image_len: u64) -> Result<()> {
    if targets.is_empty() {
        bail!("no --device given: name the card reader's device, e.g. --device /dev/sdb");
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let sys = Path::new("/sys");
    let mounted: Vec<(Vec<String>, String)> = target::mounts(&mountinfo)
        .into_iter()
        .map(|(dev, point)| (target::disks_of(sys, dev), point))
        .collect();
    let root_disks = std::fs::metadata("/")
        .map(|m| {
            use std::os::unix::fs::MetadataExt as _;
            let dev = m.dev();
            target::disks_of(sys, (rustix::fs::major(dev), rustix::fs::minor(dev)))
        })
        .unwrap_or_default();
    let mut refusals = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].iter().any(|o| same_file(&o.path, &t.path)) {
            refusals.push(Refusal::Unusable {
                path: t.path.clone(),
                why: "given twice".into(),
            });
            continue;
        }
        if let Err(r) = check_one(t, image_len, &mounted, &root_disks) {
            refusals.push(r);
        }
    }
    if !refusals.is_empty() {
        let lines: Vec<String> = refusals.iter().map(ToString::to_string).collect();
        bail!("nothing was written:\n  {}", lines.join("\n  "));
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn check_one(
    t: &Target,
    image_len: u64,
    mounted: &[(Vec<String>, String)],
    root_disks: &[String],
) -> Result<(), Refusal> {
    let unusable = |why: String| Refusal::Unusable {
        path: t.path.clone(),
        why,
    };
    let meta = std::fs::metadata(&t.path).map_err(|e| unusable(e.to_string()))?;
    let kind = meta.file_type();
    if kind.is_block_device() {
        use std::os::unix::fs::MetadataExt as _;
        let rdev = meta.rdev();
        let dev = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        let block = BlockTarget {
            path: &t.path,
            disks: target::disks_of(Path::new("/sys"), dev),
        };
        target::check_block(&block, mounted, root_disks)?;
    } else if !kind.is_file() {
        return Err(unusable(
            "not a block device (a card reader's device is like /dev/sdb or /dev/mmcblk0)".into(),
        ));
    }
    let mut f = File::open(&t.path).map_err(|e| unusable(e.to_string()))?;
    let have = f
        .seek(SeekFrom::End(0))
        .map_err(|e| unusable(e.to_string()))?;
    if have < image_len {
        return Err(Refusal::TooSmall {
            path: t.path.clone(),
            have,
            need: image_len,
        });
    }
    Ok(())
}

/// Writes every range to every target in one pass over the image, hashing each range as it
/// goes by, then syncs the targets. Returns the ranges with their digests, and the bytes that
/// went to every target with `O_DIRECT`.
///
/// Each target is a [`DirectWriter`]: the chunks are read into 4 KiB-aligned buffers from
/// the range's offset on, so wherever a range starts on a 4 KiB boundary its bytes go to the
/// card straight from the buffer, without a copy into the page cache.
fn write_all(
    image: &Path,
    targets: &[Target],
    pieces: &[(u64, u64)],
    total: u64,
) -> Result<(Vec<Range>, u64)> {
    use sha2::{Digest as _, Sha256};
    let mut src = File::open(image).with_context(|| format!("opening {}", image.display()))?;
    let mut outs: Vec<(PathBuf, DirectWriter)> = Vec::new();
    for t in targets {
        let f = DirectWriter::open(&t.path)
            .with_context(|| format!("opening {} for writing", t.path.display()))?;
        outs.push((t.path.clone(), f));
    }
    let progress = Progress::bytes("flash", total);
    // Reading and writing on this thread, hashing on another: each chunk goes to the hasher
    // once written, and comes back through the pool.
    let (pool_tx, pool_rx) = mpsc::channel::<AlignedBuf>();
    for _ in 0..4 {
        let _ = pool_tx.send(AlignedBuf::new(CHUNK));
    }
    let (hash_tx, hash_rx) = mpsc::channel::<Option<(AlignedBuf, usize)>>();
    let digests = std::thread::scope(|scope| {
        let hasher = scope.spawn(move || {
            let mut out = Vec::new();
            let mut h = Sha256::new();
            for msg in hash_rx {
                match msg {
                    Some((buf, n)) => {
                        h.update(&buf.as_slice()[..n]);
                        let _ = pool_tx.send(buf);
                    }
                    None => out.push(k8r_card::digest::hex(&h.finalize_reset())),
                }
            }
            out
        });
        let mut done = 0u64;
        for &(offset, length) in pieces {
            src.seek(SeekFrom::Start(offset))
                .with_context(|| format!("reading {}", image.display()))?;
            for (path, f) in &mut outs {
                f.seek(SeekFrom::Start(offset))
                    .with_context(|| format!("seeking on {}", path.display()))?;
            }
            let mut left = length;
            while left > 0 {
                let mut buf = pool_rx
                    .recv()
                    .map_err(|_| anyhow::anyhow!("the hashing thread stopped"))?;
                let n = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
                src.read_exact(&mut buf.as_mut_slice()[..n])
                    .with_context(|| format!("reading {}", image.display()))?;
                for (path, f) in &mut outs {
                    f.write_all(&buf.as_slice()[..n])
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                hash_tx
                    .send(Some((buf, n)))
                    .map_err(|_| anyhow::anyhow!("the hashing thread stopped"))?;
                left -= n as u64;
                done += n as u64;
                progress.set(done);
            }
            hash_tx
                .send(None)
                .map_err(|_| anyhow::anyhow!("the hashing thread stopped"))?;
        }
        drop(hash_tx);
        hasher
            .join()
            .map_err(|_| anyhow::anyhow!("the hashing thread panicked"))
    })?;
    let ranges: Vec<Range> = pieces
        .iter()
        .zip(digests)
        .map(|(&(offset, length), sha256)| Range {
            offset,
            length,
            sha256,
        })
        .collect();
    progress.finish();
    log::info!("flash: syncing");
    std::thread::scope(|scope| {
        let handles: Vec<_> = outs
            .iter()
            .map(|(path, f)| {
                scope.spawn(move || {
                    f.sync_all()
                        .with_context(|| format!("syncing {}", path.display()))?;
                    let _ = k8r_card::io::drop_page_cache(f.file());
                    Ok::<_, anyhow::Error>(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a sync thread panicked"))??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let direct = outs
        .iter()
        .map(|(_, f)| f.direct_bytes())
        .min()
        .unwrap_or(0);
    Ok((ranges, direct))
}

/// Reads every written range back from each target, past the page cache where the target
/// allows it, and checks its SHA-256.
fn read_back(targets: &[Target], ranges: &[Range], threads: usize) -> Result<()> {
    for t in targets {
        log::info!("flash: reading {} back", t.path.display());
        let direct = k8r_card::io::open_direct(&t.path).is_ok();
        k8r_card::stream::verify_ranges(&t.path, ranges, threads, direct, &|_| {})
            .with_context(|| format!("read-back of {}", t.path.display()))?;
    }
    Ok(())
}

/// A partition of an image file as a file of its own (for the ext4 bitmap reader).
struct Window<'a> {
    file: &'a mut File,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a> Window<'a> {
    fn new(file: &'a mut File, start: u64, len: u64) -> Self {
        Self {
            file,
            start,
            len,
            pos: 0,
        }
    }
}

impl Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        if n == 0 {
            return Ok(0);
        }
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let new = match to {
            SeekFrom::Start(o) => Some(o),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new.ok_or_else(|| std::io::Error::other("seek before the partition"))?;
        Ok(self.pos)
    }
}
