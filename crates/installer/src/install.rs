//! One install: the steps in an order where a power cut at any point still boots into
//! recovery (the failure matrix is in `docs/installer.md`). The bytes that make the card boot
//! the working system — `autoboot.txt` — go last, only after everything verified.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use k8r_boot_config::autoboot::Autoboot;
use k8r_boot_config::cmdline::Cmdline;
use k8r_boot_config::firmware::{select_boot, BootRequest, CardView, DirFiles, Eeprom};
use k8r_boot_config::firmware::{PartitionKind, PartitionView};
use k8r_boot_config::Board;
use k8r_manifest::Manifest;

use crate::card::CardLayout;
use crate::failpoint::Failpoints;
use crate::replace::careful_replace;
use crate::watchdog::Watchdog;
use crate::{fat32, stream, sys, unpack};

/// Where the recovery partition is mounted.
pub const RECOVERY_MNT: &str = "/mnt/recovery";
/// Where p2 is mounted while its files are written.
pub const BOOT_MNT: &str = "/mnt/boot";
/// Where p3 is mounted for the node configuration.
pub const ROOT_MNT: &str = "/mnt/root";
/// The image store on p1.
pub const STORE: &str = "k8r/images/current";
/// The node configuration on p1.
pub const NODE_DIR: &str = "k8r/node";

/// Everything an install needs, decided before it starts.
#[derive(Debug)]
pub struct Job<'a> {
    /// The card.
    pub card: &'a CardLayout,
    /// The validated manifest of the stored image.
    pub manifest: &'a Manifest,
    /// Failpoints from the command line.
    pub failpoints: &'a Failpoints,
    /// The watchdog, when there is one.
    pub watchdog: Option<&'a Watchdog>,
    /// Worker threads (online CPUs).
    pub threads: usize,
    /// Total memory (bounds the xz decoder).
    pub mem_total: u64,
}

/// Lines for the console.
pub type Say<'a> = &'a dyn Fn(&str);

fn store_file(name: &str) -> PathBuf {
    Path::new(RECOVERY_MNT).join(STORE).join(name)
}

/// Decodes `image.img.xz` onto p3, writing only the used ranges and checking both digests,
/// then reads the ranges back from the card bypassing the page cache.
pub fn write_root(job: &Job<'_>, say: Say<'_>) -> Result<(), String> {
    let m = &job.manifest.root;
    let p3 = job.card.part(3)?;
    if p3.bytes() < m.size {
        return Err(format!(
            "partition 3 ({}) holds {} bytes, the image needs {}",
            p3.dev.display(),
            p3.bytes(),
            m.size
        ));
    }
    let src_path = store_file(&m.file);
    let src = File::open(&src_path).map_err(|e| format!("{}: {e}", src_path.display()))?;
    let hashed = stream::HashingReader::new(BufReader::with_capacity(1 << 20, src));
    let threads = u32::try_from(job.threads).unwrap_or(1);
    let mut plain = stream::xz_reader(hashed, threads, job.mem_total)
        .map_err(|e| format!("{}: xz decoder: {e}", m.file))?;
    let mut dev = OpenOptions::new()
        .write(true)
        .open(&p3.dev)
        .map_err(|e| format!("{}: {e}", p3.dev.display()))?;
    let opts = stream::WriteOptions {
        threads: job.threads,
        chunk: 4 << 20,
        // Range digests + zeros elsewhere + the compressed digest pin every byte already.
        whole_digest: false,
    };
    let mut last_pct = u64::MAX;
    let mut announced = false;
    let mut progress = |p: stream::Progress| {
        if let Some(w) = job.watchdog {
            w.heartbeat();
        }
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
            job.failpoints.hit("during-root-write", say);
        }
    };
    let report = stream::write_ranges(
        &mut plain,
        &mut dev,
        &m.ranges,
        m.size,
        &opts,
        &mut progress,
    )
    .map_err(|e| format!("{}: {e}", m.file))?;
    // The whole stream must also match (the decoder may hold trailing bytes: drain it).
    let mut rest = Vec::new();
    plain
        .read_to_end(&mut rest)
        .map_err(|e| format!("{}: {e}", m.file))?;
    if !rest.is_empty() {
        return Err(format!(
            "{}: {} bytes beyond the image size {}",
            m.file,
            rest.len(),
            m.size
        ));
    }
    drop(plain);
    if !report.sha256.is_empty() && report.sha256 != m.sha256 {
        return Err(format!(
            "{} (uncompressed): SHA-256 {} expected {}",
            m.file, report.sha256, m.sha256
        ));
    }
    dev.sync_all()
        .map_err(|e| format!("{}: fsync: {e}", p3.dev.display()))?;
    let _ = sys::drop_caches(&dev);
    drop(dev);
    say(&format!(
        "k8r: root written: {} MiB in {} ranges, {} MiB of free space skipped; reading it back",
        report.written >> 20,
        m.ranges.len(),
        report.skipped_zero >> 20
    ));
    job.failpoints.hit("after-root-write", say);
    stream::verify_ranges(&p3.dev, &m.ranges, job.threads, true, &|_| {
        if let Some(w) = job.watchdog {
            w.heartbeat();
        }
    })
    .map_err(|e| format!("read-back of {}: {e}", p3.dev.display()))?;
    say("k8r: read-back verified");
    Ok(())
}

