//! Allocation algorithms over a region of memory.
//!
//! This crate will hold the allocators that manage a caller's buffer or pages
//! taken from the operating system, with no global state:
//!
//! - `Pool`: fixed-size blocks with an O(1) intrusive free list;
//! - `FreeList`: variable sizes with boundary tags, first-fit and best-fit,
//!   splitting and coalescing;
//! - `Buddy`: power-of-two orders that split on allocation and merge on free,
//!   reporting internal and external fragmentation;
//! - `Arena`: scoped bump allocation, the Rust stand-in for `alloca` and VLAs.
//!
//! Each will implement `allocator_api2::alloc::Allocator`, report
//! mallinfo-shaped statistics, and offer debug checks (poisoning, red zones,
//! double-free and foreign-pointer detection).
