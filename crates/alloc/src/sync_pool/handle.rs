//! `SyncPoolHandle`: one thread's cache of a [`SyncPool`]'s blocks.
//!
//! The cache is an array of up to two batches ([`SyncPool::magazine`]
//! blocks each) of free block indices, used as a stack: allocation pops,
//! free pushes. Empty: take a batch from the shared part. Full: give the
//! oldest batch back (the newest, still warm in this core's cache, stay).
//! Counters are plain integers, added to the pool's in those moments.

use std::cell::UnsafeCell;
use std::ptr::NonNull;

#[cfg(loom)]
use loom::sync::atomic::Ordering;
#[cfg(not(loom))]
use std::sync::atomic::Ordering;

use allocator_api2::alloc::{AllocError, Allocator, Layout};

use super::SyncPool;
use super::depot::NONE;
use crate::block::Owner;
use crate::{Block, Error};

/// A per-thread cache of a [`SyncPool`]'s blocks, made by
/// [`SyncPool::handle`].
///
/// Allocating and freeing through a handle touches only the handle until
/// its cache runs empty or full, then moves a whole batch to or from the
/// pool at once. A handle borrows the pool (it cannot outlive it), is
/// `Send` but not `Sync` (one thread uses it at a time), and gives every
/// block it holds back to the pool when dropped.
///
/// ```
/// use memio_alloc::SyncPoolOptions;
/// let pool = SyncPoolOptions::new(32).blocks(64).magazine(8).build()?;
/// let cache = pool.handle();
/// let a = cache.alloc_block()?; // takes a batch of 8 from the pool
/// drop(a);                      // back into the cache, not the pool
/// drop(cache);                  // the batch goes back to the pool
/// assert_eq!(pool.stats().live_blocks, 0);
/// # Ok::<(), memio_alloc::Error>(())
/// ```
///
/// The pool cannot drop while a handle still caches its blocks:
///
/// ```compile_fail,E0505
/// use memio_alloc::SyncPoolOptions;
/// let pool = SyncPoolOptions::new(32).build().unwrap();
/// let cache = pool.handle();
/// drop(pool);
/// drop(cache);
/// ```
///
/// A handle is one thread's: it cannot be shared.
///
/// ```compile_fail,E0277
/// use memio_alloc::SyncPoolOptions;
/// let pool = SyncPoolOptions::new(32).build().unwrap();
/// let cache = pool.handle();
/// std::thread::scope(|s| {
///     s.spawn(|| cache.alloc());
/// });
/// ```
#[derive(Debug)]
pub struct SyncPoolHandle<'p> {
    pool: &'p SyncPool,
    cache: UnsafeCell<Cache>,
}

#[derive(Debug)]
struct Cache {
    /// Free block indices; `blocks[..len]` are held.
    blocks: Box<[u32]>,
    len: usize,
    allocations: u64,
    frees: u64,
}

impl<'p> SyncPoolHandle<'p> {
    pub(super) fn new(pool: &'p SyncPool) -> Self {
        Self {
            pool,
            cache: UnsafeCell::new(Cache {
                blocks: vec![NONE; 2 * pool.magazine].into_boxed_slice(),
                len: 0,
                allocations: 0,
                frees: 0,
            }),
        }
    }

