//! Lab section `channel`: memio's zero-copy shared-memory channel between
//! two processes, beside the physical floor (two atomics bounced between
//! cores), a pipe, a Unix socket and iceoryx2, in the same run.
//!
//! Round trips: the lab loans a slot, writes the message, commits; the peer
//! receives it by reference, loans a slot of the return channel, copies the
//! message across (one copy, slot to slot) and commits; the lab reads the
//! reply out. One-way: the lab sends a stream, the peer copies each message
//! out, as a consumer that needs the bytes would. The two processes are
//! pinned to different cores when the machine has two.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memio::ipc::channel::{Channel, ChannelOptions, Receiver, Sender};
use memio::ipc::shm::posix as shm;
use memio::map::Region;

use super::ipc::{self, Mech};
use crate::peer::{Control, PEER_TIMEOUT, Peer, peers_on, pin};
use crate::support::exact_bytes;
use crate::{Case, Chart, Error, Result, Run, Section, Unit};

/// The section as registered in the lab.
pub(crate) const SECTION: Section = Section {
    name: "channel",
    title: "zero-copy shared-memory channel (memio-ipc channel)",
    about: "Two processes on two cores exchange messages through memio's shared-memory channel: \
            senders loan a slot and write in place, receivers read in place. Spin mode looks \
            again for a few hundred microseconds before sleeping; blocking mode (the default) \
            for some microseconds, about what a sleep and a wake-up across cores cost, then \
            sleeps on a futex. \
            Round trips of 64 B to 1 MiB, and one-way streams of 64 KiB and 1 MiB, beside the \
            hardware floor (two atomics bounced between the cores), a pipe, a Unix socket, a \
            POSIX message queue, shared memory with System V semaphores and iceoryx2 \
            publish-subscribe, all measured in this run.",
    reference: FLOOR,
    chart: Chart::Bars,
    run,
    peer: Some(peer),
    verdict: None,
};

const FLOOR: &str = "spin floor (2 atomics)";
const SPIN: &str = "memio channel, spin";
const BLOCKING: &str = "memio channel, blocking";
const ICEORYX2: &str = "iceoryx2 publish-subscribe";
/// Slots per channel (the library default).
const SLOTS: usize = 8;
/// Attempts before sleeping: spin mode keeps looking for a few hundred
/// microseconds, blocking mode for the library's default (some 12–20 µs).
const SPIN_ATTEMPTS: u32 = 20_000;
const BLOCKING_ATTEMPTS: u32 = memio::ipc::channel::DEFAULT_SPIN;

/// What a measurement runs, as the peer's command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Floor,
    Spin,
    Blocking,
    Iceoryx2,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Floor, Kind::Spin, Kind::Blocking, Kind::Iceoryx2];

    fn arg(self) -> &'static str {
        match self {
            Kind::Floor => "floor",
            Kind::Spin => "spin",
            Kind::Blocking => "blocking",
            Kind::Iceoryx2 => "iceoryx2",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Floor => FLOOR,
            Kind::Spin => SPIN,
            Kind::Blocking => BLOCKING,
            Kind::Iceoryx2 => ICEORYX2,
        }
    }

    fn spin(self) -> u32 {
        if self == Kind::Spin {
            SPIN_ATTEMPTS
        } else {
            BLOCKING_ATTEMPTS
        }
    }
}

/// The two CPUs the processes run on, when this thread may use two.
fn two_cpus() -> Option<(usize, usize)> {
    let set = rustix::thread::sched_getaffinity(None).ok()?;
    let mut cpus = (0..rustix::thread::CpuSet::MAX_CPU).filter(|&c| set.is_set(c));
    Some((cpus.next()?, cpus.next()?))
}

/// Removes a named channel or shared-memory object when dropped.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = Channel::unlink(&self.0);
    }
}

fn unique(tag: &str) -> String {
    format!("/{}", crate::support::unique(tag))
}

fn ipc_err(what: &str, e: memio::ipc::Error) -> Error {
    Error::io(what, &io::Error::from(e))
}

/// One live measurement: the lab's ends, the peer, the objects.
struct Link {
    ends: Ends,
    peer: Peer,
    _objects: Vec<Unlink>,
}

