//! `memio ipc ls` and `memio ipc rm`: the IPC objects on this machine, as
//! `lsipc`/`ipcs` and `ipcrm` show and remove them; plus what the `mq`,
//! `shm` and `sem` commands share (System V targets, timeouts, modes).

use std::io;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Subcommand};
use memio::ipc::list::{self, Entry, Family, Kind};
use memio::ipc::mq::posix::PosixMq;
use memio::ipc::mq::sysv::SysvMq;
use memio::ipc::sem::posix::NamedSem;
use memio::ipc::sem::sysv::SemSet;
use memio::ipc::shm::sysv::SysvShm;
use memio::ipc::{Create, Key};
use serde_json::json;

use crate::error::{CliError, CliResult, EXIT_NEGATIVE, EXIT_OK};
use crate::output::{self, Globals, Table, warn};

/// List and remove IPC objects (System V and POSIX queues, shared memory,
/// semaphores).
#[derive(Debug, Args)]
pub(crate) struct IpcArgs {
    #[command(subcommand)]
    command: IpcCommand,
}

#[derive(Debug, Subcommand)]
enum IpcCommand {
    /// List IPC objects, like lsipc/ipcs.
    #[command(
        after_help = "Note: -q is memio's global --quiet; queues are -Q/--queues.\n\
        POSIX queues are listed only when /dev/mqueue is mounted \
        (mount -t mqueue none /dev/mqueue)."
    )]
    Ls(LsArgs),
    /// Remove IPC objects by id, key or name, like ipcrm.
    #[command(
        after_help = "Examples:\n  memio ipc rm -Q --id 3,4      (ipcrm -q 3 -q 4)\n  \
        memio ipc rm -m --key 0x41001234\n  \
        memio ipc rm /my_shm          (the one POSIX object of that name; several: say -Q, -m or -s)\n  \
        memio ipc rm -s /lock /other\n  \
        memio ipc rm -a -m            (every System V segment, ipcrm -a shm)\n\n\
        Every object given is tried; the status is 1 if one was missing, 2 on another error."
    )]
    Rm(RmArgs),
}

/// Which kinds a command concerns.
#[derive(Debug, Args, Clone, Copy)]
#[allow(clippy::struct_excessive_bools, reason = "command-line flags")]
struct KindFlags {
    /// Message queues.
    #[arg(short = 'Q', long)]
    queues: bool,
    /// Shared memory.
    #[arg(short = 'm', long)]
    shmems: bool,
    /// Semaphores.
    #[arg(short = 's', long)]
    semaphores: bool,
}

impl KindFlags {
    /// The kinds asked for, all when none is.
    fn kinds(self) -> Vec<Kind> {
        let mut k = Vec::new();
        if self.queues {
            k.push(Kind::Queue);
        }
        if self.shmems {
            k.push(Kind::Shm);
        }
        if self.semaphores {
            k.push(Kind::Sem);
        }
        if k.is_empty() {
            k = vec![Kind::Queue, Kind::Shm, Kind::Sem];
        }
        k
    }
}

#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools, reason = "command-line flags")]
struct LsArgs {
    #[command(flatten)]
    kinds: KindFlags,
    /// Only POSIX objects.
    #[arg(long, conflicts_with = "sysv")]
    posix: bool,
    /// Only System V objects.
    #[arg(long)]
    sysv: bool,
    /// Print JSON instead of tables (as lsipc -J).
    #[arg(short = 'J', long)]
    json: bool,
    /// No header lines.
    #[arg(short = 'n', long)]
    noheadings: bool,
    /// Only these columns, in this order (comma-separated, as lsipc -o);
    /// `memio ipc ls -m` shows the names (key,id,name,owner,perms,...).
    #[arg(
        short = 'o',
        long = "output",
        value_delimiter = ',',
        value_name = "LIST"
    )]
    columns: Vec<String>,
    /// Raw output: columns one space apart, unaligned (lsipc -r).
    #[arg(short, long)]
    raw: bool,
    /// The system's limits on IPC objects instead of the objects (lsipc -l).
    #[arg(short = 'l', long, conflicts_with_all = ["id", "posix"])]
    limits: bool,
    /// One System V object in detail (lsipc -i, ipcs -i), with -Q, -m or
    /// -s; for a set, each semaphore's value, waiters (ncount, zcount) and
    /// last pid.
    #[arg(short = 'i', long, value_name = "ID", conflicts_with = "posix")]
    id: Option<i32>,
}

