//! The crate's one error type: lock conflicts, attribute cases callers
//! tell apart, and OS failures that name their object and keep the errno.

use std::io;
use std::time::Duration;

use memio_map::error::{describe, raw_errno};

/// What went wrong with a lock, an extended attribute, a copy or a batch
/// read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another owner holds a conflicting lock and the caller would not wait.
    #[error("lock is held by another owner")]
    WouldBlock,
    /// Another owner kept a conflicting lock for the whole timeout.
    #[error("timed out after {0:?} waiting for the lock")]
    TimedOut(Duration),
    /// The kernel refused to wait because the holder is itself waiting for
    /// a lock this process holds (POSIX locks only; `EDEADLK`).
    #[error("deadlock: the holder waits for a lock this process holds, so waiting would never end")]
    Deadlock,
    /// `flock` was asked to lock a byte range.
    #[error("flock locks whole files only: use ofd or posix locks for byte ranges")]
    RangeNeedsRecordLock,
    /// The range does not fit in the kernel's signed 64-bit offsets.
    #[error("byte range {start}+{len} is beyond the largest lockable offset (2^63 - 1)")]
    RangeTooLarge {
        /// Requested first byte.
        start: u64,
        /// Requested length.
        len: u64,
    },
    /// A `flock` conversion failed and the lock held before it could not be
    /// taken back: `flock(2)` releases the old lock before placing the new one.
    #[error("the lock was lost while converting it (flock conversions are not atomic)")]
    Lost,
    /// The filesystem (or this kind of file, e.g. `user.` on a symlink)
    /// does not support the attribute's namespace.
    #[error("{object}: {name}: extended attributes not supported here ({why})")]
    NotSupported {
        /// The file.
        object: String,
        /// The attribute.
        name: String,
        /// Which of the reasons applies, as far as can be told.
        why: &'static str,
    },
    /// The attribute does not exist.
    #[error("{object}: {name}: no such attribute")]
    NoSuchAttribute {
        /// The file.
        object: String,
        /// The attribute.
        name: String,
    },
    /// Create-only was asked and the attribute exists.
    #[error("{object}: {name}: attribute already exists")]
    Exists {
        /// The file.
        object: String,
        /// The attribute.
        name: String,
    },
    /// An attribute value (or the list of names) is larger than the
    /// filesystem holds.
    #[error(
        "{object}{}: value of {len} bytes is too large for this filesystem",
        crate::xattr::named(name)
    )]
    ValueTooLarge {
        /// The file.
        object: String,
        /// The attribute.
        name: String,
        /// The value's size.
        len: usize,
    },
    /// The attribute name has no known namespace prefix or is empty or too
    /// long.
    #[error(
        "{object}: {name}: invalid attribute name (names start with user., trusted., security. or system., at most 255 bytes)"
    )]
    BadName {
        /// The file.
        object: String,
        /// The attribute.
        name: String,
    },
    /// A copy's destination is its source (the same file, or a hard link
    /// to it).
    #[error("'{src}' and '{dst}' are the same file")]
    SameFile {
        /// The source.
        src: String,
        /// The destination.
        dst: String,
    },
    /// A directory copy's destination lies inside the source.
    #[error("cannot copy '{src}' into itself ('{dst}')")]
    IntoItself {
        /// The source directory.
        src: String,
        /// The destination.
        dst: String,
    },
    /// Not a regular file where one is needed (a directory, FIFO, device
    /// or socket).
    #[error("'{path}': not a regular file")]
    NotRegular {
        /// The path.
        path: String,
    },
    /// Verifying a copy found a byte that differs from the source.
    #[error("'{dst}' differs from '{src}' at byte {at}")]
    Mismatch {
        /// The source.
        src: String,
        /// The copy.
        dst: String,
        /// The first differing offset.
        at: u64,
    },
    /// The source ended early: it shrank while being read.
    #[error("'{path}' shrank to {at} bytes while being copied")]
    Changed {
        /// The source.
        path: String,
        /// Where its data ended.
        at: u64,
    },
    /// A file is larger than the limit a batch read was given.
    #[error("'{path}': {size} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Any other operating-system failure. Errors this crate makes name
    /// their object ([`memio_map::error::OsError`]); the errno survives
    /// ([`Error::raw_errno`]).
    #[error("{}", describe(.0))]
    Io(#[from] io::Error),
}

