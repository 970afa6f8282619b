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

/// Runs `command` with `input` on its standard input (then closed) and
/// collects its output.
pub fn output_with_stdin(command: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the command");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input)
        .expect("write its stdin");
    child.wait_with_output().expect("wait for the command")
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

/// Whether this process runs as root (needed to run anything as another
/// user).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .is_some_and(|ids| ids.split_whitespace().nth(1) == Some("0"))
}

/// The user and group the "as another user" tests run memio as: `nobody`.
pub const NOBODY: u32 = 65534;

/// The binary under test, reachable by every user: the build folder may sit
/// where other users cannot enter (a 0700 home, a `mktemp -d` folder), so
/// the binary is linked or copied into a fresh 0755 folder in the temp
/// folder, mode 0755. Removed on drop.
pub struct SharedBinary {
    dir: TempDir,
    path: PathBuf,
}

impl SharedBinary {
    /// Places the binary; panics only if the temp folder is unwritable.
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("bin");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("open the binary's folder to other users");
        let path = dir.join("memio");
        if std::fs::hard_link(MEMIO, &path).is_err() {
            std::fs::copy(MEMIO, &path).expect("copy the memio binary");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("make the binary runnable by other users");
        Self { dir, path }
    }

    /// Where the binary is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A command that runs the binary as user and group `nobody`.
    pub fn as_nobody(&self, args: &[&str]) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(&self.path);
        command.args(args).uid(NOBODY).gid(NOBODY);
        command
    }

    /// Runs `command` (from [`as_nobody`](Self::as_nobody)), or prints why
    /// it cannot and returns `None`: the temp folder itself may be closed
    /// to other users (`TMPDIR` pointing into a 0700 folder).
    pub fn output(&self, command: &mut Command) -> Option<Output> {
        match command.output() {
            Ok(out) => Some(out),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                println!(
                    "skipped: user nobody cannot run {} ({e}); is the temp folder {} open to \
                     other users?",
                    self.path.display(),
                    self.dir.path().display()
                );
                None
            }
            Err(e) => panic!("run {} as nobody: {e}", self.path.display()),
        }
    }
}