#[derive(Debug, Args)]
struct RmArgs {
    #[command(flatten)]
    kinds: KindFlags,
    /// System V ids as `memio ipc ls` or `ipcs` print them (repeat, or
    /// comma-separate); needs -Q, -m or -s.
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    id: Vec<i32>,
    /// System V keys (0x-prefixed hex or decimal; repeat, or
    /// comma-separate); needs -Q, -m or -s.
    #[arg(long, value_delimiter = ',', value_parser = parse_key, value_name = "KEY")]
    key: Vec<Key>,
    /// Remove every System V object of the kinds given (every kind when
    /// none is), like ipcrm -a.
    #[arg(short = 'a', long, conflicts_with_all = ["id", "key", "targets"])]
    all: bool,
    /// POSIX names (`/name`), or System V objects as `id:N` or a `0x` key.
    #[arg(value_name = "NAME")]
    targets: Vec<String>,
}

/// Runs `memio ipc`.
pub(crate) fn run(args: &IpcArgs, globals: Globals) -> CliResult {
    match &args.command {
        IpcCommand::Ls(a) => ls(a, globals),
        IpcCommand::Rm(a) => rm(a, globals),
    }
}

fn ls(args: &LsArgs, globals: Globals) -> CliResult {
    let style = output::TableStyle {
        columns: args.columns.clone(),
        raw: args.raw,
        noheadings: args.noheadings,
    };
    if args.limits {
        return ls_limits(args, &style);
    }
    if let Some(id) = args.id {
        return ls_detail(args, id, &style);
    }
    let families = match (args.posix, args.sysv) {
        (true, false) => vec![Family::Posix],
        (false, true) => vec![Family::SysV],
        _ => vec![Family::SysV, Family::Posix],
    };
    let kinds = args.kinds.kinds();
    let listing = list::list(&kinds, &families).map_err(|e| CliError::io("/proc/sysvipc", &e))?;
    let posix_queues_hidden = !listing.mqueue_mounted
        && families.contains(&Family::Posix)
        && kinds.contains(&Kind::Queue);
    if args.json {
        let objects: Vec<_> = listing.entries.iter().map(entry_json).collect();
        output::print_json(&json!({
            "mqueue_mounted": listing.mqueue_mounted,
            "objects": objects,
        }))?;
    } else {
        let mut first = true;
        for kind in kinds {
            let rows: Vec<&Entry> = listing.entries.iter().filter(|e| e.kind == kind).collect();
            if !first {
                output::println("")?;
            }
            first = false;
            print_kind(kind, &rows, &style)?;
        }
    }
    if posix_queues_hidden && !globals.quiet {
        warn(
            "note: POSIX message queues are not listed: /dev/mqueue is not mounted \
             (mount -t mqueue none /dev/mqueue to see them)",
        );
    }
    Ok(EXIT_OK)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| String::from("-"), |v| v.to_string())
}

