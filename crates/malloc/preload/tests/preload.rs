//! `libmemio_malloc.so` under real programs: the C programs in `tests/c`
//! (built with `cc`) and system tools, each run with the library in
//! `LD_PRELOAD` and, where the output can be compared, without it.
//!
//! A test whose tool is missing (`cc`, `sort`, `python3`) prints why and
//! passes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The library cargo built for this package: next to the test executable
/// (`deps/`), or one level up.
fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("test executable folder");
    for dir in [deps, deps.parent().unwrap_or(deps)] {
        let lib = dir.join("libmemio_malloc.so");
        if lib.exists() {
            return lib;
        }
    }
    panic!("libmemio_malloc.so not found next to {}", exe.display());
}

/// Compiles `tests/c/<name>.c`; `None` (after saying why) without `cc`.
fn build(name: &str) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(format!("{name}.c"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("preload-{name}"));
    let status = match Command::new("cc")
        // No builtins: the compiler may otherwise drop a malloc/free pair
        // the test makes on purpose.
        .args(["-O1", "-fno-builtin", "-pthread", "-w", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: cannot run cc ({e})");
            return None;
        }
    };
    assert!(status.success(), "cc failed on {}", src.display());
    Some(out)
}

/// Whether `tool` runs (`tool --version`); says why not.
fn have(tool: &str) -> bool {
    match Command::new(tool).arg("--version").output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!("skipped: {tool} --version exited with {}", o.status);
            false
        }
        Err(e) => {
            eprintln!("skipped: cannot run {tool} ({e})");
            false
        }
    }
}

/// Runs `cmd` with or without the library preloaded.
fn run(mut cmd: Command, preload: bool) -> Output {
    cmd.env_remove("LD_PRELOAD");
    if preload {
        cmd.env("LD_PRELOAD", library());
    }
    cmd.output().expect("run the program")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a test program both ways and checks it passed, on the expected
/// allocator; returns the preloaded run.
fn run_c(name: &str) -> Option<Output> {
    let exe = build(name)?;
    for preload in [false, true] {
        let out = run(Command::new(&exe), preload);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "{name} (preload: {preload}) exited with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
        let verdict = format!("memio={} failures=0", u8::from(preload));
        assert!(stdout.contains(&verdict), "{name}: {stdout}");
        if preload {
            return Some(out);
        }
    }
    None
}

#[test]
fn every_export_keeps_glibc_edge_cases() {
    let Some(out) = run_c("api") else { return };
    let stderr = text(&out.stderr);
    // malloc_stats, in glibc's shape.
    let shape = [
        "Arena 0:",
        "system bytes     = ",
        "in use bytes     = ",
        "Total (incl. mmap):",
        "max mmap regions = ",
        "max mmap bytes   = ",
    ];
    for line in shape {
        assert!(stderr.contains(line), "missing {line:?} in\n{stderr}");
    }
    // Two foreign frees, one warning.
    let warnings = stderr
        .lines()
        .filter(|l| l.contains("not a block of this heap"))
        .count();
    assert_eq!(warnings, 1, "{stderr}");
    assert!(stderr.contains("memio-malloc: free(0x"), "{stderr}");
}

#[test]
fn threads_free_each_others_blocks_and_allocate_at_exit() {
    let Some(out) = run_c("threads") else { return };
    assert!(text(&out.stdout).ends_with("atexit allocated\n"));
}

#[test]
fn fork_and_exec_keep_the_heap_working_in_both_processes() {
    run_c("fork");
}

/// A deterministic file of `lines` lines of varied lengths.
fn lines_file(lines: usize) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("preload-lines.txt");
    let mut s: u64 = 0x2545_f491_4f6c_dd1d;
    let mut text = String::new();
    for i in 0..lines {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let len = usize::try_from(s % 90).unwrap_or(0);
        let word: String = (0..len)
            .map(|k| char::from(b'a' + u8::try_from((s >> (k % 60)) % 26).unwrap_or(0)))
            .collect();
        writeln!(text, "{word} {i}").expect("writing to a String");
    }
    std::fs::write(&path, text).expect("write the lines file");
    path
}

#[test]
fn sort_prints_the_same_bytes_as_under_glibc() {
    if !have("sort") {
        return;
    }
    let file = lines_file(200_000);
    let sort = |preload| {
        let mut cmd = Command::new("sort");
        cmd.arg(&file).env("LC_ALL", "C");
        run(cmd, preload)
    };
    let (plain, memio) = (sort(false), sort(true));
    assert!(plain.status.success() && memio.status.success());
    assert!(memio.stderr.is_empty(), "stderr: {}", text(&memio.stderr));
    assert_eq!(plain.stdout.len(), memio.stdout.len());
    assert!(plain.stdout == memio.stdout, "sort output differs");
}

