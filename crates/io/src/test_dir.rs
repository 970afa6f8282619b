//! A scratch directory for the crate's tests, removed on drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the temp dir, unique to this process and call.
pub(crate) struct TestDir(PathBuf);

impl TestDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("memio-test-{}-{n}-{tag}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes a file of `len` bytes of a pattern that differs at every
    /// offset modulo 251, so a shifted or missing chunk shows.
    pub(crate) fn file(&self, name: &str, len: usize) -> PathBuf {
        let p = self.join(name);
        let data: Vec<u8> = (0..len)
            .map(|i| u8::try_from(i % 251).unwrap_or(0))
            .collect();
        std::fs::write(&p, data).unwrap();
        p
    }

    /// Makes a FIFO named `name`.
    pub(crate) fn fifo(&self, name: &str) -> PathBuf {
        let p = self.join(name);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        p
    }

    /// Names in the directory, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The environment variable that tells a test it runs in its own child.
pub(crate) const ALONE: &str = "MEMIO_TEST_ALONE";

/// For a test that changes the whole process (a seccomp filter, removing
/// every copy's temporaries): `Some(case)` in a child process running
/// only `test` (its path inside the crate, `module::tests::name`), once
/// per case; `None` in the parent, after every child passed.
pub(crate) fn alone<'a>(test: &str, cases: &[&'a str]) -> Option<&'a str> {
    if let Ok(case) = std::env::var(ALONE) {
        return cases.iter().copied().find(|c| *c == case);
    }
    for case in cases {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(ALONE, case)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{test} ({case}): {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("1 passed"), "{test} ({case}): no test ran");
    }
    None
}
