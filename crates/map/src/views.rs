//! Atomic views into a [`Region`]: single words and whole-region slices,
//! either full atomics (writable memory only) or load-only views.
//!
//! # Safety
//!
//! A view is a Rust reference to mapped bytes, so it must stay valid for
//! its whole borrow of the region:
//!
//! - **Mapped**: the view borrows `&self`, so the region cannot be unmapped,
//!   resized or re-protected ([`Region::protect`] takes `&mut self`) while
//!   the view lives.
//! - **Concurrent writers**: other processes, other mappings and other
//!   threads may change the bytes at any time; atomic types allow that.
//!   Plain writes through the region need `&mut self`, excluded by the
//!   borrow.
//! - **Rights**: every atomic operation, even a `load` or a failing
//!   `compare_exchange`, may be implemented with a write and faults on
//!   read-only pages, so full atomics need pages that are writable now
//!   (mapped read-write, not lowered by `protect`). Load-only views allow
//!   only `Relaxed` loads of at most a pointer's size, which the standard
//!   library promises work on read-only memory; they need readable pages.
//! - **One width**: atomics of different sizes over the same bytes must not
//!   race with a store, so the first view claims its width for the region
//!   and views of another width are refused (`widths`).
#![allow(
    unsafe_code,
    reason = "references to atomics inside a mapping this module checks"
)]

use std::fmt;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};

use crate::error::invalid;
use crate::options::{Backing, Protection};
use crate::region::Region;
use crate::widths::Width;

/// A byte of mapped memory that can only be loaded (`Relaxed`), as
/// read-only memory allows; from [`Region::as_load_only_u8s`].
#[repr(transparent)]
pub struct LoadOnlyU8(AtomicU8);

/// A 4-byte word of mapped memory that can only be loaded (`Relaxed`);
/// from [`Region::load_only_u32`].
#[repr(transparent)]
pub struct LoadOnlyU32(AtomicU32);

/// An 8-byte word of mapped memory that can only be loaded (`Relaxed`);
/// from [`Region::load_only_u64`] and [`Region::as_load_only_u64s`].
#[repr(transparent)]
pub struct LoadOnlyU64(AtomicU64);

macro_rules! load_only {
    ($name:ident, $int:ty) => {
        impl $name {
            /// The value now (`Relaxed`: no ordering with other memory).
            // Inline across crates: a scan loads word after word, and a
            // call per load would cost more than the load.
            #[inline]
            #[must_use]
            pub fn load(&self) -> $int {
                self.0.load(Relaxed)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.load(), f)
            }
        }
    };
}
load_only!(LoadOnlyU8, u8);
load_only!(LoadOnlyU32, u32);
load_only!(LoadOnlyU64, u64);

/// Whether a `Relaxed` load of `size` bytes is promised to work on
/// read-only memory here: up to the pointer's size on Linux targets.
const fn load_works_read_only(size: usize) -> bool {
    size <= size_of::<usize>()
}

impl Region {
    /// The start of a `T` at `offset`, checked: inside the region, aligned
    /// for `T`, and with `need` rights.
    fn word_ptr<T>(&self, offset: usize, need: Protection) -> io::Result<*mut T> {
        let offset = self.check(offset, size_of::<T>())?;
        let ptr = self.as_mut_ptr().wrapping_add(offset);
        if (ptr as usize) % align_of::<T>() != 0 {
            return Err(invalid(format_args!(
                "offset {offset} of {} is not aligned to {} bytes",
                self.name(),
                align_of::<T>()
            )));
        }
        self.rights_for::<T>(offset, size_of::<T>(), need)?;
        self.claim_atomic_width::<T>()?;
        Ok(ptr.cast())
    }

    /// The whole region as `T`s (bytes past the last whole `T` left out),
    /// checked: the region's start aligned for `T` and `need` rights.
    fn words_ptr<T>(&self, need: Protection) -> io::Result<(*mut T, usize)> {
        let ptr = self.as_mut_ptr();
        if (ptr as usize) % align_of::<T>() != 0 {
            return Err(invalid(format_args!(
                "{} does not start on a {}-byte boundary",
                self.name(),
                align_of::<T>()
            )));
        }
        self.rights_for::<T>(0, self.len(), need)?;
        self.claim_atomic_width::<T>()?;
        Ok((ptr.cast(), self.len() / size_of::<T>()))
    }

