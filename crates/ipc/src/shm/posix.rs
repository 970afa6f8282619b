//! POSIX shared-memory objects (`shm_open`), named `/name` and kept in
//! `/dev/shm`, mapped as [`Region`]s.

use std::io;
use std::os::fd::OwnedFd;

use memio_map::{Access, MapOptions, Region};
use rustix::fs::Mode;
use rustix::shm::OFlags;

use crate::error::{self, Error, Result};
use crate::key::{Create, DEFAULT_MODE};
use crate::name::{self, Kind};

fn describe(name: &str) -> String {
    format!("shared memory '{name}'")
}

/// How to open or create a POSIX shared-memory object.
///
/// ```no_run
/// use memio_ipc::shm::posix::ShmOptions;
/// use memio_ipc::Create;
///
/// let mut region = ShmOptions::new().size(1024).open("/my_shm", Create::Exclusive)?;
/// region.write_at(0, b"Hello, POSIX shared memory!")?;
/// memio_ipc::shm::posix::unlink("/my_shm")?;
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
        self.open_prepared(name, create, &mut |_| Ok(()))
    }

    /// [`ShmOptions::open`], running `prepare` on the object's descriptor
    /// once it is sized and before it is mapped (to give a new object its
    /// first contents with `pwrite`, before any mapping of it exists here).
    pub(crate) fn open_prepared(
        &self,
        name: &str,
        create: Create,
        prepare: &mut dyn FnMut(&OwnedFd) -> io::Result<()>,
    ) -> Result<Region> {
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
        let result = self.size_and_map(&fd, &object, prepare);
        if result.is_err() {
            made();
        }
        result
    }

    fn size_and_map(
        &self,
        fd: &OwnedFd,
        object: &str,
        prepare: &mut dyn FnMut(&OwnedFd) -> io::Result<()>,
    ) -> Result<Region> {
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
        prepare(fd).map_err(|e| error::os("fill", &object, e))?;
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
