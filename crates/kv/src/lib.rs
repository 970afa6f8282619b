//! An embedded key-value store in one file, safe for many processes at once.
//!
//! - **One file**: an append-only log of checksummed (CRC-32C) groups, one
//!   group per commit, after a 4 KiB header holding the committed length.
//!   `FORMAT.md` beside this crate describes it byte by byte.
//! - **Many processes**: writers take turns through an OFD lock on the
//!   file; readers take no lock at all. Each handle maps the file once
//!   (reserving [`Options::max_size`] of address space, so growth never
//!   remaps), reads the committed length from the shared header page and
//!   extends its in-memory index from the offset it last saw. A reader sees
//!   a commit from any process as soon as that commit returns, and never
//!   sees part of one.
//! - **Snapshots**: every record names the record it replaced, so a
//!   [`Snapshot`] answers as of one commit while later commits land.
//! - **Durability**: [`Durability::Durable`] (default) returns from a
//!   commit after one `fdatasync`; the file grows in large zero-filled
//!   steps so that sync has no metadata to write. [`Durability::Relaxed`]
//!   skips it and says what a power cut can lose.
//! - **Recovery**: a torn tail fails its checksum and is ignored; whole
//!   groups a killed writer left are kept by the next writer.
//! - **Compaction** ([`Store::compact`]) writes the live pairs to a new
//!   file and renames it into place while others keep reading and writing.
//!
//! Limits: keys up to [`MAX_KEY`] bytes, values up to [`MAX_VALUE`], one
//! commit up to [`MAX_BATCH`]; larger ones fail with [`Error::TooLarge`].
//!
//! ```
//! use memio_kv::{Batch, Options, Store};
//! # let dir = std::env::temp_dir().join(format!("memio-kv-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let store = Store::open(dir.join("bank.kv"), Options::new())?;
//! let mut batch = Batch::new();
//! batch.put("alice", "70").put("bob", "30");
//! store.write(&batch)?; // both or neither, durable when it returns
//! assert_eq!(store.get(b"alice")?.as_deref(), Some(&b"70"[..]));
//! let names: Vec<_> = store.snapshot()?.iter().map(|r| r.map(|(k, _)| k)).collect::<Result<_, _>>()?;
//! assert_eq!(names, [b"alice".to_vec(), b"bob".to_vec()]);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Like every mapped file, a store must not be truncated by another
//! program while open: touching a cut page raises `SIGBUS`. memio-kv
//! itself never shrinks a store file.

#![allow(
    clippy::cast_possible_truncation,
    reason = "file offsets are u64 and mapping offsets usize: this crate builds for 64-bit targets only \
              (asserted below), and key, value and batch sizes are checked against their limits \
              (which fit u16/u32) before they are narrowed"
)]

const _: () = assert!(
    usize::BITS == 64,
    "memio-kv maps whole store files: 64-bit targets only"
);

mod compact;
mod error;
mod format;
mod generation;
mod index;
mod reserve;
mod snapshot;
mod store;
mod table;
mod words;

pub use compact::Compacted;
pub use error::{Error, Result};
pub use format::{FORMAT_VERSION, MAX_BATCH, MAX_KEY, MAX_VALUE};
pub use snapshot::{Iter, Snapshot};
pub use store::{Batch, DEFAULT_MAX_SIZE, Durability, Options, Stats, Store, Transaction};
