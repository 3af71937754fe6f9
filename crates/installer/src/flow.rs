//! PID 1's flow: bring up, find the card, read the stored build and the attempt record,
//! count down, install — or show the recovery menu. Every error ends in the menu with a
//! one-line cause; PID 1 never exits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8r_card::disk::{CardLayout, Sysfs};
use k8r_card::install_log::format_entry;
use k8r_card::install_state::MAX_ATTEMPTS;
use k8r_card::recovery::Recovery;
use k8r_card::store::Build;
use k8r_card::trial::{self, RecoveryPlan, Trial, TrialKind};
use k8r_card::{layout, stream, Part};

use crate::early::{self, Log};
use crate::error::{Error, Result};
use crate::failpoint::{Failpoints, Point};
use crate::install::{self, Job, Say};
use crate::menu::{self, Action, Menu, MenuContext, Outcome};
use crate::mounts::RecoveryMount;
use crate::watchdog::Watchdog;
use crate::{console, sys};

/// The countdown before an automatic install.
pub(crate) const COUNTDOWN: u32 = 5;
/// The line the harness (and operators) look for.
pub(crate) const MARKER: &str = "K8R-RECOVERY";
/// How long to wait for the card to appear.
const CARD_WAIT: Duration = Duration::from_secs(30);

/// Where PID 1 finds the kernel's block devices and mounts the card's partitions.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    /// `/sys/class/block` and `/dev`.
    pub sysfs: Sysfs,
    /// Where the recovery partition stays mounted.
    pub recovery: PathBuf,
    /// Where p2 is mounted while its files are written.
    pub boot: PathBuf,
    /// The manifest `arch` this machine runs.
    pub arch: &'static str,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            sysfs: Sysfs::default(),
            recovery: PathBuf::from("/mnt/recovery"),
            boot: PathBuf::from("/mnt/boot"),
            arch: k8r_manifest::NATIVE_ARCH.unwrap_or("unknown"),
        }
    }
}

/// What the flow knows once the card is found.
#[derive(Debug)]
pub(crate) struct Ready {
    card: CardLayout,
    recovery: Recovery,
    build: Build,
    /// The mounted recovery partition (`None` in tests over a temp dir).
    p1: Option<RecoveryMount>,
}

impl Ready {
    /// Runs `f` with the recovery partition writable, read-only again afterwards
    /// ([`RecoveryMount::writing`]).
    fn writing<T>(&self, f: impl FnOnce(&Recovery) -> Result<T>) -> Result<T> {
        match &self.p1 {
            Some(m) => m.writing(|| f(&self.recovery)),
            None => f(&self.recovery),
        }
    }

    /// Appends to the install log in its own writable moment; informational, so a failure
    /// is ignored.
    fn log(&self, build_id: &str, outcome: &str) {
        let _ = self.writing(|rec| {
            append_log(rec, build_id, outcome);
            Ok(())
        });
    }
}

