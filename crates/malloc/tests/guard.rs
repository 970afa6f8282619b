//! `set_guard`: large blocks end against a `PROT_NONE` page, alignment
//! requests still honoured. (The fault itself is tested with a C program
//! under the preload library.) In a binary of its own: the option is
//! process-wide.
#![allow(missing_docs, reason = "test binary")]
#![allow(unsafe_code, reason = "the raw heap calls")]
#![allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "runs of raw heap calls on blocks the test holds"
)]

use memio_malloc::raw::{alloc_raw, free_raw, realloc_raw};

/// The permissions /proc/self/maps gives the mapping holding `addr`.
fn perms(addr: usize) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read maps");
    for line in maps.lines() {
        let (range, rest) = line.split_once(' ').expect("a maps line");
        let (lo, hi) = range.split_once('-').expect("a range");
        let lo = usize::from_str_radix(lo, 16).expect("hex");
        let hi = usize::from_str_radix(hi, 16).expect("hex");
        if (lo..hi).contains(&addr) {
            return rest[..4].to_owned();
        }
    }
    String::from("unmapped")
}

#[test]
fn large_blocks_end_against_a_guard_page() {
    memio_malloc::set_guard(true);
    // Fixed, so that freeing a large block does not raise it past the
    // next test size.
    memio_malloc::set_mmap_threshold(128 << 10);
    assert!(memio_malloc::options().guard);
    for (size, align) in [
        (1 << 20, 16),
        ((1 << 20) + 1, 16),
        (300_000, 16),
        (300_001, 4096),
        (1 << 20, 1 << 21),
    ] {
        let p = alloc_raw(size, align, false);
        assert!(!p.is_null());
        assert_eq!(p as usize % align, 0, "{size} aligned to {align}");
        let end = p as usize + size;
        let guard = end.next_multiple_of(4096);
        assert!(
            guard - end < align.max(16),
            "{size}/{align}: {} bytes short",
            guard - end
        );
        assert_eq!(perms(guard), "---p", "{size}/{align}");
        assert_eq!(perms(end - 1), "rw-p", "{size}/{align}");
        // SAFETY: `p` is live and ours: every byte of it can be written.
        unsafe {
            p.write_bytes(0x5a, size);
            assert!(memio_malloc::usable_size(p) >= size);
        }
        // A grown block moves to a fresh mapping, again against a guard.
        // SAFETY: `p` is live, of `size` bytes.
        let q = unsafe { realloc_raw(p, size, align, size + 100_000) };
        assert!(!q.is_null() && q as usize % align == 0);
        let end = q as usize + size + 100_000;
        assert_eq!(perms(end.next_multiple_of(4096)), "---p");
        // SAFETY: `q` is live and ours.
        unsafe {
            assert_eq!(q.add(size - 1).read(), 0x5a);
            free_raw(q);
        }
        assert_eq!(
            perms(guard),
            "unmapped",
            "a guarded block is unmapped when freed"
        );
    }
    memio_malloc::set_guard(false);
}
