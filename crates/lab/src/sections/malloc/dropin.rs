//! The malloc section's programs: whole programs run under each malloc
//! the way a user would swap it in, by `LD_PRELOAD`.
//!
//! Three C programs the lab carries as sources and builds with the
//! system's C compiler into its scratch folder (small-object churn,
//! cross-thread frees, large blocks), and a Python workload (large dicts
//! and lists, sorting, json round trips), each run as a child process
//! under: glibc's own malloc (nothing preloaded, the reference), memio's
//! `libmemio_malloc.so` with its checks off and on (`MEMIO_MALLOC_CHECK=3`)
//! and with transparent huge pages asked for (`MEMIO_MALLOC_HUGEPAGES=1`),
//! and jemalloc and mimalloc from the distribution's packages
//! (`libjemalloc2`, `libmimalloc2.0`) when they are installed.
//!
//! A run is a whole process, start to exit: the lab times it on the wall
//! clock and takes its peak resident size from `wait4` ([`child`]). The
//! allocators' runs of a program go round-robin, a warm-up round and then
//! one round per sample, each round starting one allocator further on, so
//! that the machine's drifting load weighs on each alike. The programs
//! check the marks they write in their blocks and print a checksum; a run
//! that fails, or prints other than the run under glibc, leaves that
//! allocator's rows out and says why in a note. What cannot run (no C
//! compiler, no `python3`, a library not installed) is named in a note too.
//!
//! Python runs as shipped, with its own allocator (pymalloc) for objects
//! up to 512 B: what a user who preloads a malloc under Python gets. Only
//! its larger blocks (dict tables, list arrays, long strings) reach the
//! malloc measured.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{MIB, child, geomean};
use crate::support::Scratch;
use crate::{Case, Error, Result, Run, Unit};

mod prepare;
mod targets;

use prepare::{allocators, last_lines, library_dirs, prepare};
use targets::{ratios, targets};

const GLIBC: &str = "glibc";
const MEMIO: &str = "memio";
const CHECKED: &str = "memio, checks on";
const HUGE: &str = "memio, huge pages";
const GEOMEAN: &str = "programs: geometric mean";

/// Wall time of a whole run, in milliseconds.
const MS_RUN: Unit = Unit {
    symbol: "ms/run",
    higher_is_better: false,
    per_second: 1e3,
};

/// A run that takes longer is killed and counted as failed.
pub(super) const TIMEOUT: Duration = Duration::from_secs(60);

/// A workload program: what it is, the source the lab carries, and the
/// argument that sizes it in each mode.
struct Program {
    name: &'static str,
    label: &'static str,
    source: Source,
    quick: u32,
    full: u32,
}

