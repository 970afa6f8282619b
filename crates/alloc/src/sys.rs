//! The system allocator (glibc malloc) behind a safe interface, as the
//! reference the lab and benchmarks compare against.
//!
//! [`SysBlock`] is one block from glibc owned like a `Box`: made by
//! `malloc`, `calloc`, `posix_memalign`, `memalign` or `valloc`, resized by
//! `realloc` ([`SysBlock::resize`]), released by `free` on drop.
//! [`mallinfo`], [`SysBlock::usable_size`] and [`malloc_stats`] read
//! glibc's own statistics; [`mallopt`] sets its tuning knobs (the seven
//! [`Mallopt`] parameters) and [`trim`] gives free memory back.
//!
//! | C | here |
//! |---|---|
//! | `malloc(n)` | [`SysBlock::new`] |
//! | `calloc(1, n)` | [`SysBlock::zeroed`] |
//! | `realloc(p, n)` | [`SysBlock::resize`] |
//! | `posix_memalign(&p, align, n)` | [`SysBlock::aligned`] |
//! | `memalign(align, n)` | [`SysBlock::memalign`] |
//! | `valloc(n)` | [`SysBlock::page_aligned`] |
//! | `free(p)` | drop |
//! | `malloc_usable_size(p)` | [`SysBlock::usable_size`] |
//! | `mallinfo2()` | [`mallinfo2`], [`mallinfo`] |
//! | `mallopt(param, value)` | [`mallopt`] with a [`Mallopt`] |
//! | `malloc_trim(pad)` | [`trim`] |
//! | `malloc_stats()` | [`malloc_stats`] |
//! | `sbrk(0)` | [`program_break`] |
//!
//! # Safety
//!
//! Each `SysBlock` owns the block glibc handed out and the alignment it was
//! asked for; only `realloc` (for blocks `malloc`'s own alignment covers)
//! and `free` ever see the pointer again. `mallopt` changes process-wide
//! settings but never memory a caller holds.
#![allow(
    unsafe_code,
    reason = "calls glibc's malloc family and its statistics and tuning calls"
)]

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;

use crate::{Error, Stats};

/// The alignment `malloc` guarantees on x86-64 (`2 * sizeof(size_t)`).
pub const MALLOC_ALIGN: usize = 16;

/// One block from the system allocator, freed on drop.
///
/// Bytes `malloc` hands out are uninitialised, so the block tracks how many
/// leading bytes were written ([`SysBlock::as_slice`] shows only those);
/// [`SysBlock::as_uninit_mut`] gives the whole block for writing.
///
/// ```
/// use memio_alloc::sys::SysBlock;
/// let mut b = SysBlock::zeroed(100).unwrap();         // calloc
/// assert!(b.as_slice().iter().all(|&x| x == 0));
/// b.as_mut_slice()[99] = 1;
/// assert!(b.resize(1000));                             // realloc
/// assert_eq!(b.as_slice()[99], 1);
/// assert!(b.usable_size() >= 1000);                    // malloc_usable_size
/// let mut m = SysBlock::new(16).unwrap();              // malloc
/// assert!(m.as_slice().is_empty());
/// m.write(b"hello");
/// assert_eq!(m.as_slice(), b"hello");
/// ```
///
/// Aligned blocks: `posix_memalign` reports a bad alignment as an error,
/// `valloc` gives whole pages.
///
/// ```
/// use memio_alloc::sys::SysBlock;
/// let b = SysBlock::aligned(4096, 100)?;               // posix_memalign
/// assert_eq!(b.as_ptr() as usize % 4096, 0);
/// let err = SysBlock::aligned(24, 100).unwrap_err();    // not a power of two
/// assert!(err.to_string().contains("power of two"), "{err}");
/// let p = SysBlock::page_aligned(10).unwrap();          // valloc
/// assert_eq!(p.as_ptr() as usize % memio_alloc::sys::page_size(), 0);
/// # Ok::<(), memio_alloc::Error>(())
/// ```
#[derive(Debug)]
pub struct SysBlock {
    ptr: NonNull<u8>,
    /// The size asked for (at least 1).
    size: usize,
    /// The alignment asked for (at least [`MALLOC_ALIGN`]).
    align: usize,
    init: usize,
}

