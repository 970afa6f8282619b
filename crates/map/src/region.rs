//! [`Region`]: one type for every range of mapped memory.
//!
//! # Safety
//!
//! This module owns every mapping after `mmap` (made in `options`) and every
//! access to mapped bytes. The hazards it handles:
//!
//! - **Lifetime**: a mapping must be unmapped exactly once and never used
//!   afterwards. [`Region`] owns its mapping and unmaps it in `Drop`; every
//!   borrow of its bytes is tied to `&self`/`&mut self`.
//! - **Aliasing**: memory that another process (or another mapping of the
//!   same file, or `write(2)` on the file) can change must not sit behind a
//!   Rust reference while it changes, and must not be copied with a plain
//!   `memcpy` while someone writes it. So the region never hands out `&[u8]`
//!   safely: [`Region::as_slice`] and [`Region::as_mut_slice`] are `unsafe`
//!   with the rule spelled out; the safe paths are copies made with relaxed
//!   atomics ([`Region::read_at`], [`Region::write_at`]; see
//!   `atomic_copy`) and atomic views (`views`).
//! - **Rights**: a write (or an atomic read-modify-write) to a page without
//!   write access, or any access to a `PROT_NONE` page, faults. The region
//!   remembers its mapped access and every range [`Region::protect`]
//!   lowered, and refuses safe accesses those rights do not allow;
//!   `protect` takes `&mut self`, so no borrow of the bytes is live when the
//!   rights change.
//! - **Truncation**: touching a page of a file mapping past the file's
//!   current end raises `SIGBUS`, which ends the process. That is a crash,
//!   not memory corruption; documented on [`MapOptions::map`].
//! - **Ranges**: every operation on a byte range checks it against the
//!   region's length before any pointer arithmetic, and rounds it outwards to
//!   whole pages inside the mapping.
#![allow(
    unsafe_code,
    reason = "munmap, mremap and copies in and out of the memory this module owns"
)]

use std::ffi::c_void;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::{Bound, Range, RangeBounds};
use std::path::Path;
use std::ptr::NonNull;

use rustix::mm::{self, MremapFlags};

use crate::atomic_copy::{self, Span};
use crate::error::{context, invalid};
use crate::options::{Access, Backing, MapOptions, Protection, Release, Sharing, round_up};
use crate::widths::AtomicWidth;

/// The size of a page on this machine, in bytes.
///
/// # References
/// - [getpagesize(2)](https://man7.org/linux/man-pages/man2/getpagesize.2.html)
#[doc(alias = "getpagesize")]
#[doc(alias = "sysconf")]
#[must_use]
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// A range of mapped memory, unmapped when dropped.
///
/// Made by [`MapOptions`] (files, shared memory objects, memfds, anonymous
/// memory), [`Region::anonymous`], [`Region::anonymous_shared`], or
/// [`Region::from_raw_parts`] (memory mapped by someone else, such as System
/// V shared memory). Page-granular controls live here once: [`sync`],
/// [`advise`], [`protect`], [`lock`], [`residency`].
///
/// # Reaching the bytes
///
/// Memory that other processes can change is not a Rust slice: a `&[u8]`
/// promises the bytes do not change while it lives. So:
///
/// - [`read_at`]/[`write_at`]/[`fill`] copy in and out, bounds-checked,
///   with relaxed atomic loads and stores (word by word), so a copy that
///   meets a concurrent writer is defined behaviour. Safe. The copy may see
///   some old and some new words; agree on a protocol (a lock, a sequence
///   counter) for consistent snapshots. Writes into private anonymous memory,
///   which nothing else can see while `&mut self` is held, use a plain
///   `memcpy`.
/// - [`atomic_u32`]/[`atomic_u64`] give `&AtomicU32`/`&AtomicU64` inside a
///   writable region, the right tool for flags, counters and futex words
///   shared between processes; [`as_atomic_u64s`]/[`as_atomic_u8s`] view the
///   whole region as atomics. Safe; refused on read-only memory, where even
///   a failing `compare_exchange` faults.
/// - [`load_only_u32`]/[`load_only_u64`]/[`as_load_only_u64s`]/
///   [`as_load_only_u8s`] give views that can only be loaded (`Relaxed`),
///   which read-only memory allows: scan a mapping in place without a copy.
/// - [`as_ptr`]/[`as_mut_ptr`] give raw pointers for everything else;
///   dereferencing them is `unsafe` and the caller's contract.
/// - [`as_slice`]/[`as_mut_slice`] give slices, `unsafe`: the caller promises
///   nothing else changes the bytes while the slice lives (true for private
///   and anonymous private memory that was not shared by `fork`).
///
/// # Rights
///
/// Safe accesses follow the rights the pages have: writes and atomic views
/// need a region mapped read-write, and [`protect`] can lower the rights of
/// a range further, after which safe accesses there are refused with an
/// error instead of faulting. `protect` takes `&mut self`, so nothing
/// borrowed from the region can be alive when its pages change rights:
///
/// ```compile_fail,E0502
/// use memio_map::{Protection, Region};
/// use std::sync::atomic::Ordering::Relaxed;
/// # fn main() -> std::io::Result<()> {
/// let mut region = Region::anonymous(4096)?;
/// let counter = region.atomic_u32(0)?;
/// region.protect(.., Protection::None)?; // error: `region` is borrowed
/// counter.fetch_add(1, Relaxed);
/// # Ok(()) }
/// ```
///
/// [`sync`]: Region::sync
/// [`advise`]: Region::advise
/// [`protect`]: Region::protect
/// [`lock`]: Region::lock
/// [`residency`]: Region::residency
/// [`read_at`]: Region::read_at
/// [`write_at`]: Region::write_at
/// [`fill`]: Region::fill
/// [`atomic_u32`]: Region::atomic_u32
/// [`atomic_u64`]: Region::atomic_u64
/// [`as_atomic_u64s`]: Region::as_atomic_u64s
/// [`as_atomic_u8s`]: Region::as_atomic_u8s
/// [`load_only_u32`]: Region::load_only_u32
/// [`load_only_u64`]: Region::load_only_u64
/// [`as_load_only_u64s`]: Region::as_load_only_u64s
/// [`as_load_only_u8s`]: Region::as_load_only_u8s
/// [`as_ptr`]: Region::as_ptr
/// [`as_mut_ptr`]: Region::as_mut_ptr
/// [`as_slice`]: Region::as_slice
/// [`as_mut_slice`]: Region::as_mut_slice
pub struct Region {
    /// Page-aligned start of the mapping.
    base: NonNull<u8>,
    /// Bytes mapped from `base` (what `munmap` gets).
    map_len: usize,
    /// Bytes between `base` and the region's first byte (a file offset that
    /// was not page-aligned).
    head: usize,
    /// The region's length as asked for.
    len: usize,
    sharing: Sharing,
    access: Access,
    backing: Backing,
    /// The page size the mapping is made of (base or huge).
    granule: usize,
    release: Release,
    /// What the region maps, for error messages (`'data.bin'`, `fd 3`);
    /// `None` for anonymous and raw memory, which are named by address.
    name: Option<Box<str>>,
    /// Page ranges [`Region::protect`] left with fewer rights than the
    /// mapping's access: sorted, disjoint, and empty for almost every region.
    limits: Vec<Limit>,
    /// The one atomic width the bytes are accessed with (`widths`).
    pub(crate) width: AtomicWidth,
}

