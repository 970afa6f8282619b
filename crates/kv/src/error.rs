//! The crate's one error type: every case names the store file (and the
//! offset, for damage) so a message stands on its own.

use std::io;
use std::path::PathBuf;

/// What went wrong with a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An OS call failed; the message names the file and the action.
    #[error("{path}: {action}: {source}", path = .path.display())]
    Io {
        /// The store file.
        path: PathBuf,
        /// What was being done (`open`, `fdatasync`, ...).
        action: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file exists but is not a memio-kv store.
    #[error("{path}: not a memio-kv store ({why})", path = .path.display())]
    NotAStore {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        why: String,
    },
    /// The store was written by a newer format version than this build reads.
    #[error(
        "{path}: store format version {found} is newer than this build reads (up to {supported})",
        path = .path.display()
    )]
    FutureVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Bytes that were committed do not check out.
    #[error("{path}: corrupt at offset {offset}: {what}", path = .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong there.
        what: String,
    },
    /// A key, value or batch is larger than the format allows.
    #[error("{what} of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge {
        /// `key`, `value` or `batch`.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A write was asked of a handle opened read-only.
    #[error("{path}: store is open read-only", path = .path.display())]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },
    /// The store would grow past the handle's mapping reservation.
    #[error(
        "{path}: store would grow to {need} bytes, past this handle's max_size of {max} bytes (reopen with a larger Options::max_size)",
        path = .path.display()
    )]
    Full {
        /// The file.
        path: PathBuf,
        /// Size the commit needs.
        need: u64,
        /// The handle's limit.
        max: u64,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            path,
            action,
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, offset: u64, what: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.into(),
            offset,
            what: what.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_offset() {
        let e = Error::corrupt("/tmp/s.kv", 4128, "group checksum mismatch");
        assert_eq!(
            e.to_string(),
            "/tmp/s.kv: corrupt at offset 4128: group checksum mismatch"
        );
        let e = Error::FutureVersion {
            path: "a.kv".into(),
            found: 9,
            supported: 1,
        };
        assert_eq!(
            e.to_string(),
            "a.kv: store format version 9 is newer than this build reads (up to 1)"
        );
        let e = Error::io("a.kv", "fdatasync")(io::Error::from_raw_os_error(5));
        assert!(e.to_string().starts_with("a.kv: fdatasync: "), "{e}");
    }
}
