//! The lab's report: its JSON shape and its terminal tables.
//!
//! The shape of `report.json` is documented in README.md ("The lab
//! report"); `schema` changes when a field is renamed or removed.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::compare::{Comparison, Old};
use crate::machine::Machine;
use crate::measure::Row;
use crate::{Chart, Config, Error, HeavyPeer, Result, heavy_peers};

/// Identifies the shape of `report.json`.
pub const SCHEMA: &str = "memio-lab/1";

/// Everything one lab run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The version of memio-lab that measured.
    pub memio_version: &'static str,
    /// UTC, RFC 3339.
    pub date: String,
    /// `quick` or `full`.
    pub mode: &'static str,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// The machine and its limits.
    pub machine: Machine,
    /// Machine limits measured during the run (`memcpy_gbps`), quoted by
    /// sections as the ceiling their mechanisms work under.
    pub limits: BTreeMap<String, f64>,
    /// The heavy peers this build knows, and whether each was built in.
    pub peers: Vec<HeavyPeer>,
    /// The sections, in the order they ran.
    pub sections: Vec<SectionReport>,
    /// The ratio of each row to an earlier report (`--compare`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
}

impl Report {
    /// A report of `sections`, measured with `config` in `took`.
    #[must_use]
    pub fn new(
        config: &Config,
        limits: BTreeMap<String, f64>,
        sections: Vec<SectionReport>,
        took: Duration,
    ) -> Self {
        Self {
            schema: SCHEMA,
            memio_version: env!("CARGO_PKG_VERSION"),
            date: rfc3339(SystemTime::now()),
            mode: config.mode(),
            seconds: took.as_secs_f64(),
            machine: Machine::read(),
            limits,
            peers: heavy_peers().to_vec(),
            sections,
            comparison: None,
        }
    }

    /// Writes `report.json` and `index.html` into `dir`; returns their paths.
    ///
    /// # Errors
    ///
    /// A file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf)> {
        let json_path = dir.join("report.json");
        let html_path = dir.join("index.html");
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::new("report.json", e))?;
        std::fs::write(&json_path, json + "\n").map_err(|e| Error::io(json_path.display(), &e))?;
        std::fs::write(&html_path, crate::html::render(self))
            .map_err(|e| Error::io(html_path.display(), &e))?;
        Ok((json_path, html_path))
    }
}

/// One section's results.
#[derive(Debug, Serialize)]
pub struct SectionReport {
    /// Short name (`--only`).
    pub name: &'static str,
    /// Heading.
    pub title: &'static str,
    /// What is measured and which question it answers.
    pub about: &'static str,
    /// The mechanism the ratios are taken against.
    pub reference: &'static str,
    /// How the report draws it.
    pub chart: Chart,
    /// Wall time of the section.
    pub seconds: f64,
    /// Two or three lines that answer the section's question, computed
    /// from this run's rows.
    pub verdict: Vec<String>,
    /// Further findings and caveats.
    pub notes: Vec<String>,
    /// Why the section stopped early, if it did; its rows so far are kept.
    pub error: Option<String>,
    /// What was measured, in the order it was.
    pub rows: Vec<Row>,
}

/// Formats a figure with about three significant digits.
#[must_use]
pub fn figure(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        "-".to_owned()
    } else if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 10.0 {
        format!("{x:.2}")
    } else if a >= 0.01 || a == 0.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}

/// Formats a ratio to the reference: `ref` for the reference row itself.
#[must_use]
pub fn ratio(row: &Row) -> String {
    match (row.reference, row.ratio) {
        (true, _) => "ref".to_owned(),
        (false, Some(r)) if r >= 10.0 => format!("{r:.0}x"),
        (false, Some(r)) => format!("{r:.2}x"),
        (false, None) => "-".to_owned(),
    }
}

/// Writes a section as a terminal table with its verdict and notes; with
/// `old`, a last column gives each row's ratio to the earlier report.
///
/// # Errors
///
/// Writing to `out` failed.
pub fn write_table(out: &mut dyn Write, s: &SectionReport, old: Option<&Old>) -> io::Result<()> {
    writeln!(out, "\n== {} — {} ==", s.name, s.title)?;
    let mut headers = vec![
        "MECHANISM",
        "WORKLOAD",
        "MEDIAN",
        "MIN",
        "MAX",
        "UNIT",
        "VS REF",
    ];
    if old.is_some() {
        headers.push("VS OLD");
    }
    let rows: Vec<Vec<String>> = s
        .rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.mechanism.clone(),
                r.workload.clone(),
                figure(r.median),
                figure(r.min),
                figure(r.max),
                r.unit.to_owned(),
                ratio(r),
            ];
            if let Some(old) = old {
                cells.push(
                    old.ratio(s.name, r)
                        .map_or_else(|| "new".to_owned(), change),
                );
            }
            cells
        })
        .collect();
    if !rows.is_empty() {
        write_columns(out, &headers, &rows, &[2, 3, 4, 6, 7])?;
    }
    writeln!(
        out,
        "reference: {} (for workloads it does not run: the first row); vs ref > 1 means better",
        s.reference
    )?;
    if let Some(old) = old {
        writeln!(
            out,
            "vs old: this run against {} ({}); > 1 means better now",
            old.file, old.date
        )?;
    }
    for line in &s.verdict {
        writeln!(out, "verdict: {line}")?;
    }
    for note in &s.notes {
        writeln!(out, "note: {note}")?;
    }
    if let Some(e) = &s.error {
        writeln!(out, "error: {e}")?;
    }
    Ok(())
}

/// A ratio to an earlier run: `1.25x`, `0.80x`.
#[must_use]
pub fn change(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}x")
    } else {
        format!("{r:.2}x")
    }
}

/// Aligned columns, the `right` ones right-aligned, the last never padded.
fn write_columns(
    out: &mut dyn Write,
    headers: &[&str],
    rows: &[Vec<String>],
    right: &[usize],
) -> io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let mut text = String::new();
        for (i, cell) in cells.enumerate().take(widths.len()) {
            let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
            if i > 0 {
                text.push_str("  ");
            }
            if right.contains(&i) {
                text.push_str(&pad);
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&pad);
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &mut headers.iter().copied())?;
    for row in rows {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// Formats a time as RFC 3339 in UTC, to the second.
#[must_use]
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_425_123);
        assert_eq!(rfc3339(t), "2026-11-23T09:12:03Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn figures_keep_three_digits() {
        assert_eq!(figure(16_623.4), "16623");
        assert_eq!(figure(123.45), "123.5");
        assert_eq!(figure(12.345), "12.35");
        assert_eq!(figure(1.2345), "1.234");
        assert_eq!(figure(0.000_123), "1.23e-4");
        assert_eq!(figure(f64::NAN), "-");
    }
}
