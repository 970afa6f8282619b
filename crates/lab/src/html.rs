//! The self-contained HTML report: one SVG chart per section and unit, the
//! figures as tables, no scripts and nothing fetched from the network.

use std::fmt::Write;

use super::Chart;
use super::measure::Row;
use super::report::{Report, SectionReport, figure, ratio};
use crate::size::human_bytes;

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
svg{display:block;margin:1em 0;font-size:11px}svg text{fill:#333}";

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
         <title>memio lab — {host}</title><style>{STYLE}</style></head><body>\n\
         <h1>memio lab</h1>\n<p class=\"meta\">{date} · {mode} run in {secs:.0} s · memio {ver}<br>\
         {host} · {cpu} · {cpus} CPUs · {mem} RAM · Linux {kernel} · {os}</p>",
        host = esc(&m.hostname),
        date = esc(&report.date),
        mode = report.mode,
        secs = report.seconds,
        ver = report.memio_version,
        cpu = esc(&m.cpu_model),
        cpus = m.cpus,
        mem = human_bytes(m.memory_bytes),
        kernel = esc(&m.kernel),
        os = esc(&m.os),
    );
    if !report.limits.is_empty() {
        h.push_str("<p class=\"meta\">Machine limits: ");
        let limits: Vec<String> = report
            .limits
            .iter()
            .map(|(k, v)| format!("{} = {}", esc(k), figure(*v)))
            .collect();
        h.push_str(&limits.join(", "));
        h.push_str("</p>\n");
    }
    for s in &report.sections {
        section(&mut h, s);
    }
    h.push_str("</body></html>\n");
    h
}

fn section(h: &mut String, s: &SectionReport) {
    let _ = writeln!(
        h,
        "<section id=\"{name}\"><h2>{name} — {title}</h2>\n<p>{about}</p>",
        name = esc(s.name),
        title = esc(s.title),
        about = esc(s.about)
    );
    if let Some(e) = &s.error {
        let _ = writeln!(h, "<p class=\"err\">stopped early: {}</p>", esc(e));
    }
    for unit in &distinct(s.rows.iter().map(|r| r.unit)) {
        let rows: Vec<&Row> = s.rows.iter().filter(|r| r.unit == *unit).collect();
        match s.chart {
            Chart::Bars => bars(h, &rows, unit),
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
                        lines(h, &group, unit);
                    } else {
                        single.extend(group);
                    }
                }
                if !single.is_empty() {
                    bars(h, &single, unit);
                }
            }
        }
    }
    if s.rows.is_empty() {
        h.push_str("<p>No rows were measured.</p>\n");
    }
    for note in &s.notes {
        let _ = writeln!(h, "<p class=\"meta\">{}</p>", esc(note));
    }
    let _ = writeln!(
        h,
        "<table><tr><th>mechanism</th><th>workload</th><th>median</th><th>min</th><th>max</th>\
         <th>unit</th><th>vs {}</th></tr>",
        esc(s.reference)
    );
    for r in &s.rows {
        let _ = writeln!(
            h,
            "<tr{cls}><td>{m}</td><td>{w}</td><td class=\"n\">{med}</td><td class=\"n\">{min}</td>\
             <td class=\"n\">{max}</td><td>{u}</td><td class=\"n\">{ratio}</td></tr>",
            cls = if r.reference { " class=\"ref\"" } else { "" },
            m = esc(&r.mechanism),
            w = esc(&r.workload),
            med = figure(r.median),
            min = figure(r.min),
            max = figure(r.max),
            u = esc(r.unit),
            ratio = ratio(r),
        );
    }
    h.push_str("</table></section>\n");
}

/// The family of a workload: its text without the numbers and the size
/// units that follow them, so `alloc+free 16 B` and `alloc+free 4 KiB` are
/// one sweep and `grow to 16 B` another.
fn family(workload: &str) -> String {
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

/// First-appearance order of the values `key` picks.
fn distinct<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
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
fn lines(h: &mut String, rows: &[&Row], unit: &str) {
    let xs = distinct(rows.iter().map(|r| r.workload.as_str()));
    let series = distinct(rows.iter().map(|r| r.mechanism.as_str()));
    let axis = Axis::fit(rows);
    let (w, ph, left, top, plot_w): (f64, f64, f64, f64, f64) = (940.0, 300.0, 70.0, 20.0, 600.0);
    let legend_x = left + plot_w + 20.0;
    let slanted = xs.len() > 6 || xs.iter().any(|x| x.chars().count() > 14);
    let label_room = if slanted { 110.0 } else { 50.0 };
    let height = (top + ph + label_room).max(top + 18.0 * series.len() as f64 + 10.0);
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
fn bars(h: &mut String, rows: &[&Row], unit: &str) {
    let axis = Axis {
        log: false,
        ..Axis::fit(rows)
    };
    let axis = if axis.lo > 0.0 {
        Axis { lo: 0.0, ..axis }
    } else {
        axis
    };
    let (left, top, plot_w, bar_h) = (330.0, 20.0, 560.0, 18.0);
    let ph = bar_h * rows.len() as f64;
    let height = top + ph + 40.0;
    let _ = writeln!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"940\" height=\"{height}\" role=\"img\" \
         aria-label=\"{unit} per case\">"
    );
    let x_at = |v: f64| left + plot_w * axis.at(v);
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
    use crate::lab::measure::{Case, Unit};

    #[test]
    fn workloads_fall_into_families_without_their_sizes() {
        assert_eq!(family("alloc+free 16 B"), "alloc+free");
        assert_eq!(family("alloc+free 4 KiB"), "alloc+free");
        assert_eq!(family("grow to 64 KiB"), "grow to");
        assert_eq!(family("64 B round trip"), "round trip");
        assert_eq!(family("4 KiB"), "");
        assert_eq!(family("B-tree 5 B"), "B-tree");
    }

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
        lines(&mut h, &refs, "GB/s");
        assert_eq!(h.matches("<circle").count(), 4);
        assert_eq!(h.matches("<polyline").count(), 2);
        let mut h = String::new();
        bars(&mut h, &refs, "GB/s");
        assert_eq!(h.matches("<rect").count(), 4);
    }
}
