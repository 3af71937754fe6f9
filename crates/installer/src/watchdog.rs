//! The hardware watchdog (`/dev/watchdog`, e.g. bcm2835_wdt with a ~15 s maximum timeout;
//! pi-boot.md §9): fed by a thread for as long as the install makes progress, so a hang
//! reboots the Pi — into recovery, since `autoboot.txt` still points there.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stop feeding when no progress was reported for this long.
pub const STALL: Duration = Duration::from_secs(120);

/// How often the feeder writes.
const FEED_EVERY: Duration = Duration::from_secs(4);

/// A running feeder; [`Watchdog::heartbeat`] says "still making progress".
#[derive(Debug, Clone)]
pub struct Watchdog {
    start: Instant,
    last_beat_ms: Arc<AtomicU64>,
}

impl Watchdog {
    /// Opens `/dev/watchdog` if it exists and starts the feeder. `None` when there is no
    /// watchdog (QEMU virt), which is fine.
    pub fn start() -> Option<Watchdog> {
        let dev = OpenOptions::new().write(true).open("/dev/watchdog").ok()?;
        let wd = Watchdog {
            start: Instant::now(),
            last_beat_ms: Arc::new(AtomicU64::new(0)),
        };
        let feeder = wd.clone();
        std::thread::spawn(move || feeder.feed_loop(dev));
        Some(wd)
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Records progress.
    pub fn heartbeat(&self) {
        self.last_beat_ms
            .store(self.elapsed_ms(), Ordering::Relaxed);
    }

    /// Whether the feeder should still feed, given the time since the last heartbeat.
    pub fn should_feed(since_beat: Duration) -> bool {
        since_beat < STALL
    }

    fn feed_loop(self, mut dev: File) {
        loop {
            let since = self
                .elapsed_ms()
                .saturating_sub(self.last_beat_ms.load(Ordering::Relaxed));
            if Self::should_feed(Duration::from_millis(since)) {
                let _ = dev.write_all(b"k");
            }
            std::thread::sleep(FEED_EVERY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_only_while_progress_is_recent() {
        assert!(Watchdog::should_feed(Duration::from_secs(5)));
        assert!(!Watchdog::should_feed(STALL));
    }
}
