//! The channel in a shared-memory object: the header, the slots, the
//! endpoints and their waits.
//!
//! # Safety
//!
//! The header and the slot headers are reached through pointers into a
//! mapping that the [`Inner`] owns and that lives as long as every
//! reference derived from it; their fields are atomics, so other processes
//! writing them concurrently is no data race. Payload bytes are copied with
//! raw copies, bounds-checked against the geometry this process validated
//! at open time (never re-read from the shared header).
//!
//! # Inlining
//!
//! The per-message path (loan, write, commit; receive with its spinning,
//! read, release) is `#[inline]`, so that a caller in another crate
//! compiles it into its own loop. Called across the crate boundary, a send
//! and a receive of 64 bytes on one thread took 68 ns, inlined 23 ns (of
//! which the two locked fences are 18), and most of that difference lay
//! on the path of every round trip between two processes.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use memio_map::{MapOptions, Region};
use rustix::shm::{Mode, OFlags};

use super::protocol::{self, Slots, Step, Stuck};
use super::sys::{self, LOCK_SPAN, RECEIVER_BYTES, SENDER_BYTES};
use super::{Flavor, VERSION};
use crate::error::{self, Error, Result};
use crate::key::DEFAULT_MODE;
use crate::name::{self, Kind};

mod bytes;
pub use bytes::{ByteLoan, ByteReceiver, ByteRecord, ByteSender};

/// `b"memiochn"` read as a little-endian u64.
const MAGIC: u64 = u64::from_le_bytes(*b"memiochn");
/// Bytes before slot 0.
const HEADER_SIZE: usize = 384;
/// The unit of the layout. Intel cores fetch cache lines in aligned
/// pairs (the L2 spatial prefetcher), so each index shares its pair only
/// with what its own writer reads (`tail` with the receivers' waiter
/// count, `head` with the senders'), and a slot starts a pair, so that its
/// header and first payload line travel together.
const PAIR: usize = 128;
/// Bytes of a slot before its payload.
const SLOT_HEADER: usize = 64;
/// How often a sleeping endpoint looks at its peers' locks.
const CHECK_EVERY: Duration = Duration::from_millis(50);
/// How long an open waits for a creator still initialising the object.
const INIT_WAIT: Duration = Duration::from_secs(1);

/// An index on a cache line of its own.
#[repr(C, align(64))]
struct Line {
    value: AtomicU64,
    _pad: [u64; 7],
}

/// A futex word and the count of those sleeping on it.
#[repr(C, align(64))]
struct Waiters {
    seq: AtomicU32,
    sleepers: AtomicU32,
    _pad: [u32; 14],
}

/// The header at offset 0 (see the layout table in the module docs).
#[repr(C)]
struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    flavor: AtomicU32,
    slots: AtomicU32,
    slot_size: AtomicU32,
    stride: AtomicU32,
    data_offset: AtomicU32,
    total: AtomicU64,
    senders_joined: AtomicU32,
    receivers_joined: AtomicU32,
    _pad: [u32; 4],
    _spare: Line,
    tail: Line,
    recv_wait: Waiters,
    head: Line,
    send_wait: Waiters,
}

/// The first 64 bytes of a slot.
#[repr(C, align(64))]
struct SlotHeader {
    state: AtomicU64,
    len: AtomicU32,
    _pad: [u32; 13],
}

const _: () = assert!(size_of::<Header>() == HEADER_SIZE);
const _: () = assert!(size_of::<SlotHeader>() == SLOT_HEADER);
const _: () = assert!(std::mem::offset_of!(Header, tail) == 128);
const _: () = assert!(std::mem::offset_of!(Header, recv_wait) == 192);
const _: () = assert!(std::mem::offset_of!(Header, head) == 256);
const _: () = assert!(std::mem::offset_of!(Header, send_wait) == 320);

/// What a channel looks like, as validated by this process.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    flavor: Flavor,
    slots: usize,
    slot_size: usize,
    stride: usize,
    total: usize,
}

impl Geometry {
    fn new(flavor: Flavor, slots: usize, slot_size: usize) -> Option<Self> {
        let stride = SLOT_HEADER
            .checked_add(slot_size)?
            .checked_next_multiple_of(PAIR)?;
        let total = stride.checked_mul(slots)?.checked_add(HEADER_SIZE)?;
        // The header stores these as u32.
        u32::try_from(slots).ok()?;
        u32::try_from(stride).ok()?;
        Some(Self {
            flavor,
            slots,
            slot_size,
            stride,
            total,
        })
    }
}

/// One side of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Send,
    Recv,
}

impl Side {
    fn first_byte(self) -> i64 {
        match self {
            Side::Send => SENDER_BYTES,
            Side::Recv => RECEIVER_BYTES,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Side::Send => "sender",
            Side::Recv => "receiver",
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Send => Side::Recv,
            Side::Recv => Side::Send,
        }
    }
}

/// The mapping and what this process knows of it.
struct Inner {
    region: Region,
    /// This handle's own open file description, holding the shared lock
    /// on byte 0.
    fd: OwnedFd,
    object: String,
    name: Option<String>,
    geo: Geometry,
    spin: u32,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("object", &self.object)
            .field("geometry", &self.geo)
            .finish_non_exhaustive()
    }
}

impl Slots for Inner {
    #[inline]
    fn count(&self) -> u64 {
        self.geo.slots as u64
    }
    #[inline]
    fn state(&self, pos: u64) -> &AtomicU64 {
        &self.slot(pos).state
    }
}

impl Inner {
    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEADER_SIZE bytes (checked at
        // open) and lives as long as `self`.
        unsafe { view(&self.region, 0) }
    }

    #[inline]
    fn slot_offset(&self, pos: u64) -> usize {
        let n = self.geo.slots as u64;
        // A mask instead of a division for the usual power-of-two rings
        // (a 64-bit division is tens of cycles, several per message).
        let index = if n.is_power_of_two() {
            pos & (n - 1)
        } else {
            pos % n
        };
        // The remainder is below `slots`, a usize.
        let index = usize::try_from(index).unwrap_or(0);
        HEADER_SIZE + index * self.geo.stride
    }

    #[inline]
    fn slot(&self, pos: u64) -> &SlotHeader {
        let offset = self.slot_offset(pos);
        debug_assert!(offset + self.geo.stride <= self.region.len());
        // SAFETY: `offset` is a multiple of 64 and the slot lies inside the
        // mapping (HEADER_SIZE + slots * stride == len, validated at open).
        unsafe { view(&self.region, offset) }
    }

    /// The first payload byte of the slot of `pos` (inside the mapping:
    /// see `slot`).
    #[inline]
    fn payload(&self, pos: u64) -> *mut u8 {
        let offset = self.slot_offset(pos) + SLOT_HEADER;
        self.region.as_mut_ptr().wrapping_add(offset)
    }

    #[inline]
    fn waiters(&self, side: Side) -> &Waiters {
        match side {
            Side::Send => &self.header().send_wait,
            Side::Recv => &self.header().recv_wait,
        }
    }

    fn joined(&self, side: Side) -> &AtomicU32 {
        match side {
            Side::Send => &self.header().senders_joined,
            Side::Recv => &self.header().receivers_joined,
        }
    }

    /// Wakes `side`'s sleepers, if any: no system call when none sleeps.
    #[inline]
    fn wake(&self, side: Side) {
        let w = self.waiters(side);
        // Pairs with the sleeper's fence between announcing itself and
        // looking at the ring: either it sees our change, or we see it.
        full_fence();
        if w.sleepers.load(Ordering::Relaxed) > 0 {
            w.seq.fetch_add(1, Ordering::Release);
            sys::wake_all(&w.seq);
        }
    }

