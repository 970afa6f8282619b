//! Many threads at once: cross-thread frees, short-lived threads, fork
//! while others allocate, and trim.
#![allow(unsafe_code, reason = "driving GlobalAlloc by hand")]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};

use memio_malloc::MemioMalloc;

const A: MemioMalloc = MemioMalloc;

/// A block of `size` bytes from `MemioMalloc`, stamped with `tag`.
struct Block {
    ptr: usize,
    layout: Layout,
    tag: u8,
}

impl Block {
    fn new(size: usize, tag: u8) -> Self {
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero size.
        let p = unsafe { A.alloc(layout) };
        assert!(!p.is_null());
        // SAFETY: fresh block of `size` bytes.
        unsafe { p.write_bytes(tag, size) };
        Self {
            ptr: p as usize,
            layout,
            tag,
        }
    }

    fn intact(&self) -> bool {
        // SAFETY: live block of `layout.size()` bytes.
        let s = unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.layout.size()) };
        s.iter().all(|&b| b == self.tag)
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        assert!(self.intact(), "block {:#x} corrupted", self.ptr);
        // SAFETY: live with this layout.
        unsafe { A.dealloc(self.ptr as *mut u8, self.layout) };
    }
}

fn size_for(i: usize) -> usize {
    [16, 24, 48, 100, 256, 1000, 4000, 20_000][i % 8] + i % 7
}

#[test]
fn blocks_freed_by_other_threads_come_back() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 20_000;
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..THREADS).map(|_| mpsc::channel::<Block>()).unzip();
    let senders = Arc::new(senders);
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(me, rx)| {
            let senders = Arc::clone(&senders);
            std::thread::spawn(move || {
                for i in 0..ROUNDS {
                    let b = Block::new(size_for(i), u8::try_from(i % 250).unwrap() + 1);
                    senders[(me + 1 + i % (THREADS - 1)) % THREADS]
                        .send(b)
                        .unwrap();
                    while let Ok(b) = rx.try_recv() {
                        drop(b);
                    }
                }
                rx
            })
        })
        .collect();
    let receivers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    drop(senders);
    for rx in receivers {
        while let Ok(b) = rx.try_recv() {
            drop(b);
        }
    }
}

#[test]
fn thousands_of_short_lived_threads_reuse_heaps() {
    let run = |n: usize| {
        for round in 0..n {
            let hs: Vec<_> = (0..4)
                .map(|t| {
                    std::thread::spawn(move || {
                        let keep: Vec<Block> =
                            (0..64).map(|i| Block::new(size_for(i + t), 7)).collect();
                        drop(keep);
                        // One block outlives the thread, freed by another.
                        Block::new(64 + round % 100, 9)
                    })
                })
                .collect();
            for h in hs {
                drop(h.join().unwrap());
            }
        }
    };
    run(100);
    let heaps = memio_malloc::stats().heaps;
    let mapped = memio_malloc::stats().mapped;
    run(500);
    let after = memio_malloc::stats();
    // Other tests' threads run at the same time, so allow some slack, but
    // 2,000 more threads must not mean 2,000 more heaps or segments.
    assert!(
        after.heaps <= heaps + 16,
        "heaps {heaps} -> {}",
        after.heaps
    );
    assert!(
        after.mapped <= mapped + (64 << 20),
        "mapped {mapped} -> {}",
        after.mapped
    );
}

