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

/// How to create a FIFO or open one of its ends: the mode of a new one,
/// and whether opening blocks.
///
/// ```
/// use std::io::{Read, Write};
/// use memio_ipc::fifo::{self, End, FifoOptions};
///
/// let path = std::env::temp_dir().join(format!("memio-doc-fifo-{}", std::process::id()));
/// let options = FifoOptions::new().mode(0o600).nonblocking(true);
/// options.create(&path)?;
/// let mut reader = options.open(&path, End::Read)?;
/// let mut writer = options.open(&path, End::Write)?;
/// writer.write_all(b"ping")?;
/// let mut buf = [0u8; 4];
/// reader.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"ping");
/// fifo::remove(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FifoOptions {
    mode: u32,
    nonblocking: bool,
}

impl Default for FifoOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl FifoOptions {
    /// Mode 0600, blocking.
    #[must_use]
    pub fn new() -> Self {
        Self {
            mode: DEFAULT_MODE,
            nonblocking: false,
        }
    }

    /// Permission bits of a new FIFO (default 0600; the umask applies).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Open without waiting for the other end (`O_NONBLOCK`): a read end
    /// opens at once, a write end fails with "no such device or address"
    /// while nobody reads. The opened file is then non-blocking too.
    #[must_use]
    pub fn nonblocking(mut self, yes: bool) -> Self {
        self.nonblocking = yes;
        self
    }

    /// Creates a FIFO at `path`; fails if anything exists there.
    ///
    /// # Errors
    /// An OS error naming the path (exists, no such directory, permission
    /// denied).
    #[doc(alias = "mkfifo")]
    ///
    /// # References
    /// [mkfifo(3)](https://man7.org/linux/man-pages/man3/mkfifo.3.html)
    pub fn create(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        rustix::fs::mkfifoat(CWD, path, Mode::from_bits_truncate(self.mode & 0o7777))
            .map_err(|e| error::os("create", &describe(path), e.into()))
    }

    /// Opens one end of the FIFO at `path`. A blocking open waits for the
    /// other end.
    ///
    /// # Errors
    /// `path` is not a FIFO (`InvalidInput`), or an OS error naming it.
    ///
    /// # References
    /// [fifo(7)](https://man7.org/linux/man-pages/man7/fifo.7.html)
    pub fn open(&self, path: impl AsRef<Path>, end: End) -> io::Result<File> {
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
        if self.nonblocking {
            opts.custom_flags(libc::O_NONBLOCK);
        }
        opts.open(path)
            .map_err(|e| error::os("open", &describe(path), e))
    }
}

/// Creates a FIFO at `path` with the default options (mode 0600, the
/// umask applies); see [`FifoOptions::create`].
///
/// # Errors
/// As [`FifoOptions::create`].
pub fn create(path: impl AsRef<Path>) -> io::Result<()> {
    FifoOptions::new().create(path)
}

/// Which end of a FIFO to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The read end.
    Read,
    /// The write end.
    Write,
}

/// Opens one end of the FIFO at `path`, waiting for the other end; see
/// [`FifoOptions::open`] for a non-blocking open.
///
/// # Errors
/// As [`FifoOptions::open`].
pub fn open(path: impl AsRef<Path>, end: End) -> io::Result<File> {
    FifoOptions::new().open(path, end)
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
        let err = FifoOptions::new()
            .nonblocking(true)
            .open(&path, End::Write)
            .unwrap_err();
        assert_eq!(crate::raw_errno(&err), Some(libc::ENXIO));
        let mut r = FifoOptions::new()
            .nonblocking(true)
            .open(&path, End::Read)
            .unwrap();
        let mut w = FifoOptions::new()
            .nonblocking(true)
            .open(&path, End::Write)
            .unwrap();
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
