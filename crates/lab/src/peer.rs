//! The one peer protocol: how a section runs the other end of a
//! measurement in a second process.
//!
//! The lab starts the binary that runs it again, as
//! `<binary> lab --peer <section> <args...>` ([`Peer::start`]), with the
//! child's stdin and stdout as the control channel and its stderr kept for
//! the error report. Over the control channel, in this order:
//!
//! 1. the peer sets itself up (opens the objects the lab named) and writes
//!    [`READY`]; [`Peer::ready`] waits for it, so that no timed batch waits
//!    for a process that is still starting;
//! 2. for each batch the lab writes its length, 8 bytes little-endian
//!    ([`Peer::announce`]); the peer answers [`STARTED`] when it is about to
//!    work, does the batch's `n` operations with the lab, and writes
//!    [`DONE`] ([`Peer::done`]);
//! 3. the lab closes the peer's stdin where a length is due: the clean end;
//!    the peer exits with status 0 and [`Peer::finish`] checks that it did.
//!
//! A peer that fails prints `memio: <why>` on stderr and exits non-zero;
//! the lab turns that into the section's error, naming the peer and
//! quoting what it said. A peer that hangs is killed by a watchdog after
//! [`PEER_TIMEOUT`] of a handshake or batch and reported as such, so a
//! section never waits forever. The pipe mechanism of the `ipc` section
//! uses the control pipes for its data as well (`Peer::pipes`): lengths
//! and acknowledgements then travel in band, in order, between batches.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Error, Result, SECTIONS};

thread_local! {
    /// The CPU that peers started by this thread run on ([`peers_on`]).
    static PEER_CPU: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Runs `f` with the peers it starts (from this thread) placed on `cpu`:
/// a child runs where the starting thread ran at the moment it started, so
/// the thread moves to `cpu` for each start and back. `None` leaves them
/// where they would be.
pub(crate) fn peers_on<T>(cpu: Option<usize>, f: impl FnOnce() -> T) -> T {
    let before = PEER_CPU.replace(cpu);
    let out = f();
    PEER_CPU.set(before);
    out
}

/// The calling thread pinned to one CPU; dropping it gives the thread
/// back the CPUs it had.
pub(crate) struct Pinned(rustix::thread::CpuSet);

/// Pins the calling thread to `cpu`; `None` when it cannot.
pub(crate) fn pin(cpu: usize) -> Option<Pinned> {
    let before = rustix::thread::sched_getaffinity(None).ok()?;
    let mut one = rustix::thread::CpuSet::new();
    one.set(cpu);
    rustix::thread::sched_setaffinity(None, &one).ok()?;
    Some(Pinned(before))
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = rustix::thread::sched_setaffinity(None, &self.0);
    }
}

/// The peer is set up and waits for the first batch.
pub const READY: u8 = b'R';
/// The peer read a batch's length and starts it.
pub const STARTED: u8 = b'S';
/// The peer finished a batch.
pub const DONE: u8 = b'D';
/// How long a handshake or a batch may take before the peer is declared
/// hung and killed.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(20);

