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
//! [`SemRegion`] owns the memory and hands out `SharedSem`s borrowing it.
//!
//! `sem_init` writes the `sem_t` with plain stores: running it on a
//! semaphore another thread or process uses is a data race, so every call
//! that runs it on memory others may reach is `unsafe`. The safe
//! constructors of [`SemRegion`] run it only where nobody else can look:
//! on memory they have just mapped and not shared yet, or on a local
//! `sem_t` whose bytes they then `pwrite` into a new object before mapping
//! it (glibc's `sem_t` is plain words without pointers, the same at any
//! address, as a semaphore shared between processes must be).
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
use crate::ffi;
use crate::key::{Create, DEFAULT_MODE};
use crate::name::{self, Kind};

/// Bytes a `sem_t` takes in shared memory (32 on x86-64).
pub const SEM_SIZE: usize = std::mem::size_of::<libc::sem_t>();
/// Alignment a semaphore gets in shared memory: at least 8 bytes, whatever
/// `align_of::<sem_t>()` says on the target, because glibc operates on its
/// first 8 bytes with 64-bit atomics where the CPU has them; 4-aligned
/// offsets are refused.
pub const SEM_ALIGN: usize = if std::mem::align_of::<libc::sem_t>() > 8 {
    std::mem::align_of::<libc::sem_t>()
} else {
    8
};

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

/// How to open or create a named semaphore: the value and mode of a new
/// one.
///
/// ```
/// use memio_ipc::sem::posix::{NamedSem, NamedSemOptions};
/// use memio_ipc::Create;
///
/// let name = format!("/memio-doc-sem-{}", std::process::id());
/// let sem = NamedSemOptions::new().value(1).mode(0o600).open(&name, Create::Exclusive)?;
/// assert!(sem.try_wait()?);
/// NamedSem::unlink(&name)?;
/// # Ok::<(), memio_ipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct NamedSemOptions {
    value: u32,
    mode: u32,
}

impl Default for NamedSemOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl NamedSemOptions {
    /// Value 0, mode 0600.
    #[must_use]
    pub fn new() -> Self {
        Self {
            value: 0,
            mode: DEFAULT_MODE,
        }
    }

    /// The value of a new semaphore (at most `SEM_VALUE_MAX`).
    #[must_use]
    pub fn value(mut self, value: u32) -> Self {
        self.value = value;
        self
    }

    /// Permission bits of a new semaphore (default 0600; the umask
    /// applies).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Opens or creates the semaphore `name`.
    ///
    /// # Errors
    /// [`crate::Error::NameInvalid`]; an OS error naming the semaphore
    /// (exists, not found, permission denied, value above `SEM_VALUE_MAX`).
    #[doc(alias = "sem_open")]
    ///
    /// # References
    /// [sem_open(3)](https://man7.org/linux/man-pages/man3/sem_open.3.html)
    pub fn open(&self, name: &str, create: Create) -> Result<NamedSem> {
        let cname = name::check(name, Kind::Semaphore)?;
        let flags = create.oflags();
        let mode = libc::c_uint::from(libc::mode_t::from(self.mode & 0o7777));
        // SAFETY: `cname` is NUL-terminated and outlives the call; the
        // variadic mode and value are what O_CREAT expects.
        let sem = unsafe { libc::sem_open(cname.as_ptr(), flags, mode, self.value) };
        if sem == libc::SEM_FAILED {
            return Err(error::last(create.verb(), &describe(name)).into());
        }
        let sem = NonNull::new(sem).ok_or_else(|| error::last(create.verb(), &describe(name)))?;
        let sem = NamedSem {
            sem,
            name: name.to_owned(),
        };
        // glibc maps SEM_SIZE bytes of the file without checking its size:
        // a shorter file (made by hand, or truncated) would raise SIGBUS at
        // the first wait or post. Refuse it while no access has happened.
        let path = format!("/dev/shm/sem.{}", &name[1..]);
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.len() < SEM_SIZE as u64 {
                return Err(error::os(
                    create.verb(),
                    &format_args!(
                        "{} ({path} has {} bytes, a semaphore {SEM_SIZE})",
                        describe(name),
                        meta.len()
                    ),
                    io::Error::from_raw_os_error(libc::EINVAL),
                )
                .into());
            }
        }
        Ok(sem)
    }
}

impl NamedSem {
    /// Creates the semaphore `name` with `value` (exclusive, mode 0600).
    ///
    /// # Errors
    /// See [`NamedSemOptions::open`].
    pub fn create(name: &str, value: u32) -> Result<Self> {
        NamedSemOptions::new()
            .value(value)
            .open(name, Create::Exclusive)
    }

