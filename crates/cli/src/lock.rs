//! `memio lock`: run a command while holding a file lock, as flock(1) does.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Args;
use memio::io::Error;
use memio::io::lock::{self, Kind, Locker, Mode, Wait};

use crate::error::{CliError, CliResult, describe};
use crate::ipc::parse_duration;
use crate::output::Globals;
use crate::output::warn;
use crate::size::parse_size;

/// Usage mistakes (sysexits `EX_USAGE`), as flock(1).
pub(crate) const EXIT_USAGE: u8 = 64;
/// The kernel refused the lock for another reason than a conflict
/// (sysexits `EX_DATAERR`), as flock(1); also a descriptor number that is
/// not open.
const EXIT_DATA_ERR: u8 = 65;
/// The lock file cannot be opened (sysexits `EX_NOINPUT`), as flock(1).
const EXIT_NO_INPUT: u8 = 66;
/// The command cannot be started (sysexits `EX_UNAVAILABLE`), as flock(1).
const EXIT_UNAVAILABLE: u8 = 69;
/// Out of memory or descriptors (sysexits `EX_OSERR`), as flock(1).
const EXIT_OS_ERR: u8 = 71;
/// The lock file cannot be created (sysexits `EX_CANTCREAT`), as flock(1).
const EXIT_CANT_CREATE: u8 = 73;

/// Run a command while holding a lock on FILE, or lock descriptor NUMBER
/// (flock(1) options and exit codes).
#[derive(Debug, Args)]
#[command(after_help = "\
Forms, as flock(1):
  memio lock [OPTIONS] FILE|DIRECTORY COMMAND [ARG...]
  memio lock [OPTIONS] FILE|DIRECTORY -c COMMAND
  memio lock [OPTIONS] NUMBER        lock an inherited descriptor, e.g.
                                     ( memio lock -n 9 || exit 1; ... ) 9>/var/lock/x

Exit status: the command's own status (128+N if killed by signal N); 1 (or -E CODE) when the \
lock is held elsewhere and -n or -w gave up; 64 usage; 65 the lock itself failed (or NUMBER is \
not an open descriptor); 66 FILE cannot be opened; 69 the command cannot be started; 71 out of \
memory or descriptors; 73 FILE cannot be created (read-only or full filesystem).

Kinds: flock (default, what flock(1) takes), ofd (open file description record locks; the \
default with --range), posix (fcntl record locks, owned by the memio process). flock locks \
exclude only flock locks; OFD and POSIX locks exclude each other. For flock locks FILE is opened \
read-only (created if missing), so a file you may only read, a running script ($0) or a \
directory can be the lock.

The command inherits the locked descriptor, as with flock(1): if memio is killed (OOM killer, \
KillMode=process), the command, and anything it leaves running with the descriptor, keeps \
holding the lock until the last of them exits. -o closes it in the command instead; posix locks \
always end with the memio process. memio never unlocks explicitly after the command: it only \
closes its own descriptor.

Timeouts: 0.2, 0.2s, 200ms, 2s or 1m.

