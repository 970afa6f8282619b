//! Lab section `malloc`: the general-purpose allocators a Rust program
//! picks between, on the same workloads.
//!
//! Each (workload, allocator) pair runs in its own child process of the
//! lab's binary (`lab --peer malloc <workload> <mode>`), started with
//! `MEMIO_LAB_ALLOCATOR=<allocator>` so that the binary's global allocator
//! ([`crate::switch`]) is that allocator from the first allocation on;
//! memio runs twice, its default and with transparent huge pages
//! (`MEMIO_MALLOC_HUGEPAGES=1`). The caller's own allocator settings
//! (`LD_PRELOAD`, `MEMIO_MALLOC_*`, glibc's, mimalloc's and jemalloc's:
//! see [`dropin::scrub_env`]) are taken out of every child's environment.
//! The children of a workload are sampled round-robin, so the machine's
//! drifting load weighs on each alike; each sample is one batch of the
//! workload's operations, timed by the lab from the batch's announcement
//! to its end. The child's peak resident size (`VmHWM`) is read when its
//! samples are done.
//!
//! Then whole programs, C and Python, run under glibc's malloc and the
//! others swapped in by `LD_PRELOAD`, as a user would ([`dropin`]).
//!
//! # Safety
//!
//! The workloads call the global allocator directly (`alloc`/`dealloc`
//! with the layout each block was made with, stamped into blocks that
//! another thread frees), so that every allocator serves exactly the same
//! requests.
#![allow(
    unsafe_code,
    reason = "the workloads call the global allocator directly"
)]
#![allow(
    clippy::cast_possible_truncation,
    reason = "random numbers are cut down to indices and sizes on purpose"
)]
#![allow(
    clippy::cast_ptr_alignment,
    reason = "blocks are allocated with 8-byte alignment and stamped with their size"
)]

use std::alloc::{Layout, alloc, dealloc};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io;
use std::process::Command;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::measure::keep;
use crate::peer::{Control, Peer};
use crate::support::XorShift;
use crate::switch::VARIABLE;
use crate::{Case, Chart, Error, Result, Run, Section, Unit};

mod child;
mod dropin;

/// The section as registered in the lab.
pub(crate) const SECTION: Section = Section {
    name: "malloc",
    title: "General-purpose allocators: system, memio, mimalloc, jemalloc; drop-in under LD_PRELOAD",
    about: "The same workload code runs once per global allocator, each in its own child process \
            of this binary, which picks its allocator from MEMIO_LAB_ALLOCATOR at its first \
            allocation (one relaxed load and a branch per call, the same for every allocator). \
            Workloads: small-object churn (16-256 B), mixed sizes up to 1 MiB, vectors and \
            strings grown by push, producer/consumer (every object freed by the other thread), \
            4 threads churning private sets, a larson-style server (objects freed by a random \
            other thread), repeated 1-32 MiB blocks, and building a BTreeMap and a HashMap. Rows: \
            time per operation, the child's peak resident size and its page faults per \
            operation over the samples (memory touched afresh: what an allocator pays in time for \
            memory it gives back; a fault maps 4 KiB, or 2 MiB where transparent huge pages back \
            the heap, and a note says how much of each allocator's memory does), time and size \
            with a geometric mean over the workloads; notes compare memio with each peer and \
            say which of the global allocator's targets hold. Then whole \
            programs under LD_PRELOAD, each run as a child process timed start to exit, with \
            its peak RSS from wait4: three C programs the lab builds \
            from sources it carries (small-object churn, cross-thread frees, blocks above \
            128 KiB) and a Python workload (dicts, lists, sorting, json), under glibc's malloc \
            (the reference for those rows), libmemio_malloc.so with checks off and on \
            (MEMIO_MALLOC_CHECK=3) and with huge pages (MEMIO_MALLOC_HUGEPAGES=1), and the \
            distribution's jemalloc and mimalloc when \
            installed; Python keeps its own allocator for objects up to 512 B, as shipped. The \
            notes give each as multiples of glibc's figures and say which of the drop-in \
            library's targets hold. Answers: which allocator a Rust program should \
            pick, and what swapping malloc under an existing program gains.",
    reference: SYSTEM,
    chart: Chart::Bars,
    run,
    peer: Some(peer),
    verdict: None,
};

