//! The in-memory index every handle keeps of the log it has read: where
//! each key's newest record lies. A handle builds it once when it opens the
//! store and then extends it from the offset it last saw, one committed
//! group at a time, so no reader ever replays what it has already read.
//!
//! Point lookups go through a hash table keyed by a 64-bit hash of the key
//! (the key itself is compared against the record in the mapping, so a
//! hash collision only sends the second key to a small spill table);
//! ordered scans go through a `BTreeMap`. Each record names the record it
//! replaced (`prev`), so a reader can look up a key as of any earlier
//! committed offset — a snapshot — by walking back from the newest record.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use memio_map::Region;

use crate::format::{DELETE, MAX_KEY, MAX_VALUE, PUT, RECORD_HEADER, RecordHeader};

/// Passes a key's 64-bit hash through unchanged (it is already a hash).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Ident(u64);

impl Hasher for Ident {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys are hashed")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A record found in the mapping: its offset, header and key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    pub loc: u64,
    pub head: RecordHeader,
}

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
pub(crate) fn read_header(map: &Region, loc: u64) -> Result<RecordHeader, Damage> {
    let mut b = [0; RECORD_HEADER];
    let at = usize::try_from(loc).map_err(|_| damage(loc, "offset out of range"))?;
    map.read_at(at, &mut b)
        .map_err(|e| damage(loc, format!("record header unreadable: {e}")))?;
    Ok(RecordHeader::parse(&b))
}

/// The header of the record at `loc` if it holds `key`: header and key
/// read in one copy when the key is short.
/// Reads past the record's end stay below `limit` (the end of the log
/// read so far), so they never reach past the file.
fn read_if_key(
    map: &Region,
    loc: u64,
    key: &[u8],
    limit: u64,
) -> Result<Option<RecordHeader>, Damage> {
    let n = RECORD_HEADER + key.len();
    if key.len() > 48 || loc + n as u64 > limit {
        let head = read_header(map, loc)?;
        return Ok(key_matches(map, loc, &head, key)?.then_some(head));
    }
    let mut buf = [0u8; RECORD_HEADER + 48];
    map.read_at(loc as usize, &mut buf[..n])
        .map_err(|e| damage(loc, format!("record unreadable: {e}")))?;
    let head = RecordHeader::parse(&buf);
    Ok((usize::from(head.key_len) == key.len() && buf[RECORD_HEADER..n] == *key).then_some(head))
}

/// Whether the record at `loc` (header `head`) holds `key`.
fn key_matches(map: &Region, loc: u64, head: &RecordHeader, key: &[u8]) -> Result<bool, Damage> {
    if usize::from(head.key_len) != key.len() {
        return Ok(false);
    }
    let mut buf = [0u8; 64];
    let start = loc as usize + RECORD_HEADER;
    let mut done = 0;
    while done < key.len() {
        let n = (key.len() - done).min(buf.len());
        map.read_at(start + done, &mut buf[..n])
            .map_err(|e| damage(loc, format!("key unreadable: {e}")))?;
        if buf[..n] != key[done..done + n] {
            return Ok(false);
        }
        done += n;
    }
    Ok(true)
}

/// Reads the value of the record at `loc` (header `head`) into `out`.
pub(crate) fn read_value(
    map: &Region,
    loc: u64,
    head: &RecordHeader,
    out: &mut Vec<u8>,
) -> Result<(), Damage> {
    out.clear();
    out.resize(head.val_len as usize, 0);
    let at = loc as usize + RECORD_HEADER + usize::from(head.key_len);
    map.read_at(at, out)
        .map_err(|e| damage(loc, format!("value unreadable: {e}")))
}

