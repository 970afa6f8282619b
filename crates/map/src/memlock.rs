//! Process-wide memory locking: `mlockall` with a guard.
//!
//! Per-range locks live on [`Region::lock`](crate::Region::lock); this module
//! locks everything the process maps, for real-time code that must never
//! take a page fault on a swapped-out page.

use std::io;

use rustix::mm::{MlockAllFlags, mlockall, munlockall};

use crate::error::memlock_error;

/// Which pages [`lock_all`] locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LockAll {
    /// `MCL_CURRENT`: every page mapped now.
    Current,
    /// `MCL_FUTURE`: every page mapped from now on.
    Future,
    /// `MCL_CURRENT | MCL_FUTURE`.
    CurrentAndFuture,
    /// `MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT`: lock pages as they are
    /// touched rather than faulting everything in now.
    OnFault,
}

/// Keeps the process's memory locked; `munlockall` when dropped.
#[derive(Debug)]
#[must_use = "memory is unlocked as soon as the guard drops"]
pub struct LockAllGuard {
    _private: (),
}

impl Drop for LockAllGuard {
    fn drop(&mut self) {
        let _ = munlockall();
    }
}

/// Locks the process's pages in memory until the guard drops.
///
/// Locking counts against `RLIMIT_MEMLOCK` (8 MiB by default for normal
/// users) unless the process has `CAP_IPC_LOCK`; an ordinary program maps
/// more than that, so `Current` usually needs the capability.
///
/// # Errors
///
/// `ENOMEM`/`EPERM` past `RLIMIT_MEMLOCK`: the message names the limit.
///
/// # References
/// - [mlockall(2)](https://man7.org/linux/man-pages/man2/mlockall.2.html)
#[doc(alias = "mlockall")]
pub fn lock_all(which: LockAll) -> io::Result<LockAllGuard> {
    let flags = match which {
        LockAll::Current => MlockAllFlags::CURRENT,
        LockAll::Future => MlockAllFlags::FUTURE,
        LockAll::CurrentAndFuture => MlockAllFlags::CURRENT | MlockAllFlags::FUTURE,
        LockAll::OnFault => MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT,
    };
    mlockall(flags).map_err(|e| memlock_error(&e.into(), "failed to lock all memory"))?;
    Ok(LockAllGuard { _private: () })
}

// Tested in tests/cross_process.rs: mlockall changes the whole process, so
// it runs in a forked child there rather than beside other unit tests.
