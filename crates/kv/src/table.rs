//! The index's hash table: a key's 64-bit hash to its id and a copy of its
//! newest record's slot, in one flat array probed linearly.
//!
//! A general hash table (hashbrown, std's) keeps its control bytes apart
//! from its entries: a lookup in a table far larger than the cache misses
//! twice, once for the control group and once, after it, for the entry.
//! Here an entry holds the hash itself, so a lookup usually misses once
//! (at most three quarters full, a key lies about a place and a half past
//! its home on average, mostly in the home's cache line or the next), and
//! the address of that miss is known from the hash alone:
//! [`Table::prefetch`] asks for the lines of many keys at once, their
//! misses overlapping, before the lookups that need them.
//!
//! The table only grows: the index never forgets a key (a deleted key
//! keeps a slot saying so), and each hash is filed once (a second key with
//! the same hash goes to the index's spill table). It is kept at most
//! three quarters full. Its memory comes from [`HugePageAlloc`], so past
//! 2 MiB it gets transparent huge pages and a lookup seldom misses the TLB
//! too.
//!
//! # Safety
//!
//! The one unsafe call is a prefetch hint ([`prefetch`]): it neither reads
//! nor writes memory the program sees and never faults.
#![allow(unsafe_code, reason = "a prefetch hint")]

use allocator_api2::vec::Vec;
use memio_map::HugePageAlloc;

use crate::index::Slot;

/// A hash table entry: the id of the first key with that hash, and a copy
/// of its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cached {
    pub id: u32,
    pub slot: Slot,
}

/// One place of the table; `h == 0` marks it empty (hash 0 itself is
/// kept apart, in [`Table::zero`]).
#[derive(Debug, Clone, Copy)]
struct Entry {
    h: u64,
    cached: Cached,
}

const EMPTY: Entry = Entry {
    h: 0,
    cached: Cached {
        id: 0,
        slot: Slot {
            loc: 0,
            val_len: 0,
            key_len: 0,
            kind: 0,
        },
    },
};

const _: () = assert!(size_of::<Entry>() == 32, "two entries a cache line");

/// The table: hashes to [`Cached`] entries.
#[derive(Debug)]
pub(crate) struct Table {
    /// A power of two places (or none yet).
    entries: Vec<Entry, HugePageAlloc>,
    /// Entries in `entries`.
    len: usize,
    /// The entry of hash 0, which `entries` cannot hold.
    zero: Option<Cached>,
}

impl Table {
    pub fn new() -> Self {
        Self {
            entries: Vec::new_in(HugePageAlloc),
            len: 0,
            zero: None,
        }
    }

    /// Where the probe for `h` starts.
    #[inline]
    fn home(&self, h: u64) -> usize {
        // The hash's low bits are as good as its high ones (see
        // `Index::hash`).
        h as usize & (self.entries.len().wrapping_sub(1))
    }

