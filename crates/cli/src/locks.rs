//! `memio locks`: the system's file locks, as util-linux lslocks lists them.

use std::collections::HashMap;

use clap::Args;
use std::path::PathBuf;

use memio::io::lock::table::{self, FileId, LockEntry, PathFinder};
use serde::Serialize;

use crate::error::{CliError, CliResult, EXIT_OK};
use crate::output::{self, Globals, Table};
use crate::size::human_bytes;

/// List the file locks held on this system (from /proc/locks).
#[derive(Debug, Args)]
#[command(after_help = "\
Columns: COMMAND and PID of the holder (OFD locks are owned by an open file; memio names a \
process that holds it, found through /proc/*/fdinfo, or shows -), TYPE (POSIX, OFDLCK, FLOCK, \
LEASE), SIZE of the file, MODE (READ or WRITE, with * while waiting), M (1 = mandatory), START \
and END byte offsets (END 0 = to the end of the file), PATH, and BLOCKER, the pid whose lock a \
waiter waits for.")]
#[allow(clippy::struct_excessive_bools, reason = "command-line flags")]
pub(crate) struct LocksArgs {
    /// Only locks held by (or waited for by) this process.
    #[arg(short, long, value_name = "PID")]
    pid: Option<u32>,
    /// Print JSON instead of a table.
    #[arg(short = 'J', long)]
    json: bool,
    /// Sizes in bytes rather than KiB/MiB.
    #[arg(short, long)]
    bytes: bool,
    /// Leave out the header line.
    #[arg(short, long)]
    noheadings: bool,
    /// Only these columns, in this order (comma-separated, as lslocks -o):
    /// command,pid,type,size,mode,m,start,end,path,blocker.
    #[arg(
        short = 'o',
        long = "output",
        value_delimiter = ',',
        value_name = "LIST"
    )]
    columns: Vec<String>,
    /// Raw output: columns one space apart, unaligned (lslocks -r).
    #[arg(short, long)]
    raw: bool,
}

/// What `--json` prints, in util-linux lslocks' shape.
#[derive(Debug, Serialize)]
struct Listing {
    locks: Vec<Row>,
}

/// One row as `--json` prints it.
#[derive(Debug, Serialize)]
struct Row {
    command: Option<String>,
    pid: Option<u32>,
    #[serde(rename = "type")]
    kind: String,
    size: Option<u64>,
    mode: String,
    m: bool,
    start: u64,
    end: u64,
    path: Option<String>,
    blocker: Option<u32>,
}

/// Runs `memio locks`.
pub(crate) fn run(args: &LocksArgs, _globals: Globals) -> CliResult {
    let entries = table::system_locks().map_err(|e| CliError::io("/proc/locks", &e))?;
    // A waiter's blocker is the holder of the lock with the same number.
    let holders: HashMap<u64, Option<u32>> = entries
        .iter()
        .filter(|e| !e.waiting)
        .map(|e| (e.id, e.pid))
        .collect();
    // Paths come from the holders' descriptors; a waiter (or an OFD lock
    // whose owner is hidden) shares its file with some lock that has one.
    let mut finder = PathFinder::new();
    let mut paths: HashMap<FileId, PathBuf> = HashMap::new();
    for e in &entries {
        if let Some(p) = e.pid.and_then(|pid| finder.path(pid, e.file)) {
            paths.entry(e.file).or_insert(p);
        }
    }
    let rows: Vec<Row> = entries
        .iter()
        .filter(|e| args.pid.is_none() || e.pid == args.pid)
        .map(|e| row(e, &holders, &paths))
        .collect();

    if args.json {
        output::print_json(&Listing { locks: rows })?;
        return Ok(EXIT_OK);
    }
    let mut t = Table::new(&[
        "command", "pid", "type", "size", "mode", "m", "start", "end", "path", "blocker",
    ])
    .right(&[1, 3, 5, 6, 7]);
    for r in rows {
        t.push(vec![
            r.command.unwrap_or_else(|| "-".into()),
            r.pid.map_or_else(|| "-".into(), |p| p.to_string()),
            r.kind,
            r.size.map_or_else(String::new, |s| {
                if args.bytes {
                    s.to_string()
                } else {
                    human_bytes(s)
                }
            }),
            r.mode,
            u8::from(r.m).to_string(),
            r.start.to_string(),
            r.end.to_string(),
            r.path.unwrap_or_default(),
            r.blocker.map_or_else(String::new, |p| p.to_string()),
        ]);
    }
    output::TableStyle {
        columns: args.columns.clone(),
        raw: args.raw,
        noheadings: args.noheadings,
    }
    .print(&t, "locks")?;
    Ok(EXIT_OK)
}

fn row(
    e: &LockEntry,
    holders: &HashMap<u64, Option<u32>>,
    paths: &HashMap<FileId, PathBuf>,
) -> Row {
    let path = paths.get(&e.file);
    let size = path
        .and_then(|p| std::fs::metadata(p).ok())
        .filter(|m| FileId::of(m) == e.file)
        .map(|m| m.len());
    let command = e.pid.and_then(|p| {
        std::fs::read_to_string(format!("/proc/{p}/comm"))
            .ok()
            .map(|c| c.trim_end().to_owned())
    });
    Row {
        command,
        pid: e.pid,
        kind: e.kind.clone(),
        size,
        mode: if e.waiting {
            format!("{}*", e.mode)
        } else {
            e.mode.clone()
        },
        m: e.mandatory,
        start: e.start,
        end: e.end.unwrap_or(0),
        path: Some(path.map_or_else(
            || format!("{:x}:{:x}:{}", e.file.major, e.file.minor, e.file.inode),
            |p| p.display().to_string(),
        )),
        blocker: if e.waiting {
            holders.get(&e.id).copied().flatten()
        } else {
            None
        },
    }
}