/// Verifies the stored image without writing anything: compressed digest, decode, every
/// range digest and the whole-image digest.
pub fn verify_store(job: &Job<'_>, say: Say<'_>) -> Result<(), String> {
    let m = &job.manifest.root;
    let src_path = store_file(&m.file);
    let src = File::open(&src_path).map_err(|e| format!("{}: {e}", src_path.display()))?;
    let threads = u32::try_from(job.threads).unwrap_or(1);
    let mut plain = stream::xz_reader(BufReader::new(src), threads, job.mem_total)
        .map_err(|e| format!("{}: {e}", m.file))?;
    let mut sink = crate::digest::NullDevice::default();
    let opts = stream::WriteOptions {
        threads: job.threads,
        chunk: 4 << 20,
        whole_digest: true,
    };
    let report = stream::write_ranges(&mut plain, &mut sink, &m.ranges, m.size, &opts, &mut |_| {
        if let Some(w) = job.watchdog {
            w.heartbeat();
        }
    })
    .map_err(|e| format!("{}: {e}", m.file))?;
    if report.sha256 != m.sha256 {
        return Err(format!(
            "{} (uncompressed): SHA-256 {} expected {}",
            m.file, report.sha256, m.sha256
        ));
    }
    let compressed =
        crate::digest::sha256_file(&src_path).map_err(|e| format!("{}: {e}", m.file))?;
    if compressed != m.compressed_sha256 {
        return Err(format!(
            "{}: SHA-256 {compressed} expected {}",
            m.file, m.compressed_sha256
        ));
    }
    let b = &job.manifest.boot;
    let boot =
        crate::digest::sha256_file(&store_file(&b.file)).map_err(|e| format!("{}: {e}", b.file))?;
    if boot != b.compressed_sha256 {
        return Err(format!(
            "{}: SHA-256 {boot} expected {}",
            b.file, b.compressed_sha256
        ));
    }
    say("k8r: the stored image verifies");
    Ok(())
}

/// Checks the compressed digest of `image.img.xz` before anything is written (one read of
/// the file; cheap next to the decode, and it keeps a corrupt store from touching p3).
pub fn check_compressed(job: &Job<'_>) -> Result<(), String> {
    let m = &job.manifest.root;
    let actual =
        crate::digest::sha256_file(&store_file(&m.file)).map_err(|e| format!("{}: {e}", m.file))?;
    if actual != m.compressed_sha256 {
        return Err(format!(
            "{}: SHA-256 {actual}, expected {} (the stored image is damaged: re-stage it)",
            m.file, m.compressed_sha256
        ));
    }
    Ok(())
}

/// Recreates p2's FAT32 and unpacks `boot.tar.xz` into it; points its effective
/// `cmdline.txt` at this card's root; applies the node's `user-data`.
pub fn write_boot(job: &Job<'_>, say: Say<'_>) -> Result<(), String> {
    let p2 = job.card.part(2)?;
    let mut dev = OpenOptions::new()
        .write(true)
        .open(&p2.dev)
        .map_err(|e| format!("{}: {e}", p2.dev.display()))?;
    let params = fat32::Fat32Params {
        size_bytes: p2.bytes(),
        start_lba: u32::try_from(p2.start)
            .map_err(|_| "partition 2 starts beyond 2 TiB".to_owned())?,
        label: "system-boot".into(),
        volume_id: job.card.disk_id ^ 0x0000_b007,
    };
    fat32::format(&mut dev, &params).map_err(|e| format!("{}: {e}", p2.dev.display()))?;
    dev.sync_all()
        .map_err(|e| format!("{}: {e}", p2.dev.display()))?;
    drop(dev);
    job.failpoints.hit("after-boot-format", say);
    mount(&p2.dev, BOOT_MNT, "vfat")?;
    let result = (|| -> Result<(), String> {
        let b = &job.manifest.boot;
        let src = File::open(store_file(&b.file)).map_err(|e| format!("{}: {e}", b.file))?;
        let expect = unpack::Expect {
            compressed_sha256: b.compressed_sha256.clone(),
            size: b.size,
            sha256: b.sha256.clone(),
        };
        let report =
            unpack::unpack_tar_xz(src, Path::new(BOOT_MNT), &expect).map_err(|e| e.to_string())?;
        say(&format!(
            "k8r: boot partition: {} files unpacked",
            report.files
        ));
        fix_cmdline(job.card.disk_id)?;
        let user_data = Path::new(RECOVERY_MNT).join(NODE_DIR).join("user-data");
        if let Ok(data) = std::fs::read(&user_data) {
            careful_replace(Path::new(BOOT_MNT), "user-data", &data).map_err(|e| e.to_string())?;
        }
        Ok(())
    })();
    sys::sync();
    let unmounted = sys::umount(Path::new(BOOT_MNT)).map_err(|e| format!("umount {BOOT_MNT}: {e}"));
    result?;
    unmounted?;
    job.failpoints.hit("after-boot-unpack", say);
    Ok(())
}

