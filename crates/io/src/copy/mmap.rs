//! The mmap engine: the source mapped one window at a time, each window
//! handed to `pwrite(2)`.
//!
//! # Safety
//!
//! The mapped bytes are never seen as a Rust slice: their address goes
//! straight to `pwrite`, and the kernel reads them with its own user-copy
//! routines. So another process writing the source meanwhile is no data
//! race in this process, and a source truncated under the mapping makes
//! `pwrite` fail with `EFAULT` instead of raising `SIGBUS`. The window's
//! [`Region`] owns the mapping and outlives every `pwrite` that reads it.
#![allow(
    unsafe_code,
    reason = "pwrite(2) straight from a mapping: a slice over a file another process may change or truncate would be unsound"
)]

use std::os::fd::AsRawFd;

use memio_map::{Advice, MapOptions, Region};

use super::engine::Files;
use crate::Result;

/// Whether the source maps at all: one page of it at `at` (a start of
/// its data), mapped and dropped, before anything is written.
pub(crate) fn mappable(files: &Files<'_>, at: u64) -> Result<()> {
    let page = memio_map::page_size() as u64;
    MapOptions::new()
        .offset(at / page * page)
        .len(1)
        .private()
        .read_only()
        .map(files.src)
        .map(drop)
        .map_err(|e| files.read_error(e))
}

/// Copies `start..end` of the source to the same offsets of the
/// destination through mappings of at most `window` bytes.
pub(crate) fn copy(
    files: &Files<'_>,
    start: u64,
    end: u64,
    window: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<u64> {
    let window_at = |off: u64| usize::try_from(end - off).unwrap_or(usize::MAX).min(window);
    let mut off = start;
    if off < end {
        read_ahead(files, off, window_at(off));
    }
    while off < end {
        let len = window_at(off);
        let region = MapOptions::new()
            .offset(off)
            .len(len)
            .private()
            .read_only()
            .populate(true)
            .map(files.src)
            // The source shrank below `end` since the copy began.
            .map_err(|e| files.read_error(e))?;
        // A hint: read ahead hard and drop pages behind; the copy is right
        // without it, so a refusal is ignored.
        let _ = region.advise(.., Advice::Sequential);
        // The disk reads the next window while this one is written out.
        let next = off + len as u64;
        if next < end {
            read_ahead(files, next, window_at(next));
        }
        write_region(files, &region, off, progress)?;
        off += len as u64;
    }
    Ok(end - start)
}

/// Starts reading `len` bytes of the source at `off` into the page cache
/// without waiting for them (`POSIX_FADV_WILLNEED`). Populating a mapping
/// reads what is missing in synchronous steps and only once the window is
/// mapped, so a cold source would otherwise leave the disk idle while each
/// window is written out. Linux reads at most the larger of the device's
/// read-ahead size and its largest request per call, so the range goes in
/// [`AHEAD_STEP`] pieces.
/// A hint: a refusal is ignored.
fn read_ahead(files: &Files<'_>, off: u64, len: usize) {
    let end = off.saturating_add(len as u64);
    let mut at = off;
    while at < end {
        let step = (end - at).min(AHEAD_STEP);
        let _ = rustix::fs::fadvise(
            files.src,
            at,
            std::num::NonZeroU64::new(step),
            rustix::fs::Advice::WillNeed,
        );
        at += step;
    }
}

/// The piece of a window one read-ahead call asks for: no more than the
/// largest request of most disks (`max_sectors_kb`: 1 MiB and up on SATA
/// and virtio disks and most `NVMe` drives), so none of it is cut off.
const AHEAD_STEP: u64 = 1 << 20;

/// Writes the whole of `region` to the destination at `off`.
fn write_region(
    files: &Files<'_>,
    region: &Region,
    off: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let fd = files.dst.as_raw_fd();
    let mut done = 0usize;
    while done < region.len() {
        let at = i64::try_from(off + done as u64)
            .map_err(|_| files.write_error(std::io::Error::from_raw_os_error(libc::EFBIG)))?;
        // SAFETY: `as_ptr() + done .. + len()` lies inside the mapping,
        // which `region` keeps alive for this call; the kernel reads the
        // bytes (no Rust reference to them exists), and `fd` is the open
        // destination borrowed for the whole copy.
        let n = unsafe {
            libc::pwrite(
                fd,
                region.as_ptr().wrapping_add(done).cast(),
                region.len() - done,
                at,
            )
        };
        match usize::try_from(n) {
            Ok(0) => {
                return Err(files.write_error(std::io::Error::from_raw_os_error(libc::ENOSPC)));
            }
            Ok(n) => {
                done += n;
                progress(n as u64);
            }
            Err(_) => {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                if e.raw_os_error() == Some(libc::EFAULT) {
                    // The source was truncated under the mapping.
                    return Err(files.shrank(off + done as u64));
                }
                return Err(files.write_error(e));
            }
        }
    }
    Ok(())
}
