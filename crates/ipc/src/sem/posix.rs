//! POSIX semaphores: named (`sem_open`) and unnamed process-shared ones
//! (`sem_init` with `pshared = 1`) placed inside shared memory.
//!
//! # Safety
//!
//! A `sem_t` must stay at one address while in use and must not be
//! touched except through the `sem_*` calls. [`NamedSem`] owns the mapping
//! `sem_open` returns and closes it on drop. [`SharedSem`] points into
//! shared memory it borrows: the borrow keeps the memory mapped, and its
//! constructors require that the bytes are used only as a semaphore.
#![allow(
    unsafe_code,
    reason = "POSIX semaphores are only reachable through libc"
)]

use std::ffi::CString;
use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::Instant;

use memio_map::{Access, Region};

use crate::error::{self, Result};
use crate::key::{Create, DEFAULT_MODE};
use crate::name::{self, Kind};
use crate::ffi;

/// Bytes a `sem_t` takes in shared memory (32 on x86-64).
pub const SEM_SIZE: usize = std::mem::size_of::<libc::sem_t>();
/// Alignment a `sem_t` needs.
pub const SEM_ALIGN: usize = std::mem::align_of::<libc::sem_t>();

/// The operations every POSIX semaphore offers, on a raw `sem_t`.
///
/// # Safety
/// `sem` must point to an initialised `sem_t` for the duration of the call.
unsafe fn wait_raw(sem: *mut libc::sem_t, object: &dyn std::fmt::Display) -> io::Result<()> {
    // SAFETY: the caller guarantees `sem` is a live, initialised sem_t.
    ffi::retry(|| unsafe { libc::sem_wait(sem) })
        .map(drop)
        .map_err(|e| error::os("wait on", object, e))
}

