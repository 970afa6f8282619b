//! Lab section `mapping`: what mapping memory costs next to the calls a user
//! would otherwise make.
//!
//! - Reading a file: `read()` into a buffer against `mmap` (plain, with
//!   `MAP_POPULATE`, with `MADV_SEQUENTIAL`), with the file in the page cache
//!   (warm) and evicted first (cold). Both sides scan every 8-byte word with
//!   the same serial fold, so the difference is the mechanism.
//! - Page faults: first touch of anonymous memory per 4 KiB page, against
//!   `MAP_POPULATE`, transparent huge pages and (when reserved) hugetlb.
//! - A large block: anonymous `mmap` against `malloc` and `calloc`.
//! - `mlock` per MiB, against faulting the same pages in by touching them.
//! - Copying in and out of a region: `Region::read_at`/`write_at` copy
//!   shared memory word by word with relaxed atomics (sound beside other
//!   writers), against a plain `memcpy` between heap buffers.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use memio::map::{Advice, HugePages, MapOptions, Region, cache};

use crate::measure::keep;
use crate::support::{Scratch, XorShift, exact_bytes, human_bytes};
use crate::{Case, Chart, Error, Result, Run, Section, Unit, describe};

/// The section as registered in the lab.
pub(crate) const SECTION: Section = Section {
    name: "mapping",
    title: "mmap vs read(), page faults, huge pages, mmap vs malloc, mlock",
    about: "Scanning a file with read() into a 1 MiB buffer against mapping it (plain mmap, \
            MAP_POPULATE, MADV_SEQUENTIAL), with the file in the page cache (warm) and evicted \
            before every sample (cold); both sides fold every 8-byte word the same way, and each \
            mmap sample includes mapping and unmapping. Then the cost of a page fault per 4 KiB \
            page of fresh anonymous memory against MAP_POPULATE and huge pages; a large block \
            from anonymous mmap against malloc and calloc; mlock per MiB against faulting \
            the same memory in by touching it; and what copying in and out of shared memory \
            with relaxed atomics (Region::read_at/write_at) costs against a plain memcpy. \
            Answers: when is mmap worth it for reading a file, and what does first-touch \
            memory really cost?",
    reference: READ,
    chart: Chart::Bars,
    run,
    peer: None,
    verdict: None,
};

const READ: &str = "read() 1 MiB buffer";
const MMAP: &str = "mmap";
const MMAP_POPULATE: &str = "mmap + MAP_POPULATE";
const MMAP_SEQUENTIAL: &str = "mmap + MADV_SEQUENTIAL";
const PAGE: usize = 4096;

/// A scratch file of pseudo-random bytes, removed on drop.
struct ScratchFile {
    file: File,
    // Dropped after the file is closed.
    path: Scratch,
}

impl ScratchFile {
    fn create(len: usize) -> Result<Self> {
        let path = Scratch::path_for("mapping");
        let io = |e: std::io::Error| Error::io(path.path().display(), &e);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path.path())
            .map_err(io)?;
        let mut rng = XorShift::new(XorShift::SEED);
        let chunk: Vec<u8> = (0..1 << 20)
            .map(|_| rng.next_u64().to_le_bytes()[0])
            .collect();
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            file.write_all(&chunk[..n]).map_err(io)?;
            left -= n;
        }
        // Written back, so eviction can drop every page.
        file.sync_all().map_err(io)?;
        Ok(Self { file, path })
    }
}

/// The fold both sides apply: serial (each step needs the previous), so the
/// compiler cannot vectorise one side and not the other.
fn fold(acc: u64, word: u64) -> u64 {
    acc.rotate_left(5) ^ word
}

/// `read()` the whole file in 1 MiB pieces and fold every word.
fn scan_read(file: &mut File, buf: &mut [u8]) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut acc = 0u64;
    loop {
        let n = file.read(buf)?;
        if n == 0 {
            return Ok(acc);
        }
        for word in buf[..n].chunks_exact(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            acc = fold(acc, u64::from_ne_bytes(w));
        }
    }
}

/// Map the whole file as `mechanism` says, fold every word, unmap.
fn scan_mmap(file: &File, mechanism: &str) -> std::io::Result<u64> {
    let region = MapOptions::new()
        .private()
        .read_only()
        .populate(mechanism == MMAP_POPULATE)
        .map(file)?;
    if mechanism == MMAP_SEQUENTIAL {
        region.advise(.., Advice::Sequential)?;
    }
    Ok(region
        .as_load_only_u64s()?
        .iter()
        .fold(0, |acc, w| fold(acc, w.load())))
}

