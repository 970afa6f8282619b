//! The shared part of a [`SyncPool`](super::SyncPool): a lock-free stack of
//! free block indices that takes and gives whole batches.
//!
//! The head is one `AtomicU64` holding a 32-bit index and a 32-bit tag
//! that changes on every update, so a stale compare-and-swap fails (no
//! ABA); the links live in a side array of `AtomicU32` rather than inside
//! the blocks, so reading a link never races with the owner of a block
//! writing its data.
//!
//! - [`Depot::push`] links a caller's chain of blocks locally (the blocks
//!   are the caller's, nobody else reads their links), points the chain's
//!   last link at the head and swings the head to the chain's first block:
//!   one compare-and-swap for the whole batch.
//! - [`Depot::pop`] reads the head, walks up to `n` links and swings the
//!   head past them: again one compare-and-swap. The walk may read links
//!   that change under it (another thread popped and pushed meanwhile), but
//!   every change to the stack passes through the head and bumps the tag;
//!   if the head is unchanged when the swap succeeds, nothing changed, and
//!   the blocks walked are exactly the first `n` of the stack. A stale walk
//!   is bounded by `n` and thrown away when the swap fails.
//!
//! Ordering: a push publishes with `Release` (the links it wrote, and the
//! block contents written by its last owner); a pop reads the head with
//! `Acquire`. Each successful swap is a read-modify-write, so it continues
//! the release sequence of every earlier push: a pop sees the links of all
//! pushes before the head value it read.
//!
//! This module holds no pointers; the loom model in
//! `tests/sync_pool_loom.rs` checks it under every interleaving of a few
//! threads.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The empty link.
pub(super) const NONE: u32 = u32::MAX;

/// Keeps a value on its own cache lines (128 bytes: adjacent-line
/// prefetch pairs lines on x86-64).
#[derive(Debug)]
#[repr(align(128))]
pub(super) struct Padded<T>(pub(super) T);

fn pack(tag: u64, index: u32) -> u64 {
    (tag << 32) | u64::from(index)
}

fn bump(head: u64) -> u64 {
    (head >> 32).wrapping_add(1) & 0xFFFF_FFFF
}

#[allow(
    clippy::cast_possible_truncation,
    reason = "the low 32 bits are the index"
)]
fn index_of(head: u64) -> u32 {
    head as u32
}

/// A lock-free stack of block indices `0..blocks`.
#[derive(Debug)]
pub(super) struct Depot {
    /// Index (low 32 bits) and tag (high 32 bits) of the top block.
    head: Padded<AtomicU64>,
    /// Per block: the index below it on the stack, or [`NONE`].
    next: Box<[AtomicU32]>,
}

impl Depot {
    /// A stack holding every block, lowest index on top.
    pub(super) fn new(blocks: u32) -> Self {
        let next = (0..blocks)
            .map(|i| AtomicU32::new(if i + 1 < blocks { i + 1 } else { NONE }))
            .collect();
        Self {
            head: Padded(AtomicU64::new(pack(0, if blocks > 0 { 0 } else { NONE }))),
            next,
        }
    }

    /// Takes up to `out.len()` blocks off the top into `out`, in stack
    /// order; returns how many (0 when the stack is empty).
    pub(super) fn pop(&self, out: &mut [u32]) -> usize {
        let mut head = self.head.0.load(Ordering::Acquire);
        loop {
            let mut index = index_of(head);
            let mut n = 0;
            while index != NONE && n < out.len() {
                out[n] = index;
                n += 1;
                // A stale walk reads a stale link; the swap fails then.
                index = self.next[index as usize].load(Ordering::Relaxed);
            }
            if n == 0 {
                return 0;
            }
            match self.head.0.compare_exchange_weak(
                head,
                pack(bump(head), index),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return n,
                Err(now) => head = now,
            }
        }
    }

    /// Puts `chain` (blocks the caller owns, none on the stack) on top, the
    /// first element topmost.
    pub(super) fn push(&self, chain: &[u32]) {
        let (Some(&first), Some(&last)) = (chain.first(), chain.last()) else {
            return;
        };
        for pair in chain.windows(2) {
            self.next[pair[0] as usize].store(pair[1], Ordering::Relaxed);
        }
        let mut head = self.head.0.load(Ordering::Relaxed);
        loop {
            self.next[last as usize].store(index_of(head), Ordering::Relaxed);
            match self.head.0.compare_exchange_weak(
                head,
                pack(bump(head), first),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }
}
