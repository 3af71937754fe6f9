//! The trial record on partition 1 (`k8r/trial`) and the two pure decisions built on it: what
//! the recovery installer does at boot ([`on_recovery_boot`]) and what the node agent does on
//! the working system ([`on_agent_check`]).
//!
//! A verified install does not make its build permanent. The installer records a trial
//! (phase `boot`), leaves `autoboot.txt` at `boot_partition=1` and boots partition 2 once with
//! the firmware's one-shot partition request. The node agent commits — `autoboot.txt` → 2,
//! then the record's phase `committed` — once the system is locally healthy. Any reset before
//! the commit lands in recovery, which finds the phase still `boot`: the trial failed. It then
//! installs the previous build (a rollback, which goes through its own trial), or, with no
//! previous build, the same build once more (a retry); a failed rollback or retry stops at the
//! menu. So every path ends committed or at the menu within a bounded number of boots (the
//! matrix is in `docs/installer.md`).
//!
//! Text format, one `key=value` a line (unknown keys ignored, like the install record):
//!
//! ```text
//! build=20250301-abc123
//! kind=rollback
//! from=20250401-def456
//! phase=boot
//! cause=the trial boot of build 20250401-def456 ended without a commit
//! failure=not healthy after 600 s: containerd
//! ```
//!
//! `kind` is why this build is on trial (`new`, `retry`, `rollback` with `from` the build that
//! failed); `cause` why the trial before it failed (retry and rollback only); `failure` why
//! this trial failed, when the agent gave up on it itself (the health timeout).
//!
//! Every write is a careful replace ([`crate::recovery::Recovery::write_trial`]): a power cut
//! leaves the old record or the new one. A record that cannot be read anyway is treated as no
//! record (with a warning): the install record then decides, as before trials existed.

use std::fmt;
use std::time::Duration;

use crate::install_state::{BootDecision, InstallState};
use crate::store::Pointer;

/// Why a build is on trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrialKind {
    /// A build installed on its own (first flash, `k8r reinstall`, the menu).
    New,
    /// The same build once more, after its trial failed and no previous build was stored.
    Retry,
    /// The previous build, after the trial of `from` failed.
    Rollback {
        /// The build whose trial failed.
        from: String,
    },
}

/// Where the trial is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The installer is writing the build (a reset here is an interrupted install).
    Install,
    /// The build is installed and booted on trial; not committed yet.
    Boot,
    /// The node agent committed it: `autoboot.txt` points at the working system.
    Committed,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Install => "install",
            Phase::Boot => "boot",
            Phase::Committed => "committed",
        }
    }
}

/// The trial record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    /// The build on trial.
    pub build: String,
    /// Why it is on trial.
    pub kind: TrialKind,
    /// Where the trial is.
    pub phase: Phase,
    /// Why the trial before this one failed (retry and rollback).
    pub cause: Option<String>,
    /// Why this trial failed, when the node agent gave up on it.
    pub failure: Option<String>,
}

impl Trial {
    /// A trial of `build` of `kind`, being installed.
    #[must_use]
    pub fn new(build: &str, kind: TrialKind) -> Trial {
        Trial {
            build: one_line(build),
            kind,
            phase: Phase::Install,
            cause: None,
            failure: None,
        }
    }

    /// The record once the build is installed and verified: booted on trial.
    #[must_use]
    pub fn booting(&self) -> Trial {
        Trial {
            phase: Phase::Boot,
            failure: None,
            ..self.clone()
        }
    }

    /// The record once the node agent committed the build.
    #[must_use]
    pub fn committed(&self) -> Trial {
        Trial {
            phase: Phase::Committed,
            ..self.clone()
        }
    }

    /// The record when the node agent gives up on the trial with `cause` (it then reboots into
    /// recovery, which reads the cause from here).
    #[must_use]
    pub fn failed(&self, cause: &str) -> Trial {
        Trial {
            failure: Some(one_line(cause)),
            ..self.clone()
        }
    }

