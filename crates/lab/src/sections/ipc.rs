//! Lab section `ipc`: the seed's "which mechanism for which scenario",
//! measured between two real processes.
//!
//! Every mechanism runs the same two workloads against a peer process
//! (started through the lab's one peer protocol, [`crate::peer`]): a ping-pong (send a message, wait
//! for the peer to echo it: the round-trip latency a request/response
//! protocol pays) and a one-way stream (send N messages, the peer reads them
//! all and acknowledges once: the throughput of a producer/consumer). The
//! pipe is the reference: it needs no set-up and every Unix programmer knows
//! it. Shared memory runs as the textbook bounded buffer (System V shared
//! memory, a ring of slots, a System V semaphore set counting full and
//! empty slots) and as memio's channel in POSIX shared memory, blocking at
//! once or spinning first; all copy each message into and out of shared
//! memory, the same copies the kernel does for the others.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use memio::ipc::channel::{ChannelOptions, Receiver, Sender};
use memio::ipc::mq::posix::{MqOptions, PosixMq};
use memio::ipc::mq::sysv::{MsgType, SysvMq};
use memio::ipc::sem::sysv::{SemOp, SemSet};
use memio::ipc::shm::posix as shm;
use memio::ipc::shm::sysv::SysvShm;
use memio::ipc::{Create, fifo};
use memio::map::{Access, Region};

use crate::peer::{Control, PEER_TIMEOUT, Peer, stdio_files};
use crate::support::{Scratch, exact_bytes};
use crate::{Case, Chart, Error, Result, Run, Section, Unit};

/// The section as registered in the lab.
pub(crate) const SECTION: Section = Section {
    name: "ipc",
    title: "pipes, FIFOs, Unix sockets, message queues, shared memory (semaphores, memio channel)",
    about: "Two processes, eight mechanisms, messages of 64 B, 4 KiB and 64 KiB: round-trip latency \
            of a ping-pong (a request/response protocol) and one-way throughput of a stream (a \
            producer/consumer). Shared memory is measured as the textbook bounded buffer (System V \
            shared memory, a ring of slots and a System V semaphore set counting full and empty \
            ones) and as memio's channel in POSIX shared memory (futex wake-ups only when a side \
            sleeps), once blocking at once and once spinning briefly first; all copy each message \
            in and out like the kernel does for the others. The `channel` section measures the channel \
            further. Answers: which mechanism for which scenario, on this machine.",
    reference: PIPE,
    chart: Chart::Lines,
    run,
    peer: Some(peer),
    verdict: None,
};

const PIPE: &str = "pipe";
/// Slots per direction in the shared-memory rings.
const SLOTS: usize = 4;

/// The mechanisms, in the order they are measured and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mech {
    /// `std::io::pipe`-style anonymous pipes (the child's stdin/stdout).
    Pipe,
    /// Two named pipes.
    Fifo,
    /// A Unix stream socket.
    Unix,
    /// Two POSIX message queues.
    PosixMq,
    /// One System V queue, one message type per direction.
    SysvMq,
    /// memio's channel in POSIX shared memory, blocking on the futex at
    /// once (no spinning).
    ChannelBlocking,
    /// System V shared memory and a System V semaphore set.
    ShmSysv,
    /// memio's shared-memory channel (futex wake-ups, no semaphores).
    Channel,
}

impl Mech {
    const ALL: [Mech; 8] = [
        Mech::Pipe,
        Mech::Fifo,
        Mech::Unix,
        Mech::PosixMq,
        Mech::SysvMq,
        Mech::ChannelBlocking,
        Mech::ShmSysv,
        Mech::Channel,
    ];

    /// How the peer's command line names the mechanism.
    fn arg(self) -> &'static str {
        match self {
            Mech::Pipe => "pipe",
            Mech::Fifo => "fifo",
            Mech::Unix => "unix",
            Mech::PosixMq => "posix-mq",
            Mech::SysvMq => "sysv-mq",
            Mech::ChannelBlocking => "channel-blocking",
            Mech::ShmSysv => "shm-sysv",
            Mech::Channel => "channel",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Mech::Pipe => PIPE,
            Mech::Fifo => "FIFO",
            Mech::Unix => "Unix socket",
            Mech::PosixMq => "POSIX mq",
            Mech::SysvMq => "System V mq",
            Mech::ChannelBlocking => "memio channel, blocking",
            Mech::ShmSysv => "shm + System V sem",
            Mech::Channel => "memio channel",
        }
    }

    /// The largest message the mechanism takes on an unprivileged machine,
    /// if it has a limit.
    fn limit(self) -> Option<usize> {
        match self {
            Mech::PosixMq => Some(read_proc("/proc/sys/fs/mqueue/msgsize_max").unwrap_or(8192)),
            Mech::SysvMq => Some(read_proc("/proc/sys/kernel/msgmax").unwrap_or(8192)),
            _ => None,
        }
    }
}