/// Runs PID 1. Never returns.
pub(crate) fn run() -> ! {
    let mut log = Log::open();
    log.line(&format!(
        "{MARKER}: k8r recovery installer {}",
        env!("CARGO_PKG_VERSION")
    ));
    let problems = early::bring_up();
    // devtmpfs is mounted now: from here on every line also goes to the kernel log.
    log.attach_kmsg();
    let say = |s: &str| log.line(s);
    for problem in problems {
        say(&format!("{MARKER}: warning: {problem}"));
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let failpoints = Failpoints::from_cmdline(&cmdline);
    for name in failpoints.unknown() {
        say(&format!(
            "{MARKER}: warning: k8r.failpoint={name} is not a failpoint (ignored)"
        ));
    }
    // `k8r.watchdog=off` for machines whose watchdog cannot be fed: QEMU's raspi3b resets as
    // soon as the bcm2835 watchdog is started (it does not emulate the timer).
    let watchdog = if cmdline.split_whitespace().any(|t| t == "k8r.watchdog=off") {
        None
    } else {
        Watchdog::start()
    };
    if watchdog.is_some() {
        say(&format!("{MARKER}: watchdog armed"));
    }
    let paths = Paths::default();
    let mut ready = prepare(&paths, &say);
    let mut last_error = ready.as_ref().err().map(ToString::to_string);
    if let Ok(r) = &mut ready {
        last_error = on_boot(r, &paths, &failpoints, watchdog.as_ref(), &say);
    }
    menu_loop(
        ready.ok(),
        &paths,
        last_error,
        &failpoints,
        watchdog.as_ref(),
        &say,
    )
}

/// What this boot does (`k8r_card::trial::on_recovery_boot`): count down and install (a new
/// build, a retry or a rollback, each as a trial), or stop at the menu. Returns the menu's
/// error line; on a successful install it reboots.
fn on_boot(
    r: &mut Ready,
    paths: &Paths,
    failpoints: &Failpoints,
    watchdog: Option<&Watchdog>,
    say: Say<'_>,
) -> Option<String> {
    let (state, warnings) = r.recovery.install_state();
    let (trial, trial_warnings) = r.recovery.trial();
    for w in warnings.iter().chain(&trial_warnings) {
        say(&format!("{MARKER}: warning: {w}"));
    }
    let pointer = match r.recovery.store().pointer() {
        Ok(p) => p,
        Err(e) => return Some(e.to_string()),
    };
    let logged_build = trial
        .as_ref()
        .map_or_else(|| pointer.current.clone(), |t| t.build.clone());
    match trial::on_recovery_boot(&state, trial.as_ref(), &pointer, MAX_ATTEMPTS) {
        RecoveryPlan::Install {
            attempt,
            trial,
            pointer,
            log,
        } => {
            if let Err(e) = before_install(r, log.as_deref(), pointer.as_ref(), &logged_build, say)
            {
                return Some(e.to_string());
            }
            let m = &r.build.manifest;
            let text =
                menu::countdown_text(COUNTDOWN, Some(&m.build_id), Some(&m.kubernetes_version));
            say(&format!("{text} (attempt {attempt} of {MAX_ATTEMPTS})"));
            if console::key_pressed(Duration::from_secs(u64::from(COUNTDOWN))) {
                say(&format!("{MARKER}: key pressed: recovery menu"));
                return log;
            }
            install_and_reboot(r, &trial, paths, failpoints, watchdog, say)
                .err()
                .map(|e| e.to_string())
        }
        RecoveryPlan::StopAtMenu { reason, log } => {
            if let Some(line) = &log {
                r.log(&logged_build, line);
            }
            say(&format!("{MARKER}: {reason}"));
            Some(reason)
        }
    }
}

/// The plan's first steps: its line in the install log, and for a rollback the store pointer
/// switched to the previous build (careful replace), which becomes the build to install.
fn before_install(
    r: &mut Ready,
    log: Option<&str>,
    pointer: Option<&k8r_card::store::Pointer>,
    logged_build: &str,
    say: Say<'_>,
) -> Result<()> {
    if let Some(line) = log {
        say(&format!("{MARKER}: {line}"));
        r.log(logged_build, line);
    }
    if let Some(p) = pointer {
        r.writing(|rec| Ok(rec.store().set_pointer(p)?))?;
        r.build = r.recovery.store().current()?;
    }
    Ok(())
}

/// Finds the card, mounts its recovery partition for good, opens the current stored build.
fn prepare(paths: &Paths, say: Say<'_>) -> Result<Ready> {
    let found = paths.sysfs.find_recovery(CARD_WAIT)?;
    say(&format!(
        "{MARKER}: card {} holds {} on partition {}",
        found.disk.display(),
        layout::RECOVERY_LABEL,
        found.partition
    ));
    let card = paths.sysfs.layout(&found.disk)?;
    for part in [Part::Recovery, Part::Boot, Part::Root] {
        card.part(part)?;
    }
    let mut p1 = RecoveryMount::mount(&card.part(Part::Recovery)?.dev, &paths.recovery)?;
    let recovery = Recovery::new(p1.dir());
    // The files are read first; only a card whose store opens is repaired.
    let build = recovery.store().current()?;
    if p1.repair_if_dirty()? {
        say(&format!(
            "{MARKER}: {} was not cleanly unmounted (a power cut while it was written); its \
             files read back, so its dirty mark is cleared and its free-cluster count reset",
            p1.dev().display()
        ));
    }
    Ok(Ready {
        card,
        recovery,
        build,
        p1: Some(p1),
    })
}

fn append_log(recovery: &Recovery, build_id: &str, outcome: &str) {
    let uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next().and_then(|s| s.parse().ok()))
        .unwrap_or(0.0);
    // The log is informational: failing to append must not stop an install or a recovery.
    let _ = recovery.append_install_log(&format_entry(uptime, build_id, outcome));
}

