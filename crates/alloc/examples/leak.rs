//! Seed 000, "Using Valgrind to detect memory leaks": a program that leaks
//! on purpose, and the command that finds the leak.
//!
//! ```text
//! cargo build -p memio-alloc --example leak
//! valgrind --leak-check=full ./target/debug/examples/leak
//! ```
//!
//! Valgrind reports `definitely lost: 4 bytes in 1 blocks` with a stack
//! through `leak::leak_memory`. With `--valgrind` this program runs that
//! command on itself and prints the leak summary.
//!
//! Safe Rust leaks only when asked to: `Box::leak`, `mem::forget`, or a
//! reference cycle of `Rc`s; dropping frees. `leak_memory` asks, as the C
//! program forgot to `free`.
//!
//! Run: `cargo run -p memio-alloc --example leak [-- --valgrind]`

use std::process::{Command, ExitCode};

/// `int *ptr = malloc(sizeof(int)); *ptr = 10;` and no `free`.
#[inline(never)]
fn leak_memory() {
    let ptr = Box::new(10_i32);
    // The C program forgot `free(ptr)`; Rust needs `forget` to do the same:
    // the box's pointer is gone and its 4 bytes are never freed.
    std::mem::forget(std::hint::black_box(ptr));
}

fn under_valgrind() -> ExitCode {
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("leak: cannot find this program's path");
        return ExitCode::from(2);
    };
    let out = match Command::new("valgrind")
        .args(["--leak-check=full", "--errors-for-leak-kinds=definite"])
        .arg(&exe)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("leak: cannot run valgrind ({e}); install it (apt-get install valgrind)");
            return ExitCode::from(2);
        }
    };
    let report = String::from_utf8_lossy(&out.stderr);
    println!("valgrind --leak-check=full {}", exe.display());
    for line in report.lines().filter(|l| {
        l.contains("definitely lost") || l.contains("leak_memory") || l.contains("LEAK SUMMARY")
    }) {
        println!("{line}");
    }
    if report.contains("definitely lost: 4 bytes in 1 blocks") {
        ExitCode::SUCCESS
    } else {
        eprintln!("leak: valgrind did not report the 4-byte leak:\n{report}");
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--valgrind") {
        return under_valgrind();
    }
    leak_memory();
    println!(
        "leaked 4 bytes; find them with: valgrind --leak-check=full {}",
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    ExitCode::SUCCESS
}