    #[allow(
        clippy::mut_from_ref,
        reason = "the handle is !Sync and no method re-enters"
    )]
    #[inline]
    fn cache(&self) -> &mut Cache {
        // SAFETY: the handle is not `Sync`, so one thread uses it; no method
        // calls another while it holds this reference, and none hands it
        // out, so the reference is unique for its (short) life.
        unsafe { &mut *self.cache.get() }
    }

    /// The pool this handle caches blocks of.
    #[must_use]
    pub fn pool(&self) -> &'p SyncPool {
        self.pool
    }

    /// Free blocks held in this cache now.
    #[must_use]
    pub fn cached(&self) -> usize {
        self.cache().len
    }

    /// Takes a block from the cache, refilling it from the pool when empty.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfMemory`] when the cache is empty and so is the pool's
    /// shared part (other handles may still hold free blocks).
    #[inline]
    pub fn alloc(&self) -> Result<NonNull<u8>, Error> {
        let c = self.cache();
        if c.len == 0 && !self.refill(c) {
            return Err(self.pool.out_of_memory());
        }
        c.len -= 1;
        c.allocations += 1;
        Ok(self.pool.hand_out(c.blocks[c.len]))
    }

    /// Allocates like [`SyncPoolHandle::alloc`]; the [`Block`] frees the
    /// block into this cache when dropped.
    ///
    /// # Errors
    ///
    /// As [`SyncPoolHandle::alloc`].
    #[inline]
    pub fn alloc_block(&self) -> Result<Block<'_>, Error> {
        let ptr = self.alloc()?;
        // SAFETY: a block just handed out, `block_size` bytes, owned by no one.
        Ok(unsafe { Block::new(ptr, self.pool.block_size, Owner::Handle(self)) })
    }

    /// Gives a live block back into the cache (handing the oldest batch to
    /// the pool when the cache is full), after the pool's checks (see
    /// [`SyncPool::free`]).
    ///
    /// # Safety
    ///
    /// `ptr` must be a live block of this handle's pool (from any handle or
    /// the pool itself) that nothing else owns: not a [`Block`], nor a
    /// collection's buffer, nor another thread still using it.
    ///
    /// # Errors
    ///
    /// As [`SyncPool::free`].
    #[inline]
    pub unsafe fn free(&self, ptr: NonNull<u8>) -> Result<(), Error> {
        // SAFETY: the caller's contract.
        let index = unsafe { self.pool.take_back(ptr) }?;
        let c = self.cache();
        if c.len == c.blocks.len() {
            self.drain(c);
        }
        c.blocks[c.len] = index;
        c.len += 1;
        c.frees += 1;
        Ok(())
    }

    /// Gives every cached block back to the pool and adds this handle's
    /// counts to the pool's: afterwards [`SyncPool::stats`] counts this
    /// handle exactly and its blocks are free for other threads, as if it
    /// had dropped, but it stays usable.
    pub fn flush(&self) {
        let c = self.cache();
        self.publish(c);
        self.pool.depot.push(&c.blocks[..c.len]);
        c.len = 0;
    }

    /// Takes a batch from the pool; false when it has none.
    #[cold]
    #[inline(never)]
    fn refill(&self, c: &mut Cache) -> bool {
        self.publish(c);
        let m = self.pool.magazine;
        let n = self.pool.take_batch(&mut c.blocks[..m]);
        // The top of the shared stack (most recently freed, likely warm)
        // is handed out first.
        c.blocks[..n].reverse();
        c.len = n;
        n > 0
    }

    /// Gives the oldest batch back to the pool.
    #[cold]
    #[inline(never)]
    fn drain(&self, c: &mut Cache) {
        self.publish(c);
        let m = self.pool.magazine.min(c.len);
        self.pool.depot.push(&c.blocks[..m]);
        c.blocks.copy_within(m..c.len, 0);
        c.len -= m;
    }

    /// Adds this handle's counts to the pool's.
    fn publish(&self, c: &mut Cache) {
        let counters = &self.pool.counters.0;
        if c.allocations > 0 {
            counters
                .allocations
                .fetch_add(c.allocations, Ordering::Relaxed);
        }
        if c.frees > 0 {
            counters.frees.fetch_add(c.frees, Ordering::Relaxed);
        }
        c.allocations = 0;
        c.frees = 0;
    }
}

impl Drop for SyncPoolHandle<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

// SAFETY: a block is handed out once until freed (it leaves the cache or
// the shared stack when handed out), fits the layout (checked), and stays
// valid while the pool lives, which the handle's borrow guarantees.
unsafe impl Allocator for &SyncPoolHandle<'_> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.pool.fits(layout)?;
        let p = self.alloc().map_err(|_| AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, self.pool.block_size))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: the trait's contract: a block this allocator handed out,
        // given back by its one owner.
        if let Err(e) = unsafe { self.free(ptr) } {
            // Only reachable when the caller broke the trait's contract.
            assert!(!self.pool.checks.ownership, "{e}");
        }
    }
}