    /// Whether the build is booted on trial and not committed.
    #[must_use]
    pub fn pending(&self) -> bool {
        self.phase == Phase::Boot
    }

    /// Renders the record; [`Trial::parse`] reads it back unchanged.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = format!("build={}\n", one_line(&self.build));
        match &self.kind {
            TrialKind::New => out.push_str("kind=new\n"),
            TrialKind::Retry => out.push_str("kind=retry\n"),
            TrialKind::Rollback { from } => {
                out.push_str(&format!("kind=rollback\nfrom={}\n", one_line(from)));
            }
        }
        out.push_str(&format!("phase={}\n", self.phase.name()));
        if let Some(c) = &self.cause {
            out.push_str(&format!("cause={}\n", one_line(c)));
        }
        if let Some(f) = &self.failure {
            out.push_str(&format!("failure={}\n", one_line(f)));
        }
        out
    }

    /// Parses the record.
    ///
    /// # Errors
    /// A one-line reason when the text is not a complete record (no `build=`, an unknown
    /// `kind=` or `phase=`, a rollback without `from=`, control bytes), or when `build=` or
    /// `from=` is not a build id: recovery puts these into the store pointer on a rollback,
    /// and a pointer that names no build would leave the store without a current build.
    pub fn parse(text: &str) -> Result<Trial, String> {
        let (mut build, mut kind, mut from, mut phase, mut cause, mut failure) =
            (None, None, None, None, None, None);
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.chars().any(char::is_control) {
                return Err(format!("line {} holds control bytes", index + 1));
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().to_owned();
            match key.trim() {
                "build" => build = Some(value),
                "kind" => kind = Some(value),
                "from" => from = Some(value),
                "phase" => phase = Some(value),
                "cause" => cause = Some(value),
                "failure" => failure = Some(value),
                _ => {}
            }
        }
        let build = build
            .filter(|b| !b.is_empty())
            .ok_or("no build= line (the record is torn)")?;
        if !k8r_manifest::is_build_id(&build) {
            return Err(format!("build={build:?} is not a build id"));
        }
        let kind = match kind.as_deref() {
            Some("new") => TrialKind::New,
            Some("retry") => TrialKind::Retry,
            Some("rollback") => {
                let from = from
                    .filter(|f| !f.is_empty())
                    .ok_or("kind=rollback without from=")?;
                if !k8r_manifest::is_build_id(&from) {
                    return Err(format!("from={from:?} is not a build id"));
                }
                TrialKind::Rollback { from }
            }
            other => return Err(format!("unknown kind={other:?}")),
        };
        let phase = match phase.as_deref() {
            Some("install") => Phase::Install,
            Some("boot") => Phase::Boot,
            Some("committed") => Phase::Committed,
            other => return Err(format!("unknown phase={other:?}")),
        };
        Ok(Trial {
            build,
            kind,
            phase,
            cause: cause.filter(|c| !c.is_empty()),
            failure: failure.filter(|f| !f.is_empty()),
        })
    }

    /// Why this trial failed, as recovery reports it: the agent's reason, or a reset before the
    /// commit.
    #[must_use]
    pub fn failure_cause(&self) -> String {
        self.failure.clone().unwrap_or_else(|| {
            format!(
                "the trial boot of build {} ended without a commit (a reset, a panic or a hang before the node was healthy)",
                self.build
            )
        })
    }
}

impl fmt::Display for Trial {
    /// One line for the menu and `k8r status`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.phase {
            Phase::Install => "being installed",
            Phase::Boot => "on trial, not committed",
            Phase::Committed => "committed",
        };
        write!(f, "build {} {state}", self.build)?;
        match &self.kind {
            TrialKind::New => {}
            TrialKind::Retry => f.write_str(" (a retry)")?,
            TrialKind::Rollback { from } => write!(f, " (rolled back from {from})")?,
        }
        if let Some(why) = &self.failure {
            write!(f, "; gave up: {why}")?;
        }
        Ok(())
    }
}

