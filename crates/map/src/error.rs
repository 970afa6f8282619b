//! Errors that name their object and keep the errno.
//!
//! Every OS failure in memio reads as `failed to open message queue '/jobs':
//! permission denied`: what was being done to which object, then the
//! kernel's reason in lowercase without Rust's "(os error N)" suffix. The
//! [`io::ErrorKind`] and the raw errno survive underneath, so a caller can
//! still match on them with [`io::Error::kind`] or [`raw_errno`]:
//!
//! ```
//! use std::io;
//! use memio_map::error::{OsError, raw_errno};
//!
//! let err: io::Error = OsError::failed(
//!     "open",
//!     "message queue '/jobs'",
//!     io::Error::from_raw_os_error(libc::EACCES),
//! )
//! .into();
//! assert_eq!(err.to_string(), "failed to open message queue '/jobs': permission denied");
//! assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
//! assert_eq!(raw_errno(&err), Some(libc::EACCES));
//! ```
//!
//! The memio crates above this one (memio-io, memio-ipc, memio-kv, the
//! CLI) build their OS errors with [`OsError`] and print them with
//! [`describe`], so there is one way to word an error and one place that
//! strips the suffix.

use std::fmt::{self, Display};
use std::io;

/// An OS error with the operation and object it concerns.
///
/// It displays as `<what>: <reason><hint>` and converts into an
/// [`io::Error`] of the source's kind, with itself as the inner error, so
/// [`raw_errno`] finds the errno again.
#[derive(Debug)]
pub struct OsError {
    what: String,
    /// The action and object of [`OsError::failed`], kept apart so a
    /// front end can word the error its own way.
    parts: Option<(String, String)>,
    hint: String,
    source: io::Error,
}

impl OsError {
    /// `source` about `what` (`"failed to map 'data.bin'"`, or just an
    /// object such as `"'data.bin': user.tag"`).
    pub fn new(what: impl Display, source: io::Error) -> Self {
        Self {
            what: what.to_string(),
            parts: None,
            hint: String::new(),
            source,
        }
    }

    /// `source` while doing `action` to `object`: reads
    /// `failed to <action> <object>: <reason>`.
    pub fn failed(action: &str, object: impl Display, source: io::Error) -> Self {
        let object = object.to_string();
        Self {
            parts: Some((action.to_owned(), object.clone())),
            ..Self::new(format_args!("failed to {action} {object}"), source)
        }
    }

    /// The action of an error made by [`OsError::failed`] (`"create"`).
    #[must_use]
    pub fn action(&self) -> Option<&str> {
        self.parts.as_ref().map(|(a, _)| a.as_str())
    }

    /// The object of an error made by [`OsError::failed`]
    /// (`"message queue '/jobs'"`).
    #[must_use]
    pub fn object(&self) -> Option<&str> {
        self.parts.as_ref().map(|(_, o)| o.as_str())
    }

    /// The reason: the OS error in memio's words, then the hint.
    #[must_use]
    pub fn reason(&self) -> String {
        format!("{}{}", describe(&self.source), self.hint)
    }

    /// The `OsError` inside `err`, at any depth of wrapping.
    #[must_use]
    pub fn find(err: &io::Error) -> Option<&OsError> {
        let inner = err.get_ref()?;
        if let Some(os) = inner.downcast_ref::<OsError>() {
            return Some(os);
        }
        let mut source = inner.source();
        while let Some(e) = source {
            if let Some(os) = e.downcast_ref::<OsError>() {
                return Some(os);
            }
            // An io::Error's `source` skips its own inner error: look in it.
            if let Some(found) = e.downcast_ref::<io::Error>().and_then(Self::find) {
                return Some(found);
            }
            source = e.source();
        }
        None
    }

    /// The same error with `hint` after the reason, e.g.
    /// `" (RLIMIT_MEMLOCK is 8 MiB; raise it with `ulimit -l`)"`.
    #[must_use]
    pub fn hint(mut self, hint: impl Display) -> Self {
        self.hint = hint.to_string();
        self
    }

