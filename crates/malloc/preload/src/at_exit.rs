//! Options read when the library is loaded (see `options`), the
//! start-up line of `MEMIO_MALLOC_VERBOSE=1`, and the reports printed when
//! the process exits.
//!
//! The hooks sit in `.init_array` and `.fini_array`: the dynamic linker
//! runs the first when it loads the library, the second at `exit` after
//! the program's `atexit` handlers (a process that leaves by `_exit` or a
//! signal prints nothing).
//!
//! # Safety
//!
//! The hooks are plain `extern "C" fn()` with no arguments, the shape the
//! dynamic linker calls.
#![allow(unsafe_code, reason = "load and exit hooks")]

use core::sync::atomic::{AtomicBool, Ordering};

use crate::options::{bad, number, switch, var};
use crate::report::Buf;

static STATS: AtomicBool = AtomicBool::new(false);
static LEAKS: AtomicBool = AtomicBool::new(false);

extern "C" fn on_load() {
    STATS.store(switch(c"MEMIO_MALLOC_STATS"), Ordering::Relaxed);
    LEAKS.store(switch(c"MEMIO_MALLOC_LEAKS"), Ordering::Relaxed);
    if let Some(text) = var(c"MEMIO_MALLOC_PERTURB") {
        match number(text, 255) {
            #[allow(clippy::cast_possible_wrap, reason = "at most 255")]
            Some(n) => crate::exports::set_perturb(n as i32),
            None => bad(b"MEMIO_MALLOC_PERTURB", b"a byte value 0-255"),
        }
    }
    // The heap reads MEMIO_MALLOC_GUARD and MEMIO_MALLOC_HUGEPAGES itself
    // (at its first allocation) and takes only `1`; this says when a value
    // is not one it reads.
    let _ = switch(c"MEMIO_MALLOC_GUARD");
    let _ = switch(c"MEMIO_MALLOC_HUGEPAGES");
    // Reads MEMIO_MALLOC_CHECK now, if no allocation did yet, so that a
    // bad value is named at start-up.
    let check = crate::check::mode();
    if STATS.load(Ordering::Relaxed) || LEAKS.load(Ordering::Relaxed) || check != 0 {
        crate::report::keep_stderr();
    }
    if switch(c"MEMIO_MALLOC_VERBOSE") {
        verbose(check);
    }
}

/// The options in force, on one line:
///
/// ```text
/// memio-malloc: check=3 (report and abort) guard=1 hugepages=0 perturb=0 stats=0 leaks=0 mmap_threshold=131072 purge_delay_ms=100 large_cache=67108864
/// ```
fn verbose(check: u8) {
    let o = heap::options();
    let flag = usize::from;
    Buf::new()
        .text(b"memio-malloc: check=")
        .text(crate::check::describe(check))
        .text(b" guard=")
        .number(flag(o.guard), 0)
        .text(b" hugepages=")
        .number(flag(o.hugepages), 0)
        .text(b" perturb=")
        .number(crate::exports::perturb().map_or(0, usize::from), 0)
        .text(b" stats=")
        .number(flag(STATS.load(Ordering::Relaxed)), 0)
        .text(b" leaks=")
        .number(flag(LEAKS.load(Ordering::Relaxed)), 0)
        .text(b" mmap_threshold=")
        .number(o.mmap_threshold, 0)
        .text(b" purge_delay_ms=")
        .number(usize::try_from(o.purge_delay_ms).unwrap_or(usize::MAX), 0)
        .text(b" large_cache=")
        .number(o.large_cache, 0)
        .text(b"\n")
        .to_stderr();
}

extern "C" fn on_exit() {
    let (stats, leak_report) = (STATS.load(Ordering::Relaxed), LEAKS.load(Ordering::Relaxed));
    if stats || leak_report {
        // Blocks other threads freed count as free, not still in use.
        heap::collect();
    }
    if stats {
        crate::exports::malloc_stats();
    }
    if leak_report {
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
/// are counted too: a program that leaks nothing may still show a few, so
/// compare with a run that frees, as the tests do. Blocks that other
/// threads freed are taken back first ([`heap::collect`]), except those
/// freed into the heap of a thread still running at exit.
fn leaks() {
    let s = heap::stats();
    let small_blocks: usize = s.classes.iter().map(|c| c.in_use).sum();
    blocks_line(
        Buf::new().text(b"memio-malloc: still in use at exit: "),
        small_blocks + s.large_blocks,
        s.in_use,
    );
    for c in s.classes.iter().filter(|c| c.in_use > 0) {
        blocks_line(
            Buf::new()
                .text(b"memio-malloc:   class ")
                .number(c.block_size, 0)
                .text(b" B: "),
            c.in_use,
            c.in_use * c.block_size,
        );
    }
    if s.large_blocks > 0 {
        blocks_line(
            Buf::new().text(b"memio-malloc:   large (own mappings): "),
            s.large_blocks,
            s.large_bytes,
        );
    }
}

/// Ends a leak report line with `N blocks, M bytes` and writes it.
fn blocks_line(line: &mut Buf, blocks: usize, bytes: usize) {
    line.number(blocks, 0)
        .text(b" blocks, ")
        .number(bytes, 0)
        .text(b" bytes\n")
        .to_stderr();
}

#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

#[used]
#[unsafe(link_section = ".fini_array")]
static ON_EXIT: extern "C" fn() = on_exit;
