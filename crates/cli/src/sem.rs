//! `memio sem`: create, wait on, post, read and remove POSIX named
//! semaphores and System V semaphore sets from a shell.

use std::time::Instant;

use clap::{Args, Subcommand};
use memio::ipc::Create;
use memio::ipc::sem::posix::{NamedSem, NamedSemOptions};
use memio::ipc::sem::sysv::{SemOp, SemSet, SemSetOptions};
use serde_json::json;

use crate::error::{CliError, CliResult, EXIT_OK};
use crate::ipc::{SysvTarget, create_mode, lib_error, parse_duration, parse_mode, sysv_error};
use crate::output::{self, Globals};

/// POSIX named semaphores (`/name`) and System V sets (`--sysv KEY`).
#[derive(Debug, Args)]
#[command(
    after_help = "With --sysv, SEM is a key (0x41001234 or decimal), id:N for an id, \
    or `private` when creating (the id is printed); --index picks a semaphore of the set."
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
    /// Initial value (every semaphore of a System V set).
    #[arg(long, default_value_t = 0)]
    value: u16,
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
        // Only a set made here gets --value; an existing one keeps its values.
        let opts = SemSetOptions::new().count(a.count).mode(a.mode);
        let (s, new) = match opts.open(key, Create::Exclusive) {
            Ok(s) => (s, true),
            Err(e)
                if how == Create::OpenOrCreate && e.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                let s = opts
                    .open(key, Create::Open)
                    .map_err(|e| CliError::new("", e))?;
                (s, false)
            }
            Err(e) => return Err(CliError::new("", e)),
        };
        if new && a.value != 0 {
            s.set_values(&vec![a.value; usize::from(a.count)])
                .map_err(|e| CliError::new("", e))?;
        }
        output::println(s.id())?;
        return Ok(EXIT_OK);
    }
    let s = NamedSemOptions::new()
        .value(u32::from(a.value))
        .mode(a.mode)
        .open(&a.sem, how)
        .map_err(lib_error)?;
    if globals.verbose > 0 {
        output::println(format!(
            "{}: value {}",
            s.name(),
            s.value().map_err(|e| CliError::new("", e))?
        ))?;
    }
    Ok(EXIT_OK)
}

fn wait(a: &WaitArgs) -> CliResult {
    let object;
    let taken = if a.sysv {
        let (t, s) = set(&a.sem, a.index.saturating_add(1))?;
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
        .map_err(|e| CliError::new("", e))?
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
        let (_, s) = set(&a.sem, a.index.saturating_add(1))?;
        s.op(&[SemOp::post(a.index)]).map_err(lib_error)?;
        return Ok(EXIT_OK);
    }
    let s = NamedSem::open(&a.sem).map_err(lib_error)?;
    s.post().map_err(|e| CliError::new("", e))?;
    Ok(EXIT_OK)
}

fn get(a: &GetArgs) -> CliResult {
    let values: Vec<u32> = if a.sysv {
        let (t, s) = set(&a.sem, 0)?;
        s.values()
            .map_err(|e| sysv_error(SET, t, &e))?
            .into_iter()
            .map(u32::from)
            .collect()
    } else {
        let s = NamedSem::open(&a.sem).map_err(lib_error)?;
        vec![s.value().map_err(|e| CliError::new("", e))?]
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
