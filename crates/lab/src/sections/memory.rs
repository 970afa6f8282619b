//! Lab section `memory`: the mem* functions as Rust spells them.
//!
//! `copy_from_slice` is memcpy, `copy_within` memmove, `fill` memset (and
//! bzero), `==` on byte slices memcmp, `memio_alloc::bytes::copy_until`
//! memccpy and `copy_advance` mempcpy; the `memchr` crate provides memchr, memrchr and
//! memmem, measured against the plain loops a user would otherwise write.
//! The copy figure on the largest buffer is the machine's memory bandwidth,
//! which other sections quote as the ceiling for copies and IPC.

use memio::alloc::bytes::{copy_advance, copy_until};

use crate::measure::keep;
use crate::report::figure;
use crate::support::{XorShift, exact_bytes};
use crate::{Case, Chart, Config, Error, Result, Row, Run, Section, limit};

/// The section as registered in the lab.
pub(crate) const SECTION: Section = Section {
    name: "memory",
    title: "memset, bzero, memcpy, memmove, memccpy, mempcpy, memcmp, memchr, memrchr, memmem",
    about: "Throughput of the byte-buffer primitives over buffers from 4 KiB (in L1/L2) to 256 MiB \
            (main memory): copy_from_slice (memcpy), copy_within by 64 bytes (overlapping memmove), \
            fill (memset), fill(0) (bzero), copy_until (memccpy, stop byte never found), \
            copy_advance (mempcpy, two chained halves), == (memcmp of equal buffers), and search with the memchr crate against \
            the plain loops a user would otherwise write. Searches scan the whole buffer: the needle \
            sits at the far end. The copy figure on the largest buffer is this machine's memory \
            bandwidth, quoted by other sections.",
    reference: COPY,
    chart: Chart::Lines,
    run,
    peer: None,
    verdict: Some(verdict),
};

const COPY: &str = "copy_from_slice (memcpy)";
/// How far `copy_within` moves the buffer: a heavily overlapping memmove.
const SHIFT: usize = 64;
/// In `--quick` runs the plain loops stop at this size: beyond the caches
/// their speed no longer changes, and at 256 MiB one pass takes a second.
const QUICK_LOOP_LIMIT: usize = 16 << 20;
const NEEDLE: &[u8] = b"memio-needle";

/// The buffer sizes of a run: powers of 16 (quick) or 4 (full) from 4 KiB to
/// 256 MiB, no larger than `--max-size`.
fn sizes(config: &Config) -> Vec<usize> {
    let step = if config.full { 4 } else { 16 };
    let max = usize::try_from(config.max_size).unwrap_or(usize::MAX);
    std::iter::successors(Some(4096usize), |s| s.checked_mul(step))
        .take_while(|&s| s <= (256 << 20).min(max))
        .collect()
}

/// Bytes `a`..=`y` in a pseudo-random order, every page written (so no
/// measurement reads the shared zero page). `z` and `Z` never occur.
fn pattern(len: usize) -> Vec<u8> {
    let mut rng = XorShift::new(XorShift::SEED);
    (0..len)
        .map(|_| b'a' + u8::try_from(rng.next_u64() % 25).unwrap_or(0))
        .collect()
}

fn run(run: &mut Run<'_>) -> Result<()> {
    let sizes = sizes(run.config());
    let Some(&largest) = sizes.last() else {
        return Err(Error::new(
            "--max-size",
            "smaller than the smallest buffer (4 KiB)",
        ));
    };
    let full = run.config().full;
    let rows: usize = sizes
        .iter()
        .map(|&n| if full || n <= QUICK_LOOP_LIMIT { 10 } else { 7 })
        .sum();
    run.plan(rows as u64);
    let mut src = pattern(largest);
    let mut dst = vec![1u8; largest + SHIFT];
    let mut bandwidth = f64::NAN;
    for &n in &sizes {
        bandwidth = primitives(run, n, &src, &mut dst)?;
        searches(run, n, &mut src, full || n <= QUICK_LOOP_LIMIT)?;
    }
    if !full {
        run.note(format!(
            "quick run: the plain loops stop at {}; --full runs them at every size",
            exact_bytes(QUICK_LOOP_LIMIT as u64)
        ));
    }
    run.set_limit(limit::MEMCPY_GBPS, bandwidth);
    run.note(format!(
        "memcpy bandwidth on a {} buffer: {:.1} GB/s — the limit other sections quote",
        exact_bytes(largest as u64),
        bandwidth
    ));
    Ok(())
}