const SYSTEM: &str = "system";
/// memio with `MEMIO_MALLOC_HUGEPAGES=1`.
const HUGE: &str = "memio, huge pages";
const GEOMEAN: &str = "geometric mean";

/// Samples of each workload under each allocator, at least.
const SAMPLES: usize = 11;

/// Peak resident size in MiB, smaller is better.
const MIB: Unit = Unit {
    symbol: "MiB peak RSS",
    higher_is_better: false,
    per_second: 0.0,
};

/// Page faults (minor and major) per operation over the samples, smaller
/// is better: each is memory touched afresh, what an allocator pays in
/// time for memory it gave back or had not taken yet. A fault maps one
/// 4 KiB page, or a whole 2 MiB one where transparent huge pages back the
/// memory (memio with huge pages; mimalloc, which asks for them on its
/// arenas), so counts compare only with page sizes in mind: the section
/// notes how much of each peer lies in huge pages.
const FAULTS: Unit = Unit {
    symbol: "faults per op",
    higher_is_better: false,
    per_second: 0.0,
};

/// A workload: its peer name and what the report calls it.
struct Workload {
    name: &'static str,
    label: &'static str,
}

const WORKLOADS: [Workload; 8] = [
    Workload {
        name: "small",
        label: "small churn 16-256 B, 10k alloc+free",
    },
    Workload {
        name: "mixed",
        label: "mixed sizes 16 B-1 MiB, 1k alloc+free",
    },
    Workload {
        name: "grow",
        label: "vectors and strings grown by push to 1-256 KiB, 64 of each",
    },
    Workload {
        name: "prodcons",
        label: "producer/consumer, 20k objects freed by the other thread",
    },
    Workload {
        name: "private",
        label: "4 threads, 10k alloc+free each in private sets",
    },
    Workload {
        name: "larson",
        label: "larson-style: 4 threads, 10k objects each freed by a random thread",
    },
    Workload {
        name: "large",
        label: "1-32 MiB blocks, touched, 4 alloc+free",
    },
    Workload {
        name: "maps",
        label: "BTreeMap + HashMap of u64 built and dropped",
    },
];

fn run(run: &mut Run<'_>) -> Result<()> {
    let mut allocators = vec![SYSTEM, "memio", HUGE];
    for peer in ["mimalloc", "jemalloc"] {
        if run.heavy_peer(peer) {
            allocators.push(peer);
        }
    }
    let mode = if run.config().full { "full" } else { "quick" };
    run.plan(((WORKLOADS.len() * 3 + 2) * allocators.len()) as u64);
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); allocators.len()];
    let mut peaks: Vec<Vec<f64>> = vec![Vec::new(); allocators.len()];
    let mut huge: Vec<Vec<String>> = vec![Vec::new(); allocators.len()];
    for w in &WORKLOADS {
        let Measured {
            times: t,
            rss,
            faults: f,
            huge: h,
        } = measure(run, w, &allocators, mode)?;
        for (i, &a) in allocators.iter().enumerate() {
            let case = || {
                Case::new(a, w.label)
                    .param("workload", w.name)
                    .param("mode", mode)
            };
            if let Some(row) = run.record(case(), Unit::US, &t[i]) {
                times[i].push(row.median);
            }
            if let Some(row) = run.record(case(), MIB, &[rss[i]]) {
                peaks[i].push(row.median);
            }
            run.record(case(), FAULTS, &[f[i]]);
            if let Some(mib) = h[i].filter(|&mib| mib > 0.0) {
                huge[i].push(format!("{} {mib:.0} of {:.0} MiB", w.name, rss[i]));
            }
        }
    }
    for (a, parts) in allocators.iter().zip(&huge) {
        if !parts.is_empty() {
            run.note(format!(
                "{a}: resident in transparent huge pages after the samples (of its peak RSS): {}",
                parts.join(", ")
            ));
        }
    }
    for (i, &a) in allocators.iter().enumerate() {
        let case = || Case::new(a, GEOMEAN).param("mode", mode);
        run.record(case(), Unit::US, &[geomean(&times[i])]);
        run.record(case(), MIB, &[geomean(&peaks[i])]);
    }
    compare(run, &allocators, &times, &peaks);
    for line in targets(&allocators, &times, &peaks) {
        run.note(line);
    }
    if mode == "quick" {
        run.note("quick mode runs smaller maps (250k entries) and shorter samples than --full (1M entries)");
    }
    dropin::run(run)
}