    /// One attempt of a slot ring's receiver, or of an MPMC sender (an
    /// SPSC sender keeps its place itself: [`Sender::attempt`]).
    #[inline]
    fn attempt(&self, side: Side, me: u8) -> Step {
        let h = self.header();
        match (side, self.geo.flavor) {
            (Side::Recv, Flavor::Spsc) => {
                // While it waits, the receiver keeps asking for the first
                // payload line too, so that when the state word turns
                // `FULL` the payload written just before it is most likely
                // here already instead of one more line crossing away.
                prefetch(self.payload(h.head.value.load(Ordering::Relaxed)));
                protocol::spsc::claim_recv(&h.head.value, self)
            }
            (Side::Recv, _) => protocol::claim_recv(&h.head.value, self, me),
            (Side::Send, _) => protocol::claim_send(&h.tail.value, self, me),
        }
    }

    #[inline]
    fn spsc(&self) -> bool {
        self.geo.flavor == Flavor::Spsc
    }

    /// Frees the MPMC slots that endpoint `k` of `side` left holding: a
    /// loan or a message of an endpoint that died, or that was dropped
    /// with its message forgotten. Called by the endpoint that has just
    /// locked byte `k`, so the one that held it before is gone; the waiting
    /// side recovers such slots by the owner's lock, which the new holder
    /// of `k` would otherwise keep looking alive for ever.
    fn orphans_of(&self, side: Side, k: u8) {
        if self.geo.flavor != Flavor::Mpmc {
            return;
        }
        let held = match side {
            Side::Send => protocol::WRITING,
            Side::Recv => protocol::READING,
        };
        let mut freed = false;
        for i in 0..self.geo.slots as u64 {
            let w = self.slot(i).state.load(Ordering::Acquire);
            if protocol::kind_of(w) == held && protocol::owner_of(w) == k {
                freed |= protocol::recover(self, Stuck { word: w });
            }
        }
        if freed {
            self.wake(Side::Send);
            self.wake(Side::Recv);
        }
    }

    /// A receiver's release of position `pos`: the senders may reuse it.
    #[inline]
    fn give_back(&self, pos: u64) {
        if self.spsc() {
            protocol::spsc::release(&self.header().head.value, pos);
        } else {
            protocol::free(self, pos);
        }
        self.wake(Side::Send);
    }

    fn gone(&self, side: Side) -> Error {
        Error::PeerGone {
            object: self.object.clone(),
            peer: side.noun(),
        }
    }

    fn os(&self, action: &str, err: io::Error) -> Error {
        Error::Io(error::os(action, &self.object, err))
    }
}

/// A sequentially consistent fence, as cheap as the platform allows: on
/// x86-64 a locked no-op on the stack, as Linux's `smp_mb`. An `mfence`
/// also waits for earlier loads and costs tens of nanoseconds more, on
/// the path of every message.
#[inline]
fn full_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `lock or` of zero into the word at the stack pointer changes
    // no memory and no register but the flags (which the asm does not
    // promise to keep). A locked instruction is a full barrier on x86
    // (Intel SDM vol. 3A, 9.2.2 "Memory Ordering in P6 and More Recent
    // Processor Families"), and an asm block that may touch memory is one
    // for the compiler too.
    unsafe {
        std::arch::asm!("lock or dword ptr [rsp], 0", options(nostack));
    }
    #[cfg(not(target_arch = "x86_64"))]
    fence(Ordering::SeqCst);
}

/// Asks for the cache line at `p` (a hint: no fault, no effect on what
/// any load returns).
#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE, which `prefetcht0` belongs to, is part of the x86-64
    // baseline; a prefetch reads nothing into the program and never
    // faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The `T` at `offset` bytes into `region`.
///
/// # Safety
///
/// `offset + size_of::<T>()` must lie inside the region, `offset` must be a
/// multiple of `T`'s alignment (at most 64: the mapping is page-aligned),
/// and `T` must consist of atomics and padding never read, so that other
/// processes writing the memory meanwhile is no data race.
#[allow(
    clippy::cast_ptr_alignment,
    reason = "the mapping is page-aligned and the offsets are multiples of 64, as the caller promises"
)]
unsafe fn view<T>(region: &Region, offset: usize) -> &T {
    debug_assert!(offset + size_of::<T>() <= region.len());
    debug_assert!(offset % align_of::<T>() == 0);
    let ptr = region.as_ptr().wrapping_add(offset).cast::<T>();
    // SAFETY: in bounds, aligned and made of atomics (the caller's
    // promise); the reference borrows `region`, which keeps the mapping.
    unsafe { &*ptr }
}

/// Copies `data` into a message of `len` bytes starting at `base`, at
/// `offset`; `object` names the channel in the error.
///
/// # Safety
///
/// `base` must be valid for writes of `len` bytes that belong to the
/// caller's loan (no endpoint following the protocol reads or writes them
/// until the commit) and do not overlap `data`.
#[inline]
unsafe fn copy_in(
    object: &str,
    base: *mut u8,
    len: usize,
    offset: usize,
    data: &[u8],
) -> Result<()> {
    let end = offset.checked_add(data.len());
    if end.is_none_or(|e| e > len) {
        return Err(Error::TooLarge {
            object: object.to_owned(),
            len: end.unwrap_or(usize::MAX),
            max: len,
        });
    }
    // SAFETY: `offset + data.len() <= len` (checked above), and the
    // caller vouches for those `len` bytes.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), base.wrapping_add(offset), data.len()) };
    Ok(())
}

/// Copies `buf.len()` bytes at `offset` of the `len`-byte `what` (a
/// message, a record) starting at `base` into `buf`.
///
/// # Safety
///
/// `base` must be valid for reads of `len` bytes that the caller holds
/// (no endpoint following the protocol writes them until the release) and
/// that do not overlap `buf`.
#[inline]
unsafe fn copy_out(
    object: &str,
    what: &str,
    base: *const u8,
    len: usize,
    offset: usize,
    buf: &mut [u8],
) -> Result<()> {
    let end = offset.checked_add(buf.len());
    if end.is_none_or(|e| e > len) {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot read {} bytes at {offset} of a {len}-byte {what} of {object}",
                buf.len()
            ),
        )));
    }
    // SAFETY: the range lies inside the `len` bytes (checked above), which
    // the caller vouches for.
    unsafe {
        std::ptr::copy_nonoverlapping(base.wrapping_add(offset), buf.as_mut_ptr(), buf.len());
    }
    Ok(())
}

/// The error of a wait without deadline that returned without a slot
/// (which the waits never do).
fn ended_early(object: &str) -> Error {
    Error::Io(io::Error::other(format!("{object}: wait ended early")))
}

/// How to create or open a channel.
///
/// ```no_run
/// use memio_ipc::channel::{ChannelOptions, Flavor};
///
/// let ch = ChannelOptions::new()
///     .flavor(Flavor::Mpmc)
///     .slots(64)
///     .slot_size(4096)
///     .create("/jobs")?;
/// # Ok::<(), memio_ipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    flavor: Flavor,
    slots: usize,
    slot_size: usize,
    mode: u32,
    spin: u32,
}

/// How many times a waiting endpoint looks again before it sleeps, by
/// default: about 12–20 µs on a current x86 core, roughly what sleeping
/// and being woken across cores costs. A quick peer's answer is caught
/// without the kernel, and a slow one wastes at most that much CPU.
pub const DEFAULT_SPIN: u32 = 1000;