fn print_kind(kind: Kind, rows: &[&Entry], style: &output::TableStyle) -> CliResult<()> {
    let (title, cols, right): (&str, &[&str], &[usize]) = match kind {
        Kind::Queue => (
            "Message queues",
            &[
                "key",
                "id",
                "name",
                "owner",
                "perms",
                "used-bytes",
                "messages",
                "lspid",
            ],
            &[1, 5, 6, 7],
        ),
        Kind::Shm => (
            "Shared memory",
            &[
                "key", "id", "name", "owner", "perms", "bytes", "nattch", "cpid", "lpid",
            ],
            &[1, 5, 6, 7, 8],
        ),
        Kind::Sem => (
            "Semaphores",
            &["key", "id", "name", "owner", "perms", "nsems"],
            &[1, 5],
        ),
    };
    let mut table = Table::new(cols).right(right);
    for e in rows {
        let mut row = vec![
            opt(e.key),
            opt(e.id),
            e.name.clone().unwrap_or_else(|| String::from("-")),
            list::user_name(e.uid),
            format!("{:o}", e.mode),
        ];
        match kind {
            Kind::Queue => row.extend([opt(e.bytes), opt(e.messages), opt(e.lpid)]),
            Kind::Shm => row.extend([opt(e.bytes), opt(e.attaches), opt(e.cpid), opt(e.lpid)]),
            Kind::Sem => row.push(opt(e.semaphores)),
        }
        table.push(row);
    }
    if !style.noheadings && !style.raw {
        output::println(format!("{title}:"))?;
    }
    style.print(&table, kind.as_str())
}

/// `ipc ls -l`: the limits, as lsipc -l, with how many objects count
/// against the per-namespace ones.
fn ls_limits(args: &LsArgs, style: &output::TableStyle) -> CliResult {
    let kinds = args.kinds.kinds();
    let families = match (args.posix, args.sysv) {
        (false, true) => vec![Family::SysV],
        _ => vec![Family::SysV, Family::Posix],
    };
    let listing = list::list(&kinds, &families).map_err(|e| CliError::io("/proc/sysvipc", &e))?;
    let count = |kind: Kind, family: Family| {
        listing
            .entries
            .iter()
            .filter(|e| e.kind == kind && e.family == family)
            .count() as u64
    };
    let used = |l: &list::Limit| -> Option<u64> {
        match l.resource {
            "MSGMNI" => Some(count(Kind::Queue, Family::SysV)),
            "SHMMNI" => Some(count(Kind::Shm, Family::SysV)),
            "SEMMNI" => Some(count(Kind::Sem, Family::SysV)),
            "SEMMNS" => Some(
                listing
                    .entries
                    .iter()
                    .filter(|e| e.kind == Kind::Sem && e.family == Family::SysV)
                    .filter_map(|e| e.semaphores)
                    .sum(),
            ),
            "QUEUES_MAX" if listing.mqueue_mounted => Some(count(Kind::Queue, Family::Posix)),
            _ => None,
        }
    };
    let limits: Vec<list::Limit> = list::limits()
        .into_iter()
        .filter(|l| kinds.contains(&l.kind) && families.contains(&l.family))
        .collect();
    if args.json {
        let rows: Vec<_> = limits
            .iter()
            .map(|l| {
                json!({
                    "resource": l.resource,
                    "description": l.description,
                    "kind": l.kind.as_str(),
                    "family": l.family.as_str(),
                    "used": used(l),
                    "limit": l.limit,
                    "source": l.source,
                })
            })
            .collect();
        output::print_json(&json!({ "limits": rows }))?;
        return Ok(EXIT_OK);
    }
    let mut table = Table::new(&["resource", "description", "used", "limit"]).right(&[2, 3]);
    for l in &limits {
        table.push(vec![
            l.resource.to_owned(),
            l.description.to_owned(),
            opt(used(l)),
            opt(l.limit),
        ]);
    }
    style.print(&table, "limits")?;
    Ok(EXIT_OK)
}

