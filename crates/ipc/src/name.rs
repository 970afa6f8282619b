//! POSIX IPC names: `/name`, one leading slash and no other, 1 to 255
//! bytes after it, no NUL.
//!
//! Message queues, shared-memory objects and named semaphores share these
//! rules (glibc adds `sem.` to a semaphore's file name, so its limit is
//! four bytes shorter).
//!
//! # References
//! - [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html)
//! - [shm_overview(7)](https://man7.org/linux/man-pages/man7/shm_overview.7.html)
//! - [sem_overview(7)](https://man7.org/linux/man-pages/man7/sem_overview.7.html)

use std::ffi::CString;

use crate::error::{Error, Result};

/// The longest name after the slash (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Which namespace a name is checked for: semaphore names are 4 bytes
/// shorter because glibc stores them as `/dev/shm/sem.NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Message queues and shared-memory objects.
    Plain,
    /// Named semaphores.
    Semaphore,
}

/// Checks `name` and returns it as a C string for the syscall.
///
/// # Errors
/// [`Error::NameInvalid`] saying which rule the name breaks.
pub(crate) fn check(name: &str, kind: Kind) -> Result<CString> {
    let bad = |why| Error::NameInvalid {
        name: name.to_owned(),
        why,
    };
    let Some(rest) = name.strip_prefix('/') else {
        return Err(bad("must start with '/'"));
    };
    if rest.is_empty() {
        return Err(bad("must have at least one character after '/'"));
    }
    if rest.contains('/') {
        return Err(bad("must not contain a '/' after the first"));
    }
    if rest == "." || rest == ".." {
        return Err(bad("must not be '.' or '..'"));
    }
    let max = match kind {
        Kind::Plain => NAME_MAX,
        Kind::Semaphore => NAME_MAX - 4,
    };
    if rest.len() > max {
        return Err(match kind {
            Kind::Plain => bad("longer than 255 bytes after '/'"),
            Kind::Semaphore => bad("longer than 251 bytes after '/' (semaphore names)"),
        });
    }
    CString::new(name).map_err(|_| bad("must not contain a NUL byte"))
}

/// Checks a name for a message queue or shared-memory object.
///
/// # Errors
/// [`Error::NameInvalid`] saying which rule the name breaks.
pub fn validate(name: &str) -> Result<()> {
    check(name, Kind::Plain).map(drop)
}

/// Checks a name for a named POSIX semaphore.
///
/// # Errors
/// [`Error::NameInvalid`] saying which rule the name breaks.
pub fn validate_semaphore(name: &str) -> Result<()> {
    check(name, Kind::Semaphore).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(name: &str) -> String {
        validate(name).unwrap_err().to_string()
    }

    #[test]
    fn good_names_pass() {
        validate("/jobs").unwrap();
        validate(&format!("/{}", "a".repeat(255))).unwrap();
        validate_semaphore(&format!("/{}", "a".repeat(251))).unwrap();
    }

    #[test]
    fn bad_names_say_which_rule() {
        assert_eq!(why("jobs"), "invalid name 'jobs': must start with '/'");
        assert!(why("/").contains("at least one character"));
        assert!(why("/a/b").contains("must not contain a '/'"));
        assert!(why("/..").contains("'.' or '..'"));
        assert!(why(&format!("/{}", "a".repeat(256))).contains("longer than 255"));
        assert!(why("/a\0b").contains("NUL"));
        assert!(
            validate_semaphore(&format!("/{}", "a".repeat(252)))
                .unwrap_err()
                .to_string()
                .contains("251")
        );
    }
}
