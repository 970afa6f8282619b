//! `trim()` hands freed memory back to the kernel at once (its own test
//! binary, so no other test's allocations blur the resident size).
#![allow(unsafe_code, reason = "driving GlobalAlloc by hand")]

use std::alloc::{GlobalAlloc, Layout};

use memio_malloc::MemioMalloc;

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf only reads a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * usize::try_from(page).unwrap()
}

#[test]
fn trim_lowers_rss_after_a_large_free() {
    let a = MemioMalloc;
    let small = Layout::from_size_align(1000, 8).unwrap();
    let large = Layout::from_size_align(48 << 20, 8).unwrap();
    // 64 MiB in small blocks and one 48 MiB block, all touched.
    let blocks: Vec<*mut u8> = (0..65_536)
        .map(|_| {
            // SAFETY: non-zero size.
            let p = unsafe { a.alloc(small) };
            // SAFETY: fresh block.
            unsafe { p.write_bytes(1, small.size()) };
            p
        })
        .collect();
    // SAFETY: non-zero size.
    let big = unsafe { a.alloc(large) };
    // SAFETY: fresh block.
    unsafe { big.write_bytes(2, large.size()) };
    let full = resident_bytes();
    for p in blocks {
        // SAFETY: live with this layout.
        unsafe { a.dealloc(p, small) };
    }
    // SAFETY: live with this layout.
    unsafe { a.dealloc(big, large) };
    let stats = memio_malloc::stats();
    assert!(
        stats.in_use < (1 << 20),
        "in use after freeing all: {}",
        stats.in_use
    );
    let released = memio_malloc::trim();
    let after = resident_bytes();
    // The large block waited in the reuse cache; empty segments went at
    // once, and the last one's empty pages wait for the purge delay.
    assert!(released >= 48 << 20, "trim gave back only {released} bytes");
    assert!(
        after + (96 << 20) <= full,
        "resident {full} -> {after} after trim"
    );
    assert_eq!(memio_malloc::stats().large_cached, 0);
}
