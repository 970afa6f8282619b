//! `memio malloc run` over the built binary: the command runs with the
//! carried library preloaded, its exit status passes through, and errors
//! read `memio: <object>: <why>` with status 2.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

mod common;

use common::{MEMIO, TempDir, code, stderr, stdout};

/// `memio malloc run ARGS...` with `XDG_RUNTIME_DIR` set to `runtime`
/// (the library's folder) and `LD_PRELOAD` as given.
fn malloc_run(runtime: &TempDir, preload: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(MEMIO);
    cmd.args(["malloc", "run"])
        .args(args)
        .env("XDG_RUNTIME_DIR", &runtime.0)
        .env("RUST_BACKTRACE", "1")
        .env_remove("LD_PRELOAD");
    if let Some(p) = preload {
        cmd.env("LD_PRELOAD", p);
    }
    cmd.output().expect("run memio")
}

/// A shell command printing `$LD_PRELOAD` and whether the library is
/// mapped into a process started under it.
const SHOW: &str = "echo \"$LD_PRELOAD\"; grep -q libmemio_malloc /proc/self/maps && echo mapped";

#[test]
fn the_command_runs_on_the_memio_heap() {
    let dir = TempDir::new("malloc-run");
    let out = malloc_run(&dir, None, &["--", "sh", "-c", SHOW]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    let lib = lines.next().unwrap_or_default().to_owned();
    assert!(
        lib.starts_with(&format!("{}/memio/libmemio_malloc-", dir.0.display())),
        "{text}"
    );
    // grep, a child of sh, has the library mapped.
    assert_eq!(lines.next(), Some("mapped"), "{text}");
    let file = std::fs::metadata(&lib).expect("the written library");
    assert_eq!(file.permissions().mode() & 0o777, 0o600);
    let folder = std::fs::metadata(dir.0.join("memio")).unwrap();
    assert_eq!(folder.permissions().mode() & 0o777, 0o700);

    // A second run reuses the file; an existing LD_PRELOAD comes first.
    let out = malloc_run(&dir, Some("/nonexistent/libx.so"), &["sh", "-c", SHOW]);
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("/nonexistent/libx.so:{lib}\n")),
        "{text}"
    );
}

#[test]
fn stats_print_when_the_command_exits() {
    let dir = TempDir::new("malloc-stats");
    let out = malloc_run(&dir, None, &["--stats", "--", "true"]);
    assert_eq!(code(&out), 0);
    let err = stderr(&out);
    assert!(err.starts_with("Arena 0:\nsystem bytes     = "), "{err}");
    assert!(err.contains("Total (incl. mmap):\n"), "{err}");
}

#[test]
fn leaks_and_perturb_reach_the_library() {
    let dir = TempDir::new("malloc-leaks");
    let out = malloc_run(&dir, None, &["--leaks", "--", "true"]);
    assert_eq!(code(&out), 0);
    let err = stderr(&out);
    assert!(
        err.starts_with("memio-malloc: still in use at exit: "),
        "{err}"
    );
    let out = malloc_run(
        &dir,
        None,
        &[
            "--perturb",
            "165",
            "--",
            "sh",
            "-c",
            "echo \"$MEMIO_MALLOC_PERTURB\"",
        ],
    );
    assert_eq!((code(&out), stdout(&out).as_str()), (0, "165\n"));
    let out = malloc_run(&dir, None, &["--perturb", "0", "--", "true"]);
    assert_eq!(code(&out), 2, "0 is not a perturb byte: {}", stderr(&out));
}

