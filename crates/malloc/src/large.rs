//! Large blocks: requests at or above the mmap threshold get a mapping of
//! their own, with a one-page header at a 4 MiB boundary so that the
//! header of any block is found by masking its address, as for segments.
//!
//! `realloc` resizes a large block's mapping with `mremap`: in place when
//! the address space after it is free, else by moving its pages onto a
//! fresh range at another 4 MiB boundary (`MREMAP_FIXED`), as glibc moves
//! a mapped chunk: nothing is copied, nothing faults in again, and no old
//! copy is left behind. A block that grows takes half again of headroom
//! (untouched, so not resident), so a buffer grown a chunk at a time
//! takes an `mremap` every few steps instead of one per step.
//!
//! A freed large mapping is kept in a small cache for the purge delay
//! (100 ms by default) and handed to the next large request it fits,
//! grown by `mremap` when it is too small. A program that allocates and
//! frees big buffers in a loop so touches its pages once instead of
//! faulting them in afresh each time (glibc gets the same effect by
//! raising its mmap threshold as large blocks are freed). The cache holds
//! at most `MEMIO_MALLOC_LARGE_CACHE` bytes, and a freed mapping is kept
//! only while it, the mappings cached already and the live large blocks
//! fit within the most those blocks have needed at once (their peak) and
//! a quarter of it, or half the largest block, whichever is more; a new
//! mapping evicts the oldest cached ones until they fit again. (An eighth
//! kept a program replacing blocks of mixed sizes faulting a fifth more
//! pages in: the cache had given back what its next, larger blocks
//! needed.) Half the largest block is what a table grown by doubling
//! needs: rebuilt, it asks for every size it had, and its peak is its last
//! two tables (one and a half times the last) while all its sizes add up
//! to twice the last. With only a quarter over the peak, the cache lost
//! its smallest tables, each request then took the next larger mapping,
//! and the last had to grow the one before it: a `HashMap` of 250,000
//! entries rebuilt in a loop faulted 4.5 MB in again on every build. The
//! bound is on what the cache keeps, not on
//! what live blocks hold: a cached mapping larger than a request is handed
//! out whole while that fits the bound (cut to size otherwise), and stays
//! the block's, so a program that frees a 32 MiB block and then asks for
//! 1 MiB blocks gets the 32 MiB mapping for the first of them; nor does
//! the bound count the small blocks' heap, which may grow while the cache
//! holds what the peak left. Expired
//! mappings are unmapped at the next page-level event of any thread or
//! by `trim()`; with the cache set to 0 a large block is unmapped at once
//! when freed.
//!
//! # Safety
//!
//! A large mapping belongs to its block while the block is live and to the
//! cache (under its lock) after it is freed; only the owner of the moment
//! resizes or unmaps it.
#![allow(
    unsafe_code,
    reason = "large-block headers and their mappings through raw pointers"
)]
#![allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "metadata walks are runs of raw dereferences resting on the one invariant stated above"
)]
#![allow(
    clippy::cast_ptr_alignment,
    reason = "large headers start page-aligned mappings"
)]
#![allow(
    clippy::cast_possible_wrap,
    reason = "mapping sizes are far below isize::MAX"
)]

use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::global::{Block, Fault};
use crate::lock::SpinLock;
use crate::os::{self, OS_PAGE, SEGMENT_SIZE};
use crate::{options, stats};

/// Marks a large-block header.
pub(crate) const KIND_LARGE: usize = 0x6d65_6d69_6f4c_4752;
/// Marks the header of a freed large mapping kept in the cache: no
/// block's, so a second free of its block (or a `realloc` of it) is told
/// apart from a live block.
pub(crate) const KIND_CACHED: usize = 0x6d65_6d69_6f46_5245;

/// The header of a large block, at the start of its mapping.
#[repr(C)]
pub(crate) struct Large {
    kind: usize,
    /// Bytes mapped from the header on.
    map_len: usize,
    /// Offset of the block from the header.
    head: usize,
    /// Bytes of `PROT_NONE` guard at the mapping's end (0 or a page).
    guard: usize,
    /// Bytes from the header on that the block's size needs (`map_len`
    /// may be more); 0 in the cache.
    need: usize,
}

