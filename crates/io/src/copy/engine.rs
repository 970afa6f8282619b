//! The engines that need no `unsafe`: `copy_file_range`, `sendfile`,
//! read/write, and the extent map (`SEEK_DATA`/`SEEK_HOLE`).
//!
//! Each engine copies the byte range `start..end` of the source to the same
//! offsets of the destination and returns the bytes it moved.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

use super::{BUFFER, Sparse, os};
use crate::{Error, Result};

/// The two open files of a copy and their names for errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Files<'a> {
    pub(crate) src: &'a File,
    pub(crate) src_path: &'a Path,
    pub(crate) dst: &'a File,
    pub(crate) dst_path: &'a Path,
}

impl Files<'_> {
    pub(crate) fn read_error(&self, e: impl Into<io::Error>) -> Error {
        os("read", self.src_path.display(), e.into())
    }

    pub(crate) fn write_error(&self, e: impl Into<io::Error>) -> Error {
        os("write", self.dst_path.display(), e.into())
    }

    /// The source ended at `at`, before the `end` it had when the copy began.
    pub(crate) fn shrank(&self, at: u64) -> Error {
        Error::Changed {
            path: self.src_path.display().to_string(),
            at,
        }
    }
}

/// The data extents of the first `size` bytes of the source, in order.
/// One extent for `Sparse::Never`, or where the filesystem cannot tell
/// data from holes.
pub(crate) fn segments(files: &Files<'_>, size: u64, sparse: Sparse) -> Result<Vec<(u64, u64)>> {
    if sparse == Sparse::Never {
        return Ok(vec![(0, size)]);
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < size {
        let start = match rustix::fs::seek(files.src, SeekFrom::Data(pos)) {
            Ok(start) => start,
            // No data past `pos`: the rest is a hole.
            Err(Errno::NXIO) => break,
            Err(Errno::INVAL | Errno::OPNOTSUPP) if pos == 0 => return Ok(vec![(0, size)]),
            Err(e) => return Err(os("seek in", files.src_path.display(), e.into())),
        };
        if start >= size {
            break;
        }
        let end = match rustix::fs::seek(files.src, SeekFrom::Hole(start)) {
            Ok(end) => end.min(size),
            Err(e) => return Err(os("seek in", files.src_path.display(), e.into())),
        };
        out.push((start, end));
        pos = end;
    }
    Ok(out)
}

/// Why `copy_file_range` stopped short of the range.
#[derive(Debug)]
pub(crate) enum Stopped {
    /// The kernel or the filesystem will not do it (after `done` bytes);
    /// another engine may finish the range.
    Refused { done: u64, error: Error },
    /// A real failure (`ENOSPC`, `EIO`, the source shrank): the copy ends.
    Failed(Error),
}

impl From<Stopped> for Error {
    fn from(stopped: Stopped) -> Self {
        match stopped {
            Stopped::Refused { error, .. } | Stopped::Failed(error) => error,
        }
    }
}

/// The errnos that mean "this kernel or filesystem will not do it", not
/// "the copy failed".
fn refused(e: Errno) -> bool {
    matches!(
        e,
        Errno::XDEV | Errno::OPNOTSUPP | Errno::PERM | Errno::NOSYS | Errno::INVAL
    )
}

/// Whether the kernel takes `copy_file_range` between these two files at
/// all: a call that moves nothing answers as one that moves bytes would
/// (`EXDEV` across filesystems, say), before anything is written. The
/// error names the destination.
pub(crate) fn copy_file_range_taken(files: &Files<'_>) -> Result<()> {
    let (mut off_in, mut off_out) = (0u64, 0u64);
    match rustix::fs::copy_file_range(
        files.src,
        Some(&mut off_in),
        files.dst,
        Some(&mut off_out),
        0,
    ) {
        Err(e) if refused(e) => Err(os("copy_file_range to", files.dst_path.display(), e.into())),
        _ => Ok(()),
    }
}

/// Largest request per call: the kernel caps a call near 2 GiB anyway.
const CHUNK: u64 = 1 << 30;

/// `copy_file_range` over the range.
pub(crate) fn copy_file_range(
    files: &Files<'_>,
    start: u64,
    end: u64,
    progress: &mut dyn FnMut(u64),
) -> std::result::Result<u64, Stopped> {
    let (mut off_in, mut off_out) = (start, start);
    while off_in < end {
        let len = usize::try_from((end - off_in).min(CHUNK)).unwrap_or(usize::MAX);
        match rustix::fs::copy_file_range(
            files.src,
            Some(&mut off_in),
            files.dst,
            Some(&mut off_out),
            len,
        ) {
            Ok(0) => return Err(Stopped::Failed(files.shrank(off_in))),
            Ok(n) => progress(n as u64),
            Err(Errno::INTR) => {}
            Err(e) => {
                let error = os("copy_file_range to", files.dst_path.display(), e.into());
                return Err(if refused(e) {
                    Stopped::Refused {
                        done: off_in - start,
                        error,
                    }
                } else {
                    Stopped::Failed(error)
                });
            }
        }
    }
    Ok(end - start)
}

/// `sendfile` over the range.
pub(crate) fn sendfile(
    files: &Files<'_>,
    start: u64,
    end: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<u64> {
    // sendfile writes at the destination's file position.
    rustix::fs::seek(files.dst, SeekFrom::Start(start))
        .map_err(|e| os("seek in", files.dst_path.display(), e.into()))?;
    let mut off = start;
    while off < end {
        let len = usize::try_from((end - off).min(CHUNK)).unwrap_or(usize::MAX);
        match rustix::fs::sendfile(files.dst, files.src, Some(&mut off), len) {
            Ok(0) => return Err(files.shrank(off)),
            Ok(n) => progress(n as u64),
            Err(Errno::INTR) => {}
            Err(e) => return Err(os("sendfile to", files.dst_path.display(), e.into())),
        }
    }
    Ok(end - start)
}

/// `pread`/`pwrite` through a 1 MiB buffer over the range; with `holes`,
/// 4 KiB blocks of zeros are skipped (left as holes in the new file).
pub(crate) fn read_write(
    files: &Files<'_>,
    start: u64,
    end: u64,
    holes: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<u64> {
    let mut buf = vec![0u8; BUFFER];
    let mut off = start;
    let mut moved = 0;
    while off < end {
        let want = usize::try_from(end - off).unwrap_or(usize::MAX).min(BUFFER);
        let n = match files.src.read_at(&mut buf[..want], off) {
            Ok(0) => return Err(files.shrank(off)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(files.read_error(e)),
        };
        moved += write_data(files, &buf[..n], off, holes)?;
        progress(n as u64);
        off += n as u64;
    }
    Ok(moved)
}

/// Writes `data` at `off`; with `holes`, leaves out whole 4 KiB blocks of
/// zeros. Returns the bytes written.
fn write_data(files: &Files<'_>, data: &[u8], off: u64, holes: bool) -> Result<u64> {
    const BLOCK: usize = 4096;
    if !holes {
        files
            .dst
            .write_all_at(data, off)
            .map_err(|e| files.write_error(e))?;
        return Ok(data.len() as u64);
    }
    let mut written = 0;
    let mut run: Option<usize> = None;
    for (i, block) in data.chunks(BLOCK).enumerate() {
        let zero = block.iter().all(|&b| b == 0);
        match (zero, run) {
            (false, None) => run = Some(i * BLOCK),
            (true, Some(from)) => {
                written += write_data(files, &data[from..i * BLOCK], off + from as u64, false)?;
                run = None;
            }
            _ => {}
        }
    }
    if let Some(from) = run {
        written += write_data(files, &data[from..], off + from as u64, false)?;
    }
    Ok(written)
}

/// Copies the source from its start until end of file, for files whose
/// size is 0 by `fstat` (empty, or /proc-like files that have bytes
/// anyway).
pub(crate) fn stream(files: &Files<'_>, progress: &mut dyn FnMut(u64)) -> Result<u64> {
    let mut buf = vec![0u8; 64 << 10];
    let mut src = files.src;
    let mut off = 0;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(off),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A non-blocking open (to not hang on FIFOs) can meet EAGAIN on
            // odd files; regular files never return it.
            Err(e) => return Err(files.read_error(e)),
        };
        files
            .dst
            .write_all_at(&buf[..n], off)
            .map_err(|e| files.write_error(e))?;
        progress(n as u64);
        off += n as u64;
    }
}

/// Reads both files and compares them; [`Error::Mismatch`] names the first
/// differing offset.
pub(crate) fn verify(src: &File, src_path: &Path, dst: &File, dst_path: &Path) -> Result<()> {
    let mut a = vec![0u8; BUFFER];
    let mut b = vec![0u8; BUFFER];
    let mut off = 0u64;
    loop {
        let n = read_full(src, &mut a, off).map_err(|e| os("read", src_path.display(), e))?;
        let m = read_full(dst, &mut b, off).map_err(|e| os("read", dst_path.display(), e))?;
        if let Some(i) = a[..n.min(m)]
            .iter()
            .zip(&b[..n.min(m)])
            .position(|(x, y)| x != y)
        {
            return Err(mismatch(src_path, dst_path, off + i as u64));
        }
        if n != m {
            return Err(mismatch(src_path, dst_path, off + n.min(m) as u64));
        }
        if n == 0 {
            return Ok(());
        }
        off += n as u64;
    }
}

fn mismatch(src: &Path, dst: &Path, at: u64) -> Error {
    Error::Mismatch {
        src: src.display().to_string(),
        dst: dst.display().to_string(),
        at,
    }
}

/// Fills `buf` from `off` unless end of file comes first; returns the bytes read.
fn read_full(file: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], off + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
