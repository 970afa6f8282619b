//! `memio cache stat|touch|evict|lock PATH…`: the page cache of files, with
//! vmtouch's and fincore's habits — `-R` to walk directories, a totals line,
//! human sizes in tables and exact bytes in `--json`, rows printed as the
//! walk goes.
//!
//! - `crate::walk`: the files, one at a time, with vmtouch's filters.
//! - `print`: the table or JSON, row by row.
//! - here: the options, the work on each file (in parallel with `-j`, rows
//!   still in walk order), eviction reports and `--watch`.

mod print;

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use memio::io::batch::{Batch, Event};
use memio::map::cache::{self, LockedFile, Method};

use crate::error::{CliError, CliResult, EXIT_ERROR, EXIT_NEGATIVE, EXIT_OK, describe};
use crate::ipc::parse_duration;
use crate::output::{Globals, warn};
use crate::size::{Size, human_bytes, parse_size};
use crate::walk::{self, Filters, Item, Walk};
use print::{Printer, Row, Style, Totals};

/// Report, fill, empty or pin the page cache of files.
#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// How much of each file is in the page cache (like fincore, vmtouch).
    #[command(after_help = "With -v, a bar per file shows which parts are resident \
                            (vmtouch -v: O all, o some, blank none) and skipped entries are named.")]
    Stat(StatArgs),
    /// Read files into the page cache, then report (vmtouch -t).
    Touch(FilesArgs),
    /// Write dirty pages back and drop files from the page cache, then
    /// report what the kernel did (vmtouch -e).
    #[command(
        after_help = "Pages that stay are explained where memio can: the processes that map \
                      (or lock) them are named. Exit status 1 when nothing could be evicted, \
                      or when memio cannot see whether anything was (a file you neither own \
                      nor may write, where cachestat refuses and mincore does not tell)."
    )]
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
struct StatArgs {
    #[command(flatten)]
    files: FilesArgs,
    /// Report again every interval (e.g. 2, 500ms) until interrupted; with
    /// --json, one compact JSON line per report.
    #[arg(short = 'w', long, value_name = "SECS", value_parser = parse_duration)]
    watch: Option<Duration>,
}

#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools, reason = "command-line flags")]
struct FilesArgs {
    /// Files, or directories with -R.
    #[arg(value_name = "PATH", required_unless_present = "batch")]
    paths: Vec<PathBuf>,
    /// Walk directories (symbolic links inside them are not followed
    /// unless -f).
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Follow symbolic links met while walking (vmtouch -f).
    #[arg(short = 'f', long)]
    follow: bool,
    /// Pass over files larger than this, e.g. 100M (vmtouch -m).
    #[arg(short = 'm', long, value_name = "SIZE")]
    max_size: Option<Size>,
    /// Only files whose name matches this shell pattern (vmtouch -i;
    /// repeatable).
    #[arg(short = 'i', long = "include", value_name = "PATTERN")]
    include: Vec<String>,
    /// Leave out files and directories whose name matches this shell
    /// pattern (vmtouch -I; repeatable).
    #[arg(short = 'I', long = "exclude", value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Only the bytes in this range of each file: LO-HI, LO- or -HI, e.g.
    /// 4k-1M (vmtouch -p).
    #[arg(short = 'p', long, value_name = "RANGE", value_parser = parse_range, allow_hyphen_values = true)]
    range: Option<Range<u64>>,
    /// Read the paths from this file, one per line; `-` for stdin
    /// (vmtouch -b).
    #[arg(short = 'b', long, value_name = "FILE")]
    batch: Option<PathBuf>,
    /// The -b list is separated by NUL bytes (find -print0).
    #[arg(short = '0', long, requires = "batch")]
    null: bool,
    /// Files measured at once, in threads (default: 1, or with -R or -b one
    /// per CPU up to 4); rows keep walk order.
    #[arg(short = 'j', long, value_name = "N")]
    jobs: Option<usize>,
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

/// `LO-HI`, `LO-`, `-HI` with sizes as elsewhere (`4k-1M`).
fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let Some((lo, hi)) = s.split_once('-') else {
        return Err("expected LO-HI, LO- or -HI, e.g. 4k-1M".to_owned());
    };
    let lo = if lo.trim().is_empty() {
        0
    } else {
        parse_size(lo)?
    };
    let hi = if hi.trim().is_empty() {
        u64::MAX
    } else {
        parse_size(hi)?
    };
    if hi < lo {
        return Err(format!("the range ends ({hi}) before it starts ({lo})"));
    }
    Ok(lo..hi)
}

