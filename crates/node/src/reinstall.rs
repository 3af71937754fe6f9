//! `k8r reinstall` (and the seed's `set_reinstall_mode.sh`): verify the stored build first
//! (refusing with the reason if it is bad), optionally cordon and drain the node, keep the
//! node's settings on the recovery partition, point `autoboot.txt` at the recovery partition
//! (careful replace), and reboot. The installer rewrites the working partitions from the
//! store and boots them; a master keeps its cluster on the data partition.

use anyhow::{anyhow, Context, Result};
use k8r_card::install_log::format_entry;
use k8r_card::recovery::NODE_VARIABLES;
use k8r_card::store::VerifyOptions;
use k8r_card::trial::{Trial, TrialKind};
use k8r_card::Part;

use crate::bootstrap::Refused;
use crate::card::{RecoverySource, P1};
use crate::exec::Cmd;
use crate::host::Host;
use crate::kube::{Kube, ADMIN_CONF};
use crate::settings::{self, Settings};

/// How to reinstall.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Cordon and drain the node first (where admin credentials exist).
    pub drain: bool,
    /// Do not reboot (the next boot installs).
    pub no_reboot: bool,
}

/// Runs it. Returns only when `no_reboot` is set (or the reboot could not be started).
pub fn run(
    host: &Host,
    recovery: &RecoverySource,
    s: &Settings,
    node_name: &str,
    opts: Options,
) -> Result<()> {
    let p1 = P1::open(host, recovery, true)?;
    let store = p1.recovery().store();
    let build = store.current().context("the image store")?;
    log::info!(
        "verifying the stored build {} (Kubernetes {}) before anything changes",
        build.manifest.build_id,
        build.manifest.kubernetes_version
    );
    let mut last_tenth = None;
    build
        .verify(VerifyOptions::for_this_machine(), &mut |p| {
            let tenth = p.done * 10 / p.total.max(1);
            if last_tenth != Some(tenth) {
                last_tenth = Some(tenth);
                log::info!("verifying: {}%", tenth * 10);
            }
        })
        .map_err(|e| {
            Refused(format!(
                "not reinstalling: the stored build does not verify: {e}"
            ))
        })?;
    sync_settings(host, &p1, s)?;
    if opts.drain {
        drain(host, node_name)?;
    }
    let entry = format_entry(
        uptime(host),
        &build.manifest.build_id,
        "reinstall requested (k8r reinstall)",
    );
    let _ = p1.recovery().append_install_log(&entry);
    // An install the operator asked for, not a failed trial: a pending trial of the running
    // build is replaced by a new trial of the stored build (recovery installs it as such).
    p1.recovery()
        .write_trial(&Trial::new(&build.manifest.build_id, TrialKind::New))
        .context("recording the requested install on the recovery partition")?;
    p1.recovery()
        .set_next_boot(Part::Recovery)
        .context("pointing autoboot.txt at the recovery partition")?;
    drop(p1);
    log::info!(
        "autoboot.txt points at the recovery partition: the next boot reinstalls build {}",
        build.manifest.build_id
    );
    if opts.no_reboot {
        return Ok(());
    }
    reboot(host)
}

/// Copies the node keys of the effective settings to the recovery partition when they differ
/// (a hand edit of `/usr/lib/k8r/variables.cfg`).
pub fn sync_settings(host: &Host, p1: &P1, s: &Settings) -> Result<bool> {
    let old = settings::node_settings(p1)?;
    let text = settings::node_file_text(old.as_ref(), &s.raw);
    let current = p1
        .recovery()
        .read_node_file(NODE_VARIABLES)
        .context("reading the node's settings on the recovery partition")?;
    if current.as_deref() == Some(text.as_bytes()) {
        return Ok(false);
    }
    p1.recovery()
        .write_node_file(NODE_VARIABLES, text.as_bytes())
        .context("writing the node's settings to the recovery partition")?;
    let _ = host;
    Ok(true)
}

fn drain(host: &Host, node_name: &str) -> Result<()> {
    if !host.path(ADMIN_CONF).exists() {
        log::warn!(
            "no admin credentials on this node ({ADMIN_CONF}): drain it from the master first \
             (kubectl drain {node_name} --ignore-daemonsets --delete-emptydir-data); reinstalling without draining"
        );
        return Ok(());
    }
    let kube = Kube::new(host);
    kube.kubectl(["cordon", node_name])
        .run()
        .context("cordoning the node")?;
    kube.kubectl([
        "drain",
        node_name,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=300s",
    ])
    .run()
    .context("draining the node")?;
    log::info!("{node_name} cordoned and drained");
    Ok(())
}

fn uptime(host: &Host) -> f64 {
    std::fs::read_to_string(host.path("/proc/uptime"))
        .ok()
        .and_then(|u| u.split_whitespace().next().and_then(|s| s.parse().ok()))
        .unwrap_or(0.0)
}

/// Reboots: the harness's reboot-request line (docs/harness.md; the firmware's partition 0 =
/// `autoboot.txt`) through the kernel log, then `systemctl reboot` so every unit stops cleanly.
pub fn reboot(host: &Host) -> Result<()> {
    if !host.is_system() {
        return Err(anyhow!("not rebooting a test root"));
    }
    if let Ok(mut k) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        use std::io::Write;
        let _ = k.write_all(b"k8r-reboot: partition=0 tryboot=0");
    }
    rustix::fs::sync();
    Cmd::new("systemctl")
        .args(["reboot"])
        .run()
        .context("systemctl reboot")?;
    Ok(())
}
