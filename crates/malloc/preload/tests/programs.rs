//! System tools under `libmemio_malloc.so`, each run with the library in
//! `LD_PRELOAD` and without it, the two runs compared: `sort` and a
//! Python workload.
//!
//! A test whose tool is missing prints why and passes.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have, run, text, xorshift};

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
