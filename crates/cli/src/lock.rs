//! `memio lock`: run a command while holding a file lock, as flock(1) does.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Args;
use memio::io::Error;
use memio::io::lock::{Kind, Locker, Mode, Wait};

use crate::error::{CliError, CliResult, describe};
use crate::output::Globals;
use crate::output::warn;
use crate::size::parse_size;

/// The lock file cannot be opened (sysexits `EX_NOINPUT`), as flock(1).
const EXIT_NO_INPUT: u8 = 66;
/// The command cannot be started (sysexits `EX_UNAVAILABLE`), as flock(1).
const EXIT_UNAVAILABLE: u8 = 69;

/// Run a command while holding a lock on FILE (flock(1) options and exit codes).
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: the command's own status (128+N if killed by signal N); 1 (or -E CODE) when the \
lock is held elsewhere and -n or -w gave up; 66 when FILE cannot be opened or created; 69 when \
the command cannot be started; 2 for any other error.

Kinds: ofd (default; owned by the open file), posix (fcntl record locks, owned by the process), \
flock (what flock(1) takes). OFD and POSIX locks exclude each other; flock locks exclude only \
flock locks, so use --kind flock to cooperate with scripts that call flock(1).

Examples:
  memio lock /run/backup.lock -- rsync -a src/ dst/
  memio lock -n -E 75 --kind flock /tmp/cron.lock -c 'run-job'
  memio lock -s --range 0:4k db.file -- reader")]
#[allow(clippy::struct_excessive_bools, reason = "command-line flags")]
pub(crate) struct LockArgs {
    /// Take a shared (read) lock.
    #[arg(short = 's', long, visible_alias = "read")]
    shared: bool,
    /// Take an exclusive (write) lock; the default.
    #[arg(
        short = 'x',
        short_alias = 'e',
        long,
        visible_alias = "write",
        conflicts_with = "shared"
    )]
    exclusive: bool,
    /// Fail at once if the lock is held elsewhere.
    #[arg(short = 'n', long = "nonblock", visible_alias = "nb")]
    nonblock: bool,
    /// Give up after SECS seconds (fractions allowed).
    #[arg(
        short = 'w',
        long = "timeout",
        visible_alias = "wait",
        value_name = "SECS",
        conflicts_with = "nonblock"
    )]
    timeout: Option<f64>,
    /// Exit status when the lock is held elsewhere and -n or -w gave up.
    #[arg(
        short = 'E',
        long = "conflict-exit-code",
        value_name = "CODE",
        default_value_t = 1
    )]
    conflict_exit_code: u8,
    /// Kind of lock: ofd, posix or flock.
    #[arg(long, value_name = "KIND", default_value = "ofd")]
    kind: Kind,
    /// Lock LEN bytes from START instead of the whole file (LEN 0: to the
    /// end of the file; sizes like 4k). ofd and posix only.
    #[arg(long, value_name = "START:LEN", value_parser = parse_range)]
    range: Option<(u64, u64)>,
    /// Run CMD with the shell ($SHELL, else /bin/sh) as `sh -c CMD`.
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    command: Option<OsString>,
    /// The file to lock; created if missing.
    file: PathBuf,
    /// The command to run and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    args: Vec<OsString>,
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (start, len) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not START:LEN"))?;
    Ok((parse_size(start)?, parse_size(len)?))
}

/// Runs `memio lock`.
pub(crate) fn run(args: &LockArgs, globals: Globals) -> CliResult {
    let command = command_line(args)?;
    let mode = if args.shared {
        Mode::Shared
    } else {
        Mode::Exclusive
    };
    let wait = match (args.nonblock, args.timeout) {
        (true, _) => Wait::NonBlock,
        (false, Some(secs)) => Wait::Timeout(Duration::try_from_secs_f64(secs).map_err(|_| {
            CliError::new("--timeout", format!("'{secs}' is not a number of seconds"))
        })?),
        (false, None) => Wait::Block,
    };
    let file = open(&args.file, mode).map_err(|e| {
        CliError::new(
            args.file.display(),
            format!("cannot open lock file: {}", describe(&e)),
        )
        .with_code(EXIT_NO_INPUT)
    })?;
    let (start, len) = args.range.unwrap_or((0, 0));
    let locker = Locker::new(&file).kind(args.kind).range(start, len);

    let t0 = Instant::now();
    let guard = match locker.lock(mode, wait) {
        Ok(g) => g,
        Err(e) if e.is_conflict() => {
            if globals.verbose > 0 {
                warn(format_args!(
                    "{}: {}",
                    args.file.display(),
                    conflict(&locker, mode, &e)
                ));
            }
            return Ok(args.conflict_exit_code);
        }
        Err(e) => return Err(CliError::new(args.file.display(), e)),
    };
    if globals.verbose > 0 {
        let took = t0.elapsed();
        warn(format_args!(
            "getting lock took {}.{:06} seconds",
            took.as_secs(),
            took.subsec_micros()
        ));
        warn(format_args!("executing {}", command[0].to_string_lossy()));
    }

    let status = Command::new(&command[0]).args(&command[1..]).status();
    drop(guard);
    let status = status.map_err(|e| {
        CliError::new(
            command[0].to_string_lossy(),
            format!("cannot run command: {}", describe(&e)),
        )
        .with_code(EXIT_UNAVAILABLE)
    })?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(u8::MAX),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(u8::MAX),
        (None, None) => u8::MAX,
    })
}

/// The argv to run: `$SHELL -c CMD` or the trailing arguments.
fn command_line(args: &LockArgs) -> CliResult<Vec<OsString>> {
    match (&args.command, args.args.is_empty()) {
        (Some(cmd), true) => {
            let shell = std::env::var_os("SHELL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".into());
            Ok(vec![shell, "-c".into(), cmd.clone()])
        }
        (Some(_), false) => Err(CliError::new(
            "lock",
            "give the command either with -c CMD or after the file, not both",
        )),
        (None, false) => Ok(args.args.clone()),
        (None, true) => Err(CliError::new(
            "lock",
            "no command given (memio lock FILE -- COMMAND..., or -c CMD)",
        )),
    }
}

/// Opens (creating) the lock file: read-write where possible, since record
/// locks need write access for an exclusive lock; read-only for a
/// directory, or for a shared lock on a file this user may only read.
fn open(path: &Path, mode: Mode) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let rw = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .open(path);
    match rw {
        Err(e)
            if e.kind() == io::ErrorKind::IsADirectory
                || (mode == Mode::Shared && e.kind() == io::ErrorKind::PermissionDenied) =>
        {
            File::open(path)
        }
        other => other,
    }
}

/// A sentence about who holds the lock, for `-v`.
fn conflict(locker: &Locker<'_>, mode: Mode, err: &Error) -> String {
    match locker.holder(mode) {
        Ok(Some(h)) => {
            let who = h
                .pid
                .map_or_else(|| "another process".to_owned(), |p| format!("pid {p}"));
            let range = if h.len == 0 {
                format!("bytes {}-EOF", h.start)
            } else {
                format!("bytes {}-{}", h.start, h.start + h.len - 1)
            };
            format!(
                "{err}: {who} holds it ({} {} lock on {range})",
                h.mode, h.kind
            )
        }
        _ => err.to_string(),
    }
}
