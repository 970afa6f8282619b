//! Advisory file locks of all three Linux kinds behind one API.
//!
//! | kind | owner | ranges | notes |
//! |---|---|---|---|
//! | [`Kind::Ofd`] (default) | the open file description | yes | `F_OFD_SETLK`, Linux 3.15+; survives closing other descriptors of the file |
//! | [`Kind::Posix`] | the process | yes | `F_SETLK`; **closing any descriptor of the file drops every lock the process holds on it**, not inherited across `fork`, threads never conflict |
//! | [`Kind::Flock`] | the open file description | no | `flock(2)`; does not interact with the other two |
//!
//! OFD and POSIX locks on the same file do conflict with each other; `flock`
//! locks are a separate table.
//!
//! A [`Locker`] names the file, the kind and the byte range; [`Locker::lock`]
//! takes it shared or exclusive, waiting ([`Wait::Block`]), not waiting
//! ([`Wait::NonBlock`]) or for at most a while ([`Wait::Timeout`]), and
//! returns a [`LockGuard`] that unlocks on drop and can be upgraded or
//! downgraded. [`Locker::holder`] asks who holds a conflicting lock.
//!
//! ```
//! use memio_io::lock::{Kind, Locker, Mode, Wait};
//! # let dir = std::env::temp_dir().join(format!("memio-doc-lock-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let file = std::fs::File::options().read(true).write(true).create(true)
//!     .truncate(false).open(dir.join("db"))?;
//! let records = Locker::new(&file).range(0, 4096);
//! let mut guard = records.lock(Mode::Shared, Wait::Block)?;
//! guard.upgrade(Wait::NonBlock)?;               // nobody else holds it
//! assert!(records.holder(Mode::Exclusive)?.is_none()); // our own lock never conflicts
//! drop(guard);                                  // unlocked here
//! let whole = Locker::new(&file).kind(Kind::Flock);
//! let _g = whole.lock(Mode::Exclusive, Wait::Timeout(std::time::Duration::from_secs(1)))?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Waiting with a timeout polls: the kernel has no timed lock call, and
//! interrupting a blocked `fcntl` needs a process-wide signal handler, which a
//! library must not install. The poll backs off from 1 ms to 20 ms, so a
//! timed waiter is not queued fairly behind blocked waiters.

mod fcntl;
pub mod table;

use std::fmt;
use std::io;

use crate::Error;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::str::FromStr;
use std::time::{Duration, Instant};

use fcntl::{Cmd, Record};
use rustix::fs::FlockOperation;

/// Which of Linux's three advisory lock families to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Kind {
    /// Open file description locks (`F_OFD_SETLK`): byte ranges, owned by
    /// the open file, immune to the close-any-descriptor trap.
    #[default]
    #[doc(alias = "F_OFD_SETLK")]
    Ofd,
    /// Classic POSIX record locks (`F_SETLK`): byte ranges, owned by the
    /// process; closing any descriptor of the file drops them.
    #[doc(alias = "F_SETLK")]
    Posix,
    /// BSD `flock(2)` locks: whole file only, owned by the open file.
    #[doc(alias = "flock")]
    Flock,
}

impl Kind {
    /// Every kind, default first.
    pub const ALL: [Kind; 3] = [Kind::Ofd, Kind::Posix, Kind::Flock];

    /// The name used on the command line: `ofd`, `posix`, `flock`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ofd => "ofd",
            Kind::Posix => "posix",
            Kind::Flock => "flock",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown lock kind '{s}' (kinds: ofd, posix, flock)"))
    }
}

/// Shared (read) or exclusive (write) access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Many holders at once; excludes exclusive holders (`F_RDLCK`, `LOCK_SH`).
    Shared,
    /// One holder; excludes everyone else (`F_WRLCK`, `LOCK_EX`).
    Exclusive,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Shared => "shared",
            Mode::Exclusive => "exclusive",
        })
    }
}

/// How long to wait for a conflicting lock to go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Wait as long as it takes (interrupted waits are retried).
    #[default]
    Block,
    /// Fail at once with [`Error::WouldBlock`].
    NonBlock,
    /// Wait at most this long, then fail with [`Error::TimedOut`].
    Timeout(Duration),
}

