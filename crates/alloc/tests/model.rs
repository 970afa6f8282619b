//! Model tests: random operation sequences against a map of live blocks.
//!
//! For every allocator: blocks never overlap, alignment holds, contents
//! written to a block survive every later operation, statistics agree with
//! the model, double frees and foreign pointers are reported, and freeing
//! everything brings the free space back to whole blocks (coalescing).
//! `PROPTEST_CASES` sets the number of cases (CI lowers it under valgrind).
#![allow(unsafe_code, reason = "the tests write and read the blocks they own")]
#![allow(missing_docs, reason = "test binary")]

use std::collections::BTreeMap;
use std::ptr::NonNull;

use allocator_api2::alloc::{Allocator, Layout};
use memio_alloc::{
    ArenaOptions, Buddy, BuddyOptions, Checks, Error, Fit, FreeList, FreeListOptions, Memory, Pool,
    PoolOptions, SyncPool, SyncPoolHandle, SyncPoolOptions,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Alloc { size: usize, align_log: u32 },
    Free { pick: usize },
    DoubleFree { pick: usize },
    Foreign { pick: usize },
    Resize { pick: usize, size: usize },
}

fn ops(max_size: usize) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        4 => (1..=max_size, 0u32..=7).prop_map(|(size, align_log)| Op::Alloc { size, align_log }),
        3 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        1 => any::<usize>().prop_map(|pick| Op::DoubleFree { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Foreign { pick }),
        1 => (any::<usize>(), 1..=max_size).prop_map(|(pick, size)| Op::Resize { pick, size }),
    ];
    proptest::collection::vec(op, 1..120)
}

/// A live block in the model.
#[derive(Debug, Clone, Copy)]
struct Block {
    size: usize,
    fill: u8,
}

/// The model: live blocks by address.
#[derive(Debug, Default)]
struct Model {
    live: BTreeMap<usize, Block>,
    next_fill: u8,
}

impl Model {
    fn insert(&mut self, p: NonNull<u8>, size: usize, align: usize) -> Result<(), TestCaseError> {
        let a = p.as_ptr() as usize;
        prop_assert_eq!(a % align, 0, "alignment {}", align);
        if let Some((&b, blk)) = self.live.range(..=a).next_back() {
            prop_assert!(b + blk.size <= a, "overlaps the block at {:#x}", b);
        }
        if let Some((&b, _)) = self.live.range(a..).next() {
            prop_assert!(a + size <= b, "overlaps the block at {:#x}", b);
        }
        self.next_fill = self.next_fill.wrapping_add(1).max(1);
        let fill = self.next_fill;
        // SAFETY: a live block of at least `size` bytes that the test owns.
        unsafe { p.as_ptr().write_bytes(fill, size) };
        self.live.insert(a, Block { size, fill });
        Ok(())
    }

    fn pick(&self, pick: usize) -> Option<(usize, Block)> {
        if self.live.is_empty() {
            return None;
        }
        self.live
            .iter()
            .nth(pick % self.live.len())
            .map(|(&a, &b)| (a, b))
    }

    fn check_contents(&self) -> Result<(), TestCaseError> {
        for (&a, blk) in &self.live {
            // SAFETY: live blocks of the test, `size` bytes each.
            let bytes = unsafe { std::slice::from_raw_parts(a as *const u8, blk.size) };
            prop_assert!(
                bytes.iter().all(|&x| x == blk.fill),
                "block {:#x} was overwritten",
                a
            );
        }
        Ok(())
    }

    fn requested(&self) -> usize {
        self.live.values().map(|b| b.size).sum()
    }
}

fn nn(a: usize) -> NonNull<u8> {
    NonNull::new(a as *mut u8).expect("live blocks are not null")
}

fn is_double_free(r: &Result<(), Error>) -> bool {
    matches!(r, Err(Error::DoubleFree { .. }))
}

fn is_foreign(r: &Result<(), Error>) -> bool {
    matches!(r, Err(Error::Foreign { .. }))
}

