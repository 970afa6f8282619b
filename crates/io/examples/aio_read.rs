//! The seeds' POSIX AIO program (000 and 004): start an `aio_read` of a
//! file, poll `aio_error` until it is no longer `EINPROGRESS`, collect the
//! result with `aio_return`, print what was read.
//!
//! ```sh
//! cargo run -p memio-io --example aio_read -- [FILE]
//! ```
//!
//! The seeds' control block and buffer live on `main`'s stack while glibc's
//! AIO thread writes into them. Here they live in a `Box` that is not
//! touched until `aio_error` says the read has finished, and a read still
//! in flight on an early return is cancelled and awaited first. For many
//! files at once, `memio_io::batch` with `Backend::Aio` does the same with
//! a fixed set of buffers (see the `batch_read` example).
#![allow(
    unsafe_code,
    reason = "the seed program: raw POSIX AIO calls on a control block glibc writes"
)]

use std::cell::UnsafeCell;
use std::os::fd::AsRawFd;
use std::time::Duration;

const BUFSIZE: usize = 1024;

/// The control block and buffer of one read, at a fixed address.
struct Request {
    cb: UnsafeCell<libc::aiocb>,
    buf: UnsafeCell<[u8; BUFSIZE]>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "test.txt".to_owned());
    let file = std::fs::File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
    let req = Box::new(Request {
        // SAFETY: `aiocb` is plain C data; all-zero bytes are a valid value
        // (the seeds' memset).
        cb: UnsafeCell::new(unsafe { std::mem::zeroed() }),
        buf: UnsafeCell::new([0; BUFSIZE]),
    });
    let cb = req.cb.get();
    // SAFETY: no read is in flight yet, so this thread alone uses the block.
    unsafe {
        (*cb).aio_fildes = file.as_raw_fd();
    }
    // SAFETY: as above.
    unsafe {
        (*cb).aio_buf = req.buf.get().cast();
    }
    // SAFETY: as above.
    unsafe {
        (*cb).aio_nbytes = BUFSIZE;
    }
    // SAFETY: the block and buffer are boxed (they do not move) and live
    // until the read is collected below; the file stays open as long.
    if unsafe { libc::aio_read(cb) } == -1 {
        return Err(format!("aio_read {path}: {}", std::io::Error::last_os_error()).into());
    }
    // SAFETY: `cb` was submitted and stays in place; aio_error only reads
    // its status.
    while unsafe { libc::aio_error(cb) } == libc::EINPROGRESS {
        println!("Reading...");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: the read has finished (aio_error is no longer EINPROGRESS);
    // aio_return collects it, once.
    let ret = unsafe { libc::aio_return(cb) };
    let n = usize::try_from(ret)
        .map_err(|_| format!("aio_read {path}: {}", std::io::Error::last_os_error()))?;
    // SAFETY: the read has finished, so nothing writes the buffer any more.
    let buf = unsafe { &*req.buf.get() };
    println!("Read {n} bytes: {}", String::from_utf8_lossy(&buf[..n]));
    Ok(())
}