/// The lab's ends of a measurement.
enum Ends {
    Channel {
        tx: Sender,
        rx: Receiver,
    },
    Floor {
        region: Region,
        seq: u64,
    },
    #[cfg(feature = "iceoryx2")]
    Iceoryx2(iceoryx::Ends),
}

fn connect(kind: Kind, stream: bool, size: usize) -> Result<Link> {
    let label = kind.label();
    let fail = |e: memio::ipc::Error| ipc_err(&format!("{label} set-up"), e);
    let (a, b) = (unique("chan-a"), unique("chan-b"));
    let mut objects = Vec::new();
    let ends = match kind {
        Kind::Floor => {
            let region = shm::create(&a, 256).map_err(fail)?;
            objects.push(Unlink(a.clone()));
            Ends::Floor { region, seq: 0 }
        }
        Kind::Spin | Kind::Blocking => {
            let opts = ChannelOptions::new()
                .slots(SLOTS)
                .slot_size(size)
                .spin(kind.spin());
            let ca = opts.create(&a).map_err(fail)?;
            objects.push(Unlink(a.clone()));
            let cb = opts.create(&b).map_err(fail)?;
            objects.push(Unlink(b.clone()));
            Ends::Channel {
                tx: ca.sender().map_err(fail)?,
                rx: cb.receiver().map_err(fail)?,
            }
        }
        Kind::Iceoryx2 => {
            #[cfg(feature = "iceoryx2")]
            {
                Ends::Iceoryx2(iceoryx::Ends::create(&a, &b)?)
            }
            #[cfg(not(feature = "iceoryx2"))]
            {
                return Err(Error::io(label, &io::Error::other("not built")));
            }
        }
    };
    let mode = if stream { "stream" } else { "pingpong" };
    let args = [kind.arg(), mode, &size.to_string(), &a, &b].map(str::to_owned);
    let mut peer = Peer::start(label, "channel", &args)?;
    peer.ready()?;
    Ok(Link {
        ends,
        peer,
        _objects: objects,
    })
}

/// Spins until `word` holds `want`, giving up after [`PEER_TIMEOUT`].
fn spin_until(word: &AtomicU64, want: u64) -> io::Result<()> {
    let start = Instant::now();
    let mut spins = 0u32;
    while word.load(Ordering::Acquire) != want {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins % 65_536 == 0 && start.elapsed() > PEER_TIMEOUT {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer process stopped answering",
            ));
        }
    }
    Ok(())
}

/// The ping and pong words of the floor, 128 bytes apart: on separate
/// cache lines and separate pairs of lines (Intel cores prefetch lines in
/// aligned pairs, which would otherwise pull the other side's word along).
fn floor_words(region: &Region) -> io::Result<(&AtomicU64, &AtomicU64)> {
    Ok((region.atomic_u64(0)?, region.atomic_u64(128)?))
}

impl Ends {
    /// `n` round trips of `buf`.
    fn pingpong(&mut self, label: &str, buf: &mut [u8], n: u64) -> Result<()> {
        let fail = |e: memio::ipc::Error| ipc_err(label, e);
        match self {
            Ends::Channel { tx, rx } => {
                for _ in 0..n {
                    tx.send(buf).map_err(fail)?;
                    rx.recv().map_err(fail)?.read_at(0, buf).map_err(fail)?;
                }
            }
            Ends::Floor { region, seq } => {
                let (request, reply) = floor_words(region).map_err(|e| Error::io(label, &e))?;
                for _ in 0..n {
                    *seq += 1;
                    request.store(*seq, Ordering::Release);
                    spin_until(reply, *seq).map_err(|e| Error::io(label, &e))?;
                }
            }
            #[cfg(feature = "iceoryx2")]
            Ends::Iceoryx2(ends) => ends.pingpong(n)?,
        }
        Ok(())
    }

    /// `n` messages one way.
    fn stream(&mut self, label: &str, buf: &[u8], n: u64) -> Result<()> {
        let fail = |e: memio::ipc::Error| ipc_err(label, e);
        if let Ends::Channel { tx, .. } = self {
            for _ in 0..n {
                tx.send(buf).map_err(fail)?;
            }
        }
        Ok(())
    }
}