    /// What was being done, to which object.
    #[must_use]
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The kind of the OS error underneath.
    #[must_use]
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The errno underneath, if the failure came from the OS.
    #[must_use]
    pub fn raw_os_error(&self) -> Option<i32> {
        raw_errno(&self.source)
    }
}

impl Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}{}", self.what, describe(&self.source), self.hint)
    }
}

impl std::error::Error for OsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<OsError> for io::Error {
    fn from(err: OsError) -> Self {
        io::Error::new(err.kind(), err)
    }
}

/// The errno of `err`, whether it comes straight from the OS or wraps an
/// [`OsError`] (at any depth) that names the object.
#[must_use]
pub fn raw_errno(err: &io::Error) -> Option<i32> {
    err.raw_os_error().or_else(|| {
        let inner = err.get_ref()?;
        if let Some(os) = inner.downcast_ref::<OsError>() {
            os.raw_os_error()
        } else {
            inner.downcast_ref::<Worded>().and_then(|w| w.errno)
        }
    })
}

/// An error's message in memio's style: Rust's "(os error N)" suffix
/// dropped and the first letter lowercase (`no such file or directory`).
#[must_use]
pub fn describe(err: &io::Error) -> String {
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

/// `err` with `what` in front: `"{what}: {reason}"`, the kind and the errno
/// kept (an error that carries no errno keeps its message as the reason).
pub(crate) fn context(err: &io::Error, what: impl Display) -> io::Error {
    OsError::new(what, copy(err)).into()
}

/// A copy of `err` that keeps what a caller matches on: the errno (found
/// through [`raw_errno`] at any depth) and the kind, with the message as
/// [`describe`] words it.
fn copy(err: &io::Error) -> io::Error {
    match (err.get_ref(), raw_errno(err)) {
        (None, Some(errno)) => io::Error::from_raw_os_error(errno),
        (_, errno) => io::Error::new(
            err.kind(),
            Worded {
                text: describe(err),
                errno,
            },
        ),
    }
}

/// An error already worded in full, carrying the errno of the error it
/// was copied from for [`raw_errno`].
#[derive(Debug)]
struct Worded {
    text: String,
    errno: Option<i32>,
}

impl Display for Worded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Worded {}

/// An `InvalidInput` error with `why` as its message.
pub(crate) fn invalid(why: impl Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_string())
}

/// A locking error; when the kernel refused for lack of `RLIMIT_MEMLOCK`,
/// the message says so with the current limit.
/// [`context`] for a call that asked for executable pages (`exec`): when
/// the kernel answers `EACCES` or `EPERM`, the message says that executable
/// pages are what it refused, and the usual reasons.
pub(crate) fn exec_context(err: &io::Error, exec: bool, what: impl Display) -> io::Error {
    if !exec || !matches!(raw_errno(err), Some(libc::EACCES | libc::EPERM)) {
        return context(err, what);
    }
    OsError::new(what, copy(err))
        .hint(
            " (the kernel refuses executable pages here: the file is on a noexec mount, or a \
             W^X policy such as SELinux execmem or PaX MPROTECT forbids them, or writable and \
             executable at once)",
        )
        .into()
}

pub(crate) fn memlock_context(err: &io::Error, len: usize) -> io::Error {
    memlock_error(err, format_args!("failed to lock {len} bytes in memory"))
}