/// # Safety
/// As [`wait_raw`].
unsafe fn try_wait_raw(sem: *mut libc::sem_t, object: &dyn std::fmt::Display) -> io::Result<bool> {
    // SAFETY: the caller guarantees `sem` is a live, initialised sem_t.
    match ffi::retry(|| unsafe { libc::sem_trywait(sem) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(false),
        Err(e) => Err(error::os("wait on", object, e)),
    }
}

/// # Safety
/// As [`wait_raw`].
unsafe fn wait_deadline_raw(
    sem: *mut libc::sem_t,
    deadline: Instant,
    object: &dyn std::fmt::Display,
) -> io::Result<bool> {
    let at = ffi::realtime_deadline(deadline);
    // SAFETY: the caller guarantees `sem` is live; `at` outlives the call.
    match ffi::retry(|| unsafe { libc::sem_timedwait(sem, &raw const at) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ETIMEDOUT) => Ok(false),
        Err(e) => Err(error::os("wait on", object, e)),
    }
}

/// # Safety
/// As [`wait_raw`].
unsafe fn post_raw(sem: *mut libc::sem_t, object: &dyn std::fmt::Display) -> io::Result<()> {
    // SAFETY: the caller guarantees `sem` is a live, initialised sem_t.
    ffi::retry(|| unsafe { libc::sem_post(sem) })
        .map(drop)
        .map_err(|e| error::os("post", object, e))
}

/// # Safety
/// As [`wait_raw`].
unsafe fn value_raw(sem: *mut libc::sem_t, object: &dyn std::fmt::Display) -> io::Result<u32> {
    let mut v = 0;
    // SAFETY: the caller guarantees `sem` is live; `v` is a valid out-pointer.
    ffi::retry(|| unsafe { libc::sem_getvalue(sem, &raw mut v) })
        .map_err(|e| error::os("read the value of", object, e))?;
    Ok(u32::try_from(v).unwrap_or(0))
}

/// A named POSIX semaphore (`/name`, kept in `/dev/shm/sem.name`), closed
/// on drop and removed only by [`NamedSem::unlink`].
#[derive(Debug)]
pub struct NamedSem {
    sem: NonNull<libc::sem_t>,
    name: String,
}

// SAFETY: a sem_t is designed for concurrent use from many threads and
// processes; the handle only hands its pointer to the sem_* calls.
unsafe impl Send for NamedSem {}
// SAFETY: as above; every operation takes `&self` and is thread-safe.
unsafe impl Sync for NamedSem {}

fn describe(name: &str) -> String {
    format!("semaphore '{name}'")
}

impl NamedSem {
    /// Creates the semaphore `name` with `value` (exclusive, mode 0600).
    ///
    /// # Errors
    /// See [`NamedSem::open_with`].
    pub fn create(name: &str, value: u32) -> Result<Self> {
        Self::open_with(name, Create::Exclusive, DEFAULT_MODE, value)
    }

    /// Opens the existing semaphore `name`.
    ///
    /// # Errors
    /// See [`NamedSem::open_with`].
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, Create::Open, DEFAULT_MODE, 0)
    }

    /// Opens or creates `name`; `mode` and `value` apply when it is
    /// created.
    ///
    /// # Errors
    /// [`crate::Error::NameInvalid`]; an OS error naming the semaphore
    /// (exists, not found, permission denied, value above `SEM_VALUE_MAX`).
    #[doc(alias = "sem_open")]
    ///
    /// # References
    /// [sem_open(3)](https://man7.org/linux/man-pages/man3/sem_open.3.html)
    pub fn open_with(name: &str, create: Create, mode: u32, value: u32) -> Result<Self> {
        let cname = name::check(name, Kind::Semaphore)?;
        let flags = create.oflags();
        let mode = libc::c_uint::from(libc::mode_t::from(mode & 0o7777));
        // SAFETY: `cname` is NUL-terminated and outlives the call; the
        // variadic mode and value are what O_CREAT expects.
        let sem = unsafe { libc::sem_open(cname.as_ptr(), flags, mode, value) };
        if sem == libc::SEM_FAILED {
            return Err(error::last(create.verb(), &describe(name)).into());
        }
        let sem = NonNull::new(sem).ok_or_else(|| error::last(create.verb(), &describe(name)))?;
        Ok(Self {
            sem,
            name: name.to_owned(),
        })
    }

    /// Removes the name; the semaphore goes when the last handle closes.
    ///
    /// # Errors
    /// [`crate::Error::NameInvalid`], or an OS error naming the semaphore.
    #[doc(alias = "sem_unlink")]
    ///
    /// # References
    /// [sem_unlink(3)](https://man7.org/linux/man-pages/man3/sem_unlink.3.html)
    pub fn unlink(name: &str) -> Result<()> {
        let cname: CString = name::check(name, Kind::Semaphore)?;
        // SAFETY: `cname` is NUL-terminated and outlives the call.
        ffi::retry(|| unsafe { libc::sem_unlink(cname.as_ptr()) })
            .map_err(|e| error::os("remove", &describe(name), e))?;
        Ok(())
    }

    /// The semaphore's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes one unit, waiting while the value is 0.
    ///
    /// # Errors
    /// An OS error naming the semaphore.
    #[doc(alias = "sem_wait")]
    ///
    /// # References
    /// [sem_wait(3)](https://man7.org/linux/man-pages/man3/sem_wait.3.html)
    pub fn wait(&self) -> io::Result<()> {
        // SAFETY: `sem` stays mapped until drop.
        unsafe { wait_raw(self.sem.as_ptr(), &describe(&self.name)) }
    }

    /// Takes one unit if the value is above 0; `false` otherwise.
    ///
    /// # Errors
    /// An OS error naming the semaphore.
    #[doc(alias = "sem_trywait")]
    pub fn try_wait(&self) -> io::Result<bool> {
        // SAFETY: `sem` stays mapped until drop.
        unsafe { try_wait_raw(self.sem.as_ptr(), &describe(&self.name)) }
    }

    /// Takes one unit, waiting until `deadline`; `false` if it passed.
    ///
    /// # Errors
    /// An OS error naming the semaphore.
    #[doc(alias = "sem_timedwait")]
    pub fn wait_deadline(&self, deadline: Instant) -> io::Result<bool> {
        // SAFETY: `sem` stays mapped until drop.
        unsafe { wait_deadline_raw(self.sem.as_ptr(), deadline, &describe(&self.name)) }
    }

    /// Adds one unit, waking a waiter.
    ///
    /// # Errors
    /// An OS error naming the semaphore (`EOVERFLOW` at `SEM_VALUE_MAX`).
    #[doc(alias = "sem_post")]
    ///
    /// # References
    /// [sem_post(3)](https://man7.org/linux/man-pages/man3/sem_post.3.html)
    pub fn post(&self) -> io::Result<()> {
        // SAFETY: `sem` stays mapped until drop.
        unsafe { post_raw(self.sem.as_ptr(), &describe(&self.name)) }
    }

    /// The current value.
    ///
    /// # Errors
    /// An OS error naming the semaphore.
    #[doc(alias = "sem_getvalue")]
    pub fn value(&self) -> io::Result<u32> {
        // SAFETY: `sem` stays mapped until drop.
        unsafe { value_raw(self.sem.as_ptr(), &describe(&self.name)) }
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        // SAFETY: `sem` came from sem_open and is closed once, here.
        unsafe { libc::sem_close(self.sem.as_ptr()) };
    }
}