fn timed(link: &mut Link, n: u64, op: impl FnOnce(&mut Ends) -> Result<()>) -> Result<Duration> {
    link.peer.announce(n)?;
    let start = Instant::now();
    let done = op(&mut link.ends);
    let took = start.elapsed();
    done.map_err(|e| link.peer.failed(e))?;
    link.peer.done()?;
    Ok(took)
}

/// The row of `kind`'s round trips of `size` bytes.
fn rtt_case(kind: Kind, size: usize) -> Case {
    Case::new(
        kind.label(),
        format!("{} round trip", exact_bytes(size as u64)),
    )
    .param("bytes", size)
}

fn measure_rtt(run: &mut Run<'_>, kind: Kind, size: usize) -> Result<f64> {
    let label = kind.label();
    let mut link = connect(kind, false, size)?;
    let mut buf = vec![0x5au8; size];
    let median = run.batch_latency(rtt_case(kind, size), Unit::US, |n| {
        timed(&mut link, n, |ends| ends.pingpong(label, &mut buf, n))
    })?;
    link.peer.finish()?;
    Ok(median)
}

/// The 64 B round trips of `kinds`, measured round-robin (one sample of
/// each, then the next round) with every link open at once: the floor and
/// the channel beside it then see the same state of the machine (on a VM
/// the floor itself moves by a third from one minute to the next, as the
/// host places the two virtual CPUs), so their ratio is fair.
fn measure_rtts_together(run: &mut Run<'_>, kinds: &[Kind]) -> Result<Vec<f64>> {
    const SIZE: usize = 64;
    let mut links = kinds
        .iter()
        .map(|&k| connect(k, false, SIZE).map(|link| (k, link, vec![0x5au8; SIZE])))
        .collect::<Result<Vec<_>>>()?;
    let cases = kinds.iter().map(|&k| rtt_case(k, SIZE)).collect();
    let mut batches: Vec<_> = links
        .iter_mut()
        .map(|(kind, link, buf)| {
            let label = kind.label();
            move |n| timed(link, n, |ends| ends.pingpong(label, buf, n))
        })
        .collect();
    let mut refs: Vec<&mut dyn FnMut(u64) -> Result<Duration>> =
        batches.iter_mut().map(|b| b as &mut _).collect();
    let medians = run.try_round_robin(cases, Unit::US, &mut refs)?;
    drop(refs);
    drop(batches);
    for (_, link, _) in links {
        link.peer.finish()?;
    }
    Ok(medians)
}

fn measure_oneway(run: &mut Run<'_>, kind: Kind, size: usize) -> Result<f64> {
    let label = kind.label();
    let mut link = connect(kind, true, size)?;
    let buf = vec![0x5au8; size];
    let samples = run
        .config()
        .timing
        .per_op(|n| timed(&mut link, n, |ends| ends.stream(label, &buf, n)))?;
    link.peer.finish()?;
    let gbps: Vec<f64> = samples.iter().map(|s| size as f64 / s / 1e9).collect();
    let case =
        Case::new(label, format!("{} one-way", exact_bytes(size as u64))).param("bytes", size);
    Ok(run
        .record(case, Unit::GB_PER_S, &gbps)
        .map_or(f64::NAN, |r| r.median))
}

/// Round-trip sizes of a run, no larger than `--max-size`.
fn sizes(max: u64) -> Vec<usize> {
    [64, 4096, 65536, 1 << 20]
        .into_iter()
        .filter(|&s| s as u64 <= max)
        .collect()
}

/// The medians the notes quote.
#[derive(Default)]
struct Figures {
    floor: f64,
    spin: Vec<(usize, f64)>,
    blocking: Vec<(usize, f64)>,
    pipe: f64,
    unix: f64,
    mq: f64,
    shm_sem: f64,
    iceoryx2: Option<f64>,
    /// (size, spin, blocking, Unix socket, shm + semaphores) in GB/s.
    oneway: Vec<(usize, f64, f64, f64, f64)>,
}

