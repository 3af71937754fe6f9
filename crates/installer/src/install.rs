//! One install: the steps in an order where a power cut at any point still boots into
//! recovery (the failure matrix is in `docs/installer.md`). The bytes that make the card boot
//! the working system — `autoboot.txt` — go last, only after everything verified.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use k8r_boot_config::cmdline::Cmdline;
use k8r_boot_config::firmware::{select_boot, BootRequest, CardView, DirFiles, Eeprom};
use k8r_boot_config::firmware::{PartitionKind, PartitionView};
use k8r_boot_config::Board;
use k8r_card::disk::CardLayout;
use k8r_card::recovery::{Recovery, NODE_USER_DATA};
use k8r_card::replace::careful_replace;
use k8r_card::store::Build;
use k8r_card::{layout, stream, Part};

use crate::error::{Error, Result};
use crate::failpoint::{Failpoints, Point};
use crate::watchdog::Watchdog;
use crate::{fat32, mounts, unpack};

/// Lines for the console.
pub(crate) type Say<'a> = &'a dyn Fn(&str);

/// Everything an install needs, decided before it starts.
#[derive(Debug)]
pub(crate) struct Job<'a> {
    /// The card.
    pub card: &'a CardLayout,
    /// The stored build to install (its manifest validated).
    pub build: &'a Build,
    /// The mounted recovery partition.
    pub recovery: &'a Recovery,
    /// Where p2 is mounted while its files are written.
    pub boot_mnt: &'a Path,
    /// Failpoints from the command line.
    pub failpoints: &'a Failpoints,
    /// The watchdog, when there is one.
    pub watchdog: Option<&'a Watchdog>,
    /// Worker threads (online CPUs).
    pub threads: usize,
    /// Total memory (bounds the xz decoder).
    pub mem_total: u64,
    /// The manifest `arch` this machine runs ([`k8r_manifest::NATIVE_ARCH`]).
    pub arch: &'a str,
}

impl Job<'_> {
    fn beat(&self) {
        if let Some(w) = self.watchdog {
            w.heartbeat();
        }
    }
}

/// Checks the stored build's signature against the card's trusted keys (`k8r_card::trust`)
/// before anything is written: a card that trusts a key installs only a build whose manifest
/// is signed by one of them (the manifest then vouches for every artefact's digest, which the
/// steps after this check); a card without keys installs as before, and says so.
pub(crate) fn check_signature(job: &Job<'_>, say: Say<'_>) -> Result<()> {
    let (verdict, trust) = job.recovery.check_signature(job.build)?;
    say(&format!(
        "k8r: signature: {}",
        verdict.describe(&trust.keys)
    ));
    Ok(())
}

/// Checks that the build is for this machine and that its root fits p3, before the first
/// byte goes to the card.
pub(crate) fn check_fits(job: &Job<'_>) -> Result<()> {
    let m = &job.build.manifest;
    if m.arch != job.arch {
        return Err(Error::WrongArch {
            build: m.build_id.clone(),
            image: m.arch.clone(),
            machine: job.arch.to_owned(),
        });
    }
    let p3 = job.card.part(Part::Root)?;
    if p3.bytes() < m.root.size {
        return Err(Error::TooSmall {
            device: p3.dev.clone(),
            have: p3.bytes(),
            need: m.root.size,
        });
    }
    Ok(())
}

/// Checks both compressed artefacts, `image.img.xz` and `boot.tar.xz`, against the manifest
/// (one read, one hash each) before the first byte goes to the card, so a damaged store never
/// touches the working root or formats the boot partition. The decode that follows does not
/// hash the compressed root again: the range digests, the zero check outside them and this
/// digest pin every byte. (The boot archive, a few tens of MB, is hashed once more as it is
/// unpacked.)
pub(crate) fn check_compressed(job: &Job<'_>) -> Result<()> {
    job.build.check_compressed()?;
    job.build.check_boot()?;
    Ok(())
}

