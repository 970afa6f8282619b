//! `memio lab`: every mechanism measured side by side on this machine.
//!
//! Each capability registers a [`Section`] in [`SECTIONS`] from its own file
//! (`lab/<section>.rs`). A section measures its mechanisms and the peers a
//! user would otherwise pick in the same run, through [`Run`], which times,
//! repeats, and records rows. The lab prints a table per section and writes
//! `report.json` and a self-contained `index.html` into the output folder.

mod allocation;
mod html;
pub(crate) mod ipc;
pub(crate) mod locking;
mod machine;
mod mapping;
pub(crate) mod measure;
mod memory;
mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::ProgressBar;

use crate::error::{CliError, CliResult, EXIT_ERROR, EXIT_OK};
use crate::output::{self, Globals};
use crate::size::Size;
pub(crate) use measure::{Case, Row, Timing, Unit};
use report::{Report, SectionReport};

/// Every lab section, in the order they run and print.
pub(crate) const SECTIONS: &[Section] = &[
    memory::SECTION,
    allocation::SECTION,
    mapping::SECTION,
    locking::SECTION,
    ipc::SECTION,
];

/// How the HTML report draws a section's rows.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Chart {
    /// One line per mechanism across the workloads (in the order measured),
    /// on a logarithmic value axis: for sweeps over sizes.
    Lines,
    /// One horizontal bar per row: for a handful of distinct cases.
    Bars,
}

/// A lab section: a capability, its mechanisms and their peers.
#[derive(Debug)]
pub(crate) struct Section {
    /// Short name used by `--only`: `memory`.
    pub(crate) name: &'static str,
    /// Heading in the table and the report.
    pub(crate) title: &'static str,
    /// One paragraph: what is measured and which question it answers.
    pub(crate) about: &'static str,
    /// The mechanism whose rows the ratios are taken against.
    pub(crate) reference: &'static str,
    /// How the report draws it.
    pub(crate) chart: Chart,
    /// Measures and records the rows.
    pub(crate) run: fn(&mut Run<'_>) -> CliResult<()>,
}

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
    /// List the sections and exit.
    #[arg(long)]
    list: bool,
    /// Folder for report.json and index.html.
    #[arg(long, value_name = "DIR", default_value = "lab-report")]
    out: PathBuf,
    /// Largest buffer or file a section may use (e.g. 64M).
    #[arg(long, value_name = "SIZE")]
    max_size: Option<Size>,
    /// Print the report as JSON on stdout instead of tables.
    #[arg(long)]
    json: bool,
}

/// Settings a section reads while it runs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `--full` rather than `--quick`.
    pub(crate) full: bool,
    /// The largest buffer or file a section may use, in bytes.
    pub(crate) max_size: u64,
    /// How long and how often to sample.
    pub(crate) timing: Timing,
}

impl Config {
    fn new(args: &LabArgs) -> Self {
        let full = args.full;
        let default_max = 256 << 20;
        Self {
            full,
            max_size: args.max_size.map_or(default_max, Size::bytes),
            timing: if full {
                Timing {
                    samples: 11,
                    sample_time: Duration::from_millis(50),
                }
            } else {
                Timing {
                    samples: 5,
                    sample_time: Duration::from_millis(15),
                }
            },
        }
    }

    /// The mode's name as the report states it.
    pub(crate) fn mode(&self) -> &'static str {
        if self.full { "full" } else { "quick" }
    }
}

/// Machine limits measured by one section and quoted by others.
pub(crate) mod limit {
    /// `copy_from_slice` (memcpy) bandwidth on a buffer larger than the
    /// caches, in GB/s.
    pub(crate) const MEMCPY_GBPS: &str = "memcpy_gbps";
}

/// A section's view of the running lab: configuration, timing, recording.
#[derive(Debug)]
pub(crate) struct Run<'a> {
    config: &'a Config,
    limits: &'a mut BTreeMap<String, f64>,
    progress: &'a ProgressBar,
    section: &'static str,
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Run<'_> {
    /// The lab's settings.
    pub(crate) fn config(&self) -> &Config {
        self.config
    }

    /// Says how many rows the section is about to measure, so the progress
    /// bar can show how far along it is.
    pub(crate) fn plan(&mut self, rows: u64) {
        self.progress.inc_length(rows);
    }

    fn announce(&self, case: &Case) {
        self.progress.set_message(format!(
            "{}: {} — {}",
            self.section, case.mechanism, case.workload
        ));
    }

    /// Records a row from samples already expressed in `unit`.
    pub(crate) fn record(&mut self, case: Case, unit: Unit, samples: &[f64]) -> Option<&Row> {
        self.progress.inc(1);
        let row = Row::from_samples(case, unit, samples)?;
        self.rows.push(row);
        self.rows.last()
    }

    /// Times `op`, which moves `bytes` bytes, and records GB/s.
    pub(crate) fn throughput(&mut self, case: Case, bytes: u64, op: impl FnMut()) -> f64 {
        self.announce(&case);
        let samples: Vec<f64> = self
            .config
            .timing
            .per_op_infallible(op)
            .into_iter()
            .map(|secs| bytes as f64 / secs / 1e9)
            .collect();
        self.record(case, Unit::GB_PER_S, &samples)
            .map_or(f64::NAN, |r| r.median)
    }

    /// Times `op` and records the time per operation in `unit` (a time unit).
    pub(crate) fn latency(&mut self, case: Case, unit: Unit, op: impl FnMut()) -> f64 {
        debug_assert!(unit.per_second > 0.0, "latency needs a time unit");
        self.announce(&case);
        let samples: Vec<f64> = self
            .config
            .timing
            .per_op_infallible(op)
            .into_iter()
            .map(|secs| secs * unit.per_second)
            .collect();
        self.record(case, unit, &samples)
            .map_or(f64::NAN, |r| r.median)
    }

    /// Times `batch(n)`, which performs `n` operations and returns how long
    /// they took (for set-ups that must be timed from inside, such as two
    /// processes), and records the time per operation in `unit`.
    pub(crate) fn batch_latency(
        &mut self,
        case: Case,
        unit: Unit,
        batch: impl FnMut(u64) -> CliResult<Duration>,
    ) -> CliResult<f64> {
        self.announce(&case);
        let samples: Vec<f64> = self
            .config
            .timing
            .per_op(batch)?
            .into_iter()
            .map(|secs| secs * unit.per_second)
            .collect();
        Ok(self
            .record(case, unit, &samples)
            .map_or(f64::NAN, |r| r.median))
    }

    /// Adds a sentence to the section's notes (printed under its table and
    /// in the report).
    pub(crate) fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Sets a machine limit other sections quote.
    pub(crate) fn set_limit(&mut self, name: &str, value: f64) {
        if value.is_finite() && value > 0.0 {
            self.limits.insert(name.to_owned(), value);
        }
    }

    /// The memcpy bandwidth of this machine in GB/s: the `memory` section's
    /// figure when it ran, otherwise measured now on a 64 MiB buffer.
    pub(crate) fn memcpy_gbps(&mut self) -> f64 {
        if let Some(&v) = self.limits.get(limit::MEMCPY_GBPS) {
            return v;
        }
        let v = memory::memcpy_bandwidth(self.config);
        self.set_limit(limit::MEMCPY_GBPS, v);
        v
    }
}

