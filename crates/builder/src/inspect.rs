//! `k8r-builder inspect IMAGE`: what is on a k8r card (or any MBR image): partitions, labels,
//! sizes, where the firmware will boot next, the stored manifest, the node configuration
//! (secrets redacted) and whether a login password is set (never the hash). An image without
//! a `K8R-RECOVER` partition is described and said plainly not to be a k8r card.

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use k8r_boot_config::autoboot::Autoboot;
pub use k8r_boot_config::volume::{ext4_label, fat_label};
use k8r_card::layout::{BOOT_LABEL, RECOVERY_LABEL, ROOT_LABEL};
use k8r_card::recovery::K8R_DIR;
use k8r_card::recovery::{AUTOBOOT_FILE, NODE_DIR, NODE_USER_DATA, NODE_VARIABLES};
use k8r_card::store::{Pointer, POINTER_FILE, STORE_DIR};
use k8r_card::trust::{CardTrust, TRUSTED_KEYS_FILE};
use k8r_manifest::signature::SIGNATURE_FILE;
use k8r_manifest::{Manifest, MANIFEST_FILE};

use crate::base::{read_table, BaseError};
use crate::image::fat::FatImage;
use crate::image::{ext4, io_err, MIB};
use crate::recovery::{sets_password, DEFAULT_LOGIN};

/// What `inspect` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The report.
    pub text: String,
    /// Whether the image is a k8r card (it has a `K8R-RECOVER` partition); when not, the
    /// caller says so ([`not_a_card`]).
    pub is_card: bool,
    /// Whether it has Ubuntu's `system-boot` partition.
    pub has_boot: bool,
}

/// The plain statement that `image` is not a k8r card; `vendor`: it has a `system-boot`
/// partition, as the vendor image a card is built from does.
pub fn not_a_card(image: &Path, vendor: bool) -> String {
    format!(
        "{} is not a k8r card (no {RECOVERY_LABEL} partition){}; build a card with \
         `k8r-builder assemble`",
        image.display(),
        if vendor {
            ": it looks like a vendor image"
        } else {
            ""
        }
    )
}

/// The report line about the login password, from the node's `user-data` on p1 (`None`:
/// absent) and on p2.
pub fn login_line(p1: Option<&[u8]>, p2: Option<&[u8]>) -> String {
    let set = |d: Option<&[u8]>| d.is_some_and(|d| sets_password(&String::from_utf8_lossy(d)));
    let node = format!("{NODE_DIR}/{NODE_USER_DATA}");
    match (set(p1), set(p2)) {
        (true, true) => format!("login password: set (p1 {node} and p2 user-data; the hash is not shown)"),
        (false, false) => format!("login password: not set, {DEFAULT_LOGIN}"),
        (true, false) => format!(
            "login password: set in p1 {node} (the hash is not shown) but not on p2: it applies at the next install"
        ),
        (false, true) => format!(
            "login password: set in p2 user-data (the hash is not shown) but not in p1 {node}: a reinstall resets it"
        ),
    }
}

/// The current build's manifest in the image store of a card's recovery partition (through
/// the store's pointer file).
///
/// # Errors
/// The pointer or the manifest is missing or invalid, said plainly.
pub fn stored_manifest(p1: &FatImage) -> Result<Manifest, String> {
    stored_build(p1).map(|b| b.manifest)
}

/// The current stored build of a card: its manifest, the bytes it was read from, and its
/// signature if it has one.
#[derive(Debug, Clone)]
pub struct StoredBuild {
    /// The validated manifest.
    pub manifest: Manifest,
    /// Its bytes (what the signature covers).
    pub bytes: Vec<u8>,
    /// `manifest.toml.minisig`, if there is one.
    pub signature: Option<String>,
}

