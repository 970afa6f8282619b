//! The in-memory index every handle keeps of the log it has read: where
//! each key's newest record lies. A handle builds it once when it opens the
//! store and then extends it from the offset it last saw, one committed
//! group at a time, so no reader ever replays what it has already read.
//!
//! Each distinct key gets a small number, its *id*, the first time the log
//! names it. The index holds, per id, the key's bytes (back to back in one
//! arena) and a [`Slot`]: the offset, kind and value length of the key's
//! newest record. So:
//!
//! - a point lookup hashes the key (a 64-bit hash to an id and a copy of
//!   its slot; the key is compared against the record in the mapping, so a
//!   hash collision only sends the second key to a small spill table) and
//!   reads the value from that same record;
//! - a record for a key already known only overwrites its slot: applying a
//!   commit of updates costs one hash lookup per record, however many keys
//!   the store holds;
//! - ordered scans walk `ordered`, the ids sorted by key. A new key larger
//!   than every key so far (a load in key order) is appended to it at once;
//!   any other new key waits in `pending` until the next scan sorts the
//!   pending keys and merges them in ([`Index::settle`]), once for all of
//!   them.
//!
//! Each record names the record it replaced (`prev`), so a reader can look
//! up a key as of any earlier committed offset — a snapshot — by walking
//! back from the newest record.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::ops::Bound;

use allocator_api2::vec::Vec as TableVec;
use memio_map::HugePageAlloc;

use crate::format::{DELETE, MAX_KEY, MAX_VALUE, PUT, RECORD_HEADER, RecordHeader};
use crate::table::{Cached, Table, prefetch};
use crate::words::Words;

/// A record found in the mapping: its offset and header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    pub loc: u64,
    pub head: RecordHeader,
}

/// What the index keeps of a key's newest record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// File offset of the record.
    pub loc: u64,
    /// Its value's length (0 for a delete).
    pub val_len: u32,
    /// Its key's length (in what would otherwise be padding): a scan's
    /// walk of the key order reads the slots and nothing else.
    pub key_len: u16,
    /// [`PUT`] or [`DELETE`].
    pub kind: u8,
}

const _: () = assert!(size_of::<Slot>() == 16, "a slot stays 16 bytes");

/// Why a record could not be read or applied.
#[derive(Debug)]
pub(crate) struct Damage {
    pub offset: u64,
    pub what: String,
}

pub(crate) fn damage(offset: u64, what: impl Into<String>) -> Damage {
    Damage {
        offset,
        what: what.into(),
    }
}

/// Reads the record header at `loc`.
pub(crate) fn read_header(map: Words<'_>, loc: u64) -> Result<RecordHeader, Damage> {
    let mut b = [0; RECORD_HEADER];
    let at = usize::try_from(loc).map_err(|_| damage(loc, "offset out of range"))?;
    map.read_at(at, &mut b)
        .map_err(|e| damage(loc, format!("record header unreadable: {e}")))?;
    Ok(RecordHeader::parse(&b))
}

/// Appends the `val_len`-byte value of the record at `loc`, whose key is
/// `key_len` bytes, to `out`.
pub(crate) fn append_value(
    map: Words<'_>,
    loc: u64,
    key_len: usize,
    val_len: u32,
    out: &mut Vec<u8>,
) -> Result<(), Damage> {
    let at = loc as usize + RECORD_HEADER + key_len;
    map.append(at, val_len as usize, out)
        .map_err(|e| damage(loc, format!("value unreadable: {e}")))
}