/// Notes memio's standing against each other allocator, as plain ratios.
fn compare(run: &mut Run<'_>, allocators: &[&str], times: &[Vec<f64>], peaks: &[Vec<f64>]) {
    let Some(me) = allocators.iter().position(|&a| a == "memio") else {
        return;
    };
    for (i, &other) in allocators.iter().enumerate() {
        if i == me || times[i].len() != times[me].len() {
            continue;
        }
        if other == HUGE {
            run.note(format!(
                "memio with huge pages (MEMIO_MALLOC_HUGEPAGES=1): {:.2}x the time and {:.2}x \
                 the peak RSS of its default over the workloads (geometric means)",
                geomean(&times[i]) / geomean(&times[me]),
                geomean(&peaks[i]) / geomean(&peaks[me]),
            ));
            continue;
        }
        let t = geomean(&times[i]) / geomean(&times[me]);
        let m = geomean(&peaks[me]) / geomean(&peaks[i]);
        let slowest = times[me]
            .iter()
            .zip(&times[i])
            .enumerate()
            .map(|(k, (m, o))| (o / m, k))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let mut text = format!(
            "memio vs {other}: {} over the workloads (geometric mean of times), peak RSS {:.2}x {other}'s",
            speed(t),
            m
        );
        if let Some((r, k)) = slowest {
            let _ = write!(
                text,
                "; its least favourable workload is {} ({}",
                WORKLOADS[k].name,
                speed(r)
            );
            if let (Some(m), Some(o)) = (peaks[me].get(k), peaks[i].get(k)) {
                let _ = write!(text, ", peak RSS {m:.1} against {o:.1} MiB");
            }
            text.push(')');
        }
        run.note(text);
    }
}

/// The global allocator's targets, each stated as met or not met with its
/// figures, from this run's medians: no workload slower than the system
/// allocator, a geometric mean of times at most mimalloc's, peak RSS at
/// most 1.1x the system allocator's on every workload, and the large
/// blocks at most 1.2x its time.
fn targets(allocators: &[&str], times: &[Vec<f64>], peaks: &[Vec<f64>]) -> Vec<String> {
    let at = |name: &str| allocators.iter().position(|&a| a == name);
    let whole = |i: usize| times[i].len() == WORKLOADS.len() && peaks[i].len() == WORKLOADS.len();
    let (Some(me), Some(sys)) = (at("memio"), at(SYSTEM)) else {
        return vec![
            "workload targets not judged: memio or the system allocator did not run".to_owned(),
        ];
    };
    if !whole(me) || !whole(sys) {
        return vec!["workload targets not judged: a workload is missing its figures".to_owned()];
    }
    let per = |column: &[Vec<f64>]| {
        WORKLOADS
            .iter()
            .zip(column[me].iter().zip(&column[sys]))
            .map(|(w, (&m, &s))| (w.name, ratio(Some(m), Some(s))))
            .collect::<Vec<_>>()
    };
    let (time, rss) = (per(times), per(peaks));
    let mut lines = vec![worst(
        "no workload slower than the system allocator",
        "memio's time",
        "the system allocator's",
        1.0,
        time.iter().copied(),
    )];
    lines.push(match at("mimalloc").filter(|&mi| whole(mi)) {
        Some(mi) => worst(
            "geometric mean of the workloads' times at most 1.0x mimalloc's",
            "memio's geometric mean",
            "mimalloc's",
            1.0,
            [(
                "the workloads",
                ratio(Some(geomean(&times[me])), Some(geomean(&times[mi]))),
            )]
            .into_iter(),
        ),
        None => concat!(
            "target geometric mean of the workloads' times at most 1.0x mimalloc's: ",
            "not judged (mimalloc did not run)"
        )
        .to_owned(),
    });
    lines.push(worst(
        "peak RSS at most 1.1x the system allocator's on every workload",
        "memio's peak RSS",
        "the system allocator's",
        1.1,
        rss.iter().copied(),
    ));
    lines.push(worst(
        "large blocks at most 1.2x the system allocator's time",
        "memio's time",
        "the system allocator's",
        1.2,
        time.iter().copied().filter(|(name, _)| *name == "large"),
    ));
    lines
}

