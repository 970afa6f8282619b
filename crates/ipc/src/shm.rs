//! Shared memory as [`memio_map::Region`]s: POSIX named objects
//! (`shm_open`), memfd (nameless, sealable, handed to children as an fd),
//! and System V segments (`shmget`/`shmat`).
//!
//! Every function here returns the memory as a `Region`, so sync, advise,
//! protect, lock and residency work the same on all of them. Shared memory
//! may change under the process at any time: read and write it with
//! [`Region::read_at`]/[`Region::write_at`], atomics
//! ([`Region::atomic_u32`]) or raw pointers — never hold a slice of it.
//!
//! # Safety
//!
//! `shmat` and `shmdt` are reachable only through libc. A segment attached
//! here is handed to [`Region::from_raw_parts`] with a release function
//! that detaches it exactly once, when the region drops; `shmat` returns
//! page-aligned memory of the segment's size, mapped read-write unless
//! `SHM_RDONLY` was asked for (and the region is then read-only too).
#![allow(
    unsafe_code,
    reason = "System V shared memory is only reachable through libc"
)]

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use memio_map::{Access, MapOptions, Region, Release, Sharing};
use rustix::fs::{Mode, SealFlags};
use rustix::shm::OFlags;

use crate::error::{self, Error, Result};
use crate::key::{Create, DEFAULT_MODE, Key};
use crate::name::{self, Kind};
use crate::ffi;

fn describe(name: &str) -> String {
    format!("shared memory '{name}'")
}

/// How to open or create a POSIX shared-memory object.
///
/// ```no_run
/// use memio_ipc::shm::ShmOptions;
/// use memio_ipc::Create;
///
/// let mut region = ShmOptions::new().size(1024).open("/my_shm", Create::Exclusive)?;
/// region.write_at(0, b"Hello, POSIX shared memory!")?;
/// memio_ipc::shm::unlink("/my_shm")?;
/// # Ok::<(), memio_ipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ShmOptions {
    size: Option<usize>,
    mode: u32,
    read_only: bool,
}

impl Default for ShmOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ShmOptions {
    /// Read-write, mode 0600, the object's current size.
    #[must_use]
    pub fn new() -> Self {
        Self {
            size: None,
            mode: DEFAULT_MODE,
            read_only: false,
        }
    }

    /// The object's size: a new object is sized to it, an existing one is
    /// resized only if it is smaller (never shrunk under other users).
    #[must_use]
    pub fn size(mut self, bytes: usize) -> Self {
        self.size = Some(bytes);
        self
    }

    /// Permission bits of a new object (default 0600; the umask applies).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Open and map read-only.
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Opens or creates `name` and maps all of it, shared.
    ///
    /// # Errors
    /// [`Error::NameInvalid`]; a new object without a size; an empty
    /// object; an OS error naming the object.
    #[doc(alias = "shm_open")]
    ///
    /// # References
    /// [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html)
    pub fn open(&self, name: &str, create: Create) -> Result<Region> {
        name::check(name, Kind::Plain)?;
        let object = describe(name);
        if create != Create::Open && self.size.is_none_or(|s| s == 0) {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot {} {object} without a size above 0", create.verb()),
            )));
        }
        let mut flags = if self.read_only {
            OFlags::RDONLY
        } else {
            OFlags::RDWR
        };
        match create {
            Create::Open => {}
            Create::Exclusive => flags |= OFlags::CREATE | OFlags::EXCL,
            Create::OpenOrCreate => flags |= OFlags::CREATE,
        }
        let fd = rustix::shm::open(name, flags, Mode::from_bits_truncate(self.mode & 0o7777))
            .map_err(|e| error::os(create.verb(), &object, e.into()))?;
        let made = || {
            // Best effort: do not leave a half-made object behind.
            if create == Create::Exclusive {
                let _ = rustix::shm::unlink(name);
            }
        };
        let result = self.size_and_map(&fd, &object);
        if result.is_err() {
            made();
        }
        result
    }

    fn size_and_map(&self, fd: &OwnedFd, object: &str) -> Result<Region> {
        let current = rustix::fs::fstat(fd).map_err(|e| error::os("examine", &object, e.into()))?;
        let current = usize::try_from(current.st_size).unwrap_or(0);
        let size = match self.size {
            Some(want) if want > current && !self.read_only => {
                rustix::fs::ftruncate(fd, want as u64)
                    .map_err(|e| error::os("resize", &object, e.into()))?;
                want
            }
            _ => current,
        };
        if size == 0 {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot map {object}: it is empty (give it a size)"),
            )));
        }
        let access = if self.read_only {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        MapOptions::new()
            .shared()
            .access(access)
            .len(size)
            .map(fd)
            .map_err(|e| Error::Io(error::os("map", &object, e)))
    }
}

/// Creates the POSIX shared-memory object `name` of `size` bytes
/// (exclusive, mode 0600) and maps it read-write.
///
/// # Errors
/// See [`ShmOptions::open`].
pub fn create(name: &str, size: usize) -> Result<Region> {
    ShmOptions::new().size(size).open(name, Create::Exclusive)
}

