//! The k8r QEMU harness: boots SD card images the way the Raspberry Pi firmware would.
//!
//! [`Machine::start`] reads the card's MBR and FAT partitions ([`card`]), lets the firmware
//! model of `boot-config` choose kernel, initramfs, DTB and command line, and starts
//! `qemu-system-aarch64` under TCG with one of two [`Profile`]s. The console is expect-style
//! ([`Machine::expect`], [`Machine::send`]); a guest reboot ends QEMU (`-no-reboot`) and the
//! harness boots the card again, honouring the reboot request line of [`protocol`]. Success is
//! judged by console markers and card contents, never by QEMU's exit status.

pub mod assets;
pub mod card;
pub mod console;
pub mod machine;
pub mod protocol;
pub mod rescue;

pub use machine::{BootRecord, HarnessError, Machine, MachineConfig, Profile};
