//! `memio lock` and `memio locks` over the built binary, against each other
//! and against util-linux flock(1).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

mod common;

use common::{MEMIO, TempDir, code, memio, stderr};

/// A command that says it runs, then waits for a line on stdin.
const HOLD: &str = "echo locked; read x";

/// A process holding a lock until dropped (or released).
struct Holder {
    child: Child,
    _out: BufReader<ChildStdout>,
}

impl Holder {
    /// Starts `program args...`, whose command prints "locked" once it holds
    /// the lock, and waits for that line.
    fn start(program: &str, args: &[&str]) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(
            line.trim(),
            "locked",
            "{program} {args:?} did not take the lock"
        );
        Self { child, _out: out }
    }

    fn memio(args: &[&str]) -> Self {
        Self::start(MEMIO, args)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets the command finish and waits for the holder to exit.
    fn release(mut self) -> i32 {
        writeln!(self.child.stdin.as_mut().unwrap()).unwrap();
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        eprintln!("skipped: {tool} is not installed (.ci/run installs it)");
    }
    found
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_kind_excludes_another_memio_lock() {
    let dir = TempDir::new("kinds");
    for kind in ["ofd", "posix", "flock"] {
        let f = dir.join(kind);
        let holder = Holder::memio(&["lock", "--kind", kind, s(&f), "-c", HOLD]);
        let out = memio(&["lock", "-n", "--kind", kind, s(&f), "true"]);
        assert_eq!(code(&out), 1, "{kind}: {}", stderr(&out));
        assert!(
            out.stderr.is_empty(),
            "a conflict is silent without -v, as in flock(1)"
        );
        assert_eq!(
            code(&memio(&[
                "lock",
                "-n",
                "-E",
                "42",
                "--kind",
                kind,
                s(&f),
                "true"
            ])),
            42
        );
        assert_eq!(
            code(&memio(&[
                "lock",
                "-w",
                "0.1",
                "--kind",
                kind,
                s(&f),
                "true"
            ])),
            1
        );
        assert_eq!(holder.release(), 0);
        assert_eq!(
            code(&memio(&["lock", "-n", "--kind", kind, s(&f), "true"])),
            0,
            "{kind}"
        );
    }
}

#[test]
fn verbose_conflict_names_the_holder_pid() {
    let dir = TempDir::new("verbose");
    let f = dir.join("lk");
    for kind in ["ofd", "posix", "flock"] {
        let holder = Holder::memio(&["lock", "--kind", kind, s(&f), "--", "sh", "-c", HOLD]);
        let out = memio(&["-v", "lock", "-n", "--kind", kind, s(&f), "true"]);
        assert_eq!(code(&out), 1);
        let text = stderr(&out);
        assert!(
            text.contains(&format!(
                "pid {} holds it (exclusive {kind} lock",
                holder.pid()
            )),
            "{kind}: {text}"
        );
        holder.release();
    }
}

#[test]
fn shared_locks_coexist_and_exclude_writers() {
    let dir = TempDir::new("shared");
    let f = dir.join("lk");
    let holder = Holder::memio(&["lock", "-s", s(&f), "-c", HOLD]);
    assert_eq!(code(&memio(&["lock", "-s", "-n", s(&f), "true"])), 0);
    assert_eq!(code(&memio(&["lock", "-x", "-n", s(&f), "true"])), 1);
    holder.release();
}

#[test]
fn byte_ranges_conflict_only_where_they_overlap() {
    let dir = TempDir::new("range");
    let f = dir.join("lk");
    let holder = Holder::memio(&["lock", "--range", "0:10", s(&f), "-c", HOLD]);
    assert_eq!(
        code(&memio(&["lock", "-n", "--range", "10:10", s(&f), "true"])),
        0
    );
    assert_eq!(
        code(&memio(&["lock", "-n", "--range", "9:1", s(&f), "true"])),
        1
    );
    assert_eq!(
        code(&memio(&["lock", "-n", "--range", "5:0", s(&f), "true"])),
        1
    );
    assert_eq!(
        code(&memio(&[
            "lock",
            "-n",
            "--kind",
            "posix",
            "--range",
            "1k:4k",
            s(&f),
            "true"
        ])),
        0
    );
    holder.release();
}

#[test]
fn flock_1_and_memio_exclude_each_other_both_ways() {
    if !have("flock") {
        return;
    }
    let dir = TempDir::new("interop");
    let f = dir.join("lk");

    // flock(1) holds: memio waits or gives up.
    let holder = Holder::start("flock", &[s(&f), "-c", HOLD]);
    assert_eq!(
        code(&memio(&["lock", "-n", "--kind", "flock", s(&f), "true"])),
        1
    );
    assert_eq!(
        code(&memio(&[
            "lock",
            "-w",
            "0.1",
            "-E",
            "9",
            "--kind",
            "flock",
            s(&f),
            "true"
        ])),
        9
    );
    // OFD locks live in another table: flock(1) does not exclude them.
    assert_eq!(code(&memio(&["lock", "-n", s(&f), "true"])), 0);
    holder.release();
    assert_eq!(
        code(&memio(&["lock", "-n", "--kind", "flock", s(&f), "true"])),
        0
    );

    // memio holds: flock(1) gives up, with its own exit codes.
    let holder = Holder::memio(&["lock", "--kind", "flock", s(&f), "-c", HOLD]);
    let out = Command::new("flock")
        .args(["-n", s(&f), "true"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let out = Command::new("flock")
        .args(["-n", "-E", "33", s(&f), "true"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 33);
    // Shared locks from both sides coexist.
    holder.release();
    let holder = Holder::memio(&["lock", "-s", "--kind", "flock", s(&f), "-c", HOLD]);
    let out = Command::new("flock")
        .args(["-s", "-n", s(&f), "true"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0);
    holder.release();
    let out = Command::new("flock")
        .args(["-n", s(&f), "true"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0);
}

#[test]
fn exit_status_follows_flock_1() {
    let dir = TempDir::new("status");
    let f = dir.join("lk");
    assert_eq!(code(&memio(&["lock", s(&f), "sh", "-c", "exit 7"])), 7);
    assert_eq!(code(&memio(&["lock", s(&f), "-c", "kill -9 $$"])), 128 + 9);
    assert!(f.exists(), "the lock file is created");

    let out = memio(&["lock", "/nonexistent/dir/lk", "true"]);
    assert_eq!(code(&out), 66);
    assert_eq!(
        stderr(&out),
        "memio: /nonexistent/dir/lk: cannot open lock file: no such file or directory\n"
    );

    let out = memio(&["lock", s(&f), "/nonexistent/program"]);
    assert_eq!(code(&out), 69);
    assert_eq!(
        stderr(&out),
        "memio: /nonexistent/program: cannot run command: no such file or directory\n"
    );
    // A directory can be locked, as with flock(1).
    assert_eq!(
        code(&memio(&["lock", "--kind", "flock", s(&dir.0), "true"])),
        0
    );
}

#[test]
fn bad_usage_is_status_2_with_one_message() {
    let dir = TempDir::new("usage");
    let f = dir.join("lk");
    let cases: &[(&[&str], &str)] = &[
        (&["lock", s(&f)], "memio: lock: no command given"),
        (
            &["lock", s(&f), "-c", "true", "--", "true"],
            "memio: lock: give the command either",
        ),
        (
            &["lock", "--kind", "flock", "--range", "0:1", s(&f), "true"],
            "flock locks whole files only",
        ),
        (
            &["lock", "--kind", "fcntl", s(&f), "true"],
            "unknown lock kind 'fcntl'",
        ),
        (
            &["lock", "--range", "12", s(&f), "true"],
            "'12' is not START:LEN",
        ),
        (
            &["lock", "-w", "soon", s(&f), "true"],
            "invalid value 'soon'",
        ),
        (
            &["lock", "--timeout=-1", s(&f), "true"],
            "--timeout: '-1' is not a number of seconds",
        ),
        (&["lock", "-s", "-x", s(&f), "true"], "cannot be used with"),
    ];
    for (args, want) in cases {
        let out = memio(args);
        assert_eq!(code(&out), 2, "{args:?}");
        let text = stderr(&out);
        assert!(
            text.starts_with("memio: ") && text.contains(want),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn locks_lists_a_held_lock_with_pid_path_and_blocker() {
    let dir = TempDir::new("locks");
    let f = dir.join("lk");
    let holder = Holder::memio(&["lock", "--range", "0:100", s(&f), "-c", HOLD]);
    // A second process waits for the same bytes.
    let mut waiter = Command::new(MEMIO)
        .args(["lock", "--range", "50:1", s(&f), "true"])
        .spawn()
        .unwrap();
    let json = loop {
        let out = memio(&["locks", "--json"]);
        assert_eq!(code(&out), 0);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let locks = v["locks"].as_array().unwrap().clone();
        let mine: Vec<_> = locks.into_iter().filter(|l| l["path"] == s(&f)).collect();
        if mine.len() == 2 {
            break mine;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let held = json.iter().find(|l| l["mode"] == "WRITE").unwrap();
    assert_eq!(held["pid"], holder.pid());
    assert_eq!(held["command"], "memio");
    assert_eq!(held["type"], "OFDLCK");
    assert_eq!(
        (held["start"].as_u64(), held["end"].as_u64()),
        (Some(0), Some(99))
    );
    assert_eq!(held["size"], 0);
    let waiting = json.iter().find(|l| l["mode"] == "WRITE*").unwrap();
    assert_eq!(waiting["blocker"], holder.pid());

    let out = memio(&["locks", "-p", &holder.pid().to_string()]);
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header[..3], ["COMMAND", "PID", "TYPE"], "{text}");
    let row = lines.next().unwrap();
    assert!(row.contains("OFDLCK") && row.ends_with(s(&f)), "{row}");
    assert!(lines.next().is_none(), "only the holder's lock: {text}");

    holder.release();
    assert!(waiter.wait().unwrap().success());
}

#[test]
fn locks_rejects_bad_input() {
    let out = memio(&["locks", "-p", "abc"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).starts_with("memio: invalid value 'abc'"));
    let out = memio(&["locks", "--noheadings", "-p", "999999999"]);
    assert_eq!(code(&out), 0);
    assert!(out.stdout.is_empty());
}
