use std::collections::HashSet;
use std::sync::Mutex;

use super::*;

fn pool(block: usize, blocks: usize, magazine: usize, checks: Checks) -> SyncPool {
    SyncPoolOptions::new(block)
        .blocks(blocks)
        .magazine(magazine)
        .checks(checks)
        .build()
        .unwrap()
}

/// Takes every block of `pool` through the shared part: all must be there.
fn drain_all(pool: &SyncPool) -> Vec<NonNull<u8>> {
    let all: Vec<_> = (0..pool.capacity())
        .map(|_| pool.alloc().unwrap())
        .collect();
    assert!(pool.alloc().is_err(), "more blocks than the pool holds");
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "a block was handed out twice");
    all
}

fn give_back(pool: &SyncPool, blocks: Vec<NonNull<u8>>) {
    for b in blocks {
        // SAFETY: the test took these blocks and owns them.
        unsafe { pool.free(b) }.unwrap();
    }
}

#[test]
fn threads_never_get_the_same_block() {
    for (magazine, checks) in [(4, Checks::off()), (8, Checks::all().red_zone_off())] {
        // Each of 4 threads holds up to 8 live blocks and its handle up to
        // two batches: fewer blocks than that, and a thread could find the
        // shared part empty while the others' caches hold the rest.
        let blocks = 4 * (8 + 2 * magazine);
        let pool = pool(32, blocks, magazine, checks);
        let seen = Mutex::new(HashSet::new());
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let (pool, seen) = (&pool, &seen);
                s.spawn(move || {
                    let cache = pool.handle();
                    for round in 0..2000u32 {
                        let mut mine = Vec::new();
                        for k in 0..8 {
                            // Half through the cache, half straight to the pool.
                            let b = if k % 2 == 0 {
                                cache.alloc()
                            } else {
                                pool.alloc()
                            };
                            let b = b.unwrap();
                            // SAFETY: the block is live, ours and 32 bytes long.
                            unsafe { b.as_ptr().write_bytes(t, 32) };
                            mine.push(b);
                        }
                        if round % 500 == 0 {
                            let mut set = seen.lock().unwrap();
                            set.extend(mine.iter().map(|b| b.as_ptr() as usize));
                        }
                        for (k, b) in mine.into_iter().enumerate() {
                            // SAFETY: nobody else wrote our live block.
                            let bytes = unsafe { std::slice::from_raw_parts(b.as_ptr(), 32) };
                            assert!(bytes.iter().all(|&x| x == t));
                            let r = if k % 3 == 0 {
                                // SAFETY: our live block, freed once.
                                unsafe { pool.free(b) }
                            } else {
                                // SAFETY: as above.
                                unsafe { cache.free(b) }
                            };
                            r.unwrap();
                        }
                    }
                });
            }
        });
        let st = pool.stats();
        assert_eq!(
            (st.live_blocks, st.allocations, st.frees),
            (0, 64_000, 64_000)
        );
        assert_eq!(pool.capacity(), blocks);
        give_back(&pool, drain_all(&pool));
    }
}

#[test]
fn a_block_freed_by_another_thread_joins_that_threads_cache() {
    let pool = pool(64, 16, 4, Checks::off());
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    let pool = &pool;
    std::thread::scope(|s| {
        s.spawn(move || {
            let cache = pool.handle();
            for _ in 0..12 {
                tx.send(cache.alloc().unwrap().as_ptr() as usize).unwrap();
            }
        });
        s.spawn(|| {
            let cache = pool.handle();
            for addr in rx {
                let b = NonNull::new(addr as *mut u8).unwrap();
                // SAFETY: the other thread handed this live block over.
                unsafe { cache.free(b) }.unwrap();
            }
            assert!(cache.cached() > 0);
        });
    });
    // Both caches went back when their threads ended.
    assert_eq!(pool.stats().live_blocks, 0);
    give_back(pool, drain_all(pool));
}

#[test]
fn a_thread_that_ends_with_a_full_cache_gives_it_back() {
    let pool = pool(16, 40, 8, Checks::all().red_zone_off());
    std::thread::scope(|s| {
        s.spawn(|| {
            let cache = pool.handle();
            let blocks: Vec<_> = (0..20).map(|_| cache.alloc().unwrap()).collect();
            for b in blocks {
                // SAFETY: our live blocks, freed once.
                unsafe { cache.free(b) }.unwrap();
            }
            // 16 held (two batches of 8), the oldest 4 drained.
            assert_eq!(cache.cached(), 16);
        });
        s.spawn(|| {
            let cache = pool.handle();
            let _b = cache.alloc_block().unwrap();
            panic!("unwinding drops the handle too");
        })
        .join()
        .unwrap_err();
    });
    let st = pool.stats();
    assert_eq!((st.live_blocks, st.allocations, st.frees), (0, 21, 21));
    give_back(&pool, drain_all(&pool));
}

