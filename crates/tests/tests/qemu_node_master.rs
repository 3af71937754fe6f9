//! A master's life in QEMU, with real systemd on the working system and the Kubernetes
//! stand-ins (docs/standins.md): the first boot installs the card and `kubeadm init`s a
//! cluster (the configuration checked field by field, the join command 0600, the CNI applied,
//! the data partition grown to the end of the card); an image that skips a minor is refused by
//! `update-image`; `k8r reinstall` goes through recovery and back with the same machine id and
//! SSH host keys and no second init; `k8r update-image` over HTTP from the host's server and a
//! reinstall bring a newer Kubernetes: etcd is snapshotted, `kubeadm upgrade apply` runs, and
//! what the data partition holds survives.

use k8r_qemu::Machine;
use k8r_tests::node::{config, node_card, ok, port, serve_builds, wait_bootstrap, WAIT};
use k8r_tests::{assemble_card, BASE_2604_SYSTEMD};

/// The recorded copy of the configuration `kubeadm init` got, parsed.
fn init_config(vm: &mut Machine) -> Vec<serde_yaml_ng::Value> {
    let name = ok(
        vm,
        "ls /var/log/k8r-standin/ | grep -- '-kubeadm-kubeadm-init.yaml$' | tail -1",
    );
    let text = ok(vm, &format!("cat /var/log/k8r-standin/{}", name.trim()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .collect()
}

fn identity(vm: &mut Machine) -> String {
    ok(
        vm,
        "cat /etc/machine-id; sha256sum /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub",
    )
}

#[test]
fn a_master_initialises_reinstalls_and_upgrades() {
    let built = node_card("node-master", "");
    // The host's web server, playing the user's HTTP_IMAGE_URL: a newer build at /next/, a
    // build that skips a minor at /skip/.
    let www = built.dir.join("www");
    let next = assemble_card(
        "node-master-next",
        BASE_2604_SYSTEMD,
        "K8S_VERSION=\"1.32.1\"\n",
    );
    let skip = assemble_card(
        "node-master-skip",
        BASE_2604_SYSTEMD,
        "K8S_VERSION=\"1.33.0\"\n",
    );
    let server = serve_builds(&www, &[("next", &next), ("skip", &skip)]);
    let mut vm =
        Machine::start(config("node-master", &built.card, port(&server.url()), "")).expect("boot");

    // 1. First boot: the installer, then the working system and kubeadm init.
    vm.expect("K8R-RECOVERY: install verified", WAIT)
        .expect("installed");
    let done = wait_bootstrap(&mut vm).expect("bootstrap");
    assert!(done.contains("initialised a new cluster"), "{done}");
    let hostname = ok(&mut vm, "uname -n").trim().to_owned();
    assert!(
        hostname.starts_with("k8r-") && hostname.len() == 12,
        "{hostname}"
    );
    let docs = init_config(&mut vm);
    assert_eq!(docs[0]["kind"], "InitConfiguration");
    assert_eq!(docs[0]["nodeRegistration"]["name"], hostname.as_str());
    assert_eq!(docs[0]["localAPIEndpoint"]["advertiseAddress"], "10.0.2.15");
    assert_eq!(docs[0]["bootstrapTokens"][0]["ttl"], "0");
    assert_eq!(docs[1]["kubernetesVersion"], "v1.31.2");
    assert_eq!(docs[1]["controlPlaneEndpoint"], "10.0.2.15:6443");
    assert_eq!(docs[1]["networking"]["podSubnet"], "192.168.0.0/16");
    assert_eq!(docs[2]["cgroupDriver"], "systemd");
    assert_eq!(
        ok(
            &mut vm,
            "stat -c '%a %U' /usr/lib/k8r/join_string /var/lib/k8r-data/join_string"
        ),
        "600 root\n600 root\n"
    );
    let join = ok(&mut vm, "cat /usr/lib/k8r/join_string");
    assert!(
        join.starts_with("kubeadm join 10.0.2.15:6443 --token ")
            && join.contains("--discovery-token-ca-cert-hash sha256:"),
        "{join}"
    );
    assert_eq!(
        ok(&mut vm, "k8r join-command").trim(),
        join.trim(),
        "the stored command while its token is valid"
    );
    let applied = ok(
        &mut vm,
        "grep -c '^kubectl .*apply -f .*calico.yaml' /var/log/k8r-standin.log",
    );
    assert_eq!(applied.trim(), "1", "the CNI was applied once");
    let pool = ok(
        &mut vm,
        "grep -A1 'name: CALICO_IPV4POOL_CIDR' /var/lib/k8r/cni/calico.yaml",
    );
    assert!(
        !pool.contains('#') && pool.contains("value: \"192.168.0.0/16\""),
        "the pod network set: {pool}"
    );
    // The data partition grew to the end of the (larger) card, and holds the cluster.
    let size: u64 = ok(&mut vm, "df -B1M --output=size /var/lib/k8r-data | tail -1")
        .trim()
        .parse()
        .expect("size");
    assert!(size > 200, "k8r-data is {size} MiB");
    assert!(ok(&mut vm, "findmnt -n -o SOURCE /etc/kubernetes").contains("[/kept/etc-kubernetes]"));
    assert!(ok(&mut vm, "findmnt -n -o SOURCE /var/lib/etcd").contains("[/kept/var-lib-etcd]"));
    let before = identity(&mut vm);

    // 2. A build that skips a minor is not staged.
    let (status, out) = vm
        .run_command(
            "k8r update-image --url http://10.0.2.100/skip/",
            k8r_tests::node::CMD,
        )
        .expect("update-image");
    assert_eq!(status, 2, "{out}");
    assert!(
        out.contains("not staged") && out.contains("1.32.x first"),
        "{out}"
    );

    // 3. Reinstall: through recovery and back, same identity, no second init.
    vm.send("k8r reinstall").expect("reinstall");
    vm.expect("K8R-RECOVERY: install verified", WAIT)
        .expect("reinstalled");
    let done = wait_bootstrap(&mut vm).expect("bootstrap");
    assert!(done.contains("the kept control plane is up"), "{done}");
    assert_eq!(
        identity(&mut vm),
        before,
        "machine id and SSH host keys kept"
    );
    assert_eq!(ok(&mut vm, "uname -n").trim(), hostname);
    let (inits, _) = vm
        .run_command(
            "grep -c 'kubeadm init' /var/log/k8r-standin.log",
            k8r_tests::node::CMD,
        )
        .expect("grep");
    assert_ne!(inits, 0, "no kubeadm init after the reinstall");
    assert_eq!(
        ok(&mut vm, "ls /var/lib/k8r-data/etcd-snapshots | wc -l").trim(),
        "1"
    );

    // 4. update-image over HTTP, reinstall: the newer Kubernetes is applied.
    ok(&mut vm, "echo kept > /var/lib/etcd/k8r-test-marker");
    ok(
        &mut vm,
        "k8r config set HTTP_IMAGE_URL=http://10.0.2.100/next/",
    );
    let staged = ok(&mut vm, "k8r update-image");
    assert!(
        staged.contains(&next.report.build_id) && staged.contains("staged"),
        "{staged}"
    );
    let status_text = ok(&mut vm, "k8r status");
    assert!(
        status_text.contains(&format!("current {}", next.report.build_id)),
        "{status_text}"
    );
    assert!(
        status_text.contains(&format!("previous {}", built.report.build_id)),
        "{status_text}"
    );
    vm.send("k8r reinstall").expect("reinstall");
    vm.expect("K8R-RECOVERY: install verified", WAIT)
        .expect("installed the new build");
    let done = wait_bootstrap(&mut vm).expect("bootstrap");
    assert!(
        done.contains("control plane upgraded to Kubernetes 1.32.1"),
        "{done}"
    );
    let image = ok(
        &mut vm,
        "grep 'image:' /etc/kubernetes/manifests/kube-apiserver.yaml",
    );
    assert!(image.contains("kube-apiserver:v1.32.1"), "{image}");
    assert!(
        ok(
            &mut vm,
            "grep -c 'kubeadm upgrade apply v1.32.1' /var/log/k8r-standin.log"
        )
        .trim()
            == "1"
    );
    assert_eq!(
        ok(&mut vm, "cat /var/lib/etcd/k8r-test-marker").trim(),
        "kept"
    );
    assert_eq!(
        ok(&mut vm, "ls /var/lib/k8r-data/etcd-snapshots | wc -l").trim(),
        "2"
    );
    assert_eq!(identity(&mut vm), before);
    assert!(
        ok(&mut vm, "k8r config get HTTP_IMAGE_URL").contains("http://10.0.2.100/next/"),
        "the setting survived"
    );
    vm.send("poweroff").expect("poweroff");
    vm.wait_for_poweroff(WAIT).expect("off");
    let parts: Vec<u8> = vm.boots().iter().map(|b| b.choice.partition).collect();
    assert_eq!(
        parts,
        vec![1, 2, 1, 2, 1, 2],
        "install, working; reinstall; upgrade"
    );
}
