//! `memio maps [PID]`: a process's memory layout the way `pmap -x` shows it,
//! with a KIND column and a per-kind summary; `--system` for the machine's
//! memory facts.

use std::io;

use clap::Args;
use memio::map::layout::{Layout, Mapping};
use memio::map::system::SystemFacts;
use serde_json::json;

use crate::error::{CliError, CliResult, EXIT_OK};
use crate::output::{self, Globals, Table};
use crate::size::human_bytes;

/// Show a process's mappings (text, data, heap, stack, libraries, files,
/// anonymous and shared memory) with sizes, RSS, PSS and swap.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools, reason = "command-line flags")]
#[command(
    after_help = "Without PID, shows memio's own layout. Sizes are exact bytes in --json.\n\
                  Exit status: 1 when the process does not exist."
)]
pub(crate) struct MapsArgs {
    /// The process to inspect (default: this one).
    #[arg(value_name = "PID", conflicts_with = "system")]
    pid: Option<u32>,
    /// Print JSON instead of tables.
    #[arg(short = 'J', long)]
    json: bool,
    /// Show the system's memory facts (page sizes, overcommit, limits)
    /// instead of a process.
    #[arg(long)]
    system: bool,
    /// Leave out the per-kind summary.
    #[arg(long)]
    no_summary: bool,
    /// Leave out the header lines.
    #[arg(short = 'n', long)]
    noheadings: bool,
}

/// Runs `memio maps`.
pub(crate) fn run(args: &MapsArgs, globals: Globals) -> CliResult {
    if args.system {
        return system(args);
    }
    let pid = args.pid.unwrap_or_else(std::process::id);
    let layout = Layout::of(pid).map_err(|e| {
        let object = format!("pid {pid}");
        match e.kind() {
            io::ErrorKind::NotFound => CliError::negative(object, "no such process"),
            _ => CliError::io(object, &e),
        }
    })?;
    if args.json {
        output::print_json(&json!({
            "pid": layout.pid,
            "exe": layout.exe,
            "detailed": layout.detailed,
            "mappings": layout.mappings,
            "summary": layout.summary(),
        }))?;
        return Ok(EXIT_OK);
    }
    let dash = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), human_bytes);
    let mut table = Table::new(&[
        "address", "size", "rss", "pss", "swap", "mode", "kind", "mapping",
    ])
    .right(&[1, 2, 3, 4]);
    for m in &layout.mappings {
        table.push(vec![
            format!("{:016x}", m.start),
            human_bytes(m.size),
            dash(m.rss),
            dash(m.pss),
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
        dash(total(|m| m.swap)),
        String::new(),
        String::new(),
        format!("{} mappings", layout.mappings.len()),
    ]);
    if !globals.quiet && !args.noheadings {
        let exe = layout.exe.as_deref().unwrap_or("?");
        output::println(format!("{pid}: {exe}"))?;
    }
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
    if !layout.detailed && !globals.quiet {
        crate::output::warn(format_args!(
            "pid {pid}: smaps is unreadable, so RSS, PSS and swap are unknown"
        ));
    }
    Ok(EXIT_OK)
}

/// The mapping's name as pmap prints it: the path, a pseudo-name, or
/// `[anon]`.
fn name(m: &Mapping) -> String {
    m.path.clone().unwrap_or_else(|| "[anon]".to_owned())
}

fn system(args: &MapsArgs) -> CliResult {
    let facts = SystemFacts::read().map_err(|e| CliError::io("system", &e))?;
    if args.json {
        output::print_json(&facts)?;
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
