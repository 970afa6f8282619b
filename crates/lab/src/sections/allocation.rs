//! Lab section `allocation`: the seed's "choosing a memory allocation
//! mechanism" table, measured.
//!
//! Every mechanism is measured against system malloc in the same run:
//! allocate+free pairs and realloc-style growth over sizes from 16 B to
//! 1 MiB, a mixed-size workload with 64 live blocks, and the memory each
//! mechanism holds (reserved / live bytes) after the same random workload.
//! System malloc and calloc are called through `memio_alloc::sys::SysBlock`
//! (`std::alloc::System`: malloc, calloc, realloc, free behind a safe,
//! owning type), since the lab needs no `unsafe` of its own; anonymous mmap through
//! `memio_alloc::Memory` (mmap, mremap, munmap).

use memio::alloc::allocator_api2::vec::Vec as AVec;
use memio::alloc::sys::{self, SysBlock};
use memio::alloc::{
    ArenaOptions, BuddyOptions, Checks, Fit, FreeListOptions, Memory, PoolOptions, SyncPoolOptions,
};

use std::sync::{Barrier, Mutex};
use std::time::Instant;

use crate::measure::{Batch, batch, keep};
use crate::support::{XorShift, exact_bytes};
use crate::{Case, Chart, Config, Error, Result, Run, Section, Unit};

/// The section as registered in the lab.
pub(crate) const SECTION: Section = Section {
    name: "allocation",
    title: "malloc, calloc, Pool, FreeList, Buddy, Arena, anonymous mmap",
    about: "Nanoseconds per allocate+free pair and per growth (allocate N/2, grow to N, free) for \
            sizes from 16 B to 1 MiB: system malloc/calloc/realloc, memio-alloc's Pool (its safe, \
            validating free; and with every debug check on), SyncPool (through a per-thread \
            handle and its cache), FreeList first-fit and best-fit, Buddy, Arena (bump + rewind) \
            and an anonymous mmap per block (pages not touched); at 32 B also two threads sharing \
            one SyncPool (a handle each) or one Mutex<Pool> (ns per pair of the two threads \
            together). Then a mixed \
            workload (64 live blocks of 16 B to 4 KiB, one free + one allocate per op) and the \
            memory held after the same random workload: footprint (bytes from the heap start to \
            the end of the highest live block) over the bytes live. Answers: which mechanism for \
            which size, and what it costs in time and in memory.",
    reference: MALLOC,
    chart: Chart::Lines,
    run,
    peer: None,
    verdict: None,
};

const MALLOC: &str = "system malloc";
const CALLOC: &str = "calloc";
const POOL: &str = "Pool";
const SYNC_POOL: &str = "SyncPool";
const POOL_CHECKED: &str = "Pool, all checks on";
const SYNC_POOL_2: &str = "SyncPool, 2 threads";
const MUTEX_POOL_2: &str = "Mutex<Pool>, 2 threads";
const FIRST: &str = "FreeList first-fit";
const BEST: &str = "FreeList best-fit";
const BUDDY: &str = "Buddy";
const ARENA: &str = "Arena";
const MMAP: &str = "anonymous mmap";

/// The block size of seed 000's pool, where the two-thread rows run.
const SEED_BLOCK: usize = 32;
/// Live blocks in the mixed workload.
const SLOTS: usize = 64;
/// Largest request of the mixed and random workloads.
const MIXED_MAX: usize = 4096;

/// Block sizes of a run: powers of 16 (quick) or 4 (full) from 16 B to
/// 1 MiB, plus 32 B (the seed's pool block),
/// no larger than `--max-size`.
fn sizes(config: &Config) -> Vec<usize> {
    let step = if config.full { 4 } else { 16 };
    let max = usize::try_from(config.max_size).unwrap_or(usize::MAX);
    let mut sizes: Vec<usize> = std::iter::successors(Some(16usize), |s| s.checked_mul(step))
        .take_while(|&s| s <= (1 << 20).min(max))
        .collect();
    sizes.insert(1, SEED_BLOCK);
    sizes
}

/// Request sizes from 16 B to 4 KiB, log-uniform (small requests are
/// common), from a fixed xorshift sequence: the same for every mechanism.
fn mixed_sizes(n: usize) -> Vec<usize> {
    let mut x = XorShift::new(XorShift::SEED);
    (0..n)
        .map(|_| {
            let u = x.next_f64();
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "16 * 2^(8u) lies in 16..4096"
            )]
            let size = (16.0 * (u * 8.0).exp2()) as usize;
            size.clamp(16, MIXED_MAX)
        })
        .collect()
}