enum Source {
    /// C, built with `$CC` (else `cc`), `-O2 -pthread`.
    C(&'static str),
    /// A Python script, run with `python3`.
    Python(&'static str),
}

const PROGRAMS: [Program; 4] = [
    Program {
        name: "churn",
        label: "C program: small-object churn, lists, strings grown by realloc",
        source: Source::C(include_str!("churn.c")),
        quick: 1,
        full: 6,
    },
    Program {
        name: "xfree",
        label: "C program: cross-thread frees, pipeline and shared table",
        source: Source::C(include_str!("xfree.c")),
        quick: 2,
        full: 16,
    },
    Program {
        name: "large",
        label: "C program: large blocks above 128 KiB, realloc growth",
        source: Source::C(include_str!("large.c")),
        // Three rounds even in quick mode: the first finds every heap
        // empty, the later ones show what each keeps and reuses.
        quick: 3,
        full: 8,
    },
    Program {
        name: "python",
        label: "Python: dicts, lists, sorting, json round trips",
        source: Source::Python(include_str!("python.py")),
        quick: 8_000,
        full: 60_000,
    },
];

/// A malloc to run the programs under.
struct Allocator {
    name: &'static str,
    /// The library preloaded; `None` for glibc's own malloc.
    preload: Option<PathBuf>,
    /// The library's options set for the run (`MEMIO_MALLOC_CHECK=3` for
    /// [`CHECKED`], say).
    env: &'static [(&'static str, &'static str)],
}

/// A program ready to run: its command line.
struct Ready {
    program: &'static Program,
    argv: Vec<OsString>,
}

/// The median time (ms) and peak RSS (MiB) of each allocator on one
/// program, `None` where it failed.
struct Figures {
    program: &'static Program,
    time: Vec<Option<f64>>,
    rss: Vec<Option<f64>>,
}

/// Measures and records the programs' rows, then their ratios and the
/// targets in notes.
pub(super) fn run(run: &mut Run<'_>) -> Result<()> {
    let allocators = allocators(run, &library_dirs());
    let scratch = Scratch::dir("malloc-programs")?;
    let ready = prepare(run, scratch.path())?;
    if ready.is_empty() {
        return Ok(());
    }
    run.plan(((ready.len() + 1) * allocators.len() * 2) as u64);
    let mut figures = Vec::new();
    for r in &ready {
        if let Some(f) = measure(run, r, &allocators, scratch.path())? {
            figures.push(f);
        }
    }
    let names: Vec<&str> = allocators.iter().map(|a| a.name).collect();
    record_geomeans(run, &names, &figures);
    for f in &figures {
        run.note(ratios(&names, f));
    }
    for line in targets(&names, &figures) {
        run.note(line);
    }
    Ok(())
}

/// Runs `r` under every allocator, round-robin, records its rows and
/// returns its medians; `None` when it fails without any preload.
fn measure(
    run: &mut Run<'_>,
    r: &Ready,
    allocators: &[Allocator],
    dir: &Path,
) -> Result<Option<Figures>> {
    let n = allocators.len();
    run.announce(&Case::new(GLIBC, r.program.label));
    let mut samples: Vec<Option<(Vec<f64>, Vec<f64>)>> =
        (0..n).map(|_| Some((Vec::new(), Vec::new()))).collect();
    let mut expected: Option<Vec<u8>> = None;
    for round in 0..=run.config().timing.samples {
        for i in (0..n).map(|k| (k + round) % n) {
            let Some((times, peaks)) = &mut samples[i] else {
                continue;
            };
            let a = &allocators[i];
            match once(r, a, dir, expected.as_deref())? {
                Ok((exit, output)) => {
                    expected.get_or_insert(output);
                    // The first round warms the page cache and the loader.
                    if round > 0 {
                        times.push(exit.wall.as_secs_f64() * 1e3);
                        peaks.push(exit.max_rss_kib as f64 / 1024.0);
                    }
                }
                Err(why) if i == 0 => {
                    run.note(format!(
                        "{} is not measured: it failed without any preload ({why})",
                        r.program.label
                    ));
                    return Ok(None);
                }
                Err(why) => {
                    run.note(format!(
                        "{}: {} left out: under {} it {why}",
                        r.program.label, a.name, a.name
                    ));
                    samples[i] = None;
                }
            }
        }
    }
    Ok(Some(record(run, r, allocators, &samples)))
}

/// Removes the caller's own allocator settings from `cmd`'s environment
/// (`LD_PRELOAD`; memio's `MEMIO_MALLOC_*` options; glibc's `MALLOC_*_`
/// and `GLIBC_TUNABLES`; mimalloc's `MIMALLOC_*`; jemalloc's `MALLOC_CONF`
/// and `_RJEM_MALLOC_CONF`; Python's `PYTHON*`), so that they cannot
/// change what is measured: each row sets what it measures itself.
pub(super) fn scrub_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        let by_prefix = ["MEMIO_MALLOC_", "MALLOC_", "MIMALLOC_", "PYTHON"]
            .iter()
            .any(|p| k.starts_with(p));
        if by_prefix || ["LD_PRELOAD", "GLIBC_TUNABLES", "_RJEM_MALLOC_CONF"].contains(&&*k) {
            cmd.env_remove(&key);
        }
    }
}

/// One run of `r` under `a`: its exit and output, or what went wrong
/// (it failed, or printed other than `expected`).
fn once(
    r: &Ready,
    a: &Allocator,
    dir: &Path,
    expected: Option<&[u8]>,
) -> Result<std::result::Result<(child::Exit, Vec<u8>), String>> {
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let file = |p: &Path| File::create(p).map_err(|e| Error::io(p.display(), &e));
    let mut cmd = child::launcher(&r.argv).map_err(|e| Error::io("memio binary", &e))?;
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(file(&out_path)?)
        .stderr(file(&err_path)?);
    scrub_env(&mut cmd);
    if let Some(lib) = &a.preload {
        cmd.env("LD_PRELOAD", lib);
    }
    cmd.envs(a.env.iter().copied());
    if matches!(r.program.source, Source::Python(_)) {
        // Steady string hashes, so each run builds the same tables.
        cmd.env("PYTHONHASHSEED", "0");
    }
    let what = r.argv[0].to_string_lossy().into_owned();
    let exit = child::run_from_small_process(cmd, &r.argv, &dir.join("measured"))
        .map_err(|e| Error::io(&what, &e))?;
    let output = std::fs::read(&out_path).map_err(|e| Error::io(out_path.display(), &e))?;
    let said = || last_lines(&std::fs::read_to_string(&err_path).unwrap_or_default());
    let failed = if exit.timed_out {
        Some(format!("ran past {} s and was killed", TIMEOUT.as_secs()))
    } else if !exit.status.success() {
        // "exit status: 1", "signal: 11 (SIGSEGV) (core dumped)".
        Some(format!("ended with {}: {}", exit.status, said()))
    } else if expected.is_some_and(|e| e != output) {
        Some(format!(
            "printed {:?} where glibc's run printed {:?}",
            String::from_utf8_lossy(&output).trim(),
            String::from_utf8_lossy(expected.unwrap_or_default()).trim()
        ))
    } else {
        None
    };
    Ok(failed.map_or(Ok((exit, output)), Err))
}

