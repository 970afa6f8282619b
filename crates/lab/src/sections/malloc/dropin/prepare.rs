//! What the programs need before they run: the mallocs this machine has,
//! the C programs built, the Python interpreter found.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Allocator, CHECKED, GLIBC, HUGE, MEMIO, PROGRAMS, Ready, Source};
use crate::{Error, Result, Run};

/// Colon-separated folders to look for the distribution's jemalloc and
/// mimalloc in, instead of the system's library folders.
const LIBRARY_PATH: &str = "MEMIO_LAB_MALLOC_LIBS";

/// The distribution's mallocs: name, library files (the first is the one
/// notes name), Debian package.
const DISTRIBUTED: [(&str, &[&str], &str); 2] = [
    (
        "jemalloc",
        &["libjemalloc.so.2", "libjemalloc.so"],
        "libjemalloc2",
    ),
    (
        "mimalloc",
        &["libmimalloc.so.2", "libmimalloc.so"],
        "libmimalloc2.0",
    ),
];

/// glibc, then every preloaded malloc this machine has (the
/// distribution's looked for in `dirs`); notes the ones it has not.
pub(super) fn allocators(run: &mut Run<'_>, dirs: &[PathBuf]) -> Vec<Allocator> {
    let mut out = vec![Allocator {
        name: GLIBC,
        preload: None,
        env: &[],
    }];
    match run.config().preload.clone() {
        Some(lib) if lib.is_file() => {
            let variants: [(&str, &[(&str, &str)]); 3] = [
                (MEMIO, &[]),
                (CHECKED, &[("MEMIO_MALLOC_CHECK", "3")]),
                (HUGE, &[("MEMIO_MALLOC_HUGEPAGES", "1")]),
            ];
            for (name, env) in variants {
                out.push(Allocator {
                    name,
                    preload: Some(lib.clone()),
                    env,
                });
            }
        }
        Some(lib) => run.note(format!(
            "memio is not measured on the programs: its library {} is not there",
            lib.display()
        )),
        None => run.note(
            "memio is not measured on the programs: no libmemio_malloc.so was given \
             (the memio command carries it; a program using memio-lab sets Options::preload)",
        ),
    }
    for (name, files, package) in DISTRIBUTED {
        match find_library(dirs, files) {
            Some(lib) => out.push(Allocator {
                name,
                preload: Some(lib),
                env: &[],
            }),
            None => run.note(format!(
                "{name} is not measured on the programs: no {} in {} \
                 (Debian and Ubuntu ship it in the {package} package)",
                files[0],
                join_paths(dirs)
            )),
        }
    }
    out
}

/// The folders searched for the distribution's mallocs: `$MEMIO_LAB_MALLOC_LIBS`
/// when set, else the system's library folders.
pub(super) fn library_dirs() -> Vec<PathBuf> {
    if let Some(list) = std::env::var_os(LIBRARY_PATH) {
        return std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
    }
    let arch = std::env::consts::ARCH;
    [
        format!("/usr/lib/{arch}-linux-gnu"),
        format!("/lib/{arch}-linux-gnu"),
        "/usr/lib64".to_owned(),
        "/usr/lib".to_owned(),
        "/usr/local/lib".to_owned(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// The first of `files` found in `dirs` (searched in order).
fn find_library(dirs: &[PathBuf], files: &[&str]) -> Option<PathBuf> {
    dirs.iter()
        .flat_map(|d| files.iter().map(move |f| d.join(f)))
        .find(|p| p.is_file())
}

fn join_paths(dirs: &[PathBuf]) -> String {
    let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    names.join(", ")
}

/// Builds the C programs and finds `python3`; notes what cannot run.
pub(super) fn prepare(run: &mut Run<'_>, dir: &Path) -> Result<Vec<Ready>> {
    let full = run.config().full;
    let mut ready = Vec::new();
    let mut compiler_missing = false;
    for program in &PROGRAMS {
        let scale = OsString::from(if full { program.full } else { program.quick }.to_string());
        let argv = match program.source {
            Source::C(_) if compiler_missing => continue,
            Source::C(source) => match compile(program.name, source, dir)? {
                Built::Binary(path) => vec![path.into_os_string(), scale],
                Built::NoCompiler(cc) => {
                    compiler_missing = true;
                    run.note(format!(
                        "the C programs are not measured: no C compiler ({cc} not found; \
                         install gcc or set CC)"
                    ));
                    continue;
                }
                Built::Failed(why) => {
                    run.note(format!(
                        "the C program {} is not measured: {why}",
                        program.name
                    ));
                    continue;
                }
            },
            Source::Python(script) => match python(script, dir)? {
                Ok(mut argv) => {
                    argv.push(scale);
                    argv
                }
                Err(why) => {
                    run.note(format!("the Python workload is not measured: {why}"));
                    continue;
                }
            },
        };
        ready.push(Ready { program, argv });
    }
    Ok(ready)
}

/// What building a C program gave.
enum Built {
    Binary(PathBuf),
    /// The compiler (named) is not installed.
    NoCompiler(String),
    /// It ran and failed: why.
    Failed(String),
}

/// Writes `source` into `dir` and builds it with `$CC` (else `cc`).
fn compile(name: &str, source: &str, dir: &Path) -> Result<Built> {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).map_err(|e| Error::io(c.display(), &e))?;
    let bin = dir.join(name);
    let cc = std::env::var("CC").unwrap_or_default();
    let mut words = cc.split_whitespace();
    let program = words.next().unwrap_or("cc");
    let out = Command::new(program)
        .args(words)
        .args(["-O2", "-pthread", "-o"])
        .arg(&bin)
        .arg(&c)
        .stdin(Stdio::null())
        .output();
    Ok(match out {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Built::NoCompiler(program.to_owned()),
        Err(e) => Built::Failed(format!("cannot run {program}: {}", crate::describe(&e))),
        Ok(out) if !out.status.success() => Built::Failed(format!(
            "{program} could not build it: {}",
            last_lines(&String::from_utf8_lossy(&out.stderr))
        )),
        Ok(_) => Built::Binary(bin),
    })
}

/// Writes the script into `dir`; returns the command line that runs it
/// (without its size argument), or why it cannot run. The interpreter is
/// named by its real path, so that a wrapper script on the `PATH` (pyenv's,
/// say) neither runs under the malloc measured nor adds its own time.
fn python(script: &str, dir: &Path) -> Result<std::result::Result<Vec<OsString>, String>> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(Stdio::null())
        .output();
    let exe = match out {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Err("python3 not found".to_owned()));
        }
        Err(e) => return Ok(Err(format!("cannot run python3: {}", crate::describe(&e)))),
        Ok(out) if !out.status.success() => {
            return Ok(Err(format!(
                "python3 failed: {}",
                last_lines(&String::from_utf8_lossy(&out.stderr))
            )));
        }
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    };
    let exe = if exe.is_empty() {
        "python3".to_owned()
    } else {
        exe
    };
    let path = dir.join("workload.py");
    std::fs::write(&path, script).map_err(|e| Error::io(path.display(), &e))?;
    // No site packages (-s -S): the interpreter and its standard library only.
    Ok(Ok(vec![
        exe.into(),
        "-s".into(),
        "-S".into(),
        path.into_os_string(),
    ]))
}

