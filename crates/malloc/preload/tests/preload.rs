//! `libmemio_malloc.so` under the C programs in `tests/c` (built with
//! `cc`): every export's edge cases, seeded random calls checked against
//! a model of the live blocks and against glibc, threads, fork, and the
//! options (checks, guard pages, perturbing, stats and leak reports), each
//! run with the library in `LD_PRELOAD` and, where the program can tell,
//! without it. System tools run under it in `programs.rs`.
//!
//! A test whose tool is missing (`cc`, `sort`) prints why and passes.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{build, have, run, text};

/// Runs a test program both ways and checks it passed, on the expected
/// allocator; returns the preloaded run.
fn run_c(name: &str) -> Option<Output> {
    let exe = build(name)?;
    for preload in [false, true] {
        let out = run(Command::new(&exe), preload);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "{name} (preload: {preload}) exited with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
        let verdict = format!("memio={} failures=0", u8::from(preload));
        assert!(stdout.contains(&verdict), "{name}: {stdout}");
        if preload {
            return Some(out);
        }
    }
    None
}

#[test]
fn every_export_keeps_glibc_edge_cases() {
    let Some(out) = run_c("api") else { return };
    let stderr = text(&out.stderr);
    // malloc_stats, in glibc's shape.
    let shape = [
        "Arena 0:",
        "system bytes     = ",
        "in use bytes     = ",
        "Total (incl. mmap):",
        "max mmap regions = ",
        "max mmap bytes   = ",
    ];
    for line in shape {
        assert!(stderr.contains(line), "missing {line:?} in\n{stderr}");
    }
    // Two foreign frees, one warning.
    let warnings = stderr
        .lines()
        .filter(|l| l.contains("not a block of this heap"))
        .count();
    assert_eq!(warnings, 1, "{stderr}");
    assert!(stderr.contains("memio-malloc: free(0x"), "{stderr}");
}

#[test]
fn threads_free_each_others_blocks_and_allocate_at_exit() {
    let Some(out) = run_c("threads") else { return };
    assert!(text(&out.stdout).ends_with("atexit allocated\n"));
}

#[test]
fn threads_moving_large_blocks_by_realloc_keep_each_others_blocks() {
    // A block whose mapping moved was disowned after its old range was
    // unmapped: another thread could map a block there meanwhile, and lose
    // it. The race is narrow: several runs.
    let Some(out) = run_c("moves") else { return };
    let exe = build("moves").expect("built once already");
    let mut runs = vec![out];
    for _ in 0..4 {
        runs.push(run(Command::new(&exe), true));
    }
    for out in runs {
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success() && stdout.contains("memio=1 failures=0"),
            "moves exited with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
        assert!(!stderr.contains("not a block of this heap"), "{stderr}");
    }
}

#[test]
fn fork_and_exec_keep_the_heap_working_in_both_processes() {
    run_c("fork");
}

#[test]
fn opened_with_dlopen_the_heap_serves_threads_started_before_and_after() {
    // The heap pointer sits in static TLS (initial-exec): glibc must give
    // the library a slot in threads that already ran when it arrived.
    opens_the_library_itself("dlopen");
}

#[test]
fn a_thread_that_used_the_library_exits_cleanly_after_dlclose() {
    // The library's pthread key destructor runs when the thread exits;
    // without `-z nodelete` dlclose unmaps it first and the thread's exit
    // jumps into unmapped memory.
    opens_the_library_itself("dlclose");
}

/// Runs the C program `name`, which opens the library named by its
/// argument with `dlopen` (not preloaded), and checks that it ran on
/// memio's heap with no failed check.
fn opens_the_library_itself(name: &str) {
    let Some(exe) = build(name) else { return };
    let mut cmd = Command::new(&exe);
    cmd.arg(common::library());
    let out = run(cmd, false);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && stdout.contains("memio=1 failures=0"),
        "{name} exited with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}

#[test]
fn stats_print_at_exit_when_asked() {
    let with = |value: &str| {
        let mut cmd = Command::new("true");
        cmd.env("MEMIO_MALLOC_STATS", value);
        run(cmd, true)
    };
    let out = with("1");
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("Arena 0:\n").count(), 1, "{stderr}");
    assert!(stderr.ends_with('\n') && stderr.contains("in use bytes     = "));
    assert_eq!(text(&with("0").stderr), "");
    assert_eq!(
        text(&with("yes").stderr),
        "memio-malloc: MEMIO_MALLOC_STATS: expected 0 or 1; option off\n"
    );
}

