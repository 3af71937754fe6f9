//! `k8r setup`: every boot, early (`k8r-setup.service`, before containerd, the kubelet, ssh
//! and cloud-init), idempotent:
//!
//! 1. the node's settings: the image's configuration with the node's own (recovery
//!    partition) over it, written to `/usr/lib/k8r/variables.cfg`;
//! 2. the data partition: grown to the end of the card on the first boot (partition table and
//!    filesystem, online) and mounted;
//! 3. the node's identity (machine id, SSH host keys) put back after a reinstall;
//! 4. the kept directories bind-mounted (a master: `/etc/kubernetes`, `/var/lib/etcd`, the
//!    kubelet's identity; every node: the container image store), the kubelet's files and the
//!    join command put back;
//! 5. on a master's first boot of a new install: a cold etcd snapshot, before etcd starts;
//! 6. the host name.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use k8r_card::data::JOIN_STRING;
use k8r_card::image_root::JOIN_STRING as ROOT_JOIN_STRING;
use k8r_card::Part;

use crate::build_info::BuildInfo;
use crate::card::{RecoverySource, ThisCard, P1};
use crate::data::{self, Data};
use crate::host::Host;
use crate::settings::{self, Settings};
use crate::{grow, hostname, identity, snapshot};

/// The marker of a root that has booted since it was installed (the installer writes the
/// root fresh from the image, which has none).
pub const BOOTED_MARKER: &str = "/var/lib/k8r/booted-since-install";

/// Where the data partition comes from.
#[derive(Debug, Clone)]
pub enum DataSource {
    /// The card's p4: grown and mounted.
    Device(PathBuf),
    /// A directory standing in for it (tests, `--data-dir`).
    Dir(PathBuf),
}

/// Where setup finds the card's partitions.
#[derive(Debug, Clone)]
pub struct Target {
    /// The recovery partition.
    pub recovery: RecoverySource,
    /// The data partition.
    pub data: DataSource,
    /// The disk, when it is the real card (for growing p4).
    pub disk: Option<PathBuf>,
}

impl Target {
    /// The real card of `host`, or the directories given instead.
    pub fn resolve(
        host: &Host,
        recovery_dir: Option<&Path>,
        data_dir: Option<&Path>,
    ) -> Result<Target> {
        if let (Some(r), Some(d)) = (recovery_dir, data_dir) {
            return Ok(Target {
                recovery: RecoverySource::Dir(r.to_path_buf()),
                data: DataSource::Dir(d.to_path_buf()),
                disk: None,
            });
        }
        let card = ThisCard::find(host)?;
        Ok(Target {
            recovery: match recovery_dir {
                Some(r) => RecoverySource::Dir(r.to_path_buf()),
                None => RecoverySource::Device(card.dev(Part::Recovery)?),
            },
            data: match data_dir {
                Some(d) => DataSource::Dir(d.to_path_buf()),
                None => DataSource::Device(card.dev(Part::Data)?),
            },
            disk: Some(card.layout.disk.clone()),
        })
    }
}

/// Composes and writes the node's settings; returns them.
pub fn settings(host: &Host, target: &Target) -> Result<Settings> {
    let image = settings::image_file(host)?;
    let node = {
        let p1 = P1::open(host, &target.recovery, false)?;
        settings::node_file(&p1)?
    };
    if node.is_none() {
        log::warn!("the recovery partition holds no node settings (k8r/node/variables.cfg): using the image's");
    }
    let (text, s) = settings::compose_files(host, &image, node.as_ref())?;
    if settings::write_effective(host, &text)? {
        log::info!(
            "node settings written to {}",
            k8r_card::image_root::VARIABLES
        );
    }
    Ok(s)
}

