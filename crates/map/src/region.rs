//! [`Region`]: one type for every range of mapped memory.
//!
//! # Safety
//!
//! This module owns the raw `mmap`/`munmap` calls and every access to mapped
//! bytes. The hazards it handles:
//!
//! - **Lifetime**: a mapping must be unmapped exactly once and never used
//!   afterwards. [`Region`] owns its mapping and unmaps it in `Drop`; every
//!   borrow of its bytes is tied to `&self`/`&mut self`.
//! - **Aliasing**: memory that another process (or another mapping of the
//!   same file, or `write(2)` on the file) can change must not sit behind a
//!   Rust reference while it changes. So the region never hands out `&[u8]`
//!   safely: [`Region::as_slice`] and [`Region::as_mut_slice`] are `unsafe`
//!   with the rule spelled out, and the safe paths are copies
//!   ([`Region::read_at`], [`Region::write_at`]) and atomics
//!   ([`Region::atomic_u32`], [`Region::atomic_u64`]).
//! - **Truncation**: touching a page of a file mapping past the file's
//!   current end raises `SIGBUS`, which ends the process. That is a crash,
//!   not memory corruption; documented on [`MapOptions::map`].
//! - **Ranges**: every operation on a byte range checks it against the
//!   region's length before any pointer arithmetic, and rounds it outwards to
//!   whole pages inside the mapping.
#![allow(
    unsafe_code,
    reason = "mmap, munmap, msync, madvise, mprotect, mlock and mincore on memory this module owns"
)]

use std::ffi::c_void;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::{Bound, Range, RangeBounds};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};

use rustix::mm::{self, MapFlags, MlockFlags, MprotectFlags, MremapFlags, MsyncFlags, ProtFlags};

use crate::error::{context, invalid, memlock_context};

/// The size of a page on this machine, in bytes.
///
/// # References
/// - [getpagesize(2)](https://man7.org/linux/man-pages/man2/getpagesize.2.html)
#[doc(alias = "getpagesize")]
#[doc(alias = "sysconf")]
#[must_use]
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// Whether writes through a mapping reach the backing object and other
/// processes (`MAP_SHARED`) or stay in this mapping (`MAP_PRIVATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// `MAP_SHARED`: writes reach the file (or shared memory object) and
    /// every other mapping of it; an anonymous shared mapping is inherited
    /// by children across `fork` as the same memory.
    Shared,
    /// `MAP_PRIVATE`: copy-on-write; the first write to a page gives this
    /// mapping its own copy, invisible to the file and to other processes.
    Private,
}

/// What the mapping allows: reading only, or reading and writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// `PROT_READ`.
    ReadOnly,
    /// `PROT_READ | PROT_WRITE`.
    ReadWrite,
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
    fn granule(self) -> usize {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protection {
    /// `PROT_NONE`: any access faults (a guard page).
    None,
    /// `PROT_READ`.
    Read,
    /// `PROT_READ | PROT_WRITE`.
    ReadWrite,
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
    /// `MADV_DONTFORK`: children created by `fork` do not get this range.
    DontFork,
    /// `MADV_DOFORK`: undo [`Advice::DontFork`].
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
    fn raw(self) -> mm::Advice {
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
            Self::DontFork => mm::Advice::LinuxDontFork,
            Self::DoFork => mm::Advice::LinuxDoFork,
            Self::DontDump => mm::Advice::LinuxDontDump,
            Self::DoDump => mm::Advice::LinuxDoDump,
            Self::Mergeable => mm::Advice::LinuxMergeable,
            Self::Unmergeable => mm::Advice::LinuxUnmergeable,
        }
    }
}

/// Advice that changes what the program reads back, kept apart from
/// [`Advice`] because it needs [`Region::advise_unchecked`].
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
}

impl DestructiveAdvice {
    fn raw(self) -> mm::Advice {
        match self {
            Self::DontNeed => mm::Advice::LinuxDontNeed,
            Self::Free => mm::Advice::LinuxFree,
            Self::Remove => mm::Advice::LinuxRemove,
            Self::WipeOnFork => mm::Advice::LinuxWipeOnFork,
            Self::KeepOnFork => mm::Advice::LinuxKeepOnFork,
        }
    }
}

/// What a region's memory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
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
    sharing: Sharing,
    access: Access,
    populate: bool,
    huge: HugePages,
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
        match self.access {
            Access::ReadOnly => ProtFlags::READ,
            Access::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
        }
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
    /// offset to its current end (`fstat`). The fd may be closed once this
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
    /// Zero length, an offset at or past the end of the object when no
    /// length is given, a length that overflows, or the kernel's refusal
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
        let write = self.sharing == Sharing::Shared && self.access == Access::ReadWrite;
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .map_err(|e| context(&e, format_args!("failed to open '{}'", path.display())))?;
        self.map_named(file.as_fd(), &format!("'{}'", path.display()))
    }

    fn map_named(&self, fd: std::os::fd::BorrowedFd<'_>, what: &str) -> io::Result<Region> {
        let len = if let Some(len) = self.len {
            len
        } else {
            let size = rustix::fs::fstat(fd)
                .map_err(|e| context(&e.into(), format_args!("failed to stat {what}")))?
                .st_size;
            let size = u64::try_from(size).unwrap_or(0);
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
            context(
                &e.into(),
                format_args!(
                    "failed to map {len} bytes of {what} at offset {}",
                    self.offset
                ),
            )
        })?;
        Ok(Region::owned(base, map_len, head, len, *self, Backing::Fd))
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
                    context(
                        &e.into(),
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
        ))
    }
}