/// What is done to each file before it is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Stat,
    Touch,
    Evict,
}

/// Runs `memio cache`.
pub(crate) fn run(args: &CacheArgs, globals: Globals) -> CliResult {
    match &args.action {
        Action::Stat(a) => match a.watch {
            Some(every) => watch(&a.files, globals, every),
            None => report(&a.files, globals, Act::Stat, None),
        },
        Action::Touch(files) => report(files, globals, Act::Touch, None),
        Action::Evict(files) => report(files, globals, Act::Evict, None),
        Action::Lock(files) => lock(files, globals),
    }
}

fn method(args: &FilesArgs) -> Method {
    match args.method {
        MethodArg::Auto => Method::Auto,
        MethodArg::Cachestat => Method::Cachestat,
        MethodArg::Mincore => Method::Mincore,
    }
}

fn walk(args: &FilesArgs) -> CliResult<Walk> {
    let roots: walk::Roots = match &args.batch {
        Some(list) => {
            let listed =
                walk::list(list, args.null).map_err(|e| CliError::io(list.display(), &e))?;
            Box::new(walk::roots(&args.paths).chain(listed))
        }
        None => walk::roots(&args.paths),
    };
    let filters = Filters {
        recursive: args.recursive,
        recursive_flag: "-R",
        links_once: true,
        follow: args.follow,
        max_size: args.max_size.map(Size::bytes),
        include: args.include.clone(),
        exclude: args.exclude.clone(),
    };
    Ok(Walk::new(roots, filters))
}

/// Reads `range` of each of `paths` into the page cache through memio-io's
/// batch engine (many reads in flight, `io_uring` where the kernel allows
/// it, a fixed buffer budget), counting the bytes on `progress` as they
/// come (a large file moves the bar while it is read). Returns, per path,
/// why it could not be read. The one place `cache touch` reads.
fn touch_files(
    paths: &[&Path],
    range: Range<u64>,
    progress: &indicatif::ProgressBar,
) -> CliResult<Vec<Option<String>>> {
    let mut failed = vec![None; paths.len()];
    // The default budget (32 reads of 128 KiB in flight): each window
    // allocates it once.
    Batch::new()
        .range(range)
        .read(paths, |event| match event {
            Event::Data { bytes, .. } => progress.inc(bytes.len() as u64),
            Event::Failed { file, error } => {
                if let Some(slot) = failed.get_mut(file) {
                    *slot = Some(crate::sum::lib_error(error).why);
                }
            }
            _ => {}
        })
        .map_err(|e| CliError::new("touch", e))?;
    Ok(failed)
}

/// Settings every worker shares.
#[derive(Debug, Clone)]
struct Work {
    act: Act,
    method: Method,
    range: Range<u64>,
    page_map: bool,
    /// Counts bytes: `touch` as it reads, the others per file.
    progress: indicatif::ProgressBar,
}

impl Work {
    /// Opens `path`, acts on it and measures it.
    fn run(&self, path: &Path) -> Result<Row, String> {
        let file = File::open(path).map_err(|e| describe(&e))?;
        let measure = |file: &File| {
            cache::stat_range(file, self.method, self.range.clone()).map_err(|e| describe(&e))
        };
        let mut before = None;
        match self.act {
            // `touch` has read the file already, with others (`touched`).
            Act::Stat | Act::Touch => {}
            Act::Evict => {
                before = Some(measure(&file)?);
                cache::evict_range(&file, self.range.clone()).map_err(|e| describe(&e))?;
            }
        }
        let stat = measure(&file)?;
        let map = if self.page_map && stat.pages > 0 {
            Some(cache::page_map(&file, self.range.clone(), 60).map_err(|e| describe(&e))?)
        } else {
            None
        };
        Ok(Row { stat, before, map })
    }
}

