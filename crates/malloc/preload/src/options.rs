//! The library's environment variables, read with the heap's own
//! `getenv` reader (which does not allocate), and the warning for a value
//! that does not parse.
//!
//! | variable | meaning |
//! |---|---|
//! | `MEMIO_MALLOC_CHECK=N` | heap checking (see `check`): 0 off, 1 report, 2 abort, 3 report and abort |
//! | `MEMIO_MALLOC_GUARD=1` | a guard page after every large block (read by the heap itself; checked here) |
//! | `MEMIO_MALLOC_HUGEPAGES=1` | transparent huge pages for segments and large mappings (read by the heap itself; checked here) |
//! | `MEMIO_MALLOC_VERBOSE=1` | one line on standard error at start-up with the options in force |
//! | `MEMIO_MALLOC_STATS=1` | the `malloc_stats` report on standard error at exit |
//! | `MEMIO_MALLOC_LEAKS=1` | the blocks and bytes still in use at exit, by size class, on standard error |
//! | `MEMIO_MALLOC_PERTURB=N` | fill blocks handed out (except by `calloc`) with `N ^ 0xff` and freed ones with `N` (1–255; 0 is off), as glibc's `M_PERTURB` |
//!
//! A value that does not parse warns once on standard error and leaves the
//! option off.
//!
//! They are read before the program could change the environment (when
//! the library loads, or at the first allocation).

use core::ffi::CStr;

use crate::report::Buf;

pub(crate) use heap::raw::var;

/// Warns that `name` has a value that does not parse.
pub(crate) fn bad(name: &[u8], expected: &[u8]) {
    Buf::new()
        .text(b"memio-malloc: ")
        .text(name)
        .text(b": expected ")
        .text(expected)
        .text(b"; option off\n")
        .to_stderr();
}

/// A switch: on for `1`; off for `0`, empty or unset, and (after a
/// warning) for anything else.
pub(crate) fn switch(name: &CStr) -> bool {
    match var(name) {
        None | Some(b"0" | b"") => false,
        Some(b"1") => true,
        Some(_) => {
            bad(name.to_bytes(), b"0 or 1");
            false
        }
    }
}

/// A decimal number up to `max`.
pub(crate) fn number(text: &[u8], max: u32) -> Option<u32> {
    if text.len() > 10 {
        return None;
    }
    heap::raw::parse_number(text)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n <= max)
}

/// `MEMIO_MALLOC_CHECK`: the mode, and whether the value was bad (the
/// caller warns, once).
pub(crate) fn check_mode() -> (u8, bool) {
    match var(c"MEMIO_MALLOC_CHECK") {
        None | Some(b"") => (0, false),
        #[allow(clippy::cast_possible_truncation, reason = "at most 3")]
        Some(text) => match number(text, 3) {
            Some(n) => (n as u8, false),
            None => (0, true),
        },
    }
}
