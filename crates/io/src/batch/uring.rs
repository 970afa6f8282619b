//! The `io_uring` backend: one read in flight per slot, `depth` slots, all
//! submitted and reaped by the calling thread.
//!
//! # Safety
//!
//! A submitted read names a buffer and a file descriptor that the kernel
//! uses until its completion is reaped. Both belong to the [`Driver`]: the
//! buffer set ([`Buffers`]) and the slot's open file are replaced only
//! after that slot's completion, and `Driver`'s `Drop` reaps every
//! completion still due before its fields (ring, files, buffers) go — also
//! when the callback panics. If the ring fails so that completions cannot
//! be awaited, the buffers are leaked rather than freed under the kernel.
#![allow(
    unsafe_code,
    reason = "io_uring reads fill buffers after the submitting call returns"
)]

use std::os::fd::AsRawFd;
use std::path::Path;

use io_uring::{IoUring, opcode, types};

use super::buffers::Buffers;
use super::{Batch, Event, Open, Opener};
use crate::Result;
use crate::copy::os;

/// A ring with room for `depth` reads, on a kernel whose rings can read
/// (`IORING_OP_READ`, Linux 5.6). Linux 5.1 to 5.5 set up rings without
/// it, and a seccomp policy may allow the set-up but refuse registering:
/// either way every read would fail, so the ring is refused here, where
/// [`Backend::Auto`](super::Backend::Auto) can still take the threads.
pub(crate) fn ring(depth: usize) -> std::io::Result<IoUring> {
    let entries = u32::try_from(depth.next_power_of_two()).unwrap_or(4096);
    let ring = IoUring::new(entries)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    if !probe.is_supported(opcode::Read::CODE) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this kernel's io_uring cannot read (IORING_OP_READ needs Linux 5.6)",
        ));
    }
    Ok(ring)
}

/// Reads through a new ring; an error if the kernel refuses `io_uring`.
pub(crate) fn read<P: AsRef<Path>>(
    batch: &Batch,
    files: &mut Opener<'_, P>,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<usize> {
    let ring = ring(batch.depth).map_err(|e| os("set up", "io_uring", e))?;
    read_with(ring, batch, files, on)
}

/// The ring, its buffers, and the file each slot is reading.
struct Driver {
    ring: IoUring,
    buffers: Option<Buffers>,
    slots: Vec<Option<Open>>,
    in_flight: usize,
}

impl Driver {
    fn buffers(&self) -> &Buffers {
        self.buffers.as_ref().expect("buffers live until drop")
    }

    /// Queues the next read of slot `slot`.
    fn submit(&mut self, slot: usize) -> std::io::Result<()> {
        let size = self.buffers().size();
        let ptr = self.buffers().ptr(slot);
        let Some(open) = &self.slots[slot] else {
            return Ok(());
        };
        let entry = opcode::Read::new(
            types::Fd(open.file.as_raw_fd()),
            ptr,
            u32::try_from(open.want(size)).unwrap_or(u32::MAX),
        )
        .offset(open.offset)
        .build()
        .user_data(slot as u64);
        loop {
            // SAFETY: the buffer `ptr` (slot `slot`'s, `size` bytes) and the
            // descriptor stay alive and untouched until this read's
            // completion is reaped: slots are refilled only after their
            // completion, and `Drop` reaps every completion due before the
            // buffers and files go.
            let pushed = unsafe { self.ring.submission().push(&entry) };
            if pushed.is_ok() {
                break;
            }
            // The submission queue is full: hand it to the kernel.
            self.ring.submit()?;
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Waits for at least one completion and returns all that are ready,
    /// as (slot, result).
    fn reap(&mut self) -> std::io::Result<Vec<(usize, i32)>> {
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let done: Vec<(usize, i32)> = self
            .ring
            .completion()
            .map(|c| {
                (
                    usize::try_from(c.user_data()).unwrap_or(usize::MAX),
                    c.result(),
                )
            })
            .collect();
        self.in_flight -= done.len();
        Ok(done)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        while self.in_flight > 0 {
            if self.reap().is_err() {
                // Completions cannot be awaited: never free memory the
                // kernel may still write.
                if let Some(buffers) = self.buffers.take() {
                    buffers.leak();
                }
                return;
            }
        }
    }
}

/// Reads every file through `ring`; returns the most reads in flight.
pub(crate) fn read_with<P: AsRef<Path>>(
    ring: IoUring,
    batch: &Batch,
    files: &mut Opener<'_, P>,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<usize> {
    let buffers = Buffers::new(batch.depth, batch.buffer_size)
        .map_err(|e| os("allocate", "the batch buffers", e))?;
    let mut d = Driver {
        ring,
        buffers: Some(buffers),
        slots: (0..batch.depth).map(|_| None).collect(),
        in_flight: 0,
    };
    let ring_error = |e| os("read through", "io_uring", e);
    for slot in 0..batch.depth {
        let Some(open) = files.next(on) else { break };
        d.slots[slot] = Some(open);
        d.submit(slot).map_err(ring_error)?;
    }
    let mut peak = d.in_flight;
    while d.in_flight > 0 {
        for (slot, result) in d.reap().map_err(ring_error)? {
            let Some(open) = d.slots.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let buffers = d.buffers.as_ref().expect("buffers live until drop");
            let size = buffers.size();
            let finished = if let Ok(n) = usize::try_from(result) {
                // SAFETY: this slot's read has completed (its entry was just
                // reaped) and no other read uses its buffer.
                let bytes = unsafe { buffers.filled(slot, n) };
                open.deliver(bytes, size, on)
            } else {
                let errno = -result;
                // EINTR/EAGAIN: the read is simply issued again.
                let retry = errno == libc::EINTR || errno == libc::EAGAIN;
                if !retry {
                    on(open.failed(std::io::Error::from_raw_os_error(errno)));
                }
                !retry
            };
            if finished {
                d.slots[slot] = files.next(on);
            }
            d.submit(slot).map_err(ring_error)?;
        }
        peak = peak.max(d.in_flight);
    }
    Ok(peak)
}
