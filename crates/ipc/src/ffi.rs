//! Helpers for the libc calls of this crate: deadlines as the kernel wants
//! them, retrying calls a signal interrupted, and reading `/proc/sys` limits.

use std::io;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Converts a monotonic `deadline` to the absolute `CLOCK_REALTIME`
/// timespec that `mq_timedsend`, `mq_timedreceive` and `sem_timedwait`
/// take. A deadline in the past gives the current time, so the call
/// returns `ETIMEDOUT` at once when it would block.
pub(crate) fn realtime_deadline(deadline: Instant) -> libc::timespec {
    let left = deadline.saturating_duration_since(Instant::now());
    // SystemTime is CLOCK_REALTIME (through the C library, which also
    // keeps this working under valgrind, where there is no vDSO).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let at = now.saturating_add(left);
    libc::timespec {
        tv_sec: libc::time_t::try_from(at.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(at.subsec_nanos()),
    }
}

/// The time left until `deadline` as a relative timespec (for
/// `semtimedop`), zero when it has passed.
pub(crate) fn relative_timeout(deadline: Instant) -> libc::timespec {
    let left = deadline.saturating_duration_since(Instant::now());
    libc::timespec {
        tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(left.subsec_nanos()),
    }
}

/// Runs `call` (a libc call returning -1 and setting errno on failure)
/// until a signal no longer interrupts it.
pub(crate) fn retry<T: PartialEq + From<i8> + Copy>(mut call: impl FnMut() -> T) -> io::Result<T> {
    loop {
        let r = call();
        if r != T::from(-1) {
            return Ok(r);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Reads a number from a `/proc/sys` file.
pub(crate) fn read_limit(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn past_deadlines_become_now() {
        let ts = relative_timeout(
            Instant::now()
                .checked_sub(Duration::from_secs(1))
                .unwrap_or_else(Instant::now),
        );
        assert_eq!((ts.tv_sec, ts.tv_nsec), (0, 0));
        let abs = realtime_deadline(Instant::now() + Duration::from_secs(10));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(abs.tv_sec >= libc::time_t::try_from(now.as_secs()).unwrap() + 9);
    }
}