fn round_up(n: usize, to: usize) -> Option<usize> {
    debug_assert!(to.is_power_of_two());
    Some(n.checked_add(to - 1)? & !(to - 1))
}

/// A range of mapped memory, unmapped when dropped.
///
/// Made by [`MapOptions`] (files, shared memory objects, memfds, anonymous
/// memory), [`Region::anonymous`], [`Region::anonymous_shared`], or
/// [`Region::from_raw_parts`] (memory mapped by someone else, such as System
/// V shared memory). Page-granular controls live here once: [`sync`],
/// [`advise`], [`protect`], [`lock`], [`residency`].
///
/// # Reaching the bytes
///
/// Memory that other processes can change is not a Rust slice: a `&[u8]`
/// promises the bytes do not change while it lives. So:
///
/// - [`read_at`]/[`write_at`] copy in and out, bounds-checked. Safe. If
///   another process writes the same bytes at the same moment the copy may
///   see some old and some new bytes; agree on a protocol (a lock, a
///   sequence counter) for consistent snapshots.
/// - [`atomic_u32`]/[`atomic_u64`] give `&AtomicU32`/`&AtomicU64` inside the
///   region, the right tool for flags, counters and futex words shared
///   between processes; [`as_atomic_u64s`]/[`as_atomic_u8s`] view the whole
///   region as atomics, to scan it in place without a copy. Safe.
/// - [`as_ptr`]/[`as_mut_ptr`] give raw pointers for everything else;
///   dereferencing them is `unsafe` and the caller's contract.
/// - [`as_slice`]/[`as_mut_slice`] give slices, `unsafe`: the caller promises
///   nothing else changes the bytes while the slice lives (true for private
///   and anonymous private memory that was not shared by `fork`).
///
/// [`sync`]: Region::sync
/// [`advise`]: Region::advise
/// [`protect`]: Region::protect
/// [`lock`]: Region::lock
/// [`residency`]: Region::residency
/// [`read_at`]: Region::read_at
/// [`write_at`]: Region::write_at
/// [`atomic_u32`]: Region::atomic_u32
/// [`atomic_u64`]: Region::atomic_u64
/// [`as_atomic_u64s`]: Region::as_atomic_u64s
/// [`as_atomic_u8s`]: Region::as_atomic_u8s
/// [`as_ptr`]: Region::as_ptr
/// [`as_mut_ptr`]: Region::as_mut_ptr
/// [`as_slice`]: Region::as_slice
/// [`as_mut_slice`]: Region::as_mut_slice
pub struct Region {
    /// Page-aligned start of the mapping.
    base: NonNull<u8>,
    /// Bytes mapped from `base` (what `munmap` gets).
    map_len: usize,
    /// Bytes between `base` and the region's first byte (a file offset that
    /// was not page-aligned).
    head: usize,
    /// The region's length as asked for.
    len: usize,
    sharing: Sharing,
    access: Access,
    backing: Backing,
    /// The page size the mapping is made of (base or huge).
    granule: usize,
    release: Release,
}

// SAFETY: a Region exclusively owns its mapping, like a `Box<[u8]>`. Its
// `&self` methods either call thread-safe syscalls on the range or copy bytes
// out through raw pointers; every method that writes bytes without atomics
// takes `&mut self`. Moving it to another thread moves that ownership.
unsafe impl Send for Region {}
// SAFETY: shared references only allow reads (`read_at`, unsafe
// `as_slice`), atomic operations, and syscalls the kernel serialises
// (msync, madvise, mprotect, mlock, mincore); plain writes need `&mut self`,
// so two threads holding `&Region` cannot race on non-atomic accesses.
unsafe impl Sync for Region {}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("ptr", &self.as_ptr())
            .field("len", &self.len)
            .field("sharing", &self.sharing)
            .field("access", &self.access)
            .field("backing", &self.backing)
            .finish_non_exhaustive()
    }
}

impl Region {
    fn owned(
        base: *mut c_void,
        map_len: usize,
        head: usize,
        len: usize,
        options: MapOptions,
        backing: Backing,
    ) -> Self {
        debug_assert!(head + len <= map_len);
        Self {
            // mmap never returns null on success without MAP_FIXED.
            base: NonNull::new(base.cast::<u8>()).unwrap_or(NonNull::dangling()),
            map_len,
            head,
            len,
            sharing: options.sharing,
            access: options.access,
            backing,
            granule: options.huge.granule(),
            release: Release::Munmap,
        }
    }

