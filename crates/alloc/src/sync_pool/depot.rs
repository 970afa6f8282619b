//! The shared part of a [`SyncPool`](super::SyncPool): a lock-free stack of
//! free block indices that takes and gives whole batches.
//!
//! The head is one `AtomicU64` holding the top block's index in the few
//! low bits the block count needs and a tag in all the bits above (54 bits
//! for 1,000 blocks, 44 for a million) that changes on every update, so a
//! stale compare-and-swap fails (no ABA) unless a thread stalls inside a
//! walk for 2^tag-bits updates; the links live in a side array of `AtomicU32` rather than inside
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

/// How the head word splits into index (low `bits`) and tag (the rest).
#[derive(Debug, Clone, Copy)]
struct Packing {
    /// Bits of the index field: enough for every index and [`NONE`]
    /// (stored as all ones).
    bits: u32,
}

impl Packing {
    fn for_blocks(blocks: u32) -> Self {
        // Indices run to `blocks - 1`; all ones (the empty link) must be
        // above them: `blocks <= 2^bits - 1`.
        Self {
            bits: (u32::BITS - blocks.leading_zeros()).max(1),
        }
    }

    fn mask(self) -> u64 {
        (1u64 << self.bits) - 1
    }

    fn pack(self, tag: u64, index: u32) -> u64 {
        let field = if index == NONE {
            self.mask()
        } else {
            u64::from(index)
        };
        (tag << self.bits) | field
    }

    /// The tag after `head`'s, wrapping within the tag bits.
    fn bump(self, head: u64) -> u64 {
        (head >> self.bits).wrapping_add(1)
    }

    #[allow(
        clippy::cast_possible_truncation,
        reason = "the index field is at most 32 bits"
    )]
    fn index_of(self, head: u64) -> u32 {
        let field = head & self.mask();
        if field == self.mask() {
            NONE
        } else {
            field as u32
        }
    }

    /// Bits of tag.
    #[cfg(test)]
    fn tag_bits(self) -> u32 {
        u64::BITS - self.bits
    }
}

/// A lock-free stack of block indices `0..blocks`.
#[derive(Debug)]
pub(super) struct Depot {
    /// Index (low bits) and tag (the rest) of the top block; see
    /// [`Packing`].
    head: Padded<AtomicU64>,
    packing: Packing,
    /// Per block: the index below it on the stack, or [`NONE`].
    next: Box<[AtomicU32]>,
}

impl Depot {
    /// A stack holding every block, lowest index on top.
    pub(super) fn new(blocks: u32) -> Self {
        let next = (0..blocks)
            .map(|i| AtomicU32::new(if i + 1 < blocks { i + 1 } else { NONE }))
            .collect();
        let packing = Packing::for_blocks(blocks);
        Self {
            head: Padded(AtomicU64::new(
                packing.pack(0, if blocks > 0 { 0 } else { NONE }),
            )),
            packing,
            next,
        }
    }

    /// Takes up to `out.len()` blocks off the top into `out`, in stack
    /// order; returns how many (0 when the stack is empty).
    pub(super) fn pop(&self, out: &mut [u32]) -> usize {
        let mut head = self.head.0.load(Ordering::Acquire);
        loop {
            let mut index = self.packing.index_of(head);
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
                self.packing.pack(self.packing.bump(head), index),
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
            self.next[last as usize].store(self.packing.index_of(head), Ordering::Relaxed);
            match self.head.0.compare_exchange_weak(
                head,
                self.packing.pack(self.packing.bump(head), first),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The tag takes every bit the index does not need: a wrapped tag is
    /// what lets a stale swap succeed (ABA).
    #[test]
    fn the_tag_gets_every_spare_bit_and_wraps_without_touching_the_index() {
        for (blocks, tag_bits) in [(1, 63), (64, 57), (1000, 54), (1 << 20, 43), (NONE - 1, 32)] {
            let p = Packing::for_blocks(blocks);
            assert_eq!(p.tag_bits(), tag_bits, "{blocks} blocks");
            for index in [0, blocks - 1, NONE] {
                let head = p.pack(u64::MAX >> p.bits, index);
                assert_eq!(p.index_of(head), index);
                let next = p.pack(p.bump(head), index);
                assert_eq!(next >> p.bits, 0, "the tag wraps to 0");
                assert_eq!(p.index_of(next), index);
            }
        }
    }

    #[test]
    fn pops_and_pushes_keep_every_block_once() {
        let d = Depot::new(64);
        let mut out = [0u32; 64];
        assert_eq!(d.pop(&mut out[..10]), 10);
        assert_eq!(&out[..10], &(0..10).collect::<Vec<_>>()[..]);
        d.push(&[3, 1]);
        let mut rest = [0u32; 64];
        assert_eq!(d.pop(&mut rest), 56);
        assert_eq!(&rest[..3], &[3, 1, 10]);
        assert_eq!(d.pop(&mut rest), 0);
    }
}
