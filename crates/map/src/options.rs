//! How to map: [`MapOptions`] and the choices it takes (sharing, access,
//! huge pages), plus the enums the page-range controls take.
//!
//! # Safety
//!
//! This module makes the `mmap` calls. Each passes a null address hint, so
//! the kernel picks unused addresses and no existing memory is replaced, and
//! hands the result straight to [`Region`], which owns and later unmaps it.
//! It also asks a block device its size (`BLKGETSIZE64`, which writes one
//! `u64`), since `fstat` gives 0 for devices.
#![allow(
    unsafe_code,
    reason = "mmap with a null hint, owned at once by a Region; the BLKGETSIZE64 ioctl"
)]

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::ptr::NonNull;

use rustix::mm::{self, MapFlags, ProtFlags};

use crate::error::{context, exec_context, invalid};
use crate::region::{Region, page_size};

/// Whether writes through a mapping reach the backing object and other
/// processes (`MAP_SHARED`) or stay in this mapping (`MAP_PRIVATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
pub enum Sharing {
    /// `MAP_SHARED`: writes reach the file (or shared memory object) and
    /// every other mapping of it; an anonymous shared mapping is inherited
    /// by children across `fork` as the same memory.
    Shared,
    /// `MAP_PRIVATE`: copy-on-write; the first write to a page gives this
    /// mapping its own copy, invisible to the file and to other processes.
    Private,
}

/// What the mapping allows: reading, reading and writing, and either of
/// them with executing (`PROT_EXEC`).
///
/// Executable access is safe to ask for: the pages only become runnable.
/// Running code in them means turning an address into a function pointer,
/// which is `unsafe` (the bytes must be valid machine code for this CPU and
/// ABI). The kernel may refuse executable pages: a file on a `noexec` mount,
/// or a `W^X` policy (`SELinux` `execmem`, `PaX` `MPROTECT`) that never allows
/// pages writable and executable at once; the error says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "kebab-case")
)]
pub enum Access {
    /// `PROT_READ`.
    ReadOnly,
    /// `PROT_READ | PROT_WRITE`.
    ReadWrite,
    /// `PROT_READ | PROT_EXEC`: code, as the loader maps a program's text.
    ReadExecute,
    /// `PROT_READ | PROT_WRITE | PROT_EXEC`: writable code (a JIT's buffer);
    /// what W^X policies forbid.
    ReadWriteExecute,
}

impl Access {
    /// Whether the access includes writing.
    #[must_use]
    pub const fn writable(self) -> bool {
        matches!(self, Self::ReadWrite | Self::ReadWriteExecute)
    }

    /// Whether the access includes executing.
    #[must_use]
    pub const fn executable(self) -> bool {
        matches!(self, Self::ReadExecute | Self::ReadWriteExecute)
    }

    /// The same rights as a [`Protection`] for [`Region::protect`].
    #[must_use]
    pub const fn protection(self) -> Protection {
        match self {
            Self::ReadOnly => Protection::Read,
            Self::ReadWrite => Protection::ReadWrite,
            Self::ReadExecute => Protection::ReadExecute,
            Self::ReadWriteExecute => Protection::ReadWriteExecute,
        }
    }

    pub(crate) fn prot(self) -> ProtFlags {
        let mut flags = ProtFlags::READ;
        if self.writable() {
            flags |= ProtFlags::WRITE;
        }
        if self.executable() {
            flags |= ProtFlags::EXEC;
        }
        flags
    }
}

/// Which pages back the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HugePages {
    /// Normal pages (transparent huge pages may still apply; see
    /// [`Advice::HugePage`]).
    #[default]
    Off,
    /// `MAP_HUGETLB` with the system's default huge page size. Needs
    /// reserved huge pages (`/proc/sys/vm/nr_hugepages`) or a hugetlbfs file.
    Default,
    /// `MAP_HUGETLB | MAP_HUGE_2MB`.
    Size2MiB,
    /// `MAP_HUGETLB | MAP_HUGE_1GB`.
    Size1GiB,
}

impl HugePages {
    fn flags(self) -> MapFlags {
        match self {
            Self::Off => MapFlags::empty(),
            Self::Default => MapFlags::HUGETLB,
            Self::Size2MiB => MapFlags::HUGETLB | MapFlags::HUGE_2MB,
            Self::Size1GiB => MapFlags::HUGETLB | MapFlags::HUGE_1GB,
        }
    }

    /// The page size the mapping's length is rounded to, when it is known
    /// without asking the system.
    pub(crate) fn granule(self) -> usize {
        match self {
            Self::Off => page_size(),
            Self::Default => crate::system::huge_page_size().unwrap_or(2 << 20),
            Self::Size2MiB => 2 << 20,
            Self::Size1GiB => 1 << 30,
        }
    }
}

