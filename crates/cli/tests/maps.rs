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
        // An interval under 100ms would redraw as fast as the machine goes.
        &["maps", "--watch", "0"],
        &["maps", "-w", "10ms"],
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

/// Waits (up to 10 s) until process `pid` is asleep, its start-up done.
fn settled(pid: &str) {
    let stat = format!("/proc/{pid}/stat");
    for _ in 0..1000 {
        let text = std::fs::read_to_string(&stat).unwrap_or_default();
        let state = text.rsplit_once(") ").map(|(_, rest)| rest.as_bytes()[0]);
        if state == Some(b'S') {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("process {pid} never went to sleep");
}

#[test]
fn the_header_names_the_command_line_the_heap_the_break_and_the_oom_score() {
    let mut child = Command::new("sleep").args(["30", "7"]).spawn().unwrap();
    let pid = child.id().to_string();
    // The table and the JSON must describe one layout: wait until sleep has
    // set itself up (its heap included) and sleeps.
    settled(&pid);
    let out = memio(&["maps", &pid]);
    let json = memio(&["maps", &pid, "--json"]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next().unwrap(), format!("{pid}:   sleep 30 7"));
    let facts = lines.next().unwrap();
    assert!(facts.contains("oom_score "), "{facts}");
    assert!(facts.contains("oom_score_adj "), "{facts}");
    assert!(lines.next().unwrap().contains("DIRTY"), "a Dirty column");
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    let p = &v["process"];
    assert_eq!(p["cmdline"], serde_json::json!(["sleep", "30", "7"]));
    assert!(p["oom_score"].is_i64());
    // The break is the end of the [heap] mapping; the heap starts at
    // start_brk (field 47 of /proc/PID/stat), at or below it.
    let heap = v["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "heap");
    if let Some(heap) = heap {
        assert_eq!(p["brk"], heap["end"]);
        assert!(p["heap_start"].as_u64().unwrap() <= heap["end"].as_u64().unwrap());
        assert!(facts.contains("break 0x"), "{facts}");
    }
}

#[test]
fn several_pids_sorting_and_kind_filters_work_like_pmap() {
    let out = memio(&[
        "maps",
        "self",
        "--json",
        "--sort",
        "rss",
        "--kind",
        "text,heap",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let maps = v["mappings"].as_array().unwrap();
    assert!(!maps.is_empty());
    assert!(
        maps.iter()
            .all(|m| m["kind"] == "text" || m["kind"] == "heap")
    );
    let rss: Vec<u64> = maps.iter().map(|m| m["rss"].as_u64().unwrap()).collect();
    assert!(rss.windows(2).all(|w| w[0] >= w[1]), "{rss:?}");

    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id().to_string();
    let out = memio(&["maps", "self", &pid, "2147483646", "--json", "--no-summary"]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a missing process is a negative result"
    );
    assert_eq!(
        text(&out.stderr),
        "memio: pid 2147483646: no such process\n"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let docs = v.as_array().unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1]["pid"].to_string(), pid);

    let out = memio(&["maps", "--kind", "heapish"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("kinds: text, data"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn sysv_segments_are_named_by_shmid_as_pmap_does() {
    let seg = memio::ipc::shm::sysv::SysvShmOptions::new()
        .size(8192)
        .open(memio::ipc::Key::PRIVATE, memio::ipc::Create::Exclusive)
        .unwrap();
    let region = seg.attach(memio::map::Access::ReadWrite).unwrap();
    let out = memio(&[
        "maps",
        &std::process::id().to_string(),
        "--kind",
        "sysv-shm",
    ]);
    let _ = seg.remove();
    drop(region);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("[ shmid={:#x} ]", seg.id())),
        "{stdout}"
    );
}

#[test]
fn kernel_threads_are_named_and_have_no_mappings() {
    let comm = std::fs::read_to_string("/proc/2/comm").unwrap_or_default();
    if comm.trim() != "kthreadd" {
        println!("pid 2 is not kthreadd in this pid namespace: skipped");
        return;
    }
    let out = memio(&["maps", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("2:   [kthreadd]\n"));
    assert!(text(&out.stderr).contains("a kernel thread"));
}

#[test]
fn own_malloc_figures_and_only_its_own() {
    let out = memio(&["maps", "self", "--malloc", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["malloc"]["arena"].as_u64().unwrap() > 0);
    assert!(v["malloc"]["uordblks"].as_u64().unwrap() > 0);
    let out = memio(&["maps", "1", "--malloc"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("memio: --malloc: "));
}

#[test]
fn system_explains_overcommit() {
    let out = memio(&["maps", "--system"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("\nOvercommit "), "{stdout}");
    assert!(stdout.contains("CommitLimit = "), "{stdout}");
    assert!(stdout.contains("When exceeded: "), "{stdout}");
    let v: Value = serde_json::from_slice(&memio(&["maps", "--system", "--json"]).stdout).unwrap();
    assert!(v["overcommit_meaning"].is_string());
    assert_eq!(
        v["commit_headroom"].as_i64().unwrap(),
        v["commit_limit"].as_i64().unwrap() - v["committed"].as_i64().unwrap()
    );
}

#[test]
fn watch_prints_one_json_line_per_report() {
    use std::io::BufRead;
    let mut child = Command::new(common::MEMIO)
        .args(["maps", "-w", "0.1", "--json", "--kind", "heap"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["pid"], child.id());
    }
    drop(stdout);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
