//! Reading many files at once with bounded memory.
//!
//! A [`Batch`] reads a list of files and hands each file's bytes to a
//! callback in chunks, in order within each file (chunks of different
//! files interleave). Memory is a fixed set of buffers
//! ([`Batch::depth`] × [`Batch::buffer_size`], 32 × 128 KiB by default),
//! allocated once; at most `depth` reads are in flight. A file that cannot
//! be read is reported through [`Event::Failed`] with its path and errno,
//! and the batch goes on.
//!
//! Backends ([`Backend`]):
//!
//! - **`io_uring`**: all reads in flight from the calling thread, one
//!   `io_uring_enter` for many of them.
//! - **threads**: a pool of reader threads, each with two buffers.
//! - **POSIX AIO**: `aio_read`, `aio_suspend`, `aio_error`, `aio_return`
//!   (glibc runs them on its own threads), as the seeds show.
//! - **sequential**: one `read` after another, the baseline.
//!
//! [`Backend::Auto`] takes `io_uring` and falls back to threads when the
//! kernel or a seccomp policy refuses it.
//!
//! The kernel (or glibc's AIO threads) writes into the buffers after the
//! call that starts a read has returned, so the buffers belong to the batch
//! for the whole call to [`Batch::read`], never to the caller: the callback
//! only borrows a completed chunk. If the callback panics, the batch waits
//! for every read in flight to complete before its buffers are freed.
//!
//! ```
//! use memio_io::batch::{Batch, Event};
//! # let dir = std::env::temp_dir().join(format!("memio-doc-batch-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let paths: Vec<_> = (0..3).map(|i| dir.join(format!("f{i}"))).collect();
//! for (i, p) in paths.iter().enumerate() { std::fs::write(p, vec![b'a'; 1000 * i])?; }
//! let mut total = 0;
//! let report = Batch::new().read(&paths, |event| {
//!     if let Event::Data { bytes, .. } = event { total += bytes.len(); }
//! })?;
//! assert_eq!((total, report.files, report.failed), (3000, 3, 0));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A chunk cannot be kept past its call: the next read may land in the
//! same buffer, so this does not compile.
//!
//! ```compile_fail
//! use memio_io::batch::{Batch, Event};
//! let mut kept: Vec<&[u8]> = Vec::new();
//! Batch::new().read(&["/etc/hostname"], |event| {
//!     if let Event::Data { bytes, .. } = event { kept.push(bytes); }
//! }).unwrap();
//! ```

mod aio;
mod buffers;
mod threads;
mod uring;

use std::fs::File;
use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::copy::{open_source, os};
use crate::{Error, Result};

/// How the reads are issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// `io_uring`, or threads where the kernel refuses `io_uring`.
    #[default]
    Auto,
    /// `io_uring` only (an error where it is refused).
    IoUring,
    /// A pool of reader threads.
    Threads,
    /// POSIX AIO (`aio_read` and friends).
    Aio,
    /// One read after another on the calling thread.
    Sequential,
}

impl Backend {
    /// The backends that issue reads, in the order the lab lists them.
    pub const CONCRETE: [Backend; 4] = [
        Backend::Sequential,
        Backend::Threads,
        Backend::Aio,
        Backend::IoUring,
    ];

    /// The backend's name as the command line spells it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::IoUring => "io-uring",
            Backend::Threads => "threads",
            Backend::Aio => "aio",
            Backend::Sequential => "sequential",
        }
    }
}

/// What the callback hears.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The next chunk of file number `file` (its index in the list), at
    /// `offset`. The bytes are the batch's buffer, lent for this call only.
    Data {
        /// The file's index in the list.
        file: usize,
        /// Where in the file the chunk starts.
        offset: u64,
        /// The chunk.
        bytes: &'a [u8],
    },
    /// File number `file` was read to its end (or to the end of the
    /// [`Batch::range`]): `size` is the offset reached.
    Done {
        /// The file's index in the list.
        file: usize,
        /// Where reading stopped: the file's size when the whole file was
        /// read.
        size: u64,
    },
    /// File number `file` could not be read (the error names its path);
    /// chunks of it may have come before.
    Failed {
        /// The file's index in the list.
        file: usize,
        /// Why.
        error: Error,
    },
}

/// What a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The backend that did the reads.
    pub backend: Backend,
    /// Files read to their end.
    pub files: u64,
    /// Files that failed.
    pub failed: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Most reads in flight at once.
    pub peak_in_flight: usize,
    /// Bytes of buffer the batch allocated (its whole budget).
    pub buffer_bytes: usize,
    /// Wall time.
    pub elapsed: Duration,
}

