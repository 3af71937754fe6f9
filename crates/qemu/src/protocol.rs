//! What the harness reads off the guest's console: the reboot-request line and how a run ended.
//!
//! A real Pi keeps the next boot's partition in the PM_RSTS register and the one-shot tryboot
//! flag in the firmware (pi-boot.md §5, §9, sources K-WDT, K-FW). QEMU has neither, so a guest
//! that wants them prints, just before it reboots, one line of its own:
//!
//! ```text
//! k8r-reboot: partition=2 tryboot=0
//! ```
//!
//! alone on a console line (a kernel timestamp such as `[   12.345678] ` may precede it when the
//! guest logs it through `/dev/kmsg`, which is the recommended way: the kernel flushes its
//! console before it resets). The last such line of a run is the request for the next boot;
//! a run that ends without one boots with partition 0 and tryboot off, as the real registers
//! would after a plain `reboot`.
//!
//! A kernel panic with `panic=N` on the command line resets the machine after N seconds
//! (kernel/panic.c prints `Rebooting in N seconds..` and calls `emergency_restart()`, which
//! prints no `reboot: Restarting system`). A real Pi's reset then carries no partition
//! request, whatever a reboot-request line said before the panic: the harness treats it as a
//! reboot with partition 0, tryboot off.

use k8r_boot_config::firmware::BootRequest;

/// The marker that starts a reboot-request line.
pub const REBOOT_MARKER: &str = "k8r-reboot:";

/// How one QEMU run ended, judged from its console (QEMU's exit status says nothing useful:
/// it is 0 for a power-off and for a panic alike; qemu-notes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The guest powered off (`reboot: Power down` / `System halted`).
    PowerOff,
    /// The guest rebooted (`reboot: Restarting system`, or a panic's `Rebooting in N
    /// seconds`); the request is what the next boot gets (partition 0 after a panic).
    Reboot(BootRequest),
    /// QEMU ended without the kernel saying either (crash, panic, killed).
    Other,
}

/// Parses one console line as a reboot request.
pub fn parse_reboot_line(line: &str) -> Option<BootRequest> {
    let line = line.trim_end_matches(['\r', '\n']).trim_start();
    let line = strip_kernel_timestamp(line);
    let rest = line.strip_prefix(REBOOT_MARKER)?.trim();
    let mut partition = None;
    let mut tryboot = None;
    for word in rest.split_whitespace() {
        match word.split_once('=') {
            Some(("partition", v)) => partition = Some(v.parse::<u8>().ok()?),
            Some(("tryboot", "0")) => tryboot = Some(false),
            Some(("tryboot", "1")) => tryboot = Some(true),
            _ => return None,
        }
    }
    match (partition, tryboot) {
        (Some(partition), Some(tryboot)) if partition <= 63 => {
            Some(BootRequest { partition, tryboot })
        }
        _ => None,
    }
}

fn strip_kernel_timestamp(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((stamp, after)) = rest.split_once(']') {
            let stamp = stamp.trim();
            if !stamp.is_empty() && stamp.chars().all(|c| c.is_ascii_digit() || c == '.') {
                return after.trim_start();
            }
        }
    }
    line
}

/// Classifies a finished run from everything its console printed.
pub fn classify_run(console: &str) -> RunEnd {
    let mut request = None;
    let mut end = RunEnd::Other;
    for line in console.lines() {
        if let Some(r) = parse_reboot_line(line) {
            request = Some(r);
        }
        // kernel/reboot.c: pr_emerg("Restarting system") / ("Power down") / ("System halted"),
        // printed with the "reboot: " prefix of that file's pr_fmt.
        if line.contains("reboot: Restarting system") {
            end = RunEnd::Reboot(request.unwrap_or_default());
        } else if is_panic_reboot(line) {
            // emergency_restart(): no request reaches the firmware.
            end = RunEnd::Reboot(BootRequest::default());
            request = None;
        } else if line.contains("reboot: Power down") || line.contains("reboot: System halted") {
            end = RunEnd::PowerOff;
        }
    }
    end
}

/// kernel/panic.c's `pr_emerg("Rebooting in %d seconds..\n", panic_timeout)`.
fn is_panic_reboot(line: &str) -> bool {
    line.find("Rebooting in ").is_some_and(|i| {
        let rest = &line[i + "Rebooting in ".len()..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(" seconds")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_timestamped_lines() {
        let want = BootRequest {
            partition: 2,
            tryboot: false,
        };
        assert_eq!(
            parse_reboot_line("k8r-reboot: partition=2 tryboot=0"),
            Some(want)
        );
        assert_eq!(
            parse_reboot_line("[   12.345678] k8r-reboot: partition=2 tryboot=0\r"),
            Some(want)
        );
        assert_eq!(
            parse_reboot_line("k8r-reboot: partition=0 tryboot=1"),
            Some(BootRequest {
                partition: 0,
                tryboot: true
            })
        );
    }

    #[test]
    fn rejects_echoed_commands_and_bad_values() {
        for line in [
            "/ # echo k8r-reboot: partition=2 tryboot=0",
            "k8r-reboot: partition=2",
            "k8r-reboot: partition=64 tryboot=0",
            "k8r-reboot: partition=x tryboot=0",
            "k8r-reboot: partition=1 tryboot=2",
            "k8r-reboot: partition=1 tryboot=0 extra",
            "[abc] k8r-reboot: partition=1 tryboot=0",
        ] {
            assert_eq!(parse_reboot_line(line), None, "{line}");
        }
    }

    #[test]
    fn classify_uses_last_request_before_restart() {
        let log = "boot\nk8r-reboot: partition=3 tryboot=0\nk8r-reboot: partition=1 tryboot=1\n\
                   [ 1.0] reboot: Restarting system\n";
        assert_eq!(
            classify_run(log),
            RunEnd::Reboot(BootRequest {
                partition: 1,
                tryboot: true
            })
        );
        assert_eq!(
            classify_run("x\n[ 2.0] reboot: Restarting system\n"),
            RunEnd::Reboot(BootRequest::default())
        );
        assert_eq!(
            classify_run("[ 2.0] reboot: Power down\n"),
            RunEnd::PowerOff
        );
        assert_eq!(classify_run("Kernel panic - not syncing\n"), RunEnd::Other);
    }

    #[test]
    fn a_panic_with_a_timeout_is_a_reboot_without_a_request() {
        let log = "k8r-reboot: partition=2 tryboot=0\n\
                   [    3.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n\
                   [    3.2] ---[ end Kernel panic - not syncing: Attempted to kill init! ]---\n\
                   [    3.1] Rebooting in 1 seconds..\n";
        assert_eq!(classify_run(log), RunEnd::Reboot(BootRequest::default()));
        for line in [
            "Rebooting in seconds",
            "echo Rebooting in x seconds",
            "Rebooting in 5",
        ] {
            assert_eq!(classify_run(line), RunEnd::Other, "{line}");
        }
    }
}