    /// Opens the existing semaphore `name`.
    ///
    /// # Errors
    /// See [`NamedSemOptions::open`].
    pub fn open(name: &str) -> Result<Self> {
        NamedSemOptions::new().open(name, Create::Open)
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
    place_range(region, offset, SEM_SIZE)
}

/// Checks that `len` bytes of semaphores from `offset` lie inside `region`,
/// writable now (the mapping's access and what `protect` left), with the
/// first one aligned; returns where it starts.
fn place_range(region: &Region, offset: usize, len: usize) -> io::Result<NonNull<u8>> {
    let bad = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot place a {SHARED} at offset {offset}: {why}"),
        )
    };
    if offset.checked_add(len).is_none_or(|end| end > region.len()) {
        return Err(bad(format!(
            "the region has {} bytes and a semaphore needs {SEM_SIZE}",
            region.len()
        )));
    }
    // A semaphore is written through a raw pointer by every sem_* call:
    // pages a `protect` made read-only would fault there.
    region.check_access(offset, len, Access::ReadWrite)?;
    let ptr = region.as_mut_ptr().wrapping_add(offset);
    if ptr.align_offset(SEM_ALIGN) != 0 {
        return Err(bad(format!("not aligned to {SEM_ALIGN} bytes")));
    }
    NonNull::new(ptr).ok_or_else(|| bad(String::from("null address")))
}

impl<'a> SharedSem<'a> {
    /// Initialises a semaphore with `value` at `offset` in `region`
    /// (shared memory every user maps). Do it once, before other processes
    /// use it; they then call [`SharedSem::in_region`]. [`SemRegion`] does
    /// this safely on memory it creates.
    ///
    /// Initialising a semaphore that another thread or process waits on or
    /// posts to is undefined behaviour, so this is `unsafe`:
    ///
    /// ```compile_fail,E0133
    /// use memio_ipc::sem::posix::SharedSem;
    ///
    /// let region = memio_map::Region::anonymous_shared(4096)?;
    /// let sem = SharedSem::init_in(&region, 0, 1)?; // needs `unsafe`
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Safety
    /// While this runs, no other thread or process uses the [`SEM_SIZE`]
    /// bytes at `offset` (as a semaphore or otherwise): nobody waits on,
    /// posts to or initialises a semaphore there.
    ///
    /// # Errors
    /// The range is outside the region, misaligned, or the region is
    /// read-only; an OS error (value above `SEM_VALUE_MAX`).
    #[doc(alias = "sem_init")]
    ///
    /// # References
    /// [sem_init(3)](https://man7.org/linux/man-pages/man3/sem_init.3.html)
    pub unsafe fn init_in(region: &'a Region, offset: usize, value: u32) -> io::Result<Self> {
        let ptr = place(region, offset)?;
        // SAFETY: `place` checked that the bytes lie inside the region,
        // are aligned and writable; the borrow keeps the region mapped for
        // 'a; the caller guarantees nobody else touches them meanwhile.
        unsafe { Self::init(ptr, value) }
    }

