//! Variable-length records in a byte ring ([`Flavor::Bytes`]): one sender
//! and one receiver, the header, lock bytes, waits and dead-peer checks of
//! the slot channel, and its own index rule (`byte_protocol`; see the
//! layout in the module docs of `channel`).

use super::super::byte_protocol::{
    self as rule, ByteRing, DATA, Damaged, RECORD_HEADER, kind_of, len_of, record_size,
};
use super::protocol::Step;
use super::{
    Channel, Endpoint, Error, Flavor, HEADER_SIZE, Inner, Result, SLOT_HEADER, Side, copy_in,
    copy_out, ended_early,
};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Where the ring starts in the mapping.
const RING: usize = HEADER_SIZE + SLOT_HEADER;

impl ByteRing for Inner {
    fn capacity(&self) -> usize {
        self.geo.slot_size
    }

    fn record_word(&self, at: usize) -> &AtomicU64 {
        debug_assert!(at % 8 == 0 && at + RECORD_HEADER <= self.capacity());
        // SAFETY: `RING + at` is a multiple of 8 and the 8 bytes lie inside
        // the mapping (RING + capacity <= len, validated at open).
        unsafe { super::view(&self.region, RING + at) }
    }
}

impl Inner {
    fn ring_ptr(&self, at: usize) -> *mut u8 {
        self.region.as_mut_ptr().wrapping_add(RING + at)
    }

    fn byte_ring_corrupt(&self, why: String) -> Error {
        Error::Corrupt {
            object: self.object.clone(),
            why,
        }
    }

    fn damaged(&self, bad: Damaged) -> Error {
        self.byte_ring_corrupt(format!(
            "its head ({}) and tail ({}) are no state of a byte ring of {} bytes",
            bad.head,
            bad.tail,
            self.capacity()
        ))
    }
}

impl Endpoint {
    /// [`Endpoint::claim_with`] for a byte ring, whose attempts can find
    /// damaged indices: that ends the wait at once, as
    /// [`Error::Corrupt`].
    fn claim_bytes(
        &self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut() -> std::result::Result<Step, Damaged>,
    ) -> Result<Option<u64>> {
        let mut damaged = None;
        let claimed = self.claim_with(deadline, || {
            attempt().unwrap_or_else(|bad| {
                damaged = Some(bad);
                // Ends the wait; the position is never used.
                Step::Claimed(0)
            })
        })?;
        match damaged {
            Some(bad) => Err(self.inner.damaged(bad)),
            None => Ok(claimed),
        }
    }
}

impl Channel {
    fn need_flavor(&self, bytes: bool) -> Result<()> {
        let is_bytes = self.inner.geo.flavor == Flavor::Bytes;
        if is_bytes == bytes {
            return Ok(());
        }
        Err(Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: {}",
                self.inner.object,
                if is_bytes {
                    "it is a byte ring: use byte_sender/byte_receiver"
                } else {
                    "it is a slot channel: use sender/receiver"
                }
            ),
        )))
    }

    pub(super) fn check_slots(&self) -> Result<()> {
        self.need_flavor(false)
    }

    /// Attaches the sender of a byte ring.
    ///
    /// # Errors
    /// [`Error::Busy`] when it has a sender; the channel is not a byte
    /// ring; an OS error.
    pub fn byte_sender(&self) -> Result<ByteSender> {
        self.need_flavor(true)?;
        let (lock, me) = self.attach(Side::Send)?;
        Ok(ByteSender {
            end: Endpoint::new(&self.inner, lock, me, Side::Send),
        })
    }

    /// Attaches the receiver of a byte ring.
    ///
    /// # Errors
    /// [`Error::Busy`] when it has a receiver; the channel is not a byte
    /// ring; an OS error.
    pub fn byte_receiver(&self) -> Result<ByteReceiver> {
        self.need_flavor(true)?;
        let (lock, me) = self.attach(Side::Recv)?;
        Ok(ByteReceiver {
            end: Endpoint::new(&self.inner, lock, me, Side::Recv),
        })
    }
}

/// The sending end of a byte ring.
#[derive(Debug)]
pub struct ByteSender {
    end: Endpoint,
}

impl ByteSender {
    /// The largest record the ring takes.
    #[must_use]
    pub fn max_record(&self) -> usize {
        self.end.inner.capacity() - RECORD_HEADER
    }

