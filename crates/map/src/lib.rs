//! Mapped memory regions and memory control.
//!
//! - [`Region`] is the one type for a range of mapped memory: file-backed
//!   shared or private (copy-on-write), anonymous private or shared (seen by
//!   children after `fork`), or any mappable descriptor (POSIX shared memory,
//!   memfd, `/dev/zero`); [`MapOptions`] builds one. Page-granular controls
//!   live on it: [`Region::sync`] (msync), [`Region::advise`] (madvise),
//!   [`Region::protect`] (mprotect), [`Region::lock`] (mlock, with a
//!   [`MemLockGuard`]) and [`Region::residency`] (mincore). Its bytes are
//!   reached by copies made with relaxed atomics and by atomic views
//!   ([`Region::atomic_u32`], or load-only views such as
//!   [`LoadOnlyU64`] on read-only memory), never by a safe `&[u8]`.
//! - [`GrowableFile`] keeps a shared file mapping as long as its file while
//!   both grow (`ftruncate` + `mremap`).
//! - [`HugePageAlloc`] is an allocator (the `allocator-api2` trait) for big
//!   tables read at random: its blocks from 2 MiB up are mappings with
//!   transparent huge pages asked for.
//! - [`lock_all`] locks the whole process in memory (mlockall) with a guard.
//! - [`layout`] parses `/proc/PID/maps` and `smaps` into classified mappings
//!   (text, data, bss, heap, stack, libraries, files, anonymous, shared
//!   memory) with RSS, PSS and swap.
//! - [`process`] reads a process's command line, heap start, program
//!   break and OOM score, and finds the processes mapping a file.
//! - [`cache`] reports, fills, empties and pins the page cache of files
//!   (cachestat, with mincore as the fallback).
//! - [`system`] reads the facts that decide whether a mapping or a lock will
//!   succeed: page sizes, overcommit mode, memory totals, `RLIMIT_MEMLOCK`.
//!
//! # Features
//!
//! - `serde` (off by default): `serde::Serialize` for the reports and facts
//!   ([`layout::Layout`], [`cache::CacheStat`], [`system::SystemFacts`],
//!   [`Sharing`], [`Access`], [`Backing`]).
//!
//! ```
//! use memio_map::{MapOptions, Region, SyncMode};
//! # fn main() -> std::io::Result<()> {
//! // Anonymous memory, the way malloc gets large blocks.
//! let mut scratch = Region::anonymous(1 << 20)?;
//! scratch.write_at(0, b"hello")?;
//!
//! // A shared mapping of a file: writes reach the file.
//! let path = std::env::temp_dir().join(format!("memio-doc-{}", std::process::id()));
//! std::fs::write(&path, [0u8; 100])?;
//! let mut map = MapOptions::new().read_write().map_path(&path)?;
//! map.write_at(0, b"Hello, memory-mapped file!")?;
//! map.sync(.., SyncMode::Sync)?;
//! assert!(std::fs::read(&path)?.starts_with(b"Hello, memory-mapped file!"));
//! # std::fs::remove_file(&path)?;
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]

mod atomic_copy;
pub mod cache;
mod control;
pub mod error;
mod growable;
mod huge_alloc;
pub mod layout;
mod memlock;
mod options;
pub mod process;
mod region;
pub mod system;
mod views;
mod widths;

pub use control::MemLockGuard;
pub use growable::GrowableFile;
pub use huge_alloc::{HUGE_PAGE, HugePageAlloc};
pub use memlock::{LockAll, LockAllGuard, lock_all};
pub use options::{
    Access, Advice, Backing, DestructiveAdvice, HugePages, MapOptions, Protection, Release,
    Sharing, SyncMode,
};
pub use region::{Region, page_size};
pub use views::{LoadOnlyU8, LoadOnlyU32, LoadOnlyU64};