/// The operations every allocator shares, behind one face for the runner.
trait Subject {
    /// Allocates; returns the block and the size it was recorded with.
    fn alloc(&self, size: usize, align: usize) -> Option<(NonNull<u8>, usize)>;
    /// The allocator's validating raw free.
    ///
    /// # Safety
    ///
    /// As the allocator's `free`: a live block nothing else owns. The
    /// runner also passes freed and foreign pointers on purpose: the
    /// validating frees report those without touching memory.
    unsafe fn free(&self, p: NonNull<u8>) -> Result<(), Error>;
    /// Resizes in place; `Ok(false)` when it cannot.
    ///
    /// # Safety
    ///
    /// `p` is a live block the caller owns.
    unsafe fn resize(&self, _p: NonNull<u8>, _size: usize) -> Result<bool, Error> {
        Ok(false)
    }
    fn stats(&self) -> memio_alloc::Stats;
    fn check(&self) -> Result<(), Error> {
        Ok(())
    }
    fn max_align(&self) -> usize;
}

impl Subject for FreeList {
    fn alloc(&self, size: usize, align: usize) -> Option<(NonNull<u8>, usize)> {
        FreeList::alloc(self, size, align).ok().map(|p| (p, size))
    }
    unsafe fn free(&self, p: NonNull<u8>) -> Result<(), Error> {
        // SAFETY: the trait method's contract is the allocator's.
        unsafe { FreeList::free(self, p) }
    }
    unsafe fn resize(&self, p: NonNull<u8>, size: usize) -> Result<bool, Error> {
        // SAFETY: the trait method's contract is the allocator's.
        unsafe { self.resize_in_place(p, size) }
    }
    fn stats(&self) -> memio_alloc::Stats {
        FreeList::stats(self)
    }
    fn check(&self) -> Result<(), Error> {
        FreeList::check(self)
    }
    fn max_align(&self) -> usize {
        1 << 10
    }
}

impl Subject for Buddy {
    fn alloc(&self, size: usize, align: usize) -> Option<(NonNull<u8>, usize)> {
        Buddy::alloc(self, size, align).ok().map(|p| (p, size))
    }
    unsafe fn free(&self, p: NonNull<u8>) -> Result<(), Error> {
        // SAFETY: the trait method's contract is the allocator's.
        unsafe { Buddy::free(self, p) }
    }
    fn stats(&self) -> memio_alloc::Stats {
        Buddy::stats(self)
    }
    fn max_align(&self) -> usize {
        4096
    }
}

impl Subject for Pool {
    fn alloc(&self, size: usize, align: usize) -> Option<(NonNull<u8>, usize)> {
        if size > self.block_size() * 3 / 4 {
            // The inherent fast path: records the whole block.
            return Pool::alloc(self).ok().map(|p| (p, self.block_size()));
        }
        // Through the Allocator trait, so the requested size is recorded.
        let layout = Layout::from_size_align(size, align).ok()?;
        Allocator::allocate(&self, layout)
            .ok()
            .map(|p| (p.cast(), size))
    }
    unsafe fn free(&self, p: NonNull<u8>) -> Result<(), Error> {
        // SAFETY: the trait method's contract is the allocator's.
        unsafe { Pool::free(self, p) }
    }
    fn stats(&self) -> memio_alloc::Stats {
        Pool::stats(self)
    }
    fn max_align(&self) -> usize {
        self.align()
    }
}

impl Subject for SyncPool {
    fn alloc(&self, size: usize, _align: usize) -> Option<(NonNull<u8>, usize)> {
        (size <= self.block_size())
            .then(|| SyncPool::alloc(self).ok())
            .flatten()
            .map(|p| (p, size))
    }
    unsafe fn free(&self, p: NonNull<u8>) -> Result<(), Error> {
        // SAFETY: the trait method's contract is the allocator's.
        unsafe { SyncPool::free(self, p) }
    }
    fn stats(&self) -> memio_alloc::Stats {
        SyncPool::stats(self)
    }
    fn max_align(&self) -> usize {
        16
    }
}

impl Subject for SyncPoolHandle<'_> {
    fn alloc(&self, size: usize, _align: usize) -> Option<(NonNull<u8>, usize)> {
        (size <= self.pool().block_size())
            .then(|| SyncPoolHandle::alloc(self).ok())
            .flatten()
            .map(|p| (p, size))
    }
    unsafe fn free(&self, p: NonNull<u8>) -> Result<(), Error> {
        // SAFETY: the trait method's contract is the allocator's.
        unsafe { SyncPoolHandle::free(self, p) }
    }
    fn stats(&self) -> memio_alloc::Stats {
        // With ownership checks the live count comes from the pool's
        // per-block states: exact while the handle holds blocks.
        self.pool().stats()
    }
    fn max_align(&self) -> usize {
        16
    }
}

