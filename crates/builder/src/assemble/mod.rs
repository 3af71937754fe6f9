//! `k8r-builder assemble`: vendor image + configuration → golden card and upgrade artefacts.
//!
//! Plan: read the base image (partitions, boot files through the firmware model, kernel
//! release) → fetch and verify the node pieces → customise a copy of the root with debugfs →
//! the working boot partition's files → `boot.tar.xz`, `image.img.xz`, used ranges and
//! `manifest.toml` → the recovery partition (firmware, kernel, recovery initramfs, store) →
//! the four-partition card → `SHA256SUMS`. Everything is built in a work directory beside the
//! outputs and moved into place only when all of it succeeded.

mod card_image;
mod inputs;
mod manifest;
pub mod outdir;
mod recovery_part;
mod root;

use std::path::{Path, PathBuf};

use k8r_card::digest::{hex, sha256_file, sha256_file_with_progress};
use k8r_card::trust::CardTrust;
use k8r_manifest::signature::{TrustedKeys, SIGNATURE_FILE};
use k8r_manifest::{Compression, Manifest};

use crate::artefacts;
use crate::base::{self, BaseImage};
use crate::fetch::{Artifact, Fetched, Fetcher};
use crate::image::{io_err, ImageError, MIB};
use crate::progress::Progress;
use crate::timing::Timings;

/// Output file names (the seed's, plus the manifest and checksums).
pub const CARD: &str = "bootable_image.img";
/// The boot partition artefact.
pub const BOOT_TXZ: &str = "boot.tar.xz";
/// Human-readable checksums.
pub const SUMS: &str = "SHA256SUMS";

/// Size of the `k8r-data` partition in the image; the node agent grows it to the end of the
/// card on first boot.
pub const DATA_SIZE: u64 = 16 * MIB;

/// What the build is made of (resolved configuration).
#[derive(Debug, Clone)]
pub struct BuildInputs {
    /// The vendor image.
    pub base_image: PathBuf,
    /// Target architecture (`arm64`).
    pub arch: String,
    /// Kubernetes version `X.Y.Z`.
    pub k8s_version: String,
    /// The node artefacts to put in the root.
    pub artifacts: Vec<Artifact>,
    /// CNI manifest file name in the image (`calico.yaml` / `kube-flannel.yml`).
    pub cni_manifest_name: String,
    /// The configuration baked into the root image (`/usr/lib/k8r/variables.cfg`): the whole
    /// configuration without the node secrets.
    pub image_cfg: String,
    /// The node's own settings for the recovery partition (`k8r/node/variables.cfg`): the
    /// whole configuration.
    pub node_cfg: String,
    /// Login password hash for cloud-init, if given.
    pub password_hash: Option<String>,
    /// Requested working root size in bytes, if any.
    pub root_size: Option<u64>,
    /// containerd's major version.
    pub containerd_major: u32,
    /// `KERNEL_CMDLINE`: extra tokens for the working `cmdline.txt`.
    pub kernel_cmdline: Vec<String>,
    /// `COMPRESSION`: how the root image artefact is compressed.
    pub compression: Compression,
    /// The keys the card trusts (`TRUSTED_KEYS`, by default the signing key's): on p1 and in
    /// the root. Empty for an unsigned build.
    pub trusted_keys: TrustedKeys,
}

