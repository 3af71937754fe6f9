//! Everything about a k8r SD card, in one place: which partition holds what
//! ([`layout`]), what lives on the recovery partition ([`recovery`]), the image store and
//! its pointer ([`store`]), the data partition's layout ([`data`]), the install attempt
//! record and log ([`install_state`], [`install_log`]), the careful replace on a mounted FAT
//! ([`replace`]), finding the card through sysfs ([`disk`]), and the stored image's data path:
//! decode, range writing, read-back verification ([`stream`]), and the recovery partition's
//! clean/dirty state and its repair after a power cut ([`fat_state`]).
//!
//! The builder writes cards with these facts, the recovery installer (a static aarch64 PID 1)
//! installs from them, and the node agent updates and reinstalls through them; none of them
//! spells a label, a path on the card or a bound itself. No HTTP or TLS here: the installer
//! links this crate.
//!
//! Pure modules (no I/O): [`layout`], [`data`], [`install_state`], [`install_log`],
//! [`store::Pointer`], [`trial`] (the trial record and the boot decisions built on it). The rest does I/O on paths it is given (a mount point, a sysfs root),
//! so tests run on temp dirs.

pub mod data;
pub mod digest;
pub mod disk;
pub mod fat_state;
#[cfg(test)]
mod fuzz;
pub mod image_root;
pub mod install_log;
pub mod install_state;
pub mod io;
pub mod layout;
pub mod recovery;
pub mod replace;
pub mod store;
pub mod stream;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod trial;
pub mod trust;

pub use layout::{Fs, Part};
