//! The recovery installer's root data path, built for the host so `cargo xtask bench` can time
//! it beside the tools a user would pick instead. The same library calls, in the same order,
//! as the installer's `write_root` (crates/installer/src/install.rs): the compressed artefact's
//! size and SHA-256 (`Build::check_compressed`), then one pass that decodes on every core and
//! writes only the used ranges while hashing them (`stream::write_ranges`), `fsync`, and with
//! `--read-back` the ranges read back from the target past the page cache and hashed on every
//! core (`stream::verify_ranges`). The ranges go to the target through `stream::DirectWriter`
//! (`O_DIRECT` for their aligned parts), as in the installer; `--buffered` writes them through
//! the page cache instead, for the bench's comparison. `--threads` and `--mem-total` size the
//! threads and memory limits as on another machine (the bench's 1 GB Pi 4 row: 4 threads, its
//! `MemTotal`).
//!
//! ```text
//! host_install install ARTEFACT RANGES TARGET [--read-back] [--buffered] [--threads N] [--mem-total BYTES]
//! host_install floor-hash IMAGE RANGES [THREADS] # SHA-256 of the used bytes, on every core (or THREADS)
//! host_install floor-write IMAGE RANGES TARGET # copy the used bytes (O_DIRECT), no decode, no hash
//! ```
//!
//! `RANGES` is a text file: the image size on the first line, then `offset length sha256`
//! per used range, and the artefact's `compressed_size compressed_sha256` on the second line.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::process::ExitCode;

use k8r_card::digest::sha256_file;
use k8r_card::stream;
use k8r_manifest::Range;

/// What the ranges file says.
struct Plan {
    size: u64,
    compressed_size: u64,
    compressed_sha256: String,
    ranges: Vec<Range>,
}

fn parse_plan(text: &str) -> Result<Plan, String> {
    let mut lines = text.lines();
    let size = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("line 1: the image size")?;
    let (compressed_size, compressed_sha256) = lines
        .next()
        .and_then(|l| l.split_once(' '))
        .and_then(|(n, d)| Some((n.parse().ok()?, d.trim().to_owned())))
        .ok_or("line 2: compressed size and SHA-256")?;
    let mut ranges = Vec::new();
    for (i, line) in lines.enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [offset, length, sha256] = words.as_slice() else {
            return Err(format!("line {}: offset length sha256", i + 3));
        };
        ranges.push(Range {
            offset: offset
                .parse()
                .map_err(|_| format!("line {}: offset", i + 3))?,
            length: length
                .parse()
                .map_err(|_| format!("line {}: length", i + 3))?,
            sha256: (*sha256).to_owned(),
        });
    }
    Ok(Plan {
        size,
        compressed_size,
        compressed_sha256,
        ranges,
    })
}

/// `install`'s flags.
#[derive(Default)]
struct InstallFlags {
    read_back: bool,
    buffered: bool,
    /// Decoder and hashing threads (default: the online CPUs).
    threads: Option<usize>,
    /// `MemTotal` to size the memory limits by (default: this machine's).
    mem_total: Option<u64>,
}

fn parse_flags(args: &[&str]) -> Result<InstallFlags, String> {
    let mut flags = InstallFlags::default();
    let mut args = args.iter();
    while let Some(&arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} wants a number"))
        };
        match arg {
            "--read-back" => flags.read_back = true,
            "--buffered" => flags.buffered = true,
            "--threads" => {
                flags.threads = Some(usize::try_from(value(arg)?).map_err(|e| e.to_string())?);
            }
            "--mem-total" => flags.mem_total = Some(value(arg)?),
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    Ok(flags)
}