    /// Uses the semaphore at `offset` in `region`, initialised by
    /// [`SharedSem::init_in`] or [`SemRegion`] here or in another process.
    /// (Zero-filled memory reads as a semaphore of value 0 in glibc, but a
    /// process-private one: its wake-ups do not cross processes.)
    ///
    /// glibc reads some of a semaphore's words without atomics, so a write
    /// to those bytes through the region (`write_at`, `fill`, an atomic
    /// view) while the semaphore is in use would be a data race; the call
    /// is `unsafe` for that. [`SemRegion`] keeps its memory to itself and
    /// hands out semaphores safely.
    ///
    /// ```compile_fail,E0133
    /// use memio_ipc::sem::posix::SharedSem;
    ///
    /// let region = memio_map::Region::anonymous_shared(4096)?;
    /// let sem = SharedSem::in_region(&region, 0)?; // needs `unsafe`
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Safety
    /// While the returned semaphore (or a copy) is used, nothing writes the
    /// [`SEM_SIZE`] bytes at `offset` except the `sem_*` calls of the
    /// semaphore there: no `write_at`, `fill` or atomic view over them, in
    /// this or another mapping of the same memory.
    ///
    /// # Errors
    /// The range is outside the region, misaligned, or read-only.
    pub unsafe fn in_region(region: &'a Region, offset: usize) -> io::Result<Self> {
        let ptr = place(region, offset)?;
        // SAFETY: `place` checked the bytes lie inside the region, aligned
        // and writable; the borrow keeps the region mapped for 'a; the
        // caller guarantees nothing else writes them. glibc's sem_t is
        // plain words operated on with atomics and futex calls (no
        // pointers), so even bytes another process scribbles on cannot make
        // the sem_* calls touch memory outside the sem_t.
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

/// The largest value a POSIX semaphore holds on Linux (`SEM_VALUE_MAX`).
pub const SEM_VALUE_MAX: u32 = 0x7fff_ffff;

/// Distance between the semaphores of a [`SemRegion`]: a cache line each,
/// so processes busy with neighbouring semaphores do not share a line.
pub const SEM_STRIDE: usize = 64;

const _: () = assert!(SEM_STRIDE >= SEM_SIZE && SEM_STRIDE % SEM_ALIGN == 0);

/// Process-shared semaphores in shared memory this handle owns: the owning
/// form of [`SharedSem`]. Semaphore `i` lives at byte `i * SEM_STRIDE`.
///
/// Other processes reach the same semaphores by mapping the same memory:
/// [`SemRegion::open`] for a named object, a `fork` for
/// [`SemRegion::anonymous`]. Dropping the handle unmaps the memory but does
/// not `sem_destroy` the semaphores: other processes may still use them
/// (destroying a semaphore someone waits on is undefined), and glibc's
/// `sem_destroy` frees nothing.
///
/// ```
/// use memio_ipc::sem::posix::SemRegion;
///
/// let name = format!("/memio-doc-semregion-{}", std::process::id());
/// let sems = SemRegion::create(&name, &[0, 2])?;
/// let peer = SemRegion::open(&name, 2)?; // another process would do this
/// peer.get(0).unwrap().post()?;
/// assert!(sems.get(0).unwrap().try_wait()?);
/// assert_eq!(sems.get(1).unwrap().value()?, 2);
/// memio_ipc::shm::posix::unlink(&name)?;
/// # Ok::<(), memio_ipc::Error>(())
/// ```
///
/// A [`SharedSem`] borrows the handle, so it cannot outlive the memory:
///
/// ```compile_fail,E0505
/// use memio_ipc::sem::posix::SemRegion;
///
/// let sems = SemRegion::anonymous(&[1])?;
/// let sem = sems.get(0).unwrap();
/// drop(sems); // the semaphore below would point into unmapped memory
/// sem.wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct SemRegion {
    region: Region,
    count: usize,
}

impl SemRegion {
    /// Bytes of shared memory that `count` semaphores take.
    #[must_use]
    pub const fn bytes_for(count: usize) -> usize {
        count.saturating_mul(SEM_STRIDE)
    }

    /// Creates the POSIX shared-memory object `name` (exclusive, mode
    /// 0600) holding one semaphore per entry of `values`, with that value.
    ///
    /// # Errors
    /// No values, a value above `SEM_VALUE_MAX`, or as
    /// [`ShmOptions::open`](crate::shm::posix::ShmOptions::open).
    pub fn create(name: &str, values: &[u32]) -> crate::Result<Self> {
        check_values(values)?;
        let images = values
            .iter()
            .map(|&v| sem_image(v))
            .collect::<io::Result<Vec<_>>>()?;
        // The semaphores go in with pwrite before the object is mapped
        // here: no sem_init ever runs on memory another thread could map.
        let region = crate::shm::posix::ShmOptions::new()
            .size(Self::bytes_for(values.len()))
            .open_prepared(name, Create::Exclusive, &mut |fd| {
                for (i, image) in images.iter().enumerate() {
                    write_all_at(fd, image, (i * SEM_STRIDE) as u64)?;
                }
                Ok(())
            })?;
        Ok(Self::from_region(region, values.len())?)
    }

    /// Opens the object `name` that [`SemRegion::create`] made (here or in
    /// another process) and uses its first `count` semaphores.
    ///
    /// # Errors
    /// The object is smaller than `count` semaphores, or as
    /// [`ShmOptions::open`](crate::shm::posix::ShmOptions::open).
    pub fn open(name: &str, count: usize) -> crate::Result<Self> {
        let region = crate::shm::posix::ShmOptions::new().open(name, Create::Open)?;
        Ok(Self::from_region(region, count)?)
    }

