//! Copies out of a store's mapping through its 8-byte words.
//!
//! Another process may write the file while this one reads it, so bytes
//! come out of the mapping only through atomic loads. [`Region::read_at`]
//! does that too, but also takes and drops a count on the region's shared
//! width state around every copy (two atomic read-modify-writes): more than
//! half the cost of a scan, which copies one short value per key. Here the
//! mapping is taken once as a slice of load-only words, and a copy is a run
//! of plain relaxed 8-byte loads. An aligned word never crosses a page, so
//! the words a copy touches lie in the pages its bytes lie in.
//!
//! # Safety
//!
//! [`Words::lend`] is the one exception: an `unsafe fn` that hands out the
//! mapping's bytes as a plain slice, for callers that vouch nothing writes
//! them.
#![allow(unsafe_code, reason = "Words::lend: a plain slice of the mapping")]

use std::io;

use memio_map::{LoadOnlyU64, Region};

/// A store's mapping as load-only 8-byte words.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Words<'a>(&'a [LoadOnlyU64]);

impl<'a> Words<'a> {
    /// The words of `map` (page-aligned, so 8-aligned).
    pub fn of(map: &'a Region) -> io::Result<Self> {
        map.as_load_only_u64s().map(Self)
    }

    /// The words holding bytes `at..at + n`.
    #[inline]
    fn span(&self, at: usize, n: usize) -> io::Result<&'a [LoadOnlyU64]> {
        match at.checked_add(n) {
            Some(end) if end <= self.0.len() * 8 => Ok(&self.0[at / 8..end.div_ceil(8)]),
            _ => Err(self.past_end(at, n)),
        }
    }

    #[cold]
    fn past_end(&self, at: usize, n: usize) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "bytes {at}..{} lie past the {}-byte mapping",
                at.saturating_add(n),
                self.0.len() * 8
            ),
        )
    }

    /// Appends the `n` bytes from `at` to `out`.
    ///
    /// # Errors
    ///
    /// The bytes reach past the mapping.
    pub fn append(&self, at: usize, n: usize, out: &mut Vec<u8>) -> io::Result<()> {
        self.span(at, n)?;
        let old = out.len();
        out.resize(old + n, 0);
        self.read_at(at, &mut out[old..])
    }

    /// Copies the whole words holding bytes `at..at + n` into `buf`, which
    /// grows as needed and never shrinks (so a buffer reused from copy to
    /// copy is sized once); returns those `n` bytes of it. Cheaper than
    /// [`read_at`](Self::read_at) for short copies: no partial words at
    /// either end, only aligned word loads and 8-byte stores.
    ///
    /// # Errors
    ///
    /// The bytes reach past the mapping.
    #[inline]
    pub fn copy<'b>(&self, at: usize, n: usize, buf: &'b mut Vec<u8>) -> io::Result<&'b [u8]> {
        let words = self.span(at, n)?;
        let len = words.len() * 8;
        if buf.len() < len {
            buf.resize(len, 0);
        }
        for (chunk, word) in buf[..len].chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.load().to_ne_bytes());
        }
        let skip = at % 8;
        Ok(&buf[skip..skip + n])
    }

    /// The `n` bytes from `at`, lent from the mapping.
    ///
    /// # Errors
    ///
    /// The bytes reach past the mapping.
    ///
    /// # Safety
    ///
    /// Nothing writes these bytes while the slice lives (no thread, no
    /// other process, no `write(2)` to the file), and the file reaches past
    /// them (a page past its end raises `SIGBUS` when touched).
    #[inline]
    pub unsafe fn lend(&self, at: usize, n: usize) -> io::Result<&'a [u8]> {
        self.span(at, n)?;
        let start = self.0.as_ptr().cast::<u8>().wrapping_add(at);
        // SAFETY: `at..at + n` lies inside the mapping (`span` checked),
        // which `'a` keeps mapped; the caller vouches that the bytes exist
        // in the file and do not change while the slice lives. A
        // `LoadOnlyU64` is a transparent `AtomicU64`, whose bytes may be
        // read as plain bytes when no write races with the read.
        Ok(unsafe { std::slice::from_raw_parts(start, n) })
    }

    /// The word holding byte `at`, or 0 past the mapping: a load whose
    /// only use is to bring that word's cache line in.
    #[inline]
    pub fn touch(&self, at: usize) -> u64 {
        self.0.get(at / 8).map_or(0, LoadOnlyU64::load)
    }

    /// Copies the bytes from `at` into `out`.
    ///
    /// # Errors
    ///
    /// The bytes reach past the mapping.
    pub fn read_at(&self, at: usize, out: &mut [u8]) -> io::Result<()> {
        let words = self.span(at, out.len())?;
        let skip = at % 8;
        let Some((head, rest)) = words.split_first() else {
            return Ok(());
        };
        let n = (8 - skip).min(out.len());
        out[..n].copy_from_slice(&head.load().to_ne_bytes()[skip..skip + n]);
        let mut chunks = out[n..].chunks_exact_mut(8);
        let mut rest = rest.iter();
        for (chunk, word) in (&mut chunks).zip(&mut rest) {
            chunk.copy_from_slice(&word.load().to_ne_bytes());
        }
        let tail = chunks.into_remainder();
        if let Some(word) = rest.next() {
            let len = tail.len();
            tail.copy_from_slice(&word.load().to_ne_bytes()[..len]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_match_the_bytes_at_any_offset_and_length() {
        let mut region = Region::anonymous(4096).unwrap();
        let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7 + i / 256) as u8).collect();
        region.write_at(0, &bytes).unwrap();
        let words = Words::of(&region).unwrap();
        for at in [0, 1, 5, 8, 13, 4000] {
            for n in [0, 1, 3, 8, 9, 17, 96] {
                let mut out = vec![0; n];
                words.read_at(at, &mut out).unwrap();
                assert_eq!(out, bytes[at..at + n], "at {at}, {n} bytes");
            }
        }
        let mut grown = b"ab".to_vec();
        words.append(13, 30, &mut grown).unwrap();
        assert_eq!(grown[2..], bytes[13..43]);
        assert_eq!(&grown[..2], b"ab");
        assert!(words.read_at(4090, &mut [0; 7]).is_err());
        assert!(words.append(4090, 7, &mut grown).is_err());
        let mut buf = Vec::new();
        for at in [0, 1, 7, 8, 13, 4000] {
            for n in [0, 1, 3, 8, 9, 17, 96] {
                let got = words.copy(at, n, &mut buf).unwrap();
                assert_eq!(got, &bytes[at..at + n], "at {at}, {n} bytes");
            }
        }
        assert_eq!(words.copy(4096, 0, &mut buf).unwrap(), b"");
        assert!(words.copy(4090, 7, &mut buf).is_err());
        assert!(words.copy(usize::MAX, 2, &mut buf).is_err());
        assert!(words.read_at(usize::MAX, &mut [0; 2]).is_err());
    }
}
