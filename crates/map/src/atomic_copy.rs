//! Copies between mapped memory and ordinary buffers through relaxed
//! atomics: an "atomic memcpy".
//!
//! # Safety
//!
//! The bytes of a shared mapping can change at any moment: another process
//! writes them, another mapping of the same object in this process writes
//! them, or a thread stores through one of the region's atomic views. A plain
//! `memcpy` that overlaps such a write is a data race, which Rust's memory
//! model makes undefined behaviour even where the hardware would only tear
//! the value. The functions here touch the mapped side only through
//! `AtomicU8` (the unaligned head and tail) and `AtomicUsize` (the aligned
//! middle) with `Relaxed` ordering, so a concurrent writer can at worst make
//! a copy see some old and some new words. Pointer-sized `Relaxed` loads are
//! also what the standard library promises to work on read-only pages.
//!
//! Callers pass a range they checked to lie inside a live mapping that is
//! readable (loads) or writable (stores) for the call. Mixed-size atomic
//! accesses (a word copied here while a thread stores one byte of it through
//! an `AtomicU8` view) are atomic on every target Linux runs on; the copy
//! only promises that each byte it returns was in memory at some point.
#![allow(
    unsafe_code,
    reason = "relaxed atomic loads and stores on mapped memory other parties may write"
)]

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU8, AtomicUsize};

const WORD: usize = size_of::<usize>();

/// How many bytes from `ptr` to split off as a bytewise head so the rest
/// starts on a word boundary (at most `len`).
fn head_len(ptr: *const u8, len: usize) -> usize {
    // `align_offset` may give up (`usize::MAX`); then every byte goes
    // through the bytewise path, which is slower but just as correct.
    ptr.align_offset(WORD).min(len)
}

/// Copies `dst.len()` bytes from `src` into `dst` with relaxed atomic loads.
///
/// # Safety
///
/// `src..src + dst.len()` lies inside one mapping that stays mapped and
/// readable for the call, and every access to those bytes in this process
/// while the call runs is atomic (no live `&[u8]`/`&mut [u8]` over them).
pub(crate) unsafe fn load(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    let out = dst.as_mut_ptr();
    let head = head_len(src, len);
    let words = (len - head) / WORD;
    let body = head + words * WORD;
    for i in (0..head).chain(body..len) {
        // SAFETY: `i < len`, so the byte is inside the caller's readable
        // range; `AtomicU8` has alignment 1; all accesses are atomic.
        let byte = unsafe { AtomicU8::from_ptr(src.wrapping_add(i).cast_mut()) };
        // SAFETY: `i < len = dst.len()`.
        unsafe { out.wrapping_add(i).write(byte.load(Relaxed)) };
    }
    #[allow(clippy::cast_ptr_alignment, reason = "aligned by `head_len`")]
    let from = src.wrapping_add(head).cast::<usize>().cast_mut();
    #[allow(clippy::cast_ptr_alignment, reason = "written unaligned")]
    let to = out.wrapping_add(head).cast::<usize>();
    debug_assert!(words == 0 || from.is_aligned());
    for k in 0..words {
        // SAFETY: word `k` lies in `head..body`, inside the readable range,
        // and `from` is word-aligned (`head_len`); accesses are atomic.
        let word = unsafe { AtomicUsize::from_ptr(from.wrapping_add(k)) }.load(Relaxed);
        // SAFETY: the same offsets of `dst`, which is `len` bytes long;
        // `dst` need not be aligned, hence the unaligned write.
        unsafe { to.wrapping_add(k).write_unaligned(word) };
    }
}

