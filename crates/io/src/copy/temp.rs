//! The temporary file a copy is written to, renamed over the destination
//! only when complete, and removed when the copy fails.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use super::os;
use crate::Result;

/// A new file beside the destination, removed on drop unless committed.
#[derive(Debug)]
pub(crate) struct TempFile {
    file: File,
    path: PathBuf,
    committed: bool,
}

/// Tells apart the temporary files of one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temporary files and tree roots of the copies in flight in this
/// process, for [`remove_temporaries`]. Renaming one into place happens
/// under the lock, so a removal and a rename never cross.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Held shared while a copy creates a temporary (or anything inside a
/// hidden tree) and registers it, and taken for good by
/// [`remove_temporaries`] (`true`: closed). Without it a copy's workers go
/// on creating files in a hidden tree while it is removed, and the removal
/// fails on a directory that is not empty.
static CREATING: RwLock<bool> = RwLock::new(false);

/// Runs `create` unless [`remove_temporaries`] has run: then nothing may
/// be created any more, and `what` fails as interrupted.
pub(crate) fn creating<T>(what: &Path, create: impl FnOnce() -> Result<T>) -> Result<T> {
    let closed = CREATING.read().unwrap_or_else(PoisonError::into_inner);
    if *closed {
        return Err(os(
            "create",
            what.display(),
            std::io::Error::from_raw_os_error(libc::EINTR),
        ));
    }
    create()
}

pub(crate) fn live() -> MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Notes a temporary that [`remove_temporaries`] must remove.
pub(crate) fn register(path: &Path) {
    live().push(path.to_owned());
}

/// Forgets a temporary that was renamed into place or removed; the caller
/// holds the lock.
pub(crate) fn forget(live: &mut Vec<PathBuf>, path: &Path) {
    if let Some(i) = live.iter().position(|p| p == path) {
        live.swap_remove(i);
    }
}

/// Removes the temporary files and the half-built trees of every copy this
/// process has in flight, and returns how many it removed.
///
/// For a program ending on a signal (`SIGINT`, `SIGTERM`): a copy's
/// temporary name is hidden (`.NAME.memio-PID-N~`), so without this an
/// interrupted copy leaves a hidden partial file (or tree) behind; the
/// final name is never touched either way. Call it from a thread that
/// waits for the signal, then end the process: the copies still running
/// fail (their temporaries are gone), and one that was renamed into place
/// first is complete. Nothing is created in this process's copies after
/// it: they all fail.
#[allow(
    clippy::must_use_candidate,
    reason = "called for what it removes; the count is for a report"
)]
pub fn remove_temporaries() -> usize {
    // Waits for the creations under way, and refuses those to come.
    let mut closed = CREATING.write().unwrap_or_else(PoisonError::into_inner);
    *closed = true;
    let mut live = live();
    let mut removed = 0;
    for path in live.drain(..) {
        let gone = match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => remove_tree(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(e) => Err(e),
        };
        removed += usize::from(gone.is_ok());
    }
    removed
}

/// Removes a hidden tree this process built. Its directories get their
/// modes before the rename, and a user other than root cannot empty one
/// it may not write (a read-only directory of the source): those are made
/// writable again and the removal tried once more.
pub(crate) fn remove_tree(root: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(root) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            open_up(root);
            std::fs::remove_dir_all(root)
        }
        other => other,
    }
}

/// Makes `dir` and the directories under it writable by their owner
/// (never through a symbolic link).
fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir);
    if let Ok(d) = opened {
        let _ = d.set_permissions(std::fs::Permissions::from_mode(0o700));
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            open_up(&entry.path());
        }
    }
}

/// The directory `path` lives in (`.` for a bare name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A hidden name in `dir` for a temporary twin of `name`.
pub(crate) fn temp_name(dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut file = std::ffi::OsString::from(".");
    file.push(name);
    file.push(format!(".memio-{}-{n}~", std::process::id()));
    dir.join(file)
}

impl TempFile {
    /// Creates (exclusively, mode 0600) a temporary file in the directory
    /// of `dst`.
    pub(crate) fn beside(dst: &Path) -> Result<Self> {
        let name = dst.file_name().ok_or_else(|| {
            os(
                "create",
                dst.display(),
                std::io::Error::from_raw_os_error(libc::EISDIR),
            )
        })?;
        let path = temp_name(parent_of(dst), name);
        creating(dst, || {
            let temp = Self::open(path, dst)?;
            register(&temp.path);
            Ok(temp)
        })
    }

    /// Creates `path` itself (exclusively, mode 0600), for a copy into a
    /// directory nobody else sees yet; errors name `shown`.
    pub(crate) fn create(path: PathBuf, shown: &Path) -> Result<Self> {
        creating(shown, || Self::open(path, shown))
    }

    /// [`create`](Self::create) without asking [`creating`].
    fn open(path: PathBuf, shown: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| os("create", shown.display(), e))?;
        Ok(Self {
            file,
            path,
            committed: false,
        })
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the file under the name it was created with.
    pub(crate) fn keep(mut self) {
        self.committed = true;
    }

    /// Renames the file over `dst`; with `fsync`, then syncs the directory
    /// so the new name is durable too.
    pub(crate) fn commit(mut self, dst: &Path, fsync: bool) -> Result<()> {
        let mut live = live();
        std::fs::rename(&self.path, dst).map_err(|e| os("rename into", dst.display(), e))?;
        forget(&mut live, &self.path);
        drop(live);
        self.committed = true;
        if fsync {
            sync_dir(parent_of(dst))?;
        }
        Ok(())
    }
}

/// `fsync` on a directory, making the names in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| os("fsync", dir.display(), e))
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let mut live = live();
            let _ = std::fs::remove_file(&self.path);
            forget(&mut live, &self.path);
        }
    }
}
