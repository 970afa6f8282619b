//! Directory trees: `cp -r` with the files copied by a few workers at once.
//!
//! A tree copied to a new name is built under a hidden temporary name
//! beside it and renamed into place as a whole at the end, so an
//! interrupted copy never leaves a half tree under the final name, and the
//! files inside need no rename each. Into an existing directory the files
//! are merged one by one, each replaced atomically.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::temp::{self, parent_of, temp_name};
use super::{CopyOptions, os};
use crate::{Error, Result};

/// What a tree copy did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct TreeCopied {
    /// Regular files copied.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Directories made.
    pub dirs: u64,
    /// Symbolic links recreated (as links, not followed).
    pub symlinks: u64,
    /// What could not be copied, each naming its path; the rest was.
    pub failures: Vec<Error>,
    /// Wall time.
    pub elapsed: Duration,
}

/// The work a walk finds: directories to fill (with the modes of those
/// this copy made, applied once the files are in; one that was there
/// already keeps its own, as with cp), files and links to copy.
#[derive(Debug, Default)]
struct Plan {
    dirs: Vec<(PathBuf, Option<u32>)>,
    files: Vec<(PathBuf, PathBuf)>,
    links: Vec<(PathBuf, PathBuf)>,
}

/// Copies the directory `src` to `dst`: to the new name `dst`, or merged
/// into `dst` when it is an existing directory. `progress` hears the bytes
/// as they are copied (from several threads).
///
/// Files that cannot be copied are listed in [`TreeCopied::failures`] and
/// the others are still copied; other special files (FIFOs, devices,
/// sockets) are reported there too, not copied.
///
/// # Errors
///
/// `src` not a readable directory, `dst` inside `src`, or `dst`'s
/// directory unusable.
pub fn copy_tree(
    src: &Path,
    dst: &Path,
    options: &CopyOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<TreeCopied> {
    let started = Instant::now();
    let meta = std::fs::metadata(src).map_err(|e| os("stat", src.display(), e))?;
    if !meta.is_dir() {
        return Err(Error::NotRegular {
            path: src.display().to_string(),
        });
    }
    refuse_into_itself(src, dst)?;
    let merge = dst.is_dir();
    if !merge && std::fs::symlink_metadata(dst).is_ok() {
        // The rename at the end would fail after every file was copied.
        return Err(os(
            "copy a directory over",
            dst.display(),
            std::io::Error::from_raw_os_error(libc::ENOTDIR),
        ));
    }
    let root = if merge {
        dst.to_owned()
    } else {
        let name = dst.file_name().unwrap_or(dst.as_os_str());
        temp_name(parent_of(dst), name)
    };
    let mut done = TreeCopied::default();
    let mut plan = Plan::default();
    if !merge {
        temp::creating(dst, || {
            make_dir(&root)?;
            temp::register(&root);
            Ok(())
        })?;
        done.dirs += 1;
    }
    plan.dirs.push((
        root.clone(),
        (!merge).then_some(meta.permissions().mode() & 0o7777),
    ));
    walk(src, &root, &mut plan, &mut done);
    copy_files(&spread(plan.files), options, merge, progress, &mut done);
    for (from, to) in &plan.links {
        let made = copy_link(from, to);
        match made {
            Ok(()) => done.symlinks += 1,
            Err(e) => done.failures.push(e),
        }
    }
    // Deepest first, so a read-only directory is closed after its contents.
    for (dir, mode) in plan.dirs.iter().rev() {
        // With fsync, the names made in each directory (files, links,
        // folders) are made durable too; before its mode, which may take
        // away the right to open it.
        if options.fsync {
            if let Err(e) = temp::sync_dir(dir) {
                done.failures.push(e);
            }
        }
        if let Some(mode) = mode {
            if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(*mode)) {
                done.failures.push(os("set the mode of", dir.display(), e));
            }
        }
    }
    if !merge {
        let mut live = temp::live();
        let renamed = std::fs::rename(&root, dst);
        if renamed.is_err() {
            // Made in the meantime: leave no hidden copy behind.
            let _ = temp::remove_tree(&root);
        }
        temp::forget(&mut live, &root);
        drop(live);
        renamed.map_err(|e| os("rename into", dst.display(), e))?;
        if options.fsync {
            temp::sync_dir(parent_of(dst))?;
        }
    }
    done.elapsed = started.elapsed();
    Ok(done)
}

