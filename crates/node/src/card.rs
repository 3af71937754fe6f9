//! This node's card: found from the device the root filesystem is on, and its recovery and
//! data partitions, mounted when needed.
//!
//! The recovery partition (p1) is what the firmware reads first, so it is mounted read-write
//! only for the moments it is written (with `dirsync`: Linux's vfat writes a directory entry
//! only then), read-only otherwise, and unmounted again; one lock serialises the agent's own
//! invocations (a boot unit, the settings path unit and an operator at the console).
//!
//! Tests (and `--recovery-dir`) give a directory instead of a device: the same code then
//! reads and writes it without mounting.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use k8r_card::disk::{read_label, CardLayout, Sysfs};
use k8r_card::image_root::RECOVERY_MOUNT;
use k8r_card::recovery::Recovery;
use k8r_card::{Fs, Part};
use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::mount::{MountFlags, UnmountFlags};

use crate::host::Host;

/// Where the recovery partition comes from.
#[derive(Debug, Clone)]
pub enum RecoverySource {
    /// The card's p1 device: mounted at [`RECOVERY_MOUNT`] while used.
    Device(PathBuf),
    /// A directory standing in for a mounted p1 (tests, `--recovery-dir`).
    Dir(PathBuf),
}

/// This machine's card.
#[derive(Debug, Clone)]
pub struct ThisCard {
    /// Its partitions and disk id.
    pub layout: CardLayout,
}

impl ThisCard {
    /// Finds the card the root filesystem is on: the device of `/` (from `stat`, not from
    /// `/proc/mounts`, which may say `/dev/root`), its disk, and a recovery partition with
    /// the k8r label on that disk.
    pub fn find(host: &Host) -> Result<ThisCard> {
        let st = rustix::fs::stat(host.path("/")).context("stat /")?;
        let (major, minor) = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
        let link = host.path(&format!("/sys/dev/block/{major}:{minor}"));
        let sysdir = std::fs::canonicalize(&link)
            .with_context(|| format!("{}: the root's block device in sysfs", link.display()))?;
        let name = sysdir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sysfs = sysfs(host);
        let disk = sysfs
            .disk_of(Path::new(&name))
            .with_context(|| format!("the root is on {name}, which is not a partition"))?;
        let layout = sysfs.layout(&disk)?;
        let p1 = layout.part(Part::Recovery)?;
        let label = read_label(&p1.dev, Fs::Fat32)
            .with_context(|| format!("reading {}", p1.dev.display()))?;
        if label.as_deref() != Some(Part::Recovery.label()) {
            bail!(
                "{} holds the root, but its partition 1 is labelled {:?}, not {}: this is not a k8r card",
                disk.display(),
                label.unwrap_or_default(),
                Part::Recovery.label()
            );
        }
        Ok(ThisCard { layout })
    }

    /// The device of `part`.
    pub fn dev(&self, part: Part) -> Result<PathBuf> {
        Ok(self.layout.part(part)?.dev.clone())
    }
}

/// The kernel's view of `host`'s block devices.
pub fn sysfs(host: &Host) -> Sysfs {
    Sysfs {
        class_block: host.path("/sys/class/block"),
        dev: host.path("/dev"),
    }
}

