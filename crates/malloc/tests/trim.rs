//! `trim()` hands freed memory back to the kernel at once (its own test
//! binary, so no other test's allocations blur the resident size; its
//! tests take turns).
#![allow(unsafe_code, reason = "driving GlobalAlloc by hand")]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::{Mutex, mpsc};

use memio_malloc::MemioMalloc;

/// Held by each test: resident sizes are the whole process's.
static ALONE: Mutex<()> = Mutex::new(());

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf only reads a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * usize::try_from(page).unwrap()
}

#[test]
fn trim_lowers_rss_after_a_large_free() {
    let _alone = ALONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
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

#[test]
fn trim_gives_back_an_exited_threads_pages_that_a_live_thread_freed() {
    const SIZES: usize = 32;
    const PAGES: usize = 16;
    let _alone = ALONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let a = MemioMalloc;
    let layout = |i: usize| Layout::from_size_align(16 + i * 32, 8).unwrap();
    // A thread that allocates every size, then frees what it is sent and
    // stays until told to go: it has freed blocks of a heap waiting in the
    // pool, and will not exit or trim before `trim` below runs.
    let (to_keeper, blocks) = mpsc::channel::<Vec<Vec<usize>>>();
    let (freed, wait_freed) = mpsc::channel::<()>();
    let (go, wait_go) = mpsc::channel::<()>();
    let (has_heap, wait_heap) = mpsc::channel::<()>();
    let keeper = std::thread::spawn(move || {
        // SAFETY: non-zero sizes.
        let own: Vec<usize> = (0..SIZES)
            .map(|i| unsafe { a.alloc(layout(i)) } as usize)
            .collect();
        has_heap.send(()).unwrap();
        for (i, ps) in blocks.recv().unwrap().into_iter().enumerate() {
            for p in ps {
                // SAFETY: live blocks of `layout(i)`, handed over whole.
                unsafe { a.dealloc(p as *mut u8, layout(i)) };
            }
        }
        freed.send(()).unwrap();
        wait_go.recv().unwrap();
        for (i, p) in own.into_iter().enumerate() {
            // SAFETY: live, allocated above with `layout(i)`.
            unsafe { a.dealloc(p as *mut u8, layout(i)) };
        }
    });
    // The keeper holds a heap of its own before the next thread starts:
    // a keeper that allocated only after that thread exited would take
    // its heap from the pool, and free its blocks as their owner.
    wait_heap.recv().unwrap();
    // A thread that fills `PAGES` pages of each size and exits: its heap
    // goes to the pool with them.
    let made = std::thread::spawn(move || {
        (0..SIZES)
            .map(|i| {
                let l = layout(i);
                let per_page = (64 << 10) / l.size();
                let ps: Vec<usize> = (0..PAGES * per_page)
                    .map(|_| {
                        // SAFETY: non-zero size.
                        let p = unsafe { a.alloc(l) };
                        // SAFETY: a fresh block of `l.size()` bytes.
                        unsafe { p.write_bytes(1, l.size()) };
                        p as usize
                    })
                    .collect();
                // Freed one block of each page first, then the next of
                // each: the first frees of a size fall in different pages.
                let mut order = Vec::with_capacity(ps.len());
                for j in 0..per_page {
                    order.extend(ps.iter().skip(j).step_by(per_page));
                }
                order
            })
            .collect::<Vec<Vec<usize>>>()
    })
    .join()
    .unwrap();
    let full = resident_bytes();
    to_keeper.send(made).unwrap();
    wait_freed.recv().unwrap();
    memio_malloc::trim();
    let after = resident_bytes();
    go.send(()).unwrap();
    keeper.join().unwrap();
    // About 32 MiB were filled; nearly all of it goes.
    assert!(
        after + (24 << 20) <= full,
        "resident {full} -> {after} after trim"
    );
}
