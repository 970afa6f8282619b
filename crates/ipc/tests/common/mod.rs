//! Helpers for the cross-process tests: unique names, guards that remove
//! what a test made even when it fails, and re-running this test binary as
//! the peer process.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use memio_ipc::mq::posix::PosixMq;
use memio_ipc::mq::sysv::SysvMq;
use memio_ipc::sem::posix::NamedSem;
use memio_ipc::sem::sysv::SemSet;
use memio_ipc::shm::sysv::SysvShm;

const ROLE: &str = "MEMIO_IPC_TEST_ROLE";

/// A name no other test or run uses: `/memio-test-<pid>-<n>`.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "/memio-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The role this process plays when it was started by [`spawn_peer`].
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// An environment variable the parent passed.
pub fn arg(name: &str) -> String {
    std::env::var(format!("MEMIO_IPC_TEST_{name}")).unwrap_or_default()
}

/// Runs the test `test` of this binary again as a separate process with
/// `role` and `args` in its environment.
pub fn spawn_peer(test: &str, role: &str, args: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .stdout(Stdio::null());
    for (k, v) in args {
        cmd.env(format!("MEMIO_IPC_TEST_{k}"), v);
    }
    cmd.spawn().unwrap()
}

/// Waits for a peer and checks it passed.
pub fn join(mut child: Child) {
    let status = child.wait().unwrap();
    assert!(status.success(), "peer process failed: {status}");
}

/// Removes an IPC object when dropped.
pub enum Guard {
    PosixMq(String),
    PosixShm(String),
    NamedSem(String),
    SysvMq(SysvMq),
    SysvShm(SysvShm),
    SemSet(SemSet),
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = match self {
            Guard::PosixMq(n) => PosixMq::unlink(n).map_err(drop),
            Guard::PosixShm(n) => memio_ipc::shm::posix::unlink(n).map_err(drop),
            Guard::NamedSem(n) => NamedSem::unlink(n).map_err(drop),
            Guard::SysvMq(q) => q.remove().map_err(drop),
            Guard::SysvShm(s) => s.remove().map_err(drop),
            Guard::SemSet(s) => s.remove().map_err(drop),
        };
    }
}
