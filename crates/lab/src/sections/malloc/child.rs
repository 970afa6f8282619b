//! One run of a program as a child process: its wall time from start to
//! exit and its peak resident size as the kernel counts it (`ru_maxrss`
//! from `wait4`, which covers the whole process, threads and all, up to
//! its last page).
//!
//! A child that outlives its deadline is killed through a pidfd, so the
//! signal cannot reach another process that reused its pid.
//!
//! # Safety
//!
//! `wait4` writes the child's status and resource usage through two
//! pointers; both point at locals of the right type that outlive the call.
#![allow(
    unsafe_code,
    reason = "wait4: the resource usage of one child, which neither std nor rustix returns"
)]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

/// How one run ended and what it cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exit {
    /// The child's exit status.
    pub status: ExitStatus,
    /// From just before the start to the child's exit.
    pub wall: Duration,
    /// Its peak resident size, in KiB.
    pub max_rss_kib: u64,
    /// Whether it was killed for outliving its deadline.
    pub timed_out: bool,
}

/// Starts `cmd`, waits for it to exit, at most `timeout` (then kills it),
/// and reaps it. The caller sets up its standard streams: anything but
/// pipes, which nobody would read while it runs.
///
/// # Errors
///
/// The program cannot be started, or waiting for it fails.
pub(crate) fn run(cmd: &mut Command, timeout: Duration) -> io::Result<Exit> {
    let started = Instant::now();
    let child = cmd.spawn()?;
    let raw = i32::try_from(child.id()).map_err(io::Error::other)?;
    let pid = Pid::from_raw(raw).ok_or_else(|| io::Error::other("the child has pid 0"))?;
    // The child is ours and not reaped yet, so the pid is still its own.
    // On a kernel before 5.3 (no pidfd) there is no deadline: the wait
    // below is the end.
    let (exited_at, waited) = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(pidfd) => {
            let waited = wait_for_exit(&pidfd, started + timeout);
            let at = started.elapsed();
            // Past its deadline, or the wait failed: the child must not
            // outlive the run either way.
            if !matches!(waited, Ok(true)) {
                let _ = pidfd_send_signal(&pidfd, Signal::KILL);
            }
            (Some(at), waited)
        }
        Err(_) => (None, Ok(true)),
    };
    let reaped = wait4(raw);
    let timed_out = !waited?;
    let (status, max_rss_kib) = reaped?;
    drop(child);
    Ok(Exit {
        status,
        wall: exited_at.unwrap_or_else(|| started.elapsed()),
        max_rss_kib,
        timed_out,
    })
}

/// The peer side of [`run_from_small_process`]: `args` are `RESULT --
/// PROGRAM ARGS...`; runs the program with this process's environment,
/// folder and standard streams, and writes how it ended to `RESULT`.
///
/// # Errors
///
/// Bad arguments, or the program cannot be started or waited for.
pub(crate) fn measure_peer(args: &[String], timeout: Duration) -> io::Result<()> {
    let [result, dashes, program, rest @ ..] = args else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "measure: expected RESULT -- PROGRAM [ARGS...]",
        ));
    };
    if dashes != "--" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "measure: expected -- before the program",
        ));
    }
    let exit = run(Command::new(program).args(rest), timeout)?;
    std::fs::write(
        result,
        format!(
            "{} {} {} {}\n",
            exit.status.into_raw(),
            exit.wall.as_nanos(),
            exit.max_rss_kib,
            u8::from(exit.timed_out)
        ),
    )
}

