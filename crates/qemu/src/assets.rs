//! Where the guest kernel, DTBs, modules and busybox live once `cargo xtask setup` fetched them.
//!
//! Layout under `target/k8r-kernel/` (written by xtask, read here and by the fixture tool):
//!
//! ```text
//! version            the kernel release, e.g. 6.1.0-28-arm64
//! vmlinuz            Debian's arm64 kernel (an uncompressed Image)
//! config             its build config
//! dtbs/<name>.dtb    device trees for the Pi 3 and Pi 4
//! modules/lib/modules/<version>/...   the modules below plus their dependencies, depmod'ed
//! busybox            Debian's static arm64 busybox
//! ```
//!
//! and beside it `target/k8r-debs/` ([`debs_dir`]): the arm64 `.deb` closure of the systemd
//! fixture's userland with its `closure.txt`.

use std::path::{Path, PathBuf};

/// Kernel modules the guests need (names as the kernel spells them; `-` and `_` mix):
/// virtio disks on `virt`, the Pi 3/4 SD controllers, ext4 (and the crc32c it soft-depends on),
/// vfat with its code pages, and the bcm2835 watchdog (QEMU's raspi3b only powers off or
/// reboots through it).
pub const GUEST_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_mmio",
    "virtio_blk",
    "crc32c_generic",
    "ext4",
    "vfat",
    "nls_cp437",
    "nls_iso8859-1",
    "nls_utf8",
    "nls_ascii",
    "bcm2835",
    "sdhci-iproc",
    "mmc_block",
    "bcm2835_wdt",
];

/// Modules the systemd fixture root (`base-arm64-systemd.img`) carries besides
/// [`GUEST_MODULES`], loaded there by udev or on demand (`modprobe`), never by the initrd: the
/// virtio NIC (`virtio_net`, with `net_failover` and `failover`), `overlay` (container image
/// layers), `br_netfilter` (with `bridge`, `stp`, `llc`: Kubernetes' bridged traffic through
/// iptables) and `autofs4` (systemd loads it at start for automount units).
pub const SYSTEMD_ROOT_MODULES: &[&str] = &["virtio_net", "overlay", "br_netfilter", "autofs4"];

/// Every module `cargo xtask setup` keeps (with their dependencies): [`GUEST_MODULES`] then
/// [`SYSTEMD_ROOT_MODULES`]. Setup re-extracts the kernel package when this list changes.
pub fn kept_modules() -> Vec<&'static str> {
    GUEST_MODULES
        .iter()
        .chain(SYSTEMD_ROOT_MODULES)
        .copied()
        .collect()
}

/// Device trees kept from the kernel package (Debian's names): Pi 3 B and Pi 4 B.
pub const GUEST_DTBS: &[&str] = &["bcm2837-rpi-3-b.dtb", "bcm2711-rpi-4-b.dtb"];

/// The kernel assets directory and what is in it.
#[derive(Debug, Clone)]
pub struct Assets {
    /// `target/k8r-kernel`.
    pub dir: PathBuf,
}

/// The assets are not there (setup has not run).
#[derive(Debug, thiserror::Error)]
#[error("{path} is missing: run `cargo xtask setup` (it fetches the guest kernel)")]
pub struct MissingAsset {
    /// What was looked for.
    pub path: PathBuf,
}

impl Assets {
    /// Assets under `target_dir/k8r-kernel`.
    pub fn in_target(target_dir: &Path) -> Self {
        Self {
            dir: target_dir.join("k8r-kernel"),
        }
    }

    /// Assets of this workspace: `$K8R_TARGET_DIR` or the workspace's `target/`.
    pub fn discover() -> Self {
        Self::in_target(&target_dir())
    }

    fn need(&self, rel: impl AsRef<Path>) -> Result<PathBuf, MissingAsset> {
        let path = self.dir.join(rel);
        if path.exists() {
            Ok(path)
        } else {
            Err(MissingAsset { path })
        }
    }

    /// The kernel release string.
    pub fn kernel_version(&self) -> Result<String, MissingAsset> {
        let path = self.need("version")?;
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_owned())
            .map_err(|_| MissingAsset { path })
    }

    /// The kernel image.
    pub fn vmlinuz(&self) -> Result<PathBuf, MissingAsset> {
        self.need("vmlinuz")
    }

    /// A device tree by Debian file name.
    pub fn dtb(&self, name: &str) -> Result<PathBuf, MissingAsset> {
        self.need(Path::new("dtbs").join(name))
    }

    /// `lib/modules/<version>` of the kept modules.
    pub fn modules_dir(&self) -> Result<PathBuf, MissingAsset> {
        let version = self.kernel_version()?;
        self.need(Path::new("modules/lib/modules").join(version))
    }

    /// Static arm64 busybox.
    pub fn busybox(&self) -> Result<PathBuf, MissingAsset> {
        self.need("busybox")
    }
}

/// The workspace's target directory: `$K8R_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("K8R_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    workspace_root().join("target")
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Where setup keeps the systemd fixture's arm64 packages: `target/k8r-debs`.
pub fn debs_dir() -> PathBuf {
    target_dir().join("k8r-debs")
}

/// Where fixture images live: `target/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    target_dir().join("fixtures")
}