impl Default for ChannelOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ChannelOptions {
    /// SPSC, 8 slots of 4 KiB, mode 0600, [`DEFAULT_SPIN`] spins before
    /// sleeping.
    #[must_use]
    pub fn new() -> Self {
        Self {
            flavor: Flavor::Spsc,
            slots: 8,
            slot_size: 4096,
            mode: DEFAULT_MODE,
            spin: DEFAULT_SPIN,
        }
    }

    /// SPSC or MPMC (for a new channel).
    #[must_use]
    pub fn flavor(mut self, flavor: Flavor) -> Self {
        self.flavor = flavor;
        self
    }

    /// How many messages the ring holds (for a new channel).
    #[must_use]
    pub fn slots(mut self, n: usize) -> Self {
        self.slots = n;
        self
    }

    /// The largest message in bytes (for a new channel).
    #[must_use]
    pub fn slot_size(mut self, bytes: usize) -> Self {
        self.slot_size = bytes;
        self
    }

    /// Permission bits of a new named channel (default 0600).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// How many times a waiting endpoint of this handle looks again
    /// before it sleeps on the futex: 0 sleeps at once (least CPU), some
    /// thousands keep round trips in the hundreds of nanoseconds when both
    /// processes run on their own cores.
    #[must_use]
    pub fn spin(mut self, attempts: u32) -> Self {
        self.spin = attempts;
        self
    }

    /// Makes the channel a byte ring of variable-length records
    /// ([`Flavor::Bytes`]) of `capacity` bytes (rounded up to a multiple of
    /// 64); the largest record is 8 bytes less.
    #[must_use]
    pub fn byte_ring(mut self, capacity: usize) -> Self {
        self.flavor = Flavor::Bytes;
        self.slots = 1;
        self.slot_size = capacity
            .max(64)
            .checked_next_multiple_of(64)
            .unwrap_or(usize::MAX);
        self
    }

    fn geometry(&self, object: &str) -> Result<Geometry> {
        let bad = |why: String| {
            Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot create {object}: {why}"),
            ))
        };
        if self.slots == 0 || self.slot_size == 0 {
            return Err(bad("it needs at least one slot of at least one byte".into()));
        }
        if self.flavor == Flavor::Bytes && (self.slots != 1 || self.slot_size % 64 != 0) {
            return Err(bad(
                "a byte ring is one ring of a multiple of 64 bytes (use byte_ring)".into(),
            ));
        }
        Geometry::new(self.flavor, self.slots, self.slot_size).ok_or_else(|| {
            bad(format!(
                "{} slots of {} bytes do not fit in one object",
                self.slots, self.slot_size
            ))
        })
    }

    /// Creates the named channel `name` (`/name`, a POSIX shared-memory
    /// object), exclusively. An object of that name that is a channel no
    /// process holds open, or one whose creator died before it finished
    /// (see [`ChannelOptions::open`]), is removed first; of several
    /// processes replacing one such object at once, one creates the new
    /// channel and the others are told it exists.
    ///
    /// The object's memory is reserved here (`fallocate`), all of it: a
    /// `/dev/shm` without room for it fails the create rather than a later
    /// write (which the kernel would answer with `SIGBUS`).
    ///
    /// # Errors
    /// [`Error::NameInvalid`]; an existing object in use or not a channel
    /// (already exists); a bad geometry; no room for the object (of errno
    /// `ENOSPC`); an OS error naming the channel.
    #[doc(alias = "shm_open")]
    pub fn create(&self, name: &str) -> Result<Channel> {
        name::check(name, Kind::Plain)?;
        let object = describe(name);
        let geo = self.geometry(&object)?;
        let mode = Mode::from_bits_truncate(self.mode & 0o7777);
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL;
        let mut removed_stale = false;
        let fd = loop {
            match rustix::shm::open(name, flags, mode) {
                Ok(fd) => break fd,
                Err(rustix::io::Errno::EXIST)
                    if !removed_stale && remove_if_stale(name).is_some() =>
                {
                    removed_stale = true;
                }
                Err(e) => return Err(Error::Io(error::os("create", &object, e.into()))),
            }
        };
        let ours = rustix::fs::fstat(&fd).ok();
        let channel = self.init(fd, geo, object, Some(name.to_owned()));
        // Remove what this call made, and only that: should the name lead
        // to another object by now, it is someone else's.
        if channel.is_err() && ours.as_ref().is_none_or(|st| leads_to(name, st)) {
            let _ = rustix::shm::unlink(name);
        }
        channel
    }

    /// Creates a nameless channel in a memfd (`label` names it in
    /// `/proc/PID/fd`); hand it to a child with
    /// [`Channel::inheritable_fd`] and [`ChannelOptions::from_fd`].
    ///
    /// Its memory is reserved here, as for [`ChannelOptions::create`], and
    /// the memfd is sealed at its size (`F_SEAL_SHRINK`, `F_SEAL_GROW`,
    /// then `F_SEAL_SEAL`): no process holding the descriptor can shrink
    /// the object under the others' mappings, which would kill them with
    /// `SIGBUS` at their next access.
    ///
    /// # Errors
    /// A bad geometry, no room for the object, or an OS error.
    #[doc(alias = "memfd_create")]
    pub fn memfd(&self, label: &str) -> Result<Channel> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let object = format!("channel memfd '{label}'");
        let geo = self.geometry(&object)?;
        let fd = rustix::fs::memfd_create(label, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .map_err(|e| Error::Io(error::os("create", &object, e.into())))?;
        let channel = self.init(fd, geo, object, None)?;
        // Nothing ever resizes a channel, so growing is sealed too; and
        // sealing the seals keeps a holder from adding one that would stop
        // others mapping it (`F_SEAL_FUTURE_WRITE`).
        rustix::fs::fcntl_add_seals(
            &channel.inner.fd,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        )
        .map_err(|e| channel.inner.os("seal", e.into()))?;
        Ok(channel)
    }

    /// Sizes, reserves, maps and initialises a new object; `fd` is its own
    /// open file description, of an object this process has just made.
    fn init(
        &self,
        fd: OwnedFd,
        geo: Geometry,
        object: String,
        name: Option<String>,
    ) -> Result<Channel> {
        let fail = |action: &str, e: io::Error| Error::Io(error::os(action, &object, e));
        // A process removing a stale channel write-locks whatever object
        // the name leads to while it looks at it, and lets go at once of
        // one that is no leftover, as this new one, still empty, is not:
        // wait for it rather than fail.
        sys::lock_handle(&fd, INIT_WAIT).map_err(|e| fail("lock", e))?;
        rustix::fs::ftruncate(&fd, geo.total as u64).map_err(|e| fail("resize", e.into()))?;
        reserve(&fd, geo.total as u64).map_err(|e| fail("reserve memory for", e))?;
        let region = map(&fd, geo.total).map_err(|e| fail("map", e))?;
        let inner = Inner {
            region,
            fd,
            object,
            name,
            geo,
            spin: self.spin,
        };
        let h = inner.header();
        let as_u32 = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        h.version.store(VERSION, Ordering::Relaxed);
        h.flavor.store(geo.flavor.code(), Ordering::Relaxed);
        h.slots.store(as_u32(geo.slots), Ordering::Relaxed);
        h.slot_size.store(as_u32(geo.slot_size), Ordering::Relaxed);
        h.stride.store(as_u32(geo.stride), Ordering::Relaxed);
        h.data_offset.store(as_u32(HEADER_SIZE), Ordering::Relaxed);
        h.total.store(geo.total as u64, Ordering::Relaxed);
        for i in 0..geo.slots as u64 {
            inner
                .slot(i)
                .state
                .store(protocol::initial(i), Ordering::Relaxed);
        }
        h.magic.store(MAGIC, Ordering::Release);
        Ok(Channel {
            inner: Arc::new(inner),
        })
    }

    /// Opens the existing named channel `name`, checking that it is one.
    ///
    /// A channel that no process holds open is opened as it stands: the
    /// messages committed before its processes died are still there, and a
    /// loan or a receive a dead endpoint left unfinished is recovered as
    /// the module's notes on dead peers say. An object a creator left
    /// half-made (it died after sizing the object and before storing the
    /// magic number, and no process holds it) is removed, and the open
    /// fails as for a missing channel, saying so.
    ///
    /// An open racing a create waits for the creator, up to a second: the
    /// object is empty from the moment its name exists until the creator
    /// sizes it, and without its magic number until the creator is done.
    ///
    /// # Errors
    /// [`Error::NameInvalid`]; [`Error::Corrupt`] for an object that is not
    /// a channel of this layout version, or is still empty or unfinished a
    /// second later; an OS error naming the channel (not found, of kind
    /// [`io::ErrorKind::NotFound`], for a missing or a half-made one).
    pub fn open(&self, name: &str) -> Result<Channel> {
        name::check(name, Kind::Plain)?;
        let object = describe(name);
        let fail = |action: &str, e: io::Error| Error::Io(error::os(action, &object, e));
        let start = Instant::now();
        loop {
            let fd = rustix::shm::open(name, OFlags::RDWR, Mode::empty())
                .map_err(|e| fail("open", e.into()))?;
            // A process removing the object as stale holds every lock
            // byte for a moment: wait for it, then look again.
            if !sys::try_lock(fd.as_fd(), false, sys::HANDLE_BYTE, 1)
                .map_err(|e| fail("lock", e))?
            {
                if start.elapsed() < INIT_WAIT {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                return Err(fail(
                    "lock",
                    io::Error::other("another process holds an exclusive lock on byte 0"),
                ));
            }
            // Locked, and still the object the name leads to: no remover
            // can take it from under this handle now.
            let st = rustix::fs::fstat(&fd).map_err(|e| fail("examine", e.into()))?;
            if !same_object(name, &st).map_err(|e| fail("open", e))? {
                // Replaced or removed meanwhile: look again, for a while.
                if start.elapsed() < INIT_WAIT {
                    continue;
                }
                return Err(fail(
                    "open",
                    io::Error::other("it was replaced or removed again and again for a second"),
                ));
            }
            match wait_initialised(&fd, &object) {
                Err(Error::Corrupt { .. })
                    if leftover(&fd) == Some(Leftover::HalfMade)
                        && sys::held_by_others(fd.as_fd(), 0, LOCK_SPAN).is_ok_and(|h| !h) =>
                {
                    drop(fd);
                    if remove_if_stale(name) == Some(Leftover::HalfMade) {
                        return Err(fail(
                            "open",
                            io::Error::new(
                                io::ErrorKind::NotFound,
                                "not found: a process that died while creating it left it \
                                 half-made, and it has been removed",
                            ),
                        ));
                    }
                }
                Err(e) => return Err(e),
                Ok(region) => {
                    let geo = validate(&region, &object)?;
                    return Ok(Channel {
                        inner: Arc::new(Inner {
                            region,
                            fd,
                            object,
                            name: Some(name.to_owned()),
                            geo,
                            spin: self.spin,
                        }),
                    });
                }
            }
        }
    }

    /// Opens a channel from a descriptor of its object (a memfd inherited
    /// from the parent, say). The handle takes its own open file
    /// description; `fd` is closed.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an object that is not a channel; an OS error.
    pub fn from_fd(&self, fd: OwnedFd) -> Result<Channel> {
        let object = "channel fd".to_owned();
        let own =
            sys::reopen(fd.as_fd()).map_err(|e| Error::Io(error::os("reopen", &object, e)))?;
        drop(fd);
        self.attach_existing(own, object, None)
    }

    fn attach_existing(
        &self,
        fd: OwnedFd,
        object: String,
        name: Option<String>,
    ) -> Result<Channel> {
        let fail = |action: &str, e: io::Error| Error::Io(error::os(action, &object, e));
        sys::lock_handle(&fd, INIT_WAIT).map_err(|e| fail("lock", e))?;
        let region = wait_initialised(&fd, &object)?;
        let geo = validate(&region, &object)?;
        Ok(Channel {
            inner: Arc::new(Inner {
                region,
                fd,
                object,
                name,
                geo,
                spin: self.spin,
            }),
        })
    }
}

