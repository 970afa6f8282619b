//! memio: Linux memory management, memory-mapped and advanced file I/O, and
//! inter-process communication.
//!
//! This facade re-exports the focused crates under one name:
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`alloc`] | `memio-alloc` | pool, free-list, buddy and arena allocators |
//! | [`malloc`] | `memio-malloc` | a drop-in `malloc` and `#[global_allocator]` |
//! | [`map`] | `memio-map` | mapped regions, memory control, process layout |
//! | [`io`] | `memio-io` | file locks, vectored I/O, xattrs, copies, batch reads |
//! | [`ipc`] | `memio-ipc` | message queues, shared memory, semaphores, channels |
//! | [`kv`] | `memio-kv` | an embedded multi-process key-value store |
#![forbid(unsafe_code)]

pub use memio_alloc as alloc;
pub use memio_io as io;
pub use memio_ipc as ipc;
pub use memio_kv as kv;
pub use memio_malloc as malloc;
pub use memio_map as map;
