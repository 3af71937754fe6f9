//! [`check`]: a build's manifest against this node (its architecture, the card's root
//! partition), before anything is fetched.

use k8r_card::testkit::{build_manifest, BuildSpec};

use super::*;

/// A node running build `b1` (arm64, Kubernetes 1.31.2).
fn node() -> BuildInfo {
    BuildInfo {
        build_id: "b1".into(),
        k8s_version: Version::new(1, 31, 2),
        arch: "arm64".into(),
        build_epoch: 0,
        cni_manifest: None,
    }
}

/// Build `b2` with a root image of `size` bytes.
fn with_root(size: u64) -> Manifest {
    let mut m = build_manifest(&BuildSpec::new("b2"));
    m.root.size = size;
    m
}

fn refusal(r: Result<()>) -> String {
    let err = r.expect_err("refused");
    assert!(err.is::<Refused>(), "a refusal (exit code 2): {err:#}");
    format!("{err:#}")
}

#[test]
fn a_build_for_another_architecture_is_refused_with_the_fix() {
    let mut spec = BuildSpec::new("b2");
    spec.arch = "amd64".into();
    let m = build_manifest(&spec);
    assert_eq!(
        refusal(check(&m, &node(), None, None)),
        "build b2 is for amd64, this node is arm64: build the image with ARCH=\"arm64\""
    );
    assert_eq!(
        refusal(check(&m, &node(), Some(u64::MAX), None)),
        "build b2 is for amd64, this node is arm64: build the image with ARCH=\"arm64\"",
        "whatever the partition"
    );
    // The same build for this node's architecture passes.
    check(&build_manifest(&BuildSpec::new("b2")), &node(), None, None).expect("arm64");
}

#[test]
fn a_root_bigger_than_the_root_partition_is_refused_in_mib() {
    let p3 = 2048 << 20;
    assert_eq!(
        refusal(check(&with_root(3072 << 20), &node(), Some(p3), None)),
        "build b2's root is 3072 MiB, this card's root partition 2048 MiB: rebuild the image \
         with ROOT_SIZE at most 2048 MiB, or reflash the card with the new bootable_image.img"
    );
    // One sector over: refused, and the message does not show two equal sizes.
    let msg = refusal(check(&with_root(p3 + 512), &node(), Some(p3), None));
    assert!(
        msg.starts_with("build b2's root is 2049 MiB, this card's root partition 2048 MiB"),
        "{msg}"
    );
}

#[test]
fn a_root_as_big_as_the_root_partition_fits() {
    let p3 = 2048 << 20;
    check(&with_root(p3), &node(), Some(p3), None).expect("equal sizes fit");
    check(&with_root(p3 - 512), &node(), Some(p3), None).expect("smaller fits");
    // Off the card (tests, a root given with --root) the size is not known: not checked.
    check(&with_root(u64::MAX), &node(), None, None).expect("no partition: no check");
}