const CACHE_SLOTS: usize = 32;

/// The most a growing block's mapping is stretched past what `realloc`
/// asked for (see [`realloc`]).
const MAX_HEADROOM: usize = 64 << 20;

/// Freed mappings kept for reuse. Each one's length and time of freeing
/// are kept beside it, so that scanning the cache (at every large
/// request and every page event) reads these arrays alone, not a header
/// in each mapping: a cache miss and often a TLB miss apiece.
pub(crate) struct Cache {
    slots: [*mut Large; CACHE_SLOTS],
    lens: [usize; CACHE_SLOTS],
    freed: [u64; CACHE_SLOTS],
    len: usize,
}

impl Cache {
    /// Takes entry `i` out (the last moves into its place).
    fn take(&mut self, i: usize) -> *mut Large {
        let l = self.slots[i];
        self.len -= 1;
        let last = self.len;
        self.slots[i] = self.slots[last];
        self.lens[i] = self.lens[last];
        self.freed[i] = self.freed[last];
        l
    }

    /// Adds mapping `l` of `len` bytes freed at `freed`; the cache has room.
    fn put(&mut self, l: *mut Large, len: usize, freed: u64) {
        let n = self.len;
        self.slots[n] = l;
        self.lens[n] = len;
        self.freed[n] = freed;
        self.len += 1;
    }
}

// SAFETY: the cache's mappings are touched only under its lock.
unsafe impl Send for Cache {}

pub(crate) static CACHE: SpinLock<Cache> = SpinLock::new(Cache {
    slots: [null_mut(); CACHE_SLOTS],
    lens: [0; CACHE_SLOTS],
    freed: [0; CACHE_SLOTS],
    len: 0,
});
static CACHED: AtomicUsize = AtomicUsize::new(0);
/// The bytes live large blocks need (each its `need`: what its request
/// rounds to, not the mapping it got, which may be larger).
static NEED: AtomicUsize = AtomicUsize::new(0);
/// The most [`NEED`] has been.
static PEAK_NEED: AtomicUsize = AtomicUsize::new(0);
/// The most one large block has needed.
static LARGEST_NEED: AtomicUsize = AtomicUsize::new(0);

/// Sets what block `l` needs to `need` bytes.
///
/// # Safety
///
/// `l` is a live large header owned by the caller.
unsafe fn set_need(l: *mut Large, need: usize) {
    // SAFETY: the caller owns the header.
    let old = unsafe { core::mem::replace(&mut (*l).need, need) };
    let now = NEED
        .fetch_add(need.wrapping_sub(old), Ordering::Relaxed)
        .wrapping_add(need.wrapping_sub(old));
    PEAK_NEED.fetch_max(now, Ordering::Relaxed);
    LARGEST_NEED.fetch_max(need, Ordering::Relaxed);
}

/// The bound on large mappings (live blocks and cache together) within
/// which the cache keeps a freed mapping and hands a larger one out whole:
/// the most live blocks have needed at once, and a quarter of it or half
/// the largest block, whichever is more. Live blocks alone may go past it
/// (see the module docs).
fn allowance() -> usize {
    let peak = PEAK_NEED.load(Ordering::Relaxed);
    peak + (peak / 4).max(LARGEST_NEED.load(Ordering::Relaxed) / 2)
}

/// Whether any freed mapping waits in the cache.
#[inline]
pub(crate) fn has_cached() -> bool {
    CACHED.load(Ordering::Relaxed) != 0
}

/// Where a block aligned to `align` starts after its header: `align`
/// itself (at least a page), at most 4 MiB, which any larger alignment is
/// a multiple of.
///
/// Written as a clamp: rustc 1.95.0 compiled the same thing written as
/// `if align <= SEGMENT_SIZE { align.max(OS_PAGE) } else { SEGMENT_SIZE }`
/// (at opt-level 1 and up) into `align.max(OS_PAGE)`, so a block aligned
/// past 4 MiB lost its header.
fn head_for(align: usize) -> usize {
    align.clamp(OS_PAGE, SEGMENT_SIZE)
}

