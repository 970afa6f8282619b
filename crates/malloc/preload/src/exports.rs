//! The C malloc family, each symbol with glibc's contract (see the crate
//! docs), over `heap::raw`.
//!
//! # Safety
//!
//! These are the C library's allocation functions: C callers hand in
//! pointers they got from them. Each pointer is checked with
//! [`heap::raw::validate`] before the heap reads its metadata, so one the
//! heap did not hand out, an address inside a block and a block freed
//! already (while its page stays) are refused; with `MEMIO_MALLOC_CHECK`
//! the block's canary is checked too (see `check`).
#![allow(unsafe_code, reason = "the exported C allocation functions")]

use core::ffi::{c_int, c_void};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::check::{self, Problem};
use crate::report::{Buf, errno, set_errno};

/// What glibc guarantees `malloc` aligns to on 64-bit targets
/// (`MALLOC_ALIGNMENT`).
const MIN_ALIGN: usize = 16;
/// glibc's `mallopt` parameter number for `M_MMAP_THRESHOLD`.
const M_MMAP_THRESHOLD: c_int = -3;
/// glibc's `mallopt` parameter number for `M_PERTURB`.
const M_PERTURB: c_int = -6;
/// glibc's `mallopt` parameter number for `M_CHECK_ACTION`.
const M_CHECK_ACTION: c_int = -5;

/// The perturb byte (`M_PERTURB`, `MEMIO_MALLOC_PERTURB`) plus 256, or 0
/// when off: blocks are filled with its complement when handed out
/// (except by `calloc`) and with the byte itself when freed, so code that
/// reads memory it did not write, or memory it freed, reads garbage that
/// shows instead of old values that happen to work.
pub(crate) static PERTURB: AtomicU32 = AtomicU32::new(0);

/// Sets the perturb byte (0 turns perturbing off, as glibc's does).
pub(crate) fn set_perturb(value: c_int) {
    let byte = value.to_le_bytes()[0];
    PERTURB.store(
        if byte == 0 {
            0
        } else {
            u32::from(byte) | 0x100
        },
        Ordering::Relaxed,
    );
}

/// The perturb byte, when on.
pub(crate) fn perturb() -> Option<u8> {
    let v = PERTURB.load(Ordering::Relaxed);
    (v != 0).then_some((v & 0xff) as u8)
}

/// The page size, for `valloc` and `pvalloc`.
fn page_size() -> usize {
    // SAFETY: sysconf reads a value the kernel passed at exec.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096).max(1)
}

/// Allocates `size` bytes, filled with the perturb byte's complement
/// unless `zero`; laid out for checking when checks are on. Leaves
/// `errno` alone.
#[allow(
    clippy::inline_always,
    reason = "on every malloc's path: a call here kept the program's own loads waiting (lab row: C churn)"
)]
#[inline(always)]
fn block(size: usize, align: usize, zero: bool) -> *mut u8 {
    let p = if check::armed() {
        check::alloc(size, align, zero)
    } else {
        heap::raw::alloc_raw(size, align, zero)
    };
    if let (false, false, Some(byte)) = (p.is_null(), zero, perturb()) {
        // SAFETY: a new block of at least `size` bytes.
        unsafe { core::ptr::write_bytes(p, !byte, size) };
    }
    p
}

/// Allocates with `errno = ENOMEM` on failure.
fn alloc(size: usize, align: usize, zero: bool) -> *mut c_void {
    let p = block(size, align, zero);
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p.cast()
}

/// Whether `p` (not null) is a live block `op` may use: with checks on,
/// its canary whole too, and then the size it was asked for (else its
/// usable size). A fault is handled as `MEMIO_MALLOC_CHECK` says (which
/// may abort) and gives `None`.
///
/// # Safety
///
/// `p` is a pointer handed to the C allocation functions.
#[allow(
    clippy::inline_always,
    reason = "on every free's path: a call here kept the program's own loads waiting (lab row: C churn)"
)]
#[inline(always)]
unsafe fn live(p: *mut c_void, op: &[u8]) -> Option<usize> {
    if check::armed() && check::mode() != check::OFF {
        // SAFETY: the caller's pointer.
        return unsafe { check::verify(p, op) };
    }
    // SAFETY: a pointer handed to the C allocation functions is one of
    // their live blocks (the unit stays mapped), or a foreign pointer,
    // whose unit is the heap's only when a large block sits at its start.
    match unsafe { heap::raw::validate(p.cast_const().cast()) } {
        Ok(b) => Some(b.size),
        Err(f) => {
            check::refuse(op, p, Problem::Pointer(f));
            None
        }
    }
}