/// The blocks of the 1024-byte class the leak report names.
fn class_1024(stderr: &str) -> usize {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("memio-malloc:   class 1024 B: "))
        .and_then(|rest| rest.split(' ').next())
        .map_or(0, |n| n.parse().expect("a block count"))
}

#[test]
fn leaks_at_exit_are_reported_by_size_class() {
    let Some(exe) = build("leaks") else {
        return;
    };
    let report = |mode: &str| {
        let mut cmd = Command::new(&exe);
        cmd.arg(mode).env("MEMIO_MALLOC_LEAKS", "1");
        let out = run(cmd, true);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("memio=1 failures=0"));
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with("memio-malloc: still in use at exit: "),
            "{stderr}"
        );
        stderr
    };
    let (leaked, freed) = (report("leak"), report("free"));
    assert_eq!(
        class_1024(&leaked),
        class_1024(&freed) + 3,
        "three 1000-byte blocks leaked:\n{leaked}\nagainst\n{freed}"
    );
    // Blocks freed by threads other than the one that made them are not
    // leaks, though their heaps had not taken them back yet.
    let crossed = report("cross");
    assert_eq!(
        class_1024(&crossed),
        class_1024(&freed),
        "4000 blocks freed across threads:\n{crossed}\nagainst\n{freed}"
    );
    let mut quiet = Command::new(&exe);
    quiet.arg("leak");
    assert_eq!(text(&run(quiet, true).stderr), "", "no report unless asked");
}