/// Pages whose rights [`Region::protect`] lowered below the mapped access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limit {
    /// First byte, as an offset from the mapping's page-aligned base.
    start: usize,
    /// One past the last byte, as an offset from the base.
    end: usize,
    rights: Protection,
}

/// Orders rights from none to read-write, for the safe accesses (which
/// read and write, never execute).
const fn rank(rights: Protection) -> u8 {
    match rights {
        Protection::None => 0,
        Protection::Read | Protection::ReadExecute => 1,
        Protection::ReadWrite | Protection::ReadWriteExecute => 2,
    }
}

/// A `PermissionDenied` error with `why` as its message.
fn denied(why: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why.to_string())
}

// SAFETY: a Region exclusively owns its mapping, like a `Box<[u8]>`. Its
// `&self` methods either call thread-safe syscalls on the range or access
// the bytes through atomics; every method that writes bytes without atomics
// takes `&mut self`. Moving it to another thread moves that ownership.
unsafe impl Send for Region {}
// SAFETY: shared references only allow atomic accesses (`read_at`, the
// atomic views), unsafe `as_slice`, and syscalls the kernel serialises
// (msync, madvise, mlock, mincore); plain writes and mprotect need
// `&mut self`, so two threads holding `&Region` cannot race on non-atomic
// accesses.
unsafe impl Sync for Region {}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("ptr", &self.as_ptr())
            .field("len", &self.len)
            .field("sharing", &self.sharing)
            .field("access", &self.access)
            .field("backing", &self.backing)
            .finish_non_exhaustive()
    }
}

impl Region {
    pub(crate) fn owned(
        base: *mut c_void,
        map_len: usize,
        head: usize,
        len: usize,
        options: MapOptions,
        backing: Backing,
        name: Option<&str>,
    ) -> Self {
        debug_assert!(head + len <= map_len);
        Self {
            // mmap never returns null on success without MAP_FIXED.
            base: NonNull::new(base.cast::<u8>()).unwrap_or(NonNull::dangling()),
            map_len,
            head,
            len,
            sharing: options.sharing,
            access: options.access,
            backing,
            granule: options.huge.granule(),
            release: Release::Munmap,
            name: name.map(Box::from),
            limits: Vec::new(),
            width: AtomicWidth::default(),
        }
    }

    /// `len` bytes of private, read-write, zero-filled anonymous memory: what
    /// `malloc` uses for large blocks.
    ///
    /// # Errors
    ///
    /// Zero length or `ENOMEM`.
    ///
    /// # References
    /// - [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)
    #[doc(alias = "mmap")]
    pub fn anonymous(len: usize) -> io::Result<Self> {
        MapOptions::new()
            .private()
            .read_write()
            .len(len)
            .map_anonymous()
    }