/// Whether the record at `loc` holds `key`.
fn record_holds(map: Words<'_>, loc: u64, key: &[u8]) -> Result<bool, Damage> {
    let head = read_header(map, loc)?;
    if usize::from(head.key_len) != key.len() {
        return Ok(false);
    }
    let mut buf = [0u8; 64];
    let start = loc as usize + RECORD_HEADER;
    for (i, part) in key.chunks(buf.len()).enumerate() {
        let got = &mut buf[..part.len()];
        map.read_at(start + i * 64, got)
            .map_err(|e| damage(loc, format!("key unreadable: {e}")))?;
        if got != part {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Where each key's newest record lies, and counts for `stats`.
#[derive(Debug)]
pub(crate) struct Index {
    seed: u64,
    /// Hash of a key to its id, with a copy of its slot: a point lookup
    /// goes from here straight to the record (see [`at`](Self::at)).
    by_hash: Table,
    spill: HashMap<Box<[u8]>, u32>,
    /// Every key's bytes, back to back, in id order.
    arena: Vec<u8>,
    /// Where each key starts in `arena`, plus the arena's end: key `id` is
    /// `arena[starts[id]..starts[id + 1]]`.
    starts: Vec<usize>,
    /// Each key's newest record. Read at random by scans and written by
    /// every applied record, as the table is: its memory comes from
    /// [`HugePageAlloc`] too.
    slots: TableVec<Slot, HugePageAlloc>,
    /// Ids in key order.
    ordered: Vec<u32>,
    /// Ids of keys not yet merged into `ordered`.
    pending: Vec<u32>,
    /// Keys whose newest record is a put.
    pub live_keys: u64,
    /// Key and value bytes of those records.
    pub live_bytes: u64,
    /// Record bytes (headers included) of those records.
    pub live_record_bytes: u64,
}

impl Index {
    pub fn new() -> Self {
        Self {
            seed: RandomState::new().hash_one(0u64) | 1,
            by_hash: Table::new(),
            spill: HashMap::new(),
            arena: Vec::new(),
            starts: vec![0],
            slots: TableVec::new_in(HugePageAlloc),
            ordered: Vec::new(),
            pending: Vec::new(),
            live_keys: 0,
            live_bytes: 0,
            live_record_bytes: 0,
        }
    }

    /// A seeded multiply-fold hash of `key`: far cheaper than `SipHash`
    /// for short keys. Keys that collide on purpose only land in the spill
    /// table (keyed by `SipHash`), so lookups stay correct and bounded.
    fn hash(&self, key: &[u8]) -> u64 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let fold = |a: u64, b: u64| {
            let m = u128::from(a) * u128::from(b);
            (m as u64) ^ ((m >> 64) as u64)
        };
        let mut h = self.seed ^ (key.len() as u64).wrapping_mul(K);
        let mut chunks = key.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().unwrap_or_default());
            h = fold(h ^ w, K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            h = fold(h ^ u64::from_le_bytes(w), K);
        }
        fold(h, K ^ self.seed)
    }

    /// The bytes of key `id`.
    pub fn key(&self, id: u32) -> &[u8] {
        let id = id as usize;
        &self.arena[self.starts[id]..self.starts[id + 1]]
    }

    /// The id of `key` (whose hash is `h`), if the log names it.
    fn id(&self, h: u64, key: &[u8]) -> Option<u32> {
        let id = self.by_hash.get(h)?.id;
        if self.key(id) == key {
            return Some(id);
        }
        self.spill.get(key).copied()
    }

    /// The newest record of `key`, put or delete, found through the
    /// index's own copy of the key.
    #[cfg(test)]
    pub fn newest(&self, key: &[u8]) -> Option<Slot> {
        self.id(self.hash(key), key)
            .map(|id| self.slots[id as usize])
    }

    /// The record of `key` as of committed offset `at`: the newest one
    /// that starts below `at`, if it is a put. The key is checked against
    /// the record itself, in the mapping, rather than the arena: a random
    /// lookup then touches the hash table and the record (whose value it
    /// reads next), not the arena and the slots too.
    pub fn at(&self, map: Words<'_>, key: &[u8], at: u64) -> Result<Option<Slot>, Damage> {
        match self.newest_in(map, key)? {
            Some(slot) => visible(map, slot, at),
            None => Ok(None),
        }
    }

    /// The newest record of `key`, put or delete, checking the key against
    /// the record in the mapping (as [`at`](Self::at) does): it reads the
    /// table and the record, where a comparison with the index's own copy
    /// also reads the key's start, the arena and the slots, two cache
    /// misses more per key.
    pub fn newest_in(&self, map: Words<'_>, key: &[u8]) -> Result<Option<Slot>, Damage> {
        let Some(cached) = self.by_hash.get(self.hash(key)) else {
            return Ok(None);
        };
        if record_holds(map, cached.slot.loc, key)? {
            return Ok(Some(cached.slot));
        }
        Ok(self.spill.get(key).map(|&id| self.slots[id as usize]))
    }

    /// Loads, for each of `keys`, the table entry its hash leads to and
    /// the key's slot (which applying a commit rewrites), and with `map`,
    /// for a commit being encoded, the first word of the key's newest
    /// record (which the encoding compares the key with); so that the
    /// lookups which follow find them in the cache.
    ///
    /// One lookup waits on its cache misses one after another: the entry,
    /// then the slot or the record the entry names. Here the keys go by in
    /// chunks, each in two passes: the first asks for every key's entry to
    /// be fetched (its place follows from the hash alone, so the misses
    /// overlap), the second, with the entries arriving, for every slot and
    /// record. A reader applying 100-key commits of random keys over a
    /// million spent about 300 ns a record with one pass over a general
    /// hash table, whose lookups miss twice in a row; under 90 here.
    pub fn warm<'k>(&self, map: Option<Words<'_>>, keys: impl Iterator<Item = &'k [u8]>) {
        const CHUNK: usize = 32;
        let mut acc = 0u64;
        let mut hashes = [0u64; CHUNK];
        let mut keys = keys.peekable();
        while keys.peek().is_some() {
            let mut n = 0;
            for key in keys.by_ref().take(CHUNK) {
                let h = self.hash(key);
                hashes[n] = h;
                self.by_hash.prefetch(h);
                n += 1;
            }
            for &h in &hashes[..n] {
                if let Some(c) = self.by_hash.get(h) {
                    if let Some(slot) = self.slots.get(c.id as usize) {
                        prefetch(slot);
                    }
                    if let Some(map) = map {
                        acc ^= map.touch(c.slot.loc as usize);
                    }
                }
            }
        }
        std::hint::black_box(acc);
    }

    /// Records that `key`'s newest record is now `rec` at `loc`, after
    /// checking that the record names the one it replaces.
    pub fn apply(&mut self, loc: u64, rec: &RecordHeader, key: &[u8]) -> Result<(), Damage> {
        if rec.kind != PUT && rec.kind != DELETE {
            return Err(damage(loc, format!("unknown record kind {}", rec.kind)));
        }
        if usize::from(rec.key_len) > MAX_KEY || rec.val_len as usize > MAX_VALUE {
            return Err(damage(loc, "record larger than the format allows"));
        }
        let slot = Slot {
            loc,
            val_len: rec.val_len,
            key_len: rec.key_len,
            kind: rec.kind,
        };
        let h = self.hash(key);
        if rec.prev != 0 {
            if let Some(cached) = self.by_hash.get_mut(h) {
                if cached.slot.loc == rec.prev && cached.slot.key_len == rec.key_len {
                    // The record replaces the newest record of the key cached
                    // under its hash, so it is that key's: records start at
                    // distinct offsets, and a key sharing the hash has its
                    // own newest record. Only a record whose `prev` is
                    // wrong *and* whose key collides with another could be
                    // taken for the other key. Keys of different lengths
                    // collide under every seed (the seed enters the hash
                    // xored with a term of the length, which a key's first
                    // word can cancel), so a forged file could pick such a
                    // pair: the lengths must match too. Keys of one length
                    // collide only under particular seeds, which no file
                    // can know. No look at the key's bytes: an update of a
                    // known key costs one probe of the table, not three
                    // cache misses.
                    let old = cached.slot;
                    cached.slot = slot;
                    let id = cached.id;
                    self.slots[id as usize] = slot;
                    self.account(key.len(), Some(old), rec);
                    return Ok(());
                }
            }
        }
        let id = self.id(h, key);
        let old = id.map(|id| self.slots[id as usize]);
        let expect = old.map_or(0, |s| s.loc);
        if rec.prev != expect {
            return Err(damage(
                loc,
                format!(
                    "record names {} as the key's previous record, the log says {expect}",
                    rec.prev
                ),
            ));
        }
        self.account(key.len(), old, rec);
        match id {
            Some(id) => {
                self.slots[id as usize] = slot;
                if let Some(cached) = self.by_hash.get_mut(h).filter(|c| c.id == id) {
                    cached.slot = slot;
                }
            }
            None => self.insert(h, key, slot)?,
        }
        Ok(())
    }

    /// Moves the live counts from the key's old record to `rec`.
    fn account(&mut self, key_len: usize, old: Option<Slot>, rec: &RecordHeader) {
        let record_len = |val_len: u32| (RECORD_HEADER + key_len) as u64 + u64::from(val_len);
        if let Some(s) = old.filter(|s| s.kind == PUT) {
            self.live_keys -= 1;
            self.live_bytes -= key_len as u64 + u64::from(s.val_len);
            self.live_record_bytes -= record_len(s.val_len);
        }
        if rec.kind == PUT {
            self.live_keys += 1;
            self.live_bytes += key_len as u64 + u64::from(rec.val_len);
            self.live_record_bytes += record_len(rec.val_len);
        }
    }

    /// Gives `key`, new to the index, an id and files it.
    fn insert(&mut self, h: u64, key: &[u8], slot: Slot) -> Result<(), Damage> {
        let id = u32::try_from(self.slots.len())
            .map_err(|_| damage(slot.loc, "more distinct keys than the index holds"))?;
        self.arena.extend_from_slice(key);
        self.starts.push(self.arena.len());
        self.slots.push(slot);
        if !self.by_hash.insert_new(h, Cached { id, slot }) {
            self.spill.insert(key.into(), id);
        }
        let after_last = self.ordered.last().is_none_or(|&l| self.key(l) < key);
        if self.pending.is_empty() && after_last {
            self.ordered.push(id);
        } else {
            self.pending.push(id);
        }
        Ok(())
    }

    /// Whether keys wait to be merged into the key order.
    pub fn unsettled(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Merges the pending keys into the key order.
    pub fn settle(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable_by(|&a, &b| self.key(a).cmp(self.key(b)));
        let mut merged = Vec::with_capacity(self.ordered.len() + pending.len());
        let (mut i, mut j) = (0, 0);
        while i < self.ordered.len() && j < pending.len() {
            if self.key(self.ordered[i]) < self.key(pending[j]) {
                merged.push(self.ordered[i]);
                i += 1;
            } else {
                merged.push(pending[j]);
                j += 1;
            }
        }
        merged.extend_from_slice(&self.ordered[i..]);
        merged.extend_from_slice(&pending[j..]);
        self.ordered = merged;
        pending.clear();
        self.pending = pending;
    }

    /// Positions in `ordered` of the keys from `from` to `end`.
    fn positions(&self, from: Bound<&[u8]>, end: Bound<&[u8]>) -> (usize, usize) {
        let position = |bound: Bound<&[u8]>, is_end: bool| match bound {
            Bound::Unbounded if is_end => self.ordered.len(),
            Bound::Unbounded => 0,
            Bound::Included(k) => self.ordered.partition_point(|&id| {
                let o = self.key(id).cmp(k);
                o == Ordering::Less || (is_end && o == Ordering::Equal)
            }),
            Bound::Excluded(k) => self.ordered.partition_point(|&id| {
                let o = self.key(id).cmp(k);
                o == Ordering::Less || (!is_end && o == Ordering::Equal)
            }),
        };
        let lo = position(from, false);
        (lo, position(end, true).max(lo))
    }

    /// Keys from `from` to `end` in key order, with their newest records;
    /// keys still pending (see [`settle`](Self::settle)) are left out.
    pub fn range<'a>(
        &'a self,
        from: Bound<&[u8]>,
        end: Bound<&[u8]>,
    ) -> impl Iterator<Item = (&'a [u8], Slot)> + 'a {
        let (lo, hi) = self.positions(from, end);
        self.ordered[lo..hi]
            .iter()
            .map(|&id| (self.key(id), self.slots[id as usize]))
    }

    /// Looks at up to `max` keys from `from` to `end` in key order (keys
    /// still pending, see [`settle`](Self::settle), left out) and appends
    /// to `hits` the record each has as of committed offset `at`, if that
    /// is a put (see [`visible`]). Returns the last key looked at if the
    /// range goes on past it.
    ///
    /// One tight pass over the key order: a scan spends its time under the
    /// index's lock here.
    pub fn visible_in(
        &self,
        map: Words<'_>,
        from: Bound<&[u8]>,
        end: Bound<&[u8]>,
        at: u64,
        max: usize,
        hits: &mut Vec<Hit>,
    ) -> Result<Option<&[u8]>, Damage> {
        let (lo, hi) = self.positions(from, end);
        let ids = &self.ordered[lo..hi.min(lo.saturating_add(max))];
        hits.reserve(ids.len());
        for &id in ids {
            let slot = self.slots[id as usize];
            if let Some(rec) = visible(map, slot, at)? {
                hits.push(Hit {
                    loc: rec.loc,
                    key_len: u32::from(rec.key_len),
                    val_len: rec.val_len,
                });
            }
        }
        Ok(match ids.last() {
            Some(&id) if lo + ids.len() < hi => Some(self.key(id)),
            _ => None,
        })
    }
}

/// A record visible to a scan: where it lies, its key and value sizes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub loc: u64,
    pub key_len: u32,
    pub val_len: u32,
}

