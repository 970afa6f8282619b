//! Lab section `ipc`: the seed's "which mechanism for which scenario",
//! measured between two real processes.
//!
//! Every mechanism runs the same two workloads against a peer process (this
//! binary re-run as `memio ipc lab-peer`): a ping-pong (send a message, wait
//! for the peer to echo it: the round-trip latency a request/response
//! protocol pays) and a one-way stream (send N messages, the peer reads them
//! all and acknowledges once: the throughput of a producer/consumer). The
//! pipe is the reference: it needs no set-up and every Unix programmer knows
//! it. The shared-memory variants copy each message into and out of a ring
//! of slots, with semaphores counting full and empty slots, so they do the
//! same copies the kernel does for the others.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use memio::ipc::mq::posix::{MqOptions, PosixMq};
use memio::ipc::mq::sysv::{MsgType, SysvMq};
use memio::ipc::sem::posix::SharedSem;
use memio::ipc::sem::sysv::{SemOp, SemSet};
use memio::ipc::shm::{self, SysvShm};
use memio::ipc::{Create, fifo};
use memio::map::{Access, Region};

use super::{Case, Chart, Run, Section, Unit};
use crate::error::{CliError, CliResult, EXIT_OK};
use crate::size::exact_bytes;

/// The section as registered in the lab.
pub(crate) const SECTION: Section = Section {
    name: "ipc",
    title: "pipes, FIFOs, Unix sockets, message queues, shared memory + semaphores",
    about: "Two processes, seven mechanisms, messages of 64 B, 4 KiB and 64 KiB: round-trip latency \
            of a ping-pong (a request/response protocol) and one-way throughput of a stream (a \
            producer/consumer). Shared memory is measured with a ring of slots and semaphores \
            counting full and empty ones (POSIX unnamed semaphores in the shared memory, or a \
            System V semaphore set), copying each message in and out like the kernel does for \
            the others. Answers: which mechanism for which scenario, on this machine.",
    reference: PIPE,
    chart: Chart::Lines,
    run,
};

const PIPE: &str = "pipe";
/// Slots per direction in the shared-memory rings.
const SLOTS: usize = 4;
/// How long the lab waits for a peer before declaring it lost.
const PEER_TIMEOUT: Duration = Duration::from_secs(20);

/// The mechanisms, in the order they are measured and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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
    /// POSIX shared memory, unnamed POSIX semaphores inside it.
    ShmPosix,
    /// System V shared memory and a System V semaphore set.
    ShmSysv,
}

impl Mech {
    const ALL: [Mech; 7] = [
        Mech::Pipe,
        Mech::Fifo,
        Mech::Unix,
        Mech::PosixMq,
        Mech::SysvMq,
        Mech::ShmPosix,
        Mech::ShmSysv,
    ];

    fn label(self) -> &'static str {
        match self {
            Mech::Pipe => PIPE,
            Mech::Fifo => "FIFO",
            Mech::Unix => "Unix socket",
            Mech::PosixMq => "POSIX mq",
            Mech::SysvMq => "System V mq",
            Mech::ShmPosix => "shm + POSIX sem",
            Mech::ShmSysv => "shm + System V sem",
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Echo every message back.
    Pingpong,
    /// Read counted batches, acknowledge each.
    Stream,
}

/// Arguments of the hidden `memio ipc lab-peer` command.
#[derive(Debug, Args)]
pub(crate) struct PeerArgs {
    #[arg(long, value_enum)]
    mech: Mech,
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long)]
    size: usize,
    /// Name, path or id of the mechanism's objects.
    #[arg(long, default_value = "")]
    name: String,
    /// Second name (data object, second queue, semaphore set id).
    #[arg(long, default_value = "")]
    name2: String,
}

