//! System V semaphore sets (`semget`, `semop`, `semtimedop`, `semctl`).
//!
//! # Safety
//!
//! The libc calls read `sembuf` arrays and write `semid_ds` structs and
//! value arrays owned by the caller for the duration of the call; `semctl`
//! is variadic and gets the `union semun` member each command expects (an
//! `int` or a pointer, both passed in one register on Linux). A set id is a
//! plain number the kernel checks on every call.
#![allow(
    unsafe_code,
    reason = "System V semaphores are only reachable through libc"
)]

use std::io;
use std::time::Instant;

use crate::error::{self, Error, Result};
use crate::key::{Create, DEFAULT_MODE, Key};
use crate::ffi;

/// One operation of an atomic [`SemSet::op`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemOp {
    /// Which semaphore of the set.
    pub index: u16,
    /// Add this much (positive: release), take this much (negative: wait
    /// until the value is large enough), or 0: wait until the value is 0.
    pub delta: i16,
    /// `SEM_UNDO`: the kernel reverses this operation when the process
    /// exits, even by SIGKILL.
    pub undo: bool,
}

impl SemOp {
    /// Takes one unit of semaphore `index` (waits while it is 0).
    #[must_use]
    pub const fn wait(index: u16) -> Self {
        Self {
            index,
            delta: -1,
            undo: false,
        }
    }

    /// Gives one unit back to semaphore `index`.
    #[must_use]
    pub const fn post(index: u16) -> Self {
        Self {
            index,
            delta: 1,
            undo: false,
        }
    }

    /// Waits until semaphore `index` is 0.
    #[must_use]
    pub const fn wait_zero(index: u16) -> Self {
        Self {
            index,
            delta: 0,
            undo: false,
        }
    }

    /// The same operation, undone by the kernel when the process exits.
    #[must_use]
    pub const fn undo(mut self) -> Self {
        self.undo = true;
        self
    }
}

/// A set's status (`struct semid_ds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemStat {
    /// The key it was created with.
    pub key: Key,
    /// Permission bits.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Creator user id.
    pub cuid: u32,
    /// Creator group id.
    pub cgid: u32,
    /// How many semaphores the set holds.
    pub count: u64,
    /// Time of the last `semop`, seconds since the epoch (0: never).
    pub op_time: i64,
    /// Time of the last change.
    pub change_time: i64,
}

/// A System V semaphore set, by id. It lives until removed
/// ([`SemSet::remove`]); dropping the handle leaves it in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemSet {
    id: i32,
}

impl SemSet {
    /// Finds or creates the set for `key` with `count` semaphores (all 0
    /// when created; mode 0600). Opening an existing set accepts any
    /// `count` up to its size.
    ///
    /// # Errors
    /// An OS error naming the key.
    #[doc(alias = "semget")]
    ///
    /// # References
    /// [semget(2)](https://man7.org/linux/man-pages/man2/semget.2.html)
    pub fn get(key: Key, count: u16, create: Create) -> io::Result<Self> {
        Self::get_with_mode(key, count, create, DEFAULT_MODE)
    }

