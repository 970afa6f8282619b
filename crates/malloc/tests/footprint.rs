//! What stays resident and what goes back to the kernel: fresh memory one
//! heap takes is traded for the free pages of exited threads' heaps, idle
//! in the pool, but for the heap pooled last, which the next new thread
//! takes; what a program freed goes back at its first page-level event
//! past the purge delay. Each test runs in a child process of its own
//! with the purge delay it needs (a minute when no purge by the clock may
//! blur what it checks), and no other test's heap takes part.
#![allow(unsafe_code, reason = "driving GlobalAlloc by hand, mincore")]

use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;

use memio_malloc::MemioMalloc;

const ALONE: &str = "MEMIO_MALLOC_TEST_ALONE";

/// Runs test `name` alone in a child process with a purge delay of
/// `delay_ms`; returns whether this process is that child (and so runs
/// the body).
fn alone(name: &str, delay_ms: u64) -> bool {
    if std::env::var_os(ALONE).is_some() {
        return true;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(ALONE, "1")
        .env("MEMIO_MALLOC_PURGE_DELAY", delay_ms.to_string())
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

/// The share of the OS pages under `blocks` that are resident (a page
/// whose segment went back to the kernel whole is not).
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
            // SAFETY: one page's residency into one byte; the kernel
            // checks the range, and fails with ENOMEM if it is unmapped.
            let rc = unsafe { libc::mincore(at as *mut libc::c_void, page, &raw mut v) };
            if rc != 0 {
                let err = std::io::Error::last_os_error();
                assert_eq!(err.raw_os_error(), Some(libc::ENOMEM), "mincore: {err}");
                return false;
            }
            v & 1 == 1
        })
        .count();
    resident as f64 / pages.len() as f64
}

#[test]
fn fresh_memory_is_traded_for_an_exited_threads_idle_pages() {
    if !alone(
        "fresh_memory_is_traded_for_an_exited_threads_idle_pages",
        60_000,
    ) {
        return;
    }
    // This thread's heap exists before the others'.
    free(&fill(1, BLOCK), BLOCK);
    // Two threads, alive at once so that each has a heap of its own, make
    // 2 MiB of 1000-byte blocks each and free them; then one exits and the
    // other after it: their heaps go to the pool with those pages free,
    // the second's last (the one the next new thread would take).
    let (made_tx, made_rx) = std::sync::mpsc::channel::<()>();
    let worker = |made: std::sync::mpsc::Sender<()>, go: std::sync::mpsc::Receiver<()>| {
        std::thread::spawn(move || {
            let blocks = fill(2048, BLOCK);
            free(&blocks, BLOCK);
            made.send(()).unwrap();
            go.recv().unwrap();
            blocks
        })
    };
    let (go_older, older_go) = std::sync::mpsc::channel();
    let (go_last, last_go) = std::sync::mpsc::channel();
    let older = worker(made_tx.clone(), older_go);
    let last = worker(made_tx, last_go);
    made_rx.recv().unwrap();
    made_rx.recv().unwrap();
    go_older.send(()).unwrap();
    let older = older.join().unwrap();
    go_last.send(()).unwrap();
    let last = last.join().unwrap();
    for (name, blocks) in [("older", &older), ("last", &last)] {
        let share = resident_share(blocks);
        assert!(
            share > 0.9,
            "the {name} heap's freed pages were resident: {share}"
        );
    }
    // This heap now takes 2 MiB afresh.
    let mine = fill(2048, BLOCK);
    let older_after = resident_share(&older);
    assert!(
        older_after < 0.1,
        "the older exited heap's free pages stayed resident ({older_after} of them) while another heap took fresh ones"
    );
    let last_after = resident_share(&last);
    assert!(
        last_after > 0.9,
        "the heap the next thread takes lost its warm pages ({last_after} of them resident)"
    );
    free(&mine, BLOCK);
}

const DELAY_MS: u64 = 200;

/// Frees the block of a page made beforehand (a block above 64 KiB has a
/// page of its own, and a second block made another, its class's current
/// one): the page retires, a page-level event, where the heap looks at
/// the clock.
struct Event(Vec<usize>, Layout);

impl Event {
    fn new(size: usize) -> Self {
        let layout = Layout::from_size_align(size, 8).unwrap();
        let mut blocks = fill(2, layout);
        blocks.truncate(1);
        Self(blocks, layout)
    }

    fn fire(self) {
        free(&self.0, self.1);
    }
}

#[test]
fn memory_freed_goes_back_at_the_first_event_after_the_delay() {
    if !alone(
        "memory_freed_goes_back_at_the_first_event_after_the_delay",
        DELAY_MS,
    ) {
        return;
    }
    let event = Event::new(100 << 10);
    // 8 MiB of small blocks, every page of them retired when freed, and a
    // large block's mapping, cached when freed.
    let small = fill(8 << 10, BLOCK);
    let big = Layout::from_size_align(4 << 20, 8).unwrap();
    let large = fill(1, big);
    free(&small, BLOCK);
    free(&large, big);
    let share = resident_share(&small);
    assert!(share > 0.9, "pages went back at once: {share} resident");
    assert!(memio_malloc::stats().large_cached >= big.size());
    // The program sleeps past the delay, then does one thing that reaches
    // the slow path, and goes idle: what it freed goes back then, not at
    // some later event that may never come.
    std::thread::sleep(std::time::Duration::from_millis(DELAY_MS * 3 / 2));
    event.fire();
    let share = resident_share(&small);
    assert!(share < 0.1, "freed pages stayed resident: {share} of them");
    let cached = memio_malloc::stats().large_cached;
    assert_eq!(cached, 0, "a freed mapping stayed cached");
}

