//! memio's lab: every mechanism measured side by side on this machine.
//!
//! `memio lab` is the command-line face of this crate. Each capability
//! registers a [`Section`] from its own module (`sections/<section>.rs`).
//! A section measures its mechanisms and the peers a user would otherwise
//! pick in the same run, through [`Run`], which times, repeats and records
//! rows. Sections that need a second process start it through the one
//! peer protocol ([`peer`]): the binary that runs the lab is started again
//! as `<binary> lab --peer <section> ...`, and must hand those arguments to
//! [`serve_peer`]. Heavy peers (`SQLite`, LMDB, redb, jemalloc, mimalloc,
//! iceoryx2) sit behind one cargo feature each; [`heavy_peers`] says which
//! ones this build has.
//!
//! [`run`] runs the chosen sections and writes `report.json` and a
//! self-contained `index.html` ([`report`], rendered without scripts or
//! anything fetched from the network) into the output folder; [`compare`]
//! reads an earlier `report.json` and takes the ratio of each row to it.
//!
//! ```no_run
//! use memio_lab::{Options, Quiet};
//!
//! let options = Options { only: vec!["memory".into()], ..Options::default() };
//! let outcome = memio_lab::run(&options, &Quiet)?;
//! println!("{} sections, report in {}", outcome.report.sections.len(), outcome.html.display());
//! # Ok::<(), memio_lab::Error>(())
//! ```

pub mod compare;
mod error;
mod html;
pub mod machine;
pub mod measure;
pub mod peer;
mod peers;
pub mod report;
pub mod support;
pub mod switch;
mod verdict;

/// The sections, one module each.
mod sections {
    pub(crate) mod allocation;
    pub(crate) mod async_read;
    pub(crate) mod channel;
    pub(crate) mod copy;
    pub(crate) mod ipc;
    pub(crate) mod kv;
    pub(crate) mod locking;
    pub(crate) mod malloc;
    pub(crate) mod mapping;
    pub(crate) mod memory;
}

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use error::{Error, Result, describe};
pub use measure::{Case, Row, Timing, Unit};
pub use peer::serve_peer;
pub use peers::{HeavyPeer, heavy_peers};
use report::{Report, SectionReport};
use sections::{allocation, async_read, channel, copy, ipc, kv, locking, malloc, mapping, memory};
pub use switch::LabAllocator;

/// Every lab section, in the order they run and print.
pub const SECTIONS: &[Section] = &[
    memory::SECTION,
    allocation::SECTION,
    malloc::SECTION,
    mapping::SECTION,
    locking::SECTION,
    ipc::SECTION,
    channel::SECTION,
    kv::SECTION,
    copy::SECTION,
    async_read::SECTION,
];

/// How the HTML report draws a section's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Chart {
    /// One line per mechanism across the workloads (in the order measured),
    /// on a logarithmic value axis: for sweeps over sizes.
    Lines,
    /// One horizontal bar per row: for a handful of distinct cases.
    Bars,
}

/// The other end of a section's measurements: what a peer process runs.
pub type PeerMain = fn(&[String], &mut peer::Control) -> std::io::Result<()>;

/// A section's own verdict: two or three lines from its rows.
pub type VerdictFn = fn(&[Row]) -> Vec<String>;

/// A lab section: a capability, its mechanisms and their peers.
#[derive(Debug)]
pub struct Section {
    /// Short name used by `--only`: `memory`.
    pub name: &'static str,
    /// Heading in the table and the report.
    pub title: &'static str,
    /// One paragraph: what is measured and which question it answers.
    pub about: &'static str,
    /// The mechanism whose rows the ratios are taken against.
    pub reference: &'static str,
    /// How the report draws it.
    pub chart: Chart,
    /// Measures and records the rows.
    pub run: fn(&mut Run<'_>) -> Result<()>,
    /// What its peer process runs, for sections that measure between
    /// processes (started as `lab --peer <name> ...`).
    pub peer: Option<PeerMain>,
    /// The section's own verdict from its rows, for sections whose rows
    /// are not rivals for one job (the memory primitives); `None` takes
    /// the winner of each family of workloads.
    pub verdict: Option<VerdictFn>,
}

/// What to run and where to write the report.
#[derive(Debug, Clone)]
pub struct Options {
    /// Longer runs, more sizes and more samples (`--full`).
    pub full: bool,
    /// Only these sections, by name; all when empty.
    pub only: Vec<String>,
    /// Folder for `report.json` and `index.html`.
    pub out: PathBuf,
    /// Largest buffer or file a section may use, in bytes (256 MiB when
    /// `None`, except the `copy` section's large file, 1 GiB in a full run).
    pub max_size: Option<u64>,
    /// An earlier `report.json` to take the ratio of every row to.
    pub compare: Option<PathBuf>,
    /// `libmemio_malloc.so`, which the `malloc` section preloads into the
    /// programs it runs under each allocator. The `memio` command carries
    /// the library and fills this in; without it, memio's rows for those
    /// programs are left out, with a note saying so.
    pub preload: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            full: false,
            only: Vec::new(),
            out: PathBuf::from("lab-report"),
            max_size: None,
            compare: None,
            preload: None,
        }
    }
}