/// Allocates a large block of `size` bytes aligned to `align`; zeroed when
/// `zero`.
///
/// With the guard option a `PROT_NONE` page follows the mapping's last
/// data page and the block sits as late as its alignment lets it, so that
/// its end is less than `align` bytes before the guard (electric-fence
/// style); such blocks are never cached nor resized in place.
pub(crate) fn alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    let head = head_for(align);
    let Some(body) = head
        .checked_add(size)
        .and_then(|n| n.checked_next_multiple_of(OS_PAGE))
    else {
        return null_mut();
    };
    let guard = if options::GUARD.load(Ordering::Relaxed) {
        OS_PAGE
    } else {
        0
    };
    let Some(map_len) = body.checked_add(guard) else {
        return null_mut();
    };
    if head == OS_PAGE && guard == 0 {
        if let Some(l) = from_cache(map_len) {
            // SAFETY: the cache gave us `l`, a live header of a mapping of
            // at least `map_len` bytes, whose block starts `OS_PAGE` in.
            let p = unsafe {
                set_need(l, map_len);
                l.cast::<u8>().add(OS_PAGE)
            };
            if zero {
                // SAFETY: the block has at least `size` bytes.
                unsafe { ptr::write_bytes(p, 0, size) };
            }
            return p;
        }
    }
    options::took_fresh();
    let Some(start) = os::map_aligned(map_len, align, head, os::Commit::Checked) else {
        return null_mut();
    };
    // SAFETY: the fresh mapping, ours.
    unsafe { os::ask_huge_pages(start, map_len) };
    // The block's offset: `head`, or with a guard the latest aligned one
    // that still holds `size` bytes before it. `start + head` is aligned
    // and at most `start + body - size`, so the offset is at least `head`;
    // it is `head` itself when `align >= OS_PAGE` (the slack is below a
    // page), and below two pages otherwise, so the block's unit is the
    // header's either way.
    let offset = if guard == 0 {
        head
    } else {
        ((start as usize + body - size) & !(align - 1)) - start as usize
    };
    if guard != 0 {
        // SAFETY: the mapping's last page, past every byte of the block.
        if unsafe { os::protect_none(start.add(body), guard) }.is_err() {
            // SAFETY: the fresh mapping is ours alone.
            unsafe { os::unmap(start, map_len) };
            return null_mut();
        }
    }
    let l = start.cast::<Large>();
    // SAFETY: a fresh mapping; its first page holds the header.
    unsafe {
        l.write(Large {
            kind: KIND_LARGE,
            map_len,
            head: offset,
            guard,
            need: 0,
        });
        set_need(l, map_len);
    }
    os::mark_unit(start, true);
    stats::mapped(map_len, &stats::LARGE_BYTES);
    stats::LARGE_COUNT.fetch_add(1, Ordering::Relaxed);
    fit_cache();
    // SAFETY: `offset + size <= body < map_len`.
    unsafe { start.add(offset) }
}

/// Takes a cached mapping for a `map_len`-byte block: the smallest that
/// holds it, else the largest smaller one grown to size. A mapping larger
/// than asked for is handed out whole while live blocks and the cache stay
/// within their [`allowance`] (its pages were resident already, and
/// handing them out again costs no page faults); past it, it is split
/// ([`split`]).
fn from_cache(map_len: usize) -> Option<*mut Large> {
    if !has_cached() {
        return None;
    }
    let mut cache = CACHE.lock();
    let mut best: Option<usize> = None;
    let mut grow: Option<usize> = None;
    let lens = &cache.lens;
    for (i, &len) in lens.iter().enumerate().take(cache.len) {
        if len >= map_len {
            if best.is_none_or(|b| len < lens[b]) {
                best = Some(i);
            }
        } else if grow.is_none_or(|g| len > lens[g]) {
            grow = Some(i);
        }
    }
    let i = best.or(grow)?;
    let l = cache.take(i);
    drop(cache);
    // SAFETY: `l` left the cache: it is ours, a block's again.
    let len = unsafe {
        (*l).kind = KIND_LARGE;
        (*l).map_len
    };
    CACHED.fetch_sub(len, Ordering::Relaxed);
    stats::CACHED_BYTES.fetch_sub(len, Ordering::Relaxed);
    stats::LARGE_BYTES.fetch_add(len, Ordering::Relaxed);
    stats::LARGE_COUNT.fetch_add(1, Ordering::Relaxed);
    if len >= map_len {
        let resident = stats::LARGE_BYTES.load(Ordering::Relaxed) + CACHED.load(Ordering::Relaxed);
        if len > map_len && resident > allowance() {
            // SAFETY: `l` is ours.
            unsafe { split(l, map_len) };
        }
        return Some(l);
    }
    // SAFETY: `l` is ours; on failure it is still a whole large block.
    let grown = unsafe { resize(l, map_len) };
    if grown.is_none() {
        stats::unmapped_from(len, &stats::LARGE_BYTES);
        stats::LARGE_COUNT.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { unmap(l) };
    }
    grown
}

