//! Lab section `kv`: memio-kv against `SQLite` (WAL), LMDB and redb on the
//! same keys and values, in the same run.
//!
//! Every store gets the same data (16-byte keys, 100-byte values, loaded
//! in key order in durable commits of 1,000 keys), then: random gets (each
//! a fresh read of the latest commit), a full ordered scan, durable
//! single-key commits, durable commits of 1,000 random keys, and three
//! reader processes doing random gets alone
//! and then while a fourth process commits durable 100-key batches. The
//! file size after the load is compared with the raw data size.
//!
//! Each store's engine sits behind the small [`Engine`] trait; the peers
//! are built only with their memio-lab features (`sqlite`, `lmdb`, `redb`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memio::kv::{Batch, Options as KvOptions, Store};
use rustix::process::Pid;
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

use crate::measure::keep;
use crate::peer::{Control, Peer};
use crate::support::{Scratch, XorShift as Rng};
use crate::{Case, Chart, Error, Result, Run, Section, Unit, limit};

/// The section as registered in the lab.
pub(crate) const SECTION: Section = Section {
    name: "kv",
    title: "Embedded key-value stores: memio-kv, SQLite (WAL), LMDB, redb",
    about: "Same data for every store: 16-byte keys and 100-byte values, loaded in key order in \
            durable commits of 1,000 keys (each commit on disk before it returns: fdatasync, \
            SQLite WAL with synchronous=FULL, LMDB and redb defaults). Random get: one key at \
            random per call, each call reading the latest commit. Ordered scan: every pair in key \
            order, each byte of it read (a checksum, which must match across the stores), through \
            the store's scan that lends the bytes where it has one (LMDB through heed, whose \
            `Env::open` is unsafe for the same reason; memio-kv through `scan_mapped`, also \
            unsafe, and once more through its safe `scan`, which copies every byte out). Durable \
            single-key commits: one put per commit. Random batches: durable commits of 1,000 \
            updates of keys drawn at random. Readers: three processes doing random gets (rounds of \
            at least 150 ms, 500 ms in a full run), alone and while a fourth process commits \
            durable 100-key batches of updates, as fast as it can and then paced to 100 commits/s \
            (the same work for every store); for memio-kv also beside a process making only its \
            flat-out writer's disk writes, at its pace, with no store (what that many durable \
            writes cost the readers on this machine); and, on a machine of two CPUs or more, once \
            more flat out with the writer pinned to a CPU of its own and the readers to the others \
            (what the store itself costs its readers when they need not take turns with the \
            writer on a CPU; rows give the readers alone and beside the writer there; a note \
            says how much work those two CPUs do at once, which is less than twice one's where \
            they share a core). File size: bytes on disk after the load over raw \
            key+value bytes. Answers: which store reads, scans and commits fastest here, and what \
            a concurrent writer costs readers.",
    reference: MEMIO,
    chart: Chart::Bars,
    run,
    peer: Some(peer),
    verdict: None,
};

const MEMIO: &str = "memio-kv";
const SQLITE: &str = "SQLite WAL";
const LMDB: &str = "LMDB";
const REDB: &str = "redb";
const KEY: usize = 16;
const VALUE: usize = 100;
const BATCH: usize = 1000;
const WRITER_BATCH: usize = 100;
const READERS: usize = 3;
/// The bytes of one of memio-kv's 100-key commits (`FORMAT.md`: a 32-byte
/// group header, then per pair a 16-byte record header, key and value).
const GROUP_BYTES: usize = 32 + WRITER_BATCH * (16 + KEY + VALUE);
/// The scratch file the bare-writes control writes in, round and round.
const BARE_FILE: usize = 64 << 20;
/// The writer's pace in the paced reader rounds: below what every store
/// here sustains, so that each store's readers follow the same work.
const PACED_COMMITS: u64 = 100;

const KEYS_PER_S: Unit = Unit {
    symbol: "keys/s",
    higher_is_better: true,
    per_second: 0.0,
};
const COMMITS_PER_S: Unit = Unit {
    symbol: "commits/s",
    higher_is_better: true,
    per_second: 0.0,
};
const MKEYS_PER_S: Unit = Unit {
    symbol: "M keys/s",
    higher_is_better: true,
    per_second: 0.0,
};
const MGETS_PER_S: Unit = Unit {
    symbol: "M gets/s",
    higher_is_better: true,
    per_second: 0.0,
};

/// `key:` and `i` in 12 decimal digits (the last 12 if it has more),
/// written in place: `format!` cost each operation more than some of the
/// stores' gets take.
fn key(mut i: u64) -> [u8; KEY] {
    let mut k = *b"key:000000000000";
    for d in k[4..].iter_mut().rev() {
        *d = b'0' + (i % 10) as u8;
        i /= 10;
    }
    k
}

fn value(i: u64, round: u64) -> [u8; VALUE] {
    let mut v = [0u8; VALUE];
    let mut rng = Rng::new(i ^ (round << 40));
    for chunk in v.chunks_mut(8) {
        let w = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
    v
}

/// One store, as the section drives it.
trait Engine {
    /// Commits `pairs` in one durable transaction.
    fn commit(&mut self, pairs: &[([u8; KEY], [u8; VALUE])]) -> io::Result<()>;
    /// Reads one key (latest commit); the value's length, 0 if missing.
    fn get(&mut self, key: &[u8]) -> io::Result<usize>;
    /// Reads every pair in key order, every byte of it, as the store lends
    /// them when it can.
    fn scan(&mut self) -> io::Result<Tally>;
    /// The same through a scan that copies the bytes out, for a store that
    /// has both (memio-kv's safe `scan` beside its lending `scan_mapped`).
    fn scan_copied(&mut self) -> Option<io::Result<Tally>> {
        None
    }
}

/// What a scan read: how many pairs, and a checksum of every key and
/// value byte in the order read (the same for every store holding the
/// same pairs, so the section checks the stores against each other).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    pairs: u64,
    sum: u64,
}