fn install(artefact: &str, plan: &Plan, target: &str, flags: &InstallFlags) -> Result<(), String> {
    let threads = flags
        .threads
        .unwrap_or_else(|| usize::try_from(stream::online_cpus()).unwrap_or(1));
    let meta = std::fs::metadata(artefact).map_err(|e| format!("{artefact}: {e}"))?;
    let digest = sha256_file(artefact.as_ref()).map_err(|e| format!("{artefact}: {e}"))?;
    if meta.len() != plan.compressed_size || digest != plan.compressed_sha256 {
        return Err(format!("{artefact}: size or SHA-256 differs from the plan"));
    }
    let src = File::open(artefact).map_err(|e| format!("{artefact}: {e}"))?;
    let mem_total = flags.mem_total.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| stream::mem_total_from_meminfo(&m))
            .unwrap_or(1 << 30)
    });
    // The manifest would say; here the artefact's name does (image.img.xz / image.img.zst).
    let compression = if artefact.ends_with(".zst") {
        k8r_manifest::Compression::Zstd
    } else {
        k8r_manifest::Compression::Xz
    };
    let opts = stream::WriteOptions {
        threads,
        chunk: 4 << 20,
        whole_digest: false,
    };
    let mut plain = stream::decoder(
        compression,
        BufReader::with_capacity(1 << 20, src),
        u32::try_from(threads).unwrap_or(1),
        mem_total,
        opts.pool_bytes(),
    )
    .map_err(|e| format!("{compression} decoder: {e}"))?;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(target)
        .and_then(|f| f.set_len(plan.size))
        .map_err(|e| format!("{target}: {e}"))?;
    let mut dev = if flags.buffered {
        // The data path as it was before O_DIRECT writes, for the bench's comparison row.
        OpenOptions::new()
            .write(true)
            .open(target)
            .map(|f| stream::DirectWriter::from_files(f, None))
    } else {
        stream::DirectWriter::open(target.as_ref())
    }
    .map_err(|e| format!("{target}: {e}"))?;
    stream::write_ranges(
        &mut plain,
        &mut dev,
        &plan.ranges,
        plan.size,
        &opts,
        &mut |_| {},
    )
    .map_err(|e| format!("{artefact}: {e}"))?;
    dev.sync_all().map_err(|e| format!("fsync {target}: {e}"))?;
    let _ = k8r_card::io::drop_page_cache(dev.file());
    drop(dev);
    if flags.read_back {
        stream::verify_ranges(target.as_ref(), &plan.ranges, threads, true, &|_| {})
            .map_err(|e| format!("read-back of {target}: {e}"))?;
    }
    Ok(())
}

fn floor_hash(image: &str, plan: &Plan, threads: Option<&str>) -> Result<(), String> {
    let threads = match threads {
        Some(n) => n.parse().map_err(|_| format!("threads: {n:?}"))?,
        None => usize::try_from(stream::online_cpus()).unwrap_or(1),
    };
    // The read-back without O_DIRECT: what hashing the used bytes costs by itself.
    stream::verify_ranges(image.as_ref(), &plan.ranges, threads, false, &|_| {})
        .map_err(|e| format!("{image}: {e}"))
}

fn floor_write(image: &str, plan: &Plan, target: &str) -> Result<(), String> {
    let mut src = File::open(image).map_err(|e| format!("{image}: {e}"))?;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(target)
        .and_then(|f| f.set_len(plan.size))
        .map_err(|e| format!("{target}: {e}"))?;
    // Written the way the install path writes (O_DIRECT from aligned buffers), so this stays
    // a floor of it.
    let mut dev =
        stream::DirectWriter::open(target.as_ref()).map_err(|e| format!("{target}: {e}"))?;
    let mut buf = stream::AlignedBuf::new(4 << 20);
    for r in &plan.ranges {
        src.seek(SeekFrom::Start(r.offset))
            .and_then(|_| dev.seek(SeekFrom::Start(r.offset)))
            .map_err(|e| format!("seek: {e}"))?;
        let mut left = r.length;
        while left > 0 {
            let window = buf.as_mut_slice();
            let n = usize::try_from(left.min(window.len() as u64)).unwrap_or(window.len());
            src.read_exact(&mut window[..n])
                .map_err(|e| format!("{image}: {e}"))?;
            dev.write_all(&window[..n])
                .map_err(|e| format!("{target}: {e}"))?;
            left -= n as u64;
        }
    }
    dev.sync_all().map_err(|e| format!("fsync {target}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan = |path: &str| {
        std::fs::read_to_string(path)
            .map_err(|e| format!("{path}: {e}"))
            .and_then(|t| parse_plan(&t).map_err(|e| format!("{path}: {e}")))
    };
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["install", artefact, ranges, target, rest @ ..] => {
            let flags = parse_flags(rest);
            plan(ranges).and_then(|p| install(artefact, &p, target, &flags?))
        }
        ["floor-hash", image, ranges, threads @ ..] => {
            plan(ranges).and_then(|p| floor_hash(image, &p, threads.first().copied()))
        }
        ["floor-write", image, ranges, target] => {
            plan(ranges).and_then(|p| floor_write(image, &p, target))
        }
        _ => Err(
            "usage: host_install install ARTEFACT RANGES TARGET [--read-back] [--buffered] \
                  [--threads N] [--mem-total BYTES] | \
                  floor-hash IMAGE RANGES [THREADS] | floor-write IMAGE RANGES TARGET"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("host_install: {e}");
            ExitCode::FAILURE
        }
    }
}