/// A conflicting lock as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// The conflicting lock's kind (a POSIX query sees OFD locks too).
    pub kind: Kind,
    /// Its mode.
    pub mode: Mode,
    /// Its first byte.
    pub start: u64,
    /// Its length; 0 means to the end of the file.
    pub len: u64,
    /// The holder's pid: directly from `F_GETLK` for POSIX locks, from
    /// `/proc/*/fdinfo` for OFD and `flock` locks; `None` when it is not
    /// visible (another pid namespace, or no permission to look).
    pub pid: Option<u32>,
}

/// A file, a lock kind and a byte range: what to lock.
#[derive(Debug, Clone, Copy)]
pub struct Locker<'f> {
    fd: BorrowedFd<'f>,
    kind: Kind,
    start: u64,
    len: u64,
}

impl<'f> Locker<'f> {
    /// An OFD lock over the whole of `file` (including bytes appended later).
    pub fn new(file: &'f impl AsFd) -> Self {
        Self {
            fd: file.as_fd(),
            kind: Kind::default(),
            start: 0,
            len: 0,
        }
    }

    /// Uses this kind of lock.
    #[must_use]
    pub fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// Locks `len` bytes from `start`; a `len` of 0 means up to the end of
    /// the file however far it grows. Only OFD and POSIX locks take ranges.
    #[must_use]
    pub fn range(mut self, start: u64, len: u64) -> Self {
        self.start = start;
        self.len = len;
        self
    }

    /// The kind of lock this locker takes.
    #[must_use]
    pub fn lock_kind(&self) -> Kind {
        self.kind
    }

    /// The range as `(start, len)`; `len` 0 = to the end of the file.
    #[must_use]
    pub fn byte_range(&self) -> (u64, u64) {
        (self.start, self.len)
    }

