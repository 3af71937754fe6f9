//! What systemd prints when it gives up on a boot: a guest in emergency or rescue mode waits
//! for a root login that the console never gets (Ubuntu's and the fixtures' root account is
//! locked), so anything a test still waits for will never come. The harness stops waiting at
//! once and names the units systemd gave up on, which the test's own output then carries (a
//! CI log has no transcript file to look into).

/// Lines `sulogin` and systemd's emergency and rescue shells print, one of which every such
/// boot shows.
const SIGNS: &[&str] = &[
    "Cannot open access to console, the root account is locked",
    "You are in emergency mode",
    "You are in rescue mode",
];

/// The status prefixes of the units systemd failed on the way (after the colours are gone).
const FAILURES: &[&str] = &["[FAILED]", "[ TIME ]", "[DEPEND]"];

/// When `run` (the console of one boot) shows systemd's emergency or rescue shell: the lines
/// that say why, without colours and each once, joined by ` | ` (or a note that none was
/// printed). `None` while the boot has not given up.
pub fn gave_up(run: &str) -> Option<String> {
    if !SIGNS.iter().any(|sign| run.contains(sign)) {
        return None;
    }
    let plain = without_escapes(run);
    let mut why: Vec<&str> = Vec::new();
    for line in plain.split(['\n', '\r']) {
        let line = line.trim();
        if FAILURES.iter().any(|f| line.starts_with(f)) && !why.contains(&line) {
            why.push(line);
        }
    }
    Some(if why.is_empty() {
        "systemd printed no failed unit on the console".to_owned()
    } else {
        why.join(" | ")
    })
}

/// `text` without the terminal escape sequences systemd colours its status lines with and
/// redraws its progress line with.
fn without_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // `ESC [` … final byte, or `ESC` and one character (systemd's `ESC M` before it
        // redraws its progress line).
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A working system's console as a CI machine printed it when the boot partition's device
    /// took longer than systemd's 90 s (the status lines as systemd colours them).
    const TIMED_OUT: &str = "\
[\u{1b}[0;32m  OK  \u{1b}[0m] Reached target \u{1b}[0;1;39mlocal-fs-pre.target\u{1b}[0m.\n\
\u{1b}M\u{1b}[K[\u{1b}[0;1;31m TIME \u{1b}[0m] Timed out waiting for device \u{1b}[0;1;39mdev-disk-by\\x2dlabel-system\\x2dboot.device\u{1b}[0m - /dev/disk/by-label/system-boot.\r\n\
[\u{1b}[0;1;38;5;185mDEPEND\u{1b}[0m] Dependency failed for \u{1b}[0;1;39mboot-firmware.mount\u{1b}[0m - /boot/firmware.\n\
[\u{1b}[0;1;38;5;185mDEPEND\u{1b}[0m] Dependency failed for \u{1b}[0;1;39mlocal-fs.target\u{1b}[0m - Local File Systems.\n\
[\u{1b}[0;1;38;5;185mDEPEND\u{1b}[0m] Dependency failed for \u{1b}[0;1;39mlocal-fs.target\u{1b}[0m - Local File Systems.\n\
[  152.238213] k8r[205]: k8r: host name k8r-34880d50\n\
\n\
Cannot open access to console, the root account is locked.\n\
See sulogin(8) man page for more details.\n\
\n\
Press Enter to continue.\n";

    #[test]
    fn an_emergency_boot_names_what_systemd_gave_up_on_once_each() {
        assert_eq!(
            gave_up(TIMED_OUT).as_deref(),
            Some(
                "[ TIME ] Timed out waiting for device dev-disk-by\\x2dlabel-system\\x2dboot.device \
                 - /dev/disk/by-label/system-boot. | [DEPEND] Dependency failed for \
                 boot-firmware.mount - /boot/firmware. | [DEPEND] Dependency failed for \
                 local-fs.target - Local File Systems."
            )
        );
    }

    #[test]
    fn a_boot_that_did_not_give_up_is_not_reported_even_with_failed_units() {
        let failed_but_running =
            "[\u{1b}[0;1;31mFAILED\u{1b}[0m] Failed to start foo.service.\nK8R-FIXTURE-ROOT: up\n";
        assert_eq!(gave_up(failed_but_running), None);
        assert_eq!(gave_up(""), None);
    }

    #[test]
    fn a_rescue_shell_without_failure_lines_says_so() {
        assert_eq!(
            gave_up("You are in rescue mode. After logging in, type \"journalctl -xb\"").as_deref(),
            Some("systemd printed no failed unit on the console")
        );
    }
}
