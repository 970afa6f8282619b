//! System memory facts: page sizes, overcommit policy, memory totals and the
//! locked-memory limit — the numbers that decide whether a large mapping or
//! `mlock` will succeed.

use std::io;

use crate::error::context;

/// How the kernel answers allocations larger than free memory
/// (`/proc/sys/vm/overcommit_memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
#[non_exhaustive]
pub enum Overcommit {
    /// 0: a heuristic refuses only obviously excessive requests.
    Heuristic,
    /// 1: every request succeeds; the OOM killer settles the bill.
    Always,
    /// 2: strict accounting; requests fail beyond `CommitLimit`.
    Never,
    /// A value this crate does not know.
    Unknown,
}

impl Overcommit {
    /// The mode as `/proc/sys/vm/overcommit_memory` spells it, with a word.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Heuristic => "0 (heuristic)",
            Self::Always => "1 (always)",
            Self::Never => "2 (never: strict accounting)",
            Self::Unknown => "unknown",
        }
    }

    /// What the mode means, in a sentence.
    #[must_use]
    pub const fn meaning(self) -> &'static str {
        match self {
            Self::Heuristic => {
                "the kernel guesses: it refuses only a request larger than all of RAM and \
                 swap could ever back, and grants the rest even past CommitLimit"
            }
            Self::Always => {
                "the kernel grants every request, however large, and counts on most pages \
                 never being touched"
            }
            Self::Never => {
                "the kernel keeps a strict account: the memory promised to all processes \
                 (Committed_AS) may not pass CommitLimit"
            }
            Self::Unknown => "a mode this version of memio does not know",
        }
    }

    /// What happens when memory promised runs past what exists.
    #[must_use]
    pub const fn when_exceeded(self) -> &'static str {
        match self {
            Self::Heuristic | Self::Always => {
                "malloc and mmap keep succeeding; when the pages are touched and RAM and swap \
                 run out, the OOM killer ends the process with the highest oom_score"
            }
            Self::Never => {
                "a request that would pass CommitLimit fails at once (mmap, brk and fork \
                 return ENOMEM, malloc returns NULL); the OOM killer is rarely needed"
            }
            Self::Unknown => "unknown",
        }
    }
}

/// A snapshot of the system's memory facts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SystemFacts {
    /// Base page size in bytes.
    pub page_size: u64,
    /// Default huge page size in bytes (`Hugepagesize`), if huge pages exist.
    pub huge_page_size: Option<u64>,
    /// Huge pages reserved in the pool (`HugePages_Total`).
    pub huge_pages_total: u64,
    /// Huge pages free in the pool (`HugePages_Free`).
    pub huge_pages_free: u64,
    /// Transparent huge pages mode (`always`, `madvise` or `never`), if known.
    pub transparent_huge_pages: Option<String>,
    /// Overcommit mode.
    pub overcommit: Overcommit,
    /// `overcommit_ratio` in percent (used in mode 2 unless
    /// `overcommit_kbytes` is set).
    pub overcommit_ratio: u64,
    /// `overcommit_kbytes` in bytes (0 = the ratio applies).
    pub overcommit_bytes: u64,
    /// `MemTotal` in bytes.
    pub mem_total: u64,
    /// `MemAvailable` in bytes: what can be allocated without swapping.
    pub mem_available: u64,
    /// `CommitLimit` in bytes: the ceiling in mode 2.
    pub commit_limit: u64,
    /// `Committed_AS` in bytes: memory promised to processes so far.
    pub committed: u64,
    /// `SwapTotal` in bytes.
    pub swap_total: u64,
    /// `Mlocked` in bytes: memory locked system-wide.
    pub mlocked: u64,
    /// `RLIMIT_MEMLOCK` soft limit of this process in bytes (`None` =
    /// unlimited).
    pub memlock_limit: Option<u64>,
}

