//! `memio lab --only malloc` over the built binary: every allocator this
//! build has runs every workload in its own child process, with a time and
//! a peak RSS row each, and a geometric mean row per allocator; then the
//! programs run under glibc and under memio's preloaded library, checks
//! off and on, while a distribution malloc that is not found (the lookup
//! points at a folder that does not exist) is a note, not a failure.

use std::process::{Command, Stdio};

use serde_json::Value;

const MEMIO: &str = env!("CARGO_BIN_EXE_memio");

/// Whether `program` runs on this machine (`--version` succeeds).
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_malloc_section_measures_every_allocator_on_every_workload() {
    let out_dir =
        std::env::temp_dir().join(format!("memio-test-{}-lab-malloc", std::process::id()));
    let out = Command::new(MEMIO)
        .args(["lab", "--quick", "--only", "malloc", "--json", "--out"])
        .arg(&out_dir)
        .env("MEMIO_LAB_MALLOC_LIBS", "/nonexistent/memio-test")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let section = &report["sections"][0];
    assert_eq!(section["name"], "malloc");
    assert_eq!(section["reference"], "system");
    assert!(section["error"].is_null(), "{}", section["error"]);
    let all_rows = section["rows"].as_array().unwrap();
    let (programs, rows): (Vec<&Value>, Vec<&Value>) = all_rows.iter().partition(|r| {
        r["params"]["program"].is_string() || r["workload"] == "programs: geometric mean"
    });
    let notes: Vec<&str> = section["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    in_process_rows(&rows);
    assert!(
        notes.iter().any(|n| n.starts_with("memio vs system: ")),
        "{notes:?}"
    );
    program_rows(&programs, &notes);
}

/// The Rust workloads: every allocator built in, on every workload.
fn in_process_rows(rows: &[&Value]) {
    let mut allocators = vec!["system", "memio", "memio, huge pages"];
    if cfg!(feature = "mimalloc") {
        allocators.push("mimalloc");
    }
    if cfg!(feature = "jemalloc") {
        allocators.push("jemalloc");
    }
    let workloads: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    assert_eq!(workloads.len(), 9, "{workloads:?}"); // eight workloads and the geometric mean
    for workload in &workloads {
        for unit in ["µs/op", "MiB peak RSS"] {
            let of_it: Vec<_> = rows
                .iter()
                .filter(|r| r["workload"] == *workload && r["unit"] == unit)
                .collect();
            for a in &allocators {
                let row = of_it.iter().find(|r| r["mechanism"] == *a);
                let row = row.unwrap_or_else(|| panic!("no {a} row for {workload} ({unit})"));
                assert!(row["median"].as_f64().unwrap() > 0.0, "{row}");
            }
            assert!(
                of_it
                    .iter()
                    .any(|r| r["reference"] == true && r["mechanism"] == "system")
            );
        }
    }
}

/// The programs: the ones this machine can build and run, under glibc
/// (the reference) and memio, checks off and on; the distribution mallocs
/// named in notes as not found; the targets judged.
fn program_rows(rows: &[&Value], notes: &[&str]) {
    let cc = std::env::var("CC").unwrap_or_default();
    let cc = cc.split_whitespace().next().unwrap_or("cc");
    // A compiler or interpreter that is there but cannot build or run its
    // program (no C library headers, say) is a note too.
    let not_measured = |what: &str| notes.iter().any(|n| n.starts_with(what));
    let mut expected = Vec::new();
    if runs(cc) {
        for c in ["churn", "xfree", "large"] {
            if !not_measured(&format!("the C program {c} is not measured")) {
                expected.push(c);
            }
        }
    } else {
        assert!(not_measured("the C programs are not measured"), "{notes:?}");
    }
    if runs("python3") {
        if !not_measured("the Python workload is not measured") {
            expected.push("python");
        }
    } else {
        assert!(
            not_measured("the Python workload is not measured"),
            "{notes:?}"
        );
    }
    for program in &expected {
        for unit in ["ms/run", "MiB peak RSS"] {
            let of_it: Vec<_> = rows
                .iter()
                .filter(|r| r["params"]["program"] == *program && r["unit"] == unit)
                .collect();
            for a in ["glibc", "memio", "memio, checks on", "memio, huge pages"] {
                let row = of_it.iter().find(|r| r["mechanism"] == a);
                let row =
                    row.unwrap_or_else(|| panic!("no {a} row for {program} ({unit}): {notes:#?}"));
                assert!(row["median"].as_f64().unwrap() > 0.0, "{row}");
                assert_eq!(row["reference"], a == "glibc", "{row}");
            }
            assert!(
                !of_it
                    .iter()
                    .any(|r| r["mechanism"] == "jemalloc" || r["mechanism"] == "mimalloc"),
                "{of_it:?}"
            );
        }
    }
    for name in ["jemalloc", "mimalloc"] {
        let missing = format!(
            "{name} is not measured on the programs: no lib{name}.so.2 in /nonexistent/memio-test"
        );
        assert!(notes.iter().any(|n| n.starts_with(&missing)), "{notes:#?}");
    }
    if !expected.is_empty() {
        assert!(
            rows.iter()
                .any(|r| r["workload"] == "programs: geometric mean" && r["mechanism"] == "memio"),
            "no geometric mean row"
        );
        for target in [
            "no program slower than glibc",
            "peak RSS at most 1.1x glibc's",
            "checks on at most 2x",
        ] {
            let line = notes
                .iter()
                .find(|n| n.starts_with(&format!("target {target}")));
            let line = line.unwrap_or_else(|| panic!("no target line for {target}: {notes:#?}"));
            assert!(
                line.contains(": met (") || line.contains(": not met ("),
                "{line}"
            );
        }
        assert!(
            notes.contains(
                &"target geometric mean at most 1.0x mimalloc's: not judged (mimalloc did not run)"
            ),
            "{notes:#?}"
        );
    }
    assert!(
        !notes.iter().any(|n| n.contains(" left out: under memio")),
        "a program failed under memio: {notes:#?}"
    );
}

/// The lab runs each drop-in program through a fresh `lab --peer malloc
/// measure` process, because a child started straight from a process
/// reads that process's peak in its `ru_maxrss`. From a parent whose own
/// peak is 256 MiB, a run of `true` must still measure a few MiB.
#[test]
fn a_program_measured_by_the_launcher_reads_its_own_peak_not_its_parents() {
    let fat = vec![1u8; 256 << 20];
    assert!(fat.iter().step_by(4096).all(|&b| b == 1));
    let dir = std::env::temp_dir().join(format!("memio-test-{}-measure", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let result = dir.join("result");
    let status = Command::new(MEMIO)
        .args(["lab", "--peer", "malloc", "measure"])
        .arg(&result)
        .args(["--", "true"])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    let said = std::fs::read_to_string(&result).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "the launcher failed: {status}");
    let fields: Vec<u64> = said
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(fields.len(), 4, "{said:?}");
    assert_eq!(fields[0], 0, "exit status of true: {said:?}");
    assert!(
        fields[2] > 0 && fields[2] < 64 << 10,
        "peak of `true` read as {} KiB",
        fields[2]
    );
    drop(fat);
}
