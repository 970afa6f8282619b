//! `Buddy`: power-of-two blocks that split on allocation and merge on free.
//!
//! The region is cut into roots of `max_block` bytes. A request is rounded
//! up to a power of two (at least `min_block`): that is its order. The
//! allocator takes the smallest free block of that order or above and
//! splits it in halves ("buddies") down to the order, keeping the unused
//! halves on per-order free lists. On free, a block merges with its buddy
//! (the block at `offset ^ size`) for as long as the buddy is free and
//! whole, so memory returns to `max_block` roots.
//!
//! Rounding costs internal fragmentation (a 65-byte request takes 128
//! bytes); free blocks that cannot be merged because their buddies are live
//! cost external fragmentation (plenty of free bytes, no block large enough).
//! [`Buddy::stats`] reports both.
//!
//! Side tables: one state byte (order, free bit) and one requested-size word
//! (`u32`) per `min_block` granule; free-list links live in the free blocks.
//!
//! # Safety
//!
//! Links are read and written at offsets of free blocks inside the region;
//! debug patterns are written into blocks the allocator owns (a live block
//! it validated, or one it is handing out).
#![allow(unsafe_code, reason = "free-list links inside a raw region")]

use std::cell::UnsafeCell;
use std::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator, Layout};

use crate::block::Owner;
use crate::checks::{self, CANARY, POISON_FREED, POISON_FRESH};
use crate::error::unsupported;
use crate::{Block, Checks, Error, Memory, Stats};

const NAME: &str = "buddy";
const NIL: usize = usize::MAX;
const FREE: u8 = 0x80;

/// How a [`Buddy`] allocator is sized and checked: the one way to make one.
///
/// ```
/// use memio_alloc::BuddyOptions;
/// let buddy = BuddyOptions::new(64 << 10, 16).max_block(16 << 10).build()?;
/// assert_eq!((buddy.min_block(), buddy.max_block()), (16, 16 << 10));
/// # Ok::<(), memio_alloc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuddyOptions {
    /// Bytes to manage (a multiple of `max_block` is used).
    total: usize,
    /// Smallest block: a power of two, at least 16.
    min_block: usize,
    /// Largest block (a root): a power of two; by default the largest that
    /// fits in `total`.
    max_block: Option<usize>,
    locked: bool,
    checks: Checks,
}

impl BuddyOptions {
    /// Manage `total` bytes (a multiple of the largest block is used) in
    /// blocks from `min_block` (a power of two, at least 16) up; the
    /// largest block is by default the largest power of two that fits.
    #[must_use]
    pub const fn new(total: usize, min_block: usize) -> Self {
        Self {
            total,
            min_block,
            max_block: None,
            locked: false,
            checks: Checks::off(),
        }
    }

    /// Sets the largest block (a root): a power of two.
    #[must_use]
    pub const fn max_block(mut self, max_block: usize) -> Self {
        self.max_block = Some(max_block);
        self
    }

    /// Sets the debug checks.
    #[must_use]
    pub const fn checks(mut self, checks: Checks) -> Self {
        self.checks = checks;
        self
    }

    /// Locks the region into RAM.
    #[must_use]
    pub const fn locked(mut self, locked: bool) -> Self {
        self.locked = locked;
        self
    }

    /// Makes the allocator over a new anonymous mapping.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for sizes that are not powers of two or a
    /// region smaller than one largest block; [`Error::Os`] when mapping
    /// fails.
    pub fn build(&self) -> Result<Buddy, Error> {
        let max = self.max_block.unwrap_or(prev_power_of_two(self.total));
        let total = self.total.checked_div(max).map_or(0, |roots| roots * max);
        let memory = Memory::for_allocator(NAME, total.max(1), self.locked)?;
        Buddy::build(memory, BuddyOptions { total, ..*self })
    }

    /// Makes the allocator over the caller's memory (the total set is
    /// ignored: as many roots as fit are used).
    ///
    /// # Errors
    ///
    /// As [`BuddyOptions::build`].
    pub fn build_in(&self, memory: Memory) -> Result<Buddy, Error> {
        let total = memory.len();
        Buddy::build(memory, BuddyOptions { total, ..*self })
    }
}

