//! Scatter-gather I/O that finishes what it starts.
//!
//! `readv`/`writev` and their positional forms `preadv`/`pwritev` may move
//! fewer bytes than asked (a signal, a full pipe, a disk quota, a file that
//! ends early) and accept at most `IOV_MAX` (1024) buffers per call. The
//! helpers here loop until every buffer is done, advancing through the
//! slices with std's `IoSlice::advance_slices`, and retry interrupted calls.
//!
//! ```
//! use std::io::{IoSlice, IoSliceMut};
//! use memio_io::vectored::{read_exact_vectored_at, write_all_vectored_at};
//! # let path = std::env::temp_dir().join(format!("memio-doc-vec-{}", std::process::id()));
//! let file = std::fs::File::options().read(true).write(true).create(true).truncate(true).open(&path)?;
//! let (header, body) = (b"HEAD", b"payload");
//! write_all_vectored_at(&file, &mut [IoSlice::new(header), IoSlice::new(body)], 100)?;
//! let (mut h, mut b) = ([0u8; 4], [0u8; 7]);
//! read_exact_vectored_at(&file, &mut [IoSliceMut::new(&mut h), IoSliceMut::new(&mut b)], 100)?;
//! assert_eq!((&h, &b), (header, body));
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::AsFd;

/// The most buffers one `readv`/`writev` call takes on Linux.
pub const IOV_MAX: usize = 1024;

/// Reads into `bufs` from `offset` with `preadv` until they are full or the
/// file ends, and returns how many bytes were read. The file position is
/// not used or moved.
///
/// # Errors
///
/// Fails on any OS error other than `EINTR` (which is retried).
///
/// # References
///
/// - [preadv(2)](https://man7.org/linux/man-pages/man2/preadv.2.html)
#[doc(alias = "preadv")]
pub fn read_vectored_at(
    file: impl AsFd,
    bufs: &mut [IoSliceMut<'_>],
    offset: u64,
) -> io::Result<usize> {
    let fd = file.as_fd();
    fill_with(bufs, |b, done| {
        let at = offset
            .checked_add(done as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset overflows"))?;
        Ok(rustix::io::preadv(fd, b, at)?)
    })
}

/// Like [`read_vectored_at`], but a file that ends before the buffers are
/// full is an `UnexpectedEof` error.
///
/// # Errors
///
/// `UnexpectedEof` when the file is too short; any OS error.
pub fn read_exact_vectored_at(
    file: impl AsFd,
    bufs: &mut [IoSliceMut<'_>],
    offset: u64,
) -> io::Result<()> {
    let want: usize = bufs.iter().map(|b| b.len()).sum();
    let got = read_vectored_at(file, bufs, offset)?;
    if got < want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("file ends {got} bytes after offset {offset}, {want} bytes were asked for"),
        ));
    }
    Ok(())
}