impl Tally {
    fn add(&mut self, key: &[u8], value: &[u8]) {
        let mut s = 0u64;
        for part in [key, value] {
            let mut words = part.chunks_exact(8);
            for w in &mut words {
                s = s.wrapping_add(u64::from_le_bytes(w.try_into().unwrap_or_default()));
            }
            for &b in words.remainder() {
                s = s.wrapping_add(u64::from(b));
            }
        }
        self.sum = self.sum.rotate_left(7) ^ s;
        self.pairs += 1;
    }
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

struct Memio(Store);

impl Engine for Memio {
    fn commit(&mut self, pairs: &[([u8; KEY], [u8; VALUE])]) -> io::Result<()> {
        let mut b = Batch::new();
        for (k, v) in pairs {
            b.put(k.to_vec(), v.to_vec());
        }
        self.0.write(&b).map_err(other)
    }
    fn get(&mut self, key: &[u8]) -> io::Result<usize> {
        Ok(self.0.get(key).map_err(other)?.map_or(0, |v| v.len()))
    }
    #[allow(unsafe_code, reason = "scan_mapped lends the mapping's bytes")]
    fn scan(&mut self) -> io::Result<Tally> {
        let mut t = Tally::default();
        let snapshot = self.0.snapshot().map_err(other)?;
        // SAFETY: the store is the section's own scratch file: only
        // memio-kv writes it, and nothing truncates it.
        unsafe {
            snapshot.scan_mapped(.., |k, v| {
                t.add(k, v);
                std::ops::ControlFlow::Continue(())
            })
        }
        .map_err(other)?;
        Ok(t)
    }
    fn scan_copied(&mut self) -> Option<io::Result<Tally>> {
        let mut t = Tally::default();
        let scanned = self.0.snapshot().and_then(|s| {
            s.scan(.., |k, v| {
                t.add(k, v);
                std::ops::ControlFlow::Continue(())
            })
        });
        Some(scanned.map(|()| t).map_err(other))
    }
}

#[cfg(feature = "sqlite")]
struct Sqlite(rusqlite::Connection);

#[cfg(feature = "sqlite")]
impl Sqlite {
    fn open(dir: &Path) -> io::Result<Self> {
        let c = rusqlite::Connection::open(dir.join("kv.sqlite")).map_err(other)?;
        c.busy_timeout(Duration::from_secs(20)).map_err(other)?;
        c.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .map_err(other)?;
        c.execute_batch(
            "PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;",
        )
        .map_err(other)?;
        Ok(Self(c))
    }
}

#[cfg(feature = "sqlite")]
impl Engine for Sqlite {
    fn commit(&mut self, pairs: &[([u8; KEY], [u8; VALUE])]) -> io::Result<()> {
        let tx = self.0.transaction().map_err(other)?;
        {
            let mut st = tx
                .prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")
                .map_err(other)?;
            for (k, v) in pairs {
                st.execute((&k[..], &v[..])).map_err(other)?;
            }
        }
        tx.commit().map_err(other)
    }
    fn get(&mut self, key: &[u8]) -> io::Result<usize> {
        let mut st = self
            .0
            .prepare_cached("SELECT v FROM kv WHERE k = ?1")
            .map_err(other)?;
        let mut rows = st.query([key]).map_err(other)?;
        match rows.next().map_err(other)? {
            Some(row) => Ok(row
                .get_ref(0)
                .map_err(other)?
                .as_blob()
                .map_err(other)?
                .len()),
            None => Ok(0),
        }
    }
    fn scan(&mut self) -> io::Result<Tally> {
        let mut st = self
            .0
            .prepare_cached("SELECT k, v FROM kv ORDER BY k")
            .map_err(other)?;
        let mut rows = st.query([]).map_err(other)?;
        let mut t = Tally::default();
        while let Some(row) = rows.next().map_err(other)? {
            let blob = |i| -> io::Result<&[u8]> {
                row.get_ref(i).map_err(other)?.as_blob().map_err(other)
            };
            t.add(blob(0)?, blob(1)?);
        }
        Ok(t)
    }
}

#[cfg(feature = "lmdb")]
struct Lmdb {
    env: heed::Env,
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
}

#[cfg(feature = "lmdb")]
impl Lmdb {
    #[allow(
        unsafe_code,
        reason = "heed's Env::open is unsafe: LMDB must not open one file twice in a process"
    )]
    fn open(dir: &Path) -> io::Result<Self> {
        let dir = dir.join("lmdb");
        std::fs::create_dir_all(&dir)?;
        // SAFETY: each process of this section opens the LMDB folder once
        // (one `Lmdb` per process), as heed requires, and nothing else
        // truncates or rewrites its files while open.
        let env = unsafe {
            heed::EnvOpenOptions::new()
                .map_size(8 << 30)
                .max_dbs(1)
                .open(&dir)
        }
        .map_err(other)?;
        let mut w = env.write_txn().map_err(other)?;
        let db = env.create_database(&mut w, None).map_err(other)?;
        w.commit().map_err(other)?;
        Ok(Self { env, db })
    }
}

