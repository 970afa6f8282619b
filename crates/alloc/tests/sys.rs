//! glibc's malloc behind `memio_alloc::sys`: mallopt, the aligned
//! allocators, `malloc_stats` and the program break.
//!
//! mallopt changes the whole process, so these tests take one lock and run
//! one at a time. Under valgrind (which replaces malloc, reports empty
//! statistics and accepts every mallopt) the glibc-specific ones skip.

use std::process::Command;
use std::sync::Mutex;

use memio_alloc::Error;
use memio_alloc::sys::{self, Mallopt, SysBlock};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn glibc_or_skip(test: &str) -> bool {
    if sys::is_glibc_malloc() {
        return true;
    }
    eprintln!("skipped {test}: malloc is not glibc's here (valgrind or a preload)");
    false
}

#[test]
fn mallopt_refusals_name_the_parameter_and_its_limit() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !glibc_or_skip("mallopt_refusals") {
        return;
    }
    let err = sys::mallopt(Mallopt::Mxfast(1000)).unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "mallopt: M_MXFAST = 1000 refused: glibc accepts at most 160 bytes \
         (80 * sizeof(size_t) / 4) on 64-bit"
    );
    sys::mallopt(Mallopt::Mxfast(160)).unwrap();
    sys::mallopt(Mallopt::Mxfast(128)).unwrap();
    // Too large for the C int mallopt takes: refused before the call.
    let err = sys::mallopt(Mallopt::TopPad(usize::MAX)).unwrap_err();
    assert!(err.to_string().contains("M_TOP_PAD"), "{err}");
    assert!(err.to_string().contains("C int"), "{err}");
}

#[test]
fn every_parameter_takes_a_sane_value() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !glibc_or_skip("every_parameter") {
        return;
    }
    for option in [
        Mallopt::CheckAction(3),
        Mallopt::MmapMax(65536),
        Mallopt::MmapThreshold(128 << 10),
        Mallopt::Mxfast(128),
        Mallopt::Perturb(0),
        Mallopt::TopPad(128 << 10),
        Mallopt::TrimThreshold(128 << 10),
    ] {
        sys::mallopt(option).unwrap_or_else(|e| panic!("{option}: {e}"));
    }
}

#[test]
fn lowering_the_mmap_threshold_moves_a_request_into_its_own_mapping() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !glibc_or_skip("mmap_threshold") {
        return;
    }
    let size = 200 << 10;
    sys::mallopt(Mallopt::MmapThreshold(1 << 20)).unwrap();
    let before = sys::mallinfo2();
    let heap = SysBlock::new(size).unwrap();
    assert_eq!(
        sys::mallinfo2().hblks,
        before.hblks,
        "200 KiB under a 1 MiB threshold"
    );
    drop(heap);

    sys::mallopt(Mallopt::MmapThreshold(64 << 10)).unwrap();
    let before = sys::mallinfo2();
    let mapped = SysBlock::new(size).unwrap();
    let during = sys::mallinfo2();
    assert_eq!(
        during.hblks,
        before.hblks + 1,
        "200 KiB over a 64 KiB threshold"
    );
    assert!(during.hblkhd >= before.hblkhd + size);
    drop(mapped);
    assert_eq!(sys::mallinfo2().hblks, before.hblks, "munmapped on free");
    sys::mallopt(Mallopt::MmapThreshold(128 << 10)).unwrap();
}