/// An unnamed process-shared POSIX semaphore living inside shared memory
/// (`sem_init` with `pshared = 1`). Every process that maps the memory can
/// use it; it borrows the memory for `'a` so it cannot outlive the mapping.
#[derive(Debug)]
pub struct SharedSem<'a> {
    sem: NonNull<libc::sem_t>,
    _memory: PhantomData<&'a [u8]>,
}

// SAFETY: the sem_t is in shared memory and designed for concurrent use;
// the handle only passes its pointer to the sem_* calls.
unsafe impl Send for SharedSem<'_> {}
// SAFETY: as above.
unsafe impl Sync for SharedSem<'_> {}

const SHARED: &str = "shared semaphore";

/// Checks that a `sem_t` fits at `offset` in `region` and returns where.
fn place(region: &Region, offset: usize) -> io::Result<NonNull<u8>> {
    let bad = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot place a {SHARED} at offset {offset}: {why}"),
        )
    };
    if offset
        .checked_add(SEM_SIZE)
        .is_none_or(|end| end > region.len())
    {
        return Err(bad(format!(
            "the region has {} bytes and a semaphore needs {SEM_SIZE}",
            region.len()
        )));
    }
    if region.access() != Access::ReadWrite {
        return Err(bad(String::from("the region is read-only")));
    }
    let ptr = region.as_mut_ptr().wrapping_add(offset);
    if ptr.align_offset(SEM_ALIGN) != 0 {
        return Err(bad(format!("not aligned to {SEM_ALIGN} bytes")));
    }
    NonNull::new(ptr).ok_or_else(|| bad(String::from("null address")))
}

impl<'a> SharedSem<'a> {
    /// Initialises a semaphore with `value` at `offset` in `region`
    /// (shared memory every user maps). Do it once, before other processes
    /// use it; they then call [`SharedSem::in_region`].
    ///
    /// # Errors
    /// The range is outside the region, misaligned, or the region is
    /// read-only; an OS error (value above `SEM_VALUE_MAX`).
    #[doc(alias = "sem_init")]
    pub fn init_in(region: &'a Region, offset: usize, value: u32) -> io::Result<Self> {
        let ptr = place(region, offset)?;
        // SAFETY: `place` checked that the bytes lie inside the region,
        // are aligned and writable; the borrow keeps the region mapped for
        // 'a. glibc's sem_t is plain words operated on with atomics and
        // futex calls (no pointers), so even bytes another process scribbles
        // on cannot make these calls touch memory outside the sem_t.
        unsafe { Self::init(ptr, value) }
    }

    /// Uses the semaphore at `offset` in `region`, initialised by
    /// [`SharedSem::init_in`] here or in another process. (Zero-filled
    /// fresh shared memory already reads as a process-shared semaphore
    /// with value 0 in glibc.)
    ///
    /// # Errors
    /// The range is outside the region, misaligned, or read-only.
    pub fn in_region(region: &'a Region, offset: usize) -> io::Result<Self> {
        let ptr = place(region, offset)?;
        // SAFETY: as in `init_in`: checked, aligned, writable, borrowed.
        Ok(unsafe { Self::attach(ptr) })
    }

