//! Options from `MEMIO_MALLOC_*` environment variables, read once at the
//! first allocation without allocating (the C `getenv`, which scans
//! `environ` in place).
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MEMIO_MALLOC_MMAP_THRESHOLD` | requests this size or larger get their own mapping (`M_MMAP_THRESHOLD`); at most 512 KiB. Unset, it starts at 128 KiB and rises past each large block freed, up to 512 KiB, as glibc's does | 128 KiB, rising |
//! | `MEMIO_MALLOC_PURGE_DELAY` | milliseconds an empty page or a freed large mapping is kept before its memory goes back to the kernel (a program that frees and allocates in waves shorter than this reuses pages without faulting them in again); doubled, up to 64 times, each time the heap took memory afresh within a delay of a wave of purges' first, and halved at the next wave when it did not (once a delay at most) | 100 |
//! | `MEMIO_MALLOC_LARGE_CACHE` | bytes of freed large mappings kept for reuse | 64 MiB |
//! | `MEMIO_MALLOC_GUARD` | `1`: a `PROT_NONE` guard page after every large block, its end placed against it, so a write past the end faults at once (electric-fence style; costs a page of address space and an unmap per block, and freed large blocks are unmapped at once) | `0` |
//! | `MEMIO_MALLOC_HUGEPAGES` | `1`: ask the kernel for transparent huge pages (`MADV_HUGEPAGE`) in every segment and every large mapping of 2 MiB or more: far fewer page faults and TLB misses, but a 2 MiB region is resident whole from its first touch, so a small or sparse heap grows, and a fault may wait for the kernel to compact memory | `0` |
//!
//! Sizes take the CLI's units: `4096`, `128k` or `128KiB` (binary), `4KB`
//! (decimal). A value that does not parse leaves the default in place
//! (an allocator has nobody to report an error to); [`crate::options`]
//! shows what took effect.
//!
//! # Safety
//!
//! `getenv` returns a pointer into the environment, read here as a C
//! string before any other call could change it.
#![allow(unsafe_code, reason = "getenv and reading the C string it returns")]

use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::class::MAX_CLASS_SIZE;

/// Default `MEMIO_MALLOC_MMAP_THRESHOLD`, as glibc's `M_MMAP_THRESHOLD`.
pub const DEFAULT_MMAP_THRESHOLD: usize = 128 << 10;
const DEFAULT_PURGE_DELAY_MS: u64 = 100;
const DEFAULT_LARGE_CACHE: usize = 64 << 20;

pub(crate) static MMAP_THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_MMAP_THRESHOLD);
pub(crate) static PURGE_DELAY_NS: AtomicU64 = AtomicU64::new(DEFAULT_PURGE_DELAY_MS * 1_000_000);
pub(crate) static LARGE_CACHE: AtomicUsize = AtomicUsize::new(DEFAULT_LARGE_CACHE);
pub(crate) static GUARD: AtomicBool = AtomicBool::new(false);
pub(crate) static HUGEPAGES: AtomicBool = AtomicBool::new(false);
/// Whether the threshold was set (environment or `set_mmap_threshold`),
/// which stops it from following freed large blocks.
static THRESHOLD_SET: AtomicBool = AtomicBool::new(false);

/// Doublings of the purge delay in effect, earned by purges that proved
/// early (see [`purge_delay_ns`]).
static STRETCH: AtomicU32 = AtomicU32::new(0);
/// At most 64 times the set delay (6.4 s by default; jemalloc's decay
/// runs over 10 s).
const MAX_STRETCH: u32 = 6;
/// When memory last went back to the kernel on a timer (`os::now_ns`), or
/// 0 once memory had to be taken afresh since.
static GAVE_BACK_AT: AtomicU64 = AtomicU64::new(0);

/// How long empty pages and freed large mappings stay before their memory
/// goes back to the kernel: the set delay, doubled each time the heap took
/// memory afresh within a delay of a wave of purges' first (a program
/// working in waves longer than the delay, idle in between: no purge can
/// run while it idles, so the purge ran as the next wave began, which
/// faulted the same pages in again), and halved at the next wave of
/// purges when it did not (once a delay at most: see [`gave_back`]).
#[inline]
pub(crate) fn purge_delay_ns() -> u64 {
    PURGE_DELAY_NS
        .load(Ordering::Relaxed)
        .saturating_mul(1 << STRETCH.load(Ordering::Relaxed))
}

/// Memory went back to the kernel at `now` because its delay ran out.
/// Purges within a delay of the first of them are one wave (a heap purges
/// pages as each comes due, a few times a delay), which counts once.
pub(crate) fn gave_back(now: u64) {
    let prev = GAVE_BACK_AT.load(Ordering::Relaxed);
    if prev != 0 && now.saturating_sub(prev) < purge_delay_ns() {
        return;
    }
    if GAVE_BACK_AT.swap(now.max(1), Ordering::Relaxed) != 0 {
        // What the previous purge gave back was not asked for again.
        let _ = STRETCH.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| s.checked_sub(1));
    }
}

/// The heap is taking memory afresh from the kernel (new slices or a new
/// large mapping): when that follows a purge within the delay, the purge
/// was early, and the delay doubles.
pub(crate) fn took_fresh() {
    let at = GAVE_BACK_AT.load(Ordering::Relaxed);
    if at == 0 {
        return;
    }
    if crate::os::now_ns().saturating_sub(at) < purge_delay_ns()
        && GAVE_BACK_AT
            .compare_exchange(at, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let _ = STRETCH.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
            (s < MAX_STRETCH).then_some(s + 1)
        });
    }
}

/// The options in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Requests of this many bytes or more get their own mapping.
    pub mmap_threshold: usize,
    /// The purge delay as set, in milliseconds: how long empty pages and
    /// freed large mappings wait before their memory is given back to the
    /// kernel, before the heap stretches it (doubled, up to 64 times, for
    /// a program whose purges prove early: see the module docs).
    pub purge_delay_ms: u64,
    /// How many bytes of freed large mappings are kept for reuse.
    pub large_cache: usize,
    /// Whether large blocks end against a guard page.
    pub guard: bool,
    /// Whether segments and large mappings ask for transparent huge
    /// pages.
    pub hugepages: bool,
}

/// Reads the environment into the statics above.
pub(crate) fn read_environment() {
    if let Some(v) = var(c"MEMIO_MALLOC_MMAP_THRESHOLD").and_then(parse_size) {
        set_mmap_threshold(v);
    }
    if let Some(v) = var(c"MEMIO_MALLOC_PURGE_DELAY").and_then(parse_number) {
        PURGE_DELAY_NS.store(v.saturating_mul(1_000_000), Ordering::Relaxed);
    }
    if let Some(v) = var(c"MEMIO_MALLOC_LARGE_CACHE").and_then(parse_size) {
        LARGE_CACHE.store(v, Ordering::Relaxed);
    }
    if var(c"MEMIO_MALLOC_GUARD") == Some(b"1") {
        GUARD.store(true, Ordering::Relaxed);
    }
    if var(c"MEMIO_MALLOC_HUGEPAGES") == Some(b"1") {
        HUGEPAGES.store(true, Ordering::Relaxed);
    }
}

/// Sets the mmap threshold, clamped to `1..=512 KiB`; returns what took
/// effect.
pub(crate) fn set_mmap_threshold(bytes: usize) -> usize {
    let v = bytes.clamp(1, MAX_CLASS_SIZE);
    THRESHOLD_SET.store(true, Ordering::Relaxed);
    MMAP_THRESHOLD.store(v, Ordering::Relaxed);
    v
}

/// A large block of `size` usable bytes was freed: as glibc does, a
/// threshold nobody set rises past it (up to the largest class), so that
/// a program that keeps allocating blocks of that size gets them from
/// pages it reuses instead of fresh mappings.
pub(crate) fn large_freed(size: usize) {
    if size < MAX_CLASS_SIZE
        && size >= MMAP_THRESHOLD.load(Ordering::Relaxed)
        && !THRESHOLD_SET.load(Ordering::Relaxed)
    {
        MMAP_THRESHOLD.fetch_max(size + 1, Ordering::Relaxed);
    }
}

pub(crate) fn current() -> Options {
    Options {
        mmap_threshold: MMAP_THRESHOLD.load(Ordering::Relaxed),
        purge_delay_ms: PURGE_DELAY_NS.load(Ordering::Relaxed) / 1_000_000,
        large_cache: LARGE_CACHE.load(Ordering::Relaxed),
        guard: GUARD.load(Ordering::Relaxed),
        hugepages: HUGEPAGES.load(Ordering::Relaxed),
    }
}

/// The value of environment variable `name`, if set, read without
/// allocating.
#[must_use]
pub fn var(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: `name` is a NUL-terminated string; getenv neither allocates
    // nor keeps the pointer.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null getenv result points at a NUL-terminated string
    // in the environment block, which this process does not change while
    // it is read here (at start-up, before the program runs setenv).
    Some(unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// A decimal number of up to 19 digits, nothing else.
#[must_use]
pub fn parse_number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
    })
}

/// `4096`, `128k`, `128K`, `128KiB` (binary), `4KB` (decimal); the same
/// for M and G.
pub(crate) fn parse_size(s: &[u8]) -> Option<usize> {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let n = parse_number(&s[..digits])?;
    let unit = &s[digits..];
    let (letter, rest) = match unit.split_first() {
        None => return usize::try_from(n).ok(),
        Some((l, rest)) => (l.to_ascii_lowercase(), rest),
    };
    let power = match letter {
        b'k' => 1,
        b'm' => 2,
        b'g' => 3,
        _ => return None,
    };
    let base: u64 = match rest {
        b"" | b"iB" | b"ib" => 1024,
        b"B" => 1000,
        _ => return None,
    };
    usize::try_from(n.checked_mul(base.pow(power))?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_the_cli_reads_them() {
        assert_eq!(parse_size(b"4096"), Some(4096));
        assert_eq!(parse_size(b"128k"), Some(128 << 10));
        assert_eq!(parse_size(b"128KiB"), Some(128 << 10));
        assert_eq!(parse_size(b"4KB"), Some(4000));
        assert_eq!(parse_size(b"2M"), Some(2 << 20));
        assert_eq!(parse_size(b"1g"), Some(1 << 30));
        for bad in [
            &b""[..],
            b"k",
            b"12x",
            b"-1",
            b"1.5M",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_size(bad), None, "{:?}", core::str::from_utf8(bad));
        }
    }

    /// The purge delay adapts as documented. Its state is process-wide and
    /// every allocation in the heap's tests moves it, so the checks run in
    /// a child process running only this test.
    #[test]
    fn the_purge_delay_doubles_after_an_early_purge_and_halves_after_a_right_one() {
        const ALONE: &str = "MEMIO_MALLOC_TEST_ALONE";
        let name = "options::tests::the_purge_delay_doubles_after_an_early_purge_and_halves_after_a_right_one";
        if std::env::var_os(ALONE).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--nocapture", "--test-threads=1"])
                .env(ALONE, "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout.contains("1 passed"),
                "the child ran no test: {stdout}"
            );
            return;
        }
        let base = PURGE_DELAY_NS.load(Ordering::Relaxed);
        STRETCH.store(0, Ordering::Relaxed);
        GAVE_BACK_AT.store(0, Ordering::Relaxed);
        assert_eq!(purge_delay_ns(), base);
        // Memory taken afresh with no purge before it changes nothing.
        took_fresh();
        assert_eq!(purge_delay_ns(), base);
        // A purge, then fresh memory at once: the purge was early.
        gave_back(crate::os::now_ns());
        took_fresh();
        assert_eq!(purge_delay_ns(), 2 * base);
        // Counted once per purge.
        took_fresh();
        assert_eq!(purge_delay_ns(), 2 * base);
        // Doubling stops at 64 times the set delay.
        for _ in 0..10 {
            gave_back(crate::os::now_ns());
            took_fresh();
        }
        assert_eq!(purge_delay_ns(), 64 * base);
        // A purge whose memory nobody asked for before the next one, a
        // delay later, was right: the delay halves.
        let t = crate::os::now_ns();
        gave_back(t);
        gave_back(t + purge_delay_ns());
        assert_eq!(purge_delay_ns(), 32 * base);
        // Purges within a delay of the first are one wave: counted once.
        let t = t + 2 * 64 * base;
        gave_back(t);
        gave_back(t + 1);
        gave_back(t + purge_delay_ns() - 1);
        assert_eq!(purge_delay_ns(), 16 * base);
        // Fresh memory long after a purge does not stretch the delay.
        GAVE_BACK_AT.store(0, Ordering::Relaxed);
        let long_ago = crate::os::now_ns().saturating_sub(2 * purge_delay_ns());
        gave_back(long_ago.max(1));
        let before = purge_delay_ns();
        took_fresh();
        assert_eq!(purge_delay_ns(), before);
    }
}
