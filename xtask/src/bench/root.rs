//! The bench's input: a realistic root image and its artefacts, made once and kept under
//! `target/bench/` (remade when the parameters change).
//!
//! The root is an ext4 file system (`mke2fs -d`, 4 KiB blocks) filled with real files copied
//! from this machine's `/usr` (libraries, programs, data: what a root holds) up to the data
//! budget, so it compresses like a real one. `image.img.xz` is made by the builder's own
//! `artefacts::compress_xz` (multi-block, the builder's default preset) and `image.img.zst` by
//! `artefacts::compress_zstd` (independent frames, its default level), the used ranges by the
//! builder's ext4 bitmap reader and range hasher, exactly as `assemble` makes them; the block
//! map for bmaptool by `bmaptool create`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use k8r_builder::artefacts;
use k8r_builder::image::used_ranges::used_ranges;
use k8r_card::layout::BOOT_LABEL;

/// Where the host files come from, in this order.
const SOURCES: [&str; 3] = ["/usr/lib", "/usr/bin", "/usr/share"];
/// The builder's default xz preset (`k8r-builder assemble --xz-preset`).
const XZ_PRESET: u32 = 6;
/// The builder's default zstd level (`k8r-builder assemble --zstd-level`).
const ZSTD_LEVEL: i32 = 19;

/// The bench's input files.
#[derive(Debug, Clone)]
pub struct Input {
    /// The uncompressed root image.
    pub image: PathBuf,
    /// `image.img.xz`.
    pub artefact: PathBuf,
    /// The plan for `host_install`: size, compressed digest, used ranges.
    pub ranges: PathBuf,
    /// `image.img.zst` (`COMPRESSION="zstd"`).
    pub artefact_zst: PathBuf,
    /// Its plan for `host_install`.
    pub ranges_zst: PathBuf,
    /// Its size in bytes.
    pub compressed_zst: u64,
    /// bmaptool's block map.
    pub bmap: PathBuf,
    /// Image size in bytes.
    pub size: u64,
    /// Bytes the used ranges hold.
    pub used: u64,
    /// Compressed size in bytes.
    pub compressed: u64,
    /// A whole card: a FAT boot partition with real files and the root, as `flash` gets it.
    pub card: PathBuf,
    /// bmaptool's block map of the card.
    pub card_bmap: PathBuf,
}

/// Makes (or reuses) the input in `dir`: a `size_mib` root holding about `data_mib` of files.
pub fn prepare(dir: &Path, size_mib: u64, data_mib: u64) -> Result<Input> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let input = Input {
        image: dir.join("root.img"),
        artefact: dir.join("image.img.xz"),
        ranges: dir.join("ranges.txt"),
        artefact_zst: dir.join("image.img.zst"),
        ranges_zst: dir.join("ranges-zst.txt"),
        compressed_zst: 0,
        bmap: dir.join("root.img.bmap"),
        size: size_mib << 20,
        used: 0,
        compressed: 0,
        card: dir.join("card.img"),
        card_bmap: dir.join("card.img.bmap"),
    };
    let stamp = dir.join("input.stamp");
    let want = format!("v3 size={size_mib} data={data_mib} preset={XZ_PRESET} zstd={ZSTD_LEVEL}\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(&want) {
        let _ = std::fs::remove_file(&stamp);
        make(dir, &input, size_mib, data_mib)?;
        std::fs::write(&stamp, &want).context("writing the bench stamp")?;
    } else {
        log::info!("bench: reusing the root image in {}", dir.display());
    }
    let plan = std::fs::read_to_string(&input.ranges).context("reading ranges.txt")?;
    let used = plan
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    let compressed = std::fs::metadata(&input.artefact)
        .context("image.img.xz")?
        .len();
    let compressed_zst = std::fs::metadata(&input.artefact_zst)
        .context("image.img.zst")?
        .len();
    Ok(Input {
        used,
        compressed,
        compressed_zst,
        ..input
    })
}

