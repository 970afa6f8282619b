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
    CHECKPOINT_AT, FORMAT_VERSION, FileHeader, GROUP_HEADER, GroupHeader, HEADER_SIZE, HeaderFault,
    RECORD_HEADER, RecordHeader, SUPERSEDED_AT,
};
use crate::index::{Damage, Index};
use crate::reserve::reserve;
use crate::side::{Published, Side, side_path, tag};
use crate::words::Words;

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
    /// A group's body as last read: kept so that catching up with each new
    /// commit allocates nothing.
    pub scratch: Vec<u8>,
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
    /// The side file with the published lengths (`None`: a read-only
    /// handle found none, and reads the committed end from the log).
    side: Option<Side>,
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
            HeaderFault::Version(found) if found > FORMAT_VERSION => Error::FutureVersion {
                path: path.into(),
                found,
                supported: FORMAT_VERSION,
            },
            HeaderFault::Version(found) => Error::OldVersion {
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
        let ino =
            std::os::unix::fs::MetadataExt::ino(&file.metadata().map_err(Error::io(path, "stat"))?);
        let side_file = Side::open(path, tag(header.salt, ino), writable)
            .map_err(Error::io(side_path(path), "open side file"))?;
        let generation = Self {
            path: path.into(),
            file,
            map,
            head,
            side: side_file,
            log: RwLock::new(Log {
                index: Index::new(),
                seen: HEADER_SIZE,
                chain: header.salt,
                seq: 0,
                scratch: Vec::new(),
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

    /// The header word at byte `at` (taken through the whole mapping's
    /// words: one check of the region, where a one-word view costs a
    /// bounds, rights and atomic-width check per load).
    fn word(&self, at: usize) -> u64 {
        let v = self.words().map_or(0, |w| w.word(at));
        fence(Acquire);
        v
    }

    /// The lengths a writer published for this file, if the side file
    /// describes it.
    pub fn published(&self) -> Option<Published> {
        self.side.as_ref()?.published()
    }

    /// The checkpoint: a log length known to be on disk.
    pub fn checkpoint(&self) -> u64 {
        self.word(CHECKPOINT_AT)
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

    fn side(&self) -> Result<&Side> {
        self.side.as_ref().ok_or_else(|| Error::ReadOnly {
            path: self.path.clone(),
        })
    }

    /// Publishes a new committed length (and durable length, if `synced`;
    /// the durable length never stays above the committed one).
    pub fn publish(&self, end: u64, synced: bool) -> Result<()> {
        let side = self.side()?;
        let before = side.published().map_or(HEADER_SIZE, |p| p.synced);
        let synced = if synced { end } else { before.min(end) };
        side.publish(Published {
            committed: end,
            synced,
        })
        .map_err(Error::io(side_path(&self.path), "publish"))
    }

    /// Makes the side file describe this file, with the log (read, synced,
    /// writer lock held) ending at `end`.
    pub fn claim(&self, end: u64) -> Result<()> {
        self.side()?
            .claim(end)
            .map_err(Error::io(side_path(&self.path), "claim side file"))
    }

    /// Records `durable` (a length known to be on disk) in the header, for
    /// telling damage from a torn tail when the side file is lost; never
    /// lowers it. The page is not synced here: it reaches the disk with a
    /// later sync or writeback, and any value it ever held was durable.
    pub fn set_checkpoint(&self, durable: u64) -> Result<()> {
        if durable > self.checkpoint() {
            self.store_word(CHECKPOINT_AT, durable)?;
        }
        Ok(())
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
        let seen = self.seen();
        if self.published().is_some_and(|p| p.committed <= seen) {
            return Ok(seen);
        }
        let mut log = self.write_log();
        self.apply_committed(&mut log)?;
        Ok(log.seen)
    }

    /// Applies groups up to the committed length (bounded by the file's
    /// size). A bad group below the durable length is corruption; past it,
    /// a torn tail (relaxed mode after a power cut) that ends the log.
    ///
    /// With no published lengths for this file, the committed end is where
    /// the valid chain of groups ends, found by reading ahead without
    /// applying; it counts only if the side file is still unclaimed after
    /// that read (a writer claims before it writes), so no group a writer
    /// is still writing or syncing is applied.
    pub fn apply_committed(&self, log: &mut Log) -> Result<()> {
        let (committed, synced, size) = if let Some(p) = self.published() {
            // A `synced` newer than the `committed` read with it may lie
            // past the size known so far; only the part read matters.
            (
                p.committed,
                p.synced.min(p.committed),
                self.size_for(p.committed)?,
            )
        } else {
            let size = self.size_for(u64::MAX)?;
            let checkpoint = self.checkpoint();
            self.check_durable(checkpoint, size)?;
            let end = self.valid_end(log, size, checkpoint)?;
            if self.published().is_some() {
                return self.apply_committed(log);
            }
            (end, checkpoint, size)
        };
        self.check_durable(synced, size)?;
        self.apply_until(log, committed.min(size), synced)
    }

    fn check_durable(&self, synced: u64, size: u64) -> Result<()> {
        if synced > size || synced < HEADER_SIZE {
            return Err(Error::corrupt(
                &self.path,
                CHECKPOINT_AT as u64,
                format!("durable length {synced} lies outside the file ({size} bytes)"),
            ));
        }
        Ok(())
    }

    /// Where the valid chain of groups from `log.seen` ends (by `bound`),
    /// read without applying it; a bad group below `durable` is an error.
    fn valid_end(&self, log: &Log, bound: u64, durable: u64) -> Result<u64> {
        let (mut at, mut chain, mut seq) = (log.seen, log.chain, log.seq);
        let mut body = Vec::new();
        while at < bound {
            match self.read_group(chain, seq, at, bound, &mut body) {
                Ok(head) => {
                    at += GROUP_HEADER as u64 + u64::from(head.body_len);
                    (chain, seq) = (head.crc, head.seq);
                }
                Err(why) if at < durable => return Err(Error::corrupt(&self.path, at, why)),
                Err(_) => break,
            }
        }
        Ok(at)
    }

    /// Applies valid groups from `log.seen` up to `bound`; a group that does
    /// not check out ends the scan, and is an error below `durable`.
    pub fn apply_until(&self, log: &mut Log, bound: u64, durable: u64) -> Result<()> {
        let mut body = std::mem::take(&mut log.scratch);
        let result = self.apply_groups(log, bound, durable, &mut body);
        // Keep a buffer for ordinary commits, not one a huge one grew.
        if body.capacity() <= 1 << 20 {
            log.scratch = body;
        }
        result
    }

    /// [`apply_until`](Self::apply_until), reading bodies into `body`.
    fn apply_groups(
        &self,
        log: &mut Log,
        bound: u64,
        durable: u64,
        body: &mut Vec<u8>,
    ) -> Result<()> {
        while log.seen < bound {
            let at = log.seen;
            let head = match self.read_group(log.chain, log.seq, at, bound, body) {
                Ok(h) => h,
                Err(why) if at < durable => return Err(Error::corrupt(&self.path, at, why)),
                Err(_) => break,
            };
            self.apply_group(log, at, &head, body)?;
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
        Self::apply_body(log, at, head, body)
            .map_err(|d| Error::corrupt(&self.path, d.offset, d.what))?;
        log.seen = at + GROUP_HEADER as u64 + u64::from(head.body_len);
        log.chain = head.crc;
        log.seq = head.seq;
        self.seen.store(log.seen, Release);
        Ok(())
    }

    /// Reads and checks the group at `at`, which must end by `bound` and
    /// follow the group with checksum `chain` and number `seq`; its body
    /// into `body`.
    fn read_group(
        &self,
        chain: u32,
        seq: u64,
        at: u64,
        bound: u64,
        body: &mut Vec<u8>,
    ) -> Result<GroupHeader, String> {
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
            ));
        }
        body.clear();
        words
            .append(at as usize + GROUP_HEADER, head.body_len as usize, body)
            .map_err(|e| e.to_string())?;
        if !head.verify(&hb, body) {
            return Err("group checksum mismatch".into());
        }
        if head.prev_crc != chain || head.seq != seq + 1 {
            return Err(format!(
                "group {} does not follow group {seq} (chain {:#x}, expected {chain:#x})",
                head.seq, head.prev_crc
            ));
        }
        Ok(head)
    }

    fn apply_body(log: &mut Log, at: u64, head: &GroupHeader, body: &[u8]) -> Result<(), Damage> {
        let base = at + GROUP_HEADER as u64;
        let mut pos = 0usize;
        let mut count = 0u32;
        while pos < body.len() {
            let loc = base + pos as u64;
            if body.len() - pos < RECORD_HEADER {
                return Err(crate::index::damage(loc, "record header cut short"));
            }
            let rec = RecordHeader::parse(&body[pos..]);
            let len = rec.len();
            if body.len() - pos < len {
                return Err(crate::index::damage(loc, "record runs past its group"));
            }
            let key = &body[pos + RECORD_HEADER..pos + RECORD_HEADER + usize::from(rec.key_len)];
            log.index.apply(loc, &rec, key)?;
            pos += len;
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

    /// Writes zeros from the file's end up to `new_size`, so later commits
    /// overwrite allocated blocks and `fdatasync` has no metadata to flush.
    pub fn grow(&self, new_size: u64) -> Result<()> {
        let size = self.size_for(u64::MAX)?;
        let zeros = vec![0u8; 1 << 20];
        let mut at = size;
        while at < new_size {
            let n = (new_size - at).min(zeros.len() as u64) as usize;
            self.file
                .write_all_at(&zeros[..n], at)
                .map_err(Error::io(&self.path, "grow"))?;
            at += n as u64;
        }
        self.set_size(at.max(size));
        Ok(())
    }

    /// `fdatasync` on the file.
    pub fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(Error::io(&self.path, "fdatasync"))
    }
}

impl Drop for Generation {
    /// A writable handle leaves the durable length in the header's
    /// checkpoint, so a copy of the file without its side file still tells
    /// damage in that much of the log from a torn tail.
    fn drop(&mut self) {
        if self.head.is_some() && !self.superseded() {
            if let Some(p) = self.published() {
                let _ = self.set_checkpoint(p.synced);
            }
        }
    }
}