/// Recreates the symbolic link `from` as `to`, replacing what `to` was
/// (through a temporary name and a rename).
fn copy_link(from: &Path, to: &Path) -> Result<()> {
    let target = std::fs::read_link(from).map_err(|e| os("read the link", from.display(), e))?;
    let name = to.file_name().unwrap_or(to.as_os_str());
    let temp = temp_name(parent_of(to), name);
    temp::creating(to, || {
        std::os::unix::fs::symlink(target, &temp)
            .map_err(|e| os("create the link", to.display(), e))?;
        temp::register(&temp);
        Ok(())
    })?;
    let mut live = temp::live();
    let renamed = std::fs::rename(&temp, to);
    if renamed.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    temp::forget(&mut live, &temp);
    renamed.map_err(|e| os("rename into", to.display(), e))
}

impl CopyOptions {
    /// Copies the symbolic link `src` itself (not what it leads to) as
    /// `dst`, replacing what `dst` was through a temporary name and a
    /// rename, as `cp -r` copies a link it is given; with
    /// [`fsync`](Self::fsync), the directory is synced after.
    ///
    /// # Errors
    ///
    /// [`Error::SameFile`] when `dst` is the link itself; OS errors naming
    /// the object when `src` is not a link, the link cannot be made beside
    /// `dst`, or `dst` is a directory (a link cannot replace it).
    pub fn copy_link(&self, src: &Path, dst: &Path) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let from = std::fs::symlink_metadata(src).map_err(|e| os("stat", src.display(), e))?;
        if let Ok(to) = std::fs::symlink_metadata(dst) {
            // The same entry, however spelled; a hard link to the link
            // under another name is another entry, which cp replaces.
            let entry = |p: &Path| {
                (
                    std::fs::canonicalize(parent_of(p)).ok(),
                    p.file_name().map(std::ffi::OsStr::to_owned),
                )
            };
            if (to.dev(), to.ino()) == (from.dev(), from.ino()) && entry(src) == entry(dst) {
                return Err(Error::SameFile {
                    src: src.display().to_string(),
                    dst: dst.display().to_string(),
                });
            }
        }
        copy_link(src, dst)?;
        if self.fsync {
            temp::sync_dir(parent_of(dst))?;
        }
        Ok(())
    }
}

/// Refuses a destination inside the source: the copy would never end.
/// An existing destination is resolved itself, links and all: a link to a
/// directory of the source, merged into, is inside it too.
fn refuse_into_itself(src: &Path, dst: &Path) -> Result<()> {
    let src_real = std::fs::canonicalize(src).map_err(|e| os("resolve", src.display(), e))?;
    let dst_real = match std::fs::canonicalize(dst) {
        Ok(real) => real,
        Err(_) => std::fs::canonicalize(parent_of(dst))
            .map_err(|e| os("resolve", parent_of(dst).display(), e))?,
    };
    if dst_real.starts_with(&src_real) {
        return Err(Error::IntoItself {
            src: src.display().to_string(),
            dst: dst.display().to_string(),
        });
    }
    Ok(())
}

/// Makes the directory `dir` private to its owner until its mode is set.
fn make_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| os("create the directory", dir.display(), e))
}

