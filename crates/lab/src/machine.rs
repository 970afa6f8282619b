//! What machine the lab ran on and the limits it sets: the kernel from
//! uname(2), memory facts from [`memio::map::system`], IPC limits from
//! their sysctls.

use memio::ipc::mq::posix::{MSG_MAX_PATH, MSGSIZE_MAX_PATH};
use memio::ipc::mq::sysv::MSGMAX_PATH;
use memio::map::system::SystemFacts;
use serde::Serialize;

/// The machine a report was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Host name (`uname -n`).
    pub hostname: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Distribution name from /etc/os-release.
    pub os: String,
    /// CPU architecture (`uname -m`).
    pub arch: String,
    /// The CPU's model name, when the kernel states one.
    pub cpu_model: String,
    /// Logical CPUs this process may run on.
    pub cpus: usize,
    /// `MemTotal`, in bytes.
    pub memory_bytes: u64,
    /// `MemAvailable` when the lab started, in bytes.
    pub memory_available_bytes: u64,
    /// Base page size in bytes.
    pub page_size: u64,
    /// The limits that decide what a section may measure.
    pub limits: Limits,
}

/// Machine limits that shape the lab's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// `RLIMIT_MEMLOCK` in bytes; `None` when unlimited.
    pub memlock_bytes: Option<u64>,
    /// Overcommit mode, as `/proc/sys/vm/overcommit_memory` spells it.
    pub overcommit: &'static str,
    /// Transparent huge pages mode (`always`, `madvise`, `never`).
    pub transparent_huge_pages: Option<String>,
    /// Huge pages reserved for `MAP_HUGETLB`.
    pub huge_pages_total: u64,
    /// Largest POSIX message queue message, in bytes.
    pub mq_msgsize_max: Option<u64>,
    /// Most messages a POSIX queue holds.
    pub mq_msg_max: Option<u64>,
    /// Largest System V message, in bytes.
    pub sysv_msgmax: Option<u64>,
}

impl Machine {
    /// Reads the facts; any that cannot be read are left empty or zero.
    #[must_use]
    pub fn read() -> Self {
        let uname = rustix::system::uname();
        let text = |s: &std::ffi::CStr| s.to_string_lossy().into_owned();
        let facts = SystemFacts::read().ok();
        Self {
            hostname: text(uname.nodename()),
            kernel: text(uname.release()),
            os: os_name(),
            arch: text(uname.machine()),
            cpu_model: cpu_model(),
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            memory_bytes: facts.as_ref().map_or(0, |f| f.mem_total),
            memory_available_bytes: facts.as_ref().map_or(0, |f| f.mem_available),
            page_size: memio::map::page_size() as u64,
            limits: Limits {
                memlock_bytes: memio::map::system::memlock_limit(),
                overcommit: facts
                    .as_ref()
                    .map_or("unknown", |f| f.overcommit.describe()),
                transparent_huge_pages: facts
                    .as_ref()
                    .and_then(|f| f.transparent_huge_pages.clone()),
                huge_pages_total: facts.as_ref().map_or(0, |f| f.huge_pages_total),
                mq_msgsize_max: sysctl(MSGSIZE_MAX_PATH),
                mq_msg_max: sysctl(MSG_MAX_PATH),
                sysv_msgmax: sysctl(MSGMAX_PATH),
            },
        }
    }
}

/// A number from a one-value file under /proc/sys.
fn sysctl(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn os_name() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map_or_else(|| "Linux".to_owned(), |v| v.trim_matches('"').to_owned())
}

fn cpu_model() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let m = Machine::read();
        assert!(!m.kernel.is_empty() && !m.arch.is_empty());
        assert!(m.cpus >= 1);
        assert!(m.memory_bytes > m.memory_available_bytes / 2);
        assert!(m.page_size.is_power_of_two() && m.page_size >= 4096);
        assert_eq!(m.limits.memlock_bytes, memio::map::system::memlock_limit());
    }
}