/// `ipc ls -s -i ID` (or -Q, -m): one System V object, field by field,
/// and for a semaphore set a row per semaphore.
fn ls_detail(args: &LsArgs, id: i32, style: &output::TableStyle) -> CliResult {
    let explicit: Vec<Kind> = [
        (args.kinds.queues, Kind::Queue),
        (args.kinds.shmems, Kind::Shm),
        (args.kinds.semaphores, Kind::Sem),
    ]
    .into_iter()
    .filter_map(|(on, k)| on.then_some(k))
    .collect();
    let [kind] = explicit[..] else {
        return Err(CliError::new(
            format!("-i {id}"),
            "say which kind with exactly one of -Q (queue), -m (shared memory), -s (semaphores)",
        ));
    };
    let listing =
        list::list(&[kind], &[Family::SysV]).map_err(|e| CliError::io("/proc/sysvipc", &e))?;
    let what = match kind {
        Kind::Queue => "message queue",
        Kind::Shm => "shared memory segment",
        Kind::Sem => "semaphore set",
    };
    let Some(entry) = listing.entries.iter().find(|e| e.id == Some(id)) else {
        return Err(CliError::negative(
            format!("{what} id {id}"),
            "no such object",
        ));
    };
    let semaphores = if kind == Kind::Sem {
        Some(semaphore_rows(id).map_err(|e| sysv_error(what, SysvTarget::Id(id), &e))?)
    } else {
        None
    };
    if args.json {
        let mut v = entry_json(entry);
        if let (Some(obj), Some(rows)) = (v.as_object_mut(), &semaphores) {
            let rows: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({"semnum": r[0], "value": r[1], "ncount": r[2], "zcount": r[3], "pid": r[4]})
                })
                .collect();
            obj.insert("semaphores_detail".into(), rows.into());
        }
        output::print_json(&v)?;
        return Ok(EXIT_OK);
    }
    let header = output::TableStyle {
        columns: Vec::new(),
        ..style.clone()
    };
    let mut fields = Table::new(&["field", "value"]);
    if let Some(map) = entry_json(entry).as_object() {
        for (k, v) in map {
            if !v.is_null() {
                fields.push(vec![
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                ]);
            }
        }
    }
    header.print(&fields, what)?;
    if let Some(rows) = semaphores {
        output::println("")?;
        let mut table =
            Table::new(&["semnum", "value", "ncount", "zcount", "pid"]).right(&[0, 1, 2, 3, 4]);
        for r in rows {
            table.push(r.iter().map(ToString::to_string).collect());
        }
        style.print(&table, "semaphores")?;
    }
    Ok(EXIT_OK)
}

/// semnum, value, ncount, zcount and last pid of each semaphore in set `id`.
fn semaphore_rows(id: i32) -> io::Result<Vec<[u32; 5]>> {
    let set = SemSet::from_id(id);
    let values = set.values()?;
    let mut rows = Vec::with_capacity(values.len());
    for (i, value) in (0u16..).zip(values) {
        rows.push([
            u32::from(i),
            u32::from(value),
            set.waiting(i)?,
            set.zero_waiting(i)?,
            set.last_pid(i)?,
        ]);
    }
    Ok(rows)
}

fn entry_json(e: &Entry) -> serde_json::Value {
    json!({
        "kind": e.kind.as_str(),
        "family": e.family.as_str(),
        "key": e.key.map(|k| k.to_string()),
        "id": e.id,
        "name": e.name,
        "owner": list::user_name(e.uid),
        "uid": e.uid,
        "perms": format!("{:o}", e.mode),
        "bytes": e.bytes,
        "messages": e.messages,
        "semaphores": e.semaphores,
        "attaches": e.attaches,
        "cpid": e.cpid,
        "lpid": e.lpid,
    })
}