fn fail(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new("allocation", format!("{what}: {e}"))
}

/// Region size for allocators serving blocks of `n` bytes.
fn region_for(n: usize) -> usize {
    (4 * n).max(64 << 10).next_power_of_two()
}

fn run(run: &mut Run<'_>) -> Result<()> {
    let sizes = sizes(run.config());
    if sizes.is_empty() {
        return Err(Error::new(
            "--max-size",
            "smaller than the smallest block (16 B)",
        ));
    }
    let growth_sizes: Vec<usize> = sizes.iter().copied().filter(|&n| n != SEED_BLOCK).collect();
    run.plan(sizes.len() as u64 * 10 + 2 + growth_sizes.len() as u64 * 7 + 5 + 7);
    for &n in &sizes {
        pairs(run, n)?;
    }
    shared(run)?;
    for &n in &growth_sizes {
        growth(run, n)?;
    }
    mixed(run)?;
    fragmentation(run)?;
    run.note(
        "mmap rows map and unmap without touching the pages: the first write to each 4 KiB page \
         costs a page fault on top. Pool, SyncPool, FreeList and Buddy blocks are owning handles \
         that free themselves on drop through the allocator's validating free (range, block \
         boundary and, for Pool, FreeList and Buddy, the live bit).",
    );
    Ok(())
}

/// Two threads sharing one pool of 32-byte blocks, each doing allocate+free
/// pairs: a `SyncPool` through one handle per thread, and a `Mutex<Pool>`.
/// Each sample runs a fixed number of pairs and records the wall time per
/// pair of the two threads together, from the moment the first thread
/// starts its loop (both spawned and set up) to the moment the last one
/// ends, so thread start-up, which a loaded machine can delay by
/// milliseconds, stays out.
fn shared(run: &mut Run<'_>) -> Result<()> {
    let n = SEED_BLOCK;
    let pairs: u64 = if run.config().full {
        4_000_000
    } else {
        1_000_000
    };
    let samples = run.config().timing.samples;
    let case =
        |m: &str| Case::new(m, format!("alloc+free {}", exact_bytes(n as u64))).param("bytes", n);
    let lock_free = SyncPoolOptions::new(n)
        .blocks(128)
        .build()
        .map_err(|e| fail(SYNC_POOL, e))?;
    let locked = Mutex::new(
        PoolOptions::new(n)
            .blocks(64)
            .build()
            .map_err(|e| fail(POOL, e))?,
    );
    let a = two_threads(samples, pairs, &|| {
        let cache = lock_free.handle();
        Box::new(move |count| {
            for _ in 0..count {
                drop(keep(cache.alloc_block()));
            }
        })
    });
    let b = two_threads(samples, pairs, &|| {
        Box::new(|count| {
            for _ in 0..count {
                if let Ok(pool) = locked.lock() {
                    drop(keep(pool.alloc_block()));
                }
            }
        })
    });
    let a = run
        .record(case(SYNC_POOL_2), Unit::NS, &a)
        .map_or(f64::NAN, |r| r.median);
    let b = run
        .record(case(MUTEX_POOL_2), Unit::NS, &b)
        .map_or(f64::NAN, |r| r.median);
    run.note(format!(
        "two threads sharing one pool ({pairs} pairs per sample): SyncPool {a:.1} ns per pair, \
         Mutex<Pool> {b:.1} ns. Each SyncPool thread allocates from its own handle's cache, \
         which moves blocks to and from the shared part {} at a time; each Mutex<Pool> pair \
         takes the lock, whose cache line moves between the cores",
        lock_free.magazine()
    ));
    Ok(())
}

