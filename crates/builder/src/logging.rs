//! A `log` backend for the command line: messages on stderr, no timestamps.

use log::{Level, LevelFilter, Metadata, Record};

struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        match record.level() {
            Level::Error => eprintln!("error: {}", record.args()),
            Level::Warn => eprintln!("warning: {}", record.args()),
            _ => eprintln!("{}", record.args()),
        }
    }
    fn flush(&self) {}
}

/// Installs the logger: info by default, debug with -v, trace with -vv.
pub fn init(verbose: u8) {
    static LOGGER: Stderr = Stderr;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(match verbose {
            0 => LevelFilter::Info,
            1 => LevelFilter::Debug,
            _ => LevelFilter::Trace,
        });
    }
}

/// The error's chain on one line, `: `-separated, each cause once: error types that put their
/// source in their own message (`{path}: {source}`) would otherwise print it twice through
/// anyhow's `{:#}`.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_cause_inside_its_wrapper_is_printed_once() {
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let image = crate::image::ImageError::Io {
            path: "images/card.img".into(),
            source: io,
        };
        let e = anyhow::Error::new(image).context("writing the card");
        let line = error_chain(&e);
        assert_eq!(
            line.matches("permission denied").count(),
            1,
            "each cause once: {line}"
        );
        assert!(
            line.starts_with("writing the card: images/card.img: "),
            "{line}"
        );
        assert!(
            format!("{e:#}").matches("permission denied").count() > 1,
            "the case this guards against: anyhow's own chain repeats it"
        );
    }
}
