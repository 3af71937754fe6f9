//! The node agent's one `unsafe` call: `adjtimex(2)` to read whether the kernel's clock is
//! synchronised. `rustix` has no wrapper for it; every other system call goes through
//! `rustix`'s safe ones.
#![allow(unsafe_code)]

/// Whether the kernel considers its clock synchronised: an NTP client (systemd-timesyncd,
/// chrony, ntpd) clears `STA_UNSYNC` once it has disciplined the clock. `None` when the
/// call fails.
pub fn kernel_clock_synchronised() -> Option<bool> {
    // SAFETY: an all-zero `timex` is a valid value (plain integers and padding), so
    // `zeroed` is sound; with `modes == 0` adjtimex changes nothing in the kernel and only
    // writes the kernel's state into `tx`, which is valid and writable for the whole call.
    let (state, status) = unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        let state = libc::adjtimex(&mut tx);
        (state, tx.status)
    };
    if state < 0 {
        return None;
    }
    Some(state != libc::TIME_ERROR && status & libc::STA_UNSYNC == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_answers() {
        // Whatever this machine's clock state is, reading it works.
        assert!(kernel_clock_synchronised().is_some());
    }
}
