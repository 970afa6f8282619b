//! A process's memory layout from `/proc/PID/maps` and `/proc/PID/smaps`.
//!
//! Each mapping is classified the way the seeds draw the address space:
//! text, data, bss, heap, stack, vdso/vvar, shared libraries, mapped files,
//! anonymous memory, and shared memory (POSIX, System V, memfd). With
//! `smaps` readable, each mapping also carries its resident (RSS),
//! proportional (PSS), swapped and locked bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::error::context;

/// What a mapping is, as the process layout diagrams name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "kebab-case")
)]
#[non_exhaustive]
pub enum Kind {
    /// The program's code and read-only data, mapped from its executable.
    Text,
    /// The program's initialised writable data.
    Data,
    /// The program's zero-initialised data: anonymous memory right after the
    /// executable's last mapping.
    Bss,
    /// The `brk` heap (`[heap]`).
    Heap,
    /// A thread's stack (`[stack]`).
    Stack,
    /// Kernel-provided pages: `[vdso]`, `[vvar]`, `[vsyscall]`.
    Vdso,
    /// A shared library (`*.so*`), any of its segments.
    SharedLib,
    /// Any other mapped file.
    File,
    /// Anonymous memory: `malloc`'s large blocks, thread stacks, JIT code.
    Anonymous,
    /// POSIX shared memory (a file under `/dev/shm`).
    PosixShm,
    /// System V shared memory (`/SYSV<key>`).
    SysvShm,
    /// A memfd (`/memfd:<name>`).
    Memfd,
}

impl Kind {
    /// The kind's name as `memio maps` prints it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Data => "data",
            Self::Bss => "bss",
            Self::Heap => "heap",
            Self::Stack => "stack",
            Self::Vdso => "vdso",
            Self::SharedLib => "shared-lib",
            Self::File => "file",
            Self::Anonymous => "anonymous",
            Self::PosixShm => "posix-shm",
            Self::SysvShm => "sysv-shm",
            Self::Memfd => "memfd",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One mapping of a process's address space.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `end - start` in bytes.
    pub size: u64,
    /// `rwxp`/`rwxs` as in the maps file.
    pub perms: String,
    /// Offset into the mapped file.
    pub offset: u64,
    /// `major:minor` of the file's device.
    pub device: String,
    /// The file's inode (0 for anonymous memory).
    pub inode: u64,
    /// The path or pseudo-name (`[heap]`), if any.
    pub path: Option<String>,
    /// The classification.
    pub kind: Kind,
    /// Resident bytes (`Rss`), when smaps was readable.
    pub rss: Option<u64>,
    /// Proportional set size (`Pss`): resident bytes divided among sharers.
    pub pss: Option<u64>,
    /// Bytes swapped out (`Swap`).
    pub swap: Option<u64>,
    /// Bytes locked in memory (`Locked`).
    pub locked: Option<u64>,
    /// Dirty bytes, shared and private (`Shared_Dirty + Private_Dirty`).
    pub dirty: Option<u64>,
}

impl Mapping {
    /// Whether the mapping is shared (`s`) rather than private (`p`).
    #[must_use]
    pub fn is_shared(&self) -> bool {
        self.perms.ends_with('s')
    }
}

/// Totals for one [`Kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct KindSummary {
    /// The kind.
    pub kind: Kind,
    /// How many mappings.
    pub mappings: usize,
    /// Total virtual size in bytes.
    pub size: u64,
    /// Total resident bytes (0 without smaps).
    pub rss: u64,
    /// Total PSS bytes (0 without smaps).
    pub pss: u64,
    /// Total swapped bytes (0 without smaps).
    pub swap: u64,
}

/// A process's mappings in address order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Layout {
    /// The process.
    pub pid: u32,
    /// The executable (`/proc/PID/exe`), when readable.
    pub exe: Option<String>,
    /// Whether RSS/PSS/swap come from smaps (false: only maps was readable).
    pub detailed: bool,
    /// The mappings.
    pub mappings: Vec<Mapping>,
}

impl Layout {
    /// The calling process's layout.
    ///
    /// # Errors
    ///
    /// procfs is not mounted.
    pub fn current() -> io::Result<Self> {
        Self::of(std::process::id())
    }