#[test]
fn check_guard_and_verbose_reach_the_library() {
    let dir = TempDir::new("malloc-check");
    let show = "echo \"$MEMIO_MALLOC_CHECK $MEMIO_MALLOC_GUARD $MEMIO_MALLOC_HUGEPAGES\"";
    // A bare --check, right before the command, is mode 3.
    let out = malloc_run(
        &dir,
        None,
        &["--check", "--guard", "--hugepages", "sh", "-c", show],
    );
    assert_eq!((code(&out), stdout(&out).as_str()), (0, "3 1 1\n"));
    let out = malloc_run(&dir, None, &["--check=1", "--", "sh", "-c", show]);
    assert_eq!((code(&out), stdout(&out).as_str()), (0, "1  \n"));
    let out = malloc_run(&dir, None, &["--check=4", "--", "true"]);
    assert_eq!(code(&out), 2, "4 is no mode: {}", stderr(&out));
    // The library reads them: the start-up line says so.
    let out = malloc_run(
        &dir,
        None,
        &["--verbose", "--check=2", "--guard", "--", "true"],
    );
    assert_eq!(code(&out), 0);
    assert!(
        stderr(&out).starts_with("memio-malloc: check=2 (abort) guard=1 "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_double_free_under_check_is_reported_and_aborts() {
    // Python's ctypes calls the C library's malloc and free, which the
    // preload replaces: a double free is the library's to catch.
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: no python3");
        return;
    }
    let dir = TempDir::new("malloc-double");
    let script = "import ctypes; c = ctypes.CDLL(None); c.malloc.restype = ctypes.c_void_p; \
                  c.free.argtypes = [ctypes.c_void_p]; p = c.malloc(24); print(hex(p), flush=True); \
                  c.free(p); c.free(p)";
    let out = malloc_run(&dir, None, &["--check", "python3", "-c", script]);
    assert_eq!(code(&out), 128 + 6, "SIGABRT: {}", stderr(&out));
    let p = stdout(&out).trim().to_owned();
    assert!(
        stderr(&out).contains(&format!(
            "memio-malloc: free({p}): double free (size class 48); aborting\n"
        )),
        "{}",
        stderr(&out)
    );
    // Without checks the second free is refused with a warning, and the
    // program carries on.
    let out = malloc_run(&dir, None, &["python3", "-c", script]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("double free (size class 32); ignored"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exit_status_and_signals_pass_through() {
    let dir = TempDir::new("malloc-status");
    assert_eq!(code(&malloc_run(&dir, None, &["sh", "-c", "exit 7"])), 7);
    assert_eq!(
        code(&malloc_run(&dir, None, &["sh", "-c", "kill -9 $$"])),
        128 + 9
    );
}

#[test]
fn errors_name_the_object_and_exit_like_env() {
    let dir = TempDir::new("malloc-errors");
    let out = malloc_run(&dir, None, &["--", "/nonexistent/program"]);
    assert_eq!(code(&out), 127, "not found, as env(1)");
    assert_eq!(
        stderr(&out),
        "memio: /nonexistent/program: cannot run command: no such file or directory\n"
    );
    let script = dir.join("not-executable");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let out = malloc_run(&dir, None, &["--", script.to_str().unwrap()]);
    assert_eq!(code(&out), 126, "cannot run, as env(1): {}", stderr(&out));
    // No command at all is a usage mistake.
    let out = malloc_run(&dir, None, &[]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).starts_with("memio: "), "{}", stderr(&out));
}

/// `memio malloc run -- sh -c 'echo $LD_PRELOAD'` with only `TMPDIR`
/// (and, when given, `XDG_RUNTIME_DIR`) to choose the library's folder.
fn preload_path(tmp: &std::path::Path, runtime: Option<&std::path::Path>) -> Output {
    let mut cmd = Command::new(MEMIO);
    cmd.args(["malloc", "run", "--", "sh", "-c", "echo \"$LD_PRELOAD\""])
        .env_remove("LD_PRELOAD")
        .env_remove("HOME")
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", tmp);
    if let Some(r) = runtime {
        cmd.env("XDG_RUNTIME_DIR", r);
    }
    cmd.output().expect("run memio")
}

#[test]
fn a_folder_someone_else_could_swap_is_never_used() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("malloc-swap");
    let uid = std::fs::metadata(dir.path()).unwrap().uid();
    // A link where the private folder goes (another user's trap in a
    // shared temporary folder): refused, not followed.
    let trap = dir.join("trap");
    std::fs::create_dir(&trap).unwrap();
    std::os::unix::fs::symlink(&trap, dir.join(&format!("memio-{uid}"))).unwrap();
    let out = preload_path(dir.path(), None);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a private folder of this user"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_dir(&trap).unwrap().count(),
        0,
        "nothing written through the link"
    );

    // A runtime folder writable by others (no sticky bit): memio moves on
    // to the next place, a private folder it makes in TMPDIR.
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = preload_path(&tmp, Some(&open));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lib = stdout(&out);
    let real_tmp = std::fs::canonicalize(&tmp).unwrap();
    assert!(
        lib.starts_with(&format!(
            "{}/memio-{uid}/libmemio_malloc-",
            real_tmp.display()
        )),
        "{lib}"
    );
    // Its folder is private: mode 0700.
    let folder = real_tmp.join(format!("memio-{uid}"));
    assert_eq!(std::fs::metadata(&folder).unwrap().mode() & 0o777, 0o700);
}
