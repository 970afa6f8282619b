//! A section's verdict: two or three lines, computed from the run's rows,
//! that answer the section's question at a glance ("for 64 B round trips:
//! POSIX mq 17 µs is fastest, 1.24x pipe").
//!
//! Rows fall into families of workloads (a sweep over sizes is one
//! family, see [`family`]); each of the first three families gets one
//! line naming the best mechanism at its smallest and largest workload,
//! with its figure and its ratio to the section's reference.

use std::fmt::Write;

use crate::measure::Row;
use crate::report::{SectionReport, figure};

/// How many families a verdict speaks of.
const LINES: usize = 3;

/// The verdict lines of a section.
pub(crate) fn verdict(s: &SectionReport) -> Vec<String> {
    let groups = distinct(s.rows.iter().map(|r| (family(&r.workload), r.unit)));
    groups
        .into_iter()
        .take(LINES)
        .filter_map(|(fam, unit)| {
            let rows: Vec<&Row> = s
                .rows
                .iter()
                .filter(|r| r.unit == unit && family(&r.workload) == fam)
                .collect();
            line(&fam, &rows)
        })
        .collect()
}

/// One family's line: the winner at its first and (if other) last workload.
fn line(fam: &str, rows: &[&Row]) -> Option<String> {
    let workloads = distinct(rows.iter().map(|r| r.workload.as_str()));
    let first = *workloads.first()?;
    let last = *workloads.last()?;
    let at = |w: &str| -> Option<String> {
        let of: Vec<&Row> = rows.iter().copied().filter(|r| r.workload == w).collect();
        winner(&of)
    };
    if workloads.len() == 1 {
        return Some(format!("{first}: {}", at(first)?));
    }
    let subject = if fam.is_empty() { "by size" } else { fam };
    let mut text = format!("{subject}: at {} {}", size_of(first), at(first)?);
    if let Some(w) = at(last) {
        let _ = write!(text, "; at {} {w}", size_of(last));
    }
    Some(text)
}

/// The sizes in a workload's text (`64 B round trip` gives `64 B`), or the
/// whole text when it names none.
fn size_of(workload: &str) -> String {
    let fam = family(workload);
    let fam: Vec<&str> = fam.split_whitespace().collect();
    let rest: Vec<&str> = workload
        .split_whitespace()
        .filter(|t| !fam.contains(t))
        .collect();
    if rest.is_empty() {
        workload.to_owned()
    } else {
        rest.join(" ")
    }
}

/// `X 17.0 µs/op is fastest, 1.24x pipe` for the best row of one workload.
fn winner(rows: &[&Row]) -> Option<String> {
    let best = rows
        .iter()
        .filter(|r| r.median.is_finite())
        .max_by(|a, b| {
            let (a, b) = (a.median, b.median);
            if rows[0].higher_is_better {
                a.total_cmp(&b)
            } else {
                b.total_cmp(&a)
            }
        })?;
    let word = if best.unit.ends_with("/op") || best.unit.ends_with("/run") || best.unit == "GB/s" {
        "fastest"
    } else {
        "best"
    };
    let base = rows.iter().find(|r| r.reference)?;
    let versus = if best.reference {
        // The reference won: name the runner-up instead.
        let second = rows
            .iter()
            .filter(|r| !r.reference && r.median.is_finite())
            .max_by(|a, b| a.ratio.unwrap_or(0.0).total_cmp(&b.ratio.unwrap_or(0.0)));
        match second.and_then(|r| Some((r, r.ratio?))) {
            Some((r, ratio)) if ratio > 0.0 => {
                format!(", {:.2}x {}", 1.0 / ratio, r.mechanism)
            }
            _ => String::new(),
        }
    } else {
        match best.ratio {
            Some(r) => format!(", {}x {}", ratio_text(r), base.mechanism),
            None => String::new(),
        }
    };
    Some(format!(
        "{} {} {} is {word}{versus}",
        best.mechanism,
        figure(best.median),
        best.unit
    ))
}

fn ratio_text(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.2}")
    }
}

/// The family of a workload: its text without the numbers and the size
/// units that follow them, so `alloc+free 16 B` and `alloc+free 4 KiB` are
/// one sweep and `grow to 16 B` another.
pub(crate) fn family(workload: &str) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "%"];
    let mut out: Vec<&str> = Vec::new();
    let mut after_number = false;
    for token in workload.split_whitespace() {
        let numeric = token.starts_with(|c: char| c.is_ascii_digit());
        let unit = after_number
            && UNITS
                .iter()
                .any(|u| token.trim_end_matches([',', ';']) == *u);
        if !numeric && !unit {
            out.push(token);
        }
        after_number = numeric;
    }
    out.join(" ")
}

/// The items in first-appearance order, each once.
pub(crate) fn distinct<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Chart;
    use crate::measure::{Case, Unit, fill_ratios};

    fn section(rows: Vec<Row>) -> SectionReport {
        SectionReport {
            name: "ipc",
            title: "",
            about: "",
            reference: "pipe",
            chart: Chart::Lines,
            seconds: 0.0,
            verdict: Vec::new(),
            notes: Vec::new(),
            error: None,
            rows,
        }
    }

    fn row(m: &str, w: &str, unit: Unit, v: f64) -> Row {
        Row::from_samples(Case::new(m, w), unit, &[v]).unwrap()
    }

    #[test]
    fn names_the_winner_at_each_end_of_a_sweep_against_the_reference() {
        let mut rows = vec![
            row("pipe", "64 B round trip", Unit::US, 21.0),
            row("POSIX mq", "64 B round trip", Unit::US, 17.0),
            row("pipe", "64 KiB round trip", Unit::US, 60.0),
            row("shm", "64 KiB round trip", Unit::US, 20.0),
            row("pipe", "64 B one-way", Unit::GB_PER_S, 0.5),
            row("shm", "64 B one-way", Unit::GB_PER_S, 0.4),
        ];
        fill_ratios(&mut rows, "pipe");
        let v = verdict(&section(rows));
        assert_eq!(
            v,
            vec![
                "round trip: at 64 B POSIX mq 17.00 µs/op is fastest, 1.24x pipe; \
                 at 64 KiB shm 20.00 µs/op is fastest, 3.00x pipe",
                "64 B one-way: pipe 0.500 GB/s is fastest, 1.25x shm",
            ]
        );
    }

    #[test]
    fn workloads_fall_into_families_without_their_sizes() {
        assert_eq!(family("alloc+free 16 B"), "alloc+free");
        assert_eq!(family("alloc+free 4 KiB"), "alloc+free");
        assert_eq!(family("grow to 64 KiB"), "grow to");
        assert_eq!(family("64 B round trip"), "round trip");
        assert_eq!(family("4 KiB"), "");
        assert_eq!(family("B-tree 5 B"), "B-tree");
        assert_eq!(size_of("64 B round trip"), "64 B");
        assert_eq!(size_of("4 KiB"), "4 KiB");
    }
}
