//! The recovery partition's content (p1, `K8R-RECOVER`; the card's layout is `k8r-card`'s):
//! Pi firmware and the base image's kernel, the k8r recovery initramfs (installer as `/init`
//! plus the kernel modules it needs), its own `config.txt`/`cmdline.txt`, `autoboot.txt`.

use std::collections::BTreeSet;

use k8r_boot_config::autoboot::Autoboot;
use k8r_card::recovery::RECOVERY_INITRAMFS;
use k8r_initramfs::{Archive, ModuleDeps};

/// Modules the recovery system cannot work without (names as in `modules.dep`; `-`/`_` mix).
pub const REQUIRED_MODULES: &[&str] = &["ext4", "vfat", "nls_cp437", "nls_iso8859-1"];

/// Modules loaded when the kernel has them: SD controllers of the Pi 3/4/5, the watchdog,
/// virtio (QEMU), crc32c for ext4 metadata checksums, UTF-8 names.
pub const OPTIONAL_MODULES: &[&str] = &[
    "mmc_block",
    "sdhci-iproc",
    "bcm2835",
    "sdhci-brcmstb",
    "bcm2835_wdt",
    "crc32c_generic",
    "nls_utf8",
    "nls_ascii",
    "virtio_pci",
    "virtio_mmio",
    "virtio_blk",
];

/// The recovery `config.txt`: boots our kernel copy with the recovery initramfs, serial on.
pub fn config_txt() -> String {
    format!(
        "# k8r recovery partition (written by k8r-builder): boots the k8r installer.\n\
         [all]\n\
         arm_64bit=1\n\
         kernel=vmlinuz\n\
         initramfs {RECOVERY_INITRAMFS} followkernel\n\
         cmdline=cmdline.txt\n\
         enable_uart=1\n"
    )
}

/// The recovery `cmdline.txt`: serial console last (it becomes `/dev/console`), reboot 10 s
/// after a panic (into recovery again, since autoboot still points here).
pub const CMDLINE: &str = "console=tty1 console=serial0,115200 panic=10 k8r.recovery=1\n";

/// `autoboot.txt` on p1. `tryboot_a_b=1` stays in `[all]` so Ubuntu 26.04's own tryboot kernel
/// updates on p2 keep working; k8r's switch is the persistent `boot_partition`.
pub fn autoboot(boot_partition: u8) -> String {
    Autoboot::render_normal(boot_partition, true)
}

/// Which modules of the base kernel go into the initramfs: required ones must exist (or be
/// built in), optional ones are taken when present. Returns relative `.ko` paths in load
/// order, and the names skipped.
pub fn module_closure(
    modules_dep: &str,
    modules_builtin: &str,
) -> Result<(Vec<String>, Vec<String>), String> {
    let deps = ModuleDeps::parse(modules_dep)
        .map_err(|e| format!("modules.dep: {e}"))?
        .with_builtin(modules_builtin);
    let mut wanted: Vec<&str> = Vec::new();
    let mut skipped = Vec::new();
    for name in REQUIRED_MODULES {
        if !deps.contains(name) && !deps.is_builtin(name) {
            return Err(format!(
                "the base kernel has no module {name} (neither in modules.dep nor built in)"
            ));
        }
        wanted.push(name);
    }
    for name in OPTIONAL_MODULES {
        if deps.contains(name) || deps.is_builtin(name) {
            wanted.push(name);
        } else {
            skipped.push((*name).to_owned());
        }
    }
    let closure = deps.closure(&wanted).map_err(|e| e.to_string())?;
    Ok((closure, skipped))
}

