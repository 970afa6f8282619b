//! The operating system underneath: anonymous mappings, purging, the
//! monotonic clock, and the map of which 4 MiB address units hold a
//! segment or large-block header.
//!
//! # Safety
//!
//! Everything here maps, unmaps or advises address ranges through raw
//! pointers. The callers (the heap and the large-block layer) own the
//! ranges they pass: a range is unmapped or purged only by the code that
//! mapped it and only when no live block lies in it. Every call goes
//! straight to the kernel through rustix (no libc `malloc` underneath),
//! so none of it allocates.
#![allow(
    unsafe_code,
    reason = "mmap, munmap, mremap and madvise on ranges this crate owns"
)]
#![allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "metadata walks are runs of raw dereferences resting on the one invariant stated above"
)]
#![allow(
    clippy::cast_ptr_alignment,
    reason = "the unit map is a page-aligned mapping"
)]
#![allow(
    clippy::cast_sign_loss,
    reason = "the monotonic clock is never negative"
)]

use core::ffi::c_void;
use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, Ordering};

use rustix::mm::{self, Advice, MapFlags, MremapFlags, ProtFlags};

/// Segments and large-block headers sit at multiples of this (4 MiB).
pub(crate) const SEGMENT_SHIFT: u32 = 22;
/// The size and alignment of a segment.
pub(crate) const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
/// The kernel's page size assumed for rounding (checked at start-up).
pub(crate) const OS_PAGE: usize = 4096;

/// Rounds `n` up to a multiple of `align` (a power of two).
#[inline]
pub(crate) const fn align_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

/// Whether a mapping counts against the kernel's overcommit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// `MAP_NORESERVE`: segments and metadata, whose address space is
    /// reserved ahead and touched a page at a time.
    Lazy,
    /// Checked when mapped: a large block is one request, and one far
    /// beyond memory and swap must fail as `ENOMEM` (as glibc's does), not
    /// succeed and get the process killed when it is touched.
    Checked,
}

/// Maps `len` bytes of fresh zeroed anonymous memory, read/write, without
/// the overcommit check ([`Commit::Lazy`]).
pub(crate) fn map(len: usize) -> Option<*mut u8> {
    map_with(len, Commit::Lazy)
}

/// Maps `len` bytes of fresh zeroed anonymous memory, read/write.
fn map_with(len: usize, commit: Commit) -> Option<*mut u8> {
    let flags = match commit {
        Commit::Lazy => MapFlags::PRIVATE | MapFlags::NORESERVE,
        Commit::Checked => MapFlags::PRIVATE,
    };
    // SAFETY: a new mapping at an address of the kernel's choosing
    // overlaps nothing that exists.
    let p =
        unsafe { mm::mmap_anonymous(null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, flags) };
    p.ok().map(<*mut c_void>::cast)
}

/// Maps `len` bytes starting at a multiple of `SEGMENT_SIZE` such that
/// `start + head` is a multiple of `align` (a power of two).
///
/// Up to `SEGMENT_SIZE` alignment, `head` must be a multiple of `align`;
/// beyond it, a multiple of `SEGMENT_SIZE`.
pub(crate) fn map_aligned(
    len: usize,
    align: usize,
    head: usize,
    commit: Commit,
) -> Option<*mut u8> {
    debug_assert!(align.is_power_of_two());
    let over = len
        .checked_add(align.max(SEGMENT_SIZE))?
        .checked_add(SEGMENT_SIZE)?;
    let raw = map_with(over, commit)? as usize;
    let start = if align <= SEGMENT_SIZE {
        debug_assert!(head % align == 0);
        align_up(raw, SEGMENT_SIZE)
    } else {
        debug_assert!(head % SEGMENT_SIZE == 0);
        align_up(raw + head, align) - head
    };
    debug_assert!(start >= raw && start % SEGMENT_SIZE == 0);
    let end = start + align_up(len, OS_PAGE);
    // SAFETY: `[raw, start)` and `[end, raw + over)` lie inside the mapping
    // made just above, which nothing else knows of yet.
    unsafe { unmap_range(raw, start) };
    // SAFETY: as above.
    unsafe { unmap_range(end, raw + over) };
    Some(start as *mut u8)
}

/// Unmaps `[from, to)` when it is not empty.
///
/// # Safety
///
/// The range must be page-aligned, mapped by this crate, and hold nothing
/// in use.
pub(crate) unsafe fn unmap_range(from: usize, to: usize) {
    if to > from {
        // SAFETY: the caller owns the range and nothing in it is in use.
        let r = unsafe { mm::munmap(from as *mut c_void, to - from) };
        debug_assert!(r.is_ok(), "munmap {from:#x}..{to:#x}");
    }
}

