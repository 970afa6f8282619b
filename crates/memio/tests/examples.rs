//! Every example added for seed coverage runs with `cargo run --example`
//! and prints what it is meant to show.

use std::process::{Command, Output};

/// `cargo run -q -p PACKAGE --example NAME -- ARGS` from the workspace.
fn cargo_run(package: &str, example: &str, args: &[&str]) -> Output {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["run", "-q", "-p", package, "--example", example, "--"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo for {example}: {e}"))
}

fn ok(package: &str, example: &str, args: &[&str]) -> String {
    let out = cargo_run(package, example, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{example} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn malloc_check_shows_glibc_aborting_on_a_double_free() {
    let out = ok("memio-alloc", "malloc_check", &[]);
    assert!(out.contains("double free detected"), "{out}");
    assert!(out.contains("MALLOC_CHECK_=3"), "{out}");
    assert!(
        out.contains("caught the double free in 2 of 2 runs"),
        "{out}"
    );
}

#[test]
fn leak_leaks_four_bytes_that_valgrind_finds() {
    let out = ok("memio-alloc", "leak", &[]);
    assert!(out.contains("leaked 4 bytes"), "{out}");
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("skipped the valgrind half: valgrind is not installed");
        return;
    }
    let out = ok("memio-alloc", "leak", &["--valgrind"]);
    assert!(
        out.contains("definitely lost: 4 bytes in 1 blocks"),
        "{out}"
    );
    assert!(out.contains("leak_memory"), "{out}");
}

#[test]
fn program_break_shows_the_heap_growing_and_the_threshold_moving() {
    let out = ok("memio-alloc", "program_break", &[]);
    if out.contains("not glibc's") {
        eprintln!("skipped: {out}");
        return;
    }
    assert!(out.contains("program break at start"), "{out}");
    assert!(out.contains("in [heap]"), "{out}");
    assert!(out.contains("its own mapping"), "{out}");
    assert!(out.contains("M_MMAP_THRESHOLD = 16 KiB"), "{out}");
}

#[test]
fn aligned_shows_each_alignment_and_the_einval_message() {
    let out = ok("memio-alloc", "aligned", &[]);
    assert!(!out.contains("NOT aligned"), "{out}");
    assert!(out.contains("aligned to 4096"), "{out}");
    assert!(out.contains("alignment 24 is invalid (EINVAL)"), "{out}");
}

#[test]
fn exec_code_runs_code_written_into_a_mapping() {
    let out = cargo_run("memio-map", "exec_code", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A W^X policy may refuse; the example says so on stderr.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("refuses executable pages"), "{stderr}");
        eprintln!("skipped: {stderr}");
        return;
    }
    assert!(stdout.contains("r-xp"), "{stdout}");
    if cfg!(target_arch = "x86_64") {
        assert!(stdout.contains("add(40, 2) = 42"), "{stdout}");
    }
}
