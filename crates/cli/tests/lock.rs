//! `memio lock` and `memio locks` over the built binary, against each other
//! and against util-linux flock(1).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
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
    assert_eq!(
        code(&memio(&["lock", "-n", "--kind", "ofd", s(&f), "true"])),
        0
    );
    // The default kind is flock's: a script can swap the command name.
    assert_eq!(code(&memio(&["lock", "-n", s(&f), "true"])), 1);
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
    assert_eq!(code(&memio(&["lock", s(&dir.0), "true"])), 0);
}

#[test]
fn bad_usage_is_status_64_with_one_message_as_flock_1() {
    let dir = TempDir::new("usage");
    let f = dir.join("lk");
    let cases: &[(&[&str], &str)] = &[
        (&["lock", s(&f)], "memio: lock: no command given"),
        (&["lock", "-o", "-F", s(&f), "true"], "cannot be used with"),
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
            "invalid duration '-1'",
        ),
    ];
    for (args, want) in cases {
        let out = memio(args);
        assert_eq!(code(&out), 64, "{args:?}");
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

/// Every form in flock(1)'s manual page, plus -u, -o, -F, -E and SIGKILL of
/// the locking process, written for flock(1): `$LOCK` is the lock command
/// under test, `$PROBE` is util-linux flock(1) checking from outside. The
/// script prints one line per check; the lines must be the same whether
/// `$LOCK` is flock(1) or memio.
const MAN_PAGE_FORMS: &str = r#"
set -u
cd "$DIR" || exit 1
rm -f ready go; mkfifo ready go
mkdir -p d
# hold ARGS...: runs "$LOCK ARGS -c CMD" in the background, where CMD says
# it holds the lock and then waits to be told to finish.
hold() {
  { $LOCK "$@" -c 'echo locked >ready; read x <go' || echo failed >ready; } &
  HOLDER=$!
  read x <ready
  [ "$x" = locked ] || { echo "cannot hold: $LOCK $*"; exit 1; }
}
release() { echo >go; wait $HOLDER; echo "holder exit: $?"; }

# flock /tmp -c cat; flock -w .007 /tmp -c echo   (a directory, exclusive)
hold d
$LOCK -w .007 d -c echo; echo "dir exclusive: $?"
$PROBE -n d true; echo "dir probe: $?"
release
# flock -s /tmp -c cat; flock -s -w .007 /tmp -c echo   (shared with shared)
hold -s d
$LOCK -s -w .007 d -c 'echo shared ok'; echo "shared with shared: $?"
$LOCK -e -w .007 d -c echo; echo "exclusive against shared: $?"
$PROBE -n d true; echo "shared probe: $?"
release
# flock -x local-lock-file echo 'a b c'
$LOCK -x local-lock-file echo 'a b c'; echo "command with args: $?"
[ -f local-lock-file ] && echo "lock file created"
# ( flock -n 9 || exit 1; ... ) 9>/var/lock/mylockfile
(
  $LOCK -n 9 || exit 1
  echo "fd form holds"
  $PROBE -n fdlock true; echo "fd form probe: $?"
  ( $LOCK -n 8 || exit 1; echo "second fd form ran" ) 8>fdlock; echo "second fd form: $?"
) 9>fdlock
echo "fd form subshell: $?"
$PROBE -n fdlock true; echo "fd form after subshell: $?"
# exec 4<>/var/lock/mylockfile; flock -n 4; ...; flock -u 4
exec 4<>fd4
$LOCK -n 4; echo "exec fd lock: $?"
$PROBE -n fd4 true; echo "exec fd probe: $?"
$LOCK -u 4; echo "unlock: $?"
$PROBE -n fd4 true; echo "probe after -u: $?"
exec 4>&-
# [ "${FLOCKER}" != "$0" ] && exec env FLOCKER="$0" flock -en "$0" "$0" "$@" || :
cat >self.sh <<'EOF'
#!/bin/sh
[ "${FLOCKER:-}" != "$0" ] && exec env FLOCKER="$0" $LOCK -en "$0" "$0" "$@" || :
echo "self-locked: $*"
$PROBE -n "$0" true; echo "self probe: $?"
EOF
chmod 755 self.sh
./self.sh one two; echo "self exit: $?"
# -E: the conflict exit code
hold econf
$LOCK -n -E 42 econf true; echo "conflict code: $?"
$LOCK -w 0.01 -E 43 econf true; echo "timeout code: $?"
release
# The command inherits the lock: SIGKILL of the locking process keeps it.
$LOCK killed -c 'echo >ready; read x <go' & L=$!
read x <ready
kill -9 $L; wait $L 2>/dev/null
$PROBE -n killed true; echo "after SIGKILL, child holds: $?"
echo >go
$PROBE -w 30 killed true; echo "after the child ends: $?"
# -o: the command does not hold it, so SIGKILL of the locker frees it.
$LOCK -o closed -c 'echo >ready; read x <go' & L=$!
read x <ready
kill -9 $L; wait $L 2>/dev/null
$PROBE -n closed true; echo "-o after SIGKILL: $?"
echo >go
# -F: the command replaces the locker and holds the lock itself.
$LOCK -F nofork sh -c '$PROBE -n nofork true; echo "no-fork probe: $?"'
echo "done"
"#;

/// Runs [`MAN_PAGE_FORMS`] with `lock` as the lock command.
/// A lock command that misbehaves can leave the script waiting on a FIFO
/// for ever: after `limit` the script is killed and the test fails (a
/// safety net for a broken build, never a measurement).
fn man_page_forms(dir: &Path, lock: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(MAN_PAGE_FORMS)
        .env("DIR", dir)
        .env("LOCK", lock)
        .env("PROBE", "flock")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = child.id();
    let limit = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > limit {
            // The whole process group: the shell and whatever it started.
            let _ = Command::new("kill")
                .args(["-9", &format!("-{group}")])
                .status();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{lock}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_form_of_the_flock_1_manual_runs_unchanged() {
    if !have("flock") {
        return;
    }
    let dir = TempDir::new("manpage");
    let want = man_page_forms(&dir.join("flock"), "flock");
    // The script checks what it should: flock(1) itself gives these.
    for line in [
        "dir exclusive: 1",
        "dir probe: 1",
        "shared ok",
        "shared with shared: 0",
        "exclusive against shared: 1",
        "a b c",
        "fd form probe: 1",
        "second fd form: 1",
        "fd form after subshell: 0",
        "exec fd probe: 1",
        "probe after -u: 0",
        "self-locked: one two",
        "self probe: 1",
        "conflict code: 42",
        "timeout code: 43",
        "after SIGKILL, child holds: 1",
        "after the child ends: 0",
        "-o after SIGKILL: 0",
        "no-fork probe: 1",
        "done",
    ] {
        assert!(
            want.lines().any(|l| l == line),
            "flock(1) gave:\n{want}\nno line {line}"
        );
    }
    for lock in [
        format!("{MEMIO} lock"),
        format!("{MEMIO} lock --kind flock"),
    ] {
        let sub = dir.join(&lock.replace([' ', '/'], "_"));
        std::fs::create_dir_all(&sub).unwrap();
        let got = man_page_forms(&sub, &lock);
        assert_eq!(got, want, "{lock}");
    }
}

#[test]
fn user_nobody_locks_a_file_it_may_only_read_as_with_flock_1() {
    use std::os::unix::fs::PermissionsExt;
    if !common::is_root() {
        eprintln!("skipped: needs root to run as nobody");
        return;
    }
    let bin = common::SharedBinary::new();
    let dir = TempDir::new("nobody");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = dir.join("root-owned");
    std::fs::write(&f, b"").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    // flock(1) as nobody is the reference: where it cannot reach the file
    // (a temp folder closed to other users), there is nothing to compare.
    if !have("flock") {
        return;
    }
    let reference = {
        use std::os::unix::process::CommandExt;
        Command::new("flock")
            .args(["-n", s(&f), "true"])
            .uid(common::NOBODY)
            .gid(common::NOBODY)
            .output()
            .unwrap()
    };
    if code(&reference) != 0 {
        eprintln!(
            "skipped: flock(1) as nobody cannot lock {} here",
            f.display()
        );
        return;
    }
    let Some(out) = bin.output(&mut bin.as_nobody(&["lock", "-n", s(&f), "true"])) else {
        return;
    };
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = bin
        .output(&mut bin.as_nobody(&["lock", "-s", "-n", s(&f), "true"]))
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn lock_errors_use_flock_1_exit_codes() {
    let dir = TempDir::new("codes");
    // A descriptor number that is not open: 65, as flock(1).
    let out = memio(&["lock", "-n", "77"]);
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert_eq!(stderr(&out), "memio: descriptor 77: bad file descriptor\n");
    // A file and no command: a usage mistake, 64.
    let out = memio(&["lock", s(&dir.join("lk"))]);
    assert_eq!(code(&out), 64);
    assert!(stderr(&out).starts_with("memio: lock: no command given"));
    // An exclusive record lock on a directory cannot work: say why.
    let out = memio(&["lock", "--kind", "ofd", s(dir.path()), "true"]);
    assert_eq!(code(&out), 65);
    assert!(
        stderr(&out).contains("a directory or a read-only file takes flock locks"),
        "{}",
        stderr(&out)
    );
    // posix locks die with memio: the descriptor form refuses them.
    let out = memio(&["lock", "--kind", "posix", "0"]);
    assert_eq!(code(&out), 64);
    // -s then -x: the last wins, as in flock(1).
    assert_eq!(
        code(&memio(&["lock", "-s", "-x", s(&dir.join("lk")), "true"])),
        0
    );
    // Durations as everywhere else in memio.
    for t in ["0.2", "0.2s", "200ms", "2s", ".007"] {
        assert_eq!(
            code(&memio(&["lock", "-w", t, s(&dir.join("lk")), "true"])),
            0,
            "{t}"
        );
    }
}

#[test]
fn locks_selects_columns_and_prints_raw_like_lslocks() {
    let dir = TempDir::new("locks-o");
    let f = dir.join("a b");
    let holder = Holder::memio(&["lock", s(&f), "-c", HOLD]);
    let out = memio(&[
        "locks",
        "-p",
        &holder.pid().to_string(),
        "-o",
        "type,pid,path",
        "-r",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let want = format!(
        "TYPE PID PATH\nFLOCK {} {}\n",
        holder.pid(),
        s(&f).replace(' ', "\\x20")
    );
    assert_eq!(text, want);
    let out = memio(&["locks", "-o", "pid,owner"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("unknown column 'owner'"),
        "{}",
        stderr(&out)
    );
    holder.release();
}
