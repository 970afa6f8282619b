//! The kernel's table of file locks, as `/proc/locks` and the `lock:` lines
//! of `/proc/PID/fdinfo/FD` show it.
//!
//! `/proc/locks` lists every lock on the system with the pid that placed it,
//! the file's device and inode, and the byte range; a waiter is shown as
//! `N: -> ...` under the lock it waits for. OFD locks have no owning process
//! and show pid -1: their owner is found through the `lock:` lines of the
//! descriptors in `/proc/*/fdinfo`, the way util-linux `lslocks` does it.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// A file as the lock table names it: device major:minor and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Inode number.
    pub inode: u64,
}

impl FileId {
    /// The id of the file `meta` describes.
    #[must_use]
    pub fn of(meta: &fs::Metadata) -> Self {
        let dev = meta.dev();
        Self {
            major: rustix::fs::major(dev),
            minor: rustix::fs::minor(dev),
            inode: meta.ino(),
        }
    }
}

/// One line of the kernel's lock table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    /// The lock's number in the table; a waiter shares the number of the
    /// lock it waits for.
    pub id: u64,
    /// Whether this is a process waiting for lock `id` rather than a lock.
    pub waiting: bool,
    /// `POSIX`, `OFDLCK`, `FLOCK`, `LEASE`, `DELEG` or whatever the kernel
    /// prints.
    pub kind: String,
    /// Whether the lock is mandatory (`MANDATORY`); leases show their state
    /// here instead and count as advisory.
    pub mandatory: bool,
    /// `READ`, `WRITE`, or for leases `UNLCK` while being broken.
    pub mode: String,
    /// The process that placed it; `None` where the kernel shows -1 (OFD
    /// locks) and the owner was not found.
    pub pid: Option<u32>,
    /// The locked file.
    pub file: FileId,
    /// First locked byte.
    pub start: u64,
    /// Last locked byte, `None` for "to the end of the file".
    pub end: Option<u64>,
}

impl LockEntry {
    /// Whether this entry (a held lock, not a waiter) would block a request
    /// for `exclusive` access on the same bytes.
    #[must_use]
    pub fn conflicts_with(&self, exclusive: bool) -> bool {
        !self.waiting && (exclusive || self.mode == "WRITE")
    }

    /// Whether the range of this entry overlaps `start..=end` (`None` = EOF).
    #[must_use]
    pub fn overlaps(&self, start: u64, end: Option<u64>) -> bool {
        let a_before_b = self.end.is_some_and(|e| e < start);
        let b_before_a = end.is_some_and(|e| e < self.start);
        !a_before_b && !b_before_a
    }

    /// The same lock seen elsewhere (table vs fdinfo): everything but the
    /// id, pid and waiting flag matches.
    fn same_lock(&self, other: &LockEntry) -> bool {
        self.kind == other.kind
            && self.mode == other.mode
            && self.file == other.file
            && self.start == other.start
            && self.end == other.end
    }
}

/// Parses one line of `/proc/locks` (or the part of an fdinfo `lock:` line
/// after the tab).
///
/// ```
/// use memio_io::lock::table::parse_line;
/// let e = parse_line("1: POSIX  ADVISORY  WRITE 42 08:02:1234 0 EOF").unwrap();
/// assert_eq!((e.kind.as_str(), e.pid, e.end), ("POSIX", Some(42), None));
/// let w = parse_line("1: -> OFDLCK ADVISORY  READ  -1 fd:01:99 10 19").unwrap();
/// assert!(w.waiting && w.pid.is_none() && w.end == Some(19));
/// ```
#[must_use]
pub fn parse_line(line: &str) -> Option<LockEntry> {
    let mut words = line.split_whitespace();
    let id = words.next()?.strip_suffix(':')?.parse().ok()?;
    let mut kind = words.next()?;
    let mut waiting = false;
    while kind == "->" {
        waiting = true;
        kind = words.next()?;
    }
    let mandatory = words.next()? == "MANDATORY";
    let mode = words.next()?;
    let pid: i64 = words.next()?.parse().ok()?;
    let mut dev = words.next()?.split(':');
    let major = u32::from_str_radix(dev.next()?, 16).ok()?;
    let minor = u32::from_str_radix(dev.next()?, 16).ok()?;
    let inode = dev.next()?.parse().ok()?;
    let start = words.next()?.parse().ok()?;
    let end = match words.next()? {
        "EOF" => None,
        n => Some(n.parse().ok()?),
    };
    Some(LockEntry {
        id,
        waiting,
        kind: kind.to_owned(),
        mandatory,
        mode: mode.to_owned(),
        pid: u32::try_from(pid).ok().filter(|&p| p > 0),
        file: FileId {
            major,
            minor,
            inode,
        },
        start,
        end,
    })
}

