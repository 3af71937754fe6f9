//! Parse, edit and render the Raspberry Pi boot files; model the firmware boot selection.
//!
//! Pure: no file or disk I/O. Callers pass bytes or strings in and write what comes back.
//!
//! - [`mbr`]: MBR partition table and `PARTUUID`s.
//! - [`config_txt`]: lossless config.txt editing; [`effective`] evaluates it for a board.
//! - [`filter`]: config.txt conditional filters.
//! - [`cmdline`] for cmdline.txt, [`autoboot`] for autoboot.txt.
//! - [`firmware`]: which partition and files the firmware boots.

pub mod autoboot;
pub mod board;
pub mod cmdline;
pub mod config_txt;
pub mod effective;
pub mod filter;
pub mod firmware;
pub mod mbr;
pub mod volume;

#[cfg(test)]
mod fuzz;

pub use autoboot::{Autoboot, AutobootError, AutobootWarning};
pub use board::Board;
pub use cmdline::Cmdline;
pub use config_txt::{
    ConfigError, ConfigTxt, ConfigWarning, ConfigWarningKind, InitramfsLine, InitramfsPlacement,
    LineKind,
};
pub use effective::{Effective, IncludeError, SkipReason, SkippedInclude};
pub use filter::FilterContext;
pub use firmware::{
    select_boot, BootChoice, BootRequest, CardView, Eeprom, FileLookup, MemFiles, NoBoot,
    PartitionKind, PartitionView,
};
pub use mbr::{is_fat_type, Mbr, MbrError, MbrPartition};
