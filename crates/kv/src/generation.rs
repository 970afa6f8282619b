//! One open store file: its descriptor, the reserved read-only mapping,
//! the header words shared with other processes, and this handle's index
//! of the log, extended group by group as other processes commit.
//!
//! A store handle swaps to a new generation when compaction replaces the
//! file; snapshots keep the generation they were taken on.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::atomic::{AtomicU64, fence};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use memio_map::{MapOptions, Region};

use crate::error::{Error, Result};
use crate::format::{
    COMMITTED_AT, FORMAT_VERSION, FileHeader, GROUP_HEADER, GROUP_MAGIC, GroupHeader, HEADER_SIZE,
    HeaderFault, RECORD_HEADER, RecordHeader, SUPERSEDED_AT, SYNCED_AT,
};
use crate::index::{Damage, Index};
use crate::reserve::reserve;
use crate::words::Words;

/// The largest group buffer a handle keeps for the next read.
const KEPT_BODY: usize = 1 << 20;

/// This handle's view of the log: how far it has read and the index of it.
#[derive(Debug)]
pub(crate) struct Log {
    pub index: Index,
    /// End of the last group applied.
    pub seen: u64,
    /// Checksum of that group (the file's salt before the first).
    pub chain: u32,
    /// Its sequence number (0 before the first).
    pub seq: u64,
    /// The buffer groups are read into, kept between reads (a reader
    /// following a busy writer reads thousands of groups a second).
    pub body: Vec<u8>,
}

/// Why the group at an offset was not read.
#[derive(Debug)]
enum Unread {
    /// It is not a valid group that follows the log.
    Bad(String),
    /// Its header follows the log, but it ends at this offset, past the
    /// mapping: it cannot be checked through this handle.
    PastMap(u64),
}

impl From<String> for Unread {
    fn from(why: String) -> Self {
        Self::Bad(why)
    }
}

impl From<&str> for Unread {
    fn from(why: &str) -> Self {
        Self::Bad(why.into())
    }
}

/// One open store file.
#[derive(Debug)]
pub(crate) struct Generation {
    pub path: PathBuf,
    pub file: File,
    /// The whole reservation, read-only.
    pub map: Region,
    /// The header page, read-write (writable handles only).
    head: Option<Region>,
    pub log: RwLock<Log>,
    /// `log.seen`, readable without the lock.
    seen: AtomicU64,
    /// The file's size as last checked.
    size: AtomicU64,
}

impl Generation {
    /// Opens the store file `file` at `path`, checks its header, maps it and
    /// reads the committed log.
    pub fn open(path: &Path, file: File, writable: bool, max_size: u64) -> Result<Self> {
        let size = file.metadata().map_err(Error::io(path, "stat"))?.len();
        let mut b = [0u8; 32];
        if size < HEADER_SIZE {
            return Err(Error::NotAStore {
                path: path.into(),
                why: format!("{size} bytes, shorter than the {HEADER_SIZE}-byte header"),
            });
        }
        file.read_exact_at(&mut b, 0)
            .map_err(Error::io(path, "read header"))?;
        let header = FileHeader::decode(&b).map_err(|fault| match fault {
            HeaderFault::Magic => Error::NotAStore {
                path: path.into(),
                why: "no memio-kv magic at offset 0".into(),
            },
            HeaderFault::Version(found) => Error::FutureVersion {
                path: path.into(),
                found,
                supported: FORMAT_VERSION,
            },
            HeaderFault::Checksum => Error::corrupt(path, 0, "file header checksum mismatch"),
        })?;
        if size > max_size {
            return Err(Error::Full {
                path: path.into(),
                need: size,
                max: max_size,
            });
        }
        let len = usize::try_from(max_size).map_err(|_| Error::Full {
            path: path.into(),
            need: size,
            max: usize::MAX as u64,
        })?;
        let map = reserve(&file, len).map_err(Error::io(path, "map"))?;
        let head = if writable {
            let r = MapOptions::new()
                .len(HEADER_SIZE as usize)
                .read_write()
                .map(&file)
                .map_err(Error::io(path, "map header"))?;
            Some(r)
        } else {
            None
        };
        let generation = Self {
            path: path.into(),
            file,
            map,
            head,
            log: RwLock::new(Log {
                index: Index::new(),
                seen: HEADER_SIZE,
                chain: header.salt,
                seq: 0,
                body: Vec::new(),
            }),
            seen: AtomicU64::new(HEADER_SIZE),
            size: AtomicU64::new(size),
        };
        generation.catch_up()?;
        Ok(generation)
    }