// SAFETY: the block is owned exclusively, like a `Box<[u8]>`.
unsafe impl Send for SysBlock {}
// SAFETY: `&SysBlock` only reads.
unsafe impl Sync for SysBlock {}

impl SysBlock {
    /// The size to ask glibc for: at least 1 byte, and `None` past
    /// `isize::MAX`, which no allocation can reach (glibc would fail it;
    /// checkers flag such sizes as negative).
    fn request(size: usize) -> Option<usize> {
        isize::try_from(size).ok().map(|_| size.max(1))
    }

    fn owned(ptr: *mut c_void, size: usize, align: usize, init: usize) -> Option<Self> {
        Some(Self {
            ptr: NonNull::new(ptr.cast())?,
            size,
            align: align.max(MALLOC_ALIGN),
            init,
        })
    }

    /// `malloc(size)`: an uninitialised block. `None` when the system
    /// allocator fails.
    ///
    /// # References
    ///
    /// - [malloc(3)](https://man7.org/linux/man-pages/man3/malloc.3.html)
    #[doc(alias = "malloc")]
    #[must_use]
    pub fn new(size: usize) -> Option<Self> {
        let size = Self::request(size)?;
        // SAFETY: malloc has no preconditions; the result is owned below.
        let ptr = unsafe { libc::malloc(size) };
        Self::owned(ptr, size, MALLOC_ALIGN, 0)
    }

    /// `calloc(1, size)`: a zero-filled block.
    ///
    /// # References
    ///
    /// - [calloc(3)](https://man7.org/linux/man-pages/man3/calloc.3.html)
    #[doc(alias = "calloc")]
    #[must_use]
    pub fn zeroed(size: usize) -> Option<Self> {
        let size = Self::request(size)?;
        // SAFETY: calloc has no preconditions; the result is owned below.
        let ptr = unsafe { libc::calloc(1, size) };
        Self::owned(ptr, size, MALLOC_ALIGN, size)
    }

    /// `posix_memalign(&p, align, size)`: an uninitialised block whose
    /// address is a multiple of `align`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] naming `posix_memalign` when glibc answers
    /// `EINVAL` (`align` is not a power of two, or not a multiple of
    /// `sizeof(void *)`, 8); [`Error::OutOfMemory`] for `ENOMEM`.
    ///
    /// # References
    ///
    /// - [posix_memalign(3)](https://man7.org/linux/man-pages/man3/posix_memalign.3.html)
    #[doc(alias = "posix_memalign")]
    pub fn aligned(align: usize, size: usize) -> Result<Self, Error> {
        let size = Self::request(size).ok_or_else(|| oom("posix_memalign", size, align))?;
        let mut ptr = std::ptr::null_mut();
        // SAFETY: `ptr` is a valid place for the result; glibc checks the
        // alignment itself and leaves `ptr` untouched on failure.
        let rc = unsafe { libc::posix_memalign(&raw mut ptr, align, size) };
        match rc {
            0 => Self::owned(ptr, size, align, 0).ok_or_else(|| oom("posix_memalign", size, align)),
            libc::EINVAL => Err(crate::error::unsupported(
                "posix_memalign",
                format_args!(
                    "alignment {align} is invalid (EINVAL): it must be a power of two and a \
                     multiple of sizeof(void *) ({})",
                    size_of::<*const u8>()
                ),
            )),
            _ => Err(oom("posix_memalign", size, align)),
        }
    }

    /// `memalign(align, size)`: the older BSD/SunOS call. glibc rounds an
    /// alignment that is not a power of two up to the next one instead of
    /// refusing it; the block records the alignment it actually has.
    /// `None` when the allocator fails.
    ///
    /// # References
    ///
    /// - [memalign(3)](https://man7.org/linux/man-pages/man3/memalign.3.html)
    #[must_use]
    pub fn memalign(align: usize, size: usize) -> Option<Self> {
        let size = Self::request(size)?;
        let align = align.checked_next_power_of_two()?;
        // SAFETY: memalign has no preconditions (glibc checks the
        // alignment); the result is owned below and freed with `free`,
        // which glibc allows for memalign blocks.
        let ptr = unsafe { libc::memalign(align, size) };
        Self::owned(ptr, size, align, 0)
    }

