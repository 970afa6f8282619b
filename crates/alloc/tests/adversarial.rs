//! Hostile inputs to the allocators' safe API: garbage sizes, alignments
//! and block counts must give an error, never a panic, an overflow or a
//! block outside the memory.

use memio_alloc::{
    ArenaOptions, BuddyOptions, Checks, FreeListOptions, Memory, PoolOptions, SyncPoolOptions,
};

const GARBAGE: [usize; 8] = [
    0,
    1,
    3,
    usize::MAX,
    usize::MAX - 15,
    usize::MAX / 2 + 1,
    1 << 40,
    4097,
];

fn caller_memory() -> Memory {
    Memory::from_boxed(vec![0u8; 4096 + 7].into_boxed_slice())
}

/// Every constructor with every garbage size: an `Err` or a working
/// allocator, never a panic.
#[test]
fn garbage_sizes_give_errors_not_panics() {
    for &a in &GARBAGE {
        for &b in &GARBAGE {
            let _ = PoolOptions::new(a).blocks(b).build();
            let _ = PoolOptions::new(a).align(b).build_in(caller_memory());
            let _ = SyncPoolOptions::new(a).blocks(b).build();
            let _ = SyncPoolOptions::new(a)
                .magazine(b)
                .build_in(caller_memory());
            let _ = BuddyOptions::new(a, b).build();
            let _ = BuddyOptions::new(a, b)
                .max_block(a)
                .build_in(caller_memory());
            let _ = FreeListOptions::new(a).build();
            let _ = FreeListOptions::new(a)
                .checks(Checks::all())
                .build_in(caller_memory());
            let _ = ArenaOptions::new(a).build();
            let arena = ArenaOptions::new(4096)
                .checks(Checks::all())
                .build_in(caller_memory());
            let _ = arena.alloc(a, b);
        }
    }
}

/// Allocation requests with garbage sizes and alignments: an error, or a
/// block inside the memory, aligned as asked.
#[test]
fn garbage_requests_give_errors_or_sound_blocks() {
    let free_list = FreeListOptions::new(1 << 16).build().unwrap();
    let buddy = BuddyOptions::new(1 << 16, 32).build().unwrap();
    for &size in &GARBAGE {
        for align in [0, 1, 3, 8, 4096, 1 << 20, usize::MAX, 1 << 63] {
            let blocks = [free_list.alloc(size, align), buddy.alloc(size, align)];
            for p in blocks.into_iter().flatten() {
                assert!(align.is_power_of_two() && p.as_ptr() as usize % align == 0);
            }
        }
    }
}
