//! A fixed-size bit set: which granules start a live block.

/// One bit per granule.
#[derive(Debug, Clone)]
pub(crate) struct Bitmap {
    words: Vec<u64>,
}

impl Bitmap {
    /// `bits` bits, all clear.
    pub(crate) fn new(bits: usize) -> Self {
        Self {
            words: vec![0; bits.div_ceil(64)],
        }
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w >> (i % 64) & 1 == 1)
    }

    #[inline]
    pub(crate) fn set(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    #[inline]
    pub(crate) fn clear(&mut self, i: usize) {
        self.words[i / 64] &= !(1 << (i % 64));
    }

    /// Index of the highest set bit.
    pub(crate) fn last_set(&self) -> Option<usize> {
        let (w, word) = self
            .words
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| **w != 0)?;
        Some(w * 64 + 63 - word.leading_zeros() as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::Bitmap;

    #[test]
    fn set_get_clear_and_last() {
        let mut b = Bitmap::new(130);
        assert_eq!(b.last_set(), None);
        b.set(3);
        b.set(129);
        assert!(b.get(3) && b.get(129) && !b.get(4) && !b.get(1000));
        assert_eq!(b.last_set(), Some(129));
        b.clear(129);
        assert_eq!(b.last_set(), Some(3));
    }
}