/// Unmaps `len` bytes at `p`.
///
/// # Safety
///
/// As [`unmap_range`].
pub(crate) unsafe fn unmap(p: *mut u8, len: usize) {
    // SAFETY: forwarded to the caller.
    unsafe { unmap_range(p as usize, p as usize + len) }
}

/// Gives the physical pages of `[p, p + len)` back to the kernel; the range
/// stays mapped and reads as zeros afterwards.
///
/// # Safety
///
/// The range must be page-aligned, mapped by this crate, and hold no live
/// data.
pub(crate) unsafe fn purge(p: *mut u8, len: usize) {
    if len > 0 {
        // SAFETY: the caller owns the range and has no data in it.
        let r = unsafe { mm::madvise(p.cast(), len, Advice::LinuxDontNeed) };
        debug_assert!(r.is_ok(), "madvise {p:?}+{len:#x}: {r:?}");
    }
}

/// The size of a transparent huge page on x86-64 (and of a PMD on most
/// other targets with 4 KiB pages).
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back `[p, p + len)` with transparent huge pages
/// when the huge pages option is on (`MADV_HUGEPAGE`; a kernel without
/// them refuses, and the range keeps small pages). The 2 MiB-aligned
/// parts of the range then fault in 2 MiB at a time. A range shorter than
/// a huge page can hold none, and is left as it is.
///
/// # Safety
///
/// The range must be page-aligned and mapped by this crate.
pub(crate) unsafe fn ask_huge_pages(p: *mut u8, len: usize) {
    if len >= HUGE_PAGE && crate::options::HUGEPAGES.load(core::sync::atomic::Ordering::Relaxed) {
        // SAFETY: the caller owns the range; the advice changes how it is
        // backed, never what it holds.
        let _ = unsafe { mm::madvise(p.cast(), len, Advice::LinuxHugepage) };
    }
}

/// Makes `[p, p + len)` inaccessible (`PROT_NONE`): a guard page.
///
/// # Safety
///
/// The range must be page-aligned, mapped by this crate, and hold no live
/// data.
pub(crate) unsafe fn protect_none(p: *mut u8, len: usize) -> rustix::io::Result<()> {
    // SAFETY: the caller owns the range, which nothing reads or writes.
    unsafe { mm::mprotect(p.cast(), len, mm::MprotectFlags::empty()) }
}

/// Resizes the mapping `[p, p + old)` to `new` bytes where it stands.
///
/// # Safety
///
/// `[p, p + old)` must be one mapping this crate made.
pub(crate) unsafe fn resize_in_place(p: *mut u8, old: usize, new: usize) -> bool {
    // SAFETY: the caller owns the mapping; without MAYMOVE the kernel
    // either resizes it in place or fails and leaves it as it was.
    unsafe { mm::mremap(p.cast(), old, new, MremapFlags::empty()) }.is_ok()
}

/// Moves the mapping `[p, p + old)`, resized to `new` bytes, onto
/// `[to, to + new)`, which must be a mapping of this crate's holding
/// nothing (it is replaced). The kernel moves the page tables: no byte is
/// copied and no page faults in again. `[p, p + old)` is unmapped after.
///
/// # Safety
///
/// `[p, p + old)` must be one mapping this crate made, and `[to, to +
/// new)` a range of this crate's with nothing in use, disjoint from it.
///
/// # References
///
/// - [mremap(2)](https://man7.org/linux/man-pages/man2/mremap.2.html)
#[doc(alias = "mremap")]
pub(crate) unsafe fn move_to(p: *mut u8, old: usize, new: usize, to: *mut u8) -> bool {
    // Memcheck does not carry its record of which bytes are addressable
    // along with a mapping that `MREMAP_FIXED` moves, so a program on this
    // heap under valgrind would be reported for reading its own memory.
    // There the bytes are copied instead, with the same outcome.
    if under_valgrind() {
        // SAFETY: both ranges are the caller's and disjoint; `to` holds
        // `new >= old` writable bytes; `[p, p + old)` is unmapped only
        // after its bytes are copied, as the kernel would have.
        unsafe {
            ptr::copy_nonoverlapping(p, to, old.min(new));
            unmap(p, old);
        }
        return true;
    }
    // SAFETY: the caller owns both ranges; with MAYMOVE | FIXED the kernel
    // either moves the mapping onto `to` (unmapping what was there) or
    // fails and leaves both as they were.
    let r = unsafe { mm::mremap_fixed(p.cast(), old, new, MremapFlags::MAYMOVE, to.cast()) };
    r.is_ok_and(|q| q.cast::<u8>() == to)
}

