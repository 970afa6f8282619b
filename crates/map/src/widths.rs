//! The one atomic width a [`Region`](crate::Region) is accessed with.
//!
//! Rust's memory model forbids *mixed-size* atomic accesses that race when
//! one of them writes: an `AtomicU32` store into bytes a thread reads at
//! the same time with an 8-byte load (an atomic view of another width, or
//! [`Region::read_at`](crate::Region::read_at) copying word by word) is
//! undefined behaviour, even though every Linux target would only tear the
//! value. So a region has one width at a time:
//!
//! - the first atomic view (full or load-only) **claims** its width; a view
//!   of another width is refused with an error naming both widths;
//! - `read_at` (which takes `&self`, so it can run beside views) copies with
//!   relaxed atomics of the claimed width; while no width is claimed it
//!   copies with words and registers itself, and a claim waits for such
//!   copies to finish, so no copy of one width overlaps a view of another;
//! - `&mut self` proves no view is alive, so the claim can be dropped there
//!   ([`Region::release_atomic_width`](crate::Region::release_atomic_width)).
//!
//! Mixed-size *reads* are allowed, so two copies of different widths never
//! conflict; only a view that can store needs the claim, but load-only
//! views claim too, because a load of one width racing a store of another
//! through a second view is just as forbidden.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};

/// The width used when none is claimed: a machine word.
pub(crate) const WORD: Width = if size_of::<usize>() == 8 {
    Width::W8
} else {
    Width::W4
};

/// An atomic access width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Width {
    W1,
    W2,
    W4,
    W8,
}

impl Width {
    /// The width of `size`-byte atomics (1, 2, 4 or 8).
    pub(crate) const fn of(size: usize) -> Self {
        match size {
            1 => Self::W1,
            2 => Self::W2,
            4 => Self::W4,
            _ => Self::W8,
        }
    }

    /// Bytes per access.
    pub(crate) const fn bytes(self) -> usize {
        match self {
            Self::W1 => 1,
            Self::W2 => 2,
            Self::W4 => 4,
            Self::W8 => 8,
        }
    }

    /// The state code (never 0, which means unclaimed).
    const fn code(self) -> usize {
        match self {
            Self::W1 => 1,
            Self::W2 => 2,
            Self::W4 => 3,
            Self::W8 => 4,
        }
    }

    const fn from_code(code: usize) -> Option<Self> {
        match code {
            1 => Some(Self::W1),
            2 => Some(Self::W2),
            3 => Some(Self::W4),
            4 => Some(Self::W8),
            _ => None,
        }
    }
}

const CODE: usize = 0b111;
/// One unclaimed copy in flight, counted above the code bits.
const COPY: usize = 0b1000;

/// A region's claimed width and its unclaimed copies in flight.
#[derive(Debug, Default)]
pub(crate) struct AtomicWidth(AtomicUsize);

impl AtomicWidth {
    /// The claimed width, if any.
    pub(crate) fn get(&self) -> Option<Width> {
        Width::from_code(self.0.load(Acquire) & CODE)
    }

    /// Claims `width` for views; `Err(other)` when `other` is claimed.
    /// Waits for unclaimed copies in flight (each is one bounded memcpy).
    pub(crate) fn claim(&self, width: Width) -> Result<(), Width> {
        let mut state = self.0.load(Acquire);
        loop {
            if let Some(have) = Width::from_code(state & CODE) {
                return if have == width { Ok(()) } else { Err(have) };
            }
            if state >= COPY {
                std::thread::yield_now();
                state = self.0.load(Acquire);
                continue;
            }
            match self
                .0
                .compare_exchange_weak(state, width.code(), AcqRel, Acquire)
            {
                Ok(_) => return Ok(()),
                Err(now) => state = now,
            }
        }
    }

    /// Runs `copy` with the width to copy at: the claimed one, or [`WORD`]
    /// while none is claimed, during which no claim can succeed.
    pub(crate) fn with_copy_width<R>(&self, copy: impl FnOnce(Width) -> R) -> R {
        let mut state = self.0.load(Acquire);
        loop {
            if let Some(have) = Width::from_code(state & CODE) {
                return copy(have);
            }
            match self
                .0
                .compare_exchange_weak(state, state + COPY, AcqRel, Acquire)
            {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        let _done = Done(&self.0);
        copy(WORD)
    }

    /// Drops the claim; `&mut` proves no view or copy is running.
    pub(crate) fn reset(&mut self) {
        *self.0.get_mut() = 0;
    }
}

/// Unregisters an unclaimed copy when dropped, even if the copy unwinds.
struct Done<'a>(&'a AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(COPY, Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_claim_wins_and_reset_clears_it() {
        let mut w = AtomicWidth::default();
        assert_eq!(w.get(), None);
        assert_eq!(w.claim(Width::W4), Ok(()));
        assert_eq!(w.claim(Width::W4), Ok(()));
        assert_eq!(w.claim(Width::W8), Err(Width::W4));
        assert_eq!(w.with_copy_width(|x| x), Width::W4);
        w.reset();
        assert_eq!(w.with_copy_width(|x| x), WORD);
        assert_eq!(w.claim(Width::W1), Ok(()));
        assert_eq!(w.get(), Some(Width::W1));
    }

    #[test]
    fn a_claim_waits_for_an_unclaimed_copy() {
        let w = AtomicWidth::default();
        let (started, go) = (
            std::sync::Barrier::new(2),
            std::sync::atomic::AtomicBool::new(false),
        );
        std::thread::scope(|s| {
            s.spawn(|| {
                w.with_copy_width(|width| {
                    assert_eq!(width, WORD);
                    started.wait();
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    // The claim below cannot have succeeded yet.
                    assert_eq!(w.get(), None);
                    go.store(true, Release);
                });
            });
            started.wait();
            assert_eq!(w.claim(Width::W2), Ok(()));
            assert!(go.load(Acquire), "claimed while a copy was running");
        });
    }
}
