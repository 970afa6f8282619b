//! A request far beyond memory and swap fails as out of memory (null), as
//! glibc's does, instead of succeeding and getting the process killed
//! when it is touched.
#![allow(missing_docs, reason = "test binary")]

use memio_malloc::raw::alloc_raw;

#[test]
fn a_request_beyond_memory_and_swap_is_refused() {
    let mode = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    if mode.trim() == "1" {
        eprintln!("skipped: vm.overcommit_memory is 1, the kernel grants any mapping");
        return;
    }
    for (size, align) in [(1usize << 46, 16), (1 << 45, 1 << 20), (64, 1 << 40)] {
        let p = alloc_raw(size, align, false);
        assert!(p.is_null(), "{size} bytes aligned to {align} were granted");
        let z = alloc_raw(size, align, true);
        assert!(
            z.is_null(),
            "{size} zeroed bytes aligned to {align} were granted"
        );
    }
}
