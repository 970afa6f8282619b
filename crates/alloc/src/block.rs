//! `Block`: one block owned by a handle that frees it on drop.
//!
//! The raw `free` methods of the allocators are `unsafe`: a pointer does not
//! say who owns the block behind it (a `Block`, a [`PoolBox`], an
//! `allocator_api2` collection), and freeing a block someone else still
//! uses hands it out twice. A `Block` is the safe way round: it owns its
//! block, borrows the allocator (so the allocator outlives it), and frees
//! the block exactly once, when it drops or through [`Block::free`].
//!
//! # Safety
//!
//! A `Block` is made only by the allocators, from a block they just handed
//! out, so it is the block's one owner; the `unsafe` free on drop relies on
//! exactly that.
//!
//! [`PoolBox`]: crate::PoolBox
#![allow(unsafe_code, reason = "frees the block it owns through the raw free")]

use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::NonNull;

use crate::{Buddy, Error, FreeList, Pool, SyncPool, SyncPoolHandle};

/// The allocator a [`Block`] goes back to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner<'a> {
    Pool(&'a Pool),
    Sync(&'a SyncPool),
    Handle(&'a SyncPoolHandle<'a>),
    FreeList(&'a FreeList),
    Buddy(&'a Buddy),
}

/// An owning handle to one block of an allocator; the block goes back when
/// the handle drops.
///
/// The bytes of a fresh block are unspecified (they may hold what a
/// previous owner wrote, or debug patterns), so the block is offered as
/// `MaybeUninit<u8>`.
///
/// ```
/// use memio_alloc::PoolOptions;
/// let pool = PoolOptions::new(32).blocks(4).build()?;
/// let mut block = pool.alloc_block()?;
/// block.as_uninit_mut()[0].write(7);
/// assert_eq!(pool.stats().live_blocks, 1);
/// drop(block);
/// assert_eq!(pool.stats().live_blocks, 0);
/// # Ok::<(), memio_alloc::Error>(())
/// ```
///
/// A block cannot outlive its allocator:
///
/// ```compile_fail,E0505
/// use memio_alloc::PoolOptions;
/// let pool = PoolOptions::new(32).build().unwrap();
/// let block = pool.alloc_block().unwrap();
/// drop(pool);
/// drop(block);
/// ```
#[derive(Debug)]
pub struct Block<'a> {
    ptr: NonNull<u8>,
    len: usize,
    owner: Owner<'a>,
}

impl<'a> Block<'a> {
    /// Wraps a block the allocator just handed out.
    ///
    /// # Safety
    ///
    /// `ptr` must be a live block of `owner`, at least `len` bytes, owned by
    /// nothing else.
    pub(crate) unsafe fn new(ptr: NonNull<u8>, len: usize, owner: Owner<'a>) -> Self {
        Self { ptr, len, owner }
    }

    /// Start of the block.
    #[must_use]
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Bytes of the block that are the owner's to use (the size asked for;
    /// a pool's block size).
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block has no usable bytes (a zero-size request).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The block's bytes, for writing.
    #[must_use]
    pub fn as_uninit_mut(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: the block is `len` bytes, owned by this handle alone and
        // borrowed mutably through it; `MaybeUninit` makes no claim about
        // the bytes.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast(), self.len) }
    }

    /// Grows or shrinks the block to `new_size` bytes without moving it,
    /// where the allocator can: a [`FreeList`] block when the following
    /// block is free and large enough (or when shrinking); any block when
    /// `new_size` fits what it already holds. Returns whether it did.
    ///
    /// # Errors
    ///
    /// As [`FreeList::resize_in_place`] (not expected for a live block).
    pub fn resize_in_place(&mut self, new_size: usize) -> Result<bool, Error> {
        let done = match self.owner {
            // SAFETY: this handle owns the live block and lends it to no one
            // while `&mut self` is held.
            Owner::FreeList(h) => unsafe { h.resize_in_place(self.ptr, new_size) }?,
            Owner::Buddy(b) => new_size <= b.usable_size(self.ptr)?,
            Owner::Pool(_) | Owner::Sync(_) | Owner::Handle(_) => new_size <= self.len,
        };
        if done {
            self.len = new_size;
        }
        Ok(done)
    }

    /// Gives up ownership without freeing: the caller frees the block later
    /// through the allocator's `unsafe` free (or leaks it).
    #[must_use]
    pub fn into_raw(self) -> NonNull<u8> {
        ManuallyDrop::new(self).ptr
    }

    /// Frees the block now, reporting what the allocator's checks found.
    ///
    /// # Errors
    ///
    /// [`Error::Overflow`] when red zones are on and the block's canary was
    /// overwritten; the block then stays live (it is leaked).
    pub fn free(self) -> Result<(), Error> {
        let this = ManuallyDrop::new(self);
        // SAFETY: this handle owned the block (see `Block::new`) and is
        // consumed here, so the block is freed once.
        unsafe { release(this.owner, this.ptr) }
    }
}

/// Frees `ptr` back to `owner`.
///
/// # Safety
///
/// `ptr` must be a live block of `owner` that nothing else owns.
unsafe fn release(owner: Owner<'_>, ptr: NonNull<u8>) -> Result<(), Error> {
    // SAFETY (each arm): the caller's contract.
    match owner {
        // SAFETY: as above.
        Owner::Pool(p) => unsafe { p.free(ptr) },
        // SAFETY: as above.
        Owner::Sync(p) => unsafe { p.free(ptr) },
        // SAFETY: as above.
        Owner::Handle(h) => unsafe { h.free(ptr) },
        // SAFETY: as above.
        Owner::FreeList(h) => unsafe { h.free(ptr) },
        // SAFETY: as above.
        Owner::Buddy(b) => unsafe { b.free(ptr) },
    }
}

impl Drop for Block<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this handle owns the block and drops once. An error (a
        // damaged red zone) leaves the block live: it is leaked, which is
        // safe; `Block::free` reports it.
        let _ = unsafe { release(self.owner, self.ptr) };
    }
}
