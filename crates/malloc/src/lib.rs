//! A general-purpose, thread-caching heap: `#[global_allocator]` for Rust
//! programs, and the engine of the `LD_PRELOAD` library.
//!
//! ```
//! use memio_malloc::MemioMalloc;
//!
//! #[global_allocator]
//! static GLOBAL: MemioMalloc = MemioMalloc;
//!
//! let v: Vec<u64> = (0..1000).collect();
//! assert_eq!(v.iter().sum::<u64>(), 499_500);
//! let s = memio_malloc::stats();
//! assert!(s.in_use >= 8000 && s.mapped >= s.in_use);
//! ```
//!
//! # Design
//!
//! One layer per module, as mimalloc lays itself out:
//!
//! - [`os`](crate) — anonymous mappings only (never `brk`, so it coexists
//!   with any other allocator in the process), through rustix's raw system
//!   calls;
//! - `class` — size classes: 8-byte steps to 128 B, then eight classes per
//!   doubling (under 12.5 % rounding) up to 512 KiB;
//! - `heap` — 4 MiB segments cut into pages of same-size blocks, owned by
//!   per-thread heaps; each page keeps an allocation list, a list for its
//!   owner's frees and an atomic list for frees from other threads, so
//!   neither path takes a lock;
//! - `large` — requests at or above the mmap threshold (128 KiB, as glibc's
//!   `M_MMAP_THRESHOLD`; see [`set_mmap_threshold`]) in mappings of their
//!   own, resized by `mremap` (in place, or its pages moved) by `realloc`
//!   and kept briefly for reuse after free while the cache and live large
//!   blocks fit within what live large blocks needed at their peak and a
//!   quarter of it, or half the largest block if that is more;
//! - `thread` — the thread-local heap pointer, the pool of heaps that
//!   exited threads gave back, and fork handlers;
//! - `options` — `MEMIO_MALLOC_*` environment variables, read without
//!   allocating ([`Options`]);
//! - `stats` — [`stats()`], mallinfo-shaped.
//!
//! Nothing on the allocator's own path allocates: no `Vec`, no `String`,
//! no formatting, no std lock. Empty pages are purged (`MADV_DONTNEED`)
//! once they have stayed empty for the purge delay (100 ms, doubled, up to
//! 6.4 s, each time memory given back had to be taken afresh within it),
//! at once by [`trim`], and as a heap takes fresh pages it could not find
//! among its own: as many of its own empty pages it cannot use, then of
//! the heaps exited threads left in the pool (but the one pooled last,
//! which the next new thread takes).
#![deny(unsafe_code)]

mod class;
mod global;
mod heap;
mod large;
mod lock;
mod options;
mod os;
mod stats;
mod thread;

pub use class::{CLASSES, MAX_CLASS_SIZE};
pub use global::{MemioMalloc, usable_size};
pub use options::{DEFAULT_MMAP_THRESHOLD, Options};
pub use stats::{ClassStats, Stats};

/// The raw allocate/free/resize under [`MemioMalloc`], for the C
/// interface of `memio-malloc-preload` (`libmemio_malloc.so`); not meant
/// for other callers, who have `GlobalAlloc`.
#[doc(hidden)]
pub mod raw {
    pub use crate::global::{
        Block, Fault, alloc_raw, alloc_small, free_raw, is_block, realloc_raw, validate,
    };
    pub use crate::options::{parse_number, var};
}

/// Whether `ptr` lies in one of the 4 MiB units this heap has mapped (a
/// segment, or the unit whose start holds a large block's header). Reads
/// only the heap's own map of its address ranges, so any pointer may be
/// asked about; a pointer into the part of a large block's unit that the
/// block does not use (other mappings may sit there) is a false yes, which
/// [`raw::validate`] rules out.
#[must_use]
#[inline]
pub fn owns(ptr: *const u8) -> bool {
    if ptr.is_null() {
        return false;
    }
    os::is_unit(heap::unit_of(ptr))
}

