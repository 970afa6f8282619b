//! Helpers shared by the tests over the built `memio` binary.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The binary under test.
pub const MEMIO: &str = env!("CARGO_BIN_EXE_memio");

/// Runs `memio` with `args` and collects its output. `RUST_BACKTRACE` is
/// set so that a panic would show up as a backtrace the tests reject.
pub fn memio(args: &[&str]) -> Output {
    Command::new(MEMIO)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run memio")
}

/// Runs `program` with `args` in `dir`.
pub fn run_in(dir: &Path, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

/// The exit status, or -1 when a signal ended the process.
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    text(&out.stdout)
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    text(&out.stderr)
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A temporary folder, unique to this process and call, removed with its
/// contents on drop even when the test fails.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `memio-test-<pid>-<n>-<tag>` under the temp folder.
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("memio-test-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the folder.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
