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
//!   Rust reference while it changes. So the region never hands out `&[u8]`
//!   safely: [`Region::as_slice`] and [`Region::as_mut_slice`] are `unsafe`
//!   with the rule spelled out, and the safe paths are copies
//!   ([`Region::read_at`], [`Region::write_at`]) and atomics
//!   ([`Region::atomic_u32`], [`Region::atomic_u64`]).
//! - **Truncation**: touching a page of a file mapping past the file's
//!   current end raises `SIGBUS`, which ends the process. That is a crash,
//!   not memory corruption; documented on [`MapOptions::map`].
//! - **Ranges**: every operation on a byte range checks it against the
//!   region's length before any pointer arithmetic, and rounds it outwards to
//!   whole pages inside the mapping.
#![allow(
    unsafe_code,
    reason = "munmap, mremap and access to the bytes of memory this module owns"
)]

use std::ffi::c_void;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::{Bound, Range, RangeBounds};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};

use rustix::mm::{self, MremapFlags};

use crate::error::{context, invalid};
use crate::options::{Access, Backing, MapOptions, Release, Sharing, round_up};

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
/// - [`read_at`]/[`write_at`] copy in and out, bounds-checked. Safe. If
///   another process writes the same bytes at the same moment the copy may
///   see some old and some new bytes; agree on a protocol (a lock, a
///   sequence counter) for consistent snapshots.
/// - [`atomic_u32`]/[`atomic_u64`] give `&AtomicU32`/`&AtomicU64` inside the
///   region, the right tool for flags, counters and futex words shared
///   between processes; [`as_atomic_u64s`]/[`as_atomic_u8s`] view the whole
///   region as atomics, to scan it in place without a copy. Safe.
/// - [`as_ptr`]/[`as_mut_ptr`] give raw pointers for everything else;
///   dereferencing them is `unsafe` and the caller's contract.
/// - [`as_slice`]/[`as_mut_slice`] give slices, `unsafe`: the caller promises
///   nothing else changes the bytes while the slice lives (true for private
///   and anonymous private memory that was not shared by `fork`).
///
/// [`sync`]: Region::sync
/// [`advise`]: Region::advise
/// [`protect`]: Region::protect
/// [`lock`]: Region::lock
/// [`residency`]: Region::residency
/// [`read_at`]: Region::read_at
/// [`write_at`]: Region::write_at
/// [`atomic_u32`]: Region::atomic_u32
/// [`atomic_u64`]: Region::atomic_u64
/// [`as_atomic_u64s`]: Region::as_atomic_u64s
/// [`as_atomic_u8s`]: Region::as_atomic_u8s
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
}

