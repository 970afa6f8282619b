//! The POSIX AIO backend: `aio_read` per slot, `aio_suspend` to wait,
//! `aio_error` to poll and `aio_return` to collect, as the seeds' program
//! does for one file.
//!
//! # Safety
//!
//! glibc runs the reads on its own threads, which write the control block
//! (`aiocb`: status and result) and the buffer after `aio_read` returns.
//! The control blocks sit in a boxed slice of `UnsafeCell`s that never
//! moves and is reached by raw pointer only, and the buffers in
//! [`Buffers`]; a slot's block, buffer and file are reused only after
//! `aio_error` reports its read finished. `Aio`'s `Drop` cancels what is in
//! flight and waits until every read has finished before the blocks,
//! buffers and files go — also when the callback panics; if it cannot
//! tell, it leaks them instead.
#![allow(
    unsafe_code,
    reason = "POSIX AIO control blocks and buffers are written by glibc threads after aio_read returns"
)]

use std::cell::UnsafeCell;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::buffers::Buffers;
use super::{Batch, Event, Open, Opener};
use crate::Result;
use crate::copy::os;

/// The control blocks, buffers and files of the reads in flight.
struct Aio {
    blocks: Box<[UnsafeCell<libc::aiocb>]>,
    buffers: Option<Buffers>,
    slots: Vec<Option<Open>>,
    busy: Vec<bool>,
}

impl Aio {
    fn new(depth: usize, size: usize) -> std::io::Result<Self> {
        let blocks = (0..depth)
            // SAFETY: `aiocb` is a plain C struct of integers and pointers,
            // for which all-zero bytes are a valid (idle) value.
            .map(|_| UnsafeCell::new(unsafe { std::mem::zeroed::<libc::aiocb>() }))
            .collect();
        Ok(Self {
            blocks,
            buffers: Some(Buffers::new(depth, size)?),
            slots: (0..depth).map(|_| None).collect(),
            busy: vec![false; depth],
        })
    }

    fn block(&self, slot: usize) -> *mut libc::aiocb {
        self.blocks[slot].get()
    }

    fn in_flight(&self) -> usize {
        self.busy.iter().filter(|&&b| b).count()
    }

    /// Starts the next read of slot `slot`.
    fn submit(&mut self, slot: usize) -> std::io::Result<()> {
        let Some(open) = &self.slots[slot] else {
            return Ok(());
        };
        let buffers = self.buffers.as_ref().expect("buffers live until drop");
        let block = self.block(slot);
        let offset = libc::off_t::try_from(open.offset)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EOVERFLOW))?;
        // SAFETY: `aiocb` is plain C data; all-zero bytes are a valid value.
        let mut cb: libc::aiocb = unsafe { std::mem::zeroed() };
        cb.aio_fildes = open.file.as_raw_fd();
        cb.aio_buf = buffers.ptr(slot).cast();
        cb.aio_nbytes = open.want(buffers.size());
        cb.aio_offset = offset;
        cb.aio_sigevent.sigev_notify = libc::SIGEV_NONE;
        // SAFETY: the slot is idle (`busy` is false: never submitted, or its
        // last read finished per `aio_error`), so no glibc thread touches the
        // block; writing through the raw pointer creates no reference.
        unsafe { block.write(cb) };
        // SAFETY: the block, its buffer and the descriptor stay alive and
        // untouched by this thread until `aio_error` reports the read
        // finished (`busy` marks it, and `Drop` waits for it).
        let started = unsafe { libc::aio_read(block) };
        if started != 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.busy[slot] = true;
        Ok(())
    }

    /// The status of slot `slot`'s read: `None` while in flight, else its
    /// result (bytes or error), collected with `aio_return`.
    fn poll(&mut self, slot: usize) -> Option<std::io::Result<usize>> {
        let block = self.block(slot);
        // SAFETY: the block was submitted and stays in place; `aio_error`
        // only reads its status.
        let status = unsafe { libc::aio_error(block) };
        if status == libc::EINPROGRESS {
            return None;
        }
        // SAFETY: the read has finished, so `aio_return` may collect it,
        // once.
        let n = unsafe { libc::aio_return(block) };
        self.busy[slot] = false;
        Some(match (status, usize::try_from(n)) {
            (0, Ok(n)) => Ok(n),
            (0, Err(_)) => Err(std::io::Error::last_os_error()),
            (errno, _) => Err(std::io::Error::from_raw_os_error(errno)),
        })
    }

    /// Waits until at least one read in flight finishes (or a signal).
    fn suspend(&self) -> std::io::Result<()> {
        let list: Vec<*const libc::aiocb> = (0..self.busy.len())
            .filter(|&i| self.busy[i])
            .map(|i| self.block(i).cast_const())
            .collect();
        let n = libc::c_int::try_from(list.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: every pointer is a submitted block that lives in `self`
        // for the call; a null timeout waits without limit.
        let r = unsafe { libc::aio_suspend(list.as_ptr(), n, std::ptr::null()) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            Ok(())
        } else {
            Err(e)
        }
    }
}

