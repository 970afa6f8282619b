//! [`HugePageAlloc`]: an allocator for big tables read at random, whose
//! large blocks get transparent huge pages.
//!
//! A hash table or an index of a million entries is tens of MiB read at
//! random: with 4 KiB pages nearly every lookup also misses the TLB and
//! walks the page tables. Blocks of [`HUGE_PAGE`] bytes and more are
//! anonymous mappings of their own here, aligned to 2 MiB and advised
//! `MADV_HUGEPAGE`, so that on a system whose transparent huge pages are in
//! `madvise` mode (the common default) the kernel backs them with 2 MiB
//! pages. Smaller blocks come from the global allocator.
//!
//! # Safety
//!
//! A large block is a private anonymous mapping made for it alone: its
//! start and its length (the request rounded up to [`HUGE_PAGE`]) are all
//! `deallocate` needs, and the `Allocator` contract hands back a layout
//! whose size lies between the request and that length, which rounds to the
//! same length. Any other block is the global allocator's, passed through.
#![allow(
    unsafe_code,
    reason = "an Allocator maps, unmaps and hands out raw memory"
)]

use std::ffi::c_void;
use std::ptr::{self, NonNull};

use allocator_api2::alloc::{AllocError, Allocator, Global, Layout};
use rustix::mm::{self, MapFlags, ProtFlags};

/// The size of a transparent huge page on x86-64 and on arm64 with 4 KiB
/// pages; blocks from this size up are mappings of their own. (Where huge
/// pages are larger, arm64 with 16 or 64 KiB pages, the advice finds no
/// whole huge page to use and the blocks keep ordinary pages.)
pub const HUGE_PAGE: usize = 2 << 20;

/// An [`Allocator`] (from `allocator-api2`) whose blocks of
/// [`HUGE_PAGE`] bytes and more are 2 MiB-aligned mappings with
/// transparent huge pages asked for (`MADV_HUGEPAGE`); smaller blocks come
/// from the global allocator.
///
/// Meant for big tables read at random, where 2 MiB pages spare most TLB
/// misses. A large block's memory is rounded up to whole 2 MiB pages, and
/// a huge page is resident as a whole once touched: not for many small
/// tables. Where the kernel compacts memory to find huge pages for advised
/// regions (`/sys/kernel/mm/transparent_hugepage/defrag` set to `madvise`,
/// a common default), the first touch of a block may wait for that. Where
/// transparent huge pages are off the blocks are ordinary pages and
/// nothing else changes.
///
/// ```
/// use allocator_api2::vec::Vec;
/// use memio_map::HugePageAlloc;
///
/// let mut slots: Vec<u64, HugePageAlloc> = Vec::new_in(HugePageAlloc);
/// slots.resize(1 << 20, 0); // 8 MiB: a mapping of its own
/// slots[12345] = 7;
/// assert_eq!(slots.iter().sum::<u64>(), 7);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HugePageAlloc;

/// Whether a block of this layout is a mapping of its own.
fn mapped(layout: Layout) -> bool {
    layout.size() >= HUGE_PAGE
}

/// The length of the mapping of a block of `size` bytes (`None` past
/// `isize::MAX`, the most any block may span).
fn map_len(size: usize) -> Option<usize> {
    size.checked_next_multiple_of(HUGE_PAGE)
        .filter(|&n| isize::try_from(n).is_ok())
}

