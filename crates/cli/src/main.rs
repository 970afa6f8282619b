//! `memio`: page cache, mappings, locks, IPC objects, extended attributes,
//! copies, and a lab that measures them all on this machine.
//!
//! The binary holds glue only: argument parsing and output; the mechanisms
//! live in the library crates and the lab in memio-lab.
#![forbid(unsafe_code)]

/// Every allocation of `memio` goes to the system allocator, except in the
/// lab's `malloc` section, whose child processes pick theirs from
/// `MEMIO_LAB_ALLOCATOR` (see `memio_lab::switch`).
#[global_allocator]
static GLOBAL: memio_lab::LabAllocator = memio_lab::LabAllocator;

mod cache;
mod cp;
mod error;
mod install;
mod ipc;
mod kv;
mod lab;
mod lock;
mod locks;
mod malloc;
mod maps;
mod mq;
mod mq_rpc;
mod output;
mod progress;
mod sem;
mod shm;
mod size;
mod sum;
mod walk;
mod xattr;

use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

use error::{CliError, CliResult, EXIT_ERROR, EXIT_OK};
use output::Globals;

/// Linux memory management, memory-mapped and advanced file I/O, and IPC.
#[derive(Debug, Parser)]
#[command(
    name = "memio",
    version = env!("MEMIO_VERSION"),
    propagate_version = true,
    after_help = "Exit status: 0 ok, 1 negative result (not found, conflict), 2 error or usage.\n\
                  Sizes accept 4k or 4KiB (4096) and 4KB (4000)."
)]
struct Cli {
    /// Print only results and errors: no progress, no commentary.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Say more about what is being done (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure every mechanism side by side on this machine and write a report.
    Lab(lab::LabArgs),
    /// Show a process's memory mappings by kind (like pmap -x), or the
    /// system's memory facts.
    Maps(maps::MapsArgs),
    /// Report, fill, empty or pin the page cache of files (like vmtouch, fincore).
    Cache(cache::CacheArgs),
    /// List and remove IPC objects, like lsipc/ipcs and ipcrm.
    Ipc(ipc::IpcArgs),
    /// Create, send to, receive from and remove message queues.
    Mq(mq::MqArgs),
    /// Create, write, read and remove shared memory.
    Shm(shm::ShmArgs),
    /// Create, wait on, post, read and remove semaphores.
    Sem(sem::SemArgs),
    /// Run a command while holding a file lock (flock(1) options and exit codes).
    Lock(lock::LockArgs),
    /// List the file locks held on this system, like lslocks.
    Locks(locks::LocksArgs),
    /// Get, set, remove, list, dump and restore extended attributes.
    Xattr(xattr::XattrArgs),
    /// Copy files and trees through a chosen kernel path (like cp).
    Cp(cp::CpArgs),
    /// Print or check checksums of many files read in parallel (like b3sum, sha256sum).
    Sum(sum::SumArgs),
    /// Get, set, delete, list, dump, load and compact a memio-kv store.
    Kv(kv::KvArgs),
    /// Run programs on the memio heap (the preloaded malloc library).
    Malloc(malloc::MallocArgs),
    /// Print shell completions (bash, zsh, fish).
    Completions(install::CompletionsArgs),
    /// Print the manual page, or write one per command.
    Man(install::ManArgs),
}

fn dispatch(command: &Command, globals: Globals) -> CliResult {
    match command {
        Command::Lab(args) => lab::run(args, globals),
        Command::Maps(args) => maps::run(args, globals),
        Command::Cache(args) => cache::run(args, globals),
        Command::Ipc(args) => ipc::run(args, globals),
        Command::Mq(args) => mq::run(args, globals),
        Command::Shm(args) => shm::run(args, globals),
        Command::Sem(args) => sem::run(args, globals),
        Command::Lock(args) => lock::run(args, globals),
        Command::Locks(args) => locks::run(args, globals),
        Command::Xattr(args) => xattr::run(args, globals),
        Command::Cp(args) => cp::run(args, globals),
        Command::Sum(args) => sum::run(args, globals),
        Command::Kv(args) => kv::run(args, globals),
        Command::Malloc(args) => malloc::run(args, globals),
        Command::Completions(args) => install::completions(args, Cli::command()),
        Command::Man(args) => install::man(args, Cli::command()),
    }
}

fn main() -> ExitCode {
    // A panic is a bug, never a user's doing: say so in one line, without
    // the default hook's message or backtrace, and exit 2.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(std::io::stderr(), "memio: internal error{at}: {what}");
    }));

    if let Some(args) = lab::peer_invocation() {
        return match lab::peer(&args) {
            Ok(code) => ExitCode::from(code),
            Err(err) => report(&err),
        };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    let globals = Globals {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    match std::panic::catch_unwind(|| dispatch(&cli.command, globals)) {
        Ok(Ok(code)) => ExitCode::from(code),
        Ok(Err(err)) => report(&err),
        Err(_) => ExitCode::from(EXIT_ERROR),
    }
}

/// Prints an error once as `memio: <object>: <why>`; a closed stdout is not
/// an error and exits 0.
fn report(err: &CliError) -> ExitCode {
    if err.broken_pipe {
        return ExitCode::from(EXIT_OK);
    }
    let _ = writeln!(std::io::stderr(), "memio: {err}");
    ExitCode::from(err.code)
}

/// The status for a usage mistake: 2, or flock(1)'s 64 under `memio lock`
/// (the first word that is not an option names the command).
fn usage_status() -> u8 {
    let command = std::env::args_os()
        .skip(1)
        .find(|a| !a.to_string_lossy().starts_with('-'));
    if command.as_deref() == Some(std::ffi::OsStr::new("lock")) {
        lock::EXIT_USAGE
    } else {
        EXIT_ERROR
    }
}

/// Help and version go to stdout with status 0; usage mistakes go to stderr
/// as `memio: <what>` followed by clap's usage lines, with status 2.
fn usage_error(err: &clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::from(EXIT_OK)
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = write!(
                std::io::stderr(),
                "memio: a command is required\n\n{}",
                err.render()
            );
            ExitCode::from(EXIT_ERROR)
        }
        _ => {
            let argv: Vec<String> = std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            if let Some(hint) = xattr::usage_hint(&argv) {
                let _ = writeln!(std::io::stderr(), "memio: {hint}");
                return ExitCode::from(EXIT_ERROR);
            }
            let text = err.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            let _ = write!(std::io::stderr(), "memio: {}", text.trim_start());
            ExitCode::from(usage_status())
        }
    }
}