/// [`memlock_context`] about `what` (`failed to lock all memory`).
pub(crate) fn memlock_error(err: &io::Error, what: impl Display) -> io::Error {
    let limit = crate::system::memlock_limit();
    let refused = matches!(
        raw_errno(err),
        Some(libc::ENOMEM | libc::EPERM | libc::EAGAIN)
    );
    let hint = match limit {
        Some(limit) if refused => format!(
            " (RLIMIT_MEMLOCK is {}; raise it with `ulimit -l` or CAP_IPC_LOCK)",
            crate::system::human(limit)
        ),
        None if refused => String::from(" (RLIMIT_MEMLOCK is unlimited; memory is short)"),
        _ => String::new(),
    };
    OsError::new(what, copy(err)).hint(hint).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_keeps_action_and_object_apart_and_find_digs_them_out() {
        let err: io::Error = OsError::failed(
            "create",
            "message queue '/jobs'",
            io::Error::from_raw_os_error(libc::EEXIST),
        )
        .hint(" (try --open-or-create)")
        .into();
        let os = OsError::find(&err).unwrap();
        assert_eq!(os.action(), Some("create"));
        assert_eq!(os.object(), Some("message queue '/jobs'"));
        assert_eq!(os.reason(), "file exists (try --open-or-create)");
        // Display is unchanged.
        assert_eq!(
            err.to_string(),
            "failed to create message queue '/jobs': file exists (try --open-or-create)"
        );
        let plain: io::Error = OsError::new("'x': user.a", io::Error::from_raw_os_error(2)).into();
        assert_eq!(OsError::find(&plain).unwrap().action(), None);
        assert!(OsError::find(&io::Error::from_raw_os_error(2)).is_none());
    }

    #[test]
    fn context_keeps_the_errno_and_the_message() {
        let err = io::Error::from_raw_os_error(libc::ENODEV);
        let named = context(&err, "failed to map 'data.bin'");
        assert_eq!(
            named.to_string(),
            "failed to map 'data.bin': no such device"
        );
        assert_eq!(named.kind(), err.kind());
        assert_eq!(raw_errno(&named), Some(libc::ENODEV));
        // Named twice: the message nests, the errno still comes through.
        let twice = context(&named, "'data.bin'");
        assert_eq!(
            twice.to_string(),
            "'data.bin': failed to map 'data.bin': no such device"
        );
        assert_eq!(raw_errno(&twice), Some(libc::ENODEV));
        // An error without an errno keeps its kind and words.
        let plain = context(&invalid("Bad length"), "'x'");
        assert_eq!(plain.to_string(), "'x': bad length");
        assert_eq!(plain.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(raw_errno(&plain), None);
    }

    #[test]
    fn memlock_errors_keep_the_errno_after_the_hint() {
        let err = memlock_context(&io::Error::from_raw_os_error(libc::EPERM), 4096);
        assert_eq!(raw_errno(&err), Some(libc::EPERM));
        assert!(
            err.to_string()
                .starts_with("failed to lock 4096 bytes in memory: operation not permitted ("),
            "{err}"
        );
    }

    #[test]
    fn refused_executable_pages_say_why_and_keep_the_errno() {
        for errno in [libc::EACCES, libc::EPERM] {
            let err = exec_context(
                &io::Error::from_raw_os_error(errno),
                true,
                "failed to protect 4096 bytes of 'code.bin' as ReadExecute",
            );
            assert_eq!(raw_errno(&err), Some(errno));
            let text = err.to_string();
            assert!(
                text.starts_with("failed to protect 4096 bytes of 'code.bin' as ReadExecute: "),
                "{text}"
            );
            assert!(text.contains("refuses executable pages here"), "{text}");
            assert!(text.contains("noexec mount"), "{text}");
            assert!(text.contains("W^X"), "{text}");
        }
        // Not about execution, or another errno: no hint.
        let plain = exec_context(&io::Error::from_raw_os_error(libc::EACCES), false, "x");
        assert_eq!(plain.to_string(), "x: permission denied");
        let nomem = exec_context(&io::Error::from_raw_os_error(libc::ENOMEM), true, "x");
        assert_eq!(nomem.to_string(), "x: cannot allocate memory");
    }

    #[test]
    fn a_failed_map_keeps_the_errno_of_the_call() {
        let err = crate::MapOptions::new()
            .map_path("/nonexistent/memio-map-errno")
            .unwrap_err();
        assert_eq!(raw_errno(&err), Some(libc::ENOENT));
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains("'/nonexistent/memio-map-errno'"),
            "{err}"
        );
    }

    #[test]
    fn describe_drops_the_suffix_and_lowercases() {
        assert_eq!(
            describe(&io::Error::from_raw_os_error(libc::ENOENT)),
            "no such file or directory"
        );
        assert_eq!(describe(&io::Error::other("")), "unknown error");
    }
}
