//! Page-range controls on a [`Region`]: `msync`, `madvise`, `mprotect`,
//! `mlock`/`munlock` and `mincore`.
//!
//! # Safety
//!
//! Every call here receives a page-aligned range that `Region::pages`
//! computed inside the region's own mapping after checking the byte range
//! against the region's length, so no call reaches memory the region does
//! not own. Only [`Region::advise_unchecked`] can change contents the
//! program sees, and it is `unsafe` for that reason.
#![allow(
    unsafe_code,
    reason = "msync, madvise, mprotect, mlock and mincore on a region's own pages"
)]

use std::ffi::c_void;
use std::io;
use std::ops::RangeBounds;

use rustix::mm::{self, MlockFlags, MprotectFlags, MsyncFlags};

use crate::error::{context, exec_context, memlock_context};
use crate::options::{Advice, DestructiveAdvice, Protection, SyncMode};
use crate::region::{Region, page_size};

impl Region {
    /// Writes the pages covering `range` back to the file (`msync`).
    /// Meaningful for shared file mappings; on anonymous or private memory
    /// it succeeds and does nothing.
    ///
    /// # Errors
    ///
    /// Empty or out-of-range `range`, or an I/O error writing back.
    ///
    /// # References
    /// - [msync(2)](https://man7.org/linux/man-pages/man2/msync.2.html)
    #[doc(alias = "msync")]
    pub fn sync(&self, range: impl RangeBounds<usize>, mode: SyncMode) -> io::Result<()> {
        let (ptr, len) = self.pages(range)?;
        let flags = match mode {
            SyncMode::Sync => MsyncFlags::SYNC,
            SyncMode::Async => MsyncFlags::ASYNC,
            SyncMode::Invalidate => MsyncFlags::INVALIDATE,
            SyncMode::SyncInvalidate => MsyncFlags::SYNC | MsyncFlags::INVALIDATE,
        };
        // SAFETY: `pages` returned a page-aligned range inside our mapping;
        // msync does not change what the program reads.
        unsafe { mm::msync(ptr, len, flags) }
            .map_err(|e| context(&e.into(), format_args!("failed to sync {len} bytes")))
    }

    /// Gives the kernel a usage hint for the pages covering `range`
    /// (`madvise`). These hints never change the contents the program sees.
    ///
    /// # Errors
    ///
    /// Empty or out-of-range `range`, or advice the kernel does not support
    /// here (`EINVAL`: huge pages disabled, KSM not built in).
    ///
    /// # References
    /// - [madvise(2)](https://man7.org/linux/man-pages/man2/madvise.2.html)
    #[doc(alias = "madvise")]
    pub fn advise(&self, range: impl RangeBounds<usize>, advice: Advice) -> io::Result<()> {
        let (ptr, len) = self.pages(range)?;
        // SAFETY: the range lies inside our mapping and `Advice` holds only
        // hints that keep the contents as the program sees them.
        unsafe { mm::madvise(ptr, len, advice.raw()) }
            .map_err(|e| context(&e.into(), format_args!("failed to advise {advice:?}")))
    }

    /// Gives advice that changes what the program reads back, or what a
    /// child created by `fork` finds at the region's address
    /// ([`DestructiveAdvice`]).
    ///
    /// # Safety
    ///
    /// - No reference to the affected bytes may be live (the contents change
    ///   under it), and the program must not rely on the discarded contents.
    /// - After [`DestructiveAdvice::DontFork`], a child created by `fork`
    ///   inherits the `Region` value but not the memory: the child must not
    ///   touch or drop the region (its address may hold another mapping by
    ///   then), for instance by calling only `exec` or `_exit`.
    ///
    /// # Errors
    ///
    /// As [`advise`](Self::advise).
    ///
    /// # References
    /// - [madvise(2)](https://man7.org/linux/man-pages/man2/madvise.2.html)
    #[doc(alias = "madvise")]
    pub unsafe fn advise_unchecked(
        &self,
        range: impl RangeBounds<usize>,
        advice: DestructiveAdvice,
    ) -> io::Result<()> {
        let (ptr, len) = self.pages(range)?;
        // SAFETY: the range lies inside our mapping; the caller accepts the
        // change of contents and holds no reference over it.
        unsafe { mm::madvise(ptr, len, advice.raw()) }
            .map_err(|e| context(&e.into(), format_args!("failed to advise {advice:?}")))
    }