/// `x / y` when both are known.
fn ratio(x: Option<f64>, y: Option<f64>) -> Option<f64> {
    let r = x? / y?;
    r.is_finite().then_some(r)
}

/// `target <what>: met|not met (...)` over `(name, ratio)` pairs (programs
/// or workloads), the target holding when every ratio is at most `limit`;
/// quotes the worst.
fn worst<'a>(
    what: &str,
    subject: &str,
    base: &str,
    limit: f64,
    ratios: impl Iterator<Item = (&'a str, Option<f64>)>,
) -> String {
    let known: Vec<(&str, f64)> = ratios.filter_map(|(p, r)| Some((p, r?))).collect();
    let Some(&(name, r)) = known.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
        return format!("target {what}: not judged (no figures)");
    };
    let failing: Vec<String> = known
        .iter()
        .filter(|(_, r)| *r > limit)
        .map(|(p, r)| format!("{p} {r:.2}x"))
        .collect();
    if failing.is_empty() {
        let at = if known.len() > 1 {
            format!("at most {r:.2}x {base}, on {name}")
        } else {
            format!("{r:.2}x {base}")
        };
        format!("target {what}: met ({subject} {at})")
    } else {
        format!(
            "target {what}: not met ({subject} as a multiple of {base}: {})",
            failing.join(", ")
        )
    }
}

fn speed(ratio: f64) -> String {
    if (0.995..1.005).contains(&ratio) {
        "as fast".to_owned()
    } else if ratio >= 1.0 {
        format!("{ratio:.2}x faster")
    } else {
        format!("{:.2}x slower", 1.0 / ratio)
    }
}

fn geomean(values: &[f64]) -> f64 {
    let logs: Vec<f64> = values
        .iter()
        .filter(|v| **v > 0.0)
        .map(|v| v.ln())
        .collect();
    if logs.is_empty() {
        return f64::NAN;
    }
    (logs.iter().sum::<f64>() / logs.len() as f64).exp()
}

/// One workload's figures under each allocator.
struct Measured {
    /// µs-per-operation samples.
    times: Vec<Vec<f64>>,
    /// Peak RSS in MiB.
    rss: Vec<f64>,
    /// Page faults per operation over the samples.
    faults: Vec<f64>,
    /// MiB resident in transparent huge pages after the samples, where
    /// the kernel says.
    huge: Vec<Option<f64>>,
}