#[derive(Debug)]
struct State {
    _memory: Memory,
    base: NonNull<u8>,
    /// Alignment the base address guarantees.
    base_align: usize,
    min_shift: u32,
    max_order: u32,
    len: usize,
    checks: Checks,
    heads: Vec<usize>,
    /// Per granule: 0 inside a block, else `order + 1`, with `FREE` set
    /// for free blocks.
    #[allow(
        clippy::struct_field_names,
        reason = "the per-granule state table of the allocator state"
    )]
    state: Vec<u8>,
    requested: Vec<u32>,
    in_use: usize,
    peak: usize,
    requested_total: usize,
    live_blocks: usize,
    allocations: u64,
    frees: u64,
    failures: u64,
}

/// A binary buddy allocator over one region.
///
/// Allocation and free are O(log(`max_block` / `min_block`)). Blocks are aligned
/// to their own size (up to the region's alignment: 4096 for mapped
/// memory). Not `Sync`; `Send`.
///
/// Made by [`BuddyOptions::build`].
///
/// ```
/// use memio_alloc::BuddyOptions;
/// let b = BuddyOptions::new(1024, 64).build()?;
/// let p = b.alloc_block(65, 8)?;           // takes a 128-byte block
/// assert_eq!(b.usable_size(p.as_ptr())?, 128);
/// assert_eq!(b.stats().internal_fragmentation(), 63);
/// drop(p);
/// assert_eq!(b.stats().largest_free, 1024); // merged back into the root
/// # Ok::<(), memio_alloc::Error>(())
/// ```
///
/// Freeing a raw pointer needs `unsafe`: the block may belong to a live
/// [`Block`] or collection.
///
/// ```compile_fail,E0133
/// use memio_alloc::BuddyOptions;
/// let b = BuddyOptions::new(1024, 64).build().unwrap();
/// let p = b.alloc(64, 8).unwrap();
/// b.free(p).unwrap();
/// ```
#[derive(Debug)]
pub struct Buddy {
    state: UnsafeCell<State>,
}

// SAFETY: the allocator owns its region and tables.
unsafe impl Send for Buddy {}

impl State {
    #[inline]
    fn block_size(&self, order: u32) -> usize {
        1 << (self.min_shift + order)
    }

    #[inline]
    fn ptr(&self, off: usize) -> *mut u8 {
        // SAFETY: offsets passed here are below `len`.
        unsafe { self.base.as_ptr().add(off) }
    }