/// How [`Region::sync`] writes a shared file mapping back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyncMode {
    /// `MS_SYNC`: write the dirty pages and wait until they are on disk.
    Sync,
    /// `MS_ASYNC`: schedule the write and return (on Linux the pages are
    /// already visible to `read(2)`; this only starts writeback).
    Async,
    /// `MS_INVALIDATE`: ask other mappings of the file to see its current
    /// contents (a no-op on Linux's unified page cache, kept for portability).
    Invalidate,
    /// `MS_SYNC | MS_INVALIDATE`.
    SyncInvalidate,
}

/// Access rights for [`Region::protect`].
///
/// The executable rights are safe to set (see [`Access`]); running code in
/// the pages is `unsafe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protection {
    /// `PROT_NONE`: any access faults (a guard page).
    None,
    /// `PROT_READ`.
    Read,
    /// `PROT_READ | PROT_WRITE`.
    ReadWrite,
    /// `PROT_READ | PROT_EXEC`: code that can run and no longer be written
    /// (the W^X way: write, then flip to this).
    ReadExecute,
    /// `PROT_READ | PROT_WRITE | PROT_EXEC`: refused under a W^X policy.
    ReadWriteExecute,
}

impl Protection {
    /// Whether the pages can be read.
    #[must_use]
    pub const fn readable(self) -> bool {
        !matches!(self, Self::None)
    }

    /// Whether the pages can be written.
    #[must_use]
    pub const fn writable(self) -> bool {
        matches!(self, Self::ReadWrite | Self::ReadWriteExecute)
    }

    /// Whether the pages can be executed.
    #[must_use]
    pub const fn executable(self) -> bool {
        matches!(self, Self::ReadExecute | Self::ReadWriteExecute)
    }
}

/// Usage hints for [`Region::advise`] that never change the region's
/// contents as the program sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Advice {
    /// `MADV_NORMAL`: default read-ahead.
    Normal,
    /// `MADV_SEQUENTIAL`: read ahead aggressively, drop pages behind.
    Sequential,
    /// `MADV_RANDOM`: no read-ahead.
    Random,
    /// `MADV_WILLNEED`: start reading the pages in now.
    WillNeed,
    /// `MADV_HUGEPAGE`: back this range with transparent huge pages.
    HugePage,
    /// `MADV_NOHUGEPAGE`: never use transparent huge pages here.
    NoHugePage,
    /// `MADV_COLD`: these pages are a good candidate for reclaim.
    Cold,
    /// `MADV_PAGEOUT`: reclaim these pages now (contents are kept: written to
    /// the file or swap, read back on the next access).
    PageOut,
    /// `MADV_POPULATE_READ`: fault the pages in readable now (Linux 5.14).
    PopulateRead,
    /// `MADV_POPULATE_WRITE`: fault the pages in writable now (Linux 5.14).
    PopulateWrite,
    /// `MADV_DOFORK`: children created by `fork` get this range again
    /// (undoes [`DestructiveAdvice::DontFork`]).
    DoFork,
    /// `MADV_DONTDUMP`: leave this range out of core dumps (secrets).
    DontDump,
    /// `MADV_DODUMP`: undo [`Advice::DontDump`].
    DoDump,
    /// `MADV_MERGEABLE`: let KSM merge identical pages.
    Mergeable,
    /// `MADV_UNMERGEABLE`: undo [`Advice::Mergeable`].
    Unmergeable,
}

impl Advice {
    pub(crate) fn raw(self) -> mm::Advice {
        match self {
            Self::Normal => mm::Advice::Normal,
            Self::Sequential => mm::Advice::Sequential,
            Self::Random => mm::Advice::Random,
            Self::WillNeed => mm::Advice::WillNeed,
            Self::HugePage => mm::Advice::LinuxHugepage,
            Self::NoHugePage => mm::Advice::LinuxNoHugepage,
            Self::Cold => mm::Advice::LinuxCold,
            Self::PageOut => mm::Advice::LinuxPageOut,
            Self::PopulateRead => mm::Advice::LinuxPopulateRead,
            Self::PopulateWrite => mm::Advice::LinuxPopulateWrite,
            Self::DoFork => mm::Advice::LinuxDoFork,
            Self::DontDump => mm::Advice::LinuxDontDump,
            Self::DoDump => mm::Advice::LinuxDoDump,
            Self::Mergeable => mm::Advice::LinuxMergeable,
            Self::Unmergeable => mm::Advice::LinuxUnmergeable,
        }
    }
}

