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

#[test]
fn an_address_inside_a_small_block_names_the_block() {
    use memio_malloc::raw::{Block, Fault, validate};
    let p = alloc_raw(40, 16, false);
    assert!(!p.is_null());
    // SAFETY: `p` is live and ours; the other addresses are only asked
    // about.
    unsafe {
        let block = validate(p).expect("a live block");
        assert_eq!(
            block,
            Block {
                size: 48,
                large: false
            }
        );
        for off in [1, 8, 16, 47] {
            assert_eq!(
                validate(p.add(off)),
                Err(Fault::Inside { start: p, block }),
                "{off} bytes in"
            );
        }
        free_raw(p);
    }
}

#[test]
fn a_small_block_freed_twice_is_seen_until_handed_out_again() {
    use memio_malloc::raw::{Block, Fault, validate};
    // Several blocks, so the page stays in use while one of them is free.
    let keep = alloc_raw(100, 16, false);
    let p = alloc_raw(100, 16, false);
    assert!(!p.is_null() && !keep.is_null());
    // SAFETY: `p` and `keep` are live and ours; after its free `p` is only
    // asked about until it is handed out again.
    unsafe {
        p.write_bytes(0xee, 100);
        free_raw(p);
        assert_eq!(
            validate(p),
            Err(Fault::Freed(Block {
                size: 112,
                large: false
            }))
        );
        // The key goes when the block is handed out again (after the
        // page's other free blocks: the owner's frees wait on a list of
        // their own).
        let mut taken = Vec::new();
        while !taken.contains(&p) && taken.len() < 1000 {
            taken.push(alloc_raw(100, 16, false));
        }
        assert!(taken.contains(&p), "the block comes back");
        assert!(validate(p).is_ok());
        for b in taken {
            free_raw(b);
        }
        free_raw(keep);
    }
}

#[test]
fn a_freed_large_block_in_the_cache_reads_as_freed() {
    use memio_malloc::raw::{Fault, validate};
    let p = alloc_raw(1 << 20, 16, false);
    assert!(!p.is_null());
    // SAFETY: `p` is live and ours, then only asked about.
    unsafe {
        let block = validate(p).expect("a live large block");
        assert!(block.large && block.size >= 1 << 20);
        assert_eq!(
            validate(p.add(4096)),
            Err(Fault::Inside { start: p, block })
        );
        free_raw(p);
        match validate(p) {
            // In the large cache, or unmapped already.
            Err(Fault::Freed(b)) => assert_eq!(b, block),
            Err(Fault::Foreign) => {}
            other => panic!("a freed large block: {other:?}"),
        }
    }
}
