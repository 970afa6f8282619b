//! `memio cache stat|touch|evict|lock PATH…`: the page cache of files, with
//! vmtouch's and fincore's habits — `-R` to walk directories, a totals line,
//! human sizes in tables and exact bytes in `--json`.

use std::fs::File;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use memio::io::batch::{Batch, Event};
use memio::map::cache::{self, CacheStat, LockedFile, Method};
use serde_json::json;

use crate::error::{CliError, CliResult, EXIT_ERROR, EXIT_OK, describe};
use crate::output::{self, Globals, Table, warn};
use crate::size::human_bytes;

/// Report, fill, empty or pin the page cache of files.
#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// How much of each file is in the page cache (like fincore, vmtouch).
    Stat(FilesArgs),
    /// Read files into the page cache, then report (vmtouch -t).
    Touch(FilesArgs),
    /// Write dirty pages back and drop files from the page cache, then
    /// report (vmtouch -e).
    Evict(FilesArgs),
    /// Lock files' pages in memory and hold them until interrupted
    /// (SIGINT/SIGTERM); the kernel releases them as memio exits (vmtouch -l).
    #[command(
        after_help = "Locked memory counts against RLIMIT_MEMLOCK (`ulimit -l`) unless memio has \
                      CAP_IPC_LOCK; memio says so when the kernel refuses."
    )]
    Lock(FilesArgs),
}

/// How residency is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MethodArg {
    /// cachestat(2), falling back to mincore(2) where it is unavailable.
    Auto,
    /// cachestat(2) only (Linux 6.5+).
    Cachestat,
    /// mincore(2) over a mapping of the file.
    Mincore,
}

#[derive(Debug, Args)]
struct FilesArgs {
    /// Files, or directories with -R.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Walk directories (symbolic links inside them are not followed).
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Print JSON (exact byte and page counts) instead of a table.
    #[arg(short = 'J', long)]
    json: bool,
    /// Leave out the header line.
    #[arg(short = 'n', long)]
    noheadings: bool,
    /// How residency is measured.
    #[arg(long, value_enum, default_value = "auto")]
    method: MethodArg,
}

/// Runs `memio cache`.
pub(crate) fn run(args: &CacheArgs, globals: Globals) -> CliResult {
    match &args.action {
        Action::Stat(files) => report(files, globals, false, |_, _| Ok(())),
        Action::Touch(files) => report(files, globals, true, |_, _| Ok(())),
        Action::Evict(files) => report(files, globals, false, |file, _| {
            cache::evict(file).map_err(|e| describe(&e))
        }),
        Action::Lock(files) => lock(files, globals),
    }
}

/// One file's row.
struct Entry {
    path: PathBuf,
    stat: CacheStat,
}

/// Expands the command line into regular files, reporting the paths that
/// cannot be used; returns the files and whether any path failed.
fn expand(args: &FilesArgs) -> (Vec<PathBuf>, bool) {
    crate::walk::expand(&args.paths, args.recursive, "-R")
}

/// Reads every file through the batch engine (many reads in flight, a
/// fixed buffer budget), so many small files warm up in parallel; reports
/// each file that cannot be read and returns whether one failed.
fn touch_all(files: &[PathBuf], progress: &indicatif::ProgressBar) -> CliResult<bool> {
    let mut failed = false;
    Batch::new()
        .read(files, |event| match event {
            Event::Done { .. } => progress.inc(1),
            Event::Failed { error, .. } => {
                failed = true;
                progress.inc(1);
                progress.suspend(|| warn(crate::sum::lib_error(error)));
            }
            _ => {}
        })
        .map_err(|e| CliError::new("touch", e))?;
    progress.set_position(0);
    Ok(failed)
}

fn method(args: &FilesArgs) -> Method {
    match args.method {
        MethodArg::Auto => Method::Auto,
        MethodArg::Cachestat => Method::Cachestat,
        MethodArg::Mincore => Method::Mincore,
    }
}

/// Opens each file, applies `action`, measures residency, and prints the
/// table or JSON; with `touch`, first reads every file in parallel. Per-file
/// failures are reported as they happen and make the exit status 2.
fn report(
    args: &FilesArgs,
    globals: Globals,
    touch: bool,
    mut action: impl FnMut(&mut File, &Path) -> Result<(), String>,
) -> CliResult {
    let (files, mut failed) = expand(args);
    let progress = crate::progress::bar(files.len() as u64, globals);
    if touch {
        failed |= touch_all(&files, &progress)?;
    }
    let mut entries = Vec::new();
    for path in files {
        progress.set_message(path.display().to_string());
        let outcome = File::open(&path)
            .map_err(|e| describe(&e))
            .and_then(|mut file| {
                action(&mut file, &path)?;
                cache::stat(&file, method(args)).map_err(|e| describe(&e))
            });
        progress.inc(1);
        match outcome {
            Ok(stat) => entries.push(Entry { path, stat }),
            Err(why) => {
                progress.suspend(|| warn(format_args!("{}: {why}", path.display())));
                failed = true;
            }
        }
    }
    progress.finish_and_clear();
    print(&entries, args, globals)?;
    Ok(if failed { EXIT_ERROR } else { EXIT_OK })
}

