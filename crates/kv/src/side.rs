//! The side file (`<store>-shm`): the committed and durable lengths every
//! process reads and the writer publishes, kept out of the store file so
//! that publishing a commit dirties no page `fdatasync` must write.
//!
//! Like `SQLite`'s `-shm` file, it is never synced and never trusted for
//! durability: the log's checksummed, chained groups are the truth, and
//! the side file only says how far they are committed. Its words name the
//! store file they describe by a *tag* (the file's salt and inode number),
//! so a side file that is missing, zeroed by a power cut, or left over from
//! an older file at the same path (compaction renames a new file over the
//! old one) simply does not match: readers then find the committed end by
//! reading the log ([`Generation::apply_committed`]), and the next writer
//! recovers the log and *claims* the side file by writing its tag.
//!
//! A writer publishes only after claiming, and claims only while holding
//! the store file's writer lock, after checking the file is not superseded.
//!
//! [`Generation::apply_committed`]: crate::generation::Generation::apply_committed

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::atomic::fence;

use memio_map::{MapOptions, Region};

use crate::format::{COMMITTED_AT, SIDE_SIZE, SIDE_SUFFIX, SYNCED_AT, TAG_AT};

/// The side file's path for the store at `path`.
pub(crate) fn side_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(SIDE_SUFFIX);
    path.with_file_name(name)
}

/// The tag of a store file: its salt and the low half of its inode number,
/// never 0 (0 marks a side file no writer has claimed).
pub(crate) fn tag(salt: u32, ino: u64) -> u64 {
    ((u64::from(salt) << 32) | (ino & 0xFFFF_FFFF)).max(1)
}

/// What a writer last published for a store file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Published {
    /// End of the last committed group.
    pub committed: u64,
    /// End of the log known to be on disk.
    pub synced: u64,
}

/// A store file's mapping of its side file.
#[derive(Debug)]
pub(crate) struct Side {
    map: Region,
    /// The tag of the store file this handle has open.
    tag: u64,
}

impl Side {
    /// Opens (and, if `writable`, creates) the side file of the store at
    /// `path`. A read-only handle gets `None` when the side file is missing
    /// or short: it then reads the committed end from the log.
    pub fn open(path: &Path, tag: u64, writable: bool) -> io::Result<Option<Self>> {
        let side = side_path(path);
        let file = match File::options()
            .read(true)
            .write(writable)
            .create(writable)
            .truncate(false)
            .open(&side)
        {
            Ok(f) => f,
            Err(e) if !writable && e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if file.metadata()?.len() < SIDE_SIZE {
            if !writable {
                return Ok(None);
            }
            // Only ever grows it (a racing opener sets the same size).
            file.set_len(SIDE_SIZE)?;
        }
        let options = MapOptions::new().len(SIDE_SIZE as usize);
        let map = if writable {
            options.read_write().map(&file)?
        } else {
            options.map(&file)?
        };
        Ok(Some(Self { map, tag }))
    }

    fn store(&self, at: usize, v: u64) -> io::Result<()> {
        self.map.atomic_u64(at)?.store(v, Release);
        Ok(())
    }

    /// The published lengths, if the side file describes this handle's
    /// store file (and no claim was under way while they were read).
    pub fn published(&self) -> Option<Published> {
        // One view of all the words: a view per word checks the region
        // each time, and readers ask on every call.
        let words = self.map.as_load_only_u64s().ok()?;
        let load = |at: usize| words[at / 8].load();
        let before = load(TAG_AT);
        fence(Acquire);
        // `committed` before `synced`: a writer stores them the other way
        // round, so `synced` is at least as new as `committed`.
        let committed = load(COMMITTED_AT);
        fence(Acquire);
        let synced = load(SYNCED_AT);
        fence(Acquire);
        let after = load(TAG_AT);
        (before == self.tag && after == self.tag).then_some(Published { committed, synced })
    }

    /// Publishes new lengths (writer lock held, side file claimed).
    pub fn publish(&self, p: Published) -> io::Result<()> {
        self.store(SYNCED_AT, p.synced)?;
        self.store(COMMITTED_AT, p.committed)
    }

    /// Makes the side file describe this handle's store file, with the log
    /// (recovered and synced by the caller, who holds the writer lock)
    /// ending at `end`. Readers see no tag, then the whole new state.
    pub fn claim(&self, end: u64) -> io::Result<()> {
        self.store(TAG_AT, 0)?;
        self.publish(Published {
            committed: end,
            synced: end,
        })?;
        self.store(TAG_AT, self.tag)
    }
}
