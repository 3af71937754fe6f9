//! The trial commit: after an install the recovery installer boots the new build once, on
//! trial (`k8r_card::trial`); this module commits it — `autoboot.txt` → the working system,
//! then the record's `committed` phase — once the node is locally healthy, or gives up after
//! the timeout and reboots into recovery, which rolls back.
//!
//! Health is local on purpose (a network or cluster outage must never roll a node back):
//! `k8r setup` succeeded on this boot, containerd answers on its socket, the kubelet runs
//! once the node has a kubelet configuration (a worker that has not joined yet has none), and
//! on a node that holds a control plane the local API server answers `/readyz`.
//!
//! `k8r-trial.service` runs `k8r trial-watch` on every boot (it does nothing without a pending
//! trial); `k8r commit` commits by hand (refused while unhealthy); `k8r bootstrap` commits
//! before a `kubeadm upgrade apply` (after setup's etcd snapshot).
//!
//! Failpoints (`k8r.failpoint=` or `K8R_FAILPOINT`) stop a commit where a power cut could:
//! [`BEFORE_COMMIT`], [`AFTER_AUTOBOOT`], [`AFTER_RECORD`].

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use k8r_card::install_log::format_entry;
use k8r_card::trial::{on_agent_check, AgentAction, Health, Phase, Trial};
use k8r_card::{image_root, Part};
use k8r_manifest::signature::TrustedKeys;

use crate::build_info::BuildInfo;
use crate::card::{RecoverySource, P1};
use crate::exec::Cmd;
use crate::failpoint::Failpoints;
use crate::host::Host;
use crate::kube::{Kube, APISERVER_MANIFEST};

/// Written by `k8r setup` when every step succeeded; under `/run`, so once per boot.
pub const SETUP_OK: &str = "/run/k8r/setup-ok";
/// containerd's socket.
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
/// The kubelet's configuration (kubeadm writes it at init and join).
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
/// The kubelet stand-in's pid file: how a test root (no systemd) says its kubelet runs.
pub const STANDIN_KUBELET_PID: &str = "/run/k8r-standin/kubelet.pid";

/// Failpoint: the node is healthy, nothing of the commit is written yet.
pub const BEFORE_COMMIT: &str = "trial-before-commit";
/// Failpoint: `autoboot.txt` points at the working system, the record still says on trial.
pub const AFTER_AUTOBOOT: &str = "trial-after-autoboot";
/// Failpoint: the record says committed, the build's trusted keys are not taken in yet.
pub const AFTER_RECORD: &str = "trial-after-record";

/// `TRIAL_TIMEOUT` from the node's settings, in seconds. A trial must end even when the
/// settings cannot be read (the build under trial may be the one that broke them): then the
/// default, with a warning.
pub fn timeout_setting(host: &Host) -> u64 {
    match crate::settings::load(host) {
        Ok(s) => s.config.trial_timeout_secs,
        Err(e) => {
            let default = k8r_config::keys::DEFAULT_TRIAL_TIMEOUT_SECS;
            log::warn!("TRIAL_TIMEOUT unknown ({e:#}): using the default, {default} s");
            default
        }
    }
}

/// What is healthy on this node now.
pub fn health(host: &Host) -> Health {
    let kubelet = host
        .path(KUBELET_CONFIG)
        .exists()
        .then(|| kubelet_runs(host));
    let api_ready = host.path(APISERVER_MANIFEST).exists().then(|| {
        Kube::new(host)
            .kubectl(["get", "--raw=/readyz"])
            .quiet()
            .run_status()
            .is_ok_and(|o| o.code == 0 && o.stdout.trim() == "ok")
    });
    Health {
        setup: host.path(SETUP_OK).exists(),
        containerd: UnixStream::connect(host.path(CONTAINERD_SOCKET)).is_ok(),
        kubelet,
        api_ready,
    }
}