    /// `valloc(size)`: a block aligned to the page size. `None` when the
    /// allocator fails.
    ///
    /// # References
    ///
    /// - [valloc(3)](https://man7.org/linux/man-pages/man3/valloc.3.html)
    #[doc(alias = "valloc")]
    #[must_use]
    pub fn page_aligned(size: usize) -> Option<Self> {
        let size = Self::request(size)?;
        // SAFETY: valloc has no preconditions; glibc's result may be freed
        // with `free`.
        let ptr = unsafe { valloc(size) };
        Self::owned(ptr, size, page_size(), 0)
    }

    /// `realloc(ptr, new_size)`: resizes keeping the contents (added bytes
    /// are uninitialised). A block aligned beyond what `malloc` guarantees
    /// moves to a new aligned block instead (`realloc` would lose the
    /// alignment). Returns `false` (and keeps the block as it was) when the
    /// system allocator fails.
    #[doc(alias = "realloc")]
    pub fn resize(&mut self, new_size: usize) -> bool {
        let Some(new_size) = Self::request(new_size) else {
            return false;
        };
        if self.align > MALLOC_ALIGN {
            let Ok(mut moved) = Self::aligned(self.align, new_size) else {
                return false;
            };
            let keep = self.init.min(new_size);
            moved.write(&self.as_slice()[..keep]);
            *self = moved;
            return true;
        }
        // SAFETY: the block came from malloc/calloc (alignment within
        // malloc's) and is live; on failure realloc leaves it untouched.
        let ptr = unsafe { libc::realloc(self.ptr.as_ptr().cast(), new_size) };
        let Some(ptr) = NonNull::new(ptr.cast()) else {
            return false;
        };
        self.ptr = ptr;
        self.size = new_size;
        self.init = self.init.min(new_size);
        true
    }

    /// The block's address (for checking alignment; reading or writing goes
    /// through the slices).
    #[must_use]
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The alignment asked for (at least [`MALLOC_ALIGN`]).
    #[must_use]
    pub fn align(&self) -> usize {
        self.align
    }

    /// Copies `data` to the start of the block (as much as fits).
    pub fn write(&mut self, data: &[u8]) {
        let n = data.len().min(self.size);
        // SAFETY: `n` bytes fit in the owned block; `data` is a separate
        // borrow, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr(), n) };
        self.init = self.init.max(n);
    }

    /// The requested size.
    #[must_use]
    pub fn len(&self) -> usize {
        self.size
    }

    /// Whether the block is empty (never: a 0-byte request gets 1 byte).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The leading bytes written so far (all of them for `calloc`).
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `init` bytes of the owned block were written.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.init) }
    }

    /// The leading bytes written so far, writable.
    #[must_use]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as `as_slice`, exclusive through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.init) }
    }

    /// The whole block as possibly-uninitialised bytes, for writing. Bytes
    /// written here do not count towards [`SysBlock::as_slice`]; use
    /// [`SysBlock::write`] for that.
    #[must_use]
    pub fn as_uninit_mut(&mut self) -> &mut [std::mem::MaybeUninit<u8>] {
        // SAFETY: the block is owned; `MaybeUninit` makes no claim about
        // the contents.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast(), self.size) }
    }

    /// `malloc_usable_size`: bytes actually available in the block (at
    /// least [`SysBlock::len`]).
    ///
    /// # References
    ///
    /// - [malloc_usable_size(3)](https://man7.org/linux/man-pages/man3/malloc_usable_size.3.html)
    #[doc(alias = "malloc_usable_size")]
    #[must_use]
    pub fn usable_size(&self) -> usize {
        // SAFETY: the pointer came from glibc's malloc family and is live.
        unsafe { libc::malloc_usable_size(self.ptr.as_ptr().cast()) }
    }
}