/// Maps a block for `layout` (a mapped one), aligned to 2 MiB or to its
/// own alignment if larger, with huge pages asked for.
fn map(layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
    let len = map_len(layout.size()).ok_or(AllocError)?;
    let align = layout.align().max(HUGE_PAGE);
    // Map `align` more than needed, then cut both ends off at the aligned
    // start: the kernel gives no alignment past a page.
    let span = len.checked_add(align).ok_or(AllocError)?;
    // SAFETY: a new private anonymous mapping at an address the kernel
    // picks: it overlaps nothing of the program's.
    let base = unsafe {
        mm::mmap_anonymous(
            ptr::null_mut(),
            span,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }
    .map_err(|_| AllocError)?;
    let head = (base as usize).next_multiple_of(align) - base as usize;
    let tail = span - head - len;
    let start = base.cast::<u8>().wrapping_add(head);
    if head > 0 {
        // SAFETY: `[base, base + head)` is the front of the mapping just
        // made, which nothing uses; whole pages (`base` and `align` are
        // page multiples).
        let _ = unsafe { mm::munmap(base, head) };
    }
    if tail > 0 {
        // SAFETY: the `tail` bytes past the block end the mapping just
        // made, which nothing uses; whole pages (so is `len`).
        let _ = unsafe { mm::munmap(start.wrapping_add(len).cast::<c_void>(), tail) };
    }
    // SAFETY: advice on the block's own pages; `MADV_HUGEPAGE` never
    // changes their contents. Refused (transparent huge pages not built
    // in), the block keeps ordinary pages.
    let _ = unsafe { mm::madvise(start.cast::<c_void>(), len, mm::Advice::LinuxHugepage) };
    let start = NonNull::new(start).ok_or(AllocError)?;
    Ok(NonNull::slice_from_raw_parts(start, len))
}

// SAFETY: a mapped block stays valid, where it was put, until
// `deallocate` unmaps it, and it is copied or moved only by the default
// `grow`/`shrink` (which allocate anew and copy); blocks of the global
// allocator keep its guarantees. The allocator has no state: copies of it
// free each other's blocks alike.
unsafe impl Allocator for HugePageAlloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if mapped(layout) {
            map(layout)
        } else {
            Global.allocate(layout)
        }
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if mapped(layout) {
            // A fresh anonymous mapping reads as zeros: nothing to write
            // (and no page to fault in before it is used).
            map(layout)
        } else {
            Global.allocate_zeroed(layout)
        }
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if mapped(layout) {
            // The caller's layout lies between the request and the length
            // handed out, both of which round to the mapping's length.
            let Some(len) = map_len(layout.size()) else {
                return;
            };
            // SAFETY: `ptr` starts the block's own mapping of `len` bytes
            // (see the module note), which the caller gives up.
            let _ = unsafe { mm::munmap(ptr.as_ptr().cast::<c_void>(), len) };
        } else {
            // SAFETY: the global allocator's block, as the caller vouches.
            unsafe { Global.deallocate(ptr, layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allocator_api2::vec::Vec;

    #[test]
    fn large_blocks_are_aligned_mappings_and_small_ones_pass_through() {
        let big = Layout::from_size_align(HUGE_PAGE + 1, 8).unwrap();
        let block = HugePageAlloc.allocate_zeroed(big).unwrap();
        assert_eq!(block.len(), 2 * HUGE_PAGE);
        let p = block.cast::<u8>();
        assert_eq!(p.as_ptr() as usize % HUGE_PAGE, 0);
        let last = p.as_ptr().wrapping_add(2 * HUGE_PAGE - 1);
        // SAFETY: the block is ours, 4 MiB long, and zeroed.
        assert_eq!(unsafe { last.read() }, 0);
        // SAFETY: as above.
        unsafe { last.write(9) };
        // Freed with a size between the request and the length given.
        // SAFETY: ours.
        unsafe { HugePageAlloc.deallocate(p, Layout::from_size_align(2 * HUGE_PAGE, 8).unwrap()) };
        let small = Layout::from_size_align(100, 64).unwrap();
        let block = HugePageAlloc.allocate(small).unwrap();
        assert_eq!(block.cast::<u8>().as_ptr() as usize % 64, 0);
        // SAFETY: ours, freed with its layout.
        unsafe { HugePageAlloc.deallocate(block.cast(), small) };
    }

    #[test]
    fn an_alignment_past_two_mib_is_kept() {
        let layout = Layout::from_size_align(HUGE_PAGE, 8 * HUGE_PAGE).unwrap();
        let block = HugePageAlloc.allocate(layout).unwrap();
        assert_eq!(block.cast::<u8>().as_ptr() as usize % (8 * HUGE_PAGE), 0);
        // SAFETY: ours, freed with its layout.
        unsafe { HugePageAlloc.deallocate(block.cast(), layout) };
    }

    #[test]
    fn a_vector_keeps_its_contents_across_every_kind_of_move() {
        let mut v: Vec<usize, HugePageAlloc> = Vec::new_in(HugePageAlloc);
        // Small, then past 2 MiB (a small block grows into a mapping), then
        // a mapping grows, then shrinks back below 2 MiB.
        for i in 0..HUGE_PAGE / 2 {
            v.push(i);
        }
        assert!(v.iter().enumerate().all(|(i, &x)| x == i));
        v.truncate(1000);
        v.shrink_to_fit();
        assert!(v.capacity() < HUGE_PAGE / 8);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i));
    }

    #[test]
    fn an_impossible_size_is_refused_not_wrapped() {
        let layout = Layout::from_size_align(isize::MAX as usize - HUGE_PAGE, 1).unwrap();
        assert!(HugePageAlloc.allocate(layout).is_err());
    }
}
