//! Criterion benchmarks: the 64 B round trip of the shared-memory channel
//! in spin mode beside the hardware floor (two atomics bouncing between
//! two cores) and beside a pipe, the two ends pinned to different CPUs.
//!
//! Run: `cargo bench -p memio-ipc --bench channel` (the `memio lab --only
//! channel` section measures the same between two processes, with
//! iceoryx2 beside it).

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_main};
use memio_ipc::channel::{ChannelOptions, Receiver, Sender};

const SIZE: usize = 64;

/// The first two CPUs this process may use, if it may use two.
fn two_cpus() -> Option<(usize, usize)> {
    let set = rustix::thread::sched_getaffinity(None).ok()?;
    let mut cpus = (0..rustix::thread::CpuSet::MAX_CPU).filter(|&c| set.is_set(c));
    Some((cpus.next()?, cpus.next()?))
}

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    // Best effort: unpinned, the figures are only noisier.
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

/// Two words on their own cache lines.
#[repr(C, align(128))]
struct Words {
    ping: AtomicU64,
    _pad: [u64; 15],
    pong: AtomicU64,
}

fn floor(c: &mut Criterion, cpus: (usize, usize)) {
    let w = Arc::new(Words {
        ping: AtomicU64::new(0),
        _pad: [0; 15],
        pong: AtomicU64::new(0),
    });
    let peer = Arc::clone(&w);
    let t = std::thread::spawn(move || {
        pin(cpus.1);
        let mut seen = 0;
        loop {
            let v = peer.ping.load(Ordering::Acquire);
            if v == seen {
                std::hint::spin_loop();
                continue;
            }
            if v == u64::MAX {
                return;
            }
            seen = v;
            peer.pong.store(v, Ordering::Release);
        }
    });
    pin(cpus.0);
    let mut seq = 0u64;
    c.bench_function("64 B round trip/spin floor (2 atomics)", |b| {
        b.iter(|| {
            seq += 1;
            w.ping.store(seq, Ordering::Release);
            while w.pong.load(Ordering::Acquire) != seq {
                std::hint::spin_loop();
            }
        });
    });
    w.ping.store(u64::MAX, Ordering::Release);
    t.join().expect("floor peer");
}

/// Answers every message with a copy of it until an empty one comes.
fn echo(mut rx: Receiver, mut tx: Sender) {
    loop {
        let Ok(msg) = rx.recv() else { return };
        if msg.is_empty() {
            return;
        }
        let Ok(mut loan) = tx.loan(msg.len()) else {
            return;
        };
        if loan.copy_from(&msg).is_err() {
            return;
        }
        loan.commit();
    }
}

fn channel(c: &mut Criterion, cpus: (usize, usize)) {
    let opts = ChannelOptions::new().slots(4).slot_size(SIZE).spin(20_000);
    let (Ok(there), Ok(back)) = (opts.memfd("bench-there"), opts.memfd("bench-back")) else {
        eprintln!("channel: cannot create memfd channels; skipped");
        return;
    };
    let (mut tx, mut rx) = (
        there.sender().expect("sender"),
        back.receiver().expect("receiver"),
    );
    let (peer_rx, peer_tx) = (
        there.receiver().expect("receiver"),
        back.sender().expect("sender"),
    );
    let t = std::thread::spawn(move || {
        pin(cpus.1);
        echo(peer_rx, peer_tx);
    });
    pin(cpus.0);
    let mut buf = [7u8; SIZE];
    c.bench_function("64 B round trip/memio channel, spin", |b| {
        b.iter(|| {
            tx.send(&buf).expect("send");
            rx.recv().expect("recv").read_at(0, &mut buf).expect("read");
        });
    });
    tx.send(&[]).expect("stop");
    t.join().expect("channel peer");
}

fn pipe(c: &mut Criterion, cpus: (usize, usize)) {
    let (Ok((mut a_rx, mut a_tx)), Ok((mut b_rx, mut b_tx))) = (pipe_pair(), pipe_pair()) else {
        eprintln!("pipe: cannot create pipes; skipped");
        return;
    };
    let t = std::thread::spawn(move || {
        pin(cpus.1);
        let mut buf = [0u8; SIZE];
        while a_rx.read_exact(&mut buf).is_ok() {
            if b_tx.write_all(&buf).is_err() {
                return;
            }
        }
    });
    pin(cpus.0);
    let mut buf = [7u8; SIZE];
    let mut g = c.benchmark_group("64 B round trip");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("pipe", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            for _ in 0..n {
                a_tx.write_all(&buf).expect("write");
                b_rx.read_exact(&mut buf).expect("read");
            }
            start.elapsed()
        });
    });
    g.finish();
    drop(a_tx);
    t.join().expect("pipe peer");
}

fn pipe_pair() -> std::io::Result<(std::fs::File, std::fs::File)> {
    let (r, w) = rustix::pipe::pipe()?;
    Ok((r.into(), w.into()))
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    let Some(cpus) = two_cpus() else {
        eprintln!("channel benches need two CPUs; this process may use one: skipped");
        return;
    };
    floor(&mut c, cpus);
    channel(&mut c, cpus);
    pipe(&mut c, cpus);
}

criterion_main!(benches);