/// Runs `ops` against `subject`; `exact_requested` when the allocator
/// records requested sizes (not `SyncPool`).
fn run<S: Subject>(subject: &S, ops: &[Op], exact_requested: bool) -> Result<Model, TestCaseError> {
    let mut model = Model::default();
    for op in ops {
        match *op {
            Op::Alloc { size, align_log } => {
                let align = (1usize << align_log).min(subject.max_align());
                if let Some((p, size)) = subject.alloc(size, align) {
                    model.insert(p, size, align)?;
                }
            }
            Op::Free { pick } => {
                if let Some((a, _)) = model.pick(pick) {
                    // SAFETY: a live block of the model, owned by the test.
                    unsafe { subject.free(nn(a)) }
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    model.live.remove(&a);
                }
            }
            Op::DoubleFree { pick } => {
                if let Some((a, _)) = model.pick(pick) {
                    // SAFETY: a live block of the model, owned by the test.
                    unsafe { subject.free(nn(a)) }
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    model.live.remove(&a);
                    // SAFETY: deliberately freed twice: nothing allocated
                    // since, so the validating free reports it untouched.
                    let again = unsafe { subject.free(nn(a)) };
                    prop_assert!(is_double_free(&again), "second free of {:#x} accepted", a);
                }
            }
            Op::Foreign { pick } => {
                let local = 0u64;
                // SAFETY: deliberately foreign: outside the region, refused.
                let r = unsafe { subject.free(NonNull::from(&local).cast()) };
                prop_assert!(is_foreign(&r));
                if let Some((a, _)) = model.pick(pick) {
                    // SAFETY: deliberately inside a block: refused untouched.
                    let r = unsafe { subject.free(nn(a + 1)) };
                    prop_assert!(is_foreign(&r), "interior pointer accepted");
                }
            }
            Op::Resize { pick, size } => {
                if let Some((a, blk)) = model.pick(pick) {
                    // SAFETY: a live block of the model, owned by the test.
                    let done = unsafe { subject.resize(nn(a), size) }
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    if done {
                        model.live.remove(&a);
                        // Reinsert with the new size; the kept prefix still
                        // holds the old fill, and `insert` refills it all.
                        model.insert(nn(a), size, 1)?;
                        let _ = blk;
                    }
                }
            }
        }
        subject
            .check()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        model.check_contents()?;
        let st = subject.stats();
        prop_assert_eq!(st.live_blocks, model.live.len());
        if exact_requested {
            prop_assert_eq!(st.requested, model.requested());
        }
        prop_assert!(st.in_use >= st.requested && st.in_use + st.free <= st.reserved + 16);
        prop_assert!(st.largest_free <= st.free);
    }
    Ok(model)
}

