//! `k8r-builder inject`: change a built card's node configuration in place, in seconds.
//!
//! The node configuration lives on the recovery partition (`k8r/node/`) beside the image store:
//! the node agent reads it at every boot (and the installer copies `user-data` onto the new
//! boot partition), so the artefacts stay the same for every node and a worker's join command
//! never enters them. `inject` rewrites those files (and `user-data` on p2, which cloud-init
//! reads on the first boot). Nothing else on the card changes, except that a `SHA256SUMS`
//! beside the card listing it is brought up to date.
//!
//! A card in an output directory (one holding `SHA256SUMS` or a build's lock file) is changed
//! under that directory's build lock, the one `assemble` holds: `inject` refuses at once,
//! naming the holder's pid, while a build writes there.
//!
//! `IMAGE` is a build input, not a node setting: the configuration need not have it, and the
//! card keeps the value it was built with.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{bail, Context, Result};

use k8r_card::layout::{BOOT_LABEL, RECOVERY_LABEL};
use k8r_card::recovery::{NODE_DIR, NODE_USER_DATA, NODE_VARIABLES};

use crate::assemble::outdir::{OutDirError, OutDirLock, LOCK_FILE};
use crate::bootpart;
use crate::config::Purpose;
use crate::image::card;
use crate::image::fat::FatImage;
use crate::inspect::{card_trust, fat_label, not_a_card, redact, stored_build};
use crate::recovery::{default_login_user_data, sets_password, DEFAULT_LOGIN};

mod sums;

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
    let Some(recovery) = recovery else {
        bail!("{}", not_a_card(image, boot.is_some()));
    };
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

/// `new` (a rendered variables.cfg) with the `IMAGE` line of `old` (the card's), or an empty
/// one: `inject` never changes what the card says it was built from.
fn keep_image(new: &str, old: &str) -> String {
    let is_image = |l: &&str| l.trim_start().starts_with("IMAGE=");
    let kept = old.lines().find(is_image).unwrap_or("IMAGE=\"\"");
    new.lines()
        .map(|l| if is_image(&l) { kept } else { l })
        .fold(String::with_capacity(new.len()), |mut out, l| {
            out.push_str(l);
            out.push('\n');
            out
        })
}

/// The build lock of the output directory `image` sits in (a directory holding `SHA256SUMS`
/// or a build's lock file), if it does: `inject` rewrites the card and `SHA256SUMS` there and
/// must not race an `assemble` into it. A directory that cannot be locked (not writable, no
/// `flock`) is used without the lock, with a warning.
fn lock_out_dir(image: &Path) -> Result<Option<OutDirLock>> {
    let dir = match image.parent() {
        Some(d) if d.as_os_str().is_empty() => Path::new("."),
        Some(d) => d,
        None => return Ok(None),
    };
    if !(dir.join(crate::assemble::SUMS).exists() || dir.join(LOCK_FILE).exists()) {
        return Ok(None);
    }
    match OutDirLock::acquire(dir) {
        Ok(lock) => Ok(Some(lock)),
        Err(OutDirError::Busy { dir, holder }) => bail!(
            "not changing {}: {} is being written by another k8r-builder{}: wait for it to \
             finish, then run inject again",
            image.display(),
            dir.display(),
            holder
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default()
        ),
        Err(e) => {
            log::warn!(
                "changing {} without the output directory's lock: {e}",
                image.display()
            );
            Ok(None)
        }
    }
}

/// Applies `config` (and `password_hash` beside it) to the card `image`; returns a report of
/// what changed.
pub fn inject(image: &Path, config: &Path) -> Result<String> {
    inject_with(image, config, &[])
}

/// [`inject`], and the card's trusted keys replaced by `trusted_keys` (public key files; when
/// empty, by `TRUSTED_KEYS` of the configuration if it sets it).
pub fn inject_with(
    image: &Path,
    config: &Path,
    trusted_keys: &[std::path::PathBuf],
) -> Result<String> {
    let cfg = crate::config::load_and_warn_for(config, Purpose::NodeSettings)
        .map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let _lock = lock_out_dir(image)?;
    let parts = find_parts(image)?;
    let stored = stored_build(&parts.recovery)
        .map_err(|e| anyhow::anyhow!("the card's stored build: {e}"))?;
    let manifest = &stored.manifest;
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
    let old = parts
        .recovery
        .read(&node_cfg)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let new = keep_image(&cfg.render_cfg(), &old);
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
    login(&parts, &cfg.password_hash, config, epoch, &mut report)?;
    trust(&parts, &stored, &cfg, trusted_keys, epoch, &mut report)?;
    update_sums(image, &mut report);
    Ok(report)
}

