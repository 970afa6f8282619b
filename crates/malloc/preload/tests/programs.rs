//! System tools under `libmemio_malloc.so`, each run with the library in
//! `LD_PRELOAD` and without it, the two runs compared: `sort`, a Python
//! workload and modules of Python's own test suite, `git` making and
//! reading a repository, `gcc` compiling with optimisation.
//!
//! A test whose tool is missing prints why and passes.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{have, run, scratch, text, xorshift};

/// Panics unless `plain` (the run under glibc) and `memio` are the same,
/// naming the first line that differs.
fn assert_same(what: &str, plain: &str, memio: &str) {
    if plain == memio {
        return;
    }
    let (a, b): (Vec<_>, Vec<_>) = (plain.split('\n').collect(), memio.split('\n').collect());
    // Splitting keeps every byte, so some line differs.
    let n = (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .unwrap_or(0);
    panic!(
        "{what}: the output under the preload differs from line {}\nglibc: {:?}\nmemio: {:?}",
        n + 1,
        a.get(n),
        b.get(n)
    );
}

/// A deterministic file of `lines` lines of varied lengths.
fn lines_file(lines: usize) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("preload-lines.txt");
    let mut s: u64 = 0x2545_f491_4f6c_dd1d;
    let mut text = String::new();
    for i in 0..lines {
        xorshift(&mut s);
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

/// Writes `files` small text files, 100 to a folder, under `root`; each
/// a few lines made from `seed` and its number.
fn write_tree(root: &Path, files: usize, seed: u64) {
    let mut s = seed | 1;
    for i in 0..files {
        let dir = root.join(format!("d{:02}", i / 100));
        std::fs::create_dir_all(&dir).expect("create a tree folder");
        let mut body = String::new();
        for _ in 0..=xorshift(&mut s) % 12 {
            writeln!(body, "{i} {:x}", xorshift(&mut s)).expect("writing to a String");
        }
        std::fs::write(dir.join(format!("f{i:04}.txt")), body).expect("write a tree file");
    }
}

/// Changes the tree of [`write_tree`] for a second commit: every 7th file
/// gains a line, every 11th goes, and a folder of 200 new files comes.
fn change_tree(root: &Path, files: usize) {
    for i in 0..files {
        let path = root.join(format!("d{:02}/f{i:04}.txt", i / 100));
        if i % 11 == 0 {
            std::fs::remove_file(&path).expect("remove a tree file");
        } else if i % 7 == 0 {
            let mut body = std::fs::read_to_string(&path).expect("read a tree file");
            writeln!(body, "changed {i}").expect("writing to a String");
            std::fs::write(&path, body).expect("rewrite a tree file");
        }
    }
    write_tree(&root.join("new"), 200, 99);
}

/// Runs `git args` in `dir`, with a fixed author, committer and date and
/// no user or system configuration, so that commit hashes depend on the
/// tree alone; checks it succeeded and returns its output, headed by the
/// command.
fn git(dir: &Path, args: &[&str], preload: bool) -> String {
    let mut cmd = Command::new("git");
    cmd.args(["-c", "gc.auto=0", "-c", "maintenance.auto=false"])
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env("LC_ALL", "C")
        .env("TZ", "UTC");
    for who in ["AUTHOR", "COMMITTER"] {
        cmd.env(format!("GIT_{who}_NAME"), "memio")
            .env(format!("GIT_{who}_EMAIL"), "memio@example.invalid")
            .env(format!("GIT_{who}_DATE"), "@1700000000 +0000");
    }
    let out = run(cmd, preload);
    let command = args.join(" ");
    assert!(
        out.status.success(),
        "git {command} (preload: {preload}) exited with {}\n{}",
        out.status,
        text(&out.stderr)
    );
    format!(
        "$ git {command}\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    )
}

#[test]
fn git_commits_and_logs_a_tree_of_thousands_of_files_as_under_glibc() {
    const FILES: usize = 3000;
    if !have("git") {
        return;
    }
    let session = |preload: bool| {
        let dir = scratch(if preload { "git-memio" } else { "git-glibc" });
        write_tree(&dir.join("src"), FILES, 7);
        let mut transcript = String::new();
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["add", "."],
            &["commit", "-q", "-m", "a tree of small files"],
        ] {
            transcript += &git(&dir, args, preload);
        }
        change_tree(&dir.join("src"), FILES);
        // Read back loose, then packed (gc's pack-objects works in threads).
        for args in [
            &["status", "--porcelain"][..],
            &["add", "-A"],
            &["commit", "-q", "-m", "change, remove and add files"],
            &["log", "--format=%H %s", "--numstat"],
            &["cat-file", "--batch-all-objects", "--batch-check"],
            &["cat-file", "-p", "HEAD"],
            &["cat-file", "-p", "HEAD:src/d07"],
            &["gc", "-q"],
            &["fsck", "--full", "--no-progress"],
            &["log", "-p", "--format=%H %an %ad %s", "--", "src/d07"],
            &["cat-file", "--batch-all-objects", "--batch-check"],
            &["diff", "--stat", "HEAD~1", "HEAD"],
        ] {
            transcript += &git(&dir, args, preload);
        }
        let listed = git(&dir, &["ls-files"], preload);
        let kept = (0..FILES).filter(|i| i % 11 != 0).count();
        assert_eq!(listed.lines().count(), 1 + kept + 200, "git ls-files");
        transcript + &listed
    };
    let (plain, memio) = (session(false), session(true));
    assert_same("git", &plain, &memio);
}

#[test]
fn gcc_compiles_the_same_binary_as_under_glibc_and_it_runs() {
    if !have("gcc") {
        return;
    }
    // The fuzz program: a few hundred lines, with the C library's headers.
    // Same source path, same folder and a fixed random seed: nothing in
    // the binary then depends on the run, debug information included.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/fuzz.c");
    let dir = scratch("gcc");
    let compile = |out: &str, preload| {
        let mut cmd = Command::new("gcc");
        cmd.args(["-O2", "-g", "-pthread", "-frandom-seed=memio", "-o", out])
            .arg(&src)
            .current_dir(&dir)
            .env("LC_ALL", "C");
        let run = run(cmd, preload);
        assert!(
            run.status.success(),
            "gcc (preload: {preload}) exited with {}\n{}",
            run.status,
            text(&run.stderr)
        );
        std::fs::read(dir.join(out)).expect("read the binary gcc wrote")
    };
    let (plain, memio) = (compile("glibc", false), compile("memio", true));
    assert_eq!(plain.len(), memio.len(), "binary sizes");
    assert!(
        plain == memio,
        "gcc wrote a different binary under the preload"
    );
    let mut fuzz = Command::new(dir.join("memio"));
    fuzz.args(["9", "20000"]);
    let out = run(fuzz, false);
    assert!(
        out.status.success() && text(&out.stdout).ends_with("memio=0 failures=0\n"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Modules of Python's own test suite that allocate heavily (containers,
/// strings and bytes, json, pickle, regular expressions) and take a few
/// seconds at most each; all in Python 3.11 and later.
const PYTHON_SUITE: [&str; 12] = [
    "test_json",
    "test_dict",
    "test_list",
    "test_sort",
    "test_set",
    "test_re",
    "test_collections",
    "test_heapq",
    "test_bytes",
    "test_deque",
    "test_itertools",
    "test_pickle",
];

/// Runs [`PYTHON_SUITE`] with `python3 -m test`.
fn python_suite(preload: bool) -> Output {
    let dir = scratch(if preload {
        "pysuite-memio"
    } else {
        "pysuite-glibc"
    });
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "test"])
        .args(PYTHON_SUITE)
        .current_dir(&dir)
        .env("TMPDIR", &dir);
    run(cmd, preload)
}

#[test]
fn python_test_suite_modules_all_pass() {
    if !have("python3") {
        return;
    }
    // Debian's python3 carries the runner without the test modules.
    let probe = Command::new("python3")
        .args(["-c", "import test.libregrtest, test.test_dict"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: python3 has no test suite (Debian ships it in libpython3.X-testsuite)");
        return;
    }
    let mut maps = Command::new("python3");
    maps.args([
        "-c",
        "print('libmemio_malloc.so' in open('/proc/self/maps').read())",
    ]);
    assert_eq!(
        text(&run(maps, true).stdout),
        "True\n",
        "the library is loaded"
    );
    // The suite's output carries timings and a random seed, so the runs
    // cannot be compared byte for byte: the verdict must be all passed.
    // glibc's run is made only when that fails, to tell a broken
    // allocator from a module that fails here anyway.
    let memio = python_suite(true);
    let stdout = text(&memio.stdout);
    let all = format!("All {} tests OK.", PYTHON_SUITE.len());
    if memio.status.success() && stdout.contains(&all) && stdout.contains("Tests result: SUCCESS") {
        return;
    }
    let plain = python_suite(false);
    panic!(
        "python3 -m test under the preload exited with {}\n{stdout}\n{}\n\
         under glibc it exited with {}:\n{}",
        memio.status,
        text(&memio.stderr),
        plain.status,
        summary(&text(&plain.stdout))
    );
}

/// The summary at the end of a `python3 -m test` run.
fn summary(stdout: &str) -> &str {
    stdout
        .find("== Tests result")
        .map_or(stdout, |at| &stdout[at..])
}
