//! The index rule of the byte ring ([`Flavor::Bytes`](super::Flavor)): one
//! sender, one receiver, records of any length in a ring of `capacity`
//! bytes, with no lock and no system call.
//!
//! `tail` and `head` count bytes from the ring's creation; offset
//! `pos % capacity` in the ring holds position `pos`. A record is an 8-byte
//! header word (`len | kind << 32`) and its payload rounded up to 8 bytes,
//! never split at the ring's end: when it would not fit before the end, the
//! sender first publishes a *padding* record covering the rest of the ring,
//! and the record starts at offset 0 once the receiver has moved past the
//! padding.
//!
//! - Only the sender writes `tail`, and only the receiver writes `head`.
//! - The sender writes headers and payload between `tail` and `head +
//!   capacity`, which the receiver has given back (its release store of
//!   `head` pairs with the sender's acquiring load), then publishes them
//!   with a release store of `tail`, which pairs with the receiver's
//!   acquiring load: a receiver never sees a header or payload byte before
//!   it is written.
//! - The receiver reads between `head` and `tail`, skipping padding, and
//!   gives a record back by storing `head` past it (release), after which
//!   the sender may overwrite it.
//!
//! - So `head` and `tail` are multiples of 8 with `head <= tail <= head +
//!   capacity`, and `tail` stays far below `u64::MAX` (2^64 bytes are never
//!   sent). Both claims check this on the values they load: any other
//!   state was written by another process, and trusting it would form a
//!   misaligned header reference, overflow a position, or wait for room or
//!   a record that will never come.
//!
//! `tests/channel_loom.rs` checks these claims under every interleaving.

use super::protocol::{AtomicU64, Ordering, Step};

/// Bytes of a record header.
pub const RECORD_HEADER: usize = 8;
/// The kind of a record carrying a message.
pub const DATA: u32 = 1;
/// The kind of a record that skips the rest of the ring.
pub const PADDING: u32 = 2;

/// Bytes a record of `len` payload bytes takes in the ring.
#[must_use]
pub const fn record_size(len: usize) -> usize {
    RECORD_HEADER + len.next_multiple_of(RECORD_HEADER)
}

/// A record header word.
#[must_use]
pub fn pack(len: u32, kind: u32) -> u64 {
    u64::from(len) | (u64::from(kind) << 32)
}

/// The payload length of a header word.
#[must_use]
pub fn len_of(word: u64) -> usize {
    (word & 0xffff_ffff) as usize
}

/// The kind of a header word.
#[must_use]
pub fn kind_of(word: u64) -> u64 {
    word >> 32
}

/// `head` and `tail` as loaded, when they are no state of a sound ring
/// (see [`sound`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damaged {
    /// The receiver's index.
    pub head: u64,
    /// The sender's index.
    pub tail: u64,
}

/// Whether `head` and `tail` are a state a ring of `capacity` bytes can
/// show: multiples of 8, `head <= tail <= head + capacity`, and `tail` at
/// most `u64::MAX - capacity`, so that no position computed from them
/// overflows.
#[must_use]
#[inline]
pub fn sound(head: u64, tail: u64, capacity: u64) -> bool {
    (head | tail) % 8 == 0 && head <= tail && tail - head <= capacity && tail <= u64::MAX - capacity
}

/// `Ok` when `head` and `tail` are [`sound`].
fn check(head: u64, tail: u64, capacity: u64) -> Result<(), Damaged> {
    if sound(head, tail, capacity) {
        Ok(())
    } else {
        Err(Damaged { head, tail })
    }
}

/// Where the record headers live: the ring of a mapping, or (in the loom
/// model) a vector.
pub trait ByteRing {
    /// The ring's size in bytes (a multiple of 8).
    fn capacity(&self) -> usize;
    /// The header word at ring offset `at` (a multiple of 8 below the
    /// capacity).
    fn record_word(&self, at: usize) -> &AtomicU64;
    /// The ring offset of position `pos`.
    fn ring_at(&self, pos: u64) -> usize {
        // The remainder is below the capacity, a usize.
        usize::try_from(pos % self.capacity() as u64).unwrap_or(0)
    }
}