/// Runs `pairs / 2` iterations of a body on each of two threads at once,
/// per sample: each thread makes its body (`setup`), waits for the other,
/// then times its own loop; a sample spans the first start to the last end
/// in ns per pair (the main thread's clock would wait for the main thread
/// to be scheduled again).
fn two_threads<'p>(
    samples: usize,
    pairs: u64,
    setup: &(dyn Fn() -> Box<dyn Fn(u64) + 'p> + Sync),
) -> Vec<f64> {
    (0..samples)
        .map(|_| {
            let ready = Barrier::new(2);
            let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
                let threads: Vec<_> = (0..2)
                    .map(|_| {
                        s.spawn(|| {
                            let body = setup();
                            ready.wait();
                            let start = Instant::now();
                            body(pairs / 2);
                            (start, Instant::now())
                        })
                    })
                    .collect();
                threads.into_iter().filter_map(|t| t.join().ok()).collect()
            });
            let first = spans.iter().map(|&(start, _)| start).min();
            let last = spans.iter().map(|&(_, end)| end).max();
            match (first, last) {
                (Some(first), Some(last)) if spans.len() == 2 => {
                    last.duration_since(first).as_secs_f64() * 1e9 / pairs as f64
                }
                _ => f64::NAN,
            }
        })
        .collect()
}

/// Allocate+free pairs of `n` bytes.
#[allow(
    clippy::too_many_lines,
    reason = "one row per mechanism, listed side by side"
)]
fn pairs(run: &mut Run<'_>, n: usize) -> Result<()> {
    let case =
        |m: &str| Case::new(m, format!("alloc+free {}", exact_bytes(n as u64))).param("bytes", n);

    let pool = PoolOptions::new(n)
        .blocks(4)
        .build()
        .map_err(|e| fail(POOL, e))?;
    pool.alloc_block()
        .map_err(|e| fail(POOL, e))?
        .free()
        .map_err(|e| fail(POOL, e))?;
    let sync = SyncPoolOptions::new(n)
        .blocks(64)
        .build()
        .map_err(|e| fail(SYNC_POOL, e))?;
    let sync_cache = sync.handle();
    let checked = PoolOptions::new(n)
        .blocks(4)
        .checks(Checks::all())
        .build()
        .map_err(|e| fail(POOL_CHECKED, e))?;
    let first = FreeListOptions::new(region_for(n))
        .build()
        .map_err(|e| fail(FIRST, e))?;
    let best = FreeListOptions::new(region_for(n))
        .fit(Fit::Best)
        .build()
        .map_err(|e| fail(BEST, e))?;
    for heap in [&first, &best] {
        heap.alloc_block(n, 16)
            .map_err(|e| fail(FIRST, e))?
            .free()
            .map_err(|e| fail(FIRST, e))?;
    }
    let buddy = BuddyOptions::new(region_for(n), 16)
        .build()
        .map_err(|e| fail(BUDDY, e))?;
    buddy
        .alloc_block(n, 16)
        .map_err(|e| fail(BUDDY, e))?
        .free()
        .map_err(|e| fail(BUDDY, e))?;
    let mut arena = ArenaOptions::new(region_for(n))
        .build()
        .map_err(|e| fail(ARENA, e))?;
    Memory::map(n).map_err(|e| Error::io(MMAP, &e))?;

    let cases = vec![
        (case(MALLOC), batch(|| drop(keep(SysBlock::new(keep(n)))))),
        (case(POOL), batch(|| drop(keep(pool.alloc_block())))),
        (
            case(CALLOC),
            batch(|| drop(keep(SysBlock::zeroed(keep(n))))),
        ),
        (
            case(SYNC_POOL),
            batch(|| drop(keep(sync_cache.alloc_block()))),
        ),
        (
            case(FIRST),
            batch(|| drop(keep(first.alloc_block(keep(n), 16)))),
        ),
        (
            case(BEST),
            batch(|| drop(keep(best.alloc_block(keep(n), 16)))),
        ),
        (
            case(BUDDY),
            batch(|| drop(keep(buddy.alloc_block(keep(n), 16)))),
        ),
        (
            case(ARENA),
            batch(move || {
                let mark = arena.mark();
                keep(arena.alloc(keep(n), 16).is_ok());
                keep(arena.rewind(mark).is_ok());
            }),
        ),
        (case(MMAP), batch(|| drop(keep(Memory::map(keep(n)))))),
        (
            case(POOL_CHECKED),
            batch(|| drop(keep(checked.alloc_block()))),
        ),
    ];
    run.round_robin(cases);
    Ok(())
}