    /// `len` bytes of shared, read-write, zero-filled anonymous memory:
    /// children created by `fork` share it with the parent.
    ///
    /// # Errors
    ///
    /// Zero length or `ENOMEM`.
    pub fn anonymous_shared(len: usize) -> io::Result<Self> {
        MapOptions::new()
            .shared()
            .read_write()
            .len(len)
            .map_anonymous()
    }

    /// Takes ownership of memory mapped by other means, released on drop as
    /// `release` says.
    ///
    /// # Safety
    ///
    /// - `ptr` is page-aligned and the `len` bytes from it are mapped, stay
    ///   mapped until the region drops, and are not released by anyone else.
    /// - `access` matches the memory's protection: `ReadWrite` only if it is
    ///   writable.
    /// - `release` undoes the mapping exactly (for `Release::Munmap`, the
    ///   memory came from one or more `mmap` calls covering exactly `len`
    ///   bytes rounded up to pages).
    #[must_use]
    pub unsafe fn from_raw_parts(
        ptr: NonNull<u8>,
        len: usize,
        sharing: Sharing,
        access: Access,
        release: Release,
    ) -> Self {
        debug_assert!(ptr.as_ptr() as usize % page_size() == 0);
        Self {
            base: ptr,
            map_len: len,
            head: 0,
            len,
            sharing,
            access,
            backing: Backing::Raw,
            granule: page_size(),
            release,
            name: None,
            limits: Vec::new(),
            width: AtomicWidth::default(),
        }
    }

    /// The region's length in bytes (never zero).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: zero-length regions cannot be made.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Shared or private.
    #[must_use]
    pub const fn sharing(&self) -> Sharing {
        self.sharing
    }

    /// The access the region was mapped with (not changed by
    /// [`protect`](Self::protect)).
    #[must_use]
    pub const fn access(&self) -> Access {
        self.access
    }

    /// What the memory comes from.
    #[must_use]
    pub const fn backing(&self) -> Backing {
        self.backing
    }

    /// The first byte of the region.
    #[must_use]
    pub const fn as_ptr(&self) -> *const u8 {
        self.as_mut_ptr().cast_const()
    }

    /// The first byte of the region, for writing through.
    ///
    /// Getting the pointer is safe; writing through it is `unsafe` and needs
    /// writable pages (see [`check_access`](Self::check_access)) and no live
    /// reference (from [`as_slice`](Self::as_slice)) over the bytes written.
    #[must_use]
    pub const fn as_mut_ptr(&self) -> *mut u8 {
        // SAFETY: `head < map_len`, so the result stays inside the mapping.
        unsafe { self.base.as_ptr().add(self.head) }
    }