    /// The mapping as load-only words, for copies out of it.
    pub fn words(&self) -> Result<Words<'_>> {
        Words::of(&self.map).map_err(Error::io(&self.path, "map"))
    }

    fn word(&self, at: usize) -> u64 {
        let v = self
            .map
            .load_only_u64(at)
            .map_or(0, memio_map::LoadOnlyU64::load);
        fence(Acquire);
        v
    }

    /// The committed length, as the last writer published it.
    pub fn committed(&self) -> u64 {
        self.word(COMMITTED_AT)
    }

    /// The length known to be on disk.
    pub fn synced(&self) -> u64 {
        self.word(SYNCED_AT)
    }

    /// Whether compaction replaced this file.
    pub fn superseded(&self) -> bool {
        self.word(SUPERSEDED_AT) != 0
    }

    fn store_word(&self, at: usize, v: u64) -> Result<()> {
        let head = self.head.as_ref().ok_or_else(|| Error::ReadOnly {
            path: self.path.clone(),
        })?;
        head.atomic_u64(at)
            .map_err(Error::io(&self.path, "store header word"))?
            .store(v, Release);
        Ok(())
    }

    /// Publishes a new committed length (and durable length, if `synced`).
    pub fn publish(&self, end: u64, synced: bool) -> Result<()> {
        if synced || self.synced() > end {
            self.store_word(SYNCED_AT, end)?;
        }
        self.store_word(COMMITTED_AT, end)
    }

    /// Marks the file as replaced by a compacted one.
    pub fn supersede(&self) -> Result<()> {
        self.store_word(SUPERSEDED_AT, 1)
    }

    /// The file's size, refreshed from `fstat` when `need` lies past the
    /// size last seen.
    pub fn size_for(&self, need: u64) -> Result<u64> {
        let size = self.size.load(Acquire);
        if need <= size {
            return Ok(size);
        }
        let now = self
            .file
            .metadata()
            .map_err(Error::io(&self.path, "stat"))?
            .len();
        self.size.store(now, Release);
        Ok(now)
    }

    pub fn set_size(&self, size: u64) {
        self.size.store(size, Release);
    }

    /// How far this handle has read.
    pub fn seen(&self) -> u64 {
        self.seen.load(Acquire)
    }

    pub fn read_log(&self) -> RwLockReadGuard<'_, Log> {
        self.log
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn write_log(&self) -> RwLockWriteGuard<'_, Log> {
        self.log
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies every group committed since this handle last looked; returns
    /// the offset read up to, which is a consistent snapshot point.
    pub fn catch_up(&self) -> Result<u64> {
        let committed = self.committed();
        let seen = self.seen();
        if committed <= seen {
            return Ok(seen);
        }
        let mut log = self.write_log();
        self.apply_committed(&mut log)?;
        Ok(log.seen)
    }

    /// Applies groups up to the committed length (bounded by the file's
    /// size). A bad group below the durable length is corruption; past it,
    /// a torn tail (relaxed mode after a power cut) that ends the log.
    pub fn apply_committed(&self, log: &mut Log) -> Result<()> {
        let committed = self.committed();
        let synced = self.synced();
        // `synced` may lie past `committed` (it is stored first, and a
        // writer may die between the two stores or publish between these
        // two loads) and past the size this handle last saw: ask the size
        // for both before calling either damage.
        let size = self.size_for(committed.max(synced))?;
        let room = self.map.len() as u64;
        if committed.min(size) > room {
            // Another handle, with a larger max_size, grew the store past
            // what this one reserved: nothing is wrong with the file.
            return Err(Error::Full {
                path: self.path.clone(),
                need: committed.min(size),
                max: room,
            });
        }
        if synced > size || synced < HEADER_SIZE {
            return Err(Error::corrupt(
                &self.path,
                SYNCED_AT as u64,
                format!("durable length {synced} lies outside the file ({size} bytes)"),
            ));
        }
        self.apply_until(log, committed.min(size), synced)
    }

    /// The error for damaged bytes of this file.
    pub fn damaged(&self, d: Damage) -> Error {
        Error::corrupt(&self.path, d.offset, d.what)
    }

    /// Whether a group may start at `at`: its magic is there, or `at`
    /// lies too near the end of the file as last seen to tell.
    pub fn may_hold_group(&self, at: u64) -> Result<bool> {
        if at + GROUP_HEADER as u64 > self.size.load(Acquire) {
            return Ok(true);
        }
        let mut magic = [0u8; 4];
        // `at` may lie at the end of this handle's mapping in a file that
        // a handle with a larger max_size grew: the full look (which finds
        // no group it can read there) decides, and the commit says Full.
        Ok(self.words()?.read_at(at as usize, &mut magic).is_err()
            || u32::from_le_bytes(magic) == GROUP_MAGIC)
    }

    /// Applies the whole, chained groups past the committed end (up to the
    /// file's size) that a writer wrote and did not publish, or whose
    /// publication the disk lost. Past the committed end there are
    /// normally only zeros: the file's size is asked only when a group
    /// header may lie there, since on filesystems with fine-grained
    /// timestamps a query of the inode makes the next write stamp it
    /// again, and every durable commit would then write the inode's block
    /// as well as its own.
    pub fn apply_past_committed(&self, log: &mut Log) -> Result<()> {
        if !self.may_hold_group(log.seen)? {
            return Ok(());
        }
        let size = self.size_for(u64::MAX)?;
        self.apply_until(log, size, 0)
    }

    /// Applies valid groups from `log.seen` up to `bound`; a group that does
    /// not check out ends the scan, and is an error below `durable`.
    pub fn apply_until(&self, log: &mut Log, bound: u64, durable: u64) -> Result<()> {
        while log.seen < bound {
            let at = log.seen;
            let mut body = std::mem::take(&mut log.body);
            let head = match self.read_group(log, at, bound, &mut body) {
                Ok(head) => head,
                Err(Unread::PastMap(need)) => {
                    // A group that follows the log but lies partly past this
                    // handle's mapping (a handle with a larger max_size wrote
                    // it): it cannot be checked here, so it is neither a torn
                    // tail to write over nor a group to keep.
                    return Err(Error::Full {
                        path: self.path.clone(),
                        need,
                        max: self.map.len() as u64,
                    });
                }
                Err(Unread::Bad(why)) if at < durable => {
                    return Err(Error::corrupt(&self.path, at, why));
                }
                Err(Unread::Bad(_)) => break,
            };
            // The writer applies its own commit from the bytes in hand,
            // warmed while it encoded them; a group read here is warmed
            // now.
            log.index.warm(None, keys_of(&body));
            let applied = self.apply_group(log, at, &head, &body);
            if body.capacity() <= KEPT_BODY {
                log.body = body;
            }
            applied?;
        }
        Ok(())
    }

    /// Applies the checked group at `at` (which is `log.seen`) and moves
    /// past it.
    pub fn apply_group(
        &self,
        log: &mut Log,
        at: u64,
        head: &GroupHeader,
        body: &[u8],
    ) -> Result<()> {
        debug_assert_eq!(at, log.seen);
        Self::apply_body(log, at, head, body).map_err(|d| self.damaged(d))?;
        log.seen = at + GROUP_HEADER as u64 + u64::from(head.body_len);
        log.chain = head.crc;
        log.seq = head.seq;
        self.seen.store(log.seen, Release);
        Ok(())
    }

    /// Reads and checks the group at `at`, which must end by `bound`.
    fn read_group(
        &self,
        log: &Log,
        at: u64,
        bound: u64,
        body: &mut Vec<u8>,
    ) -> Result<GroupHeader, Unread> {
        let mut hb = [0u8; GROUP_HEADER];
        if at + GROUP_HEADER as u64 > bound {
            return Err("group header cut short".into());
        }
        let words = self.words().map_err(|e| e.to_string())?;
        words
            .read_at(at as usize, &mut hb)
            .map_err(|e| e.to_string())?;
        let head = GroupHeader::parse(&hb).ok_or("no group header here")?;
        let end = at + GROUP_HEADER as u64 + u64::from(head.body_len);
        if end > bound {
            return Err(format!(
                "group of {} bytes runs past the committed end {bound}",
                head.body_len
            )
            .into());
        }
        // The mapping is read in whole words: bytes past its last whole
        // word are past it too.
        if end > (self.map.len() as u64 & !7)
            && head.prev_crc == log.chain
            && head.seq == log.seq + 1
        {
            // Bytes left over from an older log would not follow this one's
            // chain: this is the next group, or one torn on its way.
            return Err(Unread::PastMap(end));
        }
        body.clear();
        body.resize(head.body_len as usize, 0);
        words
            .read_at(at as usize + GROUP_HEADER, body)
            .map_err(|e| e.to_string())?;
        if !head.verify(&hb, body) {
            return Err("group checksum mismatch".into());
        }
        if head.prev_crc != log.chain || head.seq != log.seq + 1 {
            return Err(format!(
                "group {} does not follow group {} (chain {:#x}, expected {:#x})",
                head.seq, log.seq, head.prev_crc, log.chain
            )
            .into());
        }
        Ok(head)
    }

    fn apply_body(log: &mut Log, at: u64, head: &GroupHeader, body: &[u8]) -> Result<(), Damage> {
        let base = at + GROUP_HEADER as u64;
        let mut pos = 0usize;
        let mut count = 0u32;
        while pos < body.len() {
            let loc = base + pos as u64;
            let (rec, key) = record_at(body, pos).map_err(|why| crate::index::damage(loc, why))?;
            log.index.apply(loc, &rec, key)?;
            pos += rec.len();
            count += 1;
        }
        if count != head.count {
            return Err(crate::index::damage(
                at,
                format!("group says {} records, holds {count}", head.count),
            ));
        }
        Ok(())
    }

    /// Writes zeros from the file's end up to `new_size`, and with `sync`
    /// syncs them, so later durable commits overwrite allocated blocks and
    /// their `fdatasync` has no metadata to flush.
    ///
    /// The sync is what allocates the blocks on a filesystem with delayed
    /// allocation (ext4): unsynced, the room's blocks would be allocated
    /// when its pages are written back, a few at a time by the commits that
    /// land in them, and each such commit's sync would also write the
    /// inode and the allocation's metadata, one more synchronous write (of
    /// 100-key commits, nearly every one: a writer of them made about a
    /// third fewer a second here). Relaxed commits sync nothing, so their
    /// growth does not either: the kernel's write-back allocates the room.
    pub fn grow(&self, new_size: u64, sync: bool) -> Result<()> {
        let size = self.size_for(u64::MAX)?;
        write_zeros(&self.file, size, new_size).map_err(Error::io(&self.path, "grow"))?;
        if sync {
            self.file
                .sync_data()
                .map_err(Error::io(&self.path, "grow: fdatasync"))?;
        }
        self.set_size(new_size.max(size));
        Ok(())
    }

    /// `fdatasync` on the file.
    pub fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(Error::io(&self.path, "fdatasync"))
    }
}