#[test]
fn a_deadline_spares_pages_freed_within_the_delay() {
    const LONG_MS: u64 = 400;
    if !alone("a_deadline_spares_pages_freed_within_the_delay", LONG_MS) {
        return;
    }
    let sleep = |ms| std::thread::sleep(std::time::Duration::from_millis(ms));
    let event = Event::new(100 << 10);
    let early = fill(4 << 10, BLOCK);
    let late = fill(4 << 10, BLOCK);
    free(&early, BLOCK);
    sleep(LONG_MS / 5 * 4);
    free(&late, BLOCK);
    // Past the deadline the first free set, but within the delay of the
    // second: one event purges what was freed first, not what a program
    // freeing and reusing pages now freed since.
    sleep(LONG_MS / 5 * 2);
    event.fire();
    let share = resident_share(&early);
    assert!(
        share < 0.1,
        "pages freed a delay ago stayed: {share} resident"
    );
    let share = resident_share(&late);
    assert!(
        share > 0.9,
        "pages freed within the delay went: {share} resident"
    );
}

#[test]
fn old_free_pages_go_while_their_segment_keeps_freeing() {
    if !alone(
        "old_free_pages_go_while_their_segment_keeps_freeing",
        DELAY_MS,
    ) {
        return;
    }
    // 32 slices of small blocks, then six one-block pages in the same
    // segment (and a seventh, its class's current page, which stays).
    let early = fill(2 << 10, BLOCK);
    let trickle = Layout::from_size_align(100 << 10, 8).unwrap();
    let mut drops = fill(7, trickle);
    drops.truncate(6);
    assert!(
        drops.iter().all(|&p| p >> 22 == early[0] >> 22),
        "the pages did not share a segment"
    );
    free(&early, BLOCK);
    // The segment frees a page every 0.4 delay, for 2.4 delays: what it
    // freed first goes all the same.
    for p in drops {
        std::thread::sleep(std::time::Duration::from_millis(DELAY_MS * 2 / 5));
        free(&[p], trickle);
    }
    let share = resident_share(&early);
    assert!(
        share < 0.1,
        "pages free for two delays stayed: {share} resident"
    );
}

/// Minor page faults of this process so far.
fn minor_faults() -> i64 {
    // SAFETY: an all-zero `rusage` is valid, and the kernel fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is writable.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut usage) };
    assert_eq!(rc, 0);
    usage.ru_minflt
}

#[test]
fn a_table_rebuilt_by_doubling_reuses_its_pages() {
    if !alone("a_table_rebuilt_by_doubling_reuses_its_pages", 60_000) {
        return;
    }
    // The sizes a hash table of u64 pairs takes as it doubles (buckets of
    // 16 bytes and a control byte each, and a group of 16 more): each
    // new table is written whole, then the old one freed.
    let sizes: Vec<usize> = (14..=19).map(|k| (17usize << k) + 16).collect();
    let last_pages = sizes[sizes.len() - 1] / 4096;
    let mut per_build = Vec::new();
    for _ in 0..6 {
        let before = minor_faults();
        let mut old: Option<(*mut u8, Layout)> = None;
        for &n in &sizes {
            let layout = Layout::from_size_align(n, 16).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { MemioMalloc.alloc(layout) };
            assert!(!p.is_null());
            // SAFETY: a fresh block of `n` bytes.
            unsafe { p.write_bytes(0xa5, n) };
            if let Some((q, l)) = old.replace((p, layout)) {
                // SAFETY: the previous table, live with `l`.
                unsafe { MemioMalloc.dealloc(q, l) };
            }
        }
        let (q, l) = old.unwrap();
        // SAFETY: the last table, live with `l`.
        unsafe { MemioMalloc.dealloc(q, l) };
        per_build.push(minor_faults() - before);
    }
    // The first builds fault their tables in; from the third on, every
    // size waits in the cache (the cache had lost the smallest ones, and
    // the last table grew the one before it: half its pages afresh).
    for &f in &per_build[2..] {
        assert!(
            f < i64::try_from(last_pages / 8).unwrap(),
            "faults per build {per_build:?}, last table {last_pages} pages"
        );
    }
}

#[test]
fn pages_another_thread_emptied_go_back_while_their_owner_allocates_other_sizes() {
    if !alone(
        "pages_another_thread_emptied_go_back_while_their_owner_allocates_other_sizes",
        DELAY_MS,
    ) {
        return;
    }
    // A table built here and freed whole by another thread: its blocks
    // wait on their pages for this heap to take them back.
    let table = fill(2 << 10, BLOCK);
    let handed = table.clone();
    std::thread::spawn(move || free(&handed, BLOCK))
        .join()
        .unwrap();
    // This thread goes on allocating, but never the table's size.
    let small = Layout::from_size_align(24, 8).unwrap();
    for _ in 0..12 {
        for _ in 0..1000 {
            // SAFETY: non-zero size.
            let p = unsafe { MemioMalloc.alloc(small) };
            assert!(!p.is_null());
            // SAFETY: live with `small`, freed once.
            unsafe { MemioMalloc.dealloc(p, small) };
        }
        std::thread::sleep(std::time::Duration::from_millis(DELAY_MS / 4));
    }
    let share = resident_share(&table);
    assert!(
        share < 0.1,
        "pages emptied by another thread stayed: {share} resident, {} bytes in use",
        memio_malloc::stats().in_use
    );
}
