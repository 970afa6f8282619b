//! `memio sem`: create, wait on, post, read and remove POSIX named
//! semaphores and System V semaphore sets from a shell.

use std::time::Instant;

use clap::{Args, Subcommand};
use memio::ipc::Create;
use memio::ipc::sem::posix::{NamedSem, NamedSemOptions, SEM_VALUE_MAX};
use memio::ipc::sem::sysv::{SEMVMX, SemOp, SemSet, SemSetOptions};
use serde_json::json;

use crate::error::{CliError, CliResult, EXIT_OK};
use crate::ipc::{SysvTarget, create_mode, lib_error, parse_duration, parse_mode, sysv_error};
use crate::output::{self, Globals};

/// POSIX named semaphores (`/name`) and System V sets (`--sysv KEY`).
#[derive(Debug, Args)]
#[command(
    after_help = "With --sysv, SEM is a key (0x41001234 or decimal), id:N for an id, \
    or `private` when creating (the id is printed); --index picks a semaphore of the set.\n\
    Values: at most SEM_VALUE_MAX (2147483647) for POSIX semaphores, SEMVMX (32767) for \
    System V ones; a post past the cap fails."
)]
pub(crate) struct SemArgs {
    #[command(subcommand)]
    command: SemCommand,
}

#[derive(Debug, Subcommand)]
enum SemCommand {
    /// Create a semaphore (mode 0600; fails if it exists unless --open-or-create).
    Create(CreateArgs),
    /// Take one unit, waiting while the value is 0.
    Wait(WaitArgs),
    /// Give one unit back.
    Post(PostArgs),
    /// Print the value (every value of a System V set).
    Get(GetArgs),
    /// Remove it.
    Rm(RmArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// `/name`, or with --sysv a key or `private`.
    sem: String,
    /// Initial value (every semaphore of a System V set): at most
    /// SEM_VALUE_MAX (2147483647) for POSIX, SEMVMX (32767) for System V.
    #[allow(
        clippy::doc_markdown,
        reason = "constant names as the help prints them"
    )]
    #[arg(long, default_value_t = 0)]
    value: u32,
    /// System V set.
    #[arg(long)]
    sysv: bool,
    /// Semaphores in the System V set.
    #[arg(long, default_value_t = 1, requires = "sysv")]
    count: u16,
    /// Permission bits in octal (POSIX objects: the umask applies).
    #[arg(long, value_parser = parse_mode, default_value = "600")]
    mode: u32,
    /// Open it if it already exists instead of failing (the value is then left alone).
    #[arg(long)]
    open_or_create: bool,
}

