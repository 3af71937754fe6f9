//! The systemd fixture checked without a VM: its root tree (unpacked from the card with
//! debugfs) is a merged-/usr arm64 systemd system with the files the recipe promises, and its
//! units pass `systemd-analyze verify` against that tree through the reusable
//! [`k8r_tests::systemd::systemd_verify`] helper, which must also catch broken units.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use k8r_builder::image::card::extract_partition;
use k8r_builder::process::run;
use k8r_tests::systemd::systemd_verify;
use k8r_tests::{fixture, scratch, BASE_2604_SYSTEMD};

/// The fixture's root tree, unpacked once per test binary.
fn tree() -> &'static Path {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let dir = scratch("host-systemd-tree");
        let root_img = dir.join("p2.img");
        extract_partition(&fixture(BASE_2604_SYSTEMD), 2, &root_img).expect("p2");
        run(Command::new("e2fsck").arg("-fn").arg(&root_img)).expect("e2fsck -fn clean");
        let tree = dir.join("root");
        std::fs::create_dir_all(&tree).expect("mkdir");
        let out = run(Command::new("debugfs")
            .arg("-R")
            .arg(format!("rdump / {}", tree.display()))
            .arg(&root_img))
        .expect("debugfs rdump");
        let errors: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        assert!(errors.is_empty(), "rdump: {errors:?}");
        tree
    })
}

const FIXTURE_UNITS: &[&str] = &[
    "fixture-console.service",
    "fixture-ready.service",
    "fixture-ssh-hostkeys.service",
];