/// Runs workload `w` under every allocator, round-robin.
fn measure(run: &mut Run<'_>, w: &Workload, allocators: &[&str], mode: &str) -> Result<Measured> {
    let timing = run.config().timing;
    let args = [w.name.to_owned(), mode.to_owned()];
    let mut peers = Vec::new();
    for &a in allocators {
        let mut p = Peer::start_with(a, "malloc", &args, |cmd| prepare_peer(cmd, a))?;
        p.ready()?;
        peers.push(p);
    }
    let batch = |p: &mut Peer, n: u64| -> Result<Duration> {
        let t0 = Instant::now();
        p.announce(n)?;
        p.done()?;
        Ok(t0.elapsed())
    };
    // Warm every allocator up; size batches on the system allocator's.
    for p in &mut peers[1..] {
        batch(p, 1)?;
    }
    let n = timing.calibrate(|n| batch(&mut peers[0], n))?;
    // The targets compare medians a few percent apart: in quick mode too,
    // as many samples as --full takes (its samples are shorter), so that
    // a noisy moment on a shared machine moves no median alone.
    let count = timing.samples.max(SAMPLES);
    let faults_of = |p: &Peer| page_faults(p.id()).map_err(|e| Error::io(p.name(), &e));
    let before = peers.iter().map(faults_of).collect::<Result<Vec<_>>>()?;
    let mut samples = vec![Vec::with_capacity(count); peers.len()];
    for _ in 0..count {
        for (p, out) in peers.iter_mut().zip(&mut samples) {
            out.push(batch(p, n)?.as_secs_f64() * 1e6 / n as f64);
        }
    }
    let ops = (n * count as u64) as f64;
    let mut rss = Vec::new();
    let mut faults = Vec::new();
    let mut huge = Vec::new();
    for (p, was) in peers.into_iter().zip(before) {
        faults.push(faults_of(&p)?.saturating_sub(was) as f64 / ops);
        huge.push(huge_pages_mib(p.id()));
        rss.push(peak_rss_mib(p.id()).map_err(|e| Error::io(p.name(), &e))?);
        p.finish()?;
    }
    Ok(Measured {
        times: samples,
        rss,
        faults,
        huge,
    })
}

/// MiB of process `pid` resident in transparent huge pages
/// (`AnonHugePages` of `/proc/PID/smaps_rollup`); `None` where the kernel
/// does not say.
fn huge_pages_mib(pid: u32) -> Option<f64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    mib_field(&rollup, "AnonHugePages:")
}

/// The figure of the `key` line (`VmHWM:   1234 kB`) of a `/proc` file,
/// in MiB.
fn mib_field(text: &str, key: &str) -> Option<f64> {
    let kib: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Page faults, minor and major, of process `pid` so far (all its
/// threads, live and exited).
fn page_faults(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_faults(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no fault counts in /proc/PID/stat",
        )
    })
}

/// `minflt + majflt` from a `/proc/PID/stat` line: fields 10 and 12,
/// counted after the command name, which may hold spaces and parentheses
/// and ends at the last `)`.
fn parse_faults(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (the state).
    let minor: u64 = fields.get(10 - 3)?.parse().ok()?;
    let major: u64 = fields.get(12 - 3)?.parse().ok()?;
    Some(minor + major)
}

/// `VmHWM` of process `pid`, in MiB.
fn peak_rss_mib(pid: u32) -> io::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    mib_field(&status, "VmHWM:").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no VmHWM line in /proc/PID/status",
        )
    })
}

/// Sets the environment of allocator `a`'s peer: the caller's own
/// allocator settings out, the allocator's choice (and memio's huge pages
/// option, for its row with them) in.
fn prepare_peer(cmd: &mut Command, a: &str) {
    dropin::scrub_env(cmd);
    match a {
        HUGE => cmd.envs([(VARIABLE, "memio"), ("MEMIO_MALLOC_HUGEPAGES", "1")]),
        _ => cmd.env(VARIABLE, a),
    };
}

/// The peer: runs batches of one workload under this process's allocator.
fn peer(args: &[String], control: &mut Control) -> io::Result<()> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad peer arguments: {}", args.join(" ")),
        )
    };
    if args.first().is_some_and(|a| a == "measure") {
        return child::measure_peer(&args[1..], dropin::TIMEOUT);
    }
    let [name, mode] = args else {
        return Err(bad());
    };
    let full = match mode.as_str() {
        "full" => true,
        "quick" => false,
        _ => return Err(bad()),
    };
    let mut state = State::new(name, full).ok_or_else(bad)?;
    control.ready()?;
    while let Some(n) = control.next_batch()? {
        control.started()?;
        for _ in 0..n {
            state.op();
        }
        control.done()?;
    }
    Ok(())
}

/// A block from the global allocator that knows its layout.
struct Raw {
    ptr: *mut u8,
    size: usize,
}

