//! Deterministic newc cpio archives and kernel-module closures.
//!
//! - [`Archive`]: build an initramfs in memory, then write it as newc (`070701`) cpio,
//!   plain or gzip, byte-for-byte the same for the same entries and mtime.
//! - [`concat()`]: join several archives; the kernel unpacks concatenated archives in order.
//! - [`ModuleDeps`]: read `modules.dep` and list the `.ko` files to carry and their load order.

mod archive;
mod modules;
mod newc;

pub use archive::{validate_path, Archive, ArchiveError, EntryKind};
pub use modules::{name_of, normalize, ModuleDeps, ModulesError};
pub use newc::concat;