fn describe(name: &str) -> String {
    format!("channel '{name}'")
}

fn map(fd: &OwnedFd, len: usize) -> io::Result<Region> {
    MapOptions::new().shared().read_write().len(len).map(fd)
}

/// Allocates the first `len` bytes of the object, so that running out of
/// memory is an error now (`ENOSPC`) and not a `SIGBUS` at the first write
/// to a page: `ftruncate` on tmpfs reserves nothing. A file system without
/// `fallocate` is left as it is.
fn reserve(fd: &OwnedFd, len: u64) -> io::Result<()> {
    match rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn size_of_object(fd: &OwnedFd) -> io::Result<usize> {
    let st = rustix::fs::fstat(fd)?;
    Ok(usize::try_from(st.st_size).unwrap_or(0))
}

/// Maps the object once its creator has sized it and stored the magic;
/// waits up to [`INIT_WAIT`] while it is not there yet and either another
/// handle exists or the object is empty. A creator makes the object
/// (empty) before it takes its lock, so an empty object no one holds may
/// be one being created this moment; once sized, it is held for as long
/// as its creator lives.
fn wait_initialised(fd: &OwnedFd, object: &str) -> Result<Region> {
    let corrupt = |why: String| Error::Corrupt {
        object: object.to_owned(),
        why,
    };
    let start = Instant::now();
    loop {
        let size = size_of_object(fd).map_err(|e| Error::Io(error::os("examine", &object, e)))?;
        let creator_busy = || {
            start.elapsed() < INIT_WAIT
                && sys::held_by_others(fd.as_fd(), 0, LOCK_SPAN).unwrap_or(false)
        };
        if size < HEADER_SIZE {
            if creator_busy() || (size == 0 && start.elapsed() < INIT_WAIT) {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            if size == 0 {
                return Err(corrupt(format!(
                    "it is empty, and no process made it a channel within {INIT_WAIT:?} \
                     (its creator may have died)"
                )));
            }
            return Err(corrupt(format!(
                "it is {size} bytes, smaller than a channel header ({HEADER_SIZE})"
            )));
        }
        let region = map(fd, size).map_err(|e| Error::Io(error::os("map", &object, e)))?;
        // SAFETY: at least HEADER_SIZE bytes; offset 0.
        let magic = unsafe { view::<AtomicU64>(&region, 0) }.load(Ordering::Acquire);
        if magic == 0 && creator_busy() {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        if magic != MAGIC {
            return Err(corrupt(
                "it is not a memio channel (no magic number)".into(),
            ));
        }
        return Ok(region);
    }
}

/// Reads and checks the geometry of a mapped header.
fn validate(region: &Region, object: &str) -> Result<Geometry> {
    let corrupt = |why: String| Error::Corrupt {
        object: object.to_owned(),
        why,
    };
    if region.len() < HEADER_SIZE {
        return Err(corrupt(format!(
            "{} bytes, shorter than a channel header",
            region.len()
        )));
    }
    // SAFETY: the mapping holds at least HEADER_SIZE bytes (checked just
    // above); offset 0.
    let h: &Header = unsafe { view(region, 0) };
    let get = |a: &AtomicU32| a.load(Ordering::Relaxed) as usize;
    let version = h.version.load(Ordering::Relaxed);
    if version != VERSION {
        return Err(corrupt(format!(
            "its layout version is {version}, this build reads version {VERSION}"
        )));
    }
    let flavor = Flavor::from_code(h.flavor.load(Ordering::Relaxed))
        .ok_or_else(|| corrupt("its flavour code is unknown".into()))?;
    let (slots, slot_size) = (get(&h.slots), get(&h.slot_size));
    let geo = Geometry::new(flavor, slots, slot_size)
        .filter(|g| g.slots > 0 && g.slot_size > 0)
        .filter(|g| g.flavor != Flavor::Bytes || (g.slots == 1 && g.slot_size % 64 == 0))
        .ok_or_else(|| corrupt(format!("{slots} slots of {slot_size} bytes is no ring")))?;
    let total = h.total.load(Ordering::Relaxed);
    if get(&h.stride) != geo.stride
        || get(&h.data_offset) != HEADER_SIZE
        || total != geo.total as u64
        || region.len() != geo.total
    {
        return Err(corrupt(format!(
            "its header describes {} bytes of slots but the object is {} bytes",
            total,
            region.len()
        )));
    }
    Ok(geo)
}

/// What an object no live handle vouches for turns out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leftover {
    /// A whole channel.
    Channel,
    /// A channel's object that its creator sized and began to fill but
    /// never finished: magic zero, this layout version, and the size its
    /// header gives.
    HalfMade,
}

/// Whether the object behind `fd` is a channel or a channel's half-made
/// object; `None` for anything else (never removed).
fn leftover(fd: &OwnedFd) -> Option<Leftover> {
    let mut head = [0u8; 40];
    if !matches!(rustix::io::pread(fd, &mut head, 0), Ok(40)) {
        return None;
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[at..at + 8]);
        u64::from_ne_bytes(b)
    };
    let version = u32::from_ne_bytes([head[8], head[9], head[10], head[11]]);
    let size = size_of_object(fd).ok()? as u64;
    match u64_at(0) {
        MAGIC => Some(Leftover::Channel),
        0 if version == VERSION && size >= HEADER_SIZE as u64 && u64_at(32) == size => {
            Some(Leftover::HalfMade)
        }
        _ => None,
    }
}

/// Whether `name` still leads to the object `fd` is open on.
fn names_object(name: &str, fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| leads_to(name, &st))
}