/// One walk item with its outcome, when it was a file.
type Done = (Item, Option<Result<Row, String>>);

/// Runs `work` on every file of `walk` with `jobs` workers and hands the
/// results to `emit` in walk order, as they become ready. At most `WINDOW`
/// items are between the walk and `emit` at once, so memory stays bounded
/// whatever the tree.
fn each(
    walk: Walk,
    jobs: usize,
    work: &Work,
    mut emit: impl FnMut(Done) -> CliResult<()>,
) -> CliResult<()> {
    const WINDOW: usize = 256;
    if work.act == Act::Touch {
        return touched(walk, work, WINDOW, emit);
    }
    let run = |item: Item| -> Done {
        match &item {
            Item::File { path, .. } => {
                let outcome = work.run(path);
                (item, Some(outcome))
            }
            _ => (item, None),
        }
    };
    if jobs <= 1 {
        for item in walk {
            emit(run(item))?;
        }
        return Ok(());
    }
    let (job_tx, job_rx) = sync_channel::<(u64, Item)>(WINDOW);
    let (done_tx, done_rx) = sync_channel::<(u64, Done)>(WINDOW);
    let (ticket_tx, ticket_rx): (SyncSender<()>, Receiver<()>) = sync_channel(WINDOW);
    for _ in 0..WINDOW {
        let _ = ticket_tx.send(());
    }
    let job_rx = Mutex::new(job_rx);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for (seq, item) in (0u64..).zip(walk) {
                // A ticket per item in flight: the printer returns one
                // for each row it prints.
                if ticket_rx.recv().is_err() || job_tx.send((seq, item)).is_err() {
                    return;
                }
            }
        });
        for _ in 0..jobs {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            scope.spawn(move || {
                loop {
                    let next = job_rx.lock().map_or(None, |rx| rx.recv().ok());
                    let Some((seq, item)) = next else { return };
                    if done_tx.send((seq, run(item))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        // Owned here, so that an early return (stdout closed) drops them
        // before the scope waits: the walker and the workers then see
        // their channels close and end.
        let done_rx = done_rx;
        let ticket_tx = ticket_tx;
        let mut ready = BTreeMap::new();
        let mut next = 0u64;
        for (seq, done) in &done_rx {
            ready.insert(seq, done);
            while let Some(done) = ready.remove(&next) {
                next += 1;
                // An error (a closed stdout) ends the walk: dropping the
                // receivers stops the walker and the workers.
                emit(done)?;
                let _ = ticket_tx.send(());
            }
        }
        Ok(())
    })
}

/// `each` for `cache touch`: the walk in windows of `window` items, the
/// files of each window read together through [`touch_files`] (the batch
/// engine keeps many reads in flight, so no worker threads are needed),
/// then measured and handed to `emit` in walk order. Memory stays bounded
/// by the window.
fn touched(
    walk: Walk,
    work: &Work,
    window: usize,
    mut emit: impl FnMut(Done) -> CliResult<()>,
) -> CliResult<()> {
    let mut walk = walk.peekable();
    while walk.peek().is_some() {
        let items: Vec<Item> = walk.by_ref().take(window).collect();
        let paths: Vec<&Path> = items
            .iter()
            .filter_map(|item| match item {
                Item::File { path, .. } => Some(path.as_path()),
                _ => None,
            })
            .collect();
        let mut failed = touch_files(&paths, work.range.clone(), &work.progress)?.into_iter();
        for item in items {
            let done = match &item {
                Item::File { path, .. } => {
                    let outcome = match failed.next().flatten() {
                        Some(why) => Err(why),
                        None => work.run(path),
                    };
                    (item, Some(outcome))
                }
                _ => (item, None),
            };
            emit(done)?;
        }
    }
    Ok(())
}

/// With a walk or a list (`-R`, `-b`), one worker per CPU up to 4: opening
/// and measuring files in parallel beats one at a time even with the
/// metadata cached (/usr, 113k files, release build: 1.2 s with 2 workers,
/// 1.9 s with one); a few files from the command line need no threads.
fn jobs(args: &FilesArgs) -> usize {
    args.jobs
        .unwrap_or_else(|| {
            if args.recursive || args.batch.is_some() {
                std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
            } else {
                1
            }
        })
        .max(1)
}

/// Walks, acts, measures and prints; per-file failures are reported as
/// they happen and make the exit status 2; an eviction that left
/// everything in place makes it 1.
fn report(args: &FilesArgs, globals: Globals, act: Act, style: Option<Style>) -> CliResult {
    let walk = walk(args)?;
    let progress = crate::progress::bytes(globals);
    let work = Work {
        act,
        method: method(args),
        range: args.range.clone().unwrap_or(0..u64::MAX),
        page_map: globals.verbose > 0 && !globals.quiet,
        progress: progress.clone(),
    };
    let style = style.unwrap_or(if args.json {
        Style::Json
    } else {
        Style::Table {
            headers: !args.noheadings,
        }
    });
    let mut printer = Printer::start(style)?;
    let mut totals = Totals::new();
    let mut status = EXIT_OK;
    each(walk, jobs(args), &work, |(item, outcome)| {
        match (item, outcome) {
            (Item::File { path, size }, Some(Ok(row))) => {
                if act != Act::Touch {
                    progress.inc(size);
                }
                progress.set_message(path.display().to_string());
                if act == Act::Evict {
                    status = status.max(explain_eviction(&path, &row, globals));
                }
                totals.add(&row);
                progress.suspend(|| printer.row(&path, &row))?;
            }
            (Item::File { path, .. } | Item::Failed { path, .. }, Some(Err(why)))
            | (Item::Failed { path, why }, _) => {
                progress.suspend(|| warn(format_args!("{}: {why}", path.display())));
                status = EXIT_ERROR;
            }
            (Item::Skipped { path, why }, _) => {
                totals.skipped += 1;
                if globals.verbose > 0 {
                    progress.suspend(|| {
                        warn(format_args!("{}: skipped: {why}", path.display()));
                    });
                }
            }
            (Item::File { .. }, None) => {}
        }
        Ok(())
    })?;
    progress.finish_and_clear();
    printer.finish(&totals)?;
    if let (Act::Evict, Some(gone), false) = (act, totals.evicted, globals.quiet) {
        warn(format_args!(
            "the kernel dropped {gone} cached page(s) ({}); {} stay cached",
            human_bytes(gone.saturating_mul(memio::map::page_size() as u64)),
            totals.cached
        ));
    }
    if totals.untrusted > 0 && !globals.quiet && act != Act::Evict {
        warn(format_args!(
            "{} file(s) marked '?': mincore cannot see the page cache of files you \
             neither own nor may write, so their residency may be wrong",
            totals.untrusted
        ));
    }
    Ok(status)
}

/// Says what an eviction did when pages stayed, naming the processes that
/// map them; returns 1 when nothing left the cache (or memio cannot tell).
fn explain_eviction(path: &Path, row: &Row, globals: Globals) -> u8 {
    let Some(before) = row.before else {
        return EXIT_OK;
    };
    let after = row.stat;
    if !(before.trusted && after.trusted) {
        warn(format_args!(
            "{}: cannot tell whether any page left the cache: cachestat refuses and mincore \
             does not see the cache of a file you neither own nor may write",
            path.display()
        ));
        return EXIT_NEGATIVE;
    }
    if after.cached == 0 {
        return EXIT_OK;
    }
    let users = std::fs::metadata(path)
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            memio::map::process::mapping_file(m.dev(), m.ino())
        })
        .unwrap_or_default();
    let why = if users.is_empty() {
        String::from("pages in use at that moment stay (no process memio may inspect maps it)")
    } else {
        let named: Vec<String> = users
            .iter()
            .map(|u| {
                let locked = match u.locked {
                    Some(l) if l > 0 => format!(", {} locked", human_bytes(l)),
                    _ => String::new(),
                };
                format!(
                    "pid {} ({}) maps {}{locked}",
                    u.pid,
                    u.comm,
                    human_bytes(u.mapped)
                )
            })
            .collect();
        named.join("; ")
    };
    let nothing = before.cached > 0 && after.cached >= before.cached;
    if nothing || !globals.quiet {
        warn(format_args!(
            "{}: {} of {} cached pages stayed in the cache: {why}",
            path.display(),
            after.cached,
            before.cached.max(after.cached)
        ));
    }
    if nothing { EXIT_NEGATIVE } else { EXIT_OK }
}

