//! `memio xattr`: extended attributes, as getfattr and setfattr handle them.

use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use memio::io::Error as XattrError;
use memio::io::xattr::dump::{self, Encoding};
use memio::io::xattr::{SetMode, Target};
use regex::Regex;

use crate::error::{CliError, CliResult, EXIT_ERROR, EXIT_NEGATIVE, EXIT_OK};
use crate::output::Globals;
use crate::output::warn;

/// Get, set, remove, list, dump and restore extended attributes.
#[derive(Debug, Args)]
#[command(after_help = "\
Values on the command line and in dumps are encoded as getfattr/setfattr do: text (optionally \
\"quoted\", with \\ooo octal escapes), 0x followed by hex digits, or 0s followed by base64. \
`memio xattr dump` output is read by `setfattr --restore`, and `getfattr --dump` output by \
`memio xattr restore`.

-h is --no-dereference, as in getfattr and setfattr; help is --help.

Exit status: 0 ok, 1 an attribute was not found (or exists already, with --create), 2 any other \
error.")]
pub(crate) struct XattrArgs {
    #[command(subcommand)]
    command: XattrCommand,
}

#[derive(Debug, Subcommand)]
enum XattrCommand {
    /// Print one attribute of each PATH (getfattr -n NAME).
    Get(GetArgs),
    /// Set an attribute on each PATH (setfattr -n NAME -v VALUE).
    Set(SetArgs),
    /// Remove an attribute from each PATH (setfattr -x NAME).
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// List attribute names of each PATH (getfattr).
    #[command(visible_alias = "ls")]
    List(DumpArgs),
    /// Print names and values in the getfattr --dump format (getfattr -d).
    Dump(DumpArgs),
    /// Set the attributes a dump lists (setfattr --restore); a dump with a
    /// bad line, name or value size anywhere sets nothing.
    Restore(RestoreArgs),
}

/// Options every subcommand shares. `-h` is --no-dereference, as in
/// getfattr and setfattr, so help is `--help` only.
#[derive(Debug, Args)]
struct Common {
    /// Act on a symlink itself rather than on the file it points to. -h
    /// means this here, as in getfattr and setfattr; help is --help.
    #[arg(short = 'h', long = "no-dereference")]
    no_dereference: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
struct GetArgs {
    #[command(flatten)]
    common: Common,
    /// Value encoding: text, hex or base64 (default: text if printable).
    #[arg(short, long, value_name = "ENC")]
    encoding: Option<Encoding>,
    /// Print only the raw value bytes, nothing else.
    #[arg(long)]
    only_values: bool,
    /// Attribute name, with its namespace (user.comment).
    name: String,
    /// Files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
struct SetArgs {
    #[command(flatten)]
    common: Common,
    /// Fail if the attribute exists already (create only).
    #[arg(long, conflicts_with = "replace")]
    create: bool,
    /// Fail if the attribute does not exist (replace only).
    #[arg(long)]
    replace: bool,
    /// Attribute name, with its namespace (user.comment).
    name: String,
    /// Value: text, "quoted text", 0x hex or 0s base64.
    #[arg(allow_hyphen_values = true)]
    value: String,
    /// Files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
struct RmArgs {
    #[command(flatten)]
    common: Common,
    /// Attribute name.
    name: String,
    /// Files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
struct DumpArgs {
    #[command(flatten)]
    common: Common,
    /// Only names matching this regular expression ("-" for all).
    #[arg(
        short = 'm',
        long = "match",
        value_name = "REGEX",
        default_value = "^user\\."
    )]
    pattern: String,
    /// Value encoding: text, hex or base64 (default: text if printable).
    #[arg(short, long, value_name = "ENC")]
    encoding: Option<Encoding>,
    /// Walk directories recursively (symlinked directories are not entered).
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Keep a leading '/' in printed paths.
    #[arg(short, long)]
    absolute_names: bool,
    /// Files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
struct RestoreArgs {
    #[command(flatten)]
    common: Common,
    /// The dump to read; `-` for standard input.
    file: PathBuf,
}

/// Runs `memio xattr`.
pub(crate) fn run(args: &XattrArgs, globals: Globals) -> CliResult {
    match &args.command {
        XattrCommand::Get(a) => get(a),
        XattrCommand::Set(a) => set(a),
        XattrCommand::Rm(a) => rm(a),
        XattrCommand::List(a) => dump_cmd(a, false, globals),
        XattrCommand::Dump(a) => dump_cmd(a, true, globals),
        XattrCommand::Restore(a) => restore(a),
    }
}

fn target<'a>(path: &'a Path, common: &Common) -> Target<'a> {
    if common.no_dereference {
        Target::NoFollow(path)
    } else {
        Target::Path(path)
    }
}

/// Prints an error for one file and says which status it calls for: a
/// missing attribute and one that exists already (`--create`) are negative
/// results, as everywhere in memio.
fn report(err: &XattrError) -> u8 {
    warn(format_args!("{err}"));
    if matches!(
        err,
        XattrError::NoSuchAttribute { .. } | XattrError::Exists { .. }
    ) {
        EXIT_NEGATIVE
    } else {
        EXIT_ERROR
    }
}

/// Whether `text` reads as an attribute name (a known namespace first).
fn looks_like_name(text: &str) -> bool {
    ["user.", "trusted.", "security.", "system."]
        .iter()
        .any(|ns| text.starts_with(ns))
}

/// `memio xattr get FILE NAME`: the name must come first. Caught before
/// any file is touched, with the right form in one line.
fn swapped(name: &str, paths: &[PathBuf], verb: &str) -> CliResult<()> {
    let [path] = paths else { return Ok(()) };
    let path = path.to_string_lossy();
    if !looks_like_name(name) && looks_like_name(&path) && Path::new(name).exists() {
        return Err(CliError::new(
            format!("xattr {verb}"),
            format!("the attribute name comes first: memio xattr {verb} {path} {name}"),
        ));
    }
    Ok(())
}

/// A one-line hint for a command line clap refused that carries a
/// getfattr/setfattr habit: `-n NAME` (and setfattr's `-v VALUE`, which is
/// memio's --verbose), or `-x NAME` to remove.
pub(crate) fn usage_hint(argv: &[String]) -> Option<String> {
    let at = argv.iter().position(|a| a == "xattr")?;
    let rest = &argv[at + 1..];
    let verb = rest.first()?.as_str();
    let value_of = |flag: &str| {
        rest.iter()
            .position(|a| a == flag)
            .and_then(|i| rest.get(i + 1))
    };
    let name = value_of("-n")?;
    let paths: Vec<&String> = {
        let mut skip = false;
        rest[1..]
            .iter()
            .filter(|a| {
                if skip {
                    skip = false;
                    return false;
                }
                if ["-n", "-v", "-e", "-m"].contains(&a.as_str()) {
                    skip = true;
                    return false;
                }
                !a.starts_with('-')
            })
            .collect()
    };
    let files = if paths.is_empty() {
        String::from("FILE...")
    } else {
        paths
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    match verb {
        "set" => {
            let value = value_of("-v").map_or("VALUE", String::as_str);
            Some(format!(
                "xattr set: memio takes NAME VALUE FILE..., not setfattr's -n NAME -v VALUE \
                 (-v is --verbose): memio xattr set {name} {value} {files}"
            ))
        }
        "get" => Some(format!(
            "xattr get: memio takes NAME FILE..., not getfattr's -n NAME: \
             memio xattr get {name} {files}"
        )),
        _ => None,
    }
}

fn get(args: &GetArgs) -> CliResult {
    swapped(&args.name, &args.paths, "get")?;
    let mut status = EXIT_OK;
    let mut out = crate::output::stdout();
    for path in &args.paths {
        match target(path, &args.common).get(&args.name) {
            Ok(value) if args.only_values => out.write_all(&value)?,
            Ok(value) => dump::write_block(
                &mut out,
                path.as_os_str().as_bytes(),
                &[(args.name.clone(), value)],
                args.encoding,
            )?,
            Err(e) => status = status.max(report(&e)),
        }
    }
    out.flush()?;
    Ok(status)
}

fn set(args: &SetArgs) -> CliResult {
    let value = dump::decode(args.value.as_bytes())
        .map_err(|e| CliError::new(format!("value '{}'", args.value), e))?;
    let mode = match (args.create, args.replace) {
        (true, _) => SetMode::Create,
        (_, true) => SetMode::Replace,
        _ => SetMode::Any,
    };
    let mut status = EXIT_OK;
    for path in &args.paths {
        if let Err(e) = target(path, &args.common).set(&args.name, &value, mode) {
            status = status.max(report(&e));
        }
    }
    Ok(status)
}

fn rm(args: &RmArgs) -> CliResult {
    swapped(&args.name, &args.paths, "rm")?;
    let mut status = EXIT_OK;
    for path in &args.paths {
        if let Err(e) = target(path, &args.common).remove(&args.name) {
            status = status.max(report(&e));
        }
    }
    Ok(status)
}

fn dump_cmd(args: &DumpArgs, values: bool, globals: Globals) -> CliResult {
    let pattern = if args.pattern == "-" {
        ""
    } else {
        &args.pattern
    };
    let re = Regex::new(pattern).map_err(|e| {
        // The regex crate draws a caret under the error over several lines;
        // keep its last line, the reason.
        let text = e.to_string();
        let why = text.lines().last().unwrap_or_default().trim();
        let why = why.strip_prefix("error: ").unwrap_or(why);
        CliError::new(
            format!("--match '{}'", args.pattern),
            format!("invalid regular expression: {why}"),
        )
    })?;
    let mut files = Vec::new();
    let mut status = EXIT_OK;
    for path in &args.paths {
        if args.recursive {
            walk(path, &mut files, &mut status);
        } else {
            files.push(path.clone());
        }
    }
    let mut warned = false;
    let mut out = crate::output::stdout();
    for path in &files {
        let t = target(path, &args.common);
        let attrs = if values {
            t.all()
        } else {
            t.list().map(|names| {
                let mut names: Vec<(String, Vec<u8>)> = names
                    .into_iter()
                    .map(|n| (n.to_string_lossy().into_owned(), Vec::new()))
                    .collect();
                names.sort();
                names
            })
        };
        let attrs: Vec<(String, Vec<u8>)> = match attrs {
            Ok(a) => a.into_iter().filter(|(n, _)| re.is_match(n)).collect(),
            Err(e) => {
                status = status.max(report(&e));
                continue;
            }
        };
        if attrs.is_empty() {
            continue;
        }
        let mut shown = path.as_os_str().as_bytes();
        if !args.absolute_names && shown.first() == Some(&b'/') {
            if !warned && !globals.quiet {
                warn(format_args!(
                    "removing leading '/' from absolute path names"
                ));
                warned = true;
            }
            while shown.first() == Some(&b'/') {
                shown = &shown[1..];
            }
        }
        if values {
            dump::write_block(&mut out, shown, &attrs, args.encoding)?;
        } else {
            out.write_all(b"# file: ")?;
            out.write_all(&dump::quote_path(shown))?;
            out.write_all(b"\n")?;
            for (name, _) in &attrs {
                writeln!(out, "{name}")?;
            }
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(status)
}

/// Collects `path` and, for a directory that is not a symlink, everything
/// below it, sorted by name.
fn walk(path: &Path, files: &mut Vec<PathBuf>, status: &mut u8) {
    files.push(path.to_path_buf());
    let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    if !is_dir {
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(d) => d,
        Err(e) => {
            warn(format_args!(
                "{}: {}",
                path.display(),
                crate::error::describe(&e)
            ));
            *status = EXIT_ERROR;
            return;
        }
    };
    let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    children.sort();
    for child in children {
        walk(&child, files, status);
    }
}

/// The longest dump line `restore` reads: an attribute name of at most
/// 255 bytes (`XATTR_NAME_MAX`), `=`, and a value of at most 64 KiB
/// (`XATTR_SIZE_MAX`) in the widest encoding getfattr writes (quoted, four
/// bytes per escaped byte); also room for a `# file:` line of a 4 KiB path
/// escaped the same way. A longer line cannot be a dump line.
const DUMP_LINE_MAX: usize = 255 + 1 + 2 + 4 * XATTR_SIZE_MAX;

/// The largest value Linux stores in an attribute (`XATTR_SIZE_MAX`).
const XATTR_SIZE_MAX: usize = 65_536;

fn restore(args: &RestoreArgs) -> CliResult {
    let from_stdin = args.file.as_os_str() == "-";
    let shown = if from_stdin {
        "stdin".to_owned()
    } else {
        args.file.display().to_string()
    };
    let named = if from_stdin {
        None
    } else {
        Some(std::fs::File::open(&args.file).map_err(|e| CliError::io(&shown, &e))?)
    };
    // A dump that is malformed anywhere changes nothing: every line is
    // parsed, every name and value size checked, before the first
    // attribute is set. A regular file is read twice; stdin or a pipe is
    // read once, its lines kept in an unnamed file as they are checked.
    let (mut file, checked) = match named {
        Some(file) if file.metadata().is_ok_and(|m| m.is_file()) => {
            let (_, checked) =
                restore_from(io::BufReader::new(&file), &shown, &args.common, false, None)?;
            (file, checked)
        }
        named => {
            let mut spool = Spool::new(&shown)?;
            let (_, checked) = if let Some(pipe) = named {
                let input = io::BufReader::new(pipe);
                restore_from(input, &shown, &args.common, false, Some(&mut spool))?
            } else {
                let input = io::stdin().lock();
                restore_from(input, &shown, &args.common, false, Some(&mut spool))?
            };
            (spool.into_file()?, checked)
        }
    };
    io::Seek::rewind(&mut file).map_err(|e| CliError::io(&shown, &e))?;
    // Only what was checked: a file still being written has grown since.
    let input = io::BufReader::new(io::Read::take(&file, checked));
    Ok(restore_from(input, &shown, &args.common, true, None)?.0)
}

/// The most of a dump read from stdin or a pipe that is kept (in memory)
/// while it is checked.
const SPOOL_MAX: u64 = 256 << 20;

/// Where a dump that cannot be read twice is kept while it is checked: an
/// unnamed file in memory (`memfd_create`), at most [`SPOOL_MAX`] bytes.
struct Spool<'a> {
    out: io::BufWriter<std::fs::File>,
    len: u64,
    shown: &'a str,
}

impl<'a> Spool<'a> {
    fn new(shown: &'a str) -> CliResult<Self> {
        let fd = rustix::fs::memfd_create(c"memio-xattr-restore", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(|e| CliError::io(shown, &e.into()))?;
        Ok(Self {
            out: io::BufWriter::new(std::fs::File::from(fd)),
            len: 0,
            shown,
        })
    }

    fn keep(&mut self, line: &[u8]) -> CliResult<()> {
        self.len += line.len() as u64;
        if self.len > SPOOL_MAX {
            return Err(CliError::new(
                self.shown,
                "a dump over 256 MiB must be given as a regular file (it is kept in memory \
                 while checked); nothing was restored",
            ));
        }
        self.out
            .write_all(line)
            .map_err(|e| CliError::io(self.shown, &e))
    }

    fn into_file(self) -> CliResult<std::fs::File> {
        let shown = self.shown;
        self.out
            .into_inner()
            .map_err(|e| CliError::io(shown, e.error()))
    }
}

/// Reads a dump one line at a time, so memory stays bounded by
/// [`DUMP_LINE_MAX`] whatever the input; checks every line and name and,
/// with `apply`, sets each attribute as it comes. Each line read is also
/// written to `copy`, when given.
fn restore_from(
    mut input: impl io::BufRead,
    shown: &str,
    common: &Common,
    apply: bool,
    mut copy: Option<&mut Spool<'_>>,
) -> CliResult<(u8, u64)> {
    let mut status = EXIT_OK;
    let mut consumed = 0u64;
    let mut header: Vec<u8> = Vec::new();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        (&mut input)
            .take(DUMP_LINE_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| CliError::io(shown, &e))?;
        if line.is_empty() {
            break;
        }
        if line.len() > DUMP_LINE_MAX {
            return Err(CliError::new(
                shown,
                format!(
                    "line {number}: longer than any dump line can be ({DUMP_LINE_MAX} bytes: \
                     a 255-byte name and a 64 KiB value, escaped)"
                ),
            ));
        }
        consumed += line.len() as u64;
        if let Some(copy) = copy.as_mut() {
            copy.keep(&line)?;
        }
        if line.starts_with(b"# file: ") {
            header.clone_from(&line);
            if !header.ends_with(b"\n") {
                header.push(b'\n');
            }
            continue;
        }
        let mut text = header.clone();
        text.extend_from_slice(&line);
        let blocks = dump::parse(&text).map_err(|mut e| {
            e.line = Some(number);
            CliError::new(shown, e)
        })?;
        for block in &blocks {
            let path = PathBuf::from(std::ffi::OsString::from_vec(block.path.clone()));
            for (name, value) in &block.attrs {
                if !apply {
                    if !memio::io::xattr::valid_name(name) {
                        return Err(CliError::new(
                            shown,
                            format!(
                                "line {number}: '{}' is no attribute name (a namespace prefix \
                                 such as user., then at most 255 bytes); nothing was restored",
                                name.escape_debug()
                            ),
                        ));
                    }
                    if value.len() > XATTR_SIZE_MAX {
                        return Err(CliError::new(
                            shown,
                            format!(
                                "line {number}: a value of {} bytes is over the {XATTR_SIZE_MAX} \
                                 any attribute can hold; nothing was restored",
                                value.len()
                            ),
                        ));
                    }
                } else if let Err(e) = target(&path, common).set(name, value, SetMode::Any) {
                    status = status.max(report(&e));
                }
            }
        }
    }
    Ok((status, consumed))
}