#[test]
fn a_forked_child_allocates_while_the_parent_threads_churn() {
    // The heap's one-time start-up runs at its first allocation, before
    // any thread as a global allocator or under LD_PRELOAD: here too, so
    // that no fork below copies a churning thread in the middle of it
    // (the child would wait forever for the start-up lock).
    drop(Block::new(64, 1));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Arc::new(Barrier::new(3));
    let churn: Vec<_> = (0..2)
        .map(|t| {
            let stop = Arc::clone(&stop);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let b = Block::new(size_for(i + t) * 10, 3);
                    let big = Block::new(if i % 16 == 0 { 200_000 + i % 1000 } else { 64 }, 4);
                    drop((b, big));
                    i += 1;
                }
            })
        })
        .collect();
    start.wait();
    for _ in 0..8 {
        // SAFETY: the child only allocates through MemioMalloc and leaves
        // with _exit; it touches no lock the parent's threads might hold
        // other than the allocator's own, which its fork handlers manage.
        match unsafe { libc::fork() } {
            0 => {
                let ok = (0..500).all(|i| {
                    let b = Block::new(size_for(i), 5);
                    let big = (i % 50 == 0).then(|| Block::new(300_000, 6));
                    b.intact() && big.is_none_or(|b| b.intact())
                });
                // SAFETY: leaving the child at once, without unwinding.
                unsafe { libc::_exit(i32::from(!ok)) };
            }
            pid => {
                assert!(pid > 0, "fork failed");
                let mut status = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(pid, &raw mut status, 0) };
                assert!(
                    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                    "child status {status}"
                );
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in churn {
        h.join().unwrap();
    }
}

/// Allocates blocks of `layout` until `want` is among them (at most
/// `bound`); frees the others. Whether it came.
fn allocate_until(layout: Layout, want: &[usize], bound: usize) -> Vec<usize> {
    let mut got = Vec::new();
    let mut others = Vec::new();
    for _ in 0..bound {
        // SAFETY: non-zero size.
        let p = unsafe { A.alloc(layout) } as usize;
        assert_ne!(p, 0);
        if want.contains(&p) {
            got.push(p);
            if got.len() == want.len() {
                break;
            }
        } else {
            others.push(p);
        }
    }
    for p in others {
        // SAFETY: allocated above with `layout`, not freed since.
        unsafe { A.dealloc(p as *mut u8, layout) };
    }
    got
}

/// Takes back the blocks other threads freed into this thread's pages,
/// then checks that allocating `layout` hands out every block of `mine`
/// again (this thread's own, which another thread freed), and frees them.
fn assert_all_come_back(layout: Layout, mine: &[usize]) {
    memio_malloc::collect();
    let got = allocate_until(layout, mine, 4096);
    assert_eq!(
        got.len(),
        mine.len(),
        "{} of {} came back",
        got.len(),
        mine.len()
    );
    for p in got {
        // SAFETY: live blocks of `layout`.
        unsafe { A.dealloc(p as *mut u8, layout) };
    }
}

/// Frees `mine` (blocks of `layout`) on a new thread that runs `first`
/// before and `last` (with what `first` gave) once this thread has
/// checked, while it still runs, that all of them come back here.
fn freed_elsewhere_come_back<T: Send + 'static>(
    layout: Layout,
    mine: &[usize],
    first: impl FnOnce() -> T + Send + 'static,
    last: impl FnOnce(T) + Send + 'static,
) {
    let handed = mine.to_vec();
    let (freed, wait_freed) = mpsc::channel::<()>();
    let (go, wait_go) = mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        let kept = first();
        for p in handed {
            // SAFETY: live blocks of `layout`, handed over whole.
            unsafe { A.dealloc(p as *mut u8, layout) };
        }
        freed.send(()).unwrap();
        wait_go.recv().unwrap();
        last(kept);
    });
    wait_freed.recv().unwrap();
    // The other thread waits meanwhile (it ends too if this fails).
    assert_all_come_back(layout, mine);
    go.send(()).unwrap();
    other.join().unwrap();
}

#[test]
fn a_thread_that_frees_another_threads_block_reuses_it() {
    use memio_malloc::raw::{Block, Fault, validate};
    // A size no other test here allocates, so no other thread frees into
    // the pages of its class.
    let layout = Layout::from_size_align(800, 8).unwrap();
    let (tx, rx) = mpsc::channel::<usize>();
    let (done, wait) = mpsc::channel::<()>();
    // The maker stays alive (its heap stays its own) while the other
    // thread frees and allocates.
    let maker = std::thread::spawn(move || {
        // SAFETY: non-zero size; the block goes to the other thread whole.
        let p = unsafe { A.alloc(layout) } as usize;
        tx.send(p).unwrap();
        wait.recv().unwrap();
    });
    let p = rx.recv().unwrap();
    let user = std::thread::spawn(move || {
        // The thread allocates the class itself, then frees the other
        // thread's block.
        // SAFETY: non-zero size.
        let own = unsafe { A.alloc(layout) };
        // SAFETY: `p` is a live block of `layout` handed over whole.
        unsafe { A.dealloc(p as *mut u8, layout) };
        // Freed is freed, wherever the block waits: a second free is seen.
        // SAFETY: only asked about.
        let seen = unsafe { validate(p as *const u8) };
        assert!(
            matches!(seen, Err(Fault::Freed(Block { large: false, .. }))),
            "{seen:?}"
        );
        // Its next blocks of the class include it, before the pages of
        // its own heap grow by more than a few.
        let got = allocate_until(layout, &[p], 64);
        assert_eq!(got, [p], "the freed block was not handed out again");
        // SAFETY: a live block of `layout`.
        unsafe { A.dealloc(p as *mut u8, layout) };
        // SAFETY: as above.
        unsafe { A.dealloc(own, layout) };
    });
    let outcome = user.join();
    done.send(()).unwrap();
    maker.join().unwrap();
    outcome.unwrap();
}

