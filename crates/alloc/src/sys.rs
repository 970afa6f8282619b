//! The system allocator (glibc malloc) behind a safe interface, as the
//! reference the lab and benchmarks compare against.
//!
//! [`SysBlock`] is one `malloc`ed (or `calloc`ed) block owned like a `Box`:
//! `realloc` through [`SysBlock::resize`], `free` on drop. It goes through
//! [`std::alloc::System`], which calls `malloc`/`calloc`/`realloc`/`free`
//! for alignments up to 16. [`mallinfo`] and [`SysBlock::usable_size`] read
//! glibc's own statistics.
//!
//! # Safety
//!
//! Each `SysBlock` owns the block it allocated with the layout it records;
//! the unsafe calls pass that block and layout back to the same allocator.
#![allow(
    unsafe_code,
    reason = "calls the system allocator and glibc's malloc statistics"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;

use crate::Stats;

/// Alignment of every `SysBlock`: what `malloc` guarantees on x86-64.
const ALIGN: usize = 16;

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
#[derive(Debug)]
pub struct SysBlock {
    ptr: NonNull<u8>,
    layout: Layout,
    init: usize,
}

// SAFETY: the block is owned exclusively, like a `Box<[u8]>`.
unsafe impl Send for SysBlock {}
// SAFETY: `&SysBlock` only reads.
unsafe impl Sync for SysBlock {}

impl SysBlock {
    fn layout(size: usize) -> Option<Layout> {
        Layout::from_size_align(size.max(1), ALIGN).ok()
    }

    /// `malloc(size)`: an uninitialised block. `None` when the system
    /// allocator fails.
    #[doc(alias = "malloc")]
    #[must_use]
    pub fn new(size: usize) -> Option<Self> {
        let layout = Self::layout(size)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { System.alloc(layout) })?;
        Some(Self {
            ptr,
            layout,
            init: 0,
        })
    }

    /// `calloc(1, size)`: a zero-filled block.
    #[doc(alias = "calloc")]
    #[must_use]
    pub fn zeroed(size: usize) -> Option<Self> {
        let layout = Self::layout(size)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { System.alloc_zeroed(layout) })?;
        Some(Self {
            ptr,
            layout,
            init: size,
        })
    }

    /// `realloc(ptr, new_size)`: resizes keeping the contents (added bytes
    /// are uninitialised). Returns `false` (and keeps the block as it was)
    /// when the system allocator fails.
    #[doc(alias = "realloc")]
    pub fn resize(&mut self, new_size: usize) -> bool {
        let Some(new_layout) = Self::layout(new_size) else {
            return false;
        };
        // SAFETY: the block was allocated by `System` with `self.layout`;
        // the new size is non-zero and forms a valid layout (checked above).
        let ptr = unsafe { System.realloc(self.ptr.as_ptr(), self.layout, new_layout.size()) };
        let Some(ptr) = NonNull::new(ptr) else {
            return false;
        };
        self.ptr = ptr;
        self.layout = new_layout;
        self.init = self.init.min(new_size);
        true
    }

    /// Copies `data` to the start of the block (as much as fits).
    pub fn write(&mut self, data: &[u8]) {
        let n = data.len().min(self.layout.size());
        // SAFETY: `n` bytes fit in the owned block; `data` is a separate
        // borrow, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr(), n) };
        self.init = self.init.max(n);
    }

    /// The requested size.
    #[must_use]
    pub fn len(&self) -> usize {
        self.layout.size()
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
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast(), self.layout.size()) }
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
        // SAFETY: the pointer came from `malloc`/`calloc`/`realloc` (System
        // uses them for alignments up to 16) and is live.
        unsafe { libc::malloc_usable_size(self.ptr.as_ptr().cast()) }
    }
}

impl Drop for SysBlock {
    fn drop(&mut self) {
        // SAFETY: allocated by `System` with `self.layout`, freed once.
        unsafe { System.dealloc(self.ptr.as_ptr(), self.layout) };
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
