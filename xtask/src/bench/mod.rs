//! `cargo xtask bench`: k8r's install data path against what a user would run instead, timed
//! in one run on the same input and the same target, with the ratios as the result.
//!
//! Input ([`root`]): a realistic ext4 root and the builder's own `image.img.xz`, used ranges
//! and, for bmaptool, a block map. Methods, each writing a file target on this machine's disk
//! and ending with an fsync:
//!
//! - the seed's pipeline: `xz -dc | dd`, then `sha256sum` of what was written;
//! - `xz -T0 -dc | dd` (parallel decode, no check at all);
//! - `bmaptool copy` (Debian's bmap-tools: the xz artefact and its block map; checks the
//!   digests of the ranges it writes);
//! - the same for `image.img.zst` (`COMPRESSION="zstd"`): `zstd -dc | dd` with and without
//!   `sha256sum`, `bmaptool copy` of the zstd file, k8r's path, and `zstd -dc` alone;
//! - k8r's data path built for the host (`crates/card/examples/host_install.rs`, the calls the
//!   installer makes), without and with the O_DIRECT read-back, and once with its writes
//!   buffered (no `O_DIRECT`) to show what the direct writes gain, and once with the threads
//!   and memory limits of a 1 GB Pi 4 for its peak RSS;
//! - floors: parallel xz decode to /dev/null, SHA-256 of the used bytes, writing the used bytes
//!   (with `O_DIRECT`, as k8r writes);
//! - per-core rates (xz and zstd decode, SHA-256 on one thread), which `docs/performance.md`
//!   scales to a Pi 4;
//! - the first flash of the whole card: `dd`, `bmaptool copy` and `k8r-builder flash`, onto a
//!   file and, where a loop device can be attached ([`loopdev`]: root, the loop driver), onto
//!   a block device;
//! - the builder's own speed ([`assemble`]): `k8r-builder assemble` with every download
//!   cached, against the time it spends compressing its artefacts.
//!
//! Runs are paired (each round runs every method once, in order) and the median of the rounds
//! is reported, with each method's peak RSS (GNU time's `%M`: the largest process of the
//! method).

mod assemble;
mod loopdev;
mod root;
pub mod table;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::test;
use table::{Kind, Over, Row};

/// `cargo xtask bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Rounds (each runs every method once); the table shows medians.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Size of the root file system image, MiB.
    #[arg(long, default_value_t = 2048)]
    pub size_mib: u64,
    /// Files copied from /usr into it, MiB (~30 % of the default size, like a fresh root).
    #[arg(long, default_value_t = 640)]
    pub data_mib: u64,
    /// Only the builder's table (`assemble` against its compression time): the install and
    /// flash tables are skipped.
    #[arg(long)]
    pub assemble_only: bool,
}

/// The two k8r rows, by name.
const K8R: &str = "k8r write path (decode, write used ranges, hash)";
const K8R_READ_BACK: &str = "k8r write path + O_DIRECT read-back";
/// The two k8r rows of the zstd table.
const K8R_ZST: &str = "k8r write path, zstd (frames on all cores)";
const K8R_ZST_READ_BACK: &str = "k8r write path, zstd + O_DIRECT read-back";

/// The row that sizes threads and memory limits as on a 1 GB Pi 4, for its peak RSS.
const PI4_1GB: &str = "k8r write path sized for a 1 GB Pi 4 (4 threads)";
/// A 1 GB Pi 4's `MemTotal` (948232 kB with Ubuntu's kernel).
const PI4_1GB_MEM_TOTAL: u64 = 948_232 * 1024;

/// The per-core rows (one thread each), for the Pi 4 figures.
const PER_CORE_XZ: &str = "one core: xz -T1 -dc > /dev/null";
const PER_CORE_SHA: &str = "one core: SHA-256 of the used bytes";

/// One way to install the root.
struct Method {
    name: &'static str,
    kind: Kind,
    /// The command line, for `sh -c`.
    script: String,
}

