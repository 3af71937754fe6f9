use super::*;
use crate::install_state::MAX_ATTEMPTS as MAX;

const MIN: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(600);

fn pointer(current: &str, previous: Option<&str>) -> Pointer {
    Pointer {
        current: current.to_owned(),
        previous: previous.map(str::to_owned),
    }
}

fn verified(build: &str) -> InstallState {
    InstallState::default().begin(build).succeed()
}

fn healthy_master() -> Health {
    Health {
        setup: true,
        containerd: true,
        kubelet: Some(true),
        api_ready: Some(true),
    }
}

#[test]
fn record_round_trips_every_kind_and_phase() {
    let records = [
        Trial::new("b1", TrialKind::New),
        Trial::new("b1", TrialKind::New).booting(),
        Trial::new("b1", TrialKind::Retry).booting().committed(),
        Trial {
            cause: Some("line\nbreak".into()),
            ..Trial::new("b0", TrialKind::Rollback { from: "b1".into() })
        }
        .booting()
        .failed("not healthy\r\n"),
    ];
    for t in records {
        let text = t.render();
        let back = Trial::parse(&text).expect("parse");
        assert_eq!(back.render(), text);
        assert_eq!(back.build, t.build);
        assert_eq!(back.kind, t.kind);
        assert_eq!(back.phase, t.phase);
    }
    let t = Trial::parse("build=b\nkind=rollback\nfrom=a\nphase=boot\nfuture=1\n").expect("ok");
    assert_eq!(t.kind, TrialKind::Rollback { from: "a".into() });
    assert!(t.pending());
}

#[test]
fn torn_records_are_refused() {
    for text in [
        "",
        "kind=new\nphase=boot\n",
        "build=b\nphase=boot\n",
        "build=b\nkind=new\n",
        "build=b\nkind=rollback\nphase=boot\n",
        "build=b\nkind=new\nphase=bo",
        "build=b\x01\nkind=new\nphase=boot\n",
    ] {
        assert!(Trial::parse(text).is_err(), "{text:?}");
    }
}

/// Found by the `card_records` fuzz target: a trial whose `build=` was not a build id was
/// rolled back from, and the pointer recovery wrote named it as the previous build, so the
/// pointer no longer parsed.
#[test]
fn a_trial_whose_build_is_not_a_build_id_is_no_record() {
    for text in [
        "build=cause=d the installer installs\nkind=new\nphase=boot\n",
        "build=a/b\nkind=new\nphase=boot\n",
        "build=b\nkind=rollback\nfrom=a b\nphase=boot\n",
    ] {
        let err = Trial::parse(text).expect_err(text);
        assert!(err.contains("is not a build id"), "{err}");
    }
}

#[test]
fn no_trial_or_a_committed_one_installs_the_current_build_as_new() {
    let p = pointer("b2", Some("b1"));
    let committed = Trial::new("b1", TrialKind::New).booting().committed();
    for trial in [None, Some(&committed)] {
        assert_eq!(
            on_recovery_boot(&InstallState::default(), trial, &p, MAX),
            RecoveryPlan::Install {
                attempt: 1,
                trial: Trial::new("b2", TrialKind::New),
                pointer: None,
                log: None,
            }
        );
    }
    let exhausted = InstallState {
        attempts: MAX,
        ..InstallState::default()
    };
    assert!(matches!(
        on_recovery_boot(&exhausted, None, &p, MAX),
        RecoveryPlan::StopAtMenu { .. }
    ));
}

