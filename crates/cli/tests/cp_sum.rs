//! `memio cp` and `memio sum` over the built binary: cp's habits (into a
//! directory, -r, refusing a file onto itself), the dd summary, errors that
//! name their object, checksums that match other tools, and `--check`.

use std::path::PathBuf;

mod common;

use common::{TempDir, code, memio, stderr, stdout, text};

fn write(dir: &TempDir, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, data).unwrap();
    p
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn cp_copies_a_file_and_prints_a_dd_summary_with_v() {
    let dir = TempDir::new("cp-one");
    let data: Vec<u8> = (0..300_001u32).map(|i| (i % 241) as u8).collect();
    let a = write(&dir, "a", &data);
    let b = dir.join("b");
    for method in ["auto", "copy-file-range", "mmap", "read-write", "sendfile"] {
        let out = memio(&["cp", "-v", "--verify", "--method", method, s(&a), s(&b)]);
        assert_eq!(code(&out), 0, "{method}: {}", stderr(&out));
        assert_eq!(std::fs::read(&b).unwrap(), data, "{method}");
        assert!(stdout(&out).contains("-> "), "{}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("300001 bytes (300 kB, 293 KiB) copied, "),
            "{err}"
        );
        assert!(err.trim_end().ends_with("B/s"), "{err}");
    }
}