#[cfg(feature = "lmdb")]
impl Engine for Lmdb {
    fn commit(&mut self, pairs: &[([u8; KEY], [u8; VALUE])]) -> io::Result<()> {
        let mut w = self.env.write_txn().map_err(other)?;
        for (k, v) in pairs {
            self.db.put(&mut w, &k[..], &v[..]).map_err(other)?;
        }
        w.commit().map_err(other)
    }
    fn get(&mut self, key: &[u8]) -> io::Result<usize> {
        let r = self.env.read_txn().map_err(other)?;
        Ok(self.db.get(&r, key).map_err(other)?.map_or(0, <[u8]>::len))
    }
    fn scan(&mut self) -> io::Result<Tally> {
        let r = self.env.read_txn().map_err(other)?;
        let mut t = Tally::default();
        for item in self.db.iter(&r).map_err(other)? {
            let (k, v) = item.map_err(other)?;
            t.add(k, v);
        }
        Ok(t)
    }
}

#[cfg(feature = "redb")]
const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("kv");

#[cfg(feature = "redb")]
struct Redb(redb::Database);

#[cfg(feature = "redb")]
impl Engine for Redb {
    fn commit(&mut self, pairs: &[([u8; KEY], [u8; VALUE])]) -> io::Result<()> {
        let w = self.0.begin_write().map_err(other)?;
        {
            let mut t = w.open_table(REDB_TABLE).map_err(other)?;
            for (k, v) in pairs {
                t.insert(&k[..], &v[..]).map_err(other)?;
            }
        }
        w.commit().map_err(other)
    }
    fn get(&mut self, key: &[u8]) -> io::Result<usize> {
        use redb::{ReadableDatabase, ReadableTable};
        let r = self.0.begin_read().map_err(other)?;
        let t = r.open_table(REDB_TABLE).map_err(other)?;
        Ok(t.get(key).map_err(other)?.map_or(0, |v| v.value().len()))
    }
    fn scan(&mut self) -> io::Result<Tally> {
        use redb::{ReadableDatabase, ReadableTable};
        let txn = self.0.begin_read().map_err(other)?;
        let table = txn.open_table(REDB_TABLE).map_err(other)?;
        let mut t = Tally::default();
        for item in table.iter().map_err(other)? {
            let (k, v) = item.map_err(other)?;
            t.add(k.value(), v.value());
        }
        Ok(t)
    }
}

/// Opens engine `name` on its files in `dir`.
fn open(name: &str, dir: &Path) -> io::Result<Box<dyn Engine>> {
    match name {
        MEMIO => Ok(Box::new(Memio(
            Store::open(dir.join("kv.memio"), KvOptions::new()).map_err(other)?,
        ))),
        #[cfg(feature = "sqlite")]
        SQLITE => Ok(Box::new(Sqlite::open(dir)?)),
        #[cfg(feature = "lmdb")]
        LMDB => Ok(Box::new(Lmdb::open(dir)?)),
        #[cfg(feature = "redb")]
        REDB => Ok(Box::new(Redb(
            redb::Database::create(dir.join("kv.redb")).map_err(other)?,
        ))),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("no engine '{other}' in this build"),
        )),
    }
}

/// Bytes the engine's files take on disk (allocated blocks).
fn disk_bytes(dir: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(p) else {
            return 0;
        };
        if meta.is_dir() {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| walk(&e.path()))
                .sum()
        } else {
            meta.len().min(meta.blocks() * 512).max(meta.len())
        }
    }
    walk(dir)
}

/// The workload sizes of this run.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    keys: u64,
    single_commits: u64,
    random_batches: u64,
    /// How long one round of the reader processes lasts, at least.
    reader_round: Duration,
}

fn sizes(run: &Run<'_>) -> Sizes {
    if run.config().full {
        Sizes {
            keys: 1_000_000,
            single_commits: 500,
            random_batches: 40,
            reader_round: Duration::from_millis(500),
        }
    } else {
        Sizes {
            keys: 50_000,
            single_commits: 100,
            random_batches: 15,
            reader_round: Duration::from_millis(150),
        }
    }
}

fn err(name: &str) -> impl Fn(io::Error) -> Error + '_ {
    move |e| Error::io(name, &e)
}

