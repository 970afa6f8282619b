//! The page cache of files: how much of a file is in memory, bringing it in,
//! pushing it out, and pinning it — what vmtouch and fincore do.
//!
//! Residency comes from `cachestat(2)` (Linux 6.5+), which also counts dirty,
//! writeback and evicted pages and answers truthfully or not at all. Where it
//! is missing (older kernels, seccomp filters) the answer comes from
//! `mincore(2)` over a private read-only mapping, which Linux answers
//! truthfully only to a caller that owns or may write the file; otherwise
//! [`CacheStat::trusted`] is `false`.
//!
//! # Safety
//!
//! `cachestat` has no wrapper in rustix or libc; it is called through
//! `libc::syscall` with two structures laid out as the kernel's UAPI header
//! defines them, both owned by the caller for the call's duration.
#![allow(
    unsafe_code,
    reason = "cachestat(2) through libc::syscall: no wrapper exists yet"
)]

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::num::NonZeroU64;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use crate::error::{OsError, context, invalid, raw_errno};
use crate::options::MapOptions;
use crate::region::Region;
use rustix::fs::{Advice as FileAdvice, fadvise};

/// How a [`CacheStat`] was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
#[non_exhaustive]
pub enum Method {
    /// Pick `cachestat`, falling back to `mincore` where it is missing.
    Auto,
    /// `cachestat(2)`: cached, dirty, writeback and evicted page counts.
    Cachestat,
    /// `mincore(2)` over a mapping: resident pages only.
    Mincore,
}

/// Page-cache state of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CacheStat {
    /// The file's size in bytes when asked.
    pub size: u64,
    /// The file's length in pages (rounded up).
    pub pages: u64,
    /// Pages in the page cache.
    pub cached: u64,
    /// Cached pages modified and not yet written back (cachestat only).
    pub dirty: Option<u64>,
    /// Pages being written back now (cachestat only).
    pub writeback: Option<u64>,
    /// Pages evicted from the cache (cachestat only).
    pub evicted: Option<u64>,
    /// Evicted pages that were recently in use (cachestat only).
    pub recently_evicted: Option<u64>,
    /// Which call answered.
    pub method: Method,
    /// Whether the answer can be relied on: `mincore` on a file the caller
    /// can neither write nor owns may report pages it cannot see.
    pub trusted: bool,
}

impl CacheStat {
    /// Bytes the cached pages occupy: whole pages, as fincore's RES counts
    /// them (a 3-byte file in the cache takes a 4 KiB page).
    #[must_use]
    pub fn cached_bytes(&self) -> u64 {
        self.cached.saturating_mul(crate::page_size() as u64)
    }

    /// Percentage of the file's pages in the cache; `None` for an empty
    /// file, which has no pages to be cached or not.
    #[must_use]
    pub fn percent(&self) -> Option<f64> {
        (self.pages > 0).then(|| self.cached as f64 * 100.0 / self.pages as f64)
    }
}

/// `struct cachestat_range` from `<linux/mman.h>`; native byte order.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}
const _: () = assert!(size_of::<CachestatRange>() == 16);

/// `struct cachestat` from `<linux/mman.h>`; native byte order.
#[repr(C)]
#[derive(Default)]
#[allow(
    clippy::struct_field_names,
    reason = "field names as in the kernel's header"
)]
struct RawCachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}
const _: () = assert!(size_of::<RawCachestat>() == 40);

/// `cachestat(2)`'s syscall number: 451 in the unified table every 64-bit
/// Linux architecture shares (libc does not name it yet).
const SYS_CACHESTAT: libc::c_long = 451;

/// Refuses what is not a regular file before opening it: opening a FIFO
/// blocks, and devices and directories have no file pages to report.
fn regular(path: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(path)
        .map_err(|e| context(&e, format_args!("failed to stat '{}'", path.display())))?;
    if meta.is_file() {
        Ok(())
    } else {
        Err(invalid(format_args!(
            "'{}' is not a regular file",
            path.display()
        )))
    }
}

