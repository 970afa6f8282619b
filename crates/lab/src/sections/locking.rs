//! Lab section `locking`: what a file lock costs, uncontended and contended.
//!
//! Three questions: how much does taking and dropping an uncontended lock
//! cost for each kind (OFD, POSIX, flock); how long does a lock take to pass
//! from one process to another when two contend for it; and how much do
//! byte-range locks on disjoint ranges gain over one whole-file lock when
//! two processes write to different parts of a file.
//!
//! The second process runs through the lab's one peer protocol
//! ([`crate::peer`]): one peer per workload and lock kind, one batch per
//! timed sample.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use memio::io::lock::{Kind, Locker, Mode, Wait};

use crate::measure::keep;
use crate::peer::{Control, Peer};
use crate::support::Scratch;
use crate::{Case, Chart, Error, Result, Run, Section, Unit};

/// The section as registered in the lab.
pub(crate) const SECTION: Section = Section {
    name: "locking",
    title: "File locks: OFD, POSIX record and flock",
    about: "Uncontended cost of an exclusive whole-file lock plus unlock for each of Linux's three \
            advisory lock kinds. Hand-off latency: two processes pass locks back and forth in a \
            ring of three (each waits, blocked in the kernel, for a lock the other holds; every \
            unlock wakes the other process), the time from one process's unlock to the other's \
            return from lock. Turn-taking on one lock: both processes loop lock, check a turn \
            counter in the file, bump it if it is their turn, unlock; the time per turn shows how \
            unfair a contended lock is. Two writers: two processes each do 64-byte pwrites into \
            their own half of a file, under one whole-file lock or a lock on their own range. \
            Answers: which kind is cheapest, what contention costs, and what range locks buy.",
    reference: OFD,
    chart: Chart::Bars,
    run,
    peer: Some(peer),
    verdict: None,
};

const OFD: &str = "OFD";
const UNCONTENDED: &str = "uncontended lock+unlock";
const HANDOFF: &str = "hand-off between 2 processes";
const TURNS: &str = "turn-taking on one lock, 2 processes";
/// First byte of the three one-byte locks of the hand-off ring.
const RING_BASE: u64 = 16;
const WRITERS: &str = "2 writers, 64 B pwrite each";
/// Each writer's half of the file.
const HALF: u64 = 4096;
const RECORD: usize = 64;

fn mechanism(kind: Kind) -> &'static str {
    match kind {
        Kind::Ofd => OFD,
        Kind::Posix => "POSIX",
        Kind::Flock => "flock",
    }
}

fn open(path: &Path) -> Result<File> {
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path.display(), &e))
}

fn lock_err(path: &Path) -> impl Fn(memio::io::Error) -> Error + '_ {
    move |e| Error::new(path.display(), e)
}

fn run(run: &mut Run<'_>) -> Result<()> {
    let scratch = Scratch::path_for("locking");
    let path = scratch.path().to_owned();
    let file = open(&path)?;
    file.set_len(2 * HALF)
        .map_err(|e| Error::io(path.display(), &e))?;
    run.plan(3 + 3 + 3 + 5);

    let uncontended = uncontended(run, &file, &path)?;
    let handoff = handoffs(run, &scratch, &file)?;
    let turn_vs_handoff = turn_taking(run, &file, &path, &handoff)?;
    let writers = writers(run, &file, &path)?;

    notes(run, &uncontended, &handoff, &writers);
    run.note(format!(
        "a turn on one contended lock took this many times a ring hand-off: {}. Advisory locks \
         are not handed to a waiter: the process whose turn it is not re-takes the lock in a \
         loop, and the woken waiter may find it taken again; on an idle machine that can last \
         until the looper is preempted (milliseconds), on a busy one the looper is preempted \
         sooner",
        turn_vs_handoff.join(", ")
    ));
    Ok(())
}

/// Starts the peer for `workload` with lock `kind` on `path`, and waits
/// until it is ready.
fn start_peer(workload: &str, path: &Path, kind: Kind, range: Option<(u64, u64)>) -> Result<Peer> {
    let mut args = vec![
        workload.to_owned(),
        kind.name().to_owned(),
        path.to_string_lossy().into_owned(),
    ];
    if let Some((start, len)) = range {
        args.push(format!("{start}:{len}"));
    }
    let mut peer = Peer::start(mechanism(kind), "locking", &args)?;
    peer.ready()?;
    Ok(peer)
}