    /// Semaphores in new shared anonymous memory: children forked after
    /// this share them with the parent.
    ///
    /// # Errors
    /// No values, a value above `SEM_VALUE_MAX`, or the memory cannot be
    /// mapped.
    pub fn anonymous(values: &[u32]) -> io::Result<Self> {
        check_values(values)?;
        let region = Region::anonymous_shared(Self::bytes_for(values.len()))?;
        // SAFETY: the mapping was just made and is owned here: no other
        // thread or process can reach it until this returns.
        unsafe { Self::init(region, values) }
    }

    /// Uses the first `count` semaphores of `region`, as
    /// [`SemRegion::create`] or another process initialised them (bytes
    /// never initialised act as process-private semaphores of value 0 in
    /// glibc: their wake-ups do not cross processes).
    ///
    /// # Errors
    /// The region is read-only or smaller than `count` semaphores.
    pub fn from_region(region: Region, count: usize) -> io::Result<Self> {
        if count > 0 {
            place_range(&region, 0, (count - 1) * SEM_STRIDE + SEM_SIZE)?;
        }
        Ok(Self { region, count })
    }

    /// Initialises one semaphore per entry of `values` at the start of
    /// `region` with `sem_init`, whatever the bytes held.
    ///
    /// # Safety
    /// While this runs, no other thread or process uses the first
    /// `values.len() * SEM_STRIDE` bytes of the memory (another mapping
    /// of the same object included).
    ///
    /// # Errors
    /// The region is read-only or too small, or a value is above
    /// `SEM_VALUE_MAX`.
    #[doc(alias = "sem_init")]
    pub unsafe fn init(region: Region, values: &[u32]) -> io::Result<Self> {
        let sems = Self::from_region(region, values.len())?;
        for (i, &value) in values.iter().enumerate() {
            // SAFETY: `from_region` checked that every slot lies inside the
            // writable region; the caller guarantees nobody else uses them.
            unsafe { SharedSem::init_in(&sems.region, i * SEM_STRIDE, value) }?;
        }
        Ok(sems)
    }

    /// How many semaphores the handle holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Semaphore `index`, borrowing the memory; `None` past the end.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<SharedSem<'_>> {
        if index >= self.count {
            return None;
        }
        let ptr = NonNull::new(self.region.as_mut_ptr().wrapping_add(index * SEM_STRIDE))?;
        // SAFETY: `from_region` checked that every slot up to `count - 1`
        // lies inside the region, writable, the first aligned (so all, at
        // SEM_STRIDE apart); the region cannot be re-protected while `self`
        // owns it (only `&Region` leaves), and the borrow keeps it mapped.
        Some(unsafe { SharedSem::attach(ptr) })
    }
}

/// The bytes of a process-shared semaphore of `value`, made with
/// `sem_init` on a local `sem_t`.
fn sem_image(value: u32) -> io::Result<[u8; SEM_SIZE]> {
    let mut sem = std::mem::MaybeUninit::<libc::sem_t>::zeroed();
    // SAFETY: `sem` is this function's own aligned memory, which no other
    // thread can reach.
    ffi::retry(|| unsafe { libc::sem_init(sem.as_mut_ptr(), 1, value) })
        .map_err(|e| error::os("initialise", &SHARED, e))?;
    // SAFETY: `sem` is fully initialised (zeroed, then written by
    // sem_init) and a sem_t is SEM_SIZE bytes without padding.
    Ok(unsafe { std::ptr::read(sem.as_ptr().cast::<[u8; SEM_SIZE]>()) })
}

