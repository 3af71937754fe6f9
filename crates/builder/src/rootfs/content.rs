//! What k8r adds to the vendor root: the Kubernetes node binaries, their systemd units and
//! drop-ins, host settings for Kubernetes networking, the node agent and its configuration.
//! File contents follow kubernetes-node.md §2 (K-INSTALL, REL-TPL, CTRD).

use std::io::Read;
use std::path::{Path, PathBuf};

use k8r_card::image_root::{
    AGENT, BUILD_INFO, BUILD_VARIABLES, CNI_DIR, K8R_LIB, TASKS_DIR, TRUSTED_KEYS, VARIABLES,
};

use crate::image::ImageError;

use super::plan::{Op, RootPlan};

/// Where each downloaded piece is on the build host.
#[derive(Debug, Clone)]
pub struct NodeBinaries {
    /// `kubeadm` binary.
    pub kubeadm: PathBuf,
    /// `kubelet` binary.
    pub kubelet: PathBuf,
    /// `kubectl` binary.
    pub kubectl: PathBuf,
    /// `runc.<arch>` binary.
    pub runc: PathBuf,
    /// `containerd-<v>-linux-<arch>.tar.gz`.
    pub containerd_tgz: PathBuf,
    /// `cni-plugins-linux-<arch>-v<v>.tgz`.
    pub cni_plugins_tgz: PathBuf,
    /// `crictl-v<v>-linux-<arch>.tar.gz`.
    pub crictl_tgz: PathBuf,
    /// The CNI manifest (calico.yaml or kube-flannel.yml) and its name in the image.
    pub cni_manifest: (PathBuf, String),
    /// The node agent `k8r` (static, for the node's architecture).
    pub agent: PathBuf,
}

/// Text that goes into the image.
#[derive(Debug, Clone)]
pub struct NodeTexts {
    /// The build's configuration without node secrets, baked at `/usr/lib/k8r/variables.cfg`
    /// (the agent rewrites that file at boot with the node's own settings merged in) and at
    /// `/usr/lib/k8r/build-variables.cfg` (the base of that merge).
    pub variables_cfg: String,
    /// `/usr/lib/k8r/build-info` (build id, versions).
    pub build_info: String,
    /// containerd's major version (2.x uses config version 3, 1.x version 2).
    pub containerd_major: u32,
    /// `/usr/lib/k8r/trusted-keys`: the build's trusted keys (`TRUSTED_KEYS`), when it has
    /// any; the node agent makes them the card's when the build commits.
    pub trusted_keys: Option<String>,
}

/// Runs `k8r setup` early on every boot: before containerd, the kubelet, ssh and cloud-init,
/// which all need what it restores (kept directories, identity).
const SETUP_UNIT: &str = "\
[Unit]
Description=k8r node setup: settings, data partition, kept directories, identity, host name
DefaultDependencies=no
Conflicts=shutdown.target
After=local-fs.target systemd-remount-fs.service
Before=sysinit.target shutdown.target systemd-machine-id-commit.service cloud-init-local.service containerd.service kubelet.service ssh.service
ConditionPathExists=/usr/lib/k8r/build-info

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/bin/k8r setup
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=sysinit.target
";

/// Runs `k8r bootstrap` once the network and containerd are up, and after cloud-init (which
/// makes the first boot's SSH host keys the step keeps); it waits for the clock itself.
/// Retried on failure, not after a deliberate refusal (exit 2). `Type=exec`, not oneshot: a
/// `kubeadm init` takes minutes on a Pi and must not hold up `multi-user.target` (a target
/// waits for the oneshot units it wants).
const BOOTSTRAP_UNIT: &str = "\
[Unit]
Description=k8r cluster step: kubeadm init on the first master, join on workers, upgrades
Wants=network-online.target
Requires=k8r-setup.service
After=network-online.target k8r-setup.service containerd.service cloud-init.target
ConditionPathExists=/usr/lib/k8r/build-info

[Service]
Type=exec
RemainAfterExit=yes
ExecStart=/usr/local/bin/k8r bootstrap
Restart=on-failure
RestartSec=30
RestartPreventExitStatus=2
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
";

