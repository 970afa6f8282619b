//! `memio cp [-r] SRC… DST`: copies with cp's habits (into a directory,
//! `-r` for trees, refusing a file onto itself), an engine to choose, a
//! progress bar on a terminal and dd's summary line with `-v`.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use memio::io::copy::{CopyOptions, Method, Sparse, copy_tree};
use serde_json::json;

use crate::error::{CliError, CliResult, EXIT_ERROR, EXIT_OK};
use crate::output::{self, Globals, warn};
use crate::size::human_bytes;
use crate::walk::{Filters, Item, Walk};

/// Copy files and directory trees.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools, reason = "command-line flags")]
#[command(
    after_help = "The copy is written under a temporary name beside DST and renamed into place, \
                  so an interrupted copy never leaves a truncated file under the final name; \
                  ended by SIGINT, SIGTERM or SIGHUP, memio cp removes the temporary first. In a \
                  folder it may not write (or may not replace a file in: a sticky one), an \
                  existing file it may write is written in place, as cp writes it (then an interrupted copy leaves it cut short).\n\
                  With -v, each copy is listed and a dd-style summary goes to stderr."
)]
pub(crate) struct CpArgs {
    /// Sources, then the destination (a directory when there are several sources).
    #[arg(required = true, num_args = 1.., value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Copy directories and their contents; symbolic links, a source that is one too, are copied
    /// as links (`LINK/` names the folder a link leads to).
    #[arg(short = 'r', short_alias = 'R', long)]
    recursive: bool,
    /// The kernel path that moves the bytes.
    #[arg(long, value_enum, default_value = "auto")]
    method: MethodArg,
    /// Keep holes (auto), also make holes of zero blocks (always, through read/write), or write
    /// every byte (never).
    #[arg(long, value_enum, default_value = "auto")]
    sparse: SparseArg,
    /// Flush each copy to the disk before renaming it into place (or, written in place, before
    /// going on).
    #[arg(long)]
    fsync: bool,
    /// Read each copy back and compare it with its source before renaming it (or, written in
    /// place, once written).
    #[arg(long)]
    verify: bool,
    /// Draw a progress bar (only when stderr is a terminal).
    #[arg(long)]
    progress: bool,
    /// Print a JSON summary (exact bytes and seconds) instead of text.
    #[arg(short = 'J', long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[allow(clippy::doc_markdown, reason = "help text, where backticks would show")]
enum MethodArg {
    /// In-kernel copy, falling back to read/write where it is refused.
    Auto,
    /// In-kernel copy (copy_file_range) only.
    CopyFileRange,
    /// The source mapped in 64 MiB windows, written with pwrite(2).
    Mmap,
    /// pread(2)/pwrite(2) through a 1 MiB buffer.
    ReadWrite,
    /// sendfile(2).
    Sendfile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SparseArg {
    Auto,
    Always,
    Never,
}

impl CpArgs {
    fn options(&self) -> CliResult<CopyOptions> {
        if self.sparse == SparseArg::Always
            && !matches!(self.method, MethodArg::Auto | MethodArg::ReadWrite)
        {
            // It reads every byte to find zero blocks: the copy goes
            // through read/write whatever --method says.
            return Err(CliError::new(
                "--sparse always",
                "finds zero blocks by reading every byte, so it copies through read/write: \
                 use it with --method auto or read-write",
            ));
        }
        let method = match self.method {
            MethodArg::Auto => Method::Auto,
            MethodArg::CopyFileRange => Method::CopyFileRange,
            MethodArg::Mmap => Method::Mmap,
            MethodArg::ReadWrite => Method::ReadWrite,
            MethodArg::Sendfile => Method::Sendfile,
        };
        let sparse = match self.sparse {
            SparseArg::Auto => Sparse::Auto,
            SparseArg::Always => Sparse::Always,
            SparseArg::Never => Sparse::Never,
        };
        Ok(CopyOptions::new()
            .method(method)
            .sparse(sparse)
            .fsync(self.fsync)
            .verify(self.verify))
    }
}

/// What the whole command copied.
#[derive(Debug, Default)]
struct Totals {
    files: u64,
    /// Symbolic links copied as links.
    links: u64,
    bytes: u64,
    failed: u64,
    methods: Vec<&'static str>,
}

/// Set by the signal thread before it removes the temporaries: the copies
/// in flight fail from then on, and the process is to end as the signal.
static ENDING: AtomicBool = AtomicBool::new(false);

/// Once a signal is being handled, waits for the signal thread to end the
/// process. Without it, a copy that failed because its temporary was
/// removed under it could report that failure and exit 1 before the
/// signal thread ended the process as the signal.
fn stop_if_ending() {
    if ENDING.load(Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}

/// Says a failure over the progress bar, unless a signal is ending the
/// process (see [`stop_if_ending`]).
fn say_unless_ending(bar: &indicatif::ProgressBar, text: String) {
    stop_if_ending();
    bar.suspend(|| warn(text));
}

/// Removes the hidden temporaries of the copies in flight when SIGINT,
/// SIGTERM or SIGHUP arrives, then ends the process as that signal's
/// default action would (so a shell still sees "killed by SIGINT").
/// A signal the process was started ignoring (`nohup`, a shell's
/// background job) stays ignored, as it does for cp.
fn clean_up_on_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let ignored = ignored_signals();
    let wanted: Vec<i32> = [SIGINT, SIGTERM, SIGHUP]
        .into_iter()
        .filter(|&s| {
            u32::try_from(s - 1)
                .ok()
                .and_then(|bit| 1u64.checked_shl(bit))
                .is_none_or(|bit| ignored & bit == 0)
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut signals = signal_hook::iterator::Signals::new(wanted)?;
    std::thread::Builder::new()
        .name("memio-cp-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                ENDING.store(true, Ordering::SeqCst);
                memio::io::copy::remove_temporaries();
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        })?;
    Ok(())
}

/// The signals this process ignores, bit `n - 1` for signal `n` (`SigIgn`
/// in `/proc/self/status`); none when that cannot be read.
fn ignored_signals() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let mask = status.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .unwrap_or(0)
}

/// Runs `memio cp`.
pub(crate) fn run(args: &CpArgs, globals: Globals) -> CliResult {
    if let [only] = args.paths.as_slice() {
        return Err(CliError::new(
            format_args!("'{}'", only.display()),
            "missing destination operand after it",
        ));
    }
    clean_up_on_signals()?;
    let (sources, dst) = args.paths.split_at(args.paths.len() - 1);
    let dst = &dst[0];
    let into_dir = dst.is_dir();
    if sources.len() > 1 && !into_dir {
        return Err(CliError::new(
            format_args!("'{}'", dst.display()),
            "target is not a directory",
        ));
    }
    let bar = if args.progress && crate::progress::shown(globals) {
        crate::progress::bytes_bar(source_bytes(sources, args.recursive), globals)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let hear = |n: u64| {
        bar.inc(n);
    };
    let options = args.options()?;
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut made = Made::default();
    for src in sources {
        let target = if into_dir && names_its_contents(src) {
            // `dir/.`: what is in it goes into the target, as with cp.
            dst.clone()
        } else if into_dir {
            let Some(name) = src.file_name() else {
                warn(format_args!(
                    "'{}': cannot copy a path without a name",
                    src.display()
                ));
                totals.failed += 1;
                continue;
            };
            let target = dst.join(name);
            // A link there is not written through for a folder, as cp
            // refuses: the tree would land where the link leads.
            if args.recursive
                && std::fs::symlink_metadata(src).is_ok_and(|m| m.is_dir())
                && std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_symlink())
            {
                warn(format_args!(
                    "'{}': cannot copy a directory over a symbolic link",
                    target.display()
                ));
                totals.failed += 1;
                continue;
            }
            match made.check(src, &target, args.recursive) {
                Repeat::No => {}
                Repeat::SameSource => {
                    warn(format_args!(
                        "'{}': source given more than once; copied once",
                        src.display()
                    ));
                    continue;
                }
                Repeat::Clash(first) => {
                    warn(format_args!(
                        "'{}': will not overwrite what '{}' just made there with '{}'",
                        target.display(),
                        first.display(),
                        src.display()
                    ));
                    totals.failed += 1;
                    continue;
                }
            }
            target
        } else {
            dst.clone()
        };
        let say = |text: String| say_unless_ending(&bar, text);
        let failed = totals.failed;
        let was_there = std::fs::symlink_metadata(&target).is_ok();
        copy_one(
            args,
            globals,
            &options,
            (src, &target),
            (&hear, &say),
            &mut totals,
        );
        // What the copy made stays made even if a later step of it failed.
        let made_now =
            totals.failed == failed || (!was_there && std::fs::symlink_metadata(&target).is_ok());
        if into_dir && made_now {
            made.add(src, target, args.recursive);
        }
    }
    bar.finish_and_clear();
    summary(args, globals, &totals, started.elapsed())?;
    Ok(if totals.failed > 0 {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

/// What this run made in the target folder, source by source: two
/// sources of the same name would otherwise land on one target, the
/// second over what the first just made (cp refuses that too; folders
/// merge, as with cp).
#[derive(Default)]
struct Made {
    targets: Vec<MadeTarget>,
}

/// A target this run made.
struct MadeTarget {
    target: PathBuf,
    /// The source it came from, as given.
    source: PathBuf,
    /// That source's folder made absolute, and its name: one source given
    /// twice, however spelt (`a/f`, `./a/f`, `/abs/a/f`). A hard link or a
    /// symbolic link to it is another source, as for cp.
    place: Option<PathBuf>,
    /// Whether it is a folder copied as a tree.
    tree: bool,
}

/// What a source's target was earlier in the run.
enum Repeat<'a> {
    /// Nothing this run made.
    No,
    /// What the same source made: it was given twice.
    SameSource,
    /// What another source (named) made.
    Clash(&'a Path),
}

impl Made {
    /// Where the source lies (its folder resolved, its own name kept), and
    /// whether it is copied as a tree.
    fn place(src: &Path, recursive: bool) -> (Option<PathBuf>, bool) {
        let place = src.file_name().and_then(|name| {
            let dir = match src.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            std::fs::canonicalize(dir).ok().map(|dir| dir.join(name))
        });
        let tree = recursive
            && !copied_as_link(src, recursive)
            && std::fs::metadata(src).is_ok_and(|m| m.is_dir());
        (place, tree)
    }

    fn check(&self, src: &Path, target: &Path, recursive: bool) -> Repeat<'_> {
        let Some(first) = self.targets.iter().find(|m| m.target == target) else {
            return Repeat::No;
        };
        let there = if copied_as_link(src, recursive) {
            std::fs::symlink_metadata(src)
        } else {
            std::fs::metadata(src)
        };
        if there.is_err() {
            // Nothing to copy: the copy says why (a missing source, say).
            return Repeat::No;
        }
        let (place, tree) = Self::place(src, recursive);
        if place.is_some() && place == first.place {
            Repeat::SameSource
        } else if first.tree && tree {
            Repeat::No
        } else {
            Repeat::Clash(&first.source)
        }
    }

    fn add(&mut self, src: &Path, target: PathBuf, recursive: bool) {
        let (place, tree) = Self::place(src, recursive);
        self.targets.push(MadeTarget {
            target,
            source: src.to_path_buf(),
            place,
            tree,
        });
    }
}

/// Whether `path` ends in a `.` component (`dir/.`, `.`, `dir/./`),
/// which cp copies as the folder's contents rather than as a folder of
/// that name (`Path::file_name` skips such a component).
fn names_its_contents(path: &Path) -> bool {
    let bytes = path.as_os_str().as_bytes();
    let end = bytes.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
    let trimmed = &bytes[..end];
    trimmed == b"." || trimmed.ends_with(b"/.")
}

/// Whether source `src` is copied as the link it is: with -r, as cp does
/// (`link/` and `link/.` name what it leads to).
fn copied_as_link(src: &Path, recursive: bool) -> bool {
    recursive && std::fs::symlink_metadata(src).is_ok_and(|m| m.is_symlink())
}

/// The bytes the sources will move, for the progress bar: their regular
/// files' sizes, through the walk `cache` and `sum` use (what cannot be
/// read counts 0; the copy reports it).
fn source_bytes(sources: &[PathBuf], recursive: bool) -> u64 {
    // A link given with -r is copied as the link: nothing behind it moves.
    let sources: Vec<PathBuf> = sources
        .iter()
        .filter(|s| !copied_as_link(s, recursive))
        .cloned()
        .collect();
    let filters = Filters {
        recursive,
        recursive_flag: "-r",
        ..Filters::default()
    };
    Walk::new(crate::walk::roots(&sources), filters)
        .map(|item| match item {
            Item::File { size, .. } => size,
            _ => 0,
        })
        .sum()
}

/// Copies one source (a file, or a tree with `-r`) to `target`, reporting
/// failures as it goes.
fn copy_one(
    args: &CpArgs,
    globals: Globals,
    options: &CopyOptions,
    (src, target): (&Path, &Path),
    (hear, say): (&(dyn Fn(u64) + Sync), &dyn Fn(String)),
    totals: &mut Totals,
) {
    let report = |err: memio::io::Error| say(crate::sum::lib_error(err).to_string());
    // cp -v's line for each source copied; a closed stdout is not worth
    // stopping the copies for.
    let list = || {
        if globals.verbose > 0 && !args.json {
            let _ = output::println(format_args!(
                "'{}' -> '{}'",
                src.display(),
                target.display()
            ));
        }
    };
    if copied_as_link(src, args.recursive) {
        match options.copy_link(src, target) {
            Ok(()) => {
                totals.links += 1;
                list();
            }
            Err(e) => {
                report(e);
                totals.failed += 1;
            }
        }
        return;
    }
    let is_dir = std::fs::metadata(src).is_ok_and(|m| m.is_dir());
    if is_dir && !args.recursive {
        say(format!(
            "-r not specified; omitting directory '{}'",
            src.display()
        ));
        totals.failed += 1;
        return;
    }
    if is_dir {
        match copy_tree(src, target, options, hear) {
            Ok(done) => {
                totals.files += done.files;
                totals.links += done.symlinks;
                totals.bytes += done.bytes;
                totals.failed += done.failures.len() as u64;
                for e in done.failures {
                    report(e);
                }
                list();
            }
            Err(e) => {
                report(e);
                totals.failed += 1;
            }
        }
        return;
    }
    match options.copy_with_progress(src, target, &mut |n| hear(n)) {
        Ok(copied) => {
            totals.files += 1;
            totals.bytes += copied.bytes;
            if !totals.methods.contains(&copied.method.name()) {
                totals.methods.push(copied.method.name());
            }
            list();
        }
        Err(e) => {
            report(e);
            totals.failed += 1;
        }
    }
}

/// dd's summary: `N bytes (X MB, Y MiB) copied, T s, R MB/s`.
fn dd_line(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!(
        "{bytes} bytes ({}, {}) copied, {secs:.3} s, {}/s",
        si_bytes(bytes),
        human_bytes(bytes),
        si_rate(bytes as f64 / secs)
    )
}

/// Decimal units as dd prints them: `1.1 GB`, `512 kB`.
fn si_bytes(bytes: u64) -> String {
    si_rate(bytes as f64)
}

/// [`si_bytes`] for a figure that need not be whole (a rate).
fn si_rate(bytes: f64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000.0 {
        return format!("{bytes:.0} B");
    }
    let mut value = bytes / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// The run's summary, at its end; none when a signal is ending the process
/// (see [`stop_if_ending`]).
fn summary(args: &CpArgs, globals: Globals, totals: &Totals, elapsed: Duration) -> CliResult<()> {
    stop_if_ending();
    if args.json {
        let secs = elapsed.as_secs_f64();
        return output::print_json(&json!({
            "files": totals.files,
            "links": totals.links,
            "bytes": totals.bytes,
            "failed": totals.failed,
            "seconds": secs,
            "bytes_per_second": if secs > 0.0 { totals.bytes as f64 / secs } else { 0.0 },
            "methods": totals.methods,
        }));
    }
    if globals.verbose > 0 && !globals.quiet {
        warn_plain(&dd_line(totals.bytes, elapsed));
    }
    Ok(())
}

/// A line on stderr without the `memio:` prefix (dd's summary stands alone).
fn warn_plain(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_reads_like_dd() {
        assert_eq!(
            dd_line(1_073_741_824, Duration::from_millis(500)),
            "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 0.500 s, 2.1 GB/s"
        );
        assert_eq!(si_bytes(999), "999 B");
        assert_eq!(si_bytes(512_000), "512 kB");
    }
}