/// Sets `root=PARTUUID=<disk id>-03` in the effective `cmdline.txt` of the mounted p2, found
/// through the firmware model (under `current/` on Ubuntu 26.04).
pub fn fix_cmdline(disk_id: u32) -> Result<(), String> {
    let files = DirFiles::new(BOOT_MNT);
    let view = CardView {
        partitions: vec![PartitionView {
            number: 2,
            kind: PartitionKind::Fat,
            files: &files,
        }],
    };
    let req = BootRequest {
        partition: 2,
        tryboot: false,
    };
    let choice = select_boot(&view, req, Board::Pi4, &Eeprom::default())
        .map_err(|e| format!("the new boot partition would not boot: {e}"))?;
    let mut cmdline = Cmdline::parse(&choice.cmdline);
    cmdline.set_root_partuuid(disk_id, 3);
    let path = files.resolve(&choice.cmdline_file).ok_or_else(|| {
        format!(
            "{} is missing on the new boot partition",
            choice.cmdline_file
        )
    })?;
    let (dir, name) = split(&path)?;
    careful_replace(&dir, &name, cmdline.render().as_bytes()).map_err(|e| e.to_string())
}

fn split(path: &Path) -> Result<(PathBuf, String), String> {
    let dir = path.parent().ok_or("no parent")?.to_path_buf();
    let name = path
        .file_name()
        .ok_or("no file name")?
        .to_string_lossy()
        .into_owned();
    Ok((dir, name))
}

/// Copies the node's `variables.cfg` from p1 into the new root (mode 0600) when it differs
/// from the one the image carries (an `inject`ed card). The root is looked at read-only first,
/// so a card whose configuration is the image's keeps p3 exactly as verified.
pub fn apply_node_config(job: &Job<'_>) -> Result<(), String> {
    let cfg = Path::new(RECOVERY_MNT).join(NODE_DIR).join("variables.cfg");
    let Ok(data) = std::fs::read(&cfg) else {
        return Ok(());
    };
    let p3 = job.card.part(3)?;
    let target = Path::new(ROOT_MNT).join("usr/lib/k8r/variables.cfg");
    // `noload`: no journal replay, so a read-only look writes nothing.
    mount_with(&p3.dev, ROOT_MNT, "ext4", sys::MS_RDONLY, "noload")?;
    let same = std::fs::read(&target).is_ok_and(|current| current == data);
    let unmounted = sys::umount(Path::new(ROOT_MNT)).map_err(|e| format!("umount {ROOT_MNT}: {e}"));
    unmounted?;
    if same {
        return Ok(());
    }
    mount(&p3.dev, ROOT_MNT, "ext4")?;
    let result = (|| -> Result<(), String> {
        let dir = Path::new(ROOT_MNT).join("usr/lib/k8r");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        careful_replace(&dir, "variables.cfg", &data).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("variables.cfg"),
            std::fs::Permissions::from_mode(0o600),
        )
        .map_err(|e| format!("chmod variables.cfg: {e}"))
    })();
    sys::sync();
    let unmounted = sys::umount(Path::new(ROOT_MNT)).map_err(|e| format!("umount {ROOT_MNT}: {e}"));
    result?;
    unmounted
}

/// Points `autoboot.txt` on p1 at `partition` (keeping `tryboot_a_b=1`), the careful way.
pub fn flip_autoboot(partition: u8) -> Result<(), String> {
    let text = Autoboot::render_normal(partition, true);
    careful_replace(Path::new(RECOVERY_MNT), "autoboot.txt", text.as_bytes())
        .map_err(|e| e.to_string())?;
    sys::sync();
    Ok(())
}

/// `MS_DIRSYNC`: directory changes (creates, renames) are written synchronously.
pub const MS_DIRSYNC: u64 = 128;

/// Mounts `dev` on `dir` with explicit flags and data.
pub fn mount_with(
    dev: &Path,
    dir: &str,
    fstype: &str,
    flags: u64,
    data: &str,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{dir}: {e}"))?;
    sys::mount(&dev.to_string_lossy(), Path::new(dir), fstype, flags, data)
        .map_err(|e| format!("mount {} ({fstype}, {data}) on {dir}: {e}", dev.display()))
}

/// Mounts `dev` on `dir` (created if needed). FAT is mounted with UTF-8 names when the kernel
/// has `nls_utf8`, else with the kernel's default character set (which needs its own nls
/// module: Debian's default is `ascii`, Ubuntu's `iso8859-1`).
pub fn mount(dev: &Path, dir: &str, fstype: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{dir}: {e}"))?;
    let source = dev.to_string_lossy();
    let first = if fstype == "vfat" {
        "iocharset=utf8"
    } else {
        ""
    };
    sys::mount(&source, Path::new(dir), fstype, 0, first)
        .or_else(|e| {
            if first.is_empty() {
                Err(e)
            } else {
                sys::mount(&source, Path::new(dir), fstype, 0, "")
            }
        })
        .map_err(|e| format!("mount {} ({fstype}) on {dir}: {e}", dev.display()))
}
