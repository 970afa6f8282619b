//! A read-only shared mapping of a store file that reserves far more
//! address space than the file holds, so the file can grow without the
//! mapping ever moving: readers never remap.
//!
//! # Safety
//!
//! `mmap` of a file with a length past its end is allowed; only touching a
//! page past the end raises `SIGBUS`. The store reads this region only
//! below the committed length, which it checks against the file's size
//! (`fstat`) before reading, and store files only grow (compaction writes a
//! new file and renames it). The mapping is read-only and shared: the bytes
//! may change under it (another process writing the file), which is why the
//! region hands them out only through atomic copies ([`Region::read_at`]).
//! Another program truncating the file breaks the rule, as for every
//! mapped file (see [`memio_map::MapOptions::map`]).
#![allow(
    unsafe_code,
    reason = "mmap of a reservation longer than the file, wrapped in a Region"
)]

use std::io;
use std::os::fd::AsFd;
use std::ptr::NonNull;

use memio_map::{Access, Region, Release, Sharing};
use rustix::mm::{MapFlags, ProtFlags};

/// Maps `len` bytes of `file` from offset 0, read-only and shared, however
/// long the file is now.
pub(crate) fn reserve(file: impl AsFd, len: usize) -> io::Result<Region> {
    // SAFETY: a fresh mapping at an address the kernel picks, so no
    // existing memory is replaced; the kernel checks the length (0 fails
    // with EINVAL) and the fd.
    let ptr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ,
            MapFlags::SHARED | MapFlags::NORESERVE,
            file.as_fd(),
            0,
        )
    }?;
    let ptr =
        NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
    // SAFETY: `ptr..ptr+len` was just mapped by this one `mmap` (page
    // aligned, as `mmap` returns), read-only as `Access::ReadOnly` says,
    // and nothing else owns or unmaps it; `Munmap` undoes it exactly.
    Ok(unsafe {
        Region::from_raw_parts(ptr, len, Sharing::Shared, Access::ReadOnly, Release::Munmap)
    })
}
