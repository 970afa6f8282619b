//! File copies through four kernel paths behind one call.
//!
//! [`CopyOptions::copy`] copies one regular file:
//!
//! - **Engines** ([`Method`]): `copy_file_range(2)` (the default: the
//!   kernel moves the bytes, or shares extents on filesystems that reflink;
//!   falls back to read/write when the kernel or filesystem refuses it),
//!   `mmap(2)` of the source in windows (64 MiB by default, populated and
//!   advised sequential, so a 50 GiB file never needs 50 GiB of address
//!   space), `read(2)`/`write(2)` with a 1 MiB buffer, and `sendfile(2)`.
//! - **Holes** ([`Sparse`]): by default only the source's data extents are
//!   copied (`SEEK_DATA`/`SEEK_HOLE`), so a sparse file stays sparse;
//!   `Always` also turns runs of zero bytes into holes, `Never` writes
//!   every byte.
//! - **Atomic replace**: the bytes go to a temporary file beside the
//!   destination, which is renamed over the final name only when complete
//!   (and, when asked, synced and verified). An interrupted or failed copy
//!   never leaves a truncated file under the final name, and a failed one
//!   removes its temporary file. A program ending on a signal removes
//!   those of the copies in flight with [`remove_temporaries`]. (In a
//!   folder the process may not write, an existing file it may write is
//!   written in place instead, as cp writes it; see [`CopyOptions::copy`].)
//! - Permission bits are kept (set-user-ID and set-group-ID only where
//!   the copy's owner and group are the source's); copying a file onto
//!   itself (same device and inode, hard links included) is refused.
//!
//! [`copy_tree`] copies a directory tree with a few workers in parallel.
//!
//! ```
//! use memio_io::copy::{CopyOptions, Method};
//! # let dir = std::env::temp_dir().join(format!("memio-doc-copy-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let (src, dst) = (dir.join("a"), dir.join("b"));
//! std::fs::write(&src, b"hello")?;
//! let copied = CopyOptions::new().method(Method::Mmap).verify(true).copy(&src, &dst)?;
//! assert_eq!(copied.bytes, 5);
//! assert_eq!(std::fs::read(&dst)?, b"hello");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod engine;
mod mmap;
mod temp;
mod tree;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use memio_map::error::OsError;

use crate::{Error, Result};

pub use temp::remove_temporaries;
pub use tree::{TreeCopied, copy_tree};

/// Which kernel path moves the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Method {
    /// `copy_file_range`, falling back to read/write where the kernel or
    /// the filesystem refuses it (`EXDEV`, `EOPNOTSUPP`, `EPERM`, `ENOSYS`,
    /// `EINVAL`).
    #[default]
    Auto,
    /// `copy_file_range(2)` only: in-kernel copy, reflink where the
    /// filesystem shares extents.
    CopyFileRange,
    /// The source mapped in windows, each written out with `pwrite(2)`.
    Mmap,
    /// `pread(2)`/`pwrite(2)` through a 1 MiB buffer.
    ReadWrite,
    /// `sendfile(2)` from the source to the destination.
    Sendfile,
}

impl Method {
    /// Every method, in the order the lab lists them.
    pub const ALL: [Method; 5] = [
        Method::Auto,
        Method::CopyFileRange,
        Method::Mmap,
        Method::ReadWrite,
        Method::Sendfile,
    ];

    /// The method's name as the command line spells it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Method::Auto => "auto",
            Method::CopyFileRange => "copy-file-range",
            Method::Mmap => "mmap",
            Method::ReadWrite => "read-write",
            Method::Sendfile => "sendfile",
        }
    }
}

/// What happens to holes and runs of zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Sparse {
    /// Keep the source's holes: copy only its data extents
    /// (`SEEK_DATA`/`SEEK_HOLE`), like `cp --sparse=auto`.
    #[default]
    Auto,
    /// Keep holes and also turn every 4 KiB block of zeros into a hole
    /// (`cp --sparse=always`); reads the data, so it uses read/write.
    Always,
    /// Write every byte, holes as zeros (`cp --sparse=never`).
    Never,
}

