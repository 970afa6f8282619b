//! Lab section `copy`: memio's copy engines against the system's `cp`.
//!
//! - A large file (64 MiB quick, 1 GiB full, within `--max-size` when it
//!   is given and within the free space always), warm (source in the page
//!   cache) and evicted before every sample: memio's default
//!   (`copy_file_range`), mmap windows, read/write, sendfile, and `cp`.
//! - A tree of small files (500 quick, 10,000 full, 4–64 KiB each),
//!   warm and evicted: `copy_tree` (files copied by a few workers) against
//!   `cp -r`.
//! - A sparse file (64 MiB with 1 MiB of data in four extents): memio's
//!   default against `cp`, both keeping the holes.
//!
//! Every sample writes a fresh destination; the time to remove the old one
//! and to evict is not counted. The tree rows keep every copy until their
//! last sample and sync the filesystem before each, and their `cp -r` and
//! memio samples alternate. `cp` runs as a process per sample, as a user
//! runs it, so its rows include starting it (about a millisecond).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use memio::io::copy::{CopyOptions, Method, copy_tree};

use crate::support::{
    FREED_INODES_SETTLE, Scratch, XorShift, exact_bytes, human_bytes, since_mass_removal,
};
use crate::{Case, Chart, Error, Result, Run, Section, Unit};

/// The section as registered in the lab.
pub(crate) const SECTION: Section = Section {
    name: "copy",
    title: "File copies: copy_file_range, mmap, read/write, sendfile vs cp",
    about: "Copying a large file with each of memio's engines (the default copy_file_range, the \
            source mapped in 64 MiB windows and written out, read/write through a 1 MiB \
            buffer, sendfile) against the system's cp, with the source in the page cache (warm) \
            and evicted before every sample; a tree of small files (4-64 KiB) copied by memio's \
            tree copy (a few files at once) against cp -r, warm and evicted; and a sparse file \
            whose holes both keep. Every sample writes a new destination. Answers: which engine \
            to use, and what memio cp gains over cp.",
    reference: CP,
    chart: Chart::Bars,
    run,
    peer: None,
    verdict: None,
};

const CP: &str = "GNU cp";

/// The memio engines measured on the large file, with their row names.
const ENGINES: [(Method, &str); 4] = [
    (Method::Auto, "memio cp (default: copy_file_range)"),
    (Method::Mmap, "memio cp --method mmap"),
    (Method::ReadWrite, "memio cp --method read-write"),
    (Method::Sendfile, "memio cp --method sendfile"),
];

/// Runs `op` `samples` times after `prepare` each time (not counted) and
/// records `bytes` per sample as GB/s; returns the median.
///
/// # Errors
///
/// The first error of `prepare` or `op`.
pub(crate) fn sampled(
    run: &mut Run<'_>,
    case: Case,
    bytes: u64,
    samples: usize,
    mut prepare: impl FnMut() -> Result<()>,
    mut op: impl FnMut() -> Result<()>,
) -> Result<f64> {
    let mut gbps = Vec::with_capacity(samples);
    // One unrecorded run first: allocations, dentries, a cold `cp` binary.
    for i in 0..=samples {
        prepare()?;
        let start = Instant::now();
        op()?;
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        if i > 0 {
            gbps.push(bytes as f64 / secs / 1e9);
        }
    }
    Ok(run
        .record(case, Unit::GB_PER_S, &gbps)
        .map_or(f64::NAN, |r| r.median))
}

/// Runs the system's `cp` with `args`.
fn cp(args: &[&Path]) -> Result<()> {
    let out = Command::new("cp")
        .args(args)
        .output()
        .map_err(|e| Error::io("cp", &e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::new(
            "cp",
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path.display(), &e)
}

fn lib(e: memio::io::Error) -> Error {
    Error::new("copy", e)
}

/// Writes `len` pseudo-random bytes to `path` (call [`sync_dir`] before
/// evicting it).
fn random_file(path: &Path, len: usize, rng: &mut XorShift) -> Result<()> {
    let mut data = vec![0u8; len];
    for chunk in data.chunks_mut(8) {
        let w = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
    std::fs::write(path, &data).map_err(io(path))
}

/// Writes back every dirty page of the filesystem holding `dir` (one
/// `syncfs`, far cheaper than an fsync per file), so [`drop_cached`] can
/// drop them.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let d = std::fs::File::open(dir).map_err(io(dir))?;
    rustix::fs::syncfs(&d).map_err(|e| Error::io(dir.display(), &e.into()))
}

/// Drops the clean pages of `paths` from the page cache
/// (`POSIX_FADV_DONTNEED`), so the next read goes to the disk. Unlike
/// `cache::evict` it does not fdatasync each file: on some disks that is a
/// cache flush per file, which would swamp the sample's set-up.
pub(crate) fn drop_cached(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        let f = std::fs::File::open(p).map_err(io(p))?;
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)
            .map_err(|e| Error::io(p.display(), &e.into()))?;
    }
    Ok(())
}

