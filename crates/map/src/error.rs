//! Error helpers: every OS error names the object it concerns, keeps its
//! [`io::ErrorKind`], and reads as `failed to map 'data.bin': no such device`.

use std::fmt::Display;
use std::io;

/// `err` with `what` in front: `"{what}: {err}"`, the "(os error N)" suffix
/// dropped and the kind kept.
pub(crate) fn context(err: &io::Error, what: impl Display) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {}", describe(err)))
}

/// An `InvalidInput` error with `why` as its message.
pub(crate) fn invalid(why: impl Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_string())
}

/// A locking error; when the kernel refused for lack of `RLIMIT_MEMLOCK`,
/// the message says so with the current limit.
pub(crate) fn memlock_context(err: &io::Error, len: usize) -> io::Error {
    let limit = crate::system::memlock_limit();
    let refused = matches!(
        err.raw_os_error(),
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
    io::Error::new(
        err.kind(),
        format!(
            "failed to lock {len} bytes in memory: {}{hint}",
            describe(err)
        ),
    )
}

/// An error's message without Rust's "(os error N)" suffix, lowercase first.
pub(crate) fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    let text = text
        .find(" (os error")
        .map_or(text.as_str(), |at| &text[..at]);
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}