/// Allocates `size` bytes aligned to 16.
///
/// # References
///
/// - <https://man7.org/linux/man-pages/man3/malloc.3.html>
#[unsafe(no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    if !check::armed() && perturb().is_none() {
        let p = heap::raw::alloc_small(size);
        if !p.is_null() {
            return p.cast();
        }
    }
    alloc(size, MIN_ALIGN, false)
}

/// Allocates `n * size` zeroed bytes; null and `ENOMEM` when the product
/// overflows.
#[unsafe(no_mangle)]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        set_errno(libc::ENOMEM);
        return null_mut();
    };
    alloc(total, MIN_ALIGN, true)
}

/// Frees `p` (null is fine); `errno` is left as it was.
///
/// # Safety
///
/// `p` is null, or a live block from this library's allocation functions.
/// A pointer the heap did not hand out is ignored with a warning.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: the caller's pointer.
    let Some(n) = (unsafe { live(p, b"free") }) else {
        return;
    };
    // `errno` needs no saving here: the heap makes its system calls
    // (`madvise`, `munmap`) through rustix, which never sets it, and a
    // refusal's report restores it.
    if let Some(byte) = perturb() {
        // SAFETY: the block holds at least `n` bytes, live by the check
        // above.
        unsafe { core::ptr::write_bytes(p.cast::<u8>(), byte, n) };
    }
    // SAFETY: the heap owns `p`, and the caller hands it back live.
    unsafe { heap::raw::free_raw(p.cast()) };
}

/// Resizes `p` to `size` bytes, moving it when it must: null `p`
/// allocates, size 0 frees and returns null (as glibc does), failure
/// returns null with `ENOMEM` and leaves `p` as it was.
///
/// # Safety
///
/// As [`free`]; a pointer the heap did not hand out gets null and
/// `ENOMEM`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    // SAFETY: the caller's pointer.
    let Some(old) = (unsafe { live(p, b"realloc") }) else {
        set_errno(libc::ENOMEM);
        return null_mut();
    };
    if size == 0 {
        // SAFETY: the caller's live block, ours by the check above.
        unsafe { free(p) };
        return null_mut();
    }
    let checked = check::armed() && check::mode() != check::OFF;
    let Some(total) = size.checked_add(if checked { check::EXTRA } else { 0 }) else {
        set_errno(libc::ENOMEM);
        return null_mut();
    };
    // SAFETY: a live block of the heap holding `old` bytes of the caller's.
    let q = unsafe { heap::raw::realloc_raw(p.cast(), old, MIN_ALIGN, total) };
    if q.is_null() {
        set_errno(libc::ENOMEM);
    } else if checked {
        // SAFETY: a live block with room for `size + EXTRA` bytes.
        unsafe { check::arm(q, size) };
    }
    q.cast()
}

/// `realloc(p, n * size)`, with null and `ENOMEM` when the product
/// overflows (and `p` left alone).
///
/// # Safety
///
/// As [`realloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        set_errno(libc::ENOMEM);
        return null_mut();
    };
    // SAFETY: the caller's promise, passed on.
    unsafe { realloc(p, total) }
}

/// Allocates `size` bytes aligned to `align` into `*out`; returns 0,
/// `EINVAL` (an alignment that is not a power of two multiple of
/// `sizeof(void *)`) or `ENOMEM`, and leaves `errno` alone.
///
/// # Safety
///
/// `out` is valid for a pointer-sized write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align % size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    let p = block(size, align.max(MIN_ALIGN), false);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller's out-pointer.
    unsafe { out.write(p.cast()) };
    0
}

/// Allocates `size` bytes aligned to `align`, which must be a power of
/// two (`EINVAL` otherwise, as glibc 2.38 on).
#[unsafe(no_mangle)]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return null_mut();
    }
    alloc(size, align.max(MIN_ALIGN), false)
}

/// Allocates `size` bytes aligned to `align` rounded up to a power of two
/// (`EINVAL` past the largest one).
#[unsafe(no_mangle)]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    let Some(align) = align.checked_next_power_of_two() else {
        set_errno(libc::EINVAL);
        return null_mut();
    };
    alloc(size, align.max(MIN_ALIGN), false)
}

/// Allocates `size` bytes aligned to the page size.
#[unsafe(no_mangle)]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    alloc(size, page_size(), false)
}

/// Allocates `size` bytes rounded up to whole pages, page-aligned.
#[unsafe(no_mangle)]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    let Some(rounded) = size.max(1).checked_next_multiple_of(page) else {
        set_errno(libc::ENOMEM);
        return null_mut();
    };
    alloc(rounded, page, false)
}