/// Cuts large block `l`'s mapping down to `map_len` bytes: the part from
/// the first 4 MiB boundary past `map_len` on becomes a cached mapping of
/// its own (its pages stay resident for the next large request, as a best
/// fit allocator keeps the rest of a free chunk it splits), when the cache
/// has room for it; the rest is unmapped.
///
/// # Safety
///
/// `l` is a live large header owned by the caller, with no guard page and
/// a mapping of more than `map_len` bytes.
unsafe fn split(l: *mut Large, map_len: usize) {
    // SAFETY: the caller owns the mapping.
    let len = unsafe { (*l).map_len };
    let cut = os::align_up(map_len, SEGMENT_SIZE);
    if cut >= len {
        // SAFETY: as above; shrinking never fails.
        unsafe { resize(l, map_len) };
        return;
    }
    // SAFETY: `[l + cut, l + len)` is the tail of the caller's mapping,
    // which no block uses; its first page gets a header, as a cached
    // mapping's.
    let tail = unsafe {
        os::unmap_range(l as usize + map_len, l as usize + cut);
        (*l).map_len = map_len;
        let tail = l.cast::<u8>().add(cut).cast::<Large>();
        tail.write(Large {
            kind: KIND_LARGE,
            map_len: len - cut,
            head: OS_PAGE,
            guard: 0,
            need: 0,
        });
        tail
    };
    stats::remapped(len, map_len, &stats::LARGE_BYTES);
    os::mark_unit(tail.cast(), true);
    stats::mapped(len - cut, &stats::LARGE_BYTES);
    // SAFETY: the tail is a whole large mapping now, ours.
    unsafe { release(tail) };
}

/// Unmaps cached mappings, oldest first, until live large blocks and the
/// cache fit their [`allowance`] again (after a live block grew or a new
/// one was mapped).
fn fit_cache() {
    if !has_cached() {
        return;
    }
    let over = |cached: usize| stats::LARGE_BYTES.load(Ordering::Relaxed) + cached > allowance();
    if !over(CACHED.load(Ordering::Relaxed)) {
        return;
    }
    let mut cache = CACHE.lock();
    while cache.len > 0 && over(CACHED.load(Ordering::Relaxed)) {
        // SAFETY: under the lock.
        unsafe { evict_oldest(&mut cache) };
    }
}

/// Unmaps the cache's oldest mapping.
///
/// # Safety
///
/// The cache is not empty.
unsafe fn evict_oldest(cache: &mut Cache) {
    // SAFETY: cached headers are live and ours under the lock.
    unsafe {
        let oldest = (0..cache.len).min_by_key(|&i| cache.freed[i]).unwrap_or(0);
        let vlen = cache.lens[oldest];
        let victim = cache.take(oldest);
        CACHED.fetch_sub(vlen, Ordering::Relaxed);
        stats::unmapped_from(vlen, &stats::CACHED_BYTES);
        os::mark_unit(victim.cast(), false);
        os::unmap(victim.cast(), vlen);
    }
}

