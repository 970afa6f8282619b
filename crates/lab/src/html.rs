//! The self-contained HTML report: the machine and its limits, a table of
//! contents with each section's verdict, then per section its verdict, SVG
//! charts (each with a title, axis units and a legend) and the figures as
//! a table folded under them. No scripts, nothing fetched from the network.

use std::fmt::Write;

use crate::Chart;
use crate::compare::Comparison;
use crate::machine::Machine;
use crate::measure::Row;
use crate::report::{Report, SectionReport, change, figure, ratio};
use crate::support::human_bytes;
use crate::verdict::{distinct, family};

const PALETTE: [&str; 14] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#843c39", "#7b4173",
];

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}\
h1{margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;font-size:.85em;margin:1em 0}\
td,th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
tr.ref td{font-weight:bold}.meta{color:#555}.err{color:#b00}\
svg{display:block;margin:.3em 0 1em;font-size:11px;max-width:100%;height:auto}svg text{fill:#333}\
h3{font-size:1em;margin:1.5em 0 0}ul.verdict{background:#f4f7fb;border-left:4px solid #1f77b4;\
padding:.6em 1em .6em 2em;margin:1em 0}nav ol{padding-left:1.5em}nav li{margin:.3em 0}\
nav .v{color:#555;font-size:.9em}table.facts td:first-child{color:#555}\
details{margin:1em 0}summary{cursor:pointer;color:#1f77b4}.up{color:#080}.down{color:#b00}";

/// Escapes text for HTML and SVG.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders the whole report as one HTML page.
pub(crate) fn render(report: &Report) -> String {
    let m = &report.machine;
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>memio lab — {host}</title><style>{STYLE}</style></head><body>\n\
         <h1>memio lab</h1>\n<p class=\"meta\">{date} · {mode} run in {secs:.0} s · memio {ver}</p>",
        host = esc(&m.hostname),
        date = esc(&report.date),
        mode = report.mode,
        secs = report.seconds,
        ver = report.memio_version,
    );
    machine(&mut h, report);
    if let Some(c) = &report.comparison {
        let _ = writeln!(
            h,
            "<p class=\"meta\">Compared with <b>{}</b>: measured {} on {} (Linux {}, memio {}); \
             {} rows in both, {} new. The <i>vs old</i> column is this run over that one \
             (&gt; 1: better now).</p>",
            esc(&c.file),
            esc(&c.date),
            esc(&c.hostname),
            esc(&c.kernel),
            esc(&c.memio_version),
            c.rows.len(),
            c.unmatched
        );
    }
    contents(&mut h, report);
    for s in &report.sections {
        section(&mut h, s, report.comparison.as_ref());
    }
    h.push_str("</body></html>\n");
    h
}

/// The machine, its limits and the peers built in.
fn machine(h: &mut String, report: &Report) {
    let m: &Machine = &report.machine;
    let l = &m.limits;
    let opt = |v: Option<u64>| v.map_or_else(|| "unknown".to_owned(), human_bytes);
    let count = |v: Option<u64>| v.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
    let mut facts: Vec<(&str, String)> = vec![
        ("host", m.hostname.clone()),
        (
            "CPU",
            format!("{} · {} CPUs · {}", m.cpu_model, m.cpus, m.arch),
        ),
        (
            "memory",
            format!(
                "{} RAM, {} available at the start · {} pages",
                human_bytes(m.memory_bytes),
                human_bytes(m.memory_available_bytes),
                human_bytes(m.page_size)
            ),
        ),
        ("system", format!("Linux {} · {}", m.kernel, m.os)),
    ];
    if let Some(v) = report.limits.get(crate::limit::MEMCPY_GBPS) {
        facts.push((
            "memcpy bandwidth",
            format!("{} GB/s (buffers larger than the caches)", figure(*v)),
        ));
    }
    facts.push((
        "locked memory",
        l.memlock_bytes.map_or_else(
            || "unlimited".to_owned(),
            |b| format!("{} (RLIMIT_MEMLOCK)", human_bytes(b)),
        ),
    ));
    facts.push((
        "overcommit · huge pages",
        format!(
            "{} · THP {} · {} hugetlb pages reserved",
            l.overcommit,
            l.transparent_huge_pages.as_deref().unwrap_or("unknown"),
            l.huge_pages_total
        ),
    ));
    facts.push((
        "message queues",
        format!(
            "POSIX: {} messages of at most {} · System V: messages of at most {}",
            count(l.mq_msg_max),
            opt(l.mq_msgsize_max),
            opt(l.sysv_msgmax)
        ),
    ));
    let peers: Vec<String> = report
        .peers
        .iter()
        .map(|p| format!("{} {}", p.what, if p.built { "built" } else { "not built" }))
        .collect();
    facts.push(("heavy peers", peers.join(" · ")));
    h.push_str("<h2 id=\"machine\">Machine and limits</h2>\n<table class=\"facts\">");
    for (k, v) in facts {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    }
    h.push_str("</table>\n");
}

/// The table of contents: one entry per section with its first verdict.
fn contents(h: &mut String, report: &Report) {
    h.push_str(
        "<nav><h2>Contents</h2><ol>\n<li><a href=\"#machine\">Machine and limits</a></li>\n",
    );
    for s in &report.sections {
        let _ = write!(
            h,
            "<li><a href=\"#{name}\">{name} — {title}</a>",
            name = esc(s.name),
            title = esc(s.title)
        );
        if let Some(e) = &s.error {
            let _ = write!(h, " <span class=\"err\">(stopped early: {})</span>", esc(e));
        } else if let Some(v) = s.verdict.first() {
            let _ = write!(h, "<br><span class=\"v\">{}</span>", esc(v));
        }
        h.push_str("</li>\n");
    }
    h.push_str("</ol></nav>\n");
}

/// What a unit measures, for chart titles.
fn measured(unit: &str) -> &'static str {
    if unit == "GB/s" {
        "throughput, higher is better"
    } else if unit.ends_with("/op") {
        "time per operation, lower is better"
    } else if unit.ends_with("/run") {
        "time per run, lower is better"
    } else {
        "lower is better"
    }
}

fn section(h: &mut String, s: &SectionReport, comparison: Option<&Comparison>) {
    let _ = writeln!(
        h,
        "<section id=\"{name}\"><h2>{name} — {title}</h2>",
        name = esc(s.name),
        title = esc(s.title),
    );
    if !s.verdict.is_empty() {
        h.push_str("<ul class=\"verdict\">");
        for v in &s.verdict {
            let _ = write!(h, "<li>{}</li>", esc(v));
        }
        h.push_str("</ul>\n");
    }
    let _ = writeln!(h, "<p>{}</p>", esc(s.about));
    if let Some(e) = &s.error {
        let _ = writeln!(h, "<p class=\"err\">stopped early: {}</p>", esc(e));
    }
    charts(h, s);
    if s.rows.is_empty() {
        h.push_str("<p>No rows were measured.</p>\n");
    }
    for note in &s.notes {
        let _ = writeln!(h, "<p class=\"meta\">{}</p>", esc(note));
    }
    table(h, s, comparison);
    h.push_str("</section>\n");
}

/// One chart per unit, or per family of workloads for line charts.
fn charts(h: &mut String, s: &SectionReport) {
    for unit in &distinct(s.rows.iter().map(|r| r.unit)) {
        let rows: Vec<&Row> = s.rows.iter().filter(|r| r.unit == *unit).collect();
        let title = |what: &str| format!("{what}: {unit} ({})", measured(unit));
        match s.chart {
            Chart::Bars => {
                // One chart per family of workloads: their figures may lie
                // decades apart (a lock hand-off in µs, a contended turn in
                // ms) and would vanish on one linear axis.
                for fam in &distinct(rows.iter().map(|r| family(&r.workload))) {
                    let group: Vec<&Row> = rows
                        .iter()
                        .copied()
                        .filter(|r| family(&r.workload) == *fam)
                        .collect();
                    let workloads = distinct(group.iter().map(|r| r.workload.as_str()));
                    let what = match workloads.as_slice() {
                        [one] => one,
                        _ if fam.is_empty() => s.name,
                        _ => fam.as_str(),
                    };
                    bars(h, &group, unit, &title(what), s.reference);
                }
            }
            Chart::Lines => {
                // A line runs through one family of workloads (a sweep over
                // sizes); a family with a single workload is a bar.
                let mut single: Vec<&Row> = Vec::new();
                for fam in &distinct(rows.iter().map(|r| family(&r.workload))) {
                    let group: Vec<&Row> = rows
                        .iter()
                        .copied()
                        .filter(|r| family(&r.workload) == *fam)
                        .collect();
                    if distinct(group.iter().map(|r| r.workload.as_str())).len() > 1 {
                        let what = if fam.is_empty() {
                            "by buffer size"
                        } else {
                            fam
                        };
                        lines(h, &group, unit, &title(what));
                    } else {
                        single.extend(group);
                    }
                }
                if !single.is_empty() {
                    bars(h, &single, unit, &title(s.name), s.reference);
                }
            }
        }
    }
}

/// The figures, folded under the charts.
fn table(h: &mut String, s: &SectionReport, comparison: Option<&Comparison>) {
    let _ = writeln!(
        h,
        "<details><summary>Table: {} rows</summary><table><tr><th>mechanism</th><th>workload</th>\
         <th>median</th><th>min</th><th>max</th><th>unit</th><th>vs {}</th>{}</tr>",
        s.rows.len(),
        esc(s.reference),
        if comparison.is_some() {
            "<th>vs old</th>"
        } else {
            ""
        }
    );
    for r in &s.rows {
        let old = comparison.map(|c| {
            let found = c.rows.iter().find(|o| {
                o.section == s.name
                    && o.mechanism == r.mechanism
                    && o.workload == r.workload
                    && o.unit == r.unit
            });
            match found {
                Some(o) => format!(
                    "<td class=\"n {}\" title=\"was {} {}\">{}</td>",
                    if o.ratio >= 1.0 { "up" } else { "down" },
                    figure(o.old),
                    esc(&o.unit),
                    change(o.ratio)
                ),
                None => "<td class=\"n\">new</td>".to_owned(),
            }
        });
        let _ = writeln!(
            h,
            "<tr{cls}><td>{m}</td><td>{w}</td><td class=\"n\">{med}</td><td class=\"n\">{min}</td>\
             <td class=\"n\">{max}</td><td>{u}</td><td class=\"n\">{ratio}</td>{old}</tr>",
            cls = if r.reference { " class=\"ref\"" } else { "" },
            m = esc(&r.mechanism),
            w = esc(&r.workload),
            med = figure(r.median),
            min = figure(r.min),
            max = figure(r.max),
            u = esc(r.unit),
            ratio = ratio(r),
            old = old.unwrap_or_default(),
        );
    }
    h.push_str("</table></details>\n");
}

/// A value axis: linear from zero, or logarithmic when figures span more
/// than two decades.
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
}

impl Axis {
    fn fit(rows: &[&Row]) -> Self {
        let lo = rows
            .iter()
            .map(|r| r.min)
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let hi = rows.iter().map(|r| r.max).fold(0.0, f64::max);
        if hi.is_nan() || hi <= 0.0 {
            return Self {
                log: false,
                lo: 0.0,
                hi: 1.0,
            };
        }
        if lo.is_finite() && hi / lo > 100.0 {
            Self {
                log: true,
                lo: 10f64.powf(lo.log10().floor()),
                hi: 10f64.powf(hi.log10().ceil()),
            }
        } else {
            let step = nice_step(hi / 5.0);
            Self {
                log: false,
                lo: 0.0,
                hi: (hi / step).ceil() * step,
            }
        }
    }

    /// Position of `v` in 0..=1 along the axis.
    fn at(&self, v: f64) -> f64 {
        let t = if self.log {
            if v <= 0.0 {
                return 0.0;
            }
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        t.clamp(0.0, 1.0)
    }

    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "decade exponents and tick counts of a fitted axis are small and positive"
    )]
    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (
                self.lo.log10().round() as i32,
                self.hi.log10().round() as i32,
            );
            (a..=b).map(|e| 10f64.powi(e)).collect()
        } else {
            let step = nice_step(self.hi / 5.0);
            (0..=((self.hi / step).round() as u32))
                .map(|i| f64::from(i) * step)
                .collect()
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw.is_nan() || raw <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

/// One line per mechanism across the workloads, whiskers from min to max.
fn lines(h: &mut String, rows: &[&Row], unit: &str, title: &str) {
    let xs = distinct(rows.iter().map(|r| r.workload.as_str()));
    let series = distinct(rows.iter().map(|r| r.mechanism.as_str()));
    let axis = Axis::fit(rows);
    let (w, ph, left, top, plot_w): (f64, f64, f64, f64, f64) = (940.0, 300.0, 70.0, 30.0, 600.0);
    let legend_x = left + plot_w + 20.0;
    let slanted = xs.len() > 6 || xs.iter().any(|x| x.chars().count() > 14);
    let label_room = if slanted { 125.0 } else { 55.0 };
    let height = (top + ph + label_room).max(top + 18.0 * (series.len() + 2) as f64 + 10.0);
    let _ = writeln!(h, "<h3>{}</h3>", esc(title));
    let x_at = |i: usize| {
        if xs.len() <= 1 {
            left + plot_w / 2.0
        } else {
            left + plot_w * i as f64 / (xs.len() - 1) as f64
        }
    };
    let y_at = |v: f64| top + ph * (1.0 - axis.at(v));
    let _ = writeln!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" role=\"img\" \
         aria-label=\"{unit} by workload\">"
    );
    grid(h, &axis, left, top, plot_w, ph, unit);
    let _ = writeln!(
        h,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-style=\"italic\">workload</text>\
         <text x=\"{legend_x}\" y=\"{:.1}\" font-weight=\"bold\">mechanism (median; bar: min–max)</text>",
        left + plot_w / 2.0,
        height - 4.0,
        top - 12.0
    );
    for (i, x) in xs.iter().enumerate() {
        let (px, py) = (x_at(i), top + ph + 16.0);
        if slanted {
            let _ = writeln!(
                h,
                "<text x=\"{px:.1}\" y=\"{py:.1}\" text-anchor=\"end\" \
                 transform=\"rotate(-35 {px:.1} {py:.1})\">{}</text>",
                esc(x)
            );
        } else {
            let _ = writeln!(
                h,
                "<text x=\"{px:.1}\" y=\"{py:.1}\" text-anchor=\"middle\">{}</text>",
                esc(x)
            );
        }
    }
    for (si, name) in series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let mut points = Vec::new();
        for (xi, x) in xs.iter().enumerate() {
            if let Some(r) = rows
                .iter()
                .find(|r| r.mechanism == *name && r.workload == *x)
            {
                let (px, py) = (x_at(xi), y_at(r.median));
                points.push(format!("{px:.1},{py:.1}"));
                let _ = writeln!(
                    h,
                    "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\"/>\
                     <circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\" fill=\"{color}\"><title>{} — {}: {} {}</title></circle>",
                    y_at(r.min),
                    y_at(r.max),
                    esc(name),
                    esc(x),
                    figure(r.median),
                    esc(unit)
                );
            }
        }
        let _ = writeln!(
            h,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
            points.join(" ")
        );
        let ly = top + 18.0 * si as f64;
        let _ = writeln!(
            h,
            "<rect x=\"{legend_x}\" y=\"{ly:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            legend_x + 16.0,
            ly + 10.0,
            esc(name)
        );
    }
    h.push_str("</svg>\n");
}

