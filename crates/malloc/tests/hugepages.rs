//! `set_hugepages` marks the heap's new segments and large mappings for
//! transparent huge pages, and only those made or grown while it is on
//! (its own test binary: the option is global). The library's tests
//! check that `MEMIO_MALLOC_HUGEPAGES=1` turns it on.
#![allow(unsafe_code, reason = "driving GlobalAlloc by hand")]

use std::alloc::{GlobalAlloc, Layout};

use memio_malloc::MemioMalloc;

/// Whether the kernel hands out transparent huge pages to a range that
/// asks (`madvise` or `always`), or why not.
fn huge_pages_offered() -> Result<(), String> {
    let path = "/sys/kernel/mm/transparent_hugepage/enabled";
    let setting = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    if setting.contains("[never]") {
        return Err(format!("{path} is `never`"));
    }
    Ok(())
}

/// The `VmFlags` of the mapping holding `p`, from `/proc/self/smaps`.
fn vm_flags(p: *const u8) -> Vec<String> {
    let addr = p as usize;
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((from, to)) = first.split_once('-') {
            if let (Ok(from), Ok(to)) = (
                usize::from_str_radix(from, 16),
                usize::from_str_radix(to, 16),
            ) {
                inside = (from..to).contains(&addr);
                continue;
            }
        }
        if inside {
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.split_whitespace().map(str::to_owned).collect();
            }
        }
    }
    panic!("no mapping holds {p:?}");
}

fn marked(p: *const u8) -> bool {
    vm_flags(p).iter().any(|f| f == "hg")
}

#[test]
fn only_memory_mapped_while_the_option_is_on_asks_for_huge_pages() {
    if let Err(why) = huge_pages_offered() {
        eprintln!("skipped: transparent huge pages are off here ({why})");
        return;
    }
    let a = MemioMalloc;
    let large = Layout::from_size_align(6 << 20, 8).unwrap();
    let block = Layout::from_size_align(64 << 10, 8).unwrap();
    let alloc = |l: Layout| {
        // SAFETY: non-zero sizes.
        let p = unsafe { a.alloc(l) };
        assert!(!p.is_null());
        p
    };
    if std::env::var_os("MEMIO_MALLOC_HUGEPAGES").is_none() {
        assert!(!memio_malloc::options().hugepages, "off by default");
    }
    memio_malloc::set_hugepages(false);
    let plain = alloc(large);
    let small = Layout::from_size_align(1 << 20, 8).unwrap();
    let before = alloc(small);
    assert!(!marked(plain), "a large block made with the option off");

    memio_malloc::set_hugepages(true);
    assert!(memio_malloc::options().hugepages);
    let huge = alloc(large);
    assert!(marked(huge), "a large block made with the option on");
    // 24 MiB of 64 KiB blocks (below the mmap threshold) fill the
    // segment in use and take new ones, made with the option on.
    let blocks: Vec<*mut u8> = (0..384).map(|_| alloc(block)).collect();
    let last = *blocks.last().unwrap();
    assert!(marked(last), "a segment made with the option on");
    // A block grown past its mapping by realloc stays marked, and one
    // made with the option off is marked once grown to 2 MiB or more.
    // SAFETY: `huge` is a live block of `large`'s layout.
    let grown = unsafe { a.realloc(huge, large, 40 << 20) };
    assert!(!grown.is_null());
    assert!(marked(grown), "a large block grown by realloc");
    assert!(!marked(before), "a 1 MiB block made with the option off");
    // SAFETY: `before` is a live block of `small`'s layout.
    let before = unsafe { a.realloc(before, small, 24 << 20) };
    assert!(!before.is_null());
    assert!(marked(before), "a block grown while the option is on");

    memio_malloc::set_hugepages(false);
    let later = alloc(large);
    assert!(
        !marked(later),
        "a large block made after the option went off"
    );
    assert!(!marked(plain), "memory made before stays as it was");

    let grown_layout = Layout::from_size_align(40 << 20, 8).unwrap();
    let before_layout = Layout::from_size_align(24 << 20, 8).unwrap();
    for (p, l) in [
        (plain, large),
        (later, large),
        (grown, grown_layout),
        (before, before_layout),
    ]
    .into_iter()
    .chain(blocks.into_iter().map(|p| (p, block)))
    {
        // SAFETY: each pointer is a live block of the layout it was made
        // with.
        unsafe { a.dealloc(p, l) };
    }
}
