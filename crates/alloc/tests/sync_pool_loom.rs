//! Loom model of `SyncPool`'s shared part: every interleaving of a few
//! threads taking and giving blocks, singly and in batches.
//!
//! Built only with `--cfg loom`, which swaps the pool's atomics for
//! loom's:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p memio-alloc --release --test sync_pool_loom
//! ```
//!
//! The pool runs with ownership checks, so handing out a block that is
//! already live panics inside the pool; after the threads, every block must
//! be back in the shared part exactly once (the main thread takes them all
//! and finds them distinct) and the counters must balance.
#![cfg(loom)]
#![allow(missing_docs, reason = "test binary")]
#![allow(unsafe_code, reason = "frees the blocks the threads own")]

use std::collections::HashSet;

use loom::sync::Arc;
use loom::thread;
use memio_alloc::{Checks, SyncPool, SyncPoolOptions};

const BLOCKS: usize = 4;

fn pool(magazine: usize) -> Arc<SyncPool> {
    let checks = Checks {
        ownership: true,
        ..Checks::off()
    };
    Arc::new(
        SyncPoolOptions::new(16)
            .blocks(BLOCKS)
            .magazine(magazine)
            .checks(checks)
            .build()
            .expect("a pool of 4 blocks"),
    )
}

fn explore(f: impl Fn() + Sync + Send + 'static) {
    let mut model = loom::model::Builder::new();
    // Bounded preemption keeps the run to seconds; bugs in lock-free
    // stacks show up within two or three preemptions.
    model.preemption_bound = Some(3);
    model.check(f);
}

/// Takes every block through the shared part: all there, each once.
fn all_blocks_come_back(pool: &SyncPool) {
    let all: Vec<_> = (0..BLOCKS)
        .map(|_| {
            pool.alloc()
                .expect("every block is back in the shared part")
        })
        .collect();
    assert!(pool.alloc().is_err(), "more blocks than the pool holds");
    let distinct: HashSet<_> = all.iter().map(|p| p.as_ptr() as usize).collect();
    assert_eq!(distinct.len(), BLOCKS, "a block was on the stack twice");
    let st = pool.stats();
    assert_eq!(st.allocations - st.frees, BLOCKS as u64);
    for p in all {
        // SAFETY: the main thread took these blocks and owns them.
        unsafe { pool.free(p) }.expect("a live block");
    }
}

#[test]
fn single_pops_and_pushes_never_share_a_block() {
    explore(|| {
        let pool = pool(1);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let a = pool.alloc().expect("4 blocks for 2 threads");
                    let b = pool.alloc().expect("4 blocks for 2 threads");
                    // SAFETY: both blocks are this thread's, freed once.
                    unsafe { pool.free(a) }.expect("a live block");
                    // SAFETY: as above.
                    unsafe { pool.free(b) }.expect("a live block");
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no thread panics");
        }
        all_blocks_come_back(&pool);
    });
}

#[test]
fn batches_between_handles_and_the_shared_part_never_share_a_block() {
    explore(|| {
        let pool = pool(2);
        let worker = {
            let pool = pool.clone();
            thread::spawn(move || {
                // Takes a batch of two (one walk, one swap), frees into the
                // cache, and gives the batch back when the handle drops.
                let cache = pool.handle();
                let a = cache.alloc().expect("a batch of two");
                // SAFETY: this thread's block, freed once.
                unsafe { cache.free(a) }.expect("a live block");
            })
        };
        // Meanwhile a direct caller pops and pushes single blocks.
        let b = pool.alloc();
        let c = pool.alloc();
        for p in [b, c].into_iter().flatten() {
            // SAFETY: the main thread's blocks, freed once.
            unsafe { pool.free(p) }.expect("a live block");
        }
        worker.join().expect("no thread panics");
        all_blocks_come_back(&pool);
    });
}