impl SystemFacts {
    /// Reads `/proc/meminfo`, `/proc/sys/vm/overcommit_*`, the THP setting
    /// and this process's `RLIMIT_MEMLOCK`.
    ///
    /// # Errors
    ///
    /// `/proc/meminfo` cannot be read (no procfs mounted).
    ///
    /// # References
    /// - [proc_meminfo(5)](https://man7.org/linux/man-pages/man5/proc_meminfo.5.html)
    /// - [proc_sys_vm(5)](https://man7.org/linux/man-pages/man5/proc_sys_vm.5.html)
    pub fn read() -> io::Result<Self> {
        let meminfo = std::fs::read_to_string("/proc/meminfo")
            .map_err(|e| context(&e, "failed to read '/proc/meminfo'"))?;
        let field = |name: &str| meminfo_field(&meminfo, name);
        let vm = |name: &str| {
            std::fs::read_to_string(format!("/proc/sys/vm/{name}"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        let overcommit = match vm("overcommit_memory") {
            Some(0) => Overcommit::Heuristic,
            Some(1) => Overcommit::Always,
            Some(2) => Overcommit::Never,
            _ => Overcommit::Unknown,
        };
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .ok()
            .and_then(|s| {
                let start = s.find('[')?;
                let end = s[start..].find(']')? + start;
                Some(s[start + 1..end].to_owned())
            });
        Ok(Self {
            page_size: crate::page_size() as u64,
            huge_page_size: field("Hugepagesize").filter(|&n| n > 0),
            huge_pages_total: meminfo_count(&meminfo, "HugePages_Total").unwrap_or(0),
            huge_pages_free: meminfo_count(&meminfo, "HugePages_Free").unwrap_or(0),
            transparent_huge_pages: thp,
            overcommit,
            overcommit_ratio: vm("overcommit_ratio").unwrap_or(0),
            overcommit_bytes: vm("overcommit_kbytes").unwrap_or(0).saturating_mul(1024),
            mem_total: field("MemTotal").unwrap_or(0),
            mem_available: field("MemAvailable").unwrap_or(0),
            commit_limit: field("CommitLimit").unwrap_or(0),
            committed: field("Committed_AS").unwrap_or(0),
            swap_total: field("SwapTotal").unwrap_or(0),
            mlocked: field("Mlocked").unwrap_or(0),
            memlock_limit: memlock_limit(),
        })
    }
}

impl SystemFacts {
    /// How `CommitLimit` is worked out from the settings, as the kernel
    /// documents it (`Documentation/mm/overcommit-accounting.rst`).
    #[must_use]
    pub fn commit_limit_rule(&self) -> String {
        if self.overcommit_bytes > 0 {
            format!(
                "overcommit_kbytes ({}) + SwapTotal ({})",
                human(self.overcommit_bytes),
                human(self.swap_total)
            )
        } else {
            format!(
                "RAM without huge pages × overcommit_ratio ({} %) + SwapTotal ({})",
                self.overcommit_ratio,
                human(self.swap_total)
            )
        }
    }

    /// Bytes that may still be promised before `Committed_AS` reaches
    /// `CommitLimit` (what mode 2 enforces); negative when already past it.
    #[must_use]
    pub fn commit_headroom(&self) -> i128 {
        i128::from(self.commit_limit) - i128::from(self.committed)
    }
}

/// A `Name:   1234 kB` line of `/proc/meminfo`, in bytes.
fn meminfo_field(text: &str, name: &str) -> Option<u64> {
    let value = meminfo_line(text, name)?;
    let mut parts = value.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// A `Name:   1234` count line of `/proc/meminfo`.
fn meminfo_count(text: &str, name: &str) -> Option<u64> {
    meminfo_line(text, name)?.trim().parse().ok()
}

fn meminfo_line<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then_some(value)
    })
}

/// The default huge page size in bytes, from `/proc/meminfo`.
#[must_use]
pub fn huge_page_size() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    usize::try_from(meminfo_field(&meminfo, "Hugepagesize")?)
        .ok()
        .filter(|n| n.is_power_of_two())
}

/// This process's `RLIMIT_MEMLOCK` soft limit in bytes; `None` when
/// unlimited.
///
/// # References
/// - [getrlimit(2)](https://man7.org/linux/man-pages/man2/getrlimit.2.html)
#[doc(alias = "getrlimit")]
#[doc(alias = "RLIMIT_MEMLOCK")]
#[must_use]
pub fn memlock_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Memlock).current
}

/// Bytes as `8 MiB`, `1.5 GiB`: for error messages.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_lines_are_parsed_in_bytes() {
        let text =
            "MemTotal:       24684096 kB\nHugePages_Total:       3\nHugepagesize:       2048 kB\n";
        assert_eq!(meminfo_field(text, "MemTotal"), Some(24_684_096 * 1024));
        assert_eq!(meminfo_count(text, "HugePages_Total"), Some(3));
        assert_eq!(meminfo_field(text, "Hugepagesize"), Some(2 << 20));
        assert_eq!(meminfo_field(text, "Missing"), None);
    }

    #[test]
    fn facts_of_this_machine_are_plausible() {
        let facts = SystemFacts::read().unwrap();
        assert!(facts.page_size.is_power_of_two());
        assert!(facts.mem_total >= facts.mem_available);
        assert!(facts.mem_total > 0);
    }

    #[test]
    fn every_mode_is_explained_and_the_headroom_adds_up() {
        for mode in [Overcommit::Heuristic, Overcommit::Always, Overcommit::Never] {
            assert!(mode.meaning().len() > 20);
            assert!(mode.when_exceeded().len() > 20);
        }
        assert!(Overcommit::Never.when_exceeded().contains("ENOMEM"));
        let facts = SystemFacts::read().unwrap();
        assert_eq!(
            facts.commit_headroom(),
            i128::from(facts.commit_limit) - i128::from(facts.committed)
        );
        let rule = facts.commit_limit_rule();
        assert!(rule.contains("SwapTotal"), "{rule}");
    }

    #[test]
    fn human_sizes_read_well() {
        assert_eq!(human(8 << 20), "8 MiB");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(12), "12 bytes");
    }
}
