//! A shared file mapping that grows with its file.
//!
//! The seed's recipe — stretch the file with `lseek` + `write`, map it, then
//! `strcat` into the mapping — works only if nothing writes past the mapped
//! length. [`GrowableFile`] keeps the file's length and the mapping's length
//! equal: growing extends the file first (`ftruncate`) and then the mapping
//! (`mremap`), so no mapped page ever lies past the end of the file;
//! shrinking does the reverse.
//!
//! # Safety
//!
//! The invariant is that the file is never shorter than the mapping (a page
//! past the end of the file raises `SIGBUS` when touched). This module owns
//! both and changes their lengths only in [`GrowableFile::set_len`]; it lends
//! the region out only shared (it cannot be replaced or resized through
//! `&Region`), and the file only through the `unsafe`
//! [`GrowableFile::file`], whose caller promises not to resize it.
#![allow(
    unsafe_code,
    reason = "`GrowableFile::file` is unsafe: resizing the file would break the mapping"
)]

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::error::{context, invalid};
use crate::options::MapOptions;
use crate::region::{Region, open_rw};

/// A file mapped shared and read-write whose mapping follows the file's
/// length. Writes go through [`write_at`](Self::write_at),
/// [`fill`](Self::fill) and [`append`](Self::append); the file sees them at
/// once (other readers of the page cache too) and on disk after
/// [`Region::sync`].
///
/// Only [`set_len`](Self::set_len) changes the file's length or the
/// mapping, so the two stay equal: the region is lent out as `&Region`
/// (which cannot be replaced or resized) and the file only through `unsafe`
/// [`file`](Self::file).
///
/// ```compile_fail,E0594
/// use memio_map::{GrowableFile, Region};
/// # fn main() -> std::io::Result<()> {
/// # let path = std::env::temp_dir().join("memio-doc-growable-swap");
/// let mut g = GrowableFile::open(&path, 4096)?;
/// // error: cannot assign through a `&` reference
/// *g.region() = Region::anonymous(1 << 20)?;
/// # Ok(()) }
/// ```
///
/// ```compile_fail,E0133
/// use memio_map::GrowableFile;
/// # fn main() -> std::io::Result<()> {
/// # let path = std::env::temp_dir().join("memio-doc-growable-cut");
/// let g = GrowableFile::open(&path, 4096)?;
/// g.file().set_len(0)?; // error: `file` is unsafe
/// # Ok(()) }
/// ```
///
/// One process holds at most one `GrowableFile` per file (by device and
/// inode, whatever the path): a second [`open`](Self::open) is refused with
/// [`io::ErrorKind::ResourceBusy`], because one handle shrinking the file
/// would make the other's next access raise `SIGBUS`. A plain
/// [`MapOptions`] mapping of the file, or another process, is not tracked:
/// shrinking the file under it, or it truncating the file, does the same;
/// share such files only with cooperating code, for instance code that takes
/// a file lock before resizing.
#[derive(Debug)]
pub struct GrowableFile {
    path: PathBuf,
    file: File,
    region: Region,
    _open: OpenFile,
}

/// The files (device, inode) a [`GrowableFile`] of this process has open.
static OPEN: Mutex<BTreeSet<(u64, u64)>> = Mutex::new(BTreeSet::new());

/// A file's entry in [`OPEN`], removed on drop.
#[derive(Debug)]
struct OpenFile((u64, u64));

impl OpenFile {
    fn claim(file: &File, path: &Path) -> io::Result<Self> {
        let meta = file
            .metadata()
            .map_err(|e| context(&e, format_args!("failed to stat '{}'", path.display())))?;
        let key = (meta.dev(), meta.ino());
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        if !open.insert(key) {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "cannot open '{}' as a growable file: this process already has it open \
                     as one (one handle shrinking it would crash the other)",
                    path.display()
                ),
            ));
        }
        Ok(Self(key))
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        OPEN.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

