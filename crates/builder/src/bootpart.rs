//! The working boot partition (p2, shipped as `boot.tar.xz`): the vendor's boot files with the
//! changes a Kubernetes node needs. Pure edits on file contents; the caller reads and writes.

use k8r_boot_config::cmdline::Cmdline;
use k8r_boot_config::config_txt::ConfigTxt;

/// Tokens appended at the END of `cmdline.txt`: the Pi kernel's DTB may carry
/// `cgroup_disable=memory` earlier on the line, and later tokens win (kubernetes-node.md §2.6,
/// raspberrypi/linux#6980).
pub const CGROUP_FLAGS: &[(&str, &str)] = &[("cgroup_enable", "memory"), ("cgroup_memory", "1")];

/// The serial console Ubuntu uses (the firmware maps `serial0` to the primary UART).
pub const SERIAL_CONSOLE: &str = "serial0,115200";

/// What the kernel does on a panic unless the vendor's line or `KERNEL_CMDLINE` says
/// otherwise: reboot after 10 s. The kernel's default (`panic=0`) waits forever, and a node
/// whose new build panics at boot would hang on its trial instead of going back to recovery,
/// which rolls it back.
pub const PANIC_REBOOT: (&str, &str) = ("panic", "10");

/// k8r's edits to the effective `cmdline.txt`: the serial console on, a reboot on panic, the
/// user's `KERNEL_CMDLINE` tokens, cgroup flags at the end.
pub fn edit_cmdline(text: &str, extra: &[String]) -> String {
    let mut cmdline = Cmdline::parse(text);
    let has_serial = cmdline.tokens().iter().any(|t| {
        t.starts_with("console=serial0")
            || t.starts_with("console=ttyS")
            || t.starts_with("console=ttyAMA")
    });
    if !has_serial {
        // Appending keeps any `console=tty1`; the last console is /dev/console, so the serial
        // one becomes primary, which is what a headless node wants.
        cmdline.append_flag(&format!("console={SERIAL_CONSOLE}"));
    }
    if !cmdline.has(PANIC_REBOOT.0) {
        cmdline.set(PANIC_REBOOT.0, PANIC_REBOOT.1);
    }
    for token in extra {
        match token.split_once('=') {
            // The kernel takes several consoles; the last is /dev/console.
            Some(("console", _)) | None => cmdline.append_flag(token),
            Some((key, value)) => cmdline.set(key, value),
        }
    }
    for (key, value) in CGROUP_FLAGS {
        cmdline.remove(key);
        cmdline.set(key, value);
    }
    cmdline.render()
}

/// k8r's edits to `config.txt`: the serial console (`enable_uart=1` in `[all]`).
pub fn edit_config(text: &str) -> String {
    let mut config = ConfigTxt::parse_lenient(text);
    config.set("all", "enable_uart", "1");
    config.render()
}

/// cloud-init `user-data` for Ubuntu's first boot (NoCloud seed on `system-boot`): the login
/// password of the default user from a SHA-512 crypt hash, no forced change.
pub fn user_data(password_hash: &str) -> String {
    format!(
        "#cloud-config\n\
         # Written by k8r-builder from password_hash.\n\
         chpasswd:\n  expire: false\n  users:\n    - name: ubuntu\n      password: \"{password_hash}\"\n      type: hash\n\
         ssh_pwauth: true\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_flags_go_last_and_are_not_doubled() {
        let out = edit_cmdline(
            "console=serial0,115200 cgroup_enable=memory root=LABEL=writable rootwait\n",
            &[],
        );
        assert_eq!(
            out,
            "console=serial0,115200 root=LABEL=writable rootwait panic=10 cgroup_enable=memory cgroup_memory=1\n"
        );
        assert_eq!(edit_cmdline(&out, &[]), out, "idempotent");
    }

    #[test]
    fn a_panic_reboots_unless_told_otherwise() {
        let vendor = "console=serial0,115200 panic=60 root=LABEL=writable\n";
        assert!(
            edit_cmdline(vendor, &[]).contains(" panic=60 "),
            "the vendor's value stays"
        );
        let user = ["panic=30".to_string()];
        let out = edit_cmdline("root=LABEL=writable\n", &user);
        assert_eq!(out.matches("panic=").count(), 1, "{out}");
        assert!(out.contains(" panic=30 "), "KERNEL_CMDLINE wins: {out}");
    }

    #[test]
    fn kernel_cmdline_tokens_are_added_before_the_cgroup_flags() {
        let extra: Vec<String> = [
            "usbcore.autosuspend=-1",
            "quiet",
            "console=tty1",
            "rootwait",
        ]
        .map(String::from)
        .into();
        let out = edit_cmdline(
            "console=serial0,115200 root=LABEL=writable rootwait\n",
            &extra,
        );
        assert_eq!(
            out,
            "console=serial0,115200 root=LABEL=writable rootwait panic=10 usbcore.autosuspend=-1 \
             quiet console=tty1 cgroup_enable=memory cgroup_memory=1\n"
        );
        assert_eq!(edit_cmdline(&out, &extra), out, "idempotent");
    }

    #[test]
    fn serial_console_added_when_missing() {
        let out = edit_cmdline("console=tty1 root=LABEL=writable\n", &[]);
        assert!(
            out.starts_with("console=tty1 root=LABEL=writable console=serial0,115200"),
            "{out}"
        );
    }

    #[test]
    fn config_gets_enable_uart_and_keeps_the_rest() {
        let base =
            "[all]\nos_prefix=current/\n\n[tryboot]\nos_prefix=new/\n\n[all]\nkernel=vmlinuz\n";
        let out = edit_config(base);
        assert!(
            out.starts_with("[all]\nos_prefix=current/\n\n[tryboot]\nos_prefix=new/\n"),
            "{out}"
        );
        assert!(out.contains("enable_uart=1"), "{out}");
        let already = "[all]\nenable_uart=1\n";
        assert_eq!(edit_config(already), already);
    }

    #[test]
    fn user_data_carries_the_hash() {
        let ud = user_data("$6$salt$hash");
        assert!(ud.starts_with("#cloud-config\n"));
        assert!(ud.contains("password: \"$6$salt$hash\""));
        assert!(ud.contains("expire: false"));
    }
}