/// Resizes large block `l`'s mapping to `map_len` bytes, where it stands
/// or moved to another 4 MiB boundary; returns its header, or `None` when
/// the mapping can neither grow in place nor move.
///
/// # Safety
///
/// `l` is a live large header owned by the caller.
unsafe fn resize(l: *mut Large, map_len: usize) -> Option<*mut Large> {
    // SAFETY: the caller owns the mapping.
    unsafe {
        let old = (*l).map_len;
        if map_len <= old {
            os::unmap_range(l as usize + map_len, l as usize + old);
            (*l).map_len = map_len;
            stats::remapped(old, map_len, &stats::LARGE_BYTES);
            return Some(l);
        }
        let grown = if os::resize_in_place(l.cast(), old, map_len) {
            l
        } else {
            move_mapping(l, map_len)?
        };
        (*grown).map_len = map_len;
        // A mapping grown or moved keeps the advice it had; one made while
        // the option was off takes it now.
        os::ask_huge_pages(grown.cast(), map_len);
        stats::remapped(old, map_len, &stats::LARGE_BYTES);
        fit_cache();
        Some(grown)
    }
}

/// Moves large mapping `l`, grown to `map_len` bytes, onto a fresh range
/// at a 4 MiB boundary (where its header must stay), as glibc's `realloc`
/// moves a mapped chunk with `mremap`: the pages move with their
/// contents, so nothing is copied and nothing faults in again. Returns the
/// header at its new place (its `map_len` still the old one), or `None`
/// when the block's alignment is past 4 MiB (a 4 MiB boundary would not
/// keep it) or no address space is left.
///
/// # Safety
///
/// `l` is a live large header owned by the caller, with no guard page.
unsafe fn move_mapping(l: *mut Large, map_len: usize) -> Option<*mut Large> {
    // SAFETY: the caller owns the header.
    let (old, head) = unsafe { ((*l).map_len, (*l).head) };
    if head >= SEGMENT_SIZE {
        return None;
    }
    // The block sits `head` (a multiple of its alignment, below 4 MiB)
    // from the header, so any 4 MiB boundary keeps it aligned.
    let to = os::map_aligned(map_len, SEGMENT_SIZE, 0, os::Commit::Lazy)?;
    // The old range stops being a header's before it is unmapped: once it
    // is, another thread may map a block there and mark it, and a late
    // clear would disown that block.
    os::mark_unit(l.cast(), false);
    // SAFETY: `to` is a fresh mapping of `map_len` bytes, ours alone and
    // apart from `l`'s, which the caller owns.
    if !unsafe { os::move_to(l.cast(), old, map_len, to) } {
        os::mark_unit(l.cast(), true);
        // SAFETY: the fresh range is still ours and holds nothing.
        unsafe { os::unmap(to, map_len) };
        return None;
    }
    os::mark_unit(to, true);
    Some(to.cast())
}

/// The header of large block `p`.
///
/// # Safety
///
/// `p` is a live large block.
pub(crate) unsafe fn header(p: *mut u8) -> *mut Large {
    crate::heap::unit_of(p) as *mut Large
}

/// Checks that `p` is where the live large block of its unit starts (the
/// unit's header says it is a block's, not a cached mapping's).
///
/// # Safety
///
/// The unit of `p` is mapped and starts with a large header of this heap.
pub(crate) unsafe fn validate(p: *const u8) -> Result<Block, Fault> {
    // SAFETY: the caller's mapped header.
    let (kind, start, usable) = unsafe {
        let l = header(p.cast_mut());
        let start = l.cast::<u8>().add((*l).head);
        ((*l).kind, start, (*l).map_len - (*l).guard - (*l).head)
    };
    let block = Block {
        size: usable,
        large: true,
    };
    let off = (p as usize).wrapping_sub(start as usize);
    match kind {
        KIND_LARGE if off == 0 => Ok(block),
        KIND_LARGE if off < usable => Err(Fault::Inside { start, block }),
        KIND_CACHED if off == 0 => Err(Fault::Freed(block)),
        _ => Err(Fault::Foreign),
    }
}

