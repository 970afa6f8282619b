//! The system calls of a channel: byte locks that say which endpoints are
//! alive, futex waits and wakes, and a fresh open file description.
//!
//! # Safety
//!
//! `fcntl` with `F_OFD_SETLK`/`F_OFD_GETLK` takes a pointer to a `flock`
//! struct owned by the caller for the duration of the call; rustix has no
//! byte-range OFD locks, so this one call goes through libc.
#![allow(
    unsafe_code,
    reason = "byte-range OFD locks are only reachable through libc"
)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::thread::futex;

/// Byte 0: every open handle holds a read lock on it.
pub(crate) const HANDLE_BYTE: i64 = 0;
/// First of the senders' lock bytes.
pub(crate) const SENDER_BYTES: i64 = 1;
/// First of the receivers' lock bytes.
pub(crate) const RECEIVER_BYTES: i64 = SENDER_BYTES + ENDPOINT_BYTES;
/// The bytes any lock of a channel covers.
pub(crate) const LOCK_SPAN: i64 = RECEIVER_BYTES + ENDPOINT_BYTES;
/// Lock bytes per side, one per possible endpoint.
pub(crate) const ENDPOINT_BYTES: i64 = 64;
const _: () = assert!(super::protocol::MAX_ENDPOINTS == 64);

#[allow(
    clippy::cast_possible_truncation,
    reason = "F_RDLCK, F_WRLCK and SEEK_SET are small constants that fit the short fields"
)]
fn flock(kind: libc::c_int, start: i64, len: i64) -> libc::flock {
    // SAFETY: flock is plain data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    fl
}

/// Takes an OFD lock (`F_OFD_SETLK`, no waiting) on `len` bytes at `start`;
/// `Ok(false)` when another open file description holds a conflicting one.
pub(crate) fn try_lock(fd: BorrowedFd<'_>, write: bool, start: i64, len: i64) -> io::Result<bool> {
    let kind = if write { libc::F_WRLCK } else { libc::F_RDLCK };
    let mut fl = flock(kind, start, len);
    loop {
        // SAFETY: `fl` is a valid flock that outlives the call; `fd` is open.
        let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &raw mut fl) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN | libc::EACCES) => return Ok(false),
            _ => return Err(err),
        }
    }
}

/// Whether an open file description other than `fd`'s holds any lock on
/// `len` bytes at `start` (`F_OFD_GETLK`).
pub(crate) fn held_by_others(fd: BorrowedFd<'_>, start: i64, len: i64) -> io::Result<bool> {
    let mut fl = flock(libc::F_WRLCK, start, len);
    // SAFETY: `fl` is a valid flock that outlives the call; `fd` is open.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &raw mut fl) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i32::from(fl.l_type) != libc::F_UNLCK)
}

/// A new open file description of the object behind `fd`, so that the
/// locks taken through it are its own (OFD locks belong to the open file
/// description, not to the process).
pub(crate) fn reopen(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::open(path.as_str(), OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(io::Error::from)
}

/// Waits while `word` is `expected`, at most `timeout`; wakes, time-outs
/// and interruptions all return (the caller checks again).
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = futex::Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // Shared (not FUTEX_PRIVATE): the word lives in memory other
    // processes map. EAGAIN (the word changed), ETIMEDOUT and EINTR all
    // mean "look again".
    let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&ts));
}

/// Wakes every waiter on `word`.
pub(crate) fn wake_all(word: &AtomicU32) {
    let _ = futex::wake(word, futex::Flags::empty(), u32::MAX);
}

/// How long to wait now: the rest of `deadline`, at most `slice`.
pub(crate) fn slice_until(deadline: Option<Instant>, slice: Duration) -> Duration {
    deadline.map_or(slice, |d| {
        d.saturating_duration_since(Instant::now()).min(slice)
    })
}

/// Takes the handle's shared lock on byte 0 of `fd`, waiting up to `wait`
/// while another open file description holds an exclusive lock there.
pub(crate) fn lock_handle(fd: &impl AsFd, wait: Duration) -> io::Result<()> {
    let start = Instant::now();
    while !try_lock(fd.as_fd(), false, HANDLE_BYTE, 1)? {
        if start.elapsed() >= wait {
            return Err(io::Error::other("an exclusive lock is held on byte 0"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_locks_conflict_between_open_file_descriptions_only() {
        let fd = rustix::fs::memfd_create("lock-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let other = reopen(fd.as_fd()).unwrap();
        assert!(!held_by_others(fd.as_fd(), 0, LOCK_SPAN).unwrap());
        assert!(try_lock(fd.as_fd(), true, SENDER_BYTES, 1).unwrap());
        // The same description sees no conflict with itself.
        assert!(!held_by_others(fd.as_fd(), SENDER_BYTES, 1).unwrap());
        assert!(held_by_others(other.as_fd(), SENDER_BYTES, 1).unwrap());
        assert!(!try_lock(other.as_fd(), true, SENDER_BYTES, 1).unwrap());
        drop(fd);
        // Closing the last fd of a description drops its locks.
        assert!(!held_by_others(other.as_fd(), 0, LOCK_SPAN).unwrap());
    }
}