/// Writes every byte of `bufs` at `offset` with `pwritev`, however many
/// calls it takes. The file position is not used or moved. On return the
/// slices in `bufs` have been advanced (they are consumed).
///
/// # Errors
///
/// `WriteZero` if the kernel accepts nothing; any OS error other than
/// `EINTR` (retried).
///
/// # References
///
/// - [pwritev(2)](https://man7.org/linux/man-pages/man2/pwritev.2.html)
#[doc(alias = "pwritev")]
pub fn write_all_vectored_at(
    file: impl AsFd,
    bufs: &mut [IoSlice<'_>],
    offset: u64,
) -> io::Result<()> {
    let fd = file.as_fd();
    drain_with(bufs, |b, done| {
        let at = offset
            .checked_add(done as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset overflows"))?;
        Ok(rustix::io::pwritev(fd, b, at)?)
    })
}

/// Like [`write_all_vectored_at`], but each call is made with
/// `pwritev2(RWF_DSYNC)`: when it returns, the bytes written are on stable
/// storage, as after `fdatasync`, yet only this range of the file is
/// written back. Other dirty pages of the file stay in the page cache, so
/// a log that keeps a frequently rewritten header in the same file does
/// not pay a second block write per commit. Where the kernel refuses the
/// flag (`EOPNOTSUPP`), or has no `pwritev2` at all (`ENOSYS`: kernels
/// before 4.6, and sandboxes whose syscall filters predate it), it falls
/// back to `pwritev` and `fdatasync`.
///
/// # Errors
///
/// As [`write_all_vectored_at`], and any error of the write-back.
///
/// # References
///
/// - [pwritev2(2)](https://man7.org/linux/man-pages/man2/pwritev2.2.html)
#[doc(alias = "pwritev2")]
#[doc(alias = "RWF_DSYNC")]
pub fn write_all_vectored_at_durable(
    file: impl AsFd,
    bufs: &mut [IoSlice<'_>],
    offset: u64,
) -> io::Result<()> {
    let fd = file.as_fd();
    let mut fall_back = false;
    drain_with(bufs, |b, done| {
        // Past i64::MAX the offset reaches pwritev2 as -1, which means
        // "at the file position", not an error.
        let at = offset
            .checked_add(done as u64)
            .filter(|&at| i64::try_from(at).is_ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset overflows"))?;
        if !fall_back {
            match rustix::io::pwritev2(fd, b, at, rustix::io::ReadWriteFlags::DSYNC) {
                Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => fall_back = true,
                other => return Ok(other?),
            }
        }
        Ok(rustix::io::pwritev(fd, b, at)?)
    })?;
    if fall_back {
        rustix::fs::fdatasync(fd)?;
    }
    Ok(())
}

/// Writes every byte of `bufs` to a stream with `write_vectored`, however
/// many calls it takes (std's own `write_all_vectored` is not stable).
///
/// # Errors
///
/// `WriteZero` if the writer accepts nothing; any error of the writer
/// other than `Interrupted` (retried).
pub fn write_all_vectored(writer: &mut impl Write, bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    drain_with(bufs, |b, _| writer.write_vectored(b))
}

/// Fills every buffer from a stream with `read_vectored`, however many
/// calls it takes; a stream that ends early is `UnexpectedEof`.
///
/// # Errors
///
/// `UnexpectedEof`, or any error of the reader other than `Interrupted`.
pub fn read_exact_vectored(reader: &mut impl Read, bufs: &mut [IoSliceMut<'_>]) -> io::Result<()> {
    let want: usize = bufs.iter().map(|b| b.len()).sum();
    let got = fill_with(bufs, |b, _| reader.read_vectored(b))?;
    if got < want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("stream ended after {got} of {want} bytes"),
        ));
    }
    Ok(())
}

/// The write loop: `op(slices, bytes_done)` writes from at most `IOV_MAX`
/// slices and says how much it took.
pub(crate) fn drain_with(
    mut bufs: &mut [IoSlice<'_>],
    mut op: impl FnMut(&[IoSlice<'_>], usize) -> io::Result<usize>,
) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0); // skip leading empty slices
    let mut done = 0usize;
    while !bufs.is_empty() {
        let batch = bufs.len().min(IOV_MAX);
        match op(&bufs[..batch], done) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("the writer accepted no more after {done} bytes"),
                ));
            }
            Ok(n) => {
                done += n;
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The read loop: `op(slices, bytes_done)` reads into at most `IOV_MAX`
/// slices; 0 means end of file. Returns the bytes read.
pub(crate) fn fill_with(
    mut bufs: &mut [IoSliceMut<'_>],
    mut op: impl FnMut(&mut [IoSliceMut<'_>], usize) -> io::Result<usize>,
) -> io::Result<usize> {
    IoSliceMut::advance_slices(&mut bufs, 0);
    let mut done = 0usize;
    while !bufs.is_empty() {
        let batch = bufs.len().min(IOV_MAX);
        match op(&mut bufs[..batch], done) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                IoSliceMut::advance_slices(&mut bufs, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A writer that takes at most `step` bytes per call and is interrupted
    /// every third call.
    struct Trickle {
        out: Vec<u8>,
        step: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 3 == 0 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let mut left = self.step;
            for b in bufs {
                let n = b.len().min(left);
                self.out.extend_from_slice(&b[..n]);
                left -= n;
                if left == 0 {
                    break;
                }
            }
            Ok(self.step - left)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A reader that hands out at most `step` bytes per call.
    struct Dribble<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest! {
        #[test]
        fn short_writes_still_deliver_every_byte_in_order(
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..12),
            step in 1usize..7,
        ) {
            let mut w = Trickle { out: Vec::new(), step, calls: 0 };
            let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
            write_all_vectored(&mut w, &mut slices).unwrap();
            prop_assert_eq!(w.out, parts.concat());
        }

        #[test]
        fn short_reads_still_fill_every_buffer(
            sizes in proptest::collection::vec(0usize..30, 0..8),
            step in 1usize..5,
        ) {
            let total: usize = sizes.iter().sum();
            let data: Vec<u8> = (0..total).map(|i| u8::try_from(i % 251).unwrap()).collect();
            let mut bufs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0; n]).collect();
            let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            read_exact_vectored(&mut Dribble { data: &data, step }, &mut slices).unwrap();
            prop_assert_eq!(bufs.concat(), data);
        }
    }

    #[test]
    fn positional_loop_advances_the_offset_after_short_writes() {
        // A pwritev stand-in that accepts 3 bytes per call and records the
        // offsets it was asked to write at.
        let parts: [&[u8]; 3] = [b"Hello ", b"scatter-gather ", b"I/O!\n"];
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut file = [0u8; 40];
        let base = 5usize;
        drain_with(&mut slices, |bufs, done| {
            let mut n = 0;
            for b in bufs {
                for &byte in b.iter() {
                    if n == 3 {
                        return Ok(n);
                    }
                    file[base + done + n] = byte;
                    n += 1;
                }
            }
            Ok(n)
        })
        .unwrap();
        assert_eq!(&file[base..base + 26], b"Hello scatter-gather I/O!\n");
        assert!(file[..base].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_writer_that_takes_nothing_is_an_error_not_a_hang() {
        let mut slices = [IoSlice::new(b"x")];
        let err = drain_with(&mut slices, |_, _| Ok(0)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    }

    #[test]
    fn more_than_iov_max_buffers_go_in_batches() {
        let bytes: Vec<[u8; 1]> = (0..3000u32)
            .map(|i| [u8::try_from(i % 256).unwrap()])
            .collect();
        let mut slices: Vec<IoSlice<'_>> = bytes.iter().map(|b| IoSlice::new(b)).collect();
        let mut out = Vec::new();
        let mut largest = 0;
        drain_with(&mut slices, |bufs, _| {
            largest = largest.max(bufs.len());
            let n: usize = bufs.iter().map(|b| b.len()).sum();
            for b in bufs {
                out.extend_from_slice(b);
            }
            Ok(n)
        })
        .unwrap();
        assert_eq!(largest, IOV_MAX);
        assert_eq!(out.len(), 3000);
    }

    /// An empty read-write file, already unlinked.
    fn scratch_file(tag: &str) -> std::fs::File {
        let path = std::env::temp_dir().join(format!("memio-vec-{tag}-{}", std::process::id()));
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        file
    }

    #[test]
    fn positional_round_trip_on_a_real_file_past_its_end() {
        let file = scratch_file("test");
        let mut w = [
            IoSlice::new(b"abc"),
            IoSlice::new(b""),
            IoSlice::new(b"defg"),
        ];
        write_all_vectored_at(&file, &mut w, 10).unwrap();
        let (mut a, mut b) = ([0u8; 5], [0u8; 10]);
        let got = read_vectored_at(
            &file,
            &mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)],
            8,
        )
        .unwrap();
        assert_eq!(got, 9, "the file ends at 17");
        assert_eq!(&a, b"\0\0abc");
        assert_eq!(&b[..4], b"defg");
        let err = read_exact_vectored_at(&file, &mut [IoSliceMut::new(&mut b)], 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn durable_writes_land_where_asked_and_leave_the_rest_of_the_file() {
        let file = scratch_file("dsync");
        write_all_vectored_at(&file, &mut [IoSlice::new(&[b'.'; 32])], 0).unwrap();
        write_all_vectored_at_durable(&file, &mut [IoSlice::new(b"ab"), IoSlice::new(b"cd")], 4)
            .unwrap();
        write_all_vectored_at_durable(&file, &mut [IoSlice::new(b"end")], 40).unwrap();
        let mut out = [0u8; 43];
        read_exact_vectored_at(&file, &mut [IoSliceMut::new(&mut out)], 0).unwrap();
        assert_eq!(&out[..12], b"....abcd....");
        assert_eq!(
            &out[32..40],
            &[0; 8],
            "the gap past the old end reads as zeros"
        );
        assert_eq!(&out[40..], b"end");
        let err =
            write_all_vectored_at_durable(&file, &mut [IoSlice::new(b"x")], u64::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    }
}
