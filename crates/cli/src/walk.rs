//! The files `memio cache` and `memio sum` work on, produced one at a time
//! as the walk goes: command-line paths, a list file (`-b`, vmtouch's batch
//! mode) and directories under `-R`/`-r`, with vmtouch's filters (`-i`,
//! `-I`, `-m`), hard links counted once, and everything passed over counted
//! with a reason.
//!
//! Memory stays bounded by the directories open on the way down (each one's
//! sorted names) and the inodes of multiply-linked files seen so far, not by
//! the number of files.

use std::collections::HashSet;
use std::fs::Metadata;
use std::io::{BufRead, Read};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::describe;
use crate::output::warn;

/// One thing the walk met, in walk order.
#[derive(Debug)]
pub(crate) enum Item {
    /// A regular file to work on.
    File { path: PathBuf, size: u64 },
    /// Passed over on purpose; `why` says what it is.
    Skipped { path: PathBuf, why: &'static str },
    /// Cannot be used: missing, unreadable, a directory without `-R`.
    Failed { path: PathBuf, why: String },
}

/// What the walk lets through.
#[derive(Debug, Default)]
pub(crate) struct Filters {
    /// Walk directories (`-R`).
    pub(crate) recursive: bool,
    /// The option that walks directories, named in the message about a
    /// directory given without it (`-R`).
    pub(crate) recursive_flag: &'static str,
    /// Pass over further names of a file already produced (vmtouch counts
    /// a hard link once; a checksum list names every path).
    pub(crate) links_once: bool,
    /// Follow symbolic links met inside directories (`-f`).
    pub(crate) follow: bool,
    /// Pass over files larger than this (`-m`).
    pub(crate) max_size: Option<u64>,
    /// Only files whose name matches one of these (`-i`).
    pub(crate) include: Vec<String>,
    /// Neither files nor directories whose name matches one of these (`-I`).
    pub(crate) exclude: Vec<String>,
}

impl Filters {
    fn excluded(&self, path: &Path) -> bool {
        let name = path.file_name().map_or(&[][..], |n| n.as_encoded_bytes());
        self.exclude.iter().any(|p| glob(p.as_bytes(), name))
    }

    fn included(&self, path: &Path) -> bool {
        let name = path.file_name().map_or(&[][..], |n| n.as_encoded_bytes());
        self.include.is_empty() || self.include.iter().any(|p| glob(p.as_bytes(), name))
    }
}

/// Where the walk's starting paths come from.
pub(crate) type Roots = Box<dyn Iterator<Item = PathBuf> + Send>;

/// Command-line paths as the walk's starting paths.
pub(crate) fn roots(paths: &[PathBuf]) -> Roots {
    let owned: Vec<PathBuf> = paths.to_vec();
    Box::new(owned.into_iter())
}

/// The longest path the kernel takes (`PATH_MAX`, with its NUL).
const PATH_MAX: usize = 4096;

/// The paths of a list file, one per line or NUL-separated (`-0`); `-`
/// reads standard input. Read as the walk goes, never as a whole.
pub(crate) fn list(path: &Path, nul: bool) -> std::io::Result<Roots> {
    let reader: Box<dyn BufRead + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(path)?))
    };
    Ok(Box::new(List {
        reader,
        sep: if nul { 0 } else { b'\n' },
        line: Vec::new(),
    }))
}

/// A list of paths read one entry at a time; an entry longer than
/// `PATH_MAX` is cut there (the rest is read and dropped, so a list without
/// separators cannot fill memory) and then fails as too long a name.
struct List {
    reader: Box<dyn BufRead + Send>,
    sep: u8,
    line: Vec<u8>,
}

impl Iterator for List {
    type Item = PathBuf;

    fn next(&mut self) -> Option<PathBuf> {
        loop {
            self.line.clear();
            let n = (&mut self.reader)
                .take(PATH_MAX as u64 + 1)
                .read_until(self.sep, &mut self.line)
                .ok()?;
            if n == 0 {
                return None;
            }
            if self.line.last() == Some(&self.sep) {
                self.line.pop();
            } else if self.line.len() > PATH_MAX {
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    let more = (&mut self.reader)
                        .take(PATH_MAX as u64)
                        .read_until(self.sep, &mut rest)
                        .ok()?;
                    if more == 0 || rest.last() == Some(&self.sep) {
                        break;
                    }
                }
            }
            if self.sep == b'\n' && self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            if !self.line.is_empty() {
                return Some(PathBuf::from(std::ffi::OsString::from_vec(
                    self.line.clone(),
                )));
            }
        }
    }
}

/// The regular files `paths` name, directories walked (without following
/// links inside them) when `recursive`, in walk order; warns (`memio:
/// <path>: <why>`) about each path that cannot be used and says whether
/// one could not. `flag` is the option that walks directories.
pub(crate) fn expand(
    paths: &[PathBuf],
    recursive: bool,
    flag: &'static str,
) -> (Vec<PathBuf>, bool) {
    let filters = Filters {
        recursive,
        recursive_flag: flag,
        ..Filters::default()
    };
    let mut files = Vec::new();
    let mut failed = false;
    for item in Walk::new(roots(paths), filters) {
        match item {
            Item::File { path, .. } => files.push(path),
            Item::Failed { path, why } => {
                warn(format_args!("{}: {why}", path.display()));
                failed = true;
            }
            Item::Skipped { .. } => {}
        }
    }
    (files, failed)
}

/// A directory on the way down: its entries still to visit (sorted, the
/// next one last) and its identity, to stop a followed link from looping.
struct Frame {
    rest: Vec<PathBuf>,
    id: (u64, u64),
}

