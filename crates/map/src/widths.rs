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
//! - `&mut self` proves no view of that region is alive, so its hold on
//!   the claim can be dropped there
//!   ([`Region::release_atomic_width`](crate::Region::release_atomic_width),
//!   and on drop); the width is free again when no region holds it;
//! - every region that maps the same file, shm object or memfd (same device
//!   and inode) in this process shares one state, so two mappings of one
//!   object cannot mix widths either.
//!
//! Mixed-size *reads* are allowed, so two copies of different widths never
//! conflict; only a view that can store needs the claim, but load-only
//! views claim too, because a load of one width racing a store of another
//! through a second view is just as forbidden.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, PoisonError, Weak};

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
    const fn code(self) -> u64 {
        match self {
            Self::W1 => 1,
            Self::W2 => 2,
            Self::W4 => 3,
            Self::W8 => 4,
        }
    }

    const fn from_code(code: u64) -> Option<Self> {
        match code {
            1 => Some(Self::W1),
            2 => Some(Self::W2),
            3 => Some(Self::W4),
            4 => Some(Self::W8),
            _ => None,
        }
    }
}

/// Bits of the state word: the claimed width's code, the regions holding
/// the claim, and the copies running.
const CODE: u64 = 0b111;
const HOLDER: u64 = 1 << 3;
const HOLDERS: u64 = ((1 << 29) - 1) << 3;
const COPY: u64 = 1 << 32;

/// The width state of one object: every region of it in this process
/// shares one (`registry`), so two mappings of one file cannot take
/// views of different widths either.
#[derive(Debug, Default)]
struct State(AtomicU64);

/// The objects (device, inode) mapped in this process and their states.
static OBJECTS: Mutex<BTreeMap<(u64, u64), Weak<State>>> = Mutex::new(BTreeMap::new());

/// A region's view of its object's atomic width.
#[derive(Debug, Default)]
pub(crate) struct AtomicWidth {
    state: Arc<State>,
    /// Whether this region counts among the claim's holders.
    holding: AtomicBool,
}

impl AtomicWidth {
    /// The state of the mapped object `(dev, ino)`, shared with every other
    /// region of it in this process.
    pub(crate) fn of_object(key: (u64, u64)) -> Self {
        let mut objects = OBJECTS.lock().unwrap_or_else(PoisonError::into_inner);
        let state = if let Some(state) = objects.get(&key).and_then(Weak::upgrade) {
            state
        } else {
            objects.retain(|_, w| w.strong_count() > 0);
            let state = Arc::new(State::default());
            objects.insert(key, Arc::downgrade(&state));
            state
        };
        Self {
            state,
            holding: AtomicBool::new(false),
        }
    }

    /// The claimed width, if any.
    pub(crate) fn get(&self) -> Option<Width> {
        Width::from_code(self.state.0.load(Acquire) & CODE)
    }

    /// Claims `width` for this region's views; `Err(other)` when `other`
    /// is claimed (by this or another region of the object). Waits for
    /// copies in flight when nothing is claimed (each is one bounded copy).
    pub(crate) fn claim(&self, width: Width) -> Result<(), Width> {
        let cell = &self.state.0;
        if self.holding.load(Acquire) {
            // A holder keeps the width fixed.
            let have = Width::from_code(cell.load(Acquire) & CODE);
            return if have == Some(width) {
                Ok(())
            } else {
                Err(have.unwrap_or(width))
            };
        }
        let mut state = cell.load(Acquire);
        loop {
            let next = match Width::from_code(state & CODE) {
                Some(have) if have != width => return Err(have),
                Some(_) if state & HOLDERS == HOLDERS => return Err(width),
                Some(_) => state + HOLDER,
                None if state >= COPY => {
                    std::thread::yield_now();
                    state = cell.load(Acquire);
                    continue;
                }
                None => width.code() | HOLDER,
            };
            match cell.compare_exchange_weak(state, next, AcqRel, Acquire) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        if self.holding.swap(true, AcqRel) {
            // Another thread claimed for this region meanwhile: count once.
            cell.fetch_sub(HOLDER, Release);
        }
        Ok(())
    }

    /// Runs `copy` with the width to copy at: the claimed one, or [`WORD`]
    /// when none is. Unless this region holds the claim (which keeps it
    /// fixed), the copy counts itself in flight, so no claim of another
    /// width can start until it ends.
    pub(crate) fn with_copy_width<R>(&self, copy: impl FnOnce(Width) -> R) -> R {
        let cell = &self.state.0;
        if self.holding.load(Acquire) {
            let have = Width::from_code(cell.load(Acquire) & CODE);
            return copy(have.unwrap_or(WORD));
        }
        let state = cell.fetch_add(COPY, AcqRel);
        let _done = Done(cell);
        copy(Width::from_code(state & CODE).unwrap_or(WORD))
    }

    /// Drops this region's hold on the claim (`&mut` proves none of its
    /// views is alive); the width is free again once no region holds it.
    pub(crate) fn reset(&mut self) {
        if !std::mem::replace(self.holding.get_mut(), false) {
            return;
        }
        let cell = &self.state.0;
        let mut state = cell.load(Acquire);
        loop {
            let next = if state & HOLDERS == HOLDER {
                state & !(CODE | HOLDERS)
            } else {
                state - HOLDER
            };
            match cell.compare_exchange_weak(state, next, AcqRel, Acquire) {
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
    }
}

impl Drop for AtomicWidth {
    fn drop(&mut self) {
        self.reset();
    }
}

/// Ends a copy's time in flight when dropped, even if the copy unwinds.
struct Done<'a>(&'a AtomicU64);

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

    /// Two regions of one object share the claim: the second cannot take
    /// another width, copies through it run at the first's, and the width
    /// is free only when neither holds it.
    #[test]
    fn regions_of_one_object_share_one_width() {
        let key = (u64::MAX, u64::from(std::process::id()));
        let (mut a, mut b) = (AtomicWidth::of_object(key), AtomicWidth::of_object(key));
        let other = AtomicWidth::of_object((u64::MAX - 1, 0));
        assert_eq!(a.claim(Width::W4), Ok(()));
        assert_eq!(b.claim(Width::W8), Err(Width::W4));
        assert_eq!(b.with_copy_width(|x| x), Width::W4);
        assert_eq!(other.claim(Width::W8), Ok(()), "another object");
        assert_eq!(b.claim(Width::W4), Ok(()));
        a.reset();
        assert_eq!(b.get(), Some(Width::W4), "b still holds it");
        assert_eq!(a.claim(Width::W1), Err(Width::W4));
        b.reset();
        assert_eq!(a.get(), None);
        assert_eq!(a.claim(Width::W1), Ok(()));
        drop(a);
        assert_eq!(b.claim(Width::W8), Ok(()), "dropping released it");
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
