//! Seed 003, "Debugging Memory Allocations": `MALLOC_CHECK_=3` makes glibc
//! check every `free` and abort on a bad one. This program runs itself
//! again as a child that frees one block twice — the bug safe Rust cannot
//! write (`SysBlock`, `Box` and `Vec` free exactly once) — first under
//! glibc's default checks, then under `MALLOC_CHECK_=3`, and shows how
//! each run ends.
//!
//! Since glibc 2.34 `MALLOC_CHECK_` is read only by the debugging malloc,
//! `libc_malloc_debug.so`, loaded with `LD_PRELOAD`; the child gets both
//! (`LD_PRELOAD=libc_malloc_debug.so.0 MALLOC_CHECK_=3 ./prog`). Without
//! it, glibc's own tcache check still catches this double free.
//!
//! Run: `cargo run -p memio-alloc --example malloc_check`
#![allow(
    unsafe_code,
    reason = "the child frees a block twice on purpose, through libc"
)]

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode};

/// The argument that makes this program the buggy child.
const CHILD: &str = "--double-free";
/// glibc's debugging malloc, which reads `MALLOC_CHECK_` (glibc >= 2.34).
const DEBUG_MALLOC: &str = "libc_malloc_debug.so.0";

fn double_free() {
    // `black_box` keeps the compiler from deleting the unused block.
    // SAFETY: malloc has no preconditions.
    let p = std::hint::black_box(unsafe { libc::malloc(64) });
    // SAFETY: `p` came from malloc and is freed here the first time.
    unsafe { libc::free(p) };
    // SAFETY: none — this is the bug being demonstrated: `p` is freed a
    // second time. glibc's checks abort the process here.
    unsafe { libc::free(std::hint::black_box(p)) };
    println!("the second free went unnoticed");
}

/// Runs the child with `env` and prints how it ended; returns whether glibc
/// aborted it.
fn run_child(label: &str, env: &[(&str, &str)]) -> std::io::Result<bool> {
    let out = Command::new(std::env::current_exe()?)
        .arg(CHILD)
        .envs(env.iter().copied())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{label}:");
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        println!("  glibc: {line}");
    }
    let aborted = out.status.signal() == Some(libc::SIGABRT);
    match out.status.signal() {
        Some(sig) => println!(
            "  the child was killed by signal {sig} (SIGABRT is {})",
            libc::SIGABRT
        ),
        None => println!("  the child exited with {:?}", out.status.code()),
    }
    Ok(aborted)
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(CHILD) {
        double_free();
        return ExitCode::SUCCESS;
    }
    let runs = [
        ("default glibc checks", vec![]),
        (
            "MALLOC_CHECK_=3 (debugging malloc preloaded)",
            vec![("MALLOC_CHECK_", "3"), ("LD_PRELOAD", DEBUG_MALLOC)],
        ),
    ];
    let mut caught = 0;
    for (label, env) in &runs {
        match run_child(label, env) {
            Ok(true) => caught += 1,
            Ok(false) => {}
            Err(e) => {
                eprintln!("malloc_check: cannot run the child: {e}");
                return ExitCode::from(2);
            }
        }
    }
    println!(
        "glibc caught the double free in {caught} of {} runs",
        runs.len()
    );
    if caught == runs.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
