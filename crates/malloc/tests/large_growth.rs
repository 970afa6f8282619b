//! Large blocks grown by `realloc`, and what stays mapped after (its own
//! test binary, so no other test's large blocks move the figures; its
//! tests take turns, so neither maps its blocks where the other's grow).
#![allow(unsafe_code, reason = "driving GlobalAlloc by hand")]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::{Mutex, MutexGuard};

use memio_malloc::MemioMalloc;

const PAGE: usize = 4096;

/// The byte each page of the buffer is marked with.
#[allow(clippy::cast_possible_truncation, reason = "marks wrap at 256 pages")]
fn mark_of(at: usize) -> u8 {
    (at / PAGE) as u8
}

/// Held by each test while it runs: a block grows in place only while
/// the address space after it is free, which the other test's mappings
/// would take at random. Each turn starts with no large mapping cached:
/// the buffer the other test freed would otherwise serve this test's first
/// block whole, and the figures would depend on which test ran first.
fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    memio_malloc::trim();
    assert_eq!(memio_malloc::stats().large_cached, 0);
    turn
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

#[test]
fn a_buffer_grown_by_realloc_keeps_its_pages_and_leaves_no_copy_behind() {
    let _turn = turn();
    let a = MemioMalloc;
    let mut len = 1 << 20;
    // SAFETY: non-zero size.
    let mut p = unsafe { a.alloc(layout(len)) };
    assert!(!p.is_null());
    let mark = |p: *mut u8, from: usize, to: usize| {
        for at in (from..to).step_by(PAGE) {
            let byte = p.wrapping_add(at);
            // SAFETY: `at < to`, inside the block.
            unsafe { byte.write(mark_of(at)) };
        }
    };
    mark(p, 0, len);
    // 1 MiB to 48 MiB in 64 KiB steps, as a program appending to a buffer.
    while len < 48 << 20 {
        let grown = len + (64 << 10);
        // SAFETY: `p` is live with `layout(len)`.
        p = unsafe { a.realloc(p, layout(len), grown) };
        assert!(!p.is_null());
        mark(p, len, grown);
        len = grown;
    }
    for at in (0..len).step_by(PAGE) {
        let byte = p.wrapping_add(at);
        // SAFETY: inside the block.
        let got = unsafe { byte.read() };
        assert_eq!(got, mark_of(at), "page at {at:#x}");
    }
    let stats = memio_malloc::stats();
    // Every step grew the mapping where it stood or moved its pages: no
    // old copy waits in the cache, and only the buffer is mapped, with at
    // most half again of headroom.
    assert_eq!(stats.large_cached, 0, "{stats:?}");
    assert!(stats.large_bytes <= len + len / 2 + 2 * PAGE, "{stats:?}");
    // SAFETY: live with this layout.
    unsafe { a.dealloc(p, layout(len)) };
}

#[test]
fn a_block_grown_in_small_steps_gets_headroom_so_later_steps_stay_in_place() {
    let _turn = turn();
    let a = MemioMalloc;
    let len = 2 << 20;
    // SAFETY: non-zero size.
    let p = unsafe { a.alloc(layout(len)) };
    assert!(!p.is_null());
    // SAFETY: `p` is live with `layout(len)`.
    let q = unsafe { a.realloc(p, layout(len), len + (64 << 10)) };
    assert!(!q.is_null());
    // SAFETY: `q` is live.
    let room = unsafe { memio_malloc::usable_size(q) };
    assert!(room >= len + len / 2, "usable {room} after one step");
    // The next steps fit the headroom: the block stays where it is and
    // its mapping does not change.
    let mut at = len + (64 << 10);
    while at + (64 << 10) <= room {
        // SAFETY: `q` is live with `layout(at)`.
        let r = unsafe { a.realloc(q, layout(at), at + (64 << 10)) };
        assert_eq!(r, q, "moved at {at}");
        // SAFETY: `r` is live.
        assert_eq!(unsafe { memio_malloc::usable_size(r) }, room);
        at += 64 << 10;
    }
    // SAFETY: live with this layout.
    unsafe { a.dealloc(q, layout(at)) };
}

#[test]
fn threads_moving_large_blocks_by_realloc_keep_each_others_blocks() {
    let _turn = turn();
    // Each thread allocates, grows, shrinks and frees blocks of 1 B to 40
    // MiB at random: large ones move to another range when they cannot
    // grow in place, while the other threads map and unmap theirs.
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let heap = MemioMalloc;
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t + 1);
                let mut next = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                let mut slots: [(usize, usize); 8] = [(0, 0); 8];
                for op in 0..30_000usize {
                    let r = next();
                    let slot = &mut slots[(r % 8) as usize];
                    let size =
                        ((1usize << ((r >> 8) % 26)) + (r >> 40) as usize % 4096).min(40 << 20);
                    #[allow(clippy::cast_possible_truncation, reason = "a mark")]
                    let mark = op as u8 | 1;
                    let (p, old) = *slot;
                    if p == 0 {
                        // SAFETY: non-zero size.
                        let q = unsafe { heap.alloc(layout(size)) };
                        assert!(!q.is_null());
                        // SAFETY: `size` bytes are ours.
                        unsafe { q.write(mark) };
                        *slot = (q as usize, size);
                        continue;
                    }
                    // The heap still knows the block for its own (what
                    // `free` under `LD_PRELOAD` checks before freeing).
                    assert!(
                        memio_malloc::owns(p as *const u8),
                        "a live block of {old} bytes is no longer the heap's"
                    );
                    // SAFETY: live with this size; its first byte is ours.
                    let first = unsafe { (p as *const u8).read() };
                    if r >> 63 == 0 {
                        // SAFETY: live with this layout.
                        let q = unsafe { heap.realloc(p as *mut u8, layout(old), size) };
                        assert!(!q.is_null());
                        // SAFETY: the first byte moved with the block.
                        let moved = unsafe { q.read() };
                        assert_eq!(moved, first, "realloc lost a block's contents");
                        *slot = (q as usize, size);
                    } else {
                        // SAFETY: live with this layout, freed once.
                        unsafe { heap.dealloc(p as *mut u8, layout(old)) };
                        *slot = (0, 0);
                    }
                }
                for (p, size) in slots {
                    if p != 0 {
                        // SAFETY: live with this layout.
                        unsafe { heap.dealloc(p as *mut u8, layout(size)) };
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}
