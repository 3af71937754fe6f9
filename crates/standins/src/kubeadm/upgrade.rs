//! Test stand-in for `kubeadm upgrade apply vX.Y.Z [-y] [--certificate-renewal=…]
//! [--etcd-upgrade=…]`: needs the admin kubeconfig and an API server stand-in that is up, all
//! control-plane Nodes Ready, and kubeadm's version skew policy (`phases/upgrade/policy.go`:
//! one minor at a time, not above kubeadm's own minor, a higher patch than kubeadm only with
//! `--force`), plus one k8r rule: no downgrades. Then it backs up etcd and the manifests under
//! `/etc/kubernetes/tmp/kubeadm-backup-{etcd,manifests}-<date>-<time>/`, rewrites the static Pod
//! manifests' image tags, renews the leaf certificate placeholders, rewrites
//! `/var/lib/kubelet/config.yaml` and sets the cluster's version. It does not wait for pods to
//! restart, upgrade addons beyond recording them, or implement `upgrade plan|node|diff`.

use super::control_plane::{self, MANIFESTS};
use super::token::admin_kubeconfig;
use super::{confirm, parse, preflight};
use crate::args::{switch, value};
use crate::error::{fail, Result};
use crate::state::ClusterState;
use crate::{clock, fsutil, kubeconfig, kubectl, pki, say, warn, yaml, Ctx, Version};

/// kubeadm's `MaximumAllowedMinorVersionUpgradeSkew`.
pub const UPGRADE_SKEW: u32 = 1;
/// Kubelets older than this many minors below the target block an upgrade (N-3 since 1.29).
pub const KUBELET_SKEW: u32 = 3;

/// Runs `kubeadm upgrade …`.
pub fn run(args: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let words = crate::args::leading_words(args);
    match words.first().copied() {
        Some("apply") => apply(args.get(1..).unwrap_or_default(), ctx),
        Some(other @ ("plan" | "node" | "diff")) => Err(fail(format!(
            "k8r stand-in: kubeadm upgrade {other} is not implemented (only upgrade apply)"
        ))),
        Some(other) => Err(fail(format!(
            "unknown command {other:?} for \"kubeadm upgrade\""
        ))),
        None => Err(fail("k8r stand-in: kubeadm upgrade needs apply")),
    }
}

/// The version-policy verdict: (mandatory errors, skippable errors).
pub fn policy(
    cluster: Version,
    kubeadm: Version,
    target: Version,
    kubelets: &[Version],
) -> (Vec<String>, Vec<String>) {
    let t = target.v();
    let mut mandatory = Vec::new();
    let mut skippable = Vec::new();
    if target.major != cluster.major {
        mandatory.push(format!("k8r stand-in: Specified version to upgrade to {t:?} changes the major version of the cluster ({})", cluster.v()));
    }
    if target.minor > cluster.minor + UPGRADE_SKEW {
        mandatory.push(format!("Specified version to upgrade to {t:?} is too high; kubeadm can upgrade only {UPGRADE_SKEW} minor version at a time"));
    }
    if target < cluster {
        mandatory.push(format!(
            "Specified version to upgrade to {t:?} is lower than the cluster version {:?}; the k8r stand-in refuses downgrades (the real kubeadm allows going back one minor version, k8r never does)",
            cluster.v()
        ));
    }
    if kubeadm < target {
        if target.minor > kubeadm.minor {
            mandatory.push(format!(
                "Specified version to upgrade to {t:?} is at least one minor release higher than the kubeadm minor release ({} > {}). Such an upgrade is not supported",
                target.minor, kubeadm.minor
            ));
        } else {
            skippable.push(format!(
                "Specified version to upgrade to {t:?} is higher than the kubeadm version {:?}. Upgrade kubeadm first using the tool you used to install kubeadm",
                kubeadm.v()
            ));
        }
    }
    if kubeadm.major > target.major || kubeadm.minor > target.minor {
        skippable.push(format!(
            "Kubeadm version {} can only be used to upgrade to Kubernetes version {}.{}",
            kubeadm.v(),
            kubeadm.major,
            kubeadm.minor
        ));
    }
    let old: Vec<String> = kubelets
        .iter()
        .filter(|k| target.minor > k.minor + KUBELET_SKEW)
        .map(|k| k.v())
        .collect();
    if !old.is_empty() {
        skippable.push(format!(
            "There are kubelets in this cluster that are too old that have these versions [{}]",
            old.join(" ")
        ));
    }
    (mandatory, skippable)
}