/// Whether `name` leads to the object of status `st`.
fn leads_to(name: &str, st: &rustix::fs::Stat) -> bool {
    same_object(name, st).unwrap_or(false)
}

/// Whether `name` leads to the object of status `st`: `Ok(false)` when it
/// leads nowhere or elsewhere, an error when it cannot be looked at (out
/// of descriptors, say).
fn same_object(name: &str, st: &rustix::fs::Stat) -> io::Result<bool> {
    let now = match rustix::shm::open(name, OFlags::RDONLY, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let b = rustix::fs::fstat(&now)?;
    Ok(st.st_dev == b.st_dev && st.st_ino == b.st_ino)
}

/// Removes the object `name` if it is a channel (or a half-made one) that
/// no process holds open, and says which it was.
///
/// Every handle holds a shared lock on byte 0 for as long as it lives, so
/// the write lock over every lock byte taken here is granted only when no
/// process has the object open as a channel, and it keeps any from
/// attaching until the name is gone: an open that finds the lock waits
/// and looks again, and a second remover fails to take it. The name is
/// unlinked only while it still leads to the locked object, so no process
/// ever removes a channel that another has just created in its place.
///
/// An object being created is never taken for a leftover: it is empty
/// until its creator holds its lock, and an empty object is none. The
/// creator waits out the moment this holds the write lock on it.
fn remove_if_stale(name: &str) -> Option<Leftover> {
    let fd = rustix::shm::open(name, OFlags::RDWR, Mode::empty()).ok()?;
    if !sys::try_lock(fd.as_fd(), true, 0, LOCK_SPAN).unwrap_or(false) {
        return None;
    }
    let kind = leftover(&fd)?;
    if !names_object(name, &fd) {
        return None;
    }
    rustix::shm::unlink(name).ok()?;
    Some(kind)
}

/// A handle on a channel: the mapping, from which endpoints are taken.
///
/// Cloning is cheap (the mapping is shared); the shared-memory object stays
/// until [`Channel::unlink`] and the last handle closes.
#[derive(Debug, Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

impl Channel {
    /// Creates the named channel `name` with the default options.
    ///
    /// # Errors
    /// See [`ChannelOptions::create`].
    pub fn create(name: &str) -> Result<Self> {
        ChannelOptions::new().create(name)
    }

    /// Opens the named channel `name` with the default options.
    ///
    /// # Errors
    /// See [`ChannelOptions::open`].
    pub fn open(name: &str) -> Result<Self> {
        ChannelOptions::new().open(name)
    }

    /// Removes the name; the memory goes with the last handle.
    ///
    /// # Errors
    /// [`Error::NameInvalid`] or an OS error naming the channel.
    #[doc(alias = "shm_unlink")]
    pub fn unlink(name: &str) -> Result<()> {
        name::check(name, Kind::Plain)?;
        rustix::shm::unlink(name)
            .map_err(|e| Error::Io(error::os("remove", &describe(name), e.into())))
    }

    /// The name, for a named channel.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// SPSC or MPMC.
    #[must_use]
    pub fn flavor(&self) -> Flavor {
        self.inner.geo.flavor
    }

    /// How many messages the ring holds.
    #[must_use]
    pub fn slots(&self) -> usize {
        self.inner.geo.slots
    }

    /// The largest message in bytes.
    #[must_use]
    pub fn slot_size(&self) -> usize {
        self.inner.geo.slot_size
    }

    /// A descriptor of the object without close-on-exec, for a child to
    /// inherit and pass to [`ChannelOptions::from_fd`]; drop it once the
    /// child is started.
    ///
    /// # Errors
    /// An OS error (out of descriptors).
    pub fn inheritable_fd(&self) -> io::Result<OwnedFd> {
        // dup(2) clears FD_CLOEXEC on the copy.
        rustix::io::dup(&self.inner.fd).map_err(io::Error::from)
    }

    fn attach(&self, side: Side) -> Result<(OwnedFd, u8)> {
        let inner = &self.inner;
        let fd = sys::reopen(inner.fd.as_fd()).map_err(|e| inner.os("reopen", e))?;
        let max = inner.geo.flavor.max_endpoints();
        for k in 0..u8::try_from(max).unwrap_or(u8::MAX) {
            let byte = side.first_byte() + i64::from(k);
            if sys::try_lock(fd.as_fd(), true, byte, 1).map_err(|e| inner.os("lock", e))? {
                inner.orphans_of(side, k);
                inner.joined(side).fetch_add(1, Ordering::AcqRel);
                return Ok((fd, k));
            }
        }
        Err(Error::Busy {
            object: inner.object.clone(),
            why: format!(
                "it already has {max} {}{} (the most its flavour admits)",
                side.noun(),
                if max == 1 { "" } else { "s" }
            ),
        })
    }

    /// Attaches a sender.
    ///
    /// # Errors
    /// [`Error::Busy`] when the channel has all the senders its flavour
    /// admits; the channel is a byte ring; an OS error.
    pub fn sender(&self) -> Result<Sender> {
        self.check_slots()?;
        let (lock, me) = self.attach(Side::Send)?;
        let inner = &*self.inner;
        // SPSC, holding the one sender lock: no other sender moves `tail`
        // now. (An MPMC sender keeps no cursor.)
        let next = if inner.spsc() {
            protocol::spsc::resume(&inner.header().tail.value, inner)
        } else {
            0
        };
        Ok(Sender {
            end: Endpoint::new(&self.inner, lock, me, Side::Send),
            next,
            head_seen: inner.header().head.value.load(Ordering::Acquire),
        })
    }

    /// Attaches a receiver.
    ///
    /// # Errors
    /// [`Error::Busy`] when the channel has all the receivers its flavour
    /// admits; the channel is a byte ring; an OS error.
    pub fn receiver(&self) -> Result<Receiver> {
        self.check_slots()?;
        let (lock, me) = self.attach(Side::Recv)?;
        Ok(Receiver {
            end: Endpoint::new(&self.inner, lock, me, Side::Recv),
        })
    }
}

/// What a sender and a receiver share: the mapping, the lock on its own
/// byte, its index and its side.
#[derive(Debug)]
struct Endpoint {
    inner: Arc<Inner>,
    /// Its own open file description holding its byte's lock; dropped
    /// (releasing the lock) before the wake-up in `Drop`.
    lock: Option<OwnedFd>,
    me: u8,
    side: Side,
    /// When a call that reached its deadline last looked at the peers'
    /// locks ([`clock_ns`]; 0: never).
    last_look: AtomicU64,
}

/// Nanoseconds since the first call in this process (never 0 after it).
fn clock_ns() -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Endpoint {
    fn new(inner: &Arc<Inner>, lock: OwnedFd, me: u8, side: Side) -> Self {
        Self {
            inner: Arc::clone(inner),
            lock: Some(lock),
            me,
            side,
            last_look: AtomicU64::new(0),
        }
    }

    /// A call that found nothing by its deadline (a `try_` call at once):
    /// looks at the peers' locks, as a sleeper does after each wake-up, so
    /// that a caller that polls hears [`Error::PeerGone`] too; at most
    /// once per [`CHECK_EVERY`], since each look costs system calls.
    #[cold]
    fn at_deadline(
        &self,
        stuck: Option<Stuck>,
        attempt: &mut impl FnMut() -> Step,
    ) -> Result<Option<u64>> {
        let now = clock_ns();
        let last = self.last_look.load(Ordering::Relaxed);
        let every = u64::try_from(CHECK_EVERY.as_nanos()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < every {
            return Ok(None);
        }
        self.last_look.store(now, Ordering::Relaxed);
        self.check_peers(stuck, attempt)
    }

    fn lock_fd(&self) -> Result<BorrowedFd<'_>> {
        self.lock
            .as_ref()
            .map(AsFd::as_fd)
            .ok_or_else(|| self.inner.gone(self.side))
    }

    /// Claims a position, waiting until `deadline` (`None`: for ever);
    /// `Ok(None)` when the deadline passed.
    #[inline]
    fn claim(&self, deadline: Option<Instant>) -> Result<Option<u64>> {
        self.claim_with(deadline, || self.inner.attempt(self.side, self.me))
    }

    /// [`Endpoint::claim`] with another ring's attempt (the byte ring's).
    #[inline]
    fn claim_with(
        &self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut() -> Step,
    ) -> Result<Option<u64>> {
        let inner = &*self.inner;
        let stuck = match attempt() {
            Step::Claimed(p) => return Ok(Some(p)),
            Step::Wait(stuck) => stuck,
        };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return self.at_deadline(stuck, &mut attempt);
        }
        for i in 0..inner.spin {
            std::hint::spin_loop();
            if let Step::Claimed(p) = attempt() {
                return Ok(Some(p));
            }
            // A long spin keeps the deadline too.
            if i % 1024 == 1023 && deadline.is_some_and(|d| Instant::now() >= d) {
                return self.at_deadline(None, &mut attempt);
            }
        }
        let w = inner.waiters(self.side);
        loop {
            let seq = w.seq.load(Ordering::Acquire);
            w.sleepers.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let step = attempt();
            if let Step::Wait(_) = step {
                if deadline.is_none_or(|d| Instant::now() < d) {
                    sys::wait(&w.seq, seq, sys::slice_until(deadline, CHECK_EVERY));
                }
            }
            w.sleepers.fetch_sub(1, Ordering::SeqCst);
            let stuck = match step {
                Step::Claimed(p) => return Ok(Some(p)),
                Step::Wait(_) => match attempt() {
                    Step::Claimed(p) => return Ok(Some(p)),
                    Step::Wait(stuck) => stuck,
                },
            };
            // The peers first: a wait that ends at its deadline still
            // hears that they are gone.
            if let Some(p) = self.check_peers(stuck, &mut attempt)? {
                return Ok(Some(p));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    /// After a wait that found nothing: frees a slot whose holder died and
    /// fails with [`Error::PeerGone`] when the other side has no endpoint
    /// left (and had one); `Some` when it claimed a position meanwhile.
    fn check_peers(
        &self,
        stuck: Option<Stuck>,
        attempt: &mut impl FnMut() -> Step,
    ) -> Result<Option<u64>> {
        let inner = &*self.inner;
        let other = self.side.other();
        let fd = self.lock_fd()?;
        let os = |e| inner.os("examine the locks of", e);
        let h = inner.header();
        let unsound = if inner.spsc() {
            !protocol::spsc::consistent(&h.tail.value, &h.head.value, inner)
        } else if inner.geo.flavor != Flavor::Mpmc {
            false
        } else {
            !protocol::positions_sound(
                h.tail.value.load(Ordering::Acquire),
                h.head.value.load(Ordering::Acquire),
                inner.geo.slots as u64,
            )
        };
        if unsound {
            return Err(Error::Corrupt {
                object: inner.object.clone(),
                why: format!(
                    "its head ({}) and tail ({}) are no state of a ring of {} slots",
                    h.head.value.load(Ordering::Relaxed),
                    h.tail.value.load(Ordering::Relaxed),
                    inner.geo.slots
                ),
            });
        }
        if let Some(mut stuck) = stuck {
            // Every slot in the way whose holder died, in one go: behind
            // one dead loan may stand the loans of other dead senders.
            let mut freed = false;
            let mut left = inner.geo.slots;
            let found = loop {
                // The holder is a sender when the slot is being written,
                // a receiver when it is being read, whichever side waits.
                let holder = if protocol::kind_of(stuck.word) == protocol::WRITING {
                    Side::Send
                } else {
                    Side::Recv
                };
                let byte = holder.first_byte() + i64::from(stuck.owner());
                if sys::held_by_others(fd, byte, 1).map_err(os)? {
                    break None;
                }
                freed |= protocol::recover(inner, stuck);
                match attempt() {
                    Step::Claimed(p) => break Some(p),
                    Step::Wait(Some(next)) if left > 0 => {
                        left -= 1;
                        stuck = next;
                    }
                    // Nothing more in the way, or a bounded pass done.
                    Step::Wait(_) => break None,
                }
            };
            if freed {
                // A dead sender's slot freed: receivers move past it. A
                // dead receiver's: senders have room.
                inner.wake(Side::Send);
                inner.wake(Side::Recv);
            }
            if found.is_some() {
                return Ok(found);
            }
            // Held by a live endpoint of this side, or freed: either way
            // the other side may be gone, which no wait would change.
        }
        if inner.joined(other).load(Ordering::Acquire) == 0 {
            return Ok(None);
        }
        if sys::held_by_others(fd, other.first_byte(), sys::ENDPOINT_BYTES).map_err(os)? {
            return Ok(None);
        }
        // No peer left. A message committed just before its sender died
        // is still delivered.
        match attempt() {
            Step::Claimed(p) => Ok(Some(p)),
            // A dead sender's slot before the receivers: freed at the
            // next look, and what follows it still delivered.
            Step::Wait(Some(_)) if self.side == Side::Recv => Ok(None),
            // A full ring with no receiver left never drains, whoever
            // holds the slot in the way.
            Step::Wait(_) => Err(inner.gone(other)),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // Release the lock first, then wake the other side so that a
        // sleeper looks at the locks now rather than at its next check.
        drop(self.lock.take());
        self.inner.wake(self.side.other());
    }
}

/// The sending end of a channel.
#[derive(Debug)]
pub struct Sender {
    end: Endpoint,
    /// SPSC: the position the next message takes.
    next: u64,
    /// SPSC: the receiver's `head` as last loaded.
    head_seen: u64,
}

impl Sender {
    fn too_large(&self, len: usize) -> Error {
        Error::TooLarge {
            object: self.end.inner.object.clone(),
            len,
            max: self.end.inner.geo.slot_size,
        }
    }

    /// Claims the position of a message of `len` bytes, waiting until
    /// `deadline` (`None`: for ever).
    #[inline]
    fn claim_until(&mut self, len: usize, deadline: Option<Instant>) -> Result<Option<u64>> {
        if len > self.end.inner.geo.slot_size {
            return Err(self.too_large(len));
        }
        // The attempt needs `self` mutably and the wait `self.end`: lend
        // the attempt a copy of the SPSC cursor.
        let end = &self.end;
        let (next, mut seen) = (self.next, self.head_seen);
        let inner = &*end.inner;
        let pos = end.claim_with(deadline, || {
            if inner.spsc() {
                protocol::spsc::claim_send(next, &mut seen, &inner.header().head.value, inner)
            } else {
                inner.attempt(Side::Send, end.me)
            }
        })?;
        self.head_seen = seen;
        Ok(pos)
    }

    #[inline]
    fn loan_until(&mut self, len: usize, deadline: Option<Instant>) -> Result<Option<Loan<'_>>> {
        Ok(self.claim_until(len, deadline)?.map(|pos| Loan {
            tx: self,
            pos,
            len,
            done: false,
        }))
    }

    /// Loans the next slot for a message of `len` bytes, waiting while the
    /// ring is full.
    ///
    /// # Errors
    /// [`Error::TooLarge`] when `len` exceeds the slot size;
    /// [`Error::PeerGone`] when the ring is full and every receiver is
    /// gone; [`Error::Corrupt`] when, waiting, it finds indices no sound
    /// SPSC ring has (another process wrote them); an OS error.
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        match self.claim_until(len, None)? {
            Some(pos) => Ok(Loan {
                tx: self,
                pos,
                len,
                done: false,
            }),
            None => Err(ended_early(&self.end.inner.object)),
        }
    }

    /// [`Sender::loan`] waiting at most until `deadline`; `Ok(None)` when
    /// it passed.
    ///
    /// # Errors
    /// See [`Sender::loan`].
    pub fn loan_deadline(&mut self, len: usize, deadline: Instant) -> Result<Option<Loan<'_>>> {
        self.loan_until(len, Some(deadline))
    }

    /// Copies `msg` into the next slot and commits it, waiting while the
    /// ring is full.
    ///
    /// # Errors
    /// See [`Sender::loan`].
    #[inline]
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        let mut loan = self.loan(msg.len())?;
        loan.write_at(0, msg)?;
        loan.commit();
        Ok(())
    }

    /// [`Sender::send`] waiting at most until `deadline`; `Ok(false)` when
    /// it passed with the ring still full.
    ///
    /// # Errors
    /// See [`Sender::loan`].
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Instant) -> Result<bool> {
        match self.loan_until(msg.len(), Some(deadline))? {
            Some(mut loan) => {
                loan.write_at(0, msg)?;
                loan.commit();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Sends `msg` only if there is room now.
    ///
    /// # Errors
    /// See [`Sender::loan`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<bool> {
        self.send_deadline(msg, Instant::now())
    }

    /// The channel's object, as errors name it.
    #[must_use]
    pub fn object(&self) -> &str {
        &self.end.inner.object
    }
}

/// A slot loaned to a sender: write the message in place, then
/// [`commit`](Loan::commit). Dropping it without a commit gives the slot
/// back and nothing is delivered.
pub struct Loan<'a> {
    tx: &'a mut Sender,
    pos: u64,
    len: usize,
    done: bool,
}