fn run(run: &mut Run<'_>) -> Result<()> {
    let sizes = sizes(run);
    let mut engines = vec![MEMIO];
    if run.heavy_peer("sqlite") {
        engines.push(SQLITE);
    }
    if run.heavy_peer("lmdb") {
        engines.push(LMDB);
    }
    if run.heavy_peer("redb") {
        engines.push(REDB);
    }
    // Two rows more for each store with readers when the pinned rounds run.
    let cpus = split_cpus();
    let pinned_rows = if cpus.is_some() { 2 } else { 0 };
    let with_readers = engines.iter().filter(|&&e| e != REDB).count() as u64;
    run.plan(engines.len() as u64 * 9 + with_readers * pinned_rows);
    let mut stores: Vec<Open> = Vec::new();
    let mut dirs = Vec::new();
    let mut first_read = Tally::default();
    for &name in &engines {
        let dir = Scratch::dir("kv")?;
        let (engine, read) = measure_engine(run, name, dir.path(), sizes)?;
        // Every store holds the same pairs: its scan must read the same.
        match stores.first() {
            Some(first) if read != first_read => {
                return Err(Error::new(
                    name,
                    format!(
                        "its scan read other pairs than {}'s (checksum {:#x} against {:#x})",
                        first.name, read.sum, first_read.sum
                    ),
                ));
            }
            _ => first_read = read,
        }
        stores.push(Open {
            name,
            engine,
            rng: Rng::new(7),
        });
        dirs.push((name, dir));
    }
    let (floor, rates) = durable_commits(run, &mut stores, sizes)?;
    // Before the readers' rounds, on the CPUs the pinned rounds use.
    if let Some(cpus) = &cpus
        && let Some(x) = pair_speedup(cpus.first_reader, cpus.writer_cpu)
    {
        run.set_limit(limit::CPU_PAIR_SPEEDUP, x);
        let shared = if x < 1.5 {
            ": they share a core (or the host's time), so whatever keeps the writer's CPU busy, \
             the writer or the kernel's I/O path, slows the readers' CPU too, pinned or not"
        } else {
            ""
        };
        run.note(format!(
            "CPUs {} and {}, busy at once, do {x:.2}x the work of one alone{shared}",
            cpus.first_reader, cpus.writer_cpu
        ));
    }
    let commit_rates: Vec<_> = engines.iter().copied().zip(rates).collect();
    // Closed before other processes open them (redb locks its file).
    drop(stores);
    for (name, dir) in &dirs {
        if *name == REDB {
            // redb takes an exclusive lock on its file: one process at a time.
            run.note("redb opens a file in one process at a time, so it has no multi-process reader rows");
        } else {
            measure_readers(run, name, dir.path(), sizes, cpus.as_ref())?;
        }
    }
    let floor_rate = 1.0 / floor.as_secs_f64();
    run.note(format!(
        "one fdatasync of an overwritten 4 KiB block takes {:.0} µs here: at most {:.0} durable commits/s; {}",
        floor.as_secs_f64() * 1e6,
        floor_rate,
        commit_rates
            .iter()
            .map(|(n, r)| format!("{n} reaches {:.0}% of it", r / floor_rate * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}

/// The time of an `fdatasync` after overwriting a block inside a file
/// whose blocks are all written: the floor of a durable commit.
struct Floor {
    file: File,
    scratch: Scratch,
    times: Vec<Duration>,
}

impl Floor {
    fn new() -> Result<Self> {
        let scratch = Scratch::path_for("kv-sync");
        let path = scratch.path();
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io(path.display(), &e))?;
        let io = |e: io::Error| Error::io(path.display(), &e);
        file.write_all_at(&vec![0u8; 1 << 20], 0).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Self {
            file,
            scratch,
            times: Vec::new(),
        })
    }

    /// Times `n` more overwrites, each followed by `fdatasync`.
    fn sample(&mut self, n: usize) -> Result<()> {
        let path = self.scratch.path();
        let io = |e: io::Error| Error::io(path.display(), &e);
        for _ in 0..n {
            let i = self.times.len() as u64;
            let t = Instant::now();
            self.file
                .write_all_at(&i.to_le_bytes(), (i % 200) * 4096)
                .map_err(io)?;
            self.file.sync_data().map_err(io)?;
            self.times.push(t.elapsed());
        }
        Ok(())
    }

    fn median(&mut self) -> Duration {
        self.times.sort();
        self.times
            .get(self.times.len() / 2)
            .copied()
            .unwrap_or_default()
    }
}

/// Load, file size, random gets and scan; returns the store, open, and
/// what its scan read.
fn measure_engine(
    run: &mut Run<'_>,
    name: &str,
    dir: &Path,
    sizes: Sizes,
) -> Result<(Box<dyn Engine>, Tally)> {
    let mut e = open(name, dir).map_err(err(name))?;
    // Load in key order, 1,000 keys per durable commit; every commit timed.
    let mut batch_times = Vec::new();
    let mut pairs = Vec::with_capacity(BATCH);
    let mut i = 0;
    while i < sizes.keys {
        pairs.clear();
        let end = (i + BATCH as u64).min(sizes.keys);
        pairs.extend((i..end).map(|j| (key(j), value(j, 0))));
        let t = Instant::now();
        e.commit(&pairs).map_err(err(name))?;
        batch_times.push((pairs.len(), t.elapsed()));
        i = end;
    }
    let per_sample = batch_times
        .len()
        .div_ceil(run.config().timing.samples)
        .max(1);
    let samples: Vec<f64> = batch_times
        .chunks(per_sample)
        .map(|c| {
            let keys: usize = c.iter().map(|(n, _)| n).sum();
            let secs: f64 = c.iter().map(|(_, t)| t.as_secs_f64()).sum();
            keys as f64 / secs
        })
        .collect();
    run.record(
        Case::new(name, "load in key order, durable commits of 1,000 keys")
            .param("keys", sizes.keys),
        KEYS_PER_S,
        &samples,
    );
    let raw = sizes.keys * (KEY + VALUE) as u64;
    let size = disk_bytes(dir);
    run.record(
        Case::new(name, "file size after load / raw data").param("keys", sizes.keys),
        Unit::FACTOR,
        &[size as f64 / raw as f64],
    );
    // Random gets over the loaded keys.
    let mut rng = Rng::new(7);
    let mut failure = None;
    run.latency(
        Case::new(name, "random get").param("keys", sizes.keys),
        Unit::NS,
        || {
            let k = key(rng.next_u64() % sizes.keys);
            match e.get(&k) {
                Ok(n) => {
                    keep(n);
                }
                Err(x) => failure = Some(x),
            }
        },
    );
    if let Some(x) = failure.take() {
        return Err(err(name)(x));
    }
    // Ordered scans; a store with a copying scan too takes turns with it.
    let mut samples = Vec::new();
    let mut copied = Vec::new();
    let mut read = Tally::default();
    let check = |read: Tally| {
        if read.pairs == sizes.keys {
            Ok(read)
        } else {
            Err(Error::new(
                name,
                format!("scan saw {} keys, {} loaded", read.pairs, sizes.keys),
            ))
        }
    };
    for _ in 0..run.config().timing.samples.min(3) {
        let t = Instant::now();
        read = check(e.scan().map_err(err(name))?)?;
        samples.push(read.pairs as f64 / t.elapsed().as_secs_f64() / 1e6);
        let t = Instant::now();
        if let Some(other) = e.scan_copied() {
            let other = check(other.map_err(err(name))?)?;
            copied.push(other.pairs as f64 / t.elapsed().as_secs_f64() / 1e6);
            if other != read {
                return Err(Error::new(name, "its two scans read different pairs"));
            }
        }
    }
    run.record(
        Case::new(name, "ordered scan").param("keys", sizes.keys),
        MKEYS_PER_S,
        &samples,
    );
    if !copied.is_empty() {
        run.record(
            Case::new(name, "ordered scan, bytes copied out (safe scan)").param("keys", sizes.keys),
            MKEYS_PER_S,
            &copied,
        );
    }
    Ok((e, read))
}

/// A store measured side by side with the others.
struct Open {
    name: &'static str,
    engine: Box<dyn Engine>,
    rng: Rng,
}

/// Durable single-key commits and durable commits of 1,000 random keys,
/// the stores taking turns block by block with the `fdatasync` floor, so
/// that the disk's drift over the run (it is shared and its latency moves
/// by several times within minutes) falls on every store alike. Returns
/// the floor's median and each store's median single-commit rate.
fn durable_commits(
    run: &mut Run<'_>,
    stores: &mut [Open],
    sizes: Sizes,
) -> Result<(Duration, Vec<f64>)> {
    const ROUNDS: u64 = 10;
    let mut floor = Floor::new()?;
    let mut single = vec![Vec::new(); stores.len()];
    let per = (sizes.single_commits / ROUNDS).max(1);
    for round in 0..ROUNDS {
        floor.sample(4)?;
        for (o, samples) in stores.iter_mut().zip(&mut single) {
            let t = Instant::now();
            for j in 0..per {
                let k = o.rng.next_u64() % sizes.keys;
                o.engine
                    .commit(&[(key(k), value(k, round * per + j + 1))])
                    .map_err(err(o.name))?;
            }
            samples.push(per as f64 / t.elapsed().as_secs_f64());
        }
    }
    // Updates spread over the whole key range: the batch a B-tree pays
    // for in scattered pages, and a log in one append.
    let mut random = vec![Vec::new(); stores.len()];
    let mut pairs = Vec::with_capacity(BATCH);
    for round in 0..sizes.random_batches {
        for (o, samples) in stores.iter_mut().zip(&mut random) {
            pairs.clear();
            pairs.extend((0..BATCH).map(|_| {
                let k = o.rng.next_u64() % sizes.keys;
                (key(k), value(k, 1_000_000 + round))
            }));
            let t = Instant::now();
            o.engine.commit(&pairs).map_err(err(o.name))?;
            samples.push(BATCH as f64 / t.elapsed().as_secs_f64());
        }
    }
    let mut rates = Vec::new();
    for (o, samples) in stores.iter().zip(&single) {
        rates.push(
            run.record(
                Case::new(o.name, "durable single-key commits"),
                COMMITS_PER_S,
                samples,
            )
            .map_or(f64::NAN, |r| r.median),
        );
    }
    for (o, samples) in stores.iter().zip(&random) {
        run.record(
            Case::new(o.name, "durable commits of 1,000 random keys").param("keys", sizes.keys),
            KEYS_PER_S,
            samples,
        );
    }
    Ok((floor.median(), rates))
}

/// Three reader processes alone, then with a writer process.
fn measure_readers(
    run: &mut Run<'_>,
    name: &str,
    dir: &Path,
    sizes: Sizes,
    cpus: Option<&Cpus>,
) -> Result<()> {
    let stop = dir.join("stop");
    let args = |role: &str| {
        vec![
            role.to_owned(),
            name.to_owned(),
            dir.display().to_string(),
            sizes.keys.to_string(),
            stop.display().to_string(),
        ]
    };
    let mut readers = (0..READERS)
        .map(|_| Peer::start(&format!("{name} reader"), "kv", &args("reader")))
        .collect::<Result<Vec<_>>>()?;
    for r in &mut readers {
        r.ready()?;
    }
    // Rounds long enough that the scheduler's slices (a few ms) even out
    // over the readers: sized from a first, short round.
    let probe = 10_000;
    let per_reader_per_s = reader_round(&mut readers, probe)? * 1e6 / READERS as f64;
    let per = gets_in(per_reader_per_s, sizes.reader_round).max(probe);
    let mut writer = Peer::start(&format!("{name} writer"), "kv", &args("writer"))?;
    writer.ready()?;
    let samples = run.config().timing.samples;
    let mut rounds = Rounds {
        readers: &mut readers,
        per,
        stop: &stop,
        samples,
    };
    let flat_out = rounds.beside(&mut writer, 0)?;
    let paced = rounds.beside(&mut writer, PACED_COMMITS)?;
    // The control: the same readers beside a process that makes only the
    // disk writes of memio-kv's flat-out writer (one durable write of a
    // 100-key group's bytes per commit, at its pace), no store at all.
    // What the readers lose there is the machine's cost of that many
    // durable writes, which any store committing that often pays.
    let pace = pace_of(median_of(&column(&flat_out, |r| r.commits)));
    if name == MEMIO && pace.is_none() {
        run.note(format!(
            "{name}: no bare-writes control: the flat-out writer's commit rate is unknown"
        ));
    }
    let bare = if let (MEMIO, Some(pace)) = (name, pace) {
        let mut disk = Peer::start(&format!("{name} bare writes"), "kv", &args("disk"))?;
        disk.ready()?;
        let out = rounds.beside(&mut disk, pace)?;
        disk.finish()?;
        Some(out)
    } else {
        None
    };
    // Last, the writer on a CPU of its own, the readers on the others.
    // A pin refused (a CPU taken offline meanwhile, a sandbox without
    // sched_setaffinity) costs these rows only.
    let pinned = match cpus {
        Some(cpus) => {
            let pinned = rounds
                .readers
                .iter()
                .try_for_each(|r| pin(r, &cpus.readers, &cpus.reader_list))
                .and_then(|()| pin(&writer, &cpus.writer, &cpus.writer_cpu.to_string()));
            match pinned {
                Ok(()) => Some((rounds.beside(&mut writer, 0)?, cpus)),
                Err(e) => {
                    run.note(format!(
                        "{name}: no rounds with the writer on a CPU of its own: {e}"
                    ));
                    None
                }
            }
        }
        None => None,
    };
    writer.finish()?;
    for r in readers {
        r.finish()?;
    }
    report_readers(
        run,
        name,
        &Measured {
            flat_out,
            paced,
            bare,
            pinned,
        },
    );
    Ok(())
}

/// What [`measure_readers`] measured of one store's readers.
struct Measured<'a> {
    flat_out: Vec<Pair>,
    paced: Vec<Pair>,
    /// Beside the bare-writes control (memio-kv only).
    bare: Option<Vec<Pair>>,
    /// With the writer on a CPU of its own (two CPUs or more).
    pinned: Option<(Vec<Pair>, &'a Cpus)>,
}

/// The rows and notes of [`measure_readers`].
fn report_readers(run: &mut Run<'_>, name: &str, m: &Measured<'_>) {
    let Measured {
        flat_out,
        paced,
        bare,
        pinned,
    } = m;
    run.record(
        Case::new(name, "3 reader processes, random gets"),
        MGETS_PER_S,
        &column(flat_out, |r| r.alone),
    );
    run.record(
        Case::new(name, "3 readers + 1 writer (durable 100-key commits)"),
        MGETS_PER_S,
        &column(flat_out, |r| r.busy),
    );
    run.record(
        Case::new(
            name,
            format!("3 readers + 1 writer ({PACED_COMMITS} durable 100-key commits/s)"),
        ),
        MGETS_PER_S,
        &column(paced, |r| r.busy),
    );
    // Each round with the writer against the round alone just before it.
    let ratio = |v: &[Pair]| median_of(&column(v, |r| r.busy / r.alone)) * 100.0;
    if let Some(bare) = &bare {
        run.record(
            Case::new(
                name,
                "3 readers + bare durable writes at the writer's pace (no store)",
            ),
            MGETS_PER_S,
            &column(bare, |r| r.busy),
        );
        let shared = cpu_sharing();
        run.note(format!(
            "{name}: beside a process making only its flat-out writer's disk writes (one durable \
             {GROUP_BYTES}-byte write per commit, {:.0} a second, no store), the readers keep \
             {:.0}% of their throughput alone: the machine's cost of that many durable \
             writes{shared}, against {:.0}% beside the writer itself",
            median_of(&column(bare, |r| r.commits)),
            ratio(bare),
            ratio(flat_out),
        ));
    }
    run.note(format!(
        "{name}: readers' throughput with a writer running flat out is {:.0}% of their \
         throughput alone, while the writer made {:.0} durable 100-key commits/s; with the \
         writer paced to {PACED_COMMITS}/s ({:.0} made), {:.0}% (medians of {} alternating \
         pairs of rounds each)",
        ratio(flat_out),
        median_of(&column(flat_out, |r| r.commits)),
        median_of(&column(paced, |r| r.commits)),
        ratio(paced),
        flat_out.len(),
    ));
    if let Some((pinned, cpus)) = pinned {
        run.record(
            Case::new(
                name,
                "3 reader processes on the CPUs but the writer's, random gets",
            ),
            MGETS_PER_S,
            &column(pinned, |r| r.alone),
        );
        run.record(
            Case::new(
                name,
                "3 readers + 1 writer on a CPU of its own (durable 100-key commits)",
            ),
            MGETS_PER_S,
            &column(pinned, |r| r.busy),
        );
        run.note(format!(
            "{name}: with the writer pinned to CPU {} and the readers to {}, so that they do not \
             take turns on one CPU (the kernel's I/O work still runs where it will), the readers \
             keep {:.0}% of their throughput alone (on those CPUs) while the \
             writer makes {:.0} durable 100-key commits/s: what the store itself costs its readers",
            cpus.writer_cpu,
            cpus.reader_list,
            ratio(pinned),
            median_of(&column(pinned, |r| r.commits)),
        ));
    }
}

/// The CPUs the readers and the writer are pinned to for the rounds in
/// which they share none.
struct Cpus {
    readers: CpuSet,
    writer: CpuSet,
    /// The readers' CPUs, as people write them (`0`, `0-2`, `0,2-3`).
    reader_list: String,
    writer_cpu: usize,
    first_reader: usize,
}

/// The CPUs this process may run on, split: the last for the writer, the
/// others for the readers; `None` with fewer than two.
fn split_cpus() -> Option<Cpus> {
    let allowed = sched_getaffinity(None).ok()?;
    let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
        .filter(|&c| allowed.is_set(c))
        .collect();
    let (&writer_cpu, others) = cpus.split_last()?;
    if others.is_empty() {
        return None;
    }
    let mut readers = CpuSet::new();
    for &c in others {
        readers.set(c);
    }
    let mut writer = CpuSet::new();
    writer.set(writer_cpu);
    Some(Cpus {
        readers,
        writer,
        reader_list: cpu_list(others),
        writer_cpu,
        first_reader: others[0],
    })
}

/// The work two threads spinning on CPUs `a` and `b` at once do, as a
/// multiple of one spinning on `a` alone (the median of three tries):
/// about 2 for two cores of their own, about 1 for two that share one (SMT
/// siblings, or virtual CPUs a host runs on one core). `None` when a thread
/// cannot be pinned.
fn pair_speedup(a: usize, b: usize) -> Option<f64> {
    const SPIN: Duration = Duration::from_millis(100);
    let spin = |cpu: usize| -> Option<f64> {
        let mut set = CpuSet::new();
        set.set(cpu);
        sched_setaffinity(None, &set).ok()?;
        let (start, mut state, mut rounds) = (Instant::now(), 1u64, 0u64);
        while start.elapsed() < SPIN {
            for _ in 0..10_000 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
            }
            rounds += 1;
        }
        keep(state);
        Some(rounds as f64 / start.elapsed().as_secs_f64())
    };
    let mut tries = Vec::new();
    for _ in 0..3 {
        let (alone, pair) = std::thread::scope(|s| {
            let alone = s.spawn(|| spin(a)).join().ok().flatten();
            let (x, y) = (s.spawn(|| spin(a)), s.spawn(|| spin(b)));
            let pair = match (x.join(), y.join()) {
                (Ok(Some(x)), Ok(Some(y))) => Some(x + y),
                _ => None,
            };
            (alone, pair)
        });
        tries.push(pair? / alone?);
    }
    Some(median_of(&tries))
}

/// `cpus` (ascending) as a CPU list: runs of consecutive CPUs as `a-b`.
fn cpu_list(cpus: &[usize]) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &c in cpus {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == c => *end = c,
            _ => runs.push((c, c)),
        }
    }
    runs.iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Keeps every thread of peer `p` on `set` (threads it starts later
/// inherit it).
fn pin(p: &Peer, set: &CpuSet, cpus: &str) -> Result<()> {
    let failed = |why: String| Error::new(p.name(), format!("cannot pin it to CPU {cpus}: {why}"));
    let tasks =
        std::fs::read_dir(format!("/proc/{}/task", p.id())).map_err(|e| failed(e.to_string()))?;
    for task in tasks {
        let task = task.map_err(|e| failed(e.to_string()))?;
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
            .and_then(Pid::from_raw)
        else {
            continue;
        };
        match sched_setaffinity(Some(tid), set) {
            // A thread that ended meanwhile needs no pin.
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => return Err(failed(io::Error::from(e).to_string())),
        }
    }
    Ok(())
}

/// What the readers share with the writer, when they use every CPU: said
/// in the note beside the bare-writes control.
fn cpu_sharing() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if cpus <= READERS {
        format!(
            " (with {cpus} CPUs for {READERS} readers that keep them busy, every CPU-second the \
             writer and the kernel's I/O path take is one the readers lose)"
        )
    } else {
        String::new()
    }
}