/// Decodes `image.img.xz` (or `.zst`) onto p3, writing only the used ranges, then reads the ranges back
/// from the card bypassing the page cache.
pub(crate) fn write_root(job: &Job<'_>, say: Say<'_>) -> Result<()> {
    let m = &job.build.manifest.root;
    let p3 = job.card.part(Part::Root)?;
    let src_path = job.build.root_file();
    let src = File::open(&src_path).map_err(Error::io("open", &src_path))?;
    let threads = u32::try_from(job.threads).unwrap_or(1);
    let opts = stream::WriteOptions {
        threads: job.threads,
        chunk: 4 << 20,
        // Range digests + zeros elsewhere + the compressed digest pin every byte already.
        whole_digest: false,
    };
    // The decoder's threads get the data path's memory budget minus the write buffers.
    let mut plain = stream::decoder(
        m.compression,
        BufReader::with_capacity(1 << 20, src),
        threads,
        job.mem_total,
        opts.pool_bytes(),
    )
    .map_err(Error::io("the decoder for", &src_path))?;
    // The aligned parts of every range go to the card with O_DIRECT: no copy into the page
    // cache on the cores the decoder needs.
    let mut dev = stream::DirectWriter::open(&p3.dev).map_err(Error::io("open", &p3.dev))?;
    let mut last_pct = u64::MAX;
    let mut announced = false;
    let mut progress = |p: stream::Progress| {
        job.beat();
        let pct = p.done * 100 / p.total.max(1);
        if pct / 10 != last_pct / 10 {
            last_pct = pct;
            say(&format!(
                "k8r: writing root {pct:>3}% ({} of {} MiB decoded, {} MiB written)",
                p.done >> 20,
                p.total >> 20,
                p.written >> 20
            ));
        }
        if !announced {
            announced = true;
            job.failpoints.hit(Point::DuringRootWrite, say);
        }
    };
    let stream_err = |source| Error::Stream {
        what: src_path.display().to_string(),
        source,
    };
    let report = stream::write_ranges(
        &mut plain,
        &mut dev,
        &m.ranges,
        m.size,
        &opts,
        &mut progress,
    )
    .map_err(stream_err)?;
    // Nothing may follow the image in the decoded stream.
    let mut rest = [0u8; 1];
    if plain
        .read(&mut rest)
        .map_err(Error::io("read", &src_path))?
        != 0
    {
        return Err(stream_err(stream::StreamError::TooLong { want: m.size }));
    }
    drop(plain);
    dev.sync_all().map_err(Error::io("fsync", &p3.dev))?;
    let _ = k8r_card::io::drop_page_cache(dev.file());
    let direct_mib = dev.direct_bytes() >> 20;
    drop(dev);
    say(&format!(
        "k8r: root written: {} MiB in {} ranges ({direct_mib} MiB with O_DIRECT), {} MiB of free space skipped; reading it back",
        report.written >> 20,
        m.ranges.len(),
        report.skipped_zero >> 20
    ));
    job.failpoints.hit(Point::AfterRootWrite, say);
    stream::verify_ranges(&p3.dev, &m.ranges, job.threads, true, &|_| job.beat()).map_err(
        |source| Error::Stream {
            what: format!("read-back of {}", p3.dev.display()),
            source,
        },
    )?;
    say("k8r: read-back verified");
    Ok(())
}

/// Recreates p2's FAT32 and unpacks `boot.tar.xz` into it; points its effective
/// `cmdline.txt` at this card's root; applies the node's `user-data` from p1.
pub(crate) fn write_boot(job: &Job<'_>, say: Say<'_>) -> Result<()> {
    let p2 = job.card.part(Part::Boot)?;
    let mut dev = OpenOptions::new()
        .write(true)
        .open(&p2.dev)
        .map_err(Error::io("open", &p2.dev))?;
    let params = fat32::Fat32Params {
        size_bytes: p2.bytes(),
        start_lba: u32::try_from(p2.start).map_err(|_| Error::TooSmall {
            device: p2.dev.clone(),
            have: p2.start,
            need: u64::from(u32::MAX),
        })?,
        label: layout::BOOT_LABEL.into(),
        volume_id: layout::boot_volume_id(job.card.disk_id),
    };
    fat32::format(&mut dev, &params).map_err(|e| Error::Io {
        action: "format",
        path: p2.dev.clone(),
        source: std::io::Error::other(e),
    })?;
    dev.sync_all().map_err(Error::io("fsync", &p2.dev))?;
    drop(dev);
    job.failpoints.hit(Point::AfterBootFormat, say);
    let mounted = mounts::mount(&p2.dev, job.boot_mnt, Part::Boot.fs())?;
    let b = &job.build.manifest.boot;
    let src_path = job.build.boot_file();
    let src = File::open(&src_path).map_err(Error::io("open", &src_path))?;
    let expect = unpack::Expect {
        compressed_sha256: b.compressed_sha256.clone(),
        size: b.size,
        sha256: b.sha256.clone(),
    };
    let report = unpack::unpack_tar_xz(src, mounted.dir(), &expect)?;
    say(&format!(
        "k8r: boot partition: {} files unpacked",
        report.files
    ));
    fix_cmdline(mounted.dir(), job.card.disk_id)?;
    let user_data = job
        .recovery
        .read_node_file(NODE_USER_DATA)
        .map_err(Error::io("read", job.recovery.node_file(NODE_USER_DATA)))?;
    if let Some(data) = user_data {
        careful_replace(mounted.dir(), NODE_USER_DATA, &data)?;
    }
    mounted.unmount()?;
    job.failpoints.hit(Point::AfterBootUnpack, say);
    Ok(())
}

