//! The node's host name (also its Kubernetes node name): `NODE_NAME` when set, else
//! `HOSTNAME_PREFIX-<the Pi's serial number's last 8 hex digits>`
//! (`/proc/device-tree/serial-number`), else, on a machine without one (QEMU), the first 8
//! digits of the machine id, which the data partition keeps across reinstalls.

use anyhow::{Context, Result};

use crate::host::Host;

/// The name for a node. Pure.
pub fn choose(
    node_name: Option<&str>,
    prefix: &str,
    serial: Option<&str>,
    machine_id: Option<&str>,
) -> String {
    if let Some(n) = node_name.filter(|n| !n.is_empty()) {
        return n.to_owned();
    }
    let hex = |s: &str| -> Option<String> {
        let digits: String = s
            .chars()
            .filter(char::is_ascii_hexdigit)
            .collect::<String>()
            .to_ascii_lowercase();
        (digits.len() >= 8).then(|| digits[digits.len() - 8..].to_owned())
    };
    let suffix = serial
        .and_then(hex)
        .or_else(|| machine_id.and_then(|m| hex(&m.chars().take(8).collect::<String>())))
        .unwrap_or_else(|| "node".to_owned());
    format!("{prefix}-{suffix}")
}

/// The Pi's serial number from the device tree (NUL-terminated string), if there is one.
pub fn serial(host: &Host) -> Option<String> {
    let bytes = std::fs::read(host.path("/proc/device-tree/serial-number")).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim_matches(char::from(0)).trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Sets the host name: `/etc/hostname`, a `127.0.1.1` line in `/etc/hosts` (as Debian and
/// Ubuntu do), and the kernel's host name on the real machine. Returns whether anything
/// changed.
pub fn apply(host: &Host, name: &str) -> Result<bool> {
    let mut changed = false;
    let want = format!("{name}\n");
    if host.read_text_opt("/etc/hostname")?.as_deref() != Some(want.as_str()) {
        host.write("/etc/hostname", want.as_bytes(), 0o644)?;
        changed = true;
    }
    let hosts = host.read_text_opt("/etc/hosts")?.unwrap_or_default();
    let new_hosts = hosts_with(&hosts, name);
    if new_hosts != hosts {
        host.write("/etc/hosts", new_hosts.as_bytes(), 0o644)?;
        changed = true;
    }
    if host.is_system() {
        let current = rustix::system::uname();
        if current.nodename().to_bytes() != name.as_bytes() {
            rustix::system::sethostname(name.as_bytes()).context("setting the host name")?;
            changed = true;
        }
    }
    Ok(changed)
}

/// `/etc/hosts` with exactly one `127.0.1.1 <name>` line. Pure.
pub fn hosts_with(hosts: &str, name: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    for line in hosts.lines() {
        if line.split_whitespace().next() == Some("127.0.1.1") {
            if !done {
                out.push_str(&format!("127.0.1.1\t{name}\n"));
                done = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !done {
        if hosts.is_empty() {
            out.push_str("127.0.0.1\tlocalhost\n");
        }
        out.push_str(&format!("127.0.1.1\t{name}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            choose(Some("pi-master-1"), "k8r", Some("10000000a1b2c3d4"), None),
            "pi-master-1"
        );
        assert_eq!(
            choose(None, "k8r", Some("10000000A1B2C3D4"), None),
            "k8r-a1b2c3d4"
        );
        assert_eq!(
            choose(
                Some(""),
                "pi",
                None,
                Some("0123456789abcdef0123456789abcdef")
            ),
            "pi-01234567"
        );
        assert_eq!(choose(None, "k8r", Some("short"), None), "k8r-node");
    }

    #[test]
    fn hosts_file_gets_one_line() {
        assert_eq!(
            hosts_with("", "n1"),
            "127.0.0.1\tlocalhost\n127.0.1.1\tn1\n"
        );
        let h = "127.0.0.1 localhost\n127.0.1.1 old\n127.0.1.1 older\n::1 ip6\n";
        assert_eq!(
            hosts_with(h, "n1"),
            "127.0.0.1 localhost\n127.0.1.1\tn1\n::1 ip6\n"
        );
        assert_eq!(hosts_with(&hosts_with(h, "n1"), "n1"), hosts_with(h, "n1"));
    }

    #[test]
    fn serial_from_the_device_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::at(dir.path());
        assert_eq!(serial(&host), None);
        std::fs::create_dir_all(host.path("/proc/device-tree")).expect("dir");
        std::fs::write(
            host.path("/proc/device-tree/serial-number"),
            b"10000000a1b2c3d4\0",
        )
        .expect("w");
        assert_eq!(serial(&host).as_deref(), Some("10000000a1b2c3d4"));
        assert!(apply(&host, "k8r-a1b2c3d4").expect("apply"));
        assert!(!apply(&host, "k8r-a1b2c3d4").expect("again"));
    }
}
