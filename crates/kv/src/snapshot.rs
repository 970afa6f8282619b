//! Consistent reads: a snapshot fixes a committed offset, and every read
//! through it answers as of that offset, however much is committed later.

use std::collections::VecDeque;
use std::ops::{Bound, ControlFlow, RangeBounds};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::RECORD_HEADER;
use crate::generation::{Generation, Log};
use crate::index::{Damage, Hit, append_value};
use crate::words::Words;

mod lend;

/// A consistent, unchanging view of a store as of one commit.
///
/// Taking one costs a few loads; holding one blocks no one (it keeps the
/// file it was taken on mapped, even if compaction replaces it).
#[derive(Debug, Clone)]
pub struct Snapshot {
    generation: Arc<Generation>,
    at: u64,
}

/// Keys (and their records) handed from the index to a scan per lock hold.
const CHUNK: usize = 1024;

/// Bytes of records lying back to back in the log that a scan copies out
/// of the mapping at once (and then hands to its caller): few enough to
/// stay in the L1 cache between the two.
const RUN: u64 = 8 << 10;

fn corrupt(g: &Generation) -> impl Fn(Damage) -> Error + '_ {
    move |d| g.damaged(d)
}

fn owned(b: Bound<&[u8]>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn borrowed(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The smallest key greater than every key starting with `prefix`, if any.
fn prefix_end(prefix: &[u8]) -> Bound<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Bound::Excluded(end);
        }
    }
    Bound::Unbounded
}

impl Snapshot {
    pub(crate) fn new(generation: Arc<Generation>, at: u64) -> Self {
        Self { generation, at }
    }

    /// The committed offset this snapshot reads at.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.at
    }

    pub(crate) fn lookup(
        g: &Generation,
        log: &Log,
        key: &[u8],
        at: u64,
    ) -> Result<Option<Vec<u8>>> {
        let words = g.words()?;
        let Some(slot) = log.index.at(words, key, at).map_err(corrupt(g))? else {
            return Ok(None);
        };
        let mut v = Vec::new();
        append_value(words, slot.loc, key.len(), slot.val_len, &mut v).map_err(corrupt(g))?;
        Ok(Some(v))
    }

    /// The value of `key` in this snapshot.
    ///
    /// # Errors
    ///
    /// Damaged bytes in the store.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let g = &*self.generation;
        let log = g.read_log();
        Self::lookup(g, &log, key, self.at)
    }

    /// Pairs with keys in `range`, in key order.
    pub fn range<'r>(&self, range: impl RangeBounds<&'r [u8]>) -> Iter {
        Iter {
            snapshot: self.clone(),
            from: owned(range.start_bound().cloned()),
            end: owned(range.end_bound().cloned()),
            buf: VecDeque::new(),
            done: false,
        }
    }

    /// Every pair, in key order.
    #[must_use]
    pub fn iter(&self) -> Iter {
        self.range(..)
    }

    /// Pairs whose key starts with `prefix`, in key order.
    #[must_use]
    pub fn prefix(&self, prefix: &[u8]) -> Iter {
        Iter {
            snapshot: self.clone(),
            from: Bound::Included(prefix.to_vec()),
            end: prefix_end(prefix),
            buf: VecDeque::new(),
            done: false,
        }
    }

    /// Calls `f` with each pair in `range`, in key order, until it breaks;
    /// no allocation per pair (the slices are reused buffers).
    ///
    /// # Errors
    ///
    /// Damaged bytes in the store.
    pub fn scan<'r>(
        &self,
        range: impl RangeBounds<&'r [u8]>,
        mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<()> {
        let g = &*self.generation;
        let mut record = Vec::new();
        self.chunks(range, |hits, words| {
            let mut rest = hits;
            while let Some(first) = rest.first() {
                // The records that follow `first` back to back in the log
                // (as a load in key order or a compaction writes them), up
                // to RUN bytes, come out in one copy.
                let mut stop = first.end();
                let mut n = 1;
                while let Some(next) = rest.get(n) {
                    if next.loc != stop || stop - first.loc > RUN {
                        break;
                    }
                    stop = next.end();
                    n += 1;
                }
                let run;
                (run, rest) = rest.split_at(n);
                let Ok(bytes) =
                    words.copy(first.loc as usize, (stop - first.loc) as usize, &mut record)
                else {
                    // Some record reaches past the mapping: copy them one
                    // by one to name it, the pairs before it delivered.
                    for hit in run {
                        let (key, value) = read(hit, g, words, &mut record)?;
                        if f(key, value).is_break() {
                            return Ok(ControlFlow::Break(()));
                        }
                    }
                    continue;
                };
                for hit in run {
                    let at = (hit.loc - first.loc) as usize + RECORD_HEADER;
                    let key_len = hit.key_len as usize;
                    let (key, value) =
                        bytes[at..at + key_len + hit.val_len as usize].split_at(key_len);
                    if f(key, value).is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
            }
            Ok(ControlFlow::Continue(()))
        })
    }

    /// Walks `range` one chunk of the index at a time: `each` gets the
    /// records of up to [`CHUNK`] visible keys, in key order, and the
    /// mapping's words, outside the index's lock, and says whether to go
    /// on.
    fn chunks<'r>(
        &self,
        range: impl RangeBounds<&'r [u8]>,
        mut each: impl FnMut(&[Hit], Words<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let mut from = owned(range.start_bound().cloned());
        let end = owned(range.end_bound().cloned());
        let mut hits = Vec::new();
        loop {
            let more = self.locate(&from, &end, &mut hits)?;
            if each(&hits, self.generation.words()?)?.is_break() {
                return Ok(());
            }
            match more {
                Some(last) => from = Bound::Excluded(last),
                None => return Ok(()),
            }
        }
    }

    /// Fills `hits` with the records of up to [`CHUNK`] keys visible in
    /// this snapshot from `from` to `end`; returns the last key looked at
    /// if the range goes on. Only this walk of the index holds the index's
    /// lock: the records are copied out of the mapping after it (bytes
    /// below the snapshot's position never change), so the caller's code
    /// never runs under the lock.
    fn locate(
        &self,
        from: &Bound<Vec<u8>>,
        end: &Bound<Vec<u8>>,
        hits: &mut Vec<Hit>,
    ) -> Result<Option<Vec<u8>>> {
        hits.clear();
        if let (Bound::Excluded(a) | Bound::Included(a), Bound::Excluded(b) | Bound::Included(b)) =
            (from, end)
        {
            if a > b
                || (a == b
                    && !(matches!(from, Bound::Included(_)) && matches!(end, Bound::Included(_))))
            {
                return Ok(None);
            }
        }
        let g = &*self.generation;
        let mut log = g.read_log();
        if log.index.unsettled() {
            drop(log);
            g.write_log().index.settle();
            log = g.read_log();
        }
        // Keys that turn up pending again from here on were first written
        // after this snapshot was taken, so it does not see them anyway.
        let last = log
            .index
            .visible_in(
                g.words()?,
                borrowed(from),
                borrowed(end),
                self.at,
                CHUNK,
                hits,
            )
            .map_err(corrupt(g))?;
        Ok(last.map(<[u8]>::to_vec))
    }
}

