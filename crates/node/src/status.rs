//! `k8r status`: what this node is and what its card holds, in one screen.

use std::fmt::Write as _;

use k8r_card::data::DATA_MOUNT;
use k8r_card::store::StoreError;
use k8r_manifest::time::utc_rfc3339;

use crate::build_info::BuildInfo;
use crate::card::P1;
use crate::data::Data;
use crate::host::Host;
use crate::kube::{Kube, APISERVER_MANIFEST, KUBELET_CONF};
use crate::settings::Settings;

/// The first Pi 4 bootloader release with `[tryboot]` sections and `tryboot_a_b` in
/// `autoboot.txt` (2022-11-25; pi-boot.md §4).
pub const AUTOBOOT_BOOTLOADER: u64 = 1_669_334_400;

/// The bootloader's build time from the device tree (`chosen/bootloader/build-timestamp`,
/// a big-endian 32-bit Unix time), when the firmware put it there.
pub fn bootloader_time(host: &Host) -> Option<u64> {
    let b = std::fs::read(host.path("/proc/device-tree/chosen/bootloader/build-timestamp")).ok()?;
    let bytes: [u8; 4] = b.get(..4)?.try_into().ok()?;
    Some(u64::from(u32::from_be_bytes(bytes)))
}

/// The warning for a bootloader too old for k8r's `autoboot.txt`. Pure.
pub fn bootloader_warning(time: Option<u64>) -> Option<String> {
    let t = time?;
    (t < AUTOBOOT_BOOTLOADER).then(|| {
        format!(
            "warning: the bootloader is from {}: before 2022-11-25 it ignores parts of autoboot.txt \
             k8r relies on; update it (sudo rpi-eeprom-update -a, or Raspberry Pi Imager's bootloader image)",
            utc_rfc3339(t)
        )
    })
}

/// The report.
pub fn report(host: &Host, p1: Option<&P1>, s: Option<&Settings>, node_name: &str) -> String {
    let mut out = String::new();
    let data = Data::on(host);
    let state = data.state();
    let role = s.map(crate::bootstrap::role_name).unwrap_or("unknown");
    let _ = writeln!(out, "node:        {node_name} ({role})");
    match BuildInfo::load(host) {
        Ok(b) => {
            let _ = writeln!(
                out,
                "image:       build {}, Kubernetes {} (built {})",
                b.build_id,
                b.k8s_version,
                utc_rfc3339(b.build_epoch)
            );
        }
        Err(e) => {
            let _ = writeln!(out, "image:       {e}");
        }
    }
    let kube = Kube::new(host);
    if host.path(APISERVER_MANIFEST).exists() {
        match kube.control_plane_version() {
            Ok(v) => {
                let _ = writeln!(out, "cluster:     control plane, Kubernetes {v}");
            }
            Err(e) => {
                let _ = writeln!(out, "cluster:     control plane ({e})");
            }
        }
    } else if host.path(KUBELET_CONF).exists() {
        let _ = writeln!(out, "cluster:     joined");
    } else {
        let _ = writeln!(out, "cluster:     not joined yet");
    }
    if let Some(p1) = p1 {
        let store = p1.recovery().store();
        match store.pointer() {
            Ok(p) => {
                let _ = writeln!(out, "image store: current {}", p.current);
                let _ = writeln!(
                    out,
                    "             previous {}",
                    p.previous
                        .as_deref()
                        .unwrap_or("none (no rollback possible)")
                );
                let others: Vec<String> = store
                    .build_dirs()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|n| !p.names().any(|x| x == n))
                    .collect();
                if !others.is_empty() {
                    let _ = writeln!(
                        out,
                        "             incomplete staging: {}",
                        others.join(", ")
                    );
                }
                if let Ok(b) = store.current() {
                    let _ = writeln!(
                        out,
                        "signature:   {}",
                        match p1.recovery().check_signature(&b) {
                            Ok((verdict, trust)) => verdict.describe(&trust.keys),
                            Err(e) => format!("REFUSED: {e}"),
                        }
                    );
                    let _ = writeln!(
                        out,
                        "             current holds Kubernetes {}{}",
                        b.manifest.kubernetes_version,
                        if Some(&b.manifest.build_id) != state.last_build.as_ref() {
                            " (staged: `k8r reinstall` installs it)"
                        } else {
                            " (installed)"
                        }
                    );
                }
            }
            Err(StoreError::NoPointer { .. }) => {
                let _ = writeln!(out, "image store: empty");
            }
            Err(e) => {
                let _ = writeln!(out, "image store: {e}");
            }
        }
        let next = p1.recovery().next_boot();
        let _ = writeln!(
            out,
            "next boot:   partition {next}{}",
            if next == 1 {
                " (recovery: reinstalls)"
            } else {
                " (this system)"
            }
        );
        let _ = writeln!(
            out,
            "trial:       {}",
            crate::trial::status_line(p1.recovery().trial().0.as_ref())
        );
        let (install, _) = p1.recovery().install_state();
        let _ = writeln!(
            out,
            "last install: {}{}",
            install.last,
            install
                .build_id
                .map(|b| format!(", build {b}"))
                .unwrap_or_default()
        );
        let log = p1.recovery().install_log();
        if let Some(rollback) = k8r_card::trial::last_rollback(&log) {
            let _ = writeln!(out, "last rollback: {rollback}");
        }
        if let Some(line) = log.lines().last() {
            let _ = writeln!(out, "install log: {}", line.trim());
        }
    }
    match rustix::fs::statvfs(host.path(DATA_MOUNT)) {
        Ok(st) if crate::data::is_mounted(host, &host.path(DATA_MOUNT)) || !host.is_system() => {
            let size = st.f_blocks.saturating_mul(st.f_frsize);
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            let _ = writeln!(
                out,
                "data:        {} MiB used of {} MiB ({DATA_MOUNT})",
                size.saturating_sub(free) >> 20,
                size >> 20
            );
        }
        _ => {
            let _ = writeln!(out, "data:        not mounted ({DATA_MOUNT})");
        }
    }
    if let Some(w) = bootloader_warning(bootloader_time(host)) {
        let _ = writeln!(out, "{w}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_bootloaders_are_warned_about() {
        assert_eq!(bootloader_warning(None), None);
        assert_eq!(bootloader_warning(Some(AUTOBOOT_BOOTLOADER)), None);
        let w = bootloader_warning(Some(1_600_000_000)).expect("old");
        assert!(
            w.contains("2020-09-13") && w.contains("rpi-eeprom-update"),
            "{w}"
        );
    }

    #[test]
    fn the_bootloader_time_comes_from_the_device_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::at(dir.path());
        assert_eq!(bootloader_time(&host), None);
        std::fs::create_dir_all(host.path("/proc/device-tree/chosen/bootloader")).expect("dir");
        std::fs::write(
            host.path("/proc/device-tree/chosen/bootloader/build-timestamp"),
            1_600_000_000u32.to_be_bytes(),
        )
        .expect("w");
        assert_eq!(bootloader_time(&host), Some(1_600_000_000));
    }
}
