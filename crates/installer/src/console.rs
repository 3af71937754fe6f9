//! The serial console's input side: "press any key" during the countdown (raw mode, poll)
//! and whole lines for the menu (canonical mode).

use std::io::{BufRead, Read};
use std::time::{Duration, Instant};

use crate::sys;

/// Waits up to `wait` for a key; returns true if one was pressed (the pending input is
/// drained so it does not count as a menu choice).
pub fn key_pressed(wait: Duration) -> bool {
    let raw = sys::stdin_raw(true).is_ok();
    let deadline = Instant::now() + wait;
    let mut pressed = false;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match sys::poll_stdin(left.min(Duration::from_secs(1))) {
            Ok(true) => {
                pressed = true;
                break;
            }
            Ok(false) => {}
            Err(_) => {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    if pressed {
        drain();
    }
    if raw {
        let _ = sys::stdin_raw(false);
    }
    pressed
}

/// Reads and discards input that is already waiting.
fn drain() {
    let mut buf = [0u8; 256];
    while matches!(sys::poll_stdin(Duration::from_millis(50)), Ok(true)) {
        if std::io::stdin().read(&mut buf).map_or(true, |n| n == 0) {
            break;
        }
    }
}

/// Reads one line (without its end); `None` on end of input.
pub fn read_line() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_owned()),
    }
}
