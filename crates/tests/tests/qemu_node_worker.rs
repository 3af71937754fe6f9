//! A worker in QEMU, with real systemd and the Kubernetes stand-ins: a card made a worker with
//! `k8r-builder inject` (the join command only in the node's settings on the recovery
//! partition) installs, and `kubeadm join` runs with that command and the node's name; a stale
//! Ready Node of the same name (the stand-in's `stale-node` knob, as after a fast reinstall)
//! makes the agent wait and retry instead of failing.
//!
//! The card is signed (`SIGNING_KEY`): the signed build installs; the same build's manifest
//! signed by another key, and unsigned, is refused by `update-image` (nothing fetched beyond
//! the manifest and its signature) and, put into the card's store, by the installer, with the
//! current build intact (the store's pointer, p3 by digest, `autoboot.txt` on recovery).
//!
//! No output or log of the scenario holds the join token's secret or the login password's hash
//! (console, journal, the agent's and kubeadm's logs, `k8r status`, `k8r config show`,
//! `inject`'s report); the settings file that holds the token is 0600 root, the boot
//! partition's `user-data` that holds the hash is 0600 root and its directory 0700, and so is
//! the agent's runtime directory under which it mounts the recovery partition.

use std::path::Path;

use k8r_builder::signing::{flag_setting, keygen, SigningKey, COMMAND_LINE};
use k8r_qemu::Machine;
use k8r_tests::http::Server;
use k8r_tests::node::{config, node_card, ok, port, wait_bootstrap, WAIT};
use k8r_tests::{
    fat_partition, fixture, mirror_server, scratch, stored, test_config, BASE_2604_SYSTEMD,
};

const JOIN: &str = "kubeadm join 10.0.0.1:6443 --token k8rwrk.q7w8e9r0t1y2u3i4 --discovery-token-ca-cert-hash sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const ON_RECOVERY: &str = "[all]\ntryboot_a_b=1\nboot_partition=1\n";

fn p3_digest(card: &Path) -> String {
    let p3 = scratch("node-worker-p3").join("p3");
    k8r_builder::image::card::extract_partition(card, 3, &p3).expect("p3");
    k8r_card::digest::sha256_file(&p3).expect("hash")
}

/// The join token's secret half: what must never be printed or logged.
const TOKEN_SECRET: &str = "q7w8e9r0t1y2u3i4";

/// The login password's hash (`password_hash` beside the worker's configuration), and a piece
/// of its digest part that must never be printed or logged.
const HASH: &str = "$6$k8rsaltsalt$f6ttKWY.CBvw1dl3yAcQWSMS19p/KAgRUg4.aL65vQJXEqJId34DN0joq4hb1dIwUFSxzKxAudnPFQjnIwzvq/";
const HASH_SECRET: &str = "f6ttKWY.CBvw1dl3yAcQWSMS19p";

/// Every output and log of the scenario so far is free of the token's secret: the console
/// (installer, kernel, journal lines forwarded to it), the whole journal, the agent's log,
/// kubeadm's log, `k8r status` and `k8r config show`, and `inject`'s report. The guest
/// command spells the secret in two quoted halves so the console's echo of it does not
/// match. The effective settings file that holds it is 0600 root.
fn no_secret_anywhere(vm: &mut Machine, inject: &str) {
    for secret in [TOKEN_SECRET, HASH_SECRET] {
        assert!(!inject.contains(secret), "inject: {inject}");
        assert!(
            !vm.transcript().contains(secret),
            "the console shows the secret {secret}"
        );
        let (half, rest) = secret.split_at(8);
        let found = ok(
            vm,
            &format!(
                "ls /var/log/k8r.log /var/log/kubeadm.log >/dev/null && \
                 (journalctl -o cat; cat /var/log/k8r.log /var/log/kubeadm.log; k8r status; \
                 k8r config show) | grep -c '{half}''{rest}' || true"
            ),
        );
        assert_eq!(found.trim(), "0", "a log or an output holds {secret}");
    }
    // The hash did reach the node, where cloud-init reads it: only root can.
    let (half, rest) = HASH_SECRET.split_at(8);
    assert_eq!(
        ok(
            vm,
            &format!("grep -c '{half}''{rest}' /boot/firmware/user-data")
        )
        .trim(),
        "1"
    );
    assert_eq!(
        ok(
            vm,
            "stat -c '%a %U' /boot/firmware/user-data /boot/firmware /run/k8r"
        )
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>(),
        ["600 root", "700 root", "700 root"]
    );
    let shown = ok(vm, "k8r config show | grep KUBEADM_JOIN_STRING");
    assert!(shown.contains("--token k8rwrk… "), "redacted: {shown}");
    assert_eq!(
        ok(vm, "stat -c '%a %U' /usr/lib/k8r/variables.cfg").trim(),
        "600 root"
    );
}

