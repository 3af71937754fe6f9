//! The one module with `unsafe`: thin typed wrappers over the system calls the installer
//! needs. Each returns `std::io::Error` from errno.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in argument"))
}

fn path_cstring(p: &Path) -> io::Result<CString> {
    cstring(&p.to_string_lossy())
}

/// `MS_RDONLY` for [`mount`].
pub const MS_RDONLY: u64 = 1;

/// `mount(2)`.
pub fn mount(source: &str, target: &Path, fstype: &str, flags: u64, data: &str) -> io::Result<()> {
    let (source, target, fstype, data) = (
        cstring(source)?,
        path_cstring(target)?,
        cstring(fstype)?,
        cstring(data)?,
    );
    // SAFETY: all pointers come from live CStrings that outlive the call; mount(2) does not
    // retain them.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags as libc::c_ulong,
            data.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses the module itself (Ubuntu ships
/// `.ko.zst`; needs CONFIG_MODULE_DECOMPRESS).
pub const MODULE_INIT_COMPRESSED_FILE: libc::c_int = 4;

/// `finit_module(2)` with no parameters and `flags`. `EEXIST` (already loaded) counts as
/// success.
pub fn load_module(file: &File, flags: libc::c_int) -> io::Result<()> {
    let params = cstring("")?;
    // SAFETY: the fd is open for the duration of the call and `params` is a valid C string;
    // the kernel copies both.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            params.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EEXIST) {
        Ok(())
    } else {
        Err(err)
    }
}

/// `sync(2)`.
pub fn sync() {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() }
}

/// `reboot(2)` with `LINUX_REBOOT_CMD_POWER_OFF`. Only returns on failure.
pub fn power_off() -> io::Result<()> {
    // SAFETY: a plain system call with a constant command; no memory is passed.
    let rc = unsafe { libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Opens `path` read-only with `O_DIRECT`: reads bypass the page cache and come from the
/// device. Offsets, lengths and buffer addresses must then be aligned to the device's logical
/// block size. File systems without direct I/O (tmpfs) refuse it with `EINVAL`.
pub fn open_direct(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// `BLKFLSBUF` from `<linux/fs.h>`: `_IO(0x12, 97)`.
const BLKFLSBUF: libc::Ioctl = 0x1261;

/// Drops the cached pages of `file` so the next reads come from the device: the block
/// device's buffer cache with `ioctl(BLKFLSBUF)` (needs `CAP_SYS_ADMIN`; `ENOTTY` on regular
/// files is ignored), then `posix_fadvise(POSIX_FADV_DONTNEED)` over the whole file. Only clean
/// pages are dropped: sync the written data first.
pub fn drop_caches(file: &File) -> io::Result<()> {
    // SAFETY: BLKFLSBUF takes no argument memory (the third argument is an unused 0); the fd
    // is open for the duration of the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKFLSBUF, 0) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOTTY) {
            return Err(err);
        }
    }
    // SAFETY: a plain system call on an open fd; no memory is passed.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        // posix_fadvise returns the error number instead of setting errno.
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// `umount2(2)` with no flags.
pub fn umount(target: &Path) -> io::Result<()> {
    let target = path_cstring(target)?;
    // SAFETY: `target` is a live C string for the duration of the call.
    let rc = unsafe { libc::umount2(target.as_ptr(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `reboot(2)` with `LINUX_REBOOT_CMD_RESTART`. Only returns on failure.
pub fn reboot() -> io::Result<()> {
    // SAFETY: a plain system call with a constant command; no memory is passed.
    let rc = unsafe { libc::reboot(libc::LINUX_REBOOT_CMD_RESTART) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Switches the console (stdin) between raw (no line buffering, no echo) and cooked mode.
pub fn stdin_raw(raw: bool) -> io::Result<()> {
    let mut t = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: tcgetattr fills the termios struct it is given; fd 0 is the console.
    let rc = unsafe { libc::tcgetattr(0, t.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: tcgetattr succeeded, so the struct is initialised.
    let mut t = unsafe { t.assume_init() };
    if raw {
        t.c_lflag &= !(libc::ICANON | libc::ECHO);
        t.c_cc[libc::VMIN] = 1;
        t.c_cc[libc::VTIME] = 0;
    } else {
        t.c_lflag |= libc::ICANON | libc::ECHO;
    }
    // SAFETY: `t` is a valid termios value for fd 0.
    let rc = unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits up to `timeout_ms` for input on stdin; true when there is some.
pub fn poll_stdin(timeout_ms: i32) -> io::Result<bool> {
    let mut fds = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1; poll only writes `revents`.
    let rc = unsafe { libc::poll(&mut fds, 1, timeout_ms) };
    match rc {
        0 => Ok(false),
        n if n > 0 => Ok(fds.revents & libc::POLLIN != 0),
        _ => Err(io::Error::last_os_error()),
    }
}