    /// `len` bytes of private, read-write, zero-filled anonymous memory: what
    /// `malloc` uses for large blocks.
    ///
    /// # Errors
    ///
    /// Zero length or `ENOMEM`.
    ///
    /// # References
    /// - [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)
    #[doc(alias = "mmap")]
    pub fn anonymous(len: usize) -> io::Result<Self> {
        MapOptions::new()
            .private()
            .read_write()
            .len(len)
            .map_anonymous()
    }

    /// `len` bytes of shared, read-write, zero-filled anonymous memory:
    /// children created by `fork` share it with the parent.
    ///
    /// # Errors
    ///
    /// Zero length or `ENOMEM`.
    pub fn anonymous_shared(len: usize) -> io::Result<Self> {
        MapOptions::new()
            .shared()
            .read_write()
            .len(len)
            .map_anonymous()
    }

    /// Takes ownership of memory mapped by other means, released on drop as
    /// `release` says.
    ///
    /// # Safety
    ///
    /// - `ptr` is page-aligned and the `len` bytes from it are mapped, stay
    ///   mapped until the region drops, and are not released by anyone else.
    /// - `access` matches the memory's protection: `ReadWrite` only if it is
    ///   writable.
    /// - `release` undoes the mapping exactly (for `Release::Munmap`, the
    ///   memory came from one or more `mmap` calls covering exactly `len`
    ///   bytes rounded up to pages).
    #[must_use]
    pub unsafe fn from_raw_parts(
        ptr: NonNull<u8>,
        len: usize,
        sharing: Sharing,
        access: Access,
        release: Release,
    ) -> Self {
        debug_assert!(ptr.as_ptr() as usize % page_size() == 0);
        Self {
            base: ptr,
            map_len: len,
            head: 0,
            len,
            sharing,
            access,
            backing: Backing::Raw,
            granule: page_size(),
            release,
        }
    }

    /// The region's length in bytes (never zero).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: zero-length regions cannot be made.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Shared or private.
    #[must_use]
    pub const fn sharing(&self) -> Sharing {
        self.sharing
    }

    /// The access the region was mapped with (not changed by
    /// [`protect`](Self::protect)).
    #[must_use]
    pub const fn access(&self) -> Access {
        self.access
    }

    /// What the memory comes from.
    #[must_use]
    pub const fn backing(&self) -> Backing {
        self.backing
    }

    /// The first byte of the region.
    #[must_use]
    pub const fn as_ptr(&self) -> *const u8 {
        self.as_mut_ptr().cast_const()
    }

    /// The first byte of the region, for writing through.
    ///
    /// Getting the pointer is safe; writing through it is `unsafe` and needs
    /// a read-write region and no live reference (from
    /// [`as_slice`](Self::as_slice)) over the bytes written.
    #[must_use]
    pub const fn as_mut_ptr(&self) -> *mut u8 {
        // SAFETY: `head < map_len`, so the result stays inside the mapping.
        unsafe { self.base.as_ptr().add(self.head) }
    }

