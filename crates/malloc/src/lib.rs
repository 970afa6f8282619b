//! A general-purpose, thread-caching heap built on `memio-alloc`.
//!
//! This crate will provide a `#[global_allocator]` type and a `cdylib`
//! (`libmemio_malloc.so`) that exports the C `malloc` family and the GNU
//! extensions (`malloc_usable_size`, `mallinfo`, `malloc_trim`,
//! `malloc_stats`, `mallopt`) for use with `LD_PRELOAD`, together with
//! debugging aids switched on by `MEMIO_MALLOC_*` environment variables.
