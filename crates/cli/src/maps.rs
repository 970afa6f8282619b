//! `memio maps [PID…]`: processes' memory layouts the way `pmap -x` shows
//! them, with a KIND column, a per-kind summary, the heap's start and the
//! program break, and the OOM score; `--system` for the machine's memory
//! facts and what overcommit means on it.

use std::io;
use std::time::Duration;

use clap::{Args, ValueEnum};
use memio::map::layout::{Kind, Layout, Mapping};
use memio::map::process::Process;
use memio::map::system::SystemFacts;
use serde_json::{Value, json};

use crate::error::{CliError, CliResult, EXIT_OK};
use crate::ipc::parse_duration;

/// The shortest --watch interval (as watch(1) has): a shorter one would
/// redraw as fast as the machine goes.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Parses a --watch interval: a duration of at least [`MIN_INTERVAL`].
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_INTERVAL {
        return Err(format!("interval '{s}' is too short: at least 100ms"));
    }
    Ok(d)
}
use crate::output::{self, Globals, Table};
use crate::size::human_bytes;

/// Show processes' mappings (text, data, heap, stack, libraries, files,
/// anonymous and shared memory) with sizes, RSS, PSS, dirty and swap.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools, reason = "command-line flags")]
#[command(
    after_help = "Without PID, shows memio's own layout (`self` names it too). Sizes are \
                  exact bytes in --json.\n\
                  Exit status: 1 when a process does not exist."
)]
pub(crate) struct MapsArgs {
    /// The processes to inspect: PIDs, or `self` (default: this one).
    #[arg(value_name = "PID", value_parser = parse_pid, conflicts_with = "system")]
    pids: Vec<u32>,
    /// Print JSON instead of tables.
    #[arg(short = 'J', long)]
    json: bool,
    /// Show the system's memory facts (page sizes, overcommit and what it
    /// means here, limits) instead of a process.
    #[arg(long)]
    system: bool,
    /// Order mappings by this column, largest first (default: address).
    #[arg(long, value_enum)]
    sort: Option<SortKey>,
    /// Only mappings of these kinds, e.g. heap,anonymous (repeatable).
    #[arg(long, value_parser = parse_kind, value_delimiter = ',', value_name = "KIND")]
    kind: Vec<Kind>,
    /// Also show glibc's malloc figures (mallinfo2); only memio's own
    /// process can be asked (`memio maps self --malloc`).
    #[arg(long)]
    malloc: bool,
    /// Show again every interval (e.g. 2, 500ms; at least 100ms) until
    /// interrupted; with --json, one compact JSON line per report.
    #[arg(short = 'w', long, value_name = "SECS", value_parser = parse_interval)]
    watch: Option<Duration>,
    /// Leave out the per-kind summary.
    #[arg(long)]
    no_summary: bool,
    /// Leave out the header lines.
    #[arg(short = 'n', long)]
    noheadings: bool,
}

/// A column `--sort` orders by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SortKey {
    /// Resident bytes.
    Rss,
    /// Proportional set size.
    Pss,
    /// Virtual size.
    Size,
    /// Dirty bytes.
    Dirty,
    /// Swapped bytes.
    Swap,
}

fn parse_pid(s: &str) -> Result<u32, String> {
    if s == "self" {
        return Ok(std::process::id());
    }
    s.parse::<u32>()
        .map_err(|_| format!("'{s}' is not a process id (a number, or `self`)"))
}

const KINDS: [Kind; 12] = [
    Kind::Text,
    Kind::Data,
    Kind::Bss,
    Kind::Heap,
    Kind::Stack,
    Kind::Vdso,
    Kind::SharedLib,
    Kind::File,
    Kind::Anonymous,
    Kind::PosixShm,
    Kind::SysvShm,
    Kind::Memfd,
];

fn parse_kind(s: &str) -> Result<Kind, String> {
    KINDS.into_iter().find(|k| k.name() == s).ok_or_else(|| {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
        format!("unknown kind '{s}' (kinds: {})", names.join(", "))
    })
}