/// The uncontended lock+unlock rows; returns each kind's median.
fn uncontended(run: &mut Run<'_>, file: &File, path: &Path) -> Result<Vec<(Kind, f64)>> {
    let mut uncontended = Vec::new();
    for kind in Kind::ALL {
        let locker = Locker::new(&file).kind(kind);
        drop(
            locker
                .lock(Mode::Exclusive, Wait::NonBlock)
                .map_err(lock_err(path))?,
        );
        let ns = run.latency(Case::new(mechanism(kind), UNCONTENDED), Unit::NS, || {
            keep(locker.lock(Mode::Exclusive, Wait::NonBlock).is_ok());
        });
        uncontended.push((kind, ns));
    }
    Ok(uncontended)
}

/// The turn-taking rows; returns how many hand-offs a turn took, per kind.
fn turn_taking(
    run: &mut Run<'_>,
    file: &File,
    path: &Path,
    handoff: &[(Kind, f64)],
) -> Result<Vec<String>> {
    let mut turn_vs_handoff = Vec::new();
    for kind in Kind::ALL {
        let mut peer = start_peer("turns", path, kind, None)?;
        let us = run.batch_latency(Case::new(mechanism(kind), TURNS), Unit::US, |n| {
            take_turns(file, path, kind, &mut peer, n).map_err(|e| peer.failed(e))
        })?;
        peer.finish()?;
        if let Some((_, h)) = handoff.iter().find(|(k, _)| *k == kind) {
            turn_vs_handoff.push(format!("{} {:.1}x", mechanism(kind), us / h));
        }
    }
    Ok(turn_vs_handoff)
}

/// The two-writer rows: whole-file locks and range locks.
fn writers(run: &mut Run<'_>, file: &File, path: &Path) -> Result<Vec<(Kind, bool, f64)>> {
    let mut writers = Vec::new();
    for (kind, ranges) in [
        (Kind::Ofd, false),
        (Kind::Posix, false),
        (Kind::Flock, false),
        (Kind::Ofd, true),
        (Kind::Posix, true),
    ] {
        let name = if ranges {
            format!("{} ranges", mechanism(kind))
        } else {
            mechanism(kind).to_owned()
        };
        // The peer writes the second half, this process the first.
        let mut peer = start_peer("write", path, kind, ranges.then_some((HALF, HALF)))?;
        let locker = if ranges {
            Locker::new(file).kind(kind).range(0, HALF)
        } else {
            Locker::new(file).kind(kind)
        };
        let ns = run.batch_latency(Case::new(name, WRITERS), Unit::NS, |n| {
            // n writes in all, split between the two writers.
            let each = n.div_ceil(2);
            peer.announce(each)?;
            let t0 = Instant::now();
            write_records(file, &locker, 0, each)
                .map_err(|e| peer.failed(Error::new(path.display(), e)))?;
            peer.done()?;
            Ok(t0.elapsed())
        })?;
        peer.finish()?;
        writers.push((kind, ranges, ns));
    }
    Ok(writers)
}

/// The ring hand-off rows, one per kind; returns each kind's median.
fn handoffs(run: &mut Run<'_>, scratch: &Scratch, file: &File) -> Result<Vec<(Kind, f64)>> {
    let path = scratch.path();
    let mut handoff = Vec::new();
    let ring_files: Vec<Scratch> = (0..3)
        .map(|i| scratch.with_extension(&format!("ring{i}")))
        .collect();
    let ring_opened = ring_files
        .iter()
        .map(|s| open(s.path()))
        .collect::<Result<Vec<File>>>()?;
    for kind in Kind::ALL {
        let mut peer = start_peer("ring", path, kind, None)?;
        let ring = Ring::new(file, &ring_opened, kind);
        let us = run.batch_latency(Case::new(mechanism(kind), HANDOFF), Unit::US, |n| {
            let rounds = n.div_ceil(2);
            ring.hold_start()
                .map_err(|e| Error::new(path.display(), e))?;
            // The peer holds lock 2 before it says the batch started.
            peer.announce(rounds)?;
            let t0 = Instant::now();
            ring.play(1, rounds)
                .map_err(|e| peer.failed(Error::new(path.display(), e)))?;
            let took = t0.elapsed();
            peer.done()?;
            // 2 hand-offs per round; scale to n operations.
            Ok(took.mul_f64(n as f64 / (2 * rounds) as f64))
        })?;
        peer.finish()?;
        handoff.push((kind, us));
    }
    drop(ring_opened);
    drop(ring_files);

    Ok(handoff)
}