/// A batch read: backend, buffer budget, size limit, byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Batch {
    backend: Backend,
    depth: usize,
    buffer_size: usize,
    max_file: Option<u64>,
    /// The bytes read of each file: `start..end`.
    start: u64,
    end: u64,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// Auto backend, 32 reads in flight, 128 KiB buffers, no size limit.
    pub const fn new() -> Self {
        Self {
            backend: Backend::Auto,
            depth: 32,
            buffer_size: 128 << 10,
            max_file: None,
            start: 0,
            end: u64::MAX,
        }
    }

    /// The backend.
    pub const fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Most reads in flight (at least 1, at most 4096); the buffer budget
    /// is `depth × buffer_size`, twice that with [`Backend::Threads`]
    /// (each reader thread reads into one buffer while the callback has
    /// its other; at most 256 threads). The report's `buffer_bytes` says
    /// what a run allocated.
    pub fn depth(mut self, depth: usize) -> Self {
        self.depth = depth.clamp(1, 4096);
        self
    }

    /// Bytes per buffer, the largest chunk (at least 4 KiB, at most 64 MiB).
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes.clamp(4096, 64 << 20);
        self
    }

    /// Report files larger than `bytes` as [`Error::TooLarge`] instead of
    /// reading them.
    pub const fn max_file(mut self, bytes: u64) -> Self {
        self.max_file = Some(bytes);
        self
    }

    /// Reads only the bytes of each file within `range` (no read goes past
    /// its end); the first chunk of a file starts at `range.start`.
    pub const fn range(mut self, range: Range<u64>) -> Self {
        self.start = range.start;
        self.end = range.end;
        self
    }

    /// Reads every file in `paths`, calling `on` with their chunks, ends
    /// and failures; returns when every file is done or failed.
    ///
    /// # Errors
    ///
    /// Only a backend that cannot start: `io_uring` asked for explicitly and
    /// refused, a thread that cannot be spawned. Files that fail are
    /// events, not errors.
    pub fn read<P: AsRef<Path> + Sync>(
        &self,
        paths: &[P],
        mut on: impl FnMut(Event<'_>),
    ) -> Result<Report> {
        let started = Instant::now();
        let mut tally = Tally::default();
        let mut hear = |event: Event<'_>| {
            tally.count(&event);
            on(event);
        };
        let mut files = Opener::new(paths, self);
        let (backend, peak) = match self.backend {
            Backend::Sequential => (Backend::Sequential, self.sequential(&mut files, &mut hear)),
            Backend::Threads => (Backend::Threads, threads::read(self, paths, &mut hear)?),
            Backend::Aio => (Backend::Aio, aio::read(self, &mut files, &mut hear)?),
            Backend::IoUring => (Backend::IoUring, uring::read(self, &mut files, &mut hear)?),
            Backend::Auto => match uring::ring(self.depth) {
                Ok(ring) => (
                    Backend::IoUring,
                    uring::read_with(ring, self, &mut files, &mut hear)?,
                ),
                Err(_) => (Backend::Threads, threads::read(self, paths, &mut hear)?),
            },
        };
        let buffer_bytes = match backend {
            Backend::Sequential => self.buffer_size,
            Backend::Threads => threads::buffers(self, paths.len()) * self.buffer_size,
            _ => self.depth * self.buffer_size,
        };
        Ok(Report {
            backend,
            files: tally.files,
            failed: tally.failed,
            bytes: tally.bytes,
            peak_in_flight: peak,
            buffer_bytes,
            elapsed: started.elapsed(),
        })
    }

    /// One file after another through one buffer.
    fn sequential(
        &self,
        files: &mut Opener<'_, impl AsRef<Path>>,
        on: &mut dyn FnMut(Event<'_>),
    ) -> usize {
        let mut buf = vec![0u8; self.buffer_size];
        let mut peak = 0;
        while let Some(mut open) = files.next(on) {
            peak = 1;
            read_to_end(&mut open, &mut buf, on);
        }
        peak
    }
}

/// Counts what the callback hears, for the report.
#[derive(Debug, Default)]
struct Tally {
    files: u64,
    failed: u64,
    bytes: u64,
}

impl Tally {
    fn count(&mut self, event: &Event<'_>) {
        match event {
            Event::Data { bytes, .. } => self.bytes += bytes.len() as u64,
            Event::Done { .. } => self.files += 1,
            Event::Failed { .. } => self.failed += 1,
        }
    }
}

