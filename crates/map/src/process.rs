//! Facts about a process from `/proc/PID`: its command line, whether it is
//! a kernel thread, where its heap starts and where the program break is
//! now, and how the OOM killer ranks it; and which processes map a file.

use std::io;
use std::path::PathBuf;

use crate::error::context;

/// What `/proc/PID` says about a process beyond its mappings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Process {
    /// The process.
    pub pid: u32,
    /// The command name (`/proc/PID/comm`, at most 15 bytes).
    pub comm: String,
    /// The command line, one entry per argument (empty for kernel threads).
    pub cmdline: Vec<String>,
    /// Whether it is a kernel thread (`PF_KTHREAD`): no user address space.
    pub kernel_thread: bool,
    /// Where the heap starts (`start_brk`, field 47 of `/proc/PID/stat`);
    /// `None` when the kernel hides it (another user's process) or the
    /// process has none.
    pub heap_start: Option<u64>,
    /// The program break now: the end of the `[heap]` mapping; `None`
    /// before the first `brk` that grows it.
    pub brk: Option<u64>,
    /// The OOM killer's badness score, 0 to 2000 (`/proc/PID/oom_score`).
    pub oom_score: Option<i64>,
    /// The adjustment added to it, -1000 to 1000 (`/proc/PID/oom_score_adj`;
    /// -1000 exempts the process).
    pub oom_score_adj: Option<i64>,
}

/// `PF_KTHREAD` in the flags field of `/proc/PID/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

impl Process {
    /// Reads `/proc/PID/{stat,comm,cmdline,maps,oom_score,oom_score_adj}`.
    ///
    /// # Errors
    ///
    /// `NotFound` when no such process exists.
    ///
    /// # References
    /// - [proc_pid_stat(5)](https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html)
    /// - [proc_pid_oom_score(5)](https://man7.org/linux/man-pages/man5/proc_pid_oom_score.5.html)
    pub fn of(pid: u32) -> io::Result<Self> {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        let stat = std::fs::read_to_string(dir.join("stat")).map_err(|e| {
            let e = if e.kind() == io::ErrorKind::NotFound {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no process with pid {pid}"),
                )
            } else {
                e
            };
            context(&e, format_args!("failed to read '/proc/{pid}/stat'"))
        })?;
        let fields = StatFields::parse(&stat).unwrap_or_default();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        let number = |name: &str| read(name).and_then(|s| s.trim().parse::<i64>().ok());
        let cmdline = std::fs::read(dir.join("cmdline"))
            .map(|raw| {
                raw.split(|&b| b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let brk = read("maps").and_then(|maps| heap_end(&maps));
        Ok(Self {
            pid,
            comm: read("comm").map_or(fields.comm.clone(), |c| c.trim_end().to_owned()),
            cmdline,
            kernel_thread: fields.flags & PF_KTHREAD != 0,
            heap_start: fields.start_brk.filter(|&b| b != 0),
            brk,
            oom_score: number("oom_score"),
            oom_score_adj: number("oom_score_adj"),
        })
    }

    /// The name pmap prints: the command line, or `[comm]` for a kernel
    /// thread or a process whose command line is gone (a zombie).
    #[must_use]
    pub fn command(&self) -> String {
        if self.cmdline.is_empty() {
            format!("[{}]", self.comm)
        } else {
            self.cmdline.join(" ")
        }
    }

    /// Bytes the heap has grown by (`brk - heap_start`), when both are known.
    #[must_use]
    pub fn heap_size(&self) -> Option<u64> {
        self.brk?.checked_sub(self.heap_start?)
    }
}

/// The fields of `/proc/PID/stat` that [`Process`] uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct StatFields {
    comm: String,
    flags: u64,
    start_brk: Option<u64>,
}

impl StatFields {
    /// `pid (comm) state ppid …`: the command name may hold spaces and
    /// parentheses, so fields are counted from the last `)`.
    fn parse(text: &str) -> Option<Self> {
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let comm = text.get(open + 1..close)?.to_owned();
        // After ") " come field 3 (state), 4 (ppid), …
        let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
        let field = |n: usize| rest.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        Some(Self {
            comm,
            flags: field(9).unwrap_or(0),
            start_brk: field(47),
        })
    }
}

/// The end of the `[heap]` line of a maps file.
fn heap_end(maps: &str) -> Option<u64> {
    maps.lines()
        .find(|l| l.trim_end().ends_with("[heap]"))
        .and_then(|l| l.split_once('-'))
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|end| u64::from_str_radix(end, 16).ok())
}

