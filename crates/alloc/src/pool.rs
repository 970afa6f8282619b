//! `Pool`: fixed-size blocks with an O(1) intrusive free list.
//!
//! Free blocks hold the address of the next free block in their first word,
//! so allocating pops the list head and freeing pushes onto it; one freed
//! block is also kept aside in a spare slot, so an allocation right after a
//! free takes it without touching the list. A side table keeps each block's
//! state (never used, freed, or live with the size asked for), which lets
//! the validating [`Pool::free`] tell a live block from a double free or a pointer
//! the pool never handed out, and lets [`Pool::stats`] count live blocks and
//! requested bytes without counters on the fast path.
//!
//! The fast path (no debug checks, a power-of-two stride, a block of the
//! first chunk) is small enough to inline into callers; everything else
//! goes through cold out-of-line functions. Its validating `free` still checks
//! everything the general path does, in O(1): one rotation and one compare
//! for range and block boundary, one load for the live state, and a
//! compare with the spare slot (a block moving through the spare keeps its
//! live state in the table, so that round trip writes no table entry; the
//! spare counts as free everywhere the table is read).
//!
//! # Safety
//!
//! The pool writes the free-list links and debug patterns through raw
//! pointers into its own chunks. Every such pointer is either a chunk base
//! plus a block index below the chunk's block count, or a pointer the caller
//! promised (or [`Pool::free`] verified) is a live block of this pool.
#![allow(
    unsafe_code,
    reason = "an intrusive free list inside raw chunks of memory"
)]

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator, Layout};

use crate::block::Owner;
use crate::checks::{self, CANARY, POISON_FREED, POISON_FRESH};
use crate::error::unsupported;
use crate::{Block, Checks, Error, Memory, Stats};

const NAME: &str = "pool";
/// Size of the free-list link kept in a free block.
const LINK: usize = size_of::<usize>();
/// Block state: never handed out.
const NEVER: u32 = 0;
/// Block state: handed out and freed since.
const FREED: u32 = 1;
/// Block state: live blocks store their requested size plus this.
const LIVE: u32 = 2;

/// How a [`Pool`] (or a [`TypedPool`]) is laid out and checked: the one
/// way to make either.
///
/// ```
/// use memio_alloc::{Checks, PoolOptions};
/// let pool = PoolOptions::new(32)     // 32-byte blocks
///     .blocks(64)                     // 64 per chunk
///     .max_chunks(4)                  // may grow to 256 blocks
///     .checks(Checks::all())
///     .build()?;
/// assert_eq!(pool.capacity(), 64);
/// # Ok::<(), memio_alloc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    block_size: usize,
    align: usize,
    blocks: usize,
    max_chunks: usize,
    locked: bool,
    checks: Checks,
}

impl PoolOptions {
    /// Blocks of `block_size` bytes, 16-byte aligned, 64 per chunk, one chunk,
    /// no checks.
    #[must_use]
    pub const fn new(block_size: usize) -> Self {
        Self {
            block_size,
            align: 16,
            blocks: 64,
            max_chunks: 1,
            locked: false,
            checks: Checks::off(),
        }
    }

    /// Blocks sized and aligned for `T` (for [`PoolOptions::build_typed`]).
    #[must_use]
    pub const fn for_type<T>() -> Self {
        let size = if size_of::<T>() == 0 {
            1
        } else {
            size_of::<T>()
        };
        let align = if align_of::<T>() > 16 {
            align_of::<T>()
        } else {
            16
        };
        Self::new(size).align(align)
    }

    /// Sets the block alignment: a power of two from 8 to 4096.
    #[must_use]
    pub const fn align(mut self, align: usize) -> Self {
        self.align = align;
        self
    }

    /// Sets how many blocks each chunk holds (the first chunk, when it is
    /// the caller's memory, holds as many as fit).
    #[must_use]
    pub const fn blocks(mut self, n: usize) -> Self {
        self.blocks = n;
        self
    }

    /// Lets the pool grow to `n` chunks; 1 (the default) means it never grows.
    #[must_use]
    pub const fn max_chunks(mut self, n: usize) -> Self {
        self.max_chunks = n;
        self
    }

    /// Locks chunks into RAM (`mlock`).
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

    /// Makes the pool; its chunks are anonymous mappings.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for a zero or oversized block, a bad
    /// alignment or zero blocks per chunk; [`Error::Os`] when mapping fails.
    pub fn build(&self) -> Result<Pool, Error> {
        let pool = Pool::empty(*self)?;
        pool.add_chunk(None)?;
        Ok(pool)
    }

    /// Makes the pool over the caller's memory, holding as many blocks as
    /// fit (growth, if allowed, maps further chunks).
    ///
    /// # Errors
    ///
    /// As [`PoolOptions::build`], and [`Error::Unsupported`] when not one
    /// block fits.
    pub fn build_in(&self, memory: Memory) -> Result<Pool, Error> {
        let pool = Pool::empty(*self)?;
        pool.add_chunk(Some(memory))?;
        Ok(pool)
    }

    /// Makes a pool of `T`s handing out owning [`PoolBox`]es; the block
    /// size and alignment are raised to fit `T`.
    ///
    /// # Errors
    ///
    /// As [`PoolOptions::build`].
    pub fn build_typed<T>(&self) -> Result<TypedPool<T>, Error> {
        let mut options = *self;
        options.block_size = options.block_size.max(size_of::<T>()).max(1);
        options.align = options.align.max(align_of::<T>()).max(align_of::<usize>());
        Ok(TypedPool {
            pool: options.build()?,
            _marker: PhantomData,
        })
    }
}

