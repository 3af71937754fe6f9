//! The clock, before anything that issues or checks certificates.
//!
//! A Raspberry Pi 4 has no real-time clock: it boots with the time of the last shutdown (or
//! the image's build time, or 1970) until NTP answers. Certificates made from such a time are
//! wrong for a long while (`x509: certificate has expired or is not yet valid`;
//! kubernetes-node.md §6). So the cluster step waits, bounded and saying so every few
//! seconds, until the clock can be trusted:
//!
//! - synchronised: an NTP client told the kernel (`STA_UNSYNC` cleared: systemd-timesyncd,
//!   chrony and ntpd all do it; systemd-timesyncd also touches
//!   `/run/systemd/timesync/synchronized`);
//! - or set from a hardware clock at boot (`/sys/class/rtc/rtc0/hctosys`, a Pi 5 with its
//!   RTC battery, an RTC HAT) and not earlier than the image's build time.
//!
//! A clock earlier than the build time is certainly wrong, and the wait says so.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8r_manifest::time::utc_rfc3339;

use crate::host::Host;

/// What is known about the clock at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// Seconds since the epoch, as the clock says.
    pub now: u64,
    /// When the running image was built.
    pub build_epoch: u64,
    /// An NTP client has synchronised the clock.
    pub synchronised: bool,
    /// The kernel set the clock from a hardware clock at boot.
    pub from_rtc: bool,
}

/// What the facts mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Good enough for certificates, and why.
    Trusted(&'static str),
    /// Earlier than the image's build: certainly wrong.
    BeforeBuild,
    /// Not known to be right yet.
    Unsynchronised,
}

/// Decides. Pure.
pub fn verdict(f: Facts) -> Verdict {
    if f.synchronised {
        return Verdict::Trusted("synchronised by NTP");
    }
    if f.now < f.build_epoch {
        return Verdict::BeforeBuild;
    }
    if f.from_rtc {
        return Verdict::Trusted("set from the hardware clock");
    }
    Verdict::Unsynchronised
}

/// The line the wait prints for `f` after `waited` of `limit`.
pub fn waiting_message(f: Facts, waited: Duration, limit: Duration) -> String {
    let progress = format!("waited {}s of {}s", waited.as_secs(), limit.as_secs());
    match verdict(f) {
        Verdict::BeforeBuild => format!(
            "the clock says {}, earlier than this image was built ({}): it is certainly wrong; \
             waiting for time synchronisation before creating or checking certificates \
             (check the network and the NTP server) ({progress})",
            utc_rfc3339(f.now),
            utc_rfc3339(f.build_epoch)
        ),
        _ => format!(
            "waiting for the clock to be synchronised by NTP before creating or checking \
             certificates (the clock says {}; a Pi has no battery clock) ({progress})",
            utc_rfc3339(f.now)
        ),
    }
}

/// Seconds since the epoch now (0 if the clock is before 1970).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The current UTC time, RFC 3339, for log lines.
pub fn utc_now_text() -> String {
    utc_rfc3339(now_secs())
}

/// Reads the facts on `host`.
pub fn facts(host: &Host, build_epoch: u64) -> Facts {
    let kernel = host
        .is_system()
        .then(crate::sys::kernel_clock_synchronised)
        .flatten()
        .unwrap_or(false);
    let timesyncd = host.path("/run/systemd/timesync/synchronized").exists();
    let from_rtc = std::fs::read_to_string(host.path("/sys/class/rtc/rtc0/hctosys"))
        .is_ok_and(|v| v.trim() == "1");
    Facts {
        now: now_secs(),
        build_epoch,
        synchronised: kernel || timesyncd,
        from_rtc,
    }
}

/// Waits until the clock can be trusted, for at most `limit`, printing the reason every
/// `every`.
///
/// # Errors
/// The clock was not trusted within `limit`: nothing that needs certificates may run.
pub fn wait_until_trusted(
    host: &Host,
    build_epoch: u64,
    limit: Duration,
    every: Duration,
) -> anyhow::Result<&'static str> {
    let start = Instant::now();
    let mut last_said: Option<Instant> = None;
    loop {
        let f = facts(host, build_epoch);
        if let Verdict::Trusted(why) = verdict(f) {
            if last_said.is_some() {
                log::info!("the clock is trusted now ({why}): {}", utc_rfc3339(f.now));
            }
            return Ok(why);
        }
        let waited = start.elapsed();
        if waited >= limit {
            anyhow::bail!(
                "the clock could not be trusted within {}s: {}",
                limit.as_secs(),
                waiting_message(f, waited, limit)
            );
        }
        if last_said.is_none_or(|t| t.elapsed() >= every) {
            log::info!("{}", waiting_message(f, waited, limit));
            last_said = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(500).min(every));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILD: u64 = 1_776_902_400;

    fn f(now: u64, synchronised: bool, from_rtc: bool) -> Facts {
        Facts {
            now,
            build_epoch: BUILD,
            synchronised,
            from_rtc,
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            verdict(f(BUILD + 10, true, false)),
            Verdict::Trusted("synchronised by NTP")
        );
        assert_eq!(
            verdict(f(10, true, false)),
            Verdict::Trusted("synchronised by NTP"),
            "NTP wins"
        );
        assert_eq!(
            verdict(f(10, false, true)),
            Verdict::BeforeBuild,
            "an RTC that lost its time"
        );
        assert_eq!(
            verdict(f(BUILD + 10, false, true)),
            Verdict::Trusted("set from the hardware clock")
        );
        assert_eq!(
            verdict(f(BUILD + 10, false, false)),
            Verdict::Unsynchronised,
            "last shutdown's time"
        );
        assert_eq!(verdict(f(0, false, false)), Verdict::BeforeBuild);
    }

    #[test]
    fn the_message_says_why() {
        let m = waiting_message(
            f(0, false, false),
            Duration::from_secs(5),
            Duration::from_secs(600),
        );
        assert!(
            m.contains("1970-01-01T00:00:00Z")
                && m.contains("2026-04-23")
                && m.contains("certainly wrong"),
            "{m}"
        );
        assert!(m.contains("waited 5s of 600s"), "{m}");
        let m = waiting_message(
            f(BUILD + 1, false, false),
            Duration::ZERO,
            Duration::from_secs(60),
        );
        assert!(m.contains("synchronised by NTP"), "{m}");
    }

    #[test]
    fn the_wait_ends_on_the_timesyncd_flag_and_times_out_without_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::at(dir.path());
        let err = wait_until_trusted(
            &host,
            u64::MAX,
            Duration::from_millis(300),
            Duration::from_millis(100),
        )
        .expect_err("never trusted");
        assert!(err.to_string().contains("certainly wrong"), "{err}");
        std::fs::create_dir_all(host.path("/run/systemd/timesync")).expect("dir");
        std::fs::write(host.path("/run/systemd/timesync/synchronized"), b"").expect("flag");
        assert_eq!(
            wait_until_trusted(
                &host,
                u64::MAX,
                Duration::from_secs(5),
                Duration::from_secs(1)
            )
            .expect("trusted"),
            "synchronised by NTP"
        );
    }

    #[test]
    fn an_rtc_clock_is_read_from_sysfs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::at(dir.path());
        assert!(!facts(&host, 0).from_rtc);
        std::fs::create_dir_all(host.path("/sys/class/rtc/rtc0")).expect("dir");
        std::fs::write(host.path("/sys/class/rtc/rtc0/hctosys"), b"1\n").expect("hctosys");
        assert_eq!(
            verdict(facts(&host, 0)),
            Verdict::Trusted("set from the hardware clock")
        );
    }
}
