//! Seed 003, "Managing the Data Segment" and "Anonymous Memory Mappings",
//! made visible: glibc serves small requests from the heap, moving the
//! program break (`brk`/`sbrk`) up as it grows, and gives large requests
//! (at least `M_MMAP_THRESHOLD`, 128 KiB by default) a private anonymous
//! mapping of their own, counted in `mallinfo2().hblks`/`hblkhd` and seen
//! in `/proc/self/maps`. Changing the threshold with `mallopt` changes
//! which requests get a mapping (glibc consults it when the heap would have
//! to grow: a request a free heap chunk fits is served from there). `malloc_stats()` prints glibc's own
//! summary at the end.
//!
//! Run: `cargo run -p memio-alloc --example program_break`

use std::process::ExitCode;

use memio_alloc::Error;
use memio_alloc::sys::{self, Mallopt, SysBlock};

/// The line of `/proc/self/maps` whose range holds `addr`, if any.
fn mapping_of(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .find(|line| {
            let Some((range, _)) = line.split_once(' ') else {
                return false;
            };
            let Some((lo, hi)) = range.split_once('-') else {
                return false;
            };
            let parse = |s| usize::from_str_radix(s, 16).ok();
            matches!((parse(lo), parse(hi)), (Some(lo), Some(hi)) if lo <= addr && addr < hi)
        })
        .map(str::to_owned)
}

/// Where the block lives: the heap (`[heap]`, below the break) or a
/// mapping of its own.
fn place(block: &SysBlock) -> String {
    let addr = block.as_ptr() as usize;
    let line = mapping_of(addr).unwrap_or_default();
    let name = line
        .split_whitespace()
        .nth(5)
        .unwrap_or("(anonymous mapping)");
    format!("{addr:#x} in {name}")
}

/// Allocates `size` bytes and reports whether glibc gave them a mapping.
fn request(size: usize) -> Result<(SysBlock, bool), Error> {
    let before = sys::mallinfo2();
    let block = SysBlock::new(size).ok_or(Error::OutOfMemory {
        allocator: "malloc",
        size,
        align: sys::MALLOC_ALIGN,
    })?;
    let after = sys::mallinfo2();
    let mapped = after.hblks > before.hblks;
    println!(
        "  malloc({:>7}) -> {}; hblks {} -> {}, hblkhd {} -> {} bytes: {}",
        size,
        place(&block),
        before.hblks,
        after.hblks,
        before.hblkhd,
        after.hblkhd,
        if mapped {
            "its own mapping"
        } else {
            "from the heap"
        }
    );
    Ok((block, mapped))
}

fn run() -> Result<(), Error> {
    if !sys::is_glibc_malloc() {
        println!("malloc is not glibc's here (valgrind or a preload): nothing to watch");
        return Ok(());
    }
    // Fix the threshold at its default: glibc otherwise raises it as large
    // blocks are freed, which would blur the steps below.
    sys::mallopt(Mallopt::MmapThreshold(128 << 10))?;

    let start = sys::program_break();
    println!("program break at start: {start:#x}");
    let small: Vec<SysBlock> = (0..2048).filter_map(|_| SysBlock::new(1024)).collect();
    let grown = sys::program_break();
    println!(
        "after 2048 blocks of 1 KiB: break {grown:#x} (+{} KiB), heap {} KiB (mallinfo2 arena)",
        (grown - start) >> 10,
        sys::mallinfo2().arena >> 10
    );

    println!("M_MMAP_THRESHOLD = 128 KiB (the default):");
    let (_a, small_mapped) = request(64 << 10)?;
    let (_b, large_mapped) = request(1 << 20)?;
    assert!(
        !small_mapped && large_mapped,
        "64 KiB from the heap, 1 MiB mapped"
    );

    sys::mallopt(Mallopt::MmapThreshold(4 << 20))?;
    println!("M_MMAP_THRESHOLD = 4 MiB: 1 MiB and 256 KiB now come from the heap");
    let before = sys::program_break();
    let (_c, one_mapped) = request(1 << 20)?;
    let (_d, quarter_mapped) = request(256 << 10)?;
    println!(
        "  the break moved {} KiB",
        (sys::program_break() - before) >> 10
    );
    assert!(!one_mapped && !quarter_mapped);

    // glibc serves any request a free heap chunk fits, whatever its size;
    // the threshold decides what happens when the heap would have to grow.
    sys::mallopt(Mallopt::MmapThreshold(16 << 10))?;
    println!("M_MMAP_THRESHOLD = 16 KiB: the next 256 KiB gets a mapping instead of more heap");
    let before = sys::program_break();
    let (_e, mapped) = request(256 << 10)?;
    println!(
        "  the break moved {} KiB",
        (sys::program_break() - before) >> 10
    );
    assert!(mapped);

    drop(small);
    let released = sys::trim(0);
    println!(
        "freed the small blocks; malloc_trim(0) released memory: {released}; break now {:#x}",
        sys::program_break()
    );
    println!("glibc's own summary (malloc_stats, on stderr):");
    sys::malloc_stats();
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("program_break: {e}");
            ExitCode::FAILURE
        }
    }
}
