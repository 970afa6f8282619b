//! Extended attributes: name/value pairs attached to files.
//!
//! A [`Target`] says which object to act on: a path (following a final
//! symlink), the symlink itself, or an open file. [`Target::get`],
//! [`Target::set`] (with [`SetMode::Create`] / [`SetMode::Replace`]),
//! [`Target::list`] and [`Target::remove`] wrap the `*xattr(2)` calls and
//! turn the errnos into [`Error`] cases that say what happened. The [`dump`]
//! module reads and writes the text format of `getfattr --dump` /
//! `setfattr --restore`.
//!
//! Names carry a namespace prefix: `user.` (any file you may write; not on
//! symlinks or devices), `trusted.` (root only), `security.` (LSM labels,
//! capabilities) and `system.` (ACLs).
//!
//! ```
//! use memio_io::Error;
//! use memio_io::xattr::{SetMode, Target};
//! # let path = std::env::temp_dir().join(format!("memio-doc-xattr-{}", std::process::id()));
//! # std::fs::write(&path, b"")?;
//! let file = Target::Path(&path);
//! match file.set("user.comment", b"This is a test comment", SetMode::Create) {
//!     Ok(()) => {
//!         assert_eq!(file.get("user.comment")?, b"This is a test comment");
//!         assert!(matches!(file.set("user.comment", b"x", SetMode::Create), Err(Error::Exists { .. })));
//!         file.remove("user.comment")?;
//!         assert!(matches!(file.get("user.comment"), Err(Error::NoSuchAttribute { .. })));
//!     }
//!     Err(Error::NotSupported { .. }) => {} // e.g. a tmpfs without user xattrs
//!     Err(e) => return Err(e.into()),
//! }
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod dump;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use memio_map::error::OsError;
use rustix::fs::XattrFlags;

use crate::Error;

/// The namespaces Linux knows, with their prefixes.
pub const NAMESPACES: [&str; 4] = ["user.", "trusted.", "security.", "system."];

/// The largest value Linux accepts for one attribute (`XATTR_SIZE_MAX`);
/// filesystems may allow less (ext4: one block).
pub const VALUE_MAX: usize = 65536;

/// Which object the attribute calls act on.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A path; a final symlink is followed (`getxattr`, `setxattr`, ...).
    Path(&'a Path),
    /// A path; a final symlink is acted on itself (`lgetxattr`, ...).
    NoFollow(&'a Path),
    /// An open file (`fgetxattr`, ...).
    Fd(BorrowedFd<'a>),
}

impl<'a> Target<'a> {
    /// An open file as a target.
    pub fn fd(file: &'a impl AsFd) -> Self {
        Target::Fd(file.as_fd())
    }
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Path(p) | Target::NoFollow(p) => write!(f, "{}", p.display()),
            Target::Fd(fd) => write!(f, "descriptor {}", fd.as_raw_fd()),
        }
    }
}

/// How [`Target::set`] treats an attribute that exists, or does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetMode {
    /// Create it or replace its value.
    #[default]
    Any,
    /// Create it; fail with [`Error::Exists`] if it is there (`XATTR_CREATE`).
    Create,
    /// Replace it; fail with [`Error::NoSuchAttribute`] if it is not there
    /// (`XATTR_REPLACE`).
    Replace,
}

/// The crate's error for an attribute call that failed with `err`: the
/// cases callers tell apart, or an OS error naming the file and attribute.
fn from_errno(err: io::Error, target: &Target<'_>, name: &str, len: usize) -> Error {
    let object = target.to_string();
    let name = name.to_owned();
    match err.raw_os_error() {
        Some(libc::ENODATA) => Error::NoSuchAttribute { object, name },
        Some(libc::EEXIST) => Error::Exists { object, name },
        Some(libc::EOPNOTSUPP) => Error::NotSupported {
            object,
            why: if name.starts_with("user.") {
                "the filesystem has no user attributes, or the file is a symlink or device"
            } else {
                "the filesystem does not support this namespace"
            },
            name,
        },
        Some(libc::E2BIG | libc::ENOSPC) => Error::ValueTooLarge { object, name, len },
        Some(libc::ERANGE) if len > 0 => Error::ValueTooLarge { object, name, len },
        errno => Error::Io(
            OsError::new(format_args!("{object}{}", named(&name)), err)
                .hint(eperm_hint(errno, &name))
                .into(),
        ),
    }
}