/// Copies the key and value of `hit` (adjacent in the log) into `record`
/// in one copy; returns them.
#[inline]
fn read<'b>(
    hit: &Hit,
    g: &Generation,
    words: Words<'_>,
    record: &'b mut Vec<u8>,
) -> Result<(&'b [u8], &'b [u8])> {
    let key_len = hit.key_len as usize;
    let bytes = words
        .copy(
            hit.loc as usize + RECORD_HEADER,
            key_len + hit.val_len as usize,
            record,
        )
        .map_err(|e| Error::corrupt(&g.path, hit.loc, format!("record unreadable: {e}")))?;
    Ok(bytes.split_at(key_len))
}

/// An iterator over a snapshot's pairs in key order, from
/// [`Snapshot::range`], [`Snapshot::iter`] or [`Snapshot::prefix`].
#[derive(Debug)]
pub struct Iter {
    snapshot: Snapshot,
    from: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    buf: VecDeque<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl Iter {
    fn refill(&mut self) -> Result<()> {
        let mut hits = Vec::new();
        let more = self.snapshot.locate(&self.from, &self.end, &mut hits)?;
        let g = &*self.snapshot.generation;
        let words = g.words()?;
        let mut record = Vec::new();
        for hit in &hits {
            let (key, value) = read(hit, g, words, &mut record)?;
            self.buf.push_back((key.to_vec(), value.to_vec()));
        }
        match more {
            Some(last) => self.from = Bound::Excluded(last),
            None => self.done = true,
        }
        Ok(())
    }
}

impl IntoIterator for &Snapshot {
    type Item = Result<(Vec<u8>, Vec<u8>)>;
    type IntoIter = Iter;

    fn into_iter(self) -> Iter {
        self.iter()
    }
}

impl Iterator for Iter {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.buf.is_empty() && !self.done {
            if let Err(e) = self.refill() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_past_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Bound::Excluded(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Bound::Excluded(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), Bound::Unbounded);
        assert_eq!(prefix_end(b""), Bound::Unbounded);
    }
}
