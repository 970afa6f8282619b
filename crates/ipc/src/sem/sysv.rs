//! System V semaphore sets (`semget`, `semop`, `semtimedop`, `semctl`).
//!
//! # Safety
//!
//! The libc calls read `sembuf` arrays and write `semid_ds` structs and
//! value arrays owned by the caller for the duration of the call; `semctl`
//! is variadic and gets the `union semun` member each command expects (an
//! `int` or a pointer, both passed in one register on Linux). A set id is a
//! plain number the kernel checks on every call — but it may name another
//! set by the next call, so `GETALL`/`SETALL`, which copy as many values as
//! the set has at that moment, go through a buffer with an inaccessible
//! page after it.
#![allow(
    unsafe_code,
    reason = "System V semaphores are only reachable through libc"
)]

use std::io;
use std::ptr::NonNull;
use std::time::Instant;

use rustix::mm;

use crate::error::{self, Error, Result};
use crate::ffi;
use crate::key::{Create, DEFAULT_MODE, Key};

/// The largest value a System V semaphore holds (`SEMVMX`, 32767 on Linux);
/// setting more fails with `ERANGE`.
pub const SEMVMX: u16 = 32_767;

/// How often [`SemSet::values`] reads again when the set changed under it.
const RETRIES: usize = 8;

/// A buffer of `u16`s in its own pages, followed by one inaccessible page:
/// a kernel copy that runs past the buffer faults there (`EFAULT`) instead
/// of reaching other memory.
struct Guarded {
    ptr: NonNull<u16>,
    /// Accessible bytes (whole pages).
    len: usize,
}

impl Guarded {
    /// Room for at least `n` values (zeros).
    fn new(n: usize) -> io::Result<Self> {
        let page = rustix::param::page_size();
        let len = n
            .saturating_mul(2)
            .max(1)
            .checked_next_multiple_of(page)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        let total = len
            .checked_add(page)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        // SAFETY: a new anonymous mapping at an address the kernel picks
        // touches no existing memory.
        let ptr = unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                total,
                mm::ProtFlags::empty(),
                mm::MapFlags::PRIVATE,
            )
        }?;
        let guarded = Self {
            ptr: NonNull::new(ptr.cast())
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?,
            len,
        };
        // SAFETY: the first `len` bytes belong to the mapping just made,
        // which nothing references yet; the last page stays inaccessible.
        unsafe { mm::mprotect(ptr, len, mm::MprotectFlags::READ | mm::MprotectFlags::WRITE) }?;
        Ok(guarded)
    }

    fn as_mut_ptr(&mut self) -> *mut u16 {
        self.ptr.as_ptr()
    }

    fn as_slice(&self) -> &[u16] {
        // SAFETY: the first `len` bytes are readable, zero-filled or
        // written by the kernel, aligned (page-aligned), and borrowed with
        // `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len / 2) }
    }

    fn as_mut_slice(&mut self) -> &mut [u16] {
        // SAFETY: as in `as_slice`, borrowed mutably with `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len / 2) }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let total = self.len + rustix::param::page_size();
        // SAFETY: the mapping of `total` bytes at `ptr` was made in `new`
        // and is unmapped once, here; no slice of it outlives `self`.
        let _ = unsafe { mm::munmap(self.ptr.as_ptr().cast(), total) };
    }
}

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

/// How to find or create a System V semaphore set: how many semaphores a
/// new one holds and its mode.
///
/// ```
/// use memio_ipc::sem::sysv::{SemOp, SemSetOptions};
/// use memio_ipc::{Create, Key};
///
/// let set = SemSetOptions::new().count(2).mode(0o600).open(Key::PRIVATE, Create::Exclusive)?;
/// set.op(&[SemOp::post(0), SemOp::post(1)])?;
/// assert_eq!(set.values()?, [1, 1]);
/// set.remove()?;
/// # Ok::<(), memio_ipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SemSetOptions {
    count: u16,
    mode: u32,
}

impl Default for SemSetOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SemSetOptions {
    /// No semaphores yet (give a count to create), mode 0600.
    #[must_use]
    pub fn new() -> Self {
        Self {
            count: 0,
            mode: DEFAULT_MODE,
        }
    }

    /// How many semaphores a new set holds (all 0); opening an existing
    /// set accepts any count up to its size (0: any).
    #[must_use]
    pub fn count(mut self, count: u16) -> Self {
        self.count = count;
        self
    }