/// `memio cache stat --watch`: the report again every interval, until
/// interrupted or stdout closes.
fn watch(args: &FilesArgs, globals: Globals, every: Duration) -> CliResult {
    if args.batch.as_deref().is_some_and(|b| b.as_os_str() == "-") {
        return Err(CliError::new(
            "--watch",
            "cannot re-read a list from stdin (-b -)",
        ));
    }
    let style = args.json.then_some(Style::JsonLine);
    let quiet = Globals {
        quiet: true,
        ..globals
    };
    for tick in 0u64.. {
        if tick > 0 {
            std::thread::sleep(every);
            if style.is_none() {
                crate::output::println("")?;
            }
        }
        // Progress bars would flicker between reports.
        report(args, quiet, Act::Stat, style)?;
    }
    Ok(EXIT_OK)
}

/// `memio cache lock`: lock every file, report, then hold until a signal
/// ends the process.
fn lock(args: &FilesArgs, globals: Globals) -> CliResult {
    let range_unsupported = args.range.is_some();
    if range_unsupported {
        return Err(CliError::new("-p", "cache lock locks whole files"));
    }
    let mut files = Vec::new();
    let mut failed = false;
    for item in walk(args)? {
        match item {
            Item::File { path, .. } => files.push(path),
            Item::Failed { path, why } => {
                warn(format_args!("{}: {why}", path.display()));
                failed = true;
            }
            Item::Skipped { .. } => {}
        }
    }
    if failed {
        return Err(CliError::new(
            "lock",
            "some paths cannot be used; nothing locked",
        ));
    }
    let style = if args.json {
        Style::Json
    } else {
        Style::Table {
            headers: !args.noheadings,
        }
    };
    // Everything is locked before anything is printed: a refusal prints
    // only the error.
    let mut held = Vec::new();
    let mut rows = Vec::new();
    for path in files {
        let file = File::open(&path).map_err(|e| CliError::io(path.display(), &e))?;
        let locked = LockedFile::lock_file(&file).map_err(|e| CliError::io(path.display(), &e))?;
        let stat =
            cache::stat(&file, method(args)).map_err(|e| CliError::io(path.display(), &e))?;
        held.push(locked);
        rows.push((
            path,
            Row {
                stat,
                before: None,
                map: None,
            },
        ));
    }
    let mut printer = Printer::start(style)?;
    let mut totals = Totals::new();
    for (path, row) in &rows {
        totals.add(row);
        printer.row(path, row)?;
    }
    printer.finish(&totals)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_like_vmtouch() {
        assert_eq!(parse_range("4k-1M").unwrap(), 4096..1 << 20);
        assert_eq!(parse_range("4k-").unwrap(), 4096..u64::MAX);
        assert_eq!(parse_range("-8k").unwrap(), 0..8192);
        assert!(parse_range("8k").is_err());
        assert!(parse_range("8k-4k").is_err());
    }
}