    #[allow(
        clippy::cast_ptr_alignment,
        reason = "offsets of link words are multiples of 8 from an aligned base"
    )]
    fn link(&self, off: usize, which: usize) -> usize {
        // SAFETY: a free block of at least 16 bytes holds two link words.
        unsafe { self.ptr(off).cast::<usize>().wrapping_add(which).read() }
    }

    #[allow(
        clippy::cast_ptr_alignment,
        reason = "offsets of link words are multiples of 8 from an aligned base"
    )]
    fn set_link(&mut self, off: usize, which: usize, v: usize) {
        // SAFETY: as `link`.
        unsafe { self.ptr(off).cast::<usize>().wrapping_add(which).write(v) };
    }

    fn push(&mut self, off: usize, order: u32) {
        let head = self.heads[order as usize];
        self.set_link(off, 0, head);
        self.set_link(off, 1, NIL);
        if head != NIL {
            self.set_link(head, 1, off);
        }
        self.heads[order as usize] = off;
        #[allow(clippy::cast_possible_truncation, reason = "orders are below 64")]
        {
            self.state[off >> self.min_shift] = FREE | (order as u8 + 1);
        }
    }

    fn unlink(&mut self, off: usize, order: u32) {
        let next = self.link(off, 0);
        let prev = self.link(off, 1);
        if prev == NIL {
            self.heads[order as usize] = next;
        } else {
            self.set_link(prev, 0, next);
        }
        if next != NIL {
            self.set_link(next, 1, prev);
        }
        self.state[off >> self.min_shift] = 0;
    }

    fn alloc(&mut self, size: usize, align: usize) -> Result<NonNull<u8>, Error> {
        if !align.is_power_of_two() || align > self.base_align {
            self.failures += 1;
            return Err(unsupported(
                NAME,
                format!(
                    "alignment {align} (a power of two up to {})",
                    self.base_align
                ),
            ));
        }
        let need = size
            .checked_add(self.checks.red_zone)
            .map(|n| n.max(align).max(1 << self.min_shift))
            .and_then(usize::checked_next_power_of_two);
        let order = need.map_or(u32::MAX, |n| n.trailing_zeros() - self.min_shift);
        let oom = Error::OutOfMemory {
            allocator: NAME,
            size,
            align,
        };
        if order > self.max_order || size > u32::MAX as usize {
            self.failures += 1;
            return Err(oom);
        }
        let Some(mut j) = (order..=self.max_order).find(|&j| self.heads[j as usize] != NIL) else {
            self.failures += 1;
            return Err(oom);
        };
        let off = self.heads[j as usize];
        self.unlink(off, j);
        while j > order {
            j -= 1;
            self.push(off + self.block_size(j), j);
        }
        let g = off >> self.min_shift;
        #[allow(
            clippy::cast_possible_truncation,
            reason = "orders are below 64, sizes below 4 GiB (checked)"
        )]
        {
            self.state[g] = order as u8 + 1;
            self.requested[g] = size as u32;
        }
        let bsize = self.block_size(order);
        self.in_use += bsize;
        self.peak = self.peak.max(self.in_use);
        self.requested_total += size;
        self.live_blocks += 1;
        self.allocations += 1;
        let p = self.ptr(off);
        if self.checks.poison {
            // SAFETY: the requested bytes of the block being handed out.
            unsafe { checks::fill(p, size, POISON_FRESH) };
        }
        if self.checks.red_zone > 0 {
            // SAFETY: the slack of the same block.
            unsafe { checks::fill(p.wrapping_add(size), bsize - size, CANARY) };
        }
        // SAFETY: inside the region, never null.
        Ok(unsafe { NonNull::new_unchecked(p) })
    }

    /// Offset of the live block at `addr`, or why it is not one.
    fn validate(&self, addr: usize) -> Result<usize, Error> {
        let off = addr.wrapping_sub(self.base.as_ptr() as usize);
        let foreign = Error::Foreign {
            allocator: NAME,
            addr,
        };
        if off >= self.len || off & ((1 << self.min_shift) - 1) != 0 {
            return Err(foreign);
        }
        let st = self.state[off >> self.min_shift];
        if st != 0 && st & FREE == 0 {
            return Ok(off);
        }
        if st & FREE != 0 {
            return Err(Error::DoubleFree {
                allocator: NAME,
                addr,
            });
        }
        // Inside some block: the enclosing block starts at `off` rounded
        // down to one of the orders.
        for k in 1..=self.max_order {
            let start = off & !(self.block_size(k) - 1);
            let s = self.state[start >> self.min_shift];
            if s != 0 && u32::from(s & !FREE) > k {
                return Err(if s & FREE != 0 {
                    Error::DoubleFree {
                        allocator: NAME,
                        addr,
                    }
                } else {
                    foreign
                });
            }
        }
        Err(foreign)
    }

    fn free(&mut self, mut off: usize) -> Result<(), Error> {
        let g = off >> self.min_shift;
        let mut order = u32::from(self.state[g]) - 1;
        let size = self.requested[g] as usize;
        let bsize = self.block_size(order);
        let p = self.ptr(off);
        if self.checks.red_zone > 0 {
            // SAFETY: the slack of this live block.
            let damaged =
                unsafe { checks::first_mismatch(p.wrapping_add(size), bsize - size, CANARY) };
            if let Some(at) = damaged {
                return Err(Error::Overflow {
                    allocator: NAME,
                    addr: p as usize,
                    size,
                    offset: at,
                });
            }
        }
        if self.checks.poison {
            // SAFETY: the whole live block.
            unsafe { checks::fill(p, bsize, POISON_FREED) };
        }
        self.state[g] = 0;
        self.in_use -= bsize;
        self.requested_total -= size;
        self.live_blocks -= 1;
        self.frees += 1;
        while order < self.max_order {
            let buddy = off ^ self.block_size(order);
            #[allow(clippy::cast_possible_truncation, reason = "orders are below 64")]
            let whole_and_free = self.state[buddy >> self.min_shift] == FREE | (order as u8 + 1);
            if !whole_and_free {
                break;
            }
            self.unlink(buddy, order);
            off = off.min(buddy);
            order += 1;
        }
        self.push(off, order);
        Ok(())
    }

    fn stats(&self) -> Stats {
        let mut free_chunks = 0;
        let mut largest = 0;
        for (k, &head) in self.heads.iter().enumerate() {
            let mut b = head;
            while b != NIL {
                free_chunks += 1;
                largest = largest.max(1 << (self.min_shift as usize + k));
                b = self.link(b, 0);
            }
        }
        let footprint = self
            .state
            .iter()
            .rposition(|&s| s != 0 && s & FREE == 0)
            .map_or(0, |g| {
                (g << self.min_shift) + self.block_size(u32::from(self.state[g]) - 1)
            });
        Stats {
            reserved: self.len,
            in_use: self.in_use,
            free: self.len - self.in_use,
            free_chunks,
            largest_free: largest,
            peak_in_use: self.peak,
            live_blocks: self.live_blocks,
            requested: self.requested_total,
            footprint,
            allocations: self.allocations,
            frees: self.frees,
            failures: self.failures,
        }
    }
}