/// Where the writer peer leaves its commit rate after each round.
fn writer_rate_file(stop: &Path) -> PathBuf {
    stop.with_file_name("writer-rate")
}

/// How many gets at `per_s` fill `round` (at most 2^28).
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "clamped to 0..=2^28 first"
)]
fn gets_in(per_s: f64, round: Duration) -> u64 {
    (per_s * round.as_secs_f64()).clamp(0.0, f64::from(1u32 << 28)) as u64
}

fn column(v: &[Pair], pick: fn(&Pair) -> f64) -> Vec<f64> {
    v.iter().map(pick).collect()
}

/// A pace in commits per second (at least 1) for a measured rate; `None`
/// for a rate that is not a number (a writer's rate file that could not be
/// read), which would otherwise become 0: flat out, not the writer's pace.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "clamped to 1..=1e6 first"
)]
fn pace_of(rate: f64) -> Option<u64> {
    (!rate.is_nan()).then(|| rate.round().clamp(1.0, 1e6) as u64)
}

/// Alternating reader rounds: alone, then beside a writing peer.
struct Rounds<'a> {
    readers: &'a mut [Peer],
    per: u64,
    stop: &'a Path,
    samples: usize,
}

impl Rounds<'_> {
    /// `samples` pairs of rounds, the writer `w` paced to `pace` commits/s
    /// (0: flat out) in the second of each pair. Rounds alone and with the
    /// writer alternate, so that drift in the machine (other work,
    /// write-back of earlier phases) falls on both.
    fn beside(&mut self, w: &mut Peer, pace: u64) -> Result<Vec<Pair>> {
        let stop = self.stop;
        let mut out = Vec::new();
        for _ in 0..self.samples {
            let alone = reader_round(self.readers, self.per)?;
            let _ = std::fs::remove_file(stop);
            w.announce(pace)?;
            let busy = reader_round(self.readers, self.per)?;
            std::fs::write(stop, b"").map_err(|e| Error::io(stop.display(), &e))?;
            w.done()?;
            out.push(Pair {
                alone,
                busy,
                commits: read_rate(stop)?,
            });
        }
        Ok(out)
    }
}

