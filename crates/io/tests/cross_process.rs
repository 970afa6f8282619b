//! Locks between real processes: the test binary re-executes itself with
//! `MEMIO_LOCK_ROLE` set, and the `child` test then plays that role.
//!
//! # Safety
//!
//! One role installs a signal handler with `libc::sigaction` (no safe
//! wrapper exists) to make a blocked lock call return `EINTR`.
#![allow(
    unsafe_code,
    reason = "sigaction to interrupt a blocked lock wait in the EINTR test"
)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use memio_io::Error;
use memio_io::lock::{Kind, Locker, Mode, Wait, table};

const ROLE: &str = "MEMIO_LOCK_ROLE";
const READY: &str = "MEMIO-READY";

/// A file in the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("memio-test-{}-{n}-{tag}", std::process::id()));
        std::fs::write(&p, b"").unwrap();
        Self(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn open(path: &Path) -> File {
    File::options().read(true).write(true).open(path).unwrap()
}

/// A child process playing a role; killed and reaped on drop.
struct Peer {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Peer {
    fn spawn(role: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--nocapture", "--test-threads=1", "-q"])
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Self { child, out }
    }

    /// Waits for the child to print `word` and returns the rest of its line.
    fn expect(&mut self, word: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.out.read_line(&mut line).unwrap() > 0,
                "child ended before {word}"
            );
            if let Some(rest) = line.trim().strip_prefix(word) {
                return rest.trim().to_owned();
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Tells the child to go on (it reads one line of stdin).
    fn go(&mut self) {
        writeln!(self.child.stdin.as_mut().unwrap()).unwrap();
    }

    fn wait_success(mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_kind(s: &str) -> Kind {
    s.parse().unwrap()
}

fn wait_line() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
}

static SIGNALS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// Installs a SIGUSR1 handler without `SA_RESTART`, so a blocked `fcntl`
/// or `flock` returns `EINTR` when the signal arrives.
fn install_counting_handler() {
    // SAFETY: `sigaction` is plain old data, all-zero is valid (empty mask,
    // no flags).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = count_signal as *const () as libc::sighandler_t;
    // SAFETY: the handler only touches an atomic, which is async-signal-safe;
    // `action` outlives the call and the old action is not wanted.
    let rc = unsafe { libc::sigaction(libc::SIGUSR1, &raw const action, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
}

/// The re-executed side. Does nothing in a normal test run.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let parts: Vec<&str> = role.split('|').collect();
    match parts.as_slice() {
        ["hold", kind, mode, path] => {
            let f = open(Path::new(path));
            let mode = if *mode == "x" {
                Mode::Exclusive
            } else {
                Mode::Shared
            };
            let _g = Locker::new(&f)
                .kind(parse_kind(kind))
                .lock(mode, Wait::Block)
                .unwrap();
            println!("{READY}");
            wait_line();
        }
        ["trap", kind, path] => {
            let f = open(Path::new(path));
            let _g = Locker::new(&f)
                .kind(parse_kind(kind))
                .lock(Mode::Exclusive, Wait::Block)
                .unwrap();
            println!("{READY}");
            wait_line();
            // Some library opens and closes the same file: for POSIX locks
            // this drops the lock the process holds through `f`.
            drop(open(Path::new(path)));
            println!("CLOSED");
            wait_line();
        }
        ["eintr", kind, path] => {
            install_counting_handler();
            let f = open(Path::new(path));
            // The harness runs this role on a thread of its own: report the
            // thread id, so the signal can be aimed at the blocked thread.
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            println!("WAITING {tid}");
            // Blocks until the parent lets go; the parent's signals make the
            // kernel return EINTR meanwhile, which must be retried.
            let _g = Locker::new(&f)
                .kind(parse_kind(kind))
                .lock(Mode::Exclusive, Wait::Block)
                .unwrap();
            println!("GOT {}", SIGNALS.load(std::sync::atomic::Ordering::SeqCst));
        }
        ["count", kind, path, n] => {
            let f = open(Path::new(path));
            let locker = Locker::new(&f).kind(parse_kind(kind));
            for _ in 0..n.parse::<u32>().unwrap() {
                let _g = locker.lock(Mode::Exclusive, Wait::Block).unwrap();
                let mut buf = [0u8; 20];
                let got = f.read_at(&mut buf, 0).unwrap();
                let text = std::str::from_utf8(&buf[..got]).unwrap().trim();
                let v: u64 = if text.is_empty() {
                    0
                } else {
                    text.parse().unwrap()
                };
                f.write_all_at(format!("{:>20}", v + 1).as_bytes(), 0)
                    .unwrap();
            }
        }
        ["deadlock", path] => {
            let f = open(Path::new(path));
            let posix = Locker::new(&f).kind(Kind::Posix);
            let _one = posix
                .range(1, 1)
                .lock(Mode::Exclusive, Wait::Block)
                .unwrap();
            println!("{READY}");
            wait_line();
            // Blocks until the parent lets byte 0 go.
            let _zero = posix
                .range(0, 1)
                .lock(Mode::Exclusive, Wait::Block)
                .unwrap();
            println!("GOT-ZERO");
        }
        other => panic!("unknown role {other:?}"),
    }
}

#[test]
fn every_kind_excludes_another_process_and_names_it() {
    for kind in Kind::ALL {
        let t = TempFile::new("excl");
        let mut peer = Peer::spawn(&format!("hold|{kind}|x|{}", t.0.display()));
        peer.expect(READY);
        let f = open(&t.0);
        let locker = Locker::new(&f).kind(kind);
        assert!(
            locker.try_lock(Mode::Shared).unwrap().is_none(),
            "{kind}: no exclusion"
        );
        assert!(matches!(
            locker.lock(Mode::Exclusive, Wait::NonBlock),
            Err(Error::WouldBlock)
        ));
        let h = locker.holder(Mode::Shared).unwrap().expect("a holder");
        assert_eq!(h.kind, kind);
        assert_eq!(h.mode, Mode::Exclusive);
        assert_eq!(
            h.pid,
            Some(peer.pid()),
            "{kind}: holder query named the wrong pid"
        );
        peer.go();
        // Waits for the child to let go, then holds the lock itself.
        let _g = locker.lock(Mode::Exclusive, Wait::Block).unwrap();
        peer.wait_success();
    }
}

#[test]
fn shared_locks_admit_other_readers_but_not_writers() {
    for kind in Kind::ALL {
        let t = TempFile::new("shared");
        let mut peer = Peer::spawn(&format!("hold|{kind}|s|{}", t.0.display()));
        peer.expect(READY);
        let f = open(&t.0);
        let locker = Locker::new(&f).kind(kind);
        assert!(locker.try_lock(Mode::Shared).unwrap().is_some(), "{kind}");
        assert!(
            locker.try_lock(Mode::Exclusive).unwrap().is_none(),
            "{kind}"
        );
        peer.go();
        peer.wait_success();
    }
}

#[test]
fn timeout_expires_while_another_process_holds_the_lock() {
    for kind in Kind::ALL {
        let t = TempFile::new("timeout");
        let mut peer = Peer::spawn(&format!("hold|{kind}|x|{}", t.0.display()));
        peer.expect(READY);
        let f = open(&t.0);
        let err = Locker::new(&f)
            .kind(kind)
            .lock(Mode::Exclusive, Wait::Timeout(Duration::from_millis(50)))
            .unwrap_err();
        assert!(matches!(err, Error::TimedOut(_)), "{kind}: {err}");
        peer.go();
        peer.wait_success();
    }
}

#[test]
fn a_lock_dies_with_its_process() {
    for kind in Kind::ALL {
        let t = TempFile::new("dies");
        let mut peer = Peer::spawn(&format!("hold|{kind}|x|{}", t.0.display()));
        peer.expect(READY);
        drop(peer); // kill -9 and reap
        let f = open(&t.0);
        assert!(
            Locker::new(&f)
                .kind(kind)
                .try_lock(Mode::Exclusive)
                .unwrap()
                .is_some(),
            "{kind}"
        );
    }
}

#[test]
fn counter_incremented_by_four_processes_comes_out_exact() {
    const PROCS: u64 = 4;
    const EACH: u64 = 150;
    for kind in Kind::ALL {
        let t = TempFile::new("counter");
        let peers: Vec<Peer> = (0..PROCS)
            .map(|_| Peer::spawn(&format!("count|{kind}|{}|{EACH}", t.0.display())))
            .collect();
        for p in peers {
            p.wait_success();
        }
        let text = std::fs::read_to_string(&t.0).unwrap();
        assert_eq!(text.trim().parse::<u64>().unwrap(), PROCS * EACH, "{kind}");
    }
}

#[test]
fn posix_deadlock_is_reported_not_waited_for() {
    let t = TempFile::new("deadlock");
    std::fs::write(&t.0, b"ab").unwrap();
    let mut peer = Peer::spawn(&format!("deadlock|{}", t.0.display()));
    peer.expect(READY);
    let f = open(&t.0);
    let posix = Locker::new(&f).kind(Kind::Posix);
    let zero = posix
        .range(0, 1)
        .lock(Mode::Exclusive, Wait::Block)
        .unwrap();
    peer.go();
    // Wait until the kernel shows the child blocked on our byte 0.
    let child = peer.pid();
    while !table::system_locks()
        .unwrap()
        .iter()
        .any(|e| e.waiting && e.pid == Some(child))
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    let err = posix
        .range(1, 1)
        .lock(Mode::Exclusive, Wait::Block)
        .unwrap_err();
    assert!(matches!(err, Error::Deadlock), "{err}");
    drop(zero);
    peer.expect("GOT-ZERO");
    peer.wait_success();
}

#[test]
fn the_lock_table_lists_another_process_lock_with_its_pid() {
    let t = TempFile::new("table");
    let mut peer = Peer::spawn(&format!("hold|ofd|x|{}", t.0.display()));
    peer.expect(READY);
    let id = table::FileId::of(&std::fs::metadata(&t.0).unwrap());
    let locks = table::system_locks().unwrap();
    let e = locks.iter().find(|e| e.file == id).expect("lock listed");
    assert_eq!(
        (e.kind.as_str(), e.mode.as_str(), e.pid),
        ("OFDLCK", "WRITE", Some(peer.pid()))
    );
    let path = table::PathFinder::new()
        .path(peer.pid(), id)
        .expect("path found");
    assert_eq!(path, t.0);
    peer.go();
    peer.wait_success();
}

#[test]
fn closing_another_descriptor_drops_posix_locks_but_not_ofd_or_flock() {
    for kind in Kind::ALL {
        let t = TempFile::new("trap");
        let mut peer = Peer::spawn(&format!("trap|{kind}|{}", t.0.display()));
        peer.expect(READY);
        let f = open(&t.0);
        let locker = Locker::new(&f).kind(kind);
        assert!(
            locker.try_lock(Mode::Exclusive).unwrap().is_none(),
            "{kind}"
        );
        peer.go();
        peer.expect("CLOSED");
        let after = locker.try_lock(Mode::Exclusive).unwrap();
        if kind == Kind::Posix {
            assert!(
                after.is_some(),
                "the POSIX lock should have died with the other descriptor"
            );
        } else {
            assert!(
                after.is_none(),
                "{kind}: closing another descriptor must not drop the lock"
            );
        }
        drop(after);
        peer.go();
        peer.wait_success();
    }
}

#[test]
fn a_blocked_wait_interrupted_by_signals_is_retried() {
    for kind in Kind::ALL {
        let t = TempFile::new("eintr");
        let f = open(&t.0);
        let guard = Locker::new(&f)
            .kind(kind)
            .lock(Mode::Exclusive, Wait::Block)
            .unwrap();
        let mut peer = Peer::spawn(&format!("eintr|{kind}|{}", t.0.display()));
        let tid: libc::pid_t = peer.expect("WAITING").parse().unwrap();
        let child = libc::pid_t::try_from(peer.pid()).unwrap();
        // OFD waiters show pid -1 in /proc/locks: look for any waiter on
        // this file (nobody else uses it).
        let file = table::FileId::of(&std::fs::metadata(&t.0).unwrap());
        let blocked = || {
            table::system_locks()
                .unwrap()
                .iter()
                .any(|e| e.waiting && e.file == file)
        };
        for _ in 0..3 {
            while !blocked() {
                std::thread::sleep(Duration::from_millis(1));
            }
            // SAFETY: tgkill takes plain integers; `tid` is a thread of the
            // live child `child`, which has a handler for SIGUSR1.
            let rc = unsafe { libc::syscall(libc::SYS_tgkill, child, tid, libc::SIGUSR1) };
            assert_eq!(rc, 0);
            std::thread::sleep(Duration::from_millis(5));
        }
        while !blocked() {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(guard);
        let got: usize = peer.expect("GOT").parse().unwrap();
        assert!(got >= 1, "{kind}: no signal reached the blocked waiter");
        peer.wait_success();
    }
}