/// `: name` after the object, or nothing for whole-file operations (a
/// listing) that concern no single attribute.
pub(crate) fn named(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(": {name}")
    }
}

/// Where `EPERM` has a specific reason for attribute `name`, that reason
/// in parentheses, to follow "operation not permitted".
fn eperm_hint(errno: Option<i32>, name: &str) -> &'static str {
    if errno != Some(libc::EPERM) {
        return "";
    }
    if name.starts_with("user.") {
        " (user. attributes exist only on regular files and directories, and not on \
         immutable or append-only ones)"
    } else if name.starts_with("trusted.") || name.starts_with("security.") {
        " (this namespace needs CAP_SYS_ADMIN)"
    } else {
        ""
    }
}

/// Whether `name` has a namespace prefix (and more after it), no NUL, and
/// a length the kernel takes (255 bytes).
#[must_use]
pub fn valid_name(name: &str) -> bool {
    name.len() <= 255
        && NAMESPACES
            .iter()
            .any(|ns| name.len() > ns.len() && name.starts_with(ns))
        && !name.contains('\0')
}

/// Checks that `name` has a namespace prefix and a length the kernel takes.
fn check_name(target: &Target<'_>, name: &str) -> Result<(), Error> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(Error::BadName {
            object: target.to_string(),
            name: name.to_owned(),
        })
    }
}