#[derive(Debug)]
struct Chunk {
    _memory: Memory,
    /// First block (aligned).
    base: usize,
}

#[derive(Debug)]
struct Inner {
    block_size: usize,
    stride: usize,
    /// `log2(stride)` when the stride is a power of two, else `u32::MAX`.
    shift: u32,
    align: usize,
    blocks_per_chunk: usize,
    max_chunks: usize,
    locked: bool,
    checks: Checks,
    /// First chunk's range, for the fast path of `free`.
    base0: usize,
    len0: usize,
    chunks: Vec<Chunk>,
    /// Per block: [`NEVER`], [`FREED`], or the requested size + [`LIVE`].
    state: Vec<u32>,
    /// Head of the free list (null when empty).
    head: *mut u8,
    /// One freed block kept aside (fast path only): an alloc right after a
    /// free takes it without touching the list, which shortens the chain
    /// of dependent memory accesses. Null when empty; flushed onto the list
    /// by the general paths. The spare keeps its live state in `state`
    /// (always `live_tag`), so the fast paths move a block in and out of
    /// it without writing the table; everything that reads `state` treats
    /// the block in the spare slot as free (a second free of it is a
    /// double free).
    spare: *mut u8,
    /// Debug checks on, or a stride that is not a power of two: every
    /// operation takes the general path.
    slow: bool,
    /// Blocks of the first chunk when the fast path is allowed (`!slow`),
    /// else 0. The fast paths turn an address into an index with one
    /// rotation, `(addr - base0).rotate_right(shift)`: an address off a
    /// block boundary has low bits set, which the rotation moves to the top,
    /// so one compare with this tests range and boundary together.
    fast_blocks: usize,
    /// State of a live block of the full block size.
    live_tag: u32,
    frees: u64,
    failures: u64,
    /// Why the last out-of-line allocation failed, handed from
    /// [`Pool::alloc_slow`] to [`Pool::alloc`]: the out-of-line call then
    /// returns one word instead of writing the (large) error into the
    /// caller's result, which measured a few tenths of a nanosecond off
    /// every inlined allocation.
    error: Option<Error>,
}

/// A pool of fixed-size blocks with O(1) allocate and free.
///
/// Not `Sync`: share it between threads through [`SyncPool`](crate::SyncPool), or give each
/// thread its own. `Send`: the pool owns its chunks.
///
/// Made by [`PoolOptions::build`]. Safe code allocates owning
/// [`Block`]s (or goes through [`TypedPool`] or an `allocator_api2`
/// collection); the raw [`Pool::alloc`] and the `unsafe` [`Pool::free`] are
/// for code that keeps track of ownership itself.
///
/// ```
/// use memio_alloc::{Error, PoolOptions};
/// let pool = PoolOptions::new(32).blocks(32).build()?;
/// let a = pool.alloc_block()?;
/// let b = pool.alloc()?;
/// assert_ne!(a.as_ptr(), b);
/// drop(a); // back to the pool
/// // SAFETY: `b` is a live block of this pool that nothing else owns.
/// unsafe { pool.free(b)? };
/// // A second free is a bug; the pool's checks catch it (a debug aid).
/// // SAFETY: deliberately broken; the validating free reports it.
/// assert!(matches!(unsafe { pool.free(b) }, Err(Error::DoubleFree { .. })));
/// assert_eq!(pool.stats().live_blocks, 0);
/// # Ok::<(), memio_alloc::Error>(())
/// ```
///
/// Freeing a raw pointer needs `unsafe`: the pointer may belong to a live
/// [`Block`], [`PoolBox`] or collection.
///
/// ```compile_fail,E0133
/// use memio_alloc::PoolOptions;
/// let pool = PoolOptions::new(32).build().unwrap();
/// let p = pool.alloc().unwrap();
/// pool.free(p).unwrap();
/// ```
#[derive(Debug)]
pub struct Pool {
    inner: UnsafeCell<Inner>,
}

// SAFETY: the pool owns its chunks and side tables; the raw head pointer
// points into them. Moving the pool moves all of it.
unsafe impl Send for Pool {}