/// One horizontal bar per row, whiskers from min to max.
fn bars(h: &mut String, rows: &[&Row], unit: &str, title: &str, reference: &str) {
    let axis = Axis {
        log: false,
        ..Axis::fit(rows)
    };
    let axis = if axis.lo > 0.0 {
        Axis { lo: 0.0, ..axis }
    } else {
        axis
    };
    let (left, top, plot_w, bar_h) = (330.0, 30.0, 560.0, 18.0);
    let ph = bar_h * rows.len() as f64;
    let height = top + ph + 40.0;
    let _ = writeln!(h, "<h3>{}</h3>", esc(title));
    let _ = writeln!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"940\" height=\"{height}\" role=\"img\" \
         aria-label=\"{unit} per case\">"
    );
    let x_at = |v: f64| left + plot_w * axis.at(v);
    // Legend: what the bars, their colours and the whiskers show.
    let _ = writeln!(
        h,
        "<rect x=\"{left}\" y=\"6\" width=\"12\" height=\"12\" fill=\"{}\"/>\
         <text x=\"{:.1}\" y=\"16\">median</text>\
         <rect x=\"{:.1}\" y=\"6\" width=\"12\" height=\"12\" fill=\"{}\"/>\
         <text x=\"{:.1}\" y=\"16\">reference ({})</text>\
         <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"12\" y2=\"12\" stroke=\"#000\"/>\
         <text x=\"{:.1}\" y=\"16\">min–max</text>",
        PALETTE[0],
        left + 16.0,
        left + 80.0,
        PALETTE[1],
        left + 96.0,
        esc(reference),
        left + 330.0,
        left + 352.0,
        left + 358.0,
    );
    for t in axis.ticks() {
        let x = x_at(t);
        let _ = writeln!(
            h,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            top + ph,
            top + ph + 14.0,
            figure(t)
        );
    }
    let _ = writeln!(
        h,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}{}</text>",
        left + plot_w / 2.0,
        top + ph + 32.0,
        esc(unit),
        if rows.first().is_some_and(|r| r.higher_is_better) {
            " (higher is better)"
        } else {
            " (lower is better)"
        }
    );
    for (i, r) in rows.iter().enumerate() {
        let y = top + bar_h * i as f64;
        let color = if r.reference { PALETTE[1] } else { PALETTE[0] };
        let label = format!("{} — {}", r.mechanism, r.workload);
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{left}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}: {} {}</title></rect>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#000\"/>",
            left - 6.0,
            y + 13.0,
            esc(&label),
            y + 3.0,
            x_at(r.median) - left,
            bar_h - 6.0,
            esc(&label),
            figure(r.median),
            esc(unit),
            x_at(r.min),
            x_at(r.max),
            y + bar_h / 2.0,
            y + bar_h / 2.0,
        );
    }
    h.push_str("</svg>\n");
}

