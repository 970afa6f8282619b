//! `memio shm`: create, write, read and remove POSIX and System V shared
//! memory from a shell.

use std::io::Write;

use clap::{Args, Subcommand};
use memio::ipc::Create;
use memio::ipc::shm::posix::ShmOptions;
use memio::ipc::shm::sysv::{SysvShm, SysvShmOptions};
use memio::map::{Access, Region};

use crate::error::{CliError, CliResult, EXIT_OK};
use crate::ipc::{SysvTarget, bytes_or_stdin, create_mode, lib_error, parse_mode, sysv_error};
use crate::output::{self, Globals};
use crate::size::Size;

/// POSIX (`/name`) and System V (`--sysv KEY`) shared memory.
#[derive(Debug, Args)]
#[command(
    after_help = "With --sysv, SHM is a key (0x41001234 or decimal), id:N for an id, \
    or `private` when creating (the id is printed)."
)]
pub(crate) struct ShmArgs {
    #[command(subcommand)]
    command: ShmCommand,
}

#[derive(Debug, Subcommand)]
enum ShmCommand {
    /// Create shared memory of a size (mode 0600; fails if it exists unless --open-or-create).
    Create(CreateArgs),
    /// Write bytes (the argument, or stdin when it is absent) at an offset.
    Write(WriteArgs),
    /// Print bytes from an offset.
    Read(ReadArgs),
    /// Remove it (System V: once the last process detaches).
    Rm(RmArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// `/name`, or with --sysv a key or `private`.
    shm: String,
    /// Size, e.g. 4k, 1M.
    #[arg(long)]
    size: Size,
    /// System V segment.
    #[arg(long)]
    sysv: bool,
    /// Permission bits in octal (POSIX objects: the umask applies).
    #[arg(long, value_parser = parse_mode, default_value = "600")]
    mode: u32,
    /// Open it if it already exists instead of failing (grows it to --size).
    #[arg(long)]
    open_or_create: bool,
}

#[derive(Debug, Args)]
struct WriteArgs {
    /// `/name`, or with --sysv a key or id:N.
    shm: String,
    /// The bytes to write; stdin when absent.
    data: Option<String>,
    /// System V segment.
    #[arg(long)]
    sysv: bool,
    /// Where to start, in bytes.
    #[arg(long, default_value = "0")]
    offset: Size,
    /// Also write a NUL after the data (for C readers).
    #[arg(long)]
    nul: bool,
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// `/name`, or with --sysv a key or id:N.
    shm: String,
    /// System V segment.
    #[arg(long)]
    sysv: bool,
    /// Where to start, in bytes.
    #[arg(long, default_value = "0")]
    offset: Size,
    /// How many bytes (default: to the end).
    #[arg(long)]
    len: Option<Size>,
    /// Stop at the first NUL byte and end with a newline (C strings).
    #[arg(long)]
    cstr: bool,
}

#[derive(Debug, Args)]
struct RmArgs {
    /// `/name`, or with --sysv a key or id:N.
    shm: String,
    /// System V segment.
    #[arg(long)]
    sysv: bool,
}

/// Runs `memio shm`.
pub(crate) fn run(args: &ShmArgs, globals: Globals) -> CliResult {
    match &args.command {
        ShmCommand::Create(a) => create(a, globals),
        ShmCommand::Write(a) => write(a),
        ShmCommand::Read(a) => read(a),
        ShmCommand::Rm(a) => rm(a),
    }
}

fn size(s: Size) -> CliResult<usize> {
    usize::try_from(s.bytes()).map_err(|_| CliError::new(s.bytes(), "too large for this machine"))
}

fn create(a: &CreateArgs, globals: Globals) -> CliResult {
    let how = create_mode(a.open_or_create);
    let bytes = size(a.size)?;
    if bytes == 0 {
        let verb = if how == Create::Exclusive {
            "create"
        } else {
            "open or create"
        };
        return Err(CliError::new(
            &a.shm,
            format_args!("cannot {verb} shared memory of 0 bytes: give --size above 0"),
        ));
    }
    if a.sysv {
        let key = match SysvTarget::parse(&a.shm)? {
            SysvTarget::Key(k) => k,
            SysvTarget::Id(_) => {
                return Err(CliError::new(
                    &a.shm,
                    "create takes a key or `private`, not an id",
                ));
            }
        };
        let seg = SysvShmOptions::new()
            .size(bytes)
            .mode(a.mode)
            .open(key, how)
            .map_err(|e| CliError::os(&e))?;
        output::println(seg.id())?;
        return Ok(EXIT_OK);
    }
    let region = ShmOptions::new()
        .size(bytes)
        .mode(a.mode)
        .open(&a.shm, how)
        .map_err(lib_error)?;
    if globals.verbose > 0 {
        output::println(format!("{}: {} bytes", a.shm, region.len()))?;
    }
    Ok(EXIT_OK)
}

fn open(name: &str, sysv: bool, access: Access) -> CliResult<Region> {
    if sysv {
        let target = SysvTarget::parse(name)?;
        let seg = target
            .shm()
            .map_err(|e| sysv_error("shared memory segment", target, &e))?;
        return seg
            .attach(access)
            .map_err(|e| sysv_error("shared memory segment", target, &e));
    }
    let opts = ShmOptions::new();
    let opts = if access == Access::ReadOnly {
        opts.read_only()
    } else {
        opts
    };
    opts.open(name, Create::Open).map_err(lib_error)
}

fn range_error(name: &str, offset: usize, len: usize, size: usize) -> CliError {
    CliError::new(
        name,
        format!(
            "bytes {offset}..{} are outside its {size} bytes",
            offset.saturating_add(len)
        ),
    )
}

fn write(a: &WriteArgs) -> CliResult {
    let mut region = open(&a.shm, a.sysv, Access::ReadWrite)?;
    let offset = size(a.offset)?;
    let room = region.len().saturating_sub(offset);
    let mut data = bytes_or_stdin(
        a.data.as_ref(),
        room.saturating_sub(usize::from(a.nul)),
        &format!("{} holds from offset {offset}", a.shm),
    )?;
    if a.nul {
        data.push(0);
    }
    region
        .write_at(offset, &data)
        .map_err(|_| range_error(&a.shm, offset, data.len(), region.len()))?;
    Ok(EXIT_OK)
}

/// How much `shm read` copies out of the segment per write to stdout: a
/// segment larger than memory streams through this much.
const CHUNK: usize = 64 << 10;

fn read(a: &ReadArgs) -> CliResult {
    let region = open(&a.shm, a.sysv, Access::ReadOnly)?;
    let offset = size(a.offset)?;
    if offset >= region.len() {
        return Err(CliError::new(
            &a.shm,
            format!("offset {offset} is past its end ({} bytes)", region.len()),
        ));
    }
    let len = match a.len {
        Some(l) => size(l)?,
        None => region.len() - offset,
    };
    if len > region.len() - offset {
        return Err(range_error(&a.shm, offset, len, region.len()));
    }
    let mut out = crate::output::stdout();
    let mut buf = vec![0; CHUNK.min(len)];
    let mut at = offset;
    let end = offset + len;
    while at < end {
        let n = CHUNK.min(end - at);
        let chunk = &mut buf[..n];
        region
            .read_at(at, chunk)
            .map_err(|_| range_error(&a.shm, at, n, region.len()))?;
        if a.cstr {
            if let Some(nul) = chunk.iter().position(|&b| b == 0) {
                out.write_all(&chunk[..nul])?;
                break;
            }
        }
        out.write_all(chunk)?;
        at += n;
    }
    if a.cstr {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(EXIT_OK)
}

fn rm(a: &RmArgs) -> CliResult {
    if a.sysv {
        let target = SysvTarget::parse(&a.shm)?;
        target
            .shm()
            .and_then(SysvShm::remove)
            .map_err(|e| sysv_error("shared memory segment", target, &e))?;
        return Ok(EXIT_OK);
    }
    memio::ipc::shm::posix::unlink(&a.shm).map_err(lib_error)?;
    Ok(EXIT_OK)
}
