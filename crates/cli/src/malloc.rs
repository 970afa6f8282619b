//! `memio malloc run`: runs a command on the memio heap, with
//! `libmemio_malloc.so` preloaded. The library travels inside the binary
//! (the build script builds it) and is written out on first use.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, Subcommand};

use crate::error::{CliError, CliResult, describe};
use crate::output::Globals;

/// The library, as the build script built it.
static LIBRARY: &[u8] = include_bytes!(env!("MEMIO_PRELOAD_LIB"));
/// A hash of `LIBRARY`, naming the file it is written to.
const HASH: &str = env!("MEMIO_PRELOAD_HASH");

/// Run programs on the memio heap (libmemio_malloc.so).
#[derive(Debug, Args)]
#[allow(clippy::doc_markdown, reason = "help text, where backticks would show")]
pub(crate) struct MallocArgs {
    #[command(subcommand)]
    command: MallocCommand,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::doc_markdown, reason = "help text, where backticks would show")]
enum MallocCommand {
    /// Run a command with libmemio_malloc.so preloaded.
    #[command(after_help = "\
The library is carried inside memio and written on first use to $XDG_RUNTIME_DIR/memio, \
else $HOME/.cache/memio, else a memio-<uid> folder in the temporary folder (the folder mode 0700, \
the file 0600). LD_PRELOAD gets its path appended, so a library \
already preloaded comes first.

With -v the library prints the options in force as each process starts \
(MEMIO_MALLOC_VERBOSE=1). --check takes its MODE with an equals sign (--check=1), so that a bare --check \
can come right before the command.

Exit status: the command's own (128+N if a signal N ended it, 134 for the abort \
of --check); 127 when the command is \
not found and 126 when it cannot run, as env(1); 2 when memio cannot write the library.")]
    Run(RunArgs),
}

#[allow(
    clippy::struct_excessive_bools,
    reason = "each flag turns one of the library's options on"
)]
#[derive(Debug, Args)]
#[allow(clippy::doc_markdown, reason = "help text, where backticks would show")]
struct RunArgs {
    /// Print the heap's figures (malloc_stats) on stderr when the command
    /// exits (MEMIO_MALLOC_STATS=1).
    #[arg(long)]
    stats: bool,
    /// Print the blocks and bytes still in use when the command exits, by
    /// size class (MEMIO_MALLOC_LEAKS=1).
    #[arg(long)]
    leaks: bool,
    /// Fill blocks handed out with BYTE^0xff and freed blocks with BYTE
    /// (MEMIO_MALLOC_PERTURB, as glibc's M_PERTURB), so reads of
    /// uninitialised or freed memory show.
    #[arg(long, value_name = "BYTE", value_parser = clap::value_parser!(u8).range(1..))]
    perturb: Option<u8>,
    /// Check every free and realloc for double frees, invalid pointers and
    /// writes past the end of a block (MEMIO_MALLOC_CHECK, as glibc's
    /// MALLOC_CHECK_): 1 reports and ignores the bad call, 2 aborts, 3
    /// reports then aborts (the default).
    #[arg(
        long,
        value_name = "MODE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "3",
        value_parser = clap::value_parser!(u8).range(0..=3)
    )]
    check: Option<u8>,
    /// Put a guard page after every large block, its end against it, so a
    /// write past the end faults at once (MEMIO_MALLOC_GUARD=1).
    #[arg(long)]
    guard: bool,
    /// Back the heap with transparent huge pages: fewer page faults and
    /// TLB misses, a larger resident size for a small heap
    /// (MEMIO_MALLOC_HUGEPAGES=1).
    #[arg(long)]
    hugepages: bool,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// Runs `memio malloc`.
pub(crate) fn run(args: &MallocArgs, globals: Globals) -> CliResult {
    match &args.command {
        MallocCommand::Run(run) => run_command(run, globals.verbose > 0),
    }
}

/// Runs the command; `verbose` (the global `-v`) has the library name the
/// options in force when it starts.
fn run_command(args: &RunArgs, verbose: bool) -> CliResult {
    let lib = install()?;
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..]).env(
        "LD_PRELOAD",
        preload_value(std::env::var_os("LD_PRELOAD"), &lib),
    );
    if args.stats {
        cmd.env("MEMIO_MALLOC_STATS", "1");
    }
    if args.leaks {
        cmd.env("MEMIO_MALLOC_LEAKS", "1");
    }
    if let Some(byte) = args.perturb {
        cmd.env("MEMIO_MALLOC_PERTURB", byte.to_string());
    }
    if let Some(mode) = args.check {
        cmd.env("MEMIO_MALLOC_CHECK", mode.to_string());
    }
    if args.guard {
        cmd.env("MEMIO_MALLOC_GUARD", "1");
    }
    if args.hugepages {
        cmd.env("MEMIO_MALLOC_HUGEPAGES", "1");
    }
    if verbose {
        cmd.env("MEMIO_MALLOC_VERBOSE", "1");
    }
    let status = match cmd.status() {
        Ok(status) => status,
        Err(e) => {
            // env(1)'s codes: 127 for a command not found, 126 for one
            // that cannot run.
            let code = if e.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return Err(CliError::new(
                args.command[0].to_string_lossy(),
                format!("cannot run command: {}", describe(&e)),
            )
            .with_code(code));
        }
    };
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(u8::MAX),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(u8::MAX),
        (None, None) => crate::error::EXIT_ERROR,
    })
}

