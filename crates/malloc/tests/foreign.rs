//! A pointer the heap did not hand out, lying inside one of its 4 MiB
//! units (the part a large block does not use, where another mapping may
//! sit), is told apart from the heap's own blocks.
#![allow(missing_docs, reason = "test binary")]
#![allow(
    unsafe_code,
    reason = "a mapping of the test's own, and the raw heap calls"
)]
#![allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "runs of raw heap calls on blocks the test holds"
)]

use memio_malloc::raw::{alloc_raw, free_raw, is_block};

#[test]
fn a_foreign_mapping_inside_a_large_blocks_unit_is_not_a_block() {
    let size = 1 << 20;
    let p = alloc_raw(size, 16, false);
    assert!(!p.is_null());
    let unit = (p as usize - 1) & !((4 << 20) - 1);
    let spot = unit + (3 << 20);
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
    let q = unsafe {
        libc::mmap(
            spot as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if q == libc::MAP_FAILED || q as usize != spot {
        eprintln!("skipped: could not map a page at {spot:#x} beside the large block");
        // SAFETY: `p` is live and ours.
        unsafe { free_raw(p) };
        return;
    }
    let foreign = q.cast::<u8>().cast_const();
    assert!(memio_malloc::owns(foreign), "the unit is the heap's");
    // SAFETY: nothing frees the large block meanwhile.
    unsafe {
        assert!(!is_block(foreign), "a foreign mapping is not a block");
        assert!(is_block(p), "the large block's start is");
        assert!(
            !is_block(p.add(64)),
            "inside the large block is not a start"
        );
    }
    let small = alloc_raw(48, 16, false);
    // SAFETY: both blocks are live; the mapping is ours.
    unsafe {
        assert!(is_block(small));
        free_raw(small);
        free_raw(p);
        libc::munmap(q, 4096);
    }
}

#[test]
fn a_freed_large_block_is_no_block_until_handed_out_again() {
    let size = 1 << 20;
    let p = alloc_raw(size, 16, false);
    assert!(!p.is_null());
    // SAFETY: `p` is live and ours; afterwards it is only asked about.
    unsafe {
        assert!(is_block(p));
        free_raw(p);
        assert!(!is_block(p), "a second free of it would be refused");
    }
    let q = alloc_raw(size, 16, false);
    // SAFETY: `q` is live and ours.
    unsafe {
        assert!(is_block(q));
        free_raw(q);
    }
}
