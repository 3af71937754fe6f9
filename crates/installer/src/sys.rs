//! The system calls PID 1 needs beyond `std`, as small typed wrappers over `rustix`'s safe
//! bindings. Each returns `std::io::Error` from errno. One call has no safe wrapper:
//! `reboot(2)` with `LINUX_REBOOT_CMD_RESTART2` and its argument string (rustix's
//! `RebootCommand` has no argument), the firmware's one-shot partition request; it is the
//! installer's only `unsafe` block.

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

/// `mount(2)` with `MS_REMOUNT`: the filesystem on `target` gets `flags` (read-only or not).
pub(crate) fn remount(target: &Path, flags: MountFlags) -> io::Result<()> {
    rustix::mount::mount_remount(target, flags, c"")?;
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

/// `reboot(2)` with `LINUX_REBOOT_CMD_RESTART2` and the argument `"<partition>"`: on a Pi the
/// watchdog driver (bcm2835_wdt) hands the number to the firmware, which boots that partition
/// once; the next reset follows `autoboot.txt` again (pi-boot.md §5). Only returns on failure.
#[allow(unsafe_code)]
pub(crate) fn reboot_to_partition(partition: u8) -> io::Result<()> {
    let arg = std::ffi::CString::new(partition.to_string())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the reboot argument"))?;
    // SAFETY: `reboot(2)` with RESTART2 reads one NUL-terminated string from the pointer (the
    // kernel copies at most 256 bytes with strncpy_from_user); `arg` is a valid CString that
    // outlives the call, and the magic numbers are the kernel's constants. No memory of this
    // process is written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_reboot,
            libc::LINUX_REBOOT_MAGIC1,
            libc::LINUX_REBOOT_MAGIC2,
            libc::LINUX_REBOOT_CMD_RESTART2,
            arg.as_ptr(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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
