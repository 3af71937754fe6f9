//! The `k8r-builder` command line: argument structs (their doc comments are the `--help`)
//! and one function per subcommand, which only turns arguments into calls of the library
//! (`config`, `assemble`, `inject`, `inspect`). `main` only parses and calls [`run`].

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::assemble::{self, AssembleOptions, BuildInputs};
use crate::config;
use crate::fetch::{self, Fetcher};

/// Build k8r golden SD card images for Raspberry Pi Kubernetes nodes, as an ordinary user.
#[derive(Debug, Parser)]
#[command(name = "k8r-builder", version)]
pub struct Cli {
    /// More output (-v: each command run).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build images/bootable_image.img (the whole card: recovery, boot, root, data partitions)
    /// and the upgrade artefacts images/image.img.xz, images/boot.tar.xz, images/manifest.toml
    /// and images/SHA256SUMS from a vendor image and variables.cfg.
    Assemble(AssembleArgs),
    /// Change the node configuration (variables.cfg, password_hash) of a built card in place,
    /// without a rebuild; e.g. set KUBEADM_JOIN_STRING for workers. IMAGE is not needed (the
    /// card keeps the one it was built from); no password_hash resets the login to the
    /// distribution default; a SHA256SUMS beside the card is updated.
    Inject(InjectArgs),
    /// Write a card image onto SD cards in this machine's card readers: only the data the
    /// image holds (free space and holes skipped), every written byte read back; optionally
    /// with each card's own node settings (`--device /dev/sdc=worker.cfg`).
    Flash(FlashArgs),
    /// Show what is on a card image: partitions, labels, sizes, next boot, stored manifest,
    /// node configuration, whether a login password is set. Exits 1 when the image is not a
    /// k8r card (after describing it).
    Inspect(InspectArgs),
    /// Make a minisign key pair for signing builds: DIR/k8r-signing.key (the secret key, mode
    /// 0600, no password: builds run unattended, so protect the file instead) and
    /// DIR/k8r-signing.pub (the public key, for TRUSTED_KEYS and for checking a build by hand
    /// with `minisign -Vm manifest.toml -p k8r-signing.pub`). Never overwrites a key. Then set
    /// SIGNING_KEY="DIR/k8r-signing.key" in variables.cfg: `assemble` signs manifest.toml and the
    /// card refuses builds not signed by a key it trusts.
    Keygen(KeygenArgs),
}

/// `keygen` options.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write k8r-signing.key and k8r-signing.pub (created if missing). Keep the
    /// secret key out of the output directory you publish and out of version control.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

/// `assemble` options.
#[derive(Debug, Args)]
pub struct AssembleArgs {
    /// The build configuration: variables.cfg (shell-style KEY="value") or a .toml file. A
    /// `password_hash` file beside it sets the login password.
    #[arg(long, default_value = "variables.cfg")]
    pub config: PathBuf,
    /// The vendor image (uncompressed .img); overrides IMAGE from the configuration.
    #[arg(long)]
    pub base_image: Option<PathBuf>,
    /// Output directory.
    #[arg(long, default_value = "images")]
    pub out: PathBuf,
    /// The static recovery installer (aarch64-musl k8r-installer). Default: $K8R_INSTALLER,
    /// then k8r-installer-aarch64 next to this program, then the aarch64 release build of the
    /// source tree this program was built in.
    #[arg(long, env = "K8R_INSTALLER")]
    pub installer: Option<PathBuf>,
    /// The static node agent `k8r` (aarch64-musl k8r-node). Default: $K8R_AGENT, then
    /// k8r-agent-aarch64 next to this program, then the aarch64 release build of the source
    /// tree this program was built in.
    #[arg(long, env = "K8R_AGENT")]
    pub agent: Option<PathBuf>,
    /// A static busybox to put in the recovery initramfs for the recovery menu's shell
    /// (e.g. Debian's busybox-static for arm64). Without it the menu has no shell.
    #[arg(long, env = "K8R_BUSYBOX")]
    pub busybox: Option<PathBuf>,
    /// Download cache (default: $XDG_CACHE_HOME/k8r/downloads or ~/.cache/k8r/downloads).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Use only the download cache; list what is missing instead of downloading.
    #[arg(long)]
    pub offline: bool,
    /// Refuse to build (before downloading anything) unless the lock file beside the
    /// configuration (variables.cfg → variables.lock) vouches for every download, with the
    /// same version and URL. Without it the lock file is created or updated.
    #[arg(long)]
    pub locked: bool,
    /// No longer needed, accepted and ignored: a download with no published digest (the CNI
    /// manifest) is recorded in the lock file on first use and checked on later builds.
    #[arg(long, hide = true)]
    pub trust_unpinned_manifest: bool,
    /// xz preset for image.img.xz: 0 (fast, larger) to 9; 6 is xz's default.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub xz_preset: u32,
    /// zstd level for image.img.zst when the configuration says COMPRESSION="zstd": 1 (fast,
    /// larger) to 19; decoding speed barely depends on it.
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub zstd_level: i32,
    /// Worker threads for compression and hashing (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Treat the configuration's warnings (an unknown key such as a misspelt K8S_VERSON, …)
    /// as errors: nothing is built.
    #[arg(long)]
    pub strict: bool,
    /// Sign manifest.toml with this minisign secret key (overrides SIGNING_KEY): writes
    /// manifest.toml.minisig beside it and into the card's image store. The secret key never
    /// goes onto the card.
    #[arg(long, value_name = "KEY")]
    pub signing_key: Option<PathBuf>,
    /// A minisign public key (.pub) the card trusts (overrides TRUSTED_KEYS); more than once
    /// for several (key rotation). Default: the signing key's own public key.
    #[arg(long = "trusted-key", value_name = "PUB")]
    pub trusted_keys: Vec<PathBuf>,
}

