//! `k8r-builder inject`: change a built card's node configuration in place, in seconds.
//!
//! The node configuration lives on the recovery partition (`k8r/node/`) beside the image store;
//! the installer applies it after writing the working partitions, so the artefacts stay the
//! same for every node. `inject` rewrites those files, and the copy in the card's current root
//! so the card is consistent before its first boot. Nothing else on the card changes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::bootpart;
use crate::image::card;
use crate::image::fat::FatImage;
use crate::inspect::{ext4_label, fat_label, redact};
use crate::recovery;
use crate::rootfs::{apply, plan};

/// The root path of the baked configuration.
pub const ROOT_CONFIG: &str = "/usr/lib/k8r/variables.cfg";

/// Where the card's partitions are, found by their labels.
struct CardParts {
    recovery: FatImage,
    boot: Option<FatImage>,
    root: Option<(PathBuf, u64)>,
}

fn find_parts(image: &Path) -> Result<CardParts> {
    let mbr = card::read_mbr(image)?;
    let mut file =
        std::fs::File::open(image).with_context(|| format!("opening {}", image.display()))?;
    let (mut recovery, mut boot, mut root) = (None, None, None);
    for p in mbr.partitions.iter().flatten() {
        let mut head = vec![0u8; 2048];
        file.seek(SeekFrom::Start(p.byte_offset()))?;
        file.read_exact(&mut head)?;
        let fat = |offset| FatImage {
            path: image.to_path_buf(),
            offset,
        };
        match (fat_label(&head).as_deref(), ext4_label(&head).as_deref()) {
            (Some(recovery::LABEL), _) => recovery = Some(fat(p.byte_offset())),
            (Some("system-boot"), _) => boot = Some(fat(p.byte_offset())),
            (_, Some("writable")) => root = Some((image.to_path_buf(), p.byte_offset())),
            _ => {}
        }
    }
    let recovery = recovery.with_context(|| {
        format!(
            "{} has no {} partition: is it a card built by `k8r-builder assemble`?",
            image.display(),
            recovery::LABEL
        )
    })?;
    Ok(CardParts {
        recovery,
        boot,
        root,
    })
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
    let cfg = crate::cli::load_config(config)?;
    let parts = find_parts(image)?;
    let manifest_path = format!("{}/{}", recovery::STORE, k8r_manifest::MANIFEST_FILE);
    let manifest = parts
        .recovery
        .read(&manifest_path)
        .context("reading the card's stored manifest")?;
    let manifest = k8r_manifest::Manifest::parse(&String::from_utf8_lossy(&manifest))
        .context("the card's stored manifest")?;
    if manifest.kubernetes_version != cfg.k8s_version.to_string() {
        bail!(
            "{}: K8S_VERSION {} differs from the card's image (Kubernetes {}); inject changes \
             node settings only, a different Kubernetes needs `k8r-builder assemble`",
            config.display(),
            cfg.k8s_version,
            manifest.kubernetes_version
        );
    }
    let new = cfg.render_cfg();
    let old = parts
        .recovery
        .read(recovery::NODE_CONFIG)
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
        parts
            .recovery
            .write(recovery::NODE_CONFIG, new.as_bytes(), epoch)?;
        let _ = writeln!(report, "wrote p1 {}", recovery::NODE_CONFIG);
        if let Some((path, offset)) = &parts.root {
            let staging = crate::image::temp_path("inject");
            std::fs::write(&staging, &new)
                .with_context(|| format!("writing {}", staging.display()))?;
            let mut p = plan::RootPlan::default();
            p.push(plan::Op::File {
                path: ROOT_CONFIG.into(),
                mode: 0o600,
                source: staging.clone(),
            });
            let target = PathBuf::from(format!("{}?offset={offset}", path.display()));
            let result = apply::apply(&target, &p, epoch);
            let _ = std::fs::remove_file(&staging);
            result.context("updating the root partition's variables.cfg")?;
            let _ = writeln!(report, "wrote root {ROOT_CONFIG}");
        }
    }
    if let Some(hash) = &cfg.password_hash {
        let user_data = bootpart::user_data(hash);
        let current = parts
            .recovery
            .read(recovery::NODE_USER_DATA)
            .unwrap_or_default();
        if current != user_data.as_bytes() {
            parts
                .recovery
                .write(recovery::NODE_USER_DATA, user_data.as_bytes(), epoch)?;
            let _ = writeln!(
                report,
                "wrote p1 {} (login password)",
                recovery::NODE_USER_DATA
            );
            if let Some(boot) = &parts.boot {
                boot.write("user-data", user_data.as_bytes(), epoch)?;
                let _ = writeln!(report, "wrote p2 user-data");
            }
        }
    }
    Ok(report)
}
