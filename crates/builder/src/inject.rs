//! `k8r-builder inject`: change a built card's node configuration in place, in seconds.
//!
//! The node configuration lives on the recovery partition (`k8r/node/`) beside the image store:
//! the node agent reads it at every boot (and the installer copies `user-data` onto the new
//! boot partition), so the artefacts stay the same for every node and a worker's join command
//! never enters them. `inject` rewrites those files (and `user-data` on p2, which cloud-init
//! reads on the first boot). Nothing else on the card changes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{bail, Context, Result};

use k8r_card::layout::{BOOT_LABEL, RECOVERY_LABEL};
use k8r_card::recovery::{NODE_DIR, NODE_USER_DATA, NODE_VARIABLES};

use crate::bootpart;
use crate::image::card;
use crate::image::fat::FatImage;
use crate::inspect::{fat_label, redact, stored_manifest};

/// Where the card's partitions are, found by their labels.
struct CardParts {
    recovery: FatImage,
    boot: Option<FatImage>,
}

fn find_parts(image: &Path) -> Result<CardParts> {
    let mbr = card::read_mbr(image)?;
    let mut file =
        std::fs::File::open(image).with_context(|| format!("opening {}", image.display()))?;
    let (mut recovery, mut boot) = (None, None);
    for p in mbr.partitions.iter().flatten() {
        let mut head = vec![0u8; 2048];
        file.seek(SeekFrom::Start(p.byte_offset()))?;
        file.read_exact(&mut head)?;
        let fat = |offset| FatImage {
            path: image.to_path_buf(),
            offset,
        };
        match fat_label(&head).as_deref() {
            Some(RECOVERY_LABEL) => recovery = Some(fat(p.byte_offset())),
            Some(BOOT_LABEL) => boot = Some(fat(p.byte_offset())),
            _ => {}
        }
    }
    let recovery = recovery.with_context(|| {
        format!(
            "{} has no {} partition: is it a card built by `k8r-builder assemble`?",
            image.display(),
            RECOVERY_LABEL
        )
    })?;
    Ok(CardParts { recovery, boot })
}

/// `KEY="value"` lines of a rendered variables.cfg.
fn settings(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.trim_start().starts_with('#'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

/// Applies `config` (and `password_hash` beside it) to the card `image`; returns a report of
/// what changed.
pub fn inject(image: &Path, config: &Path) -> Result<String> {
    let cfg = crate::config::load_and_warn(config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let parts = find_parts(image)?;
    let manifest = stored_manifest(&parts.recovery)
        .map_err(|e| anyhow::anyhow!("the card's stored build: {e}"))?;
    if manifest.kubernetes_version != cfg.k8s_version.to_string() {
        bail!(
            "{}: K8S_VERSION {} differs from the card's image (Kubernetes {}); inject changes \
             node settings only, a different Kubernetes needs `k8r-builder assemble`",
            config.display(),
            cfg.k8s_version,
            manifest.kubernetes_version
        );
    }
    let node_cfg = format!("{NODE_DIR}/{NODE_VARIABLES}");
    let node_user_data = format!("{NODE_DIR}/{NODE_USER_DATA}");
    let new = cfg.render_cfg();
    let old = parts
        .recovery
        .read(&node_cfg)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut report = String::new();
    let (old_s, new_s) = (settings(&old), settings(&new));
    let changed: Vec<&String> = new_s
        .iter()
        .filter(|(k, v)| old_s.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if changed.is_empty() {
        let _ = writeln!(report, "node configuration unchanged");
    } else {
        for key in &changed {
            let line = format!("{key}=\"{}\"", new_s.get(*key).map_or("", String::as_str));
            let _ = writeln!(report, "set {}", redact(&line));
        }
        parts.recovery.write(&node_cfg, new.as_bytes(), epoch)?;
        let _ = writeln!(report, "wrote p1 {node_cfg}");
    }
    if let Some(hash) = &cfg.password_hash {
        let user_data = bootpart::user_data(hash);
        let current = parts.recovery.read(&node_user_data).unwrap_or_default();
        if current != user_data.as_bytes() {
            parts
                .recovery
                .write(&node_user_data, user_data.as_bytes(), epoch)?;
            let _ = writeln!(report, "wrote p1 {node_user_data} (login password)");
            if let Some(boot) = &parts.boot {
                boot.write(NODE_USER_DATA, user_data.as_bytes(), epoch)?;
                let _ = writeln!(report, "wrote p2 user-data");
            }
        }
    }
    Ok(report)
}