impl GrowableFile {
    /// Opens (creating if needed) `path`, extends it to at least `min_len`
    /// bytes, and maps all of it.
    ///
    /// # Errors
    ///
    /// The file cannot be opened, extended or mapped; the file is empty and
    /// `min_len` is zero (nothing to map); this process already has the
    /// file open as a `GrowableFile` (`ResourceBusy`, through any path).
    pub fn open(path: impl AsRef<Path>, min_len: u64) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = open_rw(&path, true)?;
        let open = OpenFile::claim(&file, &path)?;
        let size = file
            .metadata()
            .map_err(|e| context(&e, format_args!("failed to stat '{}'", path.display())))?
            .len();
        if size < min_len {
            file.set_len(min_len).map_err(|e| {
                context(
                    &e,
                    format_args!("failed to extend '{}' to {min_len} bytes", path.display()),
                )
            })?;
        }
        let len = size.max(min_len);
        if len == 0 {
            return Err(invalid(format_args!(
                "cannot map '{}': the file is empty; give a minimum length",
                path.display()
            )));
        }
        let len = usize::try_from(len)
            .map_err(|_| invalid(format_args!("cannot map '{}': too large", path.display())))?;
        let region = MapOptions::new()
            .shared()
            .read_write()
            .len(len)
            .map_named(file.as_fd(), &format!("'{}'", path.display()))?;
        Ok(Self {
            path,
            file,
            region,
            _open: open,
        })
    }

    /// The mapped bytes (the whole file), for reading, atomics, `sync`,
    /// `advise`, `lock` and `residency`. Shared, not `&mut`: a caller could
    /// otherwise swap in another region or resize this one behind the file.
    #[must_use]
    pub const fn region(&self) -> &Region {
        &self.region
    }

    /// Copies `data` into the file's mapping `offset` bytes in; see
    /// [`Region::write_at`].
    ///
    /// # Errors
    ///
    /// The range reaches past the file's end.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> io::Result<()> {
        self.region.write_at(offset, data)
    }

    /// Fills `offset..offset+len` of the file's mapping with `byte`; see
    /// [`Region::fill`].
    ///
    /// # Errors
    ///
    /// The range reaches past the file's end.
    pub fn fill(&mut self, offset: usize, len: usize, byte: u8) -> io::Result<()> {
        self.region.fill(offset, len, byte)
    }

    /// The file's (and the mapping's) length in bytes.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.region.len()
    }

    /// Always `false`: an empty file is never mapped.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The open file, for what the mapping does not offer (`fstat`,
    /// `fsync`, positional reads).
    ///
    /// # Safety
    ///
    /// The caller must not change the file's length through it (`set_len`,
    /// `fallocate` with `FALLOC_FL_PUNCH_HOLE`/`COLLAPSE_RANGE`, a descriptor
    /// duplicated from it): a shorter file under the mapping makes the next
    /// access to the cut pages raise `SIGBUS`, and the file and mapping
    /// lengths would no longer match. Use [`set_len`](Self::set_len).
    #[must_use]
    pub const unsafe fn file(&self) -> &File {
        &self.file
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the file's and the mapping's length to `new_len`, keeping the
    /// bytes below both lengths. Growing extends the file with zeros first,
    /// then the mapping; shrinking shortens the mapping first, then the file.
    /// The mapping may move: raw pointers taken before are invalid after.
    ///
    /// # Errors
    ///
    /// Zero length; the file cannot be resized (disk full) or the mapping
    /// cannot grow (`ENOMEM`). On failure the file keeps its old length.
    ///
    /// # References
    /// - [ftruncate(2)](https://man7.org/linux/man-pages/man2/ftruncate.2.html)
    /// - [mremap(2)](https://man7.org/linux/man-pages/man2/mremap.2.html)
    #[doc(alias = "mremap")]
    #[doc(alias = "ftruncate")]
    pub fn set_len(&mut self, new_len: usize) -> io::Result<()> {
        if new_len == 0 {
            return Err(invalid(format_args!(
                "cannot resize '{}' to zero bytes while mapped",
                self.path.display()
            )));
        }
        let old = self.region.len();
        let name = || format!("'{}'", self.path.display());
        if new_len > old {
            self.file
                .set_len(new_len as u64)
                .map_err(|e| context(&e, format_args!("failed to extend {}", name())))?;
            if let Err(e) = self.region.remap(new_len) {
                // Put the file back so it matches the mapping again.
                let _ = self.file.set_len(old as u64);
                return Err(context(&e, name()));
            }
        } else if new_len < old {
            self.region
                .remap(new_len)
                .map_err(|e| context(&e, name()))?;
            self.file
                .set_len(new_len as u64)
                .map_err(|e| context(&e, format_args!("failed to shrink {}", name())))?;
        }
        Ok(())
    }

    /// Grows the file by `data.len()` bytes and writes `data` at the old end:
    /// the seed's "stretch the file, then write through the mapping", in one
    /// safe step. Returns the offset `data` was written at.
    ///
    /// # Errors
    ///
    /// As [`set_len`](Self::set_len).
    pub fn append(&mut self, data: &[u8]) -> io::Result<usize> {
        let at = self.len();
        if data.is_empty() {
            return Ok(at);
        }
        let new_len = at
            .checked_add(data.len())
            .ok_or_else(|| invalid("append overflows the file length"))?;
        self.set_len(new_len)?;
        self.region.write_at(at, data)?;
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SyncMode;

    fn temp_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("memio-map-grow-{}-{tag}", std::process::id()))
    }

    #[test]
    fn growing_keeps_earlier_data_and_reaches_the_file() {
        let path = temp_path("keep");
        let _ = std::fs::remove_file(&path);
        let mut g = GrowableFile::open(&path, 10).unwrap();
        g.write_at(0, b"0123456789").unwrap();
        for round in 0..20 {
            g.append(format!("<{round}>").as_bytes()).unwrap();
        }
        g.set_len(3 << 20).unwrap();
        g.write_at((3 << 20) - 3, b"end").unwrap();
        let mut head = [0u8; 10];
        g.region().read_at(0, &mut head).unwrap();
        assert_eq!(&head, b"0123456789");
        g.region().sync(.., SyncMode::Sync).unwrap();
        let disk = std::fs::read(&path).unwrap();
        assert_eq!(disk.len(), 3 << 20);
        assert!(disk.starts_with(b"0123456789<0><1><2>"));
        assert!(disk.ends_with(b"end"));
        g.set_len(12).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789<0");
        std::fs::remove_file(&path).unwrap();
    }

    /// Shrinking one of two handles on one file would leave the other's
    /// pages past the end (`SIGBUS` on the next read): the second is
    /// refused, through another path too, until the first drops.
    #[test]
    fn a_second_handle_on_the_same_file_is_refused() {
        let path = temp_path("twice");
        let _ = std::fs::remove_file(&path);
        let first = GrowableFile::open(&path, 3 * 4096).unwrap();
        let link = temp_path("twice-link");
        let _ = std::fs::remove_file(&link);
        std::fs::hard_link(&path, &link).unwrap();
        for other in [&path, &link] {
            let e = GrowableFile::open(other, 1).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::ResourceBusy);
            assert!(e.to_string().contains("already has it open"), "{e}");
        }
        drop(first);
        let mut again = GrowableFile::open(&link, 1).unwrap();
        again.set_len(1).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(&link).unwrap();
    }

    #[test]
    fn empty_file_without_minimum_is_refused() {
        let path = temp_path("empty");
        let _ = std::fs::remove_file(&path);
        let e = GrowableFile::open(&path, 0).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let mut g = GrowableFile::open(&path, 1).unwrap();
        assert!(g.set_len(0).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