/// Commits the build after an install's trial boot once the node is healthy, or reboots into
/// recovery (which rolls back) when it is not within `--timeout` seconds of boot; nothing
/// without a pending trial. `Wants=`, not `Requires=`, setup: a failed setup must still end in
/// the timeout's reboot. The timeout is this unit's setting (a drop-in changes it).
const TRIAL_UNIT: &str = "\
[Unit]
Description=k8r trial: commit this build once the node is healthy, else back to recovery
Wants=k8r-setup.service
After=k8r-setup.service containerd.service kubelet.service
ConditionPathExists=/usr/lib/k8r/build-info

[Service]
Type=exec
RemainAfterExit=yes
ExecStart=/usr/local/bin/k8r trial-watch
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
";

/// Watches the node's settings file: a hand edit (the seed's documented way) is copied to the
/// card's recovery partition, so it survives a reinstall.
const CONFIG_SYNC_PATH: &str = "\
[Unit]
Description=k8r: keep edits of /usr/lib/k8r/variables.cfg on the card
After=k8r-setup.service

[Path]
PathChanged=/usr/lib/k8r/variables.cfg

[Install]
WantedBy=multi-user.target
";

const CONFIG_SYNC_SERVICE: &str = "\
[Unit]
Description=k8r: copy this node's settings to the card's recovery partition
After=k8r-setup.service

[Service]
Type=oneshot
ExecStart=/usr/local/bin/k8r config sync
";

/// cloud-init on a k8r card: the root is partition 3 of 4 (the agent grows the data partition
/// instead), and the SSH host keys are kept on the data partition across reinstalls.
const CLOUD_INIT: &str = "\
# k8r: the root is partition 3 of 4 and keeps the image's size; the node agent grows the data
# partition (4) to the end of the card instead.
growpart:
  mode: \"off\"
resize_rootfs: false
# k8r keeps the SSH host keys on the data partition and puts them back before cloud-init runs.
ssh_deletekeys: false
";

const KUBELET_UNIT: &str = "\
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/local/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
";

const KUBEADM_DROPIN: &str = "\
# Note: this dropin only works with kubeadm and kubelet v1.11+ (k8r-generated; paths per the
# kubernetes/release templates, binaries in /usr/local/bin)
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
";

const CONTAINERD_UNIT: &str = "\
[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target dbus.service

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
";

const CONTAINERD_CONFIG_V3: &str = "\
# k8r: containerd 2.x, systemd cgroup driver (kubelet uses systemd too)
version = 3
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
";

const CONTAINERD_CONFIG_V2: &str = "\
# k8r: containerd 1.x, systemd cgroup driver (kubelet uses systemd too)
version = 2
[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]
  SystemdCgroup = true
";

const CRICTL_YAML: &str = "runtime-endpoint: unix:///run/containerd/containerd.sock\n";

const MODULES_LOAD: &str = "# k8r: Kubernetes networking\noverlay\nbr_netfilter\n";

const SYSCTL: &str = "\
# k8r: Kubernetes networking (kubeadm preflight needs ip_forward)
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
";

/// systemd keeps the hardware watchdog fed while it runs and stops feeding it when PID 1 hangs,
/// so a hung node resets (a reset before the trial commit lands in recovery, which rolls
/// back). 15 s is the longest the Pi's watchdog (`bcm2835_wdt`, 20-bit counter at 64 kHz)
/// can be set to; a reboot that hangs is cut off after 2 minutes.
pub const WATCHDOG_CONF: &str = "\
# k8r: reset the node when systemd stops feeding the hardware watchdog (a hang)
[Manager]
RuntimeWatchdogSec=15s
RebootWatchdogSec=2min
";

/// Where the unit systemd makes from Ubuntu's fstab line for the boot partition takes its
/// mount options: that partition holds the node's `user-data` with the login password's
/// hash, and FAT has no owners, so the masks make every file on it 0600 and every directory
/// 0700 root (Ubuntu mounts it readable by every user).
pub const BOOT_FIRMWARE_DROPIN: &str =
    "/etc/systemd/system/boot-firmware.mount.d/60-k8r-private.conf";