/// Advice that changes what the program reads back, or what a child made
/// by `fork` finds, kept apart from [`Advice`] because it needs
/// [`Region::advise_unchecked`]:
///
/// ```compile_fail,E0599
/// use memio_map::{Advice, Region};
/// # fn main() -> std::io::Result<()> {
/// let region = Region::anonymous(4096)?;
/// region.advise(.., Advice::DontFork)?; // error: no such safe advice
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DestructiveAdvice {
    /// `MADV_DONTNEED`: drop the pages now; a private mapping reads back
    /// zeros (anonymous) or the file's contents, losing its writes.
    DontNeed,
    /// `MADV_FREE`: the kernel may drop the pages lazily (private anonymous
    /// memory only); contents become unpredictable until written.
    Free,
    /// `MADV_REMOVE`: punch a hole in the backing shared memory or file.
    Remove,
    /// `MADV_WIPEONFORK`: a child created by `fork` sees zeros here.
    WipeOnFork,
    /// `MADV_KEEPONFORK`: undo [`DestructiveAdvice::WipeOnFork`].
    KeepOnFork,
    /// `MADV_DONTFORK`: children created by `fork` do not get this range,
    /// though they inherit the `Region` that owns it.
    DontFork,
}

impl DestructiveAdvice {
    pub(crate) fn raw(self) -> mm::Advice {
        match self {
            Self::DontNeed => mm::Advice::LinuxDontNeed,
            Self::Free => mm::Advice::LinuxFree,
            Self::Remove => mm::Advice::LinuxRemove,
            Self::WipeOnFork => mm::Advice::LinuxWipeOnFork,
            Self::KeepOnFork => mm::Advice::LinuxKeepOnFork,
            Self::DontFork => mm::Advice::LinuxDontFork,
        }
    }
}

/// What a region's memory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
#[non_exhaustive]
pub enum Backing {
    /// A file descriptor: a regular file, POSIX shared memory, a memfd,
    /// `/dev/zero`.
    Fd,
    /// `MAP_ANONYMOUS`: zero-filled memory with no file behind it.
    Anonymous,
    /// Memory handed over with [`Region::from_raw_parts`] (System V shared
    /// memory attached with `shmat`, for instance).
    Raw,
}

/// How a region built with [`Region::from_raw_parts`] is released on drop.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Release {
    /// `munmap(ptr, len)`.
    Munmap,
    /// A function called once with the start and length of the memory
    /// (`shmdt` for System V shared memory). Errors cannot be reported from
    /// `Drop`, so the function swallows them.
    With(fn(NonNull<u8>, usize)),
}

/// How to map: sharing, access, offset, length, populate, huge pages.
///
/// Defaults: shared, read-only, the whole object from offset 0, normal pages,
/// no populate.
///
/// ```
/// use memio_map::{MapOptions, Sharing};
/// # fn main() -> std::io::Result<()> {
/// let region = MapOptions::new().len(1 << 20).sharing(Sharing::Private).read_write().map_anonymous()?;
/// assert_eq!(region.len(), 1 << 20);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct MapOptions {
    offset: u64,
    len: Option<usize>,
    pub(crate) sharing: Sharing,
    pub(crate) access: Access,
    populate: bool,
    pub(crate) huge: HugePages,
}

impl Default for MapOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl MapOptions {
    /// Shared, read-only, whole object, normal pages.
    pub const fn new() -> Self {
        Self {
            offset: 0,
            len: None,
            sharing: Sharing::Shared,
            access: Access::ReadOnly,
            populate: false,
            huge: HugePages::Off,
        }
    }

    /// Start the mapping `offset` bytes into the object. Any offset works:
    /// the region maps from the page below and starts at the byte asked for.
    pub const fn offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// Map `len` bytes (default for an fd: from the offset to the object's
    /// end; required for anonymous memory). Zero is an error at map time.
    pub const fn len(mut self, len: usize) -> Self {
        self.len = Some(len);
        self
    }

    /// `MAP_SHARED` or `MAP_PRIVATE`.
    pub const fn sharing(mut self, sharing: Sharing) -> Self {
        self.sharing = sharing;
        self
    }

    /// Same as `.sharing(Sharing::Shared)`.
    pub const fn shared(self) -> Self {
        self.sharing(Sharing::Shared)
    }

    /// Same as `.sharing(Sharing::Private)`.
    pub const fn private(self) -> Self {
        self.sharing(Sharing::Private)
    }

    /// Read-only or read-write.
    pub const fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// Same as `.access(Access::ReadOnly)`.
    pub const fn read_only(self) -> Self {
        self.access(Access::ReadOnly)
    }

