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
fn a_cached_mapping_given_to_a_growing_block_is_cut_to_the_block() {
    let _turn = turn();
    if !raise_threshold() {
        return;
    }
    let a = MemioMalloc;
    // A 480 KiB buffer (past the risen threshold), written whole, freed:
    // its mapping waits in the cache with every page resident.
    let big = 480 << 10;
    // SAFETY: non-zero size.
    let buffer = unsafe { a.alloc(layout(big)) };
    assert!(!buffer.is_null());
    // SAFETY: a fresh block of `big` bytes.
    unsafe { buffer.write_bytes(1, big) };
    // SAFETY: live with this layout.
    unsafe { a.dealloc(buffer, layout(big)) };
    assert!(memio_malloc::stats().large_cached >= big);
    let mapped = memio_malloc::stats().mapped;
    // A block of the pages grown to 250 KiB takes that mapping (at most
    // four times its size), cut to what it needs: the rest would stay
    // resident, and its usable size would say the program may write it.
    let small = 200 << 10;
    let grown = 250 << 10;
    // SAFETY: non-zero size.
    let p = unsafe { a.alloc(layout(small)) };
    assert!(!p.is_null());
    // SAFETY: a fresh block of `small` bytes.
    unsafe { p.write_bytes(2, small) };
    // SAFETY: `p` is live with `layout(small)`.
    let q = unsafe { a.realloc(p, layout(small), grown) };
    assert!(!q.is_null());
    let stats = memio_malloc::stats();
    assert_eq!(stats.large_cached, 0, "the cached mapping served it");
    assert!(
        stats.mapped < mapped,
        "cut: {} then {}",
        mapped,
        stats.mapped
    );
    // SAFETY: `q` is live.
    let room = unsafe { memio_malloc::usable_size(q) };
    assert!((grown..grown + PAGE).contains(&room), "usable {room}");
    // It grows on by `mremap`, its contents kept.
    // SAFETY: `q` is live with `layout(grown)`.
    let r = unsafe { a.realloc(q, layout(grown), big) };
    assert!(!r.is_null());
    // SAFETY: `r` holds `big` bytes, the first `small` kept.
    let kept = unsafe { std::slice::from_raw_parts(r, small) };
    assert!(kept.iter().all(|&b| b == 2));
    // SAFETY: live with this layout.
    unsafe { a.dealloc(r, layout(big)) };
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

#[test]
fn a_growing_block_takes_no_cached_mapping_far_larger_than_itself() {
    let _turn = turn();
    if !raise_threshold() {
        return;
    }
    let a = MemioMalloc;
    // A 2 MiB buffer, written, freed: cached with its pages resident.
    let big = 2 << 20;
    // SAFETY: non-zero size.
    let buffer = unsafe { a.alloc(layout(big)) };
    assert!(!buffer.is_null());
    // SAFETY: a fresh block of `big` bytes.
    unsafe { buffer.write_bytes(1, big) };
    // SAFETY: live with this layout.
    unsafe { a.dealloc(buffer, layout(big)) };
    let cached = memio_malloc::stats().large_cached;
    assert!(cached >= big);
    // A block grown to 70 KB moves out of the pages, but not into that
    // mapping: it would purge most of it, and the next 2 MiB buffer would
    // fault it all in again.
    // SAFETY: non-zero size.
    let p = unsafe { a.alloc(layout(60_000)) };
    assert!(!p.is_null());
    // SAFETY: `p` is live with `layout(60000)`.
    let q = unsafe { a.realloc(p, layout(60_000), 70_000) };
    assert!(!q.is_null());
    assert_eq!(
        memio_malloc::stats().large_cached,
        cached,
        "the 2 MiB mapping still waits"
    );
    // SAFETY: live with this layout.
    unsafe { a.dealloc(q, layout(70_000)) };
}

#[test]
fn a_buffer_resized_back_and_forth_across_64_kib_stays_where_it_is() {
    let _turn = turn();
    if !raise_threshold() {
        return;
    }
    let a = MemioMalloc;
    // SAFETY: non-zero size.
    let p = unsafe { a.alloc(layout(60_000)) };
    assert!(!p.is_null());
    // SAFETY: `p` is live with `layout(60000)`.
    let mut q = unsafe { a.realloc(p, layout(60_000), 70_000) };
    assert!(!q.is_null());
    let first = q;
    for _ in 0..100 {
        // SAFETY: `q` is live with `layout(70000)`, then `layout(60000)`.
        q = unsafe { a.realloc(q, layout(70_000), 60_000) };
        assert_eq!(q, first, "moved when shrunk");
        // SAFETY: as above.
        q = unsafe { a.realloc(q, layout(60_000), 70_000) };
        assert_eq!(q, first, "moved when grown");
    }
    // SAFETY: live with this layout.
    unsafe { a.dealloc(q, layout(70_000)) };
}

#[test]
fn blocks_grown_past_64_kib_take_mappings_only_up_to_a_bound() {
    let _turn = turn();
    if !raise_threshold() {
        return;
    }
    let a = MemioMalloc;
    let blocks: Vec<usize> = (0..400u32)
        .map(|i| {
            // SAFETY: non-zero size.
            let p = unsafe { a.alloc(layout(60_000)) };
            assert!(!p.is_null());
            // SAFETY: a fresh block of 60000 bytes.
            unsafe { p.write_bytes(mark_of(i as usize * PAGE), 60_000) };
            // SAFETY: `p` is live with `layout(60000)`.
            let q = unsafe { a.realloc(p, layout(60_000), 70_000) };
            assert!(!q.is_null());
            q as usize
        })
        .collect();
    // The rest stayed in the pages: each mapping costs a header page and
    // page tables of its own.
    let live = memio_malloc::stats().large_blocks;
    assert!((200..=256).contains(&live), "{live} large blocks");
    for (i, &q) in blocks.iter().enumerate() {
        // SAFETY: each block holds 70000 bytes, the first 60000 copied.
        let kept = unsafe { std::slice::from_raw_parts(q as *const u8, 60_000) };
        assert!(kept.iter().all(|&b| b == mark_of(i * PAGE)), "block {i}");
        // SAFETY: live with this layout.
        unsafe { a.dealloc(q as *mut u8, layout(70_000)) };
    }
}