/// Opens the existing object `name` and maps all of it read-write.
///
/// # Errors
/// See [`ShmOptions::open`].
pub fn open(name: &str) -> Result<Region> {
    ShmOptions::new().open(name, Create::Open)
}

/// Removes the name; the memory goes when the last mapping does.
///
/// # Errors
/// [`Error::NameInvalid`], or an OS error naming the object.
#[doc(alias = "shm_unlink")]
///
/// # References
/// [shm_unlink(3)](https://man7.org/linux/man-pages/man3/shm_unlink.3.html)
pub fn unlink(name: &str) -> Result<()> {
    name::check(name, Kind::Plain)?;
    rustix::shm::unlink(name).map_err(|e| Error::Io(error::os("remove", &describe(name), e.into())))
}

/// A memfd: shared memory with no name, reached through its file
/// descriptor. Hand the fd to a child (inherited across `fork`, or as a
/// `std::process::Stdio` of a spawned program) and both map the same
/// pages; seal it so neither side can shrink it under the other.
#[derive(Debug)]
pub struct Memfd {
    fd: OwnedFd,
    size: usize,
}

/// Seals that can be added to a [`Memfd`] (`F_ADD_SEALS`).
pub use rustix::fs::SealFlags as Seals;

impl Memfd {
    /// Creates a memfd of `size` bytes; `sealable` allows [`Memfd::seal`]
    /// later. `name` only labels it in `/proc/PID/fd` (`memfd:NAME`).
    ///
    /// # Errors
    /// Zero size, or an OS error.
    #[doc(alias = "memfd_create")]
    ///
    /// # References
    /// [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
    pub fn create(name: &str, size: usize, sealable: bool) -> io::Result<Self> {
        let object = format!("memfd '{name}'");
        if size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot create {object} of 0 bytes"),
            ));
        }
        let mut flags = rustix::fs::MemfdFlags::CLOEXEC;
        if sealable {
            flags |= rustix::fs::MemfdFlags::ALLOW_SEALING;
        }
        let fd = rustix::fs::memfd_create(name, flags)
            .map_err(|e| error::os("create", &object, e.into()))?;
        rustix::fs::ftruncate(&fd, size as u64)
            .map_err(|e| error::os("resize", &object, e.into()))?;
        Ok(Self { fd, size })
    }

    /// Wraps a memfd received from elsewhere (a parent's fd, stdin).
    ///
    /// # Errors
    /// The fd cannot be examined.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        let st = rustix::fs::fstat(&fd).map_err(|e| error::os("examine", &"memfd", e.into()))?;
        Ok(Self {
            fd,
            size: usize::try_from(st.st_size).unwrap_or(0),
        })
    }

    /// The size in bytes.
    #[must_use]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Adds seals, e.g. `Seals::SHRINK | Seals::GROW | Seals::SEAL` so the
    /// size can never change again.
    ///
    /// # Errors
    /// Not created sealable (`EPERM`), or already sealed with `SEAL`.
    #[doc(alias = "F_ADD_SEALS")]
    ///
    /// # References
    /// [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
    pub fn seal(&self, seals: SealFlags) -> io::Result<()> {
        rustix::fs::fcntl_add_seals(&self.fd, seals)
            .map_err(|e| error::os("seal", &"memfd", e.into()))
    }

    /// The seals in place.
    ///
    /// # Errors
    /// An OS error.
    pub fn seals(&self) -> io::Result<SealFlags> {
        rustix::fs::fcntl_get_seals(&self.fd)
            .map_err(|e| error::os("read the seals of", &"memfd", e.into()))
    }

    /// Maps all of it, shared and read-write.
    ///
    /// # Errors
    /// An OS error (a `WRITE` seal forbids shared writable mappings).
    pub fn map(&self) -> io::Result<Region> {
        MapOptions::new()
            .shared()
            .read_write()
            .len(self.size)
            .map(&self.fd)
    }

    /// Takes the file descriptor.
    #[must_use]
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for Memfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A System V segment's status (`struct shmid_ds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmStat {
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
    /// Size in bytes.
    pub size: u64,
    /// How many attachments exist now.
    pub attaches: u64,
    /// Pid of the creator.
    pub creator_pid: i32,
    /// Pid of the last `shmat`/`shmdt`.
    pub last_pid: i32,
    /// Time of the last attach, seconds since the epoch (0: never).
    pub attach_time: i64,
    /// Time of the last detach.
    pub detach_time: i64,
    /// Time of the last change.
    pub change_time: i64,
    /// Whether it is marked for removal once the last process detaches.
    pub removed: bool,
}

/// A System V shared-memory segment, by id. It lives until removed
/// ([`SysvShm::remove`]) and the last attachment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysvShm {
    id: i32,
}

/// The release function of attached segments: `shmdt`.
fn detach(ptr: NonNull<u8>, _len: usize) {
    // SAFETY: Region calls this once with the address `shmat` returned,
    // when the region that owns the attachment drops.
    unsafe { libc::shmdt(ptr.as_ptr().cast()) };
}