#[test]
fn aligned_blocks_are_aligned_and_keep_their_alignment_when_resized() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for align in [8, 16, 64, 4096, 1 << 16] {
        let mut b = SysBlock::aligned(align, 100).unwrap();
        assert_eq!(b.as_ptr() as usize % align, 0, "posix_memalign {align}");
        b.write(b"aligned");
        assert!(b.resize(10_000));
        assert_eq!(b.as_ptr() as usize % align, 0, "after resize {align}");
        assert_eq!(b.as_slice(), b"aligned");
        let m = SysBlock::memalign(align, 100).unwrap();
        assert_eq!(m.as_ptr() as usize % align, 0, "memalign {align}");
    }
    // memalign rounds 48 up to 64 rather than refusing it.
    let m = SysBlock::memalign(48, 10).unwrap();
    assert_eq!(m.align(), 64);
    assert_eq!(m.as_ptr() as usize % 64, 0);
    let v = SysBlock::page_aligned(1).unwrap();
    assert_eq!(v.as_ptr() as usize % sys::page_size(), 0);
}

#[test]
fn posix_memalign_says_why_an_alignment_is_invalid() {
    for bad in [0, 3, 24, 4] {
        let err = SysBlock::aligned(bad, 64).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{bad}: {err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "posix_memalign: unsupported request: alignment {bad} is invalid (EINVAL): it \
                 must be a power of two and a multiple of sizeof(void *) (8)"
            )
        );
    }
}

#[test]
fn malloc_stats_prints_the_arena_figures_to_stderr() {
    if std::env::var_os("MEMIO_SYS_TEST_CHILD").is_some() {
        let _keep = SysBlock::zeroed(4096).unwrap();
        sys::malloc_stats();
        return;
    }
    let err = rerun("malloc_stats_prints_the_arena_figures_to_stderr", &[]);
    for line in [
        "Arena 0:",
        "system bytes",
        "in use bytes",
        "max mmap regions",
    ] {
        assert!(
            err.contains(line),
            "malloc_stats output lacks {line:?}: {err}"
        );
    }
}

/// Runs the test `name` again in a child process with `env` set, and
/// returns the child's stderr; fails if the child fails.
fn rerun(name: &str, env: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("MEMIO_SYS_TEST_CHILD", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{name} failed in the child: {out:?}");
    err
}

#[test]
fn the_break_moves_up_as_small_blocks_fill_the_heap() {
    if std::env::var_os("MEMIO_SYS_TEST_CHILD").is_none() {
        // One arena for every thread, so the test thread's blocks come from
        // the main arena, the one brk grows (a secondary arena is a mapping).
        let err = rerun(
            "the_break_moves_up_as_small_blocks_fill_the_heap",
            &[("MALLOC_ARENA_MAX", "1")],
        );
        eprint!("{err}");
        return;
    }
    if !glibc_or_skip("program_break") {
        return;
    }
    sys::mallopt(Mallopt::MmapThreshold(128 << 10)).unwrap();
    let start = sys::program_break();
    // 4 MiB in 1 KiB blocks: far more than the heap's slack, all below the
    // threshold, so the main arena must grow with brk.
    let blocks: Vec<SysBlock> = (0..4096).map(|_| SysBlock::new(1024).unwrap()).collect();
    let grown = sys::program_break();
    assert!(grown >= start + (3 << 20), "break {start:#x} -> {grown:#x}");
    drop(blocks);
    let _ = sys::trim(0);
    assert!(sys::program_break() < grown, "malloc_trim lowers the break");
}

#[test]
fn hostile_sizes_and_alignments_fail_cleanly_or_keep_their_promise() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Valgrind's replacement malloc stops the whole run on alignments near
    // 2^63 ("the 'impossible' happened"); glibc answers them.
    if !glibc_or_skip("hostile_sizes_and_alignments_fail_cleanly_or_keep_their_promise") {
        return;
    }
    let huge = isize::MAX as usize;
    // A block handed out must be as aligned as `align()` says and hold
    // `len()` writable bytes; anything else must be a clean failure.
    let check = |b: &mut SysBlock, what: &str| {
        assert_eq!(b.as_ptr() as usize % b.align(), 0, "{what}");
        assert!(b.usable_size() >= b.len(), "{what}");
        let n = b.len().min(64);
        b.write(&vec![0xa5; n]);
        assert_eq!(b.as_slice(), &vec![0xa5; n][..], "{what}");
    };
    for (align, size) in [
        (1usize << 63, 1usize),
        (1 << 62, 1),
        (1 << 40, 1),
        (4096, huge),
        (4096, huge - 4095),
        (1 << 62, huge),
        (16, usize::MAX),
        (8, 0),
    ] {
        match SysBlock::aligned(align, size) {
            Ok(mut b) => check(&mut b, &format!("posix_memalign({align}, {size})")),
            Err(e) => assert!(
                matches!(e, Error::OutOfMemory { .. } | Error::Unsupported { .. }),
                "{e:?}"
            ),
        }
        if let Some(mut b) = SysBlock::memalign(align, size) {
            check(&mut b, &format!("memalign({align}, {size})"));
        }
    }
    for align in [0, 1, 3, usize::MAX, (1 << 63) + 1] {
        if let Some(mut b) = SysBlock::memalign(align, 0) {
            check(&mut b, &format!("memalign({align}, 0)"));
        }
    }
    for size in [0, huge, huge - sys::page_size(), usize::MAX] {
        if let Some(mut b) = SysBlock::page_aligned(size) {
            check(&mut b, &format!("valloc({size})"));
        }
    }
    // A huge resize of an over-aligned block fails and keeps the block.
    let mut b = SysBlock::aligned(4096, 8).unwrap();
    b.write(b"kept");
    assert!(!b.resize(huge));
    assert!(!b.resize(usize::MAX));
    assert_eq!((b.as_slice(), b.len()), (&b"kept"[..], 8));
}