// The memio allocators grow through allocator_api2's Vec, which calls
// their `Allocator::grow` (in place when they can).
fn grow_vec<A: memio::alloc::allocator_api2::alloc::Allocator>(
    a: A,
    half: usize,
    n: usize,
) -> bool {
    let mut v: AVec<u8, A> = AVec::new_in(a);
    v.try_reserve_exact(half).is_ok() && v.try_reserve_exact(n).is_ok() && keep(v.capacity()) >= n
}

/// Allocate `n / 2`, grow to `n` (realloc; in place when the allocator
/// can), free.
fn growth(run: &mut Run<'_>, n: usize) -> Result<()> {
    let half = (n / 2).max(1);
    let case =
        |m: &str| Case::new(m, format!("grow to {}", exact_bytes(n as u64))).param("bytes", n);

    let mut b = SysBlock::new(half).ok_or_else(|| fail(MALLOC, "malloc failed"))?;
    if !b.resize(n) {
        return Err(fail(MALLOC, "realloc failed"));
    }
    drop(b);
    let pool = PoolOptions::new(n)
        .blocks(2)
        .build()
        .map_err(|e| fail(POOL, e))?;
    let first = FreeListOptions::new(region_for(n))
        .build()
        .map_err(|e| fail(FIRST, e))?;
    let best = FreeListOptions::new(region_for(n))
        .fit(Fit::Best)
        .build()
        .map_err(|e| fail(BEST, e))?;
    let buddy = BuddyOptions::new(region_for(n), 16)
        .build()
        .map_err(|e| fail(BUDDY, e))?;
    let mut arena = ArenaOptions::new(region_for(n))
        .build()
        .map_err(|e| fail(ARENA, e))?;
    for (name, ok) in [
        (POOL, grow_vec(&pool, half, n)),
        (FIRST, grow_vec(&first, half, n)),
        (BEST, grow_vec(&best, half, n)),
        (BUDDY, grow_vec(&buddy, half, n)),
    ] {
        if !ok {
            return Err(fail(name, format!("growing {half} to {n} bytes failed")));
        }
    }

    run.round_robin(vec![
        (
            case(MALLOC),
            batch(|| {
                if let Some(mut b) = SysBlock::new(keep(half)) {
                    keep(b.resize(keep(n)));
                    keep(b);
                }
            }),
        ),
        (
            case(POOL),
            batch(|| {
                keep(grow_vec(&pool, keep(half), n));
            }),
        ),
        (
            case(FIRST),
            batch(|| {
                keep(grow_vec(&first, keep(half), n));
            }),
        ),
        (
            case(BEST),
            batch(|| {
                keep(grow_vec(&best, keep(half), n));
            }),
        ),
        (
            case(BUDDY),
            batch(|| {
                keep(grow_vec(&buddy, keep(half), n));
            }),
        ),
        (
            case(ARENA),
            batch(move || {
                let mark = arena.mark();
                keep(grow_vec(&arena, keep(half), n));
                keep(arena.rewind(mark).is_ok());
            }),
        ),
        (
            case(MMAP),
            batch(|| {
                if let Ok(mut m) = Memory::map(keep(half)) {
                    keep(m.resize(keep(n)).is_ok());
                    keep(m);
                }
            }),
        ),
    ]);
    Ok(())
}

// The same steps for every mechanism: each slot's block (an owning handle)
// is dropped, freeing it, before the slot is refilled.
fn steps<'a, P: 'a>(seq: &'a [usize], alloc: impl Fn(usize) -> Option<P> + 'a) -> Batch<'a> {
    let mut slots: Vec<Option<P>> = (0..SLOTS).map(|_| None).collect();
    let mut i = 0usize;
    batch(move || {
        let k = i % SLOTS;
        slots[k] = None;
        slots[k] = alloc(seq[i % seq.len()]);
        i += 1;
    })
}

