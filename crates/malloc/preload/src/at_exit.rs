//! Options read when the library is loaded, with `getenv` (which does not
//! allocate), and the reports printed when the process exits:
//!
//! | variable | meaning |
//! |---|---|
//! | `MEMIO_MALLOC_STATS=1` | the `malloc_stats` report on standard error at exit |
//! | `MEMIO_MALLOC_LEAKS=1` | the blocks and bytes still in use at exit, by size class, on standard error |
//! | `MEMIO_MALLOC_PERTURB=N` | fill blocks handed out (except by `calloc`) with `N ^ 0xff` and freed ones with `N` (1–255; 0 is off), as glibc's `M_PERTURB` |
//!
//! A value that does not parse warns once on standard error and leaves the
//! option off.
//!
//! The hooks sit in `.init_array` and `.fini_array`: the dynamic linker
//! runs the first when it loads the library, the second at `exit` after
//! the program's `atexit` handlers (a process that leaves by `_exit` or a
//! signal prints nothing).
//!
//! # Safety
//!
//! The hooks are plain `extern "C" fn()` with no arguments, the shape the
//! dynamic linker calls; `getenv`'s result is read before the program
//! could change the environment.
#![allow(unsafe_code, reason = "load and exit hooks, and getenv")]

use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::report::Buf;

static STATS: AtomicBool = AtomicBool::new(false);
static LEAKS: AtomicBool = AtomicBool::new(false);

/// The value of environment variable `name`, if set.
fn var(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: a NUL-terminated name; getenv neither allocates nor keeps it.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null getenv result is a NUL-terminated string in the
    // environment block, unchanged while the loader runs.
    Some(unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// Warns that `name` has a value that does not parse.
fn bad(name: &[u8], expected: &[u8]) {
    Buf::new()
        .text(b"memio-malloc: ")
        .text(name)
        .text(b": expected ")
        .text(expected)
        .text(b"; option off\n")
        .to_stderr();
}

/// A switch: `1` on, `0` or empty off.
fn switch(name: &CStr, flag: &AtomicBool) {
    match var(name) {
        None | Some(b"0" | b"") => {}
        Some(b"1") => flag.store(true, Ordering::Relaxed),
        Some(_) => bad(name.to_bytes(), b"0 or 1"),
    }
}

/// A decimal number up to `max`.
fn number(text: &[u8], max: u32) -> Option<u32> {
    if text.is_empty() || text.len() > 10 {
        return None;
    }
    let mut n: u32 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    (n <= max).then_some(n)
}

extern "C" fn on_load() {
    switch(c"MEMIO_MALLOC_STATS", &STATS);
    switch(c"MEMIO_MALLOC_LEAKS", &LEAKS);
    if let Some(text) = var(c"MEMIO_MALLOC_PERTURB") {
        match number(text, 255) {
            #[allow(clippy::cast_possible_wrap, reason = "at most 255")]
            Some(n) => crate::exports::set_perturb(n as i32),
            None => bad(b"MEMIO_MALLOC_PERTURB", b"a byte value 0-255"),
        }
    }
    if STATS.load(Ordering::Relaxed) || LEAKS.load(Ordering::Relaxed) {
        crate::report::keep_stderr();
    }
}

extern "C" fn on_exit() {
    if STATS.load(Ordering::Relaxed) {
        crate::exports::malloc_stats();
    }
    if LEAKS.load(Ordering::Relaxed) {
        leaks();
    }
}

/// The blocks still in use, by size class and then the large ones, with
/// a total line:
///
/// ```text
/// memio-malloc: still in use at exit: 3 blocks, 3072 bytes
/// memio-malloc:   class 1024 B: 3 blocks, 3072 bytes
/// ```
///
/// Blocks count at their class size (what they hold), large blocks at
/// their mapping's size. The C library's own buffers (stdio's, for one)
/// are counted too: a program that leaks nothing may still show a few.
/// So are blocks another thread freed that their heap has not collected
/// yet (a heap collects them at its next page-level event): compare with
/// a run that frees, as the tests do.
fn leaks() {
    let s = heap::stats();
    let small_blocks: usize = s.classes.iter().map(|c| c.in_use).sum();
    Buf::new()
        .text(b"memio-malloc: still in use at exit: ")
        .number(small_blocks + s.large_blocks, 0)
        .text(b" blocks, ")
        .number(s.in_use, 0)
        .text(b" bytes\n")
        .to_stderr();
    for c in s.classes.iter().filter(|c| c.in_use > 0) {
        Buf::new()
            .text(b"memio-malloc:   class ")
            .number(c.block_size, 0)
            .text(b" B: ")
            .number(c.in_use, 0)
            .text(b" blocks, ")
            .number(c.in_use * c.block_size, 0)
            .text(b" bytes\n")
            .to_stderr();
    }
    if s.large_blocks > 0 {
        Buf::new()
            .text(b"memio-malloc:   large (own mappings): ")
            .number(s.large_blocks, 0)
            .text(b" blocks, ")
            .number(s.large_bytes, 0)
            .text(b" bytes\n")
            .to_stderr();
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

#[used]
#[unsafe(link_section = ".fini_array")]
static ON_EXIT: extern "C" fn() = on_exit;