impl fmt::Debug for Loan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loan")
            .field("pos", &self.pos)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Loan<'_> {
    /// The message length this loan was made for.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `data` into the message at `offset`.
    ///
    /// # Errors
    /// The range passes the end of the message.
    #[inline]
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        let inner = &*self.tx.end.inner;
        // SAFETY: the payload holds `len <= slot_size` bytes inside the
        // mapping; the slot is ours until the commit, and `data` is a
        // separate buffer.
        unsafe {
            copy_in(
                &inner.object,
                inner.payload(self.pos),
                self.len,
                offset,
                data,
            )
        }
    }

    /// Copies a received message (from this channel or another) into the
    /// start of this one, slot to slot, with no buffer between: a relay or
    /// an echo.
    ///
    /// # Errors
    /// The message is longer than this loan.
    #[inline]
    pub fn copy_from(&mut self, msg: &Received<'_>) -> Result<()> {
        if msg.len() > self.len {
            return Err(Error::TooLarge {
                object: self.tx.end.inner.object.clone(),
                len: msg.len(),
                max: self.len,
            });
        }
        let dst = self.as_mut_ptr();
        // SAFETY: `msg.len() <= self.len <= slot_size` bytes at the start of
        // each payload, both inside their mappings. The protocol never
        // gives one slot to a loan and a receiver at once, but state words
        // written by another process can, so the two ranges may be the
        // same: `copy` (a memmove) allows that, `copy_nonoverlapping`
        // would not.
        unsafe { std::ptr::copy(msg.as_ptr(), dst, msg.len()) };
        Ok(())
    }

    /// The first byte of the message's memory, for writing in place
    /// through raw pointers; valid for [`Loan::len`] bytes until the
    /// commit.
    #[must_use]
    #[inline]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.tx.end.inner.payload(self.pos)
    }

    /// The message's memory as a slice.
    ///
    /// # Safety
    ///
    /// No other process may touch this slot while the slice lives: the
    /// protocol gives the slot to this loan alone, but a process ignoring
    /// it (or mapping the object for other purposes) could write it.
    #[must_use]
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the slot's payload is `len <= slot_size` bytes inside the
        // mapping; the caller vouches that no other process accesses it.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len) }
    }

    /// Publishes the message to the receivers.
    #[inline]
    pub fn commit(mut self) {
        let inner = &*self.tx.end.inner;
        let len = u32::try_from(self.len).unwrap_or(u32::MAX);
        inner.slot(self.pos).len.store(len, Ordering::Relaxed);
        if inner.spsc() {
            protocol::spsc::commit(&inner.header().tail.value, inner, self.pos);
            self.tx.next = self.pos + 1;
        } else {
            protocol::commit(inner, self.pos);
        }
        self.done = true;
        inner.wake(Side::Recv);
    }
}