/// The memory verdict: memcpy in the caches and in main memory, and what
/// the memchr crate gains over the loops a user would write.
fn verdict(rows: &[Row]) -> Vec<String> {
    let at = |m: &str, w: &str| {
        rows.iter()
            .find(|r| r.mechanism == m && r.workload == w)
            .map(|r| r.median)
    };
    let mut out = Vec::new();
    let copies: Vec<&Row> = rows.iter().filter(|r| r.mechanism == COPY).collect();
    if let (Some(small), Some(large)) = (copies.first(), copies.last()) {
        out.push(format!(
            "memcpy (copy_from_slice): {} GB/s at {}, in the caches; {} GB/s at {}, from main memory",
            figure(small.median),
            small.workload,
            figure(large.median),
            large.workload
        ));
        let others: Vec<String> = [
            "fill (memset)",
            "fill(0) (bzero)",
            "copy_within (memmove)",
            "copy_advance (mempcpy)",
            "copy_until (memccpy)",
            "== (memcmp)",
        ]
        .iter()
        .filter_map(|m| Some(format!("{m} {} GB/s", figure(at(m, &large.workload)?))))
        .collect();
        if !others.is_empty() {
            out.push(format!("at {}: {}", large.workload, others.join(", ")));
        }
    }
    // The largest size where the plain loops ran too.
    let searches = [
        ("memchr::memchr", "iter().position (loop memchr)"),
        ("memchr::memmem", "windows().position (loop memmem)"),
    ];
    let loop_size = rows
        .iter()
        .rev()
        .find(|r| r.mechanism == searches[0].1)
        .map(|r| r.workload.clone());
    if let Some(w) = loop_size {
        let gains: Vec<String> = searches
            .iter()
            .filter_map(|(fast, plain)| {
                let (f, p) = (at(fast, &w)?, at(plain, &w)?);
                Some(format!(
                    "{fast} {} GB/s is {:.0}x {plain}",
                    figure(f),
                    f / p
                ))
            })
            .collect();
        if !gains.is_empty() {
            out.push(format!("search at {w}: {}", gains.join("; ")));
        }
    }
    out
}

fn case(mechanism: &str, n: usize) -> Case {
    Case::new(mechanism, exact_bytes(n as u64)).param("bytes", n)
}

/// memset, memmove, memcpy and memcmp over `n` bytes; returns the memcpy
/// figure in GB/s.
fn primitives(run: &mut Run<'_>, n: usize, src: &[u8], dst: &mut [u8]) -> Result<f64> {
    run.throughput(case("fill (memset)", n), n as u64, || {
        dst[..n].fill(keep(0x5a));
        keep(&dst);
    });
    run.throughput(case("copy_within (memmove)", n), n as u64, || {
        dst[..n + SHIFT].copy_within(SHIFT..n + SHIFT, 0);
        keep(&dst);
    });
    let bandwidth = run.throughput(case(COPY, n), n as u64, || {
        dst[..n].copy_from_slice(&src[..n]);
        keep(&dst);
    });
    if src[..n] != dst[..n] {
        return Err(Error::new(
            "memory",
            "copy_from_slice produced a different buffer",
        ));
    }
    run.throughput(case("== (memcmp)", n), n as u64, || {
        keep(keep(&src[..n]) == keep(&dst[..n]));
    });
    legacy(run, n, src, dst)?;
    Ok(bandwidth)
}

/// The seed's other byte functions: bzero (memset with 0), memccpy with a
/// stop byte that never comes (a full search and a full copy), and mempcpy
/// as two chained halves.
fn legacy(run: &mut Run<'_>, n: usize, src: &[u8], dst: &mut [u8]) -> Result<()> {
    run.throughput(case("fill(0) (bzero)", n), n as u64, || {
        dst[..n].fill(keep(0));
        keep(&dst);
    });
    // `pattern` holds only letters, so a '\n' stop byte is never found:
    // memccpy scans and copies all `n` bytes, its worst case.
    dst[..n].fill(0);
    check(
        copy_until(&mut dst[..n], &src[..n], b'\n').is_none(),
        "copy_until",
    )?;
    check(src[..n] == dst[..n], "copy_until")?;
    run.throughput(case("copy_until (memccpy)", n), n as u64, || {
        keep(copy_until(&mut dst[..n], keep(&src[..n]), keep(b'\n')));
    });
    let half = n / 2;
    run.throughput(case("copy_advance (mempcpy)", n), n as u64, || {
        let rest = copy_advance(&mut dst[..n], keep(&src[..half]));
        keep(copy_advance(rest, keep(&src[half..n])));
    });
    check(src[..n] == dst[..n], "copy_advance")
}