impl SysvShm {
    /// Finds or creates the segment for `key` (`size` bytes when created,
    /// mode 0600). Opening an existing one accepts any `size` up to its
    /// size.
    ///
    /// # Errors
    /// An OS error naming the key (exists, not found, `size` larger than
    /// an existing segment, above `/proc/sys/kernel/shmmax`).
    #[doc(alias = "shmget")]
    ///
    /// # References
    /// [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html)
    pub fn get(key: Key, size: usize, create: Create) -> io::Result<Self> {
        Self::get_with_mode(key, size, create, DEFAULT_MODE)
    }

    /// [`SysvShm::get`] with the permission bits of a new segment.
    ///
    /// # Errors
    /// As [`SysvShm::get`].
    pub fn get_with_mode(key: Key, size: usize, create: Create, mode: u32) -> io::Result<Self> {
        let create = create.for_key(key);
        if size == 0 && create != Create::Open {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot create {} of 0 bytes",
                    key.describe("shared memory segment")
                ),
            ));
        }
        let flags = create.ipc_flags(mode);
        // SAFETY: shmget takes only integers.
        let id = ffi::retry(|| unsafe { libc::shmget(key.raw(), size, flags) })
            .map_err(|e| error::os(create.verb(), &key.describe("shared memory segment"), e))?;
        Ok(Self { id })
    }

    /// A new private segment of `size` bytes, mode 0600.
    ///
    /// # Errors
    /// As [`SysvShm::get`].
    pub fn private(size: usize) -> io::Result<Self> {
        Self::get(Key::PRIVATE, size, Create::Exclusive)
    }

    /// The segment with this id (as `ipcs -m` prints it).
    #[must_use]
    pub const fn from_id(id: i32) -> Self {
        Self { id }
    }

    /// The segment's id.
    #[must_use]
    pub const fn id(self) -> i32 {
        self.id
    }

    fn describe(self) -> String {
        format!("shared memory segment id {}", self.id)
    }

    /// Attaches the segment and returns it as a region, detached
    /// (`shmdt`) when the region drops.
    ///
    /// # Errors
    /// An OS error naming the segment.
    #[doc(alias = "shmat")]
    #[doc(alias = "shmdt")]
    ///
    /// # References
    /// [shmop(2)](https://man7.org/linux/man-pages/man2/shmop.2.html)
    pub fn attach(self, access: Access) -> io::Result<Region> {
        let size = usize::try_from(self.stat()?.size).unwrap_or(0);
        let flags = match access {
            Access::ReadOnly => libc::SHM_RDONLY,
            Access::ReadWrite => 0,
        };
        // SAFETY: a null address lets the kernel choose where to attach.
        let ptr = unsafe { libc::shmat(self.id, std::ptr::null(), flags) };
        if ptr as isize == -1 {
            return Err(error::last("attach", &self.describe()));
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| {
            io::Error::other(format!(
                "failed to attach {}: null address",
                self.describe()
            ))
        })?;
        // SAFETY: shmat mapped `size` bytes (the segment's size) at the
        // page-aligned `ptr`, writable unless SHM_RDONLY — matching
        // `access`; nothing else detaches it; `detach` undoes exactly this
        // attachment.
        Ok(unsafe {
            Region::from_raw_parts(ptr, size, Sharing::Shared, access, Release::With(detach))
        })
    }

    /// The segment's status.
    ///
    /// # Errors
    /// An OS error naming the segment.
    #[doc(alias = "shmctl")]
    #[doc(alias = "IPC_STAT")]
    ///
    /// # References
    /// [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    pub fn stat(self) -> io::Result<ShmStat> {
        // SAFETY: shmid_ds is plain data; all-zero is a valid value.
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: `ds` is a valid out-pointer for IPC_STAT.
        ffi::retry(|| unsafe { libc::shmctl(self.id, libc::IPC_STAT, &raw mut ds) })
            .map_err(|e| error::os("read the status of", &self.describe(), e))?;
        let mode = u32::from(ds.shm_perm.mode);
        Ok(ShmStat {
            key: Key::from_raw(ds.shm_perm.__key),
            mode: mode & 0o777,
            uid: ds.shm_perm.uid,
            gid: ds.shm_perm.gid,
            cuid: ds.shm_perm.cuid,
            cgid: ds.shm_perm.cgid,
            size: ds.shm_segsz as u64,
            attaches: ds.shm_nattch,
            creator_pid: ds.shm_cpid,
            last_pid: ds.shm_lpid,
            attach_time: ds.shm_atime,
            detach_time: ds.shm_dtime,
            change_time: ds.shm_ctime,
            removed: mode & 0o1000 != 0,
        })
    }

    /// Marks the segment for removal: it goes when the last process
    /// detaches, and no one can attach it by key meanwhile.
    ///
    /// # Errors
    /// An OS error naming the segment.
    #[doc(alias = "IPC_RMID")]
    pub fn remove(self) -> io::Result<()> {
        // SAFETY: IPC_RMID takes no buffer.
        ffi::retry(|| unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) })
            .map_err(|e| error::os("remove", &self.describe(), e))?;
        Ok(())
    }
}