/// The walk, as an iterator of [`Item`]s.
pub(crate) struct Walk {
    roots: Roots,
    filters: Filters,
    stack: Vec<Frame>,
    /// Inodes of files with several names (all files when following links)
    /// already produced: a hard link is counted once, as vmtouch does.
    seen: HashSet<(u64, u64)>,
}

impl Walk {
    pub(crate) fn new(roots: Roots, filters: Filters) -> Self {
        Self {
            roots,
            filters,
            stack: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Opens `dir` for the walk; an unreadable directory is a failure.
    fn enter(&mut self, dir: &Path, meta: &Metadata) -> Option<Item> {
        let id = (meta.dev(), meta.ino());
        if self.stack.iter().any(|f| f.id == id) {
            return Some(Item::Skipped {
                path: dir.to_path_buf(),
                why: "a directory already being walked (a symbolic link loop)",
            });
        }
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                let mut rest: Vec<PathBuf> =
                    entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                rest.sort_unstable_by(|a, b| b.cmp(a));
                self.stack.push(Frame { rest, id });
                None
            }
            Err(e) => Some(Item::Failed {
                path: dir.to_path_buf(),
                why: describe(&e),
            }),
        }
    }

    /// A regular file through `-i`, `-m` and the hard-link check.
    fn file(&mut self, path: PathBuf, meta: &Metadata) -> Option<Item> {
        if !self.filters.included(&path) {
            return None;
        }
        if self.filters.max_size.is_some_and(|max| meta.len() > max) {
            return Some(Item::Skipped {
                path,
                why: "larger than -m",
            });
        }
        if self.filters.links_once
            && (meta.nlink() > 1 || self.filters.follow)
            && !self.seen.insert((meta.dev(), meta.ino()))
        {
            return Some(Item::Skipped {
                path,
                why: "a hard link to a file already counted",
            });
        }
        Some(Item::File {
            path,
            size: meta.len(),
        })
    }

    /// One entry met inside a directory.
    fn entry(&mut self, path: PathBuf) -> Option<Item> {
        if self.filters.excluded(&path) {
            return Some(Item::Skipped {
                path,
                why: "excluded by -I",
            });
        }
        let meta = if self.filters.follow {
            std::fs::metadata(&path)
        } else {
            std::fs::symlink_metadata(&path)
        };
        let meta = match meta {
            Ok(meta) => meta,
            Err(e) => {
                return Some(Item::Failed {
                    why: describe(&e),
                    path,
                });
            }
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            self.enter(&path, &meta)
        } else if kind.is_file() {
            self.file(path, &meta)
        } else {
            Some(Item::Skipped {
                path,
                why: kind_name(kind),
            })
        }
    }

    /// A starting path: followed if it is a link, refused unless it is a
    /// regular file or (with `-R`) a directory.
    fn root(&mut self, path: PathBuf) -> Option<Item> {
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) => {
                return Some(Item::Failed {
                    why: describe(&e),
                    path,
                });
            }
        };
        if meta.is_dir() {
            if self.filters.recursive {
                self.enter(&path, &meta)
            } else {
                Some(Item::Failed {
                    path,
                    why: format!(
                        "is a directory (use {} to walk it)",
                        self.filters.recursive_flag
                    ),
                })
            }
        } else if meta.is_file() {
            self.file(path, &meta)
        } else {
            // Opening a FIFO would block, and devices have no file pages.
            Some(Item::Failed {
                path,
                why: "not a regular file".to_owned(),
            })
        }
    }
}

impl Iterator for Walk {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            let next = if let Some(frame) = self.stack.last_mut() {
                if let Some(path) = frame.rest.pop() {
                    self.entry(path)
                } else {
                    self.stack.pop();
                    continue;
                }
            } else {
                let path = self.roots.next()?;
                self.root(path)
            };
            if next.is_some() {
                return next;
            }
        }
    }
}

fn kind_name(kind: std::fs::FileType) -> &'static str {
    if kind.is_symlink() {
        "a symbolic link (use -f to follow)"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Shell-style matching of a file name as fnmatch(3) does without flags:
/// `*`, `?`, and `[abc]`, `[a-z]`, `[!x]` classes; `\` quotes the next
/// character.
pub(crate) fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where to resume after the last `*`: the pattern after it, and the
    // name position it has swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class(pattern, p, name[n]),
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == name[n]).then_some(p + 2),
            Some(&c) => (c == name[n]).then_some(p + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                n += 1;
            }
            (None, Some((sp, sn))) => {
                p = sp;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class opening at `pattern[at]`; the pattern
/// position after the class on a match. An unclosed `[` is a literal.
fn class(pattern: &[u8], at: usize, c: u8) -> Option<usize> {
    let mut i = at + 1;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        match pattern.get(i) {
            None => return (c == b'[').then_some(at + 1),
            Some(b']') if !first => break,
            Some(&lo) => {
                if pattern.get(i + 1) == Some(&b'-')
                    && pattern.get(i + 2).is_some_and(|&h| h != b']')
                {
                    hit |= (lo..=pattern[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= lo == c;
                    i += 1;
                }
            }
        }
        first = false;
    }
    (hit != negate).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_fnmatch() {
        let m = |p: &str, n: &str| glob(p.as_bytes(), n.as_bytes());
        assert!(m("*.so", "libc.so"));
        assert!(!m("*.so", "libc.so.6"));
        assert!(m("*.so*", "libc.so.6"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[!a-c]x", "dx"));
        assert!(m("*", ""));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("*a*b", "xxaxxbxx"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "x"));
        assert!(m("[", "["));
        assert!(m("[]]", "]"));
    }
}
