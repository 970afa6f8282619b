//! The crate's error type: OS failures with the object named, plus the cases
//! callers must tell apart (a bad name, a message too large, a kernel limit).

use std::fmt;
use std::io;

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
            Error::Limit { .. } => io::Error::other(err.to_string()),
        }
    }
}

/// The result type of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An OS error about `object` while doing `action`, read as
/// `failed to <action> <object>: <reason>`; the error kind and raw errno
/// survive as the source so callers can still match on them.
pub(crate) fn os(action: &str, object: &dyn fmt::Display, err: io::Error) -> io::Error {
    io::Error::new(
        err.kind(),
        OsError {
            action: action.to_owned(),
            object: object.to_string(),
            source: err,
        },
    )
}

/// [`os`] for the calling thread's `errno`.
pub(crate) fn last(action: &str, object: &dyn fmt::Display) -> io::Error {
    os(action, object, io::Error::last_os_error())
}

/// An OS error with the operation and object it concerns.
#[derive(Debug)]
struct OsError {
    action: String,
    object: String,
    source: io::Error,
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "failed to {} {}: {}",
            self.action,
            self.object,
            describe(&self.source)
        )
    }
}

impl std::error::Error for OsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The errno text in lowercase without Rust's "(os error N)" suffix.
pub(crate) fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    let text = text
        .find(" (os error")
        .map_or(text.as_str(), |at| &text[..at]);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::from("unknown error"),
    }
}

/// The errno of an [`io::Error`] from this crate (which wraps the OS error
/// to name the object) or straight from the OS.
#[must_use]
pub fn raw_errno(err: &io::Error) -> Option<i32> {
    err.raw_os_error().or_else(|| {
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<OsError>())
            .and_then(|e| e.source.raw_os_error())
    })
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
    }
}