fn rm(args: &RmArgs, globals: Globals) -> CliResult {
    let explicit: Vec<Kind> = [
        (args.kinds.queues, Kind::Queue),
        (args.kinds.shmems, Kind::Shm),
        (args.kinds.semaphores, Kind::Sem),
    ]
    .into_iter()
    .filter_map(|(on, k)| on.then_some(k))
    .collect();
    let mut jobs: Vec<RmTarget> = Vec::new();
    if args.all {
        let kinds = args.kinds.kinds();
        let listing =
            list::list(&kinds, &[Family::SysV]).map_err(|e| CliError::io("/proc/sysvipc", &e))?;
        jobs.extend(listing.entries.iter().filter_map(|e| {
            e.id.map(|id| RmTarget::Sysv(Some(e.kind), SysvTarget::Id(id)))
        }));
    }
    for text in &args.targets {
        jobs.push(RmTarget::parse(text)?);
    }
    jobs.extend(
        args.id
            .iter()
            .map(|&id| RmTarget::Sysv(None, SysvTarget::Id(id))),
    );
    jobs.extend(
        args.key
            .iter()
            .map(|&k| RmTarget::Sysv(None, SysvTarget::Key(k))),
    );
    if jobs.is_empty() && !args.all {
        return Err(CliError::new(
            "ipc rm",
            "give a NAME, --id, --key or -a (ipcrm's -q ID is -Q --id ID here: -q is --quiet)",
        ));
    }
    // Every object is tried; each failure is reported, and the status is
    // the worst one (1 for a missing object, 2 for an error).
    let mut status = EXIT_OK;
    for job in jobs {
        let result = match job {
            RmTarget::Posix(name) => rm_posix(&name, &explicit, globals),
            RmTarget::Sysv(Some(kind), target) => rm_sysv(kind, target, globals),
            RmTarget::Sysv(None, target) => match explicit[..] {
                [kind] => rm_sysv(kind, target, globals),
                _ => Err(CliError::new(
                    target.to_string(),
                    "say which kind with exactly one of -Q (queue), -m (shared memory), \
                     -s (semaphores)",
                )),
            },
        };
        if let Err(e) = result {
            if e.broken_pipe {
                return Err(e);
            }
            warn(&e);
            status = status.max(e.code);
        }
    }
    Ok(status)
}

/// One object `ipc rm` was asked to remove.
enum RmTarget {
    /// A POSIX name.
    Posix(String),
    /// A System V object, of a kind known already (from `-a`) or to be
    /// given with -Q, -m or -s.
    Sysv(Option<Kind>, SysvTarget),
}

impl RmTarget {
    /// `/name`, `id:N` or a key; a bare number is refused with the ipcrm
    /// form it probably meant.
    fn parse(text: &str) -> CliResult<Self> {
        if text.starts_with('/') {
            return Ok(RmTarget::Posix(text.to_owned()));
        }
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CliError::new(
                "ipc rm",
                format!(
                    "'{text}' is not a POSIX name (/name); for a System V id write \
                     memio ipc rm -Q --id {text} (or -m, -s): ipcrm's -q is -Q --id here, \
                     -q is --quiet"
                ),
            ));
        }
        match text.parse::<SysvTarget>() {
            Ok(t) => Ok(RmTarget::Sysv(None, t)),
            Err(why) => Err(CliError::new(
                text,
                format!("not a POSIX name (/name), id:N or a key: {why}"),
            )),
        }
    }
}

/// The words for a POSIX kind in messages.
fn posix_what(kind: Kind) -> &'static str {
    match kind {
        Kind::Queue => "POSIX message queue",
        Kind::Shm => "POSIX shared memory",
        Kind::Sem => "POSIX semaphore",
    }
}

/// Whether a POSIX object of `kind` named `name` exists (the mqueue file
/// system need not be mounted: a queue is asked for by opening it).
fn posix_exists(kind: Kind, name: &str) -> bool {
    let base = name.trim_start_matches('/');
    match kind {
        Kind::Shm => std::path::Path::new(list::SHM_DIR).join(base).exists(),
        Kind::Sem => std::path::Path::new(list::SHM_DIR)
            .join(format!("sem.{base}"))
            .exists(),
        Kind::Queue => match memio::ipc::mq::posix::MqOptions::new()
            .read_only()
            .open(name, Create::Open)
        {
            Ok(_) => true,
            Err(memio::ipc::Error::Io(e)) => e.kind() != io::ErrorKind::NotFound,
            Err(_) => false,
        },
    }
}

