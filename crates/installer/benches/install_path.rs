//! `cargo bench -p k8r-installer`: the installer's write path against two baselines measured
//! in the same run on the same synthetic root image (times depend on the machine; the ratios
//! are what to compare):
//!
//! - `dd`: single-threaded xz decode, every byte written, one SHA-256 over everything;
//! - `bmap-like`: single-threaded decode, only the used ranges written, their digests on the
//!   same thread (what bmaptool does with a block map);
//! - `k8r`: multi-threaded decode, only the used ranges written, range digests on a pool of
//!   threads (`stream::write_ranges`).
//!
//! The image is 192 MiB with 48 MiB of data in 64 MiB-bounded ranges, the rest zeros, like a
//! small root filesystem; it is written to a file in the target directory.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use k8r_card::digest::hex;
use k8r_card::stream;
use k8r_manifest::Range;
use sha2::{Digest, Sha256};

const IMAGE: usize = 192 << 20;

fn image() -> (Vec<u8>, Vec<Range>) {
    let mut data = vec![0u8; IMAGE];
    let mut ranges = Vec::new();
    let mut seed = 0x2545_f491_u64;
    for (offset, length) in [
        (0usize, 8usize << 20),
        (40 << 20, 24 << 20),
        (120 << 20, 16 << 20),
    ] {
        for chunk in data[offset..offset + length].chunks_mut(8) {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // Half-compressible data, like binaries.
            let v = if seed >> 63 == 0 {
                seed.to_le_bytes()
            } else {
                [0x90; 8]
            };
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        ranges.push(Range {
            offset: offset as u64,
            length: length as u64,
            sha256: hex(&Sha256::digest(&data[offset..offset + length])),
        });
    }
    (data, ranges)
}

fn xz(data: &[u8]) -> Vec<u8> {
    let stream = liblzma::stream::MtStreamBuilder::new()
        .threads(2)
        .block_size(32 << 20)
        .preset(1)
        .encoder()
        .expect("encoder");
    let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    enc.write_all(data).expect("compress");
    enc.finish().expect("finish")
}

fn target(name: &str) -> std::fs::File {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&dir).expect("bench dir");
    let path = dir.join(name);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .expect("target");
    f.set_len(IMAGE as u64).expect("size");
    f
}

fn dd(xz_data: &[u8]) -> Duration {
    let start = Instant::now();
    let mut dec = liblzma::read::XzDecoder::new(xz_data);
    let mut out = target("dd.img");
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = dec.read(&mut buf).expect("decode");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).expect("write");
    }
    out.sync_all().expect("sync");
    let _ = h.finalize();
    start.elapsed()
}

fn bmap_like(xz_data: &[u8], ranges: &[Range]) -> Duration {
    let start = Instant::now();
    let mut dec = liblzma::read::XzDecoder::new(xz_data);
    let mut out = target("bmap.img");
    let mut pos = 0u64;
    let mut buf = vec![0u8; 4 << 20];
    for r in ranges {
        // Skip to the range, then write and hash it on this thread.
        std::io::copy(&mut (&mut dec).take(r.offset - pos), &mut std::io::sink()).expect("skip");
        out.seek(SeekFrom::Start(r.offset)).expect("seek");
        let mut h = Sha256::new();
        let mut left = r.length;
        while left > 0 {
            let n = usize::try_from(left.min(buf.len() as u64)).expect("n");
            dec.read_exact(&mut buf[..n]).expect("decode");
            h.update(&buf[..n]);
            out.write_all(&buf[..n]).expect("write");
            left -= n as u64;
        }
        assert_eq!(hex(&h.finalize()), r.sha256);
        pos = r.offset + r.length;
    }
    out.sync_all().expect("sync");
    start.elapsed()
}

fn k8r(xz_data: &[u8], ranges: &[Range], threads: usize) -> Duration {
    let start = Instant::now();
    let plain = stream::xz_reader(xz_data, u32::try_from(threads).expect("threads"), 1 << 30)
        .expect("decoder");
    let mut out = target("k8r.img");
    let opts = stream::WriteOptions {
        threads,
        chunk: 4 << 20,
        whole_digest: false,
    };
    stream::write_ranges(plain, &mut out, ranges, IMAGE as u64, &opts, &mut |_| {})
        .expect("write_ranges");
    out.sync_all().expect("sync");
    start.elapsed()
}

fn best(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

fn main() {
    let threads = usize::try_from(stream::online_cpus()).unwrap_or(1);
    let (data, ranges) = image();
    let xz_data = xz(&data);
    println!(
        "image {} MiB, {} MiB used in {} ranges, image.img.xz {:.1} MiB, {threads} threads",
        IMAGE >> 20,
        ranges.iter().map(|r| r.length).sum::<u64>() >> 20,
        ranges.len(),
        xz_data.len() as f64 / 1_048_576.0
    );
    let t_dd = best(3, || dd(&xz_data));
    let t_bmap = best(3, || bmap_like(&xz_data, &ranges));
    let t_k8r = best(3, || k8r(&xz_data, &ranges, threads));
    println!(
        "dd (decode 1 thread, write all):        {:>7.3} s",
        t_dd.as_secs_f64()
    );
    println!(
        "bmap-like (1 thread, used ranges):      {:>7.3} s",
        t_bmap.as_secs_f64()
    );
    println!(
        "k8r write_ranges ({threads} threads):             {:>7.3} s",
        t_k8r.as_secs_f64()
    );
    println!(
        "k8r speed-up: {:.2}x over dd, {:.2}x over bmap-like",
        t_dd.as_secs_f64() / t_k8r.as_secs_f64(),
        t_bmap.as_secs_f64() / t_k8r.as_secs_f64()
    );
}