Examples:
  memio lock /run/backup.lock -- rsync -a src/ dst/
  memio lock -n -E 75 /tmp/cron.lock -c 'run-job'
  [ \"$FLOCKER\" != \"$0\" ] && exec env FLOCKER=\"$0\" memio lock -en \"$0\" \"$0\" \"$@\" || :
  memio lock -s --range 0:4k db.file -- reader")]
#[allow(clippy::struct_excessive_bools, reason = "command-line flags")]
pub(crate) struct LockArgs {
    /// Take a shared (read) lock.
    #[arg(
        short = 's',
        long,
        visible_alias = "read",
        overrides_with = "exclusive"
    )]
    shared: bool,
    /// Take an exclusive (write) lock; the default.
    #[arg(
        short = 'x',
        short_alias = 'e',
        long,
        visible_alias = "write",
        overrides_with = "shared"
    )]
    exclusive: bool,
    /// Remove the lock instead of taking it (usually on a descriptor NUMBER).
    #[arg(short = 'u', long)]
    unlock: bool,
    /// Fail at once if the lock is held elsewhere.
    #[arg(short = 'n', long = "nonblock", visible_alias = "nb")]
    nonblock: bool,
    /// Give up after this long (0.2, 0.2s, 200ms, 2s).
    #[arg(
        short = 'w',
        long = "timeout",
        visible_alias = "wait",
        value_name = "SECS",
        value_parser = parse_duration,
        conflicts_with = "nonblock"
    )]
    timeout: Option<Duration>,
    /// Exit status when the lock is held elsewhere and -n or -w gave up.
    #[arg(
        short = 'E',
        long = "conflict-exit-code",
        value_name = "CODE",
        default_value_t = 1
    )]
    conflict_exit_code: u8,
    /// Close the locked descriptor in the command (it does not hold the lock).
    #[arg(short = 'o', long = "close")]
    close: bool,
    /// Run the command in place of memio instead of as a child.
    #[arg(short = 'F', long = "no-fork", conflicts_with = "close")]
    no_fork: bool,
    /// Kind of lock: flock (default), ofd (default with --range) or posix.
    #[arg(long, value_name = "KIND")]
    kind: Option<Kind>,
    /// Lock LEN bytes from START instead of the whole file (LEN 0: to the
    /// end of the file; sizes like 4k). ofd and posix only.
    #[arg(long, value_name = "START:LEN", value_parser = parse_range)]
    range: Option<(u64, u64)>,
    /// Run CMD with the shell ($SHELL, else /bin/sh) as `sh -c CMD`.
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    command: Option<OsString>,
    /// The file or directory to lock (created if missing), or the number of
    /// an open descriptor when no command follows.
    #[arg(value_name = "FILE|NUMBER")]
    file: OsString,
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

/// What `memio lock` locks: a file it opens, or an inherited descriptor.
enum Target {
    File(File),
    Descriptor(OwnedFd),
}

/// Runs `memio lock`.
pub(crate) fn run(args: &LockArgs, globals: Globals) -> CliResult {
    let command = command_line(args)?;
    let kind = args.kind.unwrap_or(if args.range.is_some() {
        Kind::Ofd
    } else {
        Kind::Flock
    });
    let mode = if args.shared {
        Mode::Shared
    } else {
        Mode::Exclusive
    };
    let wait = match (args.nonblock, args.timeout) {
        (true, _) => Wait::NonBlock,
        (false, Some(limit)) => Wait::Timeout(limit),
        (false, None) => Wait::Block,
    };
    let name = args.file.to_string_lossy().into_owned();
    let mut target = match &command {
        Some(_) => Target::File(open(Path::new(&args.file), kind, mode)?),
        None => Target::Descriptor(descriptor(args, kind)?),
    };
    let (start, len) = args.range.unwrap_or((0, 0));

    if args.unlock {
        locker(&target, kind, start, len)
            .unlock()
            .map_err(|e| lock_error(&name, &e))?;
    } else {
        let t0 = Instant::now();
        let mut result = locker(&target, kind, start, len)
            .lock(mode, wait)
            .map(lock::LockGuard::keep);
        if kind == Kind::Flock && reopen_read_write(&result) {
            // flock(2) emulated over fcntl (NFS) needs write access for an
            // exclusive lock: flock(1) reopens read-write and tries again.
            if let Target::File(_) = target {
                target = Target::File(open_with(Path::new(&args.file), true)?);
                result = locker(&target, kind, start, len)
                    .lock(mode, wait)
                    .map(lock::LockGuard::keep);
            }
        }
        match result {
            Ok(()) => {}
            Err(e) if e.is_conflict() => {
                if globals.verbose > 0 {
                    let l = locker(&target, kind, start, len);
                    warn(format_args!("{name}: {}", conflict(&l, mode, &e)));
                }
                return Ok(args.conflict_exit_code);
            }
            Err(e) => return Err(lock_error(&name, &e)),
        }
        if globals.verbose > 0 {
            let took = t0.elapsed();
            warn(format_args!(
                "getting lock took {}.{:06} seconds",
                took.as_secs(),
                took.subsec_micros()
            ));
        }
    }
    let Some(command) = command else {
        // Descriptor form: the lock stays with the descriptor the shell
        // holds; memio's duplicate closes as it exits.
        return Ok(0);
    };
    if let Target::File(file) = &target {
        if !args.close {
            lock::set_inherited(file, true).map_err(|e| lock_error(&name, &Error::Io(e)))?;
        }
    }
    if globals.verbose > 0 {
        warn(format_args!("executing {}", command[0].to_string_lossy()));
    }
    execute(&command, args.no_fork)
}

