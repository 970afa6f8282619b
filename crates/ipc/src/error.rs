//! The crate's error type: OS failures with the object named, plus the cases
//! callers must tell apart (a bad name, a message too large, a kernel limit).

use std::fmt;
use std::io;

pub use memio_map::error::{OsError, raw_errno};

/// What went wrong with an IPC object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A POSIX IPC name does not follow the rules (`/name`, one slash,
    /// length limit, no NUL).
    #[error("invalid name '{name}': {why}")]
    NameInvalid {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// A message is larger than the queue accepts.
    #[error("message of {len} bytes is larger than the {max}-byte limit of {object}")]
    TooLarge {
        /// The queue, named as in other messages (`message queue '/jobs'`).
        object: String,
        /// The message length.
        len: usize,
        /// The largest message the queue takes.
        max: usize,
    },
    /// A receive buffer is too small for the queue's messages.
    #[error(
        "buffer of {len} bytes is too small for the messages of {object} (up to {needed} bytes)"
    )]
    BufferTooSmall {
        /// The queue.
        object: String,
        /// The buffer length.
        len: usize,
        /// A length that always suffices: the queue's message size (POSIX)
        /// or the system's largest message (System V).
        needed: usize,
    },
    /// The kernel refused the requested attributes because a system limit
    /// is lower: the error names the limit's file and its value.
    #[error("cannot create {object} with {what} {requested}: the system limit is {limit} ({path})")]
    Limit {
        /// The object being created.
        object: String,
        /// Which attribute (`max messages`, `message size`).
        what: &'static str,
        /// The value asked for.
        requested: u64,
        /// The limit's value as the kernel reports it.
        limit: u64,
        /// Where the limit lives, e.g. `/proc/sys/fs/mqueue/msg_max`.
        path: &'static str,
    },
    /// The other side of a channel or a call is gone: every endpoint of it
    /// exited or was killed, or a server stopped answering.
    #[error("{object}: the {peer} is gone (it exited or was killed)")]
    PeerGone {
        /// The channel or queue.
        object: String,
        /// Which side is gone (`sender`, `receiver`, `server`).
        peer: &'static str,
    },
    /// An object is not what it should be: not a channel, another layout
    /// version, a header or message that breaks the format.
    #[error("{object} is not usable: {why}")]
    Corrupt {
        /// The object.
        object: String,
        /// What is wrong with it.
        why: String,
    },
    /// An object has all the users it admits.
    #[error("{object} is busy: {why}")]
    Busy {
        /// The object.
        object: String,
        /// Who holds it.
        why: String,
    },
    /// A call's deadline passed before its reply came.
    #[error("{object}: no reply within {waited:?}")]
    TimedOut {
        /// The queue or service called.
        object: String,
        /// How long the call waited.
        waited: std::time::Duration,
    },
    /// A server answered a call with an error.
    #[error("{object}: {message}")]
    Remote {
        /// The service called.
        object: String,
        /// The server's error text.
        message: String,
    },
    /// An operating-system failure; the message names the object.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Io(e) => e,
            Error::NameInvalid { .. } | Error::TooLarge { .. } | Error::BufferTooSmall { .. } => {
                io::Error::new(io::ErrorKind::InvalidInput, err.to_string())
            }
            Error::Limit { .. } | Error::Remote { .. } => io::Error::other(err.to_string()),
            Error::PeerGone { .. } => io::Error::new(io::ErrorKind::BrokenPipe, err.to_string()),
            Error::Corrupt { .. } => io::Error::new(io::ErrorKind::InvalidData, err.to_string()),
            Error::Busy { .. } => io::Error::new(io::ErrorKind::ResourceBusy, err.to_string()),
            Error::TimedOut { .. } => io::Error::new(io::ErrorKind::TimedOut, err.to_string()),
        }
    }
}

/// The result type of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An OS error about `object` while doing `action`, read as
/// `failed to <action> <object>: <reason>`; the error kind and raw errno
/// survive underneath (see [`raw_errno`]).
pub(crate) fn os(action: &str, object: &dyn fmt::Display, err: io::Error) -> io::Error {
    OsError::failed(action, object, err).into()
}

/// [`os`] for the calling thread's `errno`.
pub(crate) fn last(action: &str, object: &dyn fmt::Display) -> io::Error {
    os(action, object, io::Error::last_os_error())
}

impl Error {
    /// The errno behind the failure, when the OS gave one.
    #[must_use]
    pub fn raw_errno(&self) -> Option<i32> {
        match self {
            Error::Io(e) => raw_errno(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_name_the_object_and_keep_the_errno() {
        let err = os(
            "open",
            &"message queue '/jobs'",
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert_eq!(
            err.to_string(),
            "failed to open message queue '/jobs': permission denied"
        );
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(raw_errno(&err), Some(libc::EACCES));
        let crate_err = Error::from(err);
        assert_eq!(crate_err.raw_errno(), Some(libc::EACCES));
        // Through the conversion back to io::Error, too.
        assert_eq!(raw_errno(&io::Error::from(crate_err)), Some(libc::EACCES));
    }

    #[test]
    fn a_failed_open_keeps_the_errno_of_the_call() {
        let name = format!("/memio-test-missing-{}", std::process::id());
        let err = crate::mq::posix::PosixMq::open(&name).unwrap_err();
        assert_eq!(err.raw_errno(), Some(libc::ENOENT));
        assert_eq!(
            err.to_string(),
            format!("failed to open message queue '{name}': no such file or directory")
        );
    }
}