impl Pool {
    fn empty(o: PoolOptions) -> Result<Self, Error> {
        if o.block_size == 0 || o.block_size >= (u32::MAX - LIVE) as usize {
            return Err(unsupported(
                NAME,
                format!("block size {} (1 byte to 4 GiB)", o.block_size),
            ));
        }
        if !o.align.is_power_of_two() || o.align < align_of::<usize>() || o.align > 4096 {
            return Err(unsupported(
                NAME,
                format!("alignment {} (a power of two, 8 to 4096)", o.align),
            ));
        }
        if o.blocks == 0 || o.max_chunks == 0 {
            return Err(unsupported(
                NAME,
                "a pool needs at least one block per chunk and one chunk",
            ));
        }
        let stride = o
            .block_size
            .max(LINK)
            .checked_add(o.checks.red_zone)
            .and_then(|s| s.checked_next_multiple_of(o.align))
            .ok_or_else(|| unsupported(NAME, "block size overflows"))?;
        let shift = if stride.is_power_of_two() {
            stride.trailing_zeros()
        } else {
            u32::MAX
        };
        Ok(Self {
            inner: UnsafeCell::new(Inner {
                block_size: o.block_size.max(LINK),
                stride,
                shift,
                align: o.align,
                blocks_per_chunk: o.blocks,
                max_chunks: o.max_chunks,
                locked: o.locked,
                checks: o.checks,
                base0: 0,
                len0: 0,
                chunks: Vec::new(),
                state: Vec::new(),
                head: std::ptr::null_mut(),
                spare: std::ptr::null_mut(),
                slow: o.checks != Checks::off() || shift == u32::MAX,
                fast_blocks: 0,
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "block sizes are below u32::MAX - 2 (checked above)"
                )]
                live_tag: o.block_size.max(LINK) as u32 + LIVE,
                frees: 0,
                failures: 0,
                error: None,
            }),
        })
    }

    #[allow(
        clippy::mut_from_ref,
        reason = "the pool is !Sync and no method re-enters"
    )]
    fn inner(&self) -> &mut Inner {
        // SAFETY: `Pool` is not `Sync`, no method calls another while it
        // holds this reference, and none hands it out, so the reference is
        // unique for its (short) life.
        unsafe { &mut *self.inner.get() }
    }

    /// Adds a chunk (the caller's memory, or a new mapping) and threads its
    /// blocks onto the free list.
    #[allow(
        clippy::cast_ptr_alignment,
        reason = "offsets of link words are multiples of 8 from an aligned base"
    )]
    fn add_chunk(&self, memory: Option<Memory>) -> Result<(), Error> {
        let s = self.inner();
        let from_caller = memory.is_some();
        let memory = if let Some(m) = memory {
            m
        } else {
            {
                let bytes = s
                    .stride
                    .checked_mul(s.blocks_per_chunk)
                    .ok_or_else(|| unsupported(NAME, "chunk size overflows"))?;
                Memory::for_allocator(NAME, bytes, s.locked)?
            }
        };
        let start = memory.as_ptr() as usize;
        let base = start.next_multiple_of(s.align);
        let usable = memory.len().saturating_sub(base - start);
        let first_chunk = s.chunks.is_empty();
        let blocks = if from_caller {
            usable / s.stride
        } else {
            (usable / s.stride).min(s.blocks_per_chunk)
        };
        if blocks == 0 {
            return Err(unsupported(
                NAME,
                format!(
                    "{} bytes of memory hold no block of {} bytes",
                    memory.len(),
                    s.stride
                ),
            ));
        }
        if first_chunk {
            // The first chunk may hold any number of blocks; later chunks
            // hold `blocks_per_chunk` each and are indexed after it.
            s.base0 = base;
            s.len0 = blocks * s.stride;
            s.fast_blocks = if s.slow { 0 } else { blocks };
        }
        s.state.resize(s.state.len() + blocks, 0);
        // Thread blocks so that the lowest address is handed out first.
        let mut next = s.head;
        for i in (0..blocks).rev() {
            let block = (base + i * s.stride) as *mut u8;
            if s.checks.poison {
                // SAFETY: the block lies inside the new chunk.
                unsafe { checks::fill(block, s.stride, POISON_FREED) };
            }
            // SAFETY: the block is inside the chunk and aligned to at least 8.
            unsafe { block.cast::<*mut u8>().write(next) };
            next = block;
        }
        s.head = next;
        s.chunks.push(Chunk {
            _memory: memory,
            base,
        });
        Ok(())
    }

    /// Usable bytes per block.
    #[must_use]
    pub fn block_size(&self) -> usize {
        self.inner().block_size
    }

    /// Block alignment.
    #[must_use]
    pub fn align(&self) -> usize {
        self.inner().align
    }

    /// Blocks the pool holds now (free and live).
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.inner().state.len()
    }

    /// Hands out a block of [`Pool::block_size`] bytes in O(1), growing by a
    /// chunk when the pool is empty and may grow.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfMemory`] when every block is live and the pool may not
    /// grow; [`Error::UseAfterFree`] when poisoning is on and the block was
    /// written after it was freed.
    #[allow(
        clippy::cast_ptr_alignment,
        reason = "blocks are aligned to at least 8"
    )]
    #[inline]
    pub fn alloc(&self) -> Result<NonNull<u8>, Error> {
        let s = self.inner();
        let spare = s.spare;
        if !spare.is_null() {
            // The spare's state already says live (see `Inner::spare`).
            s.spare = std::ptr::null_mut();
            // SAFETY: the spare is a freed block of the first chunk, not null.
            return Ok(unsafe { NonNull::new_unchecked(spare) });
        }
        let block = s.head;
        let index = (block as usize).wrapping_sub(s.base0).rotate_right(s.shift);
        if index < s.fast_blocks {
            // SAFETY: `block` is the head of the free list: a free block of
            // the first chunk whose first word holds the next link.
            s.head = unsafe { block.cast::<*mut u8>().read() };
            debug_assert!(index < s.state.len());
            // SAFETY: `index < fast_blocks`: a block of the first chunk,
            // which has an entry in `state`.
            unsafe { *s.state.get_unchecked_mut(index) = s.live_tag };
            // SAFETY: block addresses are never null (checked in range above).
            return Ok(unsafe { NonNull::new_unchecked(block) });
        }
        // Empty, checks on, odd stride, or a block of a later chunk.
        if let Some(block) = self.alloc_slow() {
            return Ok(block);
        }
        let s = self.inner();
        Err(s.error.take().unwrap_or(Error::OutOfMemory {
            allocator: NAME,
            size: s.block_size,
            align: s.align,
        }))
    }

    /// Hands out a block like [`Pool::alloc`], owned by a [`Block`] that
    /// returns it when dropped.
    ///
    /// # Errors
    ///
    /// As [`Pool::alloc`].
    #[inline]
    pub fn alloc_block(&self) -> Result<Block<'_>, Error> {
        let ptr = self.alloc()?;
        // SAFETY: a block just handed out, `block_size` bytes, owned by no one.
        Ok(unsafe { Block::new(ptr, self.inner().block_size, Owner::Pool(self)) })
    }

    #[allow(
        clippy::cast_ptr_alignment,
        reason = "offsets of link words are multiples of 8 from an aligned base"
    )]
    #[inline]
    fn alloc_sized(&self, requested: usize) -> Result<NonNull<u8>, Error> {
        let s = self.inner();
        if !s.spare.is_null() {
            let index = s.index_of_owned(s.spare as usize);
            s.state[index] = FREED;
            // SAFETY: the spare is a free block of this pool, aligned to at
            // least 8; it joins the list, so its first word holds the link.
            unsafe { s.spare.cast::<*mut u8>().write(s.head) };
            s.head = s.spare;
            s.spare = std::ptr::null_mut();
        }
        if s.head.is_null() {
            if s.chunks.len() < s.max_chunks {
                self.add_chunk(None)
                    .inspect_err(|_| self.inner().failures += 1)?;
            } else {
                s.failures += 1;
                return Err(Error::OutOfMemory {
                    allocator: NAME,
                    size: requested,
                    align: s.align,
                });
            }
        }
        let s = self.inner();
        let block = s.head;
        if s.checks.poison {
            // SAFETY: a free block of this pool; the link occupies its first
            // word, the rest holds the poison written when it was freed.
            let damaged = unsafe {
                checks::first_mismatch(block.wrapping_add(LINK), s.stride - LINK, POISON_FREED)
            };
            if let Some(at) = damaged {
                return Err(Error::UseAfterFree {
                    allocator: NAME,
                    addr: block as usize,
                    offset: at + LINK,
                });
            }
        }
        // SAFETY: `block` is the head of the free list: a free block of this
        // pool whose first word holds the next link.
        s.head = unsafe { block.cast::<*mut u8>().read() };
        let index = s.index_of_owned(block as usize);
        debug_assert!(s.state[index] < LIVE, "free list held a live block");
        #[allow(
            clippy::cast_possible_truncation,
            reason = "block sizes are below u32::MAX (checked)"
        )]
        {
            s.state[index] = requested as u32 + LIVE;
        }
        if s.checks.poison {
            // SAFETY: the block is now live and ours to fill.
            unsafe { checks::fill(block, requested, POISON_FRESH) };
        }
        if s.checks.red_zone > 0 {
            // SAFETY: `requested..stride` is the tail of this block.
            unsafe { checks::fill(block.wrapping_add(requested), s.stride - requested, CANARY) };
        }
        // SAFETY: block addresses are never null.
        Ok(unsafe { NonNull::new_unchecked(block) })
    }

    /// Returns a block to the pool in O(1), after checking it is a live
    /// block of this pool.
    ///
    /// The checks are a debug aid: they catch a double free or a foreign
    /// pointer, but not a block that is live and owned by someone else.
    ///
    /// # Safety
    ///
    /// `ptr` must be a live block handed out by this pool's [`Pool::alloc`]
    /// (or its `Allocator` impl) that nothing else owns: not a [`Block`], a
    /// [`PoolBox`] or a collection, nor anything still using it. After the
    /// call the block is the pool's again.
    ///
    /// # Errors
    ///
    /// [`Error::DoubleFree`] for a block that is already free,
    /// [`Error::Foreign`] for an address that is not a block of this pool,
    /// [`Error::Overflow`] when red zones are on and the block's canary was
    /// overwritten (the block stays live).
    #[allow(
        clippy::cast_ptr_alignment,
        reason = "blocks are aligned to at least 8"
    )]
    #[inline]
    pub unsafe fn free(&self, ptr: NonNull<u8>) -> Result<(), Error> {
        let s = self.inner();
        let block = ptr.as_ptr();
        // One compare tests range and block boundary (see `fast_blocks`).
        let index = (block as usize).wrapping_sub(s.base0).rotate_right(s.shift);
        if index < s.fast_blocks {
            debug_assert!(index < s.state.len());
            // SAFETY: `index < fast_blocks`: a block of the first chunk,
            // which has an entry in `state`.
            let state = unsafe { s.state.get_unchecked_mut(index) };
            // A live block of the full size: not freed, not the spare (the
            // spare is in use as the spare only while the slot is taken).
            if *state == s.live_tag {
                if s.spare.is_null() {
                    // The block keeps its live state while it is the spare.
                    s.spare = block;
                    s.frees += 1;
                    return Ok(());
                }
                if block != s.spare {
                    *state = FREED;
                    // SAFETY: a live block of this pool (in range, on a
                    // block boundary, marked live, not the spare), aligned
                    // to at least 8; free from now on, so its first word
                    // holds the link.
                    unsafe { block.cast::<*mut u8>().write(s.head) };
                    s.head = block;
                    s.frees += 1;
                    return Ok(());
                }
            }
        }
        self.free_slow(ptr)
    }

    /// The general path of [`Pool::alloc`], kept out of line so the fast
    /// path inlines into callers.
    /// On failure the error waits in `Inner::error` for [`Pool::alloc`].
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self) -> Option<NonNull<u8>> {
        let size = self.inner().block_size;
        match self.alloc_sized(size) {
            Ok(block) => Some(block),
            Err(e) => {
                self.inner().error = Some(e);
                None
            }
        }
    }

    /// The general path of [`Pool::free`]: validation, checks, later chunks.
    #[cold]
    #[inline(never)]
    fn free_slow(&self, ptr: NonNull<u8>) -> Result<(), Error> {
        let index = self.inner().validate(ptr.as_ptr() as usize)?;
        self.release(ptr.as_ptr(), index)
    }

    /// Returns a block without validating it (unless
    /// [`Checks::ownership`] is on, when a bad pointer panics with the
    /// error message).
    ///
    /// # Safety
    ///
    /// `ptr` must be a live block handed out by this pool, freed once.
    ///
    /// # Panics
    ///
    /// Only with ownership checks on, on a pointer that breaks the contract
    /// above, or a damaged red zone.
    #[inline]
    pub unsafe fn free_unchecked(&self, ptr: NonNull<u8>) {
        let s = self.inner();
        let addr = ptr.as_ptr() as usize;
        let index = if s.checks.ownership {
            s.validate(addr).unwrap_or_else(|e| panic!("{e}"))
        } else {
            s.index_of_owned(addr)
        };
        if let Err(e) = self.release(ptr.as_ptr(), index) {
            panic!("{e}");
        }
    }

    #[allow(
        clippy::cast_ptr_alignment,
        reason = "offsets of link words are multiples of 8 from an aligned base"
    )]
    #[inline]
    fn release(&self, block: *mut u8, index: usize) -> Result<(), Error> {
        let s = self.inner();
        let requested = (s.state[index] - LIVE) as usize;
        if s.checks.red_zone > 0 {
            // SAFETY: `requested..stride` is the tail of this live block.
            let damaged = unsafe {
                checks::first_mismatch(block.wrapping_add(requested), s.stride - requested, CANARY)
            };
            if let Some(at) = damaged {
                return Err(Error::Overflow {
                    allocator: NAME,
                    addr: block as usize,
                    size: requested,
                    offset: at,
                });
            }
        }
        if s.checks.poison {
            // SAFETY: the whole stride of this live block is ours.
            unsafe { checks::fill(block, s.stride, POISON_FREED) };
        }
        s.state[index] = FREED;
        s.frees += 1;
        // SAFETY: a block of this pool, aligned to at least 8; it is free
        // from now on, so its first word holds the link.
        unsafe { block.cast::<*mut u8>().write(s.head) };
        s.head = block;
        Ok(())
    }

    /// Usable bytes of the live block at `ptr`: the block size, or with red
    /// zones on the size that was requested (the rest is canary).
    ///
    /// # Errors
    ///
    /// As [`Pool::free`] for a pointer that is not a live block.
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Result<usize, Error> {
        let s = self.inner();
        let index = s.validate(ptr.as_ptr() as usize)?;
        Ok(if s.checks.red_zone > 0 {
            (s.state[index] - LIVE) as usize
        } else {
            s.block_size
        })
    }

    /// Whether `ptr` is a live block of this pool.
    #[must_use]
    pub fn owns(&self, ptr: NonNull<u8>) -> bool {
        self.inner().validate(ptr.as_ptr() as usize).is_ok()
    }

    /// The pool's statistics, counted from the state table (O(blocks)).
    ///
    /// `peak_in_use` is exact without a counter: blocks are threaded lowest
    /// address first and freed blocks go back in front, so a never-used
    /// block is handed out only when every block used so far is live; the
    /// number of blocks ever used is the peak of live blocks.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let s = self.inner();
        let blocks = s.state.len();
        // The block in the spare slot is free although its state says live.
        let spare = (!s.spare.is_null()).then(|| s.index_of_owned(s.spare as usize));
        let is_live = |(i, &st): (usize, &u32)| st >= LIVE && Some(i) != spare;
        let highest = s
            .state
            .iter()
            .enumerate()
            .rposition(is_live)
            .map_or(0, |i| i + 1);
        let live = s.state.iter().enumerate().filter(|&b| is_live(b)).count();
        // Blocks are threaded lowest address first and freed blocks go back
        // on the front of the list, so a never-used block is handed out only
        // when every block used so far is live: the blocks ever used equal
        // the peak of live blocks.
        let touched = s.state.iter().filter(|&&st| st != NEVER).count();
        let requested = s
            .state
            .iter()
            .enumerate()
            .filter(|&b| is_live(b))
            .map(|(_, &st)| (st - LIVE) as usize)
            .sum();
        Stats {
            reserved: blocks * s.stride,
            in_use: live * s.stride,
            free: (blocks - live) * s.stride,
            free_chunks: blocks - live,
            largest_free: (blocks - live) * s.stride,
            peak_in_use: touched * s.stride,
            live_blocks: live,
            requested,
            footprint: highest * s.stride,
            allocations: s.frees + live as u64,
            frees: s.frees,
            failures: s.failures,
        }
    }
}