    /// The region's bytes as a slice.
    ///
    /// # Safety
    ///
    /// While the slice lives nothing may change these bytes: no other
    /// process through a shared mapping, no `write(2)` to the mapped file, no
    /// truncation of the file (that would also raise `SIGBUS`), and no
    /// [`protect`](Self::protect) to [`Protection::None`]. Private anonymous
    /// memory and private mappings of files nobody writes meet this.
    #[must_use]
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the `len` bytes from `as_ptr` are mapped and readable for
        // the region's lifetime, which the borrow of `self` bounds; the
        // caller promises they do not change meanwhile.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// The region's bytes as a mutable slice.
    ///
    /// # Safety
    ///
    /// As [`as_slice`](Self::as_slice): nothing outside this process reads
    /// or writes the bytes while the slice lives (a shared mapping's other
    /// users would race with the writes). The region must be read-write,
    /// otherwise writing through the slice raises `SIGSEGV`.
    #[must_use]
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the bytes are mapped for the region's lifetime and `&mut
        // self` excludes every other borrow in this process; the caller
        // vouches for other processes.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len) }
    }

    /// Checks `offset..offset+n` against the region and returns `offset`.
    fn check(&self, offset: usize, n: usize) -> io::Result<usize> {
        match offset.checked_add(n) {
            Some(end) if end <= self.len => Ok(offset),
            _ => Err(invalid(format_args!(
                "range {offset}..{} is outside the region of {} bytes",
                offset.saturating_add(n),
                self.len
            ))),
        }
    }

    /// Copies `buf.len()` bytes starting `offset` bytes into the region into
    /// `buf`.
    ///
    /// # Errors
    ///
    /// The range reaches past the region's end.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        let src = self.as_ptr().wrapping_add(self.check(offset, buf.len())?);
        // SAFETY: the source range was checked to lie inside the mapping,
        // which is readable while `self` is borrowed; `buf` is a distinct
        // Rust allocation, so the ranges cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len());
        }
        Ok(())
    }

    /// Copies `data` into the region starting `offset` bytes in.
    ///
    /// # Errors
    ///
    /// The range reaches past the region's end, or the region is
    /// read-only.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> io::Result<()> {
        let dst = self
            .as_mut_ptr()
            .wrapping_add(self.check(offset, data.len())?);
        if self.access == Access::ReadOnly {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "cannot write to a read-only region",
            ));
        }
        // SAFETY: the range was checked to lie inside the mapping, which was
        // mapped writable; `&mut self` excludes references from `as_slice`
        // in this process; `data` cannot overlap memory we own exclusively.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
        }
        Ok(())
    }

    /// Fills `offset..offset+len` with `byte` (memset).
    ///
    /// # Errors
    ///
    /// As [`write_at`](Self::write_at).
    pub fn fill(&mut self, offset: usize, len: usize, byte: u8) -> io::Result<()> {
        let dst = self.as_mut_ptr().wrapping_add(self.check(offset, len)?);
        if self.access == Access::ReadOnly {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "cannot write to a read-only region",
            ));
        }
        // SAFETY: as in `write_at`: checked range, writable mapping, `&mut self`.
        unsafe { std::ptr::write_bytes(dst, byte, len) };
        Ok(())
    }

    /// The 4 bytes at `offset` as an atomic, for flags, counters and futex
    /// words shared with other processes.
    ///
    /// # Errors
    ///
    /// `offset` is not 4-byte aligned (relative to the region's start, which
    /// is page-aligned unless mapped at an unaligned file offset) or the
    /// word is past the end.
    pub fn atomic_u32(&self, offset: usize) -> io::Result<&AtomicU32> {
        let ptr = self.atomic_ptr::<u32>(offset)?;
        // SAFETY: `atomic_ptr` checked bounds and alignment; the memory is
        // mapped for the borrow of `self`; atomics tolerate concurrent
        // access from other threads and processes; no `&mut` to the bytes
        // can exist while `&self` is borrowed.
        Ok(unsafe { AtomicU32::from_ptr(ptr.cast()) })
    }

    /// The 8 bytes at `offset` as an atomic; see [`atomic_u32`](Self::atomic_u32).
    ///
    /// # Errors
    ///
    /// Misaligned or out of range.
    pub fn atomic_u64(&self, offset: usize) -> io::Result<&AtomicU64> {
        let ptr = self.atomic_ptr::<u64>(offset)?;
        // SAFETY: as in `atomic_u32`.
        Ok(unsafe { AtomicU64::from_ptr(ptr.cast()) })
    }

    /// The region's whole 8-byte words as atomics: the safe way to scan a
    /// mapping in place (no copy) even while other processes write it. A
    /// `Relaxed` load compiles to a plain load, and such loads are sound on
    /// read-only memory too. Bytes past the last whole word are left out.
    ///
    /// # Errors
    ///
    /// The region does not start on an 8-byte boundary (it was mapped at a
    /// file offset that is not a multiple of 8).
    pub fn as_atomic_u64s(&self) -> io::Result<&[AtomicU64]> {
        let ptr = self.as_mut_ptr();
        if (ptr as usize) % align_of::<AtomicU64>() != 0 {
            return Err(invalid("region does not start on an 8-byte boundary"));
        }
        #[allow(clippy::cast_ptr_alignment, reason = "alignment checked just above")]
        let ptr = ptr.cast::<AtomicU64>();
        // SAFETY: the `len / 8` whole words from `ptr` are mapped for the
        // borrow of `self` and `ptr` is 8-aligned (checked); atomics tolerate
        // concurrent writers in any process; `&mut` access to the bytes needs
        // `&mut self`, excluded by this borrow.
        Ok(unsafe { std::slice::from_raw_parts(ptr, self.len / 8) })
    }

    /// The region's bytes as atomics; see [`as_atomic_u64s`](Self::as_atomic_u64s).
    #[must_use]
    pub fn as_atomic_u8s(&self) -> &[AtomicU8] {
        // SAFETY: the `len` bytes from `as_mut_ptr` are mapped for the borrow
        // of `self`; `AtomicU8` has alignment 1 and tolerates concurrent
        // writers; `&mut` access needs `&mut self`, excluded by this borrow.
        unsafe { std::slice::from_raw_parts(self.as_mut_ptr().cast::<AtomicU8>(), self.len) }
    }

    fn atomic_ptr<T>(&self, offset: usize) -> io::Result<*mut u8> {
        let offset = self.check(offset, size_of::<T>())?;
        let ptr = self.as_mut_ptr().wrapping_add(offset);
        if (ptr as usize) % align_of::<T>() != 0 {
            return Err(invalid(format_args!(
                "offset {offset} is not aligned to {} bytes",
                align_of::<T>()
            )));
        }
        Ok(ptr)
    }

    /// Rounds `range` (relative to the region) outwards to whole pages and
    /// returns the page-aligned pointer and length.
    fn pages(&self, range: impl RangeBounds<usize>) -> io::Result<(*mut c_void, usize)> {
        let Range { start, end } = self.bounds(range)?;
        let granule = self.granule;
        let first = (self.head + start) & !(granule - 1);
        let last = round_up(self.head + end, granule)
            .unwrap_or(self.map_len)
            .min(self.map_len);
        // SAFETY: `first < map_len`, so the pointer stays inside the mapping.
        let ptr = unsafe { self.base.as_ptr().add(first) };
        Ok((ptr.cast(), last - first))
    }

    /// Resolves `range` against the region's length: empty or out-of-range
    /// requests are errors.
    fn bounds(&self, range: impl RangeBounds<usize>) -> io::Result<Range<usize>> {
        let start = match range.start_bound() {
            Bound::Included(&s) => Some(s),
            Bound::Excluded(&s) => s.checked_add(1),
            Bound::Unbounded => Some(0),
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.checked_add(1),
            Bound::Excluded(&e) => Some(e),
            Bound::Unbounded => Some(self.len),
        };
        match (start, end) {
            (Some(start), Some(end)) if start < end && end <= self.len => Ok(start..end),
            (Some(start), Some(end)) if start >= end => {
                Err(invalid(format_args!("range {start}..{end} is empty")))
            }
            _ => Err(invalid(format_args!(
                "range is outside the region of {} bytes",
                self.len
            ))),
        }
    }

    /// Writes the pages covering `range` back to the file (`msync`).
    /// Meaningful for shared file mappings; on anonymous or private memory
    /// it succeeds and does nothing.
    ///
    /// # Errors
    ///
    /// Empty or out-of-range `range`, or an I/O error writing back.
    ///
    /// # References
    /// - [msync(2)](https://man7.org/linux/man-pages/man2/msync.2.html)
    #[doc(alias = "msync")]
    pub fn sync(&self, range: impl RangeBounds<usize>, mode: SyncMode) -> io::Result<()> {
        let (ptr, len) = self.pages(range)?;
        let flags = match mode {
            SyncMode::Sync => MsyncFlags::SYNC,
            SyncMode::Async => MsyncFlags::ASYNC,
            SyncMode::Invalidate => MsyncFlags::INVALIDATE,
            SyncMode::SyncInvalidate => MsyncFlags::SYNC | MsyncFlags::INVALIDATE,
        };
        // SAFETY: `pages` returned a page-aligned range inside our mapping;
        // msync does not change what the program reads.
        unsafe { mm::msync(ptr, len, flags) }
            .map_err(|e| context(&e.into(), format_args!("failed to sync {len} bytes")))
    }

    /// Gives the kernel a usage hint for the pages covering `range`
    /// (`madvise`). These hints never change the contents the program sees.
    ///
    /// # Errors
    ///
    /// Empty or out-of-range `range`, or advice the kernel does not support
    /// here (`EINVAL`: huge pages disabled, KSM not built in).
    ///
    /// # References
    /// - [madvise(2)](https://man7.org/linux/man-pages/man2/madvise.2.html)
    #[doc(alias = "madvise")]
    pub fn advise(&self, range: impl RangeBounds<usize>, advice: Advice) -> io::Result<()> {
        let (ptr, len) = self.pages(range)?;
        // SAFETY: the range lies inside our mapping and `Advice` holds only
        // hints that keep the contents as the program sees them.
        unsafe { mm::madvise(ptr, len, advice.raw()) }
            .map_err(|e| context(&e.into(), format_args!("failed to advise {advice:?}")))
    }

    /// Gives advice that changes what the program reads back
    /// ([`DestructiveAdvice`]).
    ///
    /// # Safety
    ///
    /// No reference to the affected bytes may be live (the contents change
    /// under it), and the program must not rely on the discarded contents.
    ///
    /// # Errors
    ///
    /// As [`advise`](Self::advise).
    ///
    /// # References
    /// - [madvise(2)](https://man7.org/linux/man-pages/man2/madvise.2.html)
    #[doc(alias = "madvise")]
    pub unsafe fn advise_unchecked(
        &self,
        range: impl RangeBounds<usize>,
        advice: DestructiveAdvice,
    ) -> io::Result<()> {
        let (ptr, len) = self.pages(range)?;
        // SAFETY: the range lies inside our mapping; the caller accepts the
        // change of contents and holds no reference over it.
        unsafe { mm::madvise(ptr, len, advice.raw()) }
            .map_err(|e| context(&e.into(), format_args!("failed to advise {advice:?}")))
    }

    /// Changes the access rights of the pages covering `range` (`mprotect`).
    /// An access the new rights forbid raises `SIGSEGV`: a guard page, or
    /// data made read-only after it is built.
    ///
    /// # Errors
    ///
    /// Empty or out-of-range `range`; `EACCES` when asking for write access
    /// to a shared mapping of a file opened read-only.
    ///
    /// # References
    /// - [mprotect(2)](https://man7.org/linux/man-pages/man2/mprotect.2.html)
    #[doc(alias = "mprotect")]
    pub fn protect(
        &self,
        range: impl RangeBounds<usize>,
        protection: Protection,
    ) -> io::Result<()> {
        let (ptr, len) = self.pages(range)?;
        let flags = match protection {
            Protection::None => MprotectFlags::empty(),
            Protection::Read => MprotectFlags::READ,
            Protection::ReadWrite => MprotectFlags::READ | MprotectFlags::WRITE,
        };
        // SAFETY: the range lies inside our mapping. Removing rights can
        // only make later accesses fault (a crash, not corruption); no
        // executable rights are offered.
        unsafe { mm::mprotect(ptr, len, flags) }.map_err(|e| {
            context(
                &e.into(),
                format_args!("failed to protect {len} bytes as {protection:?}"),
            )
        })
    }

    /// Locks the pages covering `range` in memory (`mlock`): they are read in
    /// now and never swapped out until the guard drops (`munlock`).
    ///
    /// Locks do not nest: unlocking a page unlocks it for every guard over
    /// it. Unmapping unlocks too.
    ///
    /// # Errors
    ///
    /// Empty or out-of-range `range`; `ENOMEM`/`EPERM` past
    /// `RLIMIT_MEMLOCK`, which the message names with its current value.
    ///
    /// # References
    /// - [mlock(2)](https://man7.org/linux/man-pages/man2/mlock.2.html)
    #[doc(alias = "mlock")]
    pub fn lock(&self, range: impl RangeBounds<usize>) -> io::Result<LockGuard<'_>> {
        self.lock_with(range, false)
    }

    /// Like [`lock`](Self::lock), but pages are locked as they are first
    /// touched rather than all at once (`mlock2(MLOCK_ONFAULT)`).
    ///
    /// # Errors
    ///
    /// As [`lock`](Self::lock).
    ///
    /// # References
    /// - [mlock2(2)](https://man7.org/linux/man-pages/man2/mlock2.2.html)
    #[doc(alias = "mlock2")]
    pub fn lock_on_fault(&self, range: impl RangeBounds<usize>) -> io::Result<LockGuard<'_>> {
        self.lock_with(range, true)
    }

    fn lock_with(
        &self,
        range: impl RangeBounds<usize>,
        on_fault: bool,
    ) -> io::Result<LockGuard<'_>> {
        let (ptr, len) = self.pages(range)?;
        let result = if on_fault {
            // SAFETY: the range lies inside our mapping; locking does not
            // change its contents.
            unsafe { mm::mlock_with(ptr, len, MlockFlags::ONFAULT) }
        } else {
            // SAFETY: as above.
            unsafe { mm::mlock(ptr, len) }
        };
        result.map_err(|e| memlock_context(&e.into(), len))?;
        Ok(LockGuard {
            ptr,
            len,
            _region: std::marker::PhantomData,
        })
    }

    /// Which pages covering `range` are resident in memory right now
    /// (`mincore`): one flag per page, first page first.
    ///
    /// For a file mapping this is the page cache's state, which `mincore`
    /// reports truthfully only when the caller owns or can write the file
    /// (Linux 5.2+); see [`crate::cache`] for a trustworthy file answer.
    ///
    /// # Errors
    ///
    /// Empty or out-of-range `range`.
    ///
    /// # References
    /// - [mincore(2)](https://man7.org/linux/man-pages/man2/mincore.2.html)
    #[doc(alias = "mincore")]
    pub fn residency(&self, range: impl RangeBounds<usize>) -> io::Result<Vec<bool>> {
        let (ptr, len) = self.pages(range)?;
        let page = page_size();
        let mut vec = vec![0u8; len.div_ceil(page)];
        // SAFETY: `ptr..ptr+len` is page-aligned and mapped (ours); `vec`
        // has one byte per page of it, as mincore requires.
        let rc = unsafe { libc::mincore(ptr, len, vec.as_mut_ptr()) };
        if rc != 0 {
            return Err(context(
                &io::Error::last_os_error(),
                "failed to query residency",
            ));
        }
        Ok(vec.into_iter().map(|b| b & 1 != 0).collect())
    }

    /// Grows or shrinks the mapping to `new_len` bytes, moving it if needed
    /// (`mremap(MREMAP_MAYMOVE)`). Pointers taken before are invalid after.
    pub(crate) fn remap(&mut self, new_len: usize) -> io::Result<()> {
        if new_len == 0 {
            return Err(invalid("cannot resize a region to zero bytes"));
        }
        if !matches!(self.release, Release::Munmap) {
            return Err(invalid("cannot resize memory this region did not map"));
        }
        let map_len = self
            .head
            .checked_add(new_len)
            .and_then(|n| round_up(n, self.granule))
            .ok_or_else(|| invalid("cannot resize region: length overflows"))?;
        // SAFETY: `base..base+map_len` is exactly our mapping; `&mut self`
        // means no reference into it is live, so it may move.
        let base = unsafe {
            mm::mremap(
                self.base.as_ptr().cast(),
                self.map_len,
                map_len,
                MremapFlags::MAYMOVE,
            )
        }
        .map_err(|e| {
            context(
                &e.into(),
                format_args!("failed to resize mapping to {new_len} bytes"),
            )
        })?;
        self.base = NonNull::new(base.cast()).unwrap_or(self.base);
        self.map_len = map_len;
        self.len = new_len;
        Ok(())
    }

    /// Unmaps now and reports an error, which `Drop` cannot.
    ///
    /// # Errors
    ///
    /// `munmap` failed (it does not for a mapping this crate made).
    ///
    /// # References
    /// - [munmap(2)](https://man7.org/linux/man-pages/man2/munmap.2.html)
    #[doc(alias = "munmap")]
    pub fn unmap(self) -> io::Result<()> {
        let this = std::mem::ManuallyDrop::new(self);
        this.release()
    }

    fn release(&self) -> io::Result<()> {
        match self.release {
            // SAFETY: we own exactly `base..base+map_len`; the region is
            // being consumed, so nothing can use it afterwards.
            Release::Munmap => unsafe { mm::munmap(self.base.as_ptr().cast(), self.map_len) }
                .map_err(|e| context(&e.into(), "failed to unmap region")),
            Release::With(release) => {
                release(self.base, self.map_len);
                Ok(())
            }
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // Nothing sensible can be done with an error in drop; munmap of a
        // mapping we made does not fail.
        let _ = self.release();
    }
}