fn run(run: &mut Run<'_>) -> Result<()> {
    let config = run.config();
    let full = config.full;
    // The 1 GiB the copy target names, above the 256 MiB the other
    // sections keep to by default: only a --max-size the user gave caps it.
    let large = if full { 1u64 << 30 } else { 64 << 20 };
    let large = if config.max_size_given {
        large.min(config.max_size)
    } else {
        large
    };
    let files = if full { 10_000 } else { 500 };
    run.plan(
        if full {
            2 * (ENGINES.len() as u64 + 1)
        } else {
            8
        } + 4
            + 2,
    );
    let dir = Scratch::dir("copy")?;
    let large = fit_large(run, dir.path(), large)?;
    let gbps = large_file(run, dir.path(), large)?;
    tree(run, dir.path(), files)?;
    sparse(run, dir.path())?;
    let memcpy = run.memcpy_gbps();
    run.note(format!(
        "memcpy on this machine moves {memcpy:.1} GB/s; memio's default copy of the warm {} file \
         ran at {gbps:.2} GB/s, {:.0}% of it. copy_file_range moves the bytes inside the kernel \
         (one copy, page cache to page cache) and, on filesystems that share extents, shares \
         them instead; the mmap engine maps the source and writes each window out (one copy, \
         plus the cost of mapping); read/write copies twice.",
        exact_bytes(large),
        gbps / memcpy * 100.0
    ));
    Ok(())
}

/// The large-file rows, warm and evicted; returns memio's default's warm
/// median.
fn large_file(run: &mut Run<'_>, dir: &Path, len: u64) -> Result<f64> {
    let src = dir.join("large");
    let dst = dir.join("large.copy");
    random_file(
        &src,
        usize::try_from(len).unwrap_or(usize::MAX),
        &mut XorShift::new(XorShift::SEED),
    )?;
    sync_dir(dir)?;
    let sources = [src.clone()];
    let samples = run.config().timing.samples.min(5);
    let full = run.config().full;
    let mut default = f64::NAN;
    for evicted in [false, true] {
        let workload = format!(
            "{} file{}",
            exact_bytes(len),
            if evicted { ", evicted" } else { ", warm" }
        );
        let prepare = || {
            let _ = std::fs::remove_file(&dst);
            if evicted {
                drop_cached(&sources)?;
            }
            Ok(())
        };
        let case = |m: &str| Case::new(m, &workload).param("bytes", len);
        sampled(run, case(CP), len, samples, prepare, || cp(&[&src, &dst]))?;
        for (method, name) in ENGINES {
            // Evicted, the quick run keeps the default and mmap (the
            // others read the disk the same way read/write does).
            if evicted && !full && !matches!(method, Method::Auto | Method::Mmap) {
                continue;
            }
            let options = CopyOptions::new().method(method);
            let median = sampled(run, case(name), len, samples, prepare, || {
                options.copy(&src, &dst).map(drop).map_err(lib)
            })?;
            if method == Method::Auto && !evicted {
                default = median;
            }
        }
    }
    if std::fs::read(&dst).ok() != std::fs::read(&src).ok() {
        return Err(Error::new("copy", "the copy differs from its source"));
    }
    // Gone before the tree rows, which size their copies by the free space.
    let _ = std::fs::remove_file(&dst);
    let _ = std::fs::remove_file(&src);
    Ok(default)
}

/// Space the copies leave free on the scratch folder's filesystem, so the
/// lab never fills the disk it shares with everything else.
const MARGIN: u64 = 1 << 30;

/// Inodes the copies leave free: as many as [`MARGIN`] holds at ext4's
/// default of one inode per 16 KiB.
const MARGIN_INODES: u64 = MARGIN / (16 << 10);