#[test]
fn hostile_mallopt_values_never_touch_memory_rust_owns() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !glibc_or_skip("hostile_mallopt_values_never_touch_memory_rust_owns") {
        return;
    }
    // Values past a C int are refused before glibc sees them.
    for option in [
        Mallopt::MmapThreshold(usize::MAX),
        Mallopt::TopPad(1 << 31),
        Mallopt::TrimThreshold(usize::MAX),
        Mallopt::Mxfast(usize::MAX),
    ] {
        let err = sys::mallopt(option).unwrap_err();
        assert!(err.to_string().contains(option.name()), "{err}");
    }
    // Live data, a Vec and a SysBlock, written before the knobs turn.
    let kept: Vec<u8> = (0..=255).collect();
    let mut block = SysBlock::new(4096).unwrap();
    block.write(&kept);
    // Whatever glibc accepts or refuses here, it only steers later calls.
    for option in [
        Mallopt::Perturb(0xff),
        Mallopt::CheckAction(-1),
        Mallopt::CheckAction(i32::MAX),
        Mallopt::MmapMax(-1),
        Mallopt::MmapThreshold(0),
        Mallopt::Mxfast(0),
        Mallopt::TopPad(i32::MAX as usize),
        Mallopt::TrimThreshold(0),
    ] {
        let _ = sys::mallopt(option);
    }
    // Fresh allocations work; calloc (Rust's alloc_zeroed) still zeroes
    // under M_PERTURB; Rust's live memory is untouched.
    let zeroed = vec![0u8; 100_000];
    assert!(zeroed.iter().all(|&b| b == 0));
    let mut grown = Vec::with_capacity(1);
    grown.extend_from_slice(&kept);
    grown.resize(1 << 20, 7);
    drop(grown);
    assert_eq!(block.as_slice(), &kept[..]);
    assert_eq!(kept, (0..=255).collect::<Vec<u8>>());
    // Back to glibc's defaults for the other tests.
    for option in [
        Mallopt::Perturb(0),
        Mallopt::CheckAction(3),
        Mallopt::MmapMax(65_536),
        Mallopt::MmapThreshold(128 << 10),
        Mallopt::Mxfast(128),
        Mallopt::TopPad(128 << 10),
        Mallopt::TrimThreshold(128 << 10),
    ] {
        sys::mallopt(option).unwrap();
    }
}