    /// Room for a record of `len` bytes at `tail`: the position of its
    /// header (after any padding, which it publishes first).
    fn attempt(&self, len: usize) -> std::result::Result<Step, Damaged> {
        let inner = &*self.end.inner;
        let h = inner.header();
        let before = h.tail.value.load(Ordering::Relaxed);
        let step = rule::claim_send(&h.tail.value, &h.head.value, inner, len);
        // Padding published (only this sender moves `tail`): a receiver
        // asleep on the empty ring must skip it, or this sender, waiting
        // for the room it frees, would wait for the receiver's next look.
        if h.tail.value.load(Ordering::Relaxed) != before {
            inner.wake(Side::Recv);
        }
        step
    }

    /// Claims room for a record of `len` bytes, waiting until `deadline`
    /// (`None`: for ever).
    fn claim_until(&self, len: usize, deadline: Option<Instant>) -> Result<Option<u64>> {
        if len > self.max_record() {
            return Err(Error::TooLarge {
                object: self.end.inner.object.clone(),
                len,
                max: self.max_record(),
            });
        }
        self.end.claim_bytes(deadline, || self.attempt(len))
    }

    fn loan_until(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<Option<ByteLoan<'_>>> {
        let pos = self.claim_until(len, deadline)?;
        Ok(pos.map(|pos| ByteLoan { tx: self, pos, len }))
    }

    /// Loans room for a record of `len` bytes, waiting while the ring is
    /// too full.
    ///
    /// # Errors
    /// [`Error::TooLarge`] when the record is larger than the ring holds
    /// ([`ByteSender::max_record`]); [`Error::PeerGone`] when the ring is
    /// full and the receiver is gone; an OS error.
    pub fn loan(&mut self, len: usize) -> Result<ByteLoan<'_>> {
        match self.claim_until(len, None)? {
            Some(pos) => Ok(ByteLoan { tx: self, pos, len }),
            None => Err(ended_early(&self.end.inner.object)),
        }
    }

    /// [`ByteSender::loan`] waiting at most until `deadline`; `Ok(None)`
    /// when it passed.
    ///
    /// # Errors
    /// See [`ByteSender::loan`].
    pub fn loan_deadline(&mut self, len: usize, deadline: Instant) -> Result<Option<ByteLoan<'_>>> {
        self.loan_until(len, Some(deadline))
    }

    /// Sends a copy of `msg`.
    ///
    /// # Errors
    /// See [`ByteSender::loan`].
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        let mut loan = self.loan(msg.len())?;
        loan.write_at(0, msg)?;
        loan.commit();
        Ok(())
    }
}

impl ByteSender {
    /// Sends a copy of `msg` if there is room now; `false` when not.
    ///
    /// # Errors
    /// See [`ByteSender::loan`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<bool> {
        let Some(mut loan) = self.loan_until(msg.len(), Some(Instant::now()))? else {
            return Ok(false);
        };
        loan.write_at(0, msg)?;
        loan.commit();
        Ok(true)
    }
}

/// Room for one record, written in place and published by
/// [`commit`](ByteLoan::commit); dropped uncommitted, nothing is sent.
pub struct ByteLoan<'a> {
    tx: &'a mut ByteSender,
    pos: u64,
    len: usize,
}

impl fmt::Debug for ByteLoan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteLoan")
            .field("pos", &self.pos)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl ByteLoan<'_> {
    /// The record's length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the record is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first payload byte, for writing in place through raw pointers;
    /// valid for [`ByteLoan::len`] bytes until the commit.
    #[must_use]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        let inner = &*self.tx.end.inner;
        inner.ring_ptr(inner.ring_at(self.pos) + RECORD_HEADER)
    }

    /// Copies `data` into the record at `offset`.
    ///
    /// # Errors
    /// The range passes the end of the record.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        let base = self.as_mut_ptr();
        // SAFETY: the record's `len` payload bytes lie inside the ring (the
        // loan found room for them before the end); the receiver does not
        // read past `tail` until the commit; `data` is a separate buffer.
        unsafe { copy_in(&self.tx.end.inner.object, base, self.len, offset, data) }
    }

    /// The record's payload as a slice.
    ///
    /// # Safety
    ///
    /// No other process may touch these bytes while the slice lives.
    #[must_use]
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `len` bytes inside the ring; the caller vouches that no
        // other process accesses them.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len) }
    }

    /// Publishes the record.
    pub fn commit(self) {
        let inner = &*self.tx.end.inner;
        rule::commit(&inner.header().tail.value, inner, self.pos, self.len);
        inner.wake(Side::Recv);
    }
}

/// The receiving end of a byte ring.
#[derive(Debug)]
pub struct ByteReceiver {
    end: Endpoint,
}