// SAFETY: a Region exclusively owns its mapping, like a `Box<[u8]>`. Its
// `&self` methods either call thread-safe syscalls on the range or copy bytes
// out through raw pointers; every method that writes bytes without atomics
// takes `&mut self`. Moving it to another thread moves that ownership.
unsafe impl Send for Region {}
// SAFETY: shared references only allow reads (`read_at`, unsafe
// `as_slice`), atomic operations, and syscalls the kernel serialises
// (msync, madvise, mprotect, mlock, mincore); plain writes need `&mut self`,
// so two threads holding `&Region` cannot race on non-atomic accesses.
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
    /// a read-write region and no live reference (from
    /// [`as_slice`](Self::as_slice)) over the bytes written.
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
    /// process through a shared mapping, no `write(2)` to the mapped file, no
    /// truncation of the file (that would also raise `SIGBUS`), and no
    /// [`protect`](Self::protect) to [`Protection::None`](crate::Protection::None). Private anonymous
    /// memory and private mappings of files nobody writes meet this.
    #[must_use]
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the `len` bytes from `as_ptr` are mapped and readable for
        // the region's lifetime, which the borrow of `self` bounds; the
        // caller promises they do not change meanwhile.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// The region's bytes as a mutable slice.
    ///
    /// # Safety
    ///
    /// As [`as_slice`](Self::as_slice): nothing outside this process reads
    /// or writes the bytes while the slice lives (a shared mapping's other
    /// users would race with the writes). The region must be read-write,
    /// otherwise writing through the slice raises `SIGSEGV`.
    #[must_use]
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the bytes are mapped for the region's lifetime and `&mut
        // self` excludes every other borrow in this process; the caller
        // vouches for other processes.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len) }
    }

    /// Checks `offset..offset+n` against the region and returns `offset`.
    fn check(&self, offset: usize, n: usize) -> io::Result<usize> {
        match offset.checked_add(n) {
            Some(end) if end <= self.len => Ok(offset),
            _ => Err(invalid(format_args!(
                "range {offset}..{} is outside the region of {} bytes",
                offset.saturating_add(n),
                self.len
            ))),
        }
    }

    /// Copies `buf.len()` bytes starting `offset` bytes into the region into
    /// `buf`.
    ///
    /// # Errors
    ///
    /// The range reaches past the region's end.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        let src = self.as_ptr().wrapping_add(self.check(offset, buf.len())?);
        // SAFETY: the source range was checked to lie inside the mapping,
        // which is readable while `self` is borrowed; `buf` is a distinct
        // Rust allocation, so the ranges cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len());
        }
        Ok(())
    }

    /// Copies `data` into the region starting `offset` bytes in.
    ///
    /// # Errors
    ///
    /// The range reaches past the region's end, or the region is
    /// read-only.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> io::Result<()> {
        let dst = self
            .as_mut_ptr()
            .wrapping_add(self.check(offset, data.len())?);
        if self.access == Access::ReadOnly {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "cannot write to a read-only region",
            ));
        }
        // SAFETY: the range was checked to lie inside the mapping, which was
        // mapped writable; `&mut self` excludes references from `as_slice`
        // in this process; `data` cannot overlap memory we own exclusively.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
        }
        Ok(())
    }

    /// Fills `offset..offset+len` with `byte` (memset).
    ///
    /// # Errors
    ///
    /// As [`write_at`](Self::write_at).
    pub fn fill(&mut self, offset: usize, len: usize, byte: u8) -> io::Result<()> {
        let dst = self.as_mut_ptr().wrapping_add(self.check(offset, len)?);
        if self.access == Access::ReadOnly {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "cannot write to a read-only region",
            ));
        }
        // SAFETY: as in `write_at`: checked range, writable mapping, `&mut self`.
        unsafe { std::ptr::write_bytes(dst, byte, len) };
        Ok(())
    }

    /// The 4 bytes at `offset` as an atomic, for flags, counters and futex
    /// words shared with other processes.
    ///
    /// # Errors
    ///
    /// `offset` is not 4-byte aligned (relative to the region's start, which
    /// is page-aligned unless mapped at an unaligned file offset) or the
    /// word is past the end.
    pub fn atomic_u32(&self, offset: usize) -> io::Result<&AtomicU32> {
        let ptr = self.atomic_ptr::<u32>(offset)?;
        // SAFETY: `atomic_ptr` checked bounds and alignment; the memory is
        // mapped for the borrow of `self`; atomics tolerate concurrent
        // access from other threads and processes; no `&mut` to the bytes
        // can exist while `&self` is borrowed.
        Ok(unsafe { AtomicU32::from_ptr(ptr.cast()) })
    }

    /// The 8 bytes at `offset` as an atomic; see [`atomic_u32`](Self::atomic_u32).
    ///
    /// # Errors
    ///
    /// Misaligned or out of range.
    pub fn atomic_u64(&self, offset: usize) -> io::Result<&AtomicU64> {
        let ptr = self.atomic_ptr::<u64>(offset)?;
        // SAFETY: as in `atomic_u32`.
        Ok(unsafe { AtomicU64::from_ptr(ptr.cast()) })
    }

    /// The region's whole 8-byte words as atomics: the safe way to scan a
    /// mapping in place (no copy) even while other processes write it. A
    /// `Relaxed` load compiles to a plain load, and such loads are sound on
    /// read-only memory too. Bytes past the last whole word are left out.
    ///
    /// # Errors
    ///
    /// The region does not start on an 8-byte boundary (it was mapped at a
    /// file offset that is not a multiple of 8).
    pub fn as_atomic_u64s(&self) -> io::Result<&[AtomicU64]> {
        let ptr = self.as_mut_ptr();
        if (ptr as usize) % align_of::<AtomicU64>() != 0 {
            return Err(invalid("region does not start on an 8-byte boundary"));
        }
        #[allow(clippy::cast_ptr_alignment, reason = "alignment checked just above")]
        let ptr = ptr.cast::<AtomicU64>();
        // SAFETY: the `len / 8` whole words from `ptr` are mapped for the
        // borrow of `self` and `ptr` is 8-aligned (checked); atomics tolerate
        // concurrent writers in any process; `&mut` access to the bytes needs
        // `&mut self`, excluded by this borrow.
        Ok(unsafe { std::slice::from_raw_parts(ptr, self.len / 8) })
    }

    /// The region's bytes as atomics; see [`as_atomic_u64s`](Self::as_atomic_u64s).
    #[must_use]
    pub fn as_atomic_u8s(&self) -> &[AtomicU8] {
        // SAFETY: the `len` bytes from `as_mut_ptr` are mapped for the borrow
        // of `self`; `AtomicU8` has alignment 1 and tolerates concurrent
        // writers; `&mut` access needs `&mut self`, excluded by this borrow.
        unsafe { std::slice::from_raw_parts(self.as_mut_ptr().cast::<AtomicU8>(), self.len) }
    }

    fn atomic_ptr<T>(&self, offset: usize) -> io::Result<*mut u8> {
        let offset = self.check(offset, size_of::<T>())?;
        let ptr = self.as_mut_ptr().wrapping_add(offset);
        if (ptr as usize) % align_of::<T>() != 0 {
            return Err(invalid(format_args!(
                "offset {offset} is not aligned to {} bytes",
                align_of::<T>()
            )));
        }
        Ok(ptr)
    }

    /// Rounds `range` (relative to the region) outwards to whole pages and
    /// returns the page-aligned pointer and length.
    pub(crate) fn pages(&self, range: impl RangeBounds<usize>) -> io::Result<(*mut c_void, usize)> {
        let Range { start, end } = self.bounds(range)?;
        let granule = self.granule;
        let first = (self.head + start) & !(granule - 1);
        let last = round_up(self.head + end, granule)
            .unwrap_or(self.map_len)
            .min(self.map_len);
        // SAFETY: `first < map_len`, so the pointer stays inside the mapping.
        let ptr = unsafe { self.base.as_ptr().add(first) };
        Ok((ptr.cast(), last - first))
    }

    /// Resolves `range` against the region's length: empty or out-of-range
    /// requests are errors.
    fn bounds(&self, range: impl RangeBounds<usize>) -> io::Result<Range<usize>> {
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
        let this = std::mem::ManuallyDrop::new(self);
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
    fn atomics_work_across_threads() {
        let r = Region::anonymous_shared(4096).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        r.atomic_u64(8)
                            .unwrap()
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(
            r.atomic_u64(8)
                .unwrap()
                .load(std::sync::atomic::Ordering::Relaxed),
            4000
        );
    }

    #[test]
    fn atomic_views_cover_the_region_in_place() {
        use std::sync::atomic::Ordering::Relaxed;
        let data: Vec<u8> = (0..20u8).collect();
        let (path, file) = temp_file(&data);
        let r = MapOptions::new().map(&file).unwrap();
        let words = r.as_atomic_u64s().unwrap();
        assert_eq!(words.len(), 2);
        assert_eq!(
            words[1].load(Relaxed),
            u64::from_ne_bytes(data[8..16].try_into().unwrap())
        );
        assert_eq!(r.as_atomic_u8s()[19].load(Relaxed), 19);
        let odd = MapOptions::new().offset(3).map(&file).unwrap();
        assert!(odd.as_atomic_u64s().is_err());
        std::fs::remove_file(path).unwrap();
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
}
