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

/// How many OS pages of `[from, to)` are resident (both page-aligned).
fn resident_pages(from: usize, to: usize) -> usize {
    let mut v = vec![0u8; (to - from) / PAGE];
    // SAFETY: the range is mapped (part of a live block's mapping); one
    // byte per page into `v`, which has one per page.
    let rc = unsafe { libc::mincore(from as *mut libc::c_void, to - from, v.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    v.iter().filter(|&&b| b & 1 == 1).count()
}

/// Makes the mmap threshold rise past 256 KiB (a large block of 400 KiB
/// freed, as glibc's rises); false, with the reason printed, when it was
/// set and so stays.
fn raise_threshold() -> bool {
    let a = MemioMalloc;
    // SAFETY: non-zero size.
    let p = unsafe { a.alloc(layout(400 << 10)) };
    assert!(!p.is_null());
    // SAFETY: live with this layout.
    unsafe { a.dealloc(p, layout(400 << 10)) };
    memio_malloc::trim();
    let threshold = memio_malloc::options().mmap_threshold;
    if threshold <= 256 << 10 {
        eprintln!("skipped: the mmap threshold is set ({threshold} bytes), so it does not rise");
        return false;
    }
    true
}

#[test]
fn a_block_grown_past_64_kib_gets_a_mapping_even_when_the_threshold_rose() {
    let _turn = turn();
    if !raise_threshold() {
        return;
    }
    let a = MemioMalloc;
    let small = 40 << 10;
    // SAFETY: non-zero size.
    let p = unsafe { a.alloc(layout(small)) };
    assert!(!p.is_null());
    // SAFETY: a fresh block of `small` bytes.
    unsafe { p.write_bytes(0x5a, small) };
    let before = memio_malloc::stats().large_blocks;
    // Up to 64 KiB it stays in the pages, where blocks of its size share
    // a page.
    // SAFETY: `p` is live with `layout(small)`.
    let p = unsafe { a.realloc(p, layout(small), 64 << 10) };
    assert!(!p.is_null());
    assert_eq!(memio_malloc::stats().large_blocks, before);
    // SAFETY: `p` is live with `layout(64 KiB)`.
    let q = unsafe { a.realloc(p, layout(64 << 10), 80 << 10) };
    assert!(!q.is_null());
    assert_eq!(
        memio_malloc::stats().large_blocks,
        before + 1,
        "the grown block is a large one"
    );
    // SAFETY: `q` holds 80 KiB, the first `small` of them copied.
    let kept = unsafe { std::slice::from_raw_parts(q, small) };
    assert!(kept.iter().all(|&b| b == 0x5a));
    // From there it grows by `mremap`, its contents kept.
    // SAFETY: `q` is live with `layout(80 KiB)`.
    let r = unsafe { a.realloc(q, layout(80 << 10), 400 << 10) };
    assert!(!r.is_null());
    // SAFETY: `r` holds 400 KiB, the first `small` of them kept.
    let kept = unsafe { std::slice::from_raw_parts(r, small) };
    assert!(kept.iter().all(|&b| b == 0x5a));
    // SAFETY: live with this layout.
    unsafe { a.dealloc(r, layout(400 << 10)) };
}

#[test]
fn a_cached_mapping_given_to_a_growing_block_is_resident_only_where_the_block_is() {
    let _turn = turn();
    if !raise_threshold() {
        return;
    }
    let a = MemioMalloc;
    // A 1 MiB buffer, written whole, freed: its mapping waits in the cache
    // with every page resident.
    let big = 1 << 20;
    // SAFETY: non-zero size.
    let buffer = unsafe { a.alloc(layout(big)) };
    assert!(!buffer.is_null());
    // SAFETY: a fresh block of `big` bytes.
    unsafe { buffer.write_bytes(1, big) };
    // SAFETY: live with this layout.
    unsafe { a.dealloc(buffer, layout(big)) };
    assert!(memio_malloc::stats().large_cached >= big);
    // A block of the pages grown to 200 KiB takes that mapping.
    let small = 100 << 10;
    let grown = 200 << 10;
    // SAFETY: non-zero size.
    let p = unsafe { a.alloc(layout(small)) };
    assert!(!p.is_null());
    // SAFETY: `p` is live with `layout(small)`.
    let q = unsafe { a.realloc(p, layout(small), grown) };
    assert!(!q.is_null());
    assert_eq!(
        memio_malloc::stats().large_cached,
        0,
        "the cached mapping served it"
    );
    // SAFETY: `q` is live.
    let room = unsafe { memio_malloc::usable_size(q) };
    assert!(
        room >= big - PAGE,
        "the whole mapping, as room to grow: {room}"
    );
    // What lies past the block was purged: the block grows into it
    // without a new mapping, but it is not resident until written.
    let from = (q as usize + grown).next_multiple_of(PAGE);
    let to = (q as usize + room) & !(PAGE - 1);
    assert_eq!(
        resident_pages(from, to),
        0,
        "of {} pages",
        (to - from) / PAGE
    );
    // SAFETY: `q` is live with `layout(grown)`; its room is its own.
    let r = unsafe { a.realloc(q, layout(grown), room) };
    assert_eq!(r, q, "grown within its room, where it stands");
    // SAFETY: live with this layout.
    unsafe { a.dealloc(r, layout(room)) };
}

#[test]
fn a_hundred_buffers_freed_together_all_wait_in_the_cache() {
    let _turn = turn();
    let a = MemioMalloc;
    let size = 600 << 10;
    let blocks: Vec<usize> = (0..100)
        .map(|_| {
            // SAFETY: non-zero size.
            let p = unsafe { a.alloc(layout(size)) };
            assert!(!p.is_null());
            p as usize
        })
        .collect();
    for &p in &blocks {
        // SAFETY: live blocks of this layout, freed once.
        unsafe { a.dealloc(p as *mut u8, layout(size)) };
    }
    let stats = memio_malloc::stats();
    assert!(stats.large_cached >= 100 * size, "{stats:?}");
    // The next round takes them back: no new mapping.
    let mapped = stats.mapped;
    let again: Vec<usize> = (0..100)
        // SAFETY: non-zero size.
        .map(|_| unsafe { a.alloc(layout(size)) } as usize)
        .collect();
    assert_eq!(memio_malloc::stats().large_cached, 0);
    assert_eq!(memio_malloc::stats().mapped, mapped, "no mapping added");
    for &p in &again {
        // SAFETY: as above.
        unsafe { a.dealloc(p as *mut u8, layout(size)) };
    }
}