#[test]
fn an_injected_worker_joins_and_waits_out_a_stale_node() {
    let keys = scratch("node-worker-keys");
    let mine = keygen(&keys.join("mine")).expect("keygen");
    let other = keygen(&keys.join("other")).expect("keygen");
    let built = node_card(
        "node-worker",
        &format!("SIGNING_KEY=\"{}\"\n", mine.secret.display()),
    );
    // The same build's manifest signed by another key, and unsigned.
    let manifest = std::fs::read(built.images.join("manifest.toml")).expect("manifest");
    let other_key = SigningKey::load(
        &flag_setting("--signing-key", &other.secret),
        Path::new(COMMAND_LINE),
    )
    .expect("other key");
    let foreign = other_key
        .sign_manifest(&manifest, &built.report.build_id, 0)
        .expect("sign");
    let worker = built.dir.join("worker.cfg");
    std::fs::write(
        &worker,
        test_config(
            mirror_server(),
            &fixture(BASE_2604_SYSTEMD),
            &format!("KUBEADM_JOIN_STRING=\"{JOIN}\"\n"),
        ),
    )
    .expect("config");
    std::fs::write(built.dir.join("password_hash"), format!("{HASH}\n")).expect("hash");
    let report = k8r_builder::inject::inject(&built.card, &worker).expect("inject");
    assert!(report.contains("login password set"), "{report}");
    assert!(report.contains("set KUBEADM_JOIN_STRING"), "{report}");

    let server = Server::start().expect("server");
    server.put("/other/manifest.toml", manifest.clone());
    server.put("/other/manifest.toml.minisig", foreign.clone());
    server.put("/unsigned/manifest.toml", manifest.clone());
    let mut vm = Machine::start(config(
        "node-worker",
        &built.card,
        port(&server.url()),
        "k8r.standin.join=stale-node:1",
    ))
    .expect("boot");
    vm.expect("K8R-RECOVERY: install verified", WAIT)
        .expect("installed");
    let waited = vm
        .expect("is still Ready in the cluster", WAIT)
        .expect("stale node seen");
    assert!(waited.contains("attempt 1"), "{waited}");
    let done = wait_bootstrap(&mut vm).expect("bootstrap");
    assert!(done.contains("joined the cluster"), "{done}");
    no_secret_anywhere(&mut vm, &report);

    let hostname = ok(&mut vm, "uname -n").trim().to_owned();
    let joins = ok(&mut vm, "grep '^kubeadm join' /var/log/k8r-standin.log");
    let expected = format!(
        "kubeadm join 10.0.0.1:6443 --token k8rwrk.q7w8e9r0t1y2u3i4 --discovery-token-ca-cert-hash sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef --node-name {hostname}"
    );
    assert_eq!(
        joins.lines().filter(|l| l.trim() == expected).count(),
        2,
        "two attempts with the node's name: {joins}"
    );
    assert!(ok(&mut vm, "ls /etc/kubernetes/kubelet.conf").contains("kubelet.conf"));
    // A worker keeps its image store on the data partition, and no Kubernetes identity.
    assert!(ok(&mut vm, "findmnt -n -o SOURCE /var/lib/containerd")
        .contains("[/kept/var-lib-containerd]"));
    let (kept, _) = vm
        .run_command("findmnt -n /etc/kubernetes", k8r_tests::node::CMD)
        .expect("findmnt");
    assert_ne!(kept, 0, "/etc/kubernetes is not kept on a worker");
    // The token is only in the node's settings and the effective file, never in the image.
    assert!(
        ok(
            &mut vm,
            "grep -c q7w8e9r0t1y2u3i4 /usr/lib/k8r/variables.cfg"
        )
        .trim()
            == "1"
    );
    let (in_build, _) = vm
        .run_command(
            "grep -c q7w8e9r0t1y2u3i4 /usr/lib/k8r/build-variables.cfg",
            k8r_tests::node::CMD,
        )
        .expect("grep");
    assert_ne!(in_build, 0, "the image's own configuration holds no token");
    let status = ok(&mut vm, "k8r status");
    assert!(
        status.contains("(worker)") && status.contains("cluster:     joined"),
        "{status}"
    );
    assert!(!status.contains("q7w8e9r0t1y2u3i4"), "{status}");
    assert!(
        status.contains(&format!("signature:   signed by key ID {} (", mine.id)),
        "{status}"
    );

    // update-image refuses the build signed by another key and the unsigned one.
    for (dir, why) in [
        (
            "other",
            format!(
                "signed by key ID {}, this card trusts {}",
                other.id, mine.id
            ),
        ),
        ("unsigned", "manifest.toml is not signed".to_owned()),
    ] {
        let (code, out) = vm
            .run_command(
                &format!("k8r update-image --url http://10.0.2.100/{dir}/"),
                k8r_tests::node::CMD,
            )
            .expect("update-image");
        assert_eq!(code, 2, "{dir}: {out}");
        assert!(
            out.contains("not staged") && out.contains(&why),
            "{dir}: {out}"
        );
        assert_eq!(
            server.hits(&format!("/{dir}/image.img.xz")),
            0,
            "nothing fetched"
        );
    }
    let after = ok(&mut vm, "k8r status");
    assert!(
        after.contains(&format!("image store: current {}", built.report.build_id))
            && !after.contains("incomplete staging"),
        "{after}"
    );
    vm.send("poweroff").expect("poweroff");
    vm.wait_for_poweroff(WAIT).expect("off");

    // The installer refuses the same two, put into the store, and writes nothing.
    let p1 = fat_partition(&built.card, 1).expect("p1");
    let pointer = p1.read("k8r/images/pointer.txt").expect("pointer");
    let p3_before = p3_digest(&built.card);
    let sig_path = stored(&built, "manifest.toml.minisig");
    let good = p1.read(&sig_path).expect("stored signature");
    for (label, signature, why) in [
        (
            "other key",
            Some(foreign.as_bytes()),
            format!(
                "signed by key ID {}, this card trusts {}",
                other.id, mine.id
            ),
        ),
        ("unsigned", None, "manifest.toml is not signed".to_owned()),
    ] {
        match signature {
            Some(s) => p1.write(&sig_path, s, 0).expect("signature"),
            None => p1.remove(&sig_path).expect("no signature"),
        }
        p1.write("autoboot.txt", ON_RECOVERY.as_bytes(), 0)
            .expect("reinstall mode");
        vm.power_on().expect("power on");
        vm.expect("K8R-RECOVERY: install failed:", WAIT)
            .expect("refused");
        let cause = vm.expect("\n", WAIT).expect("cause");
        assert!(cause.contains(&why), "{label}: {cause}");
        vm.expect("choose 1-7:", WAIT).expect("menu");
        vm.power_cut();
        assert_eq!(
            String::from_utf8(p1.read("autoboot.txt").expect("autoboot")).expect("utf8"),
            ON_RECOVERY,
            "{label}"
        );
        assert_eq!(p1.read("k8r/images/pointer.txt").expect("pointer"), pointer);
    }
    assert_eq!(p3_digest(&built.card), p3_before, "p3 untouched");
    p1.write(&sig_path, &good, 0).expect("restore");
    let parts: Vec<u8> = vm.boots().iter().map(|b| b.choice.partition).collect();
    assert_eq!(parts, vec![1, 2, 1, 1], "install, working; two refusals");
}