impl Error {
    /// Whether this is a lock conflict (would block or timed out), which
    /// callers usually report differently from a failure.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::WouldBlock | Error::TimedOut(_))
    }

    /// The OS error kind behind the failure, for callers that map errors to
    /// exit statuses.
    #[must_use]
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::WouldBlock => io::ErrorKind::WouldBlock,
            Error::TimedOut(_) => io::ErrorKind::TimedOut,
            Error::Deadlock => io::ErrorKind::Deadlock,
            Error::Lost => io::ErrorKind::Other,
            Error::NotSupported { .. } => io::ErrorKind::Unsupported,
            Error::NoSuchAttribute { .. } => io::ErrorKind::NotFound,
            Error::Exists { .. } => io::ErrorKind::AlreadyExists,
            Error::Mismatch { .. } | Error::Changed { .. } => io::ErrorKind::InvalidData,
            Error::TooLarge { .. } => io::ErrorKind::FileTooLarge,
            Error::RangeNeedsRecordLock
            | Error::SameFile { .. }
            | Error::IntoItself { .. }
            | Error::NotRegular { .. }
            | Error::RangeTooLarge { .. }
            | Error::ValueTooLarge { .. }
            | Error::BadName { .. } => io::ErrorKind::InvalidInput,
            Error::Io(e) => e.kind(),
        }
    }

    /// The errno behind the failure: the OS error's own for
    /// [`Error::Io`], the one a case stands for otherwise (`EDEADLK`,
    /// `ENODATA`, `EEXIST`, `EOPNOTSUPP`); `None` for cases this crate
    /// decides itself.
    #[must_use]
    pub fn raw_errno(&self) -> Option<i32> {
        match self {
            Error::Io(e) => raw_errno(e),
            Error::Deadlock => Some(libc::EDEADLK),
            Error::NoSuchAttribute { .. } => Some(libc::ENODATA),
            Error::Exists { .. } => Some(libc::EEXIST),
            Error::NotSupported { .. } => Some(libc::EOPNOTSUPP),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Io(e) => e,
            other => io::Error::new(other.kind(), other),
        }
    }
}

/// The result type of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use memio_map::error::OsError;

    use super::*;

    #[test]
    fn the_errno_survives_the_crate_error_and_back() {
        let os: io::Error = OsError::failed(
            "lock",
            "'/tmp/x'",
            io::Error::from_raw_os_error(libc::ENOLCK),
        )
        .into();
        let err = Error::from(os);
        assert_eq!(err.raw_errno(), Some(libc::ENOLCK));
        assert_eq!(
            err.to_string(),
            "failed to lock '/tmp/x': no locks available"
        );
        let back = io::Error::from(err);
        assert_eq!(raw_errno(&back), Some(libc::ENOLCK));
        // A bare OS error reads in memio's style too.
        let bare = Error::from(io::Error::from_raw_os_error(libc::EBADF));
        assert_eq!(bare.to_string(), "bad file descriptor");
        assert_eq!(bare.raw_errno(), Some(libc::EBADF));
        assert_eq!(Error::Deadlock.raw_errno(), Some(libc::EDEADLK));
        assert_eq!(
            io::Error::from(Error::WouldBlock).kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn an_attribute_call_keeps_the_errno_and_names_file_and_attribute() {
        let path = std::path::Path::new("/nonexistent/memio-io-errno");
        let err = crate::xattr::Target::Path(path).get("user.x").unwrap_err();
        assert_eq!(err.raw_errno(), Some(libc::ENOENT));
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            err.to_string(),
            "/nonexistent/memio-io-errno: user.x: no such file or directory"
        );
    }
}
