//! `memio maps` over the built binary: layout tables, JSON, system facts,
//! and bad input.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

mod common;

use common::{SharedBinary, is_root, memio, text};

/// A file under /dev/shm (a POSIX shared memory object) removed on drop.
struct ShmFile(std::path::PathBuf);

impl ShmFile {
    fn new(len: u64) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::path::PathBuf::from(format!(
            "/dev/shm/memio-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::File::create(&path).unwrap().set_len(len).unwrap();
        Self(path)
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn own_layout_has_the_classic_segments_and_a_summary() {
    let out = memio(&["maps"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ADDRESS") && stdout.contains("KIND") && stdout.contains("MAPPING"),
        "{stdout}"
    );
    for kind in ["text", "data", "heap", "stack", "shared-lib"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(kind) || l.contains(&format!("  {kind}  "))),
            "no {kind} in\n{stdout}"
        );
    }
    assert!(stdout.contains("MAPPINGS"), "summary missing:\n{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("total")), "{stdout}");
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn another_process_and_its_shared_memory_show_up_in_json() {
    let shm = ShmFile::new(64 << 10);
    let region = memio::map::MapOptions::new()
        .read_write()
        .map_path(&shm.0)
        .unwrap();
    let out = memio(&["maps", &std::process::id().to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["pid"], std::process::id());
    let mappings = v["mappings"].as_array().unwrap();
    let mine = mappings
        .iter()
        .find(|m| m["start"].as_u64() == Some(region.as_ptr() as u64))
        .expect("our mapping is listed");
    assert_eq!(mine["kind"], "posix-shm");
    assert_eq!(mine["size"], 64 << 10);
    assert_eq!(mine["perms"], "rw-s");
    assert_eq!(mine["path"], shm.0.to_str().unwrap());
    let summary = v["summary"].as_array().unwrap();
    assert!(summary.iter().any(|s| s["kind"] == "posix-shm"));
    assert!(summary.iter().any(|s| s["kind"] == "text"));
    // Sizes are exact numbers in JSON.
    assert!(mappings.iter().all(|m| m["size"].is_u64()));
}

#[test]
fn a_child_process_is_inspected_by_pid() {
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let out = memio(&["maps", &child.id().to_string()]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("text") && l.ends_with("sleep")),
        "{stdout}"
    );
}

#[test]
fn unknown_pid_is_a_negative_result() {
    let out = memio(&["maps", "2147483646"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "memio: pid 2147483646: no such process\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn garbage_pid_and_conflicting_flags_are_usage_errors() {
    for args in [
        &["maps", "abc"][..],
        &["maps", "-5"],
        &["maps", "1", "--system"],
    ] {
        let out = memio(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).starts_with("memio: "),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn system_facts_in_table_and_json() {
    let out = memio(&["maps", "--system"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    for fact in [
        "page size",
        "overcommit mode",
        "MemAvailable",
        "CommitLimit",
        "RLIMIT_MEMLOCK",
    ] {
        assert!(stdout.contains(fact), "{fact} missing:\n{stdout}");
    }
    let out = memio(&["maps", "--system", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let page = v["page_size"].as_u64().unwrap();
    assert!(page.is_power_of_two());
    assert!(v["mem_total"].as_u64().unwrap() >= v["mem_available"].as_u64().unwrap());
    assert!(
        ["heuristic", "always", "never", "unknown"].contains(&v["overcommit"].as_str().unwrap())
    );
}

#[test]
fn another_users_process_is_refused_with_the_reason() {
    if !is_root() {
        println!("not root: cannot run memio as another user; skipped");
        return;
    }
    // As user nobody, root's processes (this test) cannot be inspected.
    let pid = std::process::id().to_string();
    let bin = SharedBinary::new();
    let Some(out) = bin.output(&mut bin.as_nobody(&["maps", &pid])) else {
        return;
    };
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!("memio: pid {pid}: failed to read '/proc/{pid}/maps': permission denied\n")
    );
    assert!(out.stdout.is_empty());
}
