//! `k8r-builder inspect IMAGE`: what is on a k8r card (or any MBR image): partitions, labels,
//! sizes, where the firmware will boot next, the stored manifest and the node configuration.

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use k8r_boot_config::autoboot::Autoboot;
pub use k8r_boot_config::volume::{ext4_label, fat_label};
use k8r_card::layout::{RECOVERY_LABEL, ROOT_LABEL};
use k8r_card::recovery::{AUTOBOOT_FILE, NODE_DIR, NODE_VARIABLES};
use k8r_card::store::{Pointer, POINTER_FILE, STORE_DIR};
use k8r_manifest::{Manifest, MANIFEST_FILE};

use crate::image::fat::FatImage;
use crate::image::{card, ext4, io_err, ImageError, MIB};

/// The current build's manifest in the image store of a card's recovery partition (through
/// the store's pointer file).
///
/// # Errors
/// The pointer or the manifest is missing or invalid, said plainly.
pub fn stored_manifest(p1: &FatImage) -> Result<Manifest, String> {
    let pointer_path = format!("{STORE_DIR}/{POINTER_FILE}");
    let text = p1
        .read(&pointer_path)
        .map_err(|e| format!("{pointer_path}: {e}"))?;
    let pointer = Pointer::parse(&String::from_utf8_lossy(&text))
        .map_err(|e| format!("{pointer_path}: {e}"))?;
    let manifest_path = format!("{STORE_DIR}/{}/{MANIFEST_FILE}", pointer.current);
    let text = p1
        .read(&manifest_path)
        .map_err(|e| format!("{manifest_path}: {e}"))?;
    Manifest::parse(&String::from_utf8_lossy(&text)).map_err(|e| format!("{manifest_path}: {e}"))
}

/// A human-readable report of `image`.
pub fn inspect(image: &Path) -> Result<String, ImageError> {
    let mbr = card::read_mbr(image)?;
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
            match stored_manifest(&p1) {
                Ok(m) => {
                    let _ = writeln!(
                        out,
                        "stored image: build {} Kubernetes {} {} (base {}), root {} MiB with {} MiB used in {} ranges",
                        m.build_id,
                        m.kubernetes_version,
                        m.arch,
                        m.base_shape,
                        m.root.size / MIB,
                        m.used_bytes() / MIB,
                        m.root.ranges.len()
                    );
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
    Ok(out)
}

/// Hides join tokens and certificate keys in a config line.
pub fn redact(line: &str) -> String {
    crate::config::redact::text(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets() {
        let line = "KUBEADM_JOIN_STRING=\"kubeadm join k:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:00\"";
        let r = redact(line);
        assert!(!r.contains("0123456789abcdef"), "{r}");
        assert!(r.contains("--token abcdef…"), "{r}");
        assert!(r.contains("sha256:00"), "{r}");
    }
}
