//! `SyncPool`: a fixed-block pool shared between threads, lock-free, with
//! per-thread caches of blocks.
//!
//! Two layers:
//!
//! 1. **The shared part** ([`depot`]): a lock-free stack of free block
//!    indices (tagged Treiber stack over a side array of links) that takes
//!    and gives whole batches with one compare-and-swap each.
//! 2. **Per-thread caches** ("magazines"): a [`SyncPoolHandle`], made by
//!    [`SyncPool::handle`] and used by one thread, keeps up to two batches
//!    of free block indices of its own. Allocating pops from it and freeing
//!    pushes onto it, touching no cache line another thread writes; only
//!    when it runs empty does it take a batch from the shared part, and
//!    when it is full it gives its oldest batch back. Dropping the handle
//!    gives back everything it holds.
//!
//! [`SyncPool::alloc`] and [`SyncPool::free`] without a handle go straight
//! to the shared part (one compare-and-swap each).
//!
//! Why handles and not thread-locals: a thread-local cache keyed by pool
//! would have to outlive the pool — a thread may exit long after the pool
//! dropped, or never — so it would hold indices into unmapped memory, or
//! keep the pool's memory alive for as long as some thread lives. A handle
//! borrows the pool instead: the borrow checker proves every cache is gone
//! before the pool drops, and the handle's `Drop` returns its blocks,
//! whether the thread ends normally or unwinds. A leaked handle leaks its
//! blocks, which is safe. A block is only an index, so a block allocated
//! through one handle may be freed through another (or through the pool):
//! it joins that cache.
//!
//! Checks: with [`Checks::ownership`] a side array of per-block states
//! makes every allocation and free swap the block's state, reporting a
//! double free. Without it, `free` checks only that the pointer is a block
//! boundary inside the region (no shared write): a state byte per block
//! would put blocks of different threads on one cache line and move it
//! between the cores on every pair.
//!
//! Statistics are counted in each handle and added to the pool's counters
//! when the handle refills, drains or drops; calls without a handle count
//! at once. `SyncPool::stats` is exact when no handle is alive.
//!
//! # Safety
//!
//! A block pointer is the region base plus `index * stride` for an index
//! below the block count, inside the region the pool owns. Each free block
//! index is in exactly one place: the shared stack (the swap that pops a
//! batch succeeds once) or one handle's cache (a handle is not `Sync`, so
//! one thread at a time uses it). A live block belongs to whoever it was
//! handed to; the `unsafe` frees require it back from its one owner.
//! Handles and [`Block`]s borrow the pool, so the region outlives them.
#![allow(unsafe_code, reason = "hands out raw blocks of a shared region")]

mod depot;
mod handle;

pub use handle::SyncPoolHandle;

#[cfg(loom)]
use loom::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use std::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator, Layout};

use crate::block::Owner;
use crate::checks::{self, POISON_FREED};
use crate::error::unsupported;
use crate::{Block, Checks, Error, Memory, Stats};
use depot::{Depot, NONE, Padded};

const NAME: &str = "sync pool";

/// How a [`SyncPool`] is sized and checked: the one way to make one.
///
/// ```
/// use memio_alloc::SyncPoolOptions;
/// let pool = SyncPoolOptions::new(64).blocks(1000).magazine(16).build()?;
/// assert_eq!((pool.capacity(), pool.magazine()), (1000, 16));
/// # Ok::<(), memio_alloc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncPoolOptions {
    block_size: usize,
    blocks: usize,
    magazine: usize,
    locked: bool,
    checks: Checks,
}

impl SyncPoolOptions {
    /// 1024 blocks of `block_size` bytes (16-byte aligned), batches of 32
    /// between a handle's cache and the shared part, no checks.
    #[must_use]
    pub const fn new(block_size: usize) -> Self {
        Self {
            block_size,
            blocks: 1024,
            magazine: 32,
            locked: false,
            checks: Checks::off(),
        }
    }

    /// Sets the number of blocks (the pool does not grow).
    #[must_use]
    pub const fn blocks(mut self, n: usize) -> Self {
        self.blocks = n;
        self
    }

    /// Sets the batch a [`SyncPoolHandle`] takes from or gives to the
    /// shared part at once; a handle caches up to twice that. Larger
    /// batches touch the shared part less often and strand more free
    /// blocks in caches.
    #[must_use]
    pub const fn magazine(mut self, n: usize) -> Self {
        self.magazine = n;
        self
    }

    /// Locks the region into RAM (`mlock`).
    #[must_use]
    pub const fn locked(mut self, locked: bool) -> Self {
        self.locked = locked;
        self
    }