#[test]
fn exhaustion_double_free_and_foreign_are_reported() {
    let pool = pool(16, 2, 1, Checks::all().red_zone_off());
    let a = pool.alloc().unwrap();
    let _b = pool.alloc().unwrap();
    assert!(matches!(pool.alloc(), Err(Error::OutOfMemory { .. })));
    // SAFETY: `a` is ours.
    unsafe { pool.free(a) }.unwrap();
    // SAFETY: deliberately broken; the ownership check reports it.
    let got = unsafe { pool.free(a) };
    assert!(matches!(got, Err(Error::DoubleFree { .. })));
    let cache = pool.handle();
    let c = cache.alloc().unwrap();
    // SAFETY: `c` is ours.
    unsafe { cache.free(c) }.unwrap();
    // SAFETY: deliberately broken; the ownership check reports it.
    let got = unsafe { cache.free(c) };
    assert!(matches!(got, Err(Error::DoubleFree { .. })));
    let x = 5u64;
    // SAFETY: deliberately foreign; the range check reports it untouched.
    let r = unsafe { pool.free(NonNull::from(&x).cast()) };
    assert!(matches!(r, Err(Error::Foreign { .. })));
    assert!(
        SyncPoolOptions::new(16)
            .checks(Checks::all())
            .build()
            .is_err()
    );
    assert!(SyncPoolOptions::new(16).magazine(0).build().is_err());
}

#[test]
fn allocator_api_collections_share_the_pool_across_threads() {
    let pool = pool(256, 8, 2, Checks::off());
    std::thread::scope(|s| {
        for t in 0..2u8 {
            let pool = &pool;
            s.spawn(move || {
                let cache = pool.handle();
                for round in 0..100 {
                    let mut v = if round % 2 == 0 {
                        allocator_api2::vec::Vec::with_capacity_in(200, &cache)
                    } else {
                        let mut v = allocator_api2::vec::Vec::new_in(&cache);
                        v.reserve(200);
                        v
                    };
                    v.extend(std::iter::repeat_n(t, 200));
                    assert!(v.iter().all(|&x| x == t));
                    assert!(v.try_reserve(1000).is_err(), "a block holds 256 bytes");
                    let mut w = allocator_api2::vec::Vec::with_capacity_in(10, pool);
                    w.push(t);
                }
            });
        }
    });
    assert_eq!(pool.stats().live_blocks, 0);
}

/// Counting while a handle lives: its cached counts and blocks are not in
/// the pool's until it flushes (or drops); after `flush` they are.
#[test]
fn flush_makes_stats_exact_and_frees_the_cache_for_others() {
    let pool = pool(32, 16, 4, Checks::off());
    let cache = pool.handle();
    let blocks: Vec<_> = (0..6).map(|_| cache.alloc().unwrap()).collect();
    for b in blocks.into_iter().take(5) {
        // SAFETY: our live blocks, freed once.
        unsafe { cache.free(b) }.unwrap();
    }
    assert!(cache.cached() > 0);
    assert_ne!(pool.stats().allocations, 6, "counts still in the handle");
    cache.flush();
    assert_eq!(cache.cached(), 0);
    let st = pool.stats();
    assert_eq!((st.allocations, st.frees, st.live_blocks), (6, 5, 1));
    // Every other block is in the shared part again.
    let rest: Vec<_> = (0..15).map(|_| pool.alloc().unwrap()).collect();
    assert!(pool.alloc().is_err());
    give_back(&pool, rest);
    let _again = cache.alloc_block().unwrap();
}

#[test]
fn memory_the_caller_gives_holds_as_many_blocks_as_fit() {
    let pool = SyncPoolOptions::new(32)
        .build_in(Memory::from_boxed(vec![0u8; 1024 + 15].into_boxed_slice()))
        .unwrap();
    assert!(pool.capacity() >= 31);
    let blocks = drain_all(&pool);
    give_back(&pool, blocks);
}