/// Runs `memio maps`.
pub(crate) fn run(args: &MapsArgs, globals: Globals) -> CliResult {
    if args.system {
        return system(args);
    }
    let pids = if args.pids.is_empty() {
        vec![std::process::id()]
    } else {
        args.pids.clone()
    };
    if args.malloc && pids.iter().any(|&p| p != std::process::id()) {
        return Err(CliError::new(
            "--malloc",
            "glibc's malloc figures can be read only inside the process: only memio's own \
             (`memio maps self --malloc`)",
        ));
    }
    let Some(every) = args.watch else {
        return once(args, globals, &pids, args.json.then_some(false));
    };
    for tick in 0u64.. {
        if tick > 0 {
            std::thread::sleep(every);
            if !args.json {
                output::println("")?;
            }
        }
        once(args, globals, &pids, args.json.then_some(true))?;
    }
    // The watch ends by a signal or a closed stdout (an error above).
    Ok(EXIT_OK)
}

/// One report of every process; `json` is `Some(compact)` for JSON.
fn once(args: &MapsArgs, globals: Globals, pids: &[u32], json: Option<bool>) -> CliResult {
    let mut docs = Vec::new();
    let mut status = EXIT_OK;
    for (i, &pid) in pids.iter().enumerate() {
        let (process, layout) = match read(pid, args) {
            Ok(read) => read,
            // One process of several that cannot be shown is reported and
            // passed over, as pmap does.
            Err(e) if pids.len() > 1 => {
                output::warn(&e);
                status = status.max(e.code);
                continue;
            }
            Err(e) => return Err(e),
        };
        if json.is_some() {
            docs.push(document(&process, &layout, args.malloc));
            continue;
        }
        if i > 0 {
            output::println("")?;
        }
        print(args, globals, &process, &layout)?;
    }
    if let Some(compact) = json {
        let value = if pids.len() == 1 && docs.len() == 1 {
            docs.remove(0)
        } else {
            Value::Array(docs)
        };
        if compact {
            output::println(value)?;
        } else {
            output::print_json(&value)?;
        }
    }
    Ok(status)
}

/// The process's facts and its layout, filtered and sorted as asked.
fn read(pid: u32, args: &MapsArgs) -> CliResult<(Process, Layout)> {
    let object = format!("pid {pid}");
    let not_found = |e: &io::Error| match e.kind() {
        io::ErrorKind::NotFound => CliError::negative(&object, "no such process"),
        _ => CliError::io(&object, e),
    };
    let process = Process::of(pid).map_err(|e| not_found(&e))?;
    let mut layout = Layout::of(pid).map_err(|e| not_found(&e))?;
    if !args.kind.is_empty() {
        layout.mappings.retain(|m| args.kind.contains(&m.kind));
    }
    if let Some(key) = args.sort {
        let value = |m: &Mapping| match key {
            SortKey::Rss => m.rss.unwrap_or(0),
            SortKey::Pss => m.pss.unwrap_or(0),
            SortKey::Size => m.size,
            SortKey::Dirty => m.dirty.unwrap_or(0),
            SortKey::Swap => m.swap.unwrap_or(0),
        };
        layout.mappings.sort_by_key(|m| std::cmp::Reverse(value(m)));
    }
    Ok((process, layout))
}

fn document(process: &Process, layout: &Layout, malloc: bool) -> Value {
    let mut v = json!({
        "pid": layout.pid,
        "exe": layout.exe,
        "process": process,
        "heap_size": process.heap_size(),
        "detailed": layout.detailed,
        "mappings": layout.mappings,
        "summary": layout.summary(),
    });
    if malloc {
        v["malloc"] = malloc_json();
    }
    v
}

fn malloc_json() -> Value {
    let m = memio::alloc::sys::mallinfo2();
    json!({
        "arena": m.arena,
        "ordblks": m.ordblks,
        "smblks": m.smblks,
        "hblks": m.hblks,
        "hblkhd": m.hblkhd,
        "fsmblks": m.fsmblks,
        "uordblks": m.uordblks,
        "fordblks": m.fordblks,
        "keepcost": m.keepcost,
    })
}

fn dash(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), human_bytes)
}

