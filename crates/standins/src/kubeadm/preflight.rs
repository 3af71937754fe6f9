//! Test stand-in for kubeadm's preflight checks (`cmd/kubeadm/app/preflight/checks.go`): files
//! and directories that must not exist, `net.ipv4.ip_forward`, the memory cgroup, swap (a
//! warning), with kubeadm's check names, so `--ignore-preflight-errors=NAME|all` works as for
//! the real one. It does not check ports, CPUs, memory size, binaries in `$PATH`, the kernel
//! configuration or the container runtime.

use crate::error::{fail, Result};
use crate::{fsutil, kubelet, warn, Ctx, Env};

/// A failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// kubeadm's check name (`DirAvailable--var-lib-etcd`).
    pub name: String,
    /// The message.
    pub message: String,
    /// Only a warning even if not ignored.
    pub warning: bool,
}

fn name_of(kind: &str, path: &str) -> String {
    format!("{kind}-{}", path.replace('/', "-"))
}

/// `FileAvailable--<path>`: the file must not exist.
pub fn file_available(env: &Env, path: &str, out: &mut Vec<Problem>) {
    if env.path(path).exists() {
        out.push(Problem {
            name: name_of("FileAvailable", path),
            message: format!("{path} already exists"),
            warning: false,
        });
    }
}

/// `DirAvailable--<path>`: the directory must be missing or empty.
pub fn dir_available(env: &Env, path: &str, out: &mut Vec<Problem>) {
    if !fsutil::dir_is_empty(&env.path(path)) {
        out.push(Problem {
            name: name_of("DirAvailable", path),
            message: format!("{path} is not empty"),
            warning: false,
        });
    }
}

/// The host checks init and join share.
pub fn host(env: &Env, out: &mut Vec<Problem>) {
    let fwd = "/proc/sys/net/ipv4/ip_forward";
    match std::fs::read_to_string(env.path(fwd)) {
        Ok(s) if s.trim() == "1" => {}
        Ok(_) => out.push(Problem {
            name: name_of("FileContent", fwd),
            message: format!("{fwd} contents are not set to 1"),
            warning: false,
        }),
        Err(_) => out.push(Problem {
            name: name_of("FileContent", fwd),
            message: format!("{fwd} does not exist"),
            warning: false,
        }),
    }
    let controllers =
        std::fs::read_to_string(env.path("/sys/fs/cgroup/cgroup.controllers")).unwrap_or_default();
    let missing: Vec<&str> = ["cpu", "cpuset", "memory", "pids"]
        .into_iter()
        .filter(|c| !controllers.split_whitespace().any(|x| x == *c))
        .collect();
    if !missing.is_empty() {
        out.push(Problem {
            name: "SystemVerification".into(),
            message: format!("missing required cgroups: {}", missing.join(" ")),
            warning: false,
        });
    }
    if kubelet::swap_on(env) {
        out.push(Problem {
            name: "Swap".into(),
            message: "swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, or disable swap on the node".into(),
            warning: true,
        });
    }
}

/// The control-plane checks (init, and join `--control-plane`).
pub fn control_plane(env: &Env, out: &mut Vec<Problem>) {
    let m = "/etc/kubernetes/manifests";
    for c in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "etcd",
    ] {
        file_available(env, &format!("{m}/{c}.yaml"), out);
    }
    dir_available(env, m, out);
    dir_available(env, "/var/lib/etcd", out);
}

/// Prints warnings, and fails with kubeadm's report if an error is left after `ignored`
/// (names, case-insensitive, or `all`).
pub fn report(ctx: &mut Ctx<'_>, problems: &[Problem], ignored: &[String]) -> Result<()> {
    let ignored: Vec<String> = ignored.iter().map(|s| s.to_lowercase()).collect();
    let all = ignored.iter().any(|s| s == "all");
    let mut errors = Vec::new();
    for p in problems {
        if p.warning || all || ignored.contains(&p.name.to_lowercase()) {
            warn!(ctx, "\t[WARNING {}]: {}", p.name, p.message);
        } else {
            errors.push(format!("\t[ERROR {}]: {}", p.name, p.message));
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(fail(format!(
        "error execution phase preflight: [preflight] Some fatal errors occurred:\n{}\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`",
        errors.join("\n")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TestRoot;

    #[test]
    fn host_checks_and_ignoring() {
        let t = TestRoot::new();
        let mut p = Vec::new();
        host(&t.env, &mut p);
        assert!(p.is_empty(), "{p:?}");
        t.file("/proc/sys/net/ipv4/ip_forward", "0\n");
        t.file("/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io pids\n");
        t.file("/proc/swaps", "Filename Type\n/swap.img file\n");
        host(&t.env, &mut p);
        let names: Vec<&str> = p.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "FileContent--proc-sys-net-ipv4-ip_forward",
                "SystemVerification",
                "Swap"
            ]
        );
        assert_eq!(p[1].message, "missing required cgroups: memory");
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut stdin = std::io::Cursor::new(Vec::new());
        let mut ctx = Ctx {
            env: &t.env,
            out: &mut out,
            err: &mut err,
            stdin: &mut stdin,
        };
        let e = report(&mut ctx, &p, &[]).expect_err("fatal").to_string();
        assert!(e.contains("\t[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1\n"), "{e}");
        assert!(!e.contains("Swap"), "{e}");
        report(
            &mut ctx,
            &p,
            &[
                "filecontent--proc-sys-net-ipv4-ip_forward".into(),
                "SystemVerification".into(),
            ],
        )
        .expect("ignored");
        report(&mut ctx, &p, &["all".into()]).expect("all");
        assert!(String::from_utf8_lossy(&err)
            .contains("[WARNING Swap]: swap is supported for cgroup v2 only"));
    }

    #[test]
    fn control_plane_checks_name_each_leftover() {
        let t = TestRoot::new();
        let mut p = Vec::new();
        control_plane(&t.env, &mut p);
        assert!(p.is_empty());
        t.file("/etc/kubernetes/manifests/etcd.yaml", "x");
        t.file("/var/lib/etcd/member/snap/db", "{}");
        control_plane(&t.env, &mut p);
        let msgs: Vec<String> = p
            .iter()
            .map(|x| format!("[ERROR {}]: {}", x.name, x.message))
            .collect();
        assert_eq!(
            msgs,
            [
                "[ERROR FileAvailable--etc-kubernetes-manifests-etcd.yaml]: /etc/kubernetes/manifests/etcd.yaml already exists",
                "[ERROR DirAvailable--etc-kubernetes-manifests]: /etc/kubernetes/manifests is not empty",
                "[ERROR DirAvailable--var-lib-etcd]: /var/lib/etcd is not empty",
            ]
        );
    }
}
