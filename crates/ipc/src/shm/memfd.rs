//! memfd: shared memory with no name (`memfd_create`), reached through
//! its file descriptor and sealable.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use memio_map::{MapOptions, Region};
use rustix::fs::SealFlags;

use crate::error;

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

/// How to create a [`Memfd`]: its size and whether it can be sealed.
///
/// ```
/// use memio_ipc::shm::memfd::{MemfdOptions, Seals};
///
/// let memfd = MemfdOptions::new().size(4096).sealable(true).create("ring")?;
/// memfd.seal(Seals::SHRINK | Seals::GROW)?;
/// let mut region = memfd.map()?;
/// region.write_at(0, b"hello")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemfdOptions {
    size: usize,
    sealable: bool,
}

impl MemfdOptions {
    /// No size yet (one must be given), not sealable.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The size in bytes (above 0).
    #[must_use]
    pub fn size(mut self, bytes: usize) -> Self {
        self.size = bytes;
        self
    }

    /// Whether [`Memfd::seal`] may be used later (`MFD_ALLOW_SEALING`).
    #[must_use]
    pub fn sealable(mut self, yes: bool) -> Self {
        self.sealable = yes;
        self
    }

    /// Creates the memfd; `label` only names it in `/proc/PID/fd`
    /// (`memfd:LABEL`). It closes on exec.
    ///
    /// # Errors
    /// Zero size, or an OS error naming the memfd.
    #[doc(alias = "memfd_create")]
    ///
    /// # References
    /// [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
    pub fn create(&self, label: &str) -> io::Result<Memfd> {
        let object = format!("memfd '{label}'");
        if self.size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot create {object} of 0 bytes"),
            ));
        }
        let mut flags = rustix::fs::MemfdFlags::CLOEXEC;
        if self.sealable {
            flags |= rustix::fs::MemfdFlags::ALLOW_SEALING;
        }
        let fd = rustix::fs::memfd_create(label, flags)
            .map_err(|e| error::os("create", &object, e.into()))?;
        rustix::fs::ftruncate(&fd, self.size as u64)
            .map_err(|e| error::os("resize", &object, e.into()))?;
        Ok(Memfd {
            fd,
            size: self.size,
        })
    }
}

impl Memfd {
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

    /// The size in bytes when created or received.
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

    /// Maps all of it as it is now (another holder of the fd may have
    /// resized it), shared and read-write.
    ///
    /// # Errors
    /// Empty, or an OS error (a `WRITE` seal forbids shared writable
    /// mappings).
    pub fn map(&self) -> io::Result<Region> {
        let st =
            rustix::fs::fstat(&self.fd).map_err(|e| error::os("examine", &"memfd", e.into()))?;
        let size = usize::try_from(st.st_size).unwrap_or(0);
        MapOptions::new()
            .shared()
            .read_write()
            .len(size)
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