/// Copies `src` to `dst..dst + src.len()` with relaxed atomic stores.
///
/// # Safety
///
/// `dst..dst + src.len()` lies inside one mapping that stays mapped and
/// writable for the call; every access to those bytes in this process while
/// the call runs is atomic; `src` is not inside that range.
pub(crate) unsafe fn store(dst: *mut u8, src: &[u8]) {
    let len = src.len();
    let from = src.as_ptr();
    let head = head_len(dst, len);
    let words = (len - head) / WORD;
    let body = head + words * WORD;
    for i in (0..head).chain(body..len) {
        // SAFETY: `i < len`: inside the caller's writable range; atomics.
        let byte = unsafe { AtomicU8::from_ptr(dst.wrapping_add(i)) };
        // SAFETY: `i < src.len()`.
        byte.store(unsafe { from.wrapping_add(i).read() }, Relaxed);
    }
    #[allow(clippy::cast_ptr_alignment, reason = "aligned by `head_len`")]
    let to = dst.wrapping_add(head).cast::<usize>();
    #[allow(clippy::cast_ptr_alignment, reason = "read unaligned")]
    let from = from.wrapping_add(head).cast::<usize>();
    debug_assert!(words == 0 || to.is_aligned());
    for k in 0..words {
        // SAFETY: word `k` of `src` past the head; `src` may be unaligned.
        let word = unsafe { from.wrapping_add(k).read_unaligned() };
        // SAFETY: word `k` lies in `head..body` of the writable range and
        // `to` is word-aligned (`head_len`); accesses are atomic.
        unsafe { AtomicUsize::from_ptr(to.wrapping_add(k)) }.store(word, Relaxed);
    }
}

/// Sets `len` bytes from `dst` to `byte` with relaxed atomic stores.
///
/// # Safety
///
/// As [`store`]: `dst..dst + len` is mapped, writable, and accessed only
/// atomically for the call.
pub(crate) unsafe fn fill(dst: *mut u8, len: usize, byte: u8) {
    let head = head_len(dst, len);
    let words = (len - head) / WORD;
    let body = head + words * WORD;
    for i in (0..head).chain(body..len) {
        // SAFETY: `i < len`: inside the caller's writable range; atomics.
        unsafe { AtomicU8::from_ptr(dst.wrapping_add(i)) }.store(byte, Relaxed);
    }
    let word = usize::from_ne_bytes([byte; WORD]);
    #[allow(clippy::cast_ptr_alignment, reason = "aligned by `head_len`")]
    let to = dst.wrapping_add(head).cast::<usize>();
    debug_assert!(words == 0 || to.is_aligned());
    for k in 0..words {
        // SAFETY: word `k` lies in `head..body` of the writable range and
        // `to` is word-aligned; accesses are atomic.
        unsafe { AtomicUsize::from_ptr(to.wrapping_add(k)) }.store(word, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length and both alignments of both sides, against a plain copy.
    #[test]
    fn copies_match_a_plain_copy_at_every_alignment_and_length() {
        let source: Vec<u8> = (0..200u8).map(|i| i.wrapping_mul(37)).collect();
        let mut mapped = vec![0usize; 40];
        let base = mapped.as_mut_ptr().cast::<u8>();
        for start in 0..=WORD {
            for len in 0..100 {
                let mut out = vec![0xEEu8; len + 3];
                for skew in 0..3 {
                    let want = &source[start..start + len];
                    // SAFETY: `start + len <= 9 + 100 < 320` bytes of
                    // `mapped`, a live allocation only this test touches.
                    unsafe { store(base.wrapping_add(start), want) };
                    // SAFETY: as above.
                    unsafe { load(base.wrapping_add(start), &mut out[skew..skew + len]) };
                    assert_eq!(&out[skew..skew + len], want, "start {start} len {len}");
                    // SAFETY: as above.
                    unsafe { fill(base.wrapping_add(start), len, 0x5A) };
                    // SAFETY: as above.
                    unsafe { load(base.wrapping_add(start), &mut out[skew..skew + len]) };
                    assert!(out[skew..skew + len].iter().all(|&b| b == 0x5A));
                }
            }
        }
        // Nothing outside the range was written.
        // SAFETY: 320 bytes of the live vector.
        let all = unsafe { std::slice::from_raw_parts(base, 40 * WORD) };
        assert!(all[WORD + 100..].iter().all(|&b| b == 0));
    }
}