fn read_proc(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Ping-pong or stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Echo every message back.
    Pingpong,
    /// Read counted batches, acknowledge each.
    Stream,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Pingpong => "pingpong",
            Mode::Stream => "stream",
        }
    }
}

/// What the peer is told: `lab --peer ipc MECH MODE SIZE [NAME [NAME2]]`.
#[derive(Debug)]
pub(crate) struct PeerArgs {
    mech: Mech,
    mode: Mode,
    size: usize,
    /// Name, path or id of the mechanism's objects.
    name: String,
    /// Second name (data object, second queue, semaphore set id).
    name2: String,
}

impl PeerArgs {
    fn to_args(&self) -> Vec<String> {
        vec![
            self.mech.arg().to_owned(),
            self.mode.arg().to_owned(),
            self.size.to_string(),
            self.name.clone(),
            self.name2.clone(),
        ]
    }

    fn parse(args: &[String]) -> io::Result<Self> {
        let bad = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad peer arguments ({what}): {}", args.join(" ")),
            )
        };
        let word = |i: usize| args.get(i).map_or("", String::as_str);
        let mech = Mech::ALL
            .into_iter()
            .find(|m| m.arg() == word(0))
            .ok_or_else(|| bad("mechanism"))?;
        let mode = [Mode::Pingpong, Mode::Stream]
            .into_iter()
            .find(|m| m.arg() == word(1))
            .ok_or_else(|| bad("mode"))?;
        let size = word(2).parse().map_err(|_| bad("size"))?;
        Ok(Self {
            mech,
            mode,
            size,
            name: word(3).to_owned(),
            name2: word(4).to_owned(),
        })
    }
}

/// A two-way message channel between the lab and its peer.
trait Channel {
    fn send(&mut self, buf: &[u8]) -> io::Result<()>;
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()>;
}

/// Byte streams: pipes, FIFOs, sockets.
struct Stream<R, W> {
    r: R,
    w: W,
}

impl<R: Read, W: Write> Channel for Stream<R, W> {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        self.w.write_all(buf)?;
        self.w.flush()
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.r.read_exact(buf)
    }
}

/// Two POSIX queues, one per direction.
struct PosixPair {
    tx: PosixMq,
    rx: PosixMq,
    timeout: bool,
}

impl Channel for PosixPair {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.timeout {
            if !self
                .tx
                .send_deadline(buf, 0, Instant::now() + PEER_TIMEOUT)?
            {
                return Err(lost());
            }
            return Ok(());
        }
        Ok(self.tx.send(buf, 0)?)
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        if self.timeout {
            return match self.rx.recv_deadline(buf, Instant::now() + PEER_TIMEOUT)? {
                Some(_) => Ok(()),
                None => Err(lost()),
            };
        }
        self.rx.recv(buf)?;
        Ok(())
    }
}

/// One System V queue; each direction has its message type.
struct SysvPair {
    q: SysvMq,
    tx: i64,
    rx: i64,
}

impl Channel for SysvPair {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        Ok(self.q.send(self.tx, buf)?)
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.q.recv(buf, MsgType::Exact(self.rx))?;
        Ok(())
    }
}

fn lost() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the peer process stopped answering",
    )
}

/// memio's channel, one per direction; messages are copied into a loaned
/// slot and out of the received one, like the other mechanisms' copies.
struct ChannelPair {
    tx: Sender,
    rx: Receiver,
}

impl Channel for ChannelPair {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        Ok(self.tx.send(buf)?)
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let n = self.rx.recv_into(buf)?;
        if n != buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("a message of {n} bytes where {} were sent", buf.len()),
            ));
        }
        Ok(())
    }
}

/// The lab's ends of two channels, `a` to the peer and `b` back; the peer
/// opens the other ends ([`open_channel_pair`]).
fn connect_channel(mech: Mech, mode: Mode, size: usize) -> io::Result<Result<Link>> {
    let (a, b) = (unique("chan-a"), unique("chan-b"));
    let opts = channel_options(mech).slots(SLOTS).slot_size(size);
    let ca = opts.create(&a)?;
    let mut cleanup = vec![Cleanup::PosixShm(a.clone())];
    let cb = opts.create(&b)?;
    cleanup.push(Cleanup::PosixShm(b.clone()));
    let pair = ChannelPair {
        tx: ca.sender()?,
        rx: cb.receiver()?,
    };
    Ok(spawn(mech, mode, size, &a, &b).map(|peer| link(Box::new(pair), peer, cleanup)))
}