fn job<'a>(
    r: &'a Ready,
    paths: &'a Paths,
    failpoints: &'a Failpoints,
    watchdog: Option<&'a Watchdog>,
) -> Job<'a> {
    let opts = k8r_card::store::VerifyOptions::for_this_machine();
    Job {
        card: &r.card,
        build: &r.build,
        recovery: &r.recovery,
        boot_mnt: &paths.boot,
        failpoints,
        watchdog,
        threads: opts.threads,
        mem_total: opts.mem_total,
        arch: paths.arch,
    }
}

/// The automatic path. Returns only on failure (with the cause); on success it records the
/// trial and boots the working system once (`autoboot.txt` stays on recovery: the node agent
/// commits).
fn install_and_reboot(
    r: &Ready,
    trial: &Trial,
    paths: &Paths,
    failpoints: &Failpoints,
    watchdog: Option<&Watchdog>,
    say: Say<'_>,
) -> Result<()> {
    let job = job(r, paths, failpoints, watchdog);
    let build = r.build.manifest.build_id.clone();
    let trial = if trial.build == build {
        trial.clone()
    } else {
        Trial::new(&build, TrialKind::New)
    };
    r.writing(|rec| {
        rec.write_trial(&trial)?;
        let (before, _) = rec.install_state();
        rec.write_install_state(&before.begin(&build))?;
        append_log(rec, &build, "install started");
        failpoints.hit(Point::WhileRecoveryWritable, say);
        Ok(())
    })?;
    failpoints.hit(Point::AfterBegin, say);
    let steps = || -> Result<()> {
        install::check_signature(&job, say)?;
        install::check_fits(&job)?;
        install::check_compressed(&job)?;
        say(&format!("{MARKER}: writing the root partition"));
        install::write_root(&job, say)?;
        say(&format!("{MARKER}: writing the boot partition"));
        install::write_boot(&job, say)?;
        Ok(())
    };
    if let Err(cause) = steps() {
        say(&format!("{MARKER}: install failed: {cause}"));
        let _ = r.writing(|rec| {
            let (state, _) = rec.install_state();
            let _ = rec.write_install_state(&state.fail(&cause.to_string()));
            append_log(rec, &build, &format!("failed: {cause}"));
            Ok(())
        });
        return Err(cause);
    }
    failpoints.hit(Point::BeforeFlip, say);
    r.writing(|rec| {
        let (state, _) = rec.install_state();
        rec.write_install_state(&state.succeed())?;
        rec.write_trial(&trial.booting())?;
        append_log(
            rec,
            &build,
            "verified; booting it on trial (autoboot.txt stays on recovery until the node commits)",
        );
        Ok(())
    })?;
    sys::sync();
    if let Some(n) =
        r.p1.as_ref()
            .and_then(|m| paths.sysfs.sectors_written(m.dev()))
    {
        say(&format!(
            "{MARKER}: {n} sectors written to the recovery partition this boot"
        ));
    }
    failpoints.hit(Point::AfterFlip, say);
    say(&format!(
        "{MARKER}: install verified, rebooting into the working system on trial"
    ));
    reboot_to(r.recovery.root(), Some(Part::Boot), say)
}

fn reboot(recovery_mnt: &Path, say: Say<'_>) -> ! {
    reboot_to(recovery_mnt, None, say)
}