    /// Probes for nonzero hash `h` from its home: `Ok` with the place
    /// filed under it, or `Err` with the empty place that ends the probe
    /// (the table is never full, so there is one).
    ///
    /// The table has places.
    #[inline]
    fn probe(&self, h: u64) -> Result<usize, usize> {
        let mask = self.entries.len() - 1;
        let mut i = self.home(h);
        loop {
            match self.entries[i].h {
                e if e == h => return Ok(i),
                0 => return Err(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// The place filed under nonzero `h`, if any.
    #[inline]
    fn find(&self, h: u64) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        self.probe(h).ok()
    }

    /// The entry filed under `h`.
    #[inline]
    pub fn get(&self, h: u64) -> Option<&Cached> {
        if h == 0 {
            return self.zero.as_ref();
        }
        self.find(h).map(|i| &self.entries[i].cached)
    }

    /// The entry filed under `h`, to change.
    #[inline]
    pub fn get_mut(&mut self, h: u64) -> Option<&mut Cached> {
        if h == 0 {
            return self.zero.as_mut();
        }
        self.find(h).map(|i| &mut self.entries[i].cached)
    }

    /// Files `cached` under `h` unless something is filed there already;
    /// whether it did.
    pub fn insert_new(&mut self, h: u64, cached: Cached) -> bool {
        if h == 0 {
            if self.zero.is_some() {
                return false;
            }
            self.zero = Some(cached);
            return true;
        }
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.grow();
        }
        match self.probe(h) {
            Ok(_) => false,
            Err(i) => {
                self.entries[i] = Entry { h, cached };
                self.len += 1;
                true
            }
        }
    }

    /// Doubles the places (at least 1,024) and files every entry again.
    fn grow(&mut self) {
        let places = (self.entries.len() * 2).max(1024);
        let mut bigger = Vec::with_capacity_in(places, HugePageAlloc);
        bigger.resize(places, EMPTY);
        let old = std::mem::replace(&mut self.entries, bigger);
        for e in old.iter().filter(|e| e.h != 0) {
            // Each hash is filed once: the probe ends at an empty place.
            if let Err(i) = self.probe(e.h) {
                self.entries[i] = *e;
            }
        }
    }

    /// Asks for the place where the probe for `h` starts, and the cache
    /// line after it, to be brought into the cache, for a lookup soon
    /// after. (Near three quarters full, a key lies a place or two past
    /// its home on average, so often in the next line.)
    #[inline]
    pub fn prefetch(&self, h: u64) {
        if h == 0 || self.entries.is_empty() {
            return;
        }
        let home = self.home(h);
        prefetch(&self.entries[home]);
        // Two entries a line: the first place of the next line.
        prefetch(&self.entries[((home | 1) + 1) & (self.entries.len() - 1)]);
    }
}

/// Asks the CPU to bring the cache line holding `value` in, without
/// waiting for it: a program's later loads find it there. Unlike a load,
/// a prefetch leaves nothing behind that must wait for the data, so the
/// misses of many prefetches in a row overlap.
#[inline]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a hint: `_mm_prefetch` reads nothing the program sees and
    // does not fault, whatever the address; SSE is part of x86-64.
    unsafe {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::PUT;
    use std::collections::HashMap;

    fn cached(id: u32) -> Cached {
        Cached {
            id,
            slot: Slot {
                loc: u64::from(id) * 10,
                val_len: id,
                key_len: 1,
                kind: PUT,
            },
        }
    }

    #[test]
    fn the_table_agrees_with_a_map_through_growth_collisions_and_hash_zero() {
        let mut table = Table::new();
        let mut model = HashMap::new();
        // Hashes that share their low bits probe past each other (all of
        // the first 5,000 start at place 0: deliberately long runs); 0 is
        // kept apart; many entries make the table grow several times.
        let mut hashes: std::vec::Vec<u64> = (1..5000u64).map(|i| i << 32).collect();
        hashes.extend((1..5000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        hashes.push(0);
        for (n, &h) in hashes.iter().enumerate() {
            let fresh = !model.contains_key(&h);
            assert_eq!(table.insert_new(h, cached(n as u32)), fresh);
            model.entry(h).or_insert(cached(n as u32));
        }
        for (&h, c) in &model {
            assert_eq!(table.get(h), Some(c));
            table.prefetch(h);
        }
        assert_eq!(table.get(7), None);
        // A second insert under a hash changes nothing; get_mut does.
        assert!(!table.insert_new(0, cached(99)));
        table.get_mut(0).unwrap().slot.loc = 1234;
        assert_eq!(table.get(0).unwrap().slot.loc, 1234);
        table.get_mut(hashes[3]).unwrap().id = 77;
        assert_eq!(table.get(hashes[3]).unwrap().id, 77);
        assert!(table.get_mut(7).is_none());
        assert!(table.len * 4 <= table.entries.len() * 3);
    }

    #[test]
    fn an_empty_table_finds_nothing() {
        let mut table = Table::new();
        assert_eq!(table.get(5), None);
        assert!(table.get_mut(5).is_none());
        table.prefetch(5);
        assert_eq!(table.get(0), None);
    }
}
