//! The index protocol of a channel: which endpoint may write or read which
//! slot, with no lock and no system call.
//!
//! Messages take consecutive *positions* 0, 1, 2, …; position `p` lives in
//! slot `p % n`. Each slot has one 64-bit state word,
//! `pos << 8 | owner << 2 | kind`, where `kind` is
//!
//! | kind | meaning | set by |
//! |---|---|---|
//! | `FREE` | the slot waits for a sender to claim position `pos` | creator (`pos = slot index`), a release or an abandon (`pos + n`) |
//! | `WRITING` | sender `owner` is writing position `pos` | a sender's compare-and-swap from `FREE(pos)` |
//! | `FULL` | position `pos` is written and waits for a receiver | the sender's commit (a release store) |
//! | `READING` | receiver `owner` holds position `pos` | a receiver's compare-and-swap from `FULL(pos)` |
//!
//! The state word alone decides ownership: a slot changes hands only by a
//! compare-and-swap on it, so two senders can never claim one position and
//! two receivers can never take one message. `tail` (the next position to
//! send) and `head` (the next to receive) are hints that whoever sees them
//! lag moves on with a compare-and-swap, so an endpoint that stops between
//! its claim and its hint update delays nobody.
//!
//! A sender that finds the slot of `tail` still holding `tail - n` sees a
//! full ring; a receiver that finds the slot of `head` `FREE(head)` or
//! `WRITING(head)` sees an empty one. An endpoint that died while holding a
//! slot (`WRITING` or `READING`) leaves it stuck: the waiting side learns the
//! owner from the state word, checks whether the owner is alive, and if not
//! [`recover`]s the slot to `FREE(pos + n)`, so a half-written message is
//! dropped, never delivered, and a message a dead receiver held is lost
//! with that receiver.
//!
//! The commit's release store pairs with the receiver's acquiring
//! compare-and-swap, so the payload written before the commit is visible to
//! the receiver; the release store of `FREE` pairs with the sender's
//! acquiring claim, so a sender never overwrites a payload still being read.
//! `tests/channel_loom.rs` checks these claims under every interleaving of a
//! few threads.
//!
//! # One sender, one receiver
//!
//! With one endpoint on each side ([`Flavor::Spsc`](super::Flavor)) no
//! position is ever contested, so the [`spsc`] rule skips the claims: a
//! message costs the sender one store of the state word (and one of its
//! own `tail`) and the receiver one load of it (and one store of its own
//! `head`). Each compare-and-swap of the general rule would pull the state
//! word's cache line from the other core once more, and on a round trip
//! that line crossing is most of the cost.

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicU64, Ordering};

/// The slot waits for a sender.
pub const FREE: u64 = 0;
/// A sender is writing the slot.
pub const WRITING: u64 = 1;
/// The slot holds a message.
pub const FULL: u64 = 2;
/// A receiver holds the slot's message.
pub const READING: u64 = 3;

/// The most senders, and the most receivers, one channel can have (the
/// owner field has six bits).
pub const MAX_ENDPOINTS: usize = 64;

/// Positions stay below this: a state word keeps 56 bits of one, so a
/// higher position would read as a lower one's (a message long received
/// could be taken again). At ten million messages a second a ring reaches
/// it after two centuries; `tail` or `head` past it was written by
/// another process, and no claim is made there.
pub const POS_LIMIT: u64 = 1 << 56;

/// Whether `tail` and `head` (hints or cursors) lie where positions can
/// be: below [`POS_LIMIT`] with room for a lap of `n` slots.
pub fn positions_sound(tail: u64, head: u64, n: u64) -> bool {
    tail.max(head) < POS_LIMIT.saturating_sub(n.saturating_add(1))
}

/// A state word.
#[must_use]
pub const fn word(pos: u64, kind: u64, owner: u8) -> u64 {
    (pos << 8) | ((owner as u64 & 0x3f) << 2) | kind
}

/// The position a state word is about.
pub const fn pos_of(word: u64) -> u64 {
    word >> 8
}

/// The kind of a state word.
pub const fn kind_of(word: u64) -> u64 {
    word & 3
}

/// The owner of a `WRITING` or `READING` state word.
pub const fn owner_of(word: u64) -> u8 {
    ((word >> 2) & 0x3f) as u8
}