#[test]
fn perturb_fills_new_blocks_and_mallopt_changes_the_byte() {
    let Some(exe) = build("perturb") else {
        return;
    };
    let mut cmd = Command::new(&exe);
    cmd.env("MEMIO_MALLOC_PERTURB", "90");
    let out = run(cmd, true);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && stdout.contains("memio=1 failures=0"),
        "{stdout}{stderr}"
    );
    let mut bad = Command::new(&exe);
    bad.env("MEMIO_MALLOC_PERTURB", "300");
    let out = run(bad, true);
    assert!(
        text(&out.stderr).starts_with(
            "memio-malloc: MEMIO_MALLOC_PERTURB: expected a byte value 0-255; option off\n"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn reports_reach_stderr_when_the_program_closes_it_at_exit() {
    // coreutils close standard error in an exit handler, before the
    // library's report runs.
    if !have("sort") {
        return;
    }
    let mut cmd = Command::new("sort");
    cmd.arg("/dev/null")
        .env("MEMIO_MALLOC_STATS", "1")
        .env("MEMIO_MALLOC_LEAKS", "1");
    let out = run(cmd, true);
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Arena 0:\n"), "{stderr}");
    assert!(
        stderr.contains("memio-malloc: still in use at exit: "),
        "{stderr}"
    );
}

/// Runs `tests/c/check.c`'s `case` with the library and `env`; returns
/// the block address it printed (as the library prints addresses) and
/// the output.
fn check_case(exe: &Path, case: &str, env: &[(&str, &str)]) -> (usize, Output) {
    let mut cmd = Command::new(exe);
    cmd.arg(case)
        .env_remove("MEMIO_MALLOC_CHECK")
        .env_remove("MEMIO_MALLOC_GUARD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(cmd, true);
    let stdout = text(&out.stdout);
    let addr = stdout
        .lines()
        .find_map(|l| l.strip_prefix("block 0x"))
        .and_then(|hex| usize::from_str_radix(hex, 16).ok())
        .unwrap_or_else(|| panic!("{case}: no block address in {stdout:?}"));
    (addr, out)
}

/// The signal that ended the process, if one did.
fn signal(out: &Output) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt as _;
    out.status.signal()
}

/// A fault of `tests/c/check.c`: the case, the operation reported, the
/// reported address's offset from the block, and the report's text given
/// the block's address.
type FaultCase = (&'static str, &'static str, usize, fn(usize) -> String);

/// The faults of `tests/c/check.c` and what the report says of each under
/// checks (blocks are 9 bytes larger: 24 bytes asked for is class 48, 40
/// is 64, 20 is 32).
fn faults() -> [FaultCase; 4] {
    [
        ("double", "free", 0, |_| {
            "double free (size class 48)".into()
        }),
        ("interior", "free", 8, |p| {
            format!("invalid pointer, 8 bytes inside the block at {p:#x} (size class 64)")
        }),
        ("overrun", "free", 0, |_| {
            "heap overrun: written past the 20 bytes asked for, at byte 20 (size class 32)".into()
        }),
        ("realloc-overrun", "realloc", 0, |_| {
            "heap overrun: written past the 20 bytes asked for, at byte 20 (size class 32)".into()
        }),
    ]
}

#[test]
fn check_3_reports_each_fault_then_aborts() {
    let Some(exe) = build("check") else { return };
    for (case, op, off, what) in faults() {
        let (p, out) = check_case(&exe, case, &[("MEMIO_MALLOC_CHECK", "3")]);
        assert_eq!(signal(&out), Some(libc::SIGABRT), "{case}: {}", out.status);
        assert_eq!(
            text(&out.stderr),
            format!(
                "memio-malloc: {op}({:#x}): {}; aborting\n",
                p + off,
                what(p)
            ),
            "{case}"
        );
        assert!(!text(&out.stdout).contains("survived"), "{case}");
    }
}

#[test]
fn check_1_reports_each_fault_and_ignores_the_call() {
    let Some(exe) = build("check") else { return };
    for (case, op, off, what) in faults() {
        let (p, out) = check_case(&exe, case, &[("MEMIO_MALLOC_CHECK", "1")]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{case}: {}\n{stdout}", out.status);
        assert!(
            stdout.contains("survived\nmemio=1 failures=0"),
            "{case}: {stdout}"
        );
        assert_eq!(
            text(&out.stderr),
            format!("memio-malloc: {op}({:#x}): {}; ignored\n", p + off, what(p)),
            "{case}"
        );
    }
}

#[test]
fn check_2_aborts_without_a_report() {
    let Some(exe) = build("check") else { return };
    for (case, ..) in faults() {
        let (_, out) = check_case(&exe, case, &[("MEMIO_MALLOC_CHECK", "2")]);
        assert_eq!(signal(&out), Some(libc::SIGABRT), "{case}: {}", out.status);
        assert_eq!(text(&out.stderr), "", "{case}");
    }
}

#[test]
fn without_checks_wrong_frees_are_refused_and_the_heap_stays_whole() {
    // A double free and an interior free of a small block are refused
    // (one warning) and later blocks are still distinct; an overrun is not
    // seen without the canaries.
    let Some(exe) = build("check") else { return };
    for value in [None, Some("0"), Some("junk")] {
        let env: Vec<_> = value
            .map(|v| ("MEMIO_MALLOC_CHECK", v))
            .into_iter()
            .collect();
        let warning = if value == Some("junk") {
            "memio-malloc: MEMIO_MALLOC_CHECK: expected 0, 1, 2 or 3; option off\n"
        } else {
            ""
        };
        for (case, report) in [
            ("double", "double free (size class 32)".to_owned()),
            ("interior", String::new()),
            ("overrun", String::new()),
            ("realloc-overrun", String::new()),
        ] {
            let (p, out) = check_case(&exe, case, &env);
            let stdout = text(&out.stdout);
            assert!(out.status.success(), "{case} {value:?}: {}", out.status);
            assert!(
                stdout.contains("survived\nmemio=1 failures=0"),
                "{case}: {stdout}"
            );
            let expected = match case {
                "double" => format!("{warning}memio-malloc: free({p:#x}): {report}; ignored\n"),
                "interior" => format!(
                    "{warning}memio-malloc: free({:#x}): invalid pointer, 8 bytes inside the block at {p:#x} (size class 48); ignored\n",
                    p + 8
                ),
                _ => warning.to_owned(),
            };
            assert_eq!(text(&out.stderr), expected, "{case} {value:?}");
        }
    }
}

#[test]
fn a_write_past_a_guarded_large_block_faults_at_once() {
    let Some(exe) = build("check") else { return };
    let (_, out) = check_case(&exe, "guard", &[("MEMIO_MALLOC_GUARD", "1")]);
    assert_eq!(signal(&out), Some(libc::SIGSEGV), "{}", out.status);
    assert!(!text(&out.stdout).contains("survived"));
    // Without the guard the byte lands in the mapping's unused tail.
    let (_, out) = check_case(&exe, "guard", &[]);
    assert!(out.status.success(), "{}", out.status);
    assert_eq!(text(&out.stderr), "");
    // A size that is no multiple of 16 ends up to 15 bytes before the
    // guard; the canary of MEMIO_MALLOC_CHECK covers those bytes.
    let (p, out) = check_case(
        &exe,
        "guard-odd",
        &[("MEMIO_MALLOC_GUARD", "1"), ("MEMIO_MALLOC_CHECK", "3")],
    );
    assert_eq!(signal(&out), Some(libc::SIGABRT), "{}", out.status);
    assert_eq!(
        text(&out.stderr),
        format!(
            "memio-malloc: free({p:#x}): heap overrun: written past the 1000001 bytes asked for, at byte 1000001 (large block, 1000016 bytes); aborting\n"
        )
    );
    let (_, out) = check_case(&exe, "guard", &[("MEMIO_MALLOC_GUARD", "on")]);
    assert!(out.status.success(), "a bad value leaves the guard off");
    assert_eq!(
        text(&out.stderr),
        "memio-malloc: MEMIO_MALLOC_GUARD: expected 0 or 1; option off\n"
    );
}

#[test]
fn an_overrun_into_a_reused_large_blocks_slack_is_reported() {
    let Some(exe) = build("check") else { return };
    let (first, out) = check_case(&exe, "large-slack", &[("MEMIO_MALLOC_CHECK", "3")]);
    let stderr = text(&out.stderr);
    let p = text(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("block 0x"))
        .filter_map(|hex| usize::from_str_radix(hex, 16).ok())
        .next_back()
        .unwrap_or(0);
    assert_eq!(p, first, "the second block reuses the first one's mapping");
    assert_eq!(signal(&out), Some(libc::SIGABRT), "{stderr}");
    let want = format!(
        "memio-malloc: free({p:#x}): heap overrun: written past the 1000001 bytes asked for, \
         at byte 1000001 (large block, "
    );
    assert!(stderr.starts_with(&want), "{stderr}");
}

#[test]
fn checks_keep_the_api_programs_passing() {
    // Every export's edge cases hold with canaries in the blocks, and
    // with guard pages after the large ones. The program hands foreign
    // pointers to free, realloc and malloc_usable_size on purpose: under
    // checks each is reported (and ignored, with 1).
    let Some(exe) = build("api") else { return };
    for env in [
        [("MEMIO_MALLOC_CHECK", "1"), ("MEMIO_MALLOC_GUARD", "0")],
        [("MEMIO_MALLOC_CHECK", "1"), ("MEMIO_MALLOC_GUARD", "1")],
        [("MEMIO_MALLOC_CHECK", "0"), ("MEMIO_MALLOC_GUARD", "1")],
    ] {
        let mut cmd = Command::new(&exe);
        cmd.envs(env);
        let out = run(cmd, true);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success() && stdout.contains("memio=1 failures=0"),
            "{env:?}: {}\n{stdout}\n{stderr}",
            out.status,
        );
        let reports: Vec<_> = stderr
            .lines()
            .filter(|l| l.starts_with("memio-malloc: "))
            .collect();
        let expected = if env[0].1 == "1" { 4 } else { 1 };
        assert_eq!(reports.len(), expected, "{env:?}: {stderr}");
        assert!(
            reports.iter().all(|l| l.ends_with("): not a block of this heap (never allocated, freed already, or allocated before the library was loaded); ignored")),
            "{stderr}"
        );
    }
}

#[test]
fn verbose_names_the_options_in_force_at_start_up() {
    let verbose = |env: &[(&str, &str)]| {
        let mut cmd = Command::new("true");
        // The caller's own settings would show on the line.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MEMIO_MALLOC_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("MEMIO_MALLOC_VERBOSE", "1")
            .envs(env.iter().copied());
        let out = run(cmd, true);
        assert!(out.status.success());
        text(&out.stderr)
    };
    assert_eq!(
        verbose(&[
            ("MEMIO_MALLOC_CHECK", "3"),
            ("MEMIO_MALLOC_GUARD", "1"),
            ("MEMIO_MALLOC_MMAP_THRESHOLD", "64k")
        ]),
        "memio-malloc: check=3 (report and abort) guard=1 hugepages=0 perturb=0 stats=0 \
         leaks=0 mmap_threshold=65536 purge_delay_ms=100 large_cache=67108864\n"
    );
    let out = verbose(&[("MEMIO_MALLOC_PERTURB", "7")]);
    assert!(
        out.starts_with("memio-malloc: check=0 (off) guard=0 hugepages=0 perturb=7 "),
        "{out}"
    );
    let out = verbose(&[("MEMIO_MALLOC_HUGEPAGES", "1")]);
    assert!(
        out.starts_with("memio-malloc: check=0 (off) guard=0 hugepages=1 perturb=0 "),
        "{out}"
    );
    assert_eq!(
        verbose(&[("MEMIO_MALLOC_HUGEPAGES", "yes")]).lines().next(),
        Some("memio-malloc: MEMIO_MALLOC_HUGEPAGES: expected 0 or 1; option off"),
        "a bad value is named and leaves the option off"
    );
    let mut cmd = Command::new("true");
    cmd.env("MEMIO_MALLOC_VERBOSE", "yes");
    assert_eq!(
        text(&run(cmd, true).stderr),
        "memio-malloc: MEMIO_MALLOC_VERBOSE: expected 0 or 1; option off\n"
    );
}

/// Runs `tests/c/fuzz.c` with `args` and `env`, preloaded or not; checks
/// it passed, on the expected allocator, and returns the line with its
/// checksum.
fn fuzz(exe: &Path, args: &[&str], env: &[(&str, &str)], preload: bool) -> String {
    let mut cmd = Command::new(exe);
    cmd.args(args).envs(env.iter().copied());
    let out = run(cmd, preload);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let verdict = format!("\nmemio={} failures=0\n", u8::from(preload));
    assert!(
        out.status.success() && stdout.ends_with(&verdict) && stderr.is_empty(),
        "fuzz {args:?} {env:?} (preload: {preload}) exited with {}\n{stdout}{stderr}",
        out.status
    );
    stdout.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn random_calls_keep_every_block_intact_and_match_glibc_call_for_call() {
    let Some(exe) = build("fuzz") else { return };
    for seed in ["1", "2", "3"] {
        let plain = fuzz(&exe, &[seed], &[], false);
        assert_eq!(fuzz(&exe, &[seed], &[], true), plain);
    }
}

#[test]
fn random_calls_under_checks_guards_and_perturbing_match_glibc() {
    // Canaries in every block, guard pages after large ones, fills on
    // allocate and free: none may change what the program sees.
    let Some(exe) = build("fuzz") else { return };
    let plain = fuzz(&exe, &["4"], &[], false);
    for env in [
        &[("MEMIO_MALLOC_CHECK", "3")][..],
        &[("MEMIO_MALLOC_GUARD", "1"), ("MEMIO_MALLOC_PERTURB", "165")],
    ] {
        assert_eq!(fuzz(&exe, &["4"], env, true), plain, "{env:?}");
    }
}

#[test]
fn random_calls_from_threads_freeing_each_others_blocks_match_glibc() {
    let Some(exe) = build("fuzz") else { return };
    let args = ["5", "40000", "4"];
    let plain = fuzz(&exe, &args, &[], false);
    assert_eq!(fuzz(&exe, &args, &[], true), plain);
}