    /// The region's bytes as a slice.
    ///
    /// # Safety
    ///
    /// While the slice lives nothing may change these bytes: no other
    /// process through a shared mapping, no other mapping of the same object
    /// in this process, no thread through an atomic view, no `write(2)` to
    /// the mapped file, no truncation of the file (that would also raise
    /// `SIGBUS`). Every page must be readable (no range
    /// [`protect`](Self::protect)ed to [`Protection::None`]). Private
    /// anonymous memory and private mappings of files nobody writes meet
    /// this.
    #[must_use]
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the `len` bytes from `as_ptr` are mapped for the region's
        // lifetime, which the borrow of `self` bounds; the caller promises
        // they are readable and do not change meanwhile.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// The region's bytes as a mutable slice.
    ///
    /// # Safety
    ///
    /// As [`as_slice`](Self::as_slice): nothing outside this process reads
    /// or writes the bytes while the slice lives (a shared mapping's other
    /// users would race with the writes). Every page must be writable: the
    /// region mapped read-write and no range protected below
    /// [`Protection::ReadWrite`], otherwise writing through the slice raises
    /// `SIGSEGV`.
    #[must_use]
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the bytes are mapped for the region's lifetime and `&mut
        // self` excludes every other borrow in this process; the caller
        // vouches for other processes and for the pages' rights.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len) }
    }

    /// The region as error messages name it: the path or fd it maps, or
    /// its address.
    pub(crate) fn name(&self) -> String {
        match (&self.name, self.backing) {
            (Some(name), _) => name.to_string(),
            (None, Backing::Anonymous) => format!("anonymous region at {:p}", self.as_ptr()),
            (None, _) => format!("region at {:p}", self.as_ptr()),
        }
    }

    /// Checks `offset..offset+n` against the region and returns `offset`.
    pub(crate) fn check(&self, offset: usize, n: usize) -> io::Result<usize> {
        match offset.checked_add(n) {
            Some(end) if end <= self.len => Ok(offset),
            _ => Err(invalid(format_args!(
                "range {offset}..{} is outside {} ({} bytes)",
                offset.saturating_add(n),
                self.name(),
                self.len
            ))),
        }
    }

    /// Checks that the bytes `offset..offset+n` (inside the region) may be
    /// accessed with `need` rights: the mapped access, and whatever
    /// [`protect`](Self::protect) lowered. `what` names the access in the
    /// error.
    pub(crate) fn allows(
        &self,
        offset: usize,
        n: usize,
        need: Protection,
        what: &str,
    ) -> io::Result<()> {
        if need.writable() && !self.access.writable() {
            return Err(denied(format_args!(
                "cannot {what} {}: it is mapped read-only",
                self.name()
            )));
        }
        let (start, end) = (self.head + offset, self.head + offset + n);
        let blocked = self
            .limits
            .iter()
            .find(|l| n > 0 && l.start < end && start < l.end && rank(l.rights) < rank(need));
        match blocked {
            None => Ok(()),
            Some(limit) => Err(denied(format_args!(
                "cannot {what} bytes {offset}..{} of {}: pages there are protected as {:?}",
                offset + n,
                self.name(),
                limit.rights
            ))),
        }
    }

    /// Checks that `offset..offset+len` lies inside the region and its
    /// pages allow `access` now: the mapped access and whatever
    /// [`protect`](Self::protect) lowered. For code that reaches the bytes
    /// through raw pointers (a process-shared semaphore, a futex word) and
    /// must not fault.
    ///
    /// # Errors
    ///
    /// Out of range (`InvalidInput`), or the rights do not allow `access`
    /// (`PermissionDenied`, naming the region).
    pub fn check_access(&self, offset: usize, len: usize, access: Access) -> io::Result<()> {
        let offset = self.check(offset, len)?;
        let (need, what) = if access.writable() {
            (Protection::ReadWrite, "write to")
        } else {
            (Protection::Read, "read")
        };
        self.allows(offset, len, need, what)
    }

    /// Whether plain (non-atomic) writes are sound with `&mut self` alone:
    /// private anonymous memory is seen by no other mapping or process
    /// (`fork` gives children copies), and `&mut self` excludes every
    /// borrow in this process.
    fn exclusive(&self) -> bool {
        self.backing == Backing::Anonymous && self.sharing == Sharing::Private
    }

    /// Copies `buf.len()` bytes starting `offset` bytes into the region into
    /// `buf` with relaxed atomic loads of the region's
    /// [`atomic_width`](Self::atomic_width) (a word while none is claimed):
    /// another process (or thread, through an atomic view) may be writing
    /// the same bytes.
    ///
    /// # Errors
    ///
    /// The range reaches past the region's end, or lies in pages protected
    /// as [`Protection::None`].
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        let offset = self.check(offset, buf.len())?;
        self.allows(offset, buf.len(), Protection::Read, "read")?;
        let span = self.span(offset);
        // SAFETY: the source range lies inside the mapping (checked), which
        // is mapped while `self` is borrowed and readable there (checked);
        // in this process those bytes are reached only through atomics while
        // `&self` is shared (slices need `unsafe` and their callers promise
        // no concurrent change), and stores among them only through views
        // of the width `with_copy_width` gives (or none while it runs);
        // `buf` is a distinct Rust allocation.
        self.width
            .with_copy_width(|width| unsafe { atomic_copy::load(span, buf, width) });
        Ok(())
    }

    /// The region's bytes from `offset`, for `atomic_copy`.
    fn span(&self, offset: usize) -> Span {
        Span {
            start: self.as_mut_ptr(),
            len: self.len,
            at: offset,
        }
    }

    /// The atomic width the region's views use, claimed by the first
    /// atomic view (`Some(4)` after [`atomic_u32`](Self::atomic_u32)); a
    /// view of another width is refused, because Rust forbids atomic
    /// accesses of different sizes that race with a store.
    /// [`read_at`](Self::read_at) and [`write_at`](Self::write_at) copy with
    /// atomics of this width.
    #[must_use]
    pub fn atomic_width(&self) -> Option<usize> {
        self.width.get().map(crate::widths::Width::bytes)
    }

    /// Drops this region's claim on its atomic width: `&mut self` shows
    /// that none of its views is alive. The next view may take another
    /// width once no other region of the same object (file, shm object,
    /// memfd) in this process holds the claim either.
    pub fn release_atomic_width(&mut self) {
        self.width.reset();
    }

    /// Makes the region share its atomic width with every other mapping of
    /// the object `(dev, ino)` in this process.
    pub(crate) fn set_object(&mut self, key: (u64, u64)) {
        self.width.reset();
        self.width = AtomicWidth::of_object(key);
    }

    /// Declares that the region maps the object `(dev, ino)`, so that it
    /// shares its [`atomic_width`](Self::atomic_width) with every other
    /// region of that object in this process: two mappings of the same
    /// bytes must not take atomic views of different widths. Regions mapped
    /// from a descriptor ([`MapOptions::map`]) do this by themselves; use it
    /// for memory mapped by other means, naming it with numbers no file
    /// uses (System V shared memory uses `(u64::MAX, shmid)`). Any claim
    /// the region held is dropped (no view is alive: `self` is moved).
    #[must_use]
    pub fn with_object_identity(mut self, dev: u64, ino: u64) -> Self {
        self.set_object((dev, ino));
        self
    }

    /// Copies `data` into the region starting `offset` bytes in (relaxed
    /// atomic stores, except into private anonymous memory, which nothing
    /// else can see).
    ///
    /// # Errors
    ///
    /// The range reaches past the region's end, or the region is read-only
    /// there (mapped so, or [`protect`](Self::protect)ed).
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> io::Result<()> {
        let offset = self.check(offset, data.len())?;
        self.allows(offset, data.len(), Protection::ReadWrite, "write to")?;
        let dst = self.as_mut_ptr().wrapping_add(offset);
        if self.exclusive() {
            // SAFETY: the range lies inside the mapping and is writable
            // (checked); the memory is private anonymous and `&mut self`
            // excludes every other access to it; `data` is not part of it
            // (it would have to be borrowed from `self`).
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        } else {
            let span = self.span(offset);
            // SAFETY: the range lies inside the mapping and is writable
            // (checked); `&mut self` excludes slices and views of this
            // region, other mappings of the object in this process store
            // only at the width `with_copy_width` gives, and other processes
            // access the bytes atomically or outside Rust; `data` is not
            // inside the range.
            self.width
                .with_copy_width(|width| unsafe { atomic_copy::store(span, data, width) });
        }
        Ok(())
    }

    /// Fills `offset..offset+len` with `byte` (memset; relaxed atomic stores
    /// outside private anonymous memory, as [`write_at`](Self::write_at)).
    ///
    /// # Errors
    ///
    /// As [`write_at`](Self::write_at).
    pub fn fill(&mut self, offset: usize, len: usize, byte: u8) -> io::Result<()> {
        let offset = self.check(offset, len)?;
        self.allows(offset, len, Protection::ReadWrite, "write to")?;
        let dst = self.as_mut_ptr().wrapping_add(offset);
        if self.exclusive() {
            // SAFETY: as in `write_at`: checked range and rights, private
            // anonymous memory, `&mut self`.
            unsafe { std::ptr::write_bytes(dst, byte, len) };
        } else {
            let span = self.span(offset);
            // SAFETY: as in `write_at`: checked range and rights, accesses
            // by others are atomic and of the width given.
            self.width
                .with_copy_width(|width| unsafe { atomic_copy::fill(span, len, byte, width) });
        }
        Ok(())
    }

    /// Records that `protect` gave the map-relative pages `span` the rights
    /// `rights`.
    pub(crate) fn set_rights(&mut self, span: Range<usize>, rights: Protection) {
        let mapped = self.access.protection();
        let mut kept = Vec::new();
        for l in self.limits.drain(..) {
            if l.end <= span.start || span.end <= l.start {
                kept.push(l);
                continue;
            }
            if l.start < span.start {
                kept.push(Limit {
                    end: span.start,
                    ..l
                });
            }
            if span.end < l.end {
                kept.push(Limit {
                    start: span.end,
                    ..l
                });
            }
        }
        if rank(rights) < rank(mapped) {
            kept.push(Limit {
                start: span.start,
                end: span.end,
                rights,
            });
        }
        kept.sort_unstable_by_key(|l| l.start);
        self.limits = kept;
    }

    /// The fewest rights any page of the map-relative `span` has, or
    /// `rights` if that is fewer: what to assume after a failed `protect`.
    pub(crate) fn fewest_rights(&self, span: &Range<usize>, rights: Protection) -> Protection {
        self.limits
            .iter()
            .filter(|l| l.start < span.end && span.start < l.end)
            .map(|l| l.rights)
            .chain([rights])
            .min_by_key(|&r| rank(r))
            .unwrap_or(rights)
    }

    /// Rounds `range` (relative to the region) outwards to whole pages and
    /// returns them as offsets from the mapping's base.
    pub(crate) fn page_span(&self, range: impl RangeBounds<usize>) -> io::Result<Range<usize>> {
        let Range { start, end } = self.bounds(range)?;
        let granule = self.granule;
        let first = (self.head + start) & !(granule - 1);
        let last = round_up(self.head + end, granule)
            .unwrap_or(self.map_len)
            .min(self.map_len);
        Ok(first..last)
    }

    /// Rounds `range` (relative to the region) outwards to whole pages and
    /// returns the page-aligned pointer and length.
    pub(crate) fn pages(&self, range: impl RangeBounds<usize>) -> io::Result<(*mut c_void, usize)> {
        Ok(self.span_pages(&self.page_span(range)?))
    }

    /// The pointer and length of a span from [`page_span`](Self::page_span).
    pub(crate) fn span_pages(&self, span: &Range<usize>) -> (*mut c_void, usize) {
        debug_assert!(span.start < span.end && span.end <= self.map_len);
        (
            self.base.as_ptr().wrapping_add(span.start).cast(),
            span.end - span.start,
        )
    }

    /// Resolves `range` against the region's length: empty or out-of-range
    /// requests are errors.
    pub(crate) fn bounds(&self, range: impl RangeBounds<usize>) -> io::Result<Range<usize>> {
        let start = match range.start_bound() {
            Bound::Included(&s) => Some(s),
            Bound::Excluded(&s) => s.checked_add(1),
            Bound::Unbounded => Some(0),
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.checked_add(1),
            Bound::Excluded(&e) => Some(e),
            Bound::Unbounded => Some(self.len),
        };
        match (start, end) {
            (Some(start), Some(end)) if start < end && end <= self.len => Ok(start..end),
            (Some(start), Some(end)) if start >= end => {
                Err(invalid(format_args!("range {start}..{end} is empty")))
            }
            _ => Err(invalid(format_args!(
                "range is outside the region of {} bytes",
                self.len
            ))),
        }
    }

    /// Grows or shrinks the mapping to `new_len` bytes, moving it if needed
    /// (`mremap(MREMAP_MAYMOVE)`). Pointers taken before are invalid after.
    pub(crate) fn remap(&mut self, new_len: usize) -> io::Result<()> {
        if new_len == 0 {
            return Err(invalid("cannot resize a region to zero bytes"));
        }
        if !matches!(self.release, Release::Munmap) {
            return Err(invalid("cannot resize memory this region did not map"));
        }
        if !self.limits.is_empty() {
            return Err(invalid(format_args!(
                "cannot resize {}: some of its pages are protected",
                self.name()
            )));
        }
        let map_len = self
            .head
            .checked_add(new_len)
            .and_then(|n| round_up(n, self.granule))
            .ok_or_else(|| invalid("cannot resize region: length overflows"))?;
        // SAFETY: `base..base+map_len` is exactly our mapping; `&mut self`
        // means no reference into it is live, so it may move.
        let base = unsafe {
            mm::mremap(
                self.base.as_ptr().cast(),
                self.map_len,
                map_len,
                MremapFlags::MAYMOVE,
            )
        }
        .map_err(|e| {
            context(
                &e.into(),
                format_args!("failed to resize mapping to {new_len} bytes"),
            )
        })?;
        self.base = NonNull::new(base.cast()).unwrap_or(self.base);
        self.map_len = map_len;
        self.len = new_len;
        Ok(())
    }

    /// Unmaps now and reports an error, which `Drop` cannot.
    ///
    /// # Errors
    ///
    /// `munmap` failed (it does not for a mapping this crate made).
    ///
    /// # References
    /// - [munmap(2)](https://man7.org/linux/man-pages/man2/munmap.2.html)
    #[doc(alias = "munmap")]
    pub fn unmap(self) -> io::Result<()> {
        let mut this = std::mem::ManuallyDrop::new(self);
        // `Drop` does not run: free the bookkeeping here.
        drop(this.name.take());
        drop(std::mem::take(&mut this.limits));
        // SAFETY: `this` is never dropped, so the width state is dropped
        // here exactly once (giving up this region's claim).
        unsafe { std::ptr::drop_in_place(&raw mut this.width) };
        this.release()
    }

    fn release(&self) -> io::Result<()> {
        match self.release {
            // SAFETY: we own exactly `base..base+map_len`; the region is
            // being consumed, so nothing can use it afterwards.
            Release::Munmap => unsafe { mm::munmap(self.base.as_ptr().cast(), self.map_len) }
                .map_err(|e| context(&e.into(), "failed to unmap region")),
            Release::With(release) => {
                release(self.base, self.map_len);
                Ok(())
            }
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // Nothing sensible can be done with an error in drop; munmap of a
        // mapping we made does not fail.
        let _ = self.release();
    }
}

