//! The lab's report: its JSON shape and its terminal tables.
//!
//! The shape of `report.json` is documented in README.md ("The lab
//! report"); `schema` changes when a field is renamed or removed.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::machine::Machine;
use super::measure::Row;
use super::{Chart, Config};
use crate::output::Table;

/// Identifies the shape of `report.json`.
pub(crate) const SCHEMA: &str = "memio-lab/1";

/// Everything one lab run measured.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) schema: &'static str,
    pub(crate) memio_version: &'static str,
    /// UTC, RFC 3339.
    pub(crate) date: String,
    /// `quick` or `full`.
    pub(crate) mode: &'static str,
    /// Wall time of the whole run.
    pub(crate) seconds: f64,
    pub(crate) machine: Machine,
    /// Machine limits measured during the run (`memcpy_gbps`), quoted by
    /// sections as the ceiling their mechanisms work under.
    pub(crate) limits: BTreeMap<String, f64>,
    pub(crate) sections: Vec<SectionReport>,
}

impl Report {
    pub(crate) fn new(
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
            sections,
        }
    }
}

/// One section's results.
#[derive(Debug, Serialize)]
pub(crate) struct SectionReport {
    pub(crate) name: &'static str,
    pub(crate) title: &'static str,
    pub(crate) about: &'static str,
    /// The mechanism the ratios are taken against.
    pub(crate) reference: &'static str,
    pub(crate) chart: Chart,
    pub(crate) seconds: f64,
    pub(crate) notes: Vec<String>,
    /// Why the section stopped early, if it did; its rows so far are kept.
    pub(crate) error: Option<String>,
    pub(crate) rows: Vec<Row>,
}

/// Formats a figure with about three significant digits.
pub(crate) fn figure(x: f64) -> String {
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
pub(crate) fn ratio(row: &Row) -> String {
    match (row.reference, row.ratio) {
        (true, _) => "ref".to_owned(),
        (false, Some(r)) if r >= 10.0 => format!("{r:.0}x"),
        (false, Some(r)) => format!("{r:.2}x"),
        (false, None) => "-".to_owned(),
    }
}

/// Writes a section as a terminal table with its notes.
pub(crate) fn write_table(out: &mut dyn Write, s: &SectionReport) -> io::Result<()> {
    writeln!(out, "\n== {} — {} ==", s.name, s.title)?;
    let mut table = Table::new(&[
        "mechanism",
        "workload",
        "median",
        "min",
        "max",
        "unit",
        "vs ref",
    ])
    .right(&[2, 3, 4, 6]);
    for r in &s.rows {
        table.push(vec![
            r.mechanism.clone(),
            r.workload.clone(),
            figure(r.median),
            figure(r.min),
            figure(r.max),
            r.unit.to_owned(),
            ratio(r),
        ]);
    }
    if !table.is_empty() {
        table.write(out, true)?;
    }
    writeln!(
        out,
        "reference: {} (for workloads it does not run: the first row); vs ref > 1 means better",
        s.reference
    )?;
    for note in &s.notes {
        writeln!(out, "note: {note}")?;
    }
    if let Some(e) = &s.error {
        writeln!(out, "error: {e}")?;
    }
    Ok(())
}

/// Formats a time as RFC 3339 in UTC, to the second.
pub(crate) fn rfc3339(t: SystemTime) -> String {
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