impl Inner {
    /// Index of a block known to belong to the pool.
    #[inline]
    fn index_of_owned(&self, addr: usize) -> usize {
        let off = addr.wrapping_sub(self.base0);
        if off < self.len0 {
            return self.block_index(off);
        }
        let first = self.len0 / self.stride;
        for (k, c) in self.chunks.iter().enumerate().skip(1) {
            let off = addr.wrapping_sub(c.base);
            if off < self.blocks_per_chunk * self.stride {
                return first + (k - 1) * self.blocks_per_chunk + self.block_index(off);
            }
        }
        unreachable!("free_unchecked of a pointer this pool does not own")
    }

    #[inline]
    fn block_index(&self, off: usize) -> usize {
        if self.shift == u32::MAX {
            off / self.stride
        } else {
            off >> self.shift
        }
    }

    /// Index of the live block at `addr`, or why it is not one.
    #[inline]
    fn validate(&self, addr: usize) -> Result<usize, Error> {
        let foreign = Error::Foreign {
            allocator: NAME,
            addr,
        };
        let off = addr.wrapping_sub(self.base0);
        let (index, off) = if off < self.len0 {
            (self.block_index(off), off)
        } else {
            let first = self.len0 / self.stride;
            let chunk_len = self.blocks_per_chunk * self.stride;
            let found = self.chunks.iter().enumerate().skip(1).find_map(|(k, c)| {
                let off = addr.wrapping_sub(c.base);
                (off < chunk_len).then(|| {
                    (
                        first + (k - 1) * self.blocks_per_chunk + self.block_index(off),
                        off,
                    )
                })
            });
            found.ok_or(foreign.clone())?
        };
        if off % self.stride != 0 {
            return Err(foreign);
        }
        if self.state[index] == NEVER {
            return Err(Error::Foreign {
                allocator: NAME,
                addr,
            });
        }
        if self.state[index] == FREED || addr == self.spare as usize {
            return Err(Error::DoubleFree {
                allocator: NAME,
                addr,
            });
        }
        Ok(index)
    }
}

