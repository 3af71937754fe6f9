//! Cold etcd snapshots on the data partition, taken on the first boot of a newly installed
//! build while etcd is not running yet (the agent's setup runs before the kubelet starts the
//! static pods): a tar of the kept `/var/lib/etcd`, which is what `kubeadm upgrade` itself
//! backs up (kubernetes-node.md §4.1, §4.5 option (d)). So an upgrade or a bad build can
//! always go back to the state etcd had before it. The last [`ETCD_SNAPSHOTS_KEPT`] are kept.
//!
//! Names: `NNNN-<UTC time>-<build id>.tar`: the sequence number orders them even when the
//! clock was wrong at boot (a Pi has no battery clock).

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use k8r_card::data::{ETCD_SNAPSHOTS, ETCD_SNAPSHOTS_KEPT};
use k8r_manifest::time::utc_compact;

use crate::data::Data;

/// The snapshots present, oldest first.
pub fn list(data: &Data) -> Vec<PathBuf> {
    let mut out: Vec<(u32, PathBuf)> = fs::read_dir(data.path(ETCD_SNAPSHOTS))
        .map(|e| {
            e.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let seq = name.split('-').next()?.parse::<u32>().ok()?;
                    name.ends_with(".tar").then(|| (seq, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.into_iter().map(|(_, p)| p).collect()
}

/// Snapshots `etcd_dir` (the kept etcd data) for `build_id` at time `now`; keeps the last
/// [`ETCD_SNAPSHOTS_KEPT`]. Returns the new snapshot's path.
pub fn take(data: &Data, etcd_dir: &Path, build_id: &str, now: u64) -> Result<PathBuf> {
    let dir = data.path(ETCD_SNAPSHOTS);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let next = list(data)
        .iter()
        .filter_map(|p| {
            p.file_name()?
                .to_str()?
                .split('-')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .max()
        .map_or(1, |n| n + 1);
    let name = format!("{next:04}-{}-{build_id}.tar", utc_compact(now));
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.partial"));
    let result = (|| -> Result<()> {
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut tar = tar::Builder::new(BufWriter::new(file));
        tar.follow_symlinks(false);
        tar.append_dir_all("etcd", etcd_dir)
            .with_context(|| format!("archiving {}", etcd_dir.display()))?;
        let file = tar
            .into_inner()
            .context("finishing the snapshot")?
            .into_inner()
            .map_err(|e| e.into_error())
            .context("flushing the snapshot")?;
        file.sync_all().context("syncing the snapshot")?;
        fs::rename(&tmp, &path).with_context(|| format!("naming {}", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    let all = list(data);
    for old in &all[..all.len().saturating_sub(ETCD_SNAPSHOTS_KEPT)] {
        fs::remove_file(old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_hold_etcd_and_the_last_three_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = Data::at(&dir.path().join("data"));
        let etcd = dir.path().join("etcd");
        fs::create_dir_all(etcd.join("member/snap")).expect("dir");
        fs::write(etcd.join("member/snap/db"), b"the cluster").expect("db");
        let mut taken = Vec::new();
        for (i, build) in ["b1", "b2", "b3", "b4"].iter().enumerate() {
            // A clock going backwards (no RTC) does not reorder them.
            let now = 2_000_000_000 - u64::try_from(i).expect("i") * 1000;
            taken.push(take(&data, &etcd, build, now).expect("snapshot"));
        }
        let kept = list(&data);
        assert_eq!(kept, taken[1..].to_vec(), "the oldest went");
        let name = kept[2]
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with("0004-") && name.ends_with("-b4.tar"),
            "{name}"
        );
        let mut archive = tar::Archive::new(File::open(&kept[2]).expect("open"));
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .flatten()
            .map(|e| e.path().expect("path").display().to_string())
            .collect();
        assert!(
            names.iter().any(|n| n == "etcd/member/snap/db"),
            "{names:?}"
        );
        let leftovers: Vec<_> = fs::read_dir(data.path(ETCD_SNAPSHOTS))
            .expect("ls")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
    }
}
