//! What the builder puts into a root for the node agent, checked without a VM on a card
//! built from the systemd fixture: the agent itself (a static aarch64 program), its units
//! (verified with `systemd-analyze verify` against the image's own tree, and enabled), the
//! seed's task scripts, the build's configuration and facts, the cloud-init drop-in.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use k8r_builder::image::card::extract_partition;
use k8r_builder::process::run;
use k8r_tests::systemd::systemd_verify;
use k8r_tests::{assemble_card, Built, BASE_2604_SYSTEMD};

/// The card and its root tree (p3 unpacked with debugfs), once per test binary.
fn built() -> &'static (Built, PathBuf) {
    static BUILT: OnceLock<(Built, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let built = assemble_card("host-node-image", BASE_2604_SYSTEMD, "");
        let root_img = built.dir.join("p3.img");
        extract_partition(&built.card, 3, &root_img).expect("p3");
        let tree = built.dir.join("root");
        std::fs::create_dir_all(&tree).expect("mkdir");
        run(Command::new("debugfs")
            .arg("-R")
            .arg(format!("rdump / {}", tree.display()))
            .arg(&root_img))
        .expect("rdump");
        (built, tree)
    })
}

fn tree() -> &'static Path {
    &built().1
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(tree().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

const UNITS: &[&str] = &[
    "k8r-setup.service",
    "k8r-bootstrap.service",
    "k8r-trial.service",
    "k8r-config-sync.path",
    "k8r-config-sync.service",
    "kubelet.service",
];

#[test]
fn the_agents_units_verify_against_the_image() {
    let units: Vec<PathBuf> = UNITS
        .iter()
        .map(|u| tree().join("usr/lib/systemd/system").join(u))
        .chain(std::iter::once(
            tree().join("usr/local/lib/systemd/system/containerd.service"),
        ))
        .collect();
    systemd_verify(&units, tree()).expect("the node units verify cleanly");
}

#[test]
fn the_units_are_enabled_and_ordered() {
    for (wants, unit) in [
        ("sysinit.target.wants", "k8r-setup.service"),
        ("multi-user.target.wants", "k8r-bootstrap.service"),
        ("multi-user.target.wants", "k8r-trial.service"),
        ("multi-user.target.wants", "k8r-config-sync.path"),
        ("multi-user.target.wants", "kubelet.service"),
        ("multi-user.target.wants", "containerd.service"),
    ] {
        let link = tree().join("etc/systemd/system").join(wants).join(unit);
        let target =
            std::fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
        assert!(target.ends_with(unit), "{unit} -> {}", target.display());
    }
    let setup = read("usr/lib/systemd/system/k8r-setup.service");
    for before in [
        "containerd.service",
        "kubelet.service",
        "ssh.service",
        "cloud-init-local.service",
    ] {
        assert!(
            setup.contains(before),
            "k8r setup runs before {before}: {setup}"
        );
    }
    let bootstrap = read("usr/lib/systemd/system/k8r-bootstrap.service");
    assert!(bootstrap.contains(
        "After=network-online.target k8r-setup.service containerd.service cloud-init.target"
    ));
    assert!(
        bootstrap.contains("RestartPreventExitStatus=2"),
        "a refusal is not retried"
    );
}

#[test]
fn the_agent_and_the_seeds_scripts() {
    let agent = tree().join("usr/local/bin/k8r");
    let out = run(Command::new("file").arg(&agent))
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if let Ok(text) = out {
        assert!(
            text.contains("ARM aarch64") && text.contains("statically linked"),
            "{text}"
        );
    }
    let bytes = std::fs::read(&agent).expect("agent");
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert!(
        bytes == std::fs::read(k8r_tests::agent()).expect("built agent"),
        "the agent built for the test"
    );
    for (script, verb) in [
        ("update_image_partition.sh", "update-image"),
        ("set_reinstall_mode.sh", "reinstall"),
    ] {
        let text = read(&format!("usr/lib/k8r/tasks/{script}"));
        assert!(
            text.contains(&format!("exec /usr/local/bin/k8r {verb} \"$@\"")),
            "{text}"
        );
    }
}

#[test]
fn the_builds_configuration_and_facts() {
    let info = read("usr/lib/k8r/build-info");
    let (b, _) = built();
    for line in [
        format!("BUILD_ID={}", b.report.build_id),
        "K8S_VERSION=1.31.2".to_owned(),
        format!("BUILD_EPOCH={}", k8r_tests::TEST_EPOCH),
        "CNI_MANIFEST=calico.yaml".to_owned(),
    ] {
        assert!(info.lines().any(|l| l == line), "{line}: {info}");
    }
    assert!(tree().join("usr/lib/k8r/cni/calico.yaml").exists());
    let build_cfg = read("usr/lib/k8r/build-variables.cfg");
    assert_eq!(
        build_cfg,
        read("usr/lib/k8r/variables.cfg"),
        "the image's settings until the first boot"
    );
    assert!(build_cfg.contains("K8S_VERSION=\"1.31.2\""));
    let cloud = read("etc/cloud/cloud.cfg.d/99-k8r.cfg");
    for setting in [
        "mode: \"off\"",
        "resize_rootfs: false",
        "ssh_deletekeys: false",
    ] {
        assert!(cloud.contains(setting), "{setting}: {cloud}");
    }
}
