//! The k8r recovery installer: PID 1 of the recovery initramfs.
//!
//! It brings the system up, finds the card by its recovery partition, validates the stored
//! build's manifest, counts down, and installs the working partitions from the image store in
//! an order where a power cut at any point still boots recovery (`install`, failure matrix
//! in `docs/installer.md`); or it shows the recovery menu (`menu`). [`run`] never returns.
//! What a card is (partitions, store, records, the data path) comes from `k8r-card`; this
//! crate is the PID 1 around it. System calls go through `rustix` (`sys`); the one call rustix
//! has no wrapper for (the one-shot partition reboot) is `sys`'s only `unsafe` block.

mod console;
mod early;
mod error;
mod failpoint;
mod fat32;
mod flow;
#[cfg(test)]
mod fuzz;
mod install;
mod menu;
mod mounts;
mod sys;
mod unpack;
mod watchdog;

pub use error::Error;

/// Runs PID 1. Never returns.
pub fn run() -> ! {
    flow::run()
}
