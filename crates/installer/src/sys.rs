//! The system calls PID 1 needs beyond `std`, as small typed wrappers over `rustix`'s safe
//! bindings (no `unsafe` here: every call has a safe wrapper). Each returns
//! `std::io::Error` from errno.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::mount::{MountFlags, UnmountFlags};
use rustix::system::RebootCommand;
use rustix::termios::{LocalModes, OptionalActions, SpecialCodeIndex};

pub(crate) use rustix::mount::MountFlags as Flags;

/// `mount(2)` of `source` (a device or a pseudo filesystem name) on `target`.
pub(crate) fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: MountFlags,
    data: &str,
) -> io::Result<()> {
    let data = std::ffi::CString::new(data)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in mount data"))?;
    rustix::mount::mount(source, target, fstype, flags, data.as_c_str())?;
    Ok(())
}

/// `umount2(2)` with no flags.
pub(crate) fn umount(target: &Path) -> io::Result<()> {
    rustix::mount::unmount(target, UnmountFlags::empty())?;
    Ok(())
}

/// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses the module itself (Ubuntu ships
/// `.ko.zst`; needs CONFIG_MODULE_DECOMPRESS).
pub(crate) const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

/// `finit_module(2)` with no parameters and `flags`. `EEXIST` (already loaded) counts as
/// success.
pub(crate) fn load_module(file: &File, flags: i32) -> io::Result<()> {
    match rustix::system::finit_module(file, c"", flags) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `sync(2)`.
pub(crate) fn sync() {
    rustix::fs::sync();
}

/// `reboot(2)` with `LINUX_REBOOT_CMD_RESTART`. Only returns on failure.
pub(crate) fn reboot() -> io::Result<()> {
    rustix::system::reboot(RebootCommand::Restart)?;
    Ok(())
}

/// `reboot(2)` with `LINUX_REBOOT_CMD_POWER_OFF`. Only returns on failure.
pub(crate) fn power_off() -> io::Result<()> {
    rustix::system::reboot(RebootCommand::PowerOff)?;
    Ok(())
}

/// Switches the console (stdin) between raw (no line buffering, no echo) and cooked mode.
pub(crate) fn stdin_raw(raw: bool) -> io::Result<()> {
    let stdin = rustix::stdio::stdin();
    let mut t = rustix::termios::tcgetattr(stdin)?;
    if raw {
        t.local_modes.remove(LocalModes::ICANON | LocalModes::ECHO);
        t.special_codes[SpecialCodeIndex::VMIN] = 1;
        t.special_codes[SpecialCodeIndex::VTIME] = 0;
    } else {
        t.local_modes.insert(LocalModes::ICANON | LocalModes::ECHO);
    }
    rustix::termios::tcsetattr(stdin, OptionalActions::Now, &t)?;
    Ok(())
}

/// Waits up to `timeout` for input on stdin; true when there is some.
pub(crate) fn poll_stdin(timeout: Duration) -> io::Result<bool> {
    let stdin = rustix::stdio::stdin();
    let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
    let timeout = rustix::time::Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    let n = rustix::event::poll(&mut fds, Some(&timeout))?;
    Ok(n > 0 && fds[0].revents().contains(PollFlags::IN))
}