#[derive(Debug, Args)]
struct WaitArgs {
    /// `/name`, or with --sysv a key or id:N.
    sem: String,
    /// System V set.
    #[arg(long)]
    sysv: bool,
    /// Which semaphore of a System V set.
    #[arg(long, default_value_t = 0, requires = "sysv")]
    index: u16,
    /// Return at once (exit 1) if the value is 0.
    #[arg(long, conflicts_with = "timeout")]
    nonblock: bool,
    /// Give up (exit 1) after this long, e.g. 500ms, 2s.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    timeout: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
struct PostArgs {
    /// `/name`, or with --sysv a key or id:N.
    sem: String,
    /// System V set.
    #[arg(long)]
    sysv: bool,
    /// Which semaphore of a System V set.
    #[arg(long, default_value_t = 0, requires = "sysv")]
    index: u16,
}

#[derive(Debug, Args)]
struct GetArgs {
    /// `/name`, or with --sysv a key or id:N.
    sem: String,
    /// System V set.
    #[arg(long)]
    sysv: bool,
    /// Only this semaphore of a System V set.
    #[arg(long, requires = "sysv")]
    index: Option<u16>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RmArgs {
    /// `/name`, or with --sysv a key or id:N.
    sem: String,
    /// System V set.
    #[arg(long)]
    sysv: bool,
}

/// Runs `memio sem`.
pub(crate) fn run(args: &SemArgs, globals: Globals) -> CliResult {
    match &args.command {
        SemCommand::Create(a) => create(a, globals),
        SemCommand::Wait(a) => wait(a),
        SemCommand::Post(a) => post(a),
        SemCommand::Get(a) => get(a),
        SemCommand::Rm(a) => rm(a),
    }
}

const SET: &str = "semaphore set";

fn set(target: &str, count: u16) -> CliResult<(SysvTarget, SemSet)> {
    let t = SysvTarget::parse(target)?;
    let s = t.sem_set(count).map_err(|e| sysv_error(SET, t, &e))?;
    Ok((t, s))
}

/// The set, after checking that it has semaphore `index`: the kernel's
/// answer to a bad index is a bare `EINVAL`.
fn set_with(target: &str, index: u16) -> CliResult<(SysvTarget, SemSet)> {
    let (t, s) = set(target, 0)?;
    let count = s.stat().map_err(|e| sysv_error(SET, t, &e))?.count;
    if u64::from(index) >= count {
        return Err(CliError::new(
            format!("{SET} {t}"),
            format!("index {index} out of range (set has {count})"),
        ));
    }
    Ok((t, s))
}

fn create(a: &CreateArgs, globals: Globals) -> CliResult {
    let how = create_mode(a.open_or_create);
    if a.sysv {
        let key = match SysvTarget::parse(&a.sem)? {
            SysvTarget::Key(k) => k,
            SysvTarget::Id(_) => {
                return Err(CliError::new(
                    &a.sem,
                    "create takes a key or `private`, not an id",
                ));
            }
        };
        let value = u16::try_from(a.value)
            .ok()
            .filter(|v| *v <= SEMVMX)
            .ok_or_else(|| {
                CliError::new(
                    "--value",
                    format!(
                        "{} is above SEMVMX ({SEMVMX}), the largest System V semaphore value",
                        a.value
                    ),
                )
            })?;
        // Only a set made here gets --value; an existing one keeps its values.
        let opts = SemSetOptions::new().count(a.count).mode(a.mode);
        let (s, new) = match opts.open(key, Create::Exclusive) {
            Ok(s) => (s, true),
            Err(e)
                if how == Create::OpenOrCreate && e.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                let s = opts.open(key, Create::Open).map_err(|e| CliError::os(&e))?;
                (s, false)
            }
            Err(e) => return Err(CliError::os(&e)),
        };
        if new && value != 0 {
            if let Err(e) = s.set_values(&vec![value; usize::from(a.count)]) {
                // A failed create leaves nothing behind.
                let _ = s.remove();
                return Err(CliError::os(&e));
            }
        }
        output::println(s.id())?;
        return Ok(EXIT_OK);
    }
    if a.value > SEM_VALUE_MAX {
        return Err(CliError::new(
            "--value",
            format!(
                "{} is above SEM_VALUE_MAX ({SEM_VALUE_MAX}), the largest POSIX semaphore value",
                a.value
            ),
        ));
    }
    let s = NamedSemOptions::new()
        .value(a.value)
        .mode(a.mode)
        .open(&a.sem, how)
        .map_err(lib_error)?;
    if globals.verbose > 0 {
        output::println(format!(
            "{}: value {}",
            s.name(),
            s.value().map_err(|e| CliError::os(&e))?
        ))?;
    }
    Ok(EXIT_OK)
}

fn wait(a: &WaitArgs) -> CliResult {
    let object;
    let taken = if a.sysv {
        let (t, s) = set_with(&a.sem, a.index)?;
        object = format!("{SET} {t}");
        let op = [SemOp::wait(a.index)];
        if a.nonblock {
            s.try_op(&op)
        } else if let Some(d) = a.timeout {
            s.op_deadline(&op, Instant::now() + d)
        } else {
            s.op(&op).map(|()| true)
        }
        .map_err(lib_error)?
    } else {
        let s = NamedSem::open(&a.sem).map_err(lib_error)?;
        object = format!("semaphore '{}'", a.sem);
        if a.nonblock {
            s.try_wait()
        } else if let Some(d) = a.timeout {
            s.wait_deadline(Instant::now() + d)
        } else {
            s.wait().map(|()| true)
        }
        .map_err(|e| CliError::os(&e))?
    };
    if !taken {
        let why = if a.nonblock {
            "value is 0"
        } else {
            "still 0 when the timeout expired"
        };
        return Err(CliError::negative(object, why));
    }
    Ok(EXIT_OK)
}

fn post(a: &PostArgs) -> CliResult {
    if a.sysv {
        let (_, s) = set_with(&a.sem, a.index)?;
        s.op(&[SemOp::post(a.index)]).map_err(lib_error)?;
        return Ok(EXIT_OK);
    }
    let s = NamedSem::open(&a.sem).map_err(lib_error)?;
    s.post().map_err(|e| CliError::os(&e))?;
    Ok(EXIT_OK)
}

fn get(a: &GetArgs) -> CliResult {
    let values: Vec<u32> = if let (true, Some(index)) = (a.sysv, a.index) {
        let (t, s) = set_with(&a.sem, index)?;
        vec![u32::from(
            s.get_value(index).map_err(|e| sysv_error(SET, t, &e))?,
        )]
    } else if a.sysv {
        let (t, s) = set(&a.sem, 0)?;
        s.values()
            .map_err(|e| sysv_error(SET, t, &e))?
            .into_iter()
            .map(u32::from)
            .collect()
    } else {
        let s = NamedSem::open(&a.sem).map_err(lib_error)?;
        vec![s.value().map_err(|e| CliError::os(&e))?]
    };
    if a.json {
        output::print_json(&json!({ "values": values }))?;
    } else {
        let text: Vec<String> = values.iter().map(ToString::to_string).collect();
        output::println(text.join(" "))?;
    }
    Ok(EXIT_OK)
}

fn rm(a: &RmArgs) -> CliResult {
    if a.sysv {
        let (t, s) = set(&a.sem, 0)?;
        s.remove().map_err(|e| sysv_error(SET, t, &e))?;
        return Ok(EXIT_OK);
    }
    NamedSem::unlink(&a.sem).map_err(lib_error)?;
    Ok(EXIT_OK)
}
