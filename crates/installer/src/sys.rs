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

/// `finit_module(2)` with no parameters. `EEXIST` (already loaded) counts as success.
pub fn load_module(file: &File) -> io::Result<()> {
    let params = cstring("")?;
    // SAFETY: the fd is open for the duration of the call and `params` is a valid C string;
    // the kernel copies both.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
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