fn print(args: &MapsArgs, globals: Globals, process: &Process, layout: &Layout) -> CliResult<()> {
    let pid = process.pid;
    if !globals.quiet && !args.noheadings {
        output::println(format!("{pid}:   {}", process.command()))?;
        output::println(facts_line(process))?;
    }
    if process.kernel_thread {
        if !globals.quiet {
            output::warn(format_args!(
                "pid {pid}: a kernel thread: it has no user address space to show"
            ));
        }
        return Ok(());
    }
    let mut table = Table::new(&[
        "address", "size", "rss", "pss", "dirty", "swap", "mode", "kind", "mapping",
    ])
    .right(&[1, 2, 3, 4, 5]);
    for m in &layout.mappings {
        table.push(vec![
            format!("{:016x}", m.start),
            human_bytes(m.size),
            dash(m.rss),
            dash(m.pss),
            dash(m.dirty),
            dash(m.swap),
            m.perms.clone(),
            m.kind.to_string(),
            name(m),
        ]);
    }
    let total = |f: fn(&Mapping) -> Option<u64>| -> Option<u64> {
        layout
            .detailed
            .then(|| layout.mappings.iter().filter_map(f).sum())
    };
    table.push(vec![
        "total".to_owned(),
        human_bytes(layout.mappings.iter().map(|m| m.size).sum()),
        dash(total(|m| m.rss)),
        dash(total(|m| m.pss)),
        dash(total(|m| m.dirty)),
        dash(total(|m| m.swap)),
        String::new(),
        String::new(),
        format!("{} mappings", layout.mappings.len()),
    ]);
    table.print(!args.noheadings)?;
    if !args.no_summary {
        let mut summary =
            Table::new(&["kind", "mappings", "size", "rss", "pss", "swap"]).right(&[1, 2, 3, 4, 5]);
        for s in layout.summary() {
            let opt = |v: u64| dash(layout.detailed.then_some(v));
            summary.push(vec![
                s.kind.to_string(),
                s.mappings.to_string(),
                human_bytes(s.size),
                opt(s.rss),
                opt(s.pss),
                opt(s.swap),
            ]);
        }
        output::println("")?;
        summary.print(!args.noheadings)?;
    }
    if args.malloc {
        output::println("")?;
        print_malloc(!args.noheadings)?;
    }
    if !layout.detailed && !globals.quiet {
        output::warn(format_args!(
            "pid {pid}: smaps is unreadable, so RSS, PSS, dirty and swap are unknown"
        ));
    }
    Ok(())
}

/// `heap 0x… to break 0x… (132 KiB)  oom_score 667 (adj 0)`.
fn facts_line(p: &Process) -> String {
    let heap = match (p.heap_start, p.brk) {
        (Some(start), Some(brk)) => format!(
            "heap {start:#x}, break {brk:#x} ({} grown by brk)",
            human_bytes(brk.saturating_sub(start))
        ),
        (Some(start), None) => format!("heap {start:#x}, break not moved yet"),
        (None, Some(brk)) => format!("heap start hidden, break {brk:#x}"),
        (None, None) if p.kernel_thread => "no heap".to_owned(),
        (None, None) => "heap start and break hidden or absent".to_owned(),
    };
    let score = |v: Option<i64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
    format!(
        "{heap}; oom_score {} (oom_score_adj {})",
        score(p.oom_score),
        score(p.oom_score_adj)
    )
}

fn print_malloc(headers: bool) -> CliResult<()> {
    let m = memio::alloc::sys::mallinfo2();
    let mut t = Table::new(&["malloc (mallinfo2)", "value", "meaning"]).right(&[1]);
    let mut row = |k: &str, v: usize, what: &str| {
        t.push(vec![k.to_owned(), human_bytes(v as u64), what.to_owned()]);
    };
    row("arena", m.arena, "heap obtained with brk and in arenas");
    row("uordblks", m.uordblks, "in use in those heaps");
    row("fordblks", m.fordblks, "free in those heaps");
    row(
        "keepcost",
        m.keepcost,
        "at the top, malloc_trim could return",
    );
    row(
        "hblkhd",
        m.hblkhd,
        "in blocks mapped alone (above the mmap threshold)",
    );
    row("fsmblks", m.fsmblks, "in free fastbin blocks");
    t.push(vec![
        "hblks".to_owned(),
        m.hblks.to_string(),
        "blocks mapped alone".to_owned(),
    ]);
    t.push(vec![
        "ordblks".to_owned(),
        m.ordblks.to_string(),
        "free chunks".to_owned(),
    ]);
    t.print(headers)
}

