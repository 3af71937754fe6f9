//! The k8r recovery installer: PID 1 of the recovery initramfs.
//!
//! This is its first stage: it brings the system up (devtmpfs, proc, sysfs, the kernel modules
//! the initramfs carries), finds the card by the `K8R-RECOVERY` partition and reports what it
//! found on the console. Writing the working partitions lands with the installer issue; until
//! then the binary announces itself as the recovery *marker* and powers off.
//!
//! All system calls live in [`sys`], the workspace's one `unsafe` module.

pub mod card;
pub mod early;
pub mod sys;

use std::time::Duration;

/// The line tests and operators look for on the serial console.
pub const MARKER: &str = "K8R-RECOVERY";

/// Runs PID 1. Never returns.
pub fn run() -> ! {
    let log = early::Log::open();
    log.line(&format!(
        "{MARKER}: k8r recovery marker initramfs {} (the installer lands with its own issue)",
        env!("CARGO_PKG_VERSION")
    ));
    for problem in early::bring_up() {
        log.line(&format!("{MARKER}: warning: {problem}"));
    }
    match card::find_recovery(Duration::from_secs(20)) {
        Ok(found) => log.line(&format!(
            "{MARKER}: card {} holds {} on partition {}",
            found.disk,
            card::RECOVERY_LABEL,
            found.partition
        )),
        Err(e) => log.line(&format!("{MARKER}: error: {e}")),
    }
    log.line(&format!("{MARKER}: marker done, powering off"));
    sys::sync();
    loop {
        if let Err(e) = sys::power_off() {
            log.line(&format!("{MARKER}: power off failed: {e}"));
        }
        std::thread::sleep(Duration::from_secs(60));
    }
}
