//! `memio sum [-r] [--algo …] [--check FILE] PATH…`: checksums of many
//! files read in parallel through the batch engine, printed as
//! `HASH  PATH` like sha256sum and b3sum; `--check` verifies such a list.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use memio::io::batch::{Backend, Batch};
use memio::io::sum::{Algo, check_line, line, parse_line, sum_files};
use serde_json::json;

use crate::error::{CliError, CliResult, EXIT_ERROR, EXIT_NEGATIVE, EXIT_OK, describe};
use crate::output::{self, Globals, warn};

/// Print or check checksums of files.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status with --check: 0 every file matches, 1 some file differs or is \
                  missing, 2 the list cannot be read."
)]
pub(crate) struct SumArgs {
    /// Files, or directories with -r.
    #[arg(value_name = "PATH", required_unless_present = "check")]
    paths: Vec<PathBuf>,
    /// Walk directories (symbolic links inside them are not followed).
    #[arg(short = 'r', short_alias = 'R', long)]
    recursive: bool,
    /// The checksum (with --check: taken from each line's length when not given).
    #[arg(long, value_enum)]
    algo: Option<AlgoArg>,
    /// Read `HASH  PATH` lines from FILE (`-`: standard input) and check each
    /// file against them; lines starting with `#` are comments.
    #[arg(short = 'c', long, value_name = "FILE", conflicts_with = "paths")]
    check: Option<PathBuf>,
    /// How the files are read.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendArg,
    /// Reads in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=4096))]
    depth: u16,
    /// Print JSON (path, hash, error) instead of lines.
    #[arg(short = 'J', long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AlgoArg {
    /// BLAKE3, 256 bits (b3sum's output).
    Blake3,
    /// XXH3, 64 bits.
    Xxh3,
    /// CRC-32C, 32 bits.
    Crc32c,
}