/// Reboots: with `once`, the firmware boots that partition once (the one-shot request), else
/// it follows `autoboot.txt`.
fn reboot_to(recovery_mnt: &Path, once: Option<Part>, say: Say<'_>) -> ! {
    sys::sync();
    let _ = sys::umount(recovery_mnt);
    // The harness's stand-in for the Pi's reboot register (docs/harness.md): partition 0 = the
    // default (autoboot.txt).
    let partition = once.map_or(0, Part::number);
    early::kmsg(&format!("k8r-reboot: partition={partition} tryboot=0"));
    loop {
        let result = match once {
            Some(p) => sys::reboot_to_partition(p.number()),
            None => sys::reboot(),
        };
        if let Err(e) = result {
            say(&format!("{MARKER}: reboot failed: {e}"));
        }
        std::thread::sleep(Duration::from_secs(10));
    }
}

fn menu_loop(
    ready: Option<Ready>,
    paths: &Paths,
    mut last_error: Option<String>,
    failpoints: &Failpoints,
    watchdog: Option<&Watchdog>,
    say: Say<'_>,
) -> ! {
    loop {
        let state = ready
            .as_ref()
            .map(|r| r.recovery.install_state().0)
            .unwrap_or_default();
        let ctx = MenuContext {
            build_id: ready.as_ref().map(|r| r.build.manifest.build_id.clone()),
            k8s_version: ready
                .as_ref()
                .map(|r| r.build.manifest.kubernetes_version.clone()),
            last_error: last_error.clone(),
            shell_available: Path::new("/bin/sh").exists(),
            working_verified: state.last_install_verified(),
            attempts: state.attempts,
            trial: ready
                .as_ref()
                .and_then(|r| r.recovery.trial().0)
                .map(|t| t.to_string()),
            last_rollback: ready
                .as_ref()
                .and_then(|r| trial::last_rollback(&r.recovery.install_log())),
        };
        let mut m = Menu::new(ctx);
        say(&m.render());
        let Some(line) = console::read_line() else {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        };
        match m.on_input(&line) {
            Outcome::Run(action) => {
                if let Some(w) = watchdog {
                    w.heartbeat();
                }
                last_error = act(action, ready.as_ref(), paths, failpoints, watchdog, say)
                    .err()
                    .map(|e| e.to_string());
            }
            Outcome::Refused(why) | Outcome::Invalid(why) => say(&format!("{MARKER}: {why}")),
            Outcome::Redraw => {}
        }
    }
}

fn act(
    action: Action,
    ready: Option<&Ready>,
    paths: &Paths,
    failpoints: &Failpoints,
    watchdog: Option<&Watchdog>,
    say: Say<'_>,
) -> Result<()> {
    let need = || ready.ok_or(Error::NotReady);
    match action {
        Action::Reinstall => {
            let r = need()?;
            let trial = Trial::new(&r.build.manifest.build_id, TrialKind::New);
            install_and_reboot(r, &trial, paths, failpoints, watchdog, say)
        }
        Action::Verify => {
            let r = need()?;
            say(&format!("{MARKER}: verifying the stored image"));
            let (verdict, trust) = r.recovery.check_signature(&r.build)?;
            say(&format!(
                "k8r: signature: {}",
                verdict.describe(&trust.keys)
            ));
            let opts = k8r_card::store::VerifyOptions::for_this_machine();
            r.build.verify(opts, &mut |_: stream::Progress| {
                if let Some(w) = watchdog {
                    w.heartbeat();
                }
            })?;
            say("k8r: the stored image verifies");
            Ok(())
        }
        Action::ShowLog => {
            let text = ready.map(|r| r.recovery.install_log()).unwrap_or_default();
            let pages = menu::page(&text, menu::ROWS, menu::COLS);
            say("--- install log ---");
            if let Some(last) = pages.last() {
                say(last);
            }
            say("--- end of install log ---");
            Ok(())
        }
        Action::Shell => {
            say(&format!("{MARKER}: shell (exit to return to the menu)"));
            std::process::Command::new("/bin/sh")
                .status()
                .map(|_| ())
                .map_err(Error::io("run", "/bin/sh"))
        }
        Action::BootWorking => {
            let r = boot_working(ready)?;
            say(&format!("{MARKER}: booting the working system"));
            reboot(r.recovery.root(), say)
        }
        Action::Reboot => reboot(&paths.recovery, say),
        Action::PowerOff => {
            sys::sync();
            let _ = sys::umount(&paths.recovery);
            loop {
                let _ = sys::power_off();
                std::thread::sleep(Duration::from_secs(10));
            }
        }
    }
}