/// One free + one allocate per op over 64 live slots, sizes 16 B..4 KiB.
fn mixed(run: &mut Run<'_>) -> Result<()> {
    let seq = mixed_sizes(4096);
    let seq = &seq;
    let workload = format!("mixed 16 B–4 KiB, {SLOTS} live");
    let case = |m: &str| Case::new(m, workload.clone()).param("live", SLOTS);

    let pool = PoolOptions::new(MIXED_MAX)
        .blocks(SLOTS)
        .build()
        .map_err(|e| fail(POOL, e))?;
    let first = FreeListOptions::new(4 << 20)
        .build()
        .map_err(|e| fail(FIRST, e))?;
    let best = FreeListOptions::new(4 << 20)
        .fit(Fit::Best)
        .build()
        .map_err(|e| fail(BEST, e))?;
    let buddy = BuddyOptions::new(4 << 20, 16)
        .build()
        .map_err(|e| fail(BUDDY, e))?;
    run.round_robin(vec![
        (case(MALLOC), steps(seq, SysBlock::new)),
        (case(POOL), steps(seq, |_| pool.alloc_block().ok())),
        (case(FIRST), steps(seq, |s| first.alloc_block(s, 16).ok())),
        (case(BEST), steps(seq, |s| best.alloc_block(s, 16).ok())),
        (case(BUDDY), steps(seq, |s| buddy.alloc_block(s, 16).ok())),
    ]);
    Ok(())
}

/// The random workload of the fragmentation rows: 20,000 steps over 512
/// slots; each step frees a pseudo-randomly chosen slot and, two times in
/// three, refills it with a request from `mixed_sizes`.
struct Workload {
    steps: Vec<(usize, Option<usize>)>,
}

impl Workload {
    const SLOTS: usize = 512;

    fn new() -> Self {
        let mut rng = XorShift::new(0x2545_F491_4F6C_DD1D);
        let steps = mixed_sizes(20_000)
            .into_iter()
            .map(|size| {
                let x = rng.next_u64();
                #[allow(clippy::cast_possible_truncation, reason = "modulo a small slot count")]
                let slot = (x % Self::SLOTS as u64) as usize;
                (slot, ((x >> 32) % 3 != 0).then_some(size))
            })
            .collect();
        Self { steps }
    }

    /// Runs the workload and returns the bytes live at the end with the
    /// blocks still live, for the caller to read statistics and free.
    fn replay<P>(
        &self,
        mut alloc: impl FnMut(usize) -> Option<P>,
        mut free: impl FnMut(P),
    ) -> (usize, Vec<P>) {
        let mut slots: Vec<Option<(P, usize)>> = (0..Self::SLOTS).map(|_| None).collect();
        for &(slot, refill) in &self.steps {
            if let Some((p, _)) = slots[slot].take() {
                free(p);
            }
            if let Some(size) = refill {
                slots[slot] = alloc(size).map(|p| (p, size));
            }
        }
        let live = slots.iter().flatten().map(|(_, s)| s).sum();
        (live, slots.into_iter().flatten().map(|(p, _)| p).collect())
    }
}

fn factor(footprint: usize, live: usize) -> f64 {
    if live == 0 {
        f64::NAN
    } else {
        footprint as f64 / live as f64
    }
}

/// Footprint / live bytes after the same random workload, per mechanism.
fn fragmentation(run: &mut Run<'_>) -> Result<()> {
    let w = Workload::new();
    let case =
        |m: &str| Case::new(m, "random workload: footprint / live").param("steps", w.steps.len());
    let mut notes = Vec::new();

    run.record(case(MALLOC), Unit::FACTOR, &[malloc_factor(&w)]);
    run.record(case(POOL), Unit::FACTOR, &[pool_factor(&w)?]);
    for (name, fit) in [(FIRST, Fit::First), (BEST, Fit::Best)] {
        let (f, note) = free_list_factor(&w, name, fit)?;
        run.record(case(name), Unit::FACTOR, &[f]);
        notes.push(note);
    }
    let (f, note) = buddy_factor(&w)?;
    run.record(case(BUDDY), Unit::FACTOR, &[f]);
    notes.push(note);

    // An arena frees nothing one by one: everything ever allocated stays.
    let arena = ArenaOptions::new(64 << 20)
        .build()
        .map_err(|e| fail(ARENA, e))?;
    let (live, _) = w.replay(|s| arena.alloc(s, 16).ok(), |_| {});
    run.record(case(ARENA), Unit::FACTOR, &[factor(arena.used(), live)]);

    // One mapping per block: each rounds up to whole pages.
    let (live, maps) = w.replay(|s| Memory::map(s).ok(), drop);
    let mapped: usize = maps.iter().map(Memory::len).sum();
    run.record(case(MMAP), Unit::FACTOR, &[factor(mapped, live)]);

    run.note(format!(
        "fragmentation rows: {} steps over {} slots, requests 16 B–4 KiB; footprint = bytes from \
         the heap start to the end of its highest live block (malloc, from mallinfo2: growth of \
         bytes in use plus growth of free holes below the trimmable top — an estimate, since \
         other threads' allocations count too; mmap: the mapped pages); 1.0 would be perfect \
         packing",
        w.steps.len(),
        Workload::SLOTS
    ));
    for n in notes {
        run.note(n);
    }
    Ok(())
}