/// Records the time and peak RSS rows of one program; returns their
/// medians.
fn record(
    run: &mut Run<'_>,
    r: &Ready,
    allocators: &[Allocator],
    samples: &[Option<(Vec<f64>, Vec<f64>)>],
) -> Figures {
    let mode = run.config().mode();
    let p = r.program;
    let mut figures = Figures {
        program: p,
        time: Vec::new(),
        rss: Vec::new(),
    };
    for (a, s) in allocators.iter().zip(samples) {
        let case = || {
            Case::new(a.name, p.label)
                .param("program", p.name)
                .param("mode", mode)
        };
        let (t, m) = match s {
            Some((times, peaks)) => (
                run.record(case(), MS_RUN, times).map(|row| row.median),
                run.record(case(), MIB, peaks).map(|row| row.median),
            ),
            None => (None, None),
        };
        figures.time.push(t);
        figures.rss.push(m);
    }
    figures
}

/// A geometric-mean row per allocator that ran every program.
fn record_geomeans(run: &mut Run<'_>, names: &[&str], figures: &[Figures]) {
    if figures.is_empty() {
        return;
    }
    let mode = run.config().mode();
    for (i, name) in names.iter().enumerate() {
        let t: Option<Vec<f64>> = figures.iter().map(|f| f.time[i]).collect();
        let m: Option<Vec<f64>> = figures.iter().map(|f| f.rss[i]).collect();
        let (Some(t), Some(m)) = (t, m) else {
            continue;
        };
        let case = || Case::new(*name, GEOMEAN).param("mode", mode);
        run.record(case(), MS_RUN, &[geomean(&t)]);
        run.record(case(), MIB, &[geomean(&m)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Ready {
        Ready {
            program: &PROGRAMS[0],
            argv: ["sh", "-c", script].map(OsString::from).to_vec(),
        }
    }

    const PLAIN: Allocator = Allocator {
        name: GLIBC,
        preload: None,
        env: &[],
    };

    #[test]
    fn a_failed_or_different_run_says_why() {
        let dir = Scratch::dir("runs").unwrap();
        let run = |r: &Ready, expected: Option<&[u8]>| once(r, &PLAIN, dir.path(), expected);
        let err = run(&sh("echo 1; echo oops >&2; exit 3"), None).unwrap();
        assert_eq!(err.unwrap_err(), "ended with exit status: 3: oops");
        let err = run(&sh("kill -SEGV $$"), None).unwrap();
        assert!(
            err.unwrap_err()
                .starts_with("ended with signal: 11 (SIGSEGV)")
        );
        let two = sh("echo 2");
        let err = run(&two, Some(b"1\n")).unwrap().unwrap_err();
        assert_eq!(err, "printed \"2\" where glibc's run printed \"1\"");
        let (exit, output) = run(&two, Some(b"2\n")).unwrap().unwrap();
        assert!(exit.status.success() && exit.max_rss_kib > 0);
        assert_eq!(output, b"2\n");
    }

    #[test]
    fn a_run_gets_the_allocator_and_none_of_the_callers_malloc_settings() {
        let dir = Scratch::dir("env").unwrap();
        // An empty file: the loader says it cannot preload it and goes on.
        let lib = dir.path().join("lib.so");
        std::fs::write(&lib, b"").unwrap();
        let checked = Allocator {
            name: CHECKED,
            preload: Some(lib.clone()),
            env: &[("MEMIO_MALLOC_CHECK", "3")],
        };
        let echo = sh("echo \"$LD_PRELOAD|$MEMIO_MALLOC_CHECK\"");
        let (_, output) = once(&echo, &checked, dir.path(), None).unwrap().unwrap();
        assert_eq!(output, format!("{}|3\n", lib.display()).into_bytes());
        let (_, output) = once(&echo, &PLAIN, dir.path(), None).unwrap().unwrap();
        assert_eq!(output, b"|\n");
    }
}