impl Drop for SysBlock {
    fn drop(&mut self) {
        // SAFETY: allocated by glibc's malloc family, freed once.
        unsafe { libc::free(self.ptr.as_ptr().cast()) };
    }
}

/// glibc's `struct mallinfo2`, field for field (all arenas of the process).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MallInfo {
    /// Bytes of heap (brk and arena heaps) obtained from the system.
    pub arena: usize,
    /// Number of free chunks.
    pub ordblks: usize,
    /// Number of free fastbin blocks.
    pub smblks: usize,
    /// Number of mmapped regions (large blocks).
    pub hblks: usize,
    /// Bytes in mmapped regions.
    pub hblkhd: usize,
    /// Highest bytes in use (always 0 in current glibc).
    pub usmblks: usize,
    /// Bytes in free fastbin blocks.
    pub fsmblks: usize,
    /// Bytes in use (allocated chunks of the heaps).
    pub uordblks: usize,
    /// Bytes free in the heaps.
    pub fordblks: usize,
    /// Bytes at the top of the heap that `malloc_trim` could release.
    pub keepcost: usize,
}

/// glibc's `mallinfo2()`, every field.
///
/// # References
///
/// - [mallinfo(3)](https://man7.org/linux/man-pages/man3/mallinfo.3.html)
#[must_use]
pub fn mallinfo2() -> MallInfo {
    // SAFETY: mallinfo2 has no preconditions; it returns a plain struct.
    let m = unsafe { libc::mallinfo2() };
    MallInfo {
        arena: m.arena,
        ordblks: m.ordblks,
        smblks: m.smblks,
        hblks: m.hblks,
        hblkhd: m.hblkhd,
        usmblks: m.usmblks,
        fsmblks: m.fsmblks,
        uordblks: m.uordblks,
        fordblks: m.fordblks,
        keepcost: m.keepcost,
    }
}

/// glibc's `mallinfo2()` for the whole process, in this crate's [`Stats`]
/// shape (operation counts and `requested` are unknown to glibc and read 0;
/// `footprint` is the heap minus its trimmable top, `arena - keepcost`).
///
/// # References
///
/// - [mallinfo(3)](https://man7.org/linux/man-pages/man3/mallinfo.3.html)
#[doc(alias = "mallinfo2")]
#[must_use]
pub fn mallinfo() -> Stats {
    let m = mallinfo2();
    Stats {
        reserved: m.arena + m.hblkhd,
        in_use: m.uordblks + m.hblkhd,
        free: m.fordblks,
        free_chunks: m.ordblks,
        largest_free: 0,
        peak_in_use: m.usmblks,
        live_blocks: 0,
        requested: 0,
        footprint: m.arena - m.keepcost.min(m.arena),
        allocations: 0,
        frees: 0,
        failures: 0,
    }
}

/// glibc's `malloc_trim(pad)`: gives free heap memory back to the OS,
/// keeping `pad` bytes at the top; returns whether anything was released.
///
/// # References
///
/// - [malloc_trim(3)](https://man7.org/linux/man-pages/man3/malloc_trim.3.html)
#[doc(alias = "malloc_trim")]
#[must_use = "says whether memory went back to the OS"]
pub fn trim(pad: usize) -> bool {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(pad) == 1 }
}

/// The size of a page, in bytes (what `valloc` aligns to).
#[must_use]
pub fn page_size() -> usize {
    rustix::param::page_size()
}

fn oom(allocator: &'static str, size: usize, align: usize) -> Error {
    Error::OutOfMemory {
        allocator,
        size,
        align,
    }
}

unsafe extern "C" {
    /// glibc's `valloc` (the libc crate does not declare it).
    fn valloc(size: usize) -> *mut c_void;
}