/// A two-way message channel between the lab and its peer.
trait Channel {
    fn send(&mut self, buf: &[u8]) -> io::Result<()>;
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()>;
    /// Like `recv`, but `Ok(false)` when the other side closed the channel
    /// at a message boundary (the clean end of a byte stream).
    fn recv_or_end(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.recv(buf).map(|()| true)
    }
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
    fn recv_or_end(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            match self.r.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the channel closed after {got} of {} bytes", buf.len()),
                    ));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
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

/// Semaphores counting full and empty slots: 0 = A full, 1 = A empty,
/// 2 = B full, 3 = B empty (A: lab to peer, B: peer to lab).
trait Counters {
    fn wait(&self, i: usize) -> io::Result<()>;
    fn post(&self, i: usize) -> io::Result<()>;
}

struct PosixCounters<'a> {
    sems: Vec<SharedSem<'a>>,
    timeout: bool,
}

impl Counters for PosixCounters<'_> {
    fn wait(&self, i: usize) -> io::Result<()> {
        if self.timeout {
            if self.sems[i].wait_deadline(Instant::now() + PEER_TIMEOUT)? {
                return Ok(());
            }
            return Err(lost());
        }
        self.sems[i].wait()
    }
    fn post(&self, i: usize) -> io::Result<()> {
        self.sems[i].post()
    }
}

struct SysvCounters {
    set: SemSet,
    timeout: bool,
}

fn index(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(0)
}

impl Counters for SysvCounters {
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

/// A ring of [`SLOTS`] slots per direction in shared memory.
struct Ring<C> {
    data: Region,
    counters: C,
    size: usize,
    /// Direction this side sends on (0: A, 1: B).
    tx: usize,
    head: usize,
    tail: usize,
}

impl<C: Counters> Ring<C> {
    fn slot(&self, dir: usize, i: usize) -> usize {
        (dir * SLOTS + i) * self.size
    }
}

impl<C: Counters> Channel for Ring<C> {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let (full, empty) = (self.tx * 2, self.tx * 2 + 1);
        self.counters.wait(empty)?;
        let at = self.slot(self.tx, self.head);
        self.data.write_at(at, buf)?;
        self.head = (self.head + 1) % SLOTS;
        self.counters.post(full)
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let rx = 1 - self.tx;
        let (full, empty) = (rx * 2, rx * 2 + 1);
        self.counters.wait(full)?;
        self.data.read_at(self.slot(rx, self.tail), buf)?;
        self.tail = (self.tail + 1) % SLOTS;
        self.counters.post(empty)
    }
}

/// The bytes a shared-memory ring needs for messages of `size` bytes.
fn ring_bytes(size: usize) -> usize {
    2 * SLOTS * size
}

/// Unique names for one measurement's objects.
fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "/memio-lab-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes what a measurement made, even when it fails.
enum Cleanup {
    PosixMq(String),
    PosixShm(String),
    SysvMq(SysvMq),
    SysvShm(SysvShm),
    SemSet(SemSet),
    Dir(PathBuf),
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = match self {
            Cleanup::PosixMq(n) => PosixMq::unlink(n).map_err(drop),
            Cleanup::PosixShm(n) => shm::unlink(n).map_err(drop),
            Cleanup::SysvMq(q) => q.remove().map_err(drop),
            Cleanup::SysvShm(s) => s.remove().map_err(drop),
            Cleanup::SemSet(s) => s.remove().map_err(drop),
            Cleanup::Dir(d) => std::fs::remove_dir_all(d).map_err(drop),
        };
    }
}

/// The peer process; killed and reaped on drop (when a measurement failed:
/// a finished link waits for it with [`Peer::exit`] first).
struct Peer(Child);

impl Peer {
    /// Waits up to `timeout` for the peer to exit and turns anything but a
    /// clean exit into an error carrying what the peer printed on stderr.
    /// `Ok(false)` when it is still running at the deadline.
    fn exit(&mut self, mech: Mech, timeout: Duration) -> CliResult<bool> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.0.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(None) => return Ok(false),
                Err(e) => return Err(lab_error(mech, "peer", &e)),
            }
        };
        if status.success() {
            return Ok(true);
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = self.0.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let said = stderr.trim();
        Err(CliError::new(
            format!("{} peer", mech.label()),
            if said.is_empty() {
                format!("the peer process failed ({status})")
            } else {
                format!("the peer process failed ({status}): {said}")
            },
        ))
    }
}

