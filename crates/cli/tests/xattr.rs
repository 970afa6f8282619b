//! `memio xattr` over the built binary, and round trips through getfattr
//! and setfattr (the `attr` package).

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::{MEMIO, TempDir, code, run_in, stderr, stdout};

fn memio(dir: &Path, args: &[&str]) -> Output {
    run_in(dir, MEMIO, args)
}

/// Runs memio in `dir` with `input` on its standard input.
fn memio_stdin(dir: &Path, args: &[&str], input: &[u8]) -> Output {
    common::output_with_stdin(Command::new(MEMIO).args(args).current_dir(dir), input)
}

/// Whether the temp filesystem takes user attributes (tmpfs before 6.6
/// does not); says why when it does not.
fn user_xattrs_work(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    std::fs::write(&probe, b"").unwrap();
    let out = memio(dir, &["xattr", "set", "user.probe", "1", ".probe"]);
    std::fs::remove_file(&probe).unwrap();
    if code(&out) != 0 {
        eprintln!(
            "skipped: {} takes no user attributes: {}",
            dir.display(),
            stderr(&out)
        );
    }
    code(&out) == 0
}

fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        eprintln!("skipped: {tool} is not installed (.ci/run installs the attr package)");
    }
    found
}

/// A tree with attributes of every awkward kind: text, binary, empty,
/// newlines and quotes, a trailing NUL, a name with a space in its path,
/// and (as root) a trusted attribute.
fn populate(dir: &Path, with_values: bool) {
    std::fs::create_dir_all(dir.join("sub dir")).unwrap();
    for f in ["a", "sub dir/b\\c"] {
        std::fs::write(dir.join(f), b"data").unwrap();
    }
    if !with_values {
        return;
    }
    let set = |name: &str, value: &str, file: &str| {
        let out = memio(dir, &["xattr", "set", name, value, file]);
        assert_eq!(code(&out), 0, "{name}: {}", stderr(&out));
    };
    set("user.text", "hello world", "a");
    set("user.bin", "0x000102ff80", "a");
    set("user.empty", "", "a");
    set(
        "user.lines",
        "\"line1\\012line2 \\\"quoted\\\" back\\\\slash\"",
        "a",
    );
    set("user.nul", "0x6162636465666700", "a");
    set("user.b64", "0sAAECAwQ=", "sub dir/b\\c");
    set("user.dir", "on a directory", "sub dir");
    if is_root() {
        set("trusted.t", "root only", "a");
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// Every attribute of the tree, as getfattr reports it in hex.
fn snapshot(dir: &Path) -> String {
    let out = run_in(dir, "getfattr", &["-R", "-d", "-m", "-", "-e", "hex", "."]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn memio_dump_is_restored_by_setfattr_identically() {
    if !have("setfattr") {
        return;
    }
    let (src, dst) = (TempDir::new("dump-src"), TempDir::new("dump-dst"));
    if !user_xattrs_work(&src.0) {
        return;
    }
    populate(&src.0, true);
    populate(&dst.0, false);
    let out = memio(&src.0, &["xattr", "dump", "-R", "-m", "-", "."]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let dump = dst
        .0
        .join("..")
        .join(format!("memio-test-{}.dump", std::process::id()));
    std::fs::write(&dump, &out.stdout).unwrap();
    let restored = run_in(
        &dst.0,
        "setfattr",
        &[&format!("--restore={}", dump.display())],
    );
    std::fs::remove_file(&dump).unwrap();
    assert_eq!(code(&restored), 0, "{}", stderr(&restored));
    let want = snapshot(&src.0);
    assert!(want.contains("user.nul=0x6162636465666700"), "{want}");
    assert_eq!(snapshot(&dst.0), want);
}

#[test]
fn getfattr_dump_is_restored_by_memio_identically() {
    if !have("getfattr") {
        return;
    }
    let (src, dst) = (TempDir::new("get-src"), TempDir::new("get-dst"));
    if !user_xattrs_work(&src.0) {
        return;
    }
    populate(&src.0, true);
    // getfattr loses a trailing NUL in text; compare what it can carry.
    let out = memio(&src.0, &["xattr", "rm", "user.nul", "a"]);
    assert_eq!(code(&out), 0);
    populate(&dst.0, false);
    let dumped = run_in(&src.0, "getfattr", &["-R", "-d", "-m", "-", "."]);
    assert_eq!(code(&dumped), 0, "{}", stderr(&dumped));
    let dump = dst
        .0
        .join("..")
        .join(format!("memio-test-{}.getfattr", std::process::id()));
    std::fs::write(&dump, &dumped.stdout).unwrap();
    let restored = memio(&dst.0, &["xattr", "restore", dump.to_str().unwrap()]);
    std::fs::remove_file(&dump).unwrap();
    assert_eq!(code(&restored), 0, "{}", stderr(&restored));
    assert_eq!(snapshot(&dst.0), snapshot(&src.0));

    // And from stdin, with hex and base64 encodings.
    for enc in ["hex", "base64"] {
        let dst = TempDir::new("get-dst-enc");
        populate(&dst.0, false);
        let dumped = run_in(&src.0, "getfattr", &["-R", "-d", "-m", "-", "-e", enc, "."]);
        let mut child = Command::new(MEMIO)
            .args(["xattr", "restore", "-"])
            .current_dir(&dst.0)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &dumped.stdout).unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        assert_eq!(snapshot(&dst.0), snapshot(&src.0), "{enc}");
    }
}

#[test]
fn dump_matches_getfattr_output_byte_for_byte() {
    if !have("getfattr") {
        return;
    }
    let dir = TempDir::new("same");
    if !user_xattrs_work(&dir.0) {
        return;
    }
    populate(&dir.0, true);
    memio(&dir.0, &["xattr", "rm", "user.nul", "a"]);
    for args in [
        &["-d", "a"][..],
        &["-d", "-m", "-", "a"],
        &["-d", "-e", "hex", "a"],
        &["-d", "-e", "base64", "-m", "^user\\.(b|t)", "a"],
    ] {
        let theirs = run_in(&dir.0, "getfattr", args);
        let mut ours_args = vec!["xattr", "dump"];
        ours_args.extend(args.iter().filter(|a| **a != "-d"));
        let ours = memio(&dir.0, &ours_args);
        assert_eq!(stdout(&ours), stdout(&theirs), "{args:?}");
    }
    // Paths with a backslash are escaped the same way.
    let theirs = run_in(&dir.0, "getfattr", &["-R", "-d", "sub dir"]);
    let ours = memio(&dir.0, &["xattr", "dump", "-R", "sub dir"]);
    assert_eq!(stdout(&ours), stdout(&theirs));
}

#[test]
fn set_get_list_rm_with_create_and_replace() {
    let dir = TempDir::new("ops");
    if !user_xattrs_work(&dir.0) {
        return;
    }
    std::fs::write(dir.0.join("f"), b"").unwrap();
    let m = |args: &[&str]| memio(&dir.0, args);

    assert_eq!(
        code(&m(&["xattr", "set", "--create", "user.c", "one", "f"])),
        0
    );
    let out = m(&["xattr", "set", "--create", "user.c", "two", "f"]);
    assert_eq!(
        (code(&out), stderr(&out)),
        (1, "memio: f: user.c: attribute already exists\n".into())
    );
    let out = m(&["xattr", "set", "--replace", "user.missing", "x", "f"]);
    assert_eq!(
        (code(&out), stderr(&out)),
        (1, "memio: f: user.missing: no such attribute\n".into())
    );
    assert_eq!(
        code(&m(&["xattr", "set", "--replace", "user.c", "two", "f"])),
        0
    );

    let out = m(&["xattr", "get", "user.c", "f"]);
    assert_eq!(stdout(&out), "# file: f\nuser.c=\"two\"\n\n");
    let out = m(&["xattr", "get", "--only-values", "user.c", "f"]);
    assert_eq!(out.stdout, b"two");
    let out = m(&["xattr", "get", "-e", "hex", "user.c", "f"]);
    assert_eq!(stdout(&out), "# file: f\nuser.c=0x74776f\n\n");

    m(&["xattr", "set", "user.a", "0sAA==", "f"]);
    let out = m(&["xattr", "list", "f"]);
    assert_eq!(stdout(&out), "# file: f\nuser.a\nuser.c\n\n");
    let out = m(&["xattr", "list", "-m", "c$", "f"]);
    assert_eq!(stdout(&out), "# file: f\nuser.c\n\n");

    assert_eq!(code(&m(&["xattr", "rm", "user.c", "f"])), 0);
    let out = m(&["xattr", "get", "user.c", "f"]);
    assert_eq!(
        (code(&out), stderr(&out)),
        (1, "memio: f: user.c: no such attribute\n".into())
    );
    assert!(out.stdout.is_empty());
    let out = m(&["xattr", "rm", "user.c", "f"]);
    assert_eq!(code(&out), 1);
}

#[test]
fn no_dereference_acts_on_the_symlink_itself() {
    let dir = TempDir::new("link");
    if !user_xattrs_work(&dir.0) {
        return;
    }
    std::fs::write(dir.0.join("f"), b"").unwrap();
    std::os::unix::fs::symlink("f", dir.0.join("l")).unwrap();
    let m = |args: &[&str]| memio(&dir.0, args);
    // Through the link: the target gets it.
    assert_eq!(code(&m(&["xattr", "set", "user.via", "1", "l"])), 0);
    assert_eq!(
        stdout(&m(&["xattr", "list", "f"])),
        "# file: f\nuser.via\n\n"
    );
    // On the link itself: user attributes are refused, clearly.
    let out = m(&["xattr", "set", "-h", "user.x", "1", "l"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("user. attributes exist only on regular files and directories"));
    assert!(stdout(&m(&["xattr", "list", "-h", "l"])).is_empty());
    if is_root() {
        assert_eq!(
            code(&m(&[
                "xattr",
                "set",
                "--no-dereference",
                "trusted.x",
                "1",
                "l"
            ])),
            0
        );
        assert_eq!(
            stdout(&m(&["xattr", "dump", "-h", "-m", "-", "l"])),
            "# file: l\ntrusted.x=\"1\"\n\n"
        );
        assert!(stdout(&m(&["xattr", "dump", "-m", "^trusted", "l"])).is_empty());
    } else {
        eprintln!("skipped the trusted.* part: needs root");
    }
}

#[test]
fn bad_input_says_what_is_wrong() {
    let dir = TempDir::new("bad");
    std::fs::write(dir.0.join("f"), b"").unwrap();
    std::fs::write(dir.0.join("garbage.dump"), b"user.x=1\n").unwrap();
    std::fs::write(dir.0.join("badvalue.dump"), b"# file: f\nuser.x=0xabc\n").unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["xattr", "get", "user.x", "missing"],
            2,
            "memio: missing: user.x: no such file or directory\n",
        ),
        (
            &["xattr", "set", "comment", "x", "f"],
            2,
            "memio: f: comment: invalid attribute name",
        ),
        (
            &["xattr", "set", "user.x", "0xabc", "f"],
            2,
            "memio: value '0xabc': odd number of hex digits\n",
        ),
        (
            &["xattr", "set", "user.x", "0s!!", "f"],
            2,
            "memio: value '0s!!': bad base64",
        ),
        // setfattr refuses it too: not padded to a group of four.
        (
            &["xattr", "set", "user.x", "0sZZZ", "f"],
            2,
            "memio: value '0sZZZ': bad base64",
        ),
        (
            &["xattr", "dump", "-m", "(", "f"],
            2,
            "memio: --match '(': invalid regular expression: unclosed group\n",
        ),
        (
            &["xattr", "dump", "-e", "rot13", "f"],
            2,
            "memio: invalid value 'rot13'",
        ),
        (
            &["xattr", "restore", "garbage.dump"],
            2,
            "memio: garbage.dump: line 1: attribute before any '# file:' line\n",
        ),
        (
            &["xattr", "restore", "badvalue.dump"],
            2,
            "memio: badvalue.dump: line 2: odd number of hex digits\n",
        ),
        (
            &["xattr", "restore", "nothere.dump"],
            2,
            "memio: nothere.dump: no such file or directory\n",
        ),
        (
            &["xattr", "list", "/proc/self/status", "missing"],
            2,
            "memio: missing: no such file or directory",
        ),
        (
            &["xattr", "frobnicate"],
            2,
            "memio: unrecognized subcommand 'frobnicate'",
        ),
    ];
    for (args, want_code, want) in cases {
        let out = memio(&dir.0, args);
        assert_eq!(code(&out), *want_code, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with(want), "{args:?}: {}", stderr(&out));
    }
    // 65537 zero bytes in base64 (21845 groups of three, two left over):
    // over Linux's limit for any filesystem.
    let big = format!("0s{}AAA=", "AAAA".repeat(21845));
    let out = memio(&dir.0, &["xattr", "set", "user.big", &big, "f"]);
    assert_eq!(code(&out), 2);
    assert_eq!(
        stderr(&out),
        "memio: f: user.big: value of 65537 bytes is too large for this filesystem\n"
    );
    // 16000 bytes: within Linux's limit, over ext4's one-block limit.
    if user_xattrs_work(&dir.0) {
        let value = format!("0s{}", "AAAA".repeat(16000 / 3 + 1));
        let out = memio(&dir.0, &["xattr", "set", "user.big", &value, "f"]);
        if code(&out) != 0 {
            assert_eq!(code(&out), 2);
            assert!(
                stderr(&out).contains("is too large for this filesystem"),
                "{}",
                stderr(&out)
            );
        }
    }
}

#[test]
fn a_dump_wrong_halfway_restores_nothing() {
    // Read from a file or from stdin, the dump is checked whole first.
    let dir = TempDir::new("midway");
    std::fs::write(dir.0.join("f"), b"").unwrap();
    if user_xattrs_work(&dir.0) {
        let midway = b"# file: f\nuser.one=\"1\"\ngarbage line\nuser.two=\"2\"\n";
        std::fs::write(dir.0.join("midway.dump"), midway).unwrap();
        let want = "memio: midway.dump: line 3: 'garbage line' is no attribute name";
        let out = memio(&dir.0, &["xattr", "restore", "midway.dump"]);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(stderr(&out).starts_with(want), "{}", stderr(&out));
        let out = memio_stdin(&dir.0, &["xattr", "restore", "-"], midway);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(
            stderr(&out).starts_with("memio: stdin: line 3:"),
            "{}",
            stderr(&out)
        );
        let listed = memio(&dir.0, &["xattr", "list", "f"]);
        assert_eq!(stdout(&listed), "", "nothing restored");
        // A value over what any attribute holds (64 KiB) is caught before
        // the first block is set.
        let mut big = b"# file: f\nuser.one=\"1\"\n\n# file: f\nuser.big=0x".to_vec();
        big.extend(std::iter::repeat_n(b'0', 2 * 65_537));
        big.push(b'\n');
        std::fs::write(dir.0.join("big.dump"), &big).unwrap();
        let out = memio(&dir.0, &["xattr", "restore", "big.dump"]);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("line 5: a value of 65537 bytes"),
            "{}",
            stderr(&out)
        );
        assert_eq!(stdout(&memio(&dir.0, &["xattr", "list", "f"])), "");
        // A dump named by a path that cannot be read twice (a pipe) is
        // restored all the same.
        let out = memio_stdin(
            &dir.0,
            &["xattr", "restore", "/dev/stdin"],
            b"# file: f\nuser.one=\"1\"\n",
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(
            stdout(&memio(&dir.0, &["xattr", "list", "f"])),
            "# file: f\nuser.one\n\n"
        );
    }
}

#[test]
fn getfattr_and_setfattr_habits_get_a_one_line_hint() {
    let dir = TempDir::new("hints");
    std::fs::write(dir.join("f"), b"").unwrap();
    let m = |args: &[&str]| memio(&dir.0, args);
    let cases: [(&[&str], &str); 4] = [
        (
            &["xattr", "get", "f", "user.a"],
            "memio: xattr get: the attribute name comes first: memio xattr get user.a f\n",
        ),
        (
            &["xattr", "rm", "f", "user.a"],
            "memio: xattr rm: the attribute name comes first: memio xattr rm user.a f\n",
        ),
        (
            &["xattr", "set", "-n", "user.a", "-v", "val", "f"],
            "memio: xattr set: memio takes NAME VALUE FILE..., not setfattr's -n NAME -v VALUE \
             (-v is --verbose): memio xattr set user.a val f\n",
        ),
        (
            &["xattr", "get", "-n", "user.a", "f"],
            "memio: xattr get: memio takes NAME FILE..., not getfattr's -n NAME: \
             memio xattr get user.a f\n",
        ),
    ];
    for (args, want) in cases {
        let out = m(args);
        assert_eq!((code(&out), stderr(&out)), (2, want.to_owned()), "{args:?}");
    }
    // -h is --no-dereference, as in getfattr, and the help says so.
    let help = stdout(&m(&["xattr", "get", "--help"]))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("-h means this here, as in getfattr"),
        "{help}"
    );
}
