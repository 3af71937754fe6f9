//! The node's identity across a reinstall: `/etc/machine-id` and the SSH host keys
//! (`/etc/ssh/ssh_host_*`) are kept on the data partition, so operators don't get "host key
//! changed" and the journal keeps its machine id after every wipe.
//!
//! Saved once they exist (the first boot's keys come from cloud-init, after the agent's
//! setup step), restored early in every boot before `ssh` and cloud-init start (with
//! cloud-init's `ssh_deletekeys: false`, which the image sets, it keeps restored keys).

use std::fs;

use anyhow::{Context, Result};
use k8r_card::data::{MACHINE_ID, ROOT_SSH_DIR, SSH_HOST_KEYS};

use crate::data::Data;
use crate::host::{write_atomic, Host};

/// What [`restore`] put back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    /// The machine id changed to the kept one.
    pub machine_id: bool,
    /// SSH host key files written.
    pub ssh_keys: usize,
}

fn is_host_key(name: &str) -> bool {
    name.starts_with("ssh_host_") && (name.ends_with("_key") || name.ends_with("_key.pub"))
}

/// Copies the kept identity into the root where it differs.
pub fn restore(host: &Host, data: &Data) -> Result<Restored> {
    let mut r = Restored::default();
    if let Some(id) = crate::host::read_opt(&data.path(MACHINE_ID))? {
        if valid_machine_id(&id) && host.read_opt("/etc/machine-id")?.as_deref() != Some(&id[..]) {
            host.write("/etc/machine-id", &id, 0o444)?;
            r.machine_id = true;
        }
    }
    let kept = data.path(SSH_HOST_KEYS);
    if let Ok(entries) = fs::read_dir(&kept) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_host_key(&name) {
                continue;
            }
            let bytes = fs::read(entry.path())
                .with_context(|| format!("reading {}", entry.path().display()))?;
            let target = format!("{ROOT_SSH_DIR}/{name}");
            if host.read_opt(&target)?.as_deref() != Some(&bytes[..]) {
                let mode = if name.ends_with(".pub") { 0o644 } else { 0o600 };
                host.write(&target, &bytes, mode)?;
                r.ssh_keys += 1;
            }
        }
    }
    Ok(r)
}

/// Saves the root's identity onto the data partition when it has none yet; returns what it
/// saved (`machine-id`, key file names).
pub fn save_missing(host: &Host, data: &Data) -> Result<Vec<String>> {
    let mut saved = Vec::new();
    if !data.path(MACHINE_ID).exists() {
        if let Some(id) = host.read_opt("/etc/machine-id")? {
            if valid_machine_id(&id) {
                write_atomic(&data.path(MACHINE_ID), &id, 0o444)?;
                saved.push("machine-id".to_owned());
            }
        }
    }
    let kept = data.path(SSH_HOST_KEYS);
    let has_keys = fs::read_dir(&kept)
        .map(|e| {
            e.flatten()
                .any(|e| is_host_key(&e.file_name().to_string_lossy()))
        })
        .unwrap_or(false);
    if !has_keys {
        if let Ok(entries) = fs::read_dir(host.path(ROOT_SSH_DIR)) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if is_host_key(&name) && entry.path().is_file() {
                    let bytes = fs::read(entry.path())
                        .with_context(|| format!("reading {}", entry.path().display()))?;
                    write_atomic(&kept.join(&name), &bytes, 0o600)?;
                    saved.push(name);
                }
            }
        }
    }
    saved.sort();
    Ok(saved)
}

/// 32 lowercase hex digits and a newline: what systemd writes (an empty or `uninitialized`
/// file means "first boot", and is never kept).
fn valid_machine_id(bytes: &[u8]) -> bool {
    let t = String::from_utf8_lossy(bytes);
    let t = t.trim();
    t.len() == 32 && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &[u8] = b"0123456789abcdef0123456789abcdef\n";

    fn setup() -> (tempfile::TempDir, Host, Data) {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::at(&dir.path().join("root"));
        let data = Data::at(&dir.path().join("data"));
        (dir, host, data)
    }

    #[test]
    fn first_boot_saves_then_a_reinstall_restores() {
        let (_d, host, data) = setup();
        host.write("/etc/machine-id", ID, 0o444).expect("id");
        host.write("/etc/ssh/ssh_host_ed25519_key", b"PRIVATE", 0o600)
            .expect("key");
        host.write("/etc/ssh/ssh_host_ed25519_key.pub", b"PUBLIC", 0o644)
            .expect("pub");
        host.write("/etc/ssh/sshd_config", b"config", 0o644)
            .expect("config");
        assert_eq!(
            save_missing(&host, &data).expect("save"),
            vec![
                "machine-id",
                "ssh_host_ed25519_key",
                "ssh_host_ed25519_key.pub"
            ]
        );
        assert_eq!(
            save_missing(&host, &data).expect("again"),
            Vec::<String>::new()
        );

        // A reinstall: a fresh root with a new machine id and no keys.
        fs::remove_dir_all(host.path("/etc")).expect("wipe");
        host.write(
            "/etc/machine-id",
            b"ffffffffffffffffffffffffffffffff\n",
            0o444,
        )
        .expect("new id");
        let r = restore(&host, &data).expect("restore");
        assert_eq!(
            r,
            Restored {
                machine_id: true,
                ssh_keys: 2
            }
        );
        assert_eq!(
            host.read_opt("/etc/machine-id").expect("r").as_deref(),
            Some(ID)
        );
        assert_eq!(
            host.read_opt("/etc/ssh/ssh_host_ed25519_key")
                .expect("r")
                .as_deref(),
            Some(&b"PRIVATE"[..])
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(host.path("/etc/ssh/ssh_host_ed25519_key"))
            .expect("m")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            restore(&host, &data).expect("again"),
            Restored::default(),
            "idempotent"
        );
    }

    #[test]
    fn an_uninitialised_machine_id_is_never_kept() {
        let (_d, host, data) = setup();
        host.write("/etc/machine-id", b"uninitialized\n", 0o444)
            .expect("id");
        assert!(save_missing(&host, &data).expect("save").is_empty());
        host.write("/etc/machine-id", b"", 0o444).expect("id");
        assert!(save_missing(&host, &data).expect("save").is_empty());
    }
}
