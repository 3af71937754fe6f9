//! PID 1's flow: bring up, find the card, read the stored manifest and the attempt record,
//! count down, install — or show the recovery menu. Every error ends in the menu with a
//! one-line cause; PID 1 never exits.

use std::path::Path;
use std::time::Duration;

use k8r_manifest::Manifest;

use crate::card::{self, CardLayout};
use crate::early::{self, Log};
use crate::failpoint::Failpoints;
use crate::install::{self, Job, RECOVERY_MNT, STORE};
use crate::menu::{self, Action, Menu, MenuContext, Outcome};
use crate::replace::careful_replace;
use crate::state::{BootDecision, InstallState};
use crate::watchdog::Watchdog;
use crate::{console, installlog, stream, sys};

/// Failed attempts before the installer stops at the menu instead of looping.
pub const MAX_ATTEMPTS: u32 = 3;
/// The countdown before an automatic install.
pub const COUNTDOWN: u32 = 5;
/// The attempt record on p1.
pub const STATE_FILE: &str = "k8r/install-state";
/// The install log on p1.
pub const LOG_FILE: &str = "k8r/install.log";
/// Bound of the install log.
pub const LOG_MAX: usize = 64 * 1024;
/// The line the harness (and operators) look for.
pub const MARKER: &str = "K8R-RECOVERY";

/// What the flow knows once the card is found.
struct Ready {
    card: CardLayout,
    manifest: Manifest,
}

/// Runs PID 1. Never returns.
pub fn run() -> ! {
    let log = Log::open();
    let say = |s: &str| log.line(s);
    say(&format!(
        "{MARKER}: k8r recovery installer {}",
        env!("CARGO_PKG_VERSION")
    ));
    for problem in early::bring_up() {
        say(&format!("{MARKER}: warning: {problem}"));
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let failpoints = Failpoints::from_cmdline(&cmdline);
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
    let ready = prepare(&say);
    let mut last_error = ready.as_ref().err().cloned();
    if let Ok(r) = &ready {
        let state = read_state();
        match state.on_boot(MAX_ATTEMPTS) {
            BootDecision::Install { attempt } => {
                let text = menu::countdown_text(
                    COUNTDOWN,
                    Some(&r.manifest.build_id),
                    Some(&r.manifest.kubernetes_version),
                );
                say(&format!("{text} (attempt {attempt} of {MAX_ATTEMPTS})"));
                if console::key_pressed(Duration::from_secs(u64::from(COUNTDOWN))) {
                    say(&format!("{MARKER}: key pressed: recovery menu"));
                } else {
                    last_error = install_and_reboot(r, &failpoints, watchdog.as_ref(), &say).err();
                }
            }
            BootDecision::StopAtMenu { reason } => {
                say(&format!("{MARKER}: {reason}"));
                last_error = Some(reason);
            }
        }
    }
    menu_loop(ready.ok(), last_error, &failpoints, watchdog.as_ref(), &say)
}

fn prepare(say: &dyn Fn(&str)) -> Result<Ready, String> {
    let found = card::find_recovery(Duration::from_secs(30)).map_err(|e| e.to_string())?;
    say(&format!(
        "{MARKER}: card {} holds {} on partition {}",
        found.disk,
        card::RECOVERY_LABEL,
        found.partition
    ));
    let card = card::layout(&found.disk)?;
    for n in 1..=3 {
        card.part(n)?;
    }
    install::mount(&card.part(1)?.dev, RECOVERY_MNT, "vfat")?;
    let path = Path::new(RECOVERY_MNT)
        .join(STORE)
        .join(k8r_manifest::MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest = Manifest::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Ready { card, manifest })
}

fn read_state() -> InstallState {
    let text =
        std::fs::read_to_string(Path::new(RECOVERY_MNT).join(STATE_FILE)).unwrap_or_default();
    InstallState::parse(&text)
}

fn write_state(state: &InstallState) -> Result<(), String> {
    let dir = Path::new(RECOVERY_MNT).join("k8r");
    careful_replace(&dir, "install-state", state.render().as_bytes()).map_err(|e| e.to_string())
}

fn append_log(build_id: &str, outcome: &str) {
    let path = Path::new(RECOVERY_MNT).join(LOG_FILE);
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next().and_then(|s| s.parse().ok()))
        .unwrap_or(0.0);
    let entry = installlog::format_entry(uptime, build_id, outcome);
    let text = installlog::append_bounded(&existing, &entry, LOG_MAX);
    let _ = careful_replace(
        &Path::new(RECOVERY_MNT).join("k8r"),
        "install.log",
        text.as_bytes(),
    );
}