/// Reads the current stored build of a card's recovery partition.
///
/// # Errors
/// The pointer or the manifest is missing or invalid, said plainly.
pub fn stored_build(p1: &FatImage) -> Result<StoredBuild, String> {
    let pointer_path = format!("{STORE_DIR}/{POINTER_FILE}");
    let text = p1
        .read(&pointer_path)
        .map_err(|e| format!("{pointer_path}: {e}"))?;
    let pointer = Pointer::parse(&String::from_utf8_lossy(&text))
        .map_err(|e| format!("{pointer_path}: {e}"))?;
    let manifest_path = format!("{STORE_DIR}/{}/{MANIFEST_FILE}", pointer.current);
    let bytes = p1
        .read(&manifest_path)
        .map_err(|e| format!("{manifest_path}: {e}"))?;
    let manifest = Manifest::parse(&String::from_utf8_lossy(&bytes))
        .map_err(|e| format!("{manifest_path}: {e}"))?;
    let sig_path = format!("{STORE_DIR}/{}/{SIGNATURE_FILE}", pointer.current);
    let signed = p1
        .exists(&sig_path)
        .map_err(|e| format!("{sig_path}: {e}"))?;
    let signature = if signed {
        let b = p1.read(&sig_path).map_err(|e| format!("{sig_path}: {e}"))?;
        Some(String::from_utf8_lossy(&b).into_owned())
    } else {
        None
    };
    Ok(StoredBuild {
        manifest,
        bytes,
        signature,
    })
}

/// The card's trusted keys file on p1 (`k8r/trusted-keys`); none: the card trusts no key.
///
/// # Errors
/// The file is there but damaged.
pub fn card_trust(p1: &FatImage) -> Result<CardTrust, String> {
    let path = format!("{K8R_DIR}/{TRUSTED_KEYS_FILE}");
    if !p1.exists(&path).map_err(|e| format!("{path}: {e}"))? {
        return Ok(CardTrust::default());
    }
    let bytes = p1.read(&path).map_err(|e| format!("{path}: {e}"))?;
    CardTrust::parse(&String::from_utf8_lossy(&bytes)).map_err(|e| format!("{path}: {e}"))
}

/// The report line about the stored build's signature and the card's trusted keys.
pub fn signature_line(p1: &FatImage, build: &StoredBuild) -> String {
    match card_trust(p1) {
        Err(e) => {
            format!("signature: the card's trusted keys are damaged ({e}): it installs nothing")
        }
        Ok(trust) => match k8r_manifest::signature::verify(
            &build.bytes,
            build.signature.as_deref(),
            &trust.keys,
        ) {
            Ok(v) => format!("signature: {}", v.describe(&trust.keys)),
            Err(e) => format!("signature: REFUSED by this card: {e}"),
        },
    }
}