    /// Same as `.access(Access::ReadWrite)`.
    pub const fn read_write(self) -> Self {
        self.access(Access::ReadWrite)
    }

    /// `MAP_POPULATE`: fault every page in while mapping, so the first touch
    /// costs no page fault (and a file is read ahead in one go).
    pub const fn populate(mut self, populate: bool) -> Self {
        self.populate = populate;
        self
    }

    /// `MAP_HUGETLB` and a huge page size. The length is rounded up to the
    /// huge page size.
    pub const fn huge_pages(mut self, huge: HugePages) -> Self {
        self.huge = huge;
        self
    }

    fn prot(&self) -> ProtFlags {
        self.access.prot()
    }

    fn flags(&self) -> MapFlags {
        let mut flags = match self.sharing {
            Sharing::Shared => MapFlags::SHARED,
            Sharing::Private => MapFlags::PRIVATE,
        };
        if self.populate {
            flags |= MapFlags::POPULATE;
        }
        flags | self.huge.flags()
    }

    /// Maps `fd` — a regular file, a POSIX shared memory object, a memfd,
    /// `/dev/zero` — with these options.
    ///
    /// Without [`len`](Self::len), the region covers the object from the
    /// offset to its current end (`fstat`). With it, a regular file (also
    /// POSIX shm and memfds) must already reach `offset + len`: pages past
    /// the end would raise `SIGBUS`, so such a request is an error. The fd may be closed once this
    /// returns; the mapping keeps the object alive.
    ///
    /// Mapping is safe because the region never exposes its bytes as a Rust
    /// reference without `unsafe`. One hazard remains: if the file is
    /// truncated while mapped, touching a page past its new end raises
    /// `SIGBUS` and the process dies. Map files other programs may shrink
    /// only if that is acceptable, or read them with `read(2)`.
    ///
    /// # Errors
    ///
    /// Zero length, a range past the end of a regular file, an offset at or
    /// past the end when no length is given, a device without a length, a
    /// length that overflows, or the kernel's refusal
    /// (`EACCES` for a read-write shared mapping of a file opened read-only,
    /// `ENODEV` for something that cannot be mapped, `ENOMEM`).
    ///
    /// # References
    /// - [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)
    #[doc(alias = "mmap")]
    pub fn map(&self, fd: impl AsFd) -> io::Result<Region> {
        let fd = fd.as_fd();
        let what = format!("fd {}", fd.as_raw_fd());
        self.map_named(fd, &what)
    }