fn make(dir: &Path, input: &Input, size_mib: u64, data_mib: u64) -> Result<()> {
    let tree = dir.join("tree");
    let _ = std::fs::remove_dir_all(&tree);
    let copied = copy_files(&tree, data_mib << 20)?;
    log::info!(
        "bench: {} MiB of files from /usr in {}",
        copied >> 20,
        tree.display()
    );
    let _ = std::fs::remove_file(&input.image);
    run(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-d"])
        .arg(&tree)
        .arg(&input.image)
        .arg(format!("{size_mib}M")))?;
    let _ = std::fs::remove_dir_all(&tree);

    let mut file = std::fs::File::open(&input.image).context("root.img")?;
    let used = used_ranges(&mut file).context("reading the root's block bitmaps")?;
    let pieces = k8r_manifest::split_ranges(&used.extents, k8r_manifest::MAX_RANGE);
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let digests = artefacts::hash_ranges(&input.image, &pieces, threads, &|_| {})?;
    log::info!(
        "bench: compressing {} MiB ({} MiB used) with the builder's xz (preset {XZ_PRESET})",
        input.size >> 20,
        used.used_bytes() >> 20
    );
    let xz = artefacts::compress_xz(
        &input.image,
        &input.artefact,
        XZ_PRESET,
        u32::try_from(threads).unwrap_or(1),
        &|_| {},
    )?;
    log::info!("bench: compressing it with the builder's zstd (level {ZSTD_LEVEL})");
    let zst = artefacts::compress_zstd(
        &input.image,
        &input.artefact_zst,
        ZSTD_LEVEL,
        u32::try_from(threads).unwrap_or(1),
        &|_| {},
    )?;
    let mut ranges = String::new();
    for ((offset, length), sha) in pieces.iter().zip(digests) {
        ranges.push_str(&format!("{offset} {length} {sha}\n"));
    }
    for (path, d) in [(&input.ranges, &xz), (&input.ranges_zst, &zst)] {
        let plan = format!(
            "{}\n{} {}\n{ranges}",
            used.total_bytes, d.compressed_size, d.compressed_sha256
        );
        std::fs::write(path, plan).with_context(|| format!("writing {}", path.display()))?;
    }
    run(Command::new("bmaptool")
        .args(["create", "-o"])
        .arg(&input.bmap)
        .arg(&input.image))?;
    make_card(dir, input)?;
    run(Command::new("bmaptool")
        .args(["create", "-o"])
        .arg(&input.card_bmap)
        .arg(&input.card))?;
    Ok(())
}

/// The card `flash` is timed with: a 256 MiB FAT boot partition holding 40 MiB of real files
/// (made with the builder's mtools code), then the root, through the builder's MBR writer.
fn make_card(dir: &Path, input: &Input) -> Result<()> {
    let boot_tree = dir.join("boot-tree");
    let _ = std::fs::remove_dir_all(&boot_tree);
    copy_files(&boot_tree, 40 << 20)?;
    let boot = dir.join("boot.img");
    let fat = k8r_builder::image::fat::format(
        &boot,
        &k8r_builder::image::fat::FatSpec {
            size: 256 << 20,
            label: BOOT_LABEL.into(),
            volume_id: 0x6b38_7262,
        },
    )?;
    fat.copy_tree(&boot_tree, 1_776_902_400)?;
    let _ = std::fs::remove_dir_all(&boot_tree);
    let _ = std::fs::remove_file(&input.card);
    k8r_builder::image::card::assemble(
        &input.card,
        0x6b38_7262,
        &[
            k8r_builder::image::card::PartitionSource {
                type_id: 0x0c,
                content: &boot,
                size: None,
            },
            k8r_builder::image::card::PartitionSource {
                type_id: 0x83,
                content: &input.image,
                size: None,
            },
        ],
        None,
    )?;
    let _ = std::fs::remove_file(&boot);
    Ok(())
}

/// Copies regular files from [`SOURCES`] (sorted walk) into `tree` until `budget` bytes.
pub(super) fn copy_files(tree: &Path, budget: u64) -> Result<u64> {
    let mut copied = 0u64;
    let mut stack: Vec<PathBuf> = SOURCES.iter().rev().map(PathBuf::from).collect();
    while let Some(path) = stack.pop() {
        if copied >= budget {
            break;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            let Ok(entries) = std::fs::read_dir(&path) else {
                continue;
            };
            let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            children.sort();
            stack.extend(children.into_iter().rev());
        } else if meta.is_file() && meta.len() > 0 {
            let rel = path.strip_prefix("/").unwrap_or(&path);
            let dest = tree.join(rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            // Unreadable files are skipped: the tree only needs to be realistic.
            if std::fs::copy(&path, &dest).is_ok() {
                copied += meta.len();
            }
        }
    }
    if copied == 0 {
        bail!("no files could be copied from {}", SOURCES.join(", "));
    }
    Ok(copied)
}

pub(super) fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
