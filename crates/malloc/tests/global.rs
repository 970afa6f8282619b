//! A program whose every allocation (std's collections, threads, channels,
//! the test harness itself) goes through `MemioMalloc`.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;

use memio_malloc::MemioMalloc;

#[global_allocator]
static GLOBAL: MemioMalloc = MemioMalloc;

#[test]
fn std_collections_churn_across_threads() {
    let (tx, rx) = mpsc::channel::<Vec<String>>();
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut map = HashMap::new();
                for i in 0..20_000u64 {
                    map.insert(i, format!("{t}-{i}"));
                    if i % 3 == 0 {
                        map.remove(&(i / 2));
                    }
                    if i % 500 == 0 {
                        // Strings allocated here, freed by the consumer.
                        tx.send(
                            (0..50)
                                .map(|k| format!("{t}:{i}:{k}").repeat(k % 7 + 1))
                                .collect(),
                        )
                        .unwrap();
                    }
                }
                map.len()
            })
        })
        .collect();
    drop(tx);
    let consumer = std::thread::spawn(move || {
        let mut tree = BTreeMap::new();
        for batch in rx {
            for s in batch {
                assert!(s.contains(':'));
                tree.insert(s.len(), s);
            }
        }
        tree.len()
    });
    for p in producers {
        assert!(p.join().unwrap() > 10_000);
    }
    assert!(consumer.join().unwrap() > 0);
}

#[test]
fn vectors_grow_through_realloc_and_keep_their_contents() {
    let mut v: Vec<u32> = Vec::new();
    for i in 0..3_000_000u32 {
        v.push(i);
    }
    assert!(v.iter().enumerate().all(|(i, &x)| x as usize == i));
    // SAFETY: the vector's buffer is a live block of the global allocator.
    #[allow(unsafe_code, reason = "asking the allocator about a live block")]
    let usable = unsafe { memio_malloc::usable_size(v.as_ptr().cast()) };
    assert!(usable >= v.capacity() * 4);
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v, (0..10).collect::<Vec<_>>());
}

#[test]
fn threads_created_in_a_loop_do_not_grow_the_heap_count() {
    let spawn_round = || {
        let hs: Vec<_> = (0..8)
            .map(|i| std::thread::spawn(move || vec![i; 1000].iter().sum::<i32>()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
    };
    for _ in 0..20 {
        spawn_round();
    }
    let before = memio_malloc::stats().heaps;
    for _ in 0..200 {
        assert_eq!(spawn_round(), 28_000);
    }
    let after = memio_malloc::stats().heaps;
    assert!(after <= before + 16, "heaps {before} -> {after}");
}