fn run(run: &mut Run<'_>) -> Result<()> {
    let max = run.config().max_size;
    let sizes = sizes(max);
    let ice = run.heavy_peer("iceoryx2");
    let oneway: Vec<usize> = [65536, 1 << 20]
        .into_iter()
        .filter(|&s| s as u64 <= max)
        .collect();
    run.plan((2 * sizes.len() + 5 + usize::from(ice) + 4 * oneway.len()) as u64);
    let cpus = two_cpus();
    let figures = measure_all(run, &sizes, &oneway, ice, cpus)?;
    notes(run, &figures, cpus.is_some());
    Ok(())
}

/// Runs `measure` with this thread on the first of `cpus` and the peers it
/// starts on the second (when there are two), then gives the thread back
/// its CPUs.
fn pinned<T>(cpus: Option<(usize, usize)>, measure: impl FnOnce() -> Result<T>) -> Result<T> {
    let _on_lab_cpu = cpus.and_then(|(lab, _)| pin(lab));
    peers_on(cpus.map(|c| c.1), measure)
}

/// The rows, in order, every pair of processes on the two `cpus`: the
/// lab's thread on the first, its peer on the second (the pipe and socket
/// rows included, so that every row pays for crossing between cores).
fn measure_all(
    run: &mut Run<'_>,
    sizes: &[usize],
    oneway: &[usize],
    ice: bool,
    cpus: Option<(usize, usize)>,
) -> Result<Figures> {
    let mut f = Figures::default();
    if !sizes.contains(&64) {
        f.floor = pinned(cpus, || measure_rtt(run, Kind::Floor, 64))?;
    }
    for &size in sizes {
        let spin = if size == 64 {
            let both = pinned(cpus, || {
                measure_rtts_together(run, &[Kind::Floor, Kind::Spin])
            })?;
            f.floor = both[0];
            both[1]
        } else {
            pinned(cpus, || measure_rtt(run, Kind::Spin, size))?
        };
        f.spin.push((size, spin));
        let blocking = pinned(cpus, || measure_rtt(run, Kind::Blocking, size))?;
        f.blocking.push((size, blocking));
    }
    if ice {
        f.iceoryx2 = Some(pinned(cpus, || measure_rtt(run, Kind::Iceoryx2, 64))?);
    }
    f.pipe = pinned(cpus, || ipc::measure_pingpong(run, Mech::Pipe, 64))?;
    f.unix = pinned(cpus, || ipc::measure_pingpong(run, Mech::Unix, 64))?;
    f.mq = pinned(cpus, || ipc::measure_pingpong(run, Mech::PosixMq, 64))?;
    f.shm_sem = pinned(cpus, || ipc::measure_pingpong(run, Mech::ShmSysv, 64))?;
    for &size in oneway {
        let spin = pinned(cpus, || measure_oneway(run, Kind::Spin, size))?;
        let blocking = pinned(cpus, || measure_oneway(run, Kind::Blocking, size))?;
        let unix = pinned(cpus, || ipc::measure_stream(run, Mech::Unix, size))?.unwrap_or(f64::NAN);
        let shm_sem =
            pinned(cpus, || ipc::measure_stream(run, Mech::ShmSysv, size))?.unwrap_or(f64::NAN);
        f.oneway.push((size, spin, blocking, unix, shm_sem));
    }
    Ok(f)
}

fn times(a: f64, b: f64) -> String {
    format!("{:.1}x", a / b)
}

/// `a` against `b` for times: "2.0x faster" when `a` is half of `b`.
fn speed(a: f64, b: f64) -> String {
    if a <= b {
        format!("{:.1}x faster", b / a)
    } else {
        format!("{:.1}x slower", a / b)
    }
}

