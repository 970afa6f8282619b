//! Named pipes (FIFOs): a pipe with a name in the file system, so
//! unrelated processes can find it.
//!
//! Anonymous pipes need nothing from this crate: `std::io::pipe()` (Rust
//! 1.87+) returns the two ends, and `std::process::Command` hands one to a
//! child (on older toolchains `Stdio::piped()` makes the pipe for you):
//!
//! ```
//! use std::io::{Read, Write};
//! use std::process::{Command, Stdio};
//!
//! let (reader, mut writer) = std::io::pipe()?;
//! let mut child = Command::new("cat").stdin(reader).stdout(Stdio::piped()).spawn()?;
//! writer.write_all(b"Hello from parent!")?;
//! drop(writer); // EOF for the child
//! let mut got = String::new();
//! child.stdout.take().unwrap().read_to_string(&mut got)?;
//! child.wait()?;
//! assert_eq!(got, "Hello from parent!");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Opening a FIFO blocks until the other end is opened too, unless it is
//! opened non-blocking: a non-blocking read end opens at once, and a
//! non-blocking write end fails with `ENXIO` while no reader exists.
//!
//! # References
//! - [fifo(7)](https://man7.org/linux/man-pages/man7/fifo.7.html)
//! - [mkfifo(3)](https://man7.org/linux/man-pages/man3/mkfifo.3.html)

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::{CWD, Mode};

use crate::error;
use crate::key::DEFAULT_MODE;

fn describe(path: &Path) -> String {
    format!("fifo '{}'", path.display())
}

/// Creates a FIFO at `path` with mode 0600 (the umask applies); fails if
/// anything exists there.
///
/// # Errors
/// An OS error naming the path (exists, no such directory, permission
/// denied).
#[doc(alias = "mkfifo")]
///
/// # References
/// [mkfifo(3)](https://man7.org/linux/man-pages/man3/mkfifo.3.html)
pub fn create(path: impl AsRef<Path>) -> io::Result<()> {
    create_with_mode(path, DEFAULT_MODE)
}

/// [`create`] with explicit permission bits.
///
/// # Errors
/// As [`create`].
pub fn create_with_mode(path: impl AsRef<Path>, mode: u32) -> io::Result<()> {
    let path = path.as_ref();
    rustix::fs::mkfifoat(CWD, path, Mode::from_bits_truncate(mode & 0o7777))
        .map_err(|e| error::os("create", &describe(path), e.into()))
}

/// How to open one end of a FIFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The read end.
    Read,
    /// The write end.
    Write,
}

/// Opens one end of the FIFO at `path`. Blocking opens wait for the other
/// end; non-blocking ones return at once (a write end fails with "no such
/// device or address" while nobody reads). The returned file is then
/// non-blocking too when asked.
///
/// # Errors
/// `path` is not a FIFO (`InvalidInput`), or an OS error naming it.
pub fn open(path: impl AsRef<Path>, end: End, nonblocking: bool) -> io::Result<File> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| error::os("open", &describe(path), e))?;
    if !meta.file_type().is_fifo() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("failed to open {}: not a fifo", describe(path)),
        ));
    }
    let mut opts = OpenOptions::new();
    match end {
        End::Read => opts.read(true),
        End::Write => opts.write(true),
    };
    if nonblocking {
        opts.custom_flags(libc::O_NONBLOCK);
    }
    opts.open(path)
        .map_err(|e| error::os("open", &describe(path), e))
}

/// Removes the FIFO at `path` (refusing anything that is not a FIFO).
///
/// # Errors
/// Not a FIFO (`InvalidInput`), or an OS error naming the path.
pub fn remove(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| error::os("remove", &describe(path), e))?;
    if !meta.file_type().is_fifo() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("failed to remove {}: not a fifo", describe(path)),
        ));
    }
    std::fs::remove_file(path).map_err(|e| error::os("remove", &describe(path), e))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn fifo_is_created_private_and_carries_bytes() {
        let dir = std::env::temp_dir().join(format!("memio-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            create(&path)
                .unwrap_err()
                .to_string()
                .contains("file exists")
        );
        // No reader yet: a non-blocking writer cannot open.
        let err = open(&path, End::Write, true).unwrap_err();
        assert_eq!(
            err.raw_os_error().or(crate::error::raw_errno(&err)),
            Some(libc::ENXIO)
        );
        let mut r = open(&path, End::Read, true).unwrap();
        let mut w = open(&path, End::Write, true).unwrap();
        w.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        // Empty and non-blocking: WouldBlock rather than waiting.
        assert_eq!(
            r.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        remove(&path).unwrap();
        let file = dir.join("plain");
        std::fs::write(&file, b"x").unwrap();
        assert!(
            remove(&file)
                .unwrap_err()
                .to_string()
                .contains("not a fifo")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