/// Page-cache state of `path`; see [`stat`].
///
/// # Errors
///
/// The file cannot be opened, or as [`stat`].
pub fn stat_path(path: impl AsRef<Path>, method: Method) -> io::Result<CacheStat> {
    let path = path.as_ref();
    regular(path)?;
    let file = File::open(path)
        .map_err(|e| context(&e, format_args!("failed to open '{}'", path.display())))?;
    stat(&file, method).map_err(|e| context(&e, format_args!("'{}'", path.display())))
}

/// Page-cache state of an open file.
///
/// With [`Method::Auto`], `cachestat` answers, or `mincore` where the kernel
/// lacks `cachestat` (`ENOSYS`) or refuses it (`EPERM`).
///
/// # Errors
///
/// Not a regular file or block device's data (a directory), the chosen
/// method is unavailable, or the kernel refuses.
///
/// # References
/// - [cachestat(2)](https://man7.org/linux/man-pages/man2/cachestat.2.html)
/// - [mincore(2)](https://man7.org/linux/man-pages/man2/mincore.2.html)
#[doc(alias = "cachestat")]
#[doc(alias = "mincore")]
#[doc(alias = "fincore")]
pub fn stat(file: &File, method: Method) -> io::Result<CacheStat> {
    stat_range(file, method, 0..u64::MAX)
}

/// Page-cache state of the pages of an open file that hold the bytes in
/// `range` (clamped to the file's size): `vmtouch -p`. `size` in the
/// answer is the length of the clamped range.
///
/// # Errors
///
/// As [`stat`].
pub fn stat_range(file: &File, method: Method, range: Range<u64>) -> io::Result<CacheStat> {
    let meta = file.metadata().map_err(|e| context(&e, "failed to stat"))?;
    if meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory",
        ));
    }
    let span = Span::new(range, meta.len());
    match method {
        Method::Cachestat => cachestat(file, span).map_err(|e| {
            if raw_errno(&e) == Some(libc::EPERM) {
                OsError::new("cachestat refused", e)
                    .hint(" (it answers only the file's owner or a process that may write it)")
                    .into()
            } else {
                e
            }
        }),
        Method::Mincore => mincore(file, span),
        Method::Auto => match cachestat(file, span) {
            Err(e) if matches!(raw_errno(&e), Some(libc::ENOSYS | libc::EPERM)) => {
                mincore(file, span)
            }
            other => other,
        },
    }
}

/// The bytes asked about, clamped to the file, and the pages that hold them.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
    first_page: u64,
    pages: u64,
}

impl Span {
    fn new(range: Range<u64>, size: u64) -> Self {
        let page = crate::page_size() as u64;
        let end = range.end.min(size);
        let start = range.start.min(end);
        let first_page = start / page;
        let pages = if start == end {
            0
        } else {
            end.div_ceil(page) - first_page
        };
        Self {
            start,
            end,
            first_page,
            pages,
        }
    }
}

fn cachestat(file: &File, span: Span) -> io::Result<CacheStat> {
    let page = crate::page_size() as u64;
    // An empty span still asks (from the file's end to the end, len 0
    // meaning "to the end"), so a kernel without cachestat says so either
    // way; what it counts there is not the span's and is dropped below.
    let range = if span.pages > 0 {
        CachestatRange {
            off: span.first_page * page,
            len: span.pages * page,
        }
    } else {
        CachestatRange {
            off: span.end.div_ceil(page) * page,
            len: 0,
        }
    };
    let mut raw = RawCachestat::default();
    // SAFETY: both pointers reference live, correctly laid out structures
    // owned by this frame; the fd is open for the call's duration; flags 0.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &raw const range,
            &raw mut raw,
            0u32,
        )
    };
    if rc != 0 {
        // Keep the raw errno so Auto can fall back on ENOSYS/EPERM.
        return Err(io::Error::last_os_error());
    }
    if span.pages == 0 {
        raw = RawCachestat::default();
    }
    Ok(CacheStat {
        size: span.end - span.start,
        pages: span.pages,
        // The cache may still hold pages past a file truncated meanwhile.
        cached: raw.nr_cache.min(span.pages),
        dirty: Some(raw.nr_dirty),
        writeback: Some(raw.nr_writeback),
        evicted: Some(raw.nr_evicted),
        recently_evicted: Some(raw.nr_recently_evicted),
        method: Method::Cachestat,
        trusted: true,
    })
}

