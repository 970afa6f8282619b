//! `MEMIO_MALLOC_CHECK`: heap checking, as glibc's `MALLOC_CHECK_`.
//!
//! | value | what a fault does |
//! |---|---|
//! | `0` or unset | checks off: no canaries; a wrong pointer is still refused, with one warning per kind of fault |
//! | `1` | report on standard error and carry on: the bad call is ignored (`free` does nothing, `realloc` returns null with `ENOMEM`, `malloc_usable_size` 0) |
//! | `2` | abort (`SIGABRT`) without a report |
//! | `3` | report, then abort |
//!
//! With checks on, every block is asked for 9 bytes larger than the
//! program's request: the requested size is kept in the block's last word
//! (mixed with its address) and the bytes from the end of the request to
//! that word are a canary, up to [`SPAN`] of them. The rest of a block's
//! slack is left alone: a large block reused from the cache can have
//! megabytes of it, and filling and scanning those on every call made a
//! program of large blocks several times slower with checks on. `free`, `realloc` and `malloc_usable_size`
//! check the pointer (a block start, not freed already: [`heap::raw::validate`])
//! and the canary before they trust the block; `malloc_usable_size`
//! returns the size asked for, so a program writing up to it trips
//! nothing. Faults are reported as
//!
//! ```text
//! memio-malloc: free(0x7f0c2e4100a0): double free (size class 32); aborting
//! memio-malloc: free(0x7f0c2e4100a8): invalid pointer, 8 bytes inside the block at 0x7f0c2e4100a0 (size class 32); ignored
//! memio-malloc: realloc(0x7f0c2e4100a0): heap overrun: written past the 20 bytes asked for, at byte 20 (size class 32); aborting
//! ```
//!
//! The mode is read at the first allocation (or when the library loads,
//! whichever comes first), so every block the library hands out is made
//! under the one layout. `mallopt(M_CHECK_ACTION, 1..=3)` changes what a
//! fault does while checks are on; checks cannot be turned on or off
//! once blocks exist.
//!
//! # Safety
//!
//! The canary and the size word lie inside blocks the heap handed out,
//! past the bytes the program asked for; they are read and written only
//! for a pointer [`heap::raw::validate`] accepted as a live block.
#![allow(unsafe_code, reason = "canaries inside the heap's own blocks")]
#![allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "each block computes an address inside one live block and touches it"
)]
#![allow(
    clippy::cast_ptr_alignment,
    reason = "the size word sits at the block's end, a multiple of 8 from its 16-aligned start"
)]

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use heap::raw::{Block, Fault};

use crate::report::{Buf, errno, set_errno};

/// Checks off.
pub(crate) const OFF: u8 = 0;
/// Report and carry on.
const REPORT: u8 = 1;
/// Abort without a report.
const ABORT: u8 = 2;
/// Not read from the environment yet.
const UNREAD: u8 = 0xff;

static MODE: AtomicU8 = AtomicU8::new(UNREAD);

/// Bytes a checked block has beyond the request: the size word and at
/// least one canary byte.
pub(crate) const EXTRA: usize = 9;
/// The most canary bytes a block gets right after its request (an
/// overrun that skips them and lands further in the slack goes unseen,
/// unless it reaches the size word).
pub(crate) const SPAN: usize = 64;
/// What every canary byte holds (never 0, so a stray string terminator
/// shows).
const CANARY: u8 = 0xa5;
/// Mixed with the block's address into its size word.
const SALT: usize = 0x6d65_6d69_6f43_484b;

/// Whether checks may be on: the one load the unchecked paths pay.
#[inline]
pub(crate) fn armed() -> bool {
    MODE.load(Ordering::Relaxed) != OFF
}

