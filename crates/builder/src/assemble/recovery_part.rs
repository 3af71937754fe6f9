//! The recovery partition (p1): firmware, the base kernel and device trees, the recovery
//! initramfs, `autoboot.txt`, the image store with this build, the node's own settings.

use std::path::{Path, PathBuf};

use k8r_boot_config::autoboot::Autoboot;
use k8r_boot_config::firmware::BootChoice;
use k8r_card::layout::RECOVERY_LABEL;
use k8r_card::recovery::{
    AUTOBOOT_FILE, INSTALL_LOG_FILE, K8R_DIR, NODE_DIR, NODE_USER_DATA, NODE_VARIABLES,
    RECOVERY_INITRAMFS,
};
use k8r_card::store::{Pointer, POINTER_FILE, STORE_DIR};
use k8r_card::trust::TRUSTED_KEYS_FILE;
use k8r_card::Part;

use super::{dir_size, other, AssembleError, BuildInputs};
use crate::bootpart;
use crate::image::{ext4, fat, io_err};
use crate::recovery;

/// What goes onto the recovery partition.
#[derive(Debug)]
pub(super) struct RecoveryParts<'a> {
    /// The resolved configuration (node settings, password).
    pub inputs: &'a BuildInputs,
    /// The base image's boot partition, copied out.
    pub base_boot: &'a Path,
    /// What the firmware model chose on it.
    pub choice: &'a BootChoice,
    /// The customised root (its kernel modules go into the recovery initramfs).
    pub root: &'a Path,
    /// The base kernel's release.
    pub release: &'a str,
    /// The static recovery installer.
    pub installer: &'a [u8],
    /// A static busybox for the menu's shell.
    pub busybox: Option<&'a [u8]>,
    /// This build's id: its directory in the image store.
    pub build_id: &'a str,
    /// The build's files for the store (`image.img.xz`, `boot.tar.xz`, `manifest.toml`,
    /// `manifest.toml.minisig` when signed).
    pub store_files: &'a [PathBuf],
    /// The card's trusted keys file (`k8r/trusted-keys`), when the build has keys.
    pub trust: Option<&'a str>,
    /// SOURCE_DATE_EPOCH.
    pub epoch: u64,
}

/// Builds the recovery partition image at `out`; notes (skipped optional modules) go into
/// `notes`.
pub(super) fn recovery_partition(
    p: &RecoveryParts<'_>,
    out: &Path,
    notes: &mut Vec<String>,
) -> Result<(), AssembleError> {
    let (base_boot, choice, epoch) = (p.base_boot, p.choice, p.epoch);
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
    let modules = read_modules(p.root, p.release, &tree, notes)?;
    let epoch32 = u32::try_from(epoch).unwrap_or(u32::MAX);
    let initrd = recovery::initramfs(p.installer, p.busybox, &modules, epoch32)
        .map_err(|e| other(format!("recovery initramfs: {e}")))?;
    put(RECOVERY_INITRAMFS, &initrd)?;
    put("config.txt", recovery::config_txt().as_bytes())?;
    put("cmdline.txt", recovery::CMDLINE.as_bytes())?;
    put(
        AUTOBOOT_FILE,
        Autoboot::render_normal(Part::Recovery.number(), true).as_bytes(),
    )?;
    let mut store_bytes = 0u64;
    for file in p.store_files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let data = std::fs::read(file).map_err(io_err(file))?;
        store_bytes += data.len() as u64;
        put(&format!("{STORE_DIR}/{}/{name}", p.build_id), &data)?;
    }
    let pointer = Pointer::to(p.build_id).map_err(|e| other(format!("internal: {e}")))?;
    put(
        &format!("{STORE_DIR}/{POINTER_FILE}"),
        pointer.render().as_bytes(),
    )?;
    put(&format!("{K8R_DIR}/{INSTALL_LOG_FILE}"), b"")?;
    if let Some(trust) = p.trust {
        put(&format!("{K8R_DIR}/{TRUSTED_KEYS_FILE}"), trust.as_bytes())?;
    }
    put(
        &format!("{NODE_DIR}/{NODE_VARIABLES}"),
        p.inputs.node_cfg.as_bytes(),
    )?;
    if let Some(hash) = &p.inputs.password_hash {
        put(
            &format!("{NODE_DIR}/{NODE_USER_DATA}"),
            bootpart::user_data(hash).as_bytes(),
        )?;
    }
    let boot_bytes = dir_size(&tree)?.saturating_sub(store_bytes);
    let size = recovery::partition_size(boot_bytes, store_bytes);
    let img = fat::format(
        out,
        &fat::FatSpec {
            size,
            label: RECOVERY_LABEL.to_owned(),
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
