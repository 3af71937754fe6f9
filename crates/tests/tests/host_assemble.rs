//! `k8r-builder assemble` on the fixture base images, checked without a VM: the four-partition
//! card, clean filesystems, owners and modes in the root, the manifest against the bytes,
//! reproducibility, the boot and recovery partitions' files.

use std::process::Command;
use std::sync::OnceLock;

use k8r_builder::image::card::extract_partition;
use k8r_builder::process::run;
use k8r_manifest::Manifest;
use k8r_tests::{assemble_card, fat_partition, scratch, Built, BASE_2404, BASE_2604};

fn built_2604() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| assemble_card("assemble-2604", BASE_2604, ""))
}

fn built_2404() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| assemble_card("assemble-2404", BASE_2404, ""))
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).expect("command").stdout).into_owned()
}

#[test]
fn card_has_four_labelled_clean_partitions() {
    for built in [built_2604(), built_2404()] {
        let dump = stdout(Command::new("sfdisk").arg("-d").arg(&built.card));
        let types: Vec<&str> = dump
            .lines()
            .filter_map(|l| l.split("type=").nth(1))
            .collect();
        assert_eq!(types, ["c", "c", "83", "83"], "{dump}");
        let dir = scratch(&format!("parts-{}", built.report.build_id));
        for (n, label, fsck) in [
            (1u8, "K8R-RECOVER", "fsck.vfat"),
            (2, "system-boot", "fsck.vfat"),
            (3, "writable", "e2fsck"),
            (4, "k8r-data", "e2fsck"),
        ] {
            let part = dir.join(format!("p{n}"));
            extract_partition(&built.card, n, &part).expect("extract");
            let got = stdout(
                Command::new("blkid")
                    .args(["-o", "value", "-s", "LABEL"])
                    .arg(&part),
            );
            assert_eq!(got.trim(), label, "p{n}");
            let flag = if fsck == "e2fsck" { "-fn" } else { "-n" };
            run(Command::new(fsck).arg(flag).arg(&part))
                .unwrap_or_else(|e| panic!("p{n} must be clean: {e}"));
        }
    }
}

#[test]
fn root_files_have_owner_and_mode() {
    let built = built_2604();
    let root = scratch("assemble-2604-root").join("p3");
    extract_partition(&built.card, 3, &root).expect("p3");
    for (path, mode) in [
        ("/usr/local/bin/kubeadm", "0755"),
        ("/usr/local/bin/kubelet", "0755"),
        ("/usr/local/bin/containerd", "0755"),
        ("/usr/local/sbin/runc", "0755"),
        ("/opt/cni/bin/bridge", "0755"),
        ("/usr/lib/k8r/variables.cfg", "0600"),
        ("/etc/sysctl.d/60-k8s.conf", "0644"),
        (
            "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
            "0644",
        ),
    ] {
        let stat = stdout(
            Command::new("debugfs")
                .arg("-R")
                .arg(format!("stat {path}"))
                .arg(&root),
        );
        assert!(
            stat.contains("User:     0   Group:     0"),
            "{path}: {stat}"
        );
        assert!(
            stat.contains(&format!("Mode:  {mode}")),
            "{path} mode {mode}: {stat}"
        );
    }
    let link = stdout(
        Command::new("debugfs")
            .arg("-R")
            .arg("stat /etc/systemd/system/multi-user.target.wants/kubelet.service")
            .arg(&root),
    );
    assert!(
        link.contains("Fast link dest: \"/usr/lib/systemd/system/kubelet.service\""),
        "{link}"
    );
    let cfg =
        k8r_builder::image::ext4::read_file(&root, "/usr/lib/k8r/variables.cfg").expect("cfg");
    assert!(String::from_utf8_lossy(&cfg).contains("K8S_VERSION=\"1.31.2\""));
}

#[test]
fn manifest_digests_match_the_bytes() {
    for built in [built_2604(), built_2404()] {
        let text = std::fs::read_to_string(built.images.join("manifest.toml")).expect("manifest");
        let m = Manifest::parse(&text).expect("valid manifest");
        assert_eq!(m.kubernetes_version, "1.31.2");
        let xz = built.images.join("image.img.xz");
        assert_eq!(
            k8r_card::digest::sha256_file(&xz).expect("sha"),
            m.root.compressed_sha256
        );
        let raw = run(Command::new("xz").arg("-dc").arg(&xz))
            .expect("xz -d")
            .stdout;
        assert_eq!(raw.len() as u64, m.root.size);
        assert_eq!(k8r_card::digest::hex(&sha2_digest(&raw)), m.root.sha256);
        for r in &m.root.ranges {
            let (o, l) = (
                usize::try_from(r.offset).expect("o"),
                usize::try_from(r.length).expect("l"),
            );
            assert_eq!(
                k8r_card::digest::hex(&sha2_digest(&raw[o..o + l])),
                r.sha256
            );
        }
        assert!(
            m.used_bytes() < m.root.size / 2,
            "used ranges skip free space"
        );
        // The root partition on the card is the same image.
        let p3 = scratch(&format!("p3-{}", m.build_id)).join("p3");
        extract_partition(&built.card, 3, &p3).expect("p3");
        let card_root = std::fs::read(&p3).expect("read p3");
        assert!(card_root[..raw.len()] == raw[..]);
        let boot = built.images.join("boot.tar.xz");
        assert_eq!(
            k8r_card::digest::sha256_file(&boot).expect("sha"),
            m.boot.compressed_sha256
        );
        // SHA256SUMS verifies with the standard tool.
        run(Command::new("sha256sum")
            .arg("-c")
            .arg("SHA256SUMS")
            .current_dir(&built.images))
        .expect("sha256sum -c");
        let xzl = stdout(Command::new("xz").args(["-lv", "--robot"]).arg(&xz));
        assert!(xzl.lines().any(|l| l.starts_with("totals\t")), "{xzl}");
    }
}