    /// Claims the width of `T` for the region's atomic accesses, or says
    /// which other width views already use (`widths`).
    fn claim_atomic_width<T>(&self) -> io::Result<()> {
        if !self.access().writable() && self.backing() != Backing::Fd {
            // Mapped read-only (`protect` cannot raise it) and no other
            // mapping shares the claim: nothing in this process stores
            // through this memory, and loads of different sizes may race
            // each other. (A file's read-only mapping claims: another,
            // writable mapping of the file may store through a view.)
            return Ok(());
        }
        let want = size_of::<T>();
        self.width.claim(Width::of(want)).map_err(|have| {
            invalid(format_args!(
                "cannot take {want}-byte atomics over {}: it has {}-byte atomic views, \
                 and atomics of different sizes over the same bytes are not allowed",
                self.name(),
                have.bytes()
            ))
        })
    }

    fn rights_for<T>(&self, offset: usize, n: usize, need: Protection) -> io::Result<()> {
        if need == Protection::ReadWrite {
            return self.allows(offset, n, need, "take atomics over");
        }
        self.allows(offset, n, need, "load from")?;
        // Wider loads are not promised to work on read-only pages.
        if !load_works_read_only(size_of::<T>())
            && self
                .allows(offset, n, Protection::ReadWrite, "load from")
                .is_err()
        {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "cannot load {}-byte words from read-only {} on this target",
                    size_of::<T>(),
                    self.name()
                ),
            ));
        }
        Ok(())
    }

    /// The 4 bytes at `offset` as an atomic, for flags, counters and futex
    /// words shared with other processes.
    ///
    /// # Errors
    ///
    /// `offset` is not 4-byte aligned (relative to the region's start, which
    /// is page-aligned unless mapped at an unaligned file offset) or the
    /// word is past the end; the word is not writable (the region is mapped
    /// read-only, or [`protect`](Self::protect)ed below read-write there),
    /// where [`load_only_u32`](Self::load_only_u32) still works; the region
    /// already has atomic views of another width
    /// ([`atomic_width`](Self::atomic_width)).
    ///
    /// The view borrows the region, so it cannot outlive the mapping:
    ///
    /// ```compile_fail,E0505
    /// use memio_map::Region;
    /// use std::sync::atomic::Ordering::Relaxed;
    /// # fn main() -> std::io::Result<()> {
    /// let region = Region::anonymous_shared(4096)?;
    /// let counter = region.atomic_u32(0)?;
    /// drop(region); // error: cannot move out of `region` while borrowed
    /// counter.fetch_add(1, Relaxed);
    /// # Ok(()) }
    /// ```
    ///
    /// nor can the width be released while a view of it lives:
    ///
    /// ```compile_fail,E0502
    /// use memio_map::Region;
    /// use std::sync::atomic::Ordering::Relaxed;
    /// # fn main() -> std::io::Result<()> {
    /// let mut region = Region::anonymous_shared(4096)?;
    /// let counter = region.atomic_u32(0)?;
    /// region.release_atomic_width(); // error: `region` is borrowed
    /// let wide = region.atomic_u64(0)?;
    /// counter.fetch_add(1, Relaxed);
    /// # Ok(()) }
    /// ```
    pub fn atomic_u32(&self, offset: usize) -> io::Result<&AtomicU32> {
        let ptr = self.word_ptr::<u32>(offset, Protection::ReadWrite)?;
        // SAFETY: `word_ptr` checked bounds, alignment and write access; the
        // memory stays mapped and writable for the borrow of `self`; atomics
        // tolerate concurrent access from other threads and processes.
        Ok(unsafe { AtomicU32::from_ptr(ptr) })
    }

    /// The 8 bytes at `offset` as an atomic; see [`atomic_u32`](Self::atomic_u32).
    ///
    /// # Errors
    ///
    /// As [`atomic_u32`](Self::atomic_u32), for 8 bytes.
    pub fn atomic_u64(&self, offset: usize) -> io::Result<&AtomicU64> {
        let ptr = self.word_ptr::<u64>(offset, Protection::ReadWrite)?;
        // SAFETY: as in `atomic_u32`.
        Ok(unsafe { AtomicU64::from_ptr(ptr) })
    }

    /// The region's whole 8-byte words as atomics, to work on it in place
    /// while other processes do too. Bytes past the last whole word are left
    /// out.
    ///
    /// # Errors
    ///
    /// The region does not start on an 8-byte boundary (it was mapped at a
    /// file offset that is not a multiple of 8), or is not writable
    /// everywhere; [`as_load_only_u64s`](Self::as_load_only_u64s) reads
    /// read-only memory.
    pub fn as_atomic_u64s(&self) -> io::Result<&[AtomicU64]> {
        let (ptr, n) = self.words_ptr::<AtomicU64>(Protection::ReadWrite)?;
        // SAFETY: the `n` whole words from `ptr` are mapped and writable for
        // the borrow of `self` and `ptr` is 8-aligned (checked); atomics
        // tolerate concurrent writers in any process.
        Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
    }

    /// The region's bytes as atomics; see [`as_atomic_u64s`](Self::as_atomic_u64s).
    ///
    /// # Errors
    ///
    /// The region is not writable everywhere;
    /// [`as_load_only_u8s`](Self::as_load_only_u8s) reads read-only memory.
    pub fn as_atomic_u8s(&self) -> io::Result<&[AtomicU8]> {
        let (ptr, n) = self.words_ptr::<AtomicU8>(Protection::ReadWrite)?;
        // SAFETY: as in `as_atomic_u64s`; `AtomicU8` has alignment 1.
        Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
    }

    /// The 4 bytes at `offset` as a word that can only be loaded: works on
    /// read-only mappings too.
    ///
    /// # Errors
    ///
    /// Misaligned or out of range (as [`atomic_u32`](Self::atomic_u32)), or
    /// in pages protected as [`Protection::None`].
    pub fn load_only_u32(&self, offset: usize) -> io::Result<&LoadOnlyU32> {
        let ptr = self.word_ptr::<LoadOnlyU32>(offset, Protection::Read)?;
        // SAFETY: `word_ptr` checked bounds, alignment and read access; the
        // memory stays mapped and readable for the borrow of `self`;
        // `LoadOnlyU32` is a transparent `AtomicU32` that offers only
        // `Relaxed` 4-byte loads, which read-only memory allows.
        Ok(unsafe { &*ptr })
    }

    /// The 8 bytes at `offset` as a word that can only be loaded; see
    /// [`load_only_u32`](Self::load_only_u32).
    ///
    /// # Errors
    ///
    /// As [`load_only_u32`](Self::load_only_u32); on a 32-bit target also a
    /// read-only word, where 8-byte atomic loads are not promised to work.
    pub fn load_only_u64(&self, offset: usize) -> io::Result<&LoadOnlyU64> {
        let ptr = self.word_ptr::<LoadOnlyU64>(offset, Protection::Read)?;
        // SAFETY: as in `load_only_u32`; `rights_for` refused read-only
        // memory where 8-byte loads are not promised to work on it.
        Ok(unsafe { &*ptr })
    }

    /// The region's whole 8-byte words as words that can only be loaded:
    /// the safe way to scan a mapping in place (no copy) even while other
    /// processes write it, on read-only mappings too. A load compiles to a
    /// plain load. Bytes past the last whole word are left out.
    ///
    /// # Errors
    ///
    /// The region does not start on an 8-byte boundary, or has pages
    /// protected as [`Protection::None`]; on a 32-bit target also read-only
    /// memory.
    pub fn as_load_only_u64s(&self) -> io::Result<&[LoadOnlyU64]> {
        let (ptr, n) = self.words_ptr::<LoadOnlyU64>(Protection::Read)?;
        // SAFETY: the `n` whole words from `ptr` are mapped and readable
        // for the borrow of `self`, `ptr` is 8-aligned (checked); the type
        // allows only `Relaxed` loads, promised to work on read-only memory
        // where `rights_for` let them through.
        Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
    }

    /// The region's bytes as bytes that can only be loaded; see
    /// [`as_load_only_u64s`](Self::as_load_only_u64s).
    ///
    /// # Errors
    ///
    /// Pages protected as [`Protection::None`].
    pub fn as_load_only_u8s(&self) -> io::Result<&[LoadOnlyU8]> {
        let (ptr, n) = self.words_ptr::<LoadOnlyU8>(Protection::Read)?;
        // SAFETY: as in `as_load_only_u64s`; alignment 1, 1-byte loads.
        Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MapOptions, Region};
    use std::sync::atomic::Ordering::Relaxed;

    fn temp_file(tag: &str, contents: &[u8]) -> (std::path::PathBuf, std::fs::File) {
        let path =
            std::env::temp_dir().join(format!("memio-map-views-{}-{tag}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        (path, file)
    }

    #[test]
    fn atomics_work_across_threads() {
        let r = Region::anonymous_shared(4096).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        r.atomic_u64(8).unwrap().fetch_add(1, Relaxed);
                    }
                });
            }
        });
        assert_eq!(r.atomic_u64(8).unwrap().load(Relaxed), 4000);
        assert_eq!(r.load_only_u64(8).unwrap().load(), 4000);
    }

    #[test]
    fn read_only_mappings_refuse_atomics_and_allow_loads() {
        let data: Vec<u8> = (0..20u8).collect();
        let (path, file) = temp_file("ro", &data);
        // The default: shared and read-only. A `fetch_add` here would fault.
        let mut r = MapOptions::new().map_path(&path).unwrap();
        for e in [
            r.atomic_u32(0).unwrap_err(),
            r.atomic_u64(8).unwrap_err(),
            r.as_atomic_u64s().unwrap_err(),
            r.as_atomic_u8s().unwrap_err(),
        ] {
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
            assert_eq!(
                e.to_string(),
                format!(
                    "cannot take atomics over '{}': it is mapped read-only",
                    path.display()
                )
            );
        }
        let words = r.as_load_only_u64s().unwrap();
        assert_eq!(words.len(), 2);
        assert_eq!(
            words[1].load(),
            u64::from_ne_bytes(data[8..16].try_into().unwrap())
        );
        // Each width in turn: a file's mappings share one width at a time.
        r.release_atomic_width();
        assert_eq!(r.as_load_only_u8s().unwrap()[19].load(), 19);
        assert_eq!(format!("{:?}", r.as_load_only_u8s().unwrap()[3]), "3");
        r.release_atomic_width();
        assert_eq!(
            r.load_only_u32(16).unwrap().load(),
            u32::from_ne_bytes(data[16..20].try_into().unwrap())
        );
        let odd = MapOptions::new().offset(3).map(&file).unwrap();
        let e = odd.as_load_only_u64s().unwrap_err();
        assert!(e.to_string().contains("8-byte boundary"), "{e}");
        assert!(odd.load_only_u32(1).is_ok(), "file offset 4 is aligned");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn writable_atomic_views_see_writes() {
        let mut r = Region::anonymous_shared(64).unwrap();
        r.write_at(0, &[7; 64]).unwrap();
        assert_eq!(r.as_atomic_u8s().unwrap()[63].load(Relaxed), 7);
        r.release_atomic_width();
        r.as_atomic_u64s().unwrap()[1].store(u64::MAX, Relaxed);
        let mut buf = [0u8; 16];
        r.read_at(0, &mut buf).unwrap();
        assert_eq!(buf, [[7; 8], [0xFF; 8]].concat()[..]);
        r.release_atomic_width();
        assert!(r.atomic_u32(62).is_err(), "past the end");
        assert!(r.atomic_u32(2).is_err(), "misaligned");
    }

    /// A 4-byte atomic store racing an 8-byte load (another view, or
    /// `read_at` copying words) is a mixed-size race: the first view claims
    /// its width, views of another width are refused (load-only ones too),
    /// and `read_at`/`write_at` copy at the claimed width.
    #[test]
    fn views_of_a_second_width_are_refused_and_copies_use_the_first() {
        let mut r = Region::anonymous_shared(4096).unwrap();
        assert_eq!(r.atomic_width(), None);
        let flag = r.atomic_u32(4).unwrap();
        assert_eq!(r.atomic_width(), Some(4));
        for e in [
            r.atomic_u64(8).unwrap_err(),
            r.as_atomic_u64s().unwrap_err(),
            r.as_atomic_u8s().unwrap_err(),
            r.load_only_u64(8).unwrap_err(),
            r.as_load_only_u8s().unwrap_err(),
        ] {
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains("it has 4-byte atomic views"), "{e}");
        }
        assert!(r.load_only_u32(0).is_ok(), "same width");
        // A thread stores through the 4-byte view while this one copies
        // across it at odd offsets: every copy sees one of the two values.
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..10_000u32 {
                    flag.store(if i % 2 == 0 { 0 } else { u32::MAX }, Relaxed);
                }
            });
            let mut buf = [0u8; 7];
            for _ in 0..1000 {
                r.read_at(1, &mut buf).unwrap();
                let word = &buf[3..7];
                assert!(word == [0; 4] || word == [0xFF; 4], "{buf:?}");
            }
        });
        r.write_at(3, &[1, 2, 3, 4, 5, 6]).unwrap();
        let mut back = [0u8; 10];
        r.read_at(0, &mut back).unwrap();
        assert_eq!(back, [0, 0, 0, 1, 2, 3, 4, 5, 6, 0]);
        r.release_atomic_width();
        assert_eq!(r.atomic_width(), None);
        assert!(r.as_atomic_u64s().is_ok(), "free again after `&mut`");
    }
}