/// `LD_PRELOAD` with `lib` appended to what was there (colon-separated,
/// as ld.so reads it).
fn preload_value(existing: Option<OsString>, lib: &Path) -> OsString {
    let mut value = existing.unwrap_or_default();
    if value.as_bytes().iter().all(|b| *b == b' ' || *b == b':') {
        value.clear();
    } else {
        value.push(":");
    }
    value.push(lib.as_os_str());
    value
}

/// Writes the library where it can be preloaded from, unless an
/// identical copy is there already; returns its path. `memio lab` hands
/// the same path to its malloc section.
pub(crate) fn install() -> CliResult<PathBuf> {
    if LIBRARY.is_empty() {
        return Err(CliError::new(
            "libmemio_malloc.so",
            "not built into this memio (its build found no crates/malloc/preload)",
        ));
    }
    let uid = rustix::process::geteuid().as_raw();
    let mut last = None;
    for dir in candidates(uid) {
        match install_in(&dir, uid) {
            Ok(path) => return Ok(path),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| CliError::new("libmemio_malloc.so", "no folder to write it to")))
}

/// Where the library may go, most private first.
fn candidates(uid: u32) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let var = |name: &str| std::env::var_os(name).filter(|v| Path::new(v).is_absolute());
    if let Some(run) = var("XDG_RUNTIME_DIR") {
        dirs.push(Path::new(&run).join("memio"));
    }
    if let Some(home) = var("HOME") {
        dirs.push(Path::new(&home).join(".cache/memio"));
    }
    dirs.push(std::env::temp_dir().join(format!("memio-{uid}")));
    dirs
}

/// Refuses a path ld.so would not read whole from `LD_PRELOAD`, which it
/// splits at spaces and colons.
fn preloadable(path: &Path) -> CliResult<()> {
    if path
        .as_os_str()
        .as_bytes()
        .iter()
        .any(|b| *b == b' ' || *b == b':')
    {
        return Err(CliError::new(
            path.display(),
            "cannot be preloaded: LD_PRELOAD splits paths at spaces and colons",
        ));
    }
    Ok(())
}

/// Makes `dir` (mode 0700) and checks, as ssh's `StrictModes` does, that
/// nobody but `uid` and root can change what its path leads to: the
/// folder itself is `uid`'s, private and not a link; every folder above it
/// belongs to root or `uid` and is writable by others only when sticky (as
/// `/tmp`, where nobody can rename another's entry). Returns the folder's
/// canonical path, which is what `LD_PRELOAD` gets: every later `exec`
/// resolves it again.
fn private_dir(dir: &Path, uid: u32) -> CliResult<PathBuf> {
    let fail = |p: &Path, e: &io::Error| CliError::io(p.display(), e);
    if let Some(parent) = dir.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| fail(parent, &e))?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(dir, &e)),
    }
    // A link in the last place is refused, not followed.
    let meta = fs::symlink_metadata(dir).map_err(|e| fail(dir, &e))?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(CliError::new(
            dir.display(),
            "not a private folder of this user (a link, owned by another, or open to others)",
        ));
    }
    let real = fs::canonicalize(dir).map_err(|e| fail(dir, &e))?;
    for above in real.ancestors().skip(1) {
        let m = fs::symlink_metadata(above).map_err(|e| fail(above, &e))?;
        let owner_ok = m.uid() == 0 || m.uid() == uid;
        let open = m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0;
        if !owner_ok || open {
            return Err(CliError::new(
                above.display(),
                "another user could replace the library's folder under it \
                 (owned by another user, or writable by others without the sticky bit)",
            ));
        }
    }
    Ok(real)
}

/// Makes `dir` (0700, ours) and the library in it.
fn install_in(dir: &Path, uid: u32) -> CliResult<PathBuf> {
    let name = format!("libmemio_malloc-{HASH}.so");
    // Checked before any folder is made, and again on the canonical path.
    preloadable(&dir.join(&name))?;
    let real = private_dir(dir, uid)?;
    let path = real.join(&name);
    preloadable(&path)?;
    // Inside a folder only this user can change, an identical regular
    // file of this user's is the library.
    let same = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.uid() == uid)
        && fs::read(&path).is_ok_and(|have| have == LIBRARY);
    if same {
        return Ok(path);
    }
    let tmp = real.join(format!(".{name}.{}", std::process::id()));
    let written = write_new(&tmp).and_then(|()| fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(CliError::io(path.display(), &e));
    }
    Ok(path)
}

/// Writes the library to a new file at `path`, mode 0600.
fn write_new(path: &Path) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(LIBRARY)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn preload_appends_to_what_was_there() {
        let lib = Path::new("/run/memio/libmemio_malloc-1.so");
        assert_eq!(
            preload_value(None, lib),
            OsStr::new("/run/memio/libmemio_malloc-1.so")
        );
        assert_eq!(
            preload_value(Some(" ".into()), lib),
            OsStr::new("/run/memio/libmemio_malloc-1.so")
        );
        assert_eq!(
            preload_value(Some("/usr/lib/libfoo.so".into()), lib),
            OsStr::new("/usr/lib/libfoo.so:/run/memio/libmemio_malloc-1.so")
        );
    }

    #[test]
    fn the_library_is_carried() {
        assert!(LIBRARY.starts_with(b"\x7fELF"), "{} bytes", LIBRARY.len());
    }
}