/// What recovery does at boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryPlan {
    /// Install the pointer's current build (after writing `pointer`, when given) and record
    /// `trial` (phase `install`) before the first byte.
    Install {
        /// The install attempt, 1-based.
        attempt: u32,
        /// The trial record to write before the install.
        trial: Trial,
        /// The store pointer to write first (a rollback).
        pointer: Option<Pointer>,
        /// A line for the install log (a failed trial, a rollback, a retry).
        log: Option<String>,
    },
    /// Stop at the menu and wait for the operator.
    StopAtMenu {
        /// One line for the menu.
        reason: String,
        /// A line for the install log.
        log: Option<String>,
    },
}

/// What recovery does at boot, from the install record, the trial record and the store
/// pointer. Pure.
///
/// - no trial, or a committed one: the install record decides (count down and install the
///   current build as a new trial, or stop after `max_attempts` failed attempts);
/// - phase `install`: that install was interrupted or failed; the install record decides
///   whether to try it again, keeping the trial's kind (a retry stays a retry);
/// - phase `boot`: the trial failed. A new build rolls back to the other build the pointer
///   names, or, with none, is retried once; a failed retry or rollback stops at the menu.
#[must_use]
pub fn on_recovery_boot(
    state: &InstallState,
    trial: Option<&Trial>,
    pointer: &Pointer,
    max_attempts: u32,
) -> RecoveryPlan {
    let install = |trial: Trial, pointer: Option<Pointer>, log: Option<String>| match state
        .on_boot(max_attempts)
    {
        BootDecision::Install { attempt } => RecoveryPlan::Install {
            attempt,
            trial,
            pointer,
            log,
        },
        BootDecision::StopAtMenu { reason } => RecoveryPlan::StopAtMenu { reason, log },
    };
    let current = pointer.current.as_str();
    let Some(t) = trial.filter(|t| t.phase != Phase::Committed) else {
        return install(Trial::new(current, TrialKind::New), None, None);
    };
    if t.phase == Phase::Install {
        let trial = if t.build == current {
            t.clone()
        } else {
            Trial::new(current, TrialKind::New)
        };
        return install(trial, None, None);
    }
    // Phase boot: the trial of t.build failed. The install record says verified, so
    // `attempts` is 0 and the rollback or retry is attempt 1 of its own.
    let fresh = InstallState {
        attempts: 0,
        ..state.clone()
    };
    let cause = t.failure_cause();
    match &t.kind {
        TrialKind::New => {
            let other = [pointer.previous.as_deref(), Some(current)]
                .into_iter()
                .flatten()
                .find(|b| *b != t.build);
            match other {
                Some(p) => {
                    let new_pointer = Pointer {
                        current: p.to_owned(),
                        previous: Some(t.build.clone()),
                    };
                    let trial = Trial {
                        cause: Some(cause.clone()),
                        ..Trial::new(
                            p,
                            TrialKind::Rollback {
                                from: t.build.clone(),
                            },
                        )
                    };
                    let log = format!(
                        "rollback: build {} failed its trial ({cause}); installing the previous build {p}",
                        t.build
                    );
                    on_fresh(
                        &fresh,
                        max_attempts,
                        trial,
                        (new_pointer != *pointer).then_some(new_pointer),
                        log,
                    )
                }
                None => {
                    let trial = Trial {
                        cause: Some(cause.clone()),
                        ..Trial::new(&t.build, TrialKind::Retry)
                    };
                    let log = format!(
                        "trial failed: build {} ({cause}); no previous build in the image store: installing it once more",
                        t.build
                    );
                    on_fresh(&fresh, max_attempts, trial, None, log)
                }
            }
        }
        TrialKind::Retry => {
            let reason = format!(
                "build {} failed its trial twice ({cause}) and the image store holds no previous build: \
                 stopped; stage another build or reinstall from the menu",
                t.build
            );
            RecoveryPlan::StopAtMenu {
                log: Some(format!("trial failed again: {reason}")),
                reason,
            }
        }
        TrialKind::Rollback { from } => {
            let reason = format!(
                "the rollback to build {} failed its trial too ({cause}), after build {from} failed \
                 its own: stopped; stage a good build or reinstall from the menu",
                t.build
            );
            RecoveryPlan::StopAtMenu {
                log: Some(format!("rollback failed: {reason}")),
                reason,
            }
        }
    }
}