/// Horizontal grid lines and value labels for a line chart.
fn grid(h: &mut String, axis: &Axis, left: f64, top: f64, plot_w: f64, ph: f64, unit: &str) {
    for t in axis.ticks() {
        let y = top + ph * (1.0 - axis.at(t));
        let _ = writeln!(
            h,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6.0,
            y + 4.0,
            figure(t)
        );
    }
    let _ = writeln!(
        h,
        "<text transform=\"translate(14,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}{}</text>",
        top + ph / 2.0,
        esc(unit),
        if axis.log { " (log scale)" } else { "" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Case, Unit};

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
    }

    #[test]
    fn axes_pick_log_scale_for_wide_ranges() {
        let a = Row::from_samples(Case::new("a", "x"), Unit::GB_PER_S, &[0.5]).unwrap();
        let b = Row::from_samples(Case::new("b", "x"), Unit::GB_PER_S, &[120.0]).unwrap();
        let axis = Axis::fit(&[&a, &b]);
        assert!(axis.log);
        assert_eq!(axis.ticks(), vec![0.1, 1.0, 10.0, 100.0, 1000.0]);
        let axis = Axis::fit(&[&b]);
        assert!(!axis.log && axis.hi >= 120.0);
        assert!((axis.at(120.0) - 120.0 / axis.hi).abs() < 1e-9);
    }

    #[test]
    fn every_row_gets_a_mark_in_the_chart() {
        let rows: Vec<Row> = ["4 KiB", "64 KiB"]
            .iter()
            .flat_map(|w| {
                ["a", "b"].map(|m| {
                    Row::from_samples(Case::new(m, *w), Unit::GB_PER_S, &[1.0, 2.0]).unwrap()
                })
            })
            .collect();
        let refs: Vec<&Row> = rows.iter().collect();
        let mut h = String::new();
        lines(&mut h, &refs, "GB/s", "sweep");
        assert_eq!(h.matches("<circle").count(), 4);
        assert_eq!(h.matches("<polyline").count(), 2);
        assert!(h.contains("<h3>sweep</h3>") && h.contains(">workload</text>"));
        let mut h = String::new();
        bars(&mut h, &refs, "GB/s", "cases", "a");
        // Four bars and two legend swatches.
        assert_eq!(h.matches("<rect").count(), 6);
        assert!(h.contains("reference (a)"));
    }
}