/// Where the state words live: the slots of a mapping, or (in the loom
/// model) a vector.
pub trait Slots {
    /// How many slots (`n`).
    fn count(&self) -> u64;
    /// The state word of the slot that holds position `pos`.
    fn state(&self, pos: u64) -> &AtomicU64;
}

/// A slot held by an endpoint that the caller is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stuck {
    /// The state word seen.
    pub word: u64,
}

impl Stuck {
    /// The endpoint holding the slot.
    pub fn owner(self) -> u8 {
        owner_of(self.word)
    }
}

/// The outcome of one attempt to claim a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The caller now owns this position.
    Claimed(u64),
    /// Nothing to claim now (ring full for a sender, empty for a
    /// receiver); `Some` when another endpoint's held slot is in the way.
    Wait(Option<Stuck>),
}

/// Claims the next position to send as sender `me`.
pub fn claim_send(tail: &AtomicU64, slots: &impl Slots, me: u8) -> Step {
    let mut lag = 0;
    loop {
        let t = tail.load(Ordering::Acquire);
        if t >= POS_LIMIT {
            return Step::Wait(None);
        }
        let state = slots.state(t);
        let seen = state.load(Ordering::Acquire);
        if seen == word(t, FREE, 0) {
            if state
                .compare_exchange(
                    seen,
                    word(t, WRITING, me),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                let _ = tail.compare_exchange(
                    t,
                    t.wrapping_add(1),
                    Ordering::Release,
                    Ordering::Relaxed,
                );
                return Step::Claimed(t);
            }
            continue;
        }
        if pos_of(seen) >= t {
            // Someone claimed `t` (or it is long gone): the hint lags.
            if lagged_too_far(&mut lag, slots) {
                return Step::Wait(None);
            }
            let _ =
                tail.compare_exchange(t, t.wrapping_add(1), Ordering::Release, Ordering::Relaxed);
            continue;
        }
        // The slot still holds position `t - n`: the ring is full.
        let kind = kind_of(seen);
        return Step::Wait((kind == WRITING || kind == READING).then_some(Stuck { word: seen }));
    }
}

/// Claims the next message as receiver `me`.
pub fn claim_recv(head: &AtomicU64, slots: &impl Slots, me: u8) -> Step {
    let mut lag = 0;
    loop {
        let h = head.load(Ordering::Acquire);
        if h >= POS_LIMIT {
            return Step::Wait(None);
        }
        let state = slots.state(h);
        let seen = state.load(Ordering::Acquire);
        if seen == word(h, FULL, 0) {
            if state
                .compare_exchange(
                    seen,
                    word(h, READING, me),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                let _ = head.compare_exchange(
                    h,
                    h.wrapping_add(1),
                    Ordering::Release,
                    Ordering::Relaxed,
                );
                return Step::Claimed(h);
            }
            continue;
        }
        let pos = pos_of(seen);
        if pos > h || (pos == h && kind_of(seen) == READING) {
            // Taken by another receiver, or dropped: the hint lags.
            if lagged_too_far(&mut lag, slots) {
                return Step::Wait(None);
            }
            let _ =
                head.compare_exchange(h, h.wrapping_add(1), Ordering::Release, Ordering::Relaxed);
            continue;
        }
        let stuck = (pos == h && kind_of(seen) == WRITING).then_some(Stuck { word: seen });
        return Step::Wait(stuck);
    }
}

/// Counts one step of a hint catching up; whether it has now taken more
/// steps than a sound ring needs. A hint lags by at most the claims made
/// and not yet followed by their own hint update, one per endpoint, so
/// more than `n + MAX_ENDPOINTS` steps means another process wrote the
/// hint or the slots, and one attempt must not walk there for ever.
fn lagged_too_far(steps: &mut u64, slots: &impl Slots) -> bool {
    *steps += 1;
    *steps > slots.count() + MAX_ENDPOINTS as u64
}

/// Publishes the message at `pos` (the sender's commit).
pub fn commit(slots: &impl Slots, pos: u64) {
    slots
        .state(pos)
        .store(word(pos, FULL, 0), Ordering::Release);
}