impl Raw {
    /// Allocates `size` bytes (at least 8) and writes one byte per 4 KiB,
    /// as a program that uses its memory would.
    fn new(size: usize) -> Self {
        let size = size.max(8);
        let layout = Layout::from_size_align(size, 8).expect("sizes are small");
        // SAFETY: a non-zero size.
        let ptr = unsafe { alloc(layout) };
        assert!(!ptr.is_null(), "out of memory");
        let mut at = 0;
        while at < size {
            // SAFETY: `at < size`, inside the block.
            let byte = unsafe { ptr.add(at) };
            // SAFETY: as above.
            unsafe { byte.write(1) };
            at += 4096;
        }
        Self { ptr, size }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.size, 8).expect("made in new");
        // SAFETY: allocated in `new` with this layout.
        unsafe {
            dealloc(self.ptr, layout);
        }
    }
}

// SAFETY: a `Raw` owns its block outright, like a `Box<[u8]>`.
unsafe impl Send for Raw {}

/// The larson table: blocks any thread may replace (and so free).
struct Table(Vec<AtomicPtr<u8>>);

impl Drop for Table {
    fn drop(&mut self) {
        for slot in &self.0 {
            free_stamped(slot.swap(std::ptr::null_mut(), Ordering::AcqRel));
        }
    }
}

/// A block whose first 8 bytes hold its size, so any thread can free it.
fn stamped(size: usize) -> *mut u8 {
    let r = Raw::new(size.max(8));
    // SAFETY: at least 8 bytes, 8-aligned.
    unsafe {
        r.ptr.cast::<usize>().write(r.size);
    }
    let p = r.ptr;
    std::mem::forget(r);
    p
}

fn free_stamped(p: *mut u8) {
    if p.is_null() {
        return;
    }
    // SAFETY: made by `stamped`, which wrote the size there.
    let size = unsafe { p.cast::<usize>().read() };
    drop(Raw { ptr: p, size });
}

enum State {
    Small {
        slots: Vec<Option<Raw>>,
        rng: XorShift,
    },
    Mixed {
        slots: Vec<Option<Raw>>,
        rng: XorShift,
    },
    Grow {
        rng: XorShift,
    },
    ProdCons,
    Private,
    Larson {
        table: Arc<Table>,
        round: u64,
    },
    Large {
        rng: XorShift,
    },
    Maps {
        entries: u64,
    },
}

impl State {
    fn new(name: &str, full: bool) -> Option<Self> {
        let rng = XorShift::new(XorShift::SEED);
        Some(match name {
            "small" => State::Small {
                slots: (0..4096).map(|_| None).collect(),
                rng,
            },
            "mixed" => State::Mixed {
                slots: (0..256).map(|_| None).collect(),
                rng,
            },
            "grow" => State::Grow { rng },
            "prodcons" => State::ProdCons,
            "private" => State::Private,
            "larson" => {
                let mut rng = rng;
                let table = (0..8192)
                    .map(|_| AtomicPtr::new(stamped(16 + (rng.next_u64() % 497) as usize)))
                    .collect();
                State::Larson {
                    table: Arc::new(Table(table)),
                    round: 0,
                }
            }
            "large" => State::Large { rng },
            "maps" => State::Maps {
                entries: if full { 1_000_000 } else { 250_000 },
            },
            _ => return None,
        })
    }

    fn op(&mut self) {
        match self {
            State::Small { slots, rng } => churn(slots, rng, 10_000, |r| 16 + (r % 241) as usize),
            State::Mixed { slots, rng } => churn(slots, rng, 1_000, |r| {
                // Log-uniform: each power of two from 16 B to 1 MiB alike.
                let base = 16usize << (r % 17);
                (base + (r >> 8) as usize % base).min(1 << 20)
            }),
            State::Grow { rng } => grow(rng),
            State::ProdCons => producer_consumer(),
            State::Private => private_sets(),
            State::Larson { table, round } => {
                *round += 1;
                larson(table, *round);
            }
            State::Large { rng } => {
                for _ in 0..4 {
                    let size = (1 << 20) + (rng.next_u64() % (31 << 20)) as usize;
                    keep(Raw::new(size));
                }
            }
            State::Maps { entries } => maps(*entries),
        }
    }
}