// SAFETY: blocks are handed out once until deallocated, stay valid while
// the pool lives, and fit the layout (size and alignment checked).
unsafe impl Allocator for &Pool {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let s = self.inner();
        if layout.size() > s.block_size || layout.align() > s.align {
            s.failures += 1;
            return Err(AllocError);
        }
        let usable = if s.checks.red_zone > 0 {
            layout.size()
        } else {
            s.block_size
        };
        let p = self.alloc_sized(layout.size()).map_err(|_| AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, usable))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: the trait's contract: `ptr` is a live block of this pool.
        unsafe { self.free_unchecked(ptr) };
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        self.resize_in_place(ptr, old, new)
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        self.resize_in_place(ptr, old, new)
    }
}

impl Pool {
    /// Every size up to the block size fits the same block: resizing is
    /// bookkeeping only.
    fn resize_in_place(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let s = self.inner();
        if new.size() > s.block_size || new.align() > s.align {
            return Err(AllocError);
        }
        let index = s.validate(ptr.as_ptr() as usize).map_err(|_| AllocError)?;
        if s.checks.red_zone > 0 {
            let block = ptr.as_ptr();
            // SAFETY: the tail of this live block from the smaller size on.
            let damaged = unsafe {
                checks::first_mismatch(
                    block.wrapping_add(old.size()),
                    s.stride - old.size(),
                    CANARY,
                )
            };
            if damaged.is_some() {
                return Err(AllocError);
            }
            // SAFETY: as above, from the new size on.
            unsafe {
                checks::fill(
                    block.wrapping_add(new.size()),
                    s.stride - new.size(),
                    CANARY,
                );
            }
        }
        #[allow(
            clippy::cast_possible_truncation,
            reason = "block sizes are below u32::MAX (checked)"
        )]
        {
            s.state[index] = new.size() as u32 + LIVE;
        }
        let usable = if s.checks.red_zone > 0 {
            new.size()
        } else {
            s.block_size
        };
        Ok(NonNull::slice_from_raw_parts(ptr, usable))
    }
}