/// A process that maps a given file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FileUser {
    /// The process.
    pub pid: u32,
    /// Its command name.
    pub comm: String,
    /// Bytes of the file it maps (all its mappings of the file).
    pub mapped: u64,
    /// Of those, bytes locked in memory (`mlock`), when smaps was readable.
    pub locked: Option<u64>,
}

/// The processes that map the file with device `dev` (as `st_dev`) and
/// inode `ino`, from every readable `/proc/PID/maps`: what keeps a file's
/// pages in the page cache when eviction leaves them. Processes the caller
/// may not inspect are left out.
#[must_use]
pub fn mapping_file(dev: u64, ino: u64) -> Vec<FileUser> {
    let device = format!(
        "{:02x}:{:02x}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    );
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut users = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(maps) = std::fs::read_to_string(entry.path().join("maps")) else {
            continue;
        };
        let matches = |device_field: &str, inode: u64| inode == ino && device_field == device;
        let mapped: u64 = crate::layout::Layout::parse(pid, None, &maps, false)
            .mappings
            .iter()
            .filter(|m| matches(&m.device, m.inode))
            .map(|m| m.size)
            .sum();
        if mapped == 0 {
            continue;
        }
        let locked = crate::layout::Layout::of(pid)
            .ok()
            .filter(|l| l.detailed)
            .map(|l| {
                l.mappings
                    .iter()
                    .filter(|m| matches(&m.device, m.inode))
                    .filter_map(|m| m.locked)
                    .sum()
            });
        let comm = std::fs::read_to_string(entry.path().join("comm"))
            .map(|c| c.trim_end().to_owned())
            .unwrap_or_default();
        users.push(FileUser {
            pid,
            comm,
            mapped,
            locked,
        });
    }
    users.sort_by_key(|u| u.pid);
    users
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let mut fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        fields[9 - 3] = PF_KTHREAD.to_string();
        fields[47 - 3] = "94000000000000".to_owned();
        let text = format!("42 (a (b) c) {}\n", fields.join(" "));
        let f = StatFields::parse(&text).unwrap();
        assert_eq!(f.comm, "a (b) c");
        assert_eq!(f.flags, PF_KTHREAD);
        assert_eq!(f.start_brk, Some(94_000_000_000_000));
        assert!(StatFields::parse("garbage").is_none());
    }

    #[test]
    fn own_heap_starts_before_the_break_and_the_oom_score_is_read() {
        // Make sure the heap has grown at least once.
        let grown: Vec<Box<[u8; 64]>> = (0..64).map(|_| Box::new([0u8; 64])).collect();
        let me = Process::of(std::process::id()).unwrap();
        assert!(!me.kernel_thread);
        assert!(!me.cmdline.is_empty());
        if let (Some(start), Some(brk)) = (me.heap_start, me.brk) {
            assert!(start <= brk, "{start:#x} > {brk:#x}");
            assert_eq!(me.heap_size(), Some(brk - start));
        }
        assert!(me.oom_score.is_some_and(|s| (0..=2000).contains(&s)));
        assert!(
            me.oom_score_adj
                .is_some_and(|s| (-1000..=1000).contains(&s))
        );
        drop(grown);
    }

    #[test]
    fn kernel_threads_are_recognised() {
        // kthreadd is pid 2 wherever the kernel's threads are visible.
        match Process::of(2) {
            Ok(p) if p.comm == "kthreadd" => {
                assert!(p.kernel_thread);
                assert_eq!(p.command(), "[kthreadd]");
                assert_eq!(p.brk, None);
            }
            _ => println!("pid 2 is not kthreadd in this pid namespace: skipped"),
        }
    }

    #[test]
    fn the_processes_mapping_a_file_are_found_with_their_locked_bytes() {
        use std::os::unix::fs::MetadataExt;
        let path = std::env::temp_dir().join(format!("memio-map-users-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; 3 * crate::page_size()]).unwrap();
        let region = crate::MapOptions::new().map_path(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let users = mapping_file(meta.dev(), meta.ino());
        let me = users
            .iter()
            .find(|u| u.pid == std::process::id())
            .expect("this process maps the file");
        assert_eq!(me.mapped, region.len() as u64);
        assert_eq!(me.locked, Some(0));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn unknown_pid_is_not_found() {
        let e = Process::of(u32::MAX - 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
