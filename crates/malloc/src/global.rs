//! The allocator's entry points: `GlobalAlloc` and the raw
//! allocate/free/resize that the C interface of the preload library
//! shares.
//!
//! # Safety
//!
//! These functions route a block to the layer that made it by reading the
//! header at the block's 4 MiB unit; they rely on the caller's promise
//! that the pointer is a live block of this allocator.
#![allow(unsafe_code, reason = "the allocator's entry points")]
#![allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "metadata walks are runs of raw dereferences resting on the one invariant stated above"
)]

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, null_mut};
use core::sync::atomic::Ordering;

use crate::{class, heap, large, options, thread};

/// The memio heap as a Rust global allocator.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: memio_malloc::MemioMalloc = memio_malloc::MemioMalloc;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MemioMalloc;

/// Allocates `size` bytes aligned to `align` (a power of two); null when
/// out of memory. Zeroed when `zero`.
#[inline]
pub fn alloc_raw(size: usize, align: usize, zero: bool) -> *mut u8 {
    if size < options::MMAP_THRESHOLD.load(Ordering::Relaxed) {
        let class = if align <= 16 {
            class::class_of((size.max(1) + align - 1) & !(align - 1))
        } else {
            match class::class_for(size, align) {
                Some(c) => c,
                None => return large::alloc(size, align, zero),
            }
        };
        let heap = thread::heap();
        if heap.is_null() {
            return null_mut();
        }
        // SAFETY: the thread holds `heap`.
        let p = unsafe { heap::alloc(heap, class) };
        if zero && !p.is_null() {
            // SAFETY: the block holds at least `size` bytes.
            unsafe {
                ptr::write_bytes(p, 0, size);
            }
        }
        return p;
    }
    thread::init();
    large::alloc(size, align, zero)
}

/// The fast path of a C `malloc` (16-byte alignment, not zeroed): a block
/// from the calling thread's heap when `size` is small and the thread
/// holds a heap already, else null (then [`alloc_raw`] serves, and says
/// whether memory ran out). Inlined whole into the caller: a `malloc`
/// that is a few instructions long keeps the program's own loads in
/// flight around it.
#[inline(always)]
pub fn alloc_small(size: usize) -> *mut u8 {
    const FAST_MAX: usize = 1024;
    if size > FAST_MAX || size >= options::MMAP_THRESHOLD.load(Ordering::Relaxed) {
        return null_mut();
    }
    let heap = thread::current();
    if heap.is_null() {
        return null_mut();
    }
    let class = class::class_of((size.max(1) + 15) & !15);
    // SAFETY: the thread holds `heap`.
    unsafe { heap::alloc(heap, class) }
}

/// Frees `p`.
///
/// # Safety
///
/// `p` is a live block of this allocator.
#[inline]
pub unsafe fn free_raw(p: *mut u8) {
    // SAFETY: the caller's block.
    match unsafe { heap::segment_of(p) } {
        // SAFETY: `p` is a live small block of `seg`; `current` is the
        // heap this thread holds.
        Some(seg) => unsafe { heap::free(thread::current(), seg, p) },
        // SAFETY: not a segment's, so a large block.
        None => unsafe { large::free(p) },
    }
}

/// Resizes block `p` (of `old` bytes, aligned to `align`) to `size` bytes.
///
/// # Safety
///
/// `p` is a live block of this allocator.
pub unsafe fn realloc_raw(p: *mut u8, old: usize, align: usize, size: usize) -> *mut u8 {
    let threshold = options::MMAP_THRESHOLD.load(Ordering::Relaxed);
    // SAFETY: the caller's live block.
    match unsafe { heap::segment_of(p) } {
        Some(seg) => {
            // SAFETY: as above.
            let have = unsafe { heap::block_size(seg, p) };
            // Grow or shrink in place while the class still fits snugly.
            if size <= have && (size >= have / 2 || have <= 32) && size < threshold {
                return p;
            }
            // A block with a page of its own grows into free slices after it.
            if size > have && size < threshold && size <= class::MAX_CLASS_SIZE {
                // SAFETY: as above; the thread holds its own heap.
                if unsafe { heap::grow_in_place(thread::current(), seg, p, size) } {
                    return p;
                }
            }
        }
        None if size >= threshold / 2 => {
            // SAFETY: the caller's live large block.
            let q = unsafe { large::realloc(p, size) };
            if !q.is_null() {
                return q;
            }
        }
        None => {}
    }
    // A small block that must move to grow moves with a quarter of its
    // size to spare (as tcmalloc's realloc does), so a buffer grown a few
    // bytes at a time (a string built piece by piece) moves every few
    // steps instead of at each class it crosses. A program that grows by
    // doubling, as Rust's collections do, asks for more than that anyway.
    let want = if size > old && size < threshold {
        size.max((old + old / 4).min(threshold - 1))
    } else {
        size
    };
    let q = alloc_raw(want, align, false);
    if !q.is_null() {
        // SAFETY: both blocks hold `min(old, size)` bytes and are distinct.
        unsafe {
            ptr::copy_nonoverlapping(p, q, old.min(size));
            free_raw(p);
        }
    }
    q
}