/// Frees the slot of an MPMC loan dropped uncommitted: receivers move
/// past it, and senders behind it have room. Out of line, so that the
/// drop of a committed loan, on every message, stays a test and a branch.
#[cold]
#[inline(never)]
fn abandon(inner: &Inner, pos: u64) {
    protocol::free(inner, pos);
    inner.wake(Side::Recv);
    inner.wake(Side::Send);
}

impl Drop for Loan<'_> {
    #[inline]
    fn drop(&mut self) {
        let inner = &*self.tx.end.inner;
        // An SPSC loan claimed nothing in the ring: the next loan takes the
        // same position.
        if !self.done && !inner.spsc() {
            abandon(inner, self.pos);
        }
    }
}

/// The receiving end of a channel.
#[derive(Debug)]
pub struct Receiver {
    end: Endpoint,
}

impl Receiver {
    /// Takes the next message, waiting until `deadline` (`None`: for
    /// ever): its position and length.
    #[inline]
    fn take(&mut self, deadline: Option<Instant>) -> Result<Option<(u64, usize)>> {
        let Some(pos) = self.end.claim(deadline)? else {
            return Ok(None);
        };
        let inner = &*self.end.inner;
        let len = inner.slot(pos).len.load(Ordering::Relaxed) as usize;
        if len > inner.geo.slot_size {
            inner.give_back(pos);
            return Err(Error::Corrupt {
                object: inner.object.clone(),
                why: format!(
                    "a message claims {len} bytes in a slot of {}",
                    inner.geo.slot_size
                ),
            });
        }
        Ok(Some((pos, len)))
    }

