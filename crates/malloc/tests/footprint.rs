//! Fresh memory one heap takes is traded for the free pages of exited
//! threads' heaps, idle in the pool. The test runs in a child process of
//! its own with a purge delay of a minute, so that no purge by the clock
//! blurs what the trade did, and no other test's heap takes part.
#![allow(unsafe_code, reason = "driving GlobalAlloc by hand, mincore")]

use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;

use memio_malloc::MemioMalloc;

const ALONE: &str = "MEMIO_MALLOC_TEST_ALONE";

/// Runs test `name` alone in a child process with a long purge delay;
/// returns whether this process is that child (and so runs the body).
fn alone(name: &str) -> bool {
    if std::env::var_os(ALONE).is_some() {
        return true;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(ALONE, "1")
        .env("MEMIO_MALLOC_PURGE_DELAY", "60000")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran no test: {stdout}"
    );
    false
}

const BLOCK: Layout = match Layout::from_size_align(1000, 8) {
    Ok(l) => l,
    Err(_) => panic!(),
};

/// Allocates `n` blocks of `layout`, each written whole.
fn fill(n: usize, layout: Layout) -> Vec<usize> {
    (0..n)
        .map(|i| {
            // SAFETY: non-zero size.
            let p = unsafe { MemioMalloc.alloc(layout) };
            assert!(!p.is_null());
            // SAFETY: a fresh block of `layout.size()` bytes.
            unsafe { p.write_bytes(u8::try_from(i % 251).unwrap() | 1, layout.size()) };
            p as usize
        })
        .collect()
}

fn free(blocks: &[usize], layout: Layout) {
    for &p in blocks {
        // SAFETY: live blocks of `layout`, freed once.
        unsafe { MemioMalloc.dealloc(p as *mut u8, layout) };
    }
}

/// The share of the OS pages under `blocks` that are resident.
fn resident_share(blocks: &[usize]) -> f64 {
    // SAFETY: sysconf only reads a constant.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
    let mut pages: Vec<usize> = blocks.iter().map(|&p| p & !(page - 1)).collect();
    pages.sort_unstable();
    pages.dedup();
    let resident = pages
        .iter()
        .filter(|&&at| {
            let mut v = 0u8;
            // SAFETY: one page's residency into one byte; the page stays
            // mapped (segments are kept while the heap lives).
            let rc = unsafe { libc::mincore(at as *mut libc::c_void, page, &raw mut v) };
            assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
            v & 1 == 1
        })
        .count();
    resident as f64 / pages.len() as f64
}

#[test]
fn fresh_memory_is_traded_for_an_exited_threads_idle_pages() {
    if !alone("fresh_memory_is_traded_for_an_exited_threads_idle_pages") {
        return;
    }
    // This thread's heap exists before the other thread's.
    free(&fill(1, BLOCK), BLOCK);
    // 2 MiB of 1000-byte blocks, freed by the thread that made them, which
    // then exits: its heap goes to the pool with those pages free.
    let gone = std::thread::spawn(|| {
        let blocks = fill(2048, BLOCK);
        free(&blocks, BLOCK);
        blocks
    })
    .join()
    .unwrap();
    let before = resident_share(&gone);
    assert!(before > 0.9, "the freed pages were resident: {before}");
    // This heap now takes 4 MiB afresh.
    let mine = fill(4096, BLOCK);
    let after = resident_share(&gone);
    assert!(
        after < 0.1,
        "the exited thread's free pages stayed resident ({after} of them) while another heap took fresh ones"
    );
    free(&mine, BLOCK);
}