impl Buddy {
    fn build(memory: Memory, o: BuddyOptions) -> Result<Self, Error> {
        if !o.min_block.is_power_of_two() || o.min_block < 16 {
            return Err(unsupported(
                NAME,
                format!("min block {} (a power of two, at least 16)", o.min_block),
            ));
        }
        let start = memory.as_ptr() as usize;
        // Align the base as far as useful (up to a page), then count roots.
        let want_align = o
            .max_block
            .unwrap_or(prev_power_of_two(o.total))
            .clamp(16, 4096);
        let base_off = start.next_multiple_of(want_align) - start;
        let avail = memory.len().saturating_sub(base_off).min(o.total);
        let max = o.max_block.unwrap_or(prev_power_of_two(avail));
        if !max.is_power_of_two() || max < o.min_block || max > avail {
            return Err(unsupported(
                NAME,
                format!(
                    "max block {max} with {avail} bytes (a power of two from min block to the region size)"
                ),
            ));
        }
        let roots = avail / max;
        let len = roots * max;
        let min_shift = o.min_block.trailing_zeros();
        let max_order = max.trailing_zeros() - min_shift;
        // SAFETY: `base_off < memory.len()` since `avail >= max > 0`.
        let base = unsafe { NonNull::new_unchecked(memory.as_ptr().wrapping_add(base_off)) };
        let base_align = 1 << (base.as_ptr() as usize).trailing_zeros().min(63);
        let mut s = State {
            _memory: memory,
            base,
            base_align: base_align.min(max),
            min_shift,
            max_order,
            len,
            checks: o.checks,
            heads: vec![NIL; max_order as usize + 1],
            state: vec![0; len >> min_shift],
            requested: vec![0; len >> min_shift],
            in_use: 0,
            peak: 0,
            requested_total: 0,
            live_blocks: 0,
            allocations: 0,
            frees: 0,
            failures: 0,
        };
        for r in (0..roots).rev() {
            s.push(r * max, max_order);
        }
        if o.checks.poison {
            for r in 0..roots {
                // SAFETY: the root minus its two link words lies in the region.
                unsafe { checks::fill(s.ptr(r * max + 16), max - 16, POISON_FREED) };
            }
        }
        Ok(Self {
            state: UnsafeCell::new(s),
        })
    }