/// Replaces `n` random slots with fresh blocks of `size(random)` bytes.
fn churn(slots: &mut [Option<Raw>], rng: &mut XorShift, n: usize, size: impl Fn(u64) -> usize) {
    for _ in 0..n {
        let r = rng.next_u64();
        let i = (r as usize >> 3) % slots.len();
        slots[i] = Some(Raw::new(size(r >> 20)));
    }
}

fn grow(rng: &mut XorShift) {
    let mut vs: Vec<Vec<u8>> = Vec::new();
    let mut ss: Vec<String> = Vec::new();
    for _ in 0..64 {
        let target = 1024 + (rng.next_u64() % (255 << 10)) as usize;
        let mut v = Vec::new();
        while v.len() < target {
            v.extend_from_slice(&[7u8; 100]);
        }
        vs.push(v);
        let mut s = String::new();
        while s.len() < target / 2 {
            s.push_str("allocator ");
        }
        ss.push(s);
    }
    keep((vs, ss));
}

fn producer_consumer() {
    let (tx, rx) = mpsc::sync_channel::<Vec<Raw>>(16);
    let consumer = std::thread::spawn(move || {
        let mut n = 0usize;
        for batch in rx {
            n += batch.len();
        }
        n
    });
    let mut rng = XorShift::new(XorShift::SEED);
    for _ in 0..200 {
        let batch: Vec<Raw> = (0..100)
            .map(|_| Raw::new(32 + (rng.next_u64() % 481) as usize))
            .collect();
        tx.send(batch)
            .expect("the consumer runs until the channel closes");
    }
    drop(tx);
    keep(consumer.join().expect("the consumer does not panic"));
}

fn private_sets() {
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = XorShift::new(XorShift::SEED + t);
                let mut slots: Vec<Option<Raw>> = (0..1000).map(|_| None).collect();
                churn(&mut slots, &mut rng, 10_000, |r| 16 + (r % 1009) as usize);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("workers do not panic");
    }
}