fn job<'a>(r: &'a Ready, failpoints: &'a Failpoints, watchdog: Option<&'a Watchdog>) -> Job<'a> {
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| stream::mem_total_from_meminfo(&t))
        .unwrap_or(1 << 30);
    Job {
        card: &r.card,
        manifest: &r.manifest,
        failpoints,
        watchdog,
        threads: usize::try_from(stream::online_cpus()).unwrap_or(1).max(1),
        mem_total,
    }
}

/// The automatic path. Returns only on failure (with the cause); on success it reboots.
fn install_and_reboot(
    r: &Ready,
    failpoints: &Failpoints,
    watchdog: Option<&Watchdog>,
    say: &dyn Fn(&str),
) -> Result<(), String> {
    let job = job(r, failpoints, watchdog);
    let build = r.manifest.build_id.clone();
    let before = read_state();
    write_state(&before.begin(&build))?;
    append_log(&build, "install started");
    failpoints.hit("after-begin", say);
    let steps = || -> Result<(), String> {
        install::check_compressed(&job)?;
        say(&format!("{MARKER}: writing the root partition"));
        install::write_root(&job, say)?;
        say(&format!("{MARKER}: writing the boot partition"));
        install::write_boot(&job, say)?;
        install::apply_node_config(&job)?;
        Ok(())
    };
    if let Err(cause) = steps() {
        say(&format!("{MARKER}: install failed: {cause}"));
        let _ = write_state(&read_state().fail(&cause));
        append_log(&build, &format!("failed: {cause}"));
        return Err(cause);
    }
    failpoints.hit("before-flip", say);
    write_state(&read_state().succeed())?;
    append_log(&build, "verified; switching to the working system");
    install::flip_autoboot(2)?;
    failpoints.hit("after-flip", say);
    say(&format!(
        "{MARKER}: install verified, rebooting into the working system"
    ));
    reboot(say)
}

fn reboot(say: &dyn Fn(&str)) -> ! {
    sys::sync();
    let _ = sys::umount(Path::new(RECOVERY_MNT));
    // The harness's stand-in for the Pi's reboot register (docs/harness.md): the next boot
    // follows autoboot.txt (partition 0 = the default).
    kmsg("k8r-reboot: partition=0 tryboot=0");
    loop {
        if let Err(e) = sys::reboot() {
            say(&format!("{MARKER}: reboot failed: {e}"));
        }
        std::thread::sleep(Duration::from_secs(10));
    }
}

fn kmsg(line: &str) {
    use std::io::Write;
    if let Ok(mut k) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = k.write_all(line.as_bytes());
    }
}

fn menu_loop(
    ready: Option<Ready>,
    mut last_error: Option<String>,
    failpoints: &Failpoints,
    watchdog: Option<&Watchdog>,
    say: &dyn Fn(&str),
) -> ! {
    loop {
        let state = read_state();
        let ctx = MenuContext {
            build_id: ready.as_ref().map(|r| r.manifest.build_id.clone()),
            k8s_version: ready
                .as_ref()
                .map(|r| r.manifest.kubernetes_version.clone()),
            last_error: last_error.clone(),
            shell_available: Path::new("/bin/sh").exists(),
            working_verified: state.last_install_verified(),
            attempts: state.attempts,
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
                last_error = act(action, ready.as_ref(), failpoints, watchdog, say).err();
            }
            Outcome::Refused(why) | Outcome::Invalid(why) => say(&format!("{MARKER}: {why}")),
            Outcome::Redraw => {}
        }
    }
}

fn act(
    action: Action,
    ready: Option<&Ready>,
    failpoints: &Failpoints,
    watchdog: Option<&Watchdog>,
    say: &dyn Fn(&str),
) -> Result<(), String> {
    let need =
        || ready.ok_or_else(|| "no usable card or stored image (see the error above)".to_owned());
    match action {
        Action::Reinstall => install_and_reboot(need()?, failpoints, watchdog, say),
        Action::Verify => {
            let r = need()?;
            say(&format!("{MARKER}: verifying the stored image"));
            install::verify_store(&job(r, failpoints, watchdog), say)
        }
        Action::ShowLog => {
            let text =
                std::fs::read_to_string(Path::new(RECOVERY_MNT).join(LOG_FILE)).unwrap_or_default();
            let pages = menu::page(&text, 24, 80);
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
                .map_err(|e| format!("/bin/sh: {e}"))
        }
        Action::BootWorking => {
            install::flip_autoboot(2)?;
            append_log(
                &need()?.manifest.build_id,
                "operator chose the working system",
            );
            say(&format!("{MARKER}: booting the working system"));
            reboot(say)
        }
        Action::Reboot => reboot(say),
        Action::PowerOff => {
            sys::sync();
            let _ = sys::umount(Path::new(RECOVERY_MNT));
            loop {
                let _ = sys::power_off();
                std::thread::sleep(Duration::from_secs(10));
            }
        }
    }
}