/// Kills the peer when a handshake or batch outlives its deadline.
#[derive(Debug)]
struct Watchdog {
    arm: Option<mpsc::Sender<Option<Instant>>>,
    fired: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    fn new(child: Arc<Mutex<Child>>) -> Self {
        let (arm, deadlines) = mpsc::channel::<Option<Instant>>();
        let fired = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&fired);
        let thread = std::thread::spawn(move || {
            let mut deadline: Option<Instant> = None;
            loop {
                let next = match deadline {
                    None => deadlines.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    Some(d) => deadlines.recv_timeout(d.saturating_duration_since(Instant::now())),
                };
                match next {
                    Ok(d) => deadline = d,
                    Err(RecvTimeoutError::Timeout) => {
                        flag.store(true, Ordering::SeqCst);
                        let mut child = child.lock().unwrap_or_else(PoisonError::into_inner);
                        let _ = child.kill();
                        deadline = None;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        });
        Self {
            arm: Some(arm),
            fired,
            thread: Some(thread),
        }
    }

    fn arm(&self, timeout: Duration) {
        if let Some(a) = &self.arm {
            let _ = a.send(Some(Instant::now() + timeout));
        }
    }

    fn disarm(&self) {
        if let Some(a) = &self.arm {
            let _ = a.send(None);
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.arm = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running peer process, seen from the lab: killed and reaped on drop
/// when [`Peer::finish`] did not see it end.
#[derive(Debug)]
pub struct Peer {
    label: String,
    child: Arc<Mutex<Child>>,
    input: Option<ChildStdin>,
    output: Option<ChildStdout>,
    watchdog: Watchdog,
    timeout: Duration,
    reaped: bool,
}

impl Peer {
    /// Starts `lab --peer <section> <args>` with this binary; `label` names
    /// the peer in errors (`FIFO` gives `FIFO peer: ...`).
    ///
    /// # Errors
    ///
    /// The binary cannot be found or started.
    pub fn start(label: &str, section: &str, args: &[String]) -> Result<Self> {
        let exe = std::env::current_exe().map_err(|e| Error::io("memio binary", &e))?;
        let mut cmd = Command::new(exe);
        cmd.args(["lab", "--peer", section]).args(args);
        Self::spawn(label, cmd, PEER_TIMEOUT)
    }

    /// Like [`Peer::start`], with the peer's command handed to `prepare`
    /// first (to set its environment, say: a choice the peer must see
    /// before its first allocation).
    ///
    /// # Errors
    ///
    /// The binary cannot be found or started.
    pub fn start_with(
        label: &str,
        section: &str,
        args: &[String],
        prepare: impl FnOnce(&mut Command),
    ) -> Result<Self> {
        let exe = std::env::current_exe().map_err(|e| Error::io("memio binary", &e))?;
        let mut cmd = Command::new(exe);
        cmd.args(["lab", "--peer", section]).args(args);
        prepare(&mut cmd);
        Self::spawn(label, cmd, PEER_TIMEOUT)
    }

    /// The peer's process id.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.child().id()
    }

    /// Starts `cmd` as a peer, for tests that play a peer with a script.
    #[cfg(test)]
    pub(crate) fn start_command(label: &str, cmd: Command) -> Result<Self> {
        Self::spawn(label, cmd, PEER_TIMEOUT)
    }

    /// Starts `cmd` as a peer with its stdio piped.
    fn spawn(label: &str, mut cmd: Command, timeout: Duration) -> Result<Self> {
        let placed = match PEER_CPU.get() {
            Some(cpu) => Some(pin(cpu).ok_or_else(|| {
                Error::io(
                    format!("{label} peer"),
                    &io::Error::other(format!("cannot start it on CPU {cpu}")),
                )
            })?),
            None => None,
        };
        let spawned = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Captured: a peer's failure is reported as the section's
            // error, not printed in the middle of the run.
            .stderr(Stdio::piped())
            .spawn();
        drop(placed);
        let mut child = spawned.map_err(|e| Error::io(format!("{label} peer"), &e))?;
        let input = child.stdin.take();
        let output = child.stdout.take();
        let child = Arc::new(Mutex::new(child));
        Ok(Self {
            label: label.to_owned(),
            watchdog: Watchdog::new(Arc::clone(&child)),
            child,
            input,
            output,
            timeout,
            reaped: false,
        })
    }

    /// The object errors about this peer name: `FIFO peer`.
    #[must_use]
    pub fn name(&self) -> String {
        format!("{} peer", self.label)
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Copies of the lab's ends of the control pipes (writing to the
    /// peer's stdin, reading its stdout), for a mechanism that sends its
    /// data over them too.
    ///
    /// # Errors
    ///
    /// The pipes were already closed, or duplicating them failed.
    pub fn pipes(&self) -> io::Result<(File, File)> {
        let (Some(i), Some(o)) = (&self.input, &self.output) else {
            return Err(io::Error::other("the peer's pipes are closed"));
        };
        Ok((
            File::from(i.as_fd().try_clone_to_owned()?),
            File::from(o.as_fd().try_clone_to_owned()?),
        ))
    }

    /// Whether the peer process has exited, for set-up steps that wait on
    /// something only a live peer will do.
    ///
    /// # Errors
    ///
    /// Asking the kernel failed.
    pub fn exited(&mut self) -> io::Result<bool> {
        Ok(self.child().try_wait()?.is_some())
    }

    fn expect(&mut self, byte: u8, what: &str) -> io::Result<()> {
        let Some(out) = self.output.as_mut() else {
            return Err(io::Error::other("the peer's pipes are closed"));
        };
        let mut b = [0u8; 1];
        match out.read_exact(&mut b) {
            Ok(()) if b[0] == byte => Ok(()),
            Ok(()) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the peer sent {:?} instead of {what}", char::from(b[0])),
            )),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the peer process ended before {what}"),
            )),
            Err(e) => Err(e),
        }
    }

    /// Waits until the peer says it is set up ([`READY`]).
    ///
    /// # Errors
    ///
    /// The peer failed, ended or hung before it was ready.
    pub fn ready(&mut self) -> Result<()> {
        self.watchdog.arm(self.timeout);
        let got = self.expect(READY, "ready");
        self.watchdog.disarm();
        got.map_err(|e| self.failed(Error::io(self.name(), &e)))
    }

    /// Tells the peer a batch of `n` operations starts and waits until it
    /// has ([`STARTED`]). The watchdog runs until [`Peer::done`].
    ///
    /// # Errors
    ///
    /// The peer failed, ended or hung.
    pub fn announce(&mut self, n: u64) -> Result<()> {
        self.watchdog.arm(self.timeout);
        let sent = match self.input.as_mut() {
            Some(i) => i.write_all(&n.to_le_bytes()).and_then(|()| i.flush()),
            None => Err(io::Error::other("the peer's pipes are closed")),
        };
        sent.and_then(|()| self.expect(STARTED, "starting the batch"))
            .map_err(|e| self.failed(Error::io(self.name(), &e)))
    }

    /// Waits until the peer finished the batch ([`DONE`]).
    ///
    /// # Errors
    ///
    /// The peer failed, ended or hung.
    pub fn done(&mut self) -> Result<()> {
        let got = self.expect(DONE, "finishing the batch");
        self.watchdog.disarm();
        got.map_err(|e| self.failed(Error::io(self.name(), &e)))
    }

    /// The error to report for a failed step: the peer's own when it
    /// failed or hung (the cause), otherwise `err`.
    pub fn failed(&mut self, err: Error) -> Error {
        self.watchdog.disarm();
        if self.watchdog.fired.load(Ordering::SeqCst) {
            let _ = self.wait(Duration::from_secs(1));
            return Error::new(
                self.name(),
                format!(
                    "the peer process did not answer within {} s and was stopped",
                    self.timeout.as_secs_f64()
                ),
            );
        }
        match self.wait(Duration::from_millis(200)) {
            Err(peer) => peer,
            Ok(_) => err,
        }
    }

    /// Waits up to `timeout` for the peer to exit and turns anything but a
    /// clean exit into an error carrying what the peer printed on stderr.
    /// `Ok(false)` when it is still running at the deadline.
    fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            let polled = self.child().try_wait();
            match polled {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(None) => return Ok(false),
                Err(e) => return Err(Error::io(self.name(), &e)),
            }
        };
        self.reaped = true;
        if status.success() {
            return Ok(true);
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child().stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let said = stderr.trim();
        Err(Error::new(
            self.name(),
            if said.is_empty() {
                format!("the peer process failed ({status})")
            } else {
                format!("the peer process failed ({status}): {said}")
            },
        ))
    }

