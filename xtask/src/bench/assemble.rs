//! The builder's speed: `k8r-builder assemble` with every download cached, against the time
//! it spends compressing its own artefacts (`boot.tar.xz` and `image.img.xz`, from its own
//! per-step table).
//!
//! The base image is a root like the bench's (the same size and real files from `/usr`, plus
//! the fixture kernel's modules, which the recovery initramfs is made from) behind the boot
//! partition of the `base-arm64.img` fixture (that kernel, firmware files, `config.txt`), so
//! the root is the size of a real one while the boot partition is a small one. The node artefacts come
//! from the fixtures' 127.0.0.1 mirror: one warm-up `assemble` of the fixture itself fills the
//! download cache, then the timed run is `--offline`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8r_builder::image::card;

use super::root::{self, Input};

/// The result of the timed `assemble`.
pub struct Run {
    /// Wall time of the whole command.
    pub wall: Duration,
    /// Its per-step table: (step, seconds).
    pub steps: Vec<(String, f64)>,
}

/// The steps that compress the artefacts.
const COMPRESSION_STEPS: [&str; 2] = ["boot.tar.xz", "image.img.xz"];

impl Run {
    /// Seconds the compression steps took.
    pub fn compression(&self) -> f64 {
        self.steps
            .iter()
            .filter(|(name, _)| COMPRESSION_STEPS.contains(&name.as_str()))
            .map(|(_, s)| s)
            .sum()
    }

    /// The table the bench prints.
    pub fn render(&self) -> String {
        let mut out = String::from("| assemble step | time |\n| --- | ---: |\n");
        for (name, secs) in &self.steps {
            out.push_str(&format!("| {name} | {secs:.1} s |\n"));
        }
        let wall = self.wall.as_secs_f64();
        let compression = self.compression();
        out.push_str(&format!(
            "\nassemble (downloads cached): {wall:.1} s wall; compressing its artefacts \
             (boot.tar.xz + image.img.xz): {compression:.1} s; assemble is {:.2}x its \
             compression time\n",
            if compression > 0.0 {
                wall / compression
            } else {
                0.0
            }
        ));
        out
    }
}

/// Builds the base, warms the cache, then times one `assemble`.
pub fn run(dir: &Path, input: &Input, data_mib: u64, builder: &Path) -> Result<Run> {
    let work = dir.join("assemble");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let fixture = k8r_tests::fixture(k8r_tests::BASE_2604);
    let root = work.join("root.img");
    make_root(&work, &root, input.size, data_mib)?;
    let base = work.join("base.img");
    let p1 = work.join("fixture-p1.img");
    card::extract_partition(&fixture, 1, &p1)?;
    let _ = std::fs::remove_file(&base);
    card::assemble(
        &base,
        0x6b38_7263,
        &[
            card::PartitionSource {
                type_id: 0x0c,
                content: &p1,
                size: None,
            },
            card::PartitionSource {
                type_id: 0x83,
                content: &root,
                size: None,
            },
        ],
        None,
    )?;
    for made in [&p1, &root] {
        let _ = std::fs::remove_file(made);
    }
    let server = k8r_tests::mirror_server();
    let cache = work.join("cache");
    let warm = work.join("warm.cfg");
    std::fs::write(&warm, k8r_tests::test_config(server, &fixture, ""))?;
    log::info!("bench: assemble of the fixture, to fill the download cache");
    assemble(builder, &warm, &work.join("warm-images"), &cache, false)?;
    let config = work.join("variables.cfg");
    std::fs::write(&config, k8r_tests::test_config(server, &base, ""))?;
    log::info!(
        "bench: assemble of a {} MiB root ({} MiB used), downloads cached",
        input.size >> 20,
        input.used >> 20
    );
    let start = Instant::now();
    let stdout = assemble(builder, &config, &work.join("images"), &cache, true)?;
    let wall = start.elapsed();
    let steps = parse_steps(&stdout);
    if steps.is_empty() {
        bail!("assemble printed no step table:\n{stdout}");
    }
    for out in ["images", "warm-images"] {
        let _ = std::fs::remove_dir_all(work.join(out));
    }
    let _ = std::fs::remove_file(&base);
    Ok(Run { wall, steps })
}

/// A `size`-byte ext4 root at `out` with about `data_mib` of files from `/usr` and the
/// fixture kernel's modules under `/usr/lib/modules/<release>`, as Ubuntu has them.
fn make_root(work: &Path, out: &Path, size: u64, data_mib: u64) -> Result<()> {
    let tree = work.join("tree");
    let _ = std::fs::remove_dir_all(&tree);
    root::copy_files(&tree, data_mib << 20)?;
    let assets = k8r_qemu::assets::Assets::discover();
    let release = assets.kernel_version()?;
    k8r_builder::image::copy_tree(
        &assets.modules_dir()?,
        &tree.join("usr/lib/modules").join(&release),
    )?;
    let _ = std::fs::remove_file(out);
    root::run(
        Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-d"])
            .arg(&tree)
            .arg(out)
            .arg(format!("{}M", size >> 20)),
    )?;
    let _ = std::fs::remove_dir_all(&tree);
    Ok(())
}

/// Runs `k8r-builder assemble` with the card programs `cargo xtask build-image` uses; its
/// stdout.
fn assemble(
    builder: &Path,
    config: &Path,
    out: &Path,
    cache: &Path,
    offline: bool,
) -> Result<String> {
    let target = k8r_qemu::assets::target_dir();
    let programs = target.join("aarch64-unknown-linux-musl/release");
    let mut cmd = Command::new(builder);
    cmd.arg("assemble")
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .arg("--cache-dir")
        .arg(cache)
        .arg("--installer")
        .arg(programs.join("k8r-installer"))
        .arg("--agent")
        .arg(programs.join("k8r"));
    if offline {
        cmd.arg("--offline");
    }
    let output = cmd.output().context("running k8r-builder assemble")?;
    if !output.status.success() {
        bail!(
            "k8r-builder assemble --config {} failed: {}",
            config.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The rows of the `time per step:` table `assemble` prints (`  NAME  12.3 s`), without the
/// total.
fn parse_steps(stdout: &str) -> Vec<(String, f64)> {
    let Some((_, table)) = stdout.split_once("time per step:\n") else {
        return Vec::new();
    };
    table
        .lines()
        .map_while(|line| {
            let line = line.strip_prefix("  ")?.strip_suffix(" s")?;
            let (name, secs) = line.trim_end().rsplit_once(' ')?;
            Some((name.trim().to_owned(), secs.trim().parse().ok()?))
        })
        .filter(|(name, _)| name != "total")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_table_is_read_and_the_compression_steps_summed() {
        let stdout = "build abc done:\n  images/x  (1.0 MiB)\ntime per step:\n  \
                      fetch node artefacts           0.1 s\n  boot.tar.xz                   \
                      2.5 s\n  image.img.xz                 60.0 s\n  card image       \
                      3.4 s\n  total                         66.0 s\nwarning: w\n";
        let steps = parse_steps(stdout);
        assert_eq!(
            steps.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            [
                "fetch node artefacts",
                "boot.tar.xz",
                "image.img.xz",
                "card image"
            ]
        );
        let run = Run {
            wall: Duration::from_secs(78),
            steps,
        };
        assert!((run.compression() - 62.5).abs() < 1e-9);
        assert!(run
            .render()
            .contains("assemble is 1.25x its compression time"));
        assert!(parse_steps("no table here").is_empty());
    }
}