fn print(entries: &[Entry], args: &FilesArgs, globals: Globals) -> CliResult<()> {
    let page = memio::map::page_size() as u64;
    let size: u64 = entries.iter().map(|e| e.stat.size).sum();
    let pages: u64 = entries.iter().map(|e| e.stat.pages).sum();
    let cached: u64 = entries.iter().map(|e| e.stat.cached).sum();
    let cached_bytes: u64 = entries.iter().map(|e| e.stat.cached_bytes()).sum();
    let dirty: Option<u64> = entries.iter().map(|e| e.stat.dirty).sum();
    let percent = if pages == 0 {
        100.0
    } else {
        cached as f64 * 100.0 / pages as f64
    };
    if args.json {
        let files: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "path": e.path.to_string_lossy(),
                    "size": e.stat.size,
                    "pages": e.stat.pages,
                    "cached_pages": e.stat.cached,
                    "cached_bytes": e.stat.cached_bytes(),
                    "percent": e.stat.percent(),
                    "dirty_pages": e.stat.dirty,
                    "writeback_pages": e.stat.writeback,
                    "evicted_pages": e.stat.evicted,
                    "recently_evicted_pages": e.stat.recently_evicted,
                    "method": e.stat.method,
                    "trusted": e.stat.trusted,
                })
            })
            .collect();
        output::print_json(&json!({
            "page_size": page,
            "files": files,
            "total": {
                "files": entries.len(),
                "size": size,
                "pages": pages,
                "cached_pages": cached,
                "cached_bytes": cached_bytes,
                "percent": percent,
                "dirty_pages": dirty,
            },
        }))?;
    } else if !entries.is_empty() {
        let mut table = Table::new(&["res", "pages", "size", "percent", "dirty", "file"])
            .right(&[0, 1, 2, 3, 4]);
        let dash = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        for e in entries {
            let mark = if e.stat.trusted { "" } else { "?" };
            table.push(vec![
                human_bytes(e.stat.cached_bytes()),
                format!("{}/{}", e.stat.cached, e.stat.pages),
                human_bytes(e.stat.size),
                format!("{}{mark}", percent_text(e.stat.cached, e.stat.pages)),
                dash(e.stat.dirty),
                e.path.display().to_string(),
            ]);
        }
        if entries.len() > 1 {
            table.push(vec![
                human_bytes(cached_bytes),
                format!("{cached}/{pages}"),
                human_bytes(size),
                percent_text(cached, pages),
                dash(dirty),
                format!("total ({} files)", entries.len()),
            ]);
        }
        table.print(!args.noheadings)?;
    }
    let untrusted = entries.iter().filter(|e| !e.stat.trusted).count();
    if untrusted > 0 && !globals.quiet {
        warn(format_args!(
            "{untrusted} file(s) marked '?': mincore cannot see the page cache of files you \
             neither own nor may write, so their residency may be wrong"
        ));
    }
    Ok(())
}

/// `42%`, rounded down so that only a fully cached file shows 100%; `-` for
/// an empty file.
fn percent_text(cached: u64, pages: u64) -> String {
    (cached.min(pages) * 100)
        .checked_div(pages)
        .map_or_else(|| "-".to_owned(), |p| format!("{p}%"))
}

/// `memio cache lock`: lock every file, report, then hold until a signal
/// ends the process.
fn lock(args: &FilesArgs, globals: Globals) -> CliResult {
    let (files, failed) = expand(args);
    if failed {
        return Err(CliError::new(
            "lock",
            "some paths cannot be used; nothing locked",
        ));
    }
    let mut held = Vec::new();
    let mut entries = Vec::new();
    for path in files {
        let file = File::open(&path).map_err(|e| CliError::io(path.display(), &e))?;
        let locked = LockedFile::lock_file(&file).map_err(|e| CliError::io(path.display(), &e))?;
        let stat =
            cache::stat(&file, method(args)).map_err(|e| CliError::io(path.display(), &e))?;
        held.push(locked);
        entries.push(Entry { path, stat });
    }
    print(&entries, args, globals)?;
    if !globals.quiet {
        let bytes: usize = held.iter().map(LockedFile::len).sum();
        warn(format_args!(
            "holding {} in memory for {} file(s); interrupt (Ctrl-C) or SIGTERM to release",
            human_bytes(bytes as u64),
            held.len()
        ));
    }
    // SIGINT and SIGTERM end the process by their default action; the
    // kernel unlocks and unmaps everything as it goes.
    loop {
        std::thread::park();
    }
}