    /// Takes the lock in `mode`, waiting as `wait` says, and returns a guard
    /// that releases it on drop.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] or [`Error::TimedOut`] on a conflict,
    /// [`Error::Deadlock`] when the kernel detects one (POSIX),
    /// [`Error::RangeNeedsRecordLock`] for a `flock` range, and
    /// [`Error::Io`] otherwise (for instance `EBADF` when an exclusive record
    /// lock is asked of a file opened read-only).
    ///
    /// # References
    ///
    /// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html)
    /// - [flock(2)](https://man7.org/linux/man-pages/man2/flock.2.html)
    #[doc(alias = "fcntl")]
    #[doc(alias = "flock")]
    #[doc(alias = "F_SETLKW")]
    pub fn lock(&self, mode: Mode, wait: Wait) -> Result<LockGuard<'f>, Error> {
        self.check()?;
        self.apply(Op::Lock(mode), wait)?;
        Ok(LockGuard {
            locker: *self,
            mode,
            held: true,
        })
    }

    /// Takes the lock in `mode` without waiting: `Ok(None)` on a conflict.
    ///
    /// # Errors
    ///
    /// As [`Locker::lock`], except that conflicts are `Ok(None)`.
    pub fn try_lock(&self, mode: Mode) -> Result<Option<LockGuard<'f>>, Error> {
        match self.lock(mode, Wait::NonBlock) {
            Ok(g) => Ok(Some(g)),
            Err(Error::WouldBlock) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes this process's (POSIX) or this open file's (OFD, `flock`)
    /// lock on the range, whoever took it: flock(1)'s `-u`. Removing a lock
    /// that is not held is not an error.
    ///
    /// # Errors
    ///
    /// Fails on an OS error, or for a range the kind cannot lock.
    #[doc(alias = "LOCK_UN")]
    #[doc(alias = "F_UNLCK")]
    pub fn unlock(&self) -> Result<(), Error> {
        self.check()?;
        self.apply(Op::Unlock, Wait::NonBlock)
    }

    /// Which lock, if any, would stop this locker from taking `mode` now.
    ///
    /// OFD and POSIX kinds ask the kernel (`F_OFD_GETLK`, `F_GETLK`); locks
    /// held through this locker's own descriptor (OFD) or process (POSIX)
    /// never conflict. `flock` has no query call, so its holders come from
    /// `/proc/locks`.
    ///
    /// # Errors
    ///
    /// Fails on an OS error, or with [`Error::RangeNeedsRecordLock`] /
    /// [`Error::RangeTooLarge`] for a range the kind cannot lock.
    ///
    /// # References
    ///
    /// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), `F_GETLK`
    /// - [proc_locks(5)](https://man7.org/linux/man-pages/man5/proc_locks.5.html)
    #[doc(alias = "F_GETLK")]
    #[doc(alias = "F_OFD_GETLK")]
    pub fn holder(&self, mode: Mode) -> Result<Option<Holder>, Error> {
        self.check()?;
        if self.kind == Kind::Flock {
            return Ok(self.flock_holder(mode)?);
        }
        let (start, len) = self.offsets()?;
        let asked = Record {
            kind: record_type(Some(mode)),
            start,
            len,
            pid: 0,
        };
        let got =
            retry_eintr(|| fcntl::fcntl_record(self.fd, self.kind == Kind::Ofd, Cmd::Get, asked))?;
        if got.kind == record_type(None) {
            return Ok(None);
        }
        let mode = if got.kind == record_type(Some(Mode::Exclusive)) {
            Mode::Exclusive
        } else {
            Mode::Shared
        };
        let start = u64::try_from(got.start).unwrap_or(0);
        let len = u64::try_from(got.len).unwrap_or(0);
        let (kind, pid) = if got.pid > 0 {
            (Kind::Posix, u32::try_from(got.pid).ok())
        } else {
            (Kind::Ofd, self.ofd_owner(mode, start, len))
        };
        Ok(Some(Holder {
            kind,
            mode,
            start,
            len,
            pid,
        }))
    }

    fn check(&self) -> Result<(), Error> {
        if self.kind == Kind::Flock && (self.start != 0 || self.len != 0) {
            return Err(Error::RangeNeedsRecordLock);
        }
        self.offsets().map(|_| ())
    }

    fn offsets(&self) -> Result<(i64, i64), Error> {
        let too_large = || Error::RangeTooLarge {
            start: self.start,
            len: self.len,
        };
        let start = i64::try_from(self.start).map_err(|_| too_large())?;
        let len = i64::try_from(self.len).map_err(|_| too_large())?;
        start.checked_add(len).ok_or_else(too_large)?;
        Ok((start, len))
    }

    /// Finds the process whose descriptor holds an OFD lock like the one the
    /// kernel reported, skipping this locker's own descriptor.
    fn ofd_owner(&self, mode: Mode, start: u64, len: u64) -> Option<u32> {
        let me = std::process::id();
        let my_fd = u32::try_from(self.fd.as_raw_fd()).ok();
        let file = self.file_id().ok()?;
        let end = (len != 0).then(|| start + len - 1);
        let want = match mode {
            Mode::Shared => "READ",
            Mode::Exclusive => "WRITE",
        };
        table::descriptor_locks()
            .into_iter()
            .filter(|d| !(d.pid == me && Some(d.fd) == my_fd))
            .find(|d| {
                d.entry.kind == "OFDLCK"
                    && d.entry.file == file
                    && d.entry.mode == want
                    && d.entry.start == start
                    && d.entry.end == end
            })
            .map(|d| d.pid)
    }

    fn file_id(&self) -> io::Result<table::FileId> {
        let st = rustix::fs::fstat(self.fd)?;
        let dev = st.st_dev;
        Ok(table::FileId {
            major: rustix::fs::major(dev),
            minor: rustix::fs::minor(dev),
            inode: st.st_ino,
        })
    }

    fn flock_holder(&self, mode: Mode) -> io::Result<Option<Holder>> {
        let file = self.file_id()?;
        let me = std::process::id();
        let mut candidates: Vec<table::LockEntry> = table::system_locks()?
            .into_iter()
            .filter(|e| {
                e.kind == "FLOCK" && e.file == file && e.conflicts_with(mode == Mode::Exclusive)
            })
            .collect();
        // Our own description's lock never blocks us: drop it from the list.
        if let Ok(fd) = u32::try_from(self.fd.as_raw_fd()) {
            for own in table::fd_locks(me, fd).unwrap_or_default() {
                if let Some(at) = candidates
                    .iter()
                    .position(|c| c.pid == Some(me) && c.mode == own.mode && c.file == own.file)
                {
                    candidates.remove(at);
                }
            }
        }
        Ok(candidates.first().map(|e| Holder {
            kind: Kind::Flock,
            mode: if e.mode == "WRITE" {
                Mode::Exclusive
            } else {
                Mode::Shared
            },
            start: 0,
            len: 0,
            pid: e.pid,
        }))
    }

    /// Applies one lock operation, with the waiting policy.
    fn apply(&self, op: Op, wait: Wait) -> Result<(), Error> {
        match wait {
            Wait::Block => retry_eintr(|| self.once(op, true)).map_err(from_io),
            Wait::NonBlock => self.once(op, false).map_err(from_io),
            Wait::Timeout(limit) => {
                let deadline = Instant::now() + limit;
                let mut pause = Duration::from_millis(1);
                loop {
                    match self.once(op, false).map_err(from_io) {
                        Err(Error::WouldBlock) => {}
                        Err(Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                        other => return other,
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(Error::TimedOut(limit));
                    }
                    std::thread::sleep(pause.min(deadline - now));
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
            }
        }
    }

    /// One system call for `op`, waiting in the kernel or not.
    fn once(&self, op: Op, block: bool) -> io::Result<()> {
        if self.kind == Kind::Flock {
            let how = match (op, block) {
                (Op::Lock(Mode::Shared), true) => FlockOperation::LockShared,
                (Op::Lock(Mode::Shared), false) => FlockOperation::NonBlockingLockShared,
                (Op::Lock(Mode::Exclusive), true) => FlockOperation::LockExclusive,
                (Op::Lock(Mode::Exclusive), false) => FlockOperation::NonBlockingLockExclusive,
                (Op::Unlock, _) => FlockOperation::Unlock,
            };
            return Ok(rustix::fs::flock(self.fd, how)?);
        }
        let (start, len) = self
            .offsets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let mode = match op {
            Op::Lock(m) => Some(m),
            Op::Unlock => None,
        };
        let record = Record {
            kind: record_type(mode),
            start,
            len,
            pid: 0,
        };
        let cmd = if block { Cmd::SetWait } else { Cmd::Set };
        fcntl::fcntl_record(self.fd, self.kind == Kind::Ofd, cmd, record).map(|_| ())
    }
}

/// A new descriptor for descriptor number `fd`, which this process
/// inherited open: the fd-number form of flock(1),
/// `( flock -n 9 || exit 1; ... ) 9>/var/lock/x`.
///
/// The duplicate shares the open file description, so `flock` and OFD
/// locks taken through it are the description's and outlive this process
/// while the shell keeps descriptor `fd` open. `fd` itself is only read:
/// never closed, never changed. The duplicate is close-on-exec.
///
/// # Errors
///
/// `EBADF` when `fd` is negative or not an open descriptor.
///
/// ```
/// let err = memio_io::lock::dup_inherited(-1).unwrap_err();
/// assert_eq!(err.raw_os_error(), Some(9)); // EBADF
/// ```
///
/// # References
///
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), `F_DUPFD_CLOEXEC`
/// - [flock(1)](https://man7.org/linux/man-pages/man1/flock.1.html)
#[doc(alias = "F_DUPFD_CLOEXEC")]
pub fn dup_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    fcntl::dup_raw(fd)
}