/// Builds the recovery initramfs (gzip'ed newc): `/init` = the installer, the modules with
/// `/lib/modules/load-order`, `/dev/console`.
pub fn initramfs(
    installer: &[u8],
    busybox: Option<&[u8]>,
    modules: &[(String, Vec<u8>)],
    epoch: u32,
) -> Result<Vec<u8>, k8r_initramfs::ArchiveError> {
    let mut a = Archive::new().with_mtime(epoch);
    if let Some(bb) = busybox {
        // The recovery menu's shell: a static busybox (Debian's busybox-static) with the
        // applets an operator needs to look around.
        a.add_file("bin/busybox", 0o755, bb.to_vec())?;
        for applet in SHELL_APPLETS {
            a.add_symlink(&format!("bin/{applet}"), "busybox")?;
        }
    }
    for dir in ["dev", "proc", "sys", "tmp", "mnt"] {
        a.add_dir(dir, 0o755)?;
    }
    a.add_char_device("dev/console", 0o600, 5, 1)?;
    a.add_file("init", 0o755, installer.to_vec())?;
    let mut order = String::new();
    let mut seen = BTreeSet::new();
    for (rel, data) in modules {
        if seen.insert(rel.clone()) {
            a.add_file(&format!("lib/modules/{rel}"), 0o644, data.clone())?;
            order.push_str(rel);
            order.push('\n');
        }
    }
    a.add_file("lib/modules/load-order", 0o644, order)?;
    Ok(a.to_newc_gzip())
}

/// Applets linked in the recovery shell.
pub const SHELL_APPLETS: &[&str] = &[
    "sh",
    "ls",
    "cat",
    "less",
    "dmesg",
    "mount",
    "umount",
    "df",
    "du",
    "dd",
    "hexdump",
    "sync",
    "reboot",
    "poweroff",
    "blkid",
    "fdisk",
    "fsck.vfat",
    "grep",
    "tail",
    "head",
    "vi",
    "ps",
];

/// Firmware files copied from the base boot partition's top level: the bootloader stages,
/// GPU firmware and their fixups (pi-boot.md §1).
pub fn is_firmware_file(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "bootcode.bin"
        || (n.starts_with("start") && n.ends_with(".elf"))
        || (n.starts_with("fixup") && n.ends_with(".dat"))
}

/// Device trees: `*.dtb` in the effective boot directory.
pub fn is_dtb(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".dtb")
}

/// Size for p1: its content plus room for two more builds of the same size (the image store
/// keeps the previous build for a rollback while a new one is staged: `k8r-card`'s store),
/// and slack; at least 256 MiB, rounded up to 1 MiB.
pub fn partition_size(boot_files: u64, artefacts: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let want = boot_files + 3 * artefacts + artefacts / 4 + 32 * MIB;
    want.max(256 * MIB).div_ceil(MIB) * MIB
}

/// Where a base root keeps the modules of kernel `release` (Ubuntu: `/usr/lib/modules`, with
/// `/lib` a link to `usr/lib`), in the order to look.
pub fn modules_dir_candidates(release: &str) -> [String; 2] {
    [
        format!("/usr/lib/modules/{release}"),
        format!("/lib/modules/{release}"),
    ]
}

/// The node's cloud-init `user-data` (`k8r/node/user-data` on p1, copied onto p2 by the
/// installer) when no `password_hash` is given after one was: the distribution's default login
/// again (Ubuntu: user `ubuntu`, password `ubuntu`, to be changed at the first login). Written
/// rather than deleted, because the installer keeps p2's `user-data` from `boot.tar.xz` when p1
/// has none, and a build with a password has it there.
pub fn default_login_user_data() -> String {
    "#cloud-config\n\
     # Written by k8r-builder: no password_hash, so the distribution's default login.\n\
     chpasswd:\n  expire: true\n  users:\n    - name: ubuntu\n      password: ubuntu\n      type: text\n\
     ssh_pwauth: true\n"
        .to_owned()
}

/// What the user says about the login on first boot.
pub const DEFAULT_LOGIN: &str =
    "the distribution default (Ubuntu: user ubuntu, password ubuntu, to be changed at the first login)";