impl ByteReceiver {
    /// The position of the next data record, skipping padding; `Wait`
    /// when the ring is empty.
    fn attempt(&self) -> std::result::Result<Step, Damaged> {
        let inner = &*self.end.inner;
        let h = inner.header();
        let before = h.head.value.load(Ordering::Relaxed);
        let step = rule::claim_recv(&h.head.value, &h.tail.value, inner);
        if h.head.value.load(Ordering::Relaxed) != before {
            // Padding skipped: a sender may be waiting for that room.
            inner.wake(Side::Send);
        }
        step
    }

    /// Takes the next record, waiting until `deadline` (`None`: for
    /// ever): its position and length.
    fn take(&mut self, deadline: Option<Instant>) -> Result<Option<(u64, usize)>> {
        let Some(pos) = self.end.claim_bytes(deadline, || self.attempt())? else {
            return Ok(None);
        };
        let inner = &*self.end.inner;
        let at = inner.ring_at(pos);
        let word = inner
            .record_word(at)
            .load(std::sync::atomic::Ordering::Relaxed);
        let len = len_of(word);
        // A record ends by `tail`: what lies past it is a loan still being
        // written, never to be read.
        let committed = inner
            .header()
            .tail
            .value
            .load(std::sync::atomic::Ordering::Acquire)
            .wrapping_sub(pos);
        if kind_of(word) != u64::from(DATA)
            || len > inner.capacity()
            || at + record_size(len) > inner.capacity()
            || record_size(len) as u64 > committed
        {
            return Err(inner.byte_ring_corrupt(format!(
                "the record at ring offset {at} has header {word:#x}, not a record that fits"
            )));
        }
        Ok(Some((pos, len)))
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Option<ByteRecord<'_>>> {
        Ok(self
            .take(deadline)?
            .map(|(pos, len)| ByteRecord { rx: self, pos, len }))
    }

    /// Receives the next record by reference, waiting while the ring is
    /// empty; its bytes are the caller's until the [`ByteRecord`] is
    /// released or dropped.
    ///
    /// # Errors
    /// [`Error::PeerGone`] when the ring is empty and the sender is gone;
    /// [`Error::Corrupt`] for a record header that makes no sense; an OS
    /// error.
    pub fn recv(&mut self) -> Result<ByteRecord<'_>> {
        match self.take(None)? {
            Some((pos, len)) => Ok(ByteRecord { rx: self, pos, len }),
            None => Err(ended_early(&self.end.inner.object)),
        }
    }

    /// [`ByteReceiver::recv`] waiting at most until `deadline`; `Ok(None)`
    /// when it passed.
    ///
    /// # Errors
    /// See [`ByteReceiver::recv`].
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<Option<ByteRecord<'_>>> {
        self.recv_until(Some(deadline))
    }

    /// A record if one is there now.
    ///
    /// # Errors
    /// See [`ByteReceiver::recv`].
    pub fn try_recv(&mut self) -> Result<Option<ByteRecord<'_>>> {
        self.recv_until(Some(Instant::now()))
    }
}

/// A received record, still in the ring: read it in place, then
/// [`release`](ByteRecord::release) (or drop) it to give its bytes back.
pub struct ByteRecord<'a> {
    rx: &'a mut ByteReceiver,
    pos: u64,
    len: usize,
}

impl fmt::Debug for ByteRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteRecord")
            .field("pos", &self.pos)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl ByteRecord<'_> {
    /// The record's length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the record is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first payload byte, valid for [`ByteRecord::len`] bytes until
    /// the release.
    #[must_use]
    pub fn as_ptr(&self) -> *const u8 {
        let inner = &*self.rx.end.inner;
        inner.ring_ptr(inner.ring_at(self.pos) + RECORD_HEADER)
    }

    /// Copies `buf.len()` bytes of the record at `offset` into `buf`.
    ///
    /// # Errors
    /// The range passes the end of the record.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let object = &self.rx.end.inner.object;
        // SAFETY: the record's `len` bytes lie inside the ring (checked at
        // receive time); the sender does not write them before the release
        // moves `head` past them; `buf` is a separate buffer.
        unsafe { copy_out(object, "record", self.as_ptr(), self.len, offset, buf) }
    }

    /// The record as a new vector.
    #[must_use]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len];
        // The range is the whole record: cannot fail.
        let _ = self.read_at(0, &mut v);
        v
    }

    /// The record as a slice, without copying.
    ///
    /// # Safety
    ///
    /// No other process may write these bytes while the slice lives: the
    /// protocol gives them to this receiver alone, but a process ignoring
    /// it could.
    #[must_use]
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes inside the ring; the caller vouches that
        // nobody writes them meanwhile.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// Gives the record's bytes back to the sender.
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for ByteRecord<'_> {
    fn drop(&mut self) {
        let inner = &*self.rx.end.inner;
        rule::release(&inner.header().head.value, self.pos, self.len);
        inner.wake(Side::Send);
    }
}