/// How much of a file one `mincore` window maps at a time.
const WINDOW: u64 = 1 << 30;

/// Calls `each(page, resident)` for every page of `span`, in order, from
/// `mincore` over windows of at most [`WINDOW`] bytes.
fn mincore_walk(file: &File, span: Span, mut each: impl FnMut(u64, bool)) -> io::Result<()> {
    let page = crate::page_size() as u64;
    let end = span.end;
    let mut offset = span.first_page * page;
    while offset < end {
        let len = usize::try_from((end - offset).min(WINDOW)).unwrap_or(usize::MAX);
        // mincore never faults pages in, so a file truncated under this
        // mapping cannot raise SIGBUS here: missing pages read as absent.
        let region = MapOptions::new()
            .private()
            .read_only()
            .offset(offset)
            .len(len)
            .map(file)?;
        let first = offset / page;
        for (i, &resident) in region.residency(..)?.iter().enumerate() {
            each(first + i as u64, resident);
        }
        offset += len as u64;
    }
    Ok(())
}

fn mincore(file: &File, span: Span) -> io::Result<CacheStat> {
    let mut cached = 0u64;
    mincore_walk(file, span, |_, resident| cached += u64::from(resident))?;
    Ok(CacheStat {
        size: span.end - span.start,
        pages: span.pages,
        cached: cached.min(span.pages),
        dirty: None,
        writeback: None,
        evicted: None,
        recently_evicted: None,
        method: Method::Mincore,
        trusted: mincore_is_truthful(file),
    })
}

/// Which pages of a file are resident, summed into buckets: what
/// `vmtouch -v` draws as a bar.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct PageMap {
    /// Pages of the range.
    pub pages: u64,
    /// For each bucket, in file order: (resident pages, pages).
    pub buckets: Vec<(u64, u64)>,
    /// Whether `mincore` answers truthfully for this caller (see
    /// [`CacheStat::trusted`]).
    pub trusted: bool,
}

impl PageMap {
    /// The map as vmtouch draws it: `O` where every page of a bucket is
    /// resident, `o` where some are, a space where none is.
    #[must_use]
    pub fn bar(&self) -> String {
        self.buckets
            .iter()
            .map(|&(resident, total)| match resident {
                0 => ' ',
                r if r == total => 'O',
                _ => 'o',
            })
            .collect()
    }
}

/// The residency of the pages holding `range` of an open file, summed into
/// at most `buckets` buckets of equal page counts (`vmtouch -v`). Asks
/// `mincore`, the one call that answers per page.
///
/// # Errors
///
/// The file cannot be mapped or measured.
///
/// # References
/// - [mincore(2)](https://man7.org/linux/man-pages/man2/mincore.2.html)
pub fn page_map(file: &File, range: Range<u64>, buckets: usize) -> io::Result<PageMap> {
    let span = Span::new(range, file.metadata()?.len());
    let n = u64::try_from(buckets.max(1))
        .unwrap_or(u64::MAX)
        .min(span.pages.max(1));
    let per = span.pages.div_ceil(n).max(1);
    let mut map = vec![(0u64, 0u64); usize::try_from(span.pages.div_ceil(per)).unwrap_or(0)];
    mincore_walk(file, span, |page, resident| {
        if let Some(b) = usize::try_from((page - span.first_page) / per)
            .ok()
            .and_then(|i| map.get_mut(i))
        {
            b.0 += u64::from(resident);
            b.1 += 1;
        }
    })?;
    Ok(PageMap {
        pages: span.pages,
        buckets: map,
        trusted: mincore_is_truthful(file),
    })
}