impl Hit {
    /// The offset just past the record.
    pub fn end(&self) -> u64 {
        self.loc + (RECORD_HEADER as u64) + u64::from(self.key_len) + u64::from(self.val_len)
    }
}

/// The record of a key (newest record `slot`) as of committed offset
/// `at`: walks back from the newest record to the newest one below `at`;
/// `None` if that is a delete or there is none.
#[inline]
pub(crate) fn visible(map: Words<'_>, slot: Slot, at: u64) -> Result<Option<Slot>, Damage> {
    if slot.loc < at {
        return Ok((slot.kind == PUT).then_some(slot));
    }
    visible_before(map, slot, at)
}

/// [`visible`] for a key whose newest record lies at or past `at`.
fn visible_before(map: Words<'_>, slot: Slot, at: u64) -> Result<Option<Slot>, Damage> {
    let newest = Found {
        loc: slot.loc,
        head: read_header(map, slot.loc)?,
    };
    Ok(resolve(map, newest, at)?.map(|f| Slot {
        loc: f.loc,
        val_len: f.head.val_len,
        key_len: slot.key_len,
        kind: f.head.kind,
    }))
}

/// Walks back from `found` to the newest record below `at`; `None` if that
/// is a delete or there is none.
pub(crate) fn resolve(map: Words<'_>, mut found: Found, at: u64) -> Result<Option<Found>, Damage> {
    while found.loc >= at {
        let prev = found.head.prev;
        if prev == 0 {
            return Ok(None);
        }
        if prev >= found.loc {
            return Err(damage(
                found.loc,
                "record names a later record as its previous one",
            ));
        }
        found = Found {
            loc: prev,
            head: read_header(map, prev)?,
        };
    }
    Ok((found.head.kind == PUT).then_some(found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use memio_map::Region;

    fn record(region: &mut Region, loc: u64, key: &[u8], val: &[u8], prev: u64) -> RecordHeader {
        let head = RecordHeader {
            kind: PUT,
            key_len: key.len() as u16,
            val_len: val.len() as u32,
            prev,
        };
        let mut b = Vec::new();
        head.encode(&mut b);
        b.extend_from_slice(key);
        b.extend_from_slice(val);
        region.write_at(loc as usize, &b).unwrap();
        head
    }

    #[test]
    fn a_key_sharing_a_hash_with_another_is_found_through_the_spill_table() {
        let mut region = Region::anonymous(8192).unwrap();
        record(&mut region, 100, b"owner", b"1", 0);
        record(&mut region, 200, b"c", b"22", 0);
        record(&mut region, 300, b"d", b"333", 0);
        let mut index = Index::new();
        // File "owner" under the hash of "c", as a collision would.
        let h = index.hash(b"c");
        let slot = |loc, key_len, val_len| Slot {
            loc,
            val_len,
            key_len,
            kind: PUT,
        };
        index.insert(h, b"owner", slot(100, 5, 1)).unwrap();
        index.insert(h, b"c", slot(200, 1, 2)).unwrap();
        index
            .insert(index.hash(b"d"), b"d", slot(300, 1, 3))
            .unwrap();
        // `insert` leaves the counts to `apply`.
        (index.live_keys, index.live_bytes, index.live_record_bytes) = (3, 12, 60);
        let words = Words::of(&region).unwrap();
        let at = |index: &Index, key: &[u8]| index.at(words, key, 4096).unwrap().map(|s| s.loc);
        assert_eq!(at(&index, b"c"), Some(200));
        assert_eq!(at(&index, b"d"), Some(300));
        assert_eq!(at(&index, b"e"), None);
        // An update of the spilled key moves its slot, not the owner's.
        let head = record(&mut region, 400, b"c", b"4444", 200);
        index.apply(400, &head, b"c").unwrap();
        let words = Words::of(&region).unwrap();
        assert_eq!(
            index.at(words, b"c", 4096).unwrap().map(|s| s.loc),
            Some(400)
        );
        assert_eq!(index.by_hash.get(h).unwrap().slot.loc, 100);
        assert_eq!(index.newest(b"c").map(|s| s.val_len), Some(4));
        // An update of a key cached under its own hash moves its slot and
        // the cached copy, and only those.
        let head = record(&mut region, 500, b"d", b"55555", 300);
        index.apply(500, &head, b"d").unwrap();
        assert_eq!(index.by_hash.get(index.hash(b"d")).unwrap().slot.loc, 500);
        assert_eq!(index.newest(b"d").map(|s| s.loc), Some(500));
        assert_eq!(index.newest(b"c").map(|s| s.loc), Some(400));
        assert_eq!(index.by_hash.get(h).unwrap().slot.loc, 100);
        assert_eq!((index.live_keys, index.live_bytes), (3, 16));
        // A record naming a previous record that is not its key's newest
        // is still damage.
        let head = record(&mut region, 600, b"d", b"6", 100);
        assert!(index.apply(600, &head, b"d").is_err());
    }
}