/// Runs the bench and prints the table.
pub fn run(args: &BenchArgs) -> Result<()> {
    for (tool, package) in [
        ("bmaptool", "bmap-tools"),
        ("/usr/bin/time", "time"),
        ("xz", "xz-utils"),
        ("zstd", "zstd"),
    ] {
        if !have(tool) {
            bail!("{tool} is missing (Debian package {package}): run `sudo cargo xtask setup`");
        }
    }
    test::cargo_build(
        "the installer's data path for the host (release)",
        &[
            "build",
            "--release",
            "-p",
            "k8r-card",
            "--example",
            "host_install",
        ],
    )?;
    test::cargo_build(
        "k8r-builder (release), for flash and assemble",
        &["build", "--release", "-p", "k8r-builder"],
    )?;
    // What assemble puts on the card, and the base image's boot partition and the node
    // artefacts' mirror it is built from.
    test::build_card_programs()?;
    crate::fixtures::run().context("building the fixtures assemble uses")?;
    let target_dir = k8r_qemu::assets::target_dir();
    let host_install = target_dir.join("release/examples/host_install");
    let builder = target_dir.join("release/k8r-builder");
    let dir = target_dir.join("bench");
    let input = root::prepare(&dir, args.size_mib, args.data_mib)?;
    log::info!(
        "bench: root {} MiB, {} MiB used, image.img.xz {} MiB, image.img.zst {} MiB; {} rounds",
        input.size >> 20,
        input.used >> 20,
        input.compressed >> 20,
        input.compressed_zst >> 20,
        args.runs
    );
    if args.assemble_only {
        print_assemble(&assemble::run(&dir, &input, args.data_mib, &builder)?);
        return Ok(());
    }
    let target = dir.join("target.img");
    let rows = rounds(
        &methods(&input, &host_install, &target),
        args.runs,
        &dir,
        &target,
    )?;
    let zst_rows = rounds(
        &zstd_methods(&input, &host_install, &target),
        args.runs,
        &dir,
        &target,
    )?;
    let card_len = std::fs::metadata(&input.card).context("card.img")?.len();
    let flash_rows = rounds(
        &flash_methods(&input, &builder, &target, card_len),
        args.runs,
        &dir,
        &target,
    )?;
    let _ = std::fs::remove_file(&target);
    // The same onto a block device, where every method's time includes the data reaching it.
    let flash_dev_rows = match loopdev::LoopDevice::attach(&dir.join("loop-card.img"), card_len)? {
        Some(dev) => Some(rounds(
            &flash_methods(&input, &builder, dev.path(), card_len),
            args.runs,
            &dir,
            dev.path(),
        )?),
        None => None,
    };
    let assembled = assemble::run(&dir, &input, args.data_mib, &builder)?;
    println!(
        "\nroot {} MiB, {} MiB in its used ranges, image.img.xz {} MiB; target: a file in {}; \
         {} cores\n",
        input.size >> 20,
        input.used >> 20,
        input.compressed >> 20,
        dir.display(),
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    print!("{}", table::render(&rows, K8R, K8R_READ_BACK));
    print!("{}", table::rates(&rows, input.size, input.used));
    println!(
        "\nthe same root as image.img.zst ({} MiB, COMPRESSION=\"zstd\", level 19 in 8 MiB \
         frames)\n",
        input.compressed_zst >> 20
    );
    print!("{}", table::render(&zst_rows, K8R_ZST, K8R_ZST_READ_BACK));
    print!("{}", table::rates(&zst_rows, input.size, input.used));
    println!(
        "\nfirst flash: a {} MiB card (256 MiB FAT boot partition with 40 MiB of files, then \
         the root) onto a card (a file in the same directory)\n",
        card_len >> 20
    );
    print!("{}", table::render(&flash_rows, FLASH, FLASH));
    if let Some(rows) = &flash_dev_rows {
        println!(
            "\nthe same onto a block device (a loop device with direct I/O over a file in the \
             same directory)\n"
        );
        print!("{}", table::render(rows, FLASH, FLASH));
    }
    print_assemble(&assembled);
    Ok(())
}

fn print_assemble(run: &assemble::Run) {
    println!(
        "\nk8r-builder assemble of a base image with this root (and the fixture's boot \
         partition), every download cached, xz preset 6 on all cores\n"
    );
    print!("{}", run.render());
}

/// `runs` paired rounds of `methods`; the target is removed before each run.
fn rounds(methods: &[Method], runs: usize, dir: &Path, target: &Path) -> Result<Vec<Row>> {
    let mut rows: Vec<Row> = methods
        .iter()
        .map(|m| Row {
            name: m.name.to_owned(),
            kind: m.kind,
            runs: Vec::new(),
            rss_kib: 0,
        })
        .collect();
    for round in 1..=runs {
        for (m, row) in methods.iter().zip(rows.iter_mut()) {
            // A file target starts afresh; a device stays (its old bytes do not matter: every
            // method writes all the data).
            if !loopdev::is_block_device(target) {
                let _ = std::fs::remove_file(target);
            }
            let (took, rss) =
                timed(&m.script, dir).with_context(|| format!("round {round}: {}", m.name))?;
            log::info!(
                "bench: round {round}: {:<52} {:>7.2} s {:>5} MiB",
                m.name,
                took.as_secs_f64(),
                rss / 1024
            );
            row.runs.push(took);
            row.rss_kib = row.rss_kib.max(rss);
        }
    }
    Ok(rows)
}

/// The k8r row of the flash table.
const FLASH: &str = "k8r-builder flash (data only, read back)";

fn flash_methods(input: &root::Input, builder: &Path, target: &Path, card_len: u64) -> Vec<Method> {
    let c = quote(&input.card);
    let t = quote(target);
    let b = quote(&input.card_bmap);
    let k = quote(builder);
    vec![
        Method {
            name: "dd of the card (no check)",
            kind: Kind::Rival,
            script: format!("dd if={c} of={t} bs=4M conv=fsync status=none"),
        },
        Method {
            name: "bmaptool copy of the card (its bmap, checks)",
            kind: Kind::Rival,
            script: format!("bmaptool -q copy --bmap {b} {c} {t}"),
        },
        Method {
            name: FLASH,
            kind: Kind::K8r,
            // flash writes onto a device that exists: a card-sized file, like a blank card.
            script: if loopdev::is_block_device(target) {
                format!("{k} flash --image {c} --device {t} >/dev/null")
            } else {
                format!(
                    "truncate -s {card_len} {t} && {k} flash --image {c} --device {t} >/dev/null"
                )
            },
        },
    ]
}

fn methods(input: &root::Input, host_install: &Path, target: &Path) -> Vec<Method> {
    let a = quote(&input.artefact);
    let t = quote(target);
    let r = quote(&input.ranges);
    let img = quote(&input.image);
    let hi = quote(host_install);
    let b = quote(&input.bmap);
    let dd = format!("dd of={t} bs=4M conv=fsync status=none");
    vec![
        Method {
            name: "seed: xz -dc | dd + sha256sum",
            kind: Kind::Rival,
            script: format!("xz -dc {a} | {dd} && sha256sum {t} >/dev/null"),
        },
        Method {
            name: "xz -T0 -dc | dd (no check)",
            kind: Kind::Rival,
            script: format!("xz -T0 -dc {a} | {dd}"),
        },
        Method {
            name: "bmaptool copy (xz + bmap, checks its ranges)",
            kind: Kind::Rival,
            script: format!("bmaptool -q copy --bmap {b} {a} {t}"),
        },
        Method {
            name: K8R,
            kind: Kind::K8r,
            script: format!("{hi} install {a} {r} {t}"),
        },
        Method {
            name: K8R_READ_BACK,
            kind: Kind::K8r,
            script: format!("{hi} install {a} {r} {t} --read-back"),
        },
        // Not a rival a user would pick: the write path with its ranges written through the
        // page cache, as before O_DIRECT writes, so the table shows what they gain.
        Method {
            name: "k8r write path, buffered writes (no O_DIRECT)",
            kind: Kind::Rival,
            script: format!("{hi} install {a} {r} {t} --buffered"),
        },
        // Its memory as on the smallest supported Pi: 4 threads, a 1 GB Pi 4's MemTotal.
        Method {
            name: PI4_1GB,
            kind: Kind::K8r,
            script: format!(
                "{hi} install {a} {r} {t} --threads 4 --mem-total {}",
                PI4_1GB_MEM_TOTAL
            ),
        },
        Method {
            name: "floor: xz -T0 -dc > /dev/null",
            kind: Kind::Floor,
            script: format!("xz -T0 -dc {a} >/dev/null"),
        },
        Method {
            name: "floor: SHA-256 of the used bytes",
            kind: Kind::Floor,
            script: format!("{hi} floor-hash {img} {r}"),
        },
        // The two per-core rates docs/performance.md scales to a Pi 4's Cortex-A72.
        Method {
            name: PER_CORE_XZ,
            kind: Kind::PerCore(Over::Image),
            script: format!("xz -T1 -dc {a} >/dev/null"),
        },
        Method {
            name: PER_CORE_SHA,
            kind: Kind::PerCore(Over::Used),
            script: format!("{hi} floor-hash {img} {r} 1"),
        },
        Method {
            name: "floor: write the used bytes",
            kind: Kind::Floor,
            script: format!("{hi} floor-write {img} {r} {t}"),
        },
    ]
}

fn zstd_methods(input: &root::Input, host_install: &Path, target: &Path) -> Vec<Method> {
    let a = quote(&input.artefact_zst);
    let t = quote(target);
    let r = quote(&input.ranges_zst);
    let hi = quote(host_install);
    let b = quote(&input.bmap);
    let dd = format!("dd of={t} bs=4M conv=fsync status=none");
    vec![
        Method {
            name: "zstd -dc | dd + sha256sum",
            kind: Kind::Rival,
            script: format!("zstd -q -dc {a} | {dd} && sha256sum {t} >/dev/null"),
        },
        Method {
            name: "zstd -dc | dd (no check)",
            kind: Kind::Rival,
            script: format!("zstd -q -dc {a} | {dd}"),
        },
        Method {
            name: "bmaptool copy (zstd + bmap, checks its ranges)",
            kind: Kind::Rival,
            script: format!("bmaptool -q copy --bmap {b} {a} {t}"),
        },
        Method {
            name: K8R_ZST,
            kind: Kind::K8r,
            script: format!("{hi} install {a} {r} {t}"),
        },
        Method {
            name: K8R_ZST_READ_BACK,
            kind: Kind::K8r,
            script: format!("{hi} install {a} {r} {t} --read-back"),
        },
        Method {
            name: "one core: zstd -dc > /dev/null",
            kind: Kind::PerCore(Over::Image),
            script: format!("zstd -q -dc {a} >/dev/null"),
        },
    ]
}

/// Runs `script` under GNU time; its wall time and peak RSS in KiB.
fn timed(script: &str, dir: &Path) -> Result<(Duration, u64)> {
    let rss_file = dir.join("rss.txt");
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .args(["sh", "-c", script])
        .current_dir(dir)
        .output()
        .context("running /usr/bin/time")?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "`{script}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let rss = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|t| t.lines().last()?.trim().parse().ok())
        .unwrap_or(0);
    Ok((took, rss))
}

fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

fn have(tool: &str) -> bool {
    if tool.starts_with('/') {
        return Path::new(tool).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d: PathBuf| d.join(tool).is_file()))
}