/// Room for a record of `len` bytes (at most `capacity - 8`), as the
/// sender sees it: the position of the record's header; `Wait` while the
/// ring is too full.
///
/// A record that does not fit before the ring's end needs the padding up
/// to the end first: that is published on its own (a padding record, a
/// release store of `tail`) as soon as it has room, and the record then
/// waits for room at offset 0. Waiting for both at once would wait for
/// ever when the padding and the record together exceed the ring.
///
/// # Errors
/// [`Damaged`] when the indices are not [`sound`].
pub fn claim_send(
    tail: &AtomicU64,
    head: &AtomicU64,
    ring: &impl ByteRing,
    len: usize,
) -> Result<Step, Damaged> {
    let cap = ring.capacity() as u64;
    let need = record_size(len) as u64;
    loop {
        let t = tail.load(Ordering::Relaxed);
        let h = head.load(Ordering::Acquire);
        check(h, t, cap)?;
        let room = cap - (t - h);
        // A multiple of 8 below the capacity, as `t` and the capacity are.
        let at = ring.ring_at(t);
        let pad = cap - at as u64;
        if need <= pad {
            return Ok(if need <= room {
                Step::Claimed(t)
            } else {
                Step::Wait(None)
            });
        }
        if room < pad {
            return Ok(Step::Wait(None));
        }
        let len = u32::try_from(pad - RECORD_HEADER as u64).unwrap_or(u32::MAX);
        ring.record_word(at)
            .store(pack(len, PADDING), Ordering::Relaxed);
        // No overflow: `t <= u64::MAX - cap` and `pad <= cap`.
        tail.store(t + pad, Ordering::Release);
    }
}

/// Publishes the record of `len` bytes at `pos`: its header, then `tail`
/// past it with a release store.
pub fn commit(tail: &AtomicU64, ring: &impl ByteRing, pos: u64, len: usize) {
    let word = pack(u32::try_from(len).unwrap_or(u32::MAX), DATA);
    ring.record_word(ring.ring_at(pos))
        .store(word, Ordering::Relaxed);
    // Wrapping: `pos` came from a claim on sound indices, so this never
    // wraps; it must not panic if it ever did.
    tail.store(pos.wrapping_add(record_size(len) as u64), Ordering::Release);
}

/// The position of the next data record, as the receiver sees it, skipping
/// (and giving back) padding; `Wait` when the ring is empty. A header that
/// is neither (garbage in a corrupt ring), or padding that is not all
/// published, is returned as `Claimed` too, for the caller to report.
///
/// # Errors
/// [`Damaged`] when the indices are not [`sound`].
pub fn claim_recv(
    head: &AtomicU64,
    tail: &AtomicU64,
    ring: &impl ByteRing,
) -> Result<Step, Damaged> {
    let cap = ring.capacity();
    let mut h = head.load(Ordering::Relaxed);
    loop {
        let t = tail.load(Ordering::Acquire);
        check(h, t, cap as u64)?;
        if t == h {
            return Ok(Step::Wait(None));
        }
        // A multiple of 8 below the capacity, as `h` and the capacity are.
        let at = ring.ring_at(h);
        let word = ring.record_word(at).load(Ordering::Relaxed);
        let size = record_size(len_of(word));
        // Padding reaches the ring's end exactly, and was published whole:
        // skipping it keeps `head <= tail`.
        let fits = at + size == cap && size as u64 <= t - h;
        if kind_of(word) != u64::from(PADDING) || !fits {
            return Ok(Step::Claimed(h));
        }
        h += size as u64;
        head.store(h, Ordering::Release);
    }
}

/// Gives the record of `len` bytes at `pos` back to the sender.
pub fn release(head: &AtomicU64, pos: u64, len: usize) {
    // Wrapping, as in `commit`.
    head.store(pos.wrapping_add(record_size(len) as u64), Ordering::Release);
}