/// Free space on a filesystem, as an unprivileged writer may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Free {
    bytes: u64,
    inodes: u64,
}

impl Free {
    /// Whether `bytes` more bytes in `inodes` more files still leave the
    /// margins free.
    fn holds(self, bytes: u64, inodes: u64) -> bool {
        self.bytes >= bytes.saturating_add(MARGIN)
            && self.inodes >= inodes.saturating_add(MARGIN_INODES)
    }
}

/// The free space of the filesystem holding `dir` (`statvfs`: the blocks
/// and inodes left to unprivileged users, so the lab never eats into the
/// reserve). A filesystem without an inode limit reports no inodes at
/// all; it counts as having them without end.
fn free_space(dir: &Path) -> Result<Free> {
    let s = rustix::fs::statvfs(dir).map_err(|e| Error::io(dir.display(), &e.into()))?;
    Ok(Free {
        bytes: s.f_bavail.saturating_mul(s.f_frsize),
        inodes: if s.f_files == 0 { u64::MAX } else { s.f_favail },
    })
}

/// The large file's size: `wanted`, or less when the filesystem cannot
/// hold it twice (source and copy) and keep [`MARGIN`] free, said in a
/// note.
///
/// # Errors
///
/// Free space that `statvfs` cannot read, or too little for even 1 MiB.
fn fit_large(run: &mut Run<'_>, dir: &Path, wanted: u64) -> Result<u64> {
    let free = free_space(dir)?;
    let len = large_len(wanted, free);
    if len == 0 {
        return Err(Error::new(
            dir.display(),
            format!(
                "only {} free: the large-file rows need twice the file and {} to spare",
                human_bytes(free.bytes),
                exact_bytes(MARGIN)
            ),
        ));
    }
    if len < wanted {
        run.note(format!(
            "The large file is {} instead of {}: its filesystem had {} free, and the rows keep \
             the source and a copy ({} each) while leaving {} free.",
            exact_bytes(len),
            exact_bytes(wanted),
            human_bytes(free.bytes),
            exact_bytes(len),
            exact_bytes(MARGIN)
        ));
    }
    Ok(len)
}

/// `wanted`, or the most whole MiB that two copies can take from `free`
/// while leaving [`MARGIN`] (0 when not even 1 MiB fits).
fn large_len(wanted: u64, free: Free) -> u64 {
    let room = free.bytes.saturating_sub(MARGIN) / 2;
    if wanted <= room {
        wanted
    } else {
        room & !((1 << 20) - 1)
    }
}

/// Makes `n` files of 4–64 KiB in 20 folders under `root`.
fn small_tree(root: &Path, n: usize) -> Result<u64> {
    let mut rng = XorShift::new(XorShift::SEED ^ 0x7ee);
    let mut total = 0;
    for i in 0..n {
        let sub = root.join(format!("d{:02}", i % 20));
        std::fs::create_dir_all(&sub).map_err(io(&sub))?;
        let len = 4096 + usize::try_from(rng.next_u64() % (60 << 10)).unwrap_or(0);
        random_file(&sub.join(format!("f{i:05}")), len, &mut rng)?;
        total += len as u64;
    }
    Ok(total)
}