fn run(run: &mut Run<'_>) -> Result<()> {
    let full = run.config().full;
    let max = usize::try_from(run.config().max_size).unwrap_or(usize::MAX);
    let file_len = (if full { 256 << 20 } else { 32 << 20 }).min(max) / PAGE * PAGE;
    let block = (64usize << 20).min(max) / PAGE * PAGE;
    if file_len == 0 || block == 0 {
        return Err(Error::new("--max-size", "smaller than a page"));
    }
    run.plan(8 + 4 + 6 + 3 + 4 * COPY_SIZES.len() as u64);
    file_rows(run, file_len)?;
    fault_rows(run, block)?;
    malloc_rows(run, (16usize << 20).min(block))?;
    mlock_rows(run, (4usize << 20).min(block))?;
    copy_rows(run, max)?;
    Ok(())
}

/// Sizes the copy rows move per call.
const COPY_SIZES: [usize; 3] = [4 << 10, 64 << 10, 1 << 20];

/// A plain `memcpy` against the region's copies: relaxed atomics of each
/// width a region's views can claim for shared memory (both directions), a
/// plain copy for writes into private anonymous memory.
fn copy_rows(run: &mut Run<'_>, max: usize) -> Result<()> {
    let io = |e: std::io::Error| Error::io("copy rows", &e);
    for len in COPY_SIZES.into_iter().filter(|&n| n <= max) {
        let workload = format!("copy {}", exact_bytes(len as u64));
        let case = |m: &str| Case::new(m, &workload).param("bytes", len);
        let src: Vec<u8> = (0..=250u8).cycle().take(len).collect();
        let mut dst = vec![0u8; len];
        run.throughput(
            case("plain copy (memcpy, heap to heap)"),
            len as u64,
            || {
                dst.copy_from_slice(keep(&src));
                keep(&dst);
            },
        );
        let mut shared = Region::anonymous_shared(len).map_err(io)?;
        for width in [8, 4, 1] {
            // The first atomic view claims the region's width; the copies
            // then run at it (a view of another width would be refused).
            shared.release_atomic_width();
            match width {
                8 => shared.atomic_u64(0).map(drop),
                4 => shared.atomic_u32(0).map(drop),
                _ => shared.as_atomic_u8s().map(drop),
            }
            .map_err(io)?;
            shared.write_at(0, &src).map_err(io)?;
            dst.fill(0);
            run.throughput(
                case(&format!("Region::read_at, shared ({width}-byte atomics)")),
                len as u64,
                || {
                    keep(shared.read_at(0, &mut dst).is_ok());
                },
            );
            if dst != src {
                return Err(Error::new("Region::read_at", "copied different bytes"));
            }
            run.throughput(
                case(&format!("Region::write_at, shared ({width}-byte atomics)")),
                len as u64,
                || {
                    keep(shared.write_at(0, keep(&src)).is_ok());
                },
            );
        }
        let mut private = Region::anonymous(len).map_err(io)?;
        run.throughput(
            case("Region::write_at, private anonymous (plain copy)"),
            len as u64,
            || {
                keep(private.write_at(0, keep(&src)).is_ok());
            },
        );
    }
    run.note(
        "Copy rows move the same bytes in cache (the buffers stay resident). Shared memory can \
         change under a copy at any moment (another process, another mapping, an atomic view), \
         so Region::read_at/write_at move it as relaxed atomics of the width the region's \
         atomic views use (8 bytes when it has none), which the compiler may not widen into \
         vector loads; private anonymous memory, which nothing else sees while it is being \
         written, keeps the plain copy.",
    );
    Ok(())
}