const PYTHON_WORKLOAD: &str = r#"
import json, random, sys
random.seed(7)
d = {f"key{i}": [random.random() for _ in range(i % 17)] for i in range(200000)}
lst = sorted(d.items(), key=lambda kv: (len(kv[1]), kv[0]))
blob = json.dumps(d, sort_keys=True)
back = json.loads(blob)
assert back == d
words = sorted(str(random.getrandbits(64)) for _ in range(100000))
del d
print(len(blob), lst[0][0], lst[-1][0], words[0], words[-1], sum(len(w) for w in words))
with open("/proc/self/maps") as f:
    print("memio" if "libmemio_malloc.so" in f.read() else "glibc", file=sys.stderr)
"#;

#[test]
fn python_prints_the_same_output_as_under_glibc() {
    if !have("python3") {
        return;
    }
    let py = |preload| {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", PYTHON_WORKLOAD]);
        run(cmd, preload)
    };
    let (plain, memio) = (py(false), py(true));
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    assert!(memio.status.success(), "{}", text(&memio.stderr));
    assert_eq!(text(&plain.stderr), "glibc\n");
    assert_eq!(text(&memio.stderr), "memio\n");
    assert_eq!(text(&plain.stdout), text(&memio.stdout));
}

#[test]
fn stats_print_at_exit_when_asked() {
    let with = |value: &str| {
        let mut cmd = Command::new("true");
        cmd.env("MEMIO_MALLOC_STATS", value);
        run(cmd, true)
    };
    let out = with("1");
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("Arena 0:\n").count(), 1, "{stderr}");
    assert!(stderr.ends_with('\n') && stderr.contains("in use bytes     = "));
    assert_eq!(text(&with("0").stderr), "");
    assert_eq!(
        text(&with("yes").stderr),
        "memio-malloc: MEMIO_MALLOC_STATS: expected 0 or 1; option off\n"
    );
}

/// The blocks of the 1024-byte class the leak report names.
fn class_1024(stderr: &str) -> usize {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("memio-malloc:   class 1024 B: "))
        .and_then(|rest| rest.split(' ').next())
        .map_or(0, |n| n.parse().expect("a block count"))
}

#[test]
fn leaks_at_exit_are_reported_by_size_class() {
    let Some(exe) = build("leaks") else {
        return;
    };
    let report = |mode: &str| {
        let mut cmd = Command::new(&exe);
        cmd.arg(mode).env("MEMIO_MALLOC_LEAKS", "1");
        let out = run(cmd, true);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("memio=1 failures=0"));
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with("memio-malloc: still in use at exit: "),
            "{stderr}"
        );
        stderr
    };
    let (leaked, freed) = (report("leak"), report("free"));
    assert_eq!(
        class_1024(&leaked),
        class_1024(&freed) + 3,
        "three 1000-byte blocks leaked:\n{leaked}\nagainst\n{freed}"
    );
    let mut quiet = Command::new(&exe);
    quiet.arg("leak");
    assert_eq!(text(&run(quiet, true).stderr), "", "no report unless asked");
}

#[test]
fn perturb_fills_new_blocks_and_mallopt_changes_the_byte() {
    let Some(exe) = build("perturb") else {
        return;
    };
    let mut cmd = Command::new(&exe);
    cmd.env("MEMIO_MALLOC_PERTURB", "90");
    let out = run(cmd, true);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && stdout.contains("memio=1 failures=0"),
        "{stdout}{stderr}"
    );
    let mut bad = Command::new(&exe);
    bad.env("MEMIO_MALLOC_PERTURB", "300");
    let out = run(bad, true);
    assert!(
        text(&out.stderr).starts_with(
            "memio-malloc: MEMIO_MALLOC_PERTURB: expected a byte value 0-255; option off\n"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn reports_reach_stderr_when_the_program_closes_it_at_exit() {
    // coreutils close standard error in an exit handler, before the
    // library's report runs.
    if !have("sort") {
        return;
    }
    let mut cmd = Command::new("sort");
    cmd.arg("/dev/null")
        .env("MEMIO_MALLOC_STATS", "1")
        .env("MEMIO_MALLOC_LEAKS", "1");
    let out = run(cmd, true);
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Arena 0:\n"), "{stderr}");
    assert!(
        stderr.contains("memio-malloc: still in use at exit: "),
        "{stderr}"
    );
}