/// The size of block device `dev` (a disk or a partition) in 512-byte sectors, from sysfs.
pub fn sectors(host: &Host, dev: &Path) -> Option<u64> {
    let name = dev.file_name()?.to_string_lossy().into_owned();
    std::fs::read_to_string(sysfs(host).class_block.join(name).join("size"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// The recovery partition while it is in use; unmounted (after a sync) when dropped.
#[derive(Debug)]
pub struct P1 {
    recovery: Recovery,
    mounted: Option<PathBuf>,
    _lock: Option<File>,
}

impl P1 {
    /// Opens the recovery partition, read-write when `write`.
    pub fn open(host: &Host, source: &RecoverySource, write: bool) -> Result<P1> {
        match source {
            RecoverySource::Dir(dir) => Ok(P1 {
                recovery: Recovery::new(dir),
                mounted: None,
                _lock: None,
            }),
            RecoverySource::Device(dev) => {
                let lock = lock(host)?;
                let dir = host.path(RECOVERY_MOUNT);
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                // A leftover mount of an interrupted run: reuse nothing, start clean.
                let _ = rustix::mount::unmount(&dir, UnmountFlags::DETACH);
                repair_if_dirty(dev, &dir);
                mount_p1(dev, &dir, write)?;
                Ok(P1 {
                    recovery: Recovery::new(&dir),
                    mounted: Some(dir),
                    _lock: Some(lock),
                })
            }
        }
    }

    /// The recovery partition's files.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }
}

impl Drop for P1 {
    fn drop(&mut self) {
        if let Some(dir) = self.mounted.take() {
            rustix::fs::sync();
            if let Err(e) = rustix::mount::unmount(&dir, UnmountFlags::empty()) {
                log::warn!("unmounting {}: {e}", dir.display());
            }
        }
    }
}

/// Mounts p1 `dev` on `dir`, read-write (with dirsync) when `write`, else read-only.
fn mount_p1(dev: &Path, dir: &Path, write: bool) -> Result<()> {
    let fs = Part::Recovery.fs();
    let base = MountFlags::NOEXEC | MountFlags::NOSUID | MountFlags::NODEV;
    let flags = if write {
        base | fs.mount_flags()
    } else {
        base | MountFlags::RDONLY
    };
    let fstype = fs.mount_type();
    rustix::mount::mount(dev, dir, fstype, flags, c"")
        .or_else(|_| rustix::mount::mount(dev, dir, fstype, flags, c"iocharset=utf8"))
        .with_context(|| {
            format!(
                "mounting the recovery partition {} on {} ({})",
                dev.display(),
                dir.display(),
                if write { "read-write" } else { "read-only" }
            )
        })
}

/// A power cut while p1 was mounted read-write (by this agent or by recovery) leaves it marked
/// dirty for good, its free-cluster count possibly wrong, and (a cut while `update-image`
/// writes the store) clusters allocated to a file whose directory entry never got them
/// (`k8r_card::fat_state`). Once its files read (the store pointer parses), the unmounted
/// partition is repaired: by the system's `fsck.fat -a` when it has one (Ubuntu's image does:
/// it reclaims lost clusters too), else by the mark and count repair the installer does.
/// Failures are logged: the card still works dirty, and the next look tries again.
fn repair_if_dirty(dev: &Path, dir: &Path) {
    let dirty = File::open(dev)
        .map_err(anyhow::Error::from)
        .and_then(|mut f| Ok(k8r_card::fat_state::inspect(&mut f)?))
        .is_ok_and(|s| s.dirty);
    if !dirty {
        return;
    }
    let files_read = mount_p1(dev, dir, false).is_ok_and(|()| {
        let ok = Recovery::new(dir).store().pointer().is_ok();
        rustix::fs::sync();
        let _ = rustix::mount::unmount(dir, UnmountFlags::empty());
        ok
    });
    if !files_read {
        log::warn!(
            "the recovery partition {} is marked dirty and its store pointer does not read: left for recovery",
            dev.display()
        );
        return;
    }
    let what = "was not cleanly unmounted (a power cut while it was written); its files read back";
    match fsck_fat(dev) {
        Some(Ok(out)) => log::warn!(
            "the recovery partition {} {what}, so fsck.fat -a repaired it: {}",
            dev.display(),
            crate::exec::tail(&out.text(), 4).replace('\n', "; ")
        ),
        Some(Err(e)) => log::warn!("repairing the recovery partition {}: {e}", dev.display()),
        None => {
            let repaired = File::options()
                .read(true)
                .write(true)
                .open(dev)
                .map_err(anyhow::Error::from)
                .and_then(|mut f| Ok(k8r_card::fat_state::repair(&mut f, |f| f.sync_data())?));
            match repaired {
                Ok(_) => log::warn!(
                    "the recovery partition {} {what}, so its dirty mark is cleared and its free-cluster count reset",
                    dev.display()
                ),
                Err(e) => log::warn!("repairing the recovery partition {}: {e:#}", dev.display()),
            }
        }
    }
}

/// `fsck.fat -a -w DEV` (repair automatically, write at once) when the system has it: `None`
/// without it. Exit 0 (clean) and 1 (errors corrected) are success.
fn fsck_fat(dev: &Path) -> Option<Result<crate::exec::Output, crate::exec::ExecError>> {
    let program = ["/usr/sbin/fsck.fat", "/sbin/fsck.fat"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())?;
    let cmd = crate::exec::Cmd::new(program)
        .args(["-a", "-w"])
        .args([dev.to_string_lossy().into_owned()]);
    Some(cmd.run_status().and_then(|out| {
        if out.code == 0 || out.code == 1 {
            Ok(out)
        } else {
            Err(crate::exec::ExecError::Failed {
                command: cmd.display(),
                code: out.code,
                tail: crate::exec::tail(&out.text(), 6),
                output: out,
            })
        }
    }))
}

/// One agent at a time on the recovery partition: an exclusive `flock` on a file in the
/// private [`crate::host::RUN_DIR`], waited for.
fn lock(host: &Host) -> Result<File> {
    let path = host.run_dir()?.join("recovery.lock");
    let fd = rustix::fs::open(
        &path,
        OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .with_context(|| format!("opening {}", path.display()))?;
    rustix::fs::flock(&fd, FlockOperation::LockExclusive)
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(File::from(fd))
}