/// One of glibc's tuning parameters with its new value, for [`mallopt`].
///
/// Each variant names the `M_*` constant of `<malloc.h>` it sets. glibc
/// applies them to the whole process, at once, for every later call.
///
/// # References
///
/// - [mallopt(3)](https://man7.org/linux/man-pages/man3/mallopt.3.html)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mallopt {
    /// `M_CHECK_ACTION`: what glibc's heap checks do on an error (bit 0:
    /// print a message, bit 1: abort, bit 2: a short message). Takes effect
    /// only with glibc's debugging malloc (`libc_malloc_debug.so`,
    /// `MALLOC_CHECK_`).
    CheckAction(i32),
    /// `M_MMAP_MAX`: at most this many blocks served by their own mapping at
    /// once; 0 turns mappings off (every block comes from the heap).
    MmapMax(i32),
    /// `M_MMAP_THRESHOLD`: requests of at least this many bytes get their
    /// own private anonymous mapping instead of heap memory (default 128
    /// KiB, adjusted upwards by glibc as large blocks are freed until set
    /// explicitly).
    MmapThreshold(usize),
    /// `M_MXFAST`: the largest request served from the fast bins (default
    /// 128 bytes on 64-bit); glibc refuses more than 160.
    Mxfast(usize),
    /// `M_PERTURB`: fill allocated memory with the complement of this byte
    /// and freed memory with the byte, so code reading uninitialised or
    /// freed memory sees garbage instead of plausible data; 0 turns it off.
    Perturb(u8),
    /// `M_TOP_PAD`: extra bytes asked of `sbrk` whenever the heap grows
    /// (and kept when it shrinks), so fewer system calls are made.
    TopPad(usize),
    /// `M_TRIM_THRESHOLD`: free memory at the top of the heap beyond this
    /// many bytes goes back to the system (`sbrk` with a negative
    /// increment) on `free`.
    TrimThreshold(usize),
}

impl Mallopt {
    /// The `M_*` constant's name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::CheckAction(_) => "M_CHECK_ACTION",
            Self::MmapMax(_) => "M_MMAP_MAX",
            Self::MmapThreshold(_) => "M_MMAP_THRESHOLD",
            Self::Mxfast(_) => "M_MXFAST",
            Self::Perturb(_) => "M_PERTURB",
            Self::TopPad(_) => "M_TOP_PAD",
            Self::TrimThreshold(_) => "M_TRIM_THRESHOLD",
        }
    }

    /// The `param` argument of `mallopt`.
    const fn param(self) -> i32 {
        match self {
            Self::CheckAction(_) => libc::M_CHECK_ACTION,
            Self::MmapMax(_) => libc::M_MMAP_MAX,
            Self::MmapThreshold(_) => libc::M_MMAP_THRESHOLD,
            Self::Mxfast(_) => libc::M_MXFAST,
            Self::Perturb(_) => libc::M_PERTURB,
            Self::TopPad(_) => libc::M_TOP_PAD,
            Self::TrimThreshold(_) => libc::M_TRIM_THRESHOLD,
        }
    }

    /// The value, as the wide integer the error reports.
    fn value(self) -> i64 {
        match self {
            Self::CheckAction(v) | Self::MmapMax(v) => i64::from(v),
            Self::Perturb(v) => i64::from(v),
            Self::MmapThreshold(v) | Self::Mxfast(v) | Self::TopPad(v) | Self::TrimThreshold(v) => {
                i64::try_from(v).unwrap_or(i64::MAX)
            }
        }
    }

    /// What glibc accepts for this parameter, when it has a limit.
    fn limit(self) -> Option<&'static str> {
        match self {
            Self::Mxfast(_) => Some("at most 160 bytes (80 * sizeof(size_t) / 4) on 64-bit"),
            _ => None,
        }
    }
}

impl fmt::Display for Mallopt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}", self.name(), self.value())
    }
}