    #[inline]
    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Option<Received<'_>>> {
        Ok(self
            .take(deadline)?
            .map(|(pos, len)| Received { rx: self, pos, len }))
    }

    /// Receives the next message by reference, waiting while the ring is
    /// empty; the slot is the caller's until the [`Received`] is released
    /// or dropped.
    ///
    /// # Errors
    /// [`Error::PeerGone`] when the ring is empty and every sender is gone;
    /// [`Error::Corrupt`] for a message longer than its slot, or when,
    /// waiting, it finds indices no sound SPSC ring has; an OS error.
    #[inline]
    pub fn recv(&mut self) -> Result<Received<'_>> {
        match self.take(None)? {
            Some((pos, len)) => Ok(Received { rx: self, pos, len }),
            None => Err(ended_early(&self.end.inner.object)),
        }
    }

    /// [`Receiver::recv`] waiting at most until `deadline`; `Ok(None)` when
    /// it passed.
    ///
    /// # Errors
    /// See [`Receiver::recv`].
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<Option<Received<'_>>> {
        self.recv_until(Some(deadline))
    }

    /// A message if one is there now.
    ///
    /// # Errors
    /// See [`Receiver::recv`].
    pub fn try_recv(&mut self) -> Result<Option<Received<'_>>> {
        self.recv_until(Some(Instant::now()))
    }

    /// Receives the next message into `buf` and releases its slot; returns
    /// its length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] (the message stays consumed: size `buf`
    /// to the slot size); see [`Receiver::recv`].
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let msg = self.recv()?;
        let n = msg.len();
        let Some(dst) = buf.get_mut(..n) else {
            return Err(Error::BufferTooSmall {
                object: msg.rx.end.inner.object.clone(),
                len: buf.len(),
                needed: msg.rx.end.inner.geo.slot_size,
            });
        };
        msg.read_at(0, dst)?;
        Ok(n)
    }
}

/// A received message, still in its slot: read it in place, then
/// [`release`](Received::release) (or drop) it to give the slot back.
pub struct Received<'a> {
    rx: &'a mut Receiver,
    pos: u64,
    len: usize,
}

impl fmt::Debug for Received<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Received")
            .field("pos", &self.pos)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Received<'_> {
    /// The message length.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `buf.len()` bytes of the message at `offset` into `buf`.
    ///
    /// # Errors
    /// The range passes the end of the message.
    #[inline]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let object = &self.rx.end.inner.object;
        // SAFETY: the payload holds `len <= slot_size` bytes inside the
        // mapping (checked at receive time); the slot is ours until the
        // release, and `buf` is a separate buffer.
        unsafe { copy_out(object, "message", self.as_ptr(), self.len, offset, buf) }
    }

    /// The message as a new vector.
    #[must_use]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len];
        // The range is the whole message: cannot fail.
        let _ = self.read_at(0, &mut v);
        v
    }

    /// The first byte of the message, valid for [`Received::len`] bytes
    /// until the release.
    #[must_use]
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.rx.end.inner.payload(self.pos)
    }

    /// The message as a slice, without copying.
    ///
    /// # Safety
    ///
    /// No other process may write this slot while the slice lives: the
    /// protocol gives it to this receiver alone, but a process ignoring it
    /// could.
    #[must_use]
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: `len <= slot_size` bytes inside the mapping; the caller
        // vouches that nobody writes them meanwhile.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// Gives the slot back to the senders.
    #[inline]
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for Received<'_> {
    #[inline]
    fn drop(&mut self) {
        self.rx.end.inner.give_back(self.pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name of this process, and an empty object of that name made as
    /// `create` makes it, not yet locked.
    fn fresh(tag: &str) -> (String, OwnedFd) {
        let name = format!("/memio-unit-{}-{tag}", std::process::id());
        let _ = rustix::shm::unlink(name.as_str());
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL;
        let fd = rustix::shm::open(name.as_str(), flags, Mode::RUSR | Mode::WUSR).unwrap();
        (name, fd)
    }

    fn finish(name: &str, fd: OwnedFd) -> Result<Channel> {
        let options = ChannelOptions::new().slots(2).slot_size(8);
        let geo = options.geometry(name).unwrap();
        options.init(fd, geo, describe(name), Some(name.to_owned()))
    }

    #[test]
    fn a_creator_waits_out_a_remover_looking_at_its_new_object() {
        let (name, fd) = fresh("remover");
        // What `remove_if_stale` holds while it looks at the object.
        let remover = rustix::shm::open(name.as_str(), OFlags::RDWR, Mode::empty()).unwrap();
        assert!(sys::try_lock(remover.as_fd(), true, 0, LOCK_SPAN).unwrap());
        assert_eq!(leftover(&remover), None, "an empty object is no leftover");
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(remover);
        });
        let made = finish(&name, fd);
        letting_go.join().unwrap();
        let _ = rustix::shm::unlink(name.as_str());
        assert_eq!(made.unwrap().slots(), 2);
    }

    #[test]
    fn an_open_finding_the_object_empty_waits_for_its_creator() {
        let (name, fd) = fresh("opener");
        let opener = {
            let name = name.clone();
            std::thread::spawn(move || Channel::open(&name).map(|ch| ch.slots()))
        };
        // The creator between making the object and locking it.
        std::thread::sleep(Duration::from_millis(50));
        let creator = finish(&name, fd);
        let slots = opener.join().unwrap();
        let _ = rustix::shm::unlink(name.as_str());
        assert!(creator.is_ok());
        assert_eq!(slots.unwrap(), 2);
    }

    #[test]
    fn an_empty_object_no_one_makes_a_channel_is_refused_after_a_wait() {
        let (name, fd) = fresh("empty");
        let start = Instant::now();
        let err = Channel::open(&name).unwrap_err();
        drop(fd);
        let _ = rustix::shm::unlink(name.as_str());
        assert!(start.elapsed() >= INIT_WAIT, "{:?}", start.elapsed());
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("empty"), "{err}");
        assert!(err.to_string().contains(&name), "{err}");
    }
}