    /// Ends the peer cleanly: closes its stdin (it reads the end where the
    /// next batch's length is due and exits), then checks that it exited
    /// with status 0 within the timeout.
    ///
    /// # Errors
    ///
    /// The peer failed, or did not end in time (it is then killed).
    pub fn finish(mut self) -> Result<()> {
        self.input = None;
        self.output = None;
        if self.wait(self.timeout)? {
            Ok(())
        } else {
            Err(Error::new(
                self.name(),
                format!(
                    "the peer process did not end within {} s after its last batch",
                    self.timeout.as_secs_f64()
                ),
            ))
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.input = None;
        self.output = None;
        if !self.reaped {
            let mut child = self.child();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The peer's side of the control channel.
pub struct Control {
    input: Box<dyn Read>,
    output: Box<dyn Write>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").finish_non_exhaustive()
    }
}

impl Control {
    /// The control channel over `input` and `output`.
    pub fn new(input: impl Read + 'static, output: impl Write + 'static) -> Self {
        Self {
            input: Box::new(input),
            output: Box::new(output),
        }
    }

    /// The control channel over this process's stdin and stdout, as plain
    /// files (no buffering in the way).
    ///
    /// # Errors
    ///
    /// Duplicating the descriptors failed.
    pub fn stdio() -> io::Result<Self> {
        let (r, w) = stdio_files()?;
        Ok(Self::new(r, w))
    }

    fn send(&mut self, byte: u8) -> io::Result<()> {
        self.output.write_all(&[byte])?;
        self.output.flush()
    }

    /// Says the peer is set up.
    ///
    /// # Errors
    ///
    /// The lab went away.
    pub fn ready(&mut self) -> io::Result<()> {
        self.send(READY)
    }

    /// The next batch's length, or `None` when the lab closed the channel
    /// where a length is due (the clean end).
    ///
    /// # Errors
    ///
    /// The channel closed in the middle of a length, or reading failed.
    pub fn next_batch(&mut self) -> io::Result<Option<u64>> {
        let mut n = [0u8; 8];
        let mut got = 0;
        while got < n.len() {
            match self.input.read(&mut n[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the lab closed the channel after {got} of 8 bytes"),
                    ));
                }
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(u64::from_le_bytes(n)))
    }

    /// Says the batch starts now.
    ///
    /// # Errors
    ///
    /// The lab went away.
    pub fn started(&mut self) -> io::Result<()> {
        self.send(STARTED)
    }

    /// Says the batch is done.
    ///
    /// # Errors
    ///
    /// The lab went away.
    pub fn done(&mut self) -> io::Result<()> {
        self.send(DONE)
    }
}

/// This process's stdin and stdout as plain files: no `BufReader` or
/// `LineWriter` in the way, so a pipe is read and written with the same
/// system calls as a FIFO or a socket.
///
/// # Errors
///
/// Duplicating the descriptors failed.
pub fn stdio_files() -> io::Result<(File, File)> {
    Ok((
        File::from(io::stdin().as_fd().try_clone_to_owned()?),
        File::from(io::stdout().as_fd().try_clone_to_owned()?),
    ))
}

/// Runs the peer side of a section: `args` are what followed `lab --peer`
/// (the section's name, then its own arguments). The binary that runs the
/// lab calls this for `lab --peer`.
///
/// # Errors
///
/// No such section or no peer in it, or the peer failed; the binary prints
/// the error on stderr and exits non-zero, which the lab reports.
pub fn serve_peer(args: &[String]) -> Result<()> {
    let Some((name, rest)) = args.split_first() else {
        return Err(Error::new("--peer", "names no section"));
    };
    let Some(main) = SECTIONS
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.peer)
    else {
        return Err(Error::new(
            format!("--peer {name}"),
            "no lab section with a peer by that name",
        ));
    };
    let what = match rest.first() {
        Some(first) => format!("lab peer ({name} {first})"),
        None => format!("lab peer ({name})"),
    };
    let mut control = Control::stdio().map_err(|e| Error::io(&what, &e))?;
    main(rest, &mut control).map_err(|e| Error::io(&what, &e))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn sh(script: &str, timeout: Duration) -> Peer {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        Peer::spawn("FIFO", cmd, timeout).unwrap()
    }

    #[test]
    fn a_failing_peer_is_an_error_naming_it_and_quoting_it() {
        let err = sh(
            "echo 'memio: lab peer (ipc fifo): failed to fill whole buffer' >&2; exit 2",
            PEER_TIMEOUT,
        )
        .ready()
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("FIFO peer: "), "{err}");
        assert!(err.contains("exit status: 2"), "{err}");
        assert!(err.contains("failed to fill whole buffer"), "{err}");
    }

