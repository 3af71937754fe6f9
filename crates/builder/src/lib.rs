//! k8r-builder: turns a vendor Raspberry Pi OS image into the k8r golden SD card image and its
//! upgrade artefacts, as an ordinary user (no root, no mounts, no containers).
//!
//! This library holds the rootless image-assembly primitives (MBR cards, FAT via mtools, ext4
//! via e2fsprogs) and the child-process helper they share. The `assemble` pipeline is built on
//! top of them.

pub mod artefacts;
pub mod assemble;
mod atomic;
pub mod base;
pub mod bootpart;
pub mod cli;
pub use k8r_config as config;
pub mod fetch;
pub mod flash;
pub mod image;
pub mod inject;
pub mod inspect;
pub mod logging;
pub mod process;
pub mod progress;
pub mod recovery;
pub mod rootfs;
pub mod signing;
pub mod timing;