/// The tree rows: `cp -r` against `copy_tree`, warm and evicted.
///
/// Every sample copies to a destination name of its own, and the copies
/// are removed only after the last sample (in a full run that is 24
/// copies, 8.2 GiB of blocks, on the disk at once) when the disk holds them all
/// ([`Copies`] says what happens when it does not). Removing a 10,000-file
/// copy before the next sample, as the large-file rows do with their one
/// file, put that removal's cost inside the next sample: on ext4 without a
/// journal, a new inode skips every free inode deleted in the last minute
/// (six while its inode table block is dirty), so each file the copy
/// creates scanned past the 10,000 just freed, and `cp -r` took 0.3 to
/// 8 s depending on how recently the previous sample's tree went. The
/// filesystem is synced before every sample, so none writes back the
/// 331 MiB an earlier one left dirty.
fn tree(run: &mut Run<'_>, dir: &Path, n: usize) -> Result<()> {
    let src = dir.join("tree");
    // At most 64 KiB a file, and 21 folders.
    let (most, inodes) = ((n as u64 + 21) * (64 << 10), n as u64 + 21);
    if !free_space(dir)?.holds(most, inodes) {
        return Err(Error::new(
            dir.display(),
            format!(
                "too little free space for the tree rows' source of {n} files (up to {})",
                human_bytes(most)
            ),
        ));
    }
    settle_freed_inodes(run);
    let bytes = small_tree(&src, n)?;
    sync_dir(dir)?;
    let mut paths: Vec<PathBuf> = Vec::new();
    collect(&src, &mut paths);
    // Five rounds, not three: on a shared 2-core machine a neighbour's
    // burst can slow any one sample several times over, and a median of
    // three is one burst away from showing it.
    let samples = run.config().timing.samples.min(5);
    let mut copies = Copies::new(dir.join("tree.copies"), disk_usage(&src))?;
    let planned = 2 * 2 * (samples as u64 + 1);
    let free = free_space(dir)?;
    for evicted in [false, true] {
        tree_rows(run, &src, &paths, bytes, samples, evicted, &mut copies)?;
    }
    // Written back now, the removed inodes are skipped for a minute
    // instead of six by whatever creates files next.
    let cleared = copies.cleared;
    let each = copies.each;
    drop(copies);
    let _ = std::fs::remove_dir_all(&src);
    sync_dir(dir)?;
    if n >= 10_000 {
        crate::support::note_mass_removal();
    }
    run.note(format!(
        "The tree rows count file bytes ({}) over the whole copy, directories included. memio's \
         tree copy walks the tree once, then copies the files with a few threads, each in a \
         different folder where it can (both cores busy when warm, several reads waiting on the \
         disk when evicted), and builds a new tree under a temporary name renamed whole at the \
         end. The samples of cp -r and memio alternate, and each writes a new destination after \
         the filesystem is synced (so no sample pays for writing back an earlier one).",
        exact_bytes(bytes)
    ));
    let all = each.0.saturating_mul(planned);
    run.note(if cleared == 0 {
        format!(
            "All {planned} copies of the tree ({}) stayed on the disk until the last sample, \
             with {} free before the first, so no sample paid for deleting an earlier one.",
            human_bytes(all),
            human_bytes(free.bytes)
        )
    } else {
        format!(
            "The disk had {} free before the tree rows, short of the {} that all {planned} \
             copies take plus {} to spare: whenever one more copy would have left less, the \
             copies so far were removed, the filesystem synced and {} s waited before the next \
             sample (ext4 without a journal skips inodes freed in the last minute), {cleared} \
             times in all.",
            human_bytes(free.bytes),
            human_bytes(all),
            exact_bytes(MARGIN),
            RECENT.as_secs()
        )
    });
    Ok(())
}

/// Before the tree rows: when an earlier lab run removed thousands of
/// files from the temporary directory less than
/// [`FREED_INODES_SETTLE`] ago, a full run waits out the rest of it (file
/// creation there is several times slower meanwhile, and unevenly so for
/// the two tools); a quick run says so in a note.
fn settle_freed_inodes(run: &mut Run<'_>) {
    let Some(ago) = since_mass_removal() else {
        return;
    };
    let left = FREED_INODES_SETTLE.saturating_sub(ago);
    let earlier = format!(
        "An earlier lab run removed thousands of files from the temporary directory {} s \
         before the tree rows; ext4 without a journal skips recently freed inodes when it \
         creates files, for up to {} s, which made 10,000-file copies several times slower here",
        ago.as_secs(),
        FREED_INODES_SETTLE.as_secs()
    );
    if run.config().full {
        run.waiting(format!(
            "{} s for the inodes an earlier run freed to settle",
            left.as_secs()
        ));
        std::thread::sleep(left);
        run.note(format!(
            "{earlier}: this run waited {} s before making the tree.",
            left.as_secs()
        ));
    } else {
        run.note(format!(
            "{earlier}: the tree rows may be slower than usual (a full run waits it out)."
        ));
    }
}

