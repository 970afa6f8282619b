//! Size classes: every multiple of 8 bytes up to 128 B, then eight
//! classes per doubling, so a request from 128 B up is rounded up by less
//! than 12.5 % of its class.
//!
//! Index `i < 16` is `8 * (i + 1)` bytes. From 16 on, with `j = i - 16`,
//! `b = 7 + j / 8`: `2^b + (j % 8 + 1) * 2^(b - 3)` bytes — 144, 160, ...,
//! 256, 288, ... A power of two is always a class, so an aligned request
//! can fall back to one whose blocks are aligned to their own size.

/// Number of classes (8 B to [`MAX_CLASS_SIZE`]).
pub const CLASSES: usize = 16 + 8 * 12;
/// The largest class: 512 KiB.
pub const MAX_CLASS_SIZE: usize = 512 << 10;

/// The block size of every class, smallest first.
pub static SIZES: [u32; CLASSES] = sizes();

#[allow(
    clippy::cast_possible_truncation,
    reason = "class indices are below 112"
)]
const fn sizes() -> [u32; CLASSES] {
    let mut out = [0u32; CLASSES];
    let mut i = 0;
    while i < CLASSES {
        out[i] = if i < 16 {
            8 * (i as u32 + 1)
        } else {
            let j = (i - 16) as u32;
            let b = 7 + j / 8;
            (1 << b) + (j % 8 + 1) * (1 << (b - 3))
        };
        i += 1;
    }
    out
}

/// The class for a request of `size` bytes (`1..=MAX_CLASS_SIZE`).
///
/// Up to 1 KiB, one load from a table: the two formulas below (one up to
/// 128 B, one past) would leave a branch that a program mixing sizes on
/// both sides of 128 B mispredicts on every other call.
#[inline]
#[must_use]
pub fn class_of(size: usize) -> usize {
    debug_assert!(size > 0 && size <= MAX_CLASS_SIZE);
    match SMALL.get(size.div_ceil(8)) {
        Some(&c) => usize::from(c),
        None => computed(size),
    }
}

/// [`class_of`] by formula.
const fn computed(size: usize) -> usize {
    if size <= 128 {
        size.div_ceil(8) - 1
    } else {
        let s = size - 1;
        let b = usize::BITS - 1 - s.leading_zeros();
        16 + (b as usize - 7) * 8 + ((s >> (b - 3)) & 7)
    }
}

/// The largest request [`SMALL`] answers.
const SMALL_MAX: usize = 1024;

/// The class of every request up to [`SMALL_MAX`] bytes, by
/// `size.div_ceil(8)` (every class size is a multiple of 8, so rounding
/// the request up to one first changes nothing).
static SMALL: [u8; SMALL_MAX / 8 + 1] = small();

#[allow(
    clippy::cast_possible_truncation,
    reason = "class indices are below 112"
)]
const fn small() -> [u8; SMALL_MAX / 8 + 1] {
    let mut out = [0u8; SMALL_MAX / 8 + 1];
    let mut i = 1;
    while i < out.len() {
        out[i] = computed(i * 8) as u8;
        i += 1;
    }
    out
}

/// The block size of class `class`.
#[inline]
#[must_use]
pub fn size_of_class(class: usize) -> usize {
    SIZES[class] as usize
}

/// Pages start at 64 KiB boundaries, so no class aligns blocks further.
pub const MAX_CLASS_ALIGN: usize = 64 << 10;

/// The class whose blocks hold `size` bytes aligned to `align` (a power of
/// two), or `None` when no class does (too large, or aligned beyond
/// [`MAX_CLASS_ALIGN`]).
#[must_use]
pub fn class_for(size: usize, align: usize) -> Option<usize> {
    let size = size.max(1);
    if align > MAX_CLASS_ALIGN {
        return None;
    }
    if align <= 8 || (align <= 16 && size >= 16) {
        // Blocks of a multiple-of-`align` size sit at multiples of it.
        let need = (size + align - 1) & !(align - 1);
        if need > MAX_CLASS_SIZE {
            return None;
        }
        let c = class_of(need);
        if size_of_class(c) % align == 0 {
            return Some(c);
        }
    }
    // A power-of-two class at least `align` bytes: its blocks sit at
    // multiples of their size from a page start aligned past it.
    let need = size.max(align).next_power_of_two();
    (need <= MAX_CLASS_SIZE).then(|| class_of(need))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_gets_the_smallest_class_that_holds_it() {
        for size in 1..=MAX_CLASS_SIZE {
            let c = class_of(size);
            assert!(size_of_class(c) >= size, "{size}");
            assert!(c == 0 || size_of_class(c - 1) < size, "{size}");
        }
        assert_eq!(size_of_class(CLASSES - 1), MAX_CLASS_SIZE);
    }

    #[test]
    fn the_table_agrees_with_the_formula() {
        for size in 1..=SMALL_MAX + 8 {
            assert_eq!(class_of(size), computed(size), "{size}");
        }
    }

    #[test]
    fn rounding_wastes_at_most_an_eighth_from_128_bytes() {
        for size in 128..=MAX_CLASS_SIZE {
            let class = size_of_class(class_of(size));
            assert!((class - size) * 8 <= class, "{size} -> {class}");
        }
    }

    #[test]
    fn aligned_classes_align_their_blocks() {
        for shift in 0..=20 {
            let align = 1usize << shift;
            for size in [1, 7, 24, 100, 129, 1000, 4097, 70_000] {
                if let Some(c) = class_for(size, align) {
                    let s = size_of_class(c);
                    assert!(s >= size && s % align == 0, "{size} {align} -> {s}");
                }
            }
        }
        assert!(class_for(MAX_CLASS_SIZE + 1, 8).is_none());
    }
}
