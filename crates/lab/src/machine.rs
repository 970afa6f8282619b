//! What machine the lab ran on, read from /proc and /etc.

use std::fs;

use serde::Serialize;

/// The machine a report was measured on.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub(crate) hostname: String,
    /// Kernel release (`uname -r`).
    pub(crate) kernel: String,
    /// Distribution name from /etc/os-release.
    pub(crate) os: String,
    pub(crate) arch: &'static str,
    pub(crate) cpu_model: String,
    /// Logical CPUs this process may run on.
    pub(crate) cpus: usize,
    /// `MemTotal`, in bytes.
    pub(crate) memory_bytes: u64,
    /// `MemAvailable` when the lab started, in bytes.
    pub(crate) memory_available_bytes: u64,
    pub(crate) page_size: u64,
}

impl Machine {
    /// Reads the facts; any that cannot be read are left empty or zero.
    pub(crate) fn read() -> Self {
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            hostname: first_line("/proc/sys/kernel/hostname"),
            kernel: first_line("/proc/sys/kernel/osrelease"),
            os: os_name(),
            arch: std::env::consts::ARCH,
            cpu_model: cpu_model(),
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            memory_bytes: meminfo_bytes(&meminfo, "MemTotal"),
            memory_available_bytes: meminfo_bytes(&meminfo, "MemAvailable"),
            page_size: page_size(),
        }
    }
}

fn first_line(path: &str) -> String {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_default()
}

fn os_name() -> String {
    let text = fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map_or_else(|| "Linux".to_owned(), |v| v.trim_matches('"').to_owned())
}

fn cpu_model() -> String {
    let text = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default()
}

/// A `/proc/meminfo` field in bytes (the file states kB, meaning KiB).
pub(crate) fn meminfo_bytes(meminfo: &str, field: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// The page size from the auxiliary vector (`AT_PAGESZ`).
fn page_size() -> u64 {
    const AT_PAGESZ: u64 = 6;
    let Ok(auxv) = fs::read("/proc/self/auxv") else {
        return 4096;
    };
    auxv.chunks_exact(16)
        .find_map(|pair| {
            let key = u64::from_ne_bytes(pair[..8].try_into().ok()?);
            let value = u64::from_ne_bytes(pair[8..].try_into().ok()?);
            (key == AT_PAGESZ).then_some(value)
        })
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let m = Machine::read();
        assert!(!m.kernel.is_empty());
        assert!(m.cpus >= 1);
        assert!(m.memory_bytes > m.memory_available_bytes / 2);
        assert!(m.page_size.is_power_of_two() && m.page_size >= 4096);
    }

    #[test]
    fn meminfo_fields_are_bytes() {
        let text = "MemTotal:       24576000 kB\nMemAvailable:   1000 kB\n";
        assert_eq!(meminfo_bytes(text, "MemTotal"), 24_576_000 * 1024);
        assert_eq!(meminfo_bytes(text, "MemAvailable"), 1_024_000);
        assert_eq!(meminfo_bytes(text, "Nope"), 0);
    }
}
