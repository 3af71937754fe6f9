//! The installer under faults, in QEMU: garbage on p3, a failing card, a damaged image, a
//! power cut mid-write, a hostile boot.tar.xz; and the recovery menu over the console.

use std::io::Write;
use std::time::Duration;

use k8r_builder::image::card::{extract_partition, partition};
use k8r_manifest::Manifest;
use k8r_qemu::{Machine, MachineConfig, Profile};
use k8r_tests::{assemble_card, fat_partition, fsck_partition, scratch, stored, Built, BASE_2404};

const WAIT: Duration = Duration::from_secs(300);

fn manifest(built: &Built) -> Manifest {
    Manifest::parse(&std::fs::read_to_string(built.images.join("manifest.toml")).expect("read"))
        .expect("manifest")
}

fn autoboot(built: &Built) -> String {
    String::from_utf8(
        fat_partition(&built.card, 1)
            .expect("p1")
            .read("autoboot.txt")
            .expect("autoboot"),
    )
    .expect("utf8")
}

const ON_RECOVERY: &str = "[all]\ntryboot_a_b=1\nboot_partition=1\n";

fn sha(data: &[u8]) -> String {
    use sha2::Digest;
    k8r_card::digest::hex(&sha2::Sha256::digest(data))
}

/// Overwrites partition `n` of the card with `byte`.
fn fill_partition(built: &Built, n: u8, byte: u8) {
    let p = partition(&built.card, n).expect("partition");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&built.card)
        .expect("open");
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(p.byte_offset())).expect("seek");
    let chunk = vec![byte; 1 << 20];
    for _ in 0..(p.byte_len() >> 20) {
        f.write_all(&chunk).expect("write");
    }
}

fn add_to_recovery_cmdline(built: &Built, extra: &str) {
    let p1 = fat_partition(&built.card, 1).expect("p1");
    let cmd = String::from_utf8(p1.read("cmdline.txt").expect("cmdline")).expect("utf8");
    p1.write(
        "cmdline.txt",
        format!("{} {extra}\n", cmd.trim_end()).as_bytes(),
        0,
    )
    .expect("write");
}

fn remove_from_recovery_cmdline(built: &Built, token: &str) {
    let p1 = fat_partition(&built.card, 1).expect("p1");
    let cmd = String::from_utf8(p1.read("cmdline.txt").expect("cmdline")).expect("utf8");
    let kept: Vec<&str> = cmd.split_whitespace().filter(|t| *t != token).collect();
    p1.write("cmdline.txt", format!("{}\n", kept.join(" ")).as_bytes(), 0)
        .expect("write");
}

#[test]
fn garbage_on_p3_still_ends_in_a_clean_root() {
    let built = assemble_card("fault-garbage-p3", BASE_2404, "");
    fill_partition(&built, 3, 0xA5);
    let mut vm = Machine::start(MachineConfig::new(
        "fault-garbage-p3",
        &built.card,
        Profile::Virt,
    ))
    .expect("boot");
    vm.expect("K8R-RECOVERY: install verified, rebooting", WAIT)
        .expect("install");
    let p3 = scratch("fault-garbage-p3-check").join("p3");
    extract_partition(&built.card, 3, &p3).expect("p3");
    k8r_builder::image::ext4::check(&p3).expect("e2fsck -fn clean over garbage");
    let bytes = std::fs::read(&p3).expect("read");
    for r in &manifest(&built).root.ranges {
        let (o, l) = (
            usize::try_from(r.offset).expect("o"),
            usize::try_from(r.length).expect("l"),
        );
        assert_eq!(sha(&bytes[o..o + l]), r.sha256);
    }
    assert!(
        bytes[bytes.len() - 4096..].iter().all(|&b| b == 0xA5),
        "free space at the end was not written"
    );
    vm.expect("K8R-FIXTURE-ROOT:", WAIT)
        .expect("working system");
}

#[test]
fn a_card_that_fails_read_back_stays_on_recovery_and_names_the_range() {
    let built = assemble_card("fault-readback", BASE_2404, "");
    let m = manifest(&built);
    let p3 = partition(&built.card, 3).expect("p3");
    let range = &m.root.ranges[0];
    let sector = (p3.byte_offset() + range.offset + range.length / 2) / 512;
    let rules = built.dir.join("blkdebug.conf");
    std::fs::write(
        &rules,
        format!("[inject-error]\nevent = \"none\"\niotype = \"read\"\nerrno = \"5\"\nsector = \"{sector}\"\nonce = \"off\"\n"),
    )
    .expect("rules");
    let mut cfg = MachineConfig::new("fault-readback", &built.card, Profile::Virt);
    cfg.blkdebug = Some(rules);
    let mut vm = Machine::start(cfg).expect("boot");
    let text = vm
        .expect("K8R-RECOVERY: install failed:", WAIT)
        .expect("install fails");
    let cause = vm.expect("\n", WAIT).expect("cause");
    assert!(
        cause.contains("read-back") && cause.contains("range 0"),
        "{cause}"
    );
    assert!(!text.contains("install verified"));
    vm.expect("choose 1-7:", WAIT).expect("menu");
    assert_eq!(autoboot(&built), ON_RECOVERY);
}

