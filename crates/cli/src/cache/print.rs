//! Rows printed as they come: a table with fixed columns for people (so the
//! first row shows before the walk ends), or JSON written as it goes —
//! pretty, or one compact line per report under `--watch`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use memio::map::cache::{CacheStat, PageMap};
use serde_json::{Value, json};

use crate::error::CliResult;
use crate::output::{Named, stdout};
use crate::size::human_bytes;

/// What one file's row shows.
pub(super) struct Row {
    /// The state after the command's action.
    pub(super) stat: CacheStat,
    /// The state before an eviction, to say what the kernel did.
    pub(super) before: Option<CacheStat>,
    /// The per-page map (`-v`).
    pub(super) map: Option<PageMap>,
}

/// The totals line.
#[derive(Debug, Default)]
pub(super) struct Totals {
    pub(super) files: u64,
    pub(super) size: u64,
    pub(super) pages: u64,
    pub(super) cached: u64,
    pub(super) cached_bytes: u64,
    /// `None` once a file's dirty count is unknown (mincore).
    pub(super) dirty: Option<u64>,
    pub(super) evicted: Option<u64>,
    pub(super) skipped: u64,
    pub(super) untrusted: u64,
}

impl Totals {
    pub(super) fn new() -> Self {
        Self {
            dirty: Some(0),
            ..Self::default()
        }
    }

    pub(super) fn add(&mut self, row: &Row) {
        let s = &row.stat;
        self.files += 1;
        self.size += s.size;
        self.pages += s.pages;
        self.cached += s.cached;
        self.cached_bytes += s.cached_bytes();
        self.dirty = self.dirty.zip(s.dirty).map(|(a, b)| a + b);
        if let Some(gone) = evicted(row) {
            self.evicted = Some(self.evicted.unwrap_or(0) + gone);
        }
        self.untrusted += u64::from(!s.trusted);
    }
}

/// Pages an eviction removed, when both measurements can be trusted.
pub(super) fn evicted(row: &Row) -> Option<u64> {
    let before = row.before?;
    (before.trusted && row.stat.trusted).then(|| before.cached.saturating_sub(row.stat.cached))
}

/// How the report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// Aligned columns.
    Table { headers: bool },
    /// Pretty JSON, one file per line inside `files`.
    Json,
    /// The whole report as one compact JSON line (`--watch --json`).
    JsonLine,
}

/// Column widths of the table: wide enough for most values, so rows line
/// up without waiting for the widest one.
const WIDTHS: [usize; 5] = [10, 17, 10, 7, 6];
const HEADERS: [&str; 6] = ["RES", "PAGES", "SIZE", "PERCENT", "DIRTY", "FILE"];

/// Writes a report row by row.
pub(super) struct Printer {
    out: Named<std::io::StdoutLock<'static>>,
    style: Style,
    rows: u64,
}

impl Printer {
    /// Starts a report: the table's header or JSON's opening.
    pub(super) fn start(style: Style) -> CliResult<Self> {
        let mut p = Self {
            out: stdout(),
            style,
            rows: 0,
        };
        let page = memio::map::page_size();
        match style {
            Style::Table { headers: true } => {
                let cells = HEADERS.map(str::to_owned);
                p.line(&cells)?;
            }
            Style::Table { headers: false } => {}
            Style::Json => write!(p.out, "{{\n  \"page_size\": {page},\n  \"files\": [")?,
            Style::JsonLine => write!(p.out, "{{\"page_size\":{page},\"files\":[")?,
        }
        Ok(p)
    }

    /// One table line: numbers right-aligned in their fixed width, the
    /// file name last and unpadded.
    fn line(&mut self, cells: &[String; 6]) -> CliResult<()> {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(WIDTHS) {
            let _ = write!(text, "{cell:>width$}  ");
        }
        text.push_str(&cells[5]);
        writeln!(self.out, "{}", text.trim_end())?;
        Ok(())
    }

