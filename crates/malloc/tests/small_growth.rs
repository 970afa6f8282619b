//! Blocks with a page of their own (above 64 KiB, below the mapping
//! threshold) grown by `realloc`: in place while the slices after the page
//! are free, moved otherwise. Its own test binary with one test, whose
//! parts run one after another, each on a new thread: the first takes a
//! fresh heap (no thread has ended yet to leave one), the next the heap
//! the first left with every block freed, so where pages go is known.
#![allow(unsafe_code, reason = "driving GlobalAlloc by hand")]
#![allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "runs of raw heap calls on blocks the test holds"
)]

use std::alloc::{GlobalAlloc, Layout};

use memio_malloc::MemioMalloc;

const KIB: usize = 1024;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

/// Marks every 61st byte of `len` at `p`, from `from` on, with a pattern
/// of its offset (every page gets some; valgrind gets few to follow).
///
/// # Safety
///
/// `p` is a live block of at least `len` bytes.
unsafe fn fill(p: *mut u8, from: usize, len: usize) {
    for i in (from.next_multiple_of(61)..len).step_by(61) {
        #[allow(clippy::cast_possible_truncation, reason = "a pattern")]
        let byte = (i % 251) as u8;
        let at = p.wrapping_add(i);
        // SAFETY: `i < len`: inside the block, by the function's contract.
        unsafe { at.write(byte) };
    }
}

/// Checks the bytes [`fill`] marked in the first `len` bytes at `p`.
///
/// # Safety
///
/// `p` is a live block of at least `len` bytes.
unsafe fn check(p: *mut u8, len: usize) {
    for i in (0..len).step_by(61) {
        let at = p.wrapping_add(i);
        // SAFETY: `i < len`: inside the block, by the function's contract.
        let got = unsafe { at.read() };
        assert_eq!(usize::from(got), i % 251, "byte {i}");
    }
}

/// Runs `f` on a new thread, whose heap holds only what `f` allocates.
fn on_new_thread(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(f).join().unwrap();
}

#[test]
fn blocks_with_pages_of_their_own_grow_in_place_when_they_can() {
    // Blocks up to 512 KiB from pages (by default the threshold starts at
    // 128 KiB and rises as large blocks are freed).
    assert_eq!(memio_malloc::set_mmap_threshold(512 * KIB), 512 * KIB);
    a_block_with_its_own_page_grows_where_it_is_until_the_next_page();
    blocks_grown_in_place_go_back_whole();
    a_block_grown_on_another_thread_moves_and_keeps_its_bytes();
    a_block_in_the_last_slices_of_a_segment_changes_class_in_place();
}

/// The slice (of 64) of a segment where `p` lies.
fn slice_of(p: *mut u8) -> usize {
    (p as usize & ((4 << 20) - 1)) >> 16
}

/// A 72 KiB block in the segment's last two slices grows to 100 KiB in
/// the same two slices: the page changes class without taking any.
fn a_block_in_the_last_slices_of_a_segment_changes_class_in_place() {
    on_new_thread(|| {
        let a = MemioMalloc;
        let mut held = Vec::new();
        let mut target = None;
        // Two-slice pages from slice 1 up: every other one starts at an
        // even slice, so one three-slice page flips them onto 62.
        for _ in 0..2000 {
            // SAFETY: non-zero size.
            let p = unsafe { a.alloc(layout(72 * KIB)) };
            assert!(!p.is_null());
            if slice_of(p) == 62 {
                target = Some(p);
                break;
            }
            held.push((p, 72 * KIB));
            if slice_of(p) == 61 {
                // SAFETY: non-zero size.
                let q = unsafe { a.alloc(layout(150 * KIB)) };
                assert!(!q.is_null());
                held.push((q, 150 * KIB));
            }
        }
        let p = target.expect("a block in slices 62 and 63");
        // SAFETY: a live block of at least that many bytes.
        unsafe { fill(p, 0, 72 * KIB) };
        // SAFETY: live with `layout(72 KiB)`.
        let q = unsafe { a.realloc(p, layout(72 * KIB), 100 * KIB) };
        assert_eq!(q, p);
        // SAFETY: live.
        assert!(unsafe { memio_malloc::usable_size(q) } >= 100 * KIB);
        // SAFETY: a live block of at least that many bytes.
        unsafe { check(q, 72 * KIB) };
        // SAFETY: every block is live with the layout it was made with.
        unsafe {
            a.dealloc(q, layout(100 * KIB));
            for (b, len) in held {
                a.dealloc(b, layout(len));
            }
        }
    });
}

