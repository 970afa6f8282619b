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
//! atomics with `Relaxed` ordering, so a concurrent writer can at worst make
//! a copy see some old and some new words. `Relaxed` loads of at most a
//! pointer's size are also what the standard library promises to work on
//! read-only pages.
//!
//! Mixed-size atomic accesses that race with a store are undefined in Rust,
//! so every copy runs at one [`Width`]: the region's claimed atomic width
//! (`widths`). A word of that width wholly inside the region is accessed
//! with one atomic of that width — a partial word at the edges of the range
//! with a load, or a compare-and-swap loop that changes only the bytes in
//! range — and the bytes of a word that sticks out of the region (which no
//! view of the region can cover) with `AtomicU8`. So no access here
//! overlaps a view of another width.
//!
//! Callers pass a range they checked to lie inside a live mapping that is
//! readable (loads) or writable (stores) for the call.
#![allow(
    unsafe_code,
    reason = "relaxed atomic loads and stores on mapped memory other parties may write"
)]

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

use crate::widths::Width;

/// The mapped side of a copy: `len` bytes from `start` (a region), of which
/// the copy touches `at..at + n`, accessed at one width.
#[derive(Clone, Copy)]
pub(crate) struct Span {
    pub(crate) start: *mut u8,
    pub(crate) len: usize,
    pub(crate) at: usize,
}

/// One atomic width: whole-word loads and stores, and a compare-and-swap
/// merge of some bytes into a word.
trait Atom {
    const N: usize;
    /// Loads the word at `p` into `out[..N]`.
    unsafe fn load(p: *const u8, out: *mut u8);
    /// Stores `src[..N]` into the word at `p`.
    unsafe fn store(p: *mut u8, src: *const u8);
    /// Replaces bytes `k..k + bytes.len()` of the word at `p`, keeping the
    /// others as another party may be changing them.
    unsafe fn merge(p: *mut u8, k: usize, bytes: &[u8]);
}

macro_rules! atom {
    ($name:ident, $atomic:ty, $int:ty) => {
        struct $name;
        impl Atom for $name {
            const N: usize = size_of::<$int>();
            #[inline(always)]
            unsafe fn load(p: *const u8, out: *mut u8) {
                // SAFETY: the caller passes a word-aligned word inside a
                // readable mapping whose accesses are all atomic.
                let word = unsafe { <$atomic>::from_ptr(p.cast_mut().cast()) }.load(Relaxed);
                // SAFETY: the caller passes `N` writable bytes at `out`.
                unsafe { out.cast::<$int>().write_unaligned(word) };
            }
            #[inline(always)]
            unsafe fn store(p: *mut u8, src: *const u8) {
                // SAFETY: the caller passes `N` readable bytes at `src`.
                let word = unsafe { src.cast::<$int>().read_unaligned() };
                // SAFETY: an aligned word inside a writable mapping whose
                // accesses are all atomic (the caller's promise).
                unsafe { <$atomic>::from_ptr(p.cast()) }.store(word, Relaxed);
            }
            unsafe fn merge(p: *mut u8, k: usize, bytes: &[u8]) {
                // SAFETY: as `store`.
                let cell = unsafe { <$atomic>::from_ptr(p.cast()) };
                let mut old = cell.load(Relaxed);
                loop {
                    let mut new = old.to_ne_bytes();
                    new[k..k + bytes.len()].copy_from_slice(bytes);
                    match cell.compare_exchange_weak(
                        old,
                        <$int>::from_ne_bytes(new),
                        Relaxed,
                        Relaxed,
                    ) {
                        Ok(_) => return,
                        Err(now) => old = now,
                    }
                }
            }
        }
    };
}
atom!(A1, AtomicU8, u8);
atom!(A2, AtomicU16, u16);
atom!(A4, AtomicU32, u32);
atom!(A8, AtomicU64, u64);

/// What a copy does with one word (or part of one) of the mapped side.
trait Step {
    /// `words` whole aligned words from `p`; `i` is the first byte's index
    /// in the copy.
    unsafe fn run<A: Atom>(&mut self, p: *mut u8, i: usize, words: usize);
    /// Bytes `k..k + n` of the aligned word at `p`, which lies inside the
    /// region; `i` is byte `k`'s index in the copy.
    unsafe fn part<A: Atom>(&mut self, p: *mut u8, k: usize, n: usize, i: usize);
    /// Byte `i` of the copy at `p`, in a word that sticks out of the region.
    unsafe fn byte(&mut self, p: *mut u8, i: usize);
}

