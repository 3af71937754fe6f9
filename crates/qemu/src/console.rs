//! The guest's serial console as seen by the harness: one transcript across all runs of a
//! machine, filled by a reader thread per QEMU run, searched by `expect`.

use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Shared transcript state.
#[derive(Debug, Default)]
struct State {
    text: Vec<u8>,
    /// Bumped each time a reader hits end of file (a QEMU run's stdout closed).
    closed_runs: u64,
}

/// The transcript of a machine's console, shared with the reader threads.
#[derive(Debug, Clone, Default)]
pub struct Console {
    inner: Arc<(Mutex<State>, Condvar)>,
    echo: bool,
    live: Option<Arc<Mutex<std::fs::File>>>,
}

impl Console {
    /// A new, empty console; with `echo`, everything is also copied to this process's stdout
    /// (for the demo).
    pub fn new(echo: bool) -> Self {
        Self {
            inner: Arc::default(),
            echo,
            live: None,
        }
    }

    /// Also appends everything to `file` as it arrives (truncated first), so a test that is
    /// killed or still running leaves its transcript readable.
    pub fn with_live_file(mut self, file: &std::path::Path) -> Self {
        self.live = std::fs::File::create(file)
            .ok()
            .map(|f| Arc::new(Mutex::new(f)));
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader thread that panicked leaves the text as it was; keep using it.
        self.inner
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a thread copying `source` (a QEMU stdout) into the transcript until EOF.
    pub fn attach(&self, mut source: impl Read + Send + 'static) {
        let console = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match source.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => console.push(&buf[..n]),
                }
            }
            let mut state = console.lock();
            state.closed_runs += 1;
            console.inner.1.notify_all();
        });
    }

    /// Appends text (guest output or a harness note).
    pub fn push(&self, bytes: &[u8]) {
        if self.echo {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(bytes);
            let _ = out.flush();
        }
        if let Some(live) = &self.live {
            let mut f = live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = f.write_all(bytes);
        }
        let mut state = self.lock();
        state.text.extend_from_slice(bytes);
        self.inner.1.notify_all();
    }

    /// Appends a harness note on a line of its own.
    pub fn note(&self, msg: &str) {
        let needs_newline = self.lock().text.last().is_some_and(|&b| b != b'\n');
        let prefix = if needs_newline { "\n" } else { "" };
        self.push(format!("{prefix}=== k8r-qemu: {msg} ===\n").as_bytes());
    }

    /// Length of the transcript so far.
    pub fn len(&self) -> usize {
        self.lock().text.len()
    }

    /// Whether nothing has been printed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many runs have closed their output.
    pub fn closed_runs(&self) -> u64 {
        self.lock().closed_runs
    }

    /// The transcript from byte `from` on, as text.
    pub fn text_from(&self, from: usize) -> String {
        let state = self.lock();
        String::from_utf8_lossy(state.text.get(from..).unwrap_or_default()).into_owned()
    }

    /// Waits until `pattern` appears at or after byte `from`, or `stop` says to give up, or the
    /// deadline passes. Returns the end offset of the match.
    pub fn wait_for(
        &self,
        pattern: &str,
        from: usize,
        deadline: Instant,
        mut stop: impl FnMut(&Self) -> bool,
    ) -> WaitResult {
        loop {
            {
                let state = self.lock();
                if let Some(end) = find(&state.text, pattern.as_bytes(), from) {
                    return WaitResult::Found(end);
                }
            }
            if stop(self) {
                return WaitResult::Stopped;
            }
            let now = Instant::now();
            if now >= deadline {
                return WaitResult::TimedOut;
            }
            let state = self.lock();
            let wait = (deadline - now).min(Duration::from_millis(100));
            drop(
                self.inner
                    .1
                    .wait_timeout(state, wait)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
        }
    }
}

/// Outcome of [`Console::wait_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// The pattern was found; offset just past it.
    Found(usize),
    /// The stop condition held first.
    Stopped,
    /// The deadline passed.
    TimedOut,
}

/// End offset of the first `needle` in `hay[from..]`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return Some(from.min(hay.len()));
    }
    let hay = hay.get(from..)?;
    hay.windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p + needle.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_after_offset_only() {
        assert_eq!(find(b"abcabc", b"abc", 0), Some(3));
        assert_eq!(find(b"abcabc", b"abc", 1), Some(6));
        assert_eq!(find(b"abcabc", b"abc", 4), None);
        assert_eq!(find(b"ab", b"abc", 0), None);
    }

    #[test]
    fn wait_sees_text_from_a_reader_thread() {
        let console = Console::new(false);
        let (r, mut w) = std::io::pipe().expect("pipe");
        console.attach(r);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            w.write_all(b"booting...\nK8R-MARKER up\n").expect("write");
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let res = console.wait_for("K8R-MARKER", 0, deadline, |_| false);
        writer.join().expect("writer");
        let WaitResult::Found(end) = res else {
            panic!("not found: {res:?}");
        };
        assert_eq!(&console.text_from(end - 10)[..10], "K8R-MARKER");
        let deadline = Instant::now() + Duration::from_millis(300);
        let res = console.wait_for("never", 0, deadline, |_| false);
        assert_eq!(res, WaitResult::TimedOut);
        let res = console.wait_for("never", 0, Instant::now() + Duration::from_secs(5), |c| {
            c.closed_runs() > 0
        });
        assert_eq!(
            res,
            WaitResult::Stopped,
            "EOF of the pipe counts as a closed run"
        );
    }
}