#[test]
fn cp_into_a_directory_and_r_for_trees() {
    let dir = TempDir::new("cp-tree");
    let a = write(&dir, "a", b"one");
    write(&dir, "t/x/y", b"two");
    write(&dir, "t/z", b"three");
    let into = dir.join("into");
    std::fs::create_dir(&into).unwrap();
    let t = dir.join("t");
    // A directory without -r is skipped with cp's words, the file still copies.
    let out = memio(&["cp", s(&a), s(&t), s(&into)]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("-r not specified; omitting directory"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(into.join("a")).unwrap(), b"one");
    let out = memio(&["cp", "-r", s(&t), s(&into)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(into.join("t/x/y")).unwrap(), b"two");
    let copy = dir.join("copy");
    let out = memio(&["cp", "-r", s(&t), s(&copy)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(copy.join("z")).unwrap(), b"three");
    // A link in the target folder where the tree would go is refused,
    // not written through.
    let linked = dir.join("linked");
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir(&linked).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, linked.join("t")).unwrap();
    let out = memio(&["cp", "-r", s(&t), s(&linked)]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("cannot copy a directory over a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    // `t/.` names what is in `t`, as with cp: merged into the target.
    for dot in ["t/.", "t/./"] {
        let merged = dir.join(&format!("merged{}", dot.len()));
        std::fs::create_dir(&merged).unwrap();
        let out = memio(&["cp", "-r", &format!("{}/{dot}", s(dir.path())), s(&merged)]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(std::fs::read(merged.join("x/y")).unwrap(), b"two");
        assert!(
            !merged.join("t").exists(),
            "{dot} copied as a folder named t"
        );
    }
}

#[test]
fn cp_never_overwrites_what_an_earlier_source_of_the_same_name_just_made() {
    let dir = TempDir::new("cp-same-name");
    let a = write(&dir, "a/f", b"first");
    let b = write(&dir, "b/f", b"second");
    write(&dir, "a/d/x", b"a's x");
    write(&dir, "b/d/x", b"b's x");
    write(&dir, "b/d/y", b"b's y");
    std::os::unix::fs::symlink("f", dir.join("a/l")).unwrap();
    std::os::unix::fs::symlink("d", dir.join("b/l")).unwrap();
    let into = dir.join("into");
    std::fs::create_dir(&into).unwrap();
    // Two files of one name: the first stays, the second is refused.
    let out = memio(&["cp", s(&a), s(&b), s(&into)]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("will not overwrite what") && stderr(&out).contains(s(&b)),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(into.join("f")).unwrap(), b"first");
    // A missing source of that name is reported as missing, and so is a
    // link to nothing (copied as what it leads to, without -r).
    std::fs::create_dir(dir.join("dangling")).unwrap();
    std::os::unix::fs::symlink("nowhere", dir.join("dangling/f")).unwrap();
    for gone in [dir.join("gone/f"), dir.join("dangling/f")] {
        let out = memio(&["cp", s(&a), s(&gone), s(&into)]);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("no such file") && !stderr(&out).contains("will not overwrite"),
            "{}",
            stderr(&out)
        );
    }
    // Links copied as links (-r), the same.
    let out = memio(&[
        "cp",
        "-r",
        s(&dir.join("a/l")),
        s(&dir.join("b/l")),
        s(&into),
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(
        std::fs::read_link(into.join("l")).unwrap(),
        PathBuf::from("f")
    );
    // A hard link of the first is another source of the same name, as
    // for cp.
    let linked = dir.join("c/f");
    std::fs::create_dir(dir.join("c")).unwrap();
    std::fs::hard_link(&a, &linked).unwrap();
    let hard = dir.join("hard");
    std::fs::create_dir(&hard).unwrap();
    let out = memio(&["cp", s(&a), s(&linked), s(&hard)]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    // One source given twice, however spelt, is copied once, and that is
    // no failure.
    let once = dir.join("once");
    std::fs::create_dir(&once).unwrap();
    let again = format!("{}/./a//f", s(dir.path()));
    let out = memio(&["cp", s(&a), &again, s(&once)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("given more than once"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(once.join("f")).unwrap(), b"first");
    // Folders of one name merge, as with cp.
    let trees = dir.join("trees");
    std::fs::create_dir(&trees).unwrap();
    let out = memio(&[
        "cp",
        "-r",
        s(&dir.join("a/d")),
        s(&dir.join("b/d")),
        s(&trees),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(trees.join("d/x")).unwrap(), b"b's x");
    assert_eq!(std::fs::read(trees.join("d/y")).unwrap(), b"b's y");
}

#[test]
fn cp_r_copies_a_link_it_is_given_as_the_link() {
    let dir = TempDir::new("cp-link");
    write(&dir, "real/sub/f", b"inside");
    let link = dir.join("link");
    std::os::unix::fs::symlink("real", &link).unwrap();
    let dangling = dir.join("dangling");
    std::os::unix::fs::symlink("nowhere", &dangling).unwrap();
    let into = dir.join("into");
    std::fs::create_dir(&into).unwrap();
    // The link itself, not the tree it leads to (as cp -r does without -L).
    let out = memio(&["cp", "-r", s(&link), s(&dangling), s(&into)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for (name, to) in [("link", "real"), ("dangling", "nowhere")] {
        let copied = into.join(name);
        assert!(
            std::fs::symlink_metadata(&copied).unwrap().is_symlink(),
            "{name} was not copied as a link"
        );
        assert_eq!(std::fs::read_link(&copied).unwrap(), PathBuf::from(to));
    }
    // A link onto itself is refused, as cp refuses, and left as it was.
    for (from, onto) in [
        (&dangling, dangling.clone()),
        (&into.join("link"), into.clone()),
    ] {
        let out = memio(&["cp", "-r", s(from), s(&onto)]);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("are the same file"),
            "{}",
            stderr(&out)
        );
        assert!(std::fs::symlink_metadata(from).unwrap().is_symlink());
    }
    // A hard link to the link is another name, which cp replaces.
    let second = dir.join("second");
    std::fs::hard_link(&dangling, &second).unwrap();
    let out = memio(&["cp", "-r", s(&dangling), s(&second)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        std::fs::read_link(&second).unwrap(),
        PathBuf::from("nowhere")
    );
    // --json counts links apart from files.
    let counted = dir.join("counted");
    std::fs::create_dir(&counted).unwrap();
    let out = memio(&["cp", "-r", "--json", s(&link), s(&dangling), s(&counted)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (v["links"].as_u64(), v["files"].as_u64()),
        (Some(2), Some(0)),
        "{v}"
    );
    // A file named as the copy is replaced by the link, as with cp.
    let over = dir.join("over");
    std::fs::write(&over, b"old").unwrap();
    let out = memio(&["cp", "-r", s(&link), s(&over)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read_link(&over).unwrap(), PathBuf::from("real"));
    // `link/` names the folder it leads to: the tree is copied.
    let tree = dir.join("tree");
    let out = memio(&["cp", "-r", &format!("{}/", s(&link)), s(&tree)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!std::fs::symlink_metadata(&tree).unwrap().is_symlink());
    assert_eq!(std::fs::read(tree.join("sub/f")).unwrap(), b"inside");
    // Without -r a link to a file is followed, as cp does.
    let file_link = dir.join("file-link");
    std::os::unix::fs::symlink(dir.join("real/sub/f"), &file_link).unwrap();
    let plain = dir.join("plain");
    let out = memio(&["cp", s(&file_link), s(&plain)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!std::fs::symlink_metadata(&plain).unwrap().is_symlink());
    assert_eq!(std::fs::read(&plain).unwrap(), b"inside");
}

#[test]
fn cp_refuses_bad_requests_naming_the_object() {
    let dir = TempDir::new("cp-bad");
    let a = write(&dir, "a", b"data");
    let out = memio(&["cp", s(&a), s(&a)]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("are the same file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&a).unwrap(), b"data");
    let out = memio(&["cp", s(&a), s(&a), s(&dir.join("nodir"))]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("nodir': target is not a directory"),
        "{}",
        stderr(&out)
    );
    // An unreadable source among several is reported; the others still copy.
    let missing = dir.join("missing");
    let into = dir.join("out");
    std::fs::create_dir(&into).unwrap();
    let out = memio(&["cp", s(&missing), s(&a), s(&into)]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("missing': cannot open: no such file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(into.join("a")).unwrap(), b"data");
    let out = memio(&["cp", s(&a)]);
    assert_eq!(code(&out), 2);
    assert!(!stderr(&out).contains("panicked"));
    // --sparse always reads every byte, through read/write: an explicit
    // other method would be silently overridden.
    let b = dir.join("b");
    for method in ["copy-file-range", "mmap", "sendfile"] {
        let out = memio(&["cp", "--method", method, "--sparse", "always", s(&a), s(&b)]);
        assert_eq!(code(&out), 2, "{method}");
        assert!(
            stderr(&out).starts_with("memio: --sparse always: "),
            "{}",
            stderr(&out)
        );
        assert!(!b.exists());
    }
}

#[test]
fn sum_prints_hash_and_path_and_check_finds_a_changed_file() {
    let dir = TempDir::new("sum");
    let a = write(&dir, "a", b"hello");
    let b = write(&dir, "sub/b", b"123456789");
    let out = memio(&["sum", "--algo", "crc32c", s(&a), s(&b)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("9a71bb4c  {}\ne3069283  {}\n", s(&a), s(&b))
    );
    let out = memio(&["sum", "-r", s(dir.path())]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let list = write(&dir, "list", stdout(&out).as_bytes());
    assert!(
        stdout(&out)
            .starts_with("ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f  "),
        "{}",
        stdout(&out)
    );
    let out = memio(&["sum", "-c", s(&list)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains(": OK"));
    std::fs::write(&b, b"changed").unwrap();
    let out = memio(&["sum", "--check", s(&list)]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("{}: FAILED", s(&b))),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("did NOT match"), "{}", stderr(&out));
    std::fs::remove_file(&a).unwrap();
    let out = memio(&["sum", "-c", s(&list)]);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("FAILED open or read"),
        "{}",
        stdout(&out)
    );
    let out = memio(&["sum", s(&a)]);
    assert_eq!(code(&out), 2);
    let garbage = write(&dir, "garbage", b"not a checksum list\n");
    let out = memio(&["sum", "-c", s(&garbage)]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no properly formatted checksum lines"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sum_check_reads_back_a_name_with_a_newline_and_no_forged_line() {
    let dir = TempDir::new("sum-newline");
    let victim = write(&dir, "victim", b"real contents");
    // A name that, written raw, would add a line claiming `victim` has
    // the hash of the empty file.
    let name = format!("x\n{}  {}", "2d06800538d394c2", s(&victim));
    let odd = write(&dir, &name, b"odd");
    let out = memio(&["sum", "--algo", "xxh3", s(&odd)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    let list = write(&dir, "list", stdout(&out).as_bytes());
    let out = memio(&["sum", "--check", s(&list)]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    // One result, for the odd name, escaped as sha256sum -c writes it.
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with('\\') && lines[0].ends_with(": OK"),
        "{lines:?}"
    );
}

/// Names in `dir` that a copy's temporaries take (`.NAME.memio-PID-N~`).
fn hidden_copies(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".memio-"))
        .collect()
}

#[test]
fn cp_ended_by_a_signal_removes_its_temporary_and_leaves_the_old_file() {
    use std::os::unix::process::ExitStatusExt;
    let dir = TempDir::new("cp-signal");
    // Zeros written out in full and synced: long enough to be caught in
    // the middle.
    let src = dir.join("src");
    std::fs::File::create(&src)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    for (signal, tree) in [(15, false), (2, false), (1, true)] {
        let (from, to) = if tree {
            let t = dir.join("tree");
            std::fs::create_dir_all(&t).unwrap();
            std::fs::rename(&src, t.join("src")).unwrap_or(());
            (t, dir.join("tree-copy"))
        } else {
            write(&dir, "dst", b"old");
            (src.clone(), dir.join("dst"))
        };
        let mut args = vec![
            "cp",
            "--sparse",
            "never",
            "--method",
            "read-write",
            "--fsync",
        ];
        if tree {
            args.push("-r");
        }
        args.extend([s(&from), s(&to)]);
        let mut child = std::process::Command::new(common::MEMIO)
            .args(&args)
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while hidden_copies(dir.path()).is_empty() {
            assert!(started.elapsed().as_secs() < 20, "no temporary appeared");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let pid = rustix::process::Pid::from_child(&child);
        let sig = rustix::process::Signal::from_named_raw(signal).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
        let status = child.wait().unwrap();
        if status.success() {
            // It finished between the look and the signal: nothing to see.
            eprintln!("signal {signal}: the copy finished first");
        } else {
            assert_eq!(status.signal(), Some(signal), "ends as the signal would");
        }
        assert_eq!(
            hidden_copies(dir.path()),
            Vec::<String>::new(),
            "signal {signal}"
        );
        if tree {
            assert_eq!(to.exists(), status.success());
        } else if !status.success() {
            assert_eq!(std::fs::read(&to).unwrap(), b"old", "the old file stays");
        }
    }
}

#[test]
fn cp_under_nohup_is_not_ended_by_sighup() {
    // nohup (or a shell's background job) starts the copy with SIGHUP
    // ignored; it must outlive the terminal, as cp does.
    let dir = TempDir::new("cp-nohup");
    let src = dir.join("src");
    std::fs::File::create(&src)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let dst = dir.join("dst");
    let mut child = std::process::Command::new("sh")
        .args(["-c", "trap '' HUP; exec \"$0\" \"$@\""])
        .args([common::MEMIO, "cp", "--sparse", "never", "--method"])
        .args(["read-write", "--fsync", s(&src), s(&dst)])
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while hidden_copies(dir.path()).is_empty() && !dst.exists() {
        assert!(started.elapsed().as_secs() < 20, "no temporary appeared");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(std::fs::metadata(&dst).unwrap().len(), 256 << 20);
}

#[test]
fn cp_r_that_loses_the_race_for_its_name_leaves_no_hidden_tree() {
    // Three copies of a tree with a read-only directory to one new name,
    // as a user other than root: the losers' renames fail, and their
    // hidden trees must go although a directory in them is read-only.
    let root = rustix::process::geteuid().is_root();
    let dir = TempDir::new("cp-race");
    let tree = dir.join("tree/ro");
    std::fs::create_dir_all(&tree).unwrap();
    for i in 0..1000 {
        write(&dir, &format!("tree/ro/f{i}"), b"x");
    }
    if root {
        for entry in walk_all(dir.path()) {
            std::os::unix::fs::lchown(&entry, Some(65534), Some(65534)).unwrap();
        }
    }
    std::fs::set_permissions(&tree, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let script = "for i in 1 2 3; do \"$0\" cp -r \"$1\" \"$2\" 2>/dev/null & done; wait";
    let (from, to) = (dir.join("tree"), dir.join("copy"));
    // The build folder may be closed to nobody (a 0700 clone): run a copy
    // of the binary placed where every user can reach it.
    let shared = common::SharedBinary::new();
    if root
        && shared
            .output(&mut shared.as_nobody(&["--version"]))
            .is_none()
    {
        return;
    }
    let mut command = std::process::Command::new("sh");
    if root {
        use std::os::unix::process::CommandExt;
        command.uid(65534).gid(65534);
    }
    command.args(["-c", script, s(shared.path()), s(&from), s(&to)]);
    let Some(out) = shared.output(&mut command) else {
        return;
    };
    let status = out.status;
    assert!(status.success(), "{status:?}");
    assert!(to.join("ro/f999").exists(), "one copy won");
    assert_eq!(hidden_copies(dir.path()), Vec::<String>::new());
    for d in [tree, to.join("ro")] {
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
}

/// `dir` and everything under it.
fn walk_all(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_owned()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(walk_all(&path));
        } else {
            all.push(path);
        }
    }
    all
}

/// Runs `memio` with arguments that need not be UTF-8.
fn memio_os(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(common::MEMIO)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run memio")
}

/// The name part of a checksum line: what follows the hash and its two
/// separator bytes, after the `\` that marks an escaped line.
fn name_part(line: &[u8], hash_len: usize) -> (bool, &[u8]) {
    match line.strip_prefix(b"\\") {
        Some(rest) => (true, &rest[hash_len + 2..]),
        None => (false, &line[hash_len + 2..]),
    }
}

#[test]
fn sum_writes_and_checks_names_that_are_not_utf8_byte_for_byte() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let dir = TempDir::new("sum-bytes");
    // Latin-1 "café", and the same with a backslash, which escapes the line.
    for (name, listed) in [
        (&b"caf\xe9"[..], &b"caf\xe9"[..]),
        (b"caf\xe9\\x", b"caf\xe9\\\\x"),
    ] {
        let path = dir.path().join(OsStr::from_bytes(name));
        std::fs::write(&path, b"contents").unwrap();
        let escaped = name != listed;
        let mut expect_name = dir.path().as_os_str().as_bytes().to_vec();
        expect_name.push(b'/');
        expect_name.extend_from_slice(listed);

        let out = memio_os(&[
            "sum".as_ref(),
            "--algo".as_ref(),
            "crc32c".as_ref(),
            path.as_ref(),
        ]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let printed = out.stdout.strip_suffix(b"\n").expect("one line");
        assert_eq!(
            name_part(printed, 8),
            (escaped, &expect_name[..]),
            "{}",
            stdout(&out)
        );

        // The name part is byte for byte what sha256sum prints.
        match std::process::Command::new("sha256sum").arg(&path).output() {
            Ok(sha) if sha.status.success() => {
                let theirs = sha.stdout.strip_suffix(b"\n").expect("one line");
                assert_eq!(
                    name_part(theirs, 64),
                    name_part(printed, 8),
                    "{}",
                    text(theirs)
                );
            }
            _ => eprintln!(
                "sha256sum not available: name part compared with the expected bytes only"
            ),
        }

        let list = dir.join("list");
        std::fs::write(&list, &out.stdout).unwrap();
        let out = memio(&["sum", "--check", s(&list)]);
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
        let mut ok = Vec::from(if escaped { &b"\\"[..] } else { b"" });
        ok.extend_from_slice(&expect_name);
        ok.extend_from_slice(b": OK\n");
        assert_eq!(out.stdout, ok, "{}", stdout(&out));

        // One byte changed: the list no longer matches.
        std::fs::write(&path, b"contentS").unwrap();
        let out = memio(&["sum", "--check", s(&list)]);
        assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
        let failed = [&ok[..ok.len() - 3], b"FAILED\n"].concat();
        assert_eq!(out.stdout, failed, "{}", stdout(&out));
    }
}

#[test]
fn cp_with_one_operand_names_the_missing_destination() {
    let dir = TempDir::new("cp-one-operand");
    let a = write(&dir, "a", b"x");
    let out = memio(&["cp", s(&a)]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("missing destination operand"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sum_check_reads_standard_input_and_skips_comments() {
    let dir = TempDir::new("sum-stdin");
    let a = write(&dir, "a", b"one");
    let out = memio(&["sum", s(&a)]);
    assert_eq!(code(&out), 0);
    let mut list = b"# written by memio sum\n".to_vec();
    list.extend_from_slice(&out.stdout);
    let done = common::output_with_stdin(
        std::process::Command::new(common::MEMIO).args(["sum", "-c", "-"]),
        &list,
    );
    assert_eq!(code(&done), 0, "{}", stderr(&done));
    assert!(stdout(&done).ends_with(": OK\n"), "{}", stdout(&done));
}

/// For a test that runs memio cp as user nobody: the binary where nobody
/// can run it, a folder of root's that nobody may enter but not write,
/// and in it a source file `bytes` long that nobody may read.
fn as_nobody_setup(tag: &str, bytes: &[u8]) -> (common::SharedBinary, TempDir, PathBuf) {
    let shared = common::SharedBinary::new();
    let dir = TempDir::new(tag);
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let src = write(&dir, "src", bytes);
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    (shared, dir, src)
}

#[test]
fn cp_as_a_user_refuses_a_destination_it_may_not_write() {
    if !common::is_root() {
        println!("skipped: needs root to hand a folder to user nobody");
        return;
    }
    // A folder nobody may write holds root's read-only file: renaming a
    // copy over it would be allowed, writing it is not (cp refuses).
    let (shared, dir, src) = as_nobody_setup("cp-readonly", b"new");
    let theirs = dir.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let ro = theirs.join("ro");
    std::fs::write(&ro, b"kept").unwrap();
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
    let Some(out) = shared.output(&mut shared.as_nobody(&["cp", s(&src), s(&ro)])) else {
        return;
    };
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ro': cannot write: permission denied"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&ro).unwrap(), b"kept");
    assert_eq!(
        std::fs::read_dir(&theirs).unwrap().count(),
        1,
        "no temporary left"
    );
}

#[test]
fn cp_as_a_user_writes_in_place_a_file_it_may_write_in_a_folder_it_may_not() {
    if !common::is_root() {
        println!("skipped: needs root to give user nobody a file in root's folder");
        return;
    }
    // Root's folder, which user nobody may not write, holds a file nobody
    // may:
    // no copy can be made beside it and renamed, so, as cp, memio writes
    // into the file, which keeps its owner and mode.
    let (shared, dir, src) = as_nobody_setup("cp-in-place", b"the new, longer bytes");
    let folder = dir.join("roots");
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let theirs = folder.join("theirs");
    std::fs::write(
        &theirs,
        b"old bytes, a good deal longer than the new ones are",
    )
    .unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&theirs, std::os::unix::fs::PermissionsExt::from_mode(0o620)).unwrap();
    let Some(out) = shared.output(&mut shared.as_nobody(&["cp", "--verify", s(&src), s(&theirs)]))
    else {
        return;
    };
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(&theirs).unwrap(), b"the new, longer bytes");
    let meta = std::fs::metadata(&theirs).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
        0o620
    );
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534);
    assert_eq!(
        std::fs::read_dir(&folder).unwrap().count(),
        1,
        "nothing else made"
    );
    // An engine asked for by name that the kernel refuses here (across
    // filesystems) fails before the file is cut.
    let shm = std::path::Path::new("/dev/shm");
    let other_fs = std::fs::metadata(shm).is_ok_and(|m| {
        std::os::unix::fs::MetadataExt::dev(&m)
            != std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(&folder).unwrap())
    });
    if other_fs {
        let elsewhere = shm.join(format!("memio-cp-in-place-{}", std::process::id()));
        std::fs::write(&elsewhere, b"from another filesystem").unwrap();
        std::fs::set_permissions(
            &elsewhere,
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        let out = shared.output(&mut shared.as_nobody(&[
            "cp",
            "--method",
            "copy-file-range",
            s(&elsewhere),
            s(&theirs),
        ]));
        let _ = std::fs::remove_file(&elsewhere);
        if let Some(out) = out {
            if code(&out) != 0 {
                assert!(stderr(&out).contains("copy_file_range"), "{}", stderr(&out));
                assert_eq!(std::fs::read(&theirs).unwrap(), b"the new, longer bytes");
            }
        }
    } else {
        println!("skipped a part: no /dev/shm on another filesystem");
    }
    // A name that does not exist there yet is still refused.
    let Some(out) = shared.output(&mut shared.as_nobody(&["cp", s(&src), s(&folder.join("new"))]))
    else {
        return;
    };
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cp_as_a_user_writes_in_place_another_users_file_in_a_sticky_folder() {
    if !common::is_root() {
        println!("skipped: needs root to give user nobody root's file in a sticky folder");
        return;
    }
    let (shared, dir, src) = as_nobody_setup("cp-sticky", b"the new, longer bytes");
    // In a sticky folder (as /tmp), another user's file may be written but
    // not replaced: written in place, as cp writes it.
    let sticky = dir.join("sticky");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(
        &sticky,
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let shared_file = sticky.join("shared");
    std::fs::write(&shared_file, b"root's old bytes").unwrap();
    std::fs::set_permissions(
        &shared_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    if let Some(out) = shared.output(&mut shared.as_nobody(&["cp", s(&src), s(&shared_file)])) {
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(
            std::fs::read(&shared_file).unwrap(),
            b"the new, longer bytes"
        );
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&shared_file).unwrap()),
            0
        );
        assert_eq!(
            std::fs::read_dir(&sticky).unwrap().count(),
            1,
            "no temporary left"
        );
    }
}