/// Bytes usable in large block `p`.
///
/// # Safety
///
/// `p` is a live large block.
pub(crate) unsafe fn usable(p: *mut u8) -> usize {
    // SAFETY: the caller's block's header is live.
    unsafe {
        let l = header(p);
        (*l).map_len - (*l).guard - (*l).head
    }
}

/// Resizes large block `p` to hold `size` bytes where it stands; returns
/// `p`, or null when the caller must allocate, copy and free.
///
/// # Safety
///
/// `p` is a live large block owned by the caller.
pub(crate) unsafe fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: the caller owns the block and so its mapping.
    unsafe {
        let l = header(p);
        if (*l).guard != 0 {
            // Its end stays against its guard: the caller moves it.
            return null_mut();
        }
        let head = (*l).head;
        let Some(map_len) = head
            .checked_add(size)
            .and_then(|n| n.checked_next_multiple_of(OS_PAGE))
        else {
            return null_mut();
        };
        // Growing within the mapping, or shrinking by less than half, keeps
        // the mapping as it is.
        let old = (*l).map_len;
        if map_len <= old && map_len >= old / 2 {
            set_need(l, map_len);
            return p;
        }
        if map_len > old {
            // A block grown in small steps (a buffer realloc'd a chunk at a
            // time) would take an `mremap` per step: grow it by half again
            // at least, so most steps fit what it has. The headroom stays
            // untouched, so costs no memory, until the program writes it.
            let roomy = old
                .saturating_add((old / 2).min(MAX_HEADROOM))
                .next_multiple_of(OS_PAGE);
            if roomy > map_len {
                if let Some(l) = resize(l, roomy) {
                    set_need(l, map_len);
                    return l.cast::<u8>().add(head);
                }
            }
        }
        match resize(l, map_len) {
            Some(l) => {
                set_need(l, map_len);
                l.cast::<u8>().add(head)
            }
            None => null_mut(),
        }
    }
}

/// Frees large block `p`: into the cache, or unmapped.
///
/// # Safety
///
/// `p` is a live large block; it is dead afterwards.
pub(crate) unsafe fn free(p: *mut u8) {
    // SAFETY: the caller gives up the block and its mapping.
    unsafe {
        let l = header(p);
        options::large_freed((*l).map_len - (*l).guard - (*l).head);
        set_need(l, 0);
        stats::LARGE_COUNT.fetch_sub(1, Ordering::Relaxed);
        release(l);
    }
}

/// Puts large mapping `l`, no block's now, in the cache, or unmaps it.
///
/// # Safety
///
/// `l` is a large header owned by the caller, counted in
/// `stats::LARGE_BYTES` and not in `LARGE_COUNT`.
unsafe fn release(l: *mut Large) {
    // SAFETY: the caller gives up the mapping.
    unsafe {
        let len = (*l).map_len;
        let live = stats::LARGE_BYTES
            .load(Ordering::Relaxed)
            .saturating_sub(len);
        let limit = options::LARGE_CACHE
            .load(Ordering::Relaxed)
            .min(allowance().saturating_sub(live));
        // Only a mapping a later large request can take is worth keeping:
        // below the (possibly risen) threshold, requests go to pages.
        let reusable = len - OS_PAGE >= options::MMAP_THRESHOLD.load(Ordering::Relaxed);
        if (*l).head == OS_PAGE && (*l).guard == 0 && len <= limit && reusable {
            let freed = os::now_ns();
            (*l).kind = KIND_CACHED;
            let mut cache = CACHE.lock();
            // Make room: drop the oldest until this one fits the budget.
            while cache.len == CACHE_SLOTS
                || (cache.len > 0 && CACHED.load(Ordering::Relaxed) + len > limit)
            {
                evict_oldest(&mut cache);
            }
            cache.put(l, len, freed);
            CACHED.fetch_add(len, Ordering::Relaxed);
            stats::LARGE_BYTES.fetch_sub(len, Ordering::Relaxed);
            stats::CACHED_BYTES.fetch_add(len, Ordering::Relaxed);
            return;
        }
        stats::unmapped_from(len, &stats::LARGE_BYTES);
        unmap(l);
    }
}

