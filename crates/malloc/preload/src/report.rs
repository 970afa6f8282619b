//! Text for standard error without allocating: a fixed buffer on the
//! stack, filled with bytes and right-aligned numbers, written with
//! `write(2)`.
//!
//! # Safety
//!
//! `write(2)` reads the buffer's initialised bytes, which it borrows for
//! the call only.
#![allow(unsafe_code, reason = "write(2) on standard error")]

use core::sync::atomic::{AtomicI32, Ordering};

/// A line-sized stack buffer; text past its end is dropped.
pub(crate) struct Buf {
    bytes: [u8; 512],
    len: usize,
}

impl Buf {
    pub(crate) const fn new() -> Self {
        Buf {
            bytes: [0; 512],
            len: 0,
        }
    }

    /// Appends `s`, as much as fits.
    pub(crate) fn text(&mut self, s: &[u8]) -> &mut Self {
        for &b in s {
            let Some(slot) = self.bytes.get_mut(self.len) else {
                break;
            };
            *slot = b;
            self.len += 1;
        }
        self
    }

    /// Appends `n` in decimal, right-aligned in `width` columns (printf's
    /// `%10u`).
    pub(crate) fn number(&mut self, n: usize, width: usize) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut rest = n;
        loop {
            i -= 1;
            digits[i] = b"0123456789"[rest % 10];
            rest /= 10;
            if rest == 0 || i == 0 {
                break;
            }
        }
        let used = digits.len() - i;
        for _ in used..width {
            self.text(b" ");
        }
        self.text(&digits[i..])
    }

    /// Appends `p` as `0x` and lowercase hexadecimal.
    pub(crate) fn hex(&mut self, p: usize) -> &mut Self {
        self.text(b"0x");
        let mut started = false;
        for shift in (0..usize::BITS).step_by(4).rev() {
            let nibble = (p >> shift) & 0xf;
            if nibble != 0 || started || shift == 0 {
                started = true;
                self.text(&[b"0123456789abcdef"[nibble]]);
            }
        }
        self
    }

    /// The text so far.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Writes the text to standard error (or the copy of it
    /// [`keep_stderr`] made), retrying short writes; errors are dropped
    /// (there is nobody to tell).
    pub(crate) fn to_stderr(&self) {
        let fd = REPORT_FD.load(Ordering::Relaxed);
        let mut rest = self.as_bytes();
        while !rest.is_empty() {
            // SAFETY: `rest` is initialised memory borrowed for the call.
            let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
            match usize::try_from(n) {
                Ok(0) => return,
                Ok(n) => rest = &rest[n.min(rest.len())..],
                Err(_) if errno() == libc::EINTR => {}
                Err(_) => return,
            }
        }
    }
}

/// Where reports go: standard error, or a copy of it.
static REPORT_FD: AtomicI32 = AtomicI32::new(libc::STDERR_FILENO);

/// Keeps a copy of standard error (close-on-exec, numbered 100 or above)
/// for the reports printed at exit: many programs close standard error in
/// their own exit handlers (coreutils do), which run before the
/// library's. Without a copy (no descriptor left) reports go to
/// descriptor 2 as before.
pub(crate) fn keep_stderr() {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor number; no memory involved.
    let fd = unsafe { libc::fcntl(libc::STDERR_FILENO, libc::F_DUPFD_CLOEXEC, 100) };
    if fd >= 0 {
        REPORT_FD.store(fd, Ordering::Relaxed);
    }
}

/// The calling thread's `errno`.
pub(crate) fn errno() -> i32 {
    // SAFETY: no preconditions; returns the thread's errno slot.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: glibc's per-thread errno slot, valid for the thread's life.
    unsafe { *slot }
}

/// Sets the calling thread's `errno`.
pub(crate) fn set_errno(e: i32) {
    // SAFETY: as in `errno`.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: as in `errno`.
    unsafe { *slot = e };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_align_right_like_printf() {
        let mut b = Buf::new();
        b.text(b"[")
            .number(42, 10)
            .text(b"][")
            .number(0, 1)
            .text(b"]");
        assert_eq!(b.as_bytes(), b"[        42][0]");
        let mut b = Buf::new();
        b.number(usize::MAX, 10);
        assert_eq!(b.as_bytes(), usize::MAX.to_string().as_bytes());
    }

    #[test]
    fn hex_and_overflow_truncate_quietly() {
        let mut b = Buf::new();
        b.hex(0).text(b" ").hex(0xdead_beef);
        assert_eq!(b.as_bytes(), b"0x0 0xdeadbeef");
        let mut b = Buf::new();
        for _ in 0..100 {
            b.text(b"0123456789");
        }
        assert_eq!(b.as_bytes().len(), 512);
    }
}