fn larson(table: &Arc<Table>, round: u64) {
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let table = Arc::clone(table);
            std::thread::spawn(move || {
                let mut rng = XorShift::new(XorShift::SEED ^ (round << 8 | t));
                for _ in 0..10_000 {
                    let r = rng.next_u64();
                    let slot = &table.0[(r as usize >> 3) % table.0.len()];
                    let fresh = stamped(16 + ((r >> 32) % 497) as usize);
                    free_stamped(slot.swap(fresh, Ordering::AcqRel));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("workers do not panic");
    }
}

fn maps(entries: u64) {
    let mut rng = XorShift::new(XorShift::SEED);
    let mut tree = BTreeMap::new();
    let mut hash = HashMap::new();
    for i in 0..entries {
        let k = rng.next_u64();
        tree.insert(k, i);
        hash.insert(k, i);
    }
    keep((tree.len(), hash.len()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_counts_are_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 1234 0 56 0 7 3 0 0 20 0 1 0 1 0 0";
        assert_eq!(parse_faults(stat), Some(1234 + 56));
        assert_eq!(parse_faults("4242 (cut short) S 1 2"), None);
        assert_eq!(parse_faults("no name at all"), None);
    }

    #[test]
    fn touching_fresh_memory_counts_page_faults() {
        let me = std::process::id();
        let before = page_faults(me).expect("this process has a stat file");
        // 8 MiB from calloc is a fresh mapping: each 4 KiB page (or 2 MiB
        // one, with transparent huge pages) faults when first written.
        let mut block = vec![0u8; 8 << 20];
        for at in (0..block.len()).step_by(4096) {
            block[at] = 1;
        }
        keep(&block);
        let after = page_faults(me).expect("this process has a stat file");
        assert!(
            after >= before + 4,
            "8 MiB written took {} faults",
            after - before
        );
    }

    #[test]
    fn workload_targets_say_met_or_not_met_with_the_figures() {
        let allocators = [SYSTEM, "memio", HUGE, "mimalloc"];
        let n = WORKLOADS.len();
        let maps = WORKLOADS.iter().position(|w| w.name == "maps").unwrap();
        let grow = WORKLOADS.iter().position(|w| w.name == "grow").unwrap();
        let mut times = vec![vec![10.0; n]; 4];
        let mut peaks = vec![vec![10.0; n]; 4];
        times[1] = vec![5.0; n];
        times[1][maps] = 12.0;
        times[3] = vec![6.0; n];
        peaks[1] = vec![10.5; n];
        peaks[1][grow] = 14.0;
        let lines = targets(&allocators, &times, &peaks);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(
            lines[0],
            "target no workload slower than the system allocator: not met (memio's time as a \
             multiple of the system allocator's: maps 1.20x)"
        );
        // (5^7 * 12)^(1/8) = 5.58 against mimalloc's 6.
        assert_eq!(
            lines[1],
            "target geometric mean of the workloads' times at most 1.0x mimalloc's: met \
             (memio's geometric mean 0.93x mimalloc's)"
        );
        assert_eq!(
            lines[2],
            "target peak RSS at most 1.1x the system allocator's on every workload: not met \
             (memio's peak RSS as a multiple of the system allocator's: grow 1.40x)"
        );
        assert_eq!(
            lines[3],
            "target large blocks at most 1.2x the system allocator's time: met (memio's time \
             0.50x the system allocator's)"
        );
        let alone = targets(&allocators[..2], &times[..2], &peaks[..2]);
        assert!(
            alone[1].ends_with("not judged (mimalloc did not run)"),
            "{alone:?}"
        );
        times[1].pop();
        let short = targets(&allocators, &times, &peaks);
        assert_eq!(short.len(), 1);
        assert!(short[0].contains("not judged"), "{short:?}");
    }

    /// Each in-process peer gets its allocator and none of the caller's
    /// allocator settings. The settings are put in the environment of a
    /// child running only this test, as a caller would have them.
    #[test]
    fn a_peer_gets_its_allocator_and_none_of_the_callers_settings() {
        const ALONE: &str = "MEMIO_LAB_TEST_PEER_ENV";
        let name =
            "sections::malloc::tests::a_peer_gets_its_allocator_and_none_of_the_callers_settings";
        if std::env::var_os(ALONE).is_none() {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--nocapture", "--test-threads=1"])
                .env(ALONE, "1")
                .env("MEMIO_MALLOC_HUGEPAGES", "0")
                .env("MEMIO_MALLOC_CHECK", "3")
                .env("MIMALLOC_ARENA_EAGER_COMMIT", "1")
                .env("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")
                .env("MALLOC_CONF", "narenas:1")
                .env("MALLOC_ARENA_MAX", "1")
                .env("LD_PRELOAD", "")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout.contains("1 passed"),
                "the child ran no test: {stdout}"
            );
            return;
        }
        let seen = |a: &str| {
            let mut cmd = Command::new("sh");
            cmd.args([
                "-c",
                "echo \"${MEMIO_LAB_ALLOCATOR-unset} ${MEMIO_MALLOC_HUGEPAGES-unset} \
                 ${MEMIO_MALLOC_CHECK-unset} ${MIMALLOC_ARENA_EAGER_COMMIT-unset} \
                 ${GLIBC_TUNABLES-unset} ${LD_PRELOAD-unset} \
                 ${MALLOC_CONF-unset}${MALLOC_ARENA_MAX-unset}\"",
            ]);
            prepare_peer(&mut cmd, a);
            String::from_utf8(cmd.output().unwrap().stdout).unwrap()
        };
        let none = "unset unset unset unset unsetunset\n";
        assert_eq!(seen("memio"), format!("memio unset {none}"));
        assert_eq!(seen(HUGE), format!("memio 1 {none}"));
        for peer in ["system", "mimalloc", "jemalloc"] {
            assert_eq!(seen(peer), format!("{peer} unset {none}"));
        }
    }
}
