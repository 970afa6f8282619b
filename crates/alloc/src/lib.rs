//! Allocation algorithms over a region of memory.
//!
//! Each allocator manages one region — a caller's buffer or pages mapped
//! from the OS, see [`Memory`] — with no global state, and each is made
//! one way: an options builder whose `build` maps the region (or
//! `build_in` takes the caller's [`Memory`]), as `memio_map::MapOptions`
//! makes a region.
//!
//! | type | made by | what it does | cost |
//! |---|---|---|---|
//! | [`Pool`] | [`PoolOptions::build`] | fixed-size blocks through an intrusive free list; grows by chunks | O(1) |
//! | [`TypedPool`] | [`PoolOptions::build_typed`] | a pool sized for `T`, handing out owning [`PoolBox`]es | O(1) |
//! | [`SyncPool`] | [`SyncPoolOptions::build`] | a lock-free pool shared between threads; a [`SyncPoolHandle`] per thread caches blocks and moves them to and from the shared part in batches | O(1); one CAS per batch |
//! | [`FreeList`] | [`FreeListOptions::build`] | any size and power-of-two alignment; boundary tags, free lists by size class, first or best fit, splitting, immediate coalescing, in-place grow/shrink | O(free blocks of the request's size class) |
//! | [`Buddy`] | [`BuddyOptions::build`] | power-of-two orders that split on allocate and merge on free; reports internal and external fragmentation | O(log n) |
//! | [`Arena`] | [`ArenaOptions::build`] | scoped bump allocation with marks, rewind and reset: the Rust stand-in for `alloca` and VLAs | O(1) |
//!
//! Ownership: safe code gets blocks through owning handles — a [`Block`]
//! (`alloc_block`), a [`PoolBox`], or an `allocator_api2` collection —
//! which free them exactly once. Every allocator implements
//! [`allocator_api2::alloc::Allocator`] on a shared reference, so
//! `allocator_api2::vec::Vec<T, &Pool>` and the other collections of that
//! crate work. The raw `alloc` returns a pointer; the raw `free` (and
//! [`FreeList::resize_in_place`]) is `unsafe`, since a pointer does not say
//! whether a handle or a collection still owns the block; its validation
//! stays as a debug aid that returns an [`Error`].
//!
//! All report mallinfo-shaped [`Stats`] and a `usable_size`; all take
//! [`Checks`]: poisoning, red zones with canaries, and pointer validation
//! that reports double frees and foreign pointers as [`Error`]s. The [`sys`]
//! module wraps the system allocator (glibc malloc) the same way, as the
//! reference to compare with, with its tuning knobs ([`sys::mallopt`]) and
//! aligned blocks. The [`bytes`] module maps each C byte function
//! (`memset`, `bzero`, `memccpy`, `mempcpy`, `memfrob`, ...) to its Rust
//! spelling.
//!
//! Thread safety: [`SyncPool`] is `Sync` (its handles are `Send`, not
//! `Sync`); the others are `Send` but not `Sync` (give each thread its own,
//! or wrap one in a `Mutex`).
//!
//! ```
//! use allocator_api2::vec::Vec;
//! use memio_alloc::{BuddyOptions, Fit, FreeList, FreeListOptions, Stats};
//!
//! // A first-fit free list over 64 KiB of mapped memory.
//! let heap = FreeListOptions::new(64 << 10).fit(Fit::First).build()?;
//! let mut names: Vec<u8, &FreeList> = Vec::new_in(&heap);
//! names.extend_from_slice(b"memio");
//! assert_eq!(heap.stats().live_blocks, 1);
//!
//! // A buddy allocator: 100 bytes take a 128-byte block.
//! let buddy = BuddyOptions::new(1 << 16, 16).build()?;
//! let block = buddy.alloc_block(100, 8)?;
//! let st: Stats = buddy.stats();
//! assert_eq!((st.in_use, st.internal_fragmentation()), (128, 28));
//! drop(block); // freed, and merged back
//! assert_eq!(buddy.stats().live_blocks, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every `unsafe` block in the crate sits in a module that opts in with
//! `#![allow(unsafe_code)]` and says what hazard it handles.
#![deny(unsafe_code)]

mod arena;
mod bitmap;
mod block;
mod buddy;
pub mod bytes;
mod checks;
mod error;
mod freelist;
mod memory;
mod pool;
mod stats;
mod sync_pool;
pub mod sys;

/// The `allocator_api2` crate these allocators implement, re-exported so
/// callers use the same version (`memio_alloc::allocator_api2::vec::Vec`).
pub use allocator_api2;

pub use arena::{Arena, ArenaOptions, Mark};
pub use block::Block;
pub use buddy::{Buddy, BuddyOptions};
pub use checks::{CANARY, Checks, POISON_FREED, POISON_FRESH};
pub use error::Error;
pub use freelist::{Fit, FreeList, FreeListOptions};

pub use memory::Memory;
pub use pool::{Pool, PoolBox, PoolOptions, TypedPool};
pub use stats::Stats;
pub use sync_pool::{SyncPool, SyncPoolHandle, SyncPoolOptions};
