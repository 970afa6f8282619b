//! `libmemio_malloc.so`: the [memio-malloc](heap) heap behind the C
//! library's malloc family, for any program, unmodified:
//!
//! ```text
//! cargo build --release -p memio-malloc-preload
//! LD_PRELOAD=target/release/libmemio_malloc.so python3 script.py
//! ```
//!
//! The exports live in a package of their own so that a Rust program
//! linking the `memio` facade never interposes its own `malloc`.
//!
//! # What it exports
//!
//! With glibc's semantics: `malloc`, `calloc` (overflow: null and
//! `ENOMEM`), `realloc` (null: `malloc`; size 0 frees and returns null),
//! `reallocarray`, `free` (null is fine; `errno` kept), `posix_memalign`
//! (`EINVAL` for an alignment that is not a power of two multiple of
//! `sizeof(void *)`; returns the error, `errno` untouched),
//! `aligned_alloc` (`EINVAL` for an alignment that is not a power of two,
//! as glibc 2.38 on), `memalign` (rounds the alignment up to a power of
//! two), `valloc`, `pvalloc`, `malloc_usable_size` (0 for null),
//! `malloc_trim` (1 when memory went back to the kernel), `mallopt`
//! (`M_MMAP_THRESHOLD` and `M_PERTURB` honoured; other parameters
//! accepted and ignored, returning 1), `mallinfo`, `mallinfo2` and
//! `malloc_stats` (to standard error in glibc's shape).
//!
//! C++ needs nothing more: the C++ runtime's default `operator new` and
//! `operator delete` (all their sized, aligned and nothrow forms) call
//! `malloc`, `aligned_alloc` and `free`, which resolve to these.
//!
//! # Environment
//!
//! `MEMIO_MALLOC_STATS=1` prints the `malloc_stats` report when the
//! process exits; the heap's own options (`MEMIO_MALLOC_MMAP_THRESHOLD`,
//! `MEMIO_MALLOC_PURGE_DELAY`, `MEMIO_MALLOC_LARGE_CACHE`) are memio-malloc's.
//!
//! # Pointers from elsewhere
//!
//! A pointer outside the heap's segments that is not a live large block's
//! start ([`heap::raw::is_block`] is false) — memory from an allocator
//! that ran before the library was loaded, a mapping of the program's, a
//! large block freed already — is refused instead of corrupting the heap:
//! `free` ignores it and warns once on standard error, `realloc` returns
//! null with `ENOMEM`, `malloc_usable_size` returns 0. A pointer into one
//! of the heap's segments is trusted: a small block freed twice, or an
//! address inside a block, is not caught yet (glibc catches some of
//! these and aborts).
//!
//! # Not on these paths
//!
//! Nothing here allocates through Rust's global allocator, formats with
//! `core::fmt` or can panic: reports are assembled in stack buffers and
//! written with `write(2)`, and the exports are `extern "C"`, so a panic
//! would abort rather than unwind into C.
#![deny(unsafe_code)]

// Left out of the unit-test build, whose executable would otherwise
// interpose its own malloc.
#[cfg(not(test))]
mod at_exit;
#[cfg(not(test))]
mod exports;
#[cfg_attr(
    test,
    allow(
        dead_code,
        reason = "the unit tests exercise the buffer without the exports"
    )
)]
mod report;