/// Where each key's newest record lies, and counts for `stats`.
#[derive(Debug)]
pub(crate) struct Index {
    seed: u64,
    /// End of the log read so far: records lie below it.
    pub limit: u64,
    by_hash: HashMap<u64, u64, BuildHasherDefault<Ident>>,
    spill: HashMap<Box<[u8]>, u64>,
    ordered: BTreeMap<Box<[u8]>, u64>,
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
            limit: 0,
            by_hash: HashMap::default(),
            spill: HashMap::new(),
            ordered: BTreeMap::new(),
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

    /// The newest record of `key`, put or delete.
    pub fn newest(&self, map: &Region, key: &[u8]) -> Result<Option<Found>, Damage> {
        let Some(&loc) = self.by_hash.get(&self.hash(key)) else {
            return Ok(None);
        };
        if let Some(head) = read_if_key(map, loc, key, self.limit)? {
            return Ok(Some(Found { loc, head }));
        }
        match self.spill.get(key) {
            Some(&loc) => Ok(Some(Found {
                loc,
                head: read_header(map, loc)?,
            })),
            None => Ok(None),
        }
    }

    /// The record of `key` as of committed offset `at`: the newest one
    /// that starts below `at`, if it is a put.
    pub fn at(&self, map: &Region, key: &[u8], at: u64) -> Result<Option<Found>, Damage> {
        let Some(found) = self.newest(map, key)? else {
            return Ok(None);
        };
        resolve(map, found, at)
    }

    /// Records that `key`'s newest record is now `rec` at `loc`, after
    /// checking that the record names the one it replaces.
    pub fn apply(
        &mut self,
        map: &Region,
        loc: u64,
        rec: &RecordHeader,
        key: &[u8],
    ) -> Result<(), Damage> {
        if rec.kind != PUT && rec.kind != DELETE {
            return Err(damage(loc, format!("unknown record kind {}", rec.kind)));
        }
        if usize::from(rec.key_len) > MAX_KEY || rec.val_len as usize > MAX_VALUE {
            return Err(damage(loc, "record larger than the format allows"));
        }
        let old = self.newest(map, key)?;
        let expect = old.map_or(0, |f| f.loc);
        if rec.prev != expect {
            return Err(damage(
                loc,
                format!(
                    "record names {} as the key's previous record, the log says {expect}",
                    rec.prev
                ),
            ));
        }
        if let Some(f) = old.filter(|f| f.head.kind == PUT) {
            self.live_keys -= 1;
            self.live_bytes -= u64::from(f.head.key_len) + u64::from(f.head.val_len);
            self.live_record_bytes -= f.head.len() as u64;
        }
        if rec.kind == PUT {
            self.live_keys += 1;
            self.live_bytes += u64::from(rec.key_len) + u64::from(rec.val_len);
            self.live_record_bytes += rec.len() as u64;
        }
        let h = self.hash(key);
        match old {
            Some(f) if self.by_hash.get(&h) == Some(&f.loc) => {
                self.by_hash.insert(h, loc);
            }
            Some(_) => {
                self.spill.insert(key.into(), loc);
            }
            None => {
                if let std::collections::hash_map::Entry::Vacant(e) = self.by_hash.entry(h) {
                    e.insert(loc);
                } else {
                    self.spill.insert(key.into(), loc);
                }
            }
        }
        match self.ordered.get_mut(key) {
            Some(l) => *l = loc,
            None => {
                self.ordered.insert(key.into(), loc);
            }
        }
        Ok(())
    }

    /// Up to `max` keys from `from` (inclusive or not) to `end`, with the
    /// location of their newest records.
    pub fn range(
        &self,
        from: std::ops::Bound<&[u8]>,
        end: std::ops::Bound<&[u8]>,
    ) -> std::collections::btree_map::Range<'_, Box<[u8]>, u64> {
        self.ordered.range::<[u8], _>((from, end))
    }
}

/// Walks back from `found` to the newest record below `at`; `None` if that
/// is a delete or there is none.
pub(crate) fn resolve(map: &Region, mut found: Found, at: u64) -> Result<Option<Found>, Damage> {
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