/// The channel's options for `mech`: blocking at once, or the default
/// spin before sleeping.
fn channel_options(mech: Mech) -> ChannelOptions {
    match mech {
        Mech::ChannelBlocking => ChannelOptions::new().spin(0),
        _ => ChannelOptions::new(),
    }
}

fn open_channel_pair(mech: Mech, a: &str, b: &str) -> io::Result<ChannelPair> {
    let opts = channel_options(mech);
    let open = |name: &str| opts.open(name);
    Ok(ChannelPair {
        rx: open(a)?.receiver()?,
        tx: open(b)?.sender()?,
    })
}

fn index(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(0)
}

/// The textbook bounded buffer: a ring of [`SLOTS`] slots per direction in
/// a System V segment, and a System V semaphore set counting full and
/// empty slots: 0 = A full, 1 = A empty, 2 = B full, 3 = B empty (A: lab
/// to peer, B: peer to lab).
struct Ring {
    data: Region,
    set: SemSet,
    /// Whether a wait gives up after [`PEER_TIMEOUT`] (the lab's side).
    timeout: bool,
    size: usize,
    /// Direction this side sends on (0: A, 1: B).
    tx: usize,
    head: usize,
    tail: usize,
}

impl Ring {
    fn slot(&self, dir: usize, i: usize) -> usize {
        (dir * SLOTS + i) * self.size
    }

    fn wait(&self, i: usize) -> io::Result<()> {
        let op = [SemOp::wait(index(i))];
        if self.timeout {
            if self.set.op_deadline(&op, Instant::now() + PEER_TIMEOUT)? {
                return Ok(());
            }
            return Err(lost());
        }
        Ok(self.set.op(&op)?)
    }

    fn post(&self, i: usize) -> io::Result<()> {
        Ok(self.set.op(&[SemOp::post(index(i))])?)
    }
}

impl Channel for Ring {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let (full, empty) = (self.tx * 2, self.tx * 2 + 1);
        self.wait(empty)?;
        let at = self.slot(self.tx, self.head);
        self.data.write_at(at, buf)?;
        self.head = (self.head + 1) % SLOTS;
        self.post(full)
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let rx = 1 - self.tx;
        let (full, empty) = (rx * 2, rx * 2 + 1);
        self.wait(full)?;
        self.data.read_at(self.slot(rx, self.tail), buf)?;
        self.tail = (self.tail + 1) % SLOTS;
        self.post(empty)
    }
}

/// The bytes a shared-memory ring needs for messages of `size` bytes.
fn ring_bytes(size: usize) -> usize {
    2 * SLOTS * size
}

/// Unique names for one measurement's POSIX objects.
fn unique(tag: &str) -> String {
    format!("/{}", crate::support::unique(tag))
}

/// Removes the IPC objects a measurement made, even when it fails.
enum Cleanup {
    PosixMq(String),
    PosixShm(String),
    SysvMq(SysvMq),
    SysvShm(SysvShm),
    SemSet(SemSet),
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = match self {
            Cleanup::PosixMq(n) => PosixMq::unlink(n).map_err(drop),
            Cleanup::PosixShm(n) => shm::unlink(n).map_err(drop),
            Cleanup::SysvMq(q) => q.remove().map_err(drop),
            Cleanup::SysvShm(s) => s.remove().map_err(drop),
            Cleanup::SemSet(s) => s.remove().map_err(drop),
        };
    }
}