/// How to build.
#[derive(Debug)]
pub struct AssembleOptions {
    /// Resolved inputs.
    pub inputs: BuildInputs,
    /// Output directory (`images/`).
    pub out_dir: PathBuf,
    /// The recovery installer binary (static, for the target arch).
    pub installer: PathBuf,
    /// The node agent binary `k8r` (static, for the target arch).
    pub agent: PathBuf,
    /// A static busybox for the recovery menu's shell (optional).
    pub busybox: Option<PathBuf>,
    /// Downloads and cache.
    pub fetcher: Fetcher,
    /// xz preset for `image.img.xz` and `boot.tar.xz` (0–9).
    pub xz_preset: u32,
    /// zstd level for `image.img.zst` (1–19).
    pub zstd_level: i32,
    /// Seconds since the epoch for every timestamp (SOURCE_DATE_EPOCH).
    pub epoch: u64,
    /// Worker threads for compression and hashing.
    pub threads: usize,
    /// The secret key that signs the manifest (its public key must be among
    /// [`BuildInputs::trusted_keys`]); `None`: an unsigned build.
    pub signing_key: Option<crate::signing::SigningKey>,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Report {
    /// The build id.
    pub build_id: String,
    /// The manifest written.
    pub manifest: Manifest,
    /// Output paths.
    pub outputs: Vec<PathBuf>,
    /// Per-step times.
    pub timings: Timings,
    /// Non-fatal notes (skipped optional modules, ...).
    pub notes: Vec<String>,
}

/// Assemble failed.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// Image primitives.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The base image.
    #[error(transparent)]
    Base(#[from] base::BaseError),
    /// Downloads.
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    /// The output directory is busy, not writable or too small.
    #[error(transparent)]
    OutDir(#[from] outdir::OutDirError),
    /// Signing the manifest.
    #[error(transparent)]
    Signing(#[from] crate::signing::SigningError),
    /// Anything else, said plainly.
    #[error("{0}")]
    Other(String),
}

fn other(msg: impl Into<String>) -> AssembleError {
    AssembleError::Other(msg.into())
}

/// Runs the whole build.
pub fn assemble(opts: &AssembleOptions) -> Result<Report, AssembleError> {
    let mut t = Timings::default();
    let mut notes = Vec::new();
    let out = &opts.out_dir;
    let lock = outdir::OutDirLock::acquire(out)?;
    let epoch = opts.epoch;

    // 1. Base image (read only), node artefacts and programs: nothing is written to `out`
    // until they are all there and the space for the build is known to be free.
    let base = BaseImage::open(&opts.inputs.base_image)?;
    let fetched = t.step("fetch node artefacts", || {
        opts.fetcher.fetch_all(&opts.inputs.artifacts)
    })?;
    let installer = read_program(
        &opts.installer,
        "recovery installer",
        "k8r-installer",
        "installer",
    )?;
    let agent = read_program(&opts.agent, "node agent", "k8r-node", "agent")?;
    let busybox = match &opts.busybox {
        Some(p) => Some(
            std::fs::read(p)
                .map_err(|e| other(format!("cannot read busybox {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let added = fetched.iter().map(|f| f.size).sum::<u64>()
        + [&installer, &agent]
            .iter()
            .map(|p| p.len() as u64)
            .sum::<u64>()
        + busybox.as_ref().map_or(0, |b| b.len() as u64);
    outdir::check_space(out, outdir::space_needed(allocated(&base.path)?, added))?;
    let staging = outdir::Staging::create(out, &lock)?;
    let work = staging.path();

    let base_boot = work.join("base-boot");
    let (choice, shape, release, base_sha) = t.step("read base image", || {
        base.extract_boot(&base_boot)?;
        let (choice, shape) = base::boot_choice(&base.path, &base_boot)?;
        let kernel =
            std::fs::read(base_boot.join(&choice.kernel)).map_err(io_err(&choice.kernel))?;
        let release = base::kernel_release(&kernel).map_err(|reason| base::BaseError::Kernel {
            path: base.path.clone(),
            kernel: choice.kernel.clone(),
            reason,
        })?;
        let size = std::fs::metadata(&base.path)
            .map_err(io_err(&base.path))?
            .len();
        let progress = Progress::bytes("hash base image", size);
        let base_sha = sha256_file_with_progress(&base.path, &|n| progress.set(n))
            .map_err(io_err(&base.path))?;
        progress.finish();
        Ok::<_, AssembleError>((choice, shape, release, base_sha))
    })?;
    log::info!(
        "base: {} layout, kernel {} ({release}), boot partition {}, root partition {}",
        shape.name(),
        choice.kernel,
        base.boot.0,
        base.root.0
    );
    let build_id = build_id(
        epoch,
        &opts.inputs,
        &base_sha,
        &fetched,
        &[&installer, &agent],
    );
    log::info!("build id {build_id}");

    // 3. Root filesystem.
    let root = work.join("root.img");
    t.step("customise root filesystem", || {
        root::customise_root(opts, &base, &root, &fetched, &build_id, &release)
    })?;

    // 4. Working boot partition files.
    let boot_dir = work.join("boot");
    t.step("working boot partition", || {
        root::working_boot(&base_boot, &boot_dir, &choice, &opts.inputs.kernel_cmdline)
    })?;

    // 5. Free space of the root must be zero: the installer writes only the used ranges.
    let used = t.step("zero free space of the root", || {
        let mut file = std::fs::File::open(&root).map_err(io_err(&root))?;
        let used = crate::image::used_ranges::used_ranges(&mut file)
            .map_err(|e| other(format!("{}: {e}", root.display())))?;
        let progress = std::cell::OnceCell::new();
        let zeroed =
            artefacts::zero_outside(&root, &used.extents, used.total_bytes, &|n, free| {
                progress
                    .get_or_init(|| Progress::bytes("zero free space", free))
                    .set(n);
            })?;
        if let Some(p) = progress.get() {
            p.finish();
        }
        if zeroed > 0 {
            log::info!(
                "zeroed {} MiB of stale data in the root's free space",
                zeroed >> 20
            );
        }
        Ok::<_, AssembleError>(used)
    })?;

    // 6. Artefacts.
    let boot_txz = work.join(BOOT_TXZ);
    let threads = u32::try_from(opts.threads).unwrap_or(1);
    let boot_digests = t.step("boot.tar.xz", || {
        let progress = std::cell::OnceCell::new();
        let digests = artefacts::boot_tar_xz(
            &boot_dir,
            &boot_txz,
            epoch,
            opts.xz_preset,
            threads,
            &|n, total| {
                progress
                    .get_or_init(|| Progress::bytes(BOOT_TXZ, total))
                    .set(n)
            },
        )?;
        if let Some(p) = progress.get() {
            p.finish();
        }
        Ok::<_, AssembleError>(digests)
    })?;
    let compression = opts.inputs.compression;
    let root_name = compression.root_file();
    let root_xz = work.join(root_name);
    let root_digests = t.step(root_name, || {
        let size = std::fs::metadata(&root).map_err(io_err(&root))?.len();
        let progress = Progress::bytes(root_name, size);
        let set = |n| progress.set(n);
        let digests = match compression {
            Compression::Xz => {
                artefacts::compress_xz(&root, &root_xz, opts.xz_preset, threads, &set)?
            }
            Compression::Zstd => {
                artefacts::compress_zstd(&root, &root_xz, opts.zstd_level, threads, &set)?
            }
        };
        progress.finish();
        Ok::<_, AssembleError>(digests)
    })?;

    // 7. Manifest.
    let manifest = t.step("range digests and manifest", || {
        manifest::make_manifest(&manifest::ManifestParts {
            build_id: &build_id,
            arch: &opts.inputs.arch,
            k8s_version: &opts.inputs.k8s_version,
            epoch,
            base: &base,
            shape,
            root: &root,
            used: &used,
            compression,
            root_digests: &root_digests,
            boot_digests: &boot_digests,
            threads: opts.threads,
        })
    })?;
    let manifest_path = work.join(k8r_manifest::MANIFEST_FILE);
    let manifest_text = manifest.render();
    std::fs::write(&manifest_path, &manifest_text).map_err(io_err(&manifest_path))?;
    let mut store_files = vec![root_xz.clone(), boot_txz.clone(), manifest_path.clone()];
    let mut names = vec![CARD, root_name, BOOT_TXZ, k8r_manifest::MANIFEST_FILE];
    if let Some(key) = &opts.signing_key {
        let signature = key.sign_manifest(manifest_text.as_bytes(), &build_id, epoch)?;
        // The card must accept its own build: checked as the installer will.
        k8r_manifest::signature::verify(
            manifest_text.as_bytes(),
            Some(&signature),
            &opts.inputs.trusted_keys,
        )
        .map_err(|e| other(format!("internal: the build's own signature: {e}")))?;
        let sig_path = work.join(SIGNATURE_FILE);
        std::fs::write(&sig_path, signature).map_err(io_err(&sig_path))?;
        store_files.push(sig_path);
        names.push(SIGNATURE_FILE);
        log::info!(
            "manifest signed with key ID {}; the card trusts {}",
            key.public().id(),
            opts.inputs.trusted_keys.ids()
        );
    }
    let trust = (!opts.inputs.trusted_keys.is_empty()).then(|| {
        CardTrust {
            keys: opts.inputs.trusted_keys.clone(),
            since_build: Some(build_id.clone()),
        }
        .render()
    });

    // 8. Recovery partition.
    let recovery_img = work.join("recovery.img");
    t.step("recovery partition", || {
        let parts = recovery_part::RecoveryParts {
            inputs: &opts.inputs,
            base_boot: &base_boot,
            choice: &choice,
            root: &root,
            release: &release,
            installer: &installer,
            busybox: busybox.as_deref(),
            build_id: &build_id,
            store_files: &store_files,
            trust: trust.as_deref(),
            epoch,
        };
        recovery_part::recovery_partition(&parts, &recovery_img, &mut notes)
    })?;

    // 9. The card.
    let card_path = work.join(CARD);
    t.step("card image", || {
        root::card_boot(&boot_dir, opts.inputs.password_hash.as_deref())?;
        card_image::card_image(
            &base,
            &boot_dir,
            &root,
            &recovery_img,
            &card_path,
            &build_id,
            epoch,
        )
    })?;

    // 10. Checksums, then move everything into place.
    let outputs = t.step("SHA256SUMS and outputs", || {
        let mut sums = String::new();
        for name in &names {
            let path = work.join(name);
            let digest = sha256_file(&path).map_err(io_err(&path))?;
            sums.push_str(&format!("{digest}  {name}\n"));
        }
        std::fs::write(work.join(SUMS), sums).map_err(io_err(work.join(SUMS)))?;
        let remove = |name: &str| match std::fs::remove_file(out.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(out.join(name))(e)),
            _ => Ok(()),
        };
        // The old SHA256SUMS goes first and the new one comes last: a move cut short leaves
        // no checksums that could vouch for a mix of two builds.
        remove(SUMS)?;
        // A signature of an earlier build must not stay beside this one's manifest, nor its
        // root artefact of the other compression (a user uploads the directory).
        if opts.signing_key.is_none() {
            remove(SIGNATURE_FILE)?;
        }
        for stale in [Compression::Xz, Compression::Zstd].map(Compression::root_file) {
            if stale != root_name {
                remove(stale)?;
            }
        }
        let mut outputs = Vec::new();
        for name in names.iter().copied().chain([SUMS]) {
            let dest = out.join(name);
            std::fs::rename(work.join(name), &dest).map_err(io_err(&dest))?;
            outputs.push(dest);
        }
        Ok::<_, AssembleError>(outputs)
    })?;
    staging.keep();
    drop(lock);
    Ok(Report {
        build_id,
        manifest,
        outputs,
        timings: t,
        notes,
    })
}

/// `<UTC time of epoch>-<8 hex of a digest over every input>`: the same inputs give the same
/// id.
pub fn build_id(
    epoch: u64,
    inputs: &BuildInputs,
    base_sha: &str,
    fetched: &[Fetched],
    programs: &[&[u8]],
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    // What the artefacts hold: the node's own settings (a worker's join command) live on the
    // recovery partition only, so cards that differ only there share the build.
    h.update(inputs.image_cfg.as_bytes());
    h.update(inputs.password_hash.as_deref().unwrap_or_default());
    h.update(inputs.trusted_keys.render());
    h.update(base_sha);
    for f in fetched {
        h.update(f.name.as_bytes());
        h.update(f.digest.to_string());
    }
    for p in programs {
        h.update(p);
    }
    let digest = hex(&h.finalize());
    format!("{}-{}", utc_compact(epoch), &digest[..8])
}

pub use k8r_manifest::time::{utc_compact, utc_rfc3339};

/// The card's MBR disk id: from the build id, never 0.
pub fn disk_id(build_id: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(build_id.as_bytes());
    let id = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
    if id == 0 {
        0x6b38_7200
    } else {
        id
    }
}

/// Reads one of the static programs the card carries.
fn read_program(
    path: &Path,
    what: &str,
    package: &str,
    flag: &str,
) -> Result<Vec<u8>, AssembleError> {
    std::fs::read(path).map_err(|e| {
        other(format!(
            "cannot read the {what} {}: {e} (build it with `cargo build --release -p {package} \
             --target aarch64-unknown-linux-musl`, or pass --{flag})",
            path.display()
        ))
    })
}

/// Bytes a file really occupies on its filesystem (sparse files count their data only).
fn allocated(path: &Path) -> Result<u64, AssembleError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    Ok(meta.blocks().saturating_mul(512).min(meta.len()))
}

fn dir_size(dir: &Path) -> Result<u64, AssembleError> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let meta = entry.metadata().map_err(io_err(entry.path()))?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_id_is_stable_and_nonzero() {
        assert_eq!(disk_id("a"), disk_id("a"));
        assert_ne!(disk_id("a"), disk_id("b"));
        assert_ne!(disk_id("x"), 0);
    }
}