#[test]
fn an_interrupted_install_keeps_its_kind_and_counts_attempts() {
    let p = pointer("b1", Some("b2"));
    let rollback = Trial::new("b1", TrialKind::Rollback { from: "b2".into() });
    let interrupted = InstallState::default().begin("b1");
    match on_recovery_boot(&interrupted, Some(&rollback), &p, MAX) {
        RecoveryPlan::Install { attempt, trial, .. } => {
            assert_eq!((attempt, trial), (2, rollback.clone()));
        }
        other => panic!("{other:?}"),
    }
    let three = interrupted.begin("b1").begin("b1");
    assert!(matches!(
        on_recovery_boot(&three, Some(&rollback), &p, MAX),
        RecoveryPlan::StopAtMenu { reason, .. } if reason.contains("3 install attempts")
    ));
    // Someone staged another build meanwhile: that one is installed, as a new trial.
    let other = pointer("b3", Some("b1"));
    match on_recovery_boot(&interrupted, Some(&rollback), &other, MAX) {
        RecoveryPlan::Install { trial, .. } => assert_eq!(trial, Trial::new("b3", TrialKind::New)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_new_trial_rolls_back_to_the_previous_build() {
    let p = pointer("b2", Some("b1"));
    let t = Trial::new("b2", TrialKind::New).booting();
    match on_recovery_boot(&verified("b2"), Some(&t), &p, MAX) {
        RecoveryPlan::Install {
            attempt,
            trial,
            pointer,
            log,
        } => {
            assert_eq!(attempt, 1);
            assert_eq!(trial.build, "b1");
            assert_eq!(trial.kind, TrialKind::Rollback { from: "b2".into() });
            assert_eq!(trial.phase, Phase::Install);
            assert!(trial
                .cause
                .as_deref()
                .is_some_and(|c| c.contains("without a commit")));
            assert_eq!(pointer, Some(self::pointer("b1", Some("b2"))));
            let log = log.expect("log");
            assert!(
                log.starts_with("rollback: build b2 failed its trial"),
                "{log}"
            );
            assert!(log.contains("installing the previous build b1"), "{log}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_agents_reason_is_the_rollbacks_cause() {
    let p = pointer("b2", Some("b1"));
    let t = Trial::new("b2", TrialKind::New)
        .booting()
        .failed("not healthy 600 s after boot: containerd not up");
    match on_recovery_boot(&verified("b2"), Some(&t), &p, MAX) {
        RecoveryPlan::Install { trial, log, .. } => {
            assert_eq!(
                trial.cause.as_deref(),
                Some("not healthy 600 s after boot: containerd not up")
            );
            assert!(log.is_some_and(|l| l.contains("containerd not up")));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cut_after_the_pointer_swap_rolls_back_to_the_same_build() {
    // The pointer already says current=b1, previous=b2; the trial record still says b2 failed.
    let swapped = pointer("b1", Some("b2"));
    let t = Trial::new("b2", TrialKind::New).booting();
    match on_recovery_boot(&verified("b2"), Some(&t), &swapped, MAX) {
        RecoveryPlan::Install { trial, pointer, .. } => {
            assert_eq!(trial.build, "b1");
            assert_eq!(pointer, None, "already swapped: not written again");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn without_a_previous_build_a_failed_trial_is_retried_once_then_stops() {
    let p = pointer("b1", None);
    let t = Trial::new("b1", TrialKind::New).booting();
    let retry = match on_recovery_boot(&verified("b1"), Some(&t), &p, MAX) {
        RecoveryPlan::Install {
            trial,
            pointer,
            log,
            ..
        } => {
            assert_eq!(pointer, None);
            assert!(log.is_some_and(|l| l.contains("installing it once more")));
            assert_eq!(trial.kind, TrialKind::Retry);
            trial
        }
        other => panic!("{other:?}"),
    };
    match on_recovery_boot(&verified("b1"), Some(&retry.booting()), &p, MAX) {
        RecoveryPlan::StopAtMenu { reason, log } => {
            assert!(reason.contains("failed its trial twice"), "{reason}");
            assert!(log.is_some_and(|l| l.starts_with("trial failed again")));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_rollback_stops_at_the_menu_with_both_builds() {
    let p = pointer("b1", Some("b2"));
    let t = Trial {
        cause: Some("b2 panicked".into()),
        ..Trial::new("b1", TrialKind::Rollback { from: "b2".into() })
    }
    .booting();
    match on_recovery_boot(&verified("b1"), Some(&t), &p, MAX) {
        RecoveryPlan::StopAtMenu { reason, log } => {
            assert!(reason.contains("rollback to build b1 failed"), "{reason}");
            assert!(reason.contains("build b2 failed"), "{reason}");
            assert!(log.is_some_and(|l| l.starts_with("rollback failed: ")));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn last_rollback_is_found_in_the_install_log() {
    let log = "[     1.000] build b2: install started\n\
               [     2.000] build b2: rollback: build b2 failed its trial (x); installing the previous build b1\n\
               [     3.000] build b1: verified; booting it on trial\n";
    assert_eq!(
        last_rollback(log).as_deref(),
        Some("build b2: rollback: build b2 failed its trial (x); installing the previous build b1")
    );
    assert_eq!(last_rollback("[ 1.0] build b: verified\n"), None);
}

#[test]
fn the_agent_commits_only_a_pending_trial_when_healthy() {
    let t = Trial::new("b2", TrialKind::New).booting();
    let ok = healthy_master();
    assert_eq!(
        on_agent_check(None, 1, "b2", &ok, MIN, TIMEOUT),
        AgentAction::Nothing
    );
    assert_eq!(
        on_agent_check(Some(&t.committed()), 2, "b2", &ok, MIN, TIMEOUT),
        AgentAction::Nothing
    );
    assert_eq!(
        on_agent_check(Some(&t), 1, "b2", &ok, MIN, TIMEOUT),
        AgentAction::Commit
    );
    assert_eq!(
        on_agent_check(Some(&t), 2, "b2", &ok, MIN, TIMEOUT),
        AgentAction::Tidy,
        "a cut between the flip and the record"
    );
    assert!(matches!(
        on_agent_check(Some(&t), 1, "b1", &ok, MIN, TIMEOUT),
        AgentAction::GiveUp { cause } if cause.contains("trial is for build b2")
    ));
}

#[test]
fn the_agent_waits_then_gives_up_with_what_is_missing() {
    let t = Trial::new("b2", TrialKind::New).booting();
    let sick = Health {
        containerd: false,
        ..healthy_master()
    };
    assert_eq!(
        on_agent_check(Some(&t), 1, "b2", &sick, MIN, TIMEOUT),
        AgentAction::Wait {
            missing: vec!["containerd"]
        }
    );
    match on_agent_check(Some(&t), 1, "b2", &sick, TIMEOUT, TIMEOUT) {
        AgentAction::GiveUp { cause } => {
            assert!(
                cause.contains("600 s") && cause.contains("containerd"),
                "{cause}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn health_is_local_a_worker_without_a_cluster_commits() {
    let t = Trial::new("w1", TrialKind::New).booting();
    // A worker that cannot reach its master: not joined, no kubelet running, no API server.
    let worker = Health {
        setup: true,
        containerd: true,
        kubelet: None,
        api_ready: None,
    };
    assert_eq!(
        on_agent_check(Some(&t), 1, "w1", &worker, MIN, TIMEOUT),
        AgentAction::Commit
    );
    let master_down = Health {
        api_ready: Some(false),
        ..healthy_master()
    };
    assert_eq!(
        master_down.missing(),
        vec!["the local API server's /readyz"]
    );
    assert_eq!(Health::default().missing().len(), 2);
}

/// How a simulated card ends.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Committed(String),
    Menu,
}

/// Boots a card from "a verified install of `first` is wanted" until it ends committed or at
/// the menu, with the builds in `good` healthy and every other build resetting before its
/// commit (a panic). Returns the end and the number of boots.
fn simulate(store: Pointer, good: &[&str], agent_gives_up: bool) -> (End, u32) {
    let mut state = InstallState::default();
    let mut trial: Option<Trial> = None;
    let mut p = store;
    let mut autoboot = 1;
    for boot in 1..=20 {
        if autoboot == 2 {
            return (
                End::Committed(trial.map(|t| t.build).unwrap_or_default()),
                boot,
            );
        }
        // Recovery.
        match on_recovery_boot(&state, trial.as_ref(), &p, MAX) {
            RecoveryPlan::StopAtMenu { .. } => return (End::Menu, boot),
            RecoveryPlan::Install {
                trial: t, pointer, ..
            } => {
                if let Some(np) = pointer {
                    p = np;
                }
                assert_eq!(
                    t.build, p.current,
                    "recovery installs the pointer's current"
                );
                state = state.begin(&p.current).succeed();
                trial = Some(t.booting());
            }
        }
        // The one-shot boot of p2 (autoboot still 1).
        let t = trial.clone().expect("trial");
        let health = if good.contains(&t.build.as_str()) {
            healthy_master()
        } else {
            Health::default()
        };
        match on_agent_check(Some(&t), autoboot, &t.build, &health, TIMEOUT, TIMEOUT) {
            AgentAction::Commit => {
                autoboot = 2;
                trial = Some(t.committed());
            }
            AgentAction::GiveUp { cause } => {
                if agent_gives_up {
                    trial = Some(t.failed(&cause));
                }
            }
            other => panic!("{other:?}"),
        }
    }
    panic!("no end within 20 boots");
}

#[test]
fn failure_matrix_every_path_ends_committed_or_at_the_menu() {
    let with_prev = || pointer("new", Some("old"));
    let alone = || pointer("new", None);
    for gives_up in [false, true] {
        // A good build commits on its one trial boot: boot 1 installs, boot 2 runs p2 for good.
        assert_eq!(
            simulate(with_prev(), &["new", "old"], gives_up),
            (End::Committed("new".into()), 2)
        );
        // A bad build rolls back to the previous one, which commits.
        assert_eq!(
            simulate(with_prev(), &["old"], gives_up),
            (End::Committed("old".into()), 3)
        );
        // Both bad: the menu after two trials.
        assert_eq!(simulate(with_prev(), &[], gives_up), (End::Menu, 3));
        // No previous build and bad: retried once, then the menu.
        assert_eq!(simulate(alone(), &[], gives_up), (End::Menu, 3));
    }
}

#[test]
fn a_flaky_build_without_a_previous_one_commits_on_its_retry() {
    let p = pointer("b1", None);
    let first = Trial::new("b1", TrialKind::New).booting();
    let RecoveryPlan::Install { trial, .. } =
        on_recovery_boot(&verified("b1"), Some(&first), &p, MAX)
    else {
        panic!("retry expected");
    };
    let on_trial = trial.booting();
    assert_eq!(
        on_agent_check(Some(&on_trial), 1, "b1", &healthy_master(), MIN, TIMEOUT),
        AgentAction::Commit
    );
    // Committed: a later `k8r reinstall` (autoboot 1) starts a new trial of the current build.
    assert!(matches!(
        on_recovery_boot(&verified("b1"), Some(&on_trial.committed()), &p, MAX),
        RecoveryPlan::Install { trial, .. } if trial.kind == TrialKind::New
    ));
}

#[test]
fn the_menu_is_stable_across_reboots() {
    let p = pointer("b1", None);
    let t = Trial::new("b1", TrialKind::Retry).booting();
    for _ in 0..3 {
        assert!(matches!(
            on_recovery_boot(&verified("b1"), Some(&t), &p, MAX),
            RecoveryPlan::StopAtMenu { .. }
        ));
    }
}

#[test]
fn display_says_the_state_in_one_line() {
    let t = Trial::new("b1", TrialKind::Rollback { from: "b2".into() }).booting();
    assert_eq!(
        t.to_string(),
        "build b1 on trial, not committed (rolled back from b2)"
    );
    assert_eq!(
        Trial::new("b1", TrialKind::New)
            .booting()
            .committed()
            .to_string(),
        "build b1 committed"
    );
    assert!(Trial::new("b1", TrialKind::Retry)
        .booting()
        .failed("x")
        .to_string()
        .ends_with("(a retry); gave up: x"));
}