    /// Initialises a semaphore with `value` at `ptr`.
    ///
    /// # Safety
    /// - `ptr` is aligned to [`SEM_ALIGN`] and valid for [`SEM_SIZE`]
    ///   bytes of shared (or private) memory that stays mapped for `'a`;
    /// - no process uses those bytes as anything but this semaphore, and
    ///   no other process initialises or uses it while this runs.
    ///
    /// # Errors
    /// An OS error (value above `SEM_VALUE_MAX`).
    #[doc(alias = "sem_init")]
    ///
    /// # References
    /// [sem_init(3)](https://man7.org/linux/man-pages/man3/sem_init.3.html)
    pub unsafe fn init(ptr: NonNull<u8>, value: u32) -> io::Result<Self> {
        debug_assert!(
            ptr.as_ptr().align_offset(SEM_ALIGN) == 0,
            "misaligned sem_t"
        );
        let sem = ptr.cast::<libc::sem_t>();
        // SAFETY: the caller guarantees the memory is valid, aligned and
        // dedicated to this semaphore.
        ffi::retry(|| unsafe { libc::sem_init(sem.as_ptr(), 1, value) })
            .map_err(|e| error::os("initialise", &SHARED, e))?;
        Ok(Self {
            sem,
            _memory: PhantomData,
        })
    }

    /// Uses the semaphore another process initialised at `ptr`.
    ///
    /// # Safety
    /// `ptr` satisfies [`SharedSem::init`]'s conditions and the bytes hold
    /// a semaphore initialised by `init` (in this or another process).
    #[must_use]
    pub unsafe fn attach(ptr: NonNull<u8>) -> Self {
        debug_assert!(
            ptr.as_ptr().align_offset(SEM_ALIGN) == 0,
            "misaligned sem_t"
        );
        Self {
            sem: ptr.cast(),
            _memory: PhantomData,
        }
    }

    /// Takes one unit, waiting while the value is 0.
    ///
    /// # Errors
    /// An OS error.
    #[doc(alias = "sem_wait")]
    pub fn wait(&self) -> io::Result<()> {
        // SAFETY: the constructors guarantee a live sem_t for 'a.
        unsafe { wait_raw(self.sem.as_ptr(), &SHARED) }
    }

    /// Takes one unit if the value is above 0; `false` otherwise.
    ///
    /// # Errors
    /// An OS error.
    #[doc(alias = "sem_trywait")]
    pub fn try_wait(&self) -> io::Result<bool> {
        // SAFETY: the constructors guarantee a live sem_t for 'a.
        unsafe { try_wait_raw(self.sem.as_ptr(), &SHARED) }
    }

    /// Takes one unit, waiting until `deadline`; `false` if it passed.
    ///
    /// # Errors
    /// An OS error.
    #[doc(alias = "sem_timedwait")]
    pub fn wait_deadline(&self, deadline: Instant) -> io::Result<bool> {
        // SAFETY: the constructors guarantee a live sem_t for 'a.
        unsafe { wait_deadline_raw(self.sem.as_ptr(), deadline, &SHARED) }
    }

    /// Adds one unit, waking a waiter.
    ///
    /// # Errors
    /// An OS error.
    #[doc(alias = "sem_post")]
    pub fn post(&self) -> io::Result<()> {
        // SAFETY: the constructors guarantee a live sem_t for 'a.
        unsafe { post_raw(self.sem.as_ptr(), &SHARED) }
    }

    /// The current value.
    ///
    /// # Errors
    /// An OS error.
    #[doc(alias = "sem_getvalue")]
    pub fn value(&self) -> io::Result<u32> {
        // SAFETY: the constructors guarantee a live sem_t for 'a.
        unsafe { value_raw(self.sem.as_ptr(), &SHARED) }
    }
}