/// Opens the lab's ends of the FIFOs `a` (lab to peer) and `b` (peer to
/// lab) in the peer's order. Each open blocks until the peer opens the
/// other end; should the peer exit first, the lab opens those ends itself
/// to release its own opens and reports that the peer is gone.
fn open_fifos(peer: &mut Peer, a: &Path, b: &Path) -> io::Result<(File, File)> {
    std::thread::scope(|scope| {
        let opens = scope.spawn(|| -> io::Result<(File, File)> {
            let w = fifo::open(a, fifo::End::Write)?;
            let r = fifo::open(b, fifo::End::Read)?;
            Ok((w, r))
        });
        let (mut release_a, mut release_b) = (None, None);
        while !opens.is_finished() {
            if peer.exited()? {
                if release_a.is_none() {
                    release_a = fifo::FifoOptions::new()
                        .nonblocking(true)
                        .open(a, fifo::End::Read)
                        .ok();
                }
                // Fails (no reader yet) until the thread waits in its open.
                if release_b.is_none() {
                    release_b = fifo::FifoOptions::new()
                        .nonblocking(true)
                        .open(b, fifo::End::Write)
                        .ok();
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let ends = opens
            .join()
            .map_err(|_| io::Error::other("the thread opening the FIFOs panicked"))?;
        if release_a.is_some() || release_b.is_some() {
            return Err(lost_at_set_up());
        }
        ends
    })
}

/// Accepts the peer's connection, or fails when the peer exits first.
fn accept_peer(peer: &mut Peer, listener: &UnixListener) -> io::Result<UnixStream> {
    listener.set_nonblocking(true)?;
    loop {
        match listener.accept() {
            Ok((sock, _)) => {
                sock.set_nonblocking(false)?;
                return Ok(sock);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if peer.exited()? {
                    return Err(lost_at_set_up());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
}

fn lost_at_set_up() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the peer process exited before connecting",
    )
}

/// One live set-up: the channel, the peer, the objects.
struct Link {
    channel: Box<dyn Channel>,
    // Dropped in this order: the peer first (killed, if `finish` did not
    // see it exit), then the objects.
    peer: Peer,
    cleanup: Vec<Cleanup>,
    scratch: Option<Scratch>,
}

impl Link {
    /// Ends the measurement: closes the lab's ends, then checks that the
    /// peer ended cleanly.
    fn finish(self) -> Result<()> {
        let Link {
            channel,
            peer,
            cleanup,
            scratch,
        } = self;
        drop(channel);
        peer.finish()?;
        drop((cleanup, scratch));
        Ok(())
    }

    /// The error to report for a failed measurement: the peer's own when it
    /// failed (the cause), otherwise `err`.
    fn failed(&mut self, err: Error) -> Error {
        self.peer.failed(err)
    }
}

/// Starts the peer for `mech` with the objects `name` and `name2`.
fn spawn(mech: Mech, mode: Mode, size: usize, name: &str, name2: &str) -> Result<Peer> {
    let args = PeerArgs {
        mech,
        mode,
        size,
        name: name.to_owned(),
        name2: name2.to_owned(),
    };
    Peer::start(mech.label(), "ipc", &args.to_args())
}

/// Makes the objects, starts the peer and connects to it.
fn connect(mech: Mech, mode: Mode, size: usize) -> Result<Link> {
    let fail = |e: io::Error| lab_error(mech, "set-up", &e);
    match mech {
        Mech::Pipe => {
            let peer = spawn(mech, mode, size, "", "")?;
            let (w, r) = peer.pipes().map_err(fail)?;
            Ok(link(Box::new(Stream { r, w }), peer, Vec::new()))
        }
        Mech::Fifo => connect_fifo(mode, size),
        Mech::Unix => connect_unix(mode, size),
        Mech::PosixMq => connect_posix_mq(mode, size).map_err(fail)?,
        Mech::SysvMq => {
            let q = SysvMq::private().map_err(fail)?;
            let cleanup = vec![Cleanup::SysvMq(q)];
            let peer = spawn(mech, mode, size, &q.id().to_string(), "")?;
            Ok(link(Box::new(SysvPair { q, tx: 1, rx: 2 }), peer, cleanup))
        }
        Mech::ShmSysv => connect_shm_sysv(mode, size).map_err(fail)?,
        Mech::Channel | Mech::ChannelBlocking => connect_channel(mech, mode, size).map_err(fail)?,
    }
}

fn link(channel: Box<dyn Channel>, peer: Peer, cleanup: Vec<Cleanup>) -> Link {
    Link {
        channel,
        peer,
        cleanup,
        scratch: None,
    }
}

/// Two FIFOs in a scratch folder, `a` from the lab to the peer, `b` back.
fn connect_fifo(mode: Mode, size: usize) -> Result<Link> {
    let mech = Mech::Fifo;
    let dir = Scratch::dir("fifo")?;
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for f in [&a, &b] {
        fifo::create(f).map_err(|e| lab_error(mech, "set-up", &e))?;
    }
    let mut peer = spawn(mech, mode, size, &a.to_string_lossy(), &b.to_string_lossy())?;
    let (w, r) = match open_fifos(&mut peer, &a, &b) {
        Ok(ends) => ends,
        Err(e) => return Err(peer.failed(lab_error(mech, "set-up", &e))),
    };
    let mut link = link(Box::new(Stream { r, w }), peer, Vec::new());
    link.scratch = Some(dir);
    Ok(link)
}

/// A Unix stream socket in a scratch folder; the peer connects.
fn connect_unix(mode: Mode, size: usize) -> Result<Link> {
    let mech = Mech::Unix;
    let fail = |e: io::Error| lab_error(mech, "set-up", &e);
    let dir = Scratch::dir("sock")?;
    let path = dir.path().join("s");
    let listener = UnixListener::bind(&path).map_err(fail)?;
    let mut peer = spawn(mech, mode, size, &path.to_string_lossy(), "")?;
    let sock = match accept_peer(&mut peer, &listener) {
        Ok(sock) => sock,
        Err(e) => return Err(peer.failed(fail(e))),
    };
    let r = sock.try_clone().map_err(fail)?;
    let mut link = link(Box::new(Stream { r, w: sock }), peer, Vec::new());
    link.scratch = Some(dir);
    Ok(link)
}

fn connect_posix_mq(mode: Mode, size: usize) -> io::Result<Result<Link>> {
    let mut cleanup = Vec::new();
    let (a, b) = (unique("mq-a"), unique("mq-b"));
    let opts = MqOptions::new()
        .capacity(10.min(read_proc("/proc/sys/fs/mqueue/msg_max").unwrap_or(10)))
        .msg_size(size);
    let tx = opts.open(&a, Create::Exclusive)?;
    cleanup.push(Cleanup::PosixMq(a.clone()));
    let rx = opts.open(&b, Create::Exclusive)?;
    cleanup.push(Cleanup::PosixMq(b.clone()));
    Ok(spawn(Mech::PosixMq, mode, size, &a, &b).map(|peer| {
        let pair = PosixPair {
            tx,
            rx,
            timeout: true,
        };
        link(Box::new(pair), peer, cleanup)
    }))
}

fn connect_shm_sysv(mode: Mode, size: usize) -> io::Result<Result<Link>> {
    let mut cleanup = Vec::new();
    let set = SemSet::private(4)?;
    cleanup.push(Cleanup::SemSet(set));
    let seg = SysvShm::private(ring_bytes(size))?;
    cleanup.push(Cleanup::SysvShm(seg));
    let slots = u16::try_from(SLOTS).unwrap_or(1);
    set.set_values(&[0, slots, 0, slots])?;
    let data = seg.attach(Access::ReadWrite)?;
    let (sems, segment) = (set.id().to_string(), seg.id().to_string());
    Ok(
        spawn(Mech::ShmSysv, mode, size, &sems, &segment).map(|peer| {
            let ring = Ring {
                data,
                set,
                timeout: true,
                size,
                tx: 0,
                head: 0,
                tail: 0,
            };
            link(Box::new(ring), peer, cleanup)
        }),
    )
}

/// Runs `lab --peer ipc ...`: the other end of a measurement.
fn peer(args: &[String], control: &mut Control) -> io::Result<()> {
    let a = PeerArgs::parse(args)?;
    let mut channel = open_peer_end(&a)?;
    serve(&a, channel.as_mut(), control)
}

fn parse_id(s: &str) -> io::Result<i32> {
    s.parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("invalid id '{s}'")))
}

/// Opens the peer's end of the objects the lab made.
fn open_peer_end(a: &PeerArgs) -> io::Result<Box<dyn Channel>> {
    Ok(match a.mech {
        Mech::Channel | Mech::ChannelBlocking => {
            Box::new(open_channel_pair(a.mech, &a.name, &a.name2)?)
        }
        Mech::Pipe => {
            let (r, w) = stdio_files()?;
            Box::new(Stream { r, w })
        }
        Mech::Fifo => {
            let r = fifo::open(&a.name, fifo::End::Read)?;
            let w = fifo::open(&a.name2, fifo::End::Write)?;
            Box::new(Stream { r, w })
        }
        Mech::Unix => {
            let sock = UnixStream::connect(&a.name)?;
            let r = sock.try_clone()?;
            Box::new(Stream { r, w: sock })
        }
        Mech::PosixMq => {
            let rx = MqOptions::new().open(&a.name, Create::Open)?;
            let tx = MqOptions::new().open(&a.name2, Create::Open)?;
            Box::new(PosixPair {
                tx,
                rx,
                timeout: false,
            })
        }
        Mech::SysvMq => {
            let q = SysvMq::from_id(parse_id(&a.name)?);
            Box::new(SysvPair { q, tx: 2, rx: 1 })
        }
        Mech::ShmSysv => {
            let set = SemSet::from_id(parse_id(&a.name)?);
            let data = SysvShm::from_id(parse_id(&a.name2)?).attach(Access::ReadWrite)?;
            Box::new(Ring {
                data,
                set,
                timeout: false,
                size: a.size,
                tx: 1,
                head: 0,
                tail: 0,
            })
        }
    })
}

/// Says it is ready, then serves counted batches through the peer
/// protocol: echoes each batch's messages (ping-pong) or reads them all
/// (stream) before saying the batch is done. The lab closing the control
/// channel where a length is due is the clean end; anything else (a
/// closed channel mid-batch, a short message) is an error, reported
/// through the exit status.
fn serve(a: &PeerArgs, data: &mut dyn Channel, control: &mut Control) -> io::Result<()> {
    let mut buf = vec![0u8; a.size];
    control.ready()?;
    while let Some(n) = control.next_batch()? {
        control.started()?;
        for _ in 0..n {
            data.recv(&mut buf)?;
            if a.mode == Mode::Pingpong {
                data.send(&buf)?;
            }
        }
        control.done()?;
    }
    Ok(())
}

/// Message sizes of a run: 64 B, 4 KiB, 64 KiB (more in `--full`), no
/// larger than `--max-size`.
fn sizes(full: bool, max: u64) -> Vec<usize> {
    let all: &[usize] = if full {
        &[64, 512, 4096, 8192, 65536]
    } else {
        &[64, 4096, 65536]
    };
    all.iter().copied().filter(|&s| s as u64 <= max).collect()
}

fn lab_error(mech: Mech, what: &str, e: &io::Error) -> Error {
    Error::io(format!("{} {what}", mech.label()), e)
}

/// The medians of one size: (mechanism, size, figure).
type Medians = Vec<(Mech, usize, f64)>;

fn run(run: &mut Run<'_>) -> Result<()> {
    let config = run.config().clone();
    let sizes = sizes(config.full, config.max_size);
    let measured = sizes
        .iter()
        .flat_map(|&s| {
            Mech::ALL
                .iter()
                .filter(move |m| m.limit().is_none_or(|l| s <= l))
        })
        .count();
    run.plan(2 * measured as u64);
    let mut skipped = Vec::new();
    // Medians by (mechanism, size) for the notes.
    let mut rtt: Medians = Vec::new();
    let mut gbps: Medians = Vec::new();
    for &size in &sizes {
        for mech in Mech::ALL {
            if mech.limit().is_some_and(|l| size > l) {
                skipped.push((mech, size));
                continue;
            }
            rtt.push((mech, size, measure_pingpong(run, mech, size)?));
            if let Some(v) = measure_stream(run, mech, size)? {
                gbps.push((mech, size, v));
            }
        }
    }
    notes(run, &rtt, &gbps, &skipped);
    Ok(())
}

/// The ping-pong row of `mech` at `size`; returns its median in µs.
pub(crate) fn measure_pingpong(run: &mut Run<'_>, mech: Mech, size: usize) -> Result<f64> {
    let label = exact_bytes(size as u64);
    let mut link = start(mech, Mode::Pingpong, size)?;
    let mut buf = vec![0x5au8; size];
    let case = Case::new(mech.label(), format!("{label} round trip")).param("bytes", size);
    let median = run.batch_latency(case, Unit::US, |n| {
        pingpong(&mut link, mech, &mut buf, n).map_err(|e| link.failed(e))
    })?;
    link.finish()?;
    Ok(median)
}

/// The one-way stream row of `mech` at `size`; returns its median in GB/s.
pub(crate) fn measure_stream(run: &mut Run<'_>, mech: Mech, size: usize) -> Result<Option<f64>> {
    let label = exact_bytes(size as u64);
    let buf = vec![0x5au8; size];
    let mut link = start(mech, Mode::Stream, size)?;
    let samples = run.config().timing.per_op(|n| -> Result<Duration> {
        stream(&mut link, mech, &buf, n).map_err(|e| link.failed(e))
    })?;
    link.finish()?;
    let samples: Vec<f64> = samples
        .iter()
        .map(|secs| size as f64 / secs / 1e9)
        .collect();
    let case = Case::new(mech.label(), format!("{label} one-way")).param("bytes", size);
    Ok(run.record(case, Unit::GB_PER_S, &samples).map(|r| r.median))
}

/// Sets up a measurement and waits until the peer says it is ready: a
/// peer still starting (exec, loading, page faults: milliseconds) would
/// otherwise make the first batch look slow, and the calibration, which
/// sizes the batches from the first ones, would settle on batches of a few
/// messages where the per-batch handshake dominates.
fn start(mech: Mech, mode: Mode, size: usize) -> Result<Link> {
    let mut link = connect(mech, mode, size)?;
    link.peer.ready()?;
    Ok(link)
}

/// One timed ping-pong batch of `n` round trips. The length goes to the
/// peer before the clock starts; its "done" is not timed either.
fn pingpong(link: &mut Link, mech: Mech, buf: &mut [u8], n: u64) -> Result<Duration> {
    link.peer.announce(n)?;
    let start = Instant::now();
    for _ in 0..n {
        link.channel
            .send(buf)
            .map_err(|e| lab_error(mech, "ping", &e))?;
        link.channel
            .recv(buf)
            .map_err(|e| lab_error(mech, "pong", &e))?;
    }
    let took = start.elapsed();
    link.peer.done()?;
    Ok(took)
}

/// One timed stream batch: `n` messages, then the peer's word that it read
/// them all. The length goes to the peer before the clock starts, as for
/// [`pingpong`].
fn stream(link: &mut Link, mech: Mech, buf: &[u8], n: u64) -> Result<Duration> {
    link.peer.announce(n)?;
    let start = Instant::now();
    for _ in 0..n {
        link.channel
            .send(buf)
            .map_err(|e| lab_error(mech, "stream", &e))?;
    }
    link.peer.done()?;
    Ok(start.elapsed())
}

fn best(rows: &[(Mech, usize, f64)], size: usize, lower: bool) -> Option<(Mech, f64)> {
    rows.iter()
        .filter(|r| r.1 == size && r.2.is_finite())
        .min_by(|a, b| {
            if lower {
                a.2.total_cmp(&b.2)
            } else {
                b.2.total_cmp(&a.2)
            }
        })
        .map(|r| (r.0, r.2))
}

/// A share as a percentage with a precision that keeps small ones visible.
fn percent(share: f64) -> String {
    let p = 100.0 * share;
    if p < 10.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

fn notes(
    run: &mut Run<'_>,
    rtt: &[(Mech, usize, f64)],
    gbps: &[(Mech, usize, f64)],
    skipped: &[(Mech, usize)],
) {
    let memcpy = run.memcpy_gbps();
    let mut sizes: Vec<usize> = rtt.iter().map(|r| r.1).collect();
    sizes.dedup();
    for &size in &sizes {
        let label = exact_bytes(size as u64);
        let pipe_rtt = rtt
            .iter()
            .find(|r| r.0 == Mech::Pipe && r.1 == size)
            .map(|r| r.2);
        if let (Some((m, v)), Some(p)) = (best(rtt, size, true), pipe_rtt) {
            let vs_pipe = if m == Mech::Pipe {
                String::new()
            } else {
                format!(" (pipe {p:.1} µs)")
            };
            run.note(format!(
                "{label} request/response: fastest round trip is {} at {v:.1} µs{vs_pipe}.",
                m.label()
            ));
        }
        if let Some((m, v)) = best(gbps, size, false) {
            let pipe = gbps
                .iter()
                .find(|r| r.0 == Mech::Pipe && r.1 == size)
                .map_or(f64::NAN, |r| r.2);
            run.note(format!(
                "{label} streaming: best is {} at {v:.2} GB/s, {} of this machine's memcpy ({memcpy:.1} GB/s); \
                 pipe {pipe:.2} GB/s, {}.{}",
                m.label(),
                percent(v / memcpy),
                percent(pipe / memcpy),
                if v > memcpy {
                    " (Above 100%: the ring's slots stay in the CPU caches, the memcpy figure is for buffers larger than the caches.)"
                } else {
                    ""
                }
            ));
        }
    }
    if let Some(&size) = sizes.first() {
        let at = |m: Mech| rtt.iter().find(|r| r.0 == m && r.1 == size).map(|r| r.2);
        let label = exact_bytes(size as u64);
        if let (Some(c), Some(s)) = (at(Mech::ChannelBlocking), at(Mech::ShmSysv)) {
            run.note(format!(
                "{label} round trip over shared memory, both sides sleeping in the kernel: memio channel {c:.1} µs \
                 (a futex wake only when the other side sleeps), System V semaphores {s:.1} µs (semop is a system \
                 call every time). The System V row keeps its own ring: the channel lives in a POSIX shared-memory \
                 object or memfd, whose open file descriptions carry its liveness locks, not in a System V segment."
            ));
        }
        if let (Some(p), Some(s)) = (at(Mech::PosixMq), at(Mech::SysvMq)) {
            run.note(format!(
                "{label} round trip through a queue: POSIX mq {p:.1} µs, System V mq {s:.1} µs."
            ));
        }
    }
    for (m, size) in skipped {
        let limit = m.limit().unwrap_or(0);
        let (path, which) = match m {
            Mech::PosixMq => ("/proc/sys/fs/mqueue/msgsize_max", "POSIX mq"),
            _ => ("/proc/sys/kernel/msgmax", "System V mq"),
        };
        run.note(format!(
            "{which} is not measured at {}: messages are limited to {limit} bytes ({path}; raising it needs CAP_SYS_RESOURCE), \
             so a {} message would have to be split.",
            exact_bytes(*size as u64),
            exact_bytes(*size as u64)
        ));
    }
    run.note(
        "Which mechanism for which scenario: parent and child exchanging a byte stream — a pipe (nothing to \
         name or clean up); unrelated processes — a FIFO or a Unix socket (a socket is two-way and can pass fds); \
         discrete messages with priorities or a poll()-able queue — POSIX mq (small messages only); messages \
         picked by type, or surviving every process — System V mq; bulk data — shared memory, where the copy into \
         the ring is the only cost and throughput tracks memcpy; with System V semaphores when a crashed holder \
         must be undone (SEM_UNDO), memio's channel when cheaper waits and dead-peer detection matter.",
    );
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::process::Command;

    use super::*;

    #[test]
    fn a_peer_exiting_before_it_connects_does_not_hang_the_lab() {
        let dir = Scratch::dir("test").unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fifo::create(&a).unwrap();
        fifo::create(&b).unwrap();
        let sh = |script: &str| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", script]);
            cmd
        };
        let mut peer = Peer::start_command("FIFO", sh("echo 'no such FIFO' >&2; exit 2")).unwrap();
        let err = open_fifos(&mut peer, &a, &b).unwrap_err();
        let err = peer
            .failed(lab_error(Mech::Fifo, "set-up", &err))
            .to_string();
        assert!(
            err.contains("FIFO peer: ") && err.contains("no such FIFO"),
            "{err}"
        );

        let listener = UnixListener::bind(dir.path().join("s")).unwrap();
        let mut peer = Peer::start_command("Unix socket", sh("exit 3")).unwrap();
        let err = accept_peer(&mut peer, &listener).unwrap_err();
        let err = peer
            .failed(lab_error(Mech::Unix, "set-up", &err))
            .to_string();
        assert!(
            err.contains("Unix socket peer: ") && err.contains("exit status: 3"),
            "{err}"
        );
    }

    #[test]
    fn peer_arguments_round_trip() {
        for mech in Mech::ALL {
            let a = PeerArgs {
                mech,
                mode: Mode::Stream,
                size: 64,
                name: "/a".into(),
                name2: String::new(),
            };
            let b = PeerArgs::parse(&a.to_args()).unwrap();
            assert_eq!(
                (b.mech, b.mode, b.size, b.name.as_str()),
                (mech, Mode::Stream, 64, "/a")
            );
        }
        assert!(PeerArgs::parse(&["pipe".into(), "pingpong".into(), "x".into()]).is_err());
    }

    fn args(mode: Mode, size: usize) -> PeerArgs {
        PeerArgs {
            mech: Mech::Pipe,
            mode,
            size,
            name: String::new(),
            name2: String::new(),
        }
    }

    fn batch(n: u64) -> Vec<u8> {
        n.to_le_bytes().to_vec()
    }

    /// Serves `lengths` on the control channel and `msgs` on the data
    /// channel; returns what the peer wrote to each.
    /// A writer the test can read back after handing it away.
    struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn serve_with(
        mode: Mode,
        size: usize,
        lengths: Vec<u8>,
        msgs: &[u8],
    ) -> io::Result<(String, Vec<u8>)> {
        let sent = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut control = Control::new(Cursor::new(lengths), Shared(sent.clone()));
        let mut data = Stream {
            r: Cursor::new(msgs.to_vec()),
            w: Vec::new(),
        };
        serve(&args(mode, size), &mut data, &mut control)?;
        let said = String::from_utf8(sent.borrow().clone()).unwrap();
        Ok((said, data.w))
    }

    #[test]
    fn the_peer_says_ready_echoes_counted_batches_and_ends_at_a_boundary() {
        let mut lengths = batch(2);
        lengths.extend(batch(1));
        let (said, echoed) =
            serve_with(Mode::Pingpong, 4, lengths.clone(), b"abcdefghijkl").unwrap();
        assert_eq!(
            (said.as_str(), echoed.as_slice()),
            ("RSDSD", &b"abcdefghijkl"[..])
        );
        let (said, echoed) = serve_with(Mode::Stream, 4, lengths, b"abcdefghijkl").unwrap();
        assert_eq!((said.as_str(), echoed.len()), ("RSDSD", 0));
        assert_eq!(serve_with(Mode::Stream, 4, Vec::new(), b"").unwrap().0, "R");
    }

    #[test]
    fn the_peer_fails_when_a_batch_or_a_length_is_cut_short() {
        // Two messages announced, one and a half sent.
        for mode in [Mode::Pingpong, Mode::Stream] {
            let err = serve_with(mode, 4, batch(2), b"abcdef").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        }
        let err = serve_with(Mode::Stream, 4, vec![2, 0, 0], b"").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("3 of 8 bytes"), "{err}");
    }
}
