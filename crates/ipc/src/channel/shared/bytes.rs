//! Variable-length records in a byte ring ([`Flavor::Bytes`]): one sender
//! and one receiver, the header, lock bytes, waits and dead-peer checks of
//! the slot channel, and its own index rule (see the layout in the module
//! docs of `channel`).

use super::protocol::Step;
use super::{Channel, Endpoint, Error, Flavor, HEADER_SIZE, Inner, Result, SLOT_HEADER, Side};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Bytes of a record header.
const RECORD_HEADER: usize = 8;
const DATA: u32 = 1;
const PADDING: u32 = 2;

/// Where the ring starts in the mapping.
const RING: usize = HEADER_SIZE + SLOT_HEADER;

fn record_size(len: usize) -> usize {
    RECORD_HEADER + len.next_multiple_of(RECORD_HEADER)
}

impl Inner {
    fn capacity(&self) -> usize {
        self.geo.slot_size
    }

    fn ring_at(&self, pos: u64) -> usize {
        // The remainder is below the capacity, a usize.
        usize::try_from(pos % self.capacity() as u64).unwrap_or(0)
    }

    /// The record header words at ring offset `at` (a multiple of 8 below
    /// the capacity).
    fn record_word(&self, at: usize) -> &AtomicU64 {
        debug_assert!(at % 8 == 0 && at + RECORD_HEADER <= self.capacity());
        // SAFETY: `RING + at` is a multiple of 8 and the 8 bytes lie inside
        // the mapping (RING + capacity <= len, validated at open).
        unsafe { super::view(&self.region, RING + at) }
    }

    fn ring_ptr(&self, at: usize) -> *mut u8 {
        self.region.as_mut_ptr().wrapping_add(RING + at)
    }

    fn byte_ring_corrupt(&self, why: String) -> Error {
        Error::Corrupt {
            object: self.object.clone(),
            why,
        }
    }
}

fn pack(len: u32, kind: u32) -> u64 {
    u64::from(len) | (u64::from(kind) << 32)
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
    /// header (after any padding the sender writes now).
    fn attempt(&self, len: usize) -> Step {
        let inner = &*self.end.inner;
        let h = inner.header();
        let cap = inner.capacity() as u64;
        let tail = h.tail.value.load(Ordering::Relaxed);
        let head = h.head.value.load(Ordering::Acquire);
        let at = inner.ring_at(tail) as u64;
        let need = record_size(len) as u64;
        let pad = if at + need > cap { cap - at } else { 0 };
        // Saturating: a head past the tail (a corrupt header) is no room.
        if cap.saturating_sub(tail.wrapping_sub(head)) < pad + need {
            return Step::Wait(None);
        }
        if pad > 0 {
            // The rest of the ring up to its end is skipped; published
            // with the record's commit (tail moves past both at once).
            let len = u32::try_from(pad - RECORD_HEADER as u64).unwrap_or(u32::MAX);
            inner
                .record_word(inner.ring_at(tail))
                .store(pack(len, PADDING), Ordering::Relaxed);
        }
        Step::Claimed(tail + pad)
    }

    fn loan_until(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<Option<ByteLoan<'_>>> {
        if len > self.max_record() {
            return Err(Error::TooLarge {
                object: self.end.inner.object.clone(),
                len,
                max: self.max_record(),
            });
        }
        let pos = self.end.claim_with(deadline, || self.attempt(len))?;
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
        let object = self.end.inner.object.clone();
        self.loan_until(len, None)?
            .ok_or_else(|| Error::Io(io::Error::other(format!("{object}: wait ended early"))))
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
        let end = offset.checked_add(data.len());
        if end.is_none_or(|e| e > self.len) {
            return Err(Error::TooLarge {
                object: self.tx.end.inner.object.clone(),
                len: end.unwrap_or(usize::MAX),
                max: self.len,
            });
        }
        let dst = self.as_mut_ptr().wrapping_add(offset);
        // SAFETY: the range lies inside this record's payload, which lies
        // inside the ring (the loan found room for it before the end); the
        // receiver does not read past `tail` until the commit.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
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

    /// Publishes the record (and any padding before it).
    pub fn commit(self) {
        let inner = &*self.tx.end.inner;
        let len = u32::try_from(self.len).unwrap_or(u32::MAX);
        inner
            .record_word(inner.ring_at(self.pos))
            .store(pack(len, DATA), Ordering::Relaxed);
        let next = self.pos + record_size(self.len) as u64;
        inner.header().tail.value.store(next, Ordering::Release);
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
    fn attempt(&self) -> Step {
        let inner = &*self.end.inner;
        let h = inner.header();
        let mut head = h.head.value.load(Ordering::Relaxed);
        loop {
            let tail = h.tail.value.load(Ordering::Acquire);
            if tail == head {
                return Step::Wait(None);
            }
            if tail.wrapping_sub(head) > inner.capacity() as u64 {
                // Indices no sender writes: `recv_until` reports the
                // record there as corrupt rather than skip for ever.
                return Step::Claimed(head);
            }
            let word = inner
                .record_word(inner.ring_at(head))
                .load(Ordering::Relaxed);
            let at = inner.ring_at(head);
            let fits = at + record_size((word & 0xffff_ffff) as usize) == inner.capacity();
            if word >> 32 != u64::from(PADDING) || !fits {
                // A data record, or garbage that `recv_until` reports.
                return Step::Claimed(head);
            }
            head += record_size((word & 0xffff_ffff) as usize) as u64;
            h.head.value.store(head, Ordering::Release);
        }
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Option<ByteRecord<'_>>> {
        let Some(pos) = self.end.claim_with(deadline, || self.attempt())? else {
            return Ok(None);
        };
        let inner = &*self.end.inner;
        let at = inner.ring_at(pos);
        let word = inner.record_word(at).load(Ordering::Relaxed);
        let len = (word & 0xffff_ffff) as usize;
        if word >> 32 != u64::from(DATA)
            || len > inner.capacity()
            || at + record_size(len) > inner.capacity()
        {
            return Err(inner.byte_ring_corrupt(format!(
                "the record at ring offset {at} has header {word:#x}, not a record that fits"
            )));
        }
        Ok(Some(ByteRecord { rx: self, pos, len }))
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
        let object = self.end.inner.object.clone();
        self.recv_until(None)?
            .ok_or_else(|| Error::Io(io::Error::other(format!("{object}: wait ended early"))))
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
        let end = offset.checked_add(buf.len());
        if end.is_none_or(|e| e > self.len) {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot read {} bytes at {offset} of a {}-byte record of {}",
                    buf.len(),
                    self.len,
                    self.rx.end.inner.object
                ),
            )));
        }
        let src = self.as_ptr().wrapping_add(offset);
        // SAFETY: the range lies inside the record, checked to fit in the
        // ring at receive time; the sender does not write it before the
        // release moves `head` past it.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
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
        let next = self.pos + record_size(self.len) as u64;
        inner.header().head.value.store(next, Ordering::Release);
        inner.wake(Side::Send);
    }
}