/// Whether a cloud-init `user-data` sets a login password of its own (not Ubuntu's default
/// `ubuntu`): a `password:`/`passwd:`/`hashed_passwd:`/`plain_text_passwd:` with another value.
pub fn sets_password(user_data: &str) -> bool {
    user_data.lines().any(|line| {
        let line = line.trim().trim_start_matches("- ").trim_start();
        let Some((key, value)) = line.split_once(':') else {
            return false;
        };
        let value = value.trim().trim_matches(['"', '\'']);
        matches!(
            key.trim(),
            "password" | "passwd" | "hashed_passwd" | "plain_text_passwd"
        ) && !value.is_empty()
            && value != "ubuntu"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_login_sets_no_password_and_a_hash_does() {
        assert!(!sets_password(&default_login_user_data()));
        assert!(sets_password(&crate::bootpart::user_data("$6$salt$hash")));
        assert!(!sets_password("#cloud-config\nssh_pwauth: true\n"));
        assert!(sets_password(
            "#cloud-config\nusers:\n  - name: me\n    passwd: '$6$x$y'\n"
        ));
    }

    const DEP: &str = "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\n\
kernel/lib/crc16.ko:\nkernel/fs/jbd2/jbd2.ko:\nkernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko\n\
kernel/fs/fat/fat.ko:\nkernel/fs/nls/nls_cp437.ko:\nkernel/fs/nls/nls_iso8859-1.ko:\n\
kernel/drivers/mmc/host/sdhci-iproc.ko: kernel/drivers/mmc/host/sdhci.ko\nkernel/drivers/mmc/host/sdhci.ko:\n";

    #[test]
    fn closure_takes_required_and_present_optional() {
        let (closure, skipped) =
            module_closure(DEP, "kernel/drivers/mmc/core/mmc_block.ko\n").expect("closure");
        assert!(closure.iter().any(|p| p.ends_with("ext4.ko")));
        let jbd2 = closure
            .iter()
            .position(|p| p.ends_with("jbd2.ko"))
            .expect("jbd2");
        let ext4 = closure
            .iter()
            .position(|p| p.ends_with("ext4.ko"))
            .expect("ext4");
        assert!(jbd2 < ext4, "dependencies first: {closure:?}");
        assert!(closure.iter().any(|p| p.ends_with("sdhci-iproc.ko")));
        assert!(skipped.contains(&"bcm2835_wdt".to_owned()));
        assert!(
            !skipped.contains(&"mmc_block".to_owned()),
            "built in counts as present"
        );
    }

    #[test]
    fn missing_required_module_is_named() {
        let err = module_closure("kernel/fs/ext4/ext4.ko:\n", "").expect_err("no vfat");
        assert!(err.contains("vfat"), "{err}");
    }

    #[test]
    fn autoboot_points_at_the_partition_and_keeps_tryboot_a_b() {
        let text = autoboot(1);
        let parsed = Autoboot::parse(text.as_bytes()).expect("parse");
        assert_eq!(parsed.boot_partition(false), Some(1));
        assert!(parsed.tryboot_a_b(false));
        assert!(text.len() < 512);
    }

    #[test]
    fn firmware_names() {
        for n in [
            "bootcode.bin",
            "start4.elf",
            "start_cd.elf",
            "fixup4x.dat",
            "FIXUP.DAT",
        ] {
            assert!(is_firmware_file(n), "{n}");
        }
        for n in ["config.txt", "vmlinuz", "start.txt"] {
            assert!(!is_firmware_file(n), "{n}");
        }
    }

    #[test]
    fn size_leaves_room_for_a_staged_update_beside_a_previous_build() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(partition_size(10 * MIB, 10 * MIB), 256 * MIB);
        let big = partition_size(100 * MIB, 800 * MIB);
        assert!(big >= 100 * MIB + 3 * 800 * MIB, "{big}");
        assert_eq!(big % MIB, 0);
    }
}