fn read(rel: &str) -> String {
    std::fs::read_to_string(tree().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn link(rel: &str) -> PathBuf {
    std::fs::read_link(tree().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn the_fixture_units_verify_against_the_fixture_tree() {
    let mut units: Vec<PathBuf> = FIXTURE_UNITS
        .iter()
        .map(|u| tree().join("usr/lib/systemd/system").join(u))
        .collect();
    // The Debian units the recipe enables load in this tree too.
    for u in [
        "systemd-networkd.service",
        "systemd-networkd-wait-online.service",
        "systemd-timesyncd.service",
    ] {
        units.push(tree().join("usr/lib/systemd/system").join(u));
    }
    systemd_verify(&units, tree()).expect("the fixture's units verify cleanly");
}

/// A unit outside the tree, written to the test's scratch directory.
fn unit(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write unit");
    path
}

#[test]
fn verify_looks_for_programs_in_the_tree_not_on_the_host() {
    let dir = scratch("host-systemd-verify-programs");
    assert!(
        !Path::new("/usr/sbin/k8r-reboot-to").exists(),
        "the host must not have the fixture's program for this test to mean anything"
    );
    let ok = unit(
        &dir,
        "k8r-test-ok.service",
        "[Unit]\nDescription=test\nAfter=k8r-setup.service\n\n[Service]\nType=oneshot\n\
         ExecStart=/usr/sbin/k8r-reboot-to 2\n\n[Install]\nWantedBy=multi-user.target\n",
    );
    systemd_verify(&[&ok], tree()).expect("a program that only the tree has is found");
    assert!(
        !tree()
            .join("etc/systemd/system/k8r-test-ok.service")
            .exists(),
        "the copy is removed after the check"
    );

    let missing = unit(
        &dir,
        "k8r-test-missing.service",
        "[Unit]\nDescription=test\n\n[Service]\nExecStart=/usr/bin/k8r-no-such-program\n",
    );
    let err = systemd_verify(&[&missing], tree()).expect_err("missing program");
    assert!(
        err.contains("/usr/bin/k8r-no-such-program") && err.contains("not executable"),
        "{err}"
    );

    // Present on the host (setup installs QEMU) but not in the tree: still a complaint.
    let host_only = unit(
        &dir,
        "k8r-test-host-only.service",
        "[Unit]\nDescription=test\n\n[Service]\nExecStart=/usr/bin/qemu-system-aarch64 -version\n",
    );
    assert!(Path::new("/usr/bin/qemu-system-aarch64").exists());
    assert!(!tree().join("usr/bin/qemu-system-aarch64").exists());
    let err = systemd_verify(&[&host_only], tree()).expect_err("host-only program");
    assert!(err.contains("qemu-system-aarch64"), "{err}");
}

#[test]
fn verify_reports_warnings_and_bad_settings() {
    let dir = scratch("host-systemd-verify-bad");
    let typo = unit(
        &dir,
        "k8r-test-typo.service",
        "[Unit]\nDescription=test\n\n[Service]\nExecStrat=/usr/bin/bash\nExecStart=/usr/bin/bash\n",
    );
    let err = systemd_verify(&[&typo], tree()).expect_err("unknown key");
    assert!(err.contains("ExecStrat"), "{err}");

    let two = unit(
        &dir,
        "k8r-test-two.service",
        "[Unit]\nDescription=test\n\n[Service]\nType=simple\nExecStart=/usr/bin/bash\n\
         ExecStart=/usr/bin/bash\n",
    );
    let err = systemd_verify(&[&two], tree()).expect_err("two ExecStart for a simple service");
    assert!(err.contains("more than one ExecStart"), "{err}");

    let none: &[PathBuf] = &[];
    assert!(systemd_verify(none, tree()).is_err());
}

#[test]
fn the_tree_is_merged_usr_arm64_systemd() {
    for (top, target) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")] {
        assert_eq!(link(top), Path::new(target), "/{top}");
    }
    assert_eq!(link("usr/sbin/init"), Path::new("/lib/systemd/systemd"));
    assert_eq!(link("usr/bin/sh"), Path::new("dash"));
    let systemd = std::fs::read(tree().join("usr/lib/systemd/systemd")).expect("systemd");
    assert_eq!(&systemd[..4], b"\x7fELF");
    assert_eq!(
        u16::from_le_bytes([systemd[18], systemd[19]]),
        183,
        "EM_AARCH64"
    );
    // The loader the binaries name (PT_INTERP) resolves through /lib -> usr/lib.
    assert!(tree()
        .join("usr/lib/ld-linux-aarch64.so.1")
        .canonicalize()
        .is_ok_and(|p| p.is_file()));
    for pruned in ["usr/share/doc", "usr/share/man", "usr/share/locale"] {
        assert!(!tree().join(pruned).exists(), "{pruned} is left out");
    }
    assert!(
        !tree().join("usr/bin/dbus-daemon").exists(),
        "no D-Bus in the fixture"
    );
}

#[test]
fn the_tree_has_what_the_maintainer_scripts_would_have_done() {
    assert_eq!(read("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n");
    assert!(read("etc/group").starts_with("root:x:0:"));
    assert!(read("etc/shadow").starts_with("root:"));
    assert_eq!(
        read("etc/machine-id"),
        "",
        "empty: systemd makes one on first boot"
    );
    assert_eq!(read("etc/hostname"), "k8r-fixture\n");
    let os = read("etc/os-release");
    assert!(
        os.contains("ID=ubuntu\n") && os.contains("VERSION_ID=\"26.04\"\n"),
        "{os}"
    );
    let fstab = read("etc/fstab");
    let lines: Vec<Vec<&str>> = fstab
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec![
                "LABEL=writable",
                "/",
                "ext4",
                "discard,errors=remount-ro",
                "0",
                "1"
            ],
            vec![
                "LABEL=system-boot",
                "/boot/firmware",
                "vfat",
                "defaults",
                "0",
                "1"
            ],
        ]
    );
    let network = read("etc/systemd/network/10-k8r-fixture-dhcp.network");
    assert!(
        network.contains("Name=en* eth*") && network.contains("DHCP=ipv4"),
        "{network}"
    );
    assert!(read("etc/sysctl.d/10-k8r-fixture-console.conf").contains("kernel.printk = 5 4 1 7"));
    let reboot = read("usr/sbin/k8r-reboot-to");
    assert!(reboot.contains("k8r-reboot: partition=$part tryboot=$t\" > /dev/kmsg"));
    assert!(reboot.contains("systemctl reboot"));
    assert!(read("usr/lib/systemd/system/fixture-ssh-hostkeys.service")
        .contains("After=sysinit.target basic.target k8r-setup.service"));
    let release = std::fs::read_to_string(
        std::fs::read_dir(tree().join("usr/lib/modules"))
            .expect("modules")
            .next()
            .expect("one release")
            .expect("entry")
            .path()
            .join("modules.dep"),
    )
    .expect("modules.dep");
    for module in [
        "virtio_net.ko",
        "overlay.ko",
        "br_netfilter.ko",
        "bridge.ko",
        "autofs4.ko",
    ] {
        assert!(
            release.contains(&format!("/{module}:")),
            "{module} in modules.dep"
        );
    }
}

#[test]
fn units_are_enabled_and_the_gettys_masked() {
    let sys = "etc/systemd/system";
    assert_eq!(
        link(&format!("{sys}/default.target")),
        Path::new("/lib/systemd/system/multi-user.target")
    );
    for (wants, unit) in [
        ("multi-user.target.wants", "fixture-console.service"),
        ("multi-user.target.wants", "fixture-ready.service"),
        ("multi-user.target.wants", "fixture-ssh-hostkeys.service"),
        ("multi-user.target.wants", "systemd-networkd.service"),
        ("sockets.target.wants", "systemd-networkd.socket"),
        (
            "network-online.target.wants",
            "systemd-networkd-wait-online.service",
        ),
        ("sysinit.target.wants", "systemd-timesyncd.service"),
    ] {
        let target = link(&format!("{sys}/{wants}/{unit}"));
        assert!(target.ends_with(unit), "{unit} -> {}", target.display());
        let inside = tree().join(target.strip_prefix("/").expect("absolute"));
        assert!(inside.is_file(), "{unit} resolves in the tree");
    }
    for masked in [
        "getty@.service",
        "serial-getty@.service",
        "getty-static.service",
        "systemd-firstboot.service",
    ] {
        assert_eq!(
            link(&format!("{sys}/{masked}")),
            Path::new("/dev/null"),
            "{masked}"
        );
    }
    assert!(
        !tree()
            .join(format!(
                "{sys}/sysinit.target.wants/systemd-time-wait-sync.service"
            ))
            .exists(),
        "time-wait-sync would wait for NTP"
    );
}