/// `inject` options.
#[derive(Debug, Args)]
pub struct InjectArgs {
    /// A card built by `assemble`.
    #[arg(long, default_value = "images/bootable_image.img")]
    pub image: PathBuf,
    /// The new configuration (and `password_hash` beside it, if present; without it the login
    /// is reset to the distribution default). IMAGE in it is not used.
    #[arg(long, default_value = "variables.cfg")]
    pub config: PathBuf,
    /// Replace the keys the card trusts with these minisign public keys (.pub; more than
    /// once for several; overrides TRUSTED_KEYS in the configuration). Refused unless the
    /// card's stored build is signed by one of them. Without it and without TRUSTED_KEYS the
    /// card keeps its keys.
    #[arg(long = "trusted-key", value_name = "PUB")]
    pub trusted_keys: Vec<PathBuf>,
}

/// `flash` options.
#[derive(Debug, Args)]
pub struct FlashArgs {
    /// The card image.
    #[arg(long, default_value = "images/bootable_image.img")]
    pub image: PathBuf,
    /// A card to write, `DEVICE` or `DEVICE=CONFIG` (e.g. /dev/sdb, or /dev/sdc=worker.cfg to
    /// give that card its own node settings, as `inject` does: a worker's
    /// KUBEADM_JOIN_STRING, NODE_NAME). More than once: the cards are written together. A
    /// device that is mounted, the disk this machine runs from, or one smaller than the image
    /// is refused before anything is written. A regular file works too (an image to copy).
    #[arg(long = "device", required = true, value_name = "DEVICE[=CONFIG]")]
    pub devices: Vec<String>,
    /// Threads for hashing (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `inspect` options.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The card image. Exit status: 0 for a k8r card, 1 for anything else (a vendor image,
    /// not a disk image, unreadable), with the reason on stderr.
    pub image: PathBuf,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Assemble(args) => run_assemble(&args),
        Command::Keygen(args) => {
            let made = crate::signing::keygen(&args.out)?;
            println!(
                "key ID {}:\n  {}  (secret: set SIGNING_KEY=\"{}\" in variables.cfg; keep it private)\n  {}  (public: what cards trust, and `minisign -Vm manifest.toml -p {}`)",
                made.id,
                made.secret.display(),
                made.secret.display(),
                made.public.display(),
                made.public.display()
            );
            Ok(())
        }
        Command::Inject(args) => {
            let report = crate::inject::inject_with(&args.image, &args.config, &args.trusted_keys)?;
            print!("{report}");
            Ok(())
        }
        Command::Flash(args) => run_flash(&args),
        Command::Inspect(args) => {
            let found = crate::inspect::inspect(&args.image)?;
            print!("{}", found.text);
            if !found.is_card {
                bail!(
                    "{}",
                    crate::inspect::not_a_card(&args.image, found.has_boot)
                );
            }
            Ok(())
        }
    }
}

/// A static program the card carries: given, `beside` the builder, or cargo's aarch64 release
/// build (`built`) in the target directory the builder runs from.
fn program_path(
    given: Option<&Path>,
    beside: &str,
    what: &str,
    flag: &str,
    package: &str,
    built: &str,
) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe().context("locating k8r-builder")?;
    // Beside this program (an install), or where cargo puts the aarch64 build of the same
    // source tree (`target/{debug,release}/k8r-builder` → `target/aarch64-…/release/`).
    let mut candidates = vec![exe.with_file_name(beside)];
    if let Some(target) = exe.parent().and_then(Path::parent) {
        candidates.push(target.join(format!("aarch64-unknown-linux-musl/release/{built}")));
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    bail!(
        "no {what} given: pass --{flag} PATH (or set K8R_{}), or build the card with \
         `cargo xtask build-image --config CONFIG` in the k8r source tree, which builds it \
         (alone: `cargo build --release -p {package} --target aarch64-unknown-linux-musl`)",
        flag.to_ascii_uppercase()
    )
}