// SAFETY: every block is at least `layout.size()` bytes aligned to
// `layout.align()` (class blocks sit at multiples of a size that is a
// multiple of the alignment from a 64 KiB-aligned page; large blocks at an
// aligned offset), blocks never overlap while live, and `dealloc` and
// `realloc` accept exactly the pointers handed out.
unsafe impl GlobalAlloc for MemioMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        alloc_raw(layout.size(), layout.align(), false)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        alloc_raw(layout.size(), layout.align(), true)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the GlobalAlloc contract: `ptr` came from this allocator.
        unsafe { free_raw(ptr) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`.
        unsafe { realloc_raw(ptr, layout.size(), layout.align(), new_size) }
    }
}

/// A block of this heap, as [`validate`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Its size class's block size, or for a large block the bytes usable
    /// in it.
    pub size: usize,
    /// Whether it has a mapping of its own.
    pub large: bool,
}

/// Why a pointer is no live block of this heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Not where this heap hands out blocks: outside its memory, or inside
    /// it where no block starts, or a large block unmapped already.
    Foreign,
    /// An address inside a block: `start` is where the block starts.
    Inside {
        /// The block's start.
        start: *mut u8,
        /// The block.
        block: Block,
    },
    /// A block that is free already (a double free).
    Freed(Block),
}

/// Checks that `ptr` is the start of a live block of this heap, as `free`
/// must before it trusts the block's metadata: inside one of its segments,
/// at a block boundary of a live page and not free already (the key a free
/// block carries; blocks of the 8-byte class carry none), or exactly at the
/// start of a live large block.
///
/// A block freed twice is seen while its page stays (a page whose last
/// block was freed goes back to its segment after a while, and its
/// addresses then read as [`Fault::Foreign`]); a large block is seen while
/// its mapping waits in the large cache, and is foreign once unmapped.
///
/// # Errors
///
/// The [`Fault`] found: a foreign address, one inside a block, or a block
/// free already.
///
/// # Safety
///
/// No other thread unmaps `ptr`'s unit meanwhile: true when `ptr` is a
/// live block of this heap, and true of a foreign pointer unless its
/// unit's large block is being freed at that instant.
#[inline]
pub unsafe fn validate(ptr: *const u8) -> Result<Block, Fault> {
    if !crate::owns(ptr) {
        return Err(Fault::Foreign);
    }
    let unit = heap::unit_of(ptr);
    // SAFETY: a unit of the heap starts with a segment or large-block
    // header, whose first word is its kind; the caller keeps it mapped.
    let kind = unsafe { *(unit as *const usize) };
    if kind == heap::KIND_SEGMENT {
        // SAFETY: the unit is a mapped segment and `ptr` lies in it past
        // its start (`unit_of` rounds `ptr - 1` down).
        return match unsafe { heap::validate(unit as *mut heap::Segment, ptr.cast_mut()) } {
            Ok(size) => Ok(Block { size, large: false }),
            Err((heap::Wrong::NoBlock, _)) => Err(Fault::Foreign),
            Err((heap::Wrong::Inside(start), size)) => Err(Fault::Inside {
                start,
                block: Block { size, large: false },
            }),
            Err((heap::Wrong::Freed, size)) => Err(Fault::Freed(Block { size, large: false })),
        };
    }
    // SAFETY: not a segment, so the unit holds a large header, mapped.
    unsafe { large::validate(ptr) }
}

/// Whether `ptr` is a live block of this heap: [`validate`] finds nothing
/// wrong with it.
///
/// # Safety
///
/// As [`validate`].
#[must_use]
pub unsafe fn is_block(ptr: *const u8) -> bool {
    // SAFETY: the caller's promise, passed on.
    unsafe { validate(ptr) }.is_ok()
}

/// Bytes usable in block `ptr` (at least what was asked for), as
/// `malloc_usable_size`.
///
/// # Safety
///
/// `ptr` is a live block of this allocator (for instance from a
/// collection using [`MemioMalloc`] as the global allocator).
#[doc(alias = "malloc_usable_size")]
#[must_use]
pub unsafe fn usable_size(ptr: *const u8) -> usize {
    let p = ptr.cast_mut();
    // SAFETY: the caller's live block.
    match unsafe { heap::segment_of(p) } {
        // SAFETY: as above.
        Some(seg) => unsafe { heap::block_size(seg, p) },
        // SAFETY: as above.
        None => unsafe { large::usable(p) },
    }
}
