//! The working system: the customised root filesystem and the working boot partition's files.

use std::path::Path;

use k8r_boot_config::firmware::BootChoice;

use super::{other, AssembleError, AssembleOptions};
use crate::base::BaseImage;
use crate::bootpart;
use crate::fetch::Fetched;
use crate::image::{ext4, io_err, round_up, MIB};
use crate::rootfs::{apply, content};

/// Copies the base root to `root`, grows it as needed and adds k8r's files in one debugfs run.
pub(super) fn customise_root(
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
        agent: opts.agent.clone(),
    };
    let texts = content::NodeTexts {
        variables_cfg: opts.inputs.image_cfg.clone(),
        build_info: build_info(opts, build_id, release),
        containerd_major: opts.inputs.containerd_major,
        trusted_keys: (!opts.inputs.trusted_keys.is_empty())
            .then(|| opts.inputs.trusted_keys.render()),
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

/// The working boot partition's files as `boot.tar.xz` carries them: the base's, with k8r's
/// cmdline and config edits. The login password is not among them ([`card_boot`]).
pub(super) fn working_boot(
    base_boot: &Path,
    boot_dir: &Path,
    choice: &BootChoice,
    kernel_cmdline: &[String],
) -> Result<(), AssembleError> {
    crate::image::copy_tree(base_boot, boot_dir)?;
    let edit = |rel: &str, f: &dyn Fn(&str) -> String| -> Result<(), AssembleError> {
        let path = boot_dir.join(rel);
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        std::fs::write(&path, f(&text)).map_err(io_err(&path))?;
        Ok(())
    };
    edit(&choice.cmdline_file, &|text| {
        bootpart::edit_cmdline(text, kernel_cmdline)
    })?;
    edit("config.txt", &bootpart::edit_config)?;
    Ok(())
}

/// The card's own boot partition: the working boot files plus the login password's cloud-init
/// `user-data`. The password's hash stays on the card (here and in the node's settings on the
/// recovery partition, which the installer copies onto every boot partition it writes), never
/// in `boot.tar.xz`, which users upload to `HTTP_IMAGE_URL`.
pub(super) fn card_boot(boot_dir: &Path, password_hash: Option<&str>) -> Result<(), AssembleError> {
    if let Some(hash) = password_hash {
        let ud = boot_dir.join("user-data");
        std::fs::write(&ud, bootpart::user_data(hash)).map_err(io_err(&ud))?;
    }
    Ok(())
}

/// `/usr/lib/k8r/build-info`: the build's facts the node agent reads.
fn build_info(opts: &AssembleOptions, build_id: &str, release: &str) -> String {
    use k8r_card::image_root::build_info as key;
    let i = &opts.inputs;
    [
        (key::BUILD_ID, build_id.to_owned()),
        (key::K8S_VERSION, i.k8s_version.clone()),
        (key::ARCH, i.arch.clone()),
        (key::BUILD_EPOCH, opts.epoch.to_string()),
        (key::CNI_MANIFEST, i.cni_manifest_name.clone()),
        (key::BASE_KERNEL, release.to_owned()),
        (key::BUILDER, env!("CARGO_PKG_VERSION").to_owned()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={v}\n"))
    .collect()
}