/// Walks the `n` bytes of `span` word by word at width `A`.
///
/// # Safety
///
/// `span.at + n <= span.len`, and the region `span` describes is mapped,
/// accessible as the step needs, and accessed only atomically for the call.
unsafe fn walk<A: Atom>(span: Span, n: usize, step: &mut impl Step) {
    if n == 0 {
        // Touches nothing: not even the word around `at`.
        return;
    }
    let lo = span.start as usize;
    let hi = lo + span.len;
    let from = lo + span.at;
    let to = from + n;
    let mut word = from - from % A::N;
    if word < from || word + A::N > hi {
        // SAFETY: the caller's promise; the word overlaps the range.
        unsafe { edge::<A>(span, from, to, word, step) };
        word += A::N;
    }
    // The whole words inside both the range and the region, in one run.
    let words = to.min(hi).saturating_sub(word) / A::N;
    if words > 0 {
        // SAFETY: `words` aligned words from `word`, inside the range and
        // the region.
        unsafe { step.run::<A>(span.start.wrapping_add(word - lo), word - from, words) };
        word += words * A::N;
    }
    while word < to {
        // SAFETY: the caller's promise; the word overlaps the range.
        unsafe { edge::<A>(span, from, to, word, step) };
        word += A::N;
    }
}

/// One aligned word at address `word` that overlaps `from..to` but is not
/// wholly inside both it and the region.
///
/// # Safety
///
/// As [`walk`].
#[inline]
unsafe fn edge<A: Atom>(span: Span, from: usize, to: usize, word: usize, step: &mut impl Step) {
    let lo = span.start as usize;
    let hi = lo + span.len;
    let first = word.max(from);
    let last = (word + A::N).min(to);
    if word < lo || word + A::N > hi {
        for b in first..last {
            // SAFETY: `b` is inside the copy's range, in the region.
            unsafe { step.byte(span.start.wrapping_add(b - lo), b - from) };
        }
    } else {
        let p = span.start.wrapping_add(word - lo);
        // SAFETY: an aligned word inside the region.
        unsafe { step.part::<A>(p, first - word, last - first, first - from) };
    }
}

/// Runs `walk` at `width`.
///
/// # Safety
///
/// As [`walk`].
unsafe fn walk_at(width: Width, span: Span, n: usize, step: &mut impl Step) {
    match width {
        // SAFETY: the caller's promise, passed on.
        Width::W1 => unsafe { walk::<A1>(span, n, step) },
        // SAFETY: as above.
        Width::W2 => unsafe { walk::<A2>(span, n, step) },
        // SAFETY: as above.
        Width::W4 => unsafe { walk::<A4>(span, n, step) },
        // SAFETY: as above.
        Width::W8 => unsafe { walk::<A8>(span, n, step) },
    }
}

struct Load<'a>(&'a mut [u8]);

impl Step for Load<'_> {
    #[inline]
    unsafe fn run<A: Atom>(&mut self, p: *mut u8, i: usize, words: usize) {
        assert!(i + words * A::N <= self.0.len());
        let out = self.0.as_mut_ptr().wrapping_add(i);
        for k in 0..words {
            let at = k * A::N;
            // SAFETY: `walk` gives aligned words inside the region; the
            // assert above keeps `out` in `dst`.
            unsafe { A::load(p.wrapping_add(at), out.wrapping_add(at)) };
        }
    }
    unsafe fn part<A: Atom>(&mut self, p: *mut u8, k: usize, n: usize, i: usize) {
        let mut word = [0u8; 8];
        // SAFETY: an aligned word inside the region; 8 >= N bytes out.
        unsafe { A::load(p, word.as_mut_ptr()) };
        self.0[i..i + n].copy_from_slice(&word[k..k + n]);
    }
    unsafe fn byte(&mut self, p: *mut u8, i: usize) {
        // SAFETY: a byte of the region; alignment 1.
        self.0[i] = unsafe { AtomicU8::from_ptr(p) }.load(Relaxed);
    }
}

struct Store<'a>(&'a [u8]);

