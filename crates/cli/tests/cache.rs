//! `memio cache` over the built binary: residency after evict and touch,
//! agreement with util-linux `fincore`, totals, locking, a file truncated
//! while mapped, and bad input.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;

use common::{MEMIO, SharedBinary, TempDir, is_root, memio, text};

impl TempDir {
    /// A file of `len` pseudo-random bytes, written back to disk so it can
    /// be evicted.
    fn file(&self, name: &str, len: usize) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        path
    }
}

fn json(args: &[&str]) -> Value {
    let out = memio(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

fn cached_pages(path: &Path, method: &str) -> u64 {
    let v = json(&[
        "cache",
        "stat",
        "--json",
        "--method",
        method,
        path.to_str().unwrap(),
    ]);
    v["files"][0]["cached_pages"].as_u64().unwrap()
}

/// Resident pages as util-linux fincore counts them, or `None` when fincore
/// is not installed.
fn fincore_pages(path: &Path) -> Option<u64> {
    let out = Command::new("fincore")
        .args(["--noheadings", "--output", "PAGES"])
        .arg(path)
        .output()
        .ok()?;
    assert!(out.status.success(), "fincore: {}", text(&out.stderr));
    Some(text(&out.stdout).trim().parse().unwrap())
}

/// As root: a scratch file of `len` bytes that user nobody may read, and a
/// copy of the binary nobody may run; `None` (the test skipped with the
/// reason) when not root.
fn readable_by_nobody(name: &str, len: usize) -> Option<(TempDir, PathBuf, SharedBinary)> {
    if !is_root() {
        println!("not root: cannot ask as another user; skipped");
        return None;
    }
    let dir = TempDir::new("cache");
    // Readable by nobody: the directory is made 0755, the file is 0644.
    let path = dir.file(name, len);
    std::fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    Some((dir, path, SharedBinary::new()))
}

/// Runs the binary as nobody; `None` (skipped with the reason) when nobody
/// cannot read the test file here.
fn run_as_nobody(bin: &SharedBinary, args: &[&str]) -> Option<std::process::Output> {
    let out = bin.output(&mut bin.as_nobody(args))?;
    let stderr = text(&out.stderr);
    if stderr.contains("permission denied") {
        println!("nobody cannot read the test file here: skipped ({stderr})");
        return None;
    }
    Some(out)
}

#[test]
fn residency_is_zero_after_evict_full_after_touch_and_agrees_with_fincore() {
    let dir = TempDir::new("cache");
    let path = dir.file("data", 1_000_000);
    let p = path.to_str().unwrap();
    let pages = 1_000_000u64.div_ceil(4096);
    let have_fincore = fincore_pages(&path).is_some();
    if !have_fincore {
        println!("fincore (util-linux) is not installed: skipping the comparison");
    }
    for method in ["cachestat", "mincore", "auto"] {
        let v = json(&["cache", "evict", "--json", "--method", method, p]);
        assert_eq!(v["files"][0]["cached_pages"], 0, "{method}");
        assert_eq!(v["files"][0]["pages"], pages);
        assert_eq!(v["files"][0]["trusted"], true);
        if have_fincore {
            assert_eq!(fincore_pages(&path), Some(0), "{method}");
        }
        let v = json(&["cache", "touch", "--json", "--method", method, p]);
        assert_eq!(v["files"][0]["cached_pages"], pages, "{method}");
        assert_eq!(v["files"][0]["percent"], 100.0);
        // Whole pages, as fincore's RES counts them.
        assert_eq!(v["total"]["cached_bytes"], pages * 4096);
        if have_fincore {
            assert_eq!(fincore_pages(&path), Some(pages), "{method}");
        }
        // Part of the file: both tools see the same state.
        memio(&["cache", "evict", p]);
        let mut f = std::fs::File::open(&path).unwrap();
        let mut buf = vec![0u8; 100_000];
        f.read_exact(&mut buf).unwrap();
        // Read-ahead may still be filling the cache: compare only when our
        // count is the same before and after fincore's.
        let mut agreed = !have_fincore;
        for _ in 0..50 {
            let before = cached_pages(&path, method);
            assert!(before > 0 && before <= pages, "{method}: {before}");
            let Some(theirs) = fincore_pages(&path) else {
                break;
            };
            if cached_pages(&path, method) == before {
                assert_eq!(theirs, before, "{method}: fincore disagrees");
                agreed = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(agreed, "{method}: the cache never settled");
    }
}

#[test]
fn file_truncated_while_mapped_does_not_crash_stat() {
    let dir = TempDir::new("cache");
    let path = dir.file("shrinking", 256 << 10);
    let region = memio::map::MapOptions::new().map_path(&path).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    for len in [5000u64, 0] {
        file.set_len(len).unwrap();
        for method in ["auto", "cachestat", "mincore"] {
            let v = json(&[
                "cache",
                "stat",
                "--json",
                "--method",
                method,
                path.to_str().unwrap(),
            ]);
            assert_eq!(v["files"][0]["size"], len, "{method}");
            assert_eq!(v["files"][0]["pages"], len.div_ceil(4096), "{method}");
            let out = memio(&["cache", "touch", "--method", method, path.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        }
    }
    // The mapping outlived it all (its tail would SIGBUS if touched).
    assert_eq!(region.len(), 256 << 10);
}

#[test]
fn directories_need_r_and_several_files_get_a_totals_line() {
    let dir = TempDir::new("cache");
    dir.file("a", 10_000);
    dir.file("sub/b", 20_000);
    dir.file("sub/deeper/c", 3 << 20);
    let root = dir.0.to_str().unwrap();

    let out = memio(&["cache", "stat", root]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!("memio: {root}: is a directory (use -R to walk it)\n")
    );

    let out = memio(&["cache", "touch", "-R", root]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "header, 3 files, total:\n{stdout}");
    assert!(lines[0].contains("RES") && lines[0].contains("FILE"));
    assert!(
        lines[3].ends_with("sub/deeper/c") || lines[2].ends_with("sub/deeper/c"),
        "{stdout}"
    );
    assert!(lines[4].ends_with("total (3 files)"), "{stdout}");
    assert!(lines[4].contains("100%"), "{stdout}");
    // Human sizes in the table, exact bytes in JSON.
    assert!(stdout.contains("3.0 MiB"), "{stdout}");
    let v = json(&["cache", "stat", "-R", "--json", root]);
    assert_eq!(v["total"]["files"], 3);
    assert_eq!(v["total"]["size"], 10_000 + 20_000 + (3 << 20));

    let out = memio(&["cache", "stat", "-n", dir.0.join("a").to_str().unwrap()]);
    assert_eq!(text(&out.stdout).lines().count(), 1, "no header with -n");
}

#[test]
fn bad_input_is_reported_once_per_path() {
    let dir = TempDir::new("cache");
    let good = dir.file("good", 5000);
    let missing = dir.0.join("missing");
    let out = memio(&[
        "cache",
        "stat",
        missing.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!("memio: {}: no such file or directory\n", missing.display())
    );
    assert!(
        text(&out.stdout).contains("good"),
        "the good file is still shown"
    );

    let fifo = dir.0.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let out = memio(&["cache", "stat", fifo.to_str().unwrap(), "/dev/null"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "memio: {}: not a regular file\nmemio: /dev/null: not a regular file\n",
            fifo.display()
        )
    );

    for args in [
        &["cache"][..],
        &["cache", "stat"],
        &["cache", "frobnicate", "x"],
        &["cache", "stat", "--method", "guess", good.to_str().unwrap()],
    ] {
        let out = memio(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).starts_with("memio: "), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn lock_holds_pages_until_terminated() {
    let dir = TempDir::new("cache");
    let path = dir.file("locked", 1 << 20);
    memio(&["cache", "evict", path.to_str().unwrap()]);
    let mut child = Command::new(MEMIO)
        .args(["cache", "lock", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The table is printed once the pages are locked, then the note that
    // they are held; wait for both before looking.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        lines.push(line);
    }
    assert!(lines[1].contains("100%"), "{lines:?}");
    let mut note = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut note)
        .unwrap();
    assert!(note.contains("holding 1.0 MiB"), "{note}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let locked_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(locked_kib >= 1024, "VmLck {locked_kib} kB");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
}

#[test]
fn lock_past_rlimit_memlock_says_so() {
    // Nobody meets RLIMIT_MEMLOCK, which root does not.
    let Some((_dir, path, bin)) = readable_by_nobody("too-big", 9 << 20) else {
        return;
    };
    let Some(out) = run_as_nobody(&bin, &["cache", "lock", path.to_str().unwrap()]) else {
        return;
    };
    let stderr = text(&out.stderr);
    let limit = std::fs::read_to_string("/proc/self/limits").unwrap();
    if limit
        .lines()
        .any(|l| l.starts_with("Max locked memory") && l.contains("unlimited"))
    {
        println!("RLIMIT_MEMLOCK is unlimited: nothing to exceed; skipped");
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!("memio: {}: failed to lock", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("RLIMIT_MEMLOCK is"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn untrusted_mincore_answers_are_marked() {
    let Some((_dir, path, bin)) = readable_by_nobody("roots", 100_000) else {
        return;
    };
    let as_nobody = |args: &[&str]| bin.output(&mut bin.as_nobody(args));
    let p = path.to_str().unwrap();
    let Some(cachestat) = as_nobody(&["cache", "stat", "--method", "cachestat", p]) else {
        return;
    };
    if text(&cachestat.stderr).contains("permission denied") && cachestat.stdout.is_empty() {
        println!("nobody cannot read the test file here: skipped");
        return;
    }
    let auto = as_nobody(&["cache", "stat", "--json", p]).unwrap();
    assert_eq!(auto.status.code(), Some(0), "{}", text(&auto.stderr));
    let v: Value = serde_json::from_slice(&auto.stdout).unwrap();
    if cachestat.status.code() == Some(0) {
        // An older kernel: cachestat answers anyone, and truthfully.
        assert_eq!(v["files"][0]["method"], "cachestat");
        assert_eq!(v["files"][0]["trusted"], true);
        return;
    }
    assert_eq!(cachestat.status.code(), Some(2));
    assert_eq!(
        text(&cachestat.stderr),
        format!(
            "memio: {p}: cachestat refused: operation not permitted (it answers only the \
             file's owner or a process that may write it)\n"
        )
    );
    assert_eq!(v["files"][0]["method"], "mincore");
    assert_eq!(v["files"][0]["trusted"], false);
    let table = as_nobody(&["cache", "stat", p]).unwrap();
    assert!(
        text(&table.stdout).contains("%?"),
        "{}",
        text(&table.stdout)
    );
    assert!(
        text(&table.stderr).contains("marked '?'"),
        "{}",
        text(&table.stderr)
    );
}

/// Spawns memio with piped stdin, stdout and stderr.
fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(MEMIO)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn rows_stream_while_the_list_of_paths_is_still_coming() {
    let dir = TempDir::new("cache");
    let a = dir.file("a", 5000);
    let mut child = spawn(&["cache", "stat", "-b", "-"]);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", a.display()).unwrap();
    stdin.flush().unwrap();
    // The header and a's row arrive while stdin is still open: the report
    // does not wait for the end of its input.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut header = String::new();
    let mut row = String::new();
    stdout.read_line(&mut header).unwrap();
    stdout.read_line(&mut row).unwrap();
    assert!(header.starts_with("       RES"), "{header}");
    assert!(row.trim_end().ends_with(a.to_str().unwrap()), "{row}");
    let b = dir.file("b", 5000);
    writeln!(stdin, "{}", b.display()).unwrap();
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("/b\n"), "{rest}");
    assert!(rest.contains("total (2 files)"), "{rest}");
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_closed_pipe_ends_a_long_walk_at_once() {
    let dir = TempDir::new("cache");
    for i in 0..200 {
        dir.file(&format!("d{}/f{i}", i % 7), 100);
    }
    for jobs in ["1", "3"] {
        let mut child = spawn(&["cache", "stat", "-R", "-j", jobs, dir.0.to_str().unwrap()]);
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "-j {jobs}");
        assert!(out.stderr.is_empty(), "-j {jobs}: {}", text(&out.stderr));
    }
}

#[test]
fn parallel_rows_keep_walk_order() {
    let dir = TempDir::new("cache");
    for i in 0..50 {
        dir.file(&format!("f{i:02}"), 100 + i * 1000);
    }
    let one = memio(&["cache", "stat", "-R", "-j", "1", dir.0.to_str().unwrap()]);
    let four = memio(&["cache", "stat", "-R", "-j", "4", dir.0.to_str().unwrap()]);
    assert_eq!(one.status.code(), Some(0));
    let names = |o: &std::process::Output| -> Vec<String> {
        text(&o.stdout)
            .lines()
            .map(|l| l.rsplit("  ").next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&one), names(&four));
    assert_eq!(names(&one).len(), 52);
}

#[test]
fn hard_links_count_once_and_skipped_entries_are_counted_and_named() {
    let dir = TempDir::new("cache");
    let big = dir.file("a-big", 100_000);
    std::fs::hard_link(&big, dir.0.join("b-link")).unwrap();
    std::os::unix::fs::symlink(&big, dir.0.join("c-symlink")).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(dir.0.join("d-fifo"))
            .status()
            .unwrap()
            .success()
    );
    let root = dir.0.to_str().unwrap();
    let v = json(&["cache", "stat", "-R", "--json", root]);
    assert_eq!(v["total"]["files"], 1);
    assert_eq!(v["total"]["size"], 100_000);
    assert_eq!(v["total"]["skipped"], 3);
    let out = memio(&["-v", "cache", "stat", "-R", root]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    for (name, why) in [
        ("b-link", "a hard link to a file already counted"),
        ("c-symlink", "a symbolic link (use -f to follow)"),
        ("d-fifo", "a FIFO"),
    ] {
        assert!(
            stderr.contains(&format!("{root}/{name}: skipped: {why}")),
            "{stderr}"
        );
    }
    assert!(text(&out.stdout).contains("total (1 files, 3 skipped)"));
    // Following links, the symlink leads to the file already counted.
    let v = json(&["cache", "stat", "-R", "-f", "--json", root]);
    assert_eq!(v["total"]["files"], 1);
}

#[test]
fn tiny_files_take_a_page_empty_files_have_no_percentage_and_percentages_round() {
    let dir = TempDir::new("cache");
    let tiny = dir.file("tiny", 3);
    let empty = dir.file("empty", 0);
    let three = dir.file("three", 3 * 4096);
    memio(&["cache", "touch", tiny.to_str().unwrap()]);
    let v = json(&[
        "cache",
        "stat",
        "--json",
        tiny.to_str().unwrap(),
        empty.to_str().unwrap(),
    ]);
    assert_eq!(v["files"][0]["cached_bytes"], 4096, "fincore's RES: 4K");
    assert_eq!(v["files"][1]["percent"], Value::Null);
    let out = memio(&[
        "cache",
        "stat",
        tiny.to_str().unwrap(),
        empty.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.lines().nth(1).unwrap().starts_with("   4.0 KiB"),
        "{stdout}"
    );
    let empty_row = stdout.lines().nth(2).unwrap();
    assert!(empty_row.contains(" -  "), "{empty_row}");
    // Two of three pages: 67%, where truncation said 66%.
    memio(&["cache", "evict", three.to_str().unwrap()]);
    let out = memio(&["cache", "touch", "-p", "0-8k", three.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json(&["cache", "stat", "--json", three.to_str().unwrap()]);
    if v["files"][0]["cached_pages"] == 2 {
        let out = memio(&["cache", "stat", three.to_str().unwrap()]);
        assert!(text(&out.stdout).contains("2/3") && text(&out.stdout).contains("67%"));
    } else {
        println!("read-ahead filled the third page too: rounding not checked");
    }
    let v = json(&[
        "cache",
        "stat",
        "--json",
        "-p",
        "4k-8k",
        three.to_str().unwrap(),
    ]);
    assert_eq!(v["files"][0]["pages"], 1);
    assert_eq!(v["files"][0]["size"], 4096);
    // vmtouch's -p -HI: from the start.
    let v = json(&[
        "cache",
        "stat",
        "--json",
        "-p",
        "-6k",
        three.to_str().unwrap(),
    ]);
    assert_eq!(
        (
            v["files"][0]["pages"].as_u64(),
            v["files"][0]["size"].as_u64()
        ),
        (Some(2), Some(6144))
    );
}

#[test]
fn vmtouch_filters_pick_the_files() {
    let dir = TempDir::new("cache");
    dir.file("keep.log", 100);
    dir.file("drop.tmp", 100);
    dir.file("huge.log", 50_000);
    dir.file("skipdir/inner.log", 100);
    let root = dir.0.to_str().unwrap();
    let names = |args: &[&str]| -> Vec<String> {
        let v = json(&[&["cache", "stat", "-R", "--json"][..], args, &[root]].concat());
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                f["path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(
        names(&["-i", "*.log"]),
        ["huge.log", "keep.log", "inner.log"]
    );
    assert_eq!(
        names(&["-i", "*.log", "-I", "skip*"]),
        ["huge.log", "keep.log"]
    );
    assert_eq!(
        names(&["-I", "*.tmp", "-m", "10k"]),
        ["keep.log", "inner.log"]
    );
    // A NUL-separated list (find -print0).
    let list = dir.0.join("list");
    std::fs::write(&list, format!("{root}/keep.log\0{root}/drop.tmp\0")).unwrap();
    let v = json(&[
        "cache",
        "stat",
        "--json",
        "-0",
        "-b",
        list.to_str().unwrap(),
    ]);
    assert_eq!(v["total"]["files"], 2);
}

#[test]
fn verbose_stat_draws_a_residency_map() {
    let dir = TempDir::new("cache");
    let path = dir.file("mapped", 8 * 4096);
    let p = path.to_str().unwrap();
    memio(&["cache", "evict", p]);
    memio(&["cache", "touch", p]);
    let out = memio(&["-v", "cache", "stat", p]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("  [OOOOOOOO] 8/8"), "{stdout}");
    let v = json(&["-v", "cache", "stat", "--json", p]);
    assert_eq!(v["files"][0]["page_map"]["bar"], "OOOOOOOO");
}

#[test]
fn evicting_pages_another_process_locked_names_it_and_exits_1() {
    let dir = TempDir::new("cache");
    let path = dir.file("held", 1 << 20);
    let p = path.to_str().unwrap();
    let mut holder = Command::new(MEMIO)
        .args(["cache", "lock", p])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(holder.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    out.read_line(&mut line).unwrap();
    let evict = memio(&["cache", "evict", "--json", p]);
    let _ = holder.kill();
    let _ = holder.wait();
    let stderr = text(&evict.stderr);
    assert_eq!(evict.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "pid {} (memio) maps 1.0 MiB, 1.0 MiB locked",
            holder.id()
        )),
        "{stderr}"
    );
    let v: Value = serde_json::from_slice(&evict.stdout).unwrap();
    assert_eq!(v["files"][0]["pages_evicted_now"], 0);
    assert_eq!(v["files"][0]["cached_pages"], 256);
    assert!(
        stderr.contains("the kernel dropped 0 cached page(s)"),
        "{stderr}"
    );
    // Once the holder is gone, the same eviction empties the file.
    let again = memio(&["cache", "evict", p]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        text(&again.stderr).contains("the kernel dropped 256 cached page(s) (1.0 MiB); 0 stay"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn evicting_what_memio_cannot_measure_says_so_and_exits_1() {
    let Some((_dir, path, bin)) = readable_by_nobody("roots", 100_000) else {
        return;
    };
    let Some(out) = run_as_nobody(&bin, &["cache", "evict", path.to_str().unwrap()]) else {
        return;
    };
    let stderr = text(&out.stderr);
    let v = json(&[
        "cache",
        "stat",
        "--json",
        "--method",
        "cachestat",
        path.to_str().unwrap(),
    ]);
    if v["files"][0]["method"] == "cachestat" && text(&out.stdout).contains("%?") {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("cannot tell whether any page left the cache"),
            "{stderr}"
        );
    } else {
        println!("this kernel answers nobody truthfully: nothing to check");
    }
}

#[test]
fn watch_prints_one_json_line_per_report() {
    let dir = TempDir::new("cache");
    let path = dir.file("watched", 4096);
    let mut child = spawn(&[
        "cache",
        "stat",
        "-w",
        "0.1",
        "--json",
        path.to_str().unwrap(),
    ]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).expect("one JSON document per line");
        assert_eq!(v["total"]["files"], 1);
    }
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "a closed pipe ends the watch");
}

#[test]
fn a_list_without_separators_is_cut_at_path_max_not_held_whole() {
    // 64 MiB of one "path": memio reads it in PATH_MAX pieces and reports
    // the name as too long.
    let mut child = Command::new(MEMIO)
        .args(["cache", "stat", "-b", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..64 {
        stdin.write_all(&chunk).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("file name too long"),
        "{}",
        text(&out.stderr)
    );
}