    /// The layout of process `pid`, from `/proc/PID/smaps` (or
    /// `/proc/PID/maps` if smaps cannot be read).
    ///
    /// # Errors
    ///
    /// `NotFound` when no such process exists; `PermissionDenied` when the
    /// caller may not inspect it.
    ///
    /// # References
    /// - [proc_pid_maps(5)](https://man7.org/linux/man-pages/man5/proc_pid_maps.5.html)
    /// - [proc_pid_smaps(5)](https://man7.org/linux/man-pages/man5/proc_pid_smaps.5.html)
    #[doc(alias = "pmap")]
    pub fn of(pid: u32) -> io::Result<Self> {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        if !dir.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no process with pid {pid}"),
            ));
        }
        let exe = std::fs::read_link(dir.join("exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        let (text, detailed) = match std::fs::read_to_string(dir.join("smaps")) {
            Ok(text) => (text, true),
            Err(_) => (
                std::fs::read_to_string(dir.join("maps")).map_err(|e| {
                    let e = if e.kind() == io::ErrorKind::NotFound {
                        io::Error::new(io::ErrorKind::NotFound, "process exited")
                    } else {
                        e
                    };
                    context(&e, format_args!("failed to read '/proc/{pid}/maps'"))
                })?,
                false,
            ),
        };
        Ok(Self::parse(pid, exe, &text, detailed))
    }

    /// Builds a layout from the text of a maps or smaps file.
    #[must_use]
    pub fn parse(pid: u32, exe: Option<String>, text: &str, detailed: bool) -> Self {
        let mut mappings: Vec<Mapping> = Vec::new();
        for line in text.lines() {
            if let Some(mapping) = parse_header(line) {
                mappings.push(mapping);
            } else if let Some(last) = mappings.last_mut() {
                apply_smaps_field(last, line);
            }
        }
        classify(&mut mappings, exe.as_deref());
        Self {
            pid,
            exe,
            detailed,
            mappings,
        }
    }

    /// Totals per kind, in [`Kind`] order, kinds without mappings left out.
    #[must_use]
    pub fn summary(&self) -> Vec<KindSummary> {
        let mut by_kind: BTreeMap<Kind, KindSummary> = BTreeMap::new();
        for m in &self.mappings {
            let s = by_kind.entry(m.kind).or_insert(KindSummary {
                kind: m.kind,
                mappings: 0,
                size: 0,
                rss: 0,
                pss: 0,
                swap: 0,
            });
            s.mappings += 1;
            // Saturating: the text may come from anywhere (a saved smaps,
            // a fuzzer), and garbage sizes must not overflow.
            s.size = s.size.saturating_add(m.size);
            for (sum, value) in [
                (&mut s.rss, m.rss),
                (&mut s.pss, m.pss),
                (&mut s.swap, m.swap),
            ] {
                if let Some(value) = value {
                    *sum = sum.saturating_add(value);
                }
            }
        }
        by_kind.into_values().collect()
    }

    /// The mapping containing `address`, if any.
    #[must_use]
    pub fn find(&self, address: usize) -> Option<&Mapping> {
        let address = address as u64;
        self.mappings
            .iter()
            .find(|m| m.start <= address && address < m.end)
    }
}

/// `start-end perms offset dev inode [path]`.
fn parse_header(line: &str) -> Option<Mapping> {
    let mut rest = line;
    let mut field = || {
        let trimmed = rest.trim_start();
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        let (f, r) = trimmed.split_at(end);
        rest = r;
        f
    };
    let range = field();
    let perms = field();
    let offset = field();
    let device = field();
    let inode = field();
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    if perms.len() != 4 || end < start || !device.contains(':') {
        return None;
    }
    let path = rest.trim();
    Some(Mapping {
        start,
        end,
        size: end - start,
        perms: perms.to_owned(),
        offset: u64::from_str_radix(offset, 16).ok()?,
        device: device.to_owned(),
        inode: inode.parse().ok()?,
        path: (!path.is_empty()).then(|| path.to_owned()),
        kind: Kind::Anonymous,
        rss: None,
        pss: None,
        swap: None,
        locked: None,
        dirty: None,
    })
}

/// `Rss:   24 kB` and friends.
fn apply_smaps_field(m: &mut Mapping, line: &str) {
    let Some((key, value)) = line.split_once(':') else {
        return;
    };
    let mut parts = value.split_whitespace();
    let (Some(n), Some("kB")) = (
        parts.next().and_then(|n| n.parse::<u64>().ok()),
        parts.next(),
    ) else {
        return;
    };
    let bytes = n.saturating_mul(1024);
    match key {
        "Rss" => m.rss = Some(bytes),
        "Pss" => m.pss = Some(bytes),
        "Swap" => m.swap = Some(bytes),
        "Locked" => m.locked = Some(bytes),
        "Shared_Dirty" | "Private_Dirty" => {
            m.dirty = Some(m.dirty.unwrap_or(0).saturating_add(bytes));
        }
        _ => {}
    }
}

fn classify(mappings: &mut [Mapping], exe: Option<&str>) {
    let mut prev_exe_end: Option<u64> = None;
    for m in mappings.iter_mut() {
        let path = m.path.as_deref().unwrap_or("");
        let writable = m.perms.as_bytes().get(1) == Some(&b'w');
        let is_exe = !path.is_empty() && exe == Some(path);
        m.kind = if is_exe {
            if writable { Kind::Data } else { Kind::Text }
        } else if path == "[heap]" {
            Kind::Heap
        } else if path == "[stack]" || path.starts_with("[stack:") {
            Kind::Stack
        } else if matches!(path, "[vdso]" | "[vsyscall]") || path.starts_with("[vvar") {
            Kind::Vdso
        } else if path.starts_with("/SYSV") {
            Kind::SysvShm
        } else if path.starts_with("/dev/shm/") {
            Kind::PosixShm
        } else if path.starts_with("/memfd:") {
            Kind::Memfd
        } else if path.is_empty() || path.starts_with('[') || path.starts_with("/dev/zero") {
            // The bss directly follows the executable's last mapping.
            if prev_exe_end == Some(m.start) && writable && path.is_empty() {
                Kind::Bss
            } else {
                Kind::Anonymous
            }
        } else if is_shared_lib(path) {
            Kind::SharedLib
        } else {
            Kind::File
        };
        prev_exe_end = is_exe.then_some(m.end);
    }
}