fn notes(run: &mut Run<'_>, f: &Figures, pinned: bool) {
    let at = |rows: &[(usize, f64)], s| rows.iter().find(|r| r.0 == s).map(|r| r.1);
    if let (Some(spin), Some(block)) = (at(&f.spin, 64), at(&f.blocking, 64)) {
        let ns = |us: f64| us * 1000.0;
        run.note(format!(
            "64 B round trip: spin {:.0} ns ({} the two-atomic floor of {:.0} ns), blocking {:.0} ns \
             ({} than a pipe at {:.0} ns, {} than a Unix socket at {:.0} ns).",
            ns(spin),
            times(spin, f.floor),
            ns(f.floor),
            ns(block),
            speed(block, f.pipe),
            ns(f.pipe),
            speed(block, f.unix),
            ns(f.unix),
        ));
        run.note(format!(
            "Beside the other ways to pass a 64 B message and its answer between two processes: \
             a POSIX message queue takes {:.0} ns and shared memory with System V semaphores \
             (the bounded buffer of the producer/consumer exercise) {:.0} ns; the channel in \
             blocking mode is {} and {}.",
            ns(f.mq),
            ns(f.shm_sem),
            speed(block, f.mq),
            speed(block, f.shm_sem),
        ));
        if let Some(ice) = f.iceoryx2 {
            run.note(format!(
                "iceoryx2 publish-subscribe 64 B round trip {:.0} ns: the memio channel in spin mode is {}.",
                ns(ice),
                speed(spin, ice),
            ));
        }
    }
    let memcpy = run.memcpy_gbps();
    for &(size, spin, blocking, unix, shm_sem) in &f.oneway {
        let best = spin.max(blocking);
        run.note(format!(
            "{} one-way: channel {spin:.2} GB/s spinning, {blocking:.2} GB/s blocking; the better is \
             {:.0}% of the memory section's copy bandwidth \
             ({memcpy:.1} GB/s), {} a Unix socket's {unix:.2} GB/s \
             and {} shared memory with semaphores ({shm_sem:.2} GB/s, two copies per message).",
            exact_bytes(size as u64),
            100.0 * best / memcpy,
            times(best, unix),
            times(best, shm_sem),
        ));
    }
    if pinned {
        run.note(
            "Every row runs its two processes pinned to two different cores, the pipe and Unix \
             socket rows too (the ipc section runs those unpinned, where the scheduler may put \
             both on one core and spare them the wake-up across cores).",
        );
    } else {
        run.note("The processes were not pinned: this thread may use only one CPU.");
    }
    run.note(
        "Spin mode keeps both cores busy while it waits: its figures need two otherwise idle cores, \
         and on a loaded machine they show the scheduler's time slices instead. Blocking mode gives \
         the core back between messages and wakes through a futex.",
    );
}

/// Runs `lab --peer channel KIND MODE SIZE A B`.
fn peer(args: &[String], control: &mut Control) -> io::Result<()> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad peer arguments ({what}): {}", args.join(" ")),
        )
    };
    let word = |i: usize| args.get(i).map_or("", String::as_str);
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.arg() == word(0))
        .ok_or_else(|| bad("kind"))?;
    let stream = word(1) == "stream";
    let size: usize = word(2).parse().map_err(|_| bad("size"))?;
    let (a, b) = (word(3), word(4));
    match kind {
        Kind::Floor => {
            let region = shm::open(a).map_err(io::Error::from)?;
            serve_floor(&region, control)
        }
        Kind::Spin | Kind::Blocking => {
            let opts = ChannelOptions::new().spin(kind.spin());
            let rx = opts.open(a).and_then(|c| c.receiver());
            let tx = opts.open(b).and_then(|c| c.sender());
            let (mut rx, mut tx) = (rx.map_err(io::Error::from)?, tx.map_err(io::Error::from)?);
            serve_channel(&mut rx, &mut tx, stream, size, control)
        }
        Kind::Iceoryx2 => {
            #[cfg(feature = "iceoryx2")]
            {
                iceoryx::serve(a, b, control)
            }
            #[cfg(not(feature = "iceoryx2"))]
            {
                Err(bad("iceoryx2 is not built"))
            }
        }
    }
}

fn serve_floor(region: &Region, control: &mut Control) -> io::Result<()> {
    let (request, reply) = floor_words(region)?;
    let mut seq = 0;
    control.ready()?;
    while let Some(n) = control.next_batch()? {
        control.started()?;
        for _ in 0..n {
            seq += 1;
            spin_until(request, seq)?;
            reply.store(seq, Ordering::Release);
        }
        control.done()?;
    }
    Ok(())
}