/// The menu's "boot the working system": only when a verified install exists does it flip
/// `autoboot.txt` to p2 (committing a pending trial by hand: the operator's choice); otherwise
/// the card stays on recovery and the reason is returned.
fn boot_working(ready: Option<&Ready>) -> Result<&Ready> {
    let r = ready.ok_or(Error::NotReady)?;
    if !r.recovery.install_state().0.last_install_verified() {
        return Err(Error::NotVerified);
    }
    r.writing(|rec| {
        let outcome = match rec.trial().0.filter(Trial::pending) {
            Some(t) => {
                rec.commit_trial(&t)?;
                format!(
                    "operator chose the working system (build {} committed by hand)",
                    t.build
                )
            }
            None => {
                rec.set_next_boot(Part::Boot)?;
                "operator chose the working system".to_owned()
            }
        };
        append_log(rec, &r.build.manifest.build_id, &outcome);
        Ok(())
    })?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8r_card::recovery::AUTOBOOT_FILE;
    use k8r_card::store::Pointer;
    use k8r_card::testkit::{write_build, BuildSpec};

    /// A `Ready` over a temp dir standing in for the mounted recovery partition, with one
    /// stored build and `autoboot.txt` pointing at recovery.
    fn ready(dir: &Path) -> Ready {
        let recovery = Recovery::new(dir);
        let store = recovery.store();
        write_build(&store.build_dir("b1").expect("id"), &BuildSpec::new("b1"));
        store
            .set_pointer(&Pointer::to("b1").expect("id"))
            .expect("pointer");
        recovery.set_next_boot(Part::Recovery).expect("autoboot");
        Ready {
            card: CardLayout {
                disk: dir.join("disk"),
                disk_id: 1,
                parts: Vec::new(),
            },
            build: store.current().expect("current"),
            recovery,
            p1: None,
        }
    }

    fn autoboot(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(AUTOBOOT_FILE)).expect("autoboot")
    }

    #[test]
    fn boot_working_leaves_autoboot_alone_without_a_verified_install() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = ready(dir.path());
        let before = autoboot(dir.path());
        assert!(matches!(boot_working(None), Err(Error::NotReady)));
        assert!(matches!(boot_working(Some(&r)), Err(Error::NotVerified)));
        r.recovery
            .write_install_state(&r.recovery.install_state().0.begin("b1"))
            .expect("in progress");
        assert!(matches!(boot_working(Some(&r)), Err(Error::NotVerified)));
        assert_eq!(autoboot(dir.path()), before, "autoboot.txt untouched");
        assert!(before.contains("boot_partition=1"));
    }

    #[test]
    fn boot_working_flips_after_a_verified_install() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = ready(dir.path());
        let state = r.recovery.install_state().0.begin("b1").succeed();
        r.recovery.write_install_state(&state).expect("verified");
        boot_working(Some(&r)).expect("flip");
        assert!(autoboot(dir.path()).contains("boot_partition=2"));
        assert!(r
            .recovery
            .install_log()
            .contains("operator chose the working system"));
    }

    #[test]
    fn a_failed_trial_switches_the_store_to_the_previous_build_and_logs_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = ready(dir.path());
        let store = r.recovery.store();
        write_build(&store.build_dir("b2").expect("id"), &BuildSpec::new("b2"));
        let p = Pointer::to("b1").expect("id").advance("b2");
        store.set_pointer(&p).expect("pointer");
        r.build = store.current().expect("b2");
        let state = r.recovery.install_state().0.begin("b2").succeed();
        r.recovery.write_install_state(&state).expect("verified");
        r.recovery
            .write_trial(&Trial::new("b2", TrialKind::New).booting())
            .expect("trial");
        let (trial, _) = r.recovery.trial();
        let RecoveryPlan::Install {
            trial,
            pointer,
            log,
            ..
        } = trial::on_recovery_boot(&state, trial.as_ref(), &p, MAX_ATTEMPTS)
        else {
            panic!("a rollback is planned");
        };
        before_install(&mut r, log.as_deref(), pointer.as_ref(), "b2", &|_| {}).expect("prelude");
        assert_eq!(r.build.manifest.build_id, "b1");
        assert_eq!(trial.kind, TrialKind::Rollback { from: "b2".into() });
        let now = store.pointer().expect("pointer");
        assert_eq!(
            (now.current.as_str(), now.previous.as_deref()),
            ("b1", Some("b2"))
        );
        let log = r.recovery.install_log();
        assert!(
            log.contains("build b2: rollback: build b2 failed its trial"),
            "{log}"
        );
        assert_eq!(
            trial::last_rollback(&log)
                .as_deref()
                .map(|l| l.contains("previous build b1")),
            Some(true)
        );
    }

    #[test]
    fn boot_working_commits_a_pending_trial_by_hand() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = ready(dir.path());
        let state = r.recovery.install_state().0.begin("b1").succeed();
        r.recovery.write_install_state(&state).expect("verified");
        let t = Trial::new("b1", TrialKind::New).booting();
        r.recovery.write_trial(&t).expect("trial");
        boot_working(Some(&r)).expect("flip");
        assert!(autoboot(dir.path()).contains("boot_partition=2"));
        assert_eq!(r.recovery.trial().0, Some(t.committed()));
        assert!(r
            .recovery
            .install_log()
            .contains("build b1 committed by hand"));
    }

    #[test]
    fn a_card_with_keys_installs_nothing_unsigned_or_signed_by_another_key() {
        use k8r_card::testkit::{keypair, sign_build, trusted};
        use k8r_card::trust::CardTrust;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = ready(dir.path());
        let (mine, theirs) = (keypair(), keypair());
        r.recovery
            .write_trust(&CardTrust {
                keys: trusted(&[&mine]),
                since_build: None,
            })
            .expect("trust");
        let build_dir = r.recovery.store().build_dir("b1").expect("dir");
        let attempt = |r: &Ready| {
            let trial = Trial::new("b1", TrialKind::New);
            let paths = Paths {
                arch: "arm64",
                ..Paths::default()
            };
            match install_and_reboot(r, &trial, &paths, &Failpoints::default(), None, &|_| {}) {
                Err(e) => e.to_string(),
                Ok(()) => unreachable!("install_and_reboot returns only on failure"),
            }
        };
        // Unsigned: refused by the signature check, before the root (this card has no
        // partitions, so any later step would fail with another cause).
        let cause = attempt(&r);
        assert!(
            cause.contains("build b1: manifest.toml is not signed"),
            "{cause}"
        );
        sign_build(&build_dir, &theirs);
        r.build = r.recovery.store().current().expect("b1");
        let cause = attempt(&r);
        assert!(
            cause.contains(&format!("signed by key ID {}", trusted(&[&theirs]).ids())),
            "{cause}"
        );
        let (state, _) = r.recovery.install_state();
        assert!(!state.last_install_verified());
        assert!(r.recovery.install_log().contains("failed: build b1:"));
        // Signed by the card's key: past the signature, the next step is reached.
        sign_build(&build_dir, &mine);
        r.build = r.recovery.store().current().expect("b1");
        let cause = attempt(&r);
        assert!(
            !cause.contains("signed") && !cause.contains("signature"),
            "{cause}"
        );
    }

    /// What an attempt on a card with a working root partition `p3` (a file of `p3_bytes`
    /// filled with 0xaa) leaves: the failure's cause and p3's bytes afterwards.
    fn attempt_with_p3(
        r: &mut Ready,
        dir: &Path,
        p3_bytes: u64,
        arch: &'static str,
    ) -> (String, Vec<u8>) {
        let p3 = dir.join("p3");
        std::fs::write(&p3, vec![0xaa; usize::try_from(p3_bytes).expect("size")]).expect("p3");
        r.card.parts = vec![k8r_card::disk::PartDev {
            number: 3,
            dev: p3.clone(),
            start: 2048,
            sectors: p3_bytes / 512,
        }];
        let paths = Paths {
            arch,
            ..Paths::default()
        };
        let trial = Trial::new("b1", TrialKind::New);
        let cause =
            match install_and_reboot(r, &trial, &paths, &Failpoints::default(), None, &|_| {}) {
                Err(e) => e.to_string(),
                Ok(()) => unreachable!("install_and_reboot returns only on failure"),
            };
        (cause, std::fs::read(&p3).expect("p3"))
    }

    #[test]
    fn a_build_for_another_architecture_is_refused_before_the_card_is_touched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = ready(dir.path());
        let size = r.build.manifest.root.size;
        let (cause, p3) = attempt_with_p3(&mut r, dir.path(), size, "amd64");
        assert_eq!(
            cause,
            "build b1 is for arm64, this machine runs amd64 programs: stage a build made with ARCH=\"amd64\""
        );
        assert!(p3.iter().all(|&b| b == 0xaa), "p3 was written");
        assert!(r
            .recovery
            .install_log()
            .contains("failed: build b1 is for arm64"));
        assert!(!r.recovery.install_state().0.last_install_verified());
        assert!(autoboot(dir.path()).contains("boot_partition=1"));
        // The same card and build on the architecture the build is for: past this check, the
        // root is written.
        let (cause, p3) = attempt_with_p3(&mut r, dir.path(), size, "arm64");
        assert!(!cause.contains("is for arm64"), "{cause}");
        assert!(
            p3.iter().any(|&b| b != 0xaa),
            "p3 untouched on the right architecture: {cause}"
        );
    }

    #[test]
    fn a_root_larger_than_p3_is_refused_before_it_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = ready(dir.path());
        let need = r.build.manifest.root.size;
        let have = need - 512;
        let (cause, p3) = attempt_with_p3(&mut r, dir.path(), have, "arm64");
        assert_eq!(
            cause,
            format!(
                "{} holds {have} bytes, the image needs {need} (the card's partition table does not fit this build: reflash the card)",
                dir.path().join("p3").display()
            )
        );
        assert!(p3.iter().all(|&b| b == 0xaa), "p3 was written");
        assert!(autoboot(dir.path()).contains("boot_partition=1"));
    }

    #[test]
    fn a_damaged_boot_archive_is_refused_before_the_root_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = ready(dir.path());
        let size = r.build.manifest.root.size;
        let boot = r.build.boot_file();
        let mut bytes = std::fs::read(&boot).expect("boot");
        bytes[0] ^= 1;
        std::fs::write(&boot, &bytes).expect("flip");
        let (cause, p3) = attempt_with_p3(&mut r, dir.path(), size, "arm64");
        assert!(
            cause.contains("boot.tar.xz: SHA-256") && cause.contains("the manifest says"),
            "{cause}"
        );
        assert!(
            p3.iter().all(|&b| b == 0xaa),
            "p3 was written before boot.tar.xz was checked"
        );
        // Truncated: refused by its size, the same way.
        std::fs::write(&boot, &bytes[..bytes.len() - 1]).expect("truncate");
        let (cause, p3) = attempt_with_p3(&mut r, dir.path(), size, "arm64");
        assert!(
            cause.contains("boot.tar.xz: ") && cause.contains("bytes, the manifest says"),
            "{cause}"
        );
        assert!(p3.iter().all(|&b| b == 0xaa));
        assert!(autoboot(dir.path()).contains("boot_partition=1"));
    }
}
