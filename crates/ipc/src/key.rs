//! System V IPC keys: `ftok`-style from a path and a project id, a raw
//! number, or private.
//!
//! # References
//! - [ftok(3)](https://man7.org/linux/man-pages/man3/ftok.3.html)
//! - [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)

use std::fmt;
use std::io;
use std::path::Path;
use std::str::FromStr;

use crate::error;

/// A System V IPC key (`key_t`): the name processes agree on to find the
/// same queue, segment or semaphore set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(i32);

impl Key {
    /// `IPC_PRIVATE`: a new object only this process (and those it hands
    /// the id to) can find.
    pub const PRIVATE: Key = Key(libc::IPC_PRIVATE);

    /// A key from a raw number, as `ipcs` prints it.
    #[must_use]
    pub const fn from_raw(raw: i32) -> Self {
        Self(raw)
    }

    /// The raw `key_t`.
    #[must_use]
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// Whether this is [`Key::PRIVATE`].
    #[must_use]
    pub const fn is_private(self) -> bool {
        self.0 == libc::IPC_PRIVATE
    }

    /// Names the object of kind `what` this key selects, for messages:
    /// `private message queue`, `message queue with key 0x0000abcd`.
    pub(crate) fn describe(self, what: &str) -> String {
        if self.is_private() {
            format!("private {what}")
        } else {
            format!("{what} with key {self}")
        }
    }

    /// Derives a key from an existing file and a project id, exactly as
    /// glibc's `ftok` does: the low 8 bits of `proj_id`, the low 8 bits of
    /// the file's device number and the low 16 bits of its inode number.
    ///
    /// # Errors
    /// The file cannot be examined (`failed to stat key file '<path>': …`),
    /// or `proj_id` is 0 (`ftok` leaves that result unspecified).
    ///
    /// # References
    /// [ftok(3)](https://man7.org/linux/man-pages/man3/ftok.3.html)
    pub fn ftok(path: impl AsRef<Path>, proj_id: u8) -> io::Result<Self> {
        let path = path.as_ref();
        if proj_id == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "invalid project id 0 for key file '{}': use 1 to 255",
                    path.display()
                ),
            ));
        }
        let st = rustix::fs::stat(path).map_err(|e| {
            error::os(
                "stat",
                &format_args!("key file '{}'", path.display()),
                e.into(),
            )
        })?;
        let dev = u32::try_from(st.st_dev & 0xff).unwrap_or(0);
        let ino = u32::try_from(st.st_ino & 0xffff).unwrap_or(0);
        let key = (u32::from(proj_id) << 24) | (dev << 16) | ino;
        Ok(Self(i32::from_ne_bytes(key.to_ne_bytes())))
    }
}

impl fmt::Display for Key {
    /// Prints as `ipcs` does: `0x` and eight hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}", u32::from_ne_bytes(self.0.to_ne_bytes()))
    }
}

impl FromStr for Key {
    type Err = String;

    /// Reads `0x1234abcd` (hex), `1234` (decimal, may be negative) or
    /// `private`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("private") {
            return Ok(Self::PRIVATE);
        }
        let parsed = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            u32::from_str_radix(hex, 16)
                .map(|v| i32::from_ne_bytes(v.to_ne_bytes()))
                .ok()
        } else {
            s.parse::<i32>().ok()
        };
        parsed.map(Self).ok_or_else(|| {
            format!("invalid key '{s}': expected 0x-prefixed hex, a decimal number or 'private'")
        })
    }
}

/// How an open call treats a missing or existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Create {
    /// Open an existing object; fail when it does not exist.
    Open,
    /// Create a new object; fail when it already exists (the safe default).
    #[default]
    Exclusive,
    /// Open the object, creating it when missing: ask for this explicitly.
    OpenOrCreate,
}

impl Create {
    /// The `O_CREAT`/`O_EXCL` (or `IPC_CREAT`/`IPC_EXCL`) bits.
    pub(crate) fn oflags(self) -> i32 {
        match self {
            Create::Open => 0,
            Create::Exclusive => libc::O_CREAT | libc::O_EXCL,
            Create::OpenOrCreate => libc::O_CREAT,
        }
    }

    /// How `*get` treats `key`: a private key always makes a new object
    /// (and names no existing one: [`Create::sysv_get`] refuses it to
    /// [`Create::Open`]).
    pub(crate) fn for_key(self, key: Key) -> Create {
        if key.is_private() {
            Create::Exclusive
        } else {
            self
        }
    }

