//! Allocation algorithms over a region of memory.
//!
//! Each allocator manages one region — a caller's buffer or pages mapped
//! from the OS, see [`Memory`] — with no global state:
//!
//! | type | what it does | cost |
//! |---|---|---|
//! | [`Pool`] | fixed-size blocks through an intrusive free list; grows by chunks | O(1) |
//! | [`TypedPool`] | a [`Pool`] sized for `T`, handing out owning [`PoolBox`]es | O(1) |
//! | [`SyncPool`] | a lock-free pool shared between threads | O(1), one CAS |
//! | [`FreeList`] | any size and power-of-two alignment; boundary tags, free lists by size class, first or best fit, splitting, immediate coalescing, in-place grow/shrink | O(free blocks of the request's size class) |
//! | [`Buddy`] | power-of-two orders that split on allocate and merge on free; reports internal and external fragmentation | O(log n) |
//! | [`Arena`] | scoped bump allocation with marks, rewind and reset: the Rust stand-in for `alloca` and VLAs | O(1) |
//!
//! All of them implement [`allocator_api2::alloc::Allocator`] (on a shared
//! reference), so `allocator_api2::vec::Vec<T, &Pool>` and the other
//! collections of that crate work; all report mallinfo-shaped [`Stats`] and
//! a `usable_size`; all take [`Checks`] at construction: poisoning, red zones
//! with canaries, and pointer validation that reports double frees and
//! foreign pointers as [`Error`]s. The [`sys`] module wraps the system
//! allocator (glibc malloc) the same way, as the reference to compare with.
//!
//! Thread safety: [`SyncPool`] is `Sync`; the others are `Send` but not
//! `Sync` (give each thread its own, or wrap one in a `Mutex`).
//!
//! ```
//! use allocator_api2::vec::Vec;
//! use memio_alloc::{Buddy, BuddyOptions, FreeList, Fit, Memory, Stats};
//!
//! // A first-fit free list over 64 KiB of mapped memory.
//! let heap = FreeList::new(Memory::map(64 << 10)?, Fit::First, Default::default())?;
//! let mut names: Vec<u8, &FreeList> = Vec::new_in(&heap);
//! names.extend_from_slice(b"memio");
//! assert_eq!(heap.stats().live_blocks, 1);
//!
//! // A buddy allocator: 100 bytes take a 128-byte block.
//! let buddy = Buddy::new(BuddyOptions::new(1 << 16, 16))?;
//! let p = buddy.alloc(100, 8)?;
//! let st: Stats = buddy.stats();
//! assert_eq!((st.in_use, st.internal_fragmentation()), (128, 28));
//! buddy.free(p)?;
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
