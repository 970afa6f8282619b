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
//! | variable | meaning |
//! |---|---|
//! | `MEMIO_MALLOC_CHECK=N` | heap checking, as glibc's `MALLOC_CHECK_`: `1` reports each fault on standard error and ignores the bad call, `2` aborts (`SIGABRT`), `3` reports then aborts; `0` or unset, off |
//! | `MEMIO_MALLOC_GUARD=1` | a `PROT_NONE` page after every large block, the block's end against it (less than its alignment before it; malloc's is 16), so a write past the end faults where it happens |
//! | `MEMIO_MALLOC_HUGEPAGES=1` | transparent huge pages for the heap's segments and its large mappings of 2 MiB or more: fewer page faults and TLB misses, a larger resident size for a small heap |
//! | `MEMIO_MALLOC_VERBOSE=1` | one line on standard error at start-up naming the options in force |
//! | `MEMIO_MALLOC_STATS=1` | the `malloc_stats` report at exit |
//! | `MEMIO_MALLOC_LEAKS=1` | the blocks and bytes still in use at exit, by size class |
//! | `MEMIO_MALLOC_PERTURB=N` | fill new blocks with `N ^ 0xff` and freed ones with `N`, as `M_PERTURB` |
//!
//! A value that does not parse warns once on standard error and leaves the
//! option off. The heap's own options (`MEMIO_MALLOC_MMAP_THRESHOLD`,
//! `MEMIO_MALLOC_PURGE_DELAY`, `MEMIO_MALLOC_LARGE_CACHE`) are
//! memio-malloc's.
//!
//! # Wrong pointers
//!
//! Every pointer handed to `free`, `realloc` or `malloc_usable_size` is
//! checked ([`heap::raw::validate`]) before the heap reads its metadata,
//! checks on or off:
//!
//! - a pointer the heap did not hand out — memory from an allocator that
//!   ran before the library was loaded, a mapping of the program's, a large
//!   block unmapped already — is refused;
//! - an address inside a block is refused, and the report names the
//!   block;
//! - a small block freed twice is refused while its page stays (the key a
//!   free block carries, as glibc's tcache key); a large block freed twice
//!   while its mapping waits in the large cache, and as foreign once it is
//!   unmapped.
//!
//! Refused means: `free` does nothing, `realloc` returns null with
//! `ENOMEM`, `malloc_usable_size` returns 0, and the heap is left as it
//! was. With checks off one warning per kind of fault goes to standard
//! error; with `MEMIO_MALLOC_CHECK` each is reported, or aborts, as its
//! value says:
//!
//! ```text
//! memio-malloc: free(0x7f0c2e410030): double free (size class 48); aborting
//! memio-malloc: free(0x7f0c2e420048): invalid pointer, 8 bytes inside the block at 0x7f0c2e420040 (size class 64); aborting
//! memio-malloc: free(0x7f0c2e430020): heap overrun: written past the 20 bytes asked for, at byte 20 (size class 32); aborting
//! ```
//!
//! Heap overruns need `MEMIO_MALLOC_CHECK`: every block is then 9 bytes
//! larger than asked, its last word holding the size asked for and the
//! bytes between a canary that `free` and `realloc` check. A program that
//! damages a block without writing past its end, or frees a block whose
//! page has gone back to its segment and been reused, is not caught.
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
mod check;
#[cfg(not(test))]
mod exports;
#[cfg(not(test))]
mod options;
#[cfg_attr(
    test,
    allow(
        dead_code,
        reason = "the unit tests exercise the buffer without the exports"
    )
)]
mod report;
