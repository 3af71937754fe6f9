//! The k8r recovery installer: PID 1 of the recovery initramfs.
//!
//! It brings the system up, finds the card by its recovery partition, validates the stored
//! image's manifest, counts down, and installs the working partitions from the image store in
//! an order where a power cut at any point still boots recovery ([`install`], failure matrix
//! in `docs/installer.md`); or it shows the recovery menu ([`menu`]). [`flow::run`] never
//! returns. All system calls live in [`sys`], the workspace's one `unsafe` module.

pub mod card;
pub mod console;
pub mod digest;
pub mod early;
pub mod failpoint;
pub mod fat32;
pub mod flow;
pub mod install;
pub mod installlog;
pub mod menu;
pub mod replace;
pub mod state;
pub mod stream;
pub mod sys;
pub mod unpack;
pub mod watchdog;

/// Runs PID 1. Never returns.
pub fn run() -> ! {
    flow::run()
}