    /// [`SemSet::get`] with the permission bits of a new set.
    ///
    /// # Errors
    /// As [`SemSet::get`].
    pub fn get_with_mode(key: Key, count: u16, create: Create, mode: u32) -> io::Result<Self> {
        let create = create.for_key(key);
        if count == 0 && create != Create::Open {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot create {} with 0 semaphores",
                    key.describe("semaphore set")
                ),
            ));
        }
        let flags = create.ipc_flags(mode);
        // SAFETY: semget takes only integers.
        let id = ffi::retry(|| unsafe { libc::semget(key.raw(), i32::from(count), flags) })
            .map_err(|e| error::os(create.verb(), &key.describe("semaphore set"), e))?;
        Ok(Self { id })
    }

    /// A new private set of `count` semaphores, mode 0600.
    ///
    /// # Errors
    /// As [`SemSet::get`].
    pub fn private(count: u16) -> io::Result<Self> {
        Self::get(Key::PRIVATE, count, Create::Exclusive)
    }

    /// The set with this id (as `ipcs -s` prints it).
    #[must_use]
    pub const fn from_id(id: i32) -> Self {
        Self { id }
    }

    /// The set's id.
    #[must_use]
    pub const fn id(self) -> i32 {
        self.id
    }

    fn describe(self) -> String {
        format!("semaphore set id {}", self.id)
    }

    fn ops(ops: &[SemOp], nowait: bool) -> Vec<libc::sembuf> {
        ops.iter()
            .map(|o| {
                let mut flg = 0;
                if o.undo {
                    flg |= libc::SEM_UNDO;
                }
                if nowait {
                    flg |= libc::IPC_NOWAIT;
                }
                libc::sembuf {
                    sem_num: o.index,
                    sem_op: o.delta,
                    sem_flg: i16::try_from(flg).unwrap_or(0),
                }
            })
            .collect()
    }

    fn run(self, ops: &[SemOp], nowait: bool, timeout: Option<libc::timespec>) -> Result<bool> {
        let mut bufs = Self::ops(ops, nowait);
        let ts = timeout
            .as_ref()
            .map_or(std::ptr::null(), std::ptr::from_ref);
        // SAFETY: `bufs` holds `bufs.len()` sembufs; `ts` is null or points
        // to a timespec; both outlive the call.
        let r = ffi::retry(|| unsafe {
            libc::syscall(
                libc::SYS_semtimedop,
                self.id,
                bufs.as_mut_ptr(),
                bufs.len(),
                ts,
            )
        });
        match r {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN)) => Ok(false),
            Err(e) => Err(Error::Io(error::os("operate on", &self.describe(), e))),
        }
    }

    /// Applies every operation in `ops` atomically: all at once or, while
    /// any cannot proceed, none (the call waits).
    ///
    /// # Errors
    /// An OS error naming the set (removed: `EIDRM`; index out of range:
    /// `EFBIG`).
    #[doc(alias = "semop")]
    ///
    /// # References
    /// [semop(2)](https://man7.org/linux/man-pages/man2/semop.2.html)
    pub fn op(self, ops: &[SemOp]) -> Result<()> {
        if self.run(ops, false, None)? {
            Ok(())
        } else {
            Err(Error::Io(error::os(
                "operate on",
                &self.describe(),
                io::Error::from_raw_os_error(libc::EAGAIN),
            )))
        }
    }

    /// [`SemSet::op`] without waiting (`IPC_NOWAIT`); `false` when the
    /// operations would have to wait (none were applied).
    ///
    /// # Errors
    /// As [`SemSet::op`].
    pub fn try_op(self, ops: &[SemOp]) -> Result<bool> {
        self.run(ops, true, None)
    }

    /// [`SemSet::op`] waiting at most until `deadline`; `false` when it
    /// passed (none were applied).
    ///
    /// # Errors
    /// As [`SemSet::op`].
    #[doc(alias = "semtimedop")]
    pub fn op_deadline(self, ops: &[SemOp], deadline: Instant) -> Result<bool> {
        self.run(ops, false, Some(ffi::relative_timeout(deadline)))
    }

    /// The value of semaphore `index`.
    ///
    /// # Errors
    /// An OS error naming the set.
    #[doc(alias = "GETVAL")]
    ///
    /// # References
    /// [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html)
    pub fn get_value(self, index: u16) -> io::Result<u16> {
        // SAFETY: GETVAL takes no fourth argument.
        let v = ffi::retry(|| unsafe { libc::semctl(self.id, i32::from(index), libc::GETVAL) })
            .map_err(|e| {
                error::os(
                    "read",
                    &format_args!("semaphore {index} of {}", self.describe()),
                    e,
                )
            })?;
        Ok(u16::try_from(v).unwrap_or(u16::MAX))
    }

    /// Sets semaphore `index` to `value` (clears every process's undo
    /// record for it).
    ///
    /// # Errors
    /// An OS error naming the set.
    #[doc(alias = "SETVAL")]
    pub fn set_value(self, index: u16, value: u16) -> io::Result<()> {
        // SAFETY: SETVAL takes `union semun` whose `val` member is an int.
        ffi::retry(|| unsafe {
            libc::semctl(
                self.id,
                i32::from(index),
                libc::SETVAL,
                libc::c_int::from(value),
            )
        })
        .map_err(|e| {
            error::os(
                "set",
                &format_args!("semaphore {index} of {}", self.describe()),
                e,
            )
        })?;
        Ok(())
    }

    /// Every semaphore's value.
    ///
    /// # Errors
    /// An OS error naming the set.
    #[doc(alias = "GETALL")]
    pub fn values(self) -> io::Result<Vec<u16>> {
        let n = usize::try_from(self.stat()?.count).unwrap_or(0);
        let mut vals = vec![0u16; n];
        // SAFETY: GETALL writes `count` shorts to the array, which has room.
        ffi::retry(|| unsafe { libc::semctl(self.id, 0, libc::GETALL, vals.as_mut_ptr()) })
            .map_err(|e| error::os("read", &self.describe(), e))?;
        Ok(vals)
    }

    /// Sets every semaphore at once; `values` must have one entry per
    /// semaphore.
    ///
    /// # Errors
    /// A length mismatch, or an OS error naming the set.
    #[doc(alias = "SETALL")]
    pub fn set_values(self, values: &[u16]) -> io::Result<()> {
        let n = usize::try_from(self.stat()?.count).unwrap_or(0);
        if values.len() != n {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} has {n} semaphores, {} values given",
                    self.describe(),
                    values.len()
                ),
            ));
        }
        // SAFETY: SETALL reads `count` shorts; `values` has exactly that many.
        ffi::retry(|| unsafe { libc::semctl(self.id, 0, libc::SETALL, values.as_ptr()) })
            .map_err(|e| error::os("set", &self.describe(), e))?;
        Ok(())
    }

    /// How many processes wait for semaphore `index` to increase.
    ///
    /// # Errors
    /// An OS error naming the set.
    #[doc(alias = "GETNCNT")]
    pub fn waiting(self, index: u16) -> io::Result<u32> {
        // SAFETY: GETNCNT takes no fourth argument.
        let v = ffi::retry(|| unsafe { libc::semctl(self.id, i32::from(index), libc::GETNCNT) })
            .map_err(|e| error::os("read", &self.describe(), e))?;
        Ok(u32::try_from(v).unwrap_or(0))
    }

    /// The set's status.
    ///
    /// # Errors
    /// An OS error naming the set.
    #[doc(alias = "IPC_STAT")]
    pub fn stat(self) -> io::Result<SemStat> {
        // SAFETY: semid_ds is plain data; all-zero is a valid value.
        let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: IPC_STAT takes `union semun` whose `buf` member points to
        // a semid_ds; `ds` is valid for writes.
        ffi::retry(|| unsafe { libc::semctl(self.id, 0, libc::IPC_STAT, &raw mut ds) })
            .map_err(|e| error::os("read the status of", &self.describe(), e))?;
        Ok(SemStat {
            key: Key::from_raw(ds.sem_perm.__key),
            mode: u32::from(ds.sem_perm.mode) & 0o777,
            uid: ds.sem_perm.uid,
            gid: ds.sem_perm.gid,
            cuid: ds.sem_perm.cuid,
            cgid: ds.sem_perm.cgid,
            count: ds.sem_nsems,
            op_time: ds.sem_otime,
            change_time: ds.sem_ctime,
        })
    }

    /// Removes the set now; waiters fail with `EIDRM`.
    ///
    /// # Errors
    /// An OS error naming the set.
    #[doc(alias = "IPC_RMID")]
    pub fn remove(self) -> io::Result<()> {
        // SAFETY: IPC_RMID takes no fourth argument.
        ffi::retry(|| unsafe { libc::semctl(self.id, 0, libc::IPC_RMID) })
            .map_err(|e| error::os("remove", &self.describe(), e))?;
        Ok(())
    }
}