    #[allow(
        clippy::mut_from_ref,
        reason = "the allocator is !Sync and no method re-enters"
    )]
    fn s(&self) -> &mut State {
        // SAFETY: `Buddy` is not `Sync`; each method takes this reference
        // once and never calls back into the allocator while holding it.
        unsafe { &mut *self.state.get() }
    }

    /// Smallest block size.
    #[must_use]
    pub fn min_block(&self) -> usize {
        1 << self.s().min_shift
    }

    /// Largest block size.
    #[must_use]
    pub fn max_block(&self) -> usize {
        let s = self.s();
        s.block_size(s.max_order)
    }

    /// Allocates `size` bytes aligned to `align`, taking the block of the
    /// next power of two.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfMemory`] when no block of that order can be made;
    /// [`Error::Unsupported`] for an alignment beyond the region's.
    pub fn alloc(&self, size: usize, align: usize) -> Result<NonNull<u8>, Error> {
        self.s().alloc(size, align)
    }

    /// Allocates like [`Buddy::alloc`]; the [`Block`] frees the block when
    /// dropped.
    ///
    /// # Errors
    ///
    /// As [`Buddy::alloc`].
    pub fn alloc_block(&self, size: usize, align: usize) -> Result<Block<'_>, Error> {
        let ptr = self.alloc(size, align)?;
        // SAFETY: a block just handed out, at least `size` bytes, owned by
        // no one.
        Ok(unsafe { Block::new(ptr, size, Owner::Buddy(self)) })
    }

    /// Frees a live block after validating it, merging with free buddies.
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
        let s = self.s();
        let off = s.validate(ptr.as_ptr() as usize)?;
        s.free(off)
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
        let s = self.s();
        let off = if s.checks.ownership {
            s.validate(ptr.as_ptr() as usize)
                .unwrap_or_else(|e| panic!("{e}"))
        } else {
            ptr.as_ptr() as usize - s.base.as_ptr() as usize
        };
        if let Err(e) = s.free(off) {
            panic!("{e}");
        }
    }

    /// Usable bytes of the live block at `ptr`: its power-of-two size (with
    /// red zones on, what was requested).
    ///
    /// # Errors
    ///
    /// As [`Buddy::free`].
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Result<usize, Error> {
        let s = self.s();
        let off = s.validate(ptr.as_ptr() as usize)?;
        let g = off >> s.min_shift;
        Ok(if s.checks.red_zone > 0 {
            s.requested[g] as usize
        } else {
            s.block_size(u32::from(s.state[g]) - 1)
        })
    }

    /// The statistics, with internal and external fragmentation
    /// ([`Stats::internal_fragmentation`], [`Stats::external_fragmentation`]).
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.s().stats()
    }

    /// Free blocks per order, smallest first: how the free space is cut up.
    #[must_use]
    pub fn free_blocks_per_order(&self) -> Vec<(usize, usize)> {
        let s = self.s();
        (0..=s.max_order)
            .map(|k| {
                let mut n = 0;
                let mut b = s.heads[k as usize];
                while b != NIL {
                    n += 1;
                    b = s.link(b, 0);
                }
                (s.block_size(k), n)
            })
            .collect()
    }
}

fn prev_power_of_two(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

// SAFETY: blocks are handed out once until freed, at least as large and
// aligned as asked, and valid while the allocator lives.
unsafe impl Allocator for &Buddy {
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
        // SAFETY: forwarded contract.
        unsafe { self.resize(ptr, old, new) }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract.
        unsafe { self.resize(ptr, old, new) }
    }
}

