//! The agent's log: every line to stderr (which systemd puts into the journal for the
//! agent's units) and appended to `/var/log/k8r.log` with the time, so an operator finds the
//! history of every boot in one file, as the seed had it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger {
    file: Option<Mutex<std::fs::File>>,
    level: LevelFilter,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = match record.level() {
            Level::Error => format!("k8r: error: {}", record.args()),
            Level::Warn => format!("k8r: warning: {}", record.args()),
            _ => format!("k8r: {}", record.args()),
        };
        eprintln!("{line}");
        if let Some(file) = &self.file {
            let mut f = file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = writeln!(f, "{} {line}", crate::clock::utc_now_text());
        }
    }

    fn flush(&self) {}
}

/// Sets up the logger once: `verbose` 0 = info, 1+ = debug. `file` is the log file (created
/// when missing; a missing directory or a read-only root only loses the file copy).
pub fn init(verbose: u8, file: Option<PathBuf>) {
    let file = file.and_then(|path| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
            .map(Mutex::new)
    });
    let level = if verbose > 0 {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    // A second init (tests) keeps the first logger.
    if log::set_logger(Box::leak(Box::new(Logger { file, level }))).is_ok() {
        log::set_max_level(level);
    }
}