    /// Changes the access rights of the pages covering `range` (`mprotect`):
    /// a guard page, or data made read-only after it is built.
    ///
    /// The region remembers the new rights: safe accesses they forbid
    /// ([`write_at`](Self::write_at) into a read-only page, anything in a
    /// [`Protection::None`] page, atomic views) fail with an error instead
    /// of faulting. Raw pointers get no such check: an access the rights
    /// forbid raises `SIGSEGV`. Rights above the mapped
    /// [`access`](Self::access) do not make a read-only region writable for
    /// the safe methods.
    ///
    /// Takes `&mut self`, so no view, slice or lock guard borrowed from the
    /// region is alive while its pages change rights:
    ///
    /// ```compile_fail,E0502
    /// use memio_map::{Protection, Region};
    /// # fn main() -> std::io::Result<()> {
    /// let mut region = Region::anonymous(4096)?;
    /// let words = region.as_load_only_u64s()?;
    /// region.protect(.., Protection::None)?; // error: `region` is borrowed
    /// let first = words[0].load();
    /// # Ok(()) }
    /// ```
    ///
    /// Executable rights ([`Protection::ReadExecute`]) are how code written
    /// into a region is made runnable: write it, then flip the pages to
    /// read+execute (never writable and executable at once, the W^X way).
    /// Calling into it is `unsafe`: see the `exec_code` example.
    ///
    /// # Errors
    ///
    /// Empty or out-of-range `range`; `EACCES` when asking for write access
    /// to a shared mapping of a file opened read-only; `EACCES`/`EPERM` for
    /// executable rights the kernel refuses (a `noexec` mount, a W^X
    /// policy), with a message that says so.
    ///
    /// # References
    /// - [mprotect(2)](https://man7.org/linux/man-pages/man2/mprotect.2.html)
    #[doc(alias = "mprotect")]
    pub fn protect(
        &mut self,
        range: impl RangeBounds<usize>,
        protection: Protection,
    ) -> io::Result<()> {
        let span = self.page_span(range)?;
        let (ptr, len) = self.span_pages(&span);
        let mut flags = MprotectFlags::empty();
        if protection.readable() {
            flags |= MprotectFlags::READ;
        }
        if protection.writable() {
            flags |= MprotectFlags::WRITE;
        }
        if protection.executable() {
            flags |= MprotectFlags::EXEC;
        }
        // SAFETY: the range lies inside our mapping and `&mut self` means
        // no reference into it is live; the safe accessors check the rights
        // recorded below before every access. Executable rights alone run
        // nothing: jumping into the pages takes `unsafe` code of the caller.
        let result = unsafe { mm::mprotect(ptr, len, flags) };
        // A failed call may have changed some pages: assume the fewest
        // rights of before and after.
        let rights = match result {
            Ok(()) => protection,
            Err(_) => self.fewest_rights(&span, protection),
        };
        self.set_rights(span, rights);
        result.map_err(|e| {
            exec_context(
                &e.into(),
                protection.executable(),
                format_args!(
                    "failed to protect {len} bytes of {} as {protection:?}",
                    self.name()
                ),
            )
        })
    }