/// Gives memory back to the kernel now: purges the calling thread's empty
/// pages and the pooled heaps' (releasing empty segments), unmaps every
/// cached large mapping, and asks every other thread to purge at its next
/// page-level event. Returns the bytes given back, as `malloc_trim`
/// reports whether it gave any.
#[doc(alias = "malloc_trim")]
#[allow(
    clippy::must_use_candidate,
    reason = "trimming is the point; the figure is a bonus"
)]
pub fn trim() -> usize {
    let mut bytes = large::expire(0, true);
    let h = thread::current();
    if !h.is_null() {
        // SAFETY: the calling thread holds `h`.
        #[allow(unsafe_code, reason = "the calling thread's own heap")]
        unsafe {
            heap::collect_all(h, true, true);
        }
        // SAFETY: as above.
        #[allow(unsafe_code, reason = "the calling thread's own heap")]
        let purged = unsafe { heap::purge(h) };
        bytes += purged;
    }
    bytes += thread::trim_pool();
    thread::ask_all_to_purge();
    bytes
}

/// Takes back the blocks that other threads freed into the calling
/// thread's heap and into the heaps of threads that have exited, so that
/// [`stats`] counts them as free.
///
/// A block freed by a thread other than the one whose heap it came from
/// waits on its page until that heap next needs the page or sweeps its
/// pages (at one of its slow-path allocations, a quarter of a purge delay
/// after its last sweep at the soonest), and counts as in use until then;
/// a report (a leak check at exit, say) calls this first. Blocks freed
/// into the heaps of threads still running wait for those threads.
pub fn collect() {
    let h = thread::current();
    if !h.is_null() {
        // SAFETY: the calling thread holds `h`.
        #[allow(unsafe_code, reason = "the calling thread's own heap")]
        unsafe {
            heap::collect_all(h, true, false);
        }
    }
    thread::collect_pool();
}

/// A snapshot of the heap's figures.
#[doc(alias = "mallinfo")]
#[doc(alias = "mallinfo2")]
#[must_use]
pub fn stats() -> Stats {
    stats::gather()
}

/// Sets the size from which requests get their own mapping (clamped to
/// `1..=512 KiB`), as `mallopt(M_MMAP_THRESHOLD)`; returns what took
/// effect.
#[doc(alias = "M_MMAP_THRESHOLD")]
#[allow(
    clippy::must_use_candidate,
    reason = "setting is the point; the figure is a bonus"
)]
pub fn set_mmap_threshold(bytes: usize) -> usize {
    thread::init();
    options::set_mmap_threshold(bytes)
}

/// Puts a `PROT_NONE` guard page after every large block made from now
/// on, with the block's end placed against it (less than its alignment
/// before it), so that a write past the end faults at the faulting
/// instruction, as `MEMIO_MALLOC_GUARD=1` does from the start. Guarded
/// blocks are unmapped when freed (never cached) and moved, not resized
/// in place, by `realloc`.
pub fn set_guard(on: bool) {
    thread::init();
    options::GUARD.store(on, core::sync::atomic::Ordering::Relaxed);
}

/// Asks the kernel for transparent huge pages (`MADV_HUGEPAGE`) in every
/// segment made and every large mapping of 2 MiB or more made or grown
/// from now on, as `MEMIO_MALLOC_HUGEPAGES=1` does from the start: a big
/// heap takes far fewer page faults and TLB misses, while a small or
/// sparse one grows, a 2 MiB region being resident whole from its first
/// touch (and `khugepaged` may fill ranges the heap gave back again). It
/// takes effect where the system's `transparent_hugepage` setting is
/// `madvise` (there, with the default `defrag` setting, a fault may wait
/// for the kernel to compact memory into a huge page); under `always` the
/// kernel does this already, and under `never` not at all.
pub fn set_hugepages(on: bool) {
    thread::init();
    options::HUGEPAGES.store(on, core::sync::atomic::Ordering::Relaxed);
}

/// The options in effect (after the environment was read).
#[must_use]
pub fn options() -> Options {
    thread::init();
    options::current()
}