    /// Permission bits of a new set (default 0600).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Finds or creates the set for `key` ([`Key::PRIVATE`] always
    /// creates).
    ///
    /// # Errors
    /// An OS error naming the key.
    #[doc(alias = "semget")]
    ///
    /// # References
    /// [semget(2)](https://man7.org/linux/man-pages/man2/semget.2.html)
    pub fn open(&self, key: Key, create: Create) -> io::Result<SemSet> {
        let count = i32::from(self.count);
        let empty = (count == 0).then_some("with 0 semaphores");
        // SAFETY: semget takes only integers.
        let get = |key, flags| unsafe { libc::semget(key, count, flags) };
        let id = create.sysv_get(key, self.mode, "semaphore set", empty, get)?;
        Ok(SemSet { id })
    }
}

impl SemSet {
    /// Finds or creates the set for `key` with `count` semaphores and the
    /// default options; see [`SemSetOptions`].
    ///
    /// # Errors
    /// As [`SemSetOptions::open`].
    pub fn get(key: Key, count: u16, create: Create) -> io::Result<Self> {
        SemSetOptions::new().count(count).open(key, create)
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
    /// `GETALL` writes as many values as the set has *when it runs*,
    /// which may be more than a status read just before said if the set
    /// was removed and its id given to a larger one. The values land in a
    /// buffer followed by an inaccessible page, so the kernel stops with
    /// `EFAULT` rather than write past it; the set's size is read again
    /// afterwards and the call retried when it changed.
    ///
    /// # Errors
    /// An OS error naming the set.
    #[doc(alias = "GETALL")]
    ///
    /// # References
    /// [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html)
    pub fn values(self) -> io::Result<Vec<u16>> {
        self.values_between(&mut || {})
    }

    /// [`SemSet::values`] with `between` run after the size is read and
    /// before `GETALL` (tests replace the set there).
    fn values_between(self, between: &mut dyn FnMut()) -> io::Result<Vec<u16>> {
        for _ in 0..RETRIES {
            let n = self.count()?;
            let mut buf = Guarded::new(n).map_err(|e| error::os("read", &self.describe(), e))?;
            between();
            // SAFETY: GETALL writes the set's count of shorts from
            // `buf.as_mut_ptr()`: into the buffer's pages, or up to the
            // inaccessible page after them, where it stops with EFAULT.
            let r =
                ffi::retry(|| unsafe { libc::semctl(self.id, 0, libc::GETALL, buf.as_mut_ptr()) });
            match r {
                // EFAULT: the set grew past the buffer (it was replaced);
                // a changed count: likewise. Either way, read again.
                Err(e) if e.raw_os_error() != Some(libc::EFAULT) => {
                    return Err(error::os("read", &self.describe(), e));
                }
                Ok(_) if self.count()? == n => return Ok(buf.as_slice()[..n].to_vec()),
                Ok(_) | Err(_) => {}
            }
        }
        Err(self.kept_changing("read"))
    }

    /// Sets every semaphore at once; `values` must have one entry per
    /// semaphore.
    ///
    /// `SETALL` reads as many values as the set has when it runs; as in
    /// [`SemSet::values`], it reads them from a buffer followed by an
    /// inaccessible page, so a set replaced by a larger one between the
    /// size check and the call never makes the kernel read past the
    /// values (it fails with `EFAULT`, or sets the extra semaphores to 0).
    ///
    /// # Errors
    /// A length mismatch; the set changed size during the call; or an OS
    /// error naming the set.
    #[doc(alias = "SETALL")]
    pub fn set_values(self, values: &[u16]) -> io::Result<()> {
        let n = self.count()?;
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
        let mut buf = Guarded::new(n).map_err(|e| error::os("set", &self.describe(), e))?;
        buf.as_mut_slice()[..n].copy_from_slice(values);
        // SAFETY: SETALL reads the set's count of shorts from `buf`: from
        // its pages (the values, then zeros), or up to the inaccessible
        // page after them, where it stops with EFAULT.
        ffi::retry(|| unsafe { libc::semctl(self.id, 0, libc::SETALL, buf.as_mut_ptr()) })
            .map_err(|e| error::os("set", &self.describe(), e))?;
        if self.count()? != n {
            return Err(self.kept_changing("set"));
        }
        Ok(())
    }

    /// How many semaphores the set has now.
    fn count(self) -> io::Result<usize> {
        Ok(usize::try_from(self.stat()?.count).unwrap_or(usize::MAX))
    }

    /// The set was replaced (`EIDRM`) while values were read or set.
    fn kept_changing(self, action: &str) -> io::Error {
        error::os(
            action,
            &format_args!("{} (it was replaced during the call)", self.describe()),
            io::Error::from_raw_os_error(libc::EIDRM),
        )
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

    /// How many processes wait for semaphore `index` to become zero.
    ///
    /// # Errors
    /// An OS error naming the set.
    #[doc(alias = "GETZCNT")]
    pub fn zero_waiting(self, index: u16) -> io::Result<u32> {
        // SAFETY: GETZCNT takes no fourth argument.
        let v = ffi::retry(|| unsafe { libc::semctl(self.id, i32::from(index), libc::GETZCNT) })
            .map_err(|e| error::os("read", &self.describe(), e))?;
        Ok(u32::try_from(v).unwrap_or(0))
    }

    /// The pid of the last process that operated on semaphore `index` (0
    /// when none has).
    ///
    /// # Errors
    /// An OS error naming the set.
    #[doc(alias = "GETPID")]
    pub fn last_pid(self, index: u16) -> io::Result<u32> {
        // SAFETY: GETPID takes no fourth argument.
        let v = ffi::retry(|| unsafe { libc::semctl(self.id, i32::from(index), libc::GETPID) })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Removes the set when the test ends, pass or fail.
    struct Removed(SemSet);

    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = self.0.remove();
        }
    }

    #[test]
    fn waiters_and_last_pid_are_read_per_semaphore() {
        let set = Removed(SemSet::private(2).unwrap());
        assert_eq!(set.0.last_pid(1).unwrap(), 0);
        set.0.op(&[SemOp::post(1)]).unwrap();
        assert_eq!(set.0.last_pid(1).unwrap(), std::process::id());
        assert_eq!(set.0.last_pid(0).unwrap(), 0);
        assert_eq!(set.0.zero_waiting(1).unwrap(), 0);
        assert_eq!(set.0.waiting(0).unwrap(), 0);
    }

    #[test]
    fn values_round_trip() {
        let set = Removed(SemSet::private(3).unwrap());
        set.0.set_values(&[7, 0, 32_000]).unwrap();
        assert_eq!(set.0.values().unwrap(), [7, 0, 32_000]);
        let err = set.0.set_values(&[1, 2]).unwrap_err();
        assert!(
            err.to_string().contains("has 3 semaphores, 2 values given"),
            "{err}"
        );
    }

    /// Whether the tests run under valgrind, which reports the kernel
    /// running into a guard page (what these tests provoke) as an error.
    fn under_valgrind() -> bool {
        let yes = std::env::var("LD_PRELOAD").is_ok_and(|p| p.contains("vgpreload"));
        if yes {
            eprintln!("skipped under valgrind: the test makes the kernel hit a guard page");
        }
        yes
    }

    #[test]
    fn a_larger_set_never_writes_past_the_buffer() {
        if under_valgrind() {
            return;
        }
        // 3000 semaphores take 6000 bytes: more than the page a buffer for
        // two values gets, so GETALL runs into the inaccessible page.
        let page = rustix::param::page_size();
        let big = match SemSet::private(3000) {
            Ok(set) => Removed(set),
            Err(e) => {
                eprintln!("skipped: cannot create a set of 3000 semaphores ({e})");
                return;
            }
        };
        assert!(3000 * 2 > page);
        let mut buf = Guarded::new(2).unwrap();
        // SAFETY: as in `values_between`: the copy stops at the guard page.
        let r = ffi::retry(|| unsafe { libc::semctl(big.0.id, 0, libc::GETALL, buf.as_mut_ptr()) });
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EFAULT));
        // What the kernel did write stayed inside the buffer's pages.
        assert_eq!(buf.as_slice().len(), page / 2);
    }

    #[test]
    fn values_survive_the_set_being_replaced_by_a_larger_one() {
        // Give the id of a two-semaphore set to a 3000-semaphore set between
        // the size check and GETALL. Reusing an id takes
        // /proc/sys/kernel/sem_next_id, which only root may write.
        const NEXT_ID: &str = "/proc/sys/kernel/sem_next_id";
        if under_valgrind() {
            return;
        }
        let small = SemSet::private(2).unwrap();
        let id = small.id();
        let mut replacement = None;
        let mut between = || {
            if replacement.is_some() {
                return;
            }
            small.remove().unwrap();
            if std::fs::write(NEXT_ID, id.to_string()).is_err() {
                return;
            }
            let big = SemSet::private(3000).unwrap();
            big.set_value(2999, 42).unwrap();
            replacement = Some(Removed(big));
        };
        let got = small.values_between(&mut between);
        let Some(big) = replacement else {
            eprintln!("skipped: cannot write {NEXT_ID} (needs root)");
            return;
        };
        if big.0.id() != id {
            eprintln!("skipped: another process took id {id} first");
            return;
        }
        let values = got.unwrap();
        assert_eq!(values.len(), 3000);
        assert_eq!(values[2999], 42);
    }
}