/// Hears how a run goes: progress while it measures and each section when
/// it ends. The command line draws a progress bar and prints tables.
pub trait Observer {
    /// `rows` more rows are planned.
    fn plan(&self, rows: u64) {
        let _ = rows;
    }
    /// A row of `section` is being measured.
    fn measuring(&self, section: &str, case: &Case) {
        let _ = (section, case);
    }
    /// A row was measured.
    fn row_done(&self) {}
    /// A section ended, with rows, notes and possibly an error; `old` is
    /// the earlier report given to compare with.
    ///
    /// # Errors
    ///
    /// Whatever the observer could not do (print, typically); the run
    /// stops with that error.
    fn section_done(&self, section: &SectionReport, old: Option<&compare::Old>) -> Result<()> {
        let _ = (section, old);
        Ok(())
    }
}

/// An [`Observer`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Observer for Quiet {}

/// Settings a section reads while it runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--full` rather than `--quick`.
    pub full: bool,
    /// The largest buffer or file a section may use, in bytes.
    pub max_size: u64,
    /// Whether `max_size` was asked for (`--max-size`) rather than the
    /// default: a section whose workload is larger than the default by
    /// design (the `copy` section's 1 GiB file) keeps to it only then.
    pub max_size_given: bool,
    /// How long and how often to sample.
    pub timing: Timing,
    /// `libmemio_malloc.so`, to preload into programs ([`Options::preload`]).
    pub preload: Option<PathBuf>,
}

impl Config {
    /// The settings for `options`.
    #[must_use]
    pub fn new(options: &Options) -> Self {
        let full = options.full;
        Self {
            full,
            max_size: options.max_size.unwrap_or(256 << 20),
            max_size_given: options.max_size.is_some(),
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
            preload: options.preload.clone(),
        }
    }

    /// The mode's name as the report states it.
    #[must_use]
    pub fn mode(&self) -> &'static str {
        if self.full { "full" } else { "quick" }
    }
}

/// Machine limits measured by one section and quoted by others.
pub mod limit {
    /// `copy_from_slice` (memcpy) bandwidth on a buffer larger than the
    /// caches, in GB/s.
    pub const MEMCPY_GBPS: &str = "memcpy_gbps";
    /// The work two CPUs busy at once do, as a multiple of one alone
    /// (measured by the `kv` section on the CPUs its writer and readers
    /// are pinned to).
    pub const CPU_PAIR_SPEEDUP: &str = "cpu_pair_speedup";
}