fn locker(target: &Target, kind: Kind, start: u64, len: u64) -> Locker<'_> {
    match target {
        Target::File(f) => Locker::new(f),
        Target::Descriptor(fd) => Locker::new(fd),
    }
    .kind(kind)
    .range(start, len)
}

/// Whether a failed `flock` is the NFS case flock(1) retries read-write.
fn reopen_read_write(result: &Result<(), Error>) -> bool {
    matches!(result, Err(Error::Io(e)) if matches!(e.raw_os_error(), Some(libc_errno::EIO | libc_errno::EBADF)))
}

/// The errno values this module tells apart (the CLI has no libc).
mod libc_errno {
    pub(super) const EIO: i32 = 5;
    pub(super) const EBADF: i32 = 9;
    pub(super) const ENOMEM: i32 = 12;
    pub(super) const ENFILE: i32 = 23;
    pub(super) const EMFILE: i32 = 24;
    pub(super) const ENOSPC: i32 = 28;
    pub(super) const EROFS: i32 = 30;
    pub(super) const ENOLCK: i32 = 37;
}

/// The error for a lock the kernel refused (not a conflict): 65, or 71
/// when the kernel is out of lock records or memory, as flock(1).
fn lock_error(name: &str, err: &Error) -> CliError {
    let code = match err {
        Error::Io(e)
            if matches!(
                e.raw_os_error(),
                Some(libc_errno::ENOLCK | libc_errno::ENOMEM)
            ) =>
        {
            EXIT_OS_ERR
        }
        Error::RangeNeedsRecordLock | Error::RangeTooLarge { .. } => EXIT_USAGE,
        _ => EXIT_DATA_ERR,
    };
    let why = match err {
        Error::Io(e) if e.raw_os_error() == Some(libc_errno::EBADF) => format!(
            "cannot lock: {} (an exclusive ofd or posix lock needs write access; \
             a directory or a read-only file takes flock locks, the default kind)",
            describe(e)
        ),
        Error::Io(e) => format!("cannot lock: {}", describe(e)),
        other => other.to_string(),
    };
    CliError::new(name, why).with_code(code)
}

/// Runs the command as a child and returns its status as flock(1) does, or
/// replaces memio with it (`-F`).
fn execute(command: &[OsString], no_fork: bool) -> CliResult {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    let failed = |e: &io::Error| {
        let code = if e.raw_os_error() == Some(libc_errno::ENOMEM) {
            EXIT_OS_ERR
        } else {
            EXIT_UNAVAILABLE
        };
        CliError::new(
            command[0].to_string_lossy(),
            format!("cannot run command: {}", describe(e)),
        )
        .with_code(code)
    };
    if no_fork {
        let err = cmd.exec();
        return Err(failed(&err));
    }
    let status = cmd.status().map_err(|e| failed(&e))?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(u8::MAX),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(u8::MAX),
        (None, None) => EXIT_OS_ERR,
    })
}

