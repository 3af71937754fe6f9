//! A card written by `k8r-builder flash` onto a reused card (every byte of it 0xaa before):
//! `flash` skipped the image's free space, so the old bytes are still there, and the card
//! still boots the way a fresh one does: the recovery installer reads its store, installs and
//! verifies, and the working system comes up.

use std::time::Duration;

use k8r_qemu::{Machine, MachineConfig, Profile};
use k8r_tests::{assemble_card, builder_command, output_text, BASE_2604};

const INSTALL: Duration = Duration::from_secs(300);

#[test]
fn a_reused_card_flashed_with_only_the_data_installs_and_boots() {
    let built = assemble_card("flashed-card", BASE_2604, "");
    let image_len = std::fs::metadata(&built.card).expect("card").len();
    let reused = built.dir.join("reused.img");
    let len = usize::try_from(image_len + (64 << 20)).expect("len");
    std::fs::write(&reused, vec![0xaa; len]).expect("reused card");
    let card = built.card.to_string_lossy().into_owned();
    let out = builder_command(
        &["flash", "--image", &card, "--device", "reused.img"],
        &built.dir,
    )
    .output()
    .expect("flash");
    let (stdout, stderr) = output_text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("flashed "), "{stdout}");
    let old = std::fs::read(&reused).expect("read");
    assert!(
        old.windows(4096).any(|w| w.iter().all(|&b| b == 0xaa)),
        "flash skipped free space: the old bytes are still on the card"
    );
    drop(old);

    let mut vm =
        Machine::start(MachineConfig::new("flashed-card", &reused, Profile::Virt)).expect("boot");
    vm.expect("k8r: read-back verified", INSTALL)
        .expect("the installer wrote and verified the root from the flashed store");
    vm.expect("K8R-RECOVERY: install verified, rebooting", INSTALL)
        .expect("install done");
    let line = vm
        .expect("K8R-FIXTURE-ROOT:", INSTALL)
        .expect("the working system");
    assert!(line.contains("=== k8r-qemu: boot 2"), "{line}");
    vm.expect("# ", INSTALL).expect("prompt");
    vm.send("poweroff").expect("poweroff");
    vm.wait_for_poweroff(Duration::from_secs(60))
        .expect("power off");
}