/// One pass of the tree rows (warm or evicted): `cp -r` and memio's tree
/// copy, alternated, each sample into a fresh copy.
fn tree_rows(
    run: &mut Run<'_>,
    src: &Path,
    paths: &[PathBuf],
    bytes: u64,
    samples: usize,
    evicted: bool,
    copies: &mut Copies,
) -> Result<()> {
    let n = paths.len();
    let workload = format!(
        "tree of {n} files of 4-64 KiB (-r){}",
        if evicted { ", evicted" } else { ", warm" }
    );
    let prepare = || {
        let dst = copies.next()?;
        if evicted {
            drop_cached(paths)?;
        }
        Ok(dst)
    };
    let case = |m: &str| {
        Case::new(m, &workload)
            .param("files", n)
            .param("bytes", bytes)
    };
    let cp_tree = |dst: &PathBuf| cp(&[Path::new("-r"), src, dst]);
    let memio_tree = |dst: &PathBuf| {
        let done = copy_tree(src, dst, &CopyOptions::new(), &|_| {}).map_err(lib)?;
        match done.failures.first() {
            Some(e) => Err(Error::new("memio cp -r", e)),
            None => Ok(()),
        }
    };
    alternated(
        run,
        [case(CP), case("memio cp -r")],
        bytes,
        samples,
        prepare,
        [&cp_tree, &memio_tree],
    )
}

/// How long ext4 without a journal keeps skipping a freed inode once its
/// inode table block is written back (a minute after the deletion), and a
/// second more.
const RECENT: Duration = Duration::from_secs(61);

/// The tree rows' destinations, in one folder, kept until the rows end
/// while the filesystem has room for one more and [`MARGIN`] to spare.
/// When it has not, the copies so far are removed, the filesystem synced
/// and [`RECENT`] waited out before the next sample, so that sample pays
/// neither for the deletion nor for skipping the freed inodes. The space
/// is read before every sample, so a neighbour filling the disk meanwhile
/// counts too. Dropping it removes the folder and every copy left.
struct Copies {
    dir: PathBuf,
    /// Bytes and inodes one copy takes on the disk (as its source does).
    each: (u64, u64),
    made: usize,
    kept: usize,
    /// How many times the copies were removed to make room.
    cleared: usize,
}

impl Copies {
    fn new(dir: PathBuf, each: (u64, u64)) -> Result<Self> {
        std::fs::create_dir(&dir).map_err(io(&dir))?;
        Ok(Self {
            dir,
            each,
            made: 0,
            kept: 0,
            cleared: 0,
        })
    }

    /// A new destination for the next sample, with the filesystem synced
    /// (the earlier copies are written back now, not during the sample)
    /// and room for it.
    ///
    /// # Errors
    ///
    /// A failed sync, removal or `statvfs`, or too little space for one
    /// copy even with none kept.
    fn next(&mut self) -> Result<PathBuf> {
        sync_dir(&self.dir)?;
        if self.kept > 0 && !self.room()? {
            self.clear()?;
            std::thread::sleep(RECENT);
        }
        if !self.room()? {
            return Err(Error::new(
                self.dir.display(),
                format!(
                    "too little free space for a copy of the tree ({} in {} files) with {} to \
                     spare",
                    human_bytes(self.each.0),
                    self.each.1,
                    exact_bytes(MARGIN)
                ),
            ));
        }
        self.made += 1;
        self.kept += 1;
        Ok(self.dir.join(format!("copy{}", self.made)))
    }

    fn room(&self) -> Result<bool> {
        Ok(free_space(&self.dir)?.holds(self.each.0, self.each.1))
    }

    /// Removes every copy and writes the removal back.
    fn clear(&mut self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).map_err(io(&self.dir))?;
        std::fs::create_dir(&self.dir).map_err(io(&self.dir))?;
        sync_dir(&self.dir)?;
        self.kept = 0;
        self.cleared += 1;
        Ok(())
    }
}

impl Drop for Copies {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The bytes and inodes a tree takes on its filesystem (allocated blocks,
/// folders included).
fn disk_usage(path: &Path) -> (u64, u64) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return (0, 0);
    };
    let mut total = (std::os::unix::fs::MetadataExt::blocks(&meta) * 512, 1);
    if meta.is_dir() {
        for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
            let (bytes, inodes) = disk_usage(&e.path());
            total = (total.0 + bytes, total.1 + inodes);
        }
    }
    total
}

/// A contender in [`alternated`]: the timed work on what `prepare` made.
type Op<'a, T> = &'a dyn Fn(&T) -> Result<()>;