fn free_all<S: Subject>(subject: &S, model: &Model) -> Result<(), TestCaseError> {
    for &a in model.live.keys() {
        // SAFETY: a live block of the model, owned by the test.
        unsafe { subject.free(nn(a)) }.map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    subject
        .check()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(())
}

proptest! {
    #[test]
    fn free_list_first_fit_matches_the_model(ops in ops(600)) {
        let heap = FreeListOptions::new(64 << 10).build_in(Memory::map(64 << 10).unwrap()).unwrap();
        let model = run(&heap, &ops, true)?;
        free_all(&heap, &model)?;
        let st = heap.stats();
        prop_assert_eq!((st.free_chunks, st.in_use, st.largest_free), (1, 0, st.reserved));
    }

    #[test]
    fn free_list_best_fit_with_checks_matches_the_model(ops in ops(600)) {
        let heap = FreeListOptions::new(64 << 10).fit(Fit::Best).checks(Checks::all()).build().unwrap();
        let model = run(&heap, &ops, true)?;
        free_all(&heap, &model)?;
        prop_assert_eq!(heap.stats().free_chunks, 1);
    }

    #[test]
    fn buddy_matches_the_model(ops in ops(3000), checks in any::<bool>()) {
        let checks = if checks { Checks::all() } else { Checks::off() };
        let buddy = BuddyOptions::new(64 << 10, 16).max_block(16 << 10).checks(checks).build().unwrap();
        let model = run(&buddy, &ops, true)?;
        let st = buddy.stats();
        prop_assert_eq!(st.in_use + st.free, st.reserved);
        free_all(&buddy, &model)?;
        let st = buddy.stats();
        // Every block merged back into its 16 KiB root.
        prop_assert_eq!((st.free_chunks, st.largest_free, st.free), (4, 16 << 10, 64 << 10));
    }

    #[test]
    fn pool_matches_the_model(ops in ops(64), checks in any::<bool>(), pow2 in any::<bool>()) {
        let checks = if checks { Checks::all() } else { Checks::off() };
        // A 64-byte stride takes the fast path (without checks); 48 does not.
        let block = if pow2 { 64 } else { 48 };
        let pool = PoolOptions::new(block).blocks(16).max_chunks(3).checks(checks).build().unwrap();
        let model = run(&pool, &ops, true)?;
        free_all(&pool, &model)?;
        let st = pool.stats();
        prop_assert_eq!((st.live_blocks, st.free_chunks, st.requested), (0, pool.capacity(), 0));
    }

    #[test]
    fn sync_pool_matches_the_model(ops in ops(64)) {
        // Double frees are reported with ownership checks on.
        let checks = Checks { ownership: true, ..Checks::off() };
        let pool = SyncPoolOptions::new(64).blocks(40).checks(checks).build().unwrap();
        let model = run(&pool, &ops, false)?;
        free_all(&pool, &model)?;
        prop_assert_eq!(pool.stats().free_chunks, 40);
    }

    #[test]
    fn sync_pool_handle_matches_the_model(ops in ops(64), magazine in 1usize..6) {
        let checks = Checks { ownership: true, ..Checks::off() };
        let pool = SyncPoolOptions::new(64).blocks(40).magazine(magazine).checks(checks).build().unwrap();
        let cache = pool.handle();
        let model = run(&cache, &ops, false)?;
        free_all(&cache, &model)?;
        drop(cache);
        let st = pool.stats();
        prop_assert_eq!((st.free_chunks, st.live_blocks), (40, 0));
        prop_assert_eq!(st.allocations, st.frees);
    }

    #[test]
    fn arena_marks_match_a_stack_model(
        steps in proptest::collection::vec((0u8..5, 1usize..300, 0u32..7, any::<usize>()), 1..80),
        poison in any::<bool>(),
    ) {
        let checks = if poison { Checks::all() } else { Checks::off() };
        let mut arena = ArenaOptions::new(32 << 10).checks(checks).build().unwrap();
        let mut model = Model::default();
        // Marks with the model's blocks at the time, oldest first.
        let mut marks: Vec<(memio_alloc::Mark, BTreeMap<usize, Block>)> = Vec::new();
        // Marks a rewind below them made stale.
        let mut stale: Vec<memio_alloc::Mark> = Vec::new();
        for (kind, size, align_log, pick) in steps {
            match kind {
                0 | 1 => {
                    let align = 1usize << align_log;
                    if let Ok(p) = arena.alloc(size, align) {
                        model.insert(p, size, align)?;
                    }
                }
                2 => marks.push((arena.mark(), model.live.clone())),
                3 => {
                    if marks.is_empty() {
                        arena.reset().map_err(|e| TestCaseError::fail(e.to_string()))?;
                        model.live.clear();
                    } else {
                        // Any mark still valid, not only the newest.
                        let i = pick % marks.len();
                        let (mark, live) = marks[i].clone();
                        arena.rewind(mark).map_err(|e| TestCaseError::fail(e.to_string()))?;
                        // Later marks counting more blocks are stale now;
                        // those at the same count name the same position.
                        let later = marks.split_off(i + 1);
                        for (m, l) in later {
                            if l.len() > live.len() {
                                stale.push(m);
                            } else {
                                marks.push((m, l));
                            }
                        }
                        model.live = live;
                    }
                }
                _ => {
                    if !stale.is_empty() {
                        let m = stale[pick % stale.len()];
                        let before = arena.stats();
                        let refused = matches!(arena.rewind(m), Err(Error::StaleMark { .. }));
                        prop_assert!(refused, "a stale mark was accepted");
                        prop_assert_eq!(arena.stats(), before);
                    }
                }
            }
            model.check_contents()?;
            let st = arena.stats();
            prop_assert_eq!(st.live_blocks, model.live.len());
            prop_assert_eq!(st.requested, model.requested());
        }
        arena.reset().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(arena.used(), 0);
    }
}
