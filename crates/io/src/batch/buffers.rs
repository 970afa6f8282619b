//! A fixed set of equal buffers that the kernel (`io_uring`) or glibc's AIO
//! threads fill while the batch waits.
//!
//! # Safety
//!
//! The buffers are one heap block reached only through a raw pointer: no
//! `Box`, `Vec` or slice claims them while a read is in flight, so a write
//! by the kernel or another thread aliases nothing Rust assumes unique. A
//! slice is made only over a buffer whose read has completed
//! ([`Buffers::filled`], an `unsafe fn` whose caller vouches for that), and
//! only for as long as the caller borrows the set. The block is freed on
//! drop; the backends drop the set only after every read has completed, or
//! leak it when they cannot tell.
#![allow(
    unsafe_code,
    reason = "buffers lent to the kernel and to AIO threads, reached by raw pointer while they fill"
)]

use std::ptr::NonNull;

/// `count` buffers of `size` bytes each, zeroed, allocated once.
#[derive(Debug)]
pub(crate) struct Buffers {
    base: NonNull<u8>,
    size: usize,
    count: usize,
}

impl Buffers {
    /// Allocates the set; `ENOMEM` when the budget does not fit.
    pub(crate) fn new(count: usize, size: usize) -> std::io::Result<Self> {
        let no_memory = || std::io::Error::from_raw_os_error(libc::ENOMEM);
        let total = count.checked_mul(size).ok_or_else(no_memory)?;
        let mut block = Vec::new();
        block.try_reserve_exact(total).map_err(|_| no_memory())?;
        block.resize(total, 0u8);
        let block = block.into_boxed_slice();
        let base = NonNull::new(Box::into_raw(block).cast::<u8>()).unwrap_or(NonNull::dangling());
        Ok(Self { base, size, count })
    }

    /// Bytes per buffer.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The start of buffer `i`, to hand to the kernel.
    pub(crate) fn ptr(&self, i: usize) -> *mut u8 {
        assert!(i < self.count, "buffer {i} of {}", self.count);
        self.base.as_ptr().wrapping_add(i * self.size)
    }

    /// The first `len` bytes of buffer `i`.
    ///
    /// # Safety
    ///
    /// No read into buffer `i` may be in flight, and the completion of the
    /// last one must be known to this thread (reaped from the completion
    /// queue, or `aio_error` no longer `EINPROGRESS`).
    pub(crate) unsafe fn filled(&self, i: usize, len: usize) -> &[u8] {
        assert!(len <= self.size, "{len} bytes in a buffer of {}", self.size);
        // SAFETY: buffer `i` lies inside the block (`ptr` checks `i`), `len`
        // fits in it, the block lives as long as `self`, and the caller
        // vouches that nothing writes it while the slice lives.
        unsafe { std::slice::from_raw_parts(self.ptr(i), len) }
    }

    /// Leaves the block allocated forever: for a backend that could not
    /// confirm that every read into it has completed.
    pub(crate) fn leak(self) {
        std::mem::forget(self);
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        let total = self.count * self.size;
        let slice = std::ptr::slice_from_raw_parts_mut(self.base.as_ptr(), total);
        if total > 0 {
            // SAFETY: `base` came from `Box::into_raw` of a boxed slice of
            // exactly `total` bytes in `new`, and is freed only here, once.
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}
