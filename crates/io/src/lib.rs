//! Advanced file I/O: advisory locks, vectored I/O, extended attributes,
//! file copy engines and batch reads of many files.
//!
//! - [`lock`]: advisory file locks of all three Linux kinds (open file
//!   description, POSIX record, `flock`) behind one API — shared or
//!   exclusive, whole file or byte range, blocking, non-blocking or with a
//!   timeout, upgrade and downgrade, RAII guards, and "who holds it"; plus
//!   the system lock table ([`lock::table`]) that `memio locks` lists.
//! - [`vectored`]: `preadv`/`pwritev` and stream helpers that finish short
//!   transfers.
//! - [`xattr`]: get, set, list and remove extended attributes by path, on a
//!   symlink itself or on an open file, and the `getfattr --dump` format.
//! - [`copy`]: one call over four kernel copy paths (`copy_file_range`,
//!   windowed mmap, read/write, `sendfile`), holes kept, atomic replace of
//!   the destination, optional fsync and verify; [`copy::copy_tree`] for
//!   directories.
//! - [`batch`]: read thousands of files with a fixed buffer budget and a
//!   bounded number of reads in flight, through `io_uring`, a thread pool,
//!   POSIX AIO or plain reads, each file's bytes handed to a callback in
//!   order.
//! - [`sum`]: BLAKE3, XXH3 or CRC-32C checksums of many files through a
//!   batch, in list order, and the `sha256sum` list format.
//!
//! All report failures as the one [`Error`]: the cases callers tell apart
//! (a lock conflict, a missing attribute), or an OS error that names its
//! object and keeps the errno ([`Error::raw_errno`]).
//!
//! ```
//! use std::io::IoSlice;
//! use memio_io::lock::{Locker, Mode, Wait};
//! use memio_io::vectored::write_all_vectored_at;
//! # let path = std::env::temp_dir().join(format!("memio-doc-lib-{}", std::process::id()));
//! let file = std::fs::File::options().read(true).write(true).create(true).truncate(true).open(&path)?;
//! // Lock the first 64 bytes for writing, write a record there in two parts.
//! let guard = Locker::new(&file).range(0, 64).lock(Mode::Exclusive, Wait::Block)?;
//! write_all_vectored_at(&file, &mut [IoSlice::new(b"key="), IoSlice::new(b"value\n")], 0)?;
//! drop(guard);
//! assert_eq!(std::fs::read(&path)?, b"key=value\n");
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod batch;
pub mod copy;
mod error;
pub mod lock;
pub mod sum;
#[cfg(test)]
mod test_dir;
pub mod vectored;
pub mod xattr;

pub use error::{Error, Result};
pub use memio_map::error::{OsError, raw_errno};
