//! Lab section `async-read`: reading many files through each batch backend.
//!
//! - Many small files (500 quick, 10,000 full, 4–64 KiB) and a few
//!   large ones (4 × 16 MiB quick, 4 × 64 MiB full, within `--max-size`),
//!   warm and evicted before every sample: one read after another
//!   (sequential), a thread pool, POSIX AIO, `io_uring`.
//! - `memio sum`'s job on the small files, evicted: BLAKE3 of every file
//!   through the batch engine against a sequential loop doing the same
//!   hash.
//!
//! Every backend reads the same files with the same buffer budget (32 ×
//! 128 KiB) and hands every byte to a callback that folds it, so the
//! difference is how the reads are issued.

use std::path::{Path, PathBuf};

use memio::io::batch::{Backend, Batch, Event};
use memio::io::sum::{Algo, Hasher, sum_files};

use super::copy::{drop_cached, sampled, sync_dir};
use crate::measure::keep;
use crate::support::{Scratch, XorShift, exact_bytes};
use crate::{Case, Chart, Error, Result, Run, Section};

/// The section as registered in the lab.
pub(crate) const SECTION: Section = Section {
    name: "async-read",
    title: "Reading many files: io_uring, threads, POSIX AIO vs one at a time",
    about: "Many small files (4-64 KiB) and a few large ones read to the last byte by memio's \
            batch engine through each backend: one read after another (sequential), a pool of \
            reader threads, POSIX AIO (glibc's aio_read), and io_uring, all with the same 32 \
            buffers of 128 KiB; warm (in the page cache) and evicted before every sample. Then \
            memio sum's job, BLAKE3 of every small file, through the batch engine against a \
            sequential loop. Answers: how much does keeping many reads in flight buy, and \
            which backend to use.",
    reference: SEQUENTIAL,
    chart: Chart::Bars,
    run,
    peer: None,
    verdict: None,
};

const SEQUENTIAL: &str = "sequential (read one file after another)";

fn mechanism(backend: Backend) -> &'static str {
    match backend {
        Backend::Sequential => SEQUENTIAL,
        Backend::Threads => "thread pool",
        Backend::Aio => "POSIX AIO",
        Backend::IoUring => "io_uring",
        _ => "auto",
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path.display(), &e)
}

/// Makes `n` files with sizes from `sizes`, written back so they can be
/// dropped from the page cache.
fn make_files(
    dir: &Path,
    n: usize,
    sizes: impl Fn(&mut XorShift) -> usize,
) -> Result<Vec<PathBuf>> {
    let mut rng = XorShift::new(XorShift::SEED ^ n as u64);
    (0..n)
        .map(|i| {
            let p = dir.join(format!("f{i:05}"));
            let len = sizes(&mut rng);
            let data: Vec<u8> = (0..len).map(|j| (j ^ i).to_le_bytes()[0]).collect();
            std::fs::write(&p, data).map_err(io(&p))?;
            Ok(p)
        })
        .collect::<Result<Vec<_>>>()
        .and_then(|paths| sync_dir(dir).map(|()| paths))
}

