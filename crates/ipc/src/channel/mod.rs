//! A zero-copy message channel in shared memory: a ring of fixed-size
//! slots that senders write in place and receivers read in place, with
//! futex wake-ups and dead-peer detection; or, for one sender and one
//! receiver, a ring of variable-length records ([`ChannelOptions::byte_ring`],
//! [`ByteSender`], [`ByteReceiver`]) with the same header, waits and
//! dead-peer detection.
//!
//! ```
//! use memio_ipc::channel::ChannelOptions;
//!
//! let name = format!("/memio-doc-channel-{}", std::process::id());
//! let ch = ChannelOptions::new().slots(4).slot_size(256).create(&name)?;
//! let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
//! // Loan a slot, write in place, commit.
//! let mut loan = tx.loan(5)?;
//! loan.write_at(0, b"hello")?;
//! loan.commit();
//! // Receive by reference, read in place, release.
//! let msg = rx.recv()?;
//! assert_eq!(msg.to_vec(), b"hello");
//! msg.release();
//! memio_ipc::channel::Channel::unlink(&name)?;
//! # Ok::<(), memio_ipc::Error>(())
//! ```
//!
//! # Flavours
//!
//! [`Flavor::Spsc`] admits one [`Sender`] and one [`Receiver`] at a time
//! (a second one is refused with [`Error::Busy`](crate::Error::Busy)); [`Flavor::Mpmc`] up to
//! [`MAX_ENDPOINTS`] of each, in any processes. Both are lock-free (see the
//! `protocol` module's notes). MPMC decides who owns a slot by
//! compare-and-swap on its state word, so a message is delivered to exactly
//! one receiver, in the order senders claimed positions. SPSC, having no
//! contest, skips those claims: the sender stores the state word when it
//! commits and the receiver stores its `head` when it releases, which
//! saves the cache-line crossings of the claims on every message.
//!
//! # Waiting
//!
//! A sender waits while the ring is full, a receiver while it is empty:
//! first by spinning ([`ChannelOptions::spin`] attempts, [`DEFAULT_SPIN`]
//! unless set, for round trips of a few hundred nanoseconds when both
//! processes have a core), then in
//! the kernel on a futex. A waiter announces itself in a waiter count
//! before it sleeps, so the other side makes the `futex_wake` system call
//! only when someone sleeps: the fast path of a send or a receive makes no
//! system call. Every wait can have a deadline.
//!
//! # Dead peers
//!
//! Each endpoint holds an OFD lock on its own byte of the shared-memory
//! object (through its own open file description), which the kernel drops
//! when the process dies, however it dies, so liveness never rests on a
//! pid that may be reused. A sleeping endpoint wakes at least every 50 ms
//! and looks at the locks:
//!
//! - a receiver finding the ring empty and no sender alive (after one had
//!   attached) gets [`Error::PeerGone`](crate::Error::PeerGone); messages committed before the
//!   sender died are still delivered first;
//! - a sender finding the ring full and no receiver alive gets
//!   [`Error::PeerGone`](crate::Error::PeerGone);
//! - a message a sender died writing (between loan and commit) is never
//!   delivered; the next sender starts after the last commit;
//! - a message a receiver died holding (between receive and release): MPMC
//!   frees its slot and the message is lost with that receiver; SPSC never
//!   moved `head` past it, so the next receiver gets it again.
//!
//! A message whose [`Received`] or [`ByteRecord`] is forgotten
//! (`mem::forget`) is never released, as if its receiver had died holding
//! it: SPSC and the byte ring deliver it again (to the same receiver or
//! the next); MPMC keeps its slot until that receiver is dropped and
//! another takes its place.
//!
//! The waiting side frees every slot in its way whose holder died in one
//! pass. An MPMC endpoint that attaches in a dead one's place (taking its
//! lock byte, which would make it look alive again) first frees what that
//! one held; so does a receiver attaching after one that was dropped with
//! a message forgotten (`mem::forget` of a [`Received`]).
//!
//! A named channel no process holds open (every handle holds a shared lock
//! on byte 0) is stale: [`ChannelOptions::create`] removes it and creates a
//! new one, and [`ChannelOptions::open`] opens it as it stands, recovering
//! what its dead endpoints left unfinished. An object whose creator died
//! before it was whole is removed by either: `create` then makes the
//! channel, `open` reports it not found.
//!
//! # Layout
//!
//! All integers are native-endian (the processes share one machine); the
//! object is `HEADER_SIZE + slots * stride` bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"memiochn"` as a little-endian u64, stored last by the creator |
//! | 8 | 4 | layout version ([`VERSION`]) |
//! | 12 | 4 | flavour: 1 SPSC, 2 MPMC |
//! | 16 | 4 | slot count `n` |
//! | 20 | 4 | slot payload size in bytes |
//! | 24 | 4 | stride: bytes from one slot to the next (64 + payload, rounded up to 128) |
//! | 28 | 4 | offset of slot 0 (`HEADER_SIZE`, 384) |
//! | 32 | 8 | object size in bytes |
//! | 40 | 4 | senders that ever attached |
//! | 44 | 4 | receivers that ever attached |
//! | 48 | 80 | zero |
//! | 128 | 8 | `tail`: next position to send (MPMC: a hint), own cache line |
//! | 192 | 4 | receivers' futex word (bumped to wake them) |
//! | 196 | 4 | receivers asleep or about to be |
//! | 256 | 8 | `head`: next position to receive (MPMC: a hint; SPSC: every position below it is released), own cache line |
//! | 320 | 4 | senders' futex word |
//! | 324 | 4 | senders asleep or about to be |
//! | 384 + i·stride | 8 | slot `i` state word `pos << 8 \| owner << 2 \| kind` (SPSC: only `FREE(i)` at creation and `FULL(pos)`) |
//! | 392 + i·stride | 4 | slot `i` message length |
//! | 448 + i·stride | payload | slot `i` message bytes |
//!
//! Everything is laid out in 128-byte pairs of cache lines, the unit in
//! which Intel cores prefetch: `tail` shares its pair only with the
//! receivers' waiter count (both read by senders), `head` only with the
//! senders', and a slot's header and first payload line form one pair.
//!
//! ## Byte ring ([`Flavor::Bytes`])
//!
//! The same header (flavour 3, slot count 1, "slot payload size" = ring
//! capacity `c`, a multiple of 64); `tail` and `head` count bytes ever
//! written and released (the ring offset is the count modulo `c`); slot 0's
//! 64-byte header is unused (zero), so the ring occupies bytes
//! `448 .. 448 + c`. Records are 8-byte aligned and never straddle the end:
//!
//! | offset in record | size | field |
//! |---|---|---|
//! | 0 | 4 | payload length `n` in bytes |
//! | 4 | 4 | kind: 1 data, 2 padding (the rest of the ring up to its end is skipped) |
//! | 8 | `n` | payload, then zero to 7 bytes to the next multiple of 8 |
//!
//! A record takes `8 + n` rounded up to 8 bytes, so the largest is `c - 8`
//! bytes. The sender writes the record header and payload before it
//! advances `tail` (release), so a sender that dies mid-record leaves
//! nothing visible; the receiver advances `head` when it releases. A record
//! that does not fit before the end follows a padding record, which the
//! sender publishes on its own first (so a record of any allowed size gets
//! through, however the ring happens to be filled).
//!
//! So `head` and `tail` are multiples of 8 with `head <= tail <= head + c`,
//! and `tail <= u64::MAX - c`. An endpoint that loads any other values
//! (another process wrote them) gets [`Error::Corrupt`](crate::Error::Corrupt)
//! at once, rather than wait for room or a record that will never come.
//!
//! Lock bytes (of the file, not the mapping): byte 0 shared by every handle,
//! bytes 1–64 one per sender, bytes 65–128 one per receiver.
//!
//! # Reading shared memory
//!
//! Another process can write the mapping at any time, so the safe API
//! copies in and out with raw copies ([`Loan::write_at`],
//! [`Received::read_at`]); the `&[u8]` views ([`Received::as_slice`],
//! [`Loan::as_mut_slice`]) are `unsafe`, since only the other processes'
//! good conduct keeps them from writing a slot the protocol gives to you.
//!
//! A process allowed to open a named channel's object for writing can
//! also shrink it (`ftruncate`), and the next access of another process to
//! the memory cut off then kills that process with `SIGBUS`, as with a file
//! truncated under a memory map: only the object's permissions (0600
//! unless [`ChannelOptions::mode`] says otherwise) guard against that. A
//! memfd channel ([`ChannelOptions::memfd`]) is sealed at its size.
//!
//! A sender is not `Clone`, and each send borrows it mutably, so one handle
//! cannot race itself; a second sender of an SPSC channel is refused at run
//! time, in this process or another.
//!
//! A process that forks (an `unsafe` call) leaves copies of its handles in
//! the child, holding the same locks: an SPSC sender or receiver must then
//! be used on one side of the fork only, since the lock cannot tell the
//! two apart. Open a new handle in the child instead.
//!
//! # What the compiler refuses
//!
//! A [`Loan`], [`Received`], [`ByteLoan`] or [`ByteRecord`] borrows its
//! endpoint mutably and is consumed by value, so the misuses that would
//! hand one slot to two owners, or keep a slot past its endpoint's lock,
//! do not compile.
//!
//! A message is consumed by exactly one release, which takes the
//! [`Received`] by value, so releasing twice is a use of a moved value:
//!
//! ```compile_fail,E0382
//! # fn demo(rx: &mut memio_ipc::channel::Receiver) -> memio_ipc::Result<()> {
//! let msg = rx.recv()?;
//! msg.release();
//! msg.release(); // error: use of moved value
//! # Ok(()) }
//! ```
//!
//! A loan is published by exactly one commit, which takes it by value:
//!
//! ```compile_fail,E0382
//! # fn demo(tx: &mut memio_ipc::channel::Sender) -> memio_ipc::Result<()> {
//! let loan = tx.loan(5)?;
//! loan.commit();
//! loan.commit(); // error: use of moved value
//! # Ok(()) }
//! ```
//!
//! A received message borrows its receiver, so it cannot outlive it:
//!
//! ```compile_fail,E0505
//! # fn demo(ch: &memio_ipc::channel::Channel) -> memio_ipc::Result<()> {
//! let mut rx = ch.receiver()?;
//! let msg = rx.recv()?;
//! drop(rx); // error: cannot move out of `rx` because it is borrowed
//! msg.release();
//! # Ok(()) }
//! ```
//!
//! Nor can a byte ring's record outlive its receiver:
//!
//! ```compile_fail,E0505
//! # fn demo(ch: &memio_ipc::channel::Channel) -> memio_ipc::Result<()> {
//! let mut rx = ch.byte_receiver()?;
//! let record = rx.recv()?;
//! drop(rx); // error: cannot move out of `rx` because it is borrowed
//! record.release();
//! # Ok(()) }
//! ```
//!
//! One receiver holds one message at a time (a receive borrows it
//! mutably): in SPSC, releasing a second would move `head` past the first
//! while it is read:
//!
//! ```compile_fail,E0499
//! # fn demo(rx: &mut memio_ipc::channel::Receiver) -> memio_ipc::Result<()> {
//! let first = rx.recv()?;
//! let second = rx.recv()?; // error: cannot borrow `*rx` as mutable more than once
//! first.release();
//! second.release();
//! # Ok(()) }
//! ```
//!
//! A loan borrows its sender, so it cannot outlive it:
//!
//! ```compile_fail,E0505
//! # fn demo(ch: &memio_ipc::channel::Channel) -> memio_ipc::Result<()> {
//! let mut tx = ch.sender()?;
//! let loan = tx.loan(5)?;
//! drop(tx); // error: cannot move out of `tx` because it is borrowed
//! loan.commit();
//! # Ok(()) }
//! ```
//!
//! and, each send borrowing it mutably, the sender cannot send while a
//! loan from it is open:
//!
//! ```compile_fail,E0499
//! # fn demo(tx: &mut memio_ipc::channel::Sender) -> memio_ipc::Result<()> {
//! let loan = tx.loan(5)?;
//! tx.send(b"other")?; // error: cannot borrow `*tx` as mutable more than once
//! loan.commit();
//! # Ok(()) }
//! ```