    /// The System V `IPC_CREAT`/`IPC_EXCL` bits with the permission bits of
    /// a new object (`mode & 0o777`).
    pub(crate) fn ipc_flags(self, mode: u32) -> i32 {
        let create = match self {
            Create::Open => 0,
            Create::Exclusive => libc::IPC_CREAT | libc::IPC_EXCL,
            Create::OpenOrCreate => libc::IPC_CREAT,
        };
        create | i32::try_from(mode & 0o777).unwrap_or(0o600)
    }

    /// Runs a System V `*get` call (`msgget`, `shmget`, `semget`) as
    /// `get(key, flags)` and returns the id: [`Create::for_key`] and
    /// [`Create::ipc_flags`] applied, an interrupted call retried, a failure
    /// naming the object (`what`, e.g. `semaphore set`, with the key).
    /// `empty` says why a new object would be empty (`of 0 bytes`): then
    /// only opening an existing one is allowed.
    pub(crate) fn sysv_get(
        self,
        key: Key,
        mode: u32,
        what: &str,
        empty: Option<&str>,
        get: impl Fn(i32, i32) -> libc::c_int,
    ) -> io::Result<i32> {
        if self == Create::Open && key.is_private() {
            // `IPC_PRIVATE` always makes a new object: opening "the"
            // private one would make one nobody else can reach, and leave
            // it behind.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot open a {}: a private key names no existing object, it only creates one",
                    key.describe(what)
                ),
            ));
        }
        let create = self.for_key(key);
        if let Some(empty) = empty {
            if create != Create::Open {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot create {} {empty}", key.describe(what)),
                ));
            }
        }
        let flags = create.ipc_flags(mode);
        crate::ffi::retry(|| get(key.raw(), flags))
            .map_err(|e| error::os(create.verb(), &key.describe(what), e))
    }

    /// The verb for error messages.
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Create::Open => "open",
            Create::Exclusive => "create",
            Create::OpenOrCreate => "open or create",
        }
    }
}

/// The permission bits new objects get unless the caller widens them:
/// owner read and write only.
pub const DEFAULT_MODE: u32 = 0o600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_keys_always_create_and_read_as_private() {
        let k = Key::from_raw(0xabcd);
        assert_eq!(Create::Open.for_key(k), Create::Open);
        assert_eq!(Create::Open.for_key(Key::PRIVATE), Create::Exclusive);
        assert_eq!(
            k.describe("message queue"),
            "message queue with key 0x0000abcd"
        );
        assert_eq!(
            Key::PRIVATE.describe("semaphore set"),
            "private semaphore set"
        );
        assert_eq!(
            Create::OpenOrCreate.ipc_flags(0o1640),
            libc::IPC_CREAT | 0o640,
            "only the permission bits of the mode pass"
        );
    }

    #[test]
    fn a_private_key_opens_nothing() {
        let e = Create::Open
            .sysv_get(Key::PRIVATE, 0o600, "message queue", None, |_, _| {
                panic!("no msgget for a private key opened")
            })
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("private message queue"), "{e}");
    }

    #[test]
    fn keys_print_and_parse_like_ipcs() {
        let k: Key = "0x0000abcd".parse().unwrap();
        assert_eq!(k.raw(), 0xabcd);
        assert_eq!(k.to_string(), "0x0000abcd");
        assert_eq!("-1".parse::<Key>().unwrap().to_string(), "0xffffffff");
        assert!("private".parse::<Key>().unwrap().is_private());
        assert!(
            "zz".parse::<Key>()
                .unwrap_err()
                .contains("invalid key 'zz'")
        );
    }

    #[test]
    fn ftok_matches_the_c_library() {
        let path = std::env::temp_dir();
        let ours = Key::ftok(&path, 65).unwrap();
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        #[allow(unsafe_code, reason = "comparing with the C library's ftok")]
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        let theirs = unsafe { libc::ftok(c.as_ptr(), 65) };
        assert_eq!(ours.raw(), theirs);
        assert!(
            Key::ftok("/nonexistent/memio", 1)
                .unwrap_err()
                .to_string()
                .contains("'/nonexistent/memio'")
        );
        assert!(Key::ftok(&path, 0).is_err());
    }
}