    /// Sets the debug checks ([`Checks::poison`], [`Checks::ownership`];
    /// red zones are not offered: use a [`crate::Pool`] per thread to hunt
    /// overflows).
    #[must_use]
    pub const fn checks(mut self, checks: Checks) -> Self {
        self.checks = checks;
        self
    }

    /// Makes the pool over a new anonymous mapping.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for 0 blocks, sizes or batches, more than
    /// 2^32 − 1 blocks, or red zones; [`Error::Os`] when mapping fails.
    pub fn build(&self) -> Result<SyncPool, Error> {
        let stride = self
            .block_size
            .max(1)
            .checked_next_multiple_of(16)
            .ok_or_else(|| unsupported(NAME, "block size overflows"))?;
        let bytes = stride
            .checked_mul(self.blocks)
            .ok_or_else(|| unsupported(NAME, "pool size overflows"))?;
        if bytes == 0 {
            return Err(unsupported(
                NAME,
                "a pool needs at least one block of at least one byte",
            ));
        }
        let memory = Memory::for_allocator(NAME, bytes, self.locked)?;
        SyncPool::build(memory, *self)
    }

    /// Makes the pool over the caller's memory with as many blocks as fit
    /// (the block count set is ignored).
    ///
    /// # Errors
    ///
    /// As [`SyncPoolOptions::build`].
    pub fn build_in(&self, memory: Memory) -> Result<SyncPool, Error> {
        SyncPool::build(
            memory,
            Self {
                blocks: usize::MAX,
                ..*self
            },
        )
    }
}

/// The pool's counters, on their own cache lines.
#[derive(Debug)]
struct Counters {
    allocations: AtomicU64,
    frees: AtomicU64,
    failures: AtomicU64,
    /// Highest `in_use` seen by `stats`.
    peak: AtomicUsize,
    /// One past the highest block index ever handed out.
    high: AtomicUsize,
}