fn on_fresh(
    fresh: &InstallState,
    max_attempts: u32,
    trial: Trial,
    pointer: Option<Pointer>,
    log: String,
) -> RecoveryPlan {
    match fresh.on_boot(max_attempts) {
        BootDecision::Install { attempt } => RecoveryPlan::Install {
            attempt,
            trial,
            pointer,
            log: Some(log),
        },
        BootDecision::StopAtMenu { reason } => RecoveryPlan::StopAtMenu {
            reason,
            log: Some(log),
        },
    }
}

/// The last rollback the install log records (its line, without the timestamp), for the menu.
#[must_use]
pub fn last_rollback(install_log: &str) -> Option<String> {
    install_log
        .lines()
        .rev()
        .find(|l| l.contains(": rollback: ") || l.contains(": rollback failed: "))
        .map(|l| {
            l.split_once("] ")
                .map_or(l, |(_, rest)| rest)
                .trim()
                .to_owned()
        })
}

/// What the node agent found healthy on this boot. Local facts only: a network or cluster
/// outage must never roll a node back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// `k8r setup` succeeded on this boot.
    pub setup: bool,
    /// containerd runs.
    pub containerd: bool,
    /// The kubelet runs (a worker that has not joined yet has none running: `None`, not
    /// required).
    pub kubelet: Option<bool>,
    /// On a master: the local API server answers `/readyz`; `None` on a worker.
    pub api_ready: Option<bool>,
}

impl Health {
    /// What is not healthy yet, by name; empty when everything is.
    #[must_use]
    pub fn missing(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.setup {
            out.push("k8r setup");
        }
        if !self.containerd {
            out.push("containerd");
        }
        if self.kubelet == Some(false) {
            out.push("the kubelet");
        }
        if self.api_ready == Some(false) {
            out.push("the local API server's /readyz");
        }
        out
    }
}

/// What the node agent does about the trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAction {
    /// No trial pending: nothing to do.
    Nothing,
    /// The trial is already committed on the card (`autoboot.txt` says 2; a power cut came
    /// between the flip and the record): write the record's `committed` phase.
    Tidy,
    /// Healthy: commit (`autoboot.txt` → 2, then the record's `committed` phase).
    Commit,
    /// Not healthy yet; look again later.
    Wait {
        /// What is missing.
        missing: Vec<&'static str>,
    },
    /// The trial failed: record `cause` and reboot into recovery (plain reboot: autoboot
    /// still says 1).
    GiveUp {
        /// Why.
        cause: String,
    },
}

/// What the node agent does, from the trial record, the partition `autoboot.txt` names, the
/// running build, the health and the time since boot. Pure.
#[must_use]
pub fn on_agent_check(
    trial: Option<&Trial>,
    next_boot: u8,
    running_build: &str,
    health: &Health,
    elapsed: Duration,
    timeout: Duration,
) -> AgentAction {
    let Some(t) = trial.filter(|t| t.pending()) else {
        return AgentAction::Nothing;
    };
    if next_boot == crate::Part::Boot.number() {
        return AgentAction::Tidy;
    }
    if t.build != running_build {
        return AgentAction::GiveUp {
            cause: format!(
                "the trial is for build {}, but build {running_build} is running",
                t.build
            ),
        };
    }
    let missing = health.missing();
    if missing.is_empty() {
        return AgentAction::Commit;
    }
    if elapsed >= timeout {
        return AgentAction::GiveUp {
            cause: format!(
                "build {running_build} not healthy {} s after boot: {} not up",
                timeout.as_secs(),
                missing.join(", ")
            ),
        };
    }
    AgentAction::Wait { missing }
}

fn one_line(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
#[path = "trial_tests.rs"]
mod tests;