/// Bytes usable in block `p`: at least what was asked for; 0 for null or
/// a pointer the heap did not hand out.
///
/// # Safety
///
/// `p` is null or a live block from this library.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: the caller's pointer.
    unsafe { live(p, b"malloc_usable_size") }.unwrap_or(0)
}

/// Gives free memory back to the kernel; 1 when some went, else 0. The
/// pad glibc keeps at the top of its heap has no meaning here.
#[unsafe(no_mangle)]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    c_int::from(heap::trim() > 0)
}

/// Sets an allocator parameter: `M_MMAP_THRESHOLD` (bytes; negative is
/// refused with 0) takes effect, clamped to the heap's largest class;
/// `M_PERTURB` sets the perturb byte (its low 8 bits; 0 turns it off);
/// `M_CHECK_ACTION` (1 report, 2 abort, 3 both) changes what a fault does
/// while `MEMIO_MALLOC_CHECK` is on (0 otherwise: checks cannot start once
/// blocks exist); every other parameter is accepted and ignored,
/// returning 1.
#[unsafe(no_mangle)]
pub extern "C" fn mallopt(param: c_int, value: c_int) -> c_int {
    match param {
        M_MMAP_THRESHOLD => {
            let Ok(bytes) = usize::try_from(value) else {
                return 0;
            };
            heap::set_mmap_threshold(bytes);
        }
        M_PERTURB => set_perturb(value),
        M_CHECK_ACTION => return check::set_action(value),
        _ => {}
    }
    1
}

/// The heap's figures in glibc's `struct mallinfo2`: `arena` bytes in
/// segments, `ordblks` 1 when any segment byte is free (the heap keeps no
/// count of free chunks), `hblks`/`hblkhd` live large (own mapping) blocks
/// and their bytes, `uordblks` bytes of small blocks in use, `fordblks`
/// bytes of segments not in use; `smblks`, `usmblks`, `fsmblks` and
/// `keepcost` 0 (no fastbins, no releasable top).
#[unsafe(no_mangle)]
pub extern "C" fn mallinfo2() -> libc::mallinfo2 {
    let s = heap::stats();
    let small = s.in_use.saturating_sub(s.large_bytes);
    libc::mallinfo2 {
        arena: s.segments,
        ordblks: usize::from(s.free_in_heaps > 0),
        smblks: 0,
        hblks: s.large_blocks,
        hblkhd: s.large_bytes,
        usmblks: 0,
        fsmblks: 0,
        uordblks: small,
        fordblks: s.free_in_heaps,
        keepcost: 0,
    }
}

/// The same figures in glibc's `struct mallinfo`, as `int`s (which wrap
/// past 2 GiB, as glibc's do).
#[unsafe(no_mangle)]
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "mallinfo's int fields wrap past 2 GiB in glibc too; mallinfo2 is the exact one"
)]
pub extern "C" fn mallinfo() -> libc::mallinfo {
    let m = mallinfo2();
    libc::mallinfo {
        arena: m.arena as c_int,
        ordblks: m.ordblks as c_int,
        smblks: m.smblks as c_int,
        hblks: m.hblks as c_int,
        hblkhd: m.hblkhd as c_int,
        usmblks: m.usmblks as c_int,
        fsmblks: m.fsmblks as c_int,
        uordblks: m.uordblks as c_int,
        fordblks: m.fordblks as c_int,
        keepcost: m.keepcost as c_int,
    }
}

/// Prints the heap's figures to standard error in glibc's shape: one
/// arena (the segments), then the totals with large mappings. glibc's
/// "max mmap" lines are high-water marks; these are the live counts.
#[unsafe(no_mangle)]
pub extern "C" fn malloc_stats() {
    let saved = errno();
    let s = heap::stats();
    let small = s.in_use.saturating_sub(s.large_bytes);
    let mut b = Buf::new();
    b.text(b"Arena 0:\n")
        .text(b"system bytes     = ")
        .number(s.segments, 10)
        .text(b"\nin use bytes     = ")
        .number(small, 10)
        .text(b"\nTotal (incl. mmap):\n")
        .text(b"system bytes     = ")
        .number(s.mapped, 10)
        .text(b"\nin use bytes     = ")
        .number(s.in_use, 10)
        .text(b"\nmax mmap regions = ")
        .number(s.large_blocks, 10)
        .text(b"\nmax mmap bytes   = ")
        .number(s.large_bytes, 10)
        .text(b"\n");
    b.to_stderr();
    set_errno(saved);
}
