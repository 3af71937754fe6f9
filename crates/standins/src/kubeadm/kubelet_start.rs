//! Test stand-in for kubeadm's `kubelet-start` and `kubelet-check` phases: writes
//! `/var/lib/kubelet/config.yaml`, `/var/lib/kubelet/kubeadm-flags.env` and the client
//! certificate placeholder `/var/lib/kubelet/pki/kubelet-client-current.pem` (a relative
//! symlink to a dated file), then, only on a real systemd boot, runs `systemctl restart kubelet`
//! and waits for the kubelet stand-in's pid file, as kubeadm waits for `:10248/healthz`. In host
//! tests (another root) it neither starts nor waits for the kubelet. It does not do a TLS
//! bootstrap.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{fail, Result};
use crate::{clock, formats, fsutil, kubelet, pki, say, warn, yaml, Ctx};

/// What the phase writes for this node.
#[derive(Debug, Clone)]
pub struct KubeletFiles<'a> {
    /// The KubeletConfiguration.
    pub config: &'a Value,
    /// CRI socket (`--container-runtime-endpoint`).
    pub cri_socket: &'a str,
    /// Node name; `--hostname-override` when it is not the host name.
    pub node_name: &'a str,
    /// `nodeRegistration.kubeletExtraArgs`.
    pub extra_args: &'a [(String, String)],
}

/// The `KUBELET_KUBEADM_ARGS` line.
pub fn flags_env(f: &KubeletFiles<'_>, hostname: &str) -> String {
    let mut flags = vec![format!("--container-runtime-endpoint={}", f.cri_socket)];
    if f.node_name != hostname {
        flags.push(format!("--hostname-override={}", f.node_name));
    }
    for (k, v) in f.extra_args {
        flags.push(format!("--{k}={v}"));
    }
    format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", flags.join(" "))
}

/// Writes the kubelet's files.
pub fn write(ctx: &mut Ctx<'_>, f: &KubeletFiles<'_>) -> Result<()> {
    let env = ctx.env;
    say!(ctx, "[kubelet-start] Writing kubelet environment file with flags to file \"/var/lib/kubelet/kubeadm-flags.env\"");
    fsutil::write(
        &env.path("/var/lib/kubelet/kubeadm-flags.env"),
        flags_env(f, &env.hostname()),
        0o644,
    )?;
    say!(
        ctx,
        "[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\""
    );
    fsutil::write(
        &env.path("/var/lib/kubelet/config.yaml"),
        yaml::to_yaml(f.config),
        0o644,
    )?;
    let dated = format!("kubelet-client-{}.pem", clock::stamp(env.now));
    let body = format!(
        "{}{}",
        pki::cert(
            &format!("O=system:nodes, CN=system:node:{}", f.node_name),
            ""
        )?,
        pki::key(&format!("system:node:{}", f.node_name))?
    );
    let dir = env.path("/var/lib/kubelet/pki");
    fsutil::write(&dir.join(&dated), body, 0o600)?;
    let link = dir.join("kubelet-client-current.pem");
    fsutil::remove_file(&link)?;
    std::os::unix::fs::symlink(&dated, &link).map_err(|source| crate::Failure::Io {
        context: format!("linking {}", link.display()),
        source,
    })?;
    Ok(())
}

/// `systemctl restart kubelet` on a real systemd boot (warns like kubeadm if it fails).
/// Returns whether the kubelet was (re)started.
pub fn start(ctx: &mut Ctx<'_>) -> bool {
    say!(ctx, "[kubelet-start] Starting the kubelet");
    if !ctx.env.systemd_booted() {
        return false;
    }
    let _ = kubelet::clear_pid(ctx.env);
    match std::process::Command::new("systemctl")
        .args(["restart", "kubelet"])
        .output()
    {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            warn!(
                ctx,
                "[kubelet-start] WARNING: unable to start the kubelet service: [{}]",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            warn!(
                ctx,
                "[kubelet-start] Please ensure kubelet is reloaded and running manually."
            );
            false
        }
        Err(e) => {
            warn!(
                ctx,
                "[kubelet-start] WARNING: unable to start the kubelet service: [{e}]"
            );
            false
        }
    }
}

/// Waits up to `timeout` for the kubelet stand-in if [`start`] started it.
pub fn wait(ctx: &mut Ctx<'_>, started: bool, timeout: Duration, phase: &str) -> Result<()> {
    if !started {
        return Ok(());
    }
    say!(
        ctx,
        "[kubelet-check] Waiting for a healthy kubelet at http://127.0.0.1:10248/healthz. This can take up to {}",
        formats::format_duration(timeout)
    );
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if kubelet::running(ctx.env).is_some() {
            say!(
                ctx,
                "[kubelet-check] The kubelet is healthy after {:.9}s",
                t0.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(fail(format!(
        "[kubelet-check] The kubelet is not healthy after {}\n\nUnfortunately, an error has occurred, likely caused by:\n\t- The kubelet is not running\n\t- The kubelet is unhealthy due to a misconfiguration of the node in some way (required cgroups disabled)\n\nIf you are on a systemd-powered system, you can try to troubleshoot the error with the following commands:\n\t- 'systemctl status kubelet'\n\t- 'journalctl -xeu kubelet'\n\nerror execution phase {phase}: failed while waiting for the kubelet to start: The HTTP call equal to 'curl -sSL http://127.0.0.1:10248/healthz' returned error: Get \"http://127.0.0.1:10248/healthz\": dial tcp 127.0.0.1:10248: connect: connection refused",
        formats::format_duration(timeout)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_env_names_the_runtime_and_overrides() {
        let cfg = serde_json::json!({});
        let extra = vec![("node-ip".to_string(), "10.0.0.5".to_string())];
        let f = KubeletFiles {
            config: &cfg,
            cri_socket: "unix:///var/run/containerd/containerd.sock",
            node_name: "pi-2",
            extra_args: &extra,
        };
        assert_eq!(
            flags_env(&f, "pi-2"),
            "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --node-ip=10.0.0.5\"\n"
        );
        assert!(flags_env(&f, "ubuntu").contains(" --hostname-override=pi-2 "));
    }
}