/// Mounts (and on the first boot grows) the data partition.
pub fn data_partition(host: &Host, target: &Target) -> Result<Data> {
    match &target.data {
        DataSource::Dir(d) => Ok(Data::at(d)),
        DataSource::Device(dev) => {
            if let Some(disk) = &target.disk {
                let sectors = crate::card::sectors(host, disk)
                    .ok_or_else(|| anyhow!("{}: size unknown in sysfs", disk.display()))?;
                if let Some(plan) = grow::grow_partition(disk, sectors)? {
                    log::info!(
                        "data partition grown from {} MiB to {} MiB (the end of the card)",
                        u64::from(plan.old_sectors) / 2048,
                        u64::from(plan.new_sectors) / 2048
                    );
                }
            }
            let data = data::mount(host, dev)?;
            grow_filesystem_if_smaller(host, dev)?;
            Ok(data)
        }
    }
}

/// `resize2fs` when the mounted filesystem is smaller than its partition (the first boot,
/// or a power cut between growing the table and the filesystem).
fn grow_filesystem_if_smaller(host: &Host, dev: &Path) -> Result<()> {
    let stat = rustix::fs::statvfs(host.path(k8r_card::data::DATA_MOUNT))
        .context("statvfs of the data partition")?;
    let fs_bytes = stat.f_blocks.saturating_mul(stat.f_frsize);
    let part_bytes = crate::card::sectors(host, dev).map_or(0, |s| s * 512);
    if part_bytes > fs_bytes + 2 * grow::MIN_GAIN * 512 {
        grow::grow_filesystem(dev)?;
        log::info!("data filesystem grown to {} MiB", part_bytes >> 20);
    }
    Ok(())
}

/// Runs every step.
pub fn run(host: &Host, target: &Target) -> Result<()> {
    let build = BuildInfo::load(host)?;
    let s = settings(host, target)?;
    let data = data_partition(host, target)?;
    let control_plane = s.config.join.as_ref().is_none_or(|j| j.control_plane);
    let restored = identity::restore(host, &data)?;
    if restored.machine_id || restored.ssh_keys > 0 {
        log::info!(
            "identity restored from the data partition: machine id {}, {} SSH host key files",
            if restored.machine_id {
                "restored"
            } else {
                "unchanged"
            },
            restored.ssh_keys
        );
    }
    let first_boot = !host.path(BOOTED_MARKER).exists();
    if first_boot && control_plane && data.holds_a_cluster() {
        let etcd = data.path(k8r_card::data::ETCD_DIR);
        let snap = snapshot::take(&data, &etcd, &build.build_id, crate::clock::now_secs())?;
        log::info!(
            "etcd snapshot before this build's first start: {}",
            snap.display()
        );
    }
    let mounted = data::bind_kept(host, &data, control_plane)?;
    if !mounted.is_empty() {
        log::info!("kept on the data partition: {}", mounted.join(", "));
    }
    if control_plane {
        let n = data::restore_kubelet_files(host, &data)?;
        if n > 0 {
            log::info!("kubelet configuration restored from the data partition");
        }
        if host.read_opt(ROOT_JOIN_STRING)?.is_none() {
            if let Some(j) = crate::host::read_opt(&data.path(JOIN_STRING))? {
                host.write(ROOT_JOIN_STRING, &j, 0o600)?;
            }
        }
    }
    let name = node_name(host, &s);
    if hostname::apply(host, &name)? {
        log::info!("host name {name}");
    }
    let mut state = data.state();
    state.last_build = Some(build.build_id.clone());
    data.write_state(&state)?;
    host.write(BOOTED_MARKER, build.build_id.as_bytes(), 0o644)?;
    // Every step succeeded on this boot: the trial's first health fact (crate::trial).
    host.run_dir()?;
    host.write(crate::trial::SETUP_OK, build.build_id.as_bytes(), 0o644)?;
    Ok(())
}

/// The node's name on `host` (see [`hostname::choose`]).
pub fn node_name(host: &Host, s: &Settings) -> String {
    let machine_id = host
        .read_text_opt("/etc/machine-id")
        .ok()
        .flatten()
        .map(|t| t.trim().to_owned());
    hostname::choose(
        s.config.node_name.as_deref(),
        &s.config.hostname_prefix,
        hostname::serial(host).as_deref(),
        machine_id.as_deref(),
    )
}
