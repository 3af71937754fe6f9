//! `k8r-builder assemble`: vendor image + configuration → golden card and upgrade artefacts.
//!
//! Plan: read the base image (partitions, boot files through the firmware model, kernel
//! release) → fetch and verify the node pieces → customise a copy of the root with debugfs →
//! the working boot partition's files → `boot.tar.xz`, `image.img.xz`, used ranges and
//! `manifest.toml` → the recovery partition (firmware, kernel, recovery initramfs, store) →
//! the four-partition card → `SHA256SUMS`. Everything is built in a work directory beside the
//! outputs and moved into place only when all of it succeeded.

use std::path::{Path, PathBuf};

use k8r_boot_config::firmware::BootChoice;
use k8r_manifest::{Artifact as ManifestArtifact, Manifest, Range, RootImage};

use crate::artefacts::{self, Digests};
use crate::base::{self, BaseImage, Shape};
use crate::bootpart;
use crate::fetch::{Artifact, Fetched, Fetcher};
use crate::image::{card, ext4, fat, io_err, round_up, ImageError, MIB};
use crate::recovery;
use crate::rootfs::{apply, content};
use crate::timing::Timings;

/// Output file names (the seed's, plus the manifest and checksums).
pub const CARD: &str = "bootable_image.img";
/// The root partition artefact.
pub const ROOT_XZ: &str = "image.img.xz";
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
    /// The canonical variables.cfg baked into the image.
    pub variables_cfg: String,
    /// Login password hash for cloud-init, if given.
    pub password_hash: Option<String>,
    /// Requested working root size in bytes, if any.
    pub root_size: Option<u64>,
    /// containerd's major version.
    pub containerd_major: u32,
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
    /// A static busybox for the recovery menu's shell (optional).
    pub busybox: Option<PathBuf>,
    /// Downloads and cache.
    pub fetcher: Fetcher,
    /// xz preset for `image.img.xz` (0–9).
    pub xz_preset: u32,
    /// Seconds since the epoch for every timestamp (SOURCE_DATE_EPOCH).
    pub epoch: u64,
    /// Worker threads for compression and hashing.
    pub threads: usize,
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
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let work = out.join(".k8r-build");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(io_err(&work))?;
    let epoch = opts.epoch;

    // 1. Base image.
    let base_boot = work.join("base-boot");
    let (base, choice, shape, release, base_sha) = t.step("read base image", || {
        let base = BaseImage::open(&opts.inputs.base_image)?;
        base.extract_boot(&base_boot)?;
        let (choice, shape) = base::boot_choice(&base.path, &base_boot)?;
        let kernel =
            std::fs::read(base_boot.join(&choice.kernel)).map_err(io_err(&choice.kernel))?;
        let release = base::kernel_release(&kernel).map_err(|reason| base::BaseError::Kernel {
            path: base.path.clone(),
            kernel: choice.kernel.clone(),
            reason,
        })?;
        let base_sha = artefacts::sha256_file(&base.path)?;
        Ok::<_, AssembleError>((base, choice, shape, release, base_sha))
    })?;
    log::info!(
        "base: {} layout, kernel {} ({release}), boot partition {}, root partition {}",
        shape.name(),
        choice.kernel,
        base.boot.0,
        base.root.0
    );

    // 2. Node artefacts.
    let fetched = t.step("fetch node artefacts", || {
        opts.fetcher.fetch_all(&opts.inputs.artifacts)
    })?;
    let installer = std::fs::read(&opts.installer).map_err(|e| {
        other(format!(
            "cannot read the recovery installer {}: {e} (build it with `cargo build --release -p k8r-installer --target aarch64-unknown-linux-musl`, or pass --installer)",
            opts.installer.display()
        ))
    })?;
    let busybox = match &opts.busybox {
        Some(p) => Some(
            std::fs::read(p)
                .map_err(|e| other(format!("cannot read busybox {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let build_id = build_id(epoch, &opts.inputs, &base_sha, &fetched, &installer);
    log::info!("build id {build_id}");

    // 3. Root filesystem.
    let root = work.join("root.img");
    t.step("customise root filesystem", || {
        customise_root(opts, &base, &root, &fetched, &build_id, &release)
    })?;

    // 4. Working boot partition files.
    let boot_dir = work.join("boot");
    t.step("working boot partition", || {
        working_boot(
            &base_boot,
            &boot_dir,
            &choice,
            opts.inputs.password_hash.as_deref(),
        )
    })?;

    // 5. Free space of the root must be zero: the installer writes only the used ranges.
    let used = t.step("zero free space of the root", || {
        let mut file = std::fs::File::open(&root).map_err(io_err(&root))?;
        let used = crate::image::used_ranges::used_ranges(&mut file)
            .map_err(|e| other(format!("{}: {e}", root.display())))?;
        let zeroed = artefacts::zero_outside(&root, &used.extents, used.total_bytes)?;
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
    let boot_digests = t.step("boot.tar.xz", || {
        artefacts::boot_tar_xz(&boot_dir, &boot_txz, epoch, opts.xz_preset)
    })?;
    let root_xz = work.join(ROOT_XZ);
    let threads = u32::try_from(opts.threads).unwrap_or(1);
    let root_digests = t.step("image.img.xz", || {
        artefacts::compress_xz(&root, &root_xz, opts.xz_preset, threads, &|_| {})
    })?;

    // 7. Manifest.
    let manifest = t.step("range digests and manifest", || {
        make_manifest(
            opts,
            &build_id,
            &base,
            shape,
            &root,
            &used,
            &root_digests,
            &boot_digests,
        )
    })?;
    let manifest_path = work.join(k8r_manifest::MANIFEST_FILE);
    std::fs::write(&manifest_path, manifest.render()).map_err(io_err(&manifest_path))?;

    // 8. Recovery partition.
    let recovery_img = work.join("recovery.img");
    t.step("recovery partition", || {
        recovery_partition(
            &opts.inputs,
            &base_boot,
            &choice,
            &root,
            &release,
            &installer,
            busybox.as_deref(),
            &[&root_xz, &boot_txz, &manifest_path],
            &recovery_img,
            epoch,
            &mut notes,
        )
    })?;

    // 9. The card.
    let card_path = work.join(CARD);
    t.step("card image", || {
        card_image(
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
        for name in [CARD, ROOT_XZ, BOOT_TXZ, k8r_manifest::MANIFEST_FILE] {
            sums.push_str(&format!(
                "{}  {name}\n",
                artefacts::sha256_file(&work.join(name))?
            ));
        }
        std::fs::write(work.join(SUMS), sums).map_err(io_err(work.join(SUMS)))?;
        let mut outputs = Vec::new();
        for name in [CARD, ROOT_XZ, BOOT_TXZ, k8r_manifest::MANIFEST_FILE, SUMS] {
            let dest = out.join(name);
            std::fs::rename(work.join(name), &dest).map_err(io_err(&dest))?;
            outputs.push(dest);
        }
        Ok::<_, AssembleError>(outputs)
    })?;
    let _ = std::fs::remove_dir_all(&work);
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
    installer: &[u8],
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    h.update(inputs.variables_cfg.as_bytes());
    h.update(base_sha);
    for f in fetched {
        h.update(f.name.as_bytes());
        h.update(f.digest.to_string());
    }
    h.update(installer);
    let digest = artefacts::hex(&h.finalize());
    format!("{}-{}", utc_compact(epoch), &digest[..8])
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time (days-from-civil, proleptic Gregorian).
pub fn utc_compact(epoch: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(epoch);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// RFC 3339 UTC for a Unix time.
pub fn utc_rfc3339(epoch: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(epoch);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

fn civil(epoch: u64) -> (i64, u64, u64, u64, u64, u64) {
    let days = i64::try_from(epoch / 86_400).unwrap_or(0);
    let secs = epoch % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u64::try_from(m).unwrap_or(1),
        u64::try_from(d).unwrap_or(1),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
    )
}

fn customise_root(
    opts: &AssembleOptions,
    base: &BaseImage,
    root: &Path,
    fetched: &[Fetched],
    build_id: &str,
    release: &str,
) -> Result<(), AssembleError> {
    base.extract_root(root)?;
    let staging = root.with_extension("staging");
    std::fs::create_dir_all(&staging).map_err(io_err(&staging))?;
    let find = |name: &str| {
        fetched
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.path.clone())
            .ok_or_else(|| other(format!("internal: artefact {name} was not fetched")))
    };
    let bins = content::NodeBinaries {
        kubeadm: find("kubeadm")?,
        kubelet: find("kubelet")?,
        kubectl: find("kubectl")?,
        runc: find("runc")?,
        containerd_tgz: find("containerd")?,
        cni_plugins_tgz: find("cni-plugins")?,
        crictl_tgz: find("crictl")?,
        cni_manifest: (find("cni-manifest")?, opts.inputs.cni_manifest_name.clone()),
    };
    let texts = content::NodeTexts {
        variables_cfg: opts.inputs.variables_cfg.clone(),
        build_info: format!(
            "BUILD_ID={build_id}\nK8S_VERSION={}\nARCH={}\nBASE_KERNEL={release}\nBUILDER={}\n",
            opts.inputs.k8s_version,
            opts.inputs.arch,
            env!("CARGO_PKG_VERSION")
        ),
        containerd_major: opts.inputs.containerd_major,
    };
    let plan = content::stage(&staging, &bins, &texts)?;
    // Room for what we add, plus slack; grow before writing, never on the card.
    let adding: u64 = plan
        .ops
        .iter()
        .filter_map(|op| match op {
            crate::rootfs::plan::Op::File { source, .. } => {
                std::fs::metadata(source).ok().map(|m| m.len() + 4096)
            }
            _ => None,
        })
        .sum();
    let geo = ext4::geometry(root)?;
    let min = geo.bytes() - geo.free_bytes() + adding + adding / 4 + 64 * MIB;
    let target = match opts.inputs.root_size {
        Some(want) if want < min => {
            return Err(other(format!(
                "ROOT_SIZE {} MiB is too small: the root needs at least {} MiB",
                want / MIB,
                min.div_ceil(MIB)
            )))
        }
        Some(want) => round_up(want, MIB),
        None => round_up(geo.bytes().max(min), MIB),
    };
    if target != geo.bytes() {
        ext4::resize(root, target, opts.epoch)?;
    }
    apply::apply(root, &plan, opts.epoch)?;
    ext4::check(root)?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok(())
}

fn working_boot(
    base_boot: &Path,
    boot_dir: &Path,
    choice: &BootChoice,
    password_hash: Option<&str>,
) -> Result<(), AssembleError> {
    crate::image::copy_tree(base_boot, boot_dir)?;
    let edit = |rel: &str, f: &dyn Fn(&str) -> String| -> Result<(), AssembleError> {
        let path = boot_dir.join(rel);
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        std::fs::write(&path, f(&text)).map_err(io_err(&path))?;
        Ok(())
    };
    edit(&choice.cmdline_file, &bootpart::edit_cmdline)?;
    edit("config.txt", &bootpart::edit_config)?;
    if let Some(hash) = password_hash {
        let ud = boot_dir.join("user-data");
        std::fs::write(&ud, bootpart::user_data(hash)).map_err(io_err(&ud))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn make_manifest(
    opts: &AssembleOptions,
    build_id: &str,
    base: &BaseImage,
    shape: Shape,
    root: &Path,
    used: &crate::image::used_ranges::UsedMap,
    root_digests: &Digests,
    boot_digests: &Digests,
) -> Result<Manifest, AssembleError> {
    let pieces = k8r_manifest::split_ranges(&used.extents, k8r_manifest::MAX_RANGE);
    let digests = artefacts::hash_ranges(root, &pieces, opts.threads)?;
    let ranges = pieces
        .iter()
        .zip(digests)
        .map(|(&(offset, length), sha256)| Range {
            offset,
            length,
            sha256,
        })
        .collect();
    let manifest = Manifest {
        format: 1,
        build_id: build_id.to_owned(),
        arch: opts.inputs.arch.clone(),
        kubernetes_version: opts.inputs.k8s_version.clone(),
        created: utc_rfc3339(opts.epoch),
        base_image: base
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        base_shape: shape.name().to_owned(),
        root: RootImage {
            file: ROOT_XZ.to_owned(),
            compressed_size: root_digests.compressed_size,
            compressed_sha256: root_digests.compressed_sha256.clone(),
            size: root_digests.size,
            sha256: root_digests.sha256.clone(),
            block_size: used.block_size,
            ranges,
        },
        boot: ManifestArtifact {
            file: BOOT_TXZ.to_owned(),
            compressed_size: boot_digests.compressed_size,
            compressed_sha256: boot_digests.compressed_sha256.clone(),
            size: boot_digests.size,
            sha256: boot_digests.sha256.clone(),
        },
    };
    manifest
        .validate()
        .map_err(|e| other(format!("internal: the manifest does not validate: {e}")))?;
    Ok(manifest)
}

#[allow(clippy::too_many_arguments)]
fn recovery_partition(
    inputs: &BuildInputs,
    base_boot: &Path,
    choice: &BootChoice,
    root: &Path,
    release: &str,
    installer: &[u8],
    busybox: Option<&[u8]>,
    store: &[&Path],
    out: &Path,
    epoch: u64,
    notes: &mut Vec<String>,
) -> Result<(), AssembleError> {
    let tree = out.with_extension("tree");
    std::fs::create_dir_all(&tree).map_err(io_err(&tree))?;
    let put = |rel: &str, data: &[u8]| -> Result<(), AssembleError> {
        let p = tree.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        std::fs::write(&p, data).map_err(io_err(&p))?;
        Ok(())
    };
    // Firmware from the top of the base boot partition (it is never under os_prefix).
    for entry in std::fs::read_dir(base_boot).map_err(io_err(base_boot))? {
        let entry = entry.map_err(io_err(base_boot))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_file() && recovery::is_firmware_file(&name) {
            put(
                &name,
                &std::fs::read(entry.path()).map_err(io_err(entry.path()))?,
            )?;
        }
    }
    // Kernel and device trees from where the firmware found them.
    let os_dir = base_boot.join(&choice.os_prefix);
    put(
        "vmlinuz",
        &std::fs::read(base_boot.join(&choice.kernel)).map_err(io_err(&choice.kernel))?,
    )?;
    for entry in std::fs::read_dir(&os_dir).map_err(io_err(&os_dir))? {
        let entry = entry.map_err(io_err(&os_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_file() && recovery::is_dtb(&name) {
            put(
                &name,
                &std::fs::read(entry.path()).map_err(io_err(entry.path()))?,
            )?;
        }
    }
    // The recovery initramfs: installer + modules from the base root's own modules.dep.
    let modules = read_modules(root, release, &tree, notes)?;
    let epoch32 = u32::try_from(epoch).unwrap_or(u32::MAX);
    let initrd = recovery::initramfs(installer, busybox, &modules, epoch32)
        .map_err(|e| other(format!("recovery initramfs: {e}")))?;
    put(recovery::INITRAMFS, &initrd)?;
    put("config.txt", recovery::config_txt().as_bytes())?;
    put("cmdline.txt", recovery::CMDLINE.as_bytes())?;
    put("autoboot.txt", recovery::autoboot(1).as_bytes())?;
    let mut store_bytes = 0u64;
    for file in store {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let data = std::fs::read(file).map_err(io_err(file))?;
        store_bytes += data.len() as u64;
        put(&format!("{}/{name}", recovery::STORE), &data)?;
    }
    put("k8r/install.log", b"")?;
    put(recovery::NODE_CONFIG, inputs.variables_cfg.as_bytes())?;
    if let Some(hash) = &inputs.password_hash {
        put(
            recovery::NODE_USER_DATA,
            bootpart::user_data(hash).as_bytes(),
        )?;
    }
    let boot_bytes = dir_size(&tree)?.saturating_sub(store_bytes);
    let size = recovery::partition_size(boot_bytes, store_bytes);
    let img = fat::format(
        out,
        &fat::FatSpec {
            size,
            label: recovery::LABEL.to_owned(),
            volume_id: 0x6b38_7201,
        },
    )?;
    img.copy_tree(&tree, epoch)?;
    let _ = std::fs::remove_dir_all(&tree);
    Ok(())
}

/// Reads the recovery modules out of the root image (`/usr/lib/modules/<release>` or
/// `/lib/modules/<release>`) with one debugfs run.
fn read_modules(
    root: &Path,
    release: &str,
    scratch: &Path,
    notes: &mut Vec<String>,
) -> Result<Vec<(String, Vec<u8>)>, AssembleError> {
    let mut found = None;
    for dir in recovery::modules_dir_candidates(release) {
        if let Ok(dep) = ext4::read_file(root, &format!("{dir}/modules.dep")) {
            found = Some((dir, dep));
            break;
        }
    }
    let (dir, dep) = found.ok_or_else(|| {
        other(format!(
            "the base root has no modules.dep for kernel {release} (looked in /usr/lib/modules and /lib/modules)"
        ))
    })?;
    let builtin = ext4::read_file(root, &format!("{dir}/modules.builtin")).unwrap_or_default();
    let (closure, skipped) = recovery::module_closure(
        &String::from_utf8_lossy(&dep),
        &String::from_utf8_lossy(&builtin),
    )
    .map_err(|e| other(format!("base kernel {release}: {e}")))?;
    if !skipped.is_empty() {
        notes.push(format!(
            "recovery initramfs: the base kernel has no {}",
            skipped.join(", ")
        ));
    }
    let dump = scratch.join(".modules");
    std::fs::create_dir_all(&dump).map_err(io_err(&dump))?;
    let mut script = String::new();
    for (i, rel) in closure.iter().enumerate() {
        script.push_str(&format!(
            "dump \"{dir}/{rel}\" \"{}\"\n",
            dump.join(i.to_string()).display()
        ));
    }
    let (_, errors) = ext4::debugfs_query(root, &script)?;
    if !errors.is_empty() {
        return Err(other(format!(
            "reading modules from the base root: {}",
            errors.join(" | ")
        )));
    }
    let mut out = Vec::new();
    for (i, rel) in closure.iter().enumerate() {
        let p = dump.join(i.to_string());
        out.push((rel.clone(), std::fs::read(&p).map_err(io_err(&p))?));
    }
    let _ = std::fs::remove_dir_all(&dump);
    Ok(out)
}

fn card_image(
    base: &BaseImage,
    boot_dir: &Path,
    root: &Path,
    recovery_img: &Path,
    out: &Path,
    build_id: &str,
    epoch: u64,
) -> Result<(), AssembleError> {
    let work = out.with_extension("parts");
    std::fs::create_dir_all(&work).map_err(io_err(&work))?;
    let boot_img = work.join("boot.img");
    let boot_size = base.boot.1.byte_len().max(dir_size(boot_dir)? + 32 * MIB);
    let fat = fat::format(
        &boot_img,
        &fat::FatSpec {
            size: round_up(boot_size, MIB),
            label: "system-boot".into(),
            volume_id: 0x6b38_7202,
        },
    )?;
    fat.copy_tree(boot_dir, epoch)?;
    let data_img = work.join("data.img");
    let empty = work.join("empty");
    std::fs::create_dir_all(&empty).map_err(io_err(&empty))?;
    ext4::make_from_dir(
        &data_img,
        &ext4::Ext4Spec {
            size: DATA_SIZE,
            label: "k8r-data".into(),
            uuid: "6b38722d-6461-4000-8000-000000000004".into(),
            hash_seed: "6b38722d-6461-4000-8000-000000000005".into(),
            epoch,
        },
        &empty,
    )?;
    let disk_id = disk_id(build_id);
    let part = |type_id, content| card::PartitionSource {
        type_id,
        content,
        size: None,
    };
    card::assemble(
        out,
        disk_id,
        &[
            part(0x0c, recovery_img),
            part(0x0c, &boot_img),
            part(0x83, root),
            part(0x83, &data_img),
        ],
        None,
    )?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

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
    fn utc_formats() {
        assert_eq!(utc_compact(0), "19700101T000000Z");
        assert_eq!(utc_rfc3339(1_776_902_400), "2026-04-23T00:00:00Z");
        assert_eq!(utc_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn disk_id_is_stable_and_nonzero() {
        assert_eq!(disk_id("a"), disk_id("a"));
        assert_ne!(disk_id("a"), disk_id("b"));
        assert_ne!(disk_id("x"), 0);
    }
}
