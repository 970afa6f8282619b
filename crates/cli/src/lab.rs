//! `memio lab`: parses the options and runs the lab in memio-lab, with a
//! progress bar on stderr and a table per section on stdout.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use indicatif::ProgressBar;
use memio_lab::compare::Old;
use memio_lab::report::{SectionReport, write_table};
use memio_lab::{Case, Observer, Options};

use crate::error::{CliError, CliResult, EXIT_ERROR, EXIT_OK};
use crate::output::{self, Globals};
use crate::size::Size;

/// Measure memory, file I/O and IPC mechanisms side by side on this machine.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools, reason = "command-line flags")]
#[command(
    after_help = "Sections: run `memio lab --list`. The report's JSON shape is described in README.md."
)]
pub(crate) struct LabArgs {
    /// Short runs: the whole lab in about a minute (the default).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// Longer runs, more sizes and more samples for steadier figures.
    #[arg(long)]
    full: bool,
    /// Run only these sections (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "SECTIONS")]
    only: Vec<String>,
    /// List the sections and the heavy peers built in, and exit.
    #[arg(long)]
    list: bool,
    /// Folder for report.json and index.html.
    #[arg(long, value_name = "DIR", default_value = "lab-report")]
    out: PathBuf,
    /// Largest buffer or file a section may use (e.g. 64M; 256 MiB when
    /// not given, except the 1 GiB file a full run's copy section copies).
    #[arg(long, value_name = "SIZE")]
    max_size: Option<Size>,
    /// Print the report as JSON on stdout instead of tables.
    #[arg(long)]
    json: bool,
    /// Show each row's ratio to the same row of an earlier report.json
    /// (> 1: better now), in the tables and the HTML report.
    #[arg(long, value_name = "OLD.json")]
    compare: Option<PathBuf>,
}

/// The arguments after `memio lab --peer`, when this process was started
/// as a lab section's peer. The entry is read before the command line is
/// parsed, so it stays out of the help, the completions and the man pages.
pub(crate) fn peer_invocation() -> Option<Vec<String>> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != "lab" || args.next()? != "--peer" {
        return None;
    }
    Some(args.map(|a| a.to_string_lossy().into_owned()).collect())
}

/// Runs a lab section's peer (`memio lab --peer SECTION ARGS...`).
pub(crate) fn peer(args: &[String]) -> CliResult {
    memio_lab::serve_peer(args).map_err(lab_error)?;
    Ok(EXIT_OK)
}

/// Draws the progress bar and prints each section as it ends.
struct Terminal {
    bar: ProgressBar,
    globals: Globals,
    json: bool,
    started: RefCell<Instant>,
    /// The first error printing hit, kept whole so a closed stdout still
    /// exits quietly.
    failed: RefCell<Option<CliError>>,
}

impl Observer for Terminal {
    fn plan(&self, rows: u64) {
        self.bar.inc_length(rows);
    }

    fn measuring(&self, section: &str, case: &Case) {
        self.bar
            .set_message(format!("{section}: {} — {}", case.mechanism, case.workload));
    }

    fn row_done(&self) {
        self.bar.inc(1);
    }

    fn section_done(&self, s: &SectionReport, old: Option<&Old>) -> memio_lab::Result<()> {
        if let Some(e) = &s.error {
            self.bar
                .suspend(|| output::warn(format_args!("lab: {}: {e}", s.name)));
        }
        if self.globals.verbose > 0 {
            let took = self.started.replace(Instant::now()).elapsed();
            self.bar.suspend(|| {
                output::warn(format_args!(
                    "lab: {}: {} rows in {:.1} s",
                    s.name,
                    s.rows.len(),
                    took.as_secs_f64()
                ));
            });
        }
        if self.json {
            return Ok(());
        }
        let mut text = Vec::new();
        let printed = write_table(&mut text, s, old)
            .map_err(CliError::from)
            .and_then(|()| {
                self.bar
                    .suspend(|| output::println(String::from_utf8_lossy(&text).trim_end()))
            });
        printed.map_err(|e| {
            let lab = memio_lab::Error::new(&e.object, &e.why);
            self.failed.borrow_mut().get_or_insert(e);
            lab
        })
    }
}

/// Runs `memio lab`.
pub(crate) fn run(args: &LabArgs, globals: Globals) -> CliResult {
    if args.list {
        return list();
    }
    let options = Options {
        full: args.full,
        only: args.only.clone(),
        out: args.out.clone(),
        max_size: args.max_size.map(Size::bytes),
        compare: args.compare.clone(),
        preload: preload(&args.only),
    };
    let terminal = Terminal {
        bar: crate::progress::bar(0, globals),
        globals,
        json: args.json,
        started: RefCell::new(Instant::now()),
        failed: RefCell::new(None),
    };
    let outcome = memio_lab::run(&options, &terminal);
    terminal.bar.finish_and_clear();
    if let Some(e) = terminal.failed.take() {
        return Err(e);
    }
    let outcome = outcome.map_err(lab_error)?;
    if args.json {
        output::print_json(&outcome.report)?;
    } else if !globals.quiet {
        let built: Vec<&str> = memio_lab::heavy_peers()
            .iter()
            .filter(|p| !p.built)
            .map(|p| p.name)
            .collect();
        if !built.is_empty() {
            output::println(format!(
                "heavy peers not built: {} (build with default features to measure them)",
                built.join(", ")
            ))?;
        }
        output::println(format!(
            "report: {} and {} ({:.0} s)",
            outcome.html.display(),
            outcome.json.display(),
            outcome.report.seconds
        ))?;
    }
    Ok(if outcome.failed { EXIT_ERROR } else { EXIT_OK })
}

/// `libmemio_malloc.so`, written out as `memio malloc run` does, when the
/// `malloc` section is to run (it preloads the library into programs).
/// When it cannot be written, the lab runs without it (and notes memio's
/// rows for those programs as missing); why goes to stderr.
fn preload(only: &[String]) -> Option<PathBuf> {
    let chosen = memio_lab::choose(only).ok()?;
    if !chosen.iter().any(|s| s.name == "malloc") {
        return None;
    }
    crate::malloc::install()
        .map_err(|e| output::warn(format_args!("lab: {}: {}", e.object, e.why)))
        .ok()
}

/// `memio lab --list`: the sections, then the heavy peers.
fn list() -> CliResult {
    let mut table = output::Table::new(&["section", "title"]);
    for s in memio_lab::SECTIONS {
        table.push(vec![s.name.to_owned(), s.title.to_owned()]);
    }
    table.print(true)?;
    let mut peers = output::Table::new(&["peer", "what", "built"]);
    for p in memio_lab::heavy_peers() {
        peers.push(vec![
            p.name.to_owned(),
            p.what.to_owned(),
            if p.built { "yes" } else { "no" }.to_owned(),
        ]);
    }
    output::println("")?;
    peers.print(true)?;
    Ok(EXIT_OK)
}

fn lab_error(e: memio_lab::Error) -> CliError {
    CliError::new(e.object, e.why)
}