/// Linux 5.2+ answers `mincore` on a file mapping truthfully only if the
/// caller owns the file, may write it, or has `CAP_FOWNER`.
fn mincore_is_truthful(file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = file.metadata() else {
        return false;
    };
    let euid = rustix::process::geteuid();
    euid.is_root()
        || euid.as_raw() == meta.uid()
        || rustix::fs::accessat(
            file.as_fd(),
            "",
            rustix::fs::Access::WRITE_OK,
            rustix::fs::AtFlags::EMPTY_PATH,
        )
        .is_ok()
}

/// Reads `path` through the page cache so every page is resident, the way
/// `vmtouch -t` does. Returns the bytes read.
///
/// # Errors
///
/// The file cannot be opened or read.
pub fn touch_path(path: impl AsRef<Path>) -> io::Result<u64> {
    let path = path.as_ref();
    regular(path)?;
    let mut file = File::open(path)
        .map_err(|e| context(&e, format_args!("failed to open '{}'", path.display())))?;
    touch(&mut file).map_err(|e| context(&e, format_args!("failed to read '{}'", path.display())))
}

/// Reads an open file from its start to its end, bringing every page into
/// the page cache (after `POSIX_FADV_WILLNEED` to start read-ahead at once).
/// Returns the bytes read.
///
/// # Errors
///
/// A read error.
///
/// # References
/// - [posix_fadvise(2)](https://man7.org/linux/man-pages/man2/posix_fadvise.2.html)
pub fn touch(file: &mut File) -> io::Result<u64> {
    touch_range(file, 0..u64::MAX)
}

