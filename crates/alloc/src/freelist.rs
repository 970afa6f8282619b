//! `FreeList`: variable-size blocks with boundary tags.
//!
//! Layout (offsets from a 16-byte-aligned origin, little-endian words):
//!
//! ```text
//! origin+8: first block
//!   block:  [header: size | USED | PREV_USED][payload ...........][trailer]
//!   used:   trailer (last word) = bytes requested
//!   free:   payload word 0 = next free, word 1 = prev free, last word = size (footer)
//! end:      epilogue header (size 0, USED) so nothing coalesces past the end
//! ```
//!
//! Blocks start 8 bytes past a 16-byte boundary, so every payload is
//! 16-byte aligned; sizes are multiples of 16, at least 32. Free blocks sit
//! on doubly linked lists by size class (one per power of two). Allocation
//! searches from the request's class up, first-fit or best-fit within the
//! first class that holds a fit, and splits off the tail when at least 32
//! bytes remain; freeing coalesces
//! immediately with a free neighbour on either side (the footer of the
//! previous block gives its size when the `PREV_USED` bit is clear). A
//! bitmap of live payload starts lets the validating [`FreeList::free`] refuse a
//! double free or a foreign pointer.
//!
//! # Safety
//!
//! All memory access goes through [`Heap::word`] and [`Heap::set_word`] at
//! offsets below the heap's length, or through byte ranges of blocks the
//! allocator owns (a live block it validated, or a free block on its list).
#![allow(
    unsafe_code,
    reason = "boundary tags and free-list links inside a raw region"
)]

use std::cell::UnsafeCell;
use std::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator, Layout};

use crate::bitmap::Bitmap;
use crate::block::Owner;
use crate::checks::{self, CANARY, POISON_FREED, POISON_FRESH};
use crate::error::unsupported;
use crate::{Block, Checks, Error, Memory, Stats};

const NAME: &str = "free list";
const W: usize = 8;
const GRAN: usize = 16;
const MIN_BLOCK: usize = 32;
const USED: usize = 1;
const PREV_USED: usize = 2;
const FLAGS: usize = 0xF;
const NIL: usize = 0;
const BINS: usize = 64;

/// Size class of a block size: floor(log2(size)).
#[inline]
fn bin(size: usize) -> usize {
    (usize::BITS - 1 - size.leading_zeros()) as usize
}

/// How [`FreeList`] picks among the free blocks that fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fit {
    /// The first block on the free list that fits: fast, tends to leave
    /// small crumbs at the front of the list.
    #[default]
    First,
    /// The smallest block that fits (stops early on a fit too tight to
    /// split): searches the whole list, keeps large blocks whole longer.
    Best,
}

#[derive(Debug)]
struct Heap {
    _memory: Memory,
    origin: NonNull<u8>,
    /// Offset of the epilogue header (end of the last block).
    end: usize,
    /// Free lists by size class: `bins[k]` holds blocks of 2^k to
    /// 2^(k+1) - 1 bytes.
    bins: [usize; BINS],
    /// Bit k set when `bins[k]` is not empty.
    nonempty: u64,
    fit: Fit,
    checks: Checks,
    /// Live payload starts, one bit per granule from offset 16.
    live: Bitmap,
    in_use: usize,
    peak: usize,
    requested: usize,
    live_blocks: usize,
    allocations: u64,
    frees: u64,
    failures: u64,
}

/// A general-purpose allocator over one region: boundary tags, first-fit or
/// best-fit, splitting and immediate coalescing.
///
/// Each block costs 16 bytes (a header and a trailer word) and is rounded
/// to 16 bytes. Not `Sync` (wrap it in a `Mutex` to share it); `Send`.
///
/// Made by [`FreeListOptions::build`]. Safe code allocates owning
/// [`Block`]s or uses `allocator_api2` collections; the raw
/// [`FreeList::alloc`] with the `unsafe` [`FreeList::free`] is for code
/// that tracks ownership itself.
///
/// ```
/// use memio_alloc::{Fit, FreeListOptions};
/// let heap = FreeListOptions::new(4096).fit(Fit::Best).build()?;
/// let a = heap.alloc_block(100, 16)?;
/// let b = heap.alloc(500, 64)?;
/// assert_eq!(b.as_ptr() as usize % 64, 0);
/// drop(a);
/// // SAFETY: `b` is a live block of this heap that nothing else owns.
/// unsafe { heap.free(b)? };
/// assert_eq!(heap.stats().free_chunks, 1); // coalesced back into one block
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Freeing or resizing a raw pointer needs `unsafe`: the block may belong
/// to a live `Vec` or [`Block`].
///
/// ```compile_fail,E0133
/// use memio_alloc::FreeListOptions;
/// let heap = FreeListOptions::new(4096).build().unwrap();
/// let p = heap.alloc(64, 16).unwrap();
/// heap.free(p).unwrap();
/// ```
///
/// ```compile_fail,E0133
/// use memio_alloc::FreeListOptions;
/// let heap = FreeListOptions::new(4096).build().unwrap();
/// let p = heap.alloc(64, 16).unwrap();
/// heap.resize_in_place(p, 128).unwrap();
/// ```
#[derive(Debug)]
pub struct FreeList {
    heap: UnsafeCell<Heap>,
}