/// Reads the system's lock table from `/proc/locks`, with the owners of OFD
/// locks filled in from `/proc/*/fdinfo` where they can be seen.
///
/// # Errors
///
/// Fails when `/proc/locks` cannot be read (no procfs mounted).
///
/// # References
///
/// - [proc_locks(5)](https://man7.org/linux/man-pages/man5/proc_locks.5.html)
pub fn system_locks() -> io::Result<Vec<LockEntry>> {
    let text = fs::read_to_string("/proc/locks")
        .map_err(|e| io::Error::new(e.kind(), format!("failed to read /proc/locks: {e}")))?;
    let mut entries: Vec<LockEntry> = text.lines().filter_map(parse_line).collect();
    if entries.iter().any(|e| e.pid.is_none()) {
        let seen = descriptor_locks();
        for entry in entries.iter_mut().filter(|e| e.pid.is_none()) {
            entry.pid = seen
                .iter()
                .find(|d| d.entry.same_lock(entry))
                .map(|d| d.pid);
        }
    }
    Ok(entries)
}

/// A lock as one descriptor of one process shows it in fdinfo.
#[derive(Debug, Clone)]
pub struct DescriptorLock {
    /// The process holding the descriptor.
    pub pid: u32,
    /// The descriptor number.
    pub fd: u32,
    /// The lock.
    pub entry: LockEntry,
}

/// The `lock:` lines of one descriptor's fdinfo.
///
/// # Errors
///
/// Fails when `/proc/PID/fdinfo/FD` cannot be read.
pub fn fd_locks(pid: u32, fd: u32) -> io::Result<Vec<LockEntry>> {
    let text = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("lock:"))
        .filter_map(|l| parse_line(l.trim_start()))
        .collect())
}

/// Every lock visible in the fdinfo of every descriptor of every process
/// this process may inspect.
#[must_use]
pub fn descriptor_locks() -> Vec<DescriptorLock> {
    let mut out = Vec::new();
    for pid in pids() {
        let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
            continue;
        };
        for fd in dir.flatten() {
            let Some(fd) = fd.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            for entry in fd_locks(pid, fd).unwrap_or_default() {
                out.push(DescriptorLock { pid, fd, entry });
            }
        }
    }
    out
}

/// The numeric entries of `/proc`.
fn pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Finds paths for locked files by looking through the descriptors of the
/// processes that hold them, caching what it has seen.
#[derive(Debug, Default)]
pub struct PathFinder {
    seen: HashMap<u32, HashMap<FileId, PathBuf>>,
}

impl PathFinder {
    /// A finder with an empty cache.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The path under which `pid` has `file` open, if it can be seen.
    pub fn path(&mut self, pid: u32, file: FileId) -> Option<PathBuf> {
        let files = self.seen.entry(pid).or_insert_with(|| {
            let mut files = HashMap::new();
            if let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) {
                for fd in dir.flatten() {
                    let link = fd.path();
                    if let (Ok(meta), Ok(target)) = (fs::metadata(&link), fs::read_link(&link)) {
                        files.entry(FileId::of(&meta)).or_insert(target);
                    }
                }
            }
            files
        });
        files.get(&file).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_of_line() {
        let e = parse_line("3: FLOCK  ADVISORY  WRITE 1234 00:1a:99 0 EOF").unwrap();
        assert_eq!(e.id, 3);
        assert_eq!(e.kind, "FLOCK");
        assert_eq!(
            e.file,
            FileId {
                major: 0,
                minor: 0x1a,
                inode: 99
            }
        );
        assert!(!e.mandatory && !e.waiting);
        let l = parse_line("9: LEASE  ACTIVE    READ  77 08:01:5 0 EOF").unwrap();
        assert_eq!(l.kind, "LEASE");
        assert!(!l.mandatory);
        assert!(parse_line("garbage").is_none());
        assert!(parse_line("1: POSIX ADVISORY WRITE x 08:01:5 0 EOF").is_none());
        assert!(parse_line("").is_none());
    }

    #[test]
    fn overlap_and_conflict_follow_lock_rules() {
        let e = parse_line("1: POSIX  ADVISORY  READ 1 08:02:1 10 19").unwrap();
        assert!(e.overlaps(19, None));
        assert!(e.overlaps(0, Some(10)));
        assert!(!e.overlaps(20, None));
        assert!(!e.overlaps(0, Some(9)));
        assert!(e.conflicts_with(true));
        assert!(!e.conflicts_with(false));
    }

    #[test]
    fn the_system_table_is_readable() {
        // Every Linux system this crate supports has procfs; the table may
        // be empty but must parse.
        system_locks().unwrap();
    }
}