impl Peer {
    /// `err`, or the peer's own failure when it already exited with one.
    fn said(&mut self, mech: Mech, err: io::Error) -> io::Error {
        match self.exit(mech, Duration::ZERO) {
            Err(failed) => io::Error::other(failed.to_string()),
            Ok(_) => err,
        }
    }
}

/// Opens the lab's ends of the FIFOs `a` (lab to peer) and `b` (peer to
/// lab) in the peer's order. Each open blocks until the peer opens the
/// other end; should the peer exit first, the lab opens those ends itself
/// to release its own opens and reports that the peer is gone.
fn open_fifos(peer: &mut Peer, a: &Path, b: &Path) -> io::Result<(File, File)> {
    std::thread::scope(|scope| {
        let opens = scope.spawn(|| -> io::Result<(File, File)> {
            let w = fifo::open(a, fifo::End::Write, false)?;
            let r = fifo::open(b, fifo::End::Read, false)?;
            Ok((w, r))
        });
        let (mut release_a, mut release_b) = (None, None);
        while !opens.is_finished() {
            if peer.0.try_wait()?.is_some() {
                if release_a.is_none() {
                    release_a = fifo::open(a, fifo::End::Read, true).ok();
                }
                // Fails (no reader yet) until the thread waits in its open.
                if release_b.is_none() {
                    release_b = fifo::open(b, fifo::End::Write, true).ok();
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
                if peer.0.try_wait()?.is_some() {
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

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How the lab tells the peer a batch's length and learns a stream is
/// done: through the data channel itself (pipe, FIFO, Unix socket: the
/// byte streams, measured alike) or the child's stdin/stdout.
enum Control {
    InBand,
    Pipes(ChildStdin, ChildStdout),
}

/// One live set-up: the channel, the control path, the peer, the objects.
struct Link {
    channel: Box<dyn Channel>,
    control: Control,
    // Dropped in this order: the peer first (killed, if `finish` did not
    // see it exit), then the objects.
    peer: Peer,
    cleanup: Vec<Cleanup>,
}

impl Link {
    /// Ends the measurement: closes the lab's ends (the peer reads the end
    /// of its control stream where it expects the next batch's length and
    /// exits), then checks that the peer exited cleanly.
    fn finish(self, mech: Mech) -> CliResult<()> {
        let Link {
            channel,
            control,
            mut peer,
            cleanup,
        } = self;
        drop(channel);
        drop(control);
        if !peer.exit(mech, PEER_TIMEOUT)? {
            return Err(lab_error(mech, "peer", &lost()));
        }
        drop(cleanup);
        Ok(())
    }

    /// The error to report for a failed measurement: the peer's own when it
    /// failed (the cause), otherwise `err`.
    fn failed(&mut self, mech: Mech, err: CliError) -> CliError {
        match self.peer.exit(mech, Duration::from_millis(200)) {
            Err(peer) => peer,
            Ok(_) => err,
        }
    }

    fn announce(&mut self, n: u64) -> io::Result<()> {
        match &mut self.control {
            Control::InBand => self.channel.send(&n.to_le_bytes()),
            Control::Pipes(stdin, _) => {
                stdin.write_all(&n.to_le_bytes())?;
                stdin.flush()
            }
        }
    }

    fn acknowledged(&mut self) -> io::Result<()> {
        let mut b = [0u8; 1];
        match &mut self.control {
            Control::InBand => self.channel.recv(&mut b),
            Control::Pipes(_, stdout) => stdout.read_exact(&mut b),
        }
    }
}

fn peer_command(
    mech: Mech,
    mode: Mode,
    size: usize,
    name: &str,
    name2: &str,
) -> io::Result<Command> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["ipc", "lab-peer", "--mech"])
        .arg(mech_arg(mech))
        .arg("--mode")
        .arg(match mode {
            Mode::Pingpong => "pingpong",
            Mode::Stream => "stream",
        })
        .arg("--size")
        .arg(size.to_string())
        .arg("--name")
        .arg(name)
        .arg("--name2")
        .arg(name2)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Captured: a peer's failure is reported by the lab as the
        // section's error, not printed in the middle of the run.
        .stderr(Stdio::piped());
    Ok(cmd)
}

fn mech_arg(m: Mech) -> String {
    m.to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

fn spawn(cmd: &mut Command) -> io::Result<(Peer, ChildStdin, ChildStdout)> {
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let peer = Peer(child);
    match (stdin, stdout) {
        (Some(i), Some(o)) => Ok((peer, i, o)),
        _ => Err(io::Error::other("the peer's stdin/stdout were not piped")),
    }
}

/// Makes the objects, starts the peer and connects to it.
#[allow(
    clippy::too_many_lines,
    reason = "one short arm per mechanism reads best side by side"
)]
fn connect(mech: Mech, mode: Mode, size: usize) -> io::Result<Link> {
    let mut cleanup = Vec::new();
    let link = match mech {
        Mech::Pipe => {
            let (peer, stdin, stdout) = spawn(&mut peer_command(mech, mode, size, "", "")?)?;
            Link {
                channel: Box::new(Stream {
                    r: stdout,
                    w: stdin,
                }),
                control: Control::InBand,
                peer,
                cleanup,
            }
        }
        Mech::Fifo => {
            let dir = std::env::temp_dir().join(unique("fifo").trim_start_matches('/'));
            std::fs::create_dir(&dir)?;
            cleanup.push(Cleanup::Dir(dir.clone()));
            let (a, b) = (dir.join("a"), dir.join("b"));
            fifo::create(&a)?;
            fifo::create(&b)?;
            let (mut peer, stdin, stdout) = spawn(&mut peer_command(
                mech,
                mode,
                size,
                &a.to_string_lossy(),
                &b.to_string_lossy(),
            )?)?;
            let (w, r) = open_fifos(&mut peer, &a, &b).map_err(|e| peer.said(mech, e))?;
            drop((stdin, stdout));
            Link {
                channel: Box::new(Stream { r, w }),
                control: Control::InBand,
                peer,
                cleanup,
            }
        }
        Mech::Unix => {
            let dir = std::env::temp_dir().join(unique("sock").trim_start_matches('/'));
            std::fs::create_dir(&dir)?;
            cleanup.push(Cleanup::Dir(dir.clone()));
            let path = dir.join("s");
            let listener = UnixListener::bind(&path)?;
            let (mut peer, stdin, stdout) = spawn(&mut peer_command(
                mech,
                mode,
                size,
                &path.to_string_lossy(),
                "",
            )?)?;
            let sock = accept_peer(&mut peer, &listener).map_err(|e| peer.said(mech, e))?;
            let r = sock.try_clone()?;
            drop((stdin, stdout));
            Link {
                channel: Box::new(Stream { r, w: sock }),
                control: Control::InBand,
                peer,
                cleanup,
            }
        }
        Mech::PosixMq => {
            let (a, b) = (unique("mq-a"), unique("mq-b"));
            let opts = MqOptions::new()
                .capacity(10.min(read_proc("/proc/sys/fs/mqueue/msg_max").unwrap_or(10)))
                .msg_size(size);
            let tx = opts.open(&a, Create::Exclusive)?;
            cleanup.push(Cleanup::PosixMq(a.clone()));
            let rx = opts.open(&b, Create::Exclusive)?;
            cleanup.push(Cleanup::PosixMq(b.clone()));
            let (peer, stdin, stdout) = spawn(&mut peer_command(mech, mode, size, &a, &b)?)?;
            Link {
                channel: Box::new(PosixPair {
                    tx,
                    rx,
                    timeout: true,
                }),
                control: Control::Pipes(stdin, stdout),
                peer,
                cleanup,
            }
        }
        Mech::SysvMq => {
            let q = SysvMq::private()?;
            cleanup.push(Cleanup::SysvMq(q));
            let (peer, stdin, stdout) = spawn(&mut peer_command(
                mech,
                mode,
                size,
                &q.id().to_string(),
                "",
            )?)?;
            Link {
                channel: Box::new(SysvPair { q, tx: 1, rx: 2 }),
                control: Control::Pipes(stdin, stdout),
                peer,
                cleanup,
            }
        }
        Mech::ShmPosix => {
            let (ctl_name, data_name) = (unique("ctl"), unique("data"));
            let ctl = shm::create(&ctl_name, 4096)?;
            cleanup.push(Cleanup::PosixShm(ctl_name.clone()));
            let data = shm::create(&data_name, ring_bytes(size))?;
            cleanup.push(Cleanup::PosixShm(data_name.clone()));
            for (i, v) in [0, SLOTS, 0, SLOTS].into_iter().enumerate() {
                SharedSem::init_in(&ctl, i * 64, u32::try_from(v).unwrap_or(0))?;
            }
            let (peer, stdin, stdout) =
                spawn(&mut peer_command(mech, mode, size, &ctl_name, &data_name)?)?;
            // The semaphores borrow the control mapping for the link's
            // life: leak it (one page per measurement, unmapped at exit).
            let ctl: &'static Region = Box::leak(Box::new(ctl));
            let sems = (0..4)
                .map(|i| SharedSem::in_region(ctl, i * 64))
                .collect::<io::Result<Vec<_>>>()?;
            Link {
                channel: Box::new(Ring {
                    data,
                    counters: PosixCounters {
                        sems,
                        timeout: true,
                    },
                    size,
                    tx: 0,
                    head: 0,
                    tail: 0,
                }),
                control: Control::Pipes(stdin, stdout),
                peer,
                cleanup,
            }
        }
        Mech::ShmSysv => {
            let set = SemSet::private(4)?;
            cleanup.push(Cleanup::SemSet(set));
            let seg = SysvShm::private(ring_bytes(size))?;
            cleanup.push(Cleanup::SysvShm(seg));
            let slots = u16::try_from(SLOTS).unwrap_or(1);
            set.set_values(&[0, slots, 0, slots])?;
            let data = seg.attach(Access::ReadWrite)?;
            let (peer, stdin, stdout) = spawn(&mut peer_command(
                mech,
                mode,
                size,
                &set.id().to_string(),
                &seg.id().to_string(),
            )?)?;
            Link {
                channel: Box::new(Ring {
                    data,
                    counters: SysvCounters { set, timeout: true },
                    size,
                    tx: 0,
                    head: 0,
                    tail: 0,
                }),
                control: Control::Pipes(stdin, stdout),
                peer,
                cleanup,
            }
        }
    };
    Ok(link)
}

/// Runs `memio ipc lab-peer`: the other end of a measurement.
pub(crate) fn peer(args: &PeerArgs) -> CliResult {
    peer_loop(args).map_err(|e| CliError::io(format!("lab peer ({})", args.mech.label()), &e))?;
    Ok(EXIT_OK)
}

fn parse_id(s: &str) -> io::Result<i32> {
    s.parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("invalid id '{s}'")))
}

/// The peer's stdin and stdout as plain files: no `BufReader` or
/// `LineWriter` in the way, so the pipe is read and written with the same
/// system calls as the FIFO and the socket.
fn stdio() -> io::Result<Stream<File, File>> {
    Ok(Stream {
        r: File::from(io::stdin().as_fd().try_clone_to_owned()?),
        w: File::from(io::stdout().as_fd().try_clone_to_owned()?),
    })
}

fn peer_loop(a: &PeerArgs) -> io::Result<()> {
    match a.mech {
        Mech::Pipe => serve(a, &mut stdio()?, None),
        Mech::Fifo => {
            let r = fifo::open(&a.name, fifo::End::Read, false)?;
            let w = fifo::open(&a.name2, fifo::End::Write, false)?;
            serve(a, &mut Stream { r, w }, None)
        }
        Mech::Unix => {
            let sock = UnixStream::connect(&a.name)?;
            let r = sock.try_clone()?;
            serve(a, &mut Stream { r, w: sock }, None)
        }
        Mech::PosixMq => {
            let rx = MqOptions::new().open(&a.name, Create::Open)?;
            let tx = MqOptions::new().open(&a.name2, Create::Open)?;
            serve(
                a,
                &mut PosixPair {
                    tx,
                    rx,
                    timeout: false,
                },
                Some(&mut stdio()?),
            )
        }
        Mech::SysvMq => {
            let q = SysvMq::from_id(parse_id(&a.name)?);
            serve(a, &mut SysvPair { q, tx: 2, rx: 1 }, Some(&mut stdio()?))
        }
        Mech::ShmPosix => {
            let ctl = shm::open(&a.name)?;
            let data = shm::open(&a.name2)?;
            let sems = (0..4)
                .map(|i| SharedSem::in_region(&ctl, i * 64))
                .collect::<io::Result<Vec<_>>>()?;
            let mut ring = Ring {
                data,
                counters: PosixCounters {
                    sems,
                    timeout: false,
                },
                size: a.size,
                tx: 1,
                head: 0,
                tail: 0,
            };
            serve(a, &mut ring, Some(&mut stdio()?))
        }
        Mech::ShmSysv => {
            let set = SemSet::from_id(parse_id(&a.name)?);
            let data = SysvShm::from_id(parse_id(&a.name2)?).attach(Access::ReadWrite)?;
            let mut ring = Ring {
                data,
                counters: SysvCounters {
                    set,
                    timeout: false,
                },
                size: a.size,
                tx: 1,
                head: 0,
                tail: 0,
            };
            serve(a, &mut ring, Some(&mut stdio()?))
        }
    }
}

/// Says it is ready (one byte, where stream acknowledgements go), then
/// serves counted batches: reads a batch's length (8 bytes, little endian,
/// on the control channel, or in band on a byte stream), then echoes that
/// many messages (ping-pong) or reads them and acknowledges with one byte
/// (stream). The lab closing the control channel where a length is due is
/// the clean end; anything else (a closed channel mid-batch, a short
/// message) is an error, reported through the exit status.
fn serve(
    a: &PeerArgs,
    data: &mut dyn Channel,
    mut control: Option<&mut dyn Channel>,
) -> io::Result<()> {
    let mut buf = vec![0u8; a.size];
    // Ready: set up and running, so that no timed batch (the calibration's
    // first one above all) waits for this process to start.
    match control.as_deref_mut() {
        Some(c) => c.send(&[1])?,
        None => data.send(&[1])?,
    }
    loop {
        let mut n = [0u8; 8];
        let more = match control.as_deref_mut() {
            Some(c) => c.recv_or_end(&mut n)?,
            None => data.recv_or_end(&mut n)?,
        };
        if !more {
            return Ok(());
        }
        let n = u64::from_le_bytes(n);
        match a.mode {
            Mode::Pingpong => {
                for _ in 0..n {
                    data.recv(&mut buf)?;
                    data.send(&buf)?;
                }
            }
            Mode::Stream => {
                for _ in 0..n {
                    data.recv(&mut buf)?;
                }
                match control.as_deref_mut() {
                    Some(c) => c.send(&[1])?,
                    None => data.send(&[1])?,
                }
            }
        }
    }
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

fn lab_error(mech: Mech, what: &str, e: &io::Error) -> CliError {
    CliError::io(format!("{} {what}", mech.label()), e)
}

fn run(run: &mut Run<'_>) -> CliResult<()> {
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
    let mut rtt: Vec<(Mech, usize, f64)> = Vec::new();
    let mut gbps: Vec<(Mech, usize, f64)> = Vec::new();
    for &size in &sizes {
        for mech in Mech::ALL {
            if mech.limit().is_some_and(|l| size > l) {
                skipped.push((mech, size));
                continue;
            }
            let label = exact_bytes(size as u64);
            // Ping-pong.
            let mut link = start(mech, Mode::Pingpong, size)?;
            let mut buf = vec![0x5au8; size];
            let case = Case::new(mech.label(), format!("{label} round trip")).param("bytes", size);
            let median = run.batch_latency(case, Unit::US, |n| {
                pingpong(&mut link, mech, &mut buf, n).map_err(|e| link.failed(mech, e))
            })?;
            link.finish(mech)?;
            rtt.push((mech, size, median));

            // One-way stream.
            let mut link = start(mech, Mode::Stream, size)?;
            let samples = config.timing.per_op(|n| -> CliResult<Duration> {
                stream(&mut link, mech, &buf, n).map_err(|e| link.failed(mech, e))
            })?;
            link.finish(mech)?;
            let samples: Vec<f64> = samples
                .iter()
                .map(|secs| size as f64 / secs / 1e9)
                .collect();
            let case = Case::new(mech.label(), format!("{label} one-way")).param("bytes", size);
            if let Some(row) = run.record(case, Unit::GB_PER_S, &samples) {
                gbps.push((mech, size, row.median));
            }
        }
    }
    notes(run, &rtt, &gbps, &skipped);
    Ok(())
}

/// Sets up a measurement and waits until the peer says it is ready: a
/// peer still starting (exec, loading, page faults: milliseconds) would
/// otherwise make the first batch look slow, and the calibration, which
/// sizes the batches from the first ones, would settle on batches of a few
/// messages where the per-batch handshake dominates.
fn start(mech: Mech, mode: Mode, size: usize) -> CliResult<Link> {
    let mut link = connect(mech, mode, size).map_err(|e| lab_error(mech, "set-up", &e))?;
    match link.acknowledged() {
        Ok(()) => Ok(link),
        Err(e) => Err(link.failed(mech, lab_error(mech, "set-up", &e))),
    }
}

/// One timed ping-pong batch of `n` round trips. The length goes to the
/// peer before the clock starts; the peer's exit is not timed either.
fn pingpong(link: &mut Link, mech: Mech, buf: &mut [u8], n: u64) -> CliResult<Duration> {
    link.announce(n)
        .map_err(|e| lab_error(mech, "ping-pong", &e))?;
    let start = Instant::now();
    for _ in 0..n {
        link.channel
            .send(buf)
            .map_err(|e| lab_error(mech, "ping", &e))?;
        link.channel
            .recv(buf)
            .map_err(|e| lab_error(mech, "pong", &e))?;
    }
    Ok(start.elapsed())
}

/// One timed stream batch: `n` messages, then the peer's acknowledgement
/// that it read them all. The length goes to the peer before the clock
/// starts, as for [`pingpong`].
fn stream(link: &mut Link, mech: Mech, buf: &[u8], n: u64) -> CliResult<Duration> {
    link.announce(n)
        .map_err(|e| lab_error(mech, "stream", &e))?;
    let start = Instant::now();
    for _ in 0..n {
        link.channel
            .send(buf)
            .map_err(|e| lab_error(mech, "stream", &e))?;
    }
    link.acknowledged()
        .map_err(|e| lab_error(mech, "acknowledgement", &e))?;
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
        if let (Some(p), Some(s)) = (at(Mech::ShmPosix), at(Mech::ShmSysv)) {
            run.note(format!(
                "{label} round trip over shared memory: POSIX semaphores {p:.1} µs, System V semaphores {s:.1} µs \
                 (semop is a system call every time; an uncontended POSIX post or wait stays in user space)."
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
         must be undone (SEM_UNDO), POSIX ones when cheaper waits matter.",
    );
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn sh(script: &str) -> Peer {
        Peer(
            Command::new("sh")
                .args(["-c", script])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }

    #[test]
    fn a_failing_peer_is_an_error_naming_the_mechanism_and_its_message() {
        let err = sh("echo 'memio: lab peer (FIFO): failed to fill whole buffer' >&2; exit 2")
            .exit(Mech::Fifo, PEER_TIMEOUT)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("FIFO peer: "), "{err}");
        assert!(err.contains("exit status: 2"), "{err}");
        assert!(err.contains("failed to fill whole buffer"), "{err}");
    }

    #[test]
    fn a_peer_killed_by_a_signal_is_an_error_too() {
        let err = sh("kill -9 $$")
            .exit(Mech::PosixMq, PEER_TIMEOUT)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("POSIX mq peer: "), "{err}");
        assert!(err.contains("signal: 9"), "{err}");
    }

    #[test]
    fn a_clean_exit_is_success_and_a_running_peer_is_not_yet() {
        assert!(sh("exit 0").exit(Mech::Pipe, PEER_TIMEOUT).unwrap());
        assert!(
            !sh("sleep 10")
                .exit(Mech::Pipe, Duration::from_millis(10))
                .unwrap()
        );
    }

    #[test]
    fn a_peer_exiting_before_it_connects_does_not_hang_the_lab() {
        let dir = std::env::temp_dir().join(unique("test").trim_start_matches('/'));
        std::fs::create_dir(&dir).unwrap();
        let _cleanup = Cleanup::Dir(dir.clone());
        let (a, b) = (dir.join("a"), dir.join("b"));
        fifo::create(&a).unwrap();
        fifo::create(&b).unwrap();
        let mut peer = sh("echo 'no such FIFO' >&2; exit 2");
        let err = open_fifos(&mut peer, &a, &b).unwrap_err();
        let err = peer.said(Mech::Fifo, err).to_string();
        assert!(
            err.contains("FIFO peer: ") && err.contains("no such FIFO"),
            "{err}"
        );

        let listener = UnixListener::bind(dir.join("s")).unwrap();
        let mut peer = sh("exit 3");
        let err = accept_peer(&mut peer, &listener).unwrap_err();
        let err = peer.said(Mech::Unix, err).to_string();
        assert!(
            err.contains("Unix socket peer: ") && err.contains("exit status: 3"),
            "{err}"
        );
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

    /// Serves `input` on an in-band byte stream; returns what the peer wrote.
    fn serve_bytes(mode: Mode, size: usize, input: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut s = Stream {
            r: Cursor::new(input),
            w: Vec::new(),
        };
        serve(&args(mode, size), &mut s, None)?;
        Ok(s.w)
    }

    fn batch(n: u64, msgs: &[u8]) -> Vec<u8> {
        let mut v = n.to_le_bytes().to_vec();
        v.extend_from_slice(msgs);
        v
    }

    #[test]
    fn the_peer_says_ready_echoes_counted_batches_and_ends_at_a_boundary() {
        let mut input = batch(2, b"abcdefgh");
        input.extend(batch(1, b"ijkl"));
        assert_eq!(
            serve_bytes(Mode::Pingpong, 4, input.clone()).unwrap(),
            b"\x01abcdefghijkl"
        );
        assert_eq!(serve_bytes(Mode::Stream, 4, input).unwrap(), [1, 1, 1]);
        assert_eq!(serve_bytes(Mode::Stream, 4, Vec::new()).unwrap(), [1]);
    }

    #[test]
    fn the_peer_fails_when_a_batch_or_a_length_is_cut_short() {
        // Two messages announced, one and a half sent.
        for mode in [Mode::Pingpong, Mode::Stream] {
            let err = serve_bytes(mode, 4, batch(2, b"abcdef")).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        }
        let err = serve_bytes(Mode::Stream, 4, vec![2, 0, 0]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("3 of 8 bytes"), "{err}");
    }
}
