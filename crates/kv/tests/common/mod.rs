//! Test helpers: a scratch directory removed even when a test fails, and
//! re-running this test binary as a peer process.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const ROLE: &str = "MEMIO_KV_TEST_ROLE";

/// A directory of its own under the temp dir, removed on drop.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "memio-kv-test-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The role this process plays when started by [`spawn_peer`].
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// An argument the parent passed.
pub fn arg(name: &str) -> String {
    std::env::var(format!("MEMIO_KV_TEST_{name}")).unwrap_or_default()
}

/// Runs test `test` of this binary again as a separate process.
pub fn spawn_peer(test: &str, role: &str, args: &[(&str, String)], stdout: Stdio) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .stdout(stdout)
        .stderr(Stdio::inherit());
    for (k, v) in args {
        cmd.env(format!("MEMIO_KV_TEST_{k}"), v);
    }
    cmd.spawn().unwrap()
}

/// Waits for `child` and asserts it succeeded.
pub fn join(mut child: Child) {
    let status = child.wait().unwrap();
    assert!(status.success(), "peer failed: {status}");
}