/// Removes the POSIX object `name` of the kind asked; with no kind, the one
/// object of that name, refusing when several kinds share it.
fn rm_posix(name: &str, explicit: &[Kind], globals: Globals) -> CliResult<()> {
    let kinds: Vec<Kind> = if explicit.is_empty() {
        let found: Vec<Kind> = [Kind::Queue, Kind::Shm, Kind::Sem]
            .into_iter()
            .filter(|&k| posix_exists(k, name))
            .collect();
        match found[..] {
            [] => {
                return Err(CliError::negative(
                    format!("POSIX IPC object '{name}'"),
                    "no such object",
                ));
            }
            [_] => found,
            _ => {
                let list: Vec<&str> = found.iter().map(|&k| posix_what(k)).collect();
                return Err(CliError::new(
                    format!("'{name}'"),
                    format!(
                        "several objects have this name ({}): say which with -Q, -m or -s",
                        list.join(", ")
                    ),
                ));
            }
        }
    } else {
        explicit.to_vec()
    };
    for kind in kinds {
        let r: Result<(), memio::ipc::Error> = match kind {
            Kind::Queue => PosixMq::unlink(name),
            Kind::Shm => memio::ipc::shm::posix::unlink(name),
            Kind::Sem => NamedSem::unlink(name),
        };
        match r {
            Ok(()) => {
                if globals.verbose > 0 {
                    warn(format_args!("note: removed {} '{name}'", posix_what(kind)));
                }
            }
            Err(memio::ipc::Error::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CliError::negative(
                    format!("{} '{name}'", posix_what(kind)),
                    "no such object",
                ));
            }
            Err(e) => return Err(lib_error(e)),
        }
    }
    Ok(())
}

/// Removes one System V object of `kind`.
fn rm_sysv(kind: Kind, target: SysvTarget, globals: Globals) -> CliResult<()> {
    let (what, result) = match kind {
        Kind::Queue => ("message queue", target.queue().and_then(SysvMq::remove)),
        Kind::Shm => (
            "shared memory segment",
            target.shm().and_then(SysvShm::remove),
        ),
        Kind::Sem => ("semaphore set", target.sem_set(0).and_then(SemSet::remove)),
    };
    result.map_err(|e| sysv_error(what, target, &e))?;
    if globals.verbose > 0 {
        warn(format_args!("note: removed {what} {target}"));
    }
    Ok(())
}

/// A System V object named on the command line: by key or by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SysvTarget {
    /// A key (`0x41001234`, decimal, or `private` when creating).
    Key(Key),
    /// An id (`id:3`).
    Id(i32),
}

impl std::fmt::Display for SysvTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SysvTarget::Key(k) if k.is_private() => f.write_str("private"),
            SysvTarget::Key(k) => write!(f, "key {k}"),
            SysvTarget::Id(id) => write!(f, "id {id}"),
        }
    }
}

impl FromStr for SysvTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(id) = s.strip_prefix("id:") {
            return id
                .parse()
                .map(SysvTarget::Id)
                .map_err(|_| format!("invalid id '{id}': expected a number"));
        }
        Key::from_str(s)
            .map(SysvTarget::Key)
            .map_err(|e| format!("{e}, or id:N for an id"))
    }
}

impl SysvTarget {
    /// Parses a command-line target with a usage error naming it.
    pub(crate) fn parse(s: &str) -> CliResult<Self> {
        s.parse().map_err(|why: String| CliError::new(s, why))
    }

    /// The existing queue.
    pub(crate) fn queue(self) -> io::Result<SysvMq> {
        match self {
            SysvTarget::Id(id) => Ok(SysvMq::from_id(id)),
            SysvTarget::Key(key) => SysvMq::get(key, Create::Open),
        }
    }

    /// The existing segment.
    pub(crate) fn shm(self) -> io::Result<SysvShm> {
        match self {
            SysvTarget::Id(id) => Ok(SysvShm::from_id(id)),
            SysvTarget::Key(key) => SysvShm::get(key, 0, Create::Open),
        }
    }