fn run(run: &mut Run<'_>) -> Result<()> {
    let full = run.config().full;
    let max = usize::try_from(run.config().max_size).unwrap_or(usize::MAX);
    let small_n = if full { 10_000 } else { 500 };
    let large_len = (if full { 64usize << 20 } else { 16 << 20 }).min(max);
    let dir = Scratch::dir("async-read")?;
    let small_dir = dir.path().join("small");
    let large_dir = dir.path().join("large");
    for d in [&small_dir, &large_dir] {
        std::fs::create_dir(d).map_err(io(d))?;
    }
    let small = make_files(&small_dir, small_n, |r| {
        4096 + usize::try_from(r.next_u64() % (60 << 10)).unwrap_or(0)
    })?;
    let large = make_files(&large_dir, 4, |_| large_len)?;
    let uring = Batch::new()
        .backend(Backend::IoUring)
        .read(&[] as &[PathBuf], |_| {})
        .is_ok();
    let backends: Vec<Backend> = Backend::CONCRETE
        .into_iter()
        .filter(|&b| b != Backend::IoUring || uring)
        .collect();
    run.plan(4 * backends.len() as u64 + 2);
    if !uring {
        run.note("io_uring is not measured: the kernel (or a seccomp policy) refuses it here");
    }
    let small_label = format!("{small_n} files of 4-64 KiB");
    let large_label = format!("4 files of {}", exact_bytes(large_len as u64));
    let mut files_per_s = Vec::new();
    for (label, paths, is_small) in [(&small_label, &small, true), (&large_label, &large, false)] {
        for evicted in [false, true] {
            for &backend in &backends {
                let secs = read_rows(run, label, paths, backend, evicted)?;
                if evicted && is_small {
                    files_per_s.push((backend, paths.len() as f64 / secs));
                }
            }
        }
    }
    sum_rows(run, &small, &small_label)?;
    let rates: Vec<String> = files_per_s
        .iter()
        .map(|(b, r)| format!("{} {r:.0}", mechanism(*b)))
        .collect();
    run.note(format!(
        "Files per second on the evicted small files: {}. Rows are GB/s of file data; the \
         batch never allocates more than its 32 × 128 KiB of buffers (the thread pool: two per \
         thread), whatever the number or size of the files.",
        rates.join(", ")
    ));
    drop(dir);
    if small_n >= 10_000 {
        crate::support::note_mass_removal();
    }
    Ok(())
}

/// One backend over `paths`; records GB/s and returns the median seconds
/// per pass.
fn read_rows(
    run: &mut Run<'_>,
    label: &str,
    paths: &[PathBuf],
    backend: Backend,
    evicted: bool,
) -> Result<f64> {
    let bytes: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let workload = format!("{label}{}", if evicted { ", evicted" } else { ", warm" });
    let case = Case::new(mechanism(backend), &workload)
        .param("files", paths.len())
        .param("bytes", bytes);
    let samples = if evicted {
        3
    } else {
        run.config().timing.samples.min(5)
    };
    let batch = Batch::new().backend(backend);
    let gbps = sampled(
        run,
        case,
        bytes,
        samples,
        || if evicted { drop_cached(paths) } else { Ok(()) },
        || {
            let mut fold = 0u8;
            let report = batch
                .read(paths, |e| {
                    if let Event::Data { bytes, .. } = e {
                        fold ^= bytes[bytes.len() - 1];
                    }
                })
                .map_err(|e| Error::new(mechanism(backend), e))?;
            keep(fold);
            if report.failed > 0 || report.bytes != bytes {
                return Err(Error::new(
                    mechanism(backend),
                    format!("read {} of {bytes} bytes", report.bytes),
                ));
            }
            Ok(())
        },
    )?;
    Ok(bytes as f64 / 1e9 / gbps)
}

/// `memio sum` over the evicted small files against a sequential loop
/// doing the same hash.
fn sum_rows(run: &mut Run<'_>, small: &[PathBuf], label: &str) -> Result<()> {
    let bytes: u64 = small
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let workload = format!("BLAKE3 of {label}, evicted");
    let case = |m: &str| {
        Case::new(m, &workload)
            .param("files", small.len())
            .param("bytes", bytes)
    };
    let evict = || drop_cached(small);
    sampled(run, case(SEQUENTIAL), bytes, 3, evict, || {
        for p in small {
            let data = std::fs::read(p).map_err(io(p))?;
            let mut h = Hasher::new(Algo::Blake3);
            h.update(&data);
            keep(h.finish());
        }
        Ok(())
    })?;
    sampled(
        run,
        case("memio sum (batch, auto backend)"),
        bytes,
        3,
        evict,
        || {
            let mut failed = None;
            sum_files(&Batch::new(), small, Algo::Blake3, |_, d| {
                if let Err(e) = d {
                    failed.get_or_insert(e);
                }
            })
            .map_err(|e| Error::new("memio sum", e))?;
            failed.map_or(Ok(()), |e| Err(Error::new("memio sum", e)))
        },
    )?;
    Ok(())
}
