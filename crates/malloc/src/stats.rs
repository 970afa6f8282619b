//! Figures about the heap, shaped like glibc's `mallinfo2` and meaning
//! what its fields mean, plus per-size-class counts.
//!
//! Mapping counters are process-wide atomics. Bytes in use are summed
//! from each heap's per-class counters, which only the heap's holder
//! writes: a block freed by another thread counts as in use until its
//! owner collects it (at its next allocation from that page, or when the
//! owner exits). The figures are a snapshot taken without stopping other
//! threads, so they need not add up exactly while threads allocate.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::class::{CLASSES, size_of_class};
use crate::thread;

pub(crate) static SEGMENT_BYTES: AtomicUsize = AtomicUsize::new(0);
pub(crate) static META_BYTES: AtomicUsize = AtomicUsize::new(0);
pub(crate) static LARGE_BYTES: AtomicUsize = AtomicUsize::new(0);
pub(crate) static LARGE_COUNT: AtomicUsize = AtomicUsize::new(0);
pub(crate) static CACHED_BYTES: AtomicUsize = AtomicUsize::new(0);
static MAPPED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Adds `n` bytes newly mapped to `counter` and to the total mapped.
pub(crate) fn mapped(n: usize, counter: &AtomicUsize) {
    counter.fetch_add(n, Ordering::Relaxed);
    let now = MAPPED.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

/// Takes `n` bytes unmapped off `counter` and the total mapped.
pub(crate) fn unmapped_from(n: usize, counter: &AtomicUsize) {
    counter.fetch_sub(n, Ordering::Relaxed);
    MAPPED.fetch_sub(n, Ordering::Relaxed);
}

/// Moves `counter` (and the total mapped) from `old` to `new` bytes.
pub(crate) fn remapped(old: usize, new: usize, counter: &AtomicUsize) {
    if new >= old {
        mapped(new - old, counter);
    } else {
        unmapped_from(old - new, counter);
    }
}

/// One size class's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Block size of the class in bytes.
    pub block_size: usize,
    /// Blocks of the class in use.
    pub in_use: usize,
}

/// A snapshot of the heap, as [`crate::stats`] returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Bytes mapped from the kernel: segments, large blocks, the large
    /// cache and heap metadata (`arena + hblkhd` in mallinfo terms).
    pub mapped: usize,
    /// The most ever mapped at once.
    pub peak_mapped: usize,
    /// Bytes in blocks handed out: small blocks at their class size plus
    /// large mappings (`uordblks + hblkhd`).
    pub in_use: usize,
    /// Bytes of segments not handed out as blocks: free blocks, untouched
    /// page tails and empty slices (`fordblks`).
    pub free_in_heaps: usize,
    /// Bytes in segments (`arena`).
    pub segments: usize,
    /// Live large blocks (`hblks`).
    pub large_blocks: usize,
    /// Bytes mapped for live large blocks (`hblkhd`).
    pub large_bytes: usize,
    /// Bytes of freed large mappings kept for reuse.
    pub large_cached: usize,
    /// Heaps made (one per thread that ever allocated at once).
    pub heaps: usize,
    /// Per size class, smallest first.
    pub classes: [ClassStats; CLASSES],
}

/// Gathers the figures.
pub(crate) fn gather() -> Stats {
    let mut classes = [ClassStats::default(); CLASSES];
    for (i, c) in classes.iter_mut().enumerate() {
        c.block_size = size_of_class(i);
    }
    let mut h = thread::ALL.load(Ordering::Acquire);
    while !h.is_null() {
        // SAFETY: heaps are never unmapped; `in_use` is atomic and
        // `next_all` is written once, before the heap is published.
        #[allow(unsafe_code, reason = "reading another heap's atomic counters")]
        let heap = unsafe { &*h };
        for (c, n) in classes.iter_mut().zip(&heap.in_use) {
            c.in_use = c.in_use.wrapping_add(n.load(Ordering::Relaxed));
        }
        h = heap.next_all;
    }
    // A heap's count of a class goes below zero by the blocks of other
    // heaps it keeps (`heap::borrow`), which their owners still count; a
    // sum read while such a block moves between counters may come out
    // below zero for a moment: none in use, then.
    for c in &mut classes {
        #[allow(
            clippy::cast_possible_wrap,
            reason = "the sum is a count below 2^63 or the two's complement of a small one"
        )]
        let signed = c.in_use as isize;
        c.in_use = usize::try_from(signed).unwrap_or(0);
    }
    let small: usize = classes
        .iter()
        .map(|c| c.in_use.wrapping_mul(c.block_size))
        .sum();
    let segments = SEGMENT_BYTES.load(Ordering::Relaxed);
    let large_bytes = LARGE_BYTES.load(Ordering::Relaxed);
    Stats {
        mapped: MAPPED.load(Ordering::Relaxed),
        peak_mapped: PEAK.load(Ordering::Relaxed),
        in_use: small + large_bytes,
        free_in_heaps: segments.saturating_sub(small),
        segments,
        large_blocks: LARGE_COUNT.load(Ordering::Relaxed),
        large_bytes,
        large_cached: CACHED_BYTES.load(Ordering::Relaxed),
        heaps: thread::HEAPS.load(Ordering::Relaxed),
        classes,
    }
}