    /// The existing semaphore set (with at least `count` semaphores).
    pub(crate) fn sem_set(self, count: u16) -> io::Result<SemSet> {
        match self {
            SysvTarget::Id(id) => Ok(SemSet::from_id(id)),
            SysvTarget::Key(key) => SemSet::get(key, count, Create::Open),
        }
    }
}

fn parse_key(s: &str) -> Result<Key, String> {
    s.parse()
}

/// An error from a System V call about the `what` named by `target`: a key
/// or id that does not exist reads as a negative result (exit 1).
pub(crate) fn sysv_error(what: &str, target: SysvTarget, err: &io::Error) -> CliError {
    const ENOENT: i32 = 2;
    const EINVAL: i32 = 22;
    const EIDRM: i32 = 43;
    match (memio::ipc::raw_errno(err), target) {
        (Some(ENOENT), _) | (Some(EINVAL | EIDRM), SysvTarget::Id(_)) => {
            CliError::negative(format!("{what} {target}"), "no such object")
        }
        (None, SysvTarget::Key(k)) if k.is_private() => CliError::new(
            format!("{what} {target}"),
            "`private` only creates a new object; name an existing one by its key or id:N",
        ),
        _ => CliError::os(err),
    }
}

/// An error from the library: its message already names the object, so it
/// is printed as is; "not found" is a negative result (exit 1).
pub(crate) fn lib_error(err: memio::ipc::Error) -> CliError {
    let not_found = matches!(&err, memio::ipc::Error::Io(e) if e.kind() == io::ErrorKind::NotFound);
    let e = match err {
        memio::ipc::Error::Io(io) => CliError::os(&io),
        other => CliError::new("", other),
    };
    if not_found {
        e.with_code(EXIT_NEGATIVE)
    } else {
        e
    }
}

/// The bytes given as an argument, or stdin read to its end. Stdin is read
/// at most `limit` bytes deep: more than `object` can take is refused with
/// its limit rather than held in memory (`memio mq send /q < /dev/zero`
/// ends at once).
pub(crate) fn bytes_or_stdin(
    arg: Option<&String>,
    limit: usize,
    object: &str,
) -> CliResult<Vec<u8>> {
    if let Some(text) = arg {
        return Ok(text.clone().into_bytes());
    }
    read_bounded(io::stdin().lock(), limit, object)
}

/// Reads `input` to its end, refusing more than `limit` bytes with an error
/// that names `object` and its limit.
pub(crate) fn read_bounded(input: impl io::Read, limit: usize, object: &str) -> CliResult<Vec<u8>> {
    let mut buf = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    io::Read::read_to_end(&mut input.take(cap), &mut buf).map_err(|e| CliError::io("stdin", &e))?;
    if buf.len() > limit {
        return Err(CliError::new(
            "stdin",
            format!("more than {limit} bytes, the most {object}"),
        ));
    }
    Ok(buf)
}

/// Parses `500ms`, `2s`, `1.5` (seconds) or `1m`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .and_then(|v| Duration::try_from_secs_f64(v * scale).ok())
        .ok_or_else(|| format!("invalid duration '{s}': expected e.g. 500ms, 2s, 1.5 or 1m"))
}

/// Parses an octal mode such as `600` or `0o640`.
pub(crate) fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim().trim_start_matches("0o");
    u32::from_str_radix(t, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("invalid mode '{s}': expected octal permission bits such as 600"))
}

/// The `Create` a command's `--open-or-create` flag asks for.
pub(crate) fn create_mode(open_or_create: bool) -> Create {
    if open_or_create {
        Create::OpenOrCreate
    } else {
        Create::Exclusive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_durations_and_modes_parse() {
        assert_eq!("id:7".parse::<SysvTarget>().unwrap(), SysvTarget::Id(7));
        assert_eq!(
            "0x10".parse::<SysvTarget>().unwrap(),
            SysvTarget::Key(Key::from_raw(16))
        );
        assert!("id:x".parse::<SysvTarget>().is_err());
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_mode("640").unwrap(), 0o640);
        assert!(parse_mode("999").is_err());
    }
}
