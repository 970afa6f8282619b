//! The lab's one error type: an object and why it failed, printed by the
//! command line as `memio: <object>: <why>`.

use std::fmt;
use std::io;

pub use memio::map::error::describe;

/// Why a section, a peer or the report could not do its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The thing the error concerns: a path, a peer, an option, a section.
    pub object: String,
    /// Why it failed, lowercase, no trailing period.
    pub why: String,
}

impl Error {
    /// An error about `object`.
    pub fn new(object: impl fmt::Display, why: impl fmt::Display) -> Self {
        Self {
            object: object.to_string(),
            why: why.to_string(),
        }
    }

    /// An operating-system error about `object`, worded like the rest of
    /// memio's messages (lowercase, no "(os error N)").
    pub fn io(object: impl fmt::Display, err: &io::Error) -> Self {
        Self::new(object, describe(err))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.object.is_empty() {
            f.write_str(&self.why)
        } else {
            write!(f, "{}: {}", self.object, self.why)
        }
    }
}

impl std::error::Error for Error {}

/// The result type of the lab.
pub type Result<T = ()> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_like_the_rest_of_memio() {
        let e = Error::io("/tmp/x", &io::Error::from_raw_os_error(2));
        assert_eq!(e.to_string(), "/tmp/x: no such file or directory");
        assert_eq!(Error::new("", "plain").to_string(), "plain");
    }
}