/// Keeps pages locked in memory; unlocks them (`munlock`) when dropped.
#[derive(Debug)]
#[must_use = "the pages are unlocked as soon as the guard drops"]
pub struct LockGuard<'a> {
    ptr: *mut c_void,
    len: usize,
    _region: std::marker::PhantomData<&'a Region>,
}

impl LockGuard<'_> {
    /// Bytes locked (whole pages).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: empty ranges are refused.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: the range was locked by us inside a region that outlives
        // this guard (the borrow), so it is still mapped.
        let _ = unsafe { mm::munlock(self.ptr, self.len) };
    }
}

/// Opens `path` and returns the file with its length, for callers that map
/// and also need the file (growable regions, page-cache queries).
pub(crate) fn open_rw(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(|e| context(&e, format_args!("failed to open '{}'", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(contents: &[u8]) -> (std::path::PathBuf, File) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "memio-map-region-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = open_rw(&path, true).unwrap();
        file.set_len(0).unwrap();
        file.write_all(contents).unwrap();
        (path, file)
    }

    #[test]
    fn anonymous_memory_is_zeroed_and_writable() {
        let mut r = Region::anonymous(10_000).unwrap();
        assert_eq!(r.len(), 10_000);
        let mut buf = [1u8; 16];
        r.read_at(9_984, &mut buf).unwrap();
        assert_eq!(buf, [0; 16]);
        r.write_at(9_990, b"0123456789").unwrap();
        r.read_at(9_990, &mut buf[..10]).unwrap();
        assert_eq!(&buf[..10], b"0123456789");
    }

    #[test]
    fn zero_length_and_out_of_range_are_errors() {
        let e = Region::anonymous(0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("length is zero"), "{e}");
        let mut r = Region::anonymous(100).unwrap();
        assert!(r.write_at(95, b"123456").is_err());
        assert!(r.read_at(usize::MAX, &mut [0; 2]).is_err());
        assert!(r.sync(50..50, SyncMode::Sync).is_err());
        assert!(r.advise(0..101, Advice::Normal).is_err());
        assert!(r.residency(200..).is_err());
        assert!(r.atomic_u32(98).is_err());
        assert!(r.atomic_u32(2).is_err(), "misaligned");
        let (path, file) = temp_file(b"");
        let e = MapOptions::new().map(&file).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = MapOptions::new().map_path(path.join("nope")).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn unaligned_offset_maps_the_byte_asked_for() {
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        let (path, file) = temp_file(&data);
        let r = MapOptions::new().offset(5000).len(100).map(&file).unwrap();
        let mut buf = [0u8; 100];
        r.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf[..], &data[5000..5100]);
        // Whole-file default from an offset.
        let r = MapOptions::new().offset(4097).map(&file).unwrap();
        assert_eq!(r.len(), data.len() - 4097);
        assert_eq!(r.residency(..).unwrap().len(), 2);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn shared_writes_reach_the_file_and_private_writes_do_not() {
        let (path, file) = temp_file(&[b'.'; 8192]);
        let mut shared = MapOptions::new().read_write().map(&file).unwrap();
        let mut private = MapOptions::new().private().read_write().map(&file).unwrap();
        shared.write_at(0, b"shared").unwrap();
        shared.sync(.., SyncMode::Sync).unwrap();
        private.write_at(100, b"private").unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[..6], b"shared");
        assert_eq!(&on_disk[100..107], b".......");
        let mut buf = [0u8; 7];
        private.read_at(100, &mut buf).unwrap();
        assert_eq!(&buf, b"private");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn read_only_regions_refuse_writes() {
        let (path, file) = temp_file(b"hello");
        let mut r = MapOptions::new().map(&file).unwrap();
        assert_eq!(
            r.write_at(0, b"x").unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        // SAFETY: nobody else writes this private temporary file.
        assert_eq!(unsafe { r.as_slice() }, b"hello");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn residency_follows_touching_and_dontneed() {
        let page = page_size();
        let mut r = Region::anonymous(4 * page).unwrap();
        assert_eq!(r.residency(..).unwrap(), vec![false; 4]);
        r.fill(page, page, 7).unwrap();
        assert_eq!(r.residency(..).unwrap(), vec![false, true, false, false]);
        // SAFETY: no slice of the region is live.
        unsafe { r.advise_unchecked(.., DestructiveAdvice::DontNeed) }.unwrap();
        assert_eq!(r.residency(..).unwrap(), vec![false; 4]);
        let mut b = [9u8];
        r.read_at(page, &mut b).unwrap();
        assert_eq!(b, [0]);
    }

    #[test]
    fn lock_brings_pages_in_and_guards_unlock() {
        let r = Region::anonymous(64 << 10).unwrap();
        {
            let guard = r.lock(..).unwrap();
            assert_eq!(guard.len(), 64 << 10);
            assert!(r.residency(..).unwrap().iter().all(|&b| b));
        }
        match r.lock_on_fault(0..1) {
            Ok(guard) => assert_eq!(guard.len(), page_size()),
            // mlock2 is Linux 4.4+, and valgrind does not know it.
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                println!("mlock2 is not available here: skipped");
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn populate_faults_everything_in() {
        let r = MapOptions::new()
            .private()
            .read_write()
            .len(256 << 10)
            .populate(true)
            .map_anonymous()
            .unwrap();
        assert!(r.residency(..).unwrap().iter().all(|&b| b));
    }

    #[test]
    fn remap_keeps_contents() {
        let mut r = Region::anonymous(4096).unwrap();
        r.write_at(4000, b"kept").unwrap();
        r.remap(1 << 20).unwrap();
        let mut b = [0u8; 4];
        r.read_at(4000, &mut b).unwrap();
        assert_eq!(&b, b"kept");
        r.write_at((1 << 20) - 1, b"z").unwrap();
    }

    #[test]
    fn atomics_work_across_threads() {
        let r = Region::anonymous_shared(4096).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        r.atomic_u64(8)
                            .unwrap()
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(
            r.atomic_u64(8)
                .unwrap()
                .load(std::sync::atomic::Ordering::Relaxed),
            4000
        );
    }

    #[test]
    fn atomic_views_cover_the_region_in_place() {
        use std::sync::atomic::Ordering::Relaxed;
        let data: Vec<u8> = (0..20u8).collect();
        let (path, file) = temp_file(&data);
        let r = MapOptions::new().map(&file).unwrap();
        let words = r.as_atomic_u64s().unwrap();
        assert_eq!(words.len(), 2);
        assert_eq!(
            words[1].load(Relaxed),
            u64::from_ne_bytes(data[8..16].try_into().unwrap())
        );
        assert_eq!(r.as_atomic_u8s()[19].load(Relaxed), 19);
        let odd = MapOptions::new().offset(3).map(&file).unwrap();
        assert!(odd.as_atomic_u64s().is_err());
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn raw_parts_are_released_with_the_given_function() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static RELEASED: AtomicUsize = AtomicUsize::new(0);
        fn release(ptr: NonNull<u8>, len: usize) {
            // SAFETY: the test mapped exactly this range below.
            unsafe { mm::munmap(ptr.as_ptr().cast(), len) }.unwrap();
            RELEASED.fetch_add(len, Ordering::Relaxed);
        }
        // SAFETY: fresh anonymous mapping at a kernel-chosen address.
        let ptr = unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                8192,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .unwrap();
        // SAFETY: we hand over the whole mapping and never touch it again.
        let mut r = unsafe {
            Region::from_raw_parts(
                NonNull::new(ptr.cast()).unwrap(),
                8192,
                Sharing::Private,
                Access::ReadWrite,
                Release::With(release),
            )
        };
        r.write_at(0, b"raw").unwrap();
        assert_eq!(r.backing(), Backing::Raw);
        drop(r);
        assert_eq!(RELEASED.load(Ordering::Relaxed), 8192);
    }
}