fn file_rows(run: &mut Run<'_>, len: usize) -> Result<()> {
    let mut scratch = ScratchFile::create(len)?;
    let name = scratch.path.path().display().to_string();
    let io = |e: std::io::Error| Error::io(&name, &e);
    let mut buf = vec![0u8; 1 << 20];
    let expected = scan_read(&mut scratch.file, &mut buf).map_err(io)?;
    let mechanisms = [READ, MMAP, MMAP_POPULATE, MMAP_SEQUENTIAL];
    for m in mechanisms {
        let got = if m == READ {
            scan_read(&mut scratch.file, &mut buf)
        } else {
            scan_mmap(&scratch.file, m)
        }
        .map_err(io)?;
        if got != expected {
            return Err(Error::new(m, "read different data than read()"));
        }
    }

    // Warm: the file stays in the page cache.
    cache::touch(&mut scratch.file).map_err(io)?;
    let warm = format!("{} warm", exact_bytes(len as u64));
    for m in mechanisms {
        let case = Case::new(m, &warm).param("bytes", len);
        let file = &mut scratch.file;
        let buf = &mut buf;
        run.throughput(case, len as u64, || {
            let r = if m == READ {
                scan_read(file, buf)
            } else {
                scan_mmap(file, m)
            };
            keep(r.ok());
        });
    }

    // Cold: evicted before every sample, so each one reads the disk.
    let cold = format!("{} evicted", exact_bytes(len as u64));
    let samples = run.config().timing.samples;
    for m in mechanisms {
        let mut gbps = Vec::with_capacity(samples);
        for _ in 0..samples {
            cache::evict(&scratch.file).map_err(io)?;
            let start = Instant::now();
            let r = if m == READ {
                scan_read(&mut scratch.file, &mut buf)
            } else {
                scan_mmap(&scratch.file, m)
            };
            let secs = start.elapsed().as_secs_f64();
            keep(r.map_err(io)?);
            gbps.push(len as f64 / secs / 1e9);
        }
        run.record(
            Case::new(m, &cold).param("bytes", len),
            Unit::GB_PER_S,
            &gbps,
        );
    }
    let memcpy = run.memcpy_gbps();
    run.note(format!(
        "File scans of {} are in GB/s of file data; memcpy on this machine moves {memcpy:.1} \
         GB/s. read() copies each page once into a buffer that stays in cache; mmap copies \
         nothing but pays to map, fault in (or populate) and unmap every page per pass.",
        exact_bytes(len as u64)
    ));
    Ok(())
}

/// Times `op(region)` on a fresh mapping from `map` per sample and records
/// nanoseconds per 4 KiB page. The time includes mapping and unmapping.
fn per_page(
    run: &mut Run<'_>,
    mechanism: &str,
    len: usize,
    map: impl Fn() -> std::io::Result<Region>,
    touch: bool,
) -> Result<()> {
    let samples = run.config().timing.samples;
    let pages = len / PAGE;
    let mut ns = Vec::with_capacity(samples);
    // One untimed round first: the first mapping of a run pays one-off costs.
    for round in 0..=samples {
        let start = Instant::now();
        let mut region = map().map_err(|e| Error::io(mechanism, &e))?;
        if touch {
            for page in 0..pages {
                region
                    .write_at(page * PAGE, &[1])
                    .map_err(|e| Error::io(mechanism, &e))?;
            }
        }
        drop(keep(region));
        if round > 0 {
            ns.push(start.elapsed().as_secs_f64() * 1e9 / pages as f64);
        }
    }
    let workload = format!("{} anonymous, per 4 KiB page", exact_bytes(len as u64));
    run.record(
        Case::new(mechanism, workload).param("bytes", len),
        Unit::NS,
        &ns,
    );
    Ok(())
}

fn fault_rows(run: &mut Run<'_>, len: usize) -> Result<()> {
    let anon = || MapOptions::new().private().read_write().len(len);
    per_page(
        run,
        "first touch (page fault)",
        len,
        || anon().map_anonymous(),
        true,
    )?;
    per_page(
        run,
        "MAP_POPULATE, then touch",
        len,
        || anon().populate(true).map_anonymous(),
        true,
    )?;
    per_page(
        run,
        "MADV_HUGEPAGE (THP), then touch",
        len,
        || {
            let r = anon().map_anonymous()?;
            r.advise(.., Advice::HugePage)?;
            Ok(r)
        },
        true,
    )?;
    let huge_len = len.div_ceil(2 << 20) * (2 << 20);
    match MapOptions::new()
        .private()
        .read_write()
        .len(huge_len)
        .huge_pages(HugePages::Size2MiB)
        .map_anonymous()
    {
        Ok(probe) => {
            drop(probe);
            per_page(
                run,
                "MAP_HUGETLB 2 MiB, then touch",
                len,
                || {
                    anon()
                        .len(huge_len)
                        .huge_pages(HugePages::Size2MiB)
                        .map_anonymous()
                },
                true,
            )?;
        }
        Err(e) => run.note(format!(
            "MAP_HUGETLB was not measured: {} (reserve pages in /proc/sys/vm/nr_hugepages).",
            describe(&e)
        )),
    }
    run.note(
        "Page-fault rows include mmap and munmap, spread over the pages. A fault costs the \
         kernel a trap, a zeroed page and a page-table entry; MAP_POPULATE does the same work \
         in one call without the traps, and huge pages take one fault per 2 MiB.",
    );
    Ok(())
}