/// A section's view of the running lab: configuration, timing, recording.
pub struct Run<'a> {
    config: &'a Config,
    limits: &'a mut BTreeMap<String, f64>,
    observer: &'a dyn Observer,
    section: &'static str,
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl std::fmt::Debug for Run<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("section", &self.section)
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl Run<'_> {
    /// The lab's settings.
    #[must_use]
    pub fn config(&self) -> &Config {
        self.config
    }

    /// Says how many rows the section is about to measure, so a progress
    /// bar can show how far along it is.
    pub fn plan(&mut self, rows: u64) {
        self.observer.plan(rows);
    }

    fn announce(&self, case: &Case) {
        self.observer.measuring(self.section, case);
    }

    /// Tells the observer the section is waiting rather than measuring
    /// (the progress bar shows `section: waiting — what`).
    pub fn waiting(&self, what: impl Into<String>) {
        self.announce(&Case::new("waiting", what.into()));
    }

    /// Records a row from samples already expressed in `unit`.
    pub fn record(&mut self, case: Case, unit: Unit, samples: &[f64]) -> Option<&Row> {
        self.observer.row_done();
        let row = Row::from_samples(case, unit, samples)?;
        self.rows.push(row);
        self.rows.last()
    }

    /// Times `op`, which moves `bytes` bytes, and records GB/s.
    pub fn throughput(&mut self, case: Case, bytes: u64, op: impl FnMut()) -> f64 {
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
    pub fn latency(&mut self, case: Case, unit: Unit, op: impl FnMut()) -> f64 {
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
    ///
    /// # Errors
    ///
    /// The first error `batch` returns.
    pub fn batch_latency(
        &mut self,
        case: Case,
        unit: Unit,
        batch: impl FnMut(u64) -> Result<Duration>,
    ) -> Result<f64> {
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

    /// Measures the cases round-robin ([`Timing::round_robin`]) and
    /// records nanoseconds per operation; returns their medians in order.
    pub fn round_robin(&mut self, cases: Vec<(Case, measure::Batch<'_>)>) -> Vec<f64> {
        let (cases, mut batches): (Vec<Case>, Vec<measure::Batch<'_>>) = cases.into_iter().unzip();
        if let Some(first) = cases.first() {
            self.announce(first);
        }
        let samples = self.config.timing.round_robin(&mut batches);
        drop(batches);
        self.record_each(cases, Unit::NS, &samples)
    }

    /// [`Run::round_robin`] for batches that can fail, recorded in `unit`
    /// (a time unit); returns the medians in order.
    ///
    /// # Errors
    ///
    /// The first error a batch returns.
    pub fn try_round_robin(
        &mut self,
        cases: Vec<Case>,
        unit: Unit,
        batches: &mut [&mut dyn FnMut(u64) -> Result<Duration>],
    ) -> Result<Vec<f64>> {
        if let Some(first) = cases.first() {
            self.announce(first);
        }
        let samples = self.config.timing.try_round_robin(batches)?;
        Ok(self.record_each(cases, unit, &samples))
    }

    /// Records each case from its seconds per operation, in `unit` (a time
    /// unit); returns the medians in order.
    fn record_each(&mut self, cases: Vec<Case>, unit: Unit, samples: &[Vec<f64>]) -> Vec<f64> {
        debug_assert!(
            unit.per_second > 0.0,
            "seconds per operation need a time unit"
        );
        cases
            .into_iter()
            .zip(samples)
            .map(|(case, s)| {
                let scaled: Vec<f64> = s.iter().map(|secs| secs * unit.per_second).collect();
                self.record(case, unit, &scaled)
                    .map_or(f64::NAN, |r| r.median)
            })
            .collect()
    }

    /// Adds a sentence to the section's notes (printed under its table and
    /// in the report).
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Whether the heavy peer `name` (its cargo feature) is built in; when
    /// it is not, notes that its rows are missing and why.
    pub fn heavy_peer(&mut self, name: &str) -> bool {
        match heavy_peers().iter().find(|p| p.name == name) {
            Some(p) if p.built => true,
            Some(p) => {
                self.note(format!(
                    "{} is not measured: this memio was built without the `{}` feature \
                     (cargo install --path crates/cli builds every peer)",
                    p.what, p.name
                ));
                false
            }
            None => {
                self.note(format!(
                    "{name} is not measured: no such peer in this build"
                ));
                false
            }
        }
    }

    /// Sets a machine limit other sections quote.
    pub fn set_limit(&mut self, name: &str, value: f64) {
        if value.is_finite() && value > 0.0 {
            self.limits.insert(name.to_owned(), value);
        }
    }

    /// The memcpy bandwidth of this machine in GB/s: the `memory` section's
    /// figure when it ran, otherwise measured now on a 64 MiB buffer.
    pub fn memcpy_gbps(&mut self) -> f64 {
        if let Some(&v) = self.limits.get(limit::MEMCPY_GBPS) {
            return v;
        }
        let v = memory::memcpy_bandwidth(self.config);
        self.set_limit(limit::MEMCPY_GBPS, v);
        v
    }
}

/// What a lab run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Everything measured.
    pub report: Report,
    /// Where `report.json` was written.
    pub json: PathBuf,
    /// Where `index.html` was written.
    pub html: PathBuf,
    /// Whether a section stopped with an error.
    pub failed: bool,
}

/// Runs the chosen sections and writes `report.json` and `index.html` into
/// `options.out`. A section that fails keeps its rows so far and records
/// its error; the others still run.
///
/// # Errors
///
/// An unknown section name, a `max_size` below 4 KiB, an unreadable
/// comparison report, an output folder that cannot be created or written,
/// or an error from the observer.
pub fn run(options: &Options, observer: &dyn Observer) -> Result<Outcome> {
    let chosen = choose(&options.only)?;
    let config = Config::new(options);
    if config.max_size < 4096 {
        return Err(Error::new("--max-size", "must be at least 4 KiB"));
    }
    let old = options
        .compare
        .as_deref()
        .map(compare::Old::read)
        .transpose()?;
    std::fs::create_dir_all(&options.out).map_err(|e| {
        Error::new(
            options.out.display(),
            format!("cannot create the report folder: {}", describe(&e)),
        )
    })?;

    let started = Instant::now();
    let mut limits = BTreeMap::new();
    let mut sections = Vec::new();
    let mut failed = false;
    for section in chosen {
        let report = run_section(section, &config, &mut limits, observer);
        failed |= report.error.is_some();
        observer.section_done(&report, old.as_ref())?;
        sections.push(report);
    }
    let mut report = Report::new(&config, limits, sections, started.elapsed());
    if let Some(old) = &old {
        report.comparison = Some(old.compare(&report));
    }
    let (json, html) = report.write(&options.out)?;
    Ok(Outcome {
        report,
        json,
        html,
        failed,
    })
}

/// Runs one section and gathers what it measured, noted and failed with.
fn run_section(
    section: &'static Section,
    config: &Config,
    limits: &mut BTreeMap<String, f64>,
    observer: &dyn Observer,
) -> SectionReport {
    let t0 = Instant::now();
    let mut run = Run {
        config,
        limits,
        observer,
        section: section.name,
        rows: Vec::new(),
        notes: Vec::new(),
    };
    let outcome = (section.run)(&mut run);
    let Run {
        mut rows, notes, ..
    } = run;
    measure::fill_ratios(&mut rows, section.reference);
    let mut report = SectionReport {
        name: section.name,
        title: section.title,
        about: section.about,
        reference: section.reference,
        chart: section.chart,
        seconds: t0.elapsed().as_secs_f64(),
        verdict: Vec::new(),
        notes,
        error: outcome.err().map(|e| e.to_string()),
        rows,
    };
    report.verdict = match section.verdict {
        Some(own) => own(&report.rows),
        None => verdict::verdict(&report),
    };
    report
}

/// The sections `only` names, in registry order; all when it is empty.
///
/// # Errors
///
/// A name that is no section.
pub fn choose(only: &[String]) -> Result<Vec<&'static Section>> {
    if only.is_empty() {
        return Ok(SECTIONS.iter().collect());
    }
    for name in only {
        if !SECTIONS.iter().any(|s| s.name == name.trim()) {
            let known: Vec<_> = SECTIONS.iter().map(|s| s.name).collect();
            return Err(Error::new(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_run(f: impl FnOnce(&mut Run<'_>)) -> Vec<String> {
        let config = Config::new(&Options::default());
        let mut limits = BTreeMap::new();
        let mut run = Run {
            config: &config,
            limits: &mut limits,
            observer: &Quiet,
            section: "test",
            rows: Vec::new(),
            notes: Vec::new(),
        };
        f(&mut run);
        run.notes
    }

    #[test]
    fn a_peer_not_built_is_a_note_not_a_failure() {
        for p in heavy_peers() {
            let mut built = None;
            let notes = with_run(|run| built = Some(run.heavy_peer(p.name)));
            assert_eq!(built, Some(p.built), "{}", p.name);
            if p.built {
                assert!(notes.is_empty(), "{notes:?}");
            } else {
                assert_eq!(notes.len(), 1);
                assert!(
                    notes[0].contains(p.what)
                        && notes[0].contains(&format!("`{}` feature", p.name)),
                    "{notes:?}"
                );
            }
        }
        let notes = with_run(|run| assert!(!run.heavy_peer("nosuch")));
        assert!(notes[0].contains("no such peer"), "{notes:?}");
    }

    #[test]
    fn sections_are_chosen_by_name_in_registry_order() {
        let names = |only: &[&str]| -> Vec<&str> {
            let only: Vec<String> = only.iter().map(|s| (*s).to_owned()).collect();
            choose(&only).unwrap().iter().map(|s| s.name).collect()
        };
        assert_eq!(names(&["ipc", "memory"]), vec!["memory", "ipc"]);
        assert_eq!(names(&[]).len(), SECTIONS.len());
        let err = choose(&["nosuch".to_owned()]).unwrap_err().to_string();
        assert!(
            err.starts_with("--only nosuch: no such lab section"),
            "{err}"
        );
        // Every section with a peer can be served by name.
        assert!(SECTIONS.iter().filter(|s| s.peer.is_some()).count() >= 2);
    }
}
