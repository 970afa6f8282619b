//! Consistent reads: a snapshot fixes a committed offset, and every read
//! through it answers as of that offset, however much is committed later.

use std::collections::VecDeque;
use std::ops::{Bound, ControlFlow, RangeBounds};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::generation::{Generation, Log};
use crate::index::{Damage, append_value, visible};

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

fn corrupt(g: &Generation) -> impl Fn(Damage) -> Error + '_ {
    move |d| Error::corrupt(&g.path, d.offset, d.what)
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
        let Some(slot) = log.index.at(g.words()?, key, at).map_err(corrupt(g))? else {
            return Ok(None);
        };
        let mut v = Vec::new();
        append_value(g.words()?, slot.loc, key.len(), slot.val_len, &mut v).map_err(corrupt(g))?;
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
        let mut from = owned(range.start_bound().cloned());
        let end = owned(range.end_bound().cloned());
        let mut pairs = Pairs::default();
        loop {
            let more = self.chunk(&from, &end, &mut pairs)?;
            if pairs.each(&mut f).is_break() {
                return Ok(());
            }
            match more {
                Some(last) => from = Bound::Excluded(last),
                None => return Ok(()),
            }
        }
    }

    /// Fills `out` with up to [`CHUNK`] pairs visible in this snapshot
    /// from `from` to `end`; returns the last key looked at if the range
    /// goes on. Keys come from the index; each value is copied once, from
    /// the mapping into `out`.
    fn chunk(
        &self,
        from: &Bound<Vec<u8>>,
        end: &Bound<Vec<u8>>,
        out: &mut Pairs,
    ) -> Result<Option<Vec<u8>>> {
        out.clear();
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
        if g.read_log().index.unsettled() {
            g.write_log().index.settle();
        }
        // Keys that turn up pending again from here on were first written
        // after this snapshot was taken, so it does not see them anyway.
        let log = g.read_log();
        let words = g.words()?;
        let mut looked = 0;
        let mut last = None;
        for (key, slot) in log.index.range(borrowed(from), borrowed(end)) {
            looked += 1;
            if let Some(rec) = visible(words, slot, self.at).map_err(corrupt(g))? {
                out.push_with(key, |values| {
                    append_value(words, rec.loc, key.len(), rec.val_len, values)
                })
                .map_err(corrupt(g))?;
            }
            if looked == CHUNK {
                last = Some(key.to_vec());
                break;
            }
        }
        Ok(last)
    }
}

/// Pairs copied out of the store, keys and values each in one buffer.
#[derive(Debug, Default)]
struct Pairs {
    keys: Vec<u8>,
    values: Vec<u8>,
    /// Where each pair's key and value end.
    ends: Vec<(usize, usize)>,
}

impl Pairs {
    fn clear(&mut self) {
        self.keys.clear();
        self.values.clear();
        self.ends.clear();
    }

    /// Adds `key` with the value `fill` appends to the values buffer.
    fn push_with<E>(
        &mut self,
        key: &[u8],
        fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mark = self.values.len();
        if let Err(e) = fill(&mut self.values) {
            self.values.truncate(mark);
            return Err(e);
        }
        self.keys.extend_from_slice(key);
        self.ends.push((self.keys.len(), self.values.len()));
        Ok(())
    }

    fn each(&self, mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>) -> ControlFlow<()> {
        let (mut k0, mut v0) = (0, 0);
        for &(k1, v1) in &self.ends {
            f(&self.keys[k0..k1], &self.values[v0..v1])?;
            (k0, v0) = (k1, v1);
        }
        ControlFlow::Continue(())
    }
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
        let mut pairs = Pairs::default();
        let more = self.snapshot.chunk(&self.from, &self.end, &mut pairs)?;
        let _ = pairs.each(|k, v| {
            self.buf.push_back((k.to_vec(), v.to_vec()));
            ControlFlow::Continue(())
        });
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
