//! Byte-range record locks through `fcntl(2)`: classic POSIX locks and
//! open file description (OFD) locks.
//!
//! # Safety
//!
//! rustix's `fcntl_lock` covers only whole-file, process-owned locks, so
//! byte ranges and OFD locks go through `libc::fcntl` with a `struct flock`
//! that lives on this function's stack for the duration of the call. The
//! descriptor is a `BorrowedFd`, so it is open for the whole call.
#![allow(
    unsafe_code,
    reason = "fcntl(F_SETLK/F_OFD_SETLK/F_GETLK) with a struct flock has no rustix wrapper"
)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// What to ask `fcntl` for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmd {
    /// Place or remove a lock; fail at once on a conflict.
    Set,
    /// Place a lock, waiting for conflicting locks to go.
    SetWait,
    /// Ask which lock would conflict with this one.
    Get,
}

/// A record lock request or answer in plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    /// `libc::F_RDLCK`, `F_WRLCK` or `F_UNLCK`.
    pub(crate) kind: libc::c_short,
    /// First byte.
    pub(crate) start: i64,
    /// Length in bytes; 0 means "to the end of the file, however far it grows".
    pub(crate) len: i64,
    /// Owner's pid as `F_GETLK` reports it (-1 for OFD locks).
    pub(crate) pid: i32,
}

/// Calls `fcntl(fd, cmd, &flock)` once (no retry on `EINTR`; the caller
/// decides) and returns the `struct flock` as the kernel left it.
///
/// `ofd` selects the open file description commands (`F_OFD_SETLK`,
/// `F_OFD_SETLKW`, `F_OFD_GETLK`), otherwise the classic process-owned ones.
///
/// # References
///
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html)
pub(crate) fn fcntl_record(
    fd: BorrowedFd<'_>,
    ofd: bool,
    cmd: Cmd,
    record: Record,
) -> io::Result<Record> {
    let op = match (ofd, cmd) {
        (false, Cmd::Set) => libc::F_SETLK,
        (false, Cmd::SetWait) => libc::F_SETLKW,
        (false, Cmd::Get) => libc::F_GETLK,
        (true, Cmd::Set) => libc::F_OFD_SETLK,
        (true, Cmd::SetWait) => libc::F_OFD_SETLKW,
        (true, Cmd::Get) => libc::F_OFD_GETLK,
    };
    // SAFETY: `struct flock` is plain old data; all-zero is a valid value
    // (and l_pid must be 0 for the OFD commands).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = record.kind;
    fl.l_whence = libc::c_short::try_from(libc::SEEK_SET).unwrap_or(0);
    fl.l_start = record.start;
    fl.l_len = record.len;
    fl.l_pid = 0;
    // SAFETY: `fd` is a live descriptor for the whole call (BorrowedFd), `op`
    // is one of the six record-lock commands, which take a pointer to a
    // `struct flock` that `fl` provides and outlives the call.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), op, &raw mut fl) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(Record {
        kind: fl.l_type,
        start: fl.l_start,
        len: fl.l_len,
        pid: fl.l_pid,
    })
}

/// Duplicates descriptor number `fd`, which this process inherited (a
/// shell's `9>/var/lock/x`), into a new close-on-exec descriptor that the
/// caller owns: `fcntl(fd, F_DUPFD_CLOEXEC, 0)`.
///
/// Only the new descriptor is owned; `fd` itself is never closed or
/// changed. A number that is not an open descriptor fails with `EBADF`.
///
/// # References
///
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), `F_DUPFD_CLOEXEC`
pub(crate) fn dup_raw(fd: std::os::fd::RawFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: F_DUPFD_CLOEXEC takes an integer argument and touches no
    // memory of this process; on a number that is not an open descriptor
    // the kernel answers EBADF. The call neither closes nor alters `fd`,
    // so whatever in this process may own it is unaffected.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just returned by F_DUPFD_CLOEXEC, so it is an open
    // descriptor that nothing else in this process knows of: ours to own.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(new) })
}