/// The commit rate the writer peer left after its last round.
fn read_rate(stop: &Path) -> Result<f64> {
    let rate = writer_rate_file(stop);
    let said = std::fs::read_to_string(&rate).map_err(|e| Error::io(rate.display(), &e))?;
    Ok(said.trim().parse::<f64>().unwrap_or(f64::NAN))
}

/// The median of `v`, in any order.
fn median_of(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    crate::measure::median(&s)
}

/// One round of every reader doing `per` gets at once; millions of gets
/// per second over all readers.
fn reader_round(readers: &mut [Peer], per: u64) -> Result<f64> {
    let t = Instant::now();
    for r in readers.iter_mut() {
        r.announce(per)?;
    }
    for r in readers.iter_mut() {
        r.done()?;
    }
    Ok((per * readers.len() as u64) as f64 / t.elapsed().as_secs_f64() / 1e6)
}

/// A round of the readers alone, the round beside the writer after it,
/// and the writer's commit rate meanwhile.
#[derive(Debug, Clone, Copy)]
struct Pair {
    alone: f64,
    busy: f64,
    commits: f64,
}

/// The peer: `reader|writer ENGINE DIR KEYS STOP`.
fn peer(args: &[String], control: &mut Control) -> io::Result<()> {
    let [role, name, dir, keys, stop] = args else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "kv peer: expected ROLE ENGINE DIR KEYS STOP",
        ));
    };
    let keys: u64 = keys.parse().map_err(other)?;
    let stop = PathBuf::from(stop);
    // The bare-writes control opens no store: a scratch file, all of it
    // written once, so its durable writes overwrite allocated blocks as
    // memio-kv's commits do.
    let (mut e, bare) = if role == "disk" {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(Path::new(dir).join("bare-writes"))?;
        f.write_all_at(&vec![0; BARE_FILE], 0)?;
        f.sync_all()?;
        (None, Some(f))
    } else {
        (Some(open(name, Path::new(dir))?), None)
    };
    let mut rng = Rng::new(u64::from(std::process::id()));
    let group = vec![0x5a; GROUP_BYTES];
    control.ready()?;
    while let Some(n) = control.next_batch()? {
        control.started()?;
        if let (Some(e), "reader") = (&mut e, role.as_str()) {
            for _ in 0..n {
                keep(e.get(&key(rng.next_u64() % keys))?);
            }
            control.done()?;
            continue;
        }
        let mut round = 1_000_000;
        let (first, t) = (round, Instant::now());
        // `n` is the pace in commits per second; 0: as fast as it can.
        let gap = (n > 0).then(|| Duration::from_secs_f64(1.0 / n as f64));
        let mut at = 0;
        while !stop.exists() {
            if let Some(gap) = gap {
                let due = t + gap * u32::try_from(round - first).unwrap_or(u32::MAX);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            if let Some(e) = &mut e {
                let pairs: Vec<_> = (0..WRITER_BATCH)
                    .map(|_| {
                        let k = rng.next_u64() % keys;
                        (key(k), value(k, round))
                    })
                    .collect();
                e.commit(&pairs)?;
            } else if let Some(f) = &bare {
                if at + GROUP_BYTES as u64 > BARE_FILE as u64 {
                    at = 0;
                }
                let mut bufs = [io::IoSlice::new(&group)];
                memio::io::vectored::write_all_vectored_at_durable(f, &mut bufs, at)?;
                at += GROUP_BYTES as u64;
            }
            round += 1;
        }
        // How much the writer did: the section reads it after `done`.
        std::fs::write(
            writer_rate_file(&stop),
            format!("{}", (round - first) as f64 / t.elapsed().as_secs_f64()),
        )?;
        control.done()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_twelve_digits_in_key_order() {
        assert_eq!(&key(0), b"key:000000000000");
        assert_eq!(&key(42), b"key:000000000042");
        assert_eq!(&key(999_999_999_999), b"key:999999999999");
        assert_eq!(&key(1_000_000_000_005), b"key:000000000005");
        assert!(key(9) < key(10) && key(99_999) < key(100_000));
    }

    #[test]
    fn a_pace_is_never_flat_out() {
        assert_eq!(pace_of(f64::NAN), None);
        assert_eq!(pace_of(median_of(&[])), None);
        assert_eq!(pace_of(0.2), Some(1));
        assert_eq!(pace_of(412.6), Some(413));
        assert_eq!(pace_of(f64::INFINITY), Some(1_000_000));
    }

    #[test]
    fn cpu_lists_join_runs_as_people_write_them() {
        assert_eq!(cpu_list(&[0]), "0");
        assert_eq!(cpu_list(&[0, 1, 2]), "0-2");
        assert_eq!(cpu_list(&[0, 2, 3, 4, 7]), "0,2-4,7");
        assert_eq!(cpu_list(&[]), "");
    }

    /// The split leaves the writer a CPU no reader has, from the CPUs this
    /// process may use, or says there is none to split.
    #[test]
    fn the_writer_gets_a_cpu_no_reader_has() {
        let allowed = sched_getaffinity(None).expect("own affinity");
        let n = (0..CpuSet::MAX_CPU).filter(|&c| allowed.is_set(c)).count();
        let Some(cpus) = split_cpus() else {
            assert!(n < 2, "{n} CPUs allowed, but no split");
            println!("skipped: this process may run on one CPU only");
            return;
        };
        assert!(allowed.is_set(cpus.writer_cpu) && cpus.writer.is_set(cpus.writer_cpu));
        assert!(!cpus.readers.is_set(cpus.writer_cpu));
        assert_eq!(cpus.readers.count() as usize, n - 1);
        assert_eq!(cpus.writer.count(), 1);
        for c in 0..CpuSet::MAX_CPU {
            assert!(!cpus.readers.is_set(c) || allowed.is_set(c));
        }
    }

    /// Two spinning threads do between half and three times the work of
    /// one (well inside: 1 to 2 on any real machine), and pinning to a
    /// CPU this process may not use is no figure.
    #[test]
    fn a_pair_of_cpus_does_a_plausible_multiple_of_one() {
        let Some(cpus) = split_cpus() else {
            println!("skipped: this process may run on one CPU only");
            return;
        };
        let x = pair_speedup(cpus.first_reader, cpus.writer_cpu).expect("pinned spinners");
        assert!(x.is_finite() && (0.5..3.0).contains(&x), "{x}");
        assert_eq!(pair_speedup(CpuSet::MAX_CPU - 1, cpus.writer_cpu), None);
    }

    #[test]
    fn a_tally_sees_every_byte_and_the_order() {
        let mut a = Tally::default();
        a.add(b"k1", b"value");
        a.add(b"k2", b"other");
        let mut b = Tally::default();
        b.add(b"k2", b"other");
        b.add(b"k1", b"value");
        assert_eq!(a.pairs, 2);
        assert_ne!(a, b, "the order read counts");
        let mut c = Tally::default();
        c.add(b"k1", b"valuf");
        c.add(b"k2", b"other");
        assert_ne!(a, c, "a changed value byte counts");
    }
}
