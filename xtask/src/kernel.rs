//! Fetches Debian's arm64 kernel and static busybox for the QEMU guests, without touching the
//! host's dpkg: a private apt state under `target/k8r-kernel/apt` (the host's configured
//! sources, arm64 only). The kernel version is resolved through the `linux-image-arm64`
//! metapackage, because its ABI number changes with security updates.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use k8r_builder::process::run as run_cmd;
use k8r_qemu::assets::{kept_modules, Assets, GUEST_DTBS};

use crate::apt::AptState;

/// Fetches the kernel assets unless they are already complete.
pub fn fetch() -> Result<()> {
    let assets = Assets::discover();
    if complete(&assets) {
        log::info!(
            "setup: guest kernel {}: present in {}",
            assets.kernel_version().unwrap_or_default(),
            assets.dir.display()
        );
        return Ok(());
    }
    let apt = AptState::new(&assets.dir.join("apt"))?;
    log::info!(
        "setup: apt-get update (private arm64 state in {})",
        apt.dir.display()
    );
    apt.update()?;
    let kpkg = apt.kernel_package()?;
    let version = kpkg
        .strip_prefix("linux-image-")
        .context("unexpected kernel package name")?
        .to_owned();
    log::info!("setup: downloading {kpkg} and busybox-static (arm64)");
    let debs = apt.download(&[&kpkg, "busybox-static"])?;
    let extract = assets.dir.join("extract");
    let _ = std::fs::remove_dir_all(&extract);
    for deb in &debs {
        run_cmd(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&extract))?;
    }
    install(&assets, &extract, &version)?;
    std::fs::remove_dir_all(&extract).with_context(|| format!("removing {}", extract.display()))?;
    log::info!(
        "setup: guest kernel {version} ready in {}",
        assets.dir.display()
    );
    Ok(())
}

fn complete(assets: &Assets) -> bool {
    let wanted = std::fs::read_to_string(assets.dir.join("modules.wanted")).unwrap_or_default();
    wanted == kept_modules().join("\n")
        && assets.vmlinuz().is_ok()
        && assets.busybox().is_ok()
        && assets.modules_dir().is_ok()
        && GUEST_DTBS.iter().all(|d| assets.dtb(d).is_ok())
}

/// Copies what the guests need out of the extracted packages; writes `version` last.
fn install(assets: &Assets, extract: &Path, version: &str) -> Result<()> {
    let dir = &assets.dir;
    let _ = std::fs::remove_file(dir.join("version"));
    copy(
        &extract.join(format!("boot/vmlinuz-{version}")),
        &dir.join("vmlinuz"),
    )?;
    copy(
        &extract.join(format!("boot/config-{version}")),
        &dir.join("config"),
    )?;
    copy(&extract.join("bin/busybox"), &dir.join("busybox"))?;
    let dtb_src = extract.join(format!("usr/lib/linux-image-{version}/broadcom"));
    for dtb in GUEST_DTBS {
        copy(&dtb_src.join(dtb), &dir.join("dtbs").join(dtb))?;
    }
    // depmod the full tree, keep only the closure of the modules the guests need (the initrd's
    // and the systemd root's), depmod again.
    run_cmd(Command::new("depmod").arg("-b").arg(extract).arg(version))?;
    let full = extract.join("lib/modules").join(version);
    let deps = std::fs::read_to_string(full.join("modules.dep")).context("modules.dep")?;
    let builtin = std::fs::read_to_string(full.join("modules.builtin")).unwrap_or_default();
    let closure = k8r_initramfs::ModuleDeps::parse(&deps)?
        .with_builtin(&builtin)
        .closure(&kept_modules())?;
    let kept_root = dir.join("modules");
    let _ = std::fs::remove_dir_all(&kept_root);
    let kept = kept_root.join("lib/modules").join(version);
    for rel in &closure {
        copy(&full.join(rel), &kept.join(rel))?;
    }
    for meta in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        if full.join(meta).exists() {
            copy(&full.join(meta), &kept.join(meta))?;
        }
    }
    run_cmd(
        Command::new("depmod")
            .arg("-b")
            .arg(&kept_root)
            .arg(version),
    )?;
    std::fs::write(dir.join("modules.wanted"), kept_modules().join("\n"))
        .context("writing modules.wanted")?;
    std::fs::write(dir.join("version"), format!("{version}\n")).context("writing version")?;
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}