#[test]
fn a_flipped_byte_in_the_image_is_refused() {
    let built = assemble_card("fault-flipped", BASE_2404, "");
    let p1 = fat_partition(&built.card, 1).expect("p1");
    let path = stored(&built, "image.img.xz");
    let mut xz = p1.read(&path).expect("xz");
    let mid = xz.len() / 2;
    xz[mid] ^= 0x40;
    p1.write(&path, &xz, 0).expect("write");
    let m = manifest(&built);
    let mut vm = Machine::start(MachineConfig::new(
        "fault-flipped",
        &built.card,
        Profile::Virt,
    ))
    .expect("boot");
    vm.expect("K8R-RECOVERY: install failed:", WAIT)
        .expect("refused");
    let cause = vm.expect("\n", WAIT).expect("cause");
    assert!(cause.contains("image.img.xz"), "{cause}");
    assert!(
        cause.contains(&m.root.compressed_sha256) && cause.contains(&sha(&xz)),
        "both digests: {cause}"
    );
    vm.expect("choose 1-7:", WAIT).expect("menu");
    assert_eq!(autoboot(&built), ON_RECOVERY);
}

/// Two power cuts, then an install: one while the recovery partition is writable (the
/// attempt record being written), one in the middle of the root's write (p1 read-only then).
/// The first leaves p1 marked dirty, and the next boot repairs it once its files read back;
/// the second leaves p1 clean. After the install p1, p2 and p3 pass the reference checkers.
#[test]
fn power_cuts_mid_install_are_redone_and_leave_every_filesystem_clean() {
    let built = assemble_card("fault-power-cut", BASE_2404, "");
    add_to_recovery_cmdline(&built, "k8r.failpoint=while-p1-writable");
    let mut vm = Machine::start(MachineConfig::new(
        "fault-power-cut",
        &built.card,
        Profile::Virt,
    ))
    .expect("boot");
    vm.expect("k8r-failpoint: while-p1-writable", WAIT)
        .expect("stopped with p1 writable");
    vm.power_cut();
    let (clean, fsck) = fsck_partition(&built.card, 1, true);
    assert!(
        !clean && fsck.contains("Dirty bit"),
        "cut while writable: {fsck}"
    );

    remove_from_recovery_cmdline(&built, "k8r.failpoint=while-p1-writable");
    add_to_recovery_cmdline(&built, "k8r.failpoint=during-root-write");
    vm.power_on().expect("power on");
    let text = vm
        .expect("k8r-failpoint: during-root-write", WAIT)
        .expect("stopped mid-write");
    assert!(
        text.contains("was not cleanly unmounted"),
        "p1 repaired at boot: {text}"
    );
    vm.power_cut();
    assert_eq!(autoboot(&built), ON_RECOVERY);
    let (clean, fsck) = fsck_partition(&built.card, 1, true);
    assert!(clean, "a cut while p1 is read-only leaves it clean: {fsck}");

    remove_from_recovery_cmdline(&built, "k8r.failpoint=during-root-write");
    vm.power_on().expect("power on");
    let text = vm
        .expect("K8R-RECOVERY: install verified, rebooting", WAIT)
        .expect("redone");
    assert!(
        text.contains("attempt 3 of 3"),
        "both interrupted attempts counted: {text}"
    );
    assert!(
        text.contains("sectors written to the recovery partition this boot"),
        "{text}"
    );
    vm.expect("K8R-FIXTURE-ROOT:", WAIT)
        .expect("working system");
    let parts: Vec<u8> = vm.boots().iter().map(|b| b.choice.partition).collect();
    assert_eq!(
        parts,
        vec![1, 1, 1, 2],
        "cut → cut → recovery again → working system"
    );
    vm.expect("# ", WAIT).expect("prompt");
    vm.send("poweroff").expect("poweroff");
    vm.wait_for_poweroff(WAIT).expect("power off");
    for (n, fat) in [(1, true), (2, true), (3, false)] {
        let (clean, fsck) = fsck_partition(&built.card, n, fat);
        assert!(clean, "p{n} after the install: {fsck}");
    }
}

