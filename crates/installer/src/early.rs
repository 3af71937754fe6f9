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
    /// they survive in `pstore`/netconsole setups and show up in the shell's `dmesg`. Called
    /// once devtmpfs is mounted (`/dev/kmsg` exists only then).
    pub fn attach_kmsg(&mut self) {
        self.kmsg = OpenOptions::new().write(true).open("/dev/kmsg").ok();
    }

    /// One line on the console (or stdout when there is no console), and in the kernel log.
    pub fn line(&self, text: &str) {
        if let (Some(k), Some(record)) = (&self.kmsg, kmsg_record(text)) {
            let mut k = k;
            let _ = k.write_all(record.as_bytes());
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
        if let Err(e) = sys::mount(src, Path::new(dir), fs, sys::Flags::empty(), "") {
            if e.raw_os_error() != Some(rustix::io::Errno::BUSY.raw_os_error()) {
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

/// Writes one line to the kernel log at the default level, so it also reaches the console
/// (the harness's reboot-request line goes this way: the kernel flushes its console before a
/// reset, a tty write may still sit in the UART FIFO).
pub fn kmsg(line: &str) {
    if let Ok(mut k) = OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = k.write_all(line.as_bytes());
    }
}

/// The kernel-log record [`Log::line`] writes for `text`: level 7 (debug, kept in the kernel
/// log but not echoed to the console a second time), prefixed `k8r: `.
pub fn kmsg_record(text: &str) -> Option<String> {
    (!text.contains('\n')).then(|| format!("<7>k8r: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_log_records_are_debug_level_single_lines() {
        assert_eq!(
            kmsg_record("K8R-RECOVERY: writing the root partition").as_deref(),
            Some("<7>k8r: K8R-RECOVERY: writing the root partition")
        );
        assert_eq!(kmsg_record("a menu\nof lines"), None);
    }
}
