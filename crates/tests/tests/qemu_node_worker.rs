//! A worker in QEMU, with real systemd and the Kubernetes stand-ins: a card made a worker with
//! `k8r-builder inject` (the join command only in the node's settings on the recovery
//! partition) installs, and `kubeadm join` runs with that command and the node's name; a stale
//! Ready Node of the same name (the stand-in's `stale-node` knob, as after a fast reinstall)
//! makes the agent wait and retry instead of failing.

use k8r_qemu::Machine;
use k8r_tests::http::Server;
use k8r_tests::node::{config, node_card, ok, port, wait_bootstrap, WAIT};
use k8r_tests::{fixture, mirror_server, test_config, BASE_2604_SYSTEMD};

const JOIN: &str = "kubeadm join 10.0.0.1:6443 --token k8rwrk.q7w8e9r0t1y2u3i4 --discovery-token-ca-cert-hash sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn an_injected_worker_joins_and_waits_out_a_stale_node() {
    let built = node_card("node-worker", "");
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
    let report = k8r_builder::inject::inject(&built.card, &worker).expect("inject");
    assert!(report.contains("set KUBEADM_JOIN_STRING"), "{report}");

    let server = Server::start().expect("server");
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
    vm.send("poweroff").expect("poweroff");
    vm.wait_for_poweroff(WAIT).expect("off");
}
