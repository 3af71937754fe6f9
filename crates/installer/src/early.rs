//! Bringing the initramfs up: pseudo filesystems, kernel modules, the console log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::sys;

/// The list of modules to load, in order, written by the builder into the initramfs
/// (dependencies first; paths relative to `/lib/modules`).
pub const LOAD_ORDER: &str = "/lib/modules/load-order";

/// Writes lines to the console and the kernel log.
#[derive(Debug)]
pub struct Log {
    console: Option<File>,
    kmsg: Option<File>,
}

impl Log {
    /// Opens `/dev/console` (the kernel gives PID 1 the console as stdout too) and, once
    /// devtmpfs is mounted, `/dev/kmsg`.
    pub fn open() -> Self {
        let console = OpenOptions::new().write(true).open("/dev/console").ok();
        Self {
            console,
            kmsg: None,
        }
    }

    /// Also copy single-line messages to the kernel log (`dmesg`), at debug level, so
    /// they survive in `pstore`/netconsole setups and show up in the shell's `dmesg`.
    pub fn attach_kmsg(&mut self) {
        self.kmsg = OpenOptions::new().write(true).open("/dev/kmsg").ok();
    }

    /// One line on the console (or stdout when there is no console), and in the kernel log.
    pub fn line(&self, text: &str) {
        if let (Some(k), false) = (&self.kmsg, text.contains('\n')) {
            let mut k = k;
            // Level 7 (debug): kept in the kernel log, not echoed to the console again.
            let _ = k.write_all(format!("<7>k8r: {text}").as_bytes());
        }
        let line = format!("{text}\n");
        match &self.console {
            Some(c) => {
                let mut c = c;
                let _ = c.write_all(line.as_bytes());
            }
            None => print!("{line}"),
        }
    }
}

/// Mounts devtmpfs, proc and sysfs and loads the modules of [`LOAD_ORDER`]. Returns the
/// problems met (none is fatal here: a missing driver shows up as a missing disk later).
pub fn bring_up() -> Vec<String> {
    let mut problems = Vec::new();
    for (src, dir, fs) in [
        ("devtmpfs", "/dev", "devtmpfs"),
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
    ] {
        let _ = std::fs::create_dir_all(dir);
        if let Err(e) = sys::mount(src, Path::new(dir), fs, 0, "") {
            if e.raw_os_error() != Some(libc::EBUSY) {
                problems.push(format!("mount {fs} on {dir}: {e}"));
            }
        }
    }
    match std::fs::read_to_string(LOAD_ORDER) {
        Ok(list) => {
            for rel in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let path = Path::new("/lib/modules").join(rel);
                let compressed = [".zst", ".xz", ".gz"].iter().any(|ext| rel.ends_with(ext));
                let flags = if compressed {
                    sys::MODULE_INIT_COMPRESSED_FILE
                } else {
                    0
                };
                if let Err(e) = File::open(&path).and_then(|f| sys::load_module(&f, flags)) {
                    problems.push(format!("module {}: {e}", path.display()));
                }
            }
        }
        Err(e) => problems.push(format!("{LOAD_ORDER}: {e}")),
    }
    problems
}
