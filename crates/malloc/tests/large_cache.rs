//! How much the large-block cache keeps (its own test binary, so no other
//! test's large blocks move the figures).
#![allow(unsafe_code, reason = "driving GlobalAlloc by hand")]

use std::alloc::{GlobalAlloc, Layout};

use memio_malloc::MemioMalloc;

const PAGE: usize = 4096;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

#[test]
fn the_large_cache_keeps_no_more_than_live_blocks_needed_at_their_peak() {
    let heap = MemioMalloc;
    // Live large blocks peak at 8 MiB; blocks freed after that may wait in
    // the cache only as far as the room live blocks left.
    let sizes = [2 << 20, 2 << 20, 2 << 20, 2 << 20];
    let blocks: Vec<*mut u8> = sizes
        .iter()
        // SAFETY: non-zero sizes.
        .map(|&n| unsafe { heap.alloc(layout(n)) })
        .collect();
    for (&p, &n) in blocks.iter().zip(&sizes) {
        assert!(!p.is_null());
        // SAFETY: live with this layout.
        unsafe { heap.dealloc(p, layout(n)) };
    }
    let peak: usize = sizes.iter().map(|n| n + PAGE).sum();
    let stats = memio_malloc::stats();
    assert!(stats.large_cached <= peak + peak / 4, "{stats:?}");
    // Far more freed in a row than ever lived at once: the cache does not
    // grow past the same bound (the default budget alone is 64 MiB).
    for _ in 0..40 {
        // SAFETY: non-zero size.
        let first = unsafe { heap.alloc(layout(1 << 20)) };
        assert!(!first.is_null());
        // SAFETY: non-zero size.
        let second = unsafe { heap.alloc(layout(1 << 20)) };
        assert!(!second.is_null());
        // SAFETY: `second` is live with this layout.
        let grown = unsafe { heap.realloc(second, layout(1 << 20), 3 << 20) };
        assert!(!grown.is_null());
        // SAFETY: live with this layout.
        unsafe { heap.dealloc(first, layout(1 << 20)) };
        // SAFETY: live with this layout.
        unsafe { heap.dealloc(grown, layout(3 << 20)) };
        let s = memio_malloc::stats();
        assert!(s.large_cached + s.large_bytes <= peak + peak / 4, "{s:?}");
    }
}