/// Whether the program runs on valgrind's synthetic CPU, asked once
/// through valgrind's `RUNNING_ON_VALGRIND` client request: a sequence of
/// rotations that leaves every register as it was on a real CPU, which
/// valgrind recognises and answers in the result register.
///
/// # References
///
/// - [valgrind.h, client requests](https://valgrind.org/docs/manual/manual-core-adv.html#manual-core-adv.clientreq)
pub(crate) fn under_valgrind() -> bool {
    // 0: not asked yet, 1: no, 2: yes.
    static ANSWER: AtomicU8 = AtomicU8::new(0);
    match ANSWER.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let yes = running_on_valgrind() != 0;
            ANSWER.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
    }
}

/// valgrind's `VG_USERREQ__RUNNING_ON_VALGRIND`: the number of valgrind
/// layers the program runs under, 0 on a real CPU.
#[cfg(target_arch = "x86_64")]
fn running_on_valgrind() -> usize {
    const RUNNING_ON_VALGRIND: usize = 0x1001;
    let args: [usize; 6] = [RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0];
    let mut result: usize = 0;
    // SAFETY: the four rotations of rdi add up to 128 bits, so rdi ends as
    // it began, and `xchg rbx, rbx` changes nothing: on a real CPU the
    // sequence only clobbers flags and leaves rdx at the default (0).
    // Valgrind reads the request from the array rax points to (live for
    // the whole statement) and writes its answer to rdx.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") result,
            in("rax") args.as_ptr(),
            inout("rdi") 0usize => _,
            options(nostack, readonly),
        );
    }
    result
}

/// Other architectures: valgrind is not asked (the heap assumes a real
/// CPU; memcheck may then report reads of moved large blocks).
#[cfg(not(target_arch = "x86_64"))]
fn running_on_valgrind() -> usize {
    0
}

/// Nanoseconds on the monotonic clock.
///
/// Through the C library's `clock_gettime` (the vDSO, no system call, no
/// allocation) rather than rustix's: rustix finds the vDSO by parsing the
/// auxiliary vector, which crashes under valgrind, and the heap must run
/// under valgrind.
pub(crate) fn now_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut t) };
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// Bits of user address space the unit map covers (x86-64 and arm64 with
/// 4-level page tables hand out addresses below 2^48).
const ADDRESS_BITS: u32 = 48;
const UNIT_WORDS: usize = 1 << (ADDRESS_BITS - SEGMENT_SHIFT - 6);

/// One bit per 4 MiB unit of the address space, set while a segment or
/// large-block header starts there: what [`is_ours`] reads to tell this
/// heap's pointers from anyone else's without touching their memory. The
/// map (8 MiB of address space) is mapped on first use; only the pages
/// that hold set bits ever become resident.
static UNITS: AtomicPtr<AtomicU64> = AtomicPtr::new(ptr::null_mut());

fn units() -> Option<*const AtomicU64> {
    let u = UNITS.load(Ordering::Acquire);
    if !u.is_null() {
        return Some(u);
    }
    let fresh = map(UNIT_WORDS * 8)?.cast::<AtomicU64>();
    match UNITS.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(fresh),
        Err(theirs) => {
            // SAFETY: our copy was never published.
            unsafe { unmap(fresh.cast(), UNIT_WORDS * 8) };
            Some(theirs)
        }
    }
}

/// Records that a header starts at `base` (a multiple of `SEGMENT_SIZE`).
pub(crate) fn mark_unit(base: *mut u8, on: bool) -> bool {
    let unit = base as usize >> SEGMENT_SHIFT;
    if unit >= UNIT_WORDS * 64 {
        return false;
    }
    let Some(u) = units() else { return false };
    // SAFETY: `unit / 64 < UNIT_WORDS`, inside the zero-initialised map of
    // atomics that is never unmapped once published.
    let word = unsafe { &*u.add(unit / 64) };
    let bit = 1u64 << (unit % 64);
    if on {
        word.fetch_or(bit, Ordering::Release);
    } else {
        word.fetch_and(!bit, Ordering::Release);
    }
    true
}

/// Whether a header of this crate starts at `base`.
#[inline]
pub(crate) fn is_unit(base: usize) -> bool {
    let unit = base >> SEGMENT_SHIFT;
    if unit >= UNIT_WORDS * 64 {
        return false;
    }
    let u = UNITS.load(Ordering::Acquire);
    if u.is_null() {
        return false;
    }
    // SAFETY: as in `mark_unit`.
    let word = unsafe { &*u.add(unit / 64) };
    word.load(Ordering::Acquire) & (1u64 << (unit % 64)) != 0
}
