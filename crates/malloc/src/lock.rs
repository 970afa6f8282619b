//! A spin lock that never allocates, for the few global structures (heap
//! pool, segment list, large-block cache). Each is held for a handful of
//! instructions or one system call; waiters yield the processor after a
//! short spin. The fork handlers take every one of them, so no child is
//! born with a lock some vanished thread held.
//!
//! # Safety
//!
//! The lock guards an `UnsafeCell`; a `Guard` exists only while the flag
//! is held, so at most one `&mut T` exists at a time.
#![allow(unsafe_code, reason = "a lock around an UnsafeCell")]

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// A value behind a spin lock.
pub(crate) struct SpinLock<T> {
    held: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one holder at a time, so sharing
// the lock between threads shares `T` as a `Mutex` does.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self {
            held: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, spinning then yielding while another holds it.
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        self.acquire();
        Guard { lock: self }
    }

    /// Takes the lock if it is free.
    pub(crate) fn try_lock(&self) -> Option<Guard<'_, T>> {
        // `then`, not `then_some`: a guard built for a failed attempt
        // would release the holder's lock when dropped.
        self.held
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            .then(|| Guard { lock: self })
    }

    /// Takes the lock without a guard (the fork handler's `prepare`).
    pub(crate) fn acquire(&self) {
        let mut spins = 0u32;
        while self
            .held
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.held.load(Ordering::Relaxed) {
                spins += 1;
                if spins < 64 {
                    core::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Releases a lock taken by [`SpinLock::acquire`] (the fork handlers'
    /// `parent` and `child`). Releasing a lock nobody holds does nothing
    /// harmful: the next `acquire` simply succeeds.
    pub(crate) fn release(&self) {
        self.held.store(false, Ordering::Release);
    }
}

/// Holds a [`SpinLock`] until dropped.
pub(crate) struct Guard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: holding the guard means holding the lock, so no `&mut T`
        // exists elsewhere.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` keeps this the only one.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.lock.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_try_lock_leaves_the_holder_holding() {
        let lock = SpinLock::new(0u32);
        let held = lock.lock();
        assert!(lock.try_lock().is_none());
        assert!(
            lock.try_lock().is_none(),
            "the failed attempt released the lock"
        );
        drop(held);
        let mut g = lock.try_lock().expect("free again");
        *g += 1;
        drop(g);
        assert_eq!(*lock.lock(), 1);
    }
}