/// How a copy is made: engine, holes, durability, checks.
///
/// ```
/// use memio_io::copy::{CopyOptions, Method, Sparse};
/// let options = CopyOptions::new().method(Method::ReadWrite).sparse(Sparse::Never).fsync(true);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct CopyOptions {
    method: Method,
    sparse: Sparse,
    fsync: bool,
    verify: bool,
    preserve_mode: bool,
    window: usize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The default mmap window: large enough that the mapping cost is lost in
/// the copy, small enough to fit any address space many times.
pub const DEFAULT_WINDOW: usize = 64 << 20;

/// The read/write engine's buffer.
pub(crate) const BUFFER: usize = 1 << 20;

/// What a copy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Copied {
    /// The destination's size (the source's size as copied).
    pub bytes: u64,
    /// Bytes actually moved: the data extents, without holes.
    pub data_bytes: u64,
    /// The engine that moved them (after any fallback).
    pub method: Method,
    /// Wall time from opening the source to renaming the destination.
    pub elapsed: Duration,
}

impl CopyOptions {
    /// `copy_file_range` with fallback, holes kept, no fsync, no verify,
    /// permission bits kept, 64 MiB mmap windows.
    pub const fn new() -> Self {
        Self {
            method: Method::Auto,
            sparse: Sparse::Auto,
            fsync: false,
            verify: false,
            preserve_mode: true,
            window: DEFAULT_WINDOW,
        }
    }

    /// The engine.
    pub const fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// What happens to holes.
    pub const fn sparse(mut self, sparse: Sparse) -> Self {
        self.sparse = sparse;
        self
    }

    /// `fsync` the copy before renaming it, and its directory after (a
    /// file written in place: the file).
    pub const fn fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    /// Read the copy back and compare it with the source before renaming
    /// it into place (reads the page cache unless it was evicted); a file
    /// written in place is compared once written.
    pub const fn verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// Give the copy the source's permission bits (default), or leave it
    /// `0666` less the umask, as a new file gets.
    pub const fn preserve_mode(mut self, preserve: bool) -> Self {
        self.preserve_mode = preserve;
        self
    }

    /// Bytes of the source the mmap engine maps at once, rounded up to a
    /// whole page (at least one page).
    pub fn window(mut self, bytes: usize) -> Self {
        let page = memio_map::page_size();
        self.window = bytes.max(1).div_ceil(page).saturating_mul(page);
        self
    }

    /// Copies the regular file `src` to the path `dst`, replacing `dst`
    /// atomically if it exists: with a new file, so the old one's owner and
    /// mode are not kept and its other hard links keep the old bytes. As
    /// cp, a symlink at `dst` is written through (the file it leads to is
    /// replaced) and a dangling one refused, and so is a file this process
    /// may not write.
    ///
    /// In a folder this process may not write, where no new file can be
    /// made beside `dst` (or a sticky one, such as `/tmp`, where it may not
    /// replace another user's `dst`), an existing `dst` it may write is
    /// written in place, as cp writes it: truncated and filled, keeping its owner and
    /// mode (and, if the copy fails part way, left cut short, as cp leaves
    /// it).
    ///
    /// # Errors
    ///
    /// [`Error::SameFile`] when `dst` is `src` (or a hard link to it),
    /// [`Error::NotRegular`] for a source that is not a regular file or a
    /// destination that is a directory, [`Error::Mismatch`] when verifying
    /// finds a difference, [`Error::Changed`] when the source shrinks while
    /// copied, and OS errors naming the file (an explicit engine the
    /// filesystem refuses among them). `dst` is untouched on every error,
    /// but for one written in place, which an error after its first byte
    /// leaves cut short or partly written.
    pub fn copy(&self, src: &Path, dst: &Path) -> Result<Copied> {
        self.copy_with_progress(src, dst, &mut |_| {})
    }