/// The mapping's name as pmap prints it: the path, a pseudo-name,
/// `[ shmid=0x… ]` for System V shared memory, or `[anon]`.
fn name(m: &Mapping) -> String {
    if m.kind == Kind::SysvShm {
        return format!("[ shmid={:#x} ]", m.inode);
    }
    m.path.clone().unwrap_or_else(|| "[anon]".to_owned())
}

fn system(args: &MapsArgs) -> CliResult {
    let facts = SystemFacts::read().map_err(|e| CliError::io("system", &e))?;
    if args.json {
        let mut v = serde_json::to_value(&facts).map_err(io::Error::from)?;
        v["overcommit_meaning"] = json!(facts.overcommit.meaning());
        v["overcommit_when_exceeded"] = json!(facts.overcommit.when_exceeded());
        v["commit_limit_rule"] = json!(facts.commit_limit_rule());
        v["commit_headroom"] = json!(facts.commit_headroom());
        output::print_json(&v)?;
        return Ok(EXIT_OK);
    }
    let opt = |v: Option<u64>, none: &str| v.map_or_else(|| none.to_owned(), bytes);
    let mut table = Table::new(&["fact", "value"]);
    let mut row = |k: &str, v: String| table.push(vec![k.to_owned(), v]);
    row("page size", bytes(facts.page_size));
    row("huge page size", opt(facts.huge_page_size, "none"));
    row(
        "huge pages (free/total)",
        format!("{}/{}", facts.huge_pages_free, facts.huge_pages_total),
    );
    row(
        "transparent huge pages",
        facts
            .transparent_huge_pages
            .clone()
            .unwrap_or_else(|| "unavailable".to_owned()),
    );
    row("overcommit mode", facts.overcommit.describe().to_owned());
    row("overcommit ratio", format!("{} %", facts.overcommit_ratio));
    if facts.overcommit_bytes > 0 {
        row("overcommit bytes", bytes(facts.overcommit_bytes));
    }
    row("MemTotal", bytes(facts.mem_total));
    row("MemAvailable", bytes(facts.mem_available));
    row("CommitLimit", bytes(facts.commit_limit));
    row("Committed_AS", bytes(facts.committed));
    row("SwapTotal", bytes(facts.swap_total));
    row("Mlocked", bytes(facts.mlocked));
    row("RLIMIT_MEMLOCK", opt(facts.memlock_limit, "unlimited"));
    table.print(!args.noheadings)?;
    let headroom = facts.commit_headroom();
    let left = if headroom >= 0 {
        format!(
            "{} more may be promised before Committed_AS reaches CommitLimit",
            human_bytes(u64::try_from(headroom).unwrap_or(u64::MAX))
        )
    } else {
        format!(
            "Committed_AS is already {} past CommitLimit",
            human_bytes(u64::try_from(-headroom).unwrap_or(u64::MAX))
        )
    };
    let mode = facts.overcommit;
    let enforced = if mode == memio::map::system::Overcommit::Never {
        "enforced in this mode"
    } else {
        "enforced only in mode 2; here it is a yardstick"
    };
    output::println("")?;
    output::println(format!(
        "Overcommit {}: {}.\n\
         CommitLimit = {} = {}, {enforced}; {left}.\n\
         When exceeded: {}.\n\
         Modes: 0 heuristic (the default), 1 always grant, 2 strict accounting; set with \
         sysctl vm.overcommit_memory, vm.overcommit_ratio or vm.overcommit_kbytes.",
        mode.describe(),
        mode.meaning(),
        facts.commit_limit_rule(),
        human_bytes(facts.commit_limit),
        mode.when_exceeded(),
    ))?;
    Ok(EXIT_OK)
}

/// `8.0 MiB (8388608)`: human and exact.
fn bytes(n: u64) -> String {
    if n < 1024 {
        human_bytes(n)
    } else {
        format!("{} ({n})", human_bytes(n))
    }
}
