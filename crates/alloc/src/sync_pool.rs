//! `SyncPool`: a fixed-block pool shared between threads, lock-free.
//!
//! The free list is a Treiber stack of block *indices*: the head is one
//! `AtomicU64` holding a 32-bit index and a 32-bit tag that changes on every
//! update (so a stale compare-and-swap fails: no ABA), and the links live in
//! a side array of `AtomicU32` rather than inside the blocks, so a thread
//! reading a link never races with the owner of a block writing its data.
//! A side array of `AtomicU8` states makes double frees detectable with one
//! `swap`.
//!
//! # Safety
//!
//! Block pointers are the region base plus `index * stride` for an index
//! below the block count; the region is owned by the pool and outlives every
//! block handed out (blocks borrow nothing, but freeing after the pool is
//! dropped is impossible: `free` takes `&self`).
#![allow(unsafe_code, reason = "hands out raw blocks of a shared region")]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use allocator_api2::alloc::{AllocError, Allocator, Layout};

use crate::checks::{self, POISON_FREED};
use crate::error::unsupported;
use crate::{Checks, Error, Memory, Stats};

const NAME: &str = "sync pool";
const NONE: u32 = u32::MAX;

/// A fixed-block pool that many threads allocate from and free to at once.
///
/// It does not grow. Checks: [`Checks::poison`] (freed blocks are filled
/// with [`crate::POISON_FREED`]) and [`Checks::ownership`]; red zones are
/// not offered (use [`crate::Pool`] per thread to hunt overflows).
///
/// ```
/// use memio_alloc::{Checks, SyncPool};
/// let pool = SyncPool::new(64, 1000, Checks::off())?;
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| {
///             for _ in 0..100 {
///                 let b = pool.alloc().unwrap();
///                 pool.free(b).unwrap();
///             }
///         });
///     }
/// });
/// assert_eq!(pool.stats().allocations, 400);
/// # Ok::<(), memio_alloc::Error>(())
/// ```
#[derive(Debug)]
pub struct SyncPool {
    memory: Memory,
    base: usize,
    stride: usize,
    shift: u32,
    blocks: usize,
    block_size: usize,
    checks: Checks,
    /// Index (low 32 bits) and tag (high 32 bits) of the free-list head.
    head: AtomicU64,
    next: Box<[AtomicU32]>,
    /// 1 while the block is live.
    live: Box<[AtomicU8]>,
    frees: AtomicU64,
    failures: AtomicU64,
    peak: AtomicUsize,
}

// SAFETY: all shared state is atomic; a block is handed to one thread at a
// time (the CAS that pops it succeeds once), and the region is only written
// through blocks or, with poisoning, by the thread freeing a block it owns.
unsafe impl Sync for SyncPool {}
// SAFETY: the pool owns its region.
unsafe impl Send for SyncPool {}

fn pack(tag: u64, index: u32) -> u64 {
    (tag << 32) | u64::from(index)
}

impl SyncPool {
    /// A pool of `blocks` blocks of `block_size` bytes (16-byte aligned)
    /// over a new anonymous mapping.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for 0 blocks or sizes, more than 2^32 − 1
    /// blocks, or red zones; [`Error::Os`] when mapping fails.
    pub fn new(block_size: usize, blocks: usize, checks: Checks) -> Result<Self, Error> {
        let stride = block_size
            .max(1)
            .checked_next_multiple_of(16)
            .ok_or_else(|| unsupported(NAME, "block size overflows"))?;
        let bytes = stride
            .checked_mul(blocks)
            .ok_or_else(|| unsupported(NAME, "pool size overflows"))?;
        if bytes == 0 {
            return Err(unsupported(
                NAME,
                "a pool needs at least one block of at least one byte",
            ));
        }
        let memory = Memory::map(bytes).map_err(|e| Error::Os {
            allocator: NAME,
            source: e.into(),
        })?;
        Self::build(memory, block_size, checks, blocks)
    }

    /// A pool over the caller's memory with as many blocks as fit.
    ///
    /// # Errors
    ///
    /// As [`SyncPool::new`].
    pub fn in_memory(memory: Memory, block_size: usize, checks: Checks) -> Result<Self, Error> {
        Self::build(memory, block_size, checks, usize::MAX)
    }

    fn build(
        memory: Memory,
        block_size: usize,
        checks: Checks,
        limit: usize,
    ) -> Result<Self, Error> {
        if checks.red_zone > 0 {
            return Err(unsupported(
                NAME,
                "red zones are offered by Pool, not SyncPool",
            ));
        }
        let stride = block_size.max(1).next_multiple_of(16);
        let start = memory.as_ptr() as usize;
        let base = start.next_multiple_of(16);
        let blocks = (memory.len().saturating_sub(base - start) / stride).min(limit);
        if blocks == 0 || block_size == 0 {
            return Err(unsupported(
                NAME,
                format!("{} bytes hold no block of {block_size} bytes", memory.len()),
            ));
        }
        if blocks >= NONE as usize {
            return Err(unsupported(NAME, "more than 2^32 - 1 blocks"));
        }
        let next: Box<[AtomicU32]> = (0..blocks)
            .map(|i| {
                AtomicU32::new(if i + 1 < blocks {
                    u32::try_from(i + 1).unwrap_or(NONE)
                } else {
                    NONE
                })
            })
            .collect();
        if checks.poison {
            // SAFETY: the whole block area is inside the owned region.
            unsafe { checks::fill(base as *mut u8, blocks * stride, POISON_FREED) };
        }
        Ok(Self {
            memory,
            base,
            stride,
            shift: if stride.is_power_of_two() {
                stride.trailing_zeros()
            } else {
                u32::MAX
            },
            blocks,
            block_size,
            checks,
            head: AtomicU64::new(pack(0, 0)),
            next,
            live: (0..blocks).map(|_| AtomicU8::new(0)).collect(),
            frees: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            peak: AtomicUsize::new(0),
        })
    }

    /// Usable bytes per block.
    #[must_use]
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Number of blocks.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.blocks
    }

    /// Pops a free block (lock-free).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfMemory`] when every block is live.
    pub fn alloc(&self) -> Result<NonNull<u8>, Error> {
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "the low 32 bits are the index"
            )]
            let index = head as u32;
            if index == NONE {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err(Error::OutOfMemory {
                    allocator: NAME,
                    size: self.block_size,
                    align: 16,
                });
            }
            // A stale index reads a stale link; the tag makes the CAS fail then.
            let next = self.next[index as usize].load(Ordering::Relaxed);
            let new = pack((head >> 32).wrapping_add(1) & 0xFFFF_FFFF, next);
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.live[index as usize].store(1, Ordering::Relaxed);
                    let addr = self.base + index as usize * self.stride;
                    // SAFETY: base + index * stride is inside the region, not null.
                    return Ok(unsafe { NonNull::new_unchecked(addr as *mut u8) });
                }
                Err(now) => head = now,
            }
        }
    }

    fn index(&self, addr: usize) -> Result<usize, Error> {
        let off = addr.wrapping_sub(self.base);
        let foreign = Error::Foreign {
            allocator: NAME,
            addr,
        };
        if off >= self.blocks * self.stride {
            return Err(foreign);
        }
        let (index, rest) = if self.shift == u32::MAX {
            (off / self.stride, off % self.stride)
        } else {
            (off >> self.shift, off & (self.stride - 1))
        };
        if rest == 0 { Ok(index) } else { Err(foreign) }
    }

    /// Pushes a live block back (lock-free), after checking it is one.
    ///
    /// # Errors
    ///
    /// [`Error::DoubleFree`] or [`Error::Foreign`].
    pub fn free(&self, ptr: NonNull<u8>) -> Result<(), Error> {
        let addr = ptr.as_ptr() as usize;
        let index = self.index(addr)?;
        if self.live[index].swap(0, Ordering::Relaxed) == 0 {
            return Err(Error::DoubleFree {
                allocator: NAME,
                addr,
            });
        }
        if self.checks.poison {
            // SAFETY: the caller gave this live block back; it is ours now.
            unsafe { checks::fill(ptr.as_ptr(), self.stride, POISON_FREED) };
        }
        self.frees.fetch_add(1, Ordering::Relaxed);
        #[allow(
            clippy::cast_possible_truncation,
            reason = "indices are below 2^32 - 1 (checked)"
        )]
        let index32 = index as u32;
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "the low 32 bits are the index"
            )]
            self.next[index].store(head as u32, Ordering::Relaxed);
            let new = pack((head >> 32).wrapping_add(1) & 0xFFFF_FFFF, index32);
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => head = now,
            }
        }
    }

    /// Usable bytes of a live block.
    ///
    /// # Errors
    ///
    /// As [`SyncPool::free`] for a pointer that is not a live block.
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Result<usize, Error> {
        let addr = ptr.as_ptr() as usize;
        let index = self.index(addr)?;
        if self.live[index].load(Ordering::Relaxed) == 0 {
            return Err(Error::DoubleFree {
                allocator: NAME,
                addr,
            });
        }
        Ok(self.block_size)
    }

    /// A snapshot of the statistics (counters are read one by one while
    /// other threads may move them; `peak_in_use` is the highest value seen
    /// by calls to this method, and `requested` counts whole blocks).
    #[must_use]
    pub fn stats(&self) -> Stats {
        let live = self
            .live
            .iter()
            .filter(|l| l.load(Ordering::Relaxed) != 0)
            .count();
        let highest = self
            .live
            .iter()
            .rposition(|l| l.load(Ordering::Relaxed) != 0)
            .map_or(0, |i| i + 1);
        let in_use = live * self.stride;
        let peak = self.peak.fetch_max(in_use, Ordering::Relaxed).max(in_use);
        Stats {
            reserved: self.blocks * self.stride,
            in_use,
            free: (self.blocks - live) * self.stride,
            free_chunks: self.blocks - live,
            largest_free: (self.blocks - live) * self.stride,
            peak_in_use: peak,
            live_blocks: live,
            requested: live * self.block_size,
            footprint: highest * self.stride,
            // Every live block was allocated once and not freed since.
            allocations: self.frees.load(Ordering::Relaxed) + live as u64,
            frees: self.frees.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// The memory the pool manages.
    #[must_use]
    pub fn memory(&self) -> &Memory {
        &self.memory
    }
}

// SAFETY: a block is handed out once until freed (CAS), fits the layout
// (checked), and stays valid while the pool lives.
unsafe impl Allocator for &SyncPool {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() > self.block_size || layout.align() > 16 {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(AllocError);
        }
        let p = self.alloc().map_err(|_| AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, self.block_size))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        if let Err(e) = self.free(ptr) {
            // Only reachable when the caller broke the trait's contract.
            assert!(!self.checks.ownership, "{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_never_get_the_same_block() {
        let pool = SyncPool::new(32, 64, Checks::off()).unwrap();
        let seen = std::sync::Mutex::new(std::collections::HashSet::new());
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let (pool, seen) = (&pool, &seen);
                s.spawn(move || {
                    for round in 0..2000u32 {
                        let mut mine = Vec::new();
                        for _ in 0..8 {
                            let b = pool.alloc().unwrap();
                            // SAFETY: the block is live and 32 bytes long.
                            unsafe { b.as_ptr().write_bytes(t, 32) };
                            mine.push(b);
                        }
                        if round % 500 == 0 {
                            let mut set = seen.lock().unwrap();
                            for b in &mine {
                                set.insert(b.as_ptr() as usize);
                            }
                        }
                        for b in mine {
                            // SAFETY: nobody else wrote our live block.
                            let bytes = unsafe { std::slice::from_raw_parts(b.as_ptr(), 32) };
                            assert!(bytes.iter().all(|&x| x == t));
                            pool.free(b).unwrap();
                        }
                    }
                });
            }
        });
        let st = pool.stats();
        assert_eq!(
            (st.live_blocks, st.allocations, st.frees),
            (0, 64_000, 64_000)
        );
    }

    #[test]
    fn allocator_api_collections_share_the_pool_across_threads() {
        let pool = SyncPool::new(256, 8, Checks::off()).unwrap();
        std::thread::scope(|s| {
            for t in 0..2u8 {
                let pool = &pool;
                s.spawn(move || {
                    for _ in 0..100 {
                        let mut v = allocator_api2::vec::Vec::with_capacity_in(200, pool);
                        v.extend(std::iter::repeat_n(t, 200));
                        assert!(v.iter().all(|&x| x == t));
                        assert!(v.try_reserve(1000).is_err(), "a block holds 256 bytes");
                    }
                });
            }
        });
        assert_eq!(pool.stats().live_blocks, 0);
    }

    #[test]
    fn exhaustion_double_free_and_foreign_are_reported() {
        let pool = SyncPool::new(16, 2, Checks::all().red_zone_off()).unwrap();
        let a = pool.alloc().unwrap();
        let _b = pool.alloc().unwrap();
        assert!(matches!(pool.alloc(), Err(Error::OutOfMemory { .. })));
        pool.free(a).unwrap();
        assert!(matches!(pool.free(a), Err(Error::DoubleFree { .. })));
        let x = 5u64;
        assert!(matches!(
            pool.free(NonNull::from(&x).cast()),
            Err(Error::Foreign { .. })
        ));
        assert!(SyncPool::new(16, 2, Checks::all()).is_err());
    }
}
