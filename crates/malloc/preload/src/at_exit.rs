//! `MEMIO_MALLOC_STATS=1`: the `malloc_stats` report on standard error
//! when the process exits, read at load time with `getenv` (which does
//! not allocate). Any other value but `0` warns once and reports nothing.
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

static REPORT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_load() {
    // SAFETY: a NUL-terminated name; getenv neither allocates nor keeps it.
    let p = unsafe { libc::getenv(c"MEMIO_MALLOC_STATS".as_ptr()) };
    if p.is_null() {
        return;
    }
    // SAFETY: a non-null getenv result is a NUL-terminated string in the
    // environment block, unchanged while the loader runs.
    match unsafe { CStr::from_ptr(p) }.to_bytes() {
        b"1" => REPORT.store(true, Ordering::Relaxed),
        b"0" | b"" => {}
        _ => {
            Buf::new()
                .text(b"memio-malloc: MEMIO_MALLOC_STATS: expected 0 or 1; no report\n")
                .to_stderr();
        }
    }
}

extern "C" fn on_exit() {
    if REPORT.load(Ordering::Relaxed) {
        crate::exports::malloc_stats();
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

#[used]
#[unsafe(link_section = ".fini_array")]
static ON_EXIT: extern "C" fn() = on_exit;