/// Replaces the card's trusted keys (p1 `k8r/trusted-keys`) when keys are given, after
/// checking that the card's stored build is signed by one of them: a card must never be left
/// refusing its own build. The list is in force for the stored build (`build=`), so that
/// build's own list does not replace it when it commits (`k8r_card::trust`).
fn trust(
    parts: &CardParts,
    stored: &crate::inspect::StoredBuild,
    cfg: &crate::config::BuildConfig,
    flags: &[std::path::PathBuf],
    epoch: u64,
    report: &mut String,
) -> Result<()> {
    let (settings, file) = if flags.is_empty() {
        (cfg.trusted_keys.clone(), cfg.source_file().to_path_buf())
    } else {
        (
            flags
                .iter()
                .map(|p| crate::signing::flag_setting("--trusted-key", p))
                .collect(),
            std::path::PathBuf::from(crate::signing::COMMAND_LINE),
        )
    };
    if settings.is_empty() {
        return Ok(());
    }
    let keys = crate::signing::read_trusted(&settings, &file)?;
    let build = &stored.manifest.build_id;
    if let Err(e) =
        k8r_manifest::signature::verify(&stored.bytes, stored.signature.as_deref(), &keys)
    {
        bail!(
            "not changing the card's trusted keys to {}: its stored build {build} would then be \
             refused ({e}); give a list that includes the key the build is signed with, or \
             assemble a build signed by one of these keys",
            keys.ids()
        );
    }
    let old = card_trust(&parts.recovery).unwrap_or_default();
    let new = k8r_card::trust::CardTrust {
        keys,
        since_build: Some(build.clone()),
    };
    if old == new {
        let _ = writeln!(report, "trusted keys unchanged: {}", new.keys.ids());
        return Ok(());
    }
    let path = format!(
        "{}/{}",
        k8r_card::recovery::K8R_DIR,
        k8r_card::trust::TRUSTED_KEYS_FILE
    );
    parts
        .recovery
        .write(&path, new.render().as_bytes(), epoch)?;
    let _ = writeln!(
        report,
        "wrote p1 {path}: the card trusts key ID {} (was: {})",
        new.keys.ids(),
        old.keys.ids()
    );
    Ok(())
}

/// Writes the node's `user-data` (p1, and p2 which cloud-init reads) for `password_hash`; with
/// none, puts back the distribution's default login if a password was set before.
fn login(
    parts: &CardParts,
    password_hash: &Option<String>,
    config: &Path,
    epoch: u64,
    report: &mut String,
) -> Result<()> {
    let node_user_data = format!("{NODE_DIR}/{NODE_USER_DATA}");
    let on_p1 = parts.recovery.read(&node_user_data).ok();
    let on_p2 = parts
        .boot
        .as_ref()
        .and_then(|b| b.read(NODE_USER_DATA).ok());
    let user_data = match password_hash {
        Some(hash) => bootpart::user_data(hash),
        None => {
            let set = |d: &Option<Vec<u8>>| {
                d.as_deref()
                    .is_some_and(|d| sets_password(&String::from_utf8_lossy(d)))
            };
            if !set(&on_p1) && !set(&on_p2) {
                return Ok(());
            }
            default_login_user_data()
        }
    };
    let mut wrote = false;
    if on_p1.as_deref() != Some(user_data.as_bytes()) {
        parts
            .recovery
            .write(&node_user_data, user_data.as_bytes(), epoch)?;
        let _ = writeln!(report, "wrote p1 {node_user_data} (login password)");
        wrote = true;
    }
    if let Some(boot) = &parts.boot {
        if on_p2.as_deref() != Some(user_data.as_bytes()) {
            boot.write(NODE_USER_DATA, user_data.as_bytes(), epoch)?;
            let _ = writeln!(report, "wrote p2 {NODE_USER_DATA}");
            wrote = true;
        }
    }
    if wrote && password_hash.is_none() {
        let _ = writeln!(
            report,
            "no {} beside {}: login password reset to {DEFAULT_LOGIN}",
            crate::config::PASSWORD_HASH_FILE,
            config.display()
        );
    } else if wrote {
        let _ = writeln!(
            report,
            "login password set from {} beside {} (the hash is not shown)",
            crate::config::PASSWORD_HASH_FILE,
            config.display()
        );
    }
    Ok(())
}

/// Brings the line of `image` in a `SHA256SUMS` beside it up to date, saying so (or why not).
fn update_sums(image: &Path, report: &mut String) {
    let (Some(dir), Some(name)) = (image.parent(), image.file_name()) else {
        return;
    };
    let name = name.to_string_lossy();
    let path = dir.join(crate::assemble::SUMS);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let Some(listed) = sums::listed(&text, &name) else {
        return;
    };
    let result = k8r_card::digest::sha256_file(image)
        .with_context(|| format!("hashing {}", image.display()))
        .and_then(|digest| {
            if digest == listed {
                return Ok(false);
            }
            let new = sums::with_digest(&text, &name, &digest).unwrap_or(text.clone());
            crate::atomic::write_atomic(&path, new.as_bytes())
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            Ok(true)
        });
    match result {
        Ok(true) => {
            let _ = writeln!(report, "updated {} for {name}", path.display());
        }
        Ok(false) => {}
        Err(e) => {
            let _ = writeln!(
                report,
                "warning: {} lists {name} but could not be updated ({e:#}): its digest is now \
                 stale; run `sha256sum {name}` in {} and fix the line",
                path.display(),
                dir.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cards_image_line_is_kept() {
        let new = "# c\nIMAGE=\"/made/up.img\"\nK8S_VERSION=\"1.31.2\"\n";
        let old = "IMAGE=\"/built/from.img\"\nK8S_VERSION=\"1.31.2\"\n";
        assert_eq!(
            keep_image(new, old),
            "# c\nIMAGE=\"/built/from.img\"\nK8S_VERSION=\"1.31.2\"\n"
        );
        assert_eq!(
            keep_image(new, "K8S_VERSION=\"1.31.2\"\n"),
            "# c\nIMAGE=\"\"\nK8S_VERSION=\"1.31.2\"\n"
        );
    }
}