impl Drop for Aio {
    fn drop(&mut self) {
        for slot in 0..self.busy.len() {
            if let (true, Some(open)) = (self.busy[slot], &self.slots[slot]) {
                // SAFETY: a submitted block of an open descriptor; cancelling
                // only asks glibc to drop the request if it has not started.
                unsafe { libc::aio_cancel(open.file.as_raw_fd(), self.block(slot)) };
            }
        }
        while self.in_flight() > 0 {
            if self.suspend().is_err() {
                // Cannot wait: leak what glibc may still write.
                if let Some(buffers) = self.buffers.take() {
                    buffers.leak();
                }
                std::mem::forget(std::mem::take(&mut self.blocks));
                std::mem::forget(std::mem::take(&mut self.slots));
                return;
            }
            for slot in 0..self.busy.len() {
                if self.busy[slot] {
                    let _ = self.poll(slot);
                }
            }
        }
    }
}

/// Reads every file through POSIX AIO; returns the most reads in flight.
pub(crate) fn read<P: AsRef<Path>>(
    batch: &Batch,
    files: &mut Opener<'_, P>,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<usize> {
    let mut aio = Aio::new(batch.depth, batch.buffer_size)
        .map_err(|e| os("allocate", "the batch buffers", e))?;
    for slot in 0..batch.depth {
        let Some(open) = files.next(on) else { break };
        aio.slots[slot] = Some(open);
        start(&mut aio, slot, files, on);
    }
    let mut peak = aio.in_flight();
    while aio.in_flight() > 0 {
        aio.suspend()
            .map_err(|e| os("wait for", "POSIX AIO reads", e))?;
        for slot in 0..batch.depth {
            if !aio.busy[slot] {
                continue;
            }
            let Some(result) = aio.poll(slot) else {
                continue;
            };
            if finish(&mut aio, slot, result, on) {
                aio.slots[slot] = files.next(on);
            }
            start(&mut aio, slot, files, on);
        }
        peak = peak.max(aio.in_flight());
    }
    Ok(peak)
}

/// Starts the slot's next read; a file whose read cannot start is
/// reported and the slot takes the next file.
fn start<P: AsRef<Path>>(
    aio: &mut Aio,
    slot: usize,
    files: &mut Opener<'_, P>,
    on: &mut dyn FnMut(Event<'_>),
) {
    while aio.slots[slot].is_some() {
        match aio.submit(slot) {
            Ok(()) => return,
            Err(e) => {
                if let Some(open) = &aio.slots[slot] {
                    on(open.failed(e));
                }
                aio.slots[slot] = files.next(on);
            }
        }
    }
}

/// Hands a finished read to the callback; says whether the file is done
/// (read to its end, or failed).
fn finish(
    aio: &mut Aio,
    slot: usize,
    result: std::io::Result<usize>,
    on: &mut dyn FnMut(Event<'_>),
) -> bool {
    let buffers = aio.buffers.as_ref().expect("buffers live until drop");
    let Some(open) = aio.slots[slot].as_mut() else {
        return true;
    };
    match result {
        Ok(n) => {
            // SAFETY: `poll` saw this slot's read finish and collected it;
            // nothing writes the buffer until the slot is submitted again,
            // after the callback.
            let bytes = unsafe { buffers.filled(slot, n) };
            open.deliver(bytes, buffers.size(), on)
        }
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => false,
        Err(e) => {
            on(open.failed(e));
            true
        }
    }
}