fn run_flash(args: &FlashArgs) -> Result<()> {
    let targets: Vec<crate::flash::Target> = args
        .devices
        .iter()
        .map(|d| match d.split_once('=') {
            Some((dev, cfg)) => crate::flash::Target {
                path: dev.into(),
                config: Some(cfg.into()),
            },
            None => crate::flash::Target {
                path: d.into(),
                config: None,
            },
        })
        .collect();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let report = crate::flash::flash(&args.image, &targets, threads)?;
    println!(
        "flashed {} MiB of the {} MiB image ({} ranges; the rest is free space; {} MiB with \
         O_DIRECT) onto {} card(s), every written byte read back:",
        report.written >> 20,
        report.image_len >> 20,
        report.ranges,
        report.direct >> 20,
        report.targets.len()
    );
    for (path, settings) in &report.targets {
        println!("  {}", path.display());
        if let Some(text) = settings {
            for line in text.lines() {
                println!("    {line}");
            }
        }
    }
    Ok(())
}

fn run_assemble(args: &AssembleArgs) -> Result<()> {
    let cfg = config::load(&args.config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let warnings: Vec<String> = cfg.warnings().iter().map(ToString::to_string).collect();
    if args.strict && !warnings.is_empty() {
        bail!(
            "--strict, and the configuration has {} warning(s):\n  {}",
            warnings.len(),
            warnings.join("\n  ")
        );
    }
    for w in &warnings {
        log::warn!("{w}");
    }
    let mut inputs = BuildInputs::from_config(&cfg, args.base_image.as_deref())?;
    let signing = crate::signing::plan(&cfg, args.signing_key.as_deref(), &args.trusted_keys)?;
    if let Some(s) = &signing {
        inputs.trusted_keys = s.trusted.clone();
    }
    if !inputs.base_image.exists() {
        bail!(
            "base image {} does not exist (IMAGE in {}, or --base-image)",
            inputs.base_image.display(),
            args.config.display()
        );
    }
    let cache = match &args.cache_dir {
        Some(d) => d.clone(),
        None => fetch::default_cache_dir()?,
    };
    let fetcher = Fetcher::new(cache)
        .offline(args.offline)
        .lock_file(fetch::lock_path_for(&args.config), args.locked)
        .progress(true);
    fetcher.check_locked(&inputs.artifacts)?;
    if args.offline {
        fetcher.check_offline(&inputs.artifacts)?;
    }
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let opts = AssembleOptions {
        inputs,
        out_dir: args.out.clone(),
        installer: program_path(
            args.installer.as_deref(),
            "k8r-installer-aarch64",
            "recovery installer",
            "installer",
            "k8r-installer",
            "k8r-installer",
        )?,
        agent: program_path(
            args.agent.as_deref(),
            "k8r-agent-aarch64",
            "node agent",
            "agent",
            "k8r-node",
            "k8r",
        )?,
        busybox: args.busybox.clone(),
        fetcher,
        xz_preset: args.xz_preset,
        zstd_level: args.zstd_level,
        epoch,
        threads,
        signing_key: signing.map(|s| s.key),
    };
    let report = assemble::assemble(&opts)?;
    println!("build {} done:", report.build_id);
    for path in &report.outputs {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        println!("  {}  ({:.1} MiB)", path.display(), size as f64 / 1048576.0);
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    println!("time per step:\n{}", report.timings.table());
    // Said again at the end: the first time scrolled away above the build's progress.
    for w in &warnings {
        println!("warning: {w}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_level_defaults_to_19_and_stays_within_1_to_19() {
        let level = |extra: &[&str]| {
            let args = [&["k8r-builder", "assemble"][..], extra].concat();
            Cli::try_parse_from(args).map(|cli| match cli.command {
                Command::Assemble(a) => a.zstd_level,
                _ => 0,
            })
        };
        assert_eq!(level(&[]).expect("default"), 19);
        assert_eq!(level(&["--zstd-level", "3"]).expect("3"), 3);
        assert!(level(&["--zstd-level", "0"]).is_err());
        assert!(level(&["--zstd-level", "20"]).is_err());
    }
}