/// Lets `fd` pass to programs this process executes (clears
/// `FD_CLOEXEC`) or not (sets it). Rust opens every file close-on-exec; a
/// lock whose descriptor a child inherits stays held while the child runs,
/// even if this process is killed.
///
/// # Errors
///
/// Fails on an OS error from `fcntl(F_GETFD/F_SETFD)`.
#[doc(alias = "FD_CLOEXEC")]
pub fn set_inherited(fd: impl AsFd, inherited: bool) -> io::Result<()> {
    let mut flags = rustix::io::fcntl_getfd(&fd)?;
    flags.set(rustix::io::FdFlags::CLOEXEC, !inherited);
    Ok(rustix::io::fcntl_setfd(&fd, flags)?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lock(Mode),
    Unlock,
}

fn record_type(mode: Option<Mode>) -> libc::c_short {
    let t = match mode {
        Some(Mode::Shared) => libc::F_RDLCK,
        Some(Mode::Exclusive) => libc::F_WRLCK,
        None => libc::F_UNLCK,
    };
    libc::c_short::try_from(t).unwrap_or(0)
}

/// Maps the errnos that mean something specific for locks.
fn from_io(err: io::Error) -> Error {
    match err.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Error::WouldBlock,
        Some(libc::EDEADLK) => Error::Deadlock,
        _ => Error::Io(err),
    }
}