    /// One file.
    pub(super) fn row(&mut self, path: &Path, row: &Row) -> CliResult<()> {
        self.rows += 1;
        let s = &row.stat;
        match self.style {
            Style::Table { .. } => {
                let mark = if s.trusted { "" } else { "?" };
                self.line(&[
                    human_bytes(s.cached_bytes()),
                    format!("{}/{}", s.cached, s.pages),
                    human_bytes(s.size),
                    format!("{}{mark}", percent_text(s.cached, s.pages)),
                    dash(s.dirty),
                    path.display().to_string(),
                ])?;
                if let Some(map) = &row.map {
                    let mark = if map.trusted { "" } else { " ?" };
                    writeln!(
                        self.out,
                        "  [{}] {}/{}{mark}",
                        map.bar(),
                        map.buckets.iter().map(|b| b.0).sum::<u64>(),
                        map.pages
                    )?;
                }
                // Rows reach a pipe as they come, not when a buffer fills.
                self.out.flush()?;
            }
            Style::Json | Style::JsonLine => {
                let mut v = json!({
                    "path": path.to_string_lossy(),
                    "size": s.size,
                    "pages": s.pages,
                    "cached_pages": s.cached,
                    "cached_bytes": s.cached_bytes(),
                    "percent": s.percent(),
                    "dirty_pages": s.dirty,
                    "writeback_pages": s.writeback,
                    "evicted_pages": s.evicted,
                    "recently_evicted_pages": s.recently_evicted,
                    "method": s.method,
                    "trusted": s.trusted,
                });
                if let Some(before) = &row.before {
                    v["before"] = json!({
                        "cached_pages": before.cached,
                        "trusted": before.trusted,
                    });
                    v["pages_evicted_now"] = json!(evicted(row));
                }
                if let Some(map) = &row.map {
                    v["page_map"] = json!({
                        "bar": map.bar(),
                        "buckets": map.buckets,
                        "trusted": map.trusted,
                    });
                }
                self.item(&v)?;
            }
        }
        Ok(())
    }

    fn item(&mut self, v: &Value) -> CliResult<()> {
        let text = serde_json::to_string(v).map_err(std::io::Error::from)?;
        let sep = if self.rows == 1 { "" } else { "," };
        if self.style == Style::Json {
            write!(self.out, "{sep}\n    {text}")?;
        } else {
            write!(self.out, "{sep}{text}")?;
        }
        Ok(())
    }

    /// Ends the report with the totals (a table shows them for more than
    /// one file).
    pub(super) fn finish(mut self, t: &Totals) -> CliResult<()> {
        match self.style {
            Style::Table { .. } => {
                if t.files > 1 || t.skipped > 0 {
                    let skipped = if t.skipped > 0 {
                        format!(", {} skipped", t.skipped)
                    } else {
                        String::new()
                    };
                    self.line(&[
                        human_bytes(t.cached_bytes),
                        format!("{}/{}", t.cached, t.pages),
                        human_bytes(t.size),
                        percent_text(t.cached, t.pages),
                        dash(t.dirty),
                        format!("total ({} files{skipped})", t.files),
                    ])?;
                }
            }
            Style::Json | Style::JsonLine => {
                let percent = (t.pages > 0).then(|| t.cached as f64 * 100.0 / t.pages as f64);
                let total = json!({
                    "files": t.files,
                    "skipped": t.skipped,
                    "size": t.size,
                    "pages": t.pages,
                    "cached_pages": t.cached,
                    "cached_bytes": t.cached_bytes,
                    "percent": percent,
                    "dirty_pages": t.dirty,
                    "pages_evicted_now": t.evicted,
                });
                if self.style == Style::Json {
                    let text = serde_json::to_string_pretty(&total)
                        .map_err(std::io::Error::from)?
                        .replace('\n', "\n  ");
                    let open = if self.rows > 0 { "\n  " } else { "" };
                    write!(self.out, "{open}],\n  \"total\": {text}\n}}\n")?;
                } else {
                    writeln!(self.out, "],\"total\":{total}}}")?;
                }
            }
        }
        self.out.flush()?;
        Ok(())
    }
}

fn dash(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// `42%`, rounded to the nearest percent, except that only a fully cached
/// file shows 100% and only an uncached one 0%; `-` for an empty file,
/// which has no pages.
pub(super) fn percent_text(cached: u64, pages: u64) -> String {
    if pages == 0 {
        return "-".to_owned();
    }
    let cached = cached.min(pages);
    let rounded = (u128::from(cached) * 200 + u128::from(pages)) / (u128::from(pages) * 2);
    let p = if cached == pages {
        100
    } else if cached == 0 {
        0
    } else {
        rounded.clamp(1, 99)
    };
    format!("{p}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_but_keep_0_and_100_exact() {
        assert_eq!(percent_text(2, 3), "67%");
        assert_eq!(percent_text(1, 3), "33%");
        assert_eq!(percent_text(1, 2), "50%");
        assert_eq!(percent_text(995, 1000), "99%");
        assert_eq!(percent_text(1, 1000), "1%");
        assert_eq!(percent_text(0, 1000), "0%");
        assert_eq!(percent_text(1000, 1000), "100%");
        assert_eq!(percent_text(0, 0), "-");
    }
}