// SAFETY: the allocator owns its region; moving it moves everything.
unsafe impl Send for FreeList {}

impl Heap {
    #[allow(
        clippy::cast_ptr_alignment,
        reason = "offsets of link words are multiples of 8 from an aligned base"
    )]
    #[inline]
    fn word(&self, off: usize) -> usize {
        debug_assert!(off + W <= self.end + W && off % W == 0);
        // SAFETY: `off` is a word inside the heap (block headers, links,
        // trailers and the epilogue all lie below `end + W`), 8-aligned.
        unsafe {
            self.origin
                .as_ptr()
                .wrapping_add(off)
                .cast::<usize>()
                .read()
        }
    }

    #[allow(
        clippy::cast_ptr_alignment,
        reason = "offsets of link words are multiples of 8 from an aligned base"
    )]
    #[inline]
    fn set_word(&mut self, off: usize, v: usize) {
        debug_assert!(off + W <= self.end + W && off % W == 0);
        // SAFETY: as in `word`.
        unsafe {
            self.origin
                .as_ptr()
                .wrapping_add(off)
                .cast::<usize>()
                .write(v);
        }
    }

    #[inline]
    fn ptr(&self, off: usize) -> *mut u8 {
        // SAFETY: offsets passed here are inside the heap.
        unsafe { self.origin.as_ptr().add(off) }
    }

    #[inline]
    fn size(&self, block: usize) -> usize {
        self.word(block) & !FLAGS
    }

    #[inline]
    fn is_used(&self, block: usize) -> bool {
        self.word(block) & USED != 0
    }

    fn set_prev_used(&mut self, block: usize, used: bool) {
        let h = self.word(block);
        self.set_word(block, if used { h | PREV_USED } else { h & !PREV_USED });
    }

    /// Marks `block` free with `size`, writes its footer and pushes it on
    /// the list; the next block learns its predecessor is free.
    fn make_free(&mut self, block: usize, size: usize, prev_used: bool) {
        self.set_word(block, size | if prev_used { PREV_USED } else { 0 });
        self.set_word(block + size - W, size);
        self.push(block);
        self.set_prev_used(block + size, false);
    }

    fn push(&mut self, block: usize) {
        let k = bin(self.size(block));
        let head = self.bins[k];
        self.set_word(block + W, head);
        self.set_word(block + 2 * W, NIL);
        if head != NIL {
            self.set_word(head + 2 * W, block);
        }
        self.bins[k] = block;
        self.nonempty |= 1 << k;
    }

    /// Takes a free block off its list (before its size changes).
    fn unlink(&mut self, block: usize) {
        let next = self.word(block + W);
        let prev = self.word(block + 2 * W);
        if prev == NIL {
            let k = bin(self.size(block));
            self.bins[k] = next;
            if next == NIL {
                self.nonempty &= !(1 << k);
            }
        } else {
            self.set_word(prev + W, next);
        }
        if next != NIL {
            self.set_word(next + 2 * W, prev);
        }
    }

    /// Block size for a request of `size` bytes: header, payload, red zone,
    /// trailer, rounded to 16.
    fn block_for(&self, size: usize) -> Option<usize> {
        size.checked_add(self.checks.red_zone + 2 * W)?
            .checked_next_multiple_of(GRAN)
            .map(|s| s.max(MIN_BLOCK))
    }

    /// Where a block of `need` bytes with a payload aligned to `align` fits
    /// inside free block `b`: the offset of the new block, or `None`.
    fn place(&self, b: usize, bsize: usize, need: usize, align: usize) -> Option<usize> {
        let origin = self.origin.as_ptr() as usize;
        let payload = b + W;
        let mut at = b;
        if (origin + payload) % align != 0 {
            // The leading gap must be a whole free block.
            let first = (origin + payload + MIN_BLOCK).next_multiple_of(align) - origin;
            at = first - W;
        }
        (at + need <= b + bsize).then_some(at)
    }

    /// Searches the size classes from `need`'s up. Within the first class
    /// holding a fit, first-fit takes the first fit on its list and
    /// best-fit the smallest (any block of a higher class is larger).
    fn find(&self, need: usize, align: usize) -> Option<(usize, usize)> {
        let mut classes = self.nonempty & (u64::MAX << bin(need));
        while classes != 0 {
            let k = classes.trailing_zeros() as usize;
            classes &= classes - 1;
            if let Some(found) = self.find_in(self.bins[k], need, align) {
                return Some(found);
            }
        }
        None
    }

    fn find_in(&self, head: usize, need: usize, align: usize) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize, usize)> = None;
        let mut b = head;
        while b != NIL {
            let bsize = self.size(b);
            if bsize >= need {
                if let Some(at) = self.place(b, bsize, need, align) {
                    match self.fit {
                        Fit::First => return Some((b, at)),
                        Fit::Best => {
                            if best.is_none_or(|(_, _, s)| bsize < s) {
                                best = Some((b, at, bsize));
                                // Less than a minimum block left over: it
                                // would not be split off, so no block can
                                // fit better.
                                if bsize - need < MIN_BLOCK {
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            b = self.word(b + W);
        }
        best.map(|(b, at, _)| (b, at))
    }

    fn alloc(&mut self, size: usize, align: usize) -> Result<NonNull<u8>, Error> {
        let oom = Error::OutOfMemory {
            allocator: NAME,
            size,
            align,
        };
        if !align.is_power_of_two() {
            self.failures += 1;
            return Err(unsupported(
                NAME,
                format!("alignment {align} is not a power of two"),
            ));
        }
        let align = align.max(GRAN);
        let Some(need) = self.block_for(size) else {
            self.failures += 1;
            return Err(oom);
        };
        let Some((b, at)) = self.find(need, align) else {
            self.failures += 1;
            return Err(oom);
        };
        let bsize = self.size(b);
        let prev_used = self.word(b) & PREV_USED != 0;
        self.unlink(b);
        let lead = at - b;
        if lead > 0 {
            // Keep the leading gap as a free block of its own.
            self.make_free(b, lead, prev_used);
        }
        let mut size_here = bsize - lead;
        let rest = size_here - need;
        if rest >= MIN_BLOCK {
            size_here = need;
            self.make_free(at + need, rest, true);
        }
        // With a leading gap, the block before is that (free) gap.
        let prev_flag = if lead == 0 && prev_used { PREV_USED } else { 0 };
        self.set_word(at, size_here | USED | prev_flag);
        self.set_word(at + size_here - W, size);
        self.set_prev_used(at + size_here, true);
        self.live.set((at + W) / GRAN);
        self.in_use += size_here;
        self.peak = self.peak.max(self.in_use);
        self.requested += size;
        self.live_blocks += 1;
        self.allocations += 1;
        let payload = self.ptr(at + W);
        self.dress(at, size_here, size);
        // SAFETY: payload addresses are never null.
        Ok(unsafe { NonNull::new_unchecked(payload) })
    }

    /// Fills a live block's payload and red zone according to the checks.
    fn dress(&mut self, block: usize, bsize: usize, size: usize) {
        let payload = self.ptr(block + W);
        if self.checks.poison {
            // SAFETY: the first `size` payload bytes of a live block.
            unsafe { checks::fill(payload, size, POISON_FRESH) };
        }
        if self.checks.red_zone > 0 {
            // SAFETY: from the end of the request to the trailer: slack of
            // this live block.
            unsafe { checks::fill(payload.wrapping_add(size), bsize - 2 * W - size, CANARY) };
        }
    }

    /// Block offset of the live payload at `addr`, or why it is not one.
    fn validate(&self, addr: usize) -> Result<usize, Error> {
        let origin = self.origin.as_ptr() as usize;
        let off = addr.wrapping_sub(origin);
        if off < 2 * W || off >= self.end || off % GRAN != 0 {
            return Err(Error::Foreign {
                allocator: NAME,
                addr,
            });
        }
        if self.live.get(off / GRAN) {
            return Ok(off - W);
        }
        // Not live: inside a free block means it was freed already.
        let mut b = W;
        while b < self.end {
            let size = self.size(b);
            if off > b && off < b + size {
                return Err(if self.is_used(b) {
                    Error::Foreign {
                        allocator: NAME,
                        addr,
                    }
                } else {
                    Error::DoubleFree {
                        allocator: NAME,
                        addr,
                    }
                });
            }
            if size == 0 {
                break;
            }
            b += size;
        }
        Err(Error::Foreign {
            allocator: NAME,
            addr,
        })
    }

    /// The bytes requested for the live `block`, from its trailer; an
    /// overflow that ran past the red zone into the trailer makes it larger
    /// than the payload, reported as [`Error::Overflow`] (the block stays
    /// live) instead of steering the checks and counters out of bounds.
    fn requested(&self, block: usize) -> Result<usize, Error> {
        let size = self.size(block);
        let requested = self.word(block + size - W);
        let payload = size - 2 * W;
        if requested > payload {
            return Err(Error::Overflow {
                allocator: NAME,
                addr: self.ptr(block + W) as usize,
                size: payload,
                offset: payload,
            });
        }
        Ok(requested)
    }

    fn free_block(&mut self, block: usize) -> Result<(), Error> {
        let mut size = self.size(block);
        let requested = self.requested(block)?;
        if self.checks.red_zone > 0 {
            let payload = self.ptr(block + W);
            // SAFETY: the slack of this live block.
            let damaged = unsafe {
                checks::first_mismatch(
                    payload.wrapping_add(requested),
                    size - 2 * W - requested,
                    CANARY,
                )
            };
            if let Some(at) = damaged {
                return Err(Error::Overflow {
                    allocator: NAME,
                    addr: payload as usize,
                    size: requested,
                    offset: at,
                });
            }
        }
        if self.checks.poison {
            // SAFETY: the payload and trailer of this live block.
            unsafe { checks::fill(self.ptr(block + W), size - W, POISON_FREED) };
        }
        self.live.clear((block + W) / GRAN);
        self.in_use -= size;
        self.requested -= requested;
        self.live_blocks -= 1;
        self.frees += 1;
        let mut start = block;
        let mut prev_used = self.word(block) & PREV_USED != 0;
        let next = block + size;
        if !self.is_used(next) {
            self.unlink(next);
            size += self.size(next);
        }
        if !prev_used {
            let psize = self.word(block - W);
            start = block - psize;
            self.unlink(start);
            size += psize;
            prev_used = self.word(start) & PREV_USED != 0;
        }
        self.make_free(start, size, prev_used);
        Ok(())
    }

    /// Resizes the live block in place when the neighbour allows.
    fn resize_in_place(&mut self, block: usize, new_size: usize) -> bool {
        let Some(need) = self.block_for(new_size) else {
            return false;
        };
        let size = self.size(block);
        let Ok(old_req) = self.requested(block) else {
            return false;
        };
        if self.checks.red_zone > 0 {
            let payload = self.ptr(block + W);
            // SAFETY: the slack of this live block.
            if unsafe {
                checks::first_mismatch(
                    payload.wrapping_add(old_req),
                    size - 2 * W - old_req,
                    CANARY,
                )
            }
            .is_some()
            {
                return false;
            }
        }
        let flags = self.word(block) & PREV_USED;
        let mut grown = size;
        if need > size {
            let next = block + size;
            if self.is_used(next) || size + self.size(next) < need {
                return false;
            }
            let nsize = self.size(next);
            self.unlink(next);
            grown = size + nsize;
            self.set_prev_used(grown + block, true);
        }
        if grown - need >= MIN_BLOCK {
            let rest = grown - need;
            grown = need;
            let tail = block + need;
            // Merge the released tail with a free successor.
            let after = tail + rest;
            if self.is_used(after) {
                self.make_free(tail, rest, true);
            } else {
                let asize = self.size(after);
                self.unlink(after);
                self.make_free(tail, rest + asize, true);
            }
        }
        self.set_word(block, grown | USED | flags);
        self.set_word(block + grown - W, new_size);
        self.in_use = self.in_use - size + grown;
        self.peak = self.peak.max(self.in_use);
        self.requested = self.requested - old_req + new_size;
        if self.checks.red_zone > 0 {
            let payload = self.ptr(block + W);
            // SAFETY: the new slack of this live block.
            unsafe {
                checks::fill(
                    payload.wrapping_add(new_size),
                    grown - 2 * W - new_size,
                    CANARY,
                );
            }
        }
        true
    }

    fn stats(&self) -> Stats {
        let (mut free, mut chunks, mut largest) = (0, 0, 0);
        for &head in &self.bins {
            let mut b = head;
            while b != NIL {
                let s = self.size(b);
                free += s;
                chunks += 1;
                largest = largest.max(s);
                b = self.word(b + W);
            }
        }
        let footprint = self.live.last_set().map_or(0, |g| {
            let block = g * GRAN - W;
            block + self.size(block) - W
        });
        Stats {
            reserved: self.end - W,
            in_use: self.in_use,
            free,
            free_chunks: chunks,
            largest_free: largest,
            peak_in_use: self.peak,
            live_blocks: self.live_blocks,
            requested: self.requested,
            footprint,
            allocations: self.allocations,
            frees: self.frees,
            failures: self.failures,
        }
    }

    fn check(&self) -> Result<(), String> {
        let mut b = W;
        let mut prev_used = true;
        let (mut free_bytes, mut free_blocks, mut used_bytes) = (0, 0, 0);
        while b < self.end {
            let h = self.word(b);
            let size = h & !FLAGS;
            if size < MIN_BLOCK || size % GRAN != 0 || b + size > self.end {
                return Err(format!("block at offset {b} has size {size}"));
            }
            if (h & PREV_USED != 0) != prev_used {
                return Err(format!("block at offset {b} has a wrong PREV_USED bit"));
            }
            let used = h & USED != 0;
            if used != self.live.get((b + W) / GRAN) {
                return Err(format!(
                    "block at offset {b} disagrees with the live bitmap"
                ));
            }
            if used {
                used_bytes += size;
            } else {
                if !prev_used {
                    return Err(format!("two free blocks side by side at offset {b}"));
                }
                if self.word(b + size - W) != size {
                    return Err(format!("free block at offset {b} has a wrong footer"));
                }
                free_bytes += size;
                free_blocks += 1;
            }
            prev_used = used;
            b += size;
        }
        if b != self.end || self.word(self.end) & !FLAGS != 0 || !self.is_used(self.end) {
            return Err("blocks do not end at the epilogue".into());
        }
        let (mut listed, mut listed_bytes) = (0, 0);
        for (k, &head) in self.bins.iter().enumerate() {
            if (head != NIL) != (self.nonempty >> k & 1 == 1) {
                return Err(format!("size class {k} disagrees with the non-empty mask"));
            }
            let (mut prev, mut f) = (NIL, head);
            while f != NIL {
                if self.is_used(f) || self.word(f + 2 * W) != prev || bin(self.size(f)) != k {
                    return Err(format!("free list {k} broken at offset {f}"));
                }
                listed += 1;
                listed_bytes += self.size(f);
                if listed > free_blocks {
                    return Err("free lists longer than the free blocks (a cycle?)".into());
                }
                prev = f;
                f = self.word(f + W);
            }
        }
        if (listed, listed_bytes) != (free_blocks, free_bytes) || used_bytes != self.in_use {
            return Err(format!(
                "free list holds {listed} blocks/{listed_bytes} bytes, heap {free_blocks}/{free_bytes}; \
                 in use {used_bytes} vs counted {}",
                self.in_use
            ));
        }
        Ok(())
    }
}

/// How a [`FreeList`] is sized, placed and checked: the one way to make one.
///
/// ```
/// use memio_alloc::{Checks, Fit, FreeListOptions};
/// let heap = FreeListOptions::new(64 << 10).fit(Fit::Best).checks(Checks::all()).build()?;
/// assert_eq!(heap.fit(), Fit::Best);
/// # Ok::<(), memio_alloc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeListOptions {
    len: usize,
    fit: Fit,
    locked: bool,
    checks: Checks,
}

impl FreeListOptions {
    /// A heap of `len` bytes (of which 16 go to alignment and the end
    /// marker), first fit, no checks.
    #[must_use]
    pub const fn new(len: usize) -> Self {
        Self {
            len,
            fit: Fit::First,
            locked: false,
            checks: Checks::off(),
        }
    }

    /// Sets the fit policy.
    #[must_use]
    pub const fn fit(mut self, fit: Fit) -> Self {
        self.fit = fit;
        self
    }

    /// Locks the region into RAM (`mlock`).
    #[must_use]
    pub const fn locked(mut self, locked: bool) -> Self {
        self.locked = locked;
        self
    }

    /// Sets the debug checks.
    #[must_use]
    pub const fn checks(mut self, checks: Checks) -> Self {
        self.checks = checks;
        self
    }

    /// Makes the heap over a new anonymous mapping of the length set.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when mapping fails; [`Error::Unsupported`] when the
    /// length is too small for a heap.
    pub fn build(&self) -> Result<FreeList, Error> {
        let memory = Memory::for_allocator(NAME, self.len, self.locked)?;
        self.build_in(memory)
    }

    /// Makes the heap over the caller's memory (at least 64 bytes; the
    /// length set is ignored).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the memory is too small.
    pub fn build_in(&self, memory: Memory) -> Result<FreeList, Error> {
        let (fit, checks) = (self.fit, self.checks);
        let start = memory.as_ptr() as usize;
        let origin_off = start.next_multiple_of(GRAN) - start;
        let avail = memory.len().saturating_sub(origin_off);
        // First block at W, epilogue header after the last block.
        let total = avail.saturating_sub(2 * W) / GRAN * GRAN;
        if total < MIN_BLOCK {
            return Err(unsupported(
                NAME,
                format!("{} bytes of memory are too small for a heap", memory.len()),
            ));
        }
        // SAFETY: `origin_off` is below the length (total > 0 proves it).
        let origin = unsafe { NonNull::new_unchecked(memory.as_ptr().wrapping_add(origin_off)) };
        let end = W + total;
        let mut heap = Heap {
            _memory: memory,
            origin,
            end,
            bins: [NIL; BINS],
            nonempty: 0,
            fit,
            checks,
            live: Bitmap::new(end / GRAN + 1),
            in_use: 0,
            peak: 0,
            requested: 0,
            live_blocks: 0,
            allocations: 0,
            frees: 0,
            failures: 0,
        };
        heap.set_word(end, USED);
        heap.make_free(W, total, true);
        if checks.poison {
            // SAFETY: the payload of the one free block (after its links).
            unsafe { checks::fill(heap.ptr(W + 3 * W), total - 4 * W, POISON_FREED) };
        }
        Ok(FreeList {
            heap: UnsafeCell::new(heap),
        })
    }
}

impl FreeList {
    #[allow(
        clippy::mut_from_ref,
        reason = "the heap is !Sync and no method re-enters"
    )]
    fn heap(&self) -> &mut Heap {
        // SAFETY: `FreeList` is not `Sync`; each method takes this reference
        // once and does not call back into the allocator while holding it.
        unsafe { &mut *self.heap.get() }
    }

    /// The fit policy.
    #[must_use]
    pub fn fit(&self) -> Fit {
        self.heap().fit
    }

    /// Allocates `size` bytes aligned to `align` (a power of two; payloads
    /// are always at least 16-byte aligned).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfMemory`] when no free block fits; [`Error::Unsupported`]
    /// for an alignment that is not a power of two.
    pub fn alloc(&self, size: usize, align: usize) -> Result<NonNull<u8>, Error> {
        self.heap().alloc(size, align)
    }

    /// Allocates like [`FreeList::alloc`]; the [`Block`] frees the block
    /// when dropped.
    ///
    /// # Errors
    ///
    /// As [`FreeList::alloc`].
    pub fn alloc_block(&self, size: usize, align: usize) -> Result<Block<'_>, Error> {
        let ptr = self.alloc(size, align)?;
        // SAFETY: a block just handed out, at least `size` bytes, owned by
        // no one.
        Ok(unsafe { Block::new(ptr, size, Owner::FreeList(self)) })
    }

    /// Frees a live block after validating it, coalescing with free
    /// neighbours.
    ///
    /// The validation is a debug aid: it catches a double free or a
    /// foreign pointer, not a block someone else still owns.
    ///
    /// # Safety
    ///
    /// `ptr` must be a live block of this allocator that nothing else owns
    /// (not a [`Block`], nor a collection's buffer, nor anything still
    /// using it).
    ///
    /// # Errors
    ///
    /// [`Error::DoubleFree`], [`Error::Foreign`], or [`Error::Overflow`]
    /// (red zones on; the block stays live).
    pub unsafe fn free(&self, ptr: NonNull<u8>) -> Result<(), Error> {
        let h = self.heap();
        let block = h.validate(ptr.as_ptr() as usize)?;
        h.free_block(block)
    }

    /// Frees without validating (unless [`Checks::ownership`] is on).
    ///
    /// # Safety
    ///
    /// `ptr` must be a live block of this allocator, freed once.
    ///
    /// # Panics
    ///
    /// With ownership checks on, on a pointer that breaks that contract;
    /// with red zones on, on a damaged canary.
    pub unsafe fn free_unchecked(&self, ptr: NonNull<u8>) {
        let h = self.heap();
        let origin = h.origin.as_ptr() as usize;
        let block = if h.checks.ownership {
            h.validate(ptr.as_ptr() as usize)
                .unwrap_or_else(|e| panic!("{e}"))
        } else {
            ptr.as_ptr() as usize - origin - W
        };
        if let Err(e) = h.free_block(block) {
            panic!("{e}");
        }
    }

    /// Grows or shrinks the live block at `ptr` to `new_size` bytes without
    /// moving it, when the following block is free and large enough (or
    /// when shrinking). Returns whether it did.
    ///
    /// # Safety
    ///
    /// `ptr` must be a live block of this allocator whose owner is the
    /// caller: resizing a block a collection or a [`Block`] owns would
    /// change the bytes that owner may use behind its back.
    ///
    /// # Errors
    ///
    /// As [`FreeList::free`] for a pointer that is not a live block.
    pub unsafe fn resize_in_place(&self, ptr: NonNull<u8>, new_size: usize) -> Result<bool, Error> {
        let h = self.heap();
        let block = h.validate(ptr.as_ptr() as usize)?;
        Ok(h.resize_in_place(block, new_size))
    }

    /// Usable bytes of the live block at `ptr`: the block minus its header
    /// and trailer (with red zones on, exactly what was requested).
    ///
    /// # Errors
    ///
    /// As [`FreeList::free`].
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Result<usize, Error> {
        let h = self.heap();
        let block = h.validate(ptr.as_ptr() as usize)?;
        let size = h.size(block);
        Ok(if h.checks.red_zone > 0 {
            h.requested(block)?
        } else {
            size - 2 * W
        })
    }

    /// The statistics (walks the free list: O(free blocks)).
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.heap().stats()
    }

    /// Walks every block and the free list and checks the invariants (sizes,
    /// footers, flags, no two free neighbours, list consistent with the
    /// heap, counters).
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] naming the first inconsistency.
    pub fn check(&self) -> Result<(), Error> {
        self.heap().check().map_err(|why| Error::Corrupt {
            allocator: NAME,
            why,
        })
    }
}