/// A pool of blocks sized and aligned for `T`, handing out owning boxes.
///
/// Made by [`PoolOptions::build_typed`].
///
/// ```
/// use memio_alloc::{PoolOptions, TypedPool};
/// #[derive(Debug, PartialEq)]
/// struct Point { x: i64, y: i64 }
/// let pool: TypedPool<Point> = PoolOptions::for_type::<Point>().blocks(128).build_typed()?;
/// let mut p = pool.alloc(Point { x: 1, y: 2 })?;
/// p.x += 10;
/// assert_eq!(*p, Point { x: 11, y: 2 });
/// drop(p); // the block goes back to the pool
/// assert_eq!(pool.stats().live_blocks, 0);
/// # Ok::<(), memio_alloc::Error>(())
/// ```
///
/// The untyped pool underneath stays inside: its raw free could release a
/// block a live [`PoolBox`] owns.
///
/// ```compile_fail,E0599
/// use memio_alloc::{PoolOptions, TypedPool};
/// let pool: TypedPool<u64> = PoolOptions::for_type::<u64>().build_typed().unwrap();
/// let _raw = pool.pool();
/// ```
#[derive(Debug)]
pub struct TypedPool<T> {
    pool: Pool,
    _marker: PhantomData<fn() -> T>,
}

impl<T> TypedPool<T> {
    /// Moves `value` into a block and returns the owning box.
    ///
    /// # Errors
    ///
    /// As [`Pool::alloc`]; `value` is dropped then.
    pub fn alloc(&self, value: T) -> Result<PoolBox<'_, T>, Error> {
        let block = self.pool.alloc()?.cast::<T>();
        // SAFETY: the block is live, sized and aligned for `T` (options).
        unsafe { block.as_ptr().write(value) };
        Ok(PoolBox {
            ptr: block,
            pool: &self.pool,
            _owns: PhantomData,
        })
    }

    /// The statistics of the pool underneath.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.pool.stats()
    }

    /// Slots the pool holds now (free and live).
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.pool.capacity()
    }
}

/// An owning pointer to a `T` in a [`TypedPool`]; returns its block on drop.
#[derive(Debug)]
pub struct PoolBox<'p, T> {
    ptr: NonNull<T>,
    pool: &'p Pool,
    _owns: PhantomData<T>,
}

