//! The room a store grows by is allocated on disk before commits land in
//! it, so that a commit's `fdatasync` writes the commit and nothing else.
#![allow(unsafe_code, reason = "the FIEMAP ioctl")]

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;

use common::Scratch;
use memio_kv::{Batch, Options, Store};

/// `FS_IOC_FIEMAP`: `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
/// An extent whose blocks the filesystem has not allocated yet.
const FIEMAP_EXTENT_DELALLOC: u32 = 0x4;
/// An extent allocated but not yet written (reads as zeros): the first
/// write into it changes the extent's metadata.
const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
const EXTENTS: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Extent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

#[repr(C)]
struct Fiemap {
    start: u64,
    length: u64,
    flags: u32,
    mapped: u32,
    count: u32,
    reserved: u32,
    extents: [Extent; EXTENTS],
}

/// Bytes of `file` in extents waiting for delayed allocation or for their
/// first write, or why they cannot be told (a filesystem without FIEMAP).
fn delayed_bytes(file: &File) -> Result<u64, std::io::Error> {
    let mut delayed = 0;
    let mut from = 0u64;
    loop {
        let mut map = Fiemap {
            start: from,
            length: u64::MAX - from,
            flags: 0,
            mapped: 0,
            count: u32::try_from(EXTENTS).unwrap_or(u32::MAX),
            reserved: 0,
            extents: [Extent::default(); EXTENTS],
        };
        // SAFETY: `map` is a `struct fiemap` with room for `count`
        // extents after its header, as the ioctl expects; no flag asks
        // the kernel to sync the file first.
        if unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FIEMAP, &raw mut map) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let got = &map.extents[..map.mapped as usize];
        for e in got {
            if e.flags & (FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNWRITTEN) != 0 {
                delayed += e.length;
            }
        }
        match got.last() {
            Some(last) if got.len() == EXTENTS => from = last.logical + last.length,
            _ => return Ok(delayed),
        }
    }
}

#[test]
fn the_room_a_durable_store_grows_by_is_allocated_before_commits_land_in_it() {
    let dir = Scratch::new("room");
    let path = dir.path("kv");
    let store = Store::open(&path, Options::new()).unwrap();
    let size = || std::fs::metadata(&path).unwrap().len();
    let first = size();
    // Commits until the store has grown twice (the first file's room, then
    // the room the first growth made).
    let mut grown = 0;
    let mut last = first;
    for i in 0u32.. {
        let mut batch = Batch::new();
        for k in 0..100u32 {
            batch.put(format!("key{i:08}{k:03}"), vec![7u8; 1000]);
        }
        store.write(&batch).unwrap();
        if size() > last {
            last = size();
            grown += 1;
            if grown == 2 {
                break;
            }
        }
    }
    let file = File::open(&path).unwrap();
    match delayed_bytes(&file) {
        // Only a filesystem without FIEMAP (tmpfs, say) skips; any other
        // error is the test's own.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOTTY)) => println!(
            "skipped: {}: FIEMAP is not available here ({e}), so allocation cannot be seen",
            path.display()
        ),
        Err(e) => panic!("FIEMAP on {}: {e}", path.display()),
        Ok(delayed) => assert_eq!(
            delayed,
            0,
            "{delayed} bytes of {} ({first} bytes at first) wait for allocation or a first write",
            size()
        ),
    }
}
