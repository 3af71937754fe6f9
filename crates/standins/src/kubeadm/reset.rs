//! Test stand-in for `kubeadm reset [-f]`: removes what `init` and `join` created — the
//! contents of `/etc/kubernetes/manifests`, `/etc/kubernetes/pki` and `/var/lib/kubelet`, the
//! kubeconfigs, and (on a node with a local etcd manifest) the contents of `/var/lib/etcd`,
//! i.e. the stand-in cluster state — and, on a real systemd boot, stops the kubelet. It does not
//! touch CNI configuration, iptables, `$HOME/.kube/config` or `/etc/kubernetes/tmp`, and a
//! worker's reset does not remove its Node from the master.

use super::{confirm, parse};
use crate::args::{switch, value};
use crate::error::Result;
use crate::{fsutil, say, Ctx};

const DIRS: [&str; 3] = [
    "/etc/kubernetes/manifests",
    "/var/lib/kubelet",
    "/etc/kubernetes/pki",
];
const FILES: [&str; 6] = [
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/super-admin.conf",
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/bootstrap-kubelet.conf",
    "/etc/kubernetes/controller-manager.conf",
    "/etc/kubernetes/scheduler.conf",
];

/// Runs `kubeadm reset`.
pub fn run(args: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let p = parse(
        args,
        &[
            switch("force").short('f'),
            value("cri-socket"),
            switch("cleanup-tmp-dir"),
            value("skip-phases"),
            value("ignore-preflight-errors"),
            value("kubeconfig"),
        ],
    )?;
    let env = ctx.env;
    if !p.on("force") {
        say!(ctx, "W0000 00:00:00.000000 reset.go] [reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' will be reverted.");
        confirm(ctx, "[reset]", "Are you sure you want to proceed?")?;
    }
    say!(ctx, "[preflight] Running pre-flight checks");
    if env.systemd_booted() {
        say!(ctx, "[reset] Stopping the kubelet service");
        let _ = std::process::Command::new("systemctl")
            .args(["stop", "kubelet"])
            .status();
    }
    if env.path("/etc/kubernetes/manifests/etcd.yaml").exists() {
        say!(
            ctx,
            "[reset] Deleting contents of the etcd data directory: /var/lib/etcd"
        );
        fsutil::empty_dir(&env.path("/var/lib/etcd"))?;
    } else {
        say!(ctx, "[reset] No etcd config found. Assuming external etcd");
        say!(
            ctx,
            "[reset] Please, manually reset etcd to prevent further issues"
        );
    }
    say!(
        ctx,
        "[reset] Deleting contents of directories: [{}]",
        DIRS.join(" ")
    );
    for d in DIRS {
        fsutil::empty_dir(&env.path(d))?;
    }
    say!(ctx, "[reset] Deleting files: [{}]", FILES.join(" "));
    for f in FILES {
        fsutil::remove_file(&env.path(f))?;
    }
    if p.on("cleanup-tmp-dir") {
        fsutil::empty_dir(&env.path("/etc/kubernetes/tmp"))?;
    }
    say!(ctx, "\nThe reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d\n");
    say!(
        ctx,
        "The reset process does not reset or clean up iptables rules or IPVS tables."
    );
    say!(ctx, "If you wish to reset iptables, you must do so manually by using the \"iptables\" command.\n");
    say!(
        ctx,
        "The reset process does not clean your kubeconfig files and you must remove them manually."
    );
    say!(
        ctx,
        "Please, check the contents of the $HOME/.kube/config file."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::init::tests::{init, CONFIG};
    use super::*;
    use crate::testutil::TestRoot;
    use crate::Tool;

    #[test]
    fn reset_removes_what_init_created_and_asks_without_force() {
        let t = TestRoot::new();
        init(&t, CONFIG).ok();
        let r = t.run_stdin(Tool::Kubeadm, &["reset"], "n\n");
        r.failed();
        assert!(
            r.err
                .contains("won't proceed; the user didn't answer (Y|y) in order to continue"),
            "{}",
            r.err
        );
        assert!(t.exists("/etc/kubernetes/admin.conf"));
        t.run_stdin(Tool::Kubeadm, &["reset"], "y\n").ok();
        for f in FILES.iter().chain(
            [
                "/etc/kubernetes/pki/ca.crt",
                "/etc/kubernetes/manifests/kube-apiserver.yaml",
                crate::state::DB,
                "/var/lib/kubelet/config.yaml",
            ]
            .iter(),
        ) {
            assert!(!t.exists(f), "{f}");
        }
        assert!(t.exists("/var/log/k8r-standin.log"), "the record survives");
        init(&t, CONFIG).ok();
    }
}