fn a_block_with_its_own_page_grows_where_it_is_until_the_next_page() {
    on_new_thread(|| {
        let a = MemioMalloc;
        let mut len = 80 * KIB;
        // SAFETY: non-zero size.
        let p = unsafe { a.alloc(layout(len)) };
        assert!(!p.is_null());
        // SAFETY: a live block of at least that many bytes.
        unsafe { fill(p, 0, len) };
        let classes_before = memio_malloc::stats().classes;
        // 80 KiB to 400 KiB: the page takes the free slices after it.
        for grown in [120 * KIB, 200 * KIB, 300 * KIB, 400 * KIB] {
            // SAFETY: `p` is live with `layout(len)`.
            let q = unsafe { a.realloc(p, layout(len), grown) };
            assert_eq!(q, p, "moved growing to {grown}");
            // SAFETY: live.
            let usable = unsafe { memio_malloc::usable_size(q) };
            assert!(usable >= grown, "{usable} < {grown}");
            // SAFETY: a live block of at least that many bytes.
            unsafe { fill(q, len, grown) };
            // SAFETY: a live block of at least that many bytes.
            unsafe { check(q, grown) };
            len = grown;
        }
        // The block counts in its new class only, as a block made there.
        let classes = memio_malloc::stats().classes;
        let class_of = |size: usize| classes.iter().position(|c| c.block_size >= size).unwrap();
        let (old, new) = (class_of(80 * KIB), class_of(400 * KIB));
        assert_eq!(classes[old].in_use + 1, classes_before[old].in_use);
        assert_eq!(classes[new].in_use, classes_before[new].in_use + 1);
        // A block placed right after it: the next step must move, and
        // keeps every byte.
        // SAFETY: non-zero size.
        let next = unsafe { a.alloc(layout(100 * KIB)) };
        assert!(!next.is_null());
        // SAFETY: `p` is live with `layout(len)`.
        let moved = unsafe { a.realloc(p, layout(len), 500 * KIB) };
        assert!(!moved.is_null());
        // SAFETY: a live block of at least that many bytes.
        unsafe { check(moved, len) };
        if moved == p {
            // The block after took other slices; the page grew again.
            assert!(next as usize >= p as usize + 512 * KIB || (next as usize) < p as usize);
        }
        // SAFETY: live blocks with these layouts.
        unsafe {
            a.dealloc(moved, layout(500 * KIB));
            a.dealloc(next, layout(100 * KIB));
        }
        let after = memio_malloc::stats().classes;
        assert_eq!(after[new].in_use, classes_before[new].in_use);
    });
}

/// A block grown in place is freed, reused and grown again like any other:
/// two hundred rounds leave the heap where one round left it.
fn blocks_grown_in_place_go_back_whole() {
    on_new_thread(|| {
        let a = MemioMalloc;
        let round = || {
            // SAFETY: non-zero sizes; each block is live with the layout
            // it is resized and freed with, and is filled and checked
            // within it.
            unsafe {
                let mut len = 70 * KIB;
                let mut p = a.alloc(layout(len));
                assert!(!p.is_null());
                fill(p, 0, len);
                for grown in [90 * KIB, 150 * KIB, 260 * KIB, 500 * KIB] {
                    p = a.realloc(p, layout(len), grown);
                    assert!(!p.is_null());
                    fill(p, len, grown);
                    len = grown;
                }
                check(p, len);
                a.dealloc(p, layout(len));
            }
        };
        round();
        let one = memio_malloc::stats();
        for _ in 0..200 {
            round();
        }
        let many = memio_malloc::stats();
        assert_eq!(many.segments, one.segments, "{one:?}\n{many:?}");
        let in_use = |s: &memio_malloc::Stats| s.classes.iter().map(|c| c.in_use).sum::<usize>();
        assert_eq!(in_use(&many), in_use(&one));
    });
}

/// A block grown by a thread other than its maker's moves (only the
/// maker's thread changes its pages), keeping its bytes.
fn a_block_grown_on_another_thread_moves_and_keeps_its_bytes() {
    let a = MemioMalloc;
    let len = 100 * KIB;
    let (made, take) = std::sync::mpsc::channel::<usize>();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    // The maker stays alive (its heap its own) while this thread grows
    // the block.
    let maker = std::thread::spawn(move || {
        // SAFETY: non-zero size.
        let p = unsafe { a.alloc(layout(len)) };
        assert!(!p.is_null());
        // SAFETY: a live block of at least that many bytes.
        unsafe { fill(p, 0, len) };
        made.send(p as usize).unwrap();
        wait.recv().unwrap();
    });
    let p = take.recv().unwrap() as *mut u8;
    // SAFETY: live with `layout(len)`, and no longer touched by its maker.
    let q = unsafe { a.realloc(p, layout(len), 300 * KIB) };
    assert!(!q.is_null());
    assert_ne!(q, p);
    // SAFETY: a live block of at least that many bytes.
    unsafe { check(q, len) };
    done.send(()).unwrap();
    maker.join().unwrap();
    // SAFETY: live.
    unsafe { a.dealloc(q, layout(300 * KIB)) };
}
