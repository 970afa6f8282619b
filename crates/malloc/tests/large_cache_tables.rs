//! The large-block cache and a table that doubles as it grows (its own
//! test binary: the cache's allowance follows the process's peak of live
//! large blocks, which other tests' blocks would raise).
#![allow(unsafe_code, reason = "driving GlobalAlloc by hand")]
#![allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "runs of raw heap calls on blocks the test holds"
)]

use std::alloc::{GlobalAlloc, Layout};

use memio_malloc::MemioMalloc;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

/// A hash table that doubles as it grows (a new table, then the old one
/// freed, as `HashMap` does), built and dropped over and over, finds each
/// size it needs in the cache from its second build on: the cache keeps a
/// mapping of every size. (Were the smallest dropped each time, each size
/// would take the next larger mapping, the largest would be mapped afresh
/// and its pages faulted in again, build after build.)
#[test]
fn a_table_that_doubles_is_built_again_from_the_cache() {
    let heap = MemioMalloc;
    memio_malloc::trim();
    // hashbrown's layout: 16-byte buckets, then a control byte each and a
    // group's worth more.
    let sizes: Vec<usize> = (15..=19).map(|k| (16 << k) + (1 << k) + 16).collect();
    let build = || {
        // SAFETY: non-zero sizes; each table is live with its layout until
        // it is freed, once.
        unsafe {
            let mut table = heap.alloc(layout(sizes[0]));
            assert!(!table.is_null());
            for pair in sizes.windows(2) {
                let bigger = heap.alloc(layout(pair[1]));
                assert!(!bigger.is_null());
                heap.dealloc(table, layout(pair[0]));
                table = bigger;
            }
            heap.dealloc(table, layout(sizes[sizes.len() - 1]));
        }
        memio_malloc::stats().large_cached
    };
    let cached: Vec<usize> = (0..6).map(|_| build()).collect();
    let all: usize = sizes.iter().sum();
    for &c in &cached[1..] {
        assert!(
            c >= all && c == cached[1],
            "{all} bytes of tables; cached after each build: {cached:?}"
        );
    }
}