/// The last two non-empty lines of a program's error output, for a note.
pub(super) fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(2)..].join(" / ");
    if tail.is_empty() {
        "no message".to_owned()
    } else if tail.chars().count() > 300 {
        let cut: String = tail.chars().take(300).collect();
        format!("{cut}...")
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::Scratch;

    /// The allocators chosen with `preload` and the distribution's
    /// libraries looked for in `dirs`, and the notes.
    fn choose(preload: Option<PathBuf>, dirs: &[PathBuf]) -> (Vec<&'static str>, Vec<String>) {
        let mut config = crate::Config::new(&crate::Options::default());
        config.preload = preload;
        let mut limits = std::collections::BTreeMap::new();
        let mut run = Run {
            config: &config,
            limits: &mut limits,
            observer: &crate::Quiet,
            section: "malloc",
            rows: Vec::new(),
            notes: Vec::new(),
        };
        let names = allocators(&mut run, dirs).iter().map(|a| a.name).collect();
        (names, run.notes)
    }

    #[test]
    fn a_missing_library_is_a_note_not_a_failure() {
        let nowhere = [PathBuf::from("/nonexistent/memio-lab")];
        let (names, notes) = choose(None, &nowhere);
        assert_eq!(names, vec![GLIBC]);
        assert_eq!(notes.len(), 3, "{notes:#?}");
        assert!(
            notes[0].contains("no libmemio_malloc.so was given"),
            "{}",
            notes[0]
        );
        assert!(
            notes[1].starts_with(
                "jemalloc is not measured on the programs: \
                 no libjemalloc.so.2 in /nonexistent/memio-lab"
            ) && notes[1].contains("libjemalloc2 package"),
            "{}",
            notes[1]
        );
        assert!(
            notes[2].starts_with("mimalloc is not measured"),
            "{}",
            notes[2]
        );

        let dir = Scratch::dir("libs").unwrap();
        let lib = dir.path().join("libmemio_malloc.so");
        std::fs::write(&lib, b"").unwrap();
        std::fs::write(dir.path().join("libmimalloc.so.2"), b"").unwrap();
        let (names, notes) = choose(Some(lib), &[dir.path().to_owned()]);
        assert_eq!(names, vec![GLIBC, MEMIO, CHECKED, HUGE, "mimalloc"]);
        assert_eq!(notes.len(), 1, "{notes:#?}");
        let (names, notes) = choose(Some(dir.path().join("gone.so")), &nowhere);
        assert_eq!(names, vec![GLIBC]);
        assert!(notes[0].ends_with("gone.so is not there"), "{}", notes[0]);
    }

    #[test]
    fn a_library_is_found_in_the_first_folder_that_has_it() {
        let dir = Scratch::dir("libs").unwrap();
        let lib = dir.path().join("libjemalloc.so.2");
        std::fs::write(&lib, b"").unwrap();
        let dirs = vec![
            PathBuf::from("/nonexistent/memio-lab"),
            dir.path().to_owned(),
        ];
        assert_eq!(find_library(&dirs, &["libjemalloc.so.2"]), Some(lib));
        assert_eq!(find_library(&dirs, &["libmimalloc.so.2"]), None);
    }

    #[test]
    fn a_program_error_is_quoted_from_its_last_lines() {
        assert_eq!(last_lines("a\n\nb\n c \n"), "b / c");
        assert_eq!(last_lines(""), "no message");
        assert!(last_lines(&"x".repeat(400)).ends_with("..."));
    }
}
