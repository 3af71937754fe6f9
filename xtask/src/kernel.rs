//! Fetches Debian's arm64 kernel and static busybox for the QEMU guests, without touching the
//! host's dpkg: a private apt state under `target/k8r-kernel/apt` (the host's configured
//! sources, arm64 only). The kernel version is resolved through the `linux-image-arm64`
//! metapackage, because its ABI number changes with security updates.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use k8r_builder::process::run as run_cmd;
use k8r_qemu::assets::{Assets, GUEST_DTBS, GUEST_MODULES};

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
    wanted == GUEST_MODULES.join("\n")
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
    // depmod the full tree, keep only the closure of the modules the guests need, depmod again.
    run_cmd(Command::new("depmod").arg("-b").arg(extract).arg(version))?;
    let full = extract.join("lib/modules").join(version);
    let deps = std::fs::read_to_string(full.join("modules.dep")).context("modules.dep")?;
    let builtin = std::fs::read_to_string(full.join("modules.builtin")).unwrap_or_default();
    let closure = k8r_initramfs::ModuleDeps::parse(&deps)?
        .with_builtin(&builtin)
        .closure(GUEST_MODULES)?;
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
    std::fs::write(dir.join("modules.wanted"), GUEST_MODULES.join("\n"))
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

/// apt with its own lists and cache, arm64 only, the host's sources.
struct AptState {
    dir: PathBuf,
}

impl AptState {
    fn new(dir: &Path) -> Result<Self> {
        for sub in ["lists/partial", "cache/archives/partial", "debs"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn options(&self) -> Vec<String> {
        vec![
            "-o".into(),
            "APT::Architecture=arm64".into(),
            "-o".into(),
            "APT::Architectures::=arm64".into(),
            "-o".into(),
            format!("Dir::State::Lists={}", self.dir.join("lists").display()),
            "-o".into(),
            format!("Dir::Cache={}", self.dir.join("cache").display()),
            "-o".into(),
            "Dir::State::status=/dev/null".into(),
            "-o".into(),
            "Debug::NoLocking=1".into(),
            "-o".into(),
            "APT::Sandbox::User=root".into(),
        ]
    }

    fn update(&self) -> Result<()> {
        run_cmd(Command::new("apt-get").args(self.options()).arg("update"))?;
        Ok(())
    }

    /// The versioned kernel package the metapackage depends on.
    fn kernel_package(&self) -> Result<String> {
        let out = run_cmd(
            Command::new("apt-cache")
                .args(self.options())
                .args(["depends", "linux-image-arm64"]),
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        let pkg = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Depends: "))
            .map(|p| p.trim().trim_matches(|c| c == '<' || c == '>').to_owned());
        match pkg {
            Some(p) if p.starts_with("linux-image-") => Ok(p),
            _ => bail!("cannot resolve linux-image-arm64 to a kernel package from: {text}"),
        }
    }

    fn download(&self, packages: &[&str]) -> Result<Vec<PathBuf>> {
        let debs = self.dir.join("debs");
        for entry in std::fs::read_dir(&debs)? {
            std::fs::remove_file(entry?.path())?;
        }
        run_cmd(
            Command::new("apt-get")
                .current_dir(&debs)
                .args(self.options())
                .arg("download")
                .args(packages),
        )?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&debs)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "deb") {
                found.push(path);
            }
        }
        if found.len() != packages.len() {
            bail!(
                "expected {} packages in {}, found {}",
                packages.len(),
                debs.display(),
                found.len()
            );
        }
        found.sort();
        Ok(found)
    }
}