#[test]
fn blocks_a_thread_keeps_go_back_to_their_maker_when_it_exits() {
    // A size no other test here allocates.
    let layout = Layout::from_size_align(600 + 5 * 16, 8).unwrap();
    // SAFETY: non-zero size.
    let mine: Vec<usize> = (0..8)
        .map(|_| unsafe { A.alloc(layout) } as usize)
        .collect();
    let handed = mine.clone();
    std::thread::spawn(move || {
        // SAFETY: non-zero size.
        let own = unsafe { A.alloc(layout) };
        for p in handed {
            // SAFETY: live blocks of `layout`, handed over whole.
            unsafe { A.dealloc(p as *mut u8, layout) };
        }
        // SAFETY: live, ours.
        unsafe { A.dealloc(own, layout) };
    })
    .join()
    .unwrap();
    // The thread is gone; whatever it kept of this thread's blocks is back
    // on their pages, and this thread hands them out again.
    assert_all_come_back(layout, &mine);
}

#[test]
fn a_thread_that_only_frees_keeps_none_of_the_blocks_it_frees() {
    // A size no other test here allocates.
    let layout = Layout::from_size_align(440, 8).unwrap();
    // This thread's blocks (it takes a heap of its own first).
    // SAFETY: non-zero size.
    let mine: Vec<usize> = (0..8)
        .map(|_| unsafe { A.alloc(layout) } as usize)
        .collect();
    // A thread that allocates the size and exits: its heap waits in the
    // pool with a page of that size, for the next thread to take.
    std::thread::spawn(move || {
        // SAFETY: non-zero size.
        let p = unsafe { A.alloc(layout) };
        // SAFETY: live, ours.
        unsafe { A.dealloc(p, layout) };
    })
    .join()
    .unwrap();
    // A consumer, likely on that heap: it frees and never allocates the
    // size; all of the blocks wait on this thread's pages, none in it.
    freed_elsewhere_come_back(
        layout,
        &mine,
        // It takes a heap with its first block (of another size).
        || Block::new(64, 5),
        drop,
    );
}

#[test]
fn a_thread_that_frees_a_class_faster_than_it_allocates_it_gives_the_blocks_back() {
    // A size no other test here allocates.
    let layout = Layout::from_size_align(360, 8).unwrap();
    // SAFETY: non-zero size.
    let mine: Vec<usize> = (0..40)
        .map(|_| unsafe { A.alloc(layout) } as usize)
        .collect();
    // The other thread allocates the class once, then frees far more of it.
    freed_elsewhere_come_back(
        layout,
        &mine,
        // SAFETY: non-zero size.
        move || unsafe { A.alloc(layout) } as usize,
        // SAFETY: live, allocated above with `layout`.
        move |own| unsafe { A.dealloc(own as *mut u8, layout) },
    );
}

#[test]
fn the_thread_tests_hold_with_no_purge_delay() {
    // With no delay every page-level event purges: empty pages, the pool of
    // heaps and the large cache, under every interleaving the tests above
    // produce. Options are read at the first allocation, so the tests run
    // again in a child process started with the variable set.
    if std::env::var_os("MEMIO_MALLOC_PURGE_DELAY").is_some() {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--test-threads=3", "-q", "--skip", "no_purge_delay"])
        .env("MEMIO_MALLOC_PURGE_DELAY", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn blocks_freed_elsewhere_into_full_pages_come_back_without_a_collect() {
    // Blocks this size have a page each, so every page of theirs is full:
    // two of them freed by another thread must be handed out again by the
    // owner's next allocations, with no `collect` first.
    let layout = Layout::from_size_align(90_000, 8).unwrap();
    let mine: Vec<usize> = (0..64)
        // SAFETY: non-zero size.
        .map(|_| unsafe { A.alloc(layout) } as usize)
        .collect();
    assert!(mine.iter().all(|&p| p != 0));
    let freed = vec![mine[10], mine[40]];
    let handed = freed.clone();
    std::thread::spawn(move || {
        for p in handed {
            // SAFETY: live blocks of `layout`, handed over whole.
            unsafe { A.dealloc(p as *mut u8, layout) };
        }
    })
    .join()
    .unwrap();
    let got = allocate_until(layout, &freed, 8);
    assert_eq!(got.len(), 2, "of {freed:x?} came back {got:x?}");
    for p in mine {
        // SAFETY: live blocks of `layout` (the two freed came back).
        unsafe { A.dealloc(p as *mut u8, layout) };
    }
}
