//! Expanding command-line paths into regular files: `-R`/`-r` walks
//! directories in name order without following symbolic links inside them.

use std::path::{Path, PathBuf};

use crate::error::describe;
use crate::output::warn;

/// Expands `paths` into regular files, reporting (as `memio: <path>:
/// <why>`) the paths that cannot be used; returns the files and whether
/// any path failed. `flag` names the option that walks directories in the
/// message about a directory given without it.
pub(crate) fn expand(paths: &[PathBuf], recursive: bool, flag: &str) -> (Vec<PathBuf>, bool) {
    let mut files = Vec::new();
    let mut failed = false;
    for path in paths {
        match std::fs::metadata(path) {
            Err(e) => {
                warn(format_args!("{}: {}", path.display(), describe(&e)));
                failed = true;
            }
            Ok(meta) if meta.is_dir() => {
                if recursive {
                    failed |= walk(path, &mut files);
                } else {
                    warn(format_args!(
                        "{}: is a directory (use {flag} to walk it)",
                        path.display()
                    ));
                    failed = true;
                }
            }
            Ok(meta) if meta.is_file() => files.push(path.clone()),
            // Opening a FIFO would block, and devices have no file pages.
            Ok(_) => {
                warn(format_args!("{}: not a regular file", path.display()));
                failed = true;
            }
        }
    }
    (files, failed)
}

/// Adds the regular files under `dir` in name order; returns whether some
/// directory could not be read.
pub(crate) fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> bool {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            warn(format_args!("{}: {}", dir.display(), describe(&e)));
            return true;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut failed = false;
    for path in paths {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => failed |= walk(&path, files),
            Ok(meta) if meta.is_file() => files.push(path),
            Ok(_) => {}
            Err(e) => {
                warn(format_args!("{}: {}", path.display(), describe(&e)));
                failed = true;
            }
        }
    }
    failed
}