/// glibc's `mallopt(param, value)`: sets one tuning parameter of the
/// process's malloc.
///
/// ```
/// use memio_alloc::sys::{mallopt, Mallopt};
/// // Past glibc's limit for the fast bins: refused, naming the parameter.
/// # if memio_alloc::sys::is_glibc_malloc() {
/// let err = mallopt(Mallopt::Mxfast(4096)).unwrap_err();
/// assert!(err.to_string().contains("M_MXFAST = 4096"), "{err}");
/// # }
/// ```
///
/// # Errors
///
/// [`Error::Refused`] naming the parameter and value when glibc refuses it
/// (returns 0), or when the value does not fit the C `int` it takes.
///
/// # References
///
/// - [mallopt(3)](https://man7.org/linux/man-pages/man3/mallopt.3.html)
pub fn mallopt(option: Mallopt) -> Result<(), Error> {
    let refused = |why: String| Error::Refused {
        allocator: "mallopt",
        what: option.to_string(),
        why,
    };
    let value = i32::try_from(option.value()).map_err(|_| {
        refused(format!(
            "the value does not fit a C int (at most {})",
            i32::MAX
        ))
    })?;
    // SAFETY: mallopt takes any parameter and value and only changes
    // glibc's settings for later calls.
    let ok = unsafe { libc::mallopt(option.param(), value) } == 1;
    if ok {
        Ok(())
    } else {
        Err(refused(option.limit().map_or_else(
            || "glibc returned 0".to_owned(),
            |limit| format!("glibc accepts {limit}"),
        )))
    }
}

/// glibc's `malloc_stats()`: prints each arena's system and in-use bytes,
/// the totals and the number and bytes of mapped blocks to **standard
/// error** (glibc writes there directly; nothing comes back to the caller).
/// [`mallinfo2`] gives the same figures as numbers.
///
/// # References
///
/// - [malloc_stats(3)](https://man7.org/linux/man-pages/man3/malloc_stats.3.html)
pub fn malloc_stats() {
    // SAFETY: malloc_stats has no preconditions; it writes to stderr.
    unsafe { libc::malloc_stats() };
}

/// The program break (`sbrk(0)`): the current end of the data segment,
/// which glibc's main arena moves up with `brk` as small allocations
/// grow the heap and down when [`trim`] or `free` gives the top back.
///
/// # References
///
/// - [sbrk(2)](https://man7.org/linux/man-pages/man2/sbrk.2.html)
#[doc(alias = "sbrk")]
#[doc(alias = "brk")]
#[must_use]
pub fn program_break() -> usize {
    // SAFETY: an increment of 0 only reads the break.
    unsafe { libc::sbrk(0) as usize }
}

/// Whether this process's `malloc` is glibc's own (not valgrind's or a
/// preloaded replacement, which return empty statistics and accept every
/// `mallopt`): a heap with a live block shows in [`mallinfo2`].
#[must_use]
pub fn is_glibc_malloc() -> bool {
    let probe = SysBlock::new(64);
    let seen = mallinfo2().arena > 0;
    drop(probe);
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malloc_blocks_keep_written_bytes_across_resizes() {
        let mut b = SysBlock::new(10).unwrap();
        assert!(b.as_slice().is_empty());
        b.write(b"0123456789");
        assert!(b.resize(100_000));
        assert_eq!(b.as_slice(), b"0123456789");
        assert_eq!(b.as_uninit_mut().len(), 100_000);
        assert!(b.resize(3));
        assert_eq!(b.as_slice(), b"012");
        assert!(!b.resize(usize::MAX));
        assert_eq!(b.len(), 3);
        // Sizes past isize::MAX never reach glibc.
        assert!(SysBlock::new(usize::MAX).is_none());
        assert!(SysBlock::zeroed(usize::MAX).is_none());
        assert!(SysBlock::memalign(64, usize::MAX).is_none());
        assert!(SysBlock::page_aligned(usize::MAX).is_none());
        assert!(matches!(
            SysBlock::aligned(64, usize::MAX),
            Err(Error::OutOfMemory { .. })
        ));
        let mut a = SysBlock::aligned(64, 8).unwrap();
        assert!(!a.resize(usize::MAX));
    }

    #[test]
    fn mallinfo_sees_a_large_live_block() {
        let before = mallinfo();
        let b = SysBlock::zeroed(8 << 20).unwrap();
        let during = mallinfo();
        if during.reserved == 0 {
            // Under valgrind (or another malloc replacement) glibc's
            // statistics stay empty: nothing to compare.
            eprintln!("skipped: mallinfo reports nothing; malloc is not glibc's here");
            return;
        }
        assert!(during.in_use >= before.in_use + (8 << 20) - 4096);
        assert!(b.usable_size() >= 8 << 20);
        drop(b);
        let _ = trim(0);
    }
}