/// Walks `src` in name order, making the directories under `dst` as it
/// goes and listing the files and links.
fn walk(src: &Path, dst: &Path, plan: &mut Plan, done: &mut TreeCopied) {
    let entries = match std::fs::read_dir(src) {
        Ok(entries) => entries,
        Err(e) => {
            done.failures
                .push(os("read the directory", src.display(), e));
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(std::result::Result::ok).collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = match entry.file_type() {
            Ok(kind) => kind,
            Err(e) => {
                done.failures.push(os("stat", from.display(), e));
                continue;
            }
        };
        if kind.is_dir() {
            let mode = std::fs::symlink_metadata(&from).map_or(0o755, |m| m.permissions().mode());
            // A directory there is merged into; anything else, a link to
            // a directory included, is refused as cp refuses it: writing
            // through the link would put the tree somewhere else.
            let created = match std::fs::symlink_metadata(&to) {
                Ok(m) if m.is_dir() => Ok(false),
                Ok(_) => Err(os(
                    "copy a directory over",
                    to.display(),
                    std::io::Error::from_raw_os_error(libc::ENOTDIR),
                )),
                Err(_) => temp::creating(&to, || make_dir(&to)).map(|()| true),
            };
            match created {
                Ok(is_new) => {
                    done.dirs += 1;
                    plan.dirs
                        .push((to.clone(), is_new.then_some(mode & 0o7777)));
                    walk(&from, &to, plan, done);
                }
                Err(e) => done.failures.push(e),
            }
        } else if kind.is_file() {
            plan.files.push((from, to));
        } else if kind.is_symlink() {
            plan.links.push((from, to));
        } else {
            done.failures.push(Error::NotRegular {
                path: from.display().to_string(),
            });
        }
    }
}

/// Copies the planned files with a few threads: enough to keep the disk
/// busy when the files are not cached (at least four: with two, a 2-core
/// machine copying an evicted tree of 2,000 small files waited on one read
/// per thread and took 1.1–1.4x as long as with four), and every core when
/// they are.
fn copy_files(
    files: &[(PathBuf, PathBuf)],
    options: &CopyOptions,
    merge: bool,
    progress: &(dyn Fn(u64) + Sync),
    done: &mut TreeCopied,
) {
    let workers = std::thread::available_parallelism()
        .map_or(2, std::num::NonZero::get)
        .clamp(4, 8)
        .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let totals = Mutex::new((0u64, 0u64, Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let (mut n, mut bytes, mut failed) = (0, 0, Vec::new());
                let mut hear = |b| progress(b);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((from, to)) = files.get(i) else {
                        break;
                    };
                    let copied = if merge {
                        options.copy_with_progress(from, to, &mut hear)
                    } else {
                        options.copy_new(from, to, &mut hear)
                    };
                    match copied {
                        Ok(c) => {
                            n += 1;
                            bytes += c.bytes;
                        }
                        Err(e) => failed.push(e),
                    }
                }
                if let Ok(mut t) = totals.lock() {
                    t.0 += n;
                    t.1 += bytes;
                    t.2.append(&mut failed);
                }
            });
        }
    });
    let (n, bytes, failed) = totals
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    done.files += n;
    done.bytes += bytes;
    done.failures.extend(failed);
}

/// Orders `files` so that neighbours in the list come from different
/// folders, taking one file of each folder in turn.
///
/// The walk lists a folder's files together, so workers taking them in
/// that order all create files in one folder at once and queue on its
/// lock (creating a name holds the folder's `i_rwsem`). Copying a warm
/// tree of 10,000 files in 20 folders on 2 cores, the workers spent 2-3%
/// of their CPU spinning on that lock in the walk's order, and none when
/// spread; more where creating a file is slow (ext4 without a journal
/// scans past the inodes deleted in the last minute while holding it).
/// Reading an evicted tree that was written folder by folder was no
/// slower spread (median 0.65 s against 0.69 s).
fn spread(files: Vec<(PathBuf, PathBuf)>) -> Vec<(PathBuf, PathBuf)> {
    let mut runs: Vec<Vec<(PathBuf, PathBuf)>> = Vec::new();
    for file in files {
        match runs.last_mut() {
            Some(run)
                if run
                    .last()
                    .is_some_and(|(_, to)| to.parent() == file.1.parent()) =>
            {
                run.push(file);
            }
            _ => runs.push(vec![file]),
        }
    }
    let total = runs.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total);
    let mut runs: Vec<_> = runs.into_iter().map(Vec::into_iter).collect();
    while out.len() < total {
        out.extend(runs.iter_mut().filter_map(Iterator::next));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &str, name: &str) -> (PathBuf, PathBuf) {
        (
            Path::new("src").join(dir).join(name),
            Path::new("dst").join(dir).join(name),
        )
    }

    #[test]
    fn spread_takes_one_file_of_each_folder_in_turn() {
        let files = vec![
            pair("a", "1"),
            pair("a", "2"),
            pair("a", "3"),
            pair("b", "1"),
            pair("c", "1"),
            pair("c", "2"),
        ];
        let order: Vec<_> = spread(files)
            .into_iter()
            .map(|(_, to)| to.strip_prefix("dst").map(Path::to_owned))
            .collect::<std::result::Result<_, _>>()
            .unwrap_or_default();
        let expected: Vec<PathBuf> = ["a/1", "b/1", "c/1", "a/2", "c/2", "a/3"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(order, expected);
    }
}