fn list(errs: &[String]) -> String {
    errs.iter().map(|e| format!("\t- {e}\n")).collect()
}

fn apply(args: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let p = parse(
        args,
        &[
            switch("yes").short('y'),
            switch("force").short('f'),
            switch("certificate-renewal"),
            switch("etcd-upgrade"),
            switch("dry-run"),
            value("kubeconfig"),
            value("config"),
            value("ignore-preflight-errors"),
            switch("allow-experimental-upgrades"),
            switch("allow-release-candidate-upgrades"),
            switch("print-config"),
            value("skip-phases"),
            value("patches"),
        ],
    )?;
    let given = p.positional.first().ok_or_else(|| {
        fail("missing one or more required arguments. Required arguments: [version]")
    })?;
    let target = Version::parse(given).ok_or_else(|| {
        fail(format!("[upgrade/version] FATAL: unable to parse normalized version {given:?} as a semantic version"))
    })?;
    let renew = !p.has("certificate-renewal") || p.on("certificate-renewal");
    let etcd_upgrade = !p.has("etcd-upgrade") || p.on("etcd-upgrade");
    let dry = p.on("dry-run");
    let force = p.on("force");
    let env = ctx.env;
    let own = env.version;

    say!(ctx, "[preflight] Running pre-flight checks.");
    let (shown, kc) = admin_kubeconfig(ctx, p.get("kubeconfig")).map_err(|e| {
        fail(format!(
            "couldn't create a Kubernetes client from file {:?}: {e}",
            p.get("kubeconfig").unwrap_or(super::token::ADMIN)
        ))
    })?;
    let server = kubeconfig::server(&kc).map_err(|e| {
        fail(format!(
            "couldn't create a Kubernetes client from file {shown:?}: {e}"
        ))
    })?;
    say!(ctx, "[upgrade/config] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...");
    say!(ctx, "[upgrade/config] Use 'kubeadm init phase upload-config --config your-config-file' to re-upload it.");
    let state = kubectl::apiserver_up(env).map_err(|_| {
        fail(format!("[upgrade/init config] FATAL: unable to fetch the kubeadm-config ConfigMap: failed to get config map: Get \"https://{server}/api/v1/namespaces/kube-system/configmaps/kubeadm-config?timeout=10s\": dial tcp {server}: connect: connection refused"))
    })?;
    say!(ctx, "[upgrade] Running cluster health checks");
    let not_ready: Vec<&str> = state
        .nodes
        .iter()
        .filter(|n| n.control_plane && !n.ready)
        .map(|n| n.name.as_str())
        .collect();
    if !not_ready.is_empty() {
        let problem = preflight::Problem {
            name: "ControlPlaneNodesReady".into(),
            message: format!(
                "there are NotReady control-planes in the cluster: [{}]",
                not_ready.join(" ")
            ),
            warning: false,
        };
        preflight::report(ctx, &[problem], &p.list("ignore-preflight-errors")).map_err(|e| {
            fail(format!(
                "[upgrade/health] FATAL: {}",
                e.to_string()
                    .trim_start_matches("error execution phase preflight: ")
            ))
        })?;
    }
    let cluster = state.kubernetes_version;
    say!(
        ctx,
        "[upgrade/version] You have chosen to upgrade to version {:?}",
        target.v()
    );
    say!(ctx, "[upgrade/versions] Cluster version: {}", cluster.v());
    say!(ctx, "[upgrade/versions] kubeadm version: {}", own.v());
    let kubelets: Vec<Version> = state
        .nodes
        .iter()
        .filter_map(|n| Version::parse(&n.kubelet_version))
        .collect();
    let (mandatory, skippable) = policy(cluster, own, target, &kubelets);
    if !mandatory.is_empty() {
        return Err(fail(format!(
            "[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n{}\nPlease fix the misalignments highlighted above and try upgrading again",
            list(&mandatory)
        )));
    }
    if !skippable.is_empty() {
        if !force {
            return Err(fail(format!(
                "[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n{}\nCan be bypassed if you pass the --force flag",
                list(&skippable)
            )));
        }
        warn!(ctx, "[upgrade/version] Found {} potential version compatibility errors but skipping since the --force flag is set: \n\n{}", skippable.len(), list(&skippable));
    }
    if !p.on("yes") && !dry {
        confirm(ctx, "[upgrade]", "Are you sure you want to proceed?")?;
    }
    say!(
        ctx,
        "[upgrade/prepull] Pulling images required for setting up a Kubernetes cluster"
    );
    say!(ctx, "[upgrade/prepull] This might take a minute or two, depending on the speed of your internet connection");
    say!(ctx, "[upgrade/apply] Upgrading your Static Pod-hosted control plane to version {:?} (timeout: 5m0s)...", target.v());
    if dry {
        say!(ctx, "[dryrun] Finished dryrunning successfully!");
        return Ok(());
    }
    let stamp = clock::stamp(env.now);
    let tmp = "/etc/kubernetes/tmp";
    if etcd_upgrade {
        let backup = format!("{tmp}/kubeadm-backup-etcd-{stamp}/etcd");
        fsutil::copy_tree(&env.path("/var/lib/etcd"), &env.path(&backup))?;
        say!(ctx, "[upgrade/etcd] Upgrading to TLS for etcd");
        say!(ctx, "[upgrade/staticpods] Preparing for \"etcd\" upgrade");
        say!(
            ctx,
            "[upgrade/staticpods] Backed up etcd data to {:?}",
            backup.trim_end_matches("/etcd")
        );
    }
    let manifest_backup = format!("{tmp}/kubeadm-backup-manifests-{stamp}");
    say!(ctx, "[upgrade/staticpods] Writing new Static Pod manifests to \"{tmp}/kubeadm-upgraded-manifests-{stamp}\"");
    let mut names: Vec<(&str, String)> = control_plane::COMPONENTS
        .iter()
        .map(|c| (*c, target.v()))
        .collect();
    if etcd_upgrade {
        names.insert(0, ("etcd", control_plane::etcd_tag(target).to_string()));
    }
    for (name, tag) in names {
        let path = format!("{MANIFESTS}/{name}.yaml");
        let text = fsutil::read(&env.path(&path))?;
        let backup = format!("{manifest_backup}/{name}.yaml");
        fsutil::write(&env.path(&backup), &text, 0o600)?;
        let new = control_plane::retag(&text, name, &tag);
        if new == text {
            say!(ctx, "[upgrade/staticpods] Current and new manifests of {name} are equal, skipping upgrade");
            continue;
        }
        if renew && name != "etcd" {
            say!(
                ctx,
                "[upgrade/staticpods] Renewing {} certificate",
                name.trim_start_matches("kube-")
            );
        }
        fsutil::write(&env.path(&path), new, 0o600)?;
        say!(ctx, "[upgrade/staticpods] Moved new manifest to {path:?} and backed up old manifest to {backup:?}");
        say!(
            ctx,
            "[upgrade/staticpods] Waiting for the kubelet to restart the component"
        );
        say!(
            ctx,
            "[upgrade/staticpods] Component {name:?} upgraded successfully!"
        );
    }
    if renew {
        for (name, subject) in pki::CERT_PAIRS.iter().filter(|(n, _)| !pki::is_ca(n)) {
            pki::write_pair(env, name, subject, "")?;
        }
    }
    say!(ctx, "[upgrade/control-plane] The control plane instance for this node was successfully upgraded!");
    say!(
        ctx,
        "[upgrade/kubeconfig] The kubeconfig files for this node were successfully upgraded!"
    );
    let kubelet_config = ClusterState::update(env, |s| {
        s.kubernetes_version = target;
        Ok(s.kubelet_config.clone())
    })?;
    let kubelet_path = env.path("/var/lib/kubelet/config.yaml");
    if kubelet_path.exists() {
        let backup = format!("{tmp}/kubeadm-kubelet-config-{stamp}/config.yaml");
        fsutil::write(&env.path(&backup), fsutil::read(&kubelet_path)?, 0o644)?;
        say!(
            ctx,
            "[upgrade] Backing up kubelet config file to {}",
            backup.trim_end_matches("/config.yaml")
        );
    }
    if !kubelet_config.is_null() {
        fsutil::write(&kubelet_path, yaml::to_yaml(&kubelet_config), 0o644)?;
    }
    say!(
        ctx,
        "[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\""
    );
    say!(ctx, "[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!");
    say!(
        ctx,
        "[upgrade/bootstrap-token] Configuring bootstrap token and cluster-info RBAC rules"
    );
    say!(ctx, "[upgrade/addon] Applied essential addon: CoreDNS");
    say!(ctx, "[upgrade/addon] Applied essential addon: kube-proxy");
    say!(
        ctx,
        "\n[upgrade/successful] SUCCESS! Your cluster was upgraded to {:?}. Enjoy!\n",
        target.v()
    );
    say!(ctx, "[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your kubelets if you haven't already done so.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::init::tests::{init, CONFIG};
    use super::*;
    use crate::testutil::TestRoot;
    use crate::Tool;

    const V31: Version = Version::new(1, 31, 2);

    #[test]
    fn skew_policy() {
        let ok = |c, k, t| policy(c, k, t, &[]) == (vec![], vec![]);
        assert!(
            ok(V31, Version::new(1, 31, 5), Version::new(1, 31, 5)),
            "patch up"
        );
        assert!(
            ok(V31, Version::new(1, 32, 1), Version::new(1, 32, 1)),
            "minor up by one"
        );
        assert!(ok(V31, V31, V31), "re-apply");
        let (m, _) = policy(V31, Version::new(1, 33, 0), Version::new(1, 33, 0), &[]);
        assert_eq!(m, ["Specified version to upgrade to \"v1.33.0\" is too high; kubeadm can upgrade only 1 minor version at a time"]);
        let (m, _) = policy(V31, V31, Version::new(1, 31, 1), &[]);
        assert!(
            m[0].contains("lower than the cluster version \"v1.31.2\""),
            "{m:?}"
        );
        let (m, _) = policy(V31, V31, Version::new(1, 32, 0), &[]);
        assert!(
            m[0].contains(
                "is at least one minor release higher than the kubeadm minor release (32 > 31)"
            ),
            "{m:?}"
        );
        let (m, s) = policy(V31, V31, Version::new(1, 31, 3), &[]);
        assert!(m.is_empty());
        assert_eq!(s, ["Specified version to upgrade to \"v1.31.3\" is higher than the kubeadm version \"v1.31.2\". Upgrade kubeadm first using the tool you used to install kubeadm"]);
        let (_, s) = policy(V31, Version::new(1, 32, 1), Version::new(1, 31, 3), &[]);
        assert_eq!(
            s,
            ["Kubeadm version v1.32.1 can only be used to upgrade to Kubernetes version 1.32"]
        );
        let (_, s) = policy(
            Version::new(1, 32, 0),
            Version::new(1, 33, 0),
            Version::new(1, 33, 0),
            &[Version::new(1, 29, 0)],
        );
        assert!(
            s[0].starts_with("There are kubelets in this cluster that are too old"),
            "{s:?}"
        );
    }

    /// A master at 1.31.2 with a Ready node; returns the fake kubelet.
    fn master(t: &TestRoot) -> std::process::Child {
        init(t, CONFIG).ok();
        ClusterState::update(&t.env, |s| {
            let n = s.node_entry("pi-1", t.env.now);
            n.ready = true;
            n.kubelet_version = "1.31.2".into();
            Ok(())
        })
        .expect("ready");
        t.fake_kubelet()
    }

    fn upgrade(version: Version, target: &str) -> (TestRoot, crate::testutil::Ran) {
        let base = TestRoot::new();
        let mut k = master(&base);
        let t = TestRoot {
            env: crate::Env {
                version,
                ..base.env.clone()
            },
            dir: base.dir,
        };
        let r = t.run(Tool::Kubeadm, &["upgrade", "apply", target, "-y"]);
        k.kill().expect("kill");
        let _ = k.wait();
        (t, r)
    }

    #[test]
    fn one_minor_up_rewrites_manifests_state_and_backs_up() {
        let (t, r) = upgrade(Version::new(1, 32, 1), "v1.32.1");
        r.ok();
        assert!(
            r.out.contains(
                "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"v1.32.1\". Enjoy!\n"
            ),
            "{}",
            r.out
        );
        let api = t.read("/etc/kubernetes/manifests/kube-apiserver.yaml");
        assert_eq!(
            control_plane::image_tag(&api, "kube-apiserver").as_deref(),
            Some("v1.32.1")
        );
        let etcd = t.read("/etc/kubernetes/manifests/etcd.yaml");
        assert_eq!(
            control_plane::image_tag(&etcd, "etcd").as_deref(),
            Some("3.5.16-0")
        );
        let s = ClusterState::load(&t.env).expect("load").expect("state");
        assert_eq!(s.kubernetes_version, Version::new(1, 32, 1));
        let stamp = clock::stamp(t.env.now);
        let old = t.read(&format!(
            "/etc/kubernetes/tmp/kubeadm-backup-manifests-{stamp}/kube-apiserver.yaml"
        ));
        assert_eq!(
            control_plane::image_tag(&old, "kube-apiserver").as_deref(),
            Some("v1.31.2")
        );
        let backed: ClusterState = serde_json::from_str(&t.read(&format!(
            "/etc/kubernetes/tmp/kubeadm-backup-etcd-{stamp}/etcd/member/snap/db"
        )))
        .expect("backup");
        assert_eq!(backed.kubernetes_version, V31);
        assert!(t
            .read("/var/lib/kubelet/config.yaml")
            .contains("cgroupDriver: systemd"));
    }

    #[test]
    fn patch_up_is_fine_and_the_refusals_change_nothing() {
        let (_, r) = upgrade(Version::new(1, 31, 5), "v1.31.5");
        r.ok();
        for (kubeadm, target, want) in [
            (Version::new(1, 33, 0), "v1.33.0", "Specified version to upgrade to \"v1.33.0\" is too high; kubeadm can upgrade only 1 minor version at a time"),
            (V31, "v1.31.1", "the k8r stand-in refuses downgrades"),
            (V31, "v1.32.0", "is at least one minor release higher than the kubeadm minor release (32 > 31)"),
            (V31, "v1.31.3", "is higher than the kubeadm version \"v1.31.2\""),
        ] {
            let (t, r) = upgrade(kubeadm, target);
            r.failed();
            assert!(r.err.starts_with("[upgrade/version] FATAL: the --version argument is invalid due to these"), "{}", r.err);
            assert!(r.err.contains(want), "{want}\n{}", r.err);
            let s = ClusterState::load(&t.env).expect("load").expect("state");
            assert_eq!(s.kubernetes_version, V31);
            assert!(t.read("/etc/kubernetes/manifests/kube-apiserver.yaml").contains(":v1.31.2\n"));
        }
    }

    #[test]
    fn upgrade_needs_the_admin_kubeconfig_a_running_apiserver_and_ready_masters() {
        let t = TestRoot::new();
        let r = t.run(Tool::Kubeadm, &["upgrade", "apply", "v1.31.2", "-y"]);
        r.failed();
        assert!(
            r.err
                .contains("failed to load admin kubeconfig: open /etc/kubernetes/admin.conf"),
            "{}",
            r.err
        );
        init(&t, CONFIG).ok();
        let r = t.run(Tool::Kubeadm, &["upgrade", "apply", "v1.31.2", "-y"]);
        r.failed();
        assert!(
            r.err
                .contains("unable to fetch the kubeadm-config ConfigMap")
                && r.err
                    .contains("dial tcp k8s.lan:6443: connect: connection refused"),
            "{}",
            r.err
        );
        let mut k = t.fake_kubelet();
        let r = t.run(Tool::Kubeadm, &["upgrade", "apply", "v1.31.2", "-y"]);
        r.failed();
        assert!(r.err.contains("[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: [pi-1]"), "{}", r.err);
        ClusterState::update(&t.env, |s| {
            s.node_entry("pi-1", 0).ready = true;
            Ok(())
        })
        .expect("ready");
        let r = t.run_stdin(Tool::Kubeadm, &["upgrade", "apply", "v1.31.2"], "no\n");
        r.failed();
        assert!(r.err.contains("won't proceed"), "{}", r.err);
        t.run(Tool::Kubeadm, &["upgrade", "apply"]).failed();
        t.run(Tool::Kubeadm, &["upgrade", "plan"]).failed();
        k.kill().expect("kill");
        let _ = k.wait();
    }
}