/// The section's conclusions, drawn from the medians just measured.
fn notes(
    run: &mut Run<'_>,
    uncontended: &[(Kind, f64)],
    handoff: &[(Kind, f64)],
    writers: &[(Kind, bool, f64)],
) {
    let fastest = uncontended
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|&(k, _)| mechanism(k));
    if let Some(k) = fastest {
        run.note(format!("cheapest uncontended lock+unlock: {k}"));
    }
    for (kind, us) in handoff {
        if let Some((_, ns)) = uncontended.iter().find(|(k, _)| k == kind) {
            run.note(format!(
                "{}: a hand-off costs {:.0}x an uncontended lock+unlock ({us:.1} µs vs {ns:.0} ns)",
                mechanism(*kind),
                us * 1000.0 / ns
            ));
        }
    }
    for kind in [Kind::Ofd, Kind::Posix] {
        let whole = writers.iter().find(|w| w.0 == kind && !w.1).map(|w| w.2);
        let ranged = writers.iter().find(|w| w.0 == kind && w.1).map(|w| w.2);
        if let (Some(w), Some(r)) = (whole, ranged) {
            run.note(format!(
                "{}: disjoint range locks take {:.2}x the time per write of one whole-file lock \
                 ({r:.0} vs {w:.0} ns)",
                mechanism(kind),
                r / w
            ));
        }
    }
    run.note(
        "with two writers a buffered pwrite also takes the inode's write lock, so writes to \
         disjoint ranges still serialise in the kernel, and a whole-file lock tends to stay with \
         one writer for many writes while the other sleeps (no fairness): it costs the sleeper \
         latency, not the pair throughput, so range locks gain little here",
    );
    run.note("reference: OFD, the kind memio-io uses unless told otherwise");
}

/// Plays the even turns against the peer's odd ones until the counter at
/// offset 0 reaches `n`; every increment moves the lock across processes.
fn take_turns(file: &File, path: &Path, kind: Kind, peer: &mut Peer, n: u64) -> Result<Duration> {
    file.write_all_at(&0u64.to_le_bytes(), 0)
        .map_err(|e| Error::io(path.display(), &e))?;
    let locker = Locker::new(file).kind(kind);
    peer.announce(n)?;
    let t0 = Instant::now();
    turns(file, &locker, n, 0).map_err(|e| Error::new(path.display(), e))?;
    let took = t0.elapsed();
    peer.done()?;
    let end = read_counter(file).map_err(|e| Error::io(path.display(), &e))?;
    if end != n {
        return Err(Error::new(
            "locking",
            format!("turn counter ended at {end}, expected {n}: the lock did not exclude"),
        ));
    }
    Ok(took)
}

fn read_counter(file: &File) -> std::io::Result<u64> {
    let mut buf = [0u8; 8];
    file.read_exact_at(&mut buf, 0)?;
    Ok(u64::from_le_bytes(buf))
}

/// Takes the turns whose parity is `parity` until the counter reaches `n`.
fn turns(file: &File, locker: &Locker<'_>, n: u64, parity: u64) -> std::result::Result<(), String> {
    loop {
        let guard = locker
            .lock(Mode::Exclusive, Wait::Block)
            .map_err(|e| e.to_string())?;
        let c = read_counter(file).map_err(|e| e.to_string())?;
        if c >= n {
            return Ok(());
        }
        if c % 2 == parity {
            file.write_all_at(&(c + 1).to_le_bytes(), 0)
                .map_err(|e| e.to_string())?;
        }
        drop(guard);
    }
}