#![allow(
    unsafe_code,
    reason = "slots live in shared memory reached through raw pointers"
)]

mod byte_protocol;
mod protocol;
#[cfg(not(loom))]
mod shared;
mod sys;

pub use protocol::MAX_ENDPOINTS;
#[cfg(not(loom))]
pub use shared::{
    ByteLoan, ByteReceiver, ByteRecord, ByteSender, Channel, ChannelOptions, DEFAULT_SPIN, Loan,
    Received, Receiver, Sender,
};

/// The layout version this build reads and writes: 2 since SPSC channels
/// stopped claiming slots (a version-1 process would wait for claims that
/// never come).
pub const VERSION: u32 = 2;

/// Single or many senders and receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// One sender and one receiver at a time.
    Spsc,
    /// Up to [`MAX_ENDPOINTS`] senders and as many receivers.
    Mpmc,
    /// One sender and one receiver of variable-length records in a byte
    /// ring ([`ChannelOptions::byte_ring`], [`Channel::byte_sender`]).
    Bytes,
}

impl Flavor {
    fn code(self) -> u32 {
        match self {
            Flavor::Spsc => 1,
            Flavor::Mpmc => 2,
            Flavor::Bytes => 3,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Flavor::Spsc),
            2 => Some(Flavor::Mpmc),
            3 => Some(Flavor::Bytes),
            _ => None,
        }
    }

    /// How many endpoints of each side the flavour admits.
    #[must_use]
    pub fn max_endpoints(self) -> usize {
        match self {
            Flavor::Spsc | Flavor::Bytes => 1,
            Flavor::Mpmc => MAX_ENDPOINTS,
        }
    }
}

/// The index protocol on plain memory, for the loom model
/// (`tests/channel_loom.rs`); not part of the API.
#[cfg(loom)]
#[doc(hidden)]
pub mod model {
    pub use super::protocol::{
        AtomicU64, FREE, FULL, Ordering, READING, Slots, Step, Stuck, WRITING, claim_recv,
        claim_send, commit, free, initial, kind_of, owner_of, pos_of, recover, spsc, word,
    };

    /// The byte ring's index rule.
    pub mod bytes {
        pub use super::super::byte_protocol::{
            ByteRing, DATA, Damaged, PADDING, RECORD_HEADER, claim_recv, claim_send, commit,
            kind_of, len_of, pack, record_size, release,
        };
    }
}