/// The record at `pos` of a group body (`pos` below its length) and its
/// key, or why it does not fit in the body.
fn record_at(body: &[u8], pos: usize) -> Result<(RecordHeader, &[u8]), &'static str> {
    let rest = &body[pos..];
    if rest.len() < RECORD_HEADER {
        return Err("record header cut short");
    }
    let rec = RecordHeader::parse(rest);
    if rest.len() < rec.len() {
        return Err("record runs past its group");
    }
    let key = &rest[RECORD_HEADER..RECORD_HEADER + usize::from(rec.key_len)];
    Ok((rec, key))
}

/// The keys of the records in a group body, up to the first record that
/// does not fit in it (which [`Generation::apply_body`] then reports).
fn keys_of(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= body.len() {
            return None;
        }
        let (rec, key) = record_at(body, pos).ok()?;
        pos += rec.len();
        Some(key)
    })
}

/// Writes zeros over `from..to` of `file`, one memory page per write.
///
/// The page cache keeps what a write creates in pieces (folios) of about
/// the write's size. Each durable commit later writes back the piece that
/// holds its bytes, and when the file is mapped (every handle maps it),
/// writeback walks every page table entry of that piece in every process
/// mapping it to write-protect it. Written in pieces of one page, the room
/// commits land in costs one page's walk per commit, not hundreds.
pub(crate) fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; rustix::param::page_size()];
    let mut at = from;
    while at < to {
        // Up to the next page boundary, so that later writes line up.
        let n = (to - at).min(zeros.len() as u64 - at % zeros.len() as u64);
        #[allow(clippy::cast_possible_truncation, reason = "at most a page")]
        file.write_all_at(&zeros[..n as usize], at)?;
        at += n;
    }
    Ok(())
}