/// One open file being read.
#[derive(Debug)]
pub(crate) struct Open {
    pub(crate) index: usize,
    pub(crate) file: File,
    pub(crate) path: std::path::PathBuf,
    /// Its size when opened.
    pub(crate) size: u64,
    /// Where the next read starts.
    pub(crate) offset: u64,
    /// Where reading stops (the end of [`Batch::range`]).
    pub(crate) end: u64,
}

impl Open {
    /// `file` opened at `path` with `size` bytes, to be read within the
    /// batch's range.
    pub(crate) fn new(index: usize, file: File, path: &Path, size: u64, batch: &Batch) -> Self {
        Self {
            index,
            file,
            path: path.to_owned(),
            size,
            offset: batch.start,
            end: batch.end,
        }
    }

    /// The length of the next read through a buffer of `buf` bytes: the
    /// buffer, or less where the range ends.
    pub(crate) fn want(&self, buf: usize) -> usize {
        let left = self.end.saturating_sub(self.offset);
        usize::try_from(left).map_or(buf, |left| left.min(buf))
    }

    /// Takes a completed read of `n` bytes through a buffer of `buf` bytes
    /// (which asked [`Open::want`]`(buf)`); says whether the file is now
    /// read to its end. A short read before the size known at open is not
    /// the end (the next read finds out); a short read at or past it,
    /// nothing, or the end of the range, is.
    pub(crate) fn advance(&mut self, n: usize, buf: usize) -> bool {
        let asked = self.want(buf);
        self.offset += n as u64;
        n == 0 || self.offset >= self.end || (n < asked && self.offset >= self.size)
    }

    /// Hands a completed read of `bytes` (through a buffer of `buf` bytes)
    /// to `on`: the chunk, then the file's end if this was it; says whether
    /// it was.
    pub(crate) fn deliver(
        &mut self,
        bytes: &[u8],
        buf: usize,
        on: &mut dyn FnMut(Event<'_>),
    ) -> bool {
        if !bytes.is_empty() {
            on(Event::Data {
                file: self.index,
                offset: self.offset,
                bytes,
            });
        }
        let end = self.advance(bytes.len(), buf);
        if end {
            on(self.done());
        }
        end
    }

    pub(crate) fn failed(&self, e: std::io::Error) -> Event<'static> {
        Event::Failed {
            file: self.index,
            error: os("read", self.path.display(), e),
        }
    }

    pub(crate) fn done(&self) -> Event<'static> {
        Event::Done {
            file: self.index,
            size: self.offset,
        }
    }
}

/// Opens the files of the list in order, reporting those that cannot be
/// read as it meets them.
pub(crate) struct Opener<'p, P> {
    paths: &'p [P],
    next: usize,
    batch: Batch,
}

impl<P: AsRef<Path>> Opener<'_, P> {
    fn new<'p>(paths: &'p [P], batch: &Batch) -> Opener<'p, P> {
        Opener {
            paths,
            next: 0,
            batch: *batch,
        }
    }

    /// The next file that opens, or `None` at the end of the list.
    pub(crate) fn next(&mut self, on: &mut dyn FnMut(Event<'_>)) -> Option<Open> {
        while let Some(path) = self.paths.get(self.next) {
            let index = self.next;
            self.next += 1;
            match open(path.as_ref(), self.batch.max_file) {
                Ok((file, size)) => {
                    return Some(Open::new(index, file, path.as_ref(), size, &self.batch));
                }
                Err(error) => on(Event::Failed { file: index, error }),
            }
        }
        None
    }
}

/// Opens `path` for reading: a regular file (FIFOs are refused without
/// blocking on them), within `max` bytes; returns it and its size.
pub(crate) fn open(path: &Path, max: Option<u64>) -> Result<(File, u64)> {
    let (file, meta) = open_source(path)?;
    if let Some(max) = max.filter(|&m| meta.len() > m) {
        return Err(Error::TooLarge {
            path: path.display().to_string(),
            size: meta.len(),
            max,
        });
    }
    // O_NONBLOCK only kept the open from hanging on a FIFO; on a regular
    // file io_uring would answer EAGAIN instead of waiting for the disk.
    rustix::fs::fcntl_setfl(&file, rustix::fs::OFlags::empty())
        .map_err(|e| os("open", path.display(), e.into()))?;
    Ok((file, meta.len()))
}

/// Reads `open` to its end through `buf` with plain `pread`s.
pub(crate) fn read_to_end(open: &mut Open, buf: &mut [u8], on: &mut dyn FnMut(Event<'_>)) {
    use std::os::unix::fs::FileExt;
    loop {
        let want = open.want(buf.len());
        match open.file.read_at(&mut buf[..want], open.offset) {
            Ok(n) => {
                if open.deliver(&buf[..n], buf.len(), on) {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                on(open.failed(e));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