fn kubelet_runs(host: &Host) -> bool {
    if host.is_system() {
        return Cmd::new("systemctl")
            .args(["is-active", "--quiet", "kubelet.service"])
            .quiet()
            .run_status()
            .is_ok_and(|o| o.code == 0);
    }
    host.read_text_opt(STANDIN_KUBELET_PID)
        .ok()
        .flatten()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// Seconds since boot (`/proc/uptime`; 0 on a test root without one).
fn uptime(host: &Host) -> Duration {
    std::fs::read_to_string(host.path("/proc/uptime"))
        .ok()
        .and_then(|u| {
            u.split_whitespace()
                .next()
                .and_then(|s| s.parse::<f64>().ok())
        })
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(Duration::ZERO, Duration::from_secs_f64)
}

/// What one look found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No trial pending.
    NoTrial,
    /// Committed now (or a half-done commit finished).
    Committed(String),
    /// Not healthy yet.
    Waiting(Vec<&'static str>),
    /// The trial failed; the record says why and the node reboots into recovery.
    GaveUp(String),
}

/// Looks once and acts: commits when healthy, records the failure when `elapsed` passed
/// `timeout` (the caller reboots).
pub fn step(
    host: &Host,
    recovery: &RecoverySource,
    elapsed: Duration,
    timeout: Duration,
    failpoints: &Failpoints,
) -> Result<Outcome> {
    let (trial, next_boot) = {
        let p1 = P1::open(host, recovery, false)?;
        let (trial, warnings) = p1.recovery().trial();
        for w in warnings {
            log::warn!("{w}");
        }
        (trial, p1.recovery().next_boot())
    };
    let running = BuildInfo::load(host)?.build_id;
    let h = health(host);
    match on_agent_check(trial.as_ref(), next_boot, &running, &h, elapsed, timeout) {
        AgentAction::Nothing => {
            // A commit cut short before the build's keys were taken in is finished here.
            if trial
                .as_ref()
                .is_some_and(|t| t.build == running && t.phase == Phase::Committed)
            {
                adopt_build_keys(host, recovery, &running);
            }
            Ok(Outcome::NoTrial)
        }
        AgentAction::Wait { missing } => Ok(Outcome::Waiting(missing)),
        AgentAction::Tidy => {
            let t = pending(trial)?;
            let p1 = P1::open(host, recovery, true)?;
            p1.recovery()
                .write_trial(&t.committed())
                .context("recording the commit on the recovery partition")?;
            drop(p1);
            adopt_build_keys(host, recovery, &t.build);
            Ok(Outcome::Committed(t.build))
        }
        AgentAction::Commit => {
            let t = pending(trial)?;
            failpoints.hit(BEFORE_COMMIT)?;
            let p1 = P1::open(host, recovery, true)?;
            // `Recovery::commit_trial`'s two steps, with a failpoint between them.
            p1.recovery()
                .set_next_boot(Part::Boot)
                .context("committing the trial: autoboot.txt")?;
            failpoints.hit(AFTER_AUTOBOOT)?;
            p1.recovery()
                .write_trial(&t.committed())
                .context("committing the trial: k8r/trial")?;
            let _ = p1.recovery().append_install_log(&format_entry(
                uptime(host).as_secs_f64(),
                &t.build,
                "committed by the node agent: healthy (setup, containerd, kubelet, API server as applicable)",
            ));
            log::info!(
                "build {} is healthy: committed (autoboot.txt points at this system)",
                t.build
            );
            drop(p1);
            failpoints.hit(AFTER_RECORD)?;
            adopt_build_keys(host, recovery, &t.build);
            Ok(Outcome::Committed(t.build))
        }
        AgentAction::GiveUp { cause } => {
            let t = pending(trial)?;
            let p1 = P1::open(host, recovery, true)?;
            p1.recovery()
                .write_trial(&t.failed(&cause))
                .context("recording the failed trial")?;
            let _ = p1.recovery().append_install_log(&format_entry(
                uptime(host).as_secs_f64(),
                &t.build,
                &format!("trial given up by the node agent: {cause}"),
            ));
            log::error!(
                "trial of build {} failed: {cause}; rebooting into recovery",
                t.build
            );
            Ok(Outcome::GaveUp(cause))
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::NoTrial => f.write_str("no trial pending"),
            Outcome::Committed(build) => write!(f, "build {build} committed"),
            Outcome::Waiting(missing) => write!(f, "waiting for {}", missing.join(", ")),
            Outcome::GaveUp(cause) => write!(f, "trial failed: {cause}"),
        }
    }
}

/// After `build` committed: its own trusted key list (the root's copy, `TRUSTED_KEYS` at
/// build time) becomes the card's, the rule of `k8r_card::trust::CardTrust::after_commit`.
/// Failures are logged, not fatal: the commit stands, and the next boot tries again.
fn adopt_build_keys(host: &Host, recovery: &RecoverySource, build: &str) {
    if let Err(e) = try_adopt_build_keys(host, recovery, build) {
        log::error!("taking in build {build}'s trusted keys: {e:#} (tried again at the next boot)");
    }
}

fn try_adopt_build_keys(host: &Host, recovery: &RecoverySource, build: &str) -> Result<()> {
    let Some(text) = host.read_text_opt(image_root::TRUSTED_KEYS)? else {
        return Ok(());
    };
    let keys =
        TrustedKeys::parse(&text).map_err(|e| anyhow!("{}: {e}", image_root::TRUSTED_KEYS))?;
    let next = {
        let p1 = P1::open(host, recovery, false)?;
        p1.recovery().trust()?.after_commit(build, &keys)
    };
    let Some(next) = next else {
        return Ok(());
    };
    let p1 = P1::open(host, recovery, true)?;
    p1.recovery()
        .write_trust(&next)
        .context("writing the card's trusted keys")?;
    let _ = p1.recovery().append_install_log(&format_entry(
        uptime(host).as_secs_f64(),
        build,
        &format!(
            "this card now trusts key ID {} (the build's TRUSTED_KEYS)",
            next.keys.ids()
        ),
    ));
    log::info!(
        "build {build} committed: this card now trusts key ID {} for the next update",
        next.keys.ids()
    );
    Ok(())
}

fn pending(trial: Option<Trial>) -> Result<Trial> {
    trial.ok_or_else(|| anyhow!("the trial record went away while it was read"))
}

/// One [`step`] that commits if the node is healthy now and never gives up (no timeout).
fn step_now(host: &Host, recovery: &RecoverySource) -> Result<Outcome> {
    step(
        host,
        recovery,
        Duration::ZERO,
        Duration::MAX,
        &Failpoints::from_system(),
    )
}

/// `k8r commit`: commits a pending trial now if the node is healthy; refuses with what is
/// missing otherwise.
pub fn commit(host: &Host, recovery: &RecoverySource) -> Result<Outcome> {
    match step_now(host, recovery)? {
        Outcome::Waiting(missing) => Err(crate::bootstrap::Refused(format!(
            "not committing: not healthy yet ({} not up); `k8r status` shows the trial",
            missing.join(", ")
        ))
        .into()),
        other => Ok(other),
    }
}

/// `k8r trial-watch` (`k8r-trial.service`): looks every `interval` until the trial is
/// committed or `timeout` after boot passed; then records the failure and reboots (a plain
/// reboot: `autoboot.txt` still says recovery).
pub fn watch(
    host: &Host,
    recovery: &RecoverySource,
    timeout: Duration,
    interval: Duration,
) -> Result<Outcome> {
    let start = Instant::now();
    let booted = uptime(host);
    let failpoints = Failpoints::from_system();
    let mut said = None;
    loop {
        let outcome = step(
            host,
            recovery,
            booted + start.elapsed(),
            timeout,
            &failpoints,
        )?;
        match outcome {
            Outcome::Waiting(missing) => {
                if said.as_ref() != Some(&missing) {
                    log::info!(
                        "trial: waiting for {} (commit within {} s of boot)",
                        missing.join(", "),
                        timeout.as_secs()
                    );
                    said = Some(missing);
                }
                std::thread::sleep(interval);
            }
            Outcome::GaveUp(_) => {
                if host.is_system() {
                    crate::reinstall::reboot(host)?;
                } else {
                    log::warn!("not rebooting a test root");
                }
                return Ok(outcome);
            }
            Outcome::NoTrial | Outcome::Committed(_) => return Ok(outcome),
        }
    }
}

/// Before `kubeadm upgrade apply` on a master: commits a pending trial (the API server answered
/// `/readyz`, setup took the etcd snapshot), so a failure of the upgrade itself never rolls the
/// node back to a build whose control plane is older than the upgraded etcd.
pub fn commit_before_upgrade(host: &Host, recovery: Option<&RecoverySource>) -> Result<()> {
    let Some(recovery) = recovery else {
        return Ok(());
    };
    match step_now(host, recovery)? {
        Outcome::Waiting(missing) => Err(anyhow!(
            "not upgrading: this build's trial is not committed and the node is not healthy ({} not up)",
            missing.join(", ")
        )),
        Outcome::Committed(b) => {
            log::info!("build {b} committed before kubeadm upgrade apply");
            Ok(())
        }
        Outcome::NoTrial | Outcome::GaveUp(_) => Ok(()),
    }
}

/// One line for `k8r status`.
pub fn status_line(trial: Option<&Trial>) -> String {
    trial.map_or_else(|| "none recorded".to_owned(), ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn outcomes_read_as_sentences_in_the_log() {
        assert_eq!(
            Outcome::Committed("20260423T000000Z-c7783d8f".into()).to_string(),
            "build 20260423T000000Z-c7783d8f committed"
        );
        assert_eq!(Outcome::NoTrial.to_string(), "no trial pending");
        assert_eq!(
            Outcome::Waiting(vec!["containerd", "kubelet"]).to_string(),
            "waiting for containerd, kubelet"
        );
        assert_eq!(
            Outcome::GaveUp("no commit within 600 s".into()).to_string(),
            "trial failed: no commit within 600 s"
        );
    }
}