fn is_shared_lib(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    // Library names are lowercase by convention: `libc.so.6`, `libm.so`.
    name.contains(".so.") || name.rsplit_once('.').is_some_and(|(_, ext)| ext == "so")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
55c690e85000-55c690e87000 r--p 00000000 fe:00 247282                     /usr/bin/head
Size:                  8 kB
Rss:                   8 kB
Pss:                   4 kB
Shared_Dirty:          0 kB
Private_Dirty:         4 kB
Swap:                  0 kB
Locked:                0 kB
VmFlags: rd mr mw me
55c690e87000-55c690e8d000 r-xp 00002000 fe:00 247282                     /usr/bin/head
55c690e8f000-55c690e90000 rw-p 00009000 fe:00 247282                     /usr/bin/head
55c690e90000-55c690e91000 rw-p 00000000 00:00 0 
55c6a0000000-55c6a0021000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000100000 rw-s 00000000 00:01 1234                       /dev/shm/jobs
7f0000100000-7f0000200000 rw-s 00000000 00:01 32769                      /SYSV0000abcd (deleted)
7f0000200000-7f0000201000 rw-s 00000000 00:01 77                         /memfd:ring (deleted)
7f0000300000-7f0000400000 rw-p 00000000 00:00 0 
7f0000400000-7f0000500000 r-xp 00000000 fe:00 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000600000-7f0000601000 r--p 00000000 fe:00 98                         /tmp/my data.bin
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
7ffd00100000-7ffd00102000 r--p 00000000 00:00 0                          [vvar]
7ffd00102000-7ffd00104000 r-xp 00000000 00:00 0                          [vdso]
";

    #[test]
    fn sample_is_classified_like_the_layout_diagram() {
        #[allow(
            clippy::enum_glob_use,
            reason = "the expected list reads as the diagram"
        )]
        use Kind::*;
        let layout = Layout::parse(1, Some("/usr/bin/head".into()), SAMPLE, true);
        let kinds: Vec<Kind> = layout.mappings.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            [
                Text, Text, Data, Bss, Heap, PosixShm, SysvShm, Memfd, Anonymous, SharedLib, File,
                Stack, Vdso, Vdso
            ]
        );
        let first = &layout.mappings[0];
        assert_eq!(first.size, 8192);
        assert_eq!(first.rss, Some(8192));
        assert_eq!(first.pss, Some(4096));
        assert_eq!(first.dirty, Some(4096));
        assert_eq!(
            layout.mappings[10].path.as_deref(),
            Some("/tmp/my data.bin")
        );
        assert!(layout.mappings[5].is_shared());
        let summary = layout.summary();
        assert_eq!(summary[0].kind, Text);
        assert_eq!(summary[0].mappings, 2);
        assert_eq!(summary[0].size, 8192 + 0x6000);
    }

    #[test]
    fn garbage_sizes_saturate_instead_of_overflowing() {
        let huge = "Private_Dirty: 18446744073709551615 kB\nShared_Dirty: 99999999999999999 kB\n\
                    Rss: 18446744073709551615 kB\nPss: 18446744073709551615 kB\n\
                    Swap: 18446744073709551615 kB\n";
        let text = format!(
            "0-ffffffffffffffff rw-p 0 00:00 0\n{huge}0-ffffffffffffffff rw-p 0 00:00 0\n{huge}"
        );
        let layout = Layout::parse(1, None, &text, true);
        assert_eq!(layout.mappings[0].dirty, Some(u64::MAX));
        let summary = layout.summary();
        assert_eq!(summary.len(), 1);
        let s = &summary[0];
        assert_eq!(
            (s.mappings, s.size, s.rss, s.pss, s.swap),
            (2, u64::MAX, u64::MAX, u64::MAX, u64::MAX)
        );
    }

    #[test]
    fn garbage_lines_are_ignored() {
        let layout = Layout::parse(1, None, "not a map\n\n12-zz r--p 0 0:0 0\n", false);
        assert!(layout.mappings.is_empty());
    }

    #[test]
    fn own_layout_has_heap_stack_text_and_a_region_we_map() {
        let region = crate::Region::anonymous_shared(3 * crate::page_size()).unwrap();
        let layout = Layout::current().unwrap();
        assert!(layout.detailed);
        let kinds: Vec<Kind> = layout.mappings.iter().map(|m| m.kind).collect();
        assert!(kinds.contains(&Kind::Text), "{kinds:?}");
        assert!(kinds.contains(&Kind::Stack), "{kinds:?}");
        let mine = layout.find(region.as_ptr() as usize).unwrap();
        assert!(mine.is_shared());
        assert_eq!(mine.kind, Kind::Anonymous);
    }

    #[test]
    fn unknown_pid_is_not_found() {
        let e = Layout::of(u32::MAX - 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