    /// Opens `path` (read-write for a shared read-write mapping, read-only
    /// otherwise) and maps it; errors name the path.
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map), plus failing to open the file.
    pub fn map_path(&self, path: impl AsRef<Path>) -> io::Result<Region> {
        let path = path.as_ref();
        let write = self.sharing == Sharing::Shared && self.access.writable();
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .map_err(|e| context(&e, format_args!("failed to open '{}'", path.display())))?;
        self.map_named(file.as_fd(), &format!("'{}'", path.display()))
    }

    /// Maps `fd`, naming it `what` (`'path'`, `fd 3`) in errors and in the
    /// region's own messages.
    pub(crate) fn map_named(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
        what: &str,
    ) -> io::Result<Region> {
        let stat = rustix::fs::fstat(fd)
            .map_err(|e| context(&e.into(), format_args!("failed to stat {what}")))?;
        // Regular files, POSIX shm, memfds and block devices have a size
        // past which pages raise SIGBUS; devices such as /dev/zero do not.
        let (sized, size) = match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
            rustix::fs::FileType::RegularFile => (true, u64::try_from(stat.st_size).unwrap_or(0)),
            // `st_size` is 0 for a block device: ask the device.
            rustix::fs::FileType::BlockDevice => (true, block_device_size(fd, what)?),
            _ => (false, 0),
        };
        let len = if let Some(len) = self.len {
            let end = self.offset.checked_add(len as u64);
            if sized && len > 0 && end.is_none_or(|end| end > size) {
                return Err(invalid(format_args!(
                    "cannot map {what}: bytes {}..{} reach past its end ({size} bytes); \
                     extend it first (ftruncate)",
                    self.offset,
                    self.offset.saturating_add(len as u64)
                )));
            }
            len
        } else {
            if !sized {
                return Err(invalid(format_args!(
                    "cannot map {what}: it has no size; give a length"
                )));
            }
            if self.offset >= size {
                return Err(invalid(format_args!(
                    "cannot map {what}: offset {} is not below its size {size}",
                    self.offset
                )));
            }
            usize::try_from(size - self.offset)
                .map_err(|_| invalid(format_args!("cannot map {what}: too large for memory")))?
        };
        if len == 0 {
            return Err(invalid(format_args!("cannot map {what}: length is zero")));
        }
        let page = page_size() as u64;
        let head = self.offset % page;
        let aligned = self.offset - head;
        let head = usize::try_from(head).unwrap_or(0);
        let map_len = round_up(
            len.checked_add(head)
                .ok_or_else(|| invalid(format_args!("cannot map {what}: length overflows")))?,
            self.huge.granule(),
        )
        .ok_or_else(|| invalid(format_args!("cannot map {what}: length overflows")))?;
        if self.offset.checked_add(len as u64).is_none() {
            return Err(invalid(format_args!(
                "cannot map {what}: offset + length overflows"
            )));
        }
        // SAFETY: a null hint lets the kernel pick an unused address, so no
        // existing memory is replaced; the result is owned by the Region.
        let base = unsafe {
            mm::mmap(
                std::ptr::null_mut(),
                map_len,
                self.prot(),
                self.flags(),
                fd,
                aligned,
            )
        }
        .map_err(|e| {
            exec_context(
                &e.into(),
                self.access.executable(),
                format_args!(
                    "failed to map {len} bytes of {what} at offset {}",
                    self.offset
                ),
            )
        })?;
        let mut region = Region::owned(base, map_len, head, len, *self, Backing::Fd, Some(what));
        // Other mappings of the object in this process see the same bytes:
        // they share one atomic width.
        region.set_object((stat.st_dev, stat.st_ino));
        Ok(region)
    }

    /// Maps anonymous memory ([`len`](Self::len) bytes, zero-filled).
    /// Shared anonymous memory is inherited across `fork` as the same
    /// memory: the way related processes share a buffer without a name.
    ///
    /// # Errors
    ///
    /// No or zero length, or the kernel's refusal (`ENOMEM`; with huge pages,
    /// none reserved).
    ///
    /// # References
    /// - [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)
    #[doc(alias = "mmap")]
    #[doc(alias = "MAP_ANONYMOUS")]
    pub fn map_anonymous(&self) -> io::Result<Region> {
        let Some(len) = self.len.filter(|&l| l > 0) else {
            return Err(invalid(
                "cannot map anonymous memory: length is zero or not given",
            ));
        };
        if self.offset != 0 {
            return Err(invalid(
                "cannot map anonymous memory: an offset needs a file",
            ));
        }
        let map_len = round_up(len, self.huge.granule())
            .ok_or_else(|| invalid("cannot map anonymous memory: length overflows"))?;
        // SAFETY: a null hint lets the kernel pick an unused address, so no
        // existing memory is replaced; the result is owned by the Region.
        let base =
            unsafe { mm::mmap_anonymous(std::ptr::null_mut(), map_len, self.prot(), self.flags()) }
                .map_err(|e| {
                    exec_context(
                        &e.into(),
                        self.access.executable(),
                        format_args!("failed to map {len} bytes of anonymous memory"),
                    )
                })?;
        Ok(Region::owned(
            base,
            map_len,
            0,
            len,
            *self,
            Backing::Anonymous,
            None,
        ))
    }
}

/// The size in bytes of the block device `fd` (`BLKGETSIZE64`).
///
/// # References
/// - [ioctl(2)](https://man7.org/linux/man-pages/man2/ioctl.2.html)
#[doc(alias = "BLKGETSIZE64")]
fn block_device_size(fd: std::os::fd::BorrowedFd<'_>, what: &str) -> io::Result<u64> {
    // BLKGETSIZE64 is `_IOR(0x12, 114, size_t)`; the kernel writes a u64.
    const BLKGETSIZE64: rustix::ioctl::Opcode = rustix::ioctl::opcode::read::<usize>(0x12, 114);
    // SAFETY: BLKGETSIZE64 is a getter that writes exactly one `u64`.
    let getter = unsafe { rustix::ioctl::Getter::<BLKGETSIZE64, u64>::new() };
    // SAFETY: the getter's buffer is the `u64` the opcode writes; the call
    // reads nothing else.
    unsafe { rustix::ioctl::ioctl(fd, getter) }
        .map_err(|e| context(&e.into(), format_args!("failed to get the size of {what}")))
}

/// `n` rounded up to a multiple of `to` (a power of two); `None` on overflow.
pub(crate) fn round_up(n: usize, to: usize) -> Option<usize> {
    debug_assert!(to.is_power_of_two());
    Some(n.checked_add(to - 1)? & !(to - 1))
}