/// The mode, read from the environment on first use.
pub(crate) fn mode() -> u8 {
    let m = MODE.load(Ordering::Relaxed);
    if m != UNREAD {
        return m;
    }
    let (m, bad) = crate::options::check_mode();
    match MODE.compare_exchange(UNREAD, m, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => {
            if bad {
                crate::options::bad(b"MEMIO_MALLOC_CHECK", b"0, 1, 2 or 3");
            }
            m
        }
        Err(theirs) => theirs,
    }
}

/// `mallopt(M_CHECK_ACTION, action)`: changes what a fault does while
/// checks are on (1 report, 2 abort, 3 both); 0 when checks are off or the
/// action is not one of these.
pub(crate) fn set_action(action: i32) -> i32 {
    let Ok(a @ 1..=3) = u8::try_from(action) else {
        return 0;
    };
    if mode() == OFF {
        return 0;
    }
    MODE.store(a, Ordering::Relaxed);
    1
}

/// The mode as words, for the verbose line.
pub(crate) fn describe(m: u8) -> &'static [u8] {
    match m {
        OFF => b"0 (off)",
        REPORT => b"1 (report)",
        ABORT => b"2 (abort)",
        _ => b"3 (report and abort)",
    }
}

/// Allocates a checked block for `size` bytes (plain when checks are
/// off): the size word and canary written.
pub(crate) fn alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    if mode() == OFF {
        return heap::raw::alloc_raw(size, align, zero);
    }
    let Some(total) = size.checked_add(EXTRA) else {
        return core::ptr::null_mut();
    };
    let p = heap::raw::alloc_raw(total, align, zero);
    if !p.is_null() {
        // SAFETY: a new block of at least `size + EXTRA` bytes.
        unsafe { arm(p, size) };
    }
    p
}

/// Writes block `p`'s size word (`size` asked for) and its canary.
///
/// # Safety
///
/// `p` is a live block of the heap with room for `size + EXTRA` bytes.
pub(crate) unsafe fn arm(p: *mut u8, size: usize) {
    // SAFETY: the caller's live block.
    let usable = unsafe { heap::usable_size(p) };
    debug_assert!(usable >= size + EXTRA && usable % 8 == 0);
    // SAFETY: `[size, usable - 8)` and the last word lie in the block; the
    // word is 8-aligned (blocks and their usable sizes are multiples of 8).
    unsafe {
        p.add(size).write_bytes(CANARY, canary_len(size, usable));
        p.add(usable - 8)
            .cast::<usize>()
            .write(size ^ p as usize ^ SALT);
    }
}

/// What is wrong with a pointer or its block.
#[derive(Clone, Copy)]
pub(crate) enum Problem {
    /// The heap refuses the pointer.
    Pointer(Fault),
    /// A canary byte changed: `asked` bytes were asked for, the first
    /// changed byte is at `at`.
    Overrun {
        block: Block,
        asked: usize,
        at: usize,
    },
    /// The size word at the block's end no longer reads as a size.
    SizeWord(Block),
}

/// Checks `p` for `op` with checks on: a live block whose canary is
/// whole. Returns the size asked for; on a fault, handles it as the mode
/// says (which may abort) and returns `None`.
///
/// # Safety
///
/// `p` is not null; as `free`'s contract otherwise (a foreign pointer is
/// refused).
pub(crate) unsafe fn verify(p: *mut c_void, op: &[u8]) -> Option<usize> {
    let p = p.cast::<u8>();
    // SAFETY: the caller's pointer; `validate` reads only the heap's own
    // metadata before it says yes.
    let block = match unsafe { heap::raw::validate(p) } {
        Ok(b) => b,
        Err(f) => {
            refuse(op, p.cast(), Problem::Pointer(f));
            return None;
        }
    };
    let usable = block.size;
    // SAFETY: a live block of the heap made under checks: its last word is
    // the size word, 8-aligned.
    let asked = unsafe { p.add(usable - 8).cast::<usize>().read() } ^ p as usize ^ SALT;
    if asked > usable - EXTRA {
        refuse(op, p.cast(), Problem::SizeWord(block));
        return None;
    }
    // SAFETY: `[asked, asked + canary_len)` lies in `[asked, usable - 8)`,
    // inside the live block.
    let canary = unsafe { core::slice::from_raw_parts(p.add(asked), canary_len(asked, usable)) };
    if let Some(i) = first_changed(canary) {
        refuse(
            op,
            p.cast(),
            Problem::Overrun {
                block,
                asked,
                at: asked + i,
            },
        );
        return None;
    }
    Some(asked)
}

