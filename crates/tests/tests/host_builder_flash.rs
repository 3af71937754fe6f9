//! `k8r-builder flash` as a user meets it, on file targets standing in for card readers' block
//! devices (a real card cannot be attached here; the device checks — mounted, the host's own
//! disk — are unit-tested over mountinfo and sysfs texts in `flash::target`):
//! two cards at once, one of them a reused card full of old bytes, one with a worker's own
//! settings; only part of the image written, yet every file system on both checks clean and
//! the store is byte-identical; bad targets refused together before anything is written.

use std::path::Path;
use std::process::Command;

use k8r_builder::image::card::extract_partition;
use k8r_tests::{
    assemble_card, builder_command, fat_partition, fixture, mirror_server, output_text,
    test_config, BASE_2604,
};

const JOIN: &str = "kubeadm join 10.0.0.1:6443 --token k8rfls.0123456789abcdef --discovery-token-ca-cert-hash sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn fsck(part: &Path, fat: bool) {
    let out = if fat {
        Command::new("fsck.fat").arg("-n").arg(part).output()
    } else {
        Command::new("e2fsck").arg("-fn").arg(part).output()
    }
    .expect("fsck");
    assert!(
        out.status.success(),
        "{} is not clean: {}{}",
        part.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The number that follows the first `marker` in `text`.
fn number_after(text: &str, marker: &str) -> u64 {
    text.split(marker)
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {marker:?} in: {text}"))
}

#[test]
fn two_cards_at_once_only_data_written_everything_checks_clean() {
    let built = assemble_card("flash-two", BASE_2604, "");
    let dir = &built.dir;
    let image_len = std::fs::metadata(&built.card).expect("card").len();
    let card_len = image_len + (64 << 20);
    // A fresh card (zeros) and a reused one (every byte 0xaa).
    let fresh = dir.join("fresh.img");
    std::fs::File::create(&fresh)
        .and_then(|f| f.set_len(card_len))
        .expect("fresh");
    let reused = dir.join("reused.img");
    std::fs::write(&reused, vec![0xaa; usize::try_from(card_len).expect("len")]).expect("reused");
    let worker = dir.join("worker.cfg");
    std::fs::write(
        &worker,
        test_config(
            mirror_server(),
            &fixture(BASE_2604),
            &format!("KUBEADM_JOIN_STRING=\"{JOIN}\"\nNODE_NAME=\"worker-1\"\n"),
        ),
    )
    .expect("worker.cfg");
    let card = built.card.to_string_lossy().into_owned();
    let out = builder_command(
        &[
            "flash",
            "--image",
            &card,
            "--device",
            "fresh.img",
            "--device",
            "reused.img=worker.cfg",
        ],
        dir,
    )
    .output()
    .expect("flash");
    let (stdout, stderr) = output_text(&out);
    assert!(out.status.success(), "{stderr}");
    let written = number_after(&stdout, "flashed ");
    assert!(
        written < (image_len >> 20) / 2,
        "only the data: {written} MiB of {} MiB: {stdout}",
        image_len >> 20
    );
    assert!(stdout.contains("every written byte read back"), "{stdout}");
    // The card's partitions start on 1 MiB boundaries and ext4's blocks are 4 KiB: most of
    // what is written goes to both cards with O_DIRECT.
    let direct = number_after(&stdout, "free space; ");
    assert!(
        direct * 2 > written && direct <= written,
        "{direct} of {written} MiB with O_DIRECT: {stdout}"
    );
    assert!(
        stdout.contains("reused.img") && stdout.contains("KUBEADM_JOIN_STRING"),
        "{stdout}"
    );

    for target in [&fresh, &reused] {
        for (n, fat) in [(1, true), (2, true), (3, false), (4, false)] {
            let part = dir.join(format!("p{n}.img"));
            extract_partition(target, n, &part).expect("partition");
            fsck(&part, fat);
        }
        // The store the installer reads is the image's, byte for byte.
        let p1 = fat_partition(target, 1).expect("p1");
        let id = &built.report.build_id;
        let stored = p1
            .read(&format!("k8r/images/{id}/image.img.xz"))
            .expect("stored artefact");
        assert!(
            stored == std::fs::read(built.images.join("image.img.xz")).expect("artefact"),
            "{}: stored image.img.xz differs",
            target.display()
        );
    }
    let node = |target: &Path| {
        String::from_utf8(
            fat_partition(target, 1)
                .expect("p1")
                .read("k8r/node/variables.cfg")
                .expect("node settings"),
        )
        .expect("utf8")
    };
    assert!(node(&reused).contains(JOIN), "the worker's own settings");
    assert!(node(&reused).contains("NODE_NAME=\"worker-1\""));
    assert!(
        !node(&fresh).contains("k8rfls"),
        "the other card is a master"
    );
}

#[test]
fn bad_targets_are_refused_together_and_nothing_is_written() {
    let built = assemble_card("flash-refused", BASE_2604, "");
    let dir = &built.dir;
    let image_len = std::fs::metadata(&built.card).expect("card").len();
    let small = dir.join("small.img");
    std::fs::write(&small, vec![0x55; 4 << 20]).expect("small");
    let good = dir.join("good.img");
    std::fs::File::create(&good)
        .and_then(|f| f.set_len(image_len))
        .expect("good");
    let card = built.card.to_string_lossy().into_owned();
    let out = builder_command(
        &[
            "flash",
            "--image",
            &card,
            "--device",
            "good.img",
            "--device",
            "small.img",
            "--device",
            "/dev/null",
            "--device",
            "good.img",
        ],
        dir,
    )
    .output()
    .expect("flash");
    let (_, stderr) = output_text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "small.img holds 4 MiB, the image needs {} MiB: use a larger card",
            image_len >> 20
        )),
        "{stderr}"
    );
    assert!(stderr.contains("/dev/null: not a block device"), "{stderr}");
    assert!(stderr.contains("good.img: given twice"), "{stderr}");
    assert!(
        std::fs::read(&small)
            .expect("small")
            .iter()
            .all(|&b| b == 0x55),
        "the small card untouched"
    );
    assert!(
        std::fs::read(&good).expect("good").iter().all(|&b| b == 0),
        "the good card untouched: all targets are checked before any is written"
    );
}
