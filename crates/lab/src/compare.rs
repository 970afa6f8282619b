//! `--compare OLD.json`: the ratio of every row of this run to the same row
//! of an earlier report, so a change of kernel, machine or memio version
//! shows row by row.
//!
//! Rows match by section, mechanism, workload and unit. A ratio above 1
//! means this run is better (faster, or more throughput), as the `vs ref`
//! column reads.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::measure::Row;
use crate::report::Report;
use crate::{Error, Result};

/// An earlier report, read for comparison.
#[derive(Debug, Clone)]
pub struct Old {
    /// The file it was read from.
    pub file: String,
    /// When it was measured.
    pub date: String,
    /// The machine it was measured on.
    pub hostname: String,
    /// Its kernel release.
    pub kernel: String,
    /// The memio version that measured it.
    pub memio_version: String,
    medians: HashMap<Key, f64>,
}

/// Section, mechanism, workload, unit.
type Key = (String, String, String, String);

impl Old {
    /// Reads and checks an earlier `report.json`.
    ///
    /// # Errors
    ///
    /// The file cannot be read, is not JSON, or is not a memio lab report;
    /// the error names the file.
    pub fn read(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(&name, &e))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| Error::new(&name, format!("not a lab report: not JSON ({e})")))?;
        Self::from_json(&name, &value).map_err(|why| Error::new(&name, why))
    }

    fn from_json(file: &str, v: &Value) -> std::result::Result<Self, String> {
        let schema = v["schema"].as_str().unwrap_or_default();
        if !schema.starts_with("memio-lab/") {
            return Err(format!(
                "not a lab report: schema is {}, expected {}",
                if schema.is_empty() { "missing" } else { schema },
                crate::report::SCHEMA
            ));
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let sections = v["sections"]
            .as_array()
            .ok_or("not a lab report: no sections")?;
        let mut medians = HashMap::new();
        for s in sections {
            let section = s["name"].as_str().ok_or("a section has no name")?;
            let rows = s["rows"]
                .as_array()
                .ok_or_else(|| format!("section {section} has no rows"))?;
            for (i, r) in rows.iter().enumerate() {
                let median = r["median"]
                    .as_f64()
                    .ok_or_else(|| format!("row {} of section {section} has no median", i + 1))?;
                let key = (
                    section.to_owned(),
                    text(&r["mechanism"]),
                    text(&r["workload"]),
                    text(&r["unit"]),
                );
                medians.insert(key, median);
            }
        }
        Ok(Self {
            file: file.to_owned(),
            date: text(&v["date"]),
            hostname: text(&v["machine"]["hostname"]),
            kernel: text(&v["machine"]["kernel"]),
            memio_version: text(&v["memio_version"]),
            medians,
        })
    }

    /// The earlier median of `row` of `section`, if the old report has it.
    #[must_use]
    pub fn median(&self, section: &str, row: &Row) -> Option<f64> {
        let key = (
            section.to_owned(),
            row.mechanism.clone(),
            row.workload.clone(),
            row.unit.to_owned(),
        );
        self.medians.get(&key).copied()
    }

    /// How many times better `row` is now than in the old report (> 1:
    /// better now); `None` when the old report lacks the row.
    #[must_use]
    pub fn ratio(&self, section: &str, row: &Row) -> Option<f64> {
        let old = self.median(section, row)?;
        let r = if row.higher_is_better {
            row.median / old
        } else {
            old / row.median
        };
        r.is_finite().then_some(r)
    }

    /// Every row of `report` against this old report.
    #[must_use]
    pub fn compare(&self, report: &Report) -> Comparison {
        let mut rows = Vec::new();
        let mut new_rows = 0;
        for s in &report.sections {
            for r in &s.rows {
                match (self.median(s.name, r), self.ratio(s.name, r)) {
                    (Some(old), Some(ratio)) => rows.push(ComparedRow {
                        section: s.name.to_owned(),
                        mechanism: r.mechanism.clone(),
                        workload: r.workload.clone(),
                        unit: r.unit.to_owned(),
                        old,
                        new: r.median,
                        ratio,
                    }),
                    _ => new_rows += 1,
                }
            }
        }
        Comparison {
            file: self.file.clone(),
            date: self.date.clone(),
            hostname: self.hostname.clone(),
            kernel: self.kernel.clone(),
            memio_version: self.memio_version.clone(),
            rows,
            unmatched: new_rows,
        }
    }
}

/// This run against an earlier report, as `report.json` records it.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The earlier report's file.
    pub file: String,
    /// When it was measured.
    pub date: String,
    /// Its machine.
    pub hostname: String,
    /// Its kernel release.
    pub kernel: String,
    /// Its memio version.
    pub memio_version: String,
    /// Every row both reports have.
    pub rows: Vec<ComparedRow>,
    /// Rows of this run the earlier report does not have.
    pub unmatched: usize,
}

/// One row in both reports.
#[derive(Debug, Clone, Serialize)]
pub struct ComparedRow {
    /// Section name.
    pub section: String,
    /// Mechanism.
    pub mechanism: String,
    /// Workload.
    pub workload: String,
    /// Unit of `old` and `new`.
    pub unit: String,
    /// The earlier median.
    pub old: f64,
    /// This run's median.
    pub new: f64,
    /// How many times better now (> 1: better).
    pub ratio: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Case, Unit};

    fn old(json: &str) -> std::result::Result<Old, String> {
        Old::from_json("old.json", &serde_json::from_str(json).unwrap())
    }

    #[test]
    fn ratios_favour_the_better_run_in_either_unit() {
        let o = old(
            r#"{"schema":"memio-lab/1","date":"d","sections":[{"name":"s","rows":[
                {"mechanism":"a","workload":"w","unit":"GB/s","median":10.0},
                {"mechanism":"a","workload":"w","unit":"ns/op","median":100.0}]}]}"#,
        )
        .unwrap();
        let gbps = Row::from_samples(Case::new("a", "w"), Unit::GB_PER_S, &[20.0]).unwrap();
        let ns = Row::from_samples(Case::new("a", "w"), Unit::NS, &[200.0]).unwrap();
        assert_eq!(o.ratio("s", &gbps), Some(2.0));
        assert_eq!(o.ratio("s", &ns), Some(0.5));
        assert_eq!(o.ratio("other", &ns), None);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(old(r#"{"a":1}"#).unwrap_err().contains("schema is missing"));
        assert!(
            old(r#"{"schema":"memio-lab/1"}"#)
                .unwrap_err()
                .contains("no sections")
        );
        let err =
            old(r#"{"schema":"memio-lab/1","sections":[{"name":"s","rows":[{}]}]}"#).unwrap_err();
        assert!(err.contains("row 1 of section s has no median"), "{err}");
        let dir = crate::support::Scratch::dir("compare").unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, "not json").unwrap();
        let err = Old::read(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: not a lab report", path.display())),
            "{err}"
        );
        let err = Old::read(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("missing.json: no such file or directory"),
            "{err}"
        );
    }
}