/// Unmaps a large mapping that is no block's and in no cache.
unsafe fn unmap(l: *mut Large) {
    // SAFETY: the caller owns the mapping.
    unsafe {
        let len = (*l).map_len;
        os::mark_unit(l.cast(), false);
        os::unmap(l.cast(), len);
    }
}

/// Unmaps cached mappings freed more than the purge delay before `now`
/// (all of them when `all`); returns bytes unmapped. Without `all`, does
/// nothing while another thread holds the cache.
pub(crate) fn expire(now: u64, all: bool) -> usize {
    if !has_cached() {
        return 0;
    }
    let delay = options::purge_delay_ns();
    // A page event's expiry waits for nobody: the cache may be busy in
    // another thread, or held across a fork by this one's fork handler
    // while another library's handler allocates. Only a trim (`all`)
    // waits its turn.
    let cache = if all {
        Some(CACHE.lock())
    } else {
        CACHE.try_lock()
    };
    let Some(mut cache) = cache else {
        return 0;
    };
    let mut bytes = 0;
    let mut i = 0;
    while i < cache.len {
        let (freed, len) = (cache.freed[i], cache.lens[i]);
        if all || now.saturating_sub(freed) >= delay {
            let l = cache.take(i);
            CACHED.fetch_sub(len, Ordering::Relaxed);
            stats::unmapped_from(len, &stats::CACHED_BYTES);
            // SAFETY: out of the cache, the mapping is ours to unmap.
            unsafe { unmap(l) };
            bytes += len;
        } else {
            i += 1;
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_that_overflow_when_rounded_to_pages_fail_cleanly() {
        for size in [
            usize::MAX,
            usize::MAX - OS_PAGE,
            usize::MAX - 2 * OS_PAGE - 1,
        ] {
            assert!(alloc(size, 16, false).is_null(), "{size:#x}");
        }
        let p = alloc(1 << 20, 16, false);
        assert!(!p.is_null());
        // SAFETY: `p` is a live large block, ours alone.
        #[allow(unsafe_code, reason = "the block made just above")]
        unsafe {
            assert!(realloc(p, usize::MAX - OS_PAGE).is_null());
            free(p);
        }
    }

    #[test]
    #[allow(
        clippy::cast_possible_truncation,
        reason = "each page's mark is its index, wrapping at 256"
    )]
    fn a_block_that_cannot_grow_in_place_moves_with_its_contents_to_a_new_unit() {
        let size = 1 << 20;
        let p = alloc(size, 16, false);
        assert!(!p.is_null());
        // SAFETY: `p` is a live large block of `size` bytes, ours alone; the
        // page mapped right after its mapping (where nothing of ours lies:
        // `map_aligned` unmapped it) keeps it from growing in place, and is
        // unmapped again before the test ends.
        unsafe {
            for at in (0..size).step_by(OS_PAGE) {
                p.add(at).write((at / OS_PAGE) as u8);
            }
            let l = header(p);
            let end = l.cast::<u8>().add((*l).map_len);
            let fence = libc::mmap(
                end.cast(),
                OS_PAGE,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            );
            assert_ne!(fence, libc::MAP_FAILED);
            // Valgrind takes the address as a hint and maps elsewhere; the
            // block may then grow in place, and only its contents count.
            let fenced = fence == end.cast();
            let q = realloc(p, 8 << 20);
            assert!(!q.is_null());
            assert_eq!(
                q as usize % SEGMENT_SIZE,
                OS_PAGE,
                "the header left its unit's start"
            );
            assert!(os::is_unit(crate::heap::unit_of(q)));
            if fenced {
                assert_ne!(q, p, "grew in place through the fence");
                assert!(!os::is_unit(l as usize));
            }
            for at in (0..size).step_by(OS_PAGE) {
                assert_eq!(q.add(at).read(), (at / OS_PAGE) as u8, "page at {at:#x}");
            }
            assert_eq!(usable(q), 8 << 20);
            q.add((8 << 20) - 1).write(1);
            free(q);
            libc::munmap(fence, OS_PAGE);
        }
    }
}