    /// Locks the pages covering `range` in memory (`mlock`): they are read in
    /// now and never swapped out until the guard drops (`munlock`).
    ///
    /// Locks do not nest: unlocking a page unlocks it for every guard over
    /// it. Unmapping unlocks too.
    ///
    /// # Errors
    ///
    /// Empty or out-of-range `range`; pages protected as
    /// [`Protection::None`]; `ENOMEM`/`EPERM` past `RLIMIT_MEMLOCK`, which
    /// the message names with its current value.
    ///
    /// # References
    /// - [mlock(2)](https://man7.org/linux/man-pages/man2/mlock.2.html)
    #[doc(alias = "mlock")]
    pub fn lock(&self, range: impl RangeBounds<usize>) -> io::Result<MemLockGuard<'_>> {
        self.lock_with(range, false)
    }

    /// Like [`lock`](Self::lock), but pages are locked as they are first
    /// touched rather than all at once (`mlock2(MLOCK_ONFAULT)`).
    ///
    /// # Errors
    ///
    /// As [`lock`](Self::lock).
    ///
    /// # References
    /// - [mlock2(2)](https://man7.org/linux/man-pages/man2/mlock2.2.html)
    #[doc(alias = "mlock2")]
    pub fn lock_on_fault(&self, range: impl RangeBounds<usize>) -> io::Result<MemLockGuard<'_>> {
        self.lock_with(range, true)
    }

    fn lock_with(
        &self,
        range: impl RangeBounds<usize>,
        on_fault: bool,
    ) -> io::Result<MemLockGuard<'_>> {
        let bytes = self.bounds(range)?;
        // The kernel answers ENOMEM for PROT_NONE pages, which would read
        // as a memory-lock limit.
        self.allows(bytes.start, bytes.len(), Protection::Read, "lock")?;
        let (ptr, len) = self.pages(bytes)?;
        let result = if on_fault {
            // SAFETY: the range lies inside our mapping; locking does not
            // change its contents.
            unsafe { mm::mlock_with(ptr, len, MlockFlags::ONFAULT) }
        } else {
            // SAFETY: as above.
            unsafe { mm::mlock(ptr, len) }
        };
        result.map_err(|e| memlock_context(&e.into(), len))?;
        Ok(MemLockGuard {
            ptr,
            len,
            _region: std::marker::PhantomData,
        })
    }

    /// Which pages covering `range` are resident in memory right now
    /// (`mincore`): one flag per page, first page first.
    ///
    /// For a file mapping this is the page cache's state, which `mincore`
    /// reports truthfully only when the caller owns or can write the file
    /// (Linux 5.2+); see [`crate::cache`] for a trustworthy file answer.
    ///
    /// # Errors
    ///
    /// Empty or out-of-range `range`.
    ///
    /// # References
    /// - [mincore(2)](https://man7.org/linux/man-pages/man2/mincore.2.html)
    #[doc(alias = "mincore")]
    pub fn residency(&self, range: impl RangeBounds<usize>) -> io::Result<Vec<bool>> {
        let (ptr, len) = self.pages(range)?;
        let page = page_size();
        let mut vec = vec![0u8; len.div_ceil(page)];
        // SAFETY: `ptr..ptr+len` is page-aligned and mapped (ours); `vec`
        // has one byte per page of it, as mincore requires.
        let rc = unsafe { libc::mincore(ptr, len, vec.as_mut_ptr()) };
        if rc != 0 {
            return Err(context(
                &io::Error::last_os_error(),
                "failed to query residency",
            ));
        }
        Ok(vec.into_iter().map(|b| b & 1 != 0).collect())
    }
}

/// Keeps pages locked in memory; unlocks them (`munlock`) when dropped.
///
/// (A memory lock; the file locks are memio-io's.) The guard borrows its
/// region, so the region cannot be unmapped, resized or re-protected while
/// pages are locked:
///
/// ```compile_fail,E0502
/// use memio_map::{Protection, Region};
/// # fn main() -> std::io::Result<()> {
/// let mut region = Region::anonymous(4096)?;
/// let guard = region.lock(..)?;
/// region.protect(.., Protection::None)?; // error: `region` is borrowed
/// drop(guard);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "the pages are unlocked as soon as the guard drops"]
pub struct MemLockGuard<'a> {
    ptr: *mut c_void,
    len: usize,
    _region: std::marker::PhantomData<&'a Region>,
}

impl MemLockGuard<'_> {
    /// Bytes locked (whole pages).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: empty ranges are refused.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Unlocks now (`munlock`) and reports an error, which `Drop` cannot.
    ///
    /// # Errors
    ///
    /// `munlock` failed (it does not for a range this guard locked).
    ///
    /// # References
    /// - [munlock(2)](https://man7.org/linux/man-pages/man2/munlock.2.html)
    #[doc(alias = "munlock")]
    pub fn unlock(self) -> io::Result<()> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: as in `Drop`: our locked range inside a live region.
        unsafe { mm::munlock(this.ptr, this.len) }.map_err(|e| {
            context(
                &e.into(),
                format_args!("failed to unlock {} bytes", this.len),
            )
        })
    }
}

impl Drop for MemLockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: the range was locked by us inside a region that outlives
        // this guard (the borrow), so it is still mapped.
        let _ = unsafe { mm::munlock(self.ptr, self.len) };
    }
}