/// memchr, memrchr and memmem over `n` bytes with the needle at the far end,
/// and the plain loops when `loops` is set. `src` is restored afterwards.
fn searches(run: &mut Run<'_>, n: usize, src: &mut [u8], loops: bool) -> Result<()> {
    // memchr: the needle is the last byte.
    src[n - 1] = b'z';
    check(memchr::memchr(b'z', &src[..n]) == Some(n - 1), "memchr")?;
    run.throughput(case("memchr::memchr", n), n as u64, || {
        keep(memchr::memchr(keep(b'z'), keep(&src[..n])));
    });
    if loops {
        let needle = keep(b'z');
        check(
            src[..n].iter().position(|&b| b == needle) == Some(n - 1),
            "loop",
        )?;
        run.throughput(case("iter().position (loop memchr)", n), n as u64, || {
            keep(keep(&src[..n]).iter().position(|&b| b == needle));
        });
    }
    src[n - 1] = b'a';

    // memrchr: the needle is the first byte.
    let first = src[0];
    src[0] = b'Z';
    check(memchr::memrchr(b'Z', &src[..n]) == Some(0), "memrchr")?;
    run.throughput(case("memchr::memrchr", n), n as u64, || {
        keep(memchr::memrchr(keep(b'Z'), keep(&src[..n])));
    });
    if loops {
        let needle = keep(b'Z');
        run.throughput(case("iter().rposition (loop memrchr)", n), n as u64, || {
            keep(keep(&src[..n]).iter().rposition(|&b| b == needle));
        });
    }
    src[0] = first;

    // memmem: the needle ends the buffer.
    let at = n - NEEDLE.len();
    let saved: Vec<u8> = src[at..n].to_vec();
    src[at..n].copy_from_slice(NEEDLE);
    let finder = memchr::memmem::Finder::new(NEEDLE);
    check(finder.find(&src[..n]) == Some(at), "memmem")?;
    run.throughput(case("memchr::memmem", n), n as u64, || {
        keep(finder.find(keep(&src[..n])));
    });
    if loops {
        run.throughput(
            case("windows().position (loop memmem)", n),
            n as u64,
            || {
                keep(
                    keep(&src[..n])
                        .windows(NEEDLE.len())
                        .position(|w| w == NEEDLE),
                );
            },
        );
    }
    src[at..n].copy_from_slice(&saved);
    Ok(())
}

fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            "memory",
            format!("{what} did not find the needle where it was placed"),
        ))
    }
}

/// Measures memcpy bandwidth on a buffer larger than the caches (64 MiB, or
/// `--max-size` when smaller), in GB/s; for sections that quote it when the
/// `memory` section did not run.
pub(crate) fn memcpy_bandwidth(config: &Config) -> f64 {
    let n = usize::try_from(config.max_size.min(64 << 20)).unwrap_or(64 << 20);
    let src = pattern(n);
    let mut dst = vec![1u8; n];
    let mut samples = config.timing.per_op_infallible(|| {
        dst.copy_from_slice(&src);
        keep(&dst);
    });
    samples.sort_by(f64::total_cmp);
    n as f64 / crate::measure::median(&samples) / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_span_4k_to_256m_and_respect_max_size() {
        let mut config = Config {
            full: false,
            max_size: 256 << 20,
            max_size_given: false,
            timing: crate::Timing {
                samples: 1,
                sample_time: std::time::Duration::from_millis(1),
            },
            preload: None,
        };
        assert_eq!(
            sizes(&config),
            vec![4 << 10, 64 << 10, 1 << 20, 16 << 20, 256 << 20]
        );
        config.full = true;
        assert_eq!(sizes(&config).len(), 9);
        config.max_size = 1 << 20;
        assert_eq!(sizes(&config).last(), Some(&(1 << 20)));
    }

    #[test]
    fn the_verdict_quotes_memcpy_at_both_ends_and_the_search_gains() {
        let row = |m: &str, w: &str, v: f64| {
            Row::from_samples(Case::new(m, w), crate::Unit::GB_PER_S, &[v]).unwrap()
        };
        let rows = vec![
            row(COPY, "4 KiB", 80.0),
            row("memchr::memchr", "4 KiB", 40.0),
            row("iter().position (loop memchr)", "4 KiB", 4.0),
            row(COPY, "256 MiB", 15.0),
            row("fill (memset)", "256 MiB", 20.0),
        ];
        assert_eq!(
            verdict(&rows),
            vec![
                "memcpy (copy_from_slice): 80.00 GB/s at 4 KiB, in the caches; 15.00 GB/s at \
                 256 MiB, from main memory",
                "at 256 MiB: fill (memset) 20.00 GB/s",
                "search at 4 KiB: memchr::memchr 40.00 GB/s is 10x iter().position (loop memchr)",
            ]
        );
    }

    #[test]
    fn pattern_never_holds_the_needles() {
        let p = pattern(1 << 16);
        assert!(p.iter().all(|b| (b'a'..=b'y').contains(b)));
        assert!(memchr::memmem::find(&p, NEEDLE).is_none());
    }
}