/// System malloc's footprint factor. glibc may serve the workload from
/// memory freed before it, so heap growth alone can read zero. Counts what
/// the workload holds: the growth of bytes in use (chunks with their
/// headers) plus the growth of free holes below the trimmable top.
fn malloc_factor(w: &Workload) -> f64 {
    let _ = sys::trim(0);
    let held = |m: sys::MallInfo| (m.uordblks + m.hblkhd, m.fordblks.saturating_sub(m.keepcost));
    let (used0, holes0) = held(sys::mallinfo2());
    let (live, blocks) = w.replay(SysBlock::new, drop);
    let (used1, holes1) = held(sys::mallinfo2());
    drop(blocks);
    let grown = used1.saturating_sub(used0) + holes1.saturating_sub(holes0);
    factor(grown, live)
}

/// A pool of 4 KiB blocks serves every request with a whole block.
fn pool_factor(w: &Workload) -> Result<f64> {
    let pool = PoolOptions::new(MIXED_MAX)
        .blocks(Workload::SLOTS)
        .build()
        .map_err(|e| fail(POOL, e))?;
    let (live, blocks) = w.replay(|_| pool.alloc_block().ok(), drop);
    let f = factor(pool.stats().footprint, live);
    drop(blocks);
    Ok(f)
}

/// A free list's footprint factor and a note on its holes.
fn free_list_factor(w: &Workload, name: &str, fit: Fit) -> Result<(f64, String)> {
    let heap = FreeListOptions::new(16 << 20)
        .fit(fit)
        .build()
        .map_err(|e| fail(name, e))?;
    let (live, blocks) = w.replay(|s| heap.alloc_block(s, 16).ok(), drop);
    let st = heap.stats();
    let below = st.footprint.saturating_sub(st.in_use);
    let note = format!(
        "{name}: {} free below the footprint in {} holes, largest free block {}",
        exact_bytes(below as u64),
        st.free_chunks.saturating_sub(1),
        exact_bytes(st.largest_free as u64)
    );
    drop(blocks);
    Ok((factor(st.footprint, live), note))
}

/// The buddy allocator's footprint factor and a note on its internal
/// fragmentation.
fn buddy_factor(w: &Workload) -> Result<(f64, String)> {
    let buddy = BuddyOptions::new(16 << 20, 16)
        .build()
        .map_err(|e| fail(BUDDY, e))?;
    let (live, blocks) = w.replay(|s| buddy.alloc_block(s, 16).ok(), drop);
    let st = buddy.stats();
    let note = format!(
        "Buddy: internal fragmentation {} ({:.0}% of the bytes in use)",
        exact_bytes(st.internal_fragmentation() as u64),
        st.internal_fragmentation() as f64 / st.in_use.max(1) as f64 * 100.0,
    );
    drop(blocks);
    Ok((factor(st.footprint, live), note))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(full: bool, max_size: u64) -> Config {
        Config {
            full,
            max_size,
            max_size_given: true,
            timing: crate::Timing {
                samples: 1,
                sample_time: std::time::Duration::from_millis(1),
            },
            preload: None,
        }
    }

    #[test]
    fn sizes_span_16_bytes_to_1_mib_within_max_size() {
        assert_eq!(
            sizes(&config(false, 256 << 20)),
            vec![16, 32, 256, 4096, 65536, 1 << 20]
        );
        assert_eq!(sizes(&config(true, 256 << 20)).len(), 10);
        assert_eq!(sizes(&config(false, 4096)), vec![16, 32, 256, 4096]);
    }

    #[test]
    fn mixed_sizes_are_deterministic_and_in_range() {
        let a = mixed_sizes(1000);
        assert_eq!(a, mixed_sizes(1000));
        assert!(a.iter().all(|&s| (16..=MIXED_MAX).contains(&s)));
        assert!(
            a.iter().filter(|&&s| s < 256).count() > 300,
            "log-uniform favours small sizes"
        );
    }
}