#[test]
fn a_hostile_boot_archive_is_refused_and_nothing_lands_outside_p2() {
    for (name, entry) in [("dotdot", "../evil"), ("symlink", "link")] {
        let test = format!("fault-tar-{name}");
        let built = assemble_card(&test, BASE_2404, "");
        // A boot.tar.xz with one hostile entry, with matching digests in the manifest.
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        if name == "symlink" {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            tar.append_link(&mut h, entry, "/mnt/recovery/k8r")
                .expect("symlink");
        } else {
            h.set_size(4);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            // append_data refuses "..": write the raw name through the header.
            h.as_old_mut().name[..entry.len()].copy_from_slice(entry.as_bytes());
            h.set_cksum();
            tar.append(&h, &b"evil"[..]).expect("append");
        }
        let plain = tar.into_inner().expect("tar");
        let compressed = xz_compress(&plain);
        let p1 = fat_partition(&built.card, 1).expect("p1");
        p1.write(&stored(&built, "boot.tar.xz"), &compressed, 0)
            .expect("write tar");
        let mut m = manifest(&built);
        m.boot.compressed_size = compressed.len() as u64;
        m.boot.compressed_sha256 = sha(&compressed);
        m.boot.size = plain.len() as u64;
        m.boot.sha256 = sha(&plain);
        p1.write(&stored(&built, "manifest.toml"), m.render().as_bytes(), 0)
            .expect("manifest");

        let mut vm =
            Machine::start(MachineConfig::new(&test, &built.card, Profile::Virt)).expect("boot");
        vm.expect("K8R-RECOVERY: install failed:", WAIT)
            .expect("refused");
        let cause = vm.expect("\n", WAIT).expect("cause");
        assert!(
            cause.contains("boot.tar.xz") && cause.contains(entry),
            "{name}: {cause}"
        );
        vm.expect("choose 1-7:", WAIT).expect("menu");
        vm.send("4").expect("shell");
        vm.expect("shell (exit", WAIT).expect("shell starts");
        vm.run_command("true", Duration::from_secs(30))
            .expect("shell ready");
        // Nothing outside the (unmounted) p2 mount point: no /mnt/evil, /evil, /mnt/link.
        let (found, out) = vm
            .run_command(
                "ls -d /evil /mnt/evil /mnt/link /mnt/boot/link 2>/dev/null",
                Duration::from_secs(30),
            )
            .expect("look");
        assert_ne!(found, 0, "{name}: nothing may exist: {out}");
        assert_eq!(autoboot(&built), ON_RECOVERY);
        // The installer's lines also went to the kernel log, and p1 is mounted with dirsync
        // (vfat writes directory entries only then; docs/installer.md).
        let (status, out) = vm
            .run_command(
                "dmesg | grep -c 'k8r: K8R-RECOVERY: writing the root partition'",
                Duration::from_secs(30),
            )
            .expect("dmesg");
        // The last line: a long command line is echoed wrapped, in several lines.
        let count = out.trim().lines().last().unwrap_or_default();
        assert_eq!((status, count), (0, "1"), "{name}: kernel log: {out}");
        let (_, mounts) = vm
            .run_command(
                "grep ' /mnt/recovery ' /proc/mounts",
                Duration::from_secs(30),
            )
            .expect("mounts");
        assert!(
            mounts.contains("vfat") && mounts.contains("dirsync"),
            "{name}: p1 mount options: {mounts}"
        );
    }
}

fn xz_compress(data: &[u8]) -> Vec<u8> {
    let out = std::process::Command::new("xz")
        .args(["-c", "-0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().expect("stdin").write_all(data)?;
            child.wait_with_output()
        })
        .expect("xz");
    out.stdout
}

#[test]
fn the_menu_works_over_the_console() {
    let built = assemble_card("menu", BASE_2404, "");
    let mut vm =
        Machine::start(MachineConfig::new("menu", &built.card, Profile::Virt)).expect("boot");
    vm.expect("any key for menu", WAIT).expect("countdown");
    vm.send("x").expect("key");
    vm.expect("key pressed: recovery menu", WAIT)
        .expect("menu opens");
    vm.expect("choose 1-7:", WAIT).expect("menu");
    vm.send("5").expect("boot working");
    vm.expect("the last install did not verify", WAIT)
        .expect("refused before any install");
    vm.send("2").expect("verify");
    vm.expect("the stored image verifies", WAIT)
        .expect("verify works");
    vm.send("1").expect("reinstall");
    vm.expect("K8R-RECOVERY: install verified, rebooting", WAIT)
        .expect("installed");
    vm.expect("K8R-FIXTURE-ROOT:", WAIT)
        .expect("working system");
    vm.expect("# ", WAIT).expect("prompt");
    // Reinstall mode, the way set_reinstall_mode.sh does it: autoboot back to 1, reboot.
    vm.send("poweroff").expect("poweroff");
    vm.wait_for_poweroff(Duration::from_secs(60)).expect("off");
    fat_partition(&built.card, 1)
        .expect("p1")
        .write("autoboot.txt", ON_RECOVERY.as_bytes(), 0)
        .expect("autoboot");
    vm.power_on().expect("on");
    vm.expect("any key for menu", WAIT).expect("countdown");
    vm.send("x").expect("key");
    vm.expect("choose 1-7:", WAIT).expect("menu");
    vm.send("3").expect("log");
    let log = vm
        .expect("--- end of install log ---", WAIT)
        .expect("log shown");
    assert!(log.contains("verified"), "{log}");
    vm.expect("choose 1-7:", WAIT).expect("menu again");
    vm.send("5").expect("boot working");
    vm.expect("booting the working system", WAIT)
        .expect("boot working");
    vm.expect("K8R-FIXTURE-ROOT:", WAIT)
        .expect("working system again");
    let last = vm.boots().last().expect("boot").choice.partition;
    assert_eq!(last, 2);
}