impl AlgoArg {
    fn algo(self) -> Algo {
        match self {
            AlgoArg::Blake3 => Algo::Blake3,
            AlgoArg::Xxh3 => Algo::Xxh3,
            AlgoArg::Crc32c => Algo::Crc32c,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[allow(clippy::doc_markdown, reason = "help text, where backticks would show")]
enum BackendArg {
    /// io_uring, or threads where the kernel refuses it.
    Auto,
    /// io_uring only.
    IoUring,
    /// A pool of reader threads.
    Threads,
    /// POSIX AIO.
    Aio,
    /// One file after another.
    Sequential,
}

impl SumArgs {
    fn batch(&self) -> Batch {
        let backend = match self.backend {
            BackendArg::Auto => Backend::Auto,
            BackendArg::IoUring => Backend::IoUring,
            BackendArg::Threads => Backend::Threads,
            BackendArg::Aio => Backend::Aio,
            BackendArg::Sequential => Backend::Sequential,
        };
        Batch::new().backend(backend).depth(usize::from(self.depth))
    }
}

/// Runs `memio sum`.
pub(crate) fn run(args: &SumArgs, globals: Globals) -> CliResult {
    if let Some(list) = &args.check {
        return check(args, list, globals);
    }
    let (files, mut failed) = crate::walk::expand(&args.paths, args.recursive, "-r");
    let algo = args.algo.map_or(Algo::Blake3, AlgoArg::algo);
    let mut out = output::stdout();
    let mut rows = Vec::new();
    let mut write_error = None;
    sum_files(&args.batch(), &files, algo, |i, digest| match digest {
        Ok(hash) if args.json => {
            rows.push(json!({"path": files[i].to_string_lossy(), "hash": hash}));
        }
        Ok(hash) => {
            if write_error.is_none() {
                // The name's bytes as they are, so the list names the file
                // even when it is not UTF-8.
                let mut l = line(&hash, &files[i]);
                l.push(b'\n');
                if let Err(e) = out.write_all(&l) {
                    write_error = Some(e);
                }
            }
        }
        Err(e) => {
            failed = true;
            report(e);
        }
    })
    .map_err(lib_error)?;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if args.json {
        output::print_json(&json!({"algo": algo.name(), "files": rows}))?;
    }
    Ok(if failed { EXIT_ERROR } else { EXIT_OK })
}

/// Prints a per-file error and goes on.
fn report(err: memio::io::Error) {
    warn(lib_error(err));
}

/// A memio-io error as the CLI prints it, object first.
pub(crate) fn lib_error(err: memio::io::Error) -> CliError {
    match err {
        memio::io::Error::Io(io) => CliError::os(&io),
        other => CliError::new("", other),
    }
}

/// One line of the list to check.
struct Expected {
    hash: String,
    path: PathBuf,
    algo: Algo,
}

/// `--check`: hashes every file the list names and compares.
fn check(args: &SumArgs, list: &Path, globals: Globals) -> CliResult {
    // Bytes, not text: a name in the list need not be UTF-8. `-` is
    // standard input, as for sha256sum -c.
    let text = if list == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf).map(|_| buf)
    } else {
        std::fs::read(list)
    }
    .map_err(|e| CliError::new(format_args!("'{}'", list.display()), describe(&e)))?;
    let mut expected = Vec::new();
    let mut malformed = 0;
    let lines = text
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        // Blank lines and sha256sum's `#` comments say nothing.
        .filter(|l| !l.trim_ascii().is_empty() && !l.starts_with(b"#"));
    for raw in lines {
        match parse_line(raw) {
            Some((hash, path)) => {
                let algo = args
                    .algo
                    .map(AlgoArg::algo)
                    .or_else(|| Algo::from_hex_len(hash.len()))
                    .unwrap_or_default();
                if hash.len() == algo.hex_len() {
                    expected.push(Expected {
                        hash: hash.to_ascii_lowercase(),
                        path: PathBuf::from(OsString::from_vec(path.into_owned())),
                        algo,
                    });
                    continue;
                }
                malformed += 1;
            }
            None => malformed += 1,
        }
    }
    if expected.is_empty() {
        return Err(CliError::new(
            format_args!("'{}'", list.display()),
            "no properly formatted checksum lines found",
        ));
    }
    let mut bad = 0u64;
    let mut unreadable = 0u64;
    let mut out = output::stdout();
    for algo in Algo::ALL {
        let group: Vec<&Expected> = expected.iter().filter(|e| e.algo == algo).collect();
        if group.is_empty() {
            continue;
        }
        let paths: Vec<&Path> = group.iter().map(|e| e.path.as_path()).collect();
        let mut lines = Vec::new();
        sum_files(&args.batch(), &paths, algo, |i, digest| {
            let e = group[i];
            match digest {
                Ok(hash) if hash == e.hash => lines.push(check_line(&e.path, "OK")),
                Ok(_) => {
                    bad += 1;
                    lines.push(check_line(&e.path, "FAILED"));
                }
                Err(err) => {
                    unreadable += 1;
                    report(err);
                    lines.push(check_line(&e.path, "FAILED open or read"));
                }
            }
        })
        .map_err(lib_error)?;
        for mut l in lines {
            // sha256sum --quiet habit: with -q only failures are listed.
            if !globals.quiet || !l.ends_with(b": OK") {
                l.push(b'\n');
                out.write_all(&l)?;
            }
        }
    }
    if malformed > 0 {
        warn(format_args!("{malformed} line(s) are improperly formatted"));
    }
    if unreadable > 0 {
        warn(format_args!(
            "{unreadable} listed file(s) could not be read"
        ));
    }
    if bad > 0 {
        warn(format_args!("{bad} computed checksum(s) did NOT match"));
    }
    Ok(if bad > 0 || unreadable > 0 || malformed > 0 {
        EXIT_NEGATIVE
    } else {
        EXIT_OK
    })
}