impl Target<'_> {
    /// The value of attribute `name`.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchAttribute`], [`Error::NotSupported`],
    /// [`Error::BadName`], or [`Error::Io`] (no such file, no permission).
    ///
    /// # References
    ///
    /// - [getxattr(2)](https://man7.org/linux/man-pages/man2/getxattr.2.html)
    #[doc(alias = "getxattr")]
    #[doc(alias = "lgetxattr")]
    #[doc(alias = "fgetxattr")]
    pub fn get(&self, name: &str) -> Result<Vec<u8>, Error> {
        check_name(self, name)?;
        let err = |e: rustix::io::Errno| from_errno(e.into(), self, name, 0);
        // The value may grow between asking its size and reading it: retry
        // on ERANGE with the new size.
        loop {
            let size = match self {
                Target::Path(p) => rustix::fs::getxattr_query(*p, name),
                Target::NoFollow(p) => rustix::fs::lgetxattr_query(*p, name),
                Target::Fd(fd) => rustix::fs::fgetxattr_query(fd, name),
            }
            .map_err(err)?;
            let mut buf = vec![0u8; size];
            let got = match self {
                Target::Path(p) => rustix::fs::getxattr(*p, name, &mut buf[..]),
                Target::NoFollow(p) => rustix::fs::lgetxattr(*p, name, &mut buf[..]),
                Target::Fd(fd) => rustix::fs::fgetxattr(fd, name, &mut buf[..]),
            };
            match got {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(rustix::io::Errno::RANGE) => {}
                Err(e) => return Err(err(e)),
            }
        }
    }

    /// Sets attribute `name` to `value`.
    ///
    /// # Errors
    ///
    /// [`Error::Exists`] (create-only), [`Error::NoSuchAttribute`]
    /// (replace-only), [`Error::ValueTooLarge`], [`Error::NotSupported`],
    /// [`Error::BadName`], or [`Error::Io`].
    ///
    /// # References
    ///
    /// - [setxattr(2)](https://man7.org/linux/man-pages/man2/setxattr.2.html)
    #[doc(alias = "setxattr")]
    #[doc(alias = "lsetxattr")]
    #[doc(alias = "fsetxattr")]
    pub fn set(&self, name: &str, value: &[u8], mode: SetMode) -> Result<(), Error> {
        check_name(self, name)?;
        if value.len() > VALUE_MAX {
            return Err(Error::ValueTooLarge {
                object: self.to_string(),
                name: name.to_owned(),
                len: value.len(),
            });
        }
        let flags = match mode {
            SetMode::Any => XattrFlags::empty(),
            SetMode::Create => XattrFlags::CREATE,
            SetMode::Replace => XattrFlags::REPLACE,
        };
        match self {
            Target::Path(p) => rustix::fs::setxattr(*p, name, value, flags),
            Target::NoFollow(p) => rustix::fs::lsetxattr(*p, name, value, flags),
            Target::Fd(fd) => rustix::fs::fsetxattr(fd, name, value, flags),
        }
        .map_err(|e| from_errno(e.into(), self, name, value.len()))
    }

    /// Removes attribute `name`.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchAttribute`], [`Error::NotSupported`],
    /// [`Error::BadName`], or [`Error::Io`].
    ///
    /// # References
    ///
    /// - [removexattr(2)](https://man7.org/linux/man-pages/man2/removexattr.2.html)
    #[doc(alias = "removexattr")]
    #[doc(alias = "lremovexattr")]
    #[doc(alias = "fremovexattr")]
    pub fn remove(&self, name: &str) -> Result<(), Error> {
        check_name(self, name)?;
        match self {
            Target::Path(p) => rustix::fs::removexattr(*p, name),
            Target::NoFollow(p) => rustix::fs::lremovexattr(*p, name),
            Target::Fd(fd) => rustix::fs::fremovexattr(fd, name),
        }
        .map_err(|e| from_errno(e.into(), self, name, 0))
    }

    /// The names of every attribute this process may see, in the kernel's
    /// order (`user.` names need read access; `trusted.` names need root).
    ///
    /// # Errors
    ///
    /// [`Error::NotSupported`] or [`Error::Io`].
    ///
    /// # References
    ///
    /// - [listxattr(2)](https://man7.org/linux/man-pages/man2/listxattr.2.html)
    #[doc(alias = "listxattr")]
    #[doc(alias = "llistxattr")]
    #[doc(alias = "flistxattr")]
    pub fn list(&self) -> Result<Vec<OsString>, Error> {
        let err = |e: rustix::io::Errno| from_errno(e.into(), self, "", 0);
        loop {
            let size = match self {
                Target::Path(p) => rustix::fs::listxattr_query(*p),
                Target::NoFollow(p) => rustix::fs::llistxattr_query(*p),
                Target::Fd(fd) => rustix::fs::flistxattr_query(fd),
            }
            .map_err(err)?;
            let mut buf = vec![0u8; size];
            let got = match self {
                Target::Path(p) => rustix::fs::listxattr(*p, &mut buf[..]),
                Target::NoFollow(p) => rustix::fs::llistxattr(*p, &mut buf[..]),
                Target::Fd(fd) => rustix::fs::flistxattr(fd, &mut buf[..]),
            };
            match got {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf
                        .split(|&b| b == 0)
                        .filter(|n| !n.is_empty())
                        .map(|n| OsString::from_vec(n.to_vec()))
                        .collect());
                }
                Err(rustix::io::Errno::RANGE) => {}
                Err(e) => return Err(err(e)),
            }
        }
    }

    /// Every attribute with its value, names sorted, skipping any that
    /// vanish between listing and reading.
    ///
    /// # Errors
    ///
    /// As [`Target::list`] and [`Target::get`].
    pub fn all(&self) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let mut names: Vec<String> = self
            .list()?
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match self.get(&name) {
                Ok(v) => out.push((name, v)),
                Err(Error::NoSuchAttribute { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_without_a_namespace_are_refused_before_the_kernel_sees_them() {
        let t = Target::Path(Path::new("/nonexistent"));
        for bad in ["comment", "user.", "", "USER.x", "user.a\0b"] {
            assert!(
                matches!(t.get(bad), Err(Error::BadName { .. })),
                "{bad:?} accepted"
            );
        }
        let long = format!("user.{}", "x".repeat(260));
        assert!(matches!(
            t.set(&long, b"", SetMode::Any),
            Err(Error::BadName { .. })
        ));
    }

    #[test]
    fn errors_name_the_file_and_the_attribute() {
        let t = Target::Path(Path::new("/nonexistent/memio"));
        let e = t.get("user.x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let text = e.to_string();
        assert!(text.starts_with("/nonexistent/memio: user.x: "), "{text}");
    }

    #[test]
    fn values_over_the_linux_limit_are_too_large() {
        let t = Target::Path(Path::new("/"));
        let big = vec![0u8; VALUE_MAX + 1];
        assert!(matches!(
            t.set("user.big", &big, SetMode::Any),
            Err(Error::ValueTooLarge { len, .. }) if len == VALUE_MAX + 1
        ));
    }
}