/// Reads the bytes of `range` (clamped to the file) through the page
/// cache, as [`touch`] does for the whole file (`vmtouch -t -p`). Returns
/// the bytes read.
///
/// # Errors
///
/// A read error.
pub fn touch_range(file: &mut File, range: Range<u64>) -> io::Result<u64> {
    let len = range.end.saturating_sub(range.start);
    // Advice is a hint: a file system that ignores it still gets read below.
    let _ = fadvise(
        &*file,
        range.start,
        advice_len(&range),
        FileAdvice::WillNeed,
    );
    file.seek(SeekFrom::Start(range.start))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut input = file.take(len);
    loop {
        match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Drops `path`'s pages from the page cache; see [`evict`].
///
/// # Errors
///
/// The file cannot be opened, or as [`evict`].
pub fn evict_path(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    regular(path)?;
    let file = File::open(path)
        .map_err(|e| context(&e, format_args!("failed to open '{}'", path.display())))?;
    evict(&file).map_err(|e| context(&e, format_args!("'{}'", path.display())))
}

/// Drops a file's pages from the page cache: first writes dirty pages back
/// (`fdatasync`), because `POSIX_FADV_DONTNEED` leaves dirty pages in place,
/// then advises `POSIX_FADV_DONTNEED` over the whole file. Pages another
/// process has mapped and locked, or is using at that moment, may stay.
///
/// # Errors
///
/// Writing back or advising failed.
///
/// # References
/// - [posix_fadvise(2)](https://man7.org/linux/man-pages/man2/posix_fadvise.2.html)
/// - [fdatasync(2)](https://man7.org/linux/man-pages/man2/fdatasync.2.html)
#[doc(alias = "posix_fadvise")]
#[doc(alias = "POSIX_FADV_DONTNEED")]
pub fn evict(file: &File) -> io::Result<()> {
    evict_range(file, 0..u64::MAX)
}

/// Drops the pages holding `range` of a file from the page cache, as
/// [`evict`] does for the whole file (`vmtouch -e -p`).
///
/// # Errors
///
/// As [`evict`].
pub fn evict_range(file: &File, range: Range<u64>) -> io::Result<()> {
    rustix::fs::fdatasync(file).map_err(|e| context(&e.into(), "failed to write back"))?;
    fadvise(file, range.start, advice_len(&range), FileAdvice::DontNeed)
        .map_err(|e| context(&e.into(), "failed to evict"))
}

/// `posix_fadvise`'s length for `range`: `None` (to the end of the file)
/// for an open range, which a byte count would overflow.
fn advice_len(range: &Range<u64>) -> Option<NonZeroU64> {
    if range.end == u64::MAX {
        None
    } else {
        NonZeroU64::new(range.end.saturating_sub(range.start))
    }
}

/// A file's pages locked in memory: mapped shared read-only and `mlock`ed
/// until dropped (`vmtouch -l`).
#[derive(Debug)]
pub struct LockedFile {
    region: Region,
}

impl LockedFile {
    /// Maps `path` and locks all its pages in memory.
    ///
    /// # Errors
    ///
    /// The file cannot be opened or mapped, is empty, or locking is refused;
    /// past `RLIMIT_MEMLOCK` the message says so with the limit.
    ///
    /// # References
    /// - [mlock(2)](https://man7.org/linux/man-pages/man2/mlock.2.html)
    #[doc(alias = "mlock")]
    pub fn lock(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        regular(path)?;
        let file = File::open(path)
            .map_err(|e| context(&e, format_args!("failed to open '{}'", path.display())))?;
        Self::lock_file(&file).map_err(|e| context(&e, format_args!("'{}'", path.display())))
    }

    /// Maps an open file and locks all its pages in memory.
    ///
    /// # Errors
    ///
    /// As [`lock`](Self::lock).
    pub fn lock_file(file: &File) -> io::Result<Self> {
        let size = file.metadata()?.len();
        if size == 0 {
            return Err(invalid("file is empty: nothing to lock"));
        }
        let region = MapOptions::new().shared().read_only().map(file)?;
        // The guard borrows the region; keep the lock without it and let
        // munmap (on drop) release it.
        std::mem::forget(region.lock(..)?);
        Ok(Self { region })
    }

    /// Bytes locked.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.region.len()
    }

    /// Always `false`: empty files are refused.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A scratch file's path, removed when dropped: a test that skips or
    /// fails leaves nothing behind.
    struct TempPath(std::path::PathBuf);

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    impl AsRef<Path> for TempPath {
        fn as_ref(&self) -> &Path {
            &self.0
        }
    }

    fn temp(tag: &str, len: usize) -> (TempPath, File) {
        let path = TempPath(
            std::env::temp_dir().join(format!("memio-map-cache-{}-{tag}", std::process::id())),
        );
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![b'x'; len]).unwrap();
        f.sync_all().unwrap();
        let file = File::open(&path).unwrap();
        (path, file)
    }

    fn under_valgrind() -> bool {
        std::fs::read_to_string("/proc/self/maps").is_ok_and(|m| m.contains("vgpreload"))
    }

    /// Whether this kernel (or valgrind, which does not know the syscall)
    /// offers cachestat; tests of it are skipped with a note where not.
    fn have_cachestat(file: &File) -> bool {
        match stat(file, Method::Cachestat) {
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                println!("cachestat(2) is not available here: skipped");
                false
            }
            _ => true,
        }
    }

    #[test]
    fn evict_then_touch_goes_from_zero_to_all_with_both_methods() {
        let (_removed, mut file) = temp("both", 300_000);
        let methods: &[Method] = if have_cachestat(&file) {
            &[Method::Cachestat, Method::Mincore]
        } else {
            &[Method::Mincore]
        };
        for &method in methods {
            evict(&file).unwrap();
            let s = stat(&file, method).unwrap();
            assert_eq!(s.pages, 300_000u64.div_ceil(crate::page_size() as u64));
            // Valgrind reads the head of every file a program maps (looking
            // for debug info), which caches a few pages before mincore runs.
            if !(method == Method::Mincore && under_valgrind()) {
                assert_eq!(s.cached, 0, "{method:?} after evict");
            }
            assert_eq!(touch(&mut file).unwrap(), 300_000);
            let s = stat(&file, method).unwrap();
            assert_eq!(s.cached, s.pages, "{method:?} after touch");
            assert!(s.trusted);
            assert_eq!(s.method, method);
            assert!((s.percent().unwrap() - 100.0).abs() < f64::EPSILON);
        }
    }

    #[test]
    fn dirty_pages_are_written_back_before_eviction() {
        let (path, _) = temp("dirty", 0);
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        if !have_cachestat(&f) {
            return;
        }
        f.write_all(&vec![1u8; 64 << 10]).unwrap();
        let before = stat(&f, Method::Cachestat).unwrap();
        assert!(before.cached > 0);
        assert!(before.dirty > Some(0), "freshly written pages are dirty");
        evict(&f).unwrap();
        let after = stat(&f, Method::Cachestat).unwrap();
        assert_eq!(after.cached, 0);
        assert_eq!(after.dirty, Some(0));
    }

    #[test]
    fn empty_files_and_directories() {
        let (_removed, file) = temp("empty", 0);
        let s = stat(&file, Method::Auto).unwrap();
        assert_eq!((s.pages, s.cached), (0, 0));
        assert!(LockedFile::lock_file(&file).is_err());
        let e = stat_path(std::env::temp_dir(), Method::Auto).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = stat_path("/dev/null", Method::Auto).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn locked_file_is_resident() {
        let (path, file) = temp("lock", 100_000);
        evict(&file).unwrap();
        let locked = LockedFile::lock(&path).unwrap();
        assert_eq!(locked.len(), 100_000);
        let s = stat(&file, Method::Auto).unwrap();
        assert_eq!(s.cached, s.pages);
        drop(locked);
    }

    #[test]
    fn ranges_count_the_pages_that_hold_their_bytes() {
        let page = crate::page_size() as u64;
        let (_removed, mut file) = temp("range", 10 * crate::page_size() + 3);
        evict(&file).unwrap();
        // Bytes 1..page+1 sit on pages 0 and 1.
        assert_eq!(touch_range(&mut file, 1..page + 1).unwrap(), page);
        let s = stat_range(&file, Method::Mincore, 0..2 * page).unwrap();
        assert_eq!((s.pages, s.size), (2, 2 * page));
        assert_eq!(s.cached, 2);
        let tail = stat_range(&file, Method::Mincore, 5 * page..u64::MAX).unwrap();
        assert_eq!((tail.pages, tail.size), (6, 5 * page + 3));
        let empty = stat_range(&file, Method::Auto, 20 * page..30 * page).unwrap();
        assert_eq!((empty.pages, empty.cached, empty.percent()), (0, 0, None));
        let map = page_map(&file, 0..u64::MAX, 60).unwrap();
        assert_eq!(map.pages, 11);
        assert_eq!(map.buckets.len(), 11);
        if !under_valgrind() {
            assert!(map.bar().starts_with("OO"), "{:?}", map.bar());
        }
        let coarse = page_map(&file, 0..u64::MAX, 4).unwrap();
        assert_eq!(coarse.buckets.iter().map(|b| b.1).sum::<u64>(), 11);
        assert!(coarse.buckets.len() <= 4);
        touch(&mut file).unwrap();
        evict_range(&file, 0..page).unwrap();
        let s = stat_range(&file, Method::Mincore, 0..u64::MAX).unwrap();
        // Valgrind reads the head of a file as it is mapped, caching page 0
        // again before mincore looks.
        if !under_valgrind() {
            assert_eq!(s.cached, 10, "only the first page left");
        }
    }

    #[test]
    fn a_tiny_file_takes_a_whole_page() {
        let (_removed, mut file) = temp("tiny", 3);
        touch(&mut file).unwrap();
        let s = stat(&file, Method::Auto).unwrap();
        assert_eq!(s.cached_bytes(), crate::page_size() as u64);
    }
}