/// Opens `path` and returns the file with its length, for callers that map
/// and also need the file (growable regions, page-cache queries).
pub(crate) fn open_rw(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(|e| context(&e, format_args!("failed to open '{}'", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Advice, DestructiveAdvice, SyncMode};
    use rustix::mm::{MapFlags, ProtFlags};
    use std::io::Write;

    fn temp_file(contents: &[u8]) -> (std::path::PathBuf, File) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "memio-map-region-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = open_rw(&path, true).unwrap();
        file.set_len(0).unwrap();
        file.write_all(contents).unwrap();
        (path, file)
    }

    #[test]
    fn anonymous_memory_is_zeroed_and_writable() {
        let mut r = Region::anonymous(10_000).unwrap();
        assert_eq!(r.len(), 10_000);
        let mut buf = [1u8; 16];
        r.read_at(9_984, &mut buf).unwrap();
        assert_eq!(buf, [0; 16]);
        r.write_at(9_990, b"0123456789").unwrap();
        r.read_at(9_990, &mut buf[..10]).unwrap();
        assert_eq!(&buf[..10], b"0123456789");
    }

    #[test]
    fn zero_length_and_out_of_range_are_errors() {
        let e = Region::anonymous(0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("length is zero"), "{e}");
        let mut r = Region::anonymous(100).unwrap();
        assert!(r.write_at(95, b"123456").is_err());
        assert!(r.read_at(usize::MAX, &mut [0; 2]).is_err());
        assert!(r.sync(50..50, SyncMode::Sync).is_err());
        assert!(r.advise(0..101, Advice::Normal).is_err());
        assert!(r.residency(200..).is_err());
        assert!(r.atomic_u32(98).is_err());
        assert!(r.atomic_u32(2).is_err(), "misaligned");
        let (path, file) = temp_file(b"");
        let e = MapOptions::new().map(&file).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        file.set_len(100).unwrap();
        let e = MapOptions::new().len(101).map(&file).unwrap_err();
        assert!(e.to_string().contains("reach past its end"), "{e}");
        let e = MapOptions::new().offset(50).len(51).map(&file).unwrap_err();
        assert!(e.to_string().contains("bytes 50..101"), "{e}");
        assert!(MapOptions::new().offset(50).len(50).map(&file).is_ok());
        let zero = File::open("/dev/zero").unwrap();
        assert!(
            MapOptions::new().map(&zero).is_err(),
            "a device needs a length"
        );
        assert!(MapOptions::new().len(1 << 20).map(&zero).is_ok());
        let e = MapOptions::new().map_path(path.join("nope")).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn unaligned_offset_maps_the_byte_asked_for() {
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        let (path, file) = temp_file(&data);
        let r = MapOptions::new().offset(5000).len(100).map(&file).unwrap();
        let mut buf = [0u8; 100];
        r.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf[..], &data[5000..5100]);
        // Whole-file default from an offset.
        let r = MapOptions::new().offset(4097).map(&file).unwrap();
        assert_eq!(r.len(), data.len() - 4097);
        assert_eq!(r.residency(..).unwrap().len(), 2);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn shared_writes_reach_the_file_and_private_writes_do_not() {
        let (path, file) = temp_file(&[b'.'; 8192]);
        let mut shared = MapOptions::new().read_write().map(&file).unwrap();
        let mut private = MapOptions::new().private().read_write().map(&file).unwrap();
        shared.write_at(0, b"shared").unwrap();
        shared.sync(.., SyncMode::Sync).unwrap();
        private.write_at(100, b"private").unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[..6], b"shared");
        assert_eq!(&on_disk[100..107], b".......");
        let mut buf = [0u8; 7];
        private.read_at(100, &mut buf).unwrap();
        assert_eq!(&buf, b"private");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn read_only_regions_refuse_writes() {
        let (path, file) = temp_file(b"hello");
        let mut r = MapOptions::new().map(&file).unwrap();
        assert_eq!(
            r.write_at(0, b"x").unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        // SAFETY: nobody else writes this private temporary file.
        assert_eq!(unsafe { r.as_slice() }, b"hello");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn residency_follows_touching_and_dontneed() {
        let page = page_size();
        let mut r = Region::anonymous(4 * page).unwrap();
        assert_eq!(r.residency(..).unwrap(), vec![false; 4]);
        r.fill(page, page, 7).unwrap();
        assert_eq!(r.residency(..).unwrap(), vec![false, true, false, false]);
        // SAFETY: no slice of the region is live.
        unsafe { r.advise_unchecked(.., DestructiveAdvice::DontNeed) }.unwrap();
        assert_eq!(r.residency(..).unwrap(), vec![false; 4]);
        let mut b = [9u8];
        r.read_at(page, &mut b).unwrap();
        assert_eq!(b, [0]);
    }

    #[test]
    fn lock_brings_pages_in_and_guards_unlock() {
        let r = Region::anonymous(64 << 10).unwrap();
        {
            let guard = r.lock(..).unwrap();
            assert_eq!(guard.len(), 64 << 10);
            assert!(r.residency(..).unwrap().iter().all(|&b| b));
        }
        r.lock(4096..8192).unwrap().unlock().unwrap();
        match r.lock_on_fault(0..1) {
            Ok(guard) => assert_eq!(guard.len(), page_size()),
            // mlock2 is Linux 4.4+, and valgrind does not know it.
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                println!("mlock2 is not available here: skipped");
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn populate_faults_everything_in() {
        let r = MapOptions::new()
            .private()
            .read_write()
            .len(256 << 10)
            .populate(true)
            .map_anonymous()
            .unwrap();
        assert!(r.residency(..).unwrap().iter().all(|&b| b));
    }

    #[test]
    fn remap_keeps_contents() {
        let mut r = Region::anonymous(4096).unwrap();
        r.write_at(4000, b"kept").unwrap();
        r.remap(1 << 20).unwrap();
        let mut b = [0u8; 4];
        r.read_at(4000, &mut b).unwrap();
        assert_eq!(&b, b"kept");
        r.write_at((1 << 20) - 1, b"z").unwrap();
    }

    #[test]
    fn raw_parts_are_released_with_the_given_function() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static RELEASED: AtomicUsize = AtomicUsize::new(0);
        fn release(ptr: NonNull<u8>, len: usize) {
            // SAFETY: the test mapped exactly this range below.
            unsafe { mm::munmap(ptr.as_ptr().cast(), len) }.unwrap();
            RELEASED.fetch_add(len, Ordering::Relaxed);
        }
        // SAFETY: fresh anonymous mapping at a kernel-chosen address.
        let ptr = unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                8192,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .unwrap();
        // SAFETY: we hand over the whole mapping and never touch it again.
        let mut r = unsafe {
            Region::from_raw_parts(
                NonNull::new(ptr.cast()).unwrap(),
                8192,
                Sharing::Private,
                Access::ReadWrite,
                Release::With(release),
            )
        };
        r.write_at(0, b"raw").unwrap();
        assert_eq!(r.backing(), Backing::Raw);
        drop(r);
        assert_eq!(RELEASED.load(Ordering::Relaxed), 8192);
    }

    /// Two mappings of one memfd in one process: one side stores words
    /// atomically, the other copies with `read_at`. Every word copied is one
    /// the writer stored, never a mix (the copy takes each aligned word in
    /// one access), and the copy is defined behaviour (atomic on both sides).
    #[test]
    fn read_at_beside_atomic_stores_in_another_mapping_sees_whole_words() {
        use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
        let fd =
            rustix::fs::memfd_create("memio-map-race", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        let writer = MapOptions::new().read_write().map(&fd).unwrap();
        let reader = MapOptions::new().map(&fd).unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let words = writer.as_atomic_u64s().unwrap();
                let mut v = 0u64;
                while !stop.load(Relaxed) {
                    v = !v;
                    for w in words {
                        w.store(v, Relaxed);
                    }
                }
            });
            let mut buf = vec![0u8; 4096 + 3];
            for round in 0..2000 {
                // Odd offsets into `buf` make the copy's destination
                // unaligned, as callers' buffers may be.
                let at = round % 4;
                reader.read_at(0, &mut buf[at..at + 4096]).unwrap();
                for word in buf[at..at + 4096].chunks_exact(8) {
                    assert!(word.iter().all(|&b| b == word[0]), "torn word {word:?}");
                }
            }
            stop.store(true, Relaxed);
        });
    }

    #[test]
    fn shared_and_private_copies_agree_at_odd_offsets() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        for mut r in [
            Region::anonymous(6000).unwrap(),
            Region::anonymous_shared(6000).unwrap(),
        ] {
            for at in [0, 1, 7, 9, 999] {
                r.write_at(at, &data).unwrap();
                let mut back = vec![0u8; data.len()];
                r.read_at(at, &mut back).unwrap();
                assert_eq!(back, data, "{:?} at {at}", r.sharing());
                r.fill(at + 3, 17, 0xAB).unwrap();
                r.read_at(at, &mut back[..30]).unwrap();
                assert_eq!(&back[..3], &data[..3]);
                assert!(back[3..20].iter().all(|&b| b == 0xAB));
                assert_eq!(&back[20..30], &data[20..30]);
            }
        }
    }

    #[test]
    fn errors_name_the_region() {
        let (path, file) = temp_file(b"0123456789");
        drop(file);
        let mut r = MapOptions::new().map_path(&path).unwrap();
        let e = r.write_at(0, b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(
            e.to_string(),
            format!(
                "cannot write to '{}': it is mapped read-only",
                path.display()
            )
        );
        let e = r.read_at(8, &mut [0; 4]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("range 8..12 is outside '{}' (10 bytes)", path.display())
        );
        let a = Region::anonymous(10).unwrap();
        let e = a.read_at(8, &mut [0; 4]).unwrap_err();
        assert!(
            e.to_string().contains("outside anonymous region at 0x"),
            "{e}"
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn protecting_pages_none_refuses_safe_access_there_only() {
        let page = page_size();
        let mut r = Region::anonymous(3 * page).unwrap();
        r.protect(page..2 * page, Protection::None).unwrap();
        let mut b = [0u8; 2];
        assert!(r.read_at(page - 2, &mut b).is_ok());
        assert!(r.read_at(page - 1, &mut b).is_err());
        assert!(r.read_at(2 * page - 1, &mut b).is_err());
        assert!(r.read_at(2 * page, &mut b).is_ok());
        assert!(
            r.read_at(page + 5, &mut []).is_ok(),
            "an empty copy touches nothing"
        );
        assert!(r.as_load_only_u8s().is_err());
        assert!(r.as_atomic_u64s().is_err());
        assert!(r.check_access(0, page, Access::ReadWrite).is_ok());
        assert!(r.check_access(page, 1, Access::ReadOnly).is_err());
        assert!(
            r.check_access(2 * page, page + 1, Access::ReadOnly)
                .is_err(),
            "past the end"
        );
        let e = r.lock(..).unwrap_err();
        assert!(e.to_string().contains("protected as None"), "{e}");
        // Splitting the protected range keeps the rest protected.
        r.protect(page..=page, Protection::ReadWrite).unwrap();
        assert!(r.write_at(page, b"ok").is_ok());
        r.protect(.., Protection::ReadWrite).unwrap();
        assert!(r.as_atomic_u64s().is_ok());
        r.unmap().unwrap();
    }

    #[test]
    fn protect_cannot_raise_a_read_only_mapping_for_the_safe_calls() {
        let (path, file) = temp_file(&[1; 100]);
        let mut r = MapOptions::new().private().map(&file).unwrap();
        // A private mapping may become writable (copy-on-write), but the
        // region still counts it as mapped read-only.
        r.protect(.., Protection::ReadWrite).unwrap();
        assert!(r.write_at(0, b"x").is_err());
        assert!(r.atomic_u32(0).is_err());
        std::fs::remove_file(path).unwrap();
    }
}
