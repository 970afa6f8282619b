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

#[test]
#[allow(
    unsafe_code,
    reason = "realloc through the raw interface, as C's realloc"
)]
fn a_buffer_grown_a_few_bytes_at_a_time_moves_every_few_steps() {
    // A string built piece by piece: 8 bytes more per call, 64 B to 2 KiB.
    let mut size = 64;
    let mut p = memio_malloc::raw::alloc_raw(size, 16, false);
    assert!(!p.is_null());
    // SAFETY: `p` is a live block of `size` bytes throughout.
    unsafe { p.write_bytes(7, size) };
    let mut moves = 0;
    let mut steps = 0;
    while size < 2048 {
        let grown = size + 8;
        // SAFETY: `p` is a live block of `size` bytes.
        let q = unsafe { memio_malloc::raw::realloc_raw(p, size, 16, grown) };
        assert!(!q.is_null());
        // SAFETY: `q` holds `grown` bytes, the first `size` kept, and
        // nothing else refers to them.
        let bytes = unsafe { std::slice::from_raw_parts_mut(q, grown) };
        assert!(bytes[..size].iter().all(|&b| b == 7), "contents lost");
        bytes[size..].fill(7);
        moves += usize::from(q != p);
        steps += 1;
        p = q;
        size = grown;
    }
    // SAFETY: the live block.
    unsafe { memio_malloc::raw::free_raw(p) };
    // A move at every class crossed would be about 35; with a quarter of
    // the size to spare at each move, about a dozen.
    assert!(moves <= 16, "{moves} moves in {steps} steps");
}

/// Values of types aligned past the heap's 4 MiB units, boxed and in
/// vectors, as safe code makes them.
#[test]
fn values_aligned_past_4_mib_are_aligned_kept_and_freed() {
    #[repr(align(8388608))]
    struct Align8M([u8; 100]);
    #[repr(align(33554432))]
    struct Align32M(u64);
    for round in 0..4u8 {
        let boxed = Box::new(Align8M([round; 100]));
        assert_eq!(std::ptr::from_ref(&*boxed) as usize % (8 << 20), 0);
        let v: Vec<Align32M> = (0..3).map(Align32M).collect();
        assert_eq!(v.as_ptr() as usize % (32 << 20), 0);
        assert!(boxed.0.iter().all(|&b| b == round));
        assert_eq!(v.iter().map(|a| a.0).sum::<u64>(), 3);
        // Grown in place or moved, still aligned and kept.
        let mut v = v;
        v.extend((3..40).map(Align32M));
        assert_eq!(v.as_ptr() as usize % (32 << 20), 0);
        assert_eq!(v.iter().map(|a| a.0).sum::<u64>(), 780);
    }
}
