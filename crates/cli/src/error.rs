//! One error type for every command, printed once as `memio: <object>: <why>`.

use std::fmt;
use std::io;

pub(crate) use memio::map::error::describe;

/// Exit status for success.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit status for a negative result: not found, conflict, check failed.
pub(crate) const EXIT_NEGATIVE: u8 = 1;
/// Exit status for an error or a usage mistake.
pub(crate) const EXIT_ERROR: u8 = 2;

/// What a command reports when it cannot do its job.
#[derive(Debug)]
pub(crate) struct CliError {
    /// The thing the error concerns: a path, a queue name, an option.
    pub(crate) object: String,
    /// Why it failed, lowercase, no trailing period.
    pub(crate) why: String,
    /// The process exit status to leave with.
    pub(crate) code: u8,
    /// Set when the failure was a write to a closed stdout: the reader went
    /// away, which is not an error for a command-line tool.
    pub(crate) broken_pipe: bool,
}

impl CliError {
    /// An error about `object` that exits with status 2.
    pub(crate) fn new(object: impl fmt::Display, why: impl fmt::Display) -> Self {
        Self {
            object: object.to_string(),
            why: why.to_string(),
            code: EXIT_ERROR,
            broken_pipe: false,
        }
    }

    /// A negative result about `object` (exit status 1): not found, conflict.
    pub(crate) fn negative(object: impl fmt::Display, why: impl fmt::Display) -> Self {
        Self {
            code: EXIT_NEGATIVE,
            ..Self::new(object, why)
        }
    }

    /// An operating-system error about `object`.
    pub(crate) fn io(object: impl fmt::Display, err: &io::Error) -> Self {
        Self {
            broken_pipe: err.kind() == io::ErrorKind::BrokenPipe,
            ..Self::new(object, describe(err))
        }
    }

    /// An error from a memio library call, worded `<object>: cannot
    /// <action>: <reason>` when the library named both (an `OsError` made
    /// by `failed`), else as the library words it. "Already exists" is a
    /// conflict and exits 1, as a lock held elsewhere does.
    pub(crate) fn os(err: &io::Error) -> Self {
        const EEXIST: i32 = 17;
        let exists = memio::map::error::raw_errno(err) == Some(EEXIST);
        let found = memio::map::error::OsError::find(err);
        let mut e = match found.and_then(|os| Some((os, os.action()?, os.object()?))) {
            Some((os, action, object)) => {
                let reason = if exists {
                    String::from("already exists")
                } else {
                    os.reason()
                };
                Self::new(object, format!("cannot {action}: {reason}"))
            }
            None => Self::io("", err),
        };
        e.broken_pipe = err.kind() == io::ErrorKind::BrokenPipe;
        if exists {
            e.code = EXIT_NEGATIVE;
        }
        e
    }

    /// The same error with another exit status.
    #[must_use]
    pub(crate) fn with_code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.object.is_empty() {
            f.write_str(&self.why)
        } else {
            write!(f, "{}: {}", self.object, self.why)
        }
    }
}

/// An I/O error that reached a command's `?`: it names its own object
/// (memio's errors carry it, reworded by [`CliError::os`] as
/// `'/x': cannot open: …`; stdout's read `stdout: …`, see
/// [`crate::output::stdout`]).
/// A closed pipe is recognised so `main` can exit quietly with status 0.
impl From<io::Error> for CliError {
    fn from(err: io::Error) -> Self {
        Self::os(&err)
    }
}

/// The result type of every command.
pub(crate) type CliResult<T = u8> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_like_the_rest_of_memio() {
        let err = io::Error::from_raw_os_error(2);
        let e = CliError::io("/tmp/x", &err);
        assert_eq!(e.to_string(), "/tmp/x: no such file or directory");
        assert_eq!(e.code, EXIT_ERROR);
        assert!(!e.broken_pipe);
    }

    #[test]
    fn io_errors_through_question_mark_name_their_own_object() {
        let err: io::Error = memio::map::error::OsError::failed(
            "open",
            "'/nonexistent/x'",
            io::Error::from_raw_os_error(2), // ENOENT
        )
        .into();
        let e = CliError::from(err);
        assert_eq!(
            e.to_string(),
            "'/nonexistent/x': cannot open: no such file or directory"
        );
        assert_eq!(e.code, EXIT_ERROR);
    }

    #[test]
    fn already_exists_is_a_conflict_worded_object_first() {
        let err: io::Error = memio::map::error::OsError::failed(
            "create",
            "message queue '/jobs'",
            io::Error::from_raw_os_error(17), // EEXIST
        )
        .into();
        let e = CliError::os(&err);
        assert_eq!(
            e.to_string(),
            "message queue '/jobs': cannot create: already exists"
        );
        assert_eq!(e.code, EXIT_NEGATIVE);
    }

    #[test]
    fn broken_pipe_is_recognised() {
        let e: CliError = io::Error::from(io::ErrorKind::BrokenPipe).into();
        assert!(e.broken_pipe);
    }
}
