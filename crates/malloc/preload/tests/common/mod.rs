//! Helpers shared by the preload tests: the library, the C programs in
//! `tests/c` built with `cc`, running a command with or without the
//! library preloaded, and scratch folders.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The library cargo built for this package: next to the test executable
/// (`deps/`), or one level up.
pub fn library() -> PathBuf {
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

/// Numbers each build of a test program.
static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Compiles `tests/c/<name>.c`; `None` (after saying why) without `cc`.
pub fn build(name: &str) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(format!("{name}.c"));
    // A file per build, named by process too: tests run at once (in
    // threads of one process, or one process each under nextest), and
    // writing an executable another test is running fails with ETXTBSY.
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("preload-{name}-{}-{n}", std::process::id()));
    let status = match Command::new("cc")
        // No builtins: the compiler may otherwise drop a malloc/free pair
        // the test makes on purpose.
        .args(["-O1", "-fno-builtin", "-pthread", "-w", "-o"])
        .arg(&out)
        .arg(&src)
        // dlopen's program (glibc before 2.34 keeps dlopen in libdl).
        .arg("-ldl")
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
pub fn have(tool: &str) -> bool {
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
pub fn run(mut cmd: Command, preload: bool) -> Output {
    cmd.env_remove("LD_PRELOAD");
    if preload {
        cmd.env("LD_PRELOAD", library());
    }
    cmd.output().expect("run the program")
}

/// Bytes a program printed, as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The next number of a xorshift64 sequence (`s` not zero): the inputs
/// the tests generate.
pub fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// An empty folder `preload-<name>` under cargo's scratch folder for
/// tests (what an earlier run left there is removed first).
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("preload-{name}"));
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("remove {}: {e}", dir.display()),
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}