/// The drop-in's text.
pub const BOOT_FIRMWARE_PRIVATE: &str = "\
# k8r: the boot partition holds the login password's hash (user-data): root only
[Mount]
Options=defaults,fmask=0177,dmask=0077
";

/// The seed's operator scripts, now thin wrappers around the agent.
const TASKS: &[(&str, &str)] = &[
    ("update_image_partition.sh", "update-image"),
    ("set_reinstall_mode.sh", "reinstall"),
];

/// Stages every file under `staging` and returns the plan that puts them in the image.
pub fn stage(
    staging: &Path,
    bins: &NodeBinaries,
    texts: &NodeTexts,
) -> Result<RootPlan, ImageError> {
    let mut plan = RootPlan::default();
    let mut n = 0usize;
    let mut file =
        |plan: &mut RootPlan, path: &str, mode: u32, data: &[u8]| -> Result<(), ImageError> {
            n += 1;
            let local = staging.join(format!("{n:04}"));
            std::fs::write(&local, data).map_err(|source| ImageError::Io {
                path: local.clone(),
                source,
            })?;
            plan.push(Op::File {
                path: path.to_owned(),
                mode,
                source: local,
            });
            Ok(())
        };
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| ImageError::Io {
            path: p.to_path_buf(),
            source,
        })
    };

    // Kubernetes binaries (K-INSTALL "without a package manager": /usr/local/bin).
    for (name, src) in [
        ("kubeadm", &bins.kubeadm),
        ("kubelet", &bins.kubelet),
        ("kubectl", &bins.kubectl),
    ] {
        file(
            &mut plan,
            &format!("/usr/local/bin/{name}"),
            0o755,
            &read(src)?,
        )?;
    }
    file(&mut plan, "/usr/local/sbin/runc", 0o755, &read(&bins.runc)?)?;
    for (name, data) in tar_files(&bins.containerd_tgz)? {
        file(&mut plan, &format!("/usr/local/bin/{name}"), 0o755, &data)?;
    }
    for (name, data) in tar_files(&bins.crictl_tgz)? {
        file(&mut plan, &format!("/usr/local/bin/{name}"), 0o755, &data)?;
    }
    plan.push(Op::Dir {
        path: "/opt/cni/bin".into(),
        mode: 0o755,
    });
    for (name, data) in tar_files(&bins.cni_plugins_tgz)? {
        file(&mut plan, &format!("/opt/cni/bin/{name}"), 0o755, &data)?;
    }

    // Units and configuration.
    file(
        &mut plan,
        "/usr/lib/systemd/system/kubelet.service",
        0o644,
        KUBELET_UNIT.as_bytes(),
    )?;
    file(
        &mut plan,
        "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
        0o644,
        KUBEADM_DROPIN.as_bytes(),
    )?;
    file(
        &mut plan,
        "/etc/default/kubelet",
        0o644,
        b"KUBELET_EXTRA_ARGS=\n",
    )?;
    file(
        &mut plan,
        "/usr/local/lib/systemd/system/containerd.service",
        0o644,
        CONTAINERD_UNIT.as_bytes(),
    )?;
    let containerd_config = if texts.containerd_major >= 2 {
        CONTAINERD_CONFIG_V3
    } else {
        CONTAINERD_CONFIG_V2
    };
    file(
        &mut plan,
        "/etc/containerd/config.toml",
        0o644,
        containerd_config.as_bytes(),
    )?;
    file(&mut plan, "/etc/crictl.yaml", 0o644, CRICTL_YAML.as_bytes())?;
    file(
        &mut plan,
        "/etc/modules-load.d/k8s.conf",
        0o644,
        MODULES_LOAD.as_bytes(),
    )?;
    file(
        &mut plan,
        "/etc/sysctl.d/60-k8s.conf",
        0o644,
        SYSCTL.as_bytes(),
    )?;
    file(
        &mut plan,
        "/etc/systemd/system.conf.d/60-k8r-watchdog.conf",
        0o644,
        WATCHDOG_CONF.as_bytes(),
    )?;
    file(
        &mut plan,
        BOOT_FIRMWARE_DROPIN,
        0o644,
        BOOT_FIRMWARE_PRIVATE.as_bytes(),
    )?;
    for dir in [
        "/etc/kubernetes/manifests",
        "/var/lib/kubelet",
        "/var/spool/k8r",
    ] {
        plan.push(Op::Dir {
            path: dir.into(),
            mode: 0o755,
        });
    }
    // kubelet refuses to start with swap on (K-INSTALL): mask swap units.
    plan.push(Op::Symlink {
        path: "/etc/systemd/system/swap.target".into(),
        target: "/dev/null".into(),
    });

    // The node agent, its units, the seed's task scripts, the build's configuration.
    file(&mut plan, AGENT, 0o755, &read(&bins.agent)?)?;
    for (unit, text) in [
        ("k8r-setup.service", SETUP_UNIT),
        ("k8r-bootstrap.service", BOOTSTRAP_UNIT),
        ("k8r-trial.service", TRIAL_UNIT),
        ("k8r-config-sync.path", CONFIG_SYNC_PATH),
        ("k8r-config-sync.service", CONFIG_SYNC_SERVICE),
    ] {
        file(
            &mut plan,
            &format!("/usr/lib/systemd/system/{unit}"),
            0o644,
            text.as_bytes(),
        )?;
    }
    file(
        &mut plan,
        "/etc/cloud/cloud.cfg.d/99-k8r.cfg",
        0o644,
        CLOUD_INIT.as_bytes(),
    )?;
    plan.push(Op::Dir {
        path: K8R_LIB.into(),
        mode: 0o755,
    });
    file(&mut plan, VARIABLES, 0o600, texts.variables_cfg.as_bytes())?;
    file(
        &mut plan,
        BUILD_VARIABLES,
        0o644,
        texts.variables_cfg.as_bytes(),
    )?;
    file(&mut plan, BUILD_INFO, 0o644, texts.build_info.as_bytes())?;
    if let Some(keys) = &texts.trusted_keys {
        file(&mut plan, TRUSTED_KEYS, 0o644, keys.as_bytes())?;
    }
    let (manifest, name) = &bins.cni_manifest;
    file(
        &mut plan,
        &format!("{CNI_DIR}/{name}"),
        0o644,
        &read(manifest)?,
    )?;
    for (script, verb) in TASKS {
        let body = format!("#!/bin/sh\n# k8r: kept for the seed's users; the agent does the work.\nexec {AGENT} {verb} \"$@\"\n");
        file(
            &mut plan,
            &format!("{TASKS_DIR}/{script}"),
            0o755,
            body.as_bytes(),
        )?;
    }

    // Enable the services (what `systemctl enable` would link).
    for (wants, unit, target) in [
        (
            "multi-user.target.wants",
            "containerd.service",
            "/usr/local/lib/systemd/system/containerd.service",
        ),
        (
            "multi-user.target.wants",
            "kubelet.service",
            "/usr/lib/systemd/system/kubelet.service",
        ),
        (
            "sysinit.target.wants",
            "k8r-setup.service",
            "/usr/lib/systemd/system/k8r-setup.service",
        ),
        (
            "multi-user.target.wants",
            "k8r-bootstrap.service",
            "/usr/lib/systemd/system/k8r-bootstrap.service",
        ),
        (
            "multi-user.target.wants",
            "k8r-trial.service",
            "/usr/lib/systemd/system/k8r-trial.service",
        ),
        (
            "multi-user.target.wants",
            "k8r-config-sync.path",
            "/usr/lib/systemd/system/k8r-config-sync.path",
        ),
    ] {
        plan.push(Op::Symlink {
            path: format!("/etc/systemd/system/{wants}/{unit}"),
            target: target.into(),
        });
    }
    Ok(plan)
}

/// Regular files of a `.tar.gz`, by base name, in archive order. Only names are used (never
/// the archive's paths), so nothing can land outside the intended directory.
pub fn tar_files(path: &Path) -> Result<Vec<(String, Vec<u8>)>, ImageError> {
    let io = |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = Vec::new();
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(io)?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.is_empty() || name.starts_with('.') {
            continue;
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(io)?;
        out.push((name, data));
    }
    if out.is_empty() {
        return Err(ImageError::Layout(format!(
            "{}: archive holds no files",
            path.display()
        )));
    }
    Ok(out)
}