impl Buddy {
    /// Keeps the block when the new size rounds to the same order (only the
    /// requested size changes); otherwise allocates, copies and frees.
    unsafe fn resize(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let s = self.s();
        let off = ptr.as_ptr() as usize - s.base.as_ptr() as usize;
        let g = off >> s.min_shift;
        let bsize = s.block_size(u32::from(s.state[g]) - 1);
        let half = (bsize / 2).max(1 << s.min_shift);
        let fits = new.size() + s.checks.red_zone <= bsize
            && (new.size() + s.checks.red_zone > half || bsize == 1 << s.min_shift)
            && ptr.as_ptr() as usize % new.align() == 0;
        if fits && s.checks.red_zone == 0 {
            s.requested_total = s.requested_total - old.size() + new.size();
            #[allow(
                clippy::cast_possible_truncation,
                reason = "below the block size, below 4 GiB"
            )]
            {
                s.requested[g] = new.size() as u32;
            }
            return Ok(NonNull::slice_from_raw_parts(ptr, bsize));
        }
        let fresh = self
            .alloc(new.size(), new.align())
            .map_err(|_| AllocError)?;
        // SAFETY: both blocks are live and distinct.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr.as_ptr(), fresh.as_ptr(), old.size().min(new.size()));
        }
        // SAFETY: `ptr` is live (caller's contract), freed once.
        unsafe { self.free_unchecked(ptr) };
        let usable = self.usable_size(fresh).map_err(|_| AllocError)?;
        Ok(NonNull::slice_from_raw_parts(fresh, usable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_down_and_merges_back_to_one_root() {
        let b = BuddyOptions::new(1024, 64).build().unwrap();
        let p = b.alloc(64, 8).unwrap();
        // 1024 -> 512 + 256 + 128 + 64 free, 64 used.
        assert_eq!(
            b.free_blocks_per_order(),
            vec![(64, 1), (128, 1), (256, 1), (512, 1), (1024, 0)]
        );
        // SAFETY: the test owns this live block and frees it once.
        unsafe { b.free(p) }.unwrap();
        assert_eq!(b.free_blocks_per_order().last(), Some(&(1024, 1)));
        assert_eq!(b.stats().free_chunks, 1);
    }

    #[test]
    fn external_fragmentation_when_buddies_stay_live() {
        let b = BuddyOptions::new(1024, 64).build().unwrap();
        let blocks: Vec<_> = (0..16).map(|_| b.alloc(64, 8).unwrap()).collect();
        assert!(b.alloc(1, 1).is_err());
        for p in blocks.iter().step_by(2) {
            // SAFETY: the test owns this live block and frees it once.
            unsafe { b.free(*p) }.unwrap();
        }
        let st = b.stats();
        assert_eq!((st.free, st.largest_free, st.free_chunks), (512, 64, 8));
        assert_eq!(st.external_fragmentation(), 448);
        assert!(
            b.alloc(128, 8).is_err(),
            "512 bytes free, no 128-byte block"
        );
    }

    #[test]
    fn double_and_foreign_frees_are_reported() {
        let b = BuddyOptions::new(4096, 16).build().unwrap();
        let p = b.alloc(100, 16).unwrap();
        let q = b.alloc(16, 16).unwrap();
        // SAFETY: the test owns this live block and frees it once.
        unsafe { b.free(p) }.unwrap();
        // SAFETY: deliberately bad; the validating free must report it without touching memory.
        let got = unsafe { b.free(p) };
        assert!(matches!(got, Err(Error::DoubleFree { .. })));
        // SAFETY: 16 bytes past q is inside the region.
        let inside = unsafe { q.add(16) };
        assert!(matches!(
            // SAFETY: deliberately inside a block: refused without touching memory.
            unsafe { b.free(inside) },
            Err(Error::DoubleFree { .. } | Error::Foreign { .. })
        ));
        let x = 1u64;
        assert!(matches!(
            // SAFETY: deliberately foreign: refused without touching memory.
            unsafe { b.free(NonNull::from(&x).cast()) },
            Err(Error::Foreign { .. })
        ));
        // SAFETY: the test owns this live block and frees it once.
        unsafe { b.free(q) }.unwrap();
        assert_eq!(b.stats().free_chunks, 1);
    }

    #[test]
    fn alignment_up_to_the_block_size() {
        let b = BuddyOptions::new(1 << 16, 16).build().unwrap();
        let p = b.alloc(10, 1024).unwrap();
        assert_eq!(p.as_ptr() as usize % 1024, 0);
        assert!(matches!(
            b.alloc(10, 1 << 20),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn red_zone_catches_an_overflow() {
        let b = BuddyOptions::new(4096, 16)
            .checks(Checks::all())
            .build()
            .unwrap();
        let p = b.alloc(16, 8).unwrap();
        assert_eq!(b.usable_size(p).unwrap(), 16);
        // SAFETY: byte 16 of a 32-byte block (16 requested + red zone).
        unsafe { p.as_ptr().wrapping_add(16).write(1) };
        // SAFETY: deliberately bad; the validating free must report it without touching memory.
        assert!(matches!(unsafe { b.free(p) }, Err(Error::Overflow { .. })));
    }

    #[test]
    fn allocator_api_collections_work() {
        let b = BuddyOptions::new(1 << 16, 32).build().unwrap();
        let mut v = allocator_api2::vec::Vec::new_in(&b);
        for i in 0..1000u32 {
            v.push(i);
        }
        assert_eq!(v.iter().copied().sum::<u32>(), 999 * 1000 / 2);
        assert_eq!(b.stats().live_blocks, 1);
        drop(v);
        assert_eq!(b.stats().free_chunks, 1);
    }
}