/// Hands the slot of `pos` to the next lap: a receiver's release, or a
/// sender dropping a loan it did not commit.
pub fn free(slots: &impl Slots, pos: u64) {
    slots.state(pos).store(
        word(pos.wrapping_add(slots.count()), FREE, 0),
        Ordering::Release,
    );
}

/// Frees a slot whose owner died, if it still holds what `stuck` saw;
/// `true` when this call freed it.
pub fn recover(slots: &impl Slots, stuck: Stuck) -> bool {
    let pos = pos_of(stuck.word);
    slots
        .state(pos)
        .compare_exchange(
            stuck.word,
            word(pos.wrapping_add(slots.count()), FREE, 0),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
}

/// The state words of a new ring: slot `i` waits for position `i`.
pub fn initial(index: u64) -> u64 {
    word(index, FREE, 0)
}

/// The index rule of a ring with one sender and one receiver.
///
/// - The state word of a slot is written by the sender alone: `FULL(pos)`
///   when it commits position `pos` (a release store after the payload and
///   length). The receiver takes position `h` when it loads `FULL(h)`
///   (acquire), so it never sees a payload before it is written, and an
///   uncommitted loan (the sender dropped it, or died holding it) leaves
///   nothing a receiver could take.
/// - `head` is written by the receiver alone: it stores `h + 1` (release)
///   when it releases position `h`. The sender may write position `t` once
///   `t < head + n`, which it learns with an acquiring load of `head` that
///   pairs with that store, so it never overwrites a slot still being
///   read. It loads `head` only when the last value it saw leaves no room,
///   so a stream of messages seldom touches the receiver's cache line.
/// - `tail` is written by the sender alone, after each commit: where the
///   next sender starts ([`resume`]). A sender that died between its commit
///   and that store leaves `tail` one behind a `FULL` slot, which
///   [`resume`] steps over (and moves `tail` past, so that deaths in a
///   row never leave it more than one behind).
/// - A receiver that dies holding a message has not moved `head`, so the
///   next receiver gets that message again: a message is lost only with
///   the ring itself.
pub mod spsc {
    use super::{AtomicU64, FULL, Ordering, POS_LIMIT, Slots, Step, word};

    /// Whether the sender may write position `next`; `head_seen` is the
    /// last `head` it loaded, refreshed here when it leaves no room.
    pub fn claim_send(
        next: u64,
        head_seen: &mut u64,
        head: &AtomicU64,
        slots: &impl Slots,
    ) -> Step {
        let n = slots.count();
        if next >= POS_LIMIT {
            return Step::Wait(None);
        }
        if next < head_seen.saturating_add(n) {
            return Step::Claimed(next);
        }
        *head_seen = head.load(Ordering::Acquire);
        if next < head_seen.saturating_add(n) {
            Step::Claimed(next)
        } else {
            Step::Wait(None)
        }
    }

    /// Publishes position `pos`, then records where the next one goes.
    pub fn commit(tail: &AtomicU64, slots: &impl Slots, pos: u64) {
        slots
            .state(pos)
            .store(word(pos, FULL, 0), Ordering::Release);
        tail.store(pos.wrapping_add(1), Ordering::Release);
    }

    /// The message at `head`, if it is committed.
    pub fn claim_recv(head: &AtomicU64, slots: &impl Slots) -> Step {
        let h = head.load(Ordering::Acquire);
        if h < POS_LIMIT && slots.state(h).load(Ordering::Acquire) == word(h, FULL, 0) {
            Step::Claimed(h)
        } else {
            Step::Wait(None)
        }
    }

    /// Gives position `pos` back to the sender.
    #[inline]
    pub fn release(head: &AtomicU64, pos: u64) {
        head.store(pos.wrapping_add(1), Ordering::Release);
    }

    /// Where a sender attaching to the ring starts: `tail`, or past a
    /// commit whose sender died before it moved `tail`. The caller must be
    /// the one sender: `tail` is brought up to date here, so that a sender
    /// dying in the same place next time leaves `tail` one step behind
    /// again, never more (after `n` such deaths in a row the slot of
    /// `tail` would hold a later position, and a sender resuming there
    /// would rewrite a slot the receiver may be reading).
    pub fn resume(tail: &AtomicU64, slots: &impl Slots) -> u64 {
        let start = tail.load(Ordering::Acquire);
        let mut t = start;
        // At most one step in a sound ring; bounded for a damaged one.
        for _ in 0..slots.count() {
            if slots.state(t).load(Ordering::Acquire) != word(t, FULL, 0) {
                break;
            }
            t = t.wrapping_add(1);
        }
        if t != start {
            tail.store(t, Ordering::Release);
        }
        t
    }

    /// Whether `head`, `tail` and the slot of `head` are what a sound ring
    /// can show to its waiting sender or receiver: `head <= tail + 1` (a
    /// dead sender may leave `tail` one behind its last commit), `tail <=
    /// head + n`, both where positions can be ([`positions_sound`](super::positions_sound)),
    /// and every position below `tail` committed. When not,
    /// another process wrote them, and waiting would be for ever: the
    /// receiver waits for a position that will never be committed, or the
    /// sender for a `head` that will never come.
    pub fn consistent(tail: &AtomicU64, head: &AtomicU64, slots: &impl Slots) -> bool {
        let h = head.load(Ordering::Acquire);
        let t = tail.load(Ordering::Acquire);
        if h > t.saturating_add(1) || t > h.saturating_add(slots.count()) {
            return false;
        }
        if !super::positions_sound(t, h, slots.count()) {
            return false;
        }
        // `FULL(h)` was stored before `tail` passed `h`, and the sender
        // cannot store a later position there before `head` passes `h`.
        t <= h || slots.state(h).load(Ordering::Acquire) == word(h, FULL, 0)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Vec4(Vec<AtomicU64>);

    impl Slots for Vec4 {
        fn count(&self) -> u64 {
            self.0.len() as u64
        }
        fn state(&self, pos: u64) -> &AtomicU64 {
            &self.0[usize::try_from(pos % self.count()).unwrap()]
        }
    }

    fn ring(n: u64) -> (AtomicU64, AtomicU64, Vec4) {
        let slots = (0..n).map(|i| AtomicU64::new(initial(i))).collect();
        (AtomicU64::new(0), AtomicU64::new(0), Vec4(slots))
    }

    #[test]
    fn a_ring_fills_drains_and_wraps_in_order() {
        let (tail, head, slots) = ring(3);
        for lap in 0..4u64 {
            for i in 0..3 {
                assert_eq!(claim_send(&tail, &slots, 0), Step::Claimed(lap * 3 + i));
                commit(&slots, lap * 3 + i);
            }
            assert_eq!(claim_send(&tail, &slots, 0), Step::Wait(None), "full");
            for i in 0..3 {
                assert_eq!(claim_recv(&head, &slots, 0), Step::Claimed(lap * 3 + i));
                free(&slots, lap * 3 + i);
            }
            assert_eq!(claim_recv(&head, &slots, 0), Step::Wait(None), "empty");
        }
    }

    #[test]
    fn a_dead_writer_is_seen_recovered_and_its_message_skipped() {
        let (tail, head, slots) = ring(2);
        assert_eq!(claim_send(&tail, &slots, 5), Step::Claimed(0));
        // Sender 5 dies here. A second sender goes on past it.
        assert_eq!(claim_send(&tail, &slots, 6), Step::Claimed(1));
        commit(&slots, 1);
        let Step::Wait(Some(stuck)) = claim_recv(&head, &slots, 0) else {
            panic!("the receiver must see the held slot");
        };
        assert_eq!(stuck.owner(), 5);
        assert!(recover(&slots, stuck));
        assert!(
            !recover(&slots, stuck),
            "a second recovery finds it changed"
        );
        assert_eq!(claim_recv(&head, &slots, 0), Step::Claimed(1));
    }

    #[test]
    fn a_dead_reader_blocks_a_full_ring_until_recovered() {
        let (tail, head, slots) = ring(1);
        assert_eq!(claim_send(&tail, &slots, 0), Step::Claimed(0));
        commit(&slots, 0);
        assert_eq!(claim_recv(&head, &slots, 9), Step::Claimed(0));
        let Step::Wait(Some(stuck)) = claim_send(&tail, &slots, 0) else {
            panic!("the sender must see the held slot");
        };
        assert_eq!(stuck.owner(), 9);
        assert!(recover(&slots, stuck));
        assert_eq!(claim_send(&tail, &slots, 0), Step::Claimed(1));
    }

    #[test]
    fn spsc_fills_drains_and_wraps_in_order() {
        let (tail, head, slots) = ring(3);
        let (mut next, mut seen) = (spsc::resume(&tail, &slots), 0);
        for lap in 0..4u64 {
            for i in 0..3 {
                assert_eq!(
                    spsc::claim_send(next, &mut seen, &head, &slots),
                    Step::Claimed(lap * 3 + i)
                );
                spsc::commit(&tail, &slots, next);
                next += 1;
            }
            assert_eq!(
                spsc::claim_send(next, &mut seen, &head, &slots),
                Step::Wait(None)
            );
            for i in 0..3 {
                assert_eq!(spsc::claim_recv(&head, &slots), Step::Claimed(lap * 3 + i));
                spsc::release(&head, lap * 3 + i);
            }
            assert_eq!(spsc::claim_recv(&head, &slots), Step::Wait(None));
        }
        assert_eq!(spsc::resume(&tail, &slots), 12);
    }

    #[test]
    fn spsc_resume_steps_over_a_commit_whose_sender_died_before_moving_tail() {
        let (tail, head, slots) = ring(4);
        let mut seen = 0;
        assert_eq!(
            spsc::claim_send(0, &mut seen, &head, &slots),
            Step::Claimed(0)
        );
        // The commit's state store, then death before `tail` moves.
        slots.state(0).store(word(0, FULL, 0), Ordering::Release);
        assert_eq!(tail.load(Ordering::Relaxed), 0);
        assert_eq!(
            spsc::resume(&tail, &slots),
            1,
            "position 0 is delivered, not overwritten"
        );
        assert_eq!(spsc::claim_recv(&head, &slots), Step::Claimed(0));
        // A loan never committed leaves nothing to receive.
        spsc::release(&head, 0);
        assert_eq!(
            spsc::claim_send(1, &mut seen, &head, &slots),
            Step::Claimed(1)
        );
        assert_eq!(spsc::claim_recv(&head, &slots), Step::Wait(None));
        assert_eq!(spsc::resume(&tail, &slots), 1);
    }

    #[test]
    fn spsc_resume_after_senders_dying_in_a_row_never_rewrites_a_delivered_position() {
        // One slot. Sender A commits 0 and dies before moving `tail`;
        // sender B resumes at 1, the receiver releases 0, B commits 1 and
        // dies before moving `tail` too. The receiver now holds 1.
        let (tail, head, slots) = ring(1);
        slots.state(0).store(word(0, FULL, 0), Ordering::Release);
        let b = spsc::resume(&tail, &slots);
        assert_eq!(b, 1);
        assert_eq!(spsc::claim_recv(&head, &slots), Step::Claimed(0));
        spsc::release(&head, 0);
        let mut seen = head.load(Ordering::Acquire);
        assert_eq!(
            spsc::claim_send(b, &mut seen, &head, &slots),
            Step::Claimed(1)
        );
        slots.state(1).store(word(1, FULL, 0), Ordering::Release);
        assert_eq!(spsc::claim_recv(&head, &slots), Step::Claimed(1));
        // Sender C must not start at a position already committed (that
        // slot is the one the receiver is reading).
        let c = spsc::resume(&tail, &slots);
        assert_eq!(c, 2, "resumed at a position already committed");
    }

    #[test]
    fn spsc_a_message_held_by_a_dead_receiver_is_delivered_again() {
        let (tail, head, slots) = ring(2);
        spsc::commit(&tail, &slots, 0);
        assert_eq!(spsc::claim_recv(&head, &slots), Step::Claimed(0));
        // The receiver dies without releasing: the next one gets it.
        assert_eq!(spsc::claim_recv(&head, &slots), Step::Claimed(0));
    }

    #[test]
    fn an_abandoned_loan_is_skipped_by_receivers() {
        let (tail, head, slots) = ring(2);
        assert_eq!(claim_send(&tail, &slots, 0), Step::Claimed(0));
        free(&slots, 0);
        assert_eq!(claim_send(&tail, &slots, 0), Step::Claimed(1));
        commit(&slots, 1);
        assert_eq!(claim_recv(&head, &slots, 0), Step::Claimed(1));
    }
}
