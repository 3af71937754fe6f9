//! [`check`]: the refusals made from the manifest alone, before anything is fetched.

use super::*;
use k8r_card::testkit::{build_manifest, BuildSpec};

fn this_node() -> BuildInfo {
    BuildInfo {
        build_id: "b1".into(),
        k8s_version: Version::new(1, 31, 2),
        arch: "arm64".into(),
        build_epoch: 0,
        cni_manifest: None,
    }
}

fn refusal(r: Result<()>) -> String {
    let e = r.expect_err("refused");
    assert!(e.is::<Refused>(), "not a refusal: {e:#}");
    e.to_string()
}

#[test]
fn a_build_for_another_architecture_is_refused() {
    let m = build_manifest(&BuildSpec {
        arch: "amd64".into(),
        ..BuildSpec::new("b2")
    });
    assert_eq!(
        refusal(check(&m, &this_node(), None, None)),
        "build b2 is for amd64, this node is arm64: build the image with ARCH=\"arm64\""
    );
    let m = build_manifest(&BuildSpec::new("b2"));
    check(&m, &this_node(), None, None).expect("same arch");
}

#[test]
fn a_root_larger_than_the_root_partition_is_refused() {
    let m = build_manifest(&BuildSpec::new("b2"));
    let size = m.root.size;
    check(&m, &this_node(), Some(size), None).expect("exactly fits");
    let p3 = size - 512;
    assert_eq!(
        refusal(check(&m, &this_node(), Some(p3), None)),
        format!(
            "build b2's root is {} MiB, this card's root partition {} MiB: rebuild the image with \
             ROOT_SIZE at most {} MiB, or reflash the card with the new bootable_image.img",
            size >> 20,
            p3 >> 20,
            p3 >> 20
        )
    );
}