impl Step for Store<'_> {
    #[inline]
    unsafe fn run<A: Atom>(&mut self, p: *mut u8, i: usize, words: usize) {
        assert!(i + words * A::N <= self.0.len());
        let from = self.0.as_ptr().wrapping_add(i);
        for k in 0..words {
            let at = k * A::N;
            // SAFETY: `walk` gives aligned words inside the region; the
            // assert above keeps `from` in `src`.
            unsafe { A::store(p.wrapping_add(at), from.wrapping_add(at)) };
        }
    }
    unsafe fn part<A: Atom>(&mut self, p: *mut u8, k: usize, n: usize, i: usize) {
        // SAFETY: an aligned word inside the writable region.
        unsafe { A::merge(p, k, &self.0[i..i + n]) };
    }
    unsafe fn byte(&mut self, p: *mut u8, i: usize) {
        // SAFETY: a byte of the writable region; alignment 1.
        unsafe { AtomicU8::from_ptr(p) }.store(self.0[i], Relaxed);
    }
}

/// Copies `dst.len()` bytes from `span` into `dst` with relaxed atomic
/// loads of `width`.
///
/// # Safety
///
/// `span.at + dst.len() <= span.len`; the region stays mapped and readable
/// for the call, and every access to its bytes in this process while the
/// call runs is atomic (no live `&[u8]`/`&mut [u8]`), of `width` where it
/// stores.
pub(crate) unsafe fn load(span: Span, dst: &mut [u8], width: Width) {
    let n = dst.len();
    // SAFETY: the caller's promise.
    unsafe { walk_at(width, span, n, &mut Load(dst)) };
}

/// Copies `src` into `span` with relaxed atomic stores of `width`.
///
/// # Safety
///
/// As [`load`], for `src.len()` bytes that are writable; every atomic access
/// to them in this process is of `width`; `src` is not inside the region.
pub(crate) unsafe fn store(span: Span, src: &[u8], width: Width) {
    // SAFETY: the caller's promise.
    unsafe { walk_at(width, span, src.len(), &mut Store(src)) };
}

/// Sets `n` bytes of `span` to `byte` with relaxed atomic stores of `width`.
///
/// # Safety
///
/// As [`store`].
pub(crate) unsafe fn fill(span: Span, n: usize, byte: u8, width: Width) {
    const CHUNK: usize = 4096;
    let bytes = [byte; CHUNK];
    let mut done = 0;
    while done < n {
        let k = (n - done).min(CHUNK);
        let part = Span {
            at: span.at + done,
            ..span
        };
        // SAFETY: `done + k <= n`: inside the caller's range.
        unsafe { store(part, &bytes[..k], width) };
        done += k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every width, length and alignment of both sides, against a plain
    /// copy; nothing outside the range changes.
    #[test]
    fn copies_match_a_plain_copy_at_every_width_alignment_and_length() {
        let source: Vec<u8> = (0..200u8).map(|i| i.wrapping_mul(37)).collect();
        let mut mapped = vec![0u64; 40];
        // The region starts 3 bytes into the buffer: words at its edges
        // stick out and go bytewise.
        let start = mapped.as_mut_ptr().cast::<u8>().wrapping_add(3);
        let span = |at| Span {
            start,
            len: 300,
            at,
        };
        for width in [Width::W1, Width::W2, Width::W4, Width::W8] {
            for start in 0..=9 {
                for len in 0..100 {
                    let mut out = vec![0xEEu8; len + 3];
                    for skew in 0..3 {
                        let want = &source[start..start + len];
                        // SAFETY: `start + len < 300` bytes of the span,
                        // inside `mapped`, which only this test touches.
                        unsafe { store(span(start), want, width) };
                        // SAFETY: as above.
                        unsafe { load(span(start), &mut out[skew..skew + len], width) };
                        assert_eq!(&out[skew..skew + len], want, "{width:?} {start} {len}");
                        // SAFETY: as above.
                        unsafe { fill(span(start), len, 0x5A, width) };
                        // SAFETY: as above.
                        unsafe { load(span(start), &mut out[skew..skew + len], width) };
                        assert!(out[skew..skew + len].iter().all(|&b| b == 0x5A));
                    }
                }
            }
        }
        let all: Vec<u8> = mapped.iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert!(all[..3].iter().all(|&b| b == 0), "before the region");
        assert!(all[3 + 109..].iter().all(|&b| b == 0), "past the range");
    }
}