    /// As [`copy`](Self::copy), calling `progress` with the number of bytes
    /// moved since its last call.
    ///
    /// # Errors
    ///
    /// As [`copy`](Self::copy).
    pub fn copy_with_progress(
        &self,
        src: &Path,
        dst: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Copied> {
        let started = Instant::now();
        let (source, meta) = open_source(src)?;
        let dst = &through_symlink(dst)?;
        check_destination(src, &meta, dst)?;
        if dst.is_file() && !may_replace(temp::parent_of(dst), dst) {
            let (bytes, data_bytes, method) = self.overwrite(&source, src, &meta, dst, progress)?;
            return Ok(Copied {
                bytes,
                data_bytes,
                method,
                elapsed: started.elapsed(),
            });
        }
        let mut temp = temp::TempFile::beside(dst)?;
        let (bytes, data_bytes, method) = self.write(&source, src, &meta, &mut temp, progress)?;
        temp.commit(dst, self.fsync)?;
        Ok(Copied {
            bytes,
            data_bytes,
            method,
            elapsed: started.elapsed(),
        })
    }

    /// As [`copy_with_progress`](Self::copy_with_progress) to a name that
    /// does not exist yet, in a directory only this copy uses: written in
    /// place, no rename. The file is removed if the copy fails.
    pub(crate) fn copy_new(
        &self,
        src: &Path,
        dst: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Copied> {
        let started = Instant::now();
        let (source, meta) = open_source(src)?;
        let mut file = temp::TempFile::create(dst.to_owned(), dst)?;
        let (bytes, data_bytes, method) = self.write(&source, src, &meta, &mut file, progress)?;
        file.keep();
        Ok(Copied {
            bytes,
            data_bytes,
            method,
            elapsed: started.elapsed(),
        })
    }

    /// Writes `source` into the existing file `dst` in place (cut to
    /// nothing first), verifies and syncs it as asked, and keeps its mode;
    /// returns its size, the data bytes moved and the engine.
    fn overwrite(
        &self,
        source: &File,
        src: &Path,
        meta: &std::fs::Metadata,
        dst: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(u64, u64, Method)> {
        // What was opened is what was checked: a regular file, not the
        // source (the name may have been replaced since).
        let (out, opened) = open_regular(
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW),
            dst,
            "write",
        )?;
        if opened.dev() == meta.dev() && opened.ino() == meta.ino() {
            return Err(Error::SameFile {
                src: src.display().to_string(),
                dst: dst.display().to_string(),
            });
        }
        // An engine asked for by name that the kernel refuses here fails
        // before the file is cut, not after: asked once, where the copy
        // will use it (data to move, and not through read/write).
        let files = engine::Files {
            src: source,
            src_path: src,
            dst: &out,
            dst_path: dst,
        };
        if meta.len() > 0 && self.sparse != Sparse::Always {
            let data = engine::segments(&files, meta.len(), self.sparse)?;
            if let Some(&(first, _)) = data.first() {
                match self.method {
                    Method::CopyFileRange => engine::copy_file_range_taken(&files)?,
                    Method::Mmap => mmap::mappable(&files, first)?,
                    _ => {}
                }
            }
        }
        out.set_len(0)
            .map_err(|e| os("truncate", dst.display(), e))?;
        let moved = self.fill(source, src, meta, &out, dst, progress)?;
        self.finish(source, src, meta, (&out, dst), false)?;
        Ok(moved)
    }

    /// Fills `temp` from `source` and finishes it (mode, verify, fsync);
    /// returns its size, the data bytes moved and the engine.
    fn write(
        &self,
        source: &File,
        src: &Path,
        meta: &std::fs::Metadata,
        temp: &mut temp::TempFile,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(u64, u64, Method)> {
        let (bytes, data_bytes, method) =
            self.fill(source, src, meta, temp.file(), temp.path(), progress)?;
        self.finish(
            source,
            src,
            meta,
            (temp.file(), temp.path()),
            self.preserve_mode,
        )?;
        Ok((bytes, data_bytes, method))
    }

    /// Copies the bytes of `source` into the empty `out`; returns the copy's
    /// size, the data bytes moved and the engine that moved them.
    fn fill(
        &self,
        source: &File,
        src: &Path,
        meta: &std::fs::Metadata,
        out: &File,
        out_path: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(u64, u64, Method)> {
        let size = meta.len();
        let files = engine::Files {
            src: source,
            src_path: src,
            dst: out,
            dst_path: out_path,
        };
        if size == 0 {
            // Empty, or a file whose size the kernel does not know
            // (/proc, /sys): stream it until end of file.
            let n = engine::stream(&files, progress)?;
            return Ok((n, n, Method::ReadWrite));
        }
        // As cp does: a file with as many blocks allocated as its size has
        // no holes worth two lseeks to look for.
        let sparse = if self.sparse == Sparse::Auto && meta.blocks().saturating_mul(512) >= size {
            Sparse::Never
        } else {
            self.sparse
        };
        let segments = engine::segments(&files, size, sparse)?;
        let mut method = match (self.sparse, self.method) {
            (Sparse::Always, _) => Method::ReadWrite,
            (_, m) => m,
        };
        let mut moved = 0;
        for &(start, end) in &segments {
            moved += match method {
                Method::Auto => match engine::copy_file_range(&files, start, end, progress) {
                    Ok(n) => {
                        method = Method::CopyFileRange;
                        n
                    }
                    Err(engine::Stopped::Refused { done, .. }) => {
                        method = Method::ReadWrite;
                        done + engine::read_write(&files, start + done, end, false, progress)?
                    }
                    Err(engine::Stopped::Failed(e)) => return Err(e),
                },
                Method::CopyFileRange => engine::copy_file_range(&files, start, end, progress)?,
                Method::Mmap => mmap::copy(&files, start, end, self.window, progress)?,
                Method::ReadWrite => {
                    engine::read_write(&files, start, end, self.sparse == Sparse::Always, progress)?
                }
                Method::Sendfile => engine::sendfile(&files, start, end, progress)?,
            };
        }
        if method == Method::Auto {
            // No data extents at all: nothing was moved by any engine.
            method = Method::CopyFileRange;
        }
        // A trailing hole (or a file of holes only, or zero blocks left
        // out at the end) is made by the size.
        if self.sparse == Sparse::Always || segments.last().is_none_or(|&(_, end)| end < size) {
            out.set_len(size)
                .map_err(|e| os("extend", out_path.display(), e))?;
        }
        Ok((size, moved, method))
    }

    /// The source's mode (when `set_mode`), verify and fsync on the
    /// complete copy `out` (a temporary, or a file written in place, which
    /// keeps its own mode).
    fn finish(
        &self,
        source: &File,
        src: &Path,
        meta: &std::fs::Metadata,
        (out, out_path): (&File, &Path),
        set_mode: bool,
    ) -> Result<()> {
        if set_mode {
            let mode = kept_mode(meta, out, out_path)?;
            out.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| os("set the mode of", out_path.display(), e))?;
        }
        if self.verify {
            engine::verify(source, src, out, out_path)?;
        }
        if self.fsync {
            out.sync_all()
                .map_err(|e| os("fsync", out_path.display(), e))?;
        }
        Ok(())
    }
}

/// The source's permission bits for its copy, less set-user-ID when the
/// copy has another owner and set-group-ID when it has another group (as
/// `cp` does): a copy made by root of someone's set-user-ID program must
/// not run as root.
fn kept_mode(meta: &std::fs::Metadata, copy: &File, copy_path: &Path) -> Result<u32> {
    let copy = copy
        .metadata()
        .map_err(|e| os("stat", copy_path.display(), e))?;
    let mut mode = meta.permissions().mode() & 0o7777;
    if copy.uid() != meta.uid() {
        mode &= !0o4000;
    }
    if copy.gid() != meta.gid() {
        mode &= !0o2000;
    }
    Ok(mode)
}

/// Copies `src` to `dst` with the default options.
///
/// # Errors
///
/// As [`CopyOptions::copy`].
pub fn copy(src: &Path, dst: &Path) -> Result<Copied> {
    CopyOptions::new().copy(src, dst)
}

/// An OS error doing `action` to `object`.
pub(crate) fn os(action: &str, object: impl std::fmt::Display, err: io::Error) -> Error {
    Error::Io(OsError::failed(action, format_args!("'{object}'"), err).into())
}

/// Opens `src` for reading without blocking on a FIFO, and checks that it
/// is a regular file.
pub(crate) fn open_source(src: &Path) -> Result<(File, std::fs::Metadata)> {
    open_regular(
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC),
        src,
        "open",
    )
}

/// Opens `path` with `options` (`action` names the open in an error) and
/// checks that what was opened is a regular file.
fn open_regular(
    options: &OpenOptions,
    path: &Path,
    action: &str,
) -> Result<(File, std::fs::Metadata)> {
    let file = options
        .open(path)
        .map_err(|e| os(action, path.display(), e))?;
    let meta = file.metadata().map_err(|e| os("stat", path.display(), e))?;
    if !meta.is_file() {
        return Err(Error::NotRegular {
            path: path.display().to_string(),
        });
    }
    Ok((file, meta))
}

/// Refuses a destination that is the source itself or a directory.
fn check_destination(src: &Path, meta: &std::fs::Metadata, dst: &Path) -> Result<()> {
    match std::fs::metadata(dst) {
        Ok(d) if d.dev() == meta.dev() && d.ino() == meta.ino() => Err(Error::SameFile {
            src: src.display().to_string(),
            dst: dst.display().to_string(),
        }),
        Ok(d) if d.is_dir() => Err(Error::NotRegular {
            path: dst.display().to_string(),
        }),
        // The copy is renamed over it, which only the directory's
        // permissions govern; as cp, which writes into the file, refuse a
        // file this process may not write.
        Ok(_) => rustix::fs::accessat(
            rustix::fs::CWD,
            dst,
            rustix::fs::Access::WRITE_OK,
            rustix::fs::AtFlags::EACCESS,
        )
        .map_err(|e| os("write", dst.display(), e.into())),
        Err(_) => Ok(()),
    }
}

/// Whether this process may put a new file in place of `file` in folder
/// `dir`: make files there (write and search permission, as the kernel
/// checks them for its effective ids) and, in a sticky folder (`/tmp`),
/// replace that file, which only its owner, the folder's owner or root
/// may.
fn may_replace(dir: &Path, file: &Path) -> bool {
    let may_make = rustix::fs::accessat(
        rustix::fs::CWD,
        dir,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
        rustix::fs::AtFlags::EACCESS,
    )
    .is_ok();
    if !may_make {
        return false;
    }
    // The file's owner matters only in a sticky folder: asked only there.
    let me = rustix::process::geteuid();
    match std::fs::metadata(dir) {
        Ok(d) if d.mode() & 0o1000 != 0 => {
            me.is_root()
                || d.uid() == me.as_raw()
                || std::fs::metadata(file).map_or(true, |f| f.uid() == me.as_raw())
        }
        _ => true,
    }
}

/// The file a destination names: `dst` itself, or the file a symlink at
/// `dst` leads to (as cp writes through it), whose place the copy takes.
/// A symlink that leads nowhere is refused, as cp refuses it, and so is a
/// destination that is neither a regular file nor a directory (a device,
/// a FIFO, a socket): the copy would take its place, where cp writes into
/// it.
fn through_symlink(dst: &Path) -> Result<std::borrow::Cow<'_, Path>> {
    match std::fs::metadata(dst) {
        Ok(m) if !m.is_file() && !m.is_dir() => {
            return Err(Error::NotRegular {
                path: dst.display().to_string(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return match std::fs::symlink_metadata(dst) {
                Ok(l) if l.file_type().is_symlink() => {
                    Err(os("write through the dangling symlink", dst.display(), e))
                }
                _ => Ok(std::borrow::Cow::Borrowed(dst)),
            };
        }
        Err(e) => return Err(os("stat", dst.display(), e)),
    }
    if through_proc(dst) {
        // `/dev/stdout`, `/proc/self/fd/N`: the file behind such a link is
        // open; replaced, it would vanish from under the descriptor (a
        // shell's redirect would lose what follows). And a file of /proc
        // itself cannot be replaced at all.
        return Err(os(
            "copy onto",
            dst.display(),
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is in /proc or its links lead through /proc (as /dev/stdout's do), where \
                 the copy could not take its place, or would take an open file's from under its \
                 descriptor; give the file's own path",
            ),
        ));
    }
    match std::fs::symlink_metadata(dst) {
        Ok(l) if l.file_type().is_symlink() => {
            if !may_follow(dst, &l) {
                return Err(os(
                    "follow the symlink",
                    dst.display(),
                    io::Error::from_raw_os_error(libc::EACCES),
                ));
            }
            std::fs::canonicalize(dst)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| os("follow the symlink", dst.display(), e))
        }
        _ => Ok(std::borrow::Cow::Borrowed(dst)),
    }
}

/// Whether the kernel would let this process follow `link` (its
/// `symlink_metadata` given): the copy follows it by resolving the path
/// itself, so it applies `fs.protected_symlinks` as the kernel would when
/// opening through it. With that setting on (the default of most
/// systems), a link in a sticky folder anyone may write (`/tmp`) is
/// followed only by its owner, or when the folder's owner owns it too:
/// root copying onto another user's link in `/tmp` must not write where
/// it leads.
fn may_follow(link: &Path, meta: &std::fs::Metadata) -> bool {
    let protected = std::fs::read_to_string("/proc/sys/fs/protected_symlinks")
        .map_or(true, |v| v.trim() != "0");
    std::fs::metadata(temp::parent_of(link)).map_or(true, |dir| {
        follows(
            protected,
            rustix::process::geteuid().as_raw(),
            meta.uid(),
            (dir.mode(), dir.uid()),
        )
    })
}

/// The kernel's rule for following a link owned by `link_uid`, for user
/// `me`, in a folder of `(mode, owner)`, with `fs.protected_symlinks` on
/// or off.
fn follows(protected: bool, me: u32, link_uid: u32, (dir_mode, dir_uid): (u32, u32)) -> bool {
    let sticky_shared = dir_mode & 0o1002 == 0o1002;
    !protected || link_uid == me || !sticky_shared || dir_uid == link_uid
}

/// Whether `path`, or a link on the way from it to its file, lies in a
/// procfs (wherever it is mounted): a file descriptor's link, as
/// `/dev/stdout` and `/dev/fd/1` lead to, or a file of /proc itself.
fn through_proc(path: &Path) -> bool {
    /// `PROC_SUPER_MAGIC`, procfs's `f_type`.
    const PROC: i64 = 0x9fa0;
    let in_proc = |p: &Path| {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        #[allow(
            clippy::useless_conversion,
            clippy::unnecessary_cast,
            reason = "f_type's integer type differs between targets"
        )]
        rustix::fs::statfs(dir).is_ok_and(|f| i64::from(f.f_type as i64) == PROC)
    };
    let mut at = path.to_owned();
    // Linux follows at most 40 links.
    for _ in 0..40 {
        if in_proc(&at) {
            return true;
        }
        match std::fs::read_link(&at) {
            Ok(next) => {
                at = match at.parent() {
                    Some(dir) if next.is_relative() => dir.join(next),
                    _ => next,
                };
            }
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests;