fn sha2_digest(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

#[test]
fn boot_and_recovery_partitions_are_set_up() {
    let built = built_2604();
    let p1 = fat_partition(&built.card, 1).expect("p1");
    let autoboot = String::from_utf8(p1.read("autoboot.txt").expect("autoboot")).expect("utf8");
    assert_eq!(autoboot, "[all]\ntryboot_a_b=1\nboot_partition=1\n");
    for f in [
        "start4.elf",
        "bootcode.bin",
        "vmlinuz",
        "k8r-recovery.img",
        "bcm2711-rpi-4-b.dtb",
        "k8r/node/variables.cfg",
    ] {
        assert!(p1.exists(f).expect("exists"), "p1 {f}");
    }
    // The image store: the build in its own directory, named current by the pointer.
    let pointer =
        String::from_utf8(p1.read("k8r/images/pointer.txt").expect("pointer")).expect("utf8");
    let pointer = k8r_card::store::Pointer::parse(&pointer).expect("pointer parses");
    assert_eq!(pointer.current, built.report.build_id);
    assert_eq!(pointer.previous, None);
    for f in ["image.img.xz", "boot.tar.xz", "manifest.toml"] {
        let stored = p1
            .read(&format!("k8r/images/{}/{f}", built.report.build_id))
            .expect("stored artefact");
        assert!(
            stored == std::fs::read(built.images.join(f)).expect("output"),
            "the stored {f} is the build's"
        );
    }
    let p2 = fat_partition(&built.card, 2).expect("p2");
    let cmdline =
        String::from_utf8(p2.read("current/cmdline.txt").expect("cmdline")).expect("utf8");
    assert!(
        cmdline
            .trim_end()
            .ends_with("cgroup_enable=memory cgroup_memory=1"),
        "{cmdline}"
    );
    assert!(cmdline.contains("console=serial0,115200"), "{cmdline}");
    let config = String::from_utf8(p2.read("config.txt").expect("config")).expect("utf8");
    assert!(
        config.starts_with("[all]\nos_prefix=current/\n"),
        "the 26.04 layout is kept: {config}"
    );
    assert_eq!(
        p2.read("autoboot.txt").expect("autoboot"),
        b"[all]\ntryboot_a_b=1\n"
    );
    let flat = fat_partition(&built_2404().card, 2).expect("p2");
    let cmdline = String::from_utf8(flat.read("cmdline.txt").expect("cmdline")).expect("utf8");
    assert!(
        cmdline.contains("cgroup_enable=memory"),
        "24.04: flat cmdline edited: {cmdline}"
    );
}

#[test]
fn two_builds_are_byte_identical() {
    let a = built_2404();
    let b = assemble_card("assemble-2404-again", BASE_2404, "");
    assert_eq!(a.report.build_id, b.report.build_id);
    for name in [
        "bootable_image.img",
        "image.img.xz",
        "boot.tar.xz",
        "manifest.toml",
        "SHA256SUMS",
    ] {
        let x = std::fs::read(a.images.join(name)).expect("a");
        let y = std::fs::read(b.images.join(name)).expect("b");
        assert!(
            x == y,
            "{name} differs between two builds of the same inputs"
        );
    }
}

/// `COMPRESSION="zstd"`: the root artefact is `image.img.zst`, a plain zstd file of
/// independent frames that decodes to the manifest's root; the manifest says so in format 2;
/// the card's store holds it; and a rebuild into the same directory leaves no root artefact of
/// the other compression behind (a stale `image.img.xz` beside a zstd manifest).
#[test]
fn a_zstd_build_writes_image_img_zst_and_no_stale_xz() {
    let built = assemble_card("assemble-zstd", BASE_2604, "COMPRESSION=\"zstd\"\n");
    let m = Manifest::parse(
        &std::fs::read_to_string(built.images.join("manifest.toml")).expect("manifest"),
    )
    .expect("parses");
    assert_eq!(
        (m.format, m.root.file.as_str(), m.root.compression),
        (2, "image.img.zst", k8r_manifest::Compression::Zstd)
    );
    assert_eq!(m.boot.file, "boot.tar.xz", "the boot archive stays xz");
    let zst = built.images.join("image.img.zst");
    assert!(!built.images.join("image.img.xz").exists());
    let plain = run(Command::new("zstd").arg("-dc").arg(&zst)).expect("zstd -d");
    assert_eq!(plain.stdout.len() as u64, m.root.size);
    assert_eq!(
        k8r_card::digest::sha256_hex(&plain.stdout),
        m.root.sha256,
        "zstd -d gives the manifest's root"
    );
    let sums = std::fs::read_to_string(built.images.join("SHA256SUMS")).expect("sums");
    assert!(
        sums.contains("  image.img.zst\n") && !sums.contains("image.img.xz"),
        "{sums}"
    );
    let p1 = fat_partition(&built.card, 1).expect("p1");
    let stored = p1
        .read(&format!(
            "k8r/images/{}/image.img.zst",
            built.report.build_id
        ))
        .expect("stored");
    assert!(
        stored == std::fs::read(&zst).expect("zst"),
        "the store holds it"
    );

    // A root artefact of an earlier xz build in the output directory is removed.
    std::fs::write(built.images.join("image.img.xz"), b"an earlier build").expect("stale");
    let again = k8r_tests::build_with(&built.dir, &built.dir.join("variables.cfg"), &built.images)
        .expect("rebuild");
    assert_eq!(again.build_id, built.report.build_id, "reproducible");
    assert!(
        !built.images.join("image.img.xz").exists(),
        "stale xz removed"
    );
    assert!(std::fs::read(&zst).expect("zst") == stored);
}