impl<T> PoolBox<'_, T> {
    /// Moves the value out and returns the block to the pool.
    #[must_use]
    pub fn into_inner(self) -> T {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the box owns an initialised `T`; `ManuallyDrop` keeps
        // `Drop` from reading it again.
        let value = unsafe { this.ptr.as_ptr().read() };
        // SAFETY: the block is a live block of this pool, freed once here.
        unsafe { this.pool.free_unchecked(this.ptr.cast()) };
        value
    }
}

impl<T> Deref for PoolBox<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the box owns an initialised `T`.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for PoolBox<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the box owns an initialised `T`, exclusively.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for PoolBox<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the box owns an initialised `T`, dropped once here.
        unsafe { self.ptr.as_ptr().drop_in_place() };
        // SAFETY: the block is a live block of this pool, freed once here.
        unsafe { self.pool.free_unchecked(self.ptr.cast()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(block: usize, blocks: usize, checks: Checks) -> Pool {
        PoolOptions::new(block)
            .blocks(blocks)
            .checks(checks)
            .build()
            .unwrap()
    }

    #[test]
    fn hands_out_distinct_aligned_blocks_until_empty() {
        let p = pool(32, 4, Checks::off());
        let blocks: Vec<_> = (0..4).map(|_| p.alloc().unwrap()).collect();
        for (i, a) in blocks.iter().enumerate() {
            assert_eq!(a.as_ptr() as usize % 16, 0);
            for b in &blocks[i + 1..] {
                assert!((a.as_ptr() as usize).abs_diff(b.as_ptr() as usize) >= 32);
            }
        }
        assert!(matches!(p.alloc(), Err(Error::OutOfMemory { .. })));
        assert_eq!(p.stats().failures, 1);
        for b in blocks {
            // SAFETY: the test owns this live block and frees it once.
            unsafe { p.free(b) }.unwrap();
        }
        assert_eq!(p.stats().live_blocks, 0);
    }

    #[test]
    fn grows_by_whole_chunks_when_allowed() {
        let p = PoolOptions::new(24)
            .blocks(2)
            .max_chunks(3)
            .build()
            .unwrap();
        let blocks: Vec<_> = (0..6).map(|_| p.alloc().unwrap()).collect();
        assert_eq!(p.capacity(), 6);
        assert!(p.alloc().is_err());
        for b in &blocks {
            assert!(p.owns(*b));
        }
        for b in blocks.into_iter().rev() {
            // SAFETY: the test owns this live block and frees it once.
            unsafe { p.free(b) }.unwrap();
        }
        assert_eq!(p.stats().free_chunks, 6);
    }

    #[test]
    #[allow(
        clippy::many_single_char_names,
        reason = "short-lived handles in a short test"
    )]
    fn double_and_foreign_frees_are_reported() {
        let p = pool(32, 4, Checks::off());
        let a = p.alloc().unwrap();
        // SAFETY: the test owns this live block and frees it once.
        unsafe { p.free(a) }.unwrap();
        // SAFETY: deliberately bad; the validating free must report it without touching memory.
        let e = unsafe { p.free(a) }.unwrap_err();
        assert!(matches!(e, Error::DoubleFree { .. }));
        assert!(e.to_string().contains("double free"), "{e}");
        let mut x = 0u64;
        // SAFETY: deliberately bad; the validating free must report it without touching memory.
        let e = unsafe { p.free(NonNull::from(&mut x).cast()) }.unwrap_err();
        assert!(matches!(e, Error::Foreign { .. }), "{e}");
        let b = p.alloc().unwrap();
        // SAFETY: one byte into a live 32-byte block stays inside it.
        let inside = unsafe { b.add(1) };
        // SAFETY: deliberately bad; the validating free must report it without touching memory.
        let got = unsafe { p.free(inside) };
        assert!(matches!(got, Err(Error::Foreign { .. })));
        // SAFETY: the test owns this live block and frees it once.
        unsafe { p.free(b) }.unwrap();
    }

    #[test]
    fn the_spare_block_counts_as_free_everywhere() {
        // A block freed on the fast path waits in the spare slot with its
        // state still live; every check must see it as free.
        let p = pool(32, 4, Checks::off());
        let a = p.alloc().unwrap();
        let b = p.alloc().unwrap();
        // SAFETY: the test owns this live block and frees it once.
        unsafe { p.free(a) }.unwrap();
        assert!(!p.owns(a));
        assert!(matches!(p.usable_size(a), Err(Error::DoubleFree { .. })));
        // SAFETY: deliberately bad; the validating free must report it without touching memory.
        let got = unsafe { p.free(a) };
        assert!(matches!(got, Err(Error::DoubleFree { .. })));
        let st = p.stats();
        assert_eq!(
            (st.live_blocks, st.requested, st.frees, st.allocations),
            (1, 32, 1, 2)
        );
        assert_eq!(st.footprint, 2 * 32, "b is the highest live block");
        // SAFETY: the test owns this live block and frees it once.
        unsafe { p.free(b) }.unwrap();
        // SAFETY: deliberately bad; the validating free must report it without touching memory.
        let got = unsafe { p.free(b) };
        assert!(matches!(got, Err(Error::DoubleFree { .. })));
        assert_eq!(p.stats().live_blocks, 0);
        assert_eq!(p.stats().footprint, 0);
        // The spare comes back first, then the list; nothing twice.
        let again: Vec<_> = (0..4).map(|_| p.alloc().unwrap()).collect();
        for (i, blk) in again.iter().enumerate() {
            assert!(!again[i + 1..].contains(blk));
        }
        assert!(p.alloc().is_err());
        // The Allocator path flushes the spare onto the list first.
        for blk in again {
            // SAFETY: the test owns this live block and frees it once.
            unsafe { p.free(blk) }.unwrap();
        }
        let layout = Layout::from_size_align(8, 8).unwrap();
        let vb = (&p).allocate(layout).unwrap();
        assert_eq!(p.stats().live_blocks, 1);
        assert_eq!(p.stats().requested, 8);
        assert!(p.owns(vb.cast()));
        // SAFETY: the test owns this live block and frees it once.
        unsafe { p.free(vb.cast()) }.unwrap();
        // SAFETY: deliberately bad; the validating free must report it without touching memory.
        let got = unsafe { p.free(vb.cast()) };
        assert!(matches!(got, Err(Error::DoubleFree { .. })));
        assert_eq!(p.stats().live_blocks, 0);
    }

    #[test]
    #[should_panic(expected = "double free")]
    fn ownership_checks_catch_unchecked_double_free() {
        let p = pool(
            32,
            4,
            Checks {
                ownership: true,
                ..Checks::off()
            },
        );
        let a = p.alloc().unwrap();
        // SAFETY: `a` is live.
        unsafe { p.free_unchecked(a) };
        // SAFETY: deliberately broken: the checks must catch it.
        unsafe { p.free_unchecked(a) };
    }

    #[test]
    fn red_zone_catches_an_overflow_and_poison_a_write_after_free() {
        let p = pool(32, 2, Checks::all());
        let a = p.alloc().unwrap();
        // SAFETY: writes one byte past the 32 usable bytes: into the red zone
        // of the same stride.
        unsafe { a.as_ptr().wrapping_add(32).write(0) };
        // SAFETY: deliberately bad; the validating free must report it without touching memory.
        let e = unsafe { p.free(a) }.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Overflow {
                    offset: 0,
                    size: 32,
                    ..
                }
            ),
            "{e}"
        );
        // SAFETY: repair the canary, then free for real.
        unsafe { a.as_ptr().wrapping_add(32).write(CANARY) };
        // SAFETY: the test owns this live block and frees it once.
        unsafe { p.free(a) }.unwrap();
        // SAFETY: a write after free into the pool's own memory.
        unsafe { a.as_ptr().wrapping_add(20).write(1) };
        let e = p.alloc().unwrap_err();
        assert!(matches!(e, Error::UseAfterFree { offset: 20, .. }), "{e}");
    }

    #[test]
    fn allocator_api_vec_lives_in_the_pool() {
        let p = PoolOptions::new(256).blocks(4).build().unwrap();
        let mut v = allocator_api2::vec::Vec::with_capacity_in(8, &p);
        v.extend_from_slice(&[1u32, 2, 3]);
        assert!(p.owns(NonNull::new(v.as_mut_ptr().cast()).unwrap()));
        v.extend(0..50);
        assert_eq!(v.len(), 53);
        assert!(v.try_reserve(100).is_err(), "64 u32 fill the block");
        drop(v);
        assert_eq!(p.stats().live_blocks, 0);
    }

    #[test]
    fn typed_pool_boxes_drop_their_values() {
        use std::rc::Rc;
        let token = Rc::new(());
        let pool = PoolOptions::for_type::<Rc<()>>()
            .blocks(2)
            .build_typed::<Rc<()>>()
            .unwrap();
        let a = pool.alloc(token.clone()).unwrap();
        let b = pool.alloc(token.clone()).unwrap();
        assert_eq!(Rc::strong_count(&token), 3);
        assert!(pool.alloc(token.clone()).is_err());
        drop(a);
        let back = b.into_inner();
        assert_eq!(Rc::strong_count(&token), 2);
        drop(back);
        assert_eq!(pool.stats().live_blocks, 0);
    }

    #[test]
    fn blocks_go_back_when_their_handles_drop() {
        let p = pool(32, 2, Checks::off());
        let a = p.alloc_block().unwrap();
        let mut b = p.alloc_block().unwrap();
        assert_eq!(b.len(), 32);
        b.as_uninit_mut()[31].write(1);
        assert!(p.alloc().is_err());
        drop(a);
        assert_eq!(p.stats().live_blocks, 1);
        b.free().unwrap();
        assert_eq!(p.stats().live_blocks, 0);
        let raw = p.alloc_block().unwrap().into_raw();
        assert!(p.owns(raw));
        // SAFETY: `into_raw` gave the block up to us.
        unsafe { p.free(raw) }.unwrap();
    }

    #[test]
    fn a_block_with_a_damaged_red_zone_reports_it_and_stays_live() {
        let p = pool(32, 2, Checks::all());
        let b = p.alloc_block().unwrap();
        // SAFETY: one byte into the red zone after the 32 usable bytes.
        unsafe { b.as_ptr().as_ptr().wrapping_add(32).write(0) };
        assert!(matches!(b.free(), Err(Error::Overflow { .. })));
        assert_eq!(p.stats().live_blocks, 1, "leaked, not reused");
    }

    #[test]
    fn caller_memory_holds_as_many_blocks_as_fit() {
        let p = PoolOptions::new(32)
            .build_in(Memory::from_boxed(vec![0u8; 1024 + 15].into_boxed_slice()))
            .unwrap();
        assert!(p.capacity() >= 32);
        let e = PoolOptions::new(32)
            .build_in(Memory::from_boxed(vec![0u8; 8].into_boxed_slice()))
            .unwrap_err();
        assert!(e.to_string().contains("hold no block"), "{e}");
    }
}