/// Runs `memio lab`.
pub(crate) fn run(args: &LabArgs, globals: Globals) -> CliResult {
    if args.list {
        let mut table = output::Table::new(&["section", "title"]);
        for s in SECTIONS {
            table.push(vec![s.name.to_owned(), s.title.to_owned()]);
        }
        table.print(true)?;
        return Ok(EXIT_OK);
    }
    let chosen = choose(&args.only)?;
    let config = Config::new(args);
    if config.max_size < 4096 {
        return Err(CliError::new("--max-size", "must be at least 4 KiB"));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| {
        CliError::new(
            args.out.display(),
            format!(
                "cannot create the report folder: {}",
                crate::error::describe_io(&e)
            ),
        )
    })?;

    let started = Instant::now();
    let progress = crate::progress::bar(0, globals);
    let mut limits = BTreeMap::new();
    let mut sections = Vec::new();
    let mut failed = false;
    for section in chosen {
        let t0 = Instant::now();
        let mut run = Run {
            config: &config,
            limits: &mut limits,
            progress: &progress,
            section: section.name,
            rows: Vec::new(),
            notes: Vec::new(),
        };
        let outcome = (section.run)(&mut run);
        let Run {
            mut rows, notes, ..
        } = run;
        measure::fill_ratios(&mut rows, section.reference);
        let error = outcome.err().map(|e| {
            failed = true;
            progress.suspend(|| output::warn(format_args!("lab: {}: {e}", section.name)));
            e.to_string()
        });
        if globals.verbose > 0 {
            progress.suspend(|| {
                output::warn(format_args!(
                    "lab: {}: {} rows in {:.1} s",
                    section.name,
                    rows.len(),
                    t0.elapsed().as_secs_f64()
                ));
            });
        }
        let report = SectionReport {
            name: section.name,
            title: section.title,
            about: section.about,
            reference: section.reference,
            chart: section.chart,
            seconds: t0.elapsed().as_secs_f64(),
            notes,
            error,
            rows,
        };
        if !args.json {
            let mut text = Vec::new();
            report::write_table(&mut text, &report)?;
            progress.suspend(|| output::println(String::from_utf8_lossy(&text).trim_end()))?;
        }
        sections.push(report);
    }
    progress.finish_and_clear();

    let report = Report::new(&config, limits, sections, started.elapsed());
    let json_path = args.out.join("report.json");
    let html_path = args.out.join("index.html");
    let json =
        serde_json::to_string_pretty(&report).map_err(|e| CliError::new("report.json", e))?;
    std::fs::write(&json_path, json + "\n").map_err(|e| CliError::io(json_path.display(), &e))?;
    std::fs::write(&html_path, html::render(&report))
        .map_err(|e| CliError::io(html_path.display(), &e))?;
    if args.json {
        output::print_json(&report)?;
    } else if !globals.quiet {
        output::println(format!(
            "report: {} and {} ({:.0} s)",
            html_path.display(),
            json_path.display(),
            report.seconds
        ))?;
    }
    Ok(if failed { EXIT_ERROR } else { EXIT_OK })
}

/// The sections `--only` names, in registry order; all when it is empty.
fn choose(only: &[String]) -> CliResult<Vec<&'static Section>> {
    if only.is_empty() {
        return Ok(SECTIONS.iter().collect());
    }
    for name in only {
        if !SECTIONS.iter().any(|s| s.name == name.trim()) {
            let known: Vec<_> = SECTIONS.iter().map(|s| s.name).collect();
            return Err(CliError::new(
                format!("--only {name}"),
                format!("no such lab section (sections: {})", known.join(", ")),
            ));
        }
    }
    Ok(SECTIONS
        .iter()
        .filter(|s| only.iter().any(|n| n.trim() == s.name))
        .collect())
}