/// As [`sampled`], for two contenders whose samples alternate (and which
/// goes first too), so a load that drifts during the rows weighs on both
/// alike; `prepare` makes what each sample works on (not counted).
/// Records a row for each.
///
/// # Errors
///
/// The first error of `prepare` or an op.
fn alternated<T>(
    run: &mut Run<'_>,
    cases: [Case; 2],
    bytes: u64,
    samples: usize,
    mut prepare: impl FnMut() -> Result<T>,
    ops: [Op<'_, T>; 2],
) -> Result<()> {
    let mut gbps = [Vec::with_capacity(samples), Vec::with_capacity(samples)];
    // One unrecorded round first: allocations, dentries, a cold `cp` binary.
    for i in 0..=samples {
        for k in [i % 2, 1 - i % 2] {
            let target = prepare()?;
            let start = Instant::now();
            ops[k](&target)?;
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            if i > 0 {
                gbps[k].push(bytes as f64 / secs / 1e9);
            }
        }
    }
    for (case, gbps) in cases.into_iter().zip(&gbps) {
        run.record(case, Unit::GB_PER_S, gbps);
    }
    Ok(())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

/// The sparse-file rows: 64 MiB with four 256 KiB extents of data.
fn sparse(run: &mut Run<'_>, dir: &Path) -> Result<()> {
    let len: u64 = 64 << 20;
    let src = dir.join("sparse");
    let dst = dir.join("sparse.copy");
    {
        let f = std::fs::File::create(&src).map_err(io(&src))?;
        f.set_len(len).map_err(io(&src))?;
        let chunk = vec![0xa5u8; 256 << 10];
        for i in 0..4 {
            std::os::unix::fs::FileExt::write_all_at(&f, &chunk, i * (16 << 20))
                .map_err(io(&src))?;
        }
    }
    let workload = format!("sparse {} file, 1 MiB of data", exact_bytes(len));
    let samples = run.config().timing.samples.min(5);
    let prepare = || {
        let _ = std::fs::remove_file(&dst);
        Ok(())
    };
    let case = |m: &str| Case::new(m, &workload).param("bytes", len);
    sampled(run, case(CP), len, samples, prepare, || cp(&[&src, &dst]))?;
    sampled(
        run,
        case("memio cp (default: copy_file_range)"),
        len,
        samples,
        prepare,
        || CopyOptions::new().copy(&src, &dst).map(drop).map_err(lib),
    )?;
    let allocated =
        std::fs::metadata(&dst).map_or(0, |m| std::os::unix::fs::MetadataExt::blocks(&m) * 512);
    run.note(format!(
        "The sparse rows count the file's apparent size ({}); memio's copy allocated {} on \
         disk: it copies only the data extents (SEEK_DATA/SEEK_HOLE).",
        exact_bytes(len),
        exact_bytes(allocated)
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn the_large_file_shrinks_to_what_two_copies_leave_free() {
        let free = |bytes: u64| Free { bytes, inodes: 10 };
        assert_eq!(large_len(GIB, free(20 * GIB)), GIB);
        assert_eq!(large_len(GIB, free(3 * GIB)), GIB);
        // 2.5 GiB free: 1.5 GiB for two copies.
        assert_eq!(large_len(GIB, free(5 * GIB / 2)), 3 * GIB / 4);
        assert_eq!(large_len(GIB, free(GIB)), 0);
        // Rounded down to whole MiB.
        assert_eq!(large_len(GIB, free(MARGIN + (10 << 20) + 12_345)), 5 << 20);
    }

    #[test]
    fn free_space_holds_a_copy_only_with_both_margins_to_spare() {
        let free = Free {
            bytes: MARGIN + 100,
            inodes: MARGIN_INODES + 10,
        };
        assert!(free.holds(100, 10));
        assert!(!free.holds(101, 10));
        assert!(!free.holds(100, 11));
        assert!(!free.holds(u64::MAX, 0));
    }

    #[test]
    fn the_scratch_folder_reports_free_space() {
        let dir = Scratch::dir("copy-free").unwrap();
        let free = free_space(dir.path()).unwrap();
        assert!(free.bytes > 0 && free.inodes > 0, "{free:?}");
        std::fs::write(dir.path().join("f"), vec![1u8; 10_000]).unwrap();
        let (bytes, inodes) = disk_usage(dir.path());
        assert_eq!(inodes, 2);
        assert!(bytes >= 10_000, "{bytes}");
    }
}