/// The argv to run, `$SHELL -c CMD` or the trailing arguments; `None` for
/// the descriptor form (a NUMBER and no command).
fn command_line(args: &LockArgs) -> CliResult<Option<Vec<OsString>>> {
    match (&args.command, args.args.is_empty()) {
        (Some(cmd), true) => {
            let shell = std::env::var_os("SHELL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".into());
            Ok(Some(vec![shell, "-c".into(), cmd.clone()]))
        }
        (Some(_), false) => Err(CliError::new(
            "lock",
            "give the command either with -c CMD or after the file, not both",
        )
        .with_code(EXIT_USAGE)),
        (None, false) => Ok(Some(args.args.clone())),
        (None, true) => Ok(None),
    }
}

/// The descriptor of the NUMBER form, duplicated so memio owns its copy.
fn descriptor(args: &LockArgs, kind: Kind) -> CliResult<OwnedFd> {
    let text = args.file.to_string_lossy();
    let Some(fd) = parse_descriptor(&args.file) else {
        return Err(CliError::new(
            "lock",
            format!(
                "no command given, and '{text}' is not a descriptor number \
                 (memio lock FILE COMMAND..., FILE -c CMD, or NUMBER)"
            ),
        )
        .with_code(EXIT_USAGE));
    };
    if kind == Kind::Posix {
        return Err(CliError::new(
            format!("descriptor {fd}"),
            "posix locks belong to the memio process and would end with it: \
             lock a descriptor with --kind flock (the default) or ofd",
        )
        .with_code(EXIT_USAGE));
    }
    lock::dup_inherited(fd).map_err(|e| {
        CliError::new(format!("descriptor {fd}"), describe(&e)).with_code(EXIT_DATA_ERR)
    })
}

fn parse_descriptor(text: &OsStr) -> Option<i32> {
    let t = text.to_str()?;
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Opens (creating) the lock file as flock(1) does: read-only for `flock`
/// locks (read-write only after the NFS fallback), read-write for record
/// locks, whose exclusive form needs write access. A directory, or a shared
/// record lock on a file this user may only read, is opened read-only.
fn open(path: &Path, kind: Kind, mode: Mode) -> CliResult<File> {
    let write = kind != Kind::Flock;
    match open_with(path, write) {
        Err(e)
            if write
                && mode == Mode::Shared
                && e.code == EXIT_NO_INPUT
                && e.why.contains("permission denied") =>
        {
            File::open(path).map_err(|e| open_error(path, &e))
        }
        other => other,
    }
}

fn open_with(path: &Path, write: bool) -> CliResult<File> {
    use std::os::unix::fs::OpenOptionsExt;
    const O_NOCTTY: i32 = 0o400;
    const O_CREAT: i32 = 0o100;
    // std refuses `create` without write access; flock(1) creates its lock
    // file read-only (O_RDONLY | O_CREAT), so ask for O_CREAT directly.
    let created = File::options()
        .read(true)
        .write(write)
        .mode(0o666)
        .custom_flags(O_NOCTTY | O_CREAT)
        .open(path);
    let opened = match created {
        // O_CREAT on a directory is EISDIR (and O_RDONLY without O_CREAT
        // works), and EACCES for an existing file this user may not write.
        Err(e) if e.kind() == io::ErrorKind::IsADirectory => File::open(path),
        // Read-only create on a file in a directory this user cannot write.
        Err(e) if !write && e.kind() == io::ErrorKind::PermissionDenied && path.exists() => {
            File::open(path)
        }
        other => other,
    };
    opened.map_err(|e| open_error(path, &e))
}

fn open_error(path: &Path, err: &io::Error) -> CliError {
    let code = match err.raw_os_error() {
        Some(libc_errno::ENOMEM | libc_errno::EMFILE | libc_errno::ENFILE) => EXIT_OS_ERR,
        Some(libc_errno::EROFS | libc_errno::ENOSPC) => EXIT_CANT_CREATE,
        _ => EXIT_NO_INPUT,
    };
    CliError::new(
        path.display(),
        format!("cannot open lock file: {}", describe(err)),
    )
    .with_code(code)
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