/// A fixed-block pool that many threads allocate from and free to at once.
///
/// Made by [`SyncPoolOptions::build`]; `Sync`. For speed, give each thread
/// a [`SyncPoolHandle`] ([`SyncPool::handle`]): its cache serves most
/// allocations and frees without touching memory other threads write.
/// Safe code allocates owning [`Block`]s; the raw [`SyncPool::alloc`] and
/// the `unsafe` [`SyncPool::free`] are for code that tracks ownership
/// itself.
///
/// ```
/// use memio_alloc::SyncPoolOptions;
/// let pool = SyncPoolOptions::new(64).blocks(1000).build()?;
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| {
///             let cache = pool.handle();
///             for _ in 0..100 {
///                 let mut b = cache.alloc_block().unwrap();
///                 b.as_uninit_mut()[0].write(1);
///             } // each block goes back when dropped, into the cache
///         }); // and the cache into the pool when the handle drops
///     }
/// });
/// let st = pool.stats();
/// assert_eq!((st.allocations, st.live_blocks), (400, 0));
/// # Ok::<(), memio_alloc::Error>(())
/// ```
///
/// The pool's memory is not offered as a slice (other threads write its
/// blocks), and freeing a raw pointer needs `unsafe`:
///
/// ```compile_fail,E0599
/// use memio_alloc::SyncPoolOptions;
/// let pool = SyncPoolOptions::new(64).build().unwrap();
/// let _bytes = pool.memory();
/// ```
///
/// ```compile_fail,E0133
/// use memio_alloc::SyncPoolOptions;
/// let pool = SyncPoolOptions::new(64).build().unwrap();
/// let p = pool.alloc().unwrap();
/// pool.free(p).unwrap();
/// ```
#[derive(Debug)]
pub struct SyncPool {
    depot: Depot,
    _memory: Memory,
    base: usize,
    stride: usize,
    /// `log2(stride)` when the stride is a power of two, else `u32::MAX`.
    shift: u32,
    blocks: usize,
    block_size: usize,
    magazine: usize,
    checks: Checks,
    /// With ownership checks, 1 per live block; empty otherwise.
    live: Box<[AtomicU8]>,
    counters: Padded<Counters>,
}

impl SyncPool {
    fn build(memory: Memory, o: SyncPoolOptions) -> Result<Self, Error> {
        if o.checks.red_zone > 0 {
            return Err(unsupported(
                NAME,
                "red zones are offered by Pool, not SyncPool",
            ));
        }
        if o.magazine == 0 || o.magazine > 1 << 16 {
            return Err(unsupported(
                NAME,
                format!("magazine of {} blocks (1 to 65536)", o.magazine),
            ));
        }
        // `build` checked this for its own memory; `build_in` takes any
        // block size, so a garbage one must not overflow here.
        let stride = o
            .block_size
            .max(1)
            .checked_next_multiple_of(16)
            .ok_or_else(|| unsupported(NAME, "block size overflows"))?;
        let start = memory.as_ptr() as usize;
        let base = start.next_multiple_of(16);
        let blocks = (memory.len().saturating_sub(base - start) / stride).min(o.blocks);
        if blocks == 0 || o.block_size == 0 {
            return Err(unsupported(
                NAME,
                format!(
                    "{} bytes hold no block of {} bytes",
                    memory.len(),
                    o.block_size
                ),
            ));
        }
        let count = match u32::try_from(blocks) {
            Ok(n) if n != NONE => n,
            _ => return Err(unsupported(NAME, "more than 2^32 - 1 blocks")),
        };
        if o.checks.poison {
            // SAFETY: the whole block area is inside the owned region.
            unsafe { checks::fill(base as *mut u8, blocks * stride, POISON_FREED) };
        }
        let live = if o.checks.ownership {
            (0..blocks).map(|_| AtomicU8::new(0)).collect()
        } else {
            Box::default()
        };
        Ok(Self {
            depot: Depot::new(count),
            _memory: memory,
            base,
            stride,
            shift: if stride.is_power_of_two() {
                stride.trailing_zeros()
            } else {
                u32::MAX
            },
            blocks,
            block_size: o.block_size,
            magazine: o.magazine,
            checks: o.checks,
            live,
            counters: Padded(Counters {
                allocations: AtomicU64::new(0),
                frees: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                peak: AtomicUsize::new(0),
                high: AtomicUsize::new(0),
            }),
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

    /// Blocks a handle takes from or gives to the shared part at once.
    #[must_use]
    pub fn magazine(&self) -> usize {
        self.magazine
    }

    /// A cache of blocks for the calling thread; see [`SyncPoolHandle`].
    #[must_use]
    pub fn handle(&self) -> SyncPoolHandle<'_> {
        SyncPoolHandle::new(self)
    }

    /// Takes a free block from the shared part (lock-free, one
    /// compare-and-swap).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfMemory`] when no block is free in the shared part
    /// (handles' caches may still hold some).
    pub fn alloc(&self) -> Result<NonNull<u8>, Error> {
        let mut one = [NONE];
        if self.take_batch(&mut one) == 0 {
            return Err(self.out_of_memory());
        }
        self.counters.0.allocations.fetch_add(1, Ordering::Relaxed);
        Ok(self.hand_out(one[0]))
    }

    /// Allocates like [`SyncPool::alloc`]; the [`Block`] frees the block
    /// when dropped.
    ///
    /// # Errors
    ///
    /// As [`SyncPool::alloc`].
    pub fn alloc_block(&self) -> Result<Block<'_>, Error> {
        let ptr = self.alloc()?;
        // SAFETY: a block just handed out, `block_size` bytes, owned by no one.
        Ok(unsafe { Block::new(ptr, self.block_size, Owner::Sync(self)) })
    }

    /// Gives a live block back to the shared part (lock-free, one
    /// compare-and-swap), after checking that it is a block of this pool
    /// (and, with [`Checks::ownership`], that it is live).
    ///
    /// The checks are a debug aid, not a guard.
    ///
    /// # Safety
    ///
    /// `ptr` must be a live block of this pool, handed out by it or one of
    /// its handles, that nothing else owns (not a [`Block`], nor a
    /// collection's buffer, nor another thread still using it).
    ///
    /// # Errors
    ///
    /// [`Error::Foreign`] for a pointer that is not a block of this pool;
    /// [`Error::DoubleFree`] (ownership checks on) for a free block.
    pub unsafe fn free(&self, ptr: NonNull<u8>) -> Result<(), Error> {
        // SAFETY: the caller's contract.
        let index = unsafe { self.take_back(ptr) }?;
        self.depot.push(&[index]);
        self.counters.0.frees.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Usable bytes of a block.
    ///
    /// # Errors
    ///
    /// [`Error::Foreign`] for a pointer that is not a block of this pool;
    /// with ownership checks on, [`Error::DoubleFree`] for a free block.
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Result<usize, Error> {
        let addr = ptr.as_ptr() as usize;
        let index = self.index(addr)?;
        if self.checks.ownership && self.live[index as usize].load(Ordering::Relaxed) == 0 {
            return Err(Error::DoubleFree {
                allocator: NAME,
                addr,
            });
        }
        Ok(self.block_size)
    }

    /// A snapshot of the statistics. Counters are read one by one while
    /// other threads may move them, and handles add theirs in batches (see
    /// the module notes): exact once no handle is alive or each has called
    /// [`SyncPoolHandle::flush`]. `peak_in_use` is
    /// the highest value seen by calls to this method; `requested` counts
    /// whole blocks; `footprint` reaches the highest live block with
    /// ownership checks on, else the highest block ever handed out.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let c = &self.counters.0;
        let allocations = c.allocations.load(Ordering::Relaxed);
        let frees = c.frees.load(Ordering::Relaxed);
        let (live, highest) = if self.checks.ownership {
            let is_live = |l: &AtomicU8| l.load(Ordering::Relaxed) != 0;
            (
                self.live.iter().filter(|l| is_live(l)).count(),
                self.live.iter().rposition(is_live).map_or(0, |i| i + 1),
            )
        } else {
            let live = usize::try_from(allocations.saturating_sub(frees)).unwrap_or(usize::MAX);
            (live.min(self.blocks), c.high.load(Ordering::Relaxed))
        };
        let in_use = live * self.stride;
        let peak = c.peak.fetch_max(in_use, Ordering::Relaxed).max(in_use);
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
            allocations,
            frees,
            failures: c.failures.load(Ordering::Relaxed),
        }
    }

    /// Takes up to `out.len()` blocks from the shared part; returns how many.
    fn take_batch(&self, out: &mut [u32]) -> usize {
        let n = self.depot.pop(out);
        if let Some(&top) = out[..n].iter().max() {
            self.counters
                .0
                .high
                .fetch_max(top as usize + 1, Ordering::Relaxed);
        }
        n
    }

    fn out_of_memory(&self) -> Error {
        self.counters.0.failures.fetch_add(1, Ordering::Relaxed);
        Error::OutOfMemory {
            allocator: NAME,
            size: self.block_size,
            align: 16,
        }
    }

    /// The pointer to free block `index`, which now goes to a caller.
    #[inline]
    fn hand_out(&self, index: u32) -> NonNull<u8> {
        if self.checks.ownership {
            let was = self.live[index as usize].swap(1, Ordering::Relaxed);
            assert!(
                was == 0,
                "{NAME}: a free block was live: the pool is corrupt"
            );
        }
        let addr = self.base + index as usize * self.stride;
        // SAFETY: base + index * stride is inside the region, not null.
        unsafe { NonNull::new_unchecked(addr as *mut u8) }
    }

    /// The index of a block coming back from its owner, after the checks.
    ///
    /// # Safety
    ///
    /// As [`SyncPool::free`]: when it is a block of this pool, the caller
    /// owns it (poisoning writes it).
    #[inline]
    unsafe fn take_back(&self, ptr: NonNull<u8>) -> Result<u32, Error> {
        let addr = ptr.as_ptr() as usize;
        let index = self.index(addr)?;
        if self.checks.ownership && self.live[index as usize].swap(0, Ordering::Relaxed) == 0 {
            return Err(Error::DoubleFree {
                allocator: NAME,
                addr,
            });
        }
        if self.checks.poison {
            // SAFETY: a block of this pool that its owner gave back.
            unsafe { checks::fill(ptr.as_ptr(), self.stride, POISON_FREED) };
        }
        Ok(index)
    }

    /// The block index of `addr`, or [`Error::Foreign`].
    #[inline]
    fn index(&self, addr: usize) -> Result<u32, Error> {
        let off = addr.wrapping_sub(self.base);
        let (index, rest) = if self.shift == u32::MAX {
            (off / self.stride, off % self.stride)
        } else {
            (off >> self.shift, off & (self.stride - 1))
        };
        if index < self.blocks && rest == 0 {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "indices are below 2^32 - 1 (checked at build)"
            )]
            Ok(index as u32)
        } else {
            Err(Error::Foreign {
                allocator: NAME,
                addr,
            })
        }
    }

    /// Fails an `Allocator` request the blocks cannot hold.
    fn fits(&self, layout: Layout) -> Result<(), AllocError> {
        if layout.size() > self.block_size || layout.align() > 16 {
            self.counters.0.failures.fetch_add(1, Ordering::Relaxed);
            return Err(AllocError);
        }
        Ok(())
    }
}

// SAFETY: a block is handed out once until freed (one successful swap pops
// it), fits the layout (checked), and stays valid while the pool lives.
unsafe impl Allocator for &SyncPool {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.fits(layout)?;
        let p = self.alloc().map_err(|_| AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, self.block_size))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: the trait's contract: a block this allocator handed out,
        // given back by its one owner.
        if let Err(e) = unsafe { self.free(ptr) } {
            // Only reachable when the caller broke the trait's contract.
            assert!(!self.checks.ownership, "{e}");
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