/// How many canary bytes follow a request of `asked` bytes in a block of
/// `usable` bytes: up to the size word, at most [`SPAN`].
fn canary_len(asked: usize, usable: usize) -> usize {
    (usable - 8 - asked).min(SPAN)
}

/// The first byte of `canary` that is not [`CANARY`].
fn first_changed(canary: &[u8]) -> Option<usize> {
    // Whole chunks first, without early exits, so the compiler can compare
    // several bytes at once.
    let mut base = 0;
    for chunk in canary.chunks(64) {
        if chunk.iter().fold(0, |acc, &b| acc | (b ^ CANARY)) != 0 {
            return chunk.iter().position(|&b| b != CANARY).map(|i| base + i);
        }
        base += chunk.len();
    }
    None
}

/// Handles a fault in `op(p)` as the mode says: off, one warning per kind
/// and the call ignored; 1, a report and the call ignored; 2, abort; 3, a
/// report and abort. Keeps `errno` when it returns.
pub(crate) fn refuse(op: &[u8], p: *mut c_void, problem: Problem) {
    static WARNED: [AtomicBool; 4] = [const { AtomicBool::new(false) }; 4];
    let m = mode();
    let kind = match problem {
        Problem::Pointer(Fault::Foreign) => 0,
        Problem::Pointer(Fault::Inside { .. }) => 1,
        Problem::Pointer(Fault::Freed(_)) => 2,
        Problem::Overrun { .. } | Problem::SizeWord(_) => 3,
    };
    let abort = m == ABORT || (m != OFF && m != REPORT);
    let print = m != ABORT && (m != OFF || !WARNED[kind].swap(true, Ordering::Relaxed));
    if print {
        let saved = errno();
        let mut b = Buf::new();
        describe_fault(&mut b, op, p, problem);
        b.text(if abort {
            b"; aborting\n"
        } else {
            b"; ignored\n"
        })
        .to_stderr();
        set_errno(saved);
    }
    if abort {
        // SAFETY: abort has no preconditions; it does not return.
        unsafe { libc::abort() };
    }
}

/// `memio-malloc: op(p): what is wrong (size class N)`.
fn describe_fault(b: &mut Buf, op: &[u8], p: *mut c_void, problem: Problem) {
    b.text(b"memio-malloc: ")
        .text(op)
        .text(b"(")
        .hex(p as usize)
        .text(b"): ");
    let block = match problem {
        Problem::Pointer(Fault::Foreign) => {
            b.text(b"not a block of this heap (never allocated, freed already, or allocated before the library was loaded)");
            return;
        }
        Problem::Pointer(Fault::Inside { start, block }) => {
            b.text(b"invalid pointer, ")
                .number((p as usize).wrapping_sub(start as usize), 0)
                .text(b" bytes inside the block at ")
                .hex(start as usize);
            block
        }
        Problem::Pointer(Fault::Freed(block)) => {
            b.text(b"double free");
            block
        }
        Problem::Overrun { block, asked, at } => {
            b.text(b"heap overrun: written past the ")
                .number(asked, 0)
                .text(b" bytes asked for, at byte ")
                .number(at, 0);
            block
        }
        Problem::SizeWord(block) => {
            b.text(b"heap overrun: the size word at the block's end was overwritten");
            block
        }
    };
    if block.large {
        b.text(b" (large block, ")
            .number(block.size, 0)
            .text(b" bytes)");
    } else {
        b.text(b" (size class ").number(block.size, 0).text(b")");
    }
}