// SAFETY: blocks are handed out once until freed, are at least as large and
// aligned as the layout asks, and stay valid while the allocator lives.
unsafe impl Allocator for &FreeList {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = self
            .alloc(layout.size(), layout.align())
            .map_err(|_| AllocError)?;
        let usable = self.usable_size(p).map_err(|_| AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, usable))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: the trait's contract: a live block of this allocator.
        unsafe { self.free_unchecked(ptr) };
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract (live block, `new` at least `old`).
        unsafe { self.realloc(ptr, old, new) }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract.
        unsafe { self.realloc(ptr, old, new) }
    }
}

impl FreeList {
    /// In place when possible, else allocate, copy and free.
    unsafe fn realloc(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // One borrow of the heap for the in-place attempt: the block offset
        // is computed from it, not from a second `heap()`.
        let h = self.heap();
        let block = ptr.as_ptr() as usize - h.origin.as_ptr() as usize - W;
        if ptr.as_ptr() as usize % new.align() == 0 && h.resize_in_place(block, new.size()) {
            let usable = self.usable_size(ptr).map_err(|_| AllocError)?;
            return Ok(NonNull::slice_from_raw_parts(ptr, usable));
        }
        let fresh = self
            .alloc(new.size(), new.align())
            .map_err(|_| AllocError)?;
        // SAFETY: both blocks are live and distinct; copy the smaller size.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr.as_ptr(), fresh.as_ptr(), old.size().min(new.size()));
        }
        // SAFETY: `ptr` is live (the caller's contract) and freed once.
        unsafe { self.free_unchecked(ptr) };
        let usable = self.usable_size(fresh).map_err(|_| AllocError)?;
        Ok(NonNull::slice_from_raw_parts(fresh, usable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap(len: usize, fit: Fit, checks: Checks) -> FreeList {
        FreeListOptions::new(len)
            .fit(fit)
            .checks(checks)
            .build()
            .unwrap()
    }

    #[test]
    fn split_and_coalesce_both_sides() {
        let h = heap(4096, Fit::First, Checks::off());
        let a = h.alloc(100, 8).unwrap();
        let b = h.alloc(200, 8).unwrap();
        let c = h.alloc(300, 8).unwrap();
        h.check().unwrap();
        assert_eq!(h.stats().free_chunks, 1);
        // SAFETY: the test owns this live block and frees or resizes it once.
        unsafe { h.free(a) }.unwrap();
        // SAFETY: the test owns this live block and frees or resizes it once.
        unsafe { h.free(c) }.unwrap();
        h.check().unwrap();
        assert_eq!(h.stats().free_chunks, 2, "c merged with the tail, a alone");
        // SAFETY: the test owns this live block and frees or resizes it once.
        unsafe { h.free(b) }.unwrap();
        h.check().unwrap();
        let st = h.stats();
        assert_eq!(
            (st.free_chunks, st.largest_free, st.in_use),
            (1, st.reserved, 0)
        );
    }

    #[test]
    fn best_fit_takes_the_snuggest_hole() {
        for (fit, expect_small_hole) in [(Fit::First, false), (Fit::Best, true)] {
            let h = heap(8192, fit, Checks::off());
            // Two holes of the same size class (1024..2047 bytes); the
            // larger one is first on the list.
            let big = h.alloc(1500, 16).unwrap();
            let _sep1 = h.alloc(16, 16).unwrap();
            let small = h.alloc(1100, 16).unwrap();
            let _sep2 = h.alloc(16, 16).unwrap();
            // SAFETY: the test owns this live block and frees or resizes it once.
            unsafe { h.free(small) }.unwrap();
            // SAFETY: the test owns this live block and frees or resizes it once.
            unsafe { h.free(big) }.unwrap();
            let p = h.alloc(1000, 16).unwrap();
            assert_eq!(p == small, expect_small_hole, "{fit:?}");
            h.check().unwrap();
        }
    }

    #[test]
    fn large_alignments_leave_a_free_gap() {
        let h = heap(1 << 16, Fit::First, Checks::off());
        for align in [32, 64, 256, 4096] {
            let p = h.alloc(40, align).unwrap();
            assert_eq!(p.as_ptr() as usize % align, 0);
            h.check().unwrap();
        }
        assert!(matches!(h.alloc(8, 3), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn grows_in_place_into_a_free_neighbour_and_shrinks() {
        let h = heap(4096, Fit::First, Checks::off());
        let a = h.alloc(64, 16).unwrap();
        let b = h.alloc(64, 16).unwrap();
        // SAFETY: the test owns this live block and frees or resizes it once.
        let got = unsafe { h.resize_in_place(a, 200) };
        assert!(!got.unwrap(), "b is in the way");
        // SAFETY: the test owns this live block and frees or resizes it once.
        let got = unsafe { h.resize_in_place(b, 1000) };
        assert!(got.unwrap(), "the tail is free");
        assert!(h.usable_size(b).unwrap() >= 1000);
        h.check().unwrap();
        // SAFETY: the test owns this live block and frees or resizes it once.
        assert!(unsafe { h.resize_in_place(b, 10) }.unwrap());
        assert!(h.usable_size(b).unwrap() < 64);
        h.check().unwrap();
        // SAFETY: the test owns this live block and frees or resizes it once.
        unsafe { h.free(b) }.unwrap();
        // SAFETY: the test owns this live block and frees or resizes it once.
        assert!(unsafe { h.resize_in_place(a, 3000) }.unwrap());
        h.check().unwrap();
    }

    #[test]
    fn double_free_and_foreign_pointers_are_reported() {
        let h = heap(4096, Fit::First, Checks::off());
        let a = h.alloc(64, 16).unwrap();
        let b = h.alloc(64, 16).unwrap();
        // SAFETY: the test owns this live block and frees or resizes it once.
        unsafe { h.free(a) }.unwrap();
        // SAFETY: deliberately bad; the validating free must report it without touching memory.
        let got = unsafe { h.free(a) };
        assert!(matches!(got, Err(Error::DoubleFree { .. })));
        let x = 0u128;
        assert!(matches!(
            // SAFETY: deliberately foreign: refused without touching memory.
            unsafe { h.free(NonNull::from(&x).cast()) },
            Err(Error::Foreign { .. })
        ));
        // SAFETY: 16 bytes into a live 64-byte block.
        let inner = unsafe { b.add(16) };
        // SAFETY: deliberately bad; the validating free must report it without touching memory.
        let got = unsafe { h.free(inner) };
        assert!(matches!(got, Err(Error::Foreign { .. })));
        h.check().unwrap();
    }

    #[test]
    fn red_zone_catches_an_overflow() {
        let h = heap(4096, Fit::First, Checks::all());
        let a = h.alloc(10, 16).unwrap();
        assert_eq!(h.usable_size(a).unwrap(), 10);
        // SAFETY: the byte after the request is red zone inside the block.
        unsafe { a.as_ptr().wrapping_add(10).write(0) };
        assert!(matches!(
            // SAFETY: the test owns this live block and frees or resizes it once.
            unsafe { h.free(a) },
            Err(Error::Overflow {
                offset: 0,
                size: 10,
                ..
            })
        ));
    }

    /// An overflow past the red zone reaches the trailer that records the
    /// request: the validating free must report it, not trust the trailer
    /// (it steered the canary scan past the block and the counters below
    /// zero).
    #[test]
    fn a_damaged_trailer_is_reported_not_trusted() {
        for checks in [Checks::off(), Checks::all()] {
            let h = heap(4096, Fit::First, checks);
            let a = h.alloc(10, 16).unwrap();
            let b = h.alloc(10, 16).unwrap();
            let end = b.as_ptr() as usize - a.as_ptr() as usize - 2 * W;
            // The trailer is the last word of `a`'s block, which ends where
            // `b`'s header begins; deliberately damaged.
            let trailer = a.as_ptr().wrapping_add(end);
            // SAFETY: 8 bytes inside `a`'s block, which the test owns.
            unsafe { trailer.write_bytes(0xFF, W) };
            assert!(matches!(
                // SAFETY: the test owns this live block.
                unsafe { h.free(a) },
                Err(Error::Overflow { .. })
            ));
            // SAFETY: as above.
            assert!(!unsafe { h.resize_in_place(a, 12) }.unwrap());
            assert_eq!(h.stats().live_blocks, 2, "the damaged block stays live");
            // SAFETY: the test owns `b`, freed once.
            unsafe { h.free(b) }.unwrap();
        }
    }

    #[test]
    fn allocator_api_vec_grows_in_place() {
        let h = heap(1 << 16, Fit::Best, Checks::off());
        let mut v: allocator_api2::vec::Vec<u64, &FreeList> = allocator_api2::vec::Vec::new_in(&h);
        v.push(1);
        let first = v.as_ptr();
        for i in 0..1000 {
            v.push(i);
        }
        assert_eq!(
            v.as_ptr(),
            first,
            "grew in place: nothing else was allocated"
        );
        assert_eq!(h.stats().live_blocks, 1);
        drop(v);
        h.check().unwrap();
        assert_eq!(h.stats().free_chunks, 1);
    }
}