/// Runs `argv` as [`run`] does, but started by a fresh process of this
/// binary (`lab --peer malloc measure`) rather than by the lab itself:
/// `cmd` carries the environment, folder and streams the program gets.
///
/// Why: the kernel counts in a child's `ru_maxrss` the peak of the memory
/// it ran in before its `exec`, and a child started by `posix_spawn` or
/// `fork` runs in (a copy of) its parent's. Started by the lab, whose own
/// peak after the earlier sections is hundreds of MiB, every program read
/// that peak. A fresh process of this binary is a few MiB.
///
/// # Errors
///
/// The launcher or the program cannot be started, or it reported nothing.
#[cfg(not(test))]
pub(crate) fn run_from_small_process(
    mut cmd: Command,
    argv: &[std::ffi::OsString],
    result: &std::path::Path,
) -> io::Result<Exit> {
    let _ = std::fs::remove_file(result);
    cmd.args(["lab", "--peer", "malloc", "measure"])
        .arg(result)
        .arg("--")
        .args(argv);
    let status = cmd.status()?;
    let said = std::fs::read_to_string(result)
        .map_err(|e| io::Error::other(format!("the launcher ({status}) left no result: {e}")))?;
    let mut f = said.split_whitespace().map(str::parse::<u128>);
    let mut next = || -> io::Result<u128> {
        f.next()
            .and_then(std::result::Result::ok)
            .ok_or_else(|| io::Error::other(format!("the launcher wrote {said:?}")))
    };
    let (raw, nanos, kib, timed_out) = (next()?, next()?, next()?, next()?);
    Ok(Exit {
        status: ExitStatus::from_raw(i32::try_from(raw).map_err(io::Error::other)?),
        wall: Duration::from_nanos(u64::try_from(nanos).map_err(io::Error::other)?),
        max_rss_kib: u64::try_from(kib).map_err(io::Error::other)?,
        timed_out: timed_out != 0,
    })
}

/// The command [`run_from_small_process`] takes: this binary, to which it
/// adds the launcher's arguments and then `argv`.
///
/// # Errors
///
/// The binary's path is unknown.
#[cfg(not(test))]
pub(crate) fn launcher(_argv: &[std::ffi::OsString]) -> io::Result<Command> {
    Ok(Command::new(std::env::current_exe()?))
}

/// In unit tests the binary is the test harness, which has no `lab
/// --peer`: the program runs straight from the test (the launcher is
/// tested over the built binary, in the CLI's tests).
#[cfg(test)]
pub(crate) fn launcher(argv: &[std::ffi::OsString]) -> io::Result<Command> {
    let (program, rest) = argv
        .split_first()
        .ok_or_else(|| io::Error::other("no program"))?;
    let mut cmd = Command::new(program);
    cmd.args(rest);
    Ok(cmd)
}

#[cfg(test)]
pub(crate) fn run_from_small_process(
    mut cmd: Command,
    _argv: &[std::ffi::OsString],
    _result: &std::path::Path,
) -> io::Result<Exit> {
    run(&mut cmd, super::dropin::TIMEOUT)
}

/// Waits until the process behind `pidfd` exits (true) or `deadline`
/// passes (false).
fn wait_for_exit(pidfd: &OwnedFd, deadline: Instant) -> io::Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let left = Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: left.subsec_nanos().into(),
        };
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&left)) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reaps child `pid`; returns its status and `ru_maxrss` (KiB).
///
/// # References
///
/// - [wait4(2)](https://man7.org/linux/man-pages/man2/wait4.2.html)
fn wait4(pid: i32) -> io::Result<(ExitStatus, u64)> {
    let mut status = 0;
    let mut usage = MaybeUninit::<libc::rusage>::uninit();
    loop {
        // SAFETY: both pointers lead to locals of the types wait4 writes,
        // alive across the call.
        let got = unsafe { libc::wait4(pid, &raw mut status, 0, usage.as_mut_ptr()) };
        if got == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    // SAFETY: wait4 returned the child's pid, so it filled `usage`.
    let usage = unsafe { usage.assume_init() };
    let kib = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    Ok((ExitStatus::from_raw(status), kib))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn a_run_reports_its_status_time_and_peak_rss() {
        let exit = run(&mut sh("exit 3"), Duration::from_secs(20)).unwrap();
        assert_eq!(exit.status.code(), Some(3));
        assert!(!exit.timed_out);
        assert!(exit.max_rss_kib > 0, "{exit:?}");
        assert!(exit.wall < Duration::from_secs(20), "{exit:?}");
    }

    #[test]
    fn a_child_past_its_deadline_is_killed() {
        let exit = run(&mut sh("exec sleep 30"), Duration::from_millis(100)).unwrap();
        assert!(exit.timed_out, "{exit:?}");
        assert_eq!(exit.status.signal(), Some(9));
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let err = run(
            &mut Command::new("/nonexistent/memio-lab-test"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