/// Writes all of `bytes` at `offset` of `fd`.
fn write_all_at(fd: &std::os::fd::OwnedFd, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::pwrite(fd, bytes, offset) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => {
                bytes = &bytes[n..];
                offset += n as u64;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Refuses an empty set or a value above `SEM_VALUE_MAX`.
fn check_values(values: &[u32]) -> io::Result<()> {
    let max = SEM_VALUE_MAX;
    let bad = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot make {SHARED}s: {why}"),
        )
    };
    if values.is_empty() {
        return Err(bad(String::from("no values given")));
    }
    if let Some(v) = values.iter().find(|&&v| v > max) {
        return Err(bad(format!("value {v} is above SEM_VALUE_MAX ({max})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// Removes a file when the test ends, pass or fail.
    struct Remove<'a>(&'a str);

    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }

    /// Unlinks a shared-memory object when the test ends, pass or fail.
    struct Unlink<'a>(&'a str);

    impl Drop for Unlink<'_> {
        fn drop(&mut self) {
            let _ = crate::shm::posix::unlink(self.0);
        }
    }

    #[test]
    fn sem_region_starts_with_the_values_and_is_shared_by_name() {
        let name = format!("/memio-test-semregion-{}", std::process::id());
        let sems = SemRegion::create(&name, &[0, 3, 1]).unwrap();
        let _unlink = Unlink(&name);
        let values: Vec<u32> = (0..3)
            .map(|i| sems.get(i).unwrap().value().unwrap())
            .collect();
        assert_eq!(values, [0, 3, 1]);
        assert!(sems.get(3).is_none());
        let other = SemRegion::open(&name, 3).unwrap();
        other.get(0).unwrap().post().unwrap();
        assert!(sems.get(0).unwrap().try_wait().unwrap());
        assert!(!sems.get(0).unwrap().try_wait().unwrap());
        // Asking for more semaphores than the object holds is refused.
        assert!(SemRegion::open(&name, 1000).is_err());
    }

    #[test]
    fn sem_region_wakes_a_waiter_in_another_thread() {
        let sems = Arc::new(SemRegion::anonymous(&[0]).unwrap());
        let waiter = {
            let sems = Arc::clone(&sems);
            std::thread::spawn(move || {
                sems.get(0)
                    .unwrap()
                    .wait_deadline(Instant::now() + Duration::from_secs(10))
            })
        };
        sems.get(0).unwrap().post().unwrap();
        assert!(waiter.join().unwrap().unwrap());
    }

    #[test]
    fn sem_region_refuses_bad_values_and_small_regions() {
        assert!(SemRegion::anonymous(&[]).is_err());
        assert!(SemRegion::anonymous(&[u32::MAX]).is_err());
        let small = Region::anonymous_shared(4096).unwrap();
        let err = SemRegion::from_region(small, 65).unwrap_err();
        assert!(
            err.to_string().contains("the region has 4096 bytes"),
            "{err}"
        );
        let read_only = memio_map::MapOptions::new()
            .shared()
            .read_only()
            .len(4096)
            .map_anonymous()
            .unwrap();
        assert!(SemRegion::from_region(read_only, 1).is_err());
    }

    #[test]
    fn a_named_semaphore_file_too_short_is_refused_not_a_sigbus() {
        let name = format!("/memio-test-shortsem-{}", std::process::id());
        let path = format!("/dev/shm/sem.{}", &name[1..]);
        if std::fs::write(&path, b"").is_err() {
            eprintln!("skipped: cannot write {path}");
            return;
        }
        let _remove = Remove(&path);
        // Before the check, this opened and the post below died of SIGBUS.
        let err = NamedSem::open(&name).map(|s| s.post()).unwrap_err();
        assert_eq!(err.raw_errno(), Some(libc::EINVAL));
        assert!(err.to_string().contains("has 0 bytes"), "{err}");
    }

    #[test]
    fn a_semaphore_is_not_placed_past_the_end_or_misaligned() {
        let region = Region::anonymous_shared(4096).unwrap();
        let place = |offset| {
            // SAFETY: nothing else writes the new region, and the call
            // returns no semaphore (it fails).
            unsafe { SharedSem::in_region(&region, offset) }.unwrap_err()
        };
        let (past, odd, half) = (place(4090), place(3), place(68));
        assert_eq!(past.kind(), io::ErrorKind::InvalidInput, "{past}");
        assert!(odd.to_string().contains("not aligned"), "{odd}");
        assert!(
            half.to_string().contains("not aligned to 8 bytes"),
            "{half}"
        );
    }

    #[test]
    fn a_semaphore_is_not_placed_on_pages_protected_read_only() {
        let mut region = Region::anonymous_shared(2 * 4096).unwrap();
        region.protect(4096.., memio_map::Protection::Read).unwrap();
        // SAFETY: nothing else writes the region while the test runs.
        assert!(unsafe { SharedSem::in_region(&region, 0) }.is_ok());
        // Before the check this placed it, and its first post died of SIGSEGV.
        // SAFETY: as above.
        let err = unsafe { SharedSem::in_region(&region, 4096) }.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert!(SemRegion::from_region(region, 65).is_err());
    }

    #[test]
    fn unsafe_init_gives_the_values() {
        let region = Region::anonymous_shared(4096).unwrap();
        // SAFETY: the region is new and only this thread uses it.
        let sems = unsafe { SemRegion::init(region, &[2]) }.unwrap();
        assert_eq!(sems.get(0).unwrap().value().unwrap(), 2);
    }
}
