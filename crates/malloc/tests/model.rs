//! Random sequences of allocate, allocate-zeroed, reallocate and free,
//! through `GlobalAlloc`, against a model of the live blocks: every block
//! aligned, none overlapping another, contents kept across realloc, the
//! usable size at least what was asked for.
#![allow(unsafe_code, reason = "driving GlobalAlloc by hand")]

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;

use memio_malloc::MemioMalloc;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        size: usize,
        align_shift: u32,
        zero: bool,
    },
    Realloc {
        pick: usize,
        size: usize,
    },
    Free {
        pick: usize,
    },
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..300,
        3 => 300usize..20_000,
        2 => 20_000usize..300_000,
        1 => 300_000usize..3_000_000,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (size(), prop_oneof![3 => 0u32..5, 1 => 5u32..23], any::<bool>())
            .prop_map(|(size, align_shift, zero)| Op::Alloc { size, align_shift, zero }),
        2 => (any::<usize>(), size()).prop_map(|(pick, size)| Op::Realloc { pick, size }),
        3 => any::<usize>().prop_map(|pick| Op::Free { pick }),
    ]
}

struct Live {
    layout: Layout,
    fill: u8,
}

fn check(blocks: &BTreeMap<usize, Live>) {
    let mut end = 0;
    for (&at, live) in blocks {
        assert!(at >= end, "block {at:#x} overlaps the one before");
        assert_eq!(at % live.layout.align(), 0, "block {at:#x} misaligned");
        // SAFETY: `at` is a live block of MemioMalloc.
        let usable = unsafe { memio_malloc::usable_size(at as *const u8) };
        assert!(
            usable >= live.layout.size(),
            "usable {usable} < {}",
            live.layout.size()
        );
        assert!(memio_malloc::owns(at as *const u8));
        end = at + live.layout.size().max(1);
    }
}

fn fill(p: *mut u8, len: usize, byte: u8) {
    // SAFETY: `p` is a live block of at least `len` bytes.
    unsafe { std::ptr::write_bytes(p, byte, len) };
}

fn holds(p: *const u8, len: usize, byte: u8) -> bool {
    // SAFETY: as in `fill`.
    let s = unsafe { std::slice::from_raw_parts(p, len) };
    // Large blocks: check the ends and a stride, not every byte.
    if len > 4096 {
        s[..64]
            .iter()
            .chain(&s[len - 64..])
            .chain(s.iter().step_by(509))
            .all(|&b| b == byte)
    } else {
        s.iter().all(|&b| b == byte)
    }
}

fn nth_key(blocks: &BTreeMap<usize, Live>, pick: usize) -> Option<usize> {
    (!blocks.is_empty()).then(|| *blocks.keys().nth(pick % blocks.len()).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn live_blocks_stay_aligned_apart_and_intact(ops in prop::collection::vec(op(), 1..200)) {
        let a = MemioMalloc;
        let mut blocks: BTreeMap<usize, Live> = BTreeMap::new();
        for (n, op) in ops.into_iter().enumerate() {
            let tag = u8::try_from(n % 251).unwrap() + 1;
            match op {
                Op::Alloc { size, align_shift, zero } => {
                    // GlobalAlloc callers never ask for zero bytes.
                    let layout = Layout::from_size_align(size.max(1), 1 << align_shift).unwrap();
                    // SAFETY: non-zero size.
                    let p = if zero {
                        // SAFETY: non-zero size.
                        unsafe { a.alloc_zeroed(layout) }
                    } else {
                        // SAFETY: non-zero size.
                        unsafe { a.alloc(layout) }
                    };
                    prop_assert!(!p.is_null());
                    if zero {
                        prop_assert!(holds(p, layout.size(), 0), "alloc_zeroed gave dirty memory");
                    }
                    fill(p, layout.size(), tag);
                    let fresh = blocks.insert(p as usize, Live { layout, fill: tag }).is_none();
                    prop_assert!(fresh, "block handed out twice");
                }
                Op::Realloc { pick, size } => {
                    let Some(at) = nth_key(&blocks, pick) else { continue };
                    let live = blocks.remove(&at).unwrap();
                    let size = size.max(1);
                    // SAFETY: `at` is live with `live.layout`; size non-zero.
                    let p = unsafe { a.realloc(at as *mut u8, live.layout, size) };
                    prop_assert!(!p.is_null());
                    let kept = live.layout.size().min(size);
                    prop_assert!(holds(p, kept, live.fill), "realloc lost contents");
                    fill(p, size, tag);
                    let layout = Layout::from_size_align(size, live.layout.align()).unwrap();
                    blocks.insert(p as usize, Live { layout, fill: tag });
                }
                Op::Free { pick } => {
                    let Some(at) = nth_key(&blocks, pick) else { continue };
                    let live = blocks.remove(&at).unwrap();
                    prop_assert!(holds(at as *const u8, live.layout.size(), live.fill));
                    // SAFETY: `at` is live with `live.layout`.
                    unsafe { a.dealloc(at as *mut u8, live.layout) };
                }
            }
            check(&blocks);
        }
        for (at, live) in blocks {
            prop_assert!(holds(at as *const u8, live.layout.size(), live.fill));
            // SAFETY: live with this layout.
            unsafe { a.dealloc(at as *mut u8, live.layout) };
        }
    }
}

#[test]
fn foreign_pointers_are_not_owned() {
    let on_stack = 0u8;
    assert!(!memio_malloc::owns(&raw const on_stack));
    assert!(!memio_malloc::owns(std::ptr::null()));
    let boxed = Box::new(1u64); // the system allocator's, in this binary
    assert!(!memio_malloc::owns((&raw const *boxed).cast()));
}

#[test]
fn every_class_and_alignment_round_trips() {
    let a = MemioMalloc;
    for shift in 0..=22 {
        let align = 1usize << shift;
        for size in [
            1, 8, 24, 100, 128, 129, 4095, 8193, 70_000, 200_000, 600_000,
        ] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { a.alloc(layout) };
            assert!(!p.is_null() && p as usize % align == 0, "{size} {align}");
            fill(p, size, 0xa5);
            // SAFETY: live with this layout.
            unsafe { a.dealloc(p, layout) };
        }
    }
}