/// Three locks passed around a ring by two processes: three one-byte
/// ranges of the scratch file for OFD and POSIX, three files for flock.
struct Ring<'f> {
    lockers: [Locker<'f>; 3],
    held: std::cell::RefCell<[Option<memio::io::lock::LockGuard<'f>>; 3]>,
}

impl<'f> Ring<'f> {
    fn new(file: &'f File, ring_files: &'f [File], kind: Kind) -> Self {
        let at = |i: usize| -> Locker<'f> {
            if kind == Kind::Flock {
                Locker::new(&ring_files[i]).kind(kind)
            } else {
                Locker::new(file).kind(kind).range(RING_BASE + i as u64, 1)
            }
        };
        Self {
            lockers: [at(0), at(1), at(2)],
            held: std::cell::RefCell::new([None, None, None]),
        }
    }

    fn take(&self, i: usize) -> std::result::Result<(), String> {
        // POSIX deadlock detection may, in a race with a wake-up, see the
        // other process as still waiting; the ring cannot deadlock, so try
        // again.
        for _ in 0..1000 {
            match self.lockers[i].lock(Mode::Exclusive, Wait::Block) {
                Ok(g) => {
                    self.held.borrow_mut()[i] = Some(g);
                    return Ok(());
                }
                Err(memio::io::Error::Deadlock) => std::thread::yield_now(),
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("the kernel kept reporting a deadlock".to_owned())
    }

    fn give(&self, i: usize) {
        self.held.borrow_mut()[i] = None;
    }

    /// The first player's starting position: holding locks 0 and 1.
    fn hold_start(&self) -> std::result::Result<(), String> {
        self.take(0)?;
        self.take(1)
    }

    /// Plays `rounds` rounds as player `who`, then lets go of everything.
    /// Player 1 starts holding locks 0 and 1 ([`Ring::hold_start`]), player
    /// 2 holding lock 2 and waiting for lock 1. Each round: give lock
    /// (who - k) mod 3, wait for (who + 1 - k) mod 3.
    fn play(&self, who: usize, rounds: u64) -> std::result::Result<(), String> {
        if who == 2 {
            self.take(1)?;
        }
        for k in 0..rounds {
            let k = usize::try_from(k % 3).unwrap_or(0);
            self.give((who + 3 - k) % 3);
            self.take((who + 4 - k) % 3)?;
        }
        *self.held.borrow_mut() = [None, None, None];
        Ok(())
    }
}

/// `count` locked 64-byte writes into the half starting at `base`.
fn write_records(
    file: &File,
    locker: &Locker<'_>,
    base: u64,
    count: u64,
) -> std::result::Result<(), String> {
    let record = [0x5au8; RECORD];
    let slots = HALF / RECORD as u64;
    for i in 0..count {
        let _guard = locker
            .lock(Mode::Exclusive, Wait::Block)
            .map_err(|e| e.to_string())?;
        file.write_all_at(&record, base + (i % slots) * RECORD as u64)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The peer's side, run as `lab --peer locking WORKLOAD KIND FILE
/// [START:LEN]`: one batch of `n` is `n` ring rounds as player 2
/// (`ring`), the odd turns up to `n` (`turns`), or `n` locked writes into
/// the range, or the second half (`write`).
fn peer(args: &[String], control: &mut Control) -> io::Result<()> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad peer arguments: {}", args.join(" ")),
        )
    };
    let [workload, kind, path, rest @ ..] = args else {
        return Err(bad());
    };
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.name() == kind)
        .ok_or_else(bad)?;
    let range = match rest.first() {
        Some(r) => {
            let (s, l) = r.split_once(':').ok_or_else(bad)?;
            Some((s.parse().map_err(|_| bad())?, l.parse().map_err(|_| bad())?))
        }
        None => None,
    };
    let path = Path::new(path);
    let file = open(path).map_err(io::Error::other)?;
    let (locker, base) = match range {
        Some((start, len)) => (Locker::new(&file).kind(kind).range(start, len), start),
        None => (Locker::new(&file).kind(kind), HALF),
    };
    // The lab created the ring files; they exist while it runs.
    let ring_files = if workload == "ring" {
        (0..3)
            .map(|i| open(&path.with_extension(format!("ring{i}"))))
            .collect::<Result<Vec<File>>>()
            .map_err(io::Error::other)?
    } else {
        Vec::new()
    };
    control.ready()?;
    while let Some(n) = control.next_batch()? {
        let done = match workload.as_str() {
            "ring" => {
                let ring = Ring::new(&file, &ring_files, kind);
                ring.take(2).map_err(io::Error::other)?;
                control.started()?;
                ring.play(2, n)
            }
            "turns" => {
                control.started()?;
                turns(&file, &Locker::new(&file).kind(kind), n, 1)
            }
            "write" => {
                control.started()?;
                write_records(&file, &locker, base, n)
            }
            _ => return Err(bad()),
        };
        done.map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
        control.done()?;
    }
    Ok(())
}