/// Sets `root=PARTUUID=<disk id>-03` in the effective `cmdline.txt` of the boot partition
/// mounted at `boot`, found through the firmware model (under `current/` on Ubuntu 26.04).
pub(crate) fn fix_cmdline(boot: &Path, disk_id: u32) -> Result<()> {
    let files = DirFiles::new(boot);
    let view = CardView {
        partitions: vec![PartitionView {
            number: Part::Boot.number(),
            kind: PartitionKind::Fat,
            files: &files,
        }],
    };
    let req = BootRequest {
        partition: Part::Boot.number(),
        tryboot: false,
    };
    let choice = select_boot(&view, req, Board::Pi4, &Eeprom::default())
        .map_err(|e| Error::WouldNotBoot(e.to_string()))?;
    let mut cmdline = Cmdline::parse(&choice.cmdline);
    cmdline.set_root_partuuid(disk_id, Part::Root.number());
    let path = files
        .resolve(&choice.cmdline_file)
        .ok_or_else(|| Error::WouldNotBoot(format!("{} is missing", choice.cmdline_file)))?;
    let (dir, name) = split(&path)?;
    careful_replace(&dir, &name, cmdline.render().as_bytes())?;
    Ok(())
}

fn split(path: &Path) -> Result<(PathBuf, String)> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => Ok((dir.to_path_buf(), name.to_string_lossy().into_owned())),
        _ => Err(Error::WouldNotBoot(format!(
            "{} is not a file path",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A boot partition tree shaped like Ubuntu 26.04's (`os_prefix=current/`).
    fn boot_2604(dir: &Path) {
        std::fs::create_dir_all(dir.join("current")).expect("dir");
        std::fs::write(
            dir.join("config.txt"),
            "[all]\nos_prefix=current/\n[tryboot]\nos_prefix=new/\n[all]\nkernel=vmlinuz\ncmdline=cmdline.txt\n",
        )
        .expect("config");
        for f in [
            "start4.elf",
            "fixup4.dat",
            "current/vmlinuz",
            "current/bcm2711-rpi-4-b.dtb",
        ] {
            std::fs::write(dir.join(f), b"x").expect("file");
        }
        std::fs::write(
            dir.join("current/cmdline.txt"),
            "console=serial0,115200 root=LABEL=writable rootwait\n",
        )
        .expect("cmdline");
    }

    #[test]
    fn cmdline_under_os_prefix_points_at_this_cards_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        boot_2604(dir.path());
        fix_cmdline(dir.path(), 0x2604_0a0b).expect("fix");
        let text = std::fs::read_to_string(dir.path().join("current/cmdline.txt")).expect("read");
        assert_eq!(
            text.trim_end(),
            "console=serial0,115200 root=PARTUUID=26040a0b-03 rootwait"
        );
        assert!(
            !dir.path().join("cmdline.txt").exists(),
            "the top-level file is not the one"
        );
    }

    #[test]
    fn a_boot_partition_without_a_kernel_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        boot_2604(dir.path());
        std::fs::remove_file(dir.path().join("current/vmlinuz")).expect("rm");
        std::fs::remove_file(dir.path().join("start4.elf")).expect("rm");
        let err = fix_cmdline(dir.path(), 1).expect_err("not bootable");
        assert!(matches!(err, Error::WouldNotBoot(_)), "{err:?}");
    }
}