fn malloc_rows(run: &mut Run<'_>, len: usize) -> Result<()> {
    for touch in [true, false] {
        let workload = if touch {
            format!(
                "{} block: allocate, touch every page, free",
                exact_bytes(len as u64)
            )
        } else {
            format!("{} block: allocate and free", exact_bytes(len as u64))
        };
        let case = |m: &str| Case::new(m, &workload).param("bytes", len);
        let mut failed = None;
        run.latency(
            case("anonymous mmap (Region)"),
            Unit::US,
            || match Region::anonymous(len) {
                Ok(mut r) => {
                    if touch {
                        for page in (0..len).step_by(PAGE) {
                            let _ = r.write_at(page, &[1]);
                        }
                    }
                    keep(r);
                }
                Err(e) => failed = Some(e),
            },
        );
        if let Some(e) = failed {
            return Err(Error::io("anonymous mmap", &e));
        }
        run.latency(case("malloc (Vec::with_capacity)"), Unit::US, || {
            let mut v: Vec<u8> = Vec::with_capacity(len);
            if touch {
                // One byte per page, like the other rows: no memset.
                let spare = v.spare_capacity_mut();
                for page in (0..len).step_by(PAGE) {
                    spare[page].write(1);
                }
            }
            keep(v);
        });
        run.latency(case("calloc (vec![0; n])"), Unit::US, || {
            let mut v = vec![0u8; len];
            if touch {
                for page in (0..len).step_by(PAGE) {
                    v[page] = 1;
                }
            }
            keep(v);
        });
    }
    run.note(
        "malloc of a large block: glibc serves it with mmap until a free raises its dynamic \
         threshold (up to 32 MiB); from then on it comes from the heap, where pages stay \
         mapped between allocations and need no faults, and calloc must memset it (on fresh \
         mmap memory calloc can skip that: the kernel zeroed it). Every row touches one byte per page.",
    );
    Ok(())
}

fn mlock_rows(run: &mut Run<'_>, len: usize) -> Result<()> {
    let samples = run.config().timing.samples;
    let mib = len as f64 / f64::from(1 << 20);
    let workload = format!("{} anonymous, per MiB", exact_bytes(len as u64));
    let mut measure = |mechanism: &str, op: &dyn Fn() -> std::io::Result<Duration>| {
        let mut us = Vec::with_capacity(samples);
        for _ in 0..samples {
            us.push(op().map_err(|e| Error::io(mechanism, &e))?.as_secs_f64() * 1e6 / mib);
        }
        run.record(
            Case::new(mechanism, &workload).param("bytes", len),
            Unit::US,
            &us,
        );
        Ok::<_, Error>(())
    };
    measure("touch every page (faults)", &|| {
        let mut r = Region::anonymous(len)?;
        let start = Instant::now();
        for page in (0..len).step_by(PAGE) {
            r.write_at(page, &[1])?;
        }
        Ok(start.elapsed())
    })?;
    measure("mlock fresh memory", &|| {
        let r = Region::anonymous(len)?;
        let start = Instant::now();
        let guard = r.lock(..)?;
        let took = start.elapsed();
        drop(guard);
        Ok(took)
    })?;
    measure("mlock resident memory", &|| {
        let mut r = Region::anonymous(len)?;
        r.fill(0, len, 1)?;
        let start = Instant::now();
        let guard = r.lock(..)?;
        let took = start.elapsed();
        drop(guard);
        Ok(took)
    })?;
    run.note(format!(
        "mlock of fresh memory faults every page in and pins it; on resident memory it only \
         pins. Locked sizes stay below RLIMIT_MEMLOCK ({}).",
        memio::map::system::memlock_limit().map_or_else(|| "unlimited".to_owned(), human_bytes)
    ));
    Ok(())
}