fn retry_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// A held lock; dropping it unlocks.
///
/// For POSIX locks the guard cannot protect against the process closing
/// another descriptor of the same file, which silently drops the lock: use
/// OFD locks (the default) unless you need POSIX semantics.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard<'f> {
    locker: Locker<'f>,
    mode: Mode,
    held: bool,
}

impl LockGuard<'_> {
    /// The mode the lock is held in.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// What is locked: kind, file and range.
    #[must_use]
    pub fn locker(&self) -> &Locker<'_> {
        &self.locker
    }

    /// Turns a shared lock into an exclusive one, waiting as `wait` says.
    ///
    /// For OFD and POSIX locks the conversion is atomic and a failed upgrade
    /// keeps the shared lock. `flock(2)` conversions are not atomic: the
    /// kernel drops the shared lock before trying for the exclusive one, so
    /// after a failed try this takes the shared lock back at once, and
    /// returns [`Error::Lost`] if even that fails (the guard is then no
    /// longer held).
    ///
    /// # Errors
    ///
    /// As [`Locker::lock`], plus [`Error::Lost`] for `flock`.
    pub fn upgrade(&mut self, wait: Wait) -> Result<(), Error> {
        if !self.held {
            return Err(Error::Lost);
        }
        if self.mode == Mode::Exclusive {
            return Ok(());
        }
        let op = Op::Lock(Mode::Exclusive);
        let result = if self.locker.kind == Kind::Flock && wait != Wait::Block {
            self.flock_upgrade(wait)
        } else {
            self.locker.apply(op, wait)
        };
        match result {
            Ok(()) => {
                self.mode = Mode::Exclusive;
                Ok(())
            }
            Err(e) if e.is_conflict() || self.locker.kind != Kind::Flock => Err(e),
            Err(e) => {
                // A blocking flock conversion that failed other than by a
                // conflict may have dropped the shared lock already.
                self.held = false;
                Err(e)
            }
        }
    }

    /// Non-blocking and timed `flock` upgrades: try, and after each failed
    /// try take the shared lock back before waiting again.
    fn flock_upgrade(&mut self, wait: Wait) -> Result<(), Error> {
        let deadline = match wait {
            Wait::Timeout(d) => Some((Instant::now() + d, d)),
            _ => None,
        };
        let mut pause = Duration::from_millis(1);
        loop {
            match self.locker.once(Op::Lock(Mode::Exclusive), false) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.held = false;
                    return Err(from_io(e));
                }
            }
            if self.locker.once(Op::Lock(Mode::Shared), false).is_err() {
                self.held = false;
                return Err(Error::Lost);
            }
            let Some((deadline, limit)) = deadline else {
                return Err(Error::WouldBlock);
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::TimedOut(limit));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Turns an exclusive lock into a shared one. Never waits: nobody else
    /// can hold the range while this guard holds it exclusively.
    ///
    /// # Errors
    ///
    /// Fails on an OS error, or with [`Error::Lost`] if the guard no longer
    /// holds its lock.
    pub fn downgrade(&mut self) -> Result<(), Error> {
        if !self.held {
            return Err(Error::Lost);
        }
        if self.mode == Mode::Shared {
            return Ok(());
        }
        self.locker.apply(Op::Lock(Mode::Shared), Wait::NonBlock)?;
        self.mode = Mode::Shared;
        Ok(())
    }

    /// Ends the guard but leaves the lock in place: an OFD or `flock` lock
    /// then lasts until the last descriptor of the open file is closed, in
    /// this process or in children that inherited it (flock(1)'s
    /// behaviour); a POSIX lock until this process exits or closes any
    /// descriptor of the file.
    pub fn keep(mut self) {
        self.held = false;
    }

    /// Releases the lock now, reporting any error (dropping the guard
    /// releases it too, silently).
    ///
    /// # Errors
    ///
    /// Fails when the kernel refuses the unlock (a closed descriptor).
    pub fn unlock(mut self) -> Result<(), Error> {
        self.held = false;
        self.locker.apply(Op::Unlock, Wait::NonBlock)
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if self.held {
            let _ = self.locker.apply(Op::Unlock, Wait::NonBlock);
        }
    }
}

#[cfg(test)]
mod tests;