fn serve_channel(
    rx: &mut Receiver,
    tx: &mut Sender,
    stream: bool,
    size: usize,
    control: &mut Control,
) -> io::Result<()> {
    let mut buf = vec![0u8; size];
    control.ready()?;
    while let Some(n) = control.next_batch()? {
        control.started()?;
        for _ in 0..n {
            let msg = rx.recv()?;
            if stream {
                msg.read_at(0, &mut buf)?;
            } else {
                let mut loan = tx.loan(msg.len())?;
                loan.copy_from(&msg)?;
                loan.commit();
            }
        }
        control.done()?;
    }
    Ok(())
}

/// The iceoryx2 peer: publish-subscribe services `<a>` (lab to peer) and
/// `<b>` back, 64-byte payloads, receivers polling in a loop.
#[cfg(feature = "iceoryx2")]
mod iceoryx {
    use std::io;

    use iceoryx2::port::publisher::Publisher;
    use iceoryx2::port::subscriber::Subscriber;
    use iceoryx2::prelude::*;

    use crate::peer::Control;
    use crate::{Error, Result};

    type Payload = [u8; 64];
    type Pub = Publisher<ipc::Service, Payload, ()>;
    type Sub = Subscriber<ipc::Service, Payload, ()>;

    fn err(e: impl std::fmt::Display) -> io::Error {
        io::Error::other(format!("iceoryx2: {e}"))
    }

    /// A node and the two ports: publishing on `out`, subscribed to `inn`.
    /// Fields drop in order: the ports before their node, which then
    /// removes its resources.
    pub(super) struct Ends {
        publisher: Pub,
        subscriber: Sub,
        _node: Node<ipc::Service>,
    }

    fn open(out: &str, inn: &str) -> io::Result<Ends> {
        // Its warnings would land in the middle of the lab's tables.
        set_log_level(LogLevel::Fatal);
        let node = NodeBuilder::new().create::<ipc::Service>().map_err(err)?;
        let service = |name: &str| {
            let name: ServiceName = name.trim_start_matches('/').try_into().map_err(err)?;
            node.service_builder(&name)
                .publish_subscribe::<Payload>()
                .open_or_create()
                .map_err(err)
        };
        let publisher = service(out)?.publisher_builder().create().map_err(err)?;
        let subscriber = service(inn)?.subscriber_builder().create().map_err(err)?;
        Ok(Ends {
            publisher,
            subscriber,
            _node: node,
        })
    }

    fn send(publisher: &Pub, payload: Payload) -> io::Result<()> {
        let sample = publisher.loan_uninit().map_err(err)?;
        sample.write_payload(payload).send().map_err(err)?;
        Ok(())
    }

    fn recv(subscriber: &Sub) -> io::Result<Payload> {
        let start = std::time::Instant::now();
        loop {
            if let Some(sample) = subscriber.receive().map_err(err)? {
                return Ok(*sample);
            }
            std::hint::spin_loop();
            if start.elapsed() > crate::peer::PEER_TIMEOUT {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer process stopped answering",
                ));
            }
        }
    }

    impl Ends {
        pub(super) fn create(a: &str, b: &str) -> Result<Self> {
            open(a, b).map_err(|e| Error::io(super::ICEORYX2, &e))
        }

        pub(super) fn pingpong(&mut self, n: u64) -> Result<()> {
            let fail = |e: io::Error| Error::io(super::ICEORYX2, &e);
            let mut payload = [0x5au8; 64];
            for _ in 0..n {
                send(&self.publisher, payload).map_err(fail)?;
                payload = recv(&self.subscriber).map_err(fail)?;
            }
            Ok(())
        }
    }

    pub(super) fn serve(a: &str, b: &str, control: &mut Control) -> io::Result<()> {
        let ends = open(b, a)?;
        control.ready()?;
        while let Some(n) = control.next_batch()? {
            control.started()?;
            for _ in 0..n {
                let payload = recv(&ends.subscriber)?;
                send(&ends.publisher, payload)?;
            }
            control.done()?;
        }
        Ok(())
    }
}
