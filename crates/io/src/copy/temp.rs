//! The temporary file a copy is written to, renamed over the destination
//! only when complete, and removed when the copy fails.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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
        Self::create(temp_name(parent_of(dst), name), dst)
    }

    /// Creates `path` itself (exclusively, mode 0600), for a copy into a
    /// directory nobody else sees yet; errors name `shown`.
    pub(crate) fn create(path: PathBuf, shown: &Path) -> Result<Self> {
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
        std::fs::rename(&self.path, dst).map_err(|e| os("rename into", dst.display(), e))?;
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
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