    #[test]
    fn a_peer_killed_by_a_signal_mid_batch_is_an_error_too() {
        let mut peer = sh("printf R; kill -9 $$", PEER_TIMEOUT);
        peer.ready().unwrap();
        let err = peer.announce(5).unwrap_err().to_string();
        assert!(err.starts_with("FIFO peer: "), "{err}");
        assert!(err.contains("signal: 9"), "{err}");
    }

    #[test]
    fn a_hung_peer_is_stopped_and_named() {
        let t0 = Instant::now();
        let mut peer = sh("printf R; exec sleep 30", Duration::from_millis(200));
        peer.ready().unwrap();
        let err = peer.announce(1).unwrap_err().to_string();
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        assert!(
            err.starts_with("FIFO peer: ") && err.contains("did not answer within 0.2 s"),
            "{err}"
        );
    }

    #[test]
    fn a_peer_that_ends_cleanly_after_its_batches_finishes() {
        // Ready, one batch (read the 8-byte length, start, done), then the
        // end of stdin where a length is due.
        let script = "printf R; head -c 8 >/dev/null; printf S; printf D; \
                      test -z \"$(head -c 1)\" && exit 0; exit 3";
        let mut peer = sh(script, PEER_TIMEOUT);
        peer.ready().unwrap();
        peer.announce(3).unwrap();
        peer.done().unwrap();
        peer.finish().unwrap();
        // One that does not end when told is an error.
        let mut peer = sh("printf R; exec sleep 30", Duration::from_millis(100));
        peer.ready().unwrap();
        let err = peer.finish().unwrap_err().to_string();
        assert!(err.contains("did not end within"), "{err}");
    }

    fn batch(n: u64) -> Vec<u8> {
        n.to_le_bytes().to_vec()
    }

    #[test]
    fn control_reads_lengths_and_ends_at_a_boundary() {
        let mut input = batch(2);
        input.extend(batch(7));
        let mut c = Control::new(Cursor::new(input), Vec::new());
        assert_eq!(c.next_batch().unwrap(), Some(2));
        assert_eq!(c.next_batch().unwrap(), Some(7));
        assert_eq!(c.next_batch().unwrap(), None);
        let mut c = Control::new(Cursor::new(vec![2, 0, 0]), Vec::new());
        let err = c.next_batch().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("3 of 8 bytes"), "{err}");
    }
}