/// A human-readable report of `image`.
///
/// # Errors
/// The file is not a disk image or cannot be read.
pub fn inspect(image: &Path) -> Result<Inspection, BaseError> {
    let mbr = read_table(image)?;
    let mut out = String::new();
    let len = std::fs::metadata(image).map_err(io_err(image))?.len();
    let _ = writeln!(
        out,
        "{}: {} MiB, MBR disk id {:08x}",
        image.display(),
        len / MIB,
        mbr.disk_id
    );
    let mut file = std::fs::File::open(image).map_err(io_err(image))?;
    let mut labels = Vec::new();
    for (i, entry) in mbr.partitions.iter().enumerate() {
        let Some(p) = entry else { continue };
        let mut head = vec![0u8; 2048];
        file.seek(SeekFrom::Start(p.byte_offset()))
            .map_err(io_err(image))?;
        file.read_exact(&mut head).map_err(io_err(image))?;
        let (fs, label) = match (fat_label(&head), ext4_label(&head)) {
            (Some(l), _) => ("FAT", l),
            (None, Some(l)) => ("ext4", l),
            _ => ("-", String::new()),
        };
        let _ = writeln!(
            out,
            "  p{}  type 0x{:02x}  start {:>6} MiB  size {:>6} MiB  {fs:<4} {label}",
            i + 1,
            p.type_id,
            p.byte_offset() / MIB,
            p.byte_len() / MIB
        );
        labels.push((i + 1, p.byte_offset(), fs, label));
    }
    if let Some((_, offset, _, _)) = labels.iter().find(|(_, _, _, l)| l == RECOVERY_LABEL) {
        let p1 = FatImage {
            path: image.to_path_buf(),
            offset: *offset,
        };
        if let Ok(text) = p1.read(AUTOBOOT_FILE) {
            match Autoboot::parse(&text) {
                Ok(ab) => {
                    let next = ab.boot_partition(false).unwrap_or(1);
                    let what = if next == 1 {
                        "recovery (installs on next boot)"
                    } else {
                        "the working system"
                    };
                    let _ = writeln!(out, "next boot: partition {next}, {what}");
                }
                Err(e) => {
                    let _ = writeln!(
                        out,
                        "autoboot.txt unreadable ({e}): the firmware boots partition 1"
                    );
                }
            }
        }
        {
            match stored_build(&p1) {
                Ok(b) => {
                    let m = &b.manifest;
                    let _ = writeln!(
                        out,
                        "stored image: build {} Kubernetes {} {} (base {}), root {} MiB with {} MiB used in {} ranges, {} ({}, manifest format {})",
                        m.build_id,
                        m.kubernetes_version,
                        m.arch,
                        m.base_shape,
                        m.root.size / MIB,
                        m.used_bytes() / MIB,
                        m.root.ranges.len(),
                        m.root.file,
                        m.root.compression,
                        m.format
                    );
                    let _ = writeln!(out, "{}", signature_line(&p1, &b));
                }
                Err(e) => {
                    let _ = writeln!(out, "stored image: none usable ({e})");
                }
            }
        }
        let node_cfg = format!("{NODE_DIR}/{NODE_VARIABLES}");
        if let Ok(cfg) = p1.read(&node_cfg) {
            let _ = writeln!(out, "node configuration ({node_cfg}):");
            for line in String::from_utf8_lossy(&cfg).lines() {
                let _ = writeln!(out, "    {}", redact(line));
            }
        }
        let p2 = labels
            .iter()
            .find(|(_, _, fs, l)| *fs == "FAT" && l == BOOT_LABEL)
            .map(|(_, offset, _, _)| FatImage {
                path: image.to_path_buf(),
                offset: *offset,
            });
        let on_p1 = p1.read(&format!("{NODE_DIR}/{NODE_USER_DATA}")).ok();
        let on_p2 = p2.and_then(|p2| p2.read(NODE_USER_DATA).ok());
        let _ = writeln!(out, "{}", login_line(on_p1.as_deref(), on_p2.as_deref()));
    }
    if let Some((_, offset, _, _)) = labels
        .iter()
        .find(|(_, _, fs, l)| *fs == "ext4" && l == ROOT_LABEL)
    {
        let spec = format!("{}?offset={offset}", image.display());
        if let Ok(info) = ext4::read_file(Path::new(&spec), "/usr/lib/k8r/build-info") {
            let _ = writeln!(out, "root build-info:");
            for line in String::from_utf8_lossy(&info).lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    let is_card = labels.iter().any(|(_, _, _, l)| l == RECOVERY_LABEL);
    let has_boot = labels
        .iter()
        .any(|(_, _, fs, l)| *fs == "FAT" && l == BOOT_LABEL);
    Ok(Inspection {
        text: out,
        is_card,
        has_boot,
    })
}

/// Hides join tokens and certificate keys in a config line.
pub fn redact(line: &str) -> String {
    crate::config::redact::text(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_line_says_set_or_not_and_never_the_hash() {
        let ud = crate::bootpart::user_data("$6$salt$secrethash");
        let set = login_line(Some(ud.as_bytes()), Some(ud.as_bytes()));
        assert!(set.starts_with("login password: set"), "{set}");
        assert!(!set.contains("secrethash"), "{set}");
        let default = crate::recovery::default_login_user_data();
        let unset = login_line(Some(default.as_bytes()), None);
        assert!(unset.starts_with("login password: not set"), "{unset}");
        assert!(login_line(None, None).starts_with("login password: not set"));
    }

    #[test]
    fn not_a_card_says_what_to_do() {
        let text = not_a_card(Path::new("u.img"), true);
        assert_eq!(
            text,
            "u.img is not a k8r card (no K8R-RECOVER partition): it looks like a vendor image; \
             build a card with `k8r-builder assemble`"
        );
    }

    #[test]
    fn redacts_secrets() {
        let line = "KUBEADM_JOIN_STRING=\"kubeadm join k:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:00\"";
        let r = redact(line);
        assert!(!r.contains("0123456789abcdef"), "{r}");
        assert!(r.contains("--token abcdef…"), "{r}");
        assert!(r.contains("sha256:00"), "{r}");
    }
}
