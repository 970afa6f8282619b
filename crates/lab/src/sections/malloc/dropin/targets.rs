//! The programs' notes: each malloc's figures as multiples of glibc's,
//! and the drop-in library's targets, met or not.

use std::fmt::Write as _;

use super::{CHECKED, Figures, HUGE, MEMIO, Source};
use crate::sections::malloc::{geomean, ratio, worst};

/// One note per program: each allocator's time and peak RSS as multiples
/// of glibc's, memio's checks-on time as a multiple of checks-off, and
/// memio's time and peak RSS with huge pages as multiples of without.
pub(super) fn ratios(names: &[&str], f: &Figures) -> String {
    let mut text = format!(
        "{}: time and peak RSS as multiples of glibc's (below 1: less):",
        f.program.label
    );
    let mut first = true;
    let plain = names.iter().position(|n| *n == MEMIO);
    for (i, name) in names.iter().enumerate().skip(1) {
        let (Some(t), Some(m)) = (ratio(f.time[i], f.time[0]), ratio(f.rss[i], f.rss[0])) else {
            continue;
        };
        let _ = write!(
            text,
            "{} {name} {t:.2}x, {m:.2}x",
            if first { "" } else { ";" }
        );
        first = false;
        if *name == CHECKED {
            if let Some(c) = plain.and_then(|o| ratio(f.time[i], f.time[o])) {
                let _ = write!(text, " ({c:.2}x the time with checks off)");
            }
        }
        if *name == HUGE {
            if let Some((t, m)) =
                plain.and_then(|o| Some((ratio(f.time[i], f.time[o])?, ratio(f.rss[i], f.rss[o])?)))
            {
                let _ = write!(
                    text,
                    " ({t:.2}x the time and {m:.2}x the peak RSS without huge pages)"
                );
            }
        }
    }
    if first {
        text.push_str(" no other malloc ran it");
    }
    text
}

/// The targets for the drop-in library, each stated as met or not
/// met with its figures, from this run's medians.
pub(super) fn targets(names: &[&str], figures: &[Figures]) -> Vec<String> {
    let at = |name: &str| names.iter().position(|n| *n == name);
    let Some(me) = at(MEMIO) else {
        return vec!["targets not judged: memio did not run the programs".to_owned()];
    };
    if figures.is_empty() {
        return vec!["targets not judged: no program ran".to_owned()];
    }
    // (program, figure i / figure base) of one column of figures.
    let of = |f: &Figures, column: &[Option<f64>], i: usize, base: usize| {
        (f.program.name, ratio(column[i], column[base]))
    };
    let mut lines = vec![
        worst(
            "no program slower than glibc",
            "memio's time",
            "glibc's",
            1.0,
            figures.iter().map(|f| of(f, &f.time, me, 0)),
        ),
        worst(
            "Python at most 0.95x glibc's time",
            "memio's time",
            "glibc's",
            0.95,
            figures
                .iter()
                .filter(|f| matches!(f.program.source, Source::Python(_)))
                .map(|f| of(f, &f.time, me, 0)),
        ),
    ];
    lines.push(match at("mimalloc") {
        Some(mi) => {
            let both: Vec<&Figures> = figures
                .iter()
                .filter(|f| f.time[me].is_some() && f.time[mi].is_some())
                .collect();
            let gm = |i: usize| geomean(&both.iter().filter_map(|f| f.time[i]).collect::<Vec<_>>());
            let r = (!both.is_empty()).then(|| gm(me) / gm(mi));
            worst(
                "geometric mean at most 1.0x mimalloc's",
                "memio's geometric mean of times",
                "mimalloc's",
                1.0,
                [("the programs", r)].into_iter(),
            )
        }
        None => "target geometric mean at most 1.0x mimalloc's: not judged (mimalloc did not run)"
            .to_owned(),
    });
    lines.push(worst(
        "peak RSS at most 1.1x glibc's",
        "memio's peak RSS",
        "glibc's",
        1.1,
        figures.iter().map(|f| of(f, &f.rss, me, 0)),
    ));
    lines.push(match at(CHECKED) {
        Some(c) => worst(
            "checks on at most 2x the time of checks off",
            "memio's time with MEMIO_MALLOC_CHECK=3",
            "checks off",
            2.0,
            figures.iter().map(|f| of(f, &f.time, c, me)),
        ),
        None => "target checks on at most 2x checks off: not judged".to_owned(),
    });
    lines
}

#[cfg(test)]
mod tests {
    use super::super::{GLIBC, HUGE, PROGRAMS, Program};
    use super::*;

    fn figures(program: &'static Program, time: &[f64], rss: &[f64]) -> Figures {
        Figures {
            program,
            time: time.iter().copied().map(Some).collect(),
            rss: rss.iter().copied().map(Some).collect(),
        }
    }

    #[test]
    fn targets_say_met_or_not_met_with_the_figures() {
        let names = [GLIBC, MEMIO, CHECKED, HUGE, "mimalloc"];
        let f = [
            figures(
                &PROGRAMS[0],
                &[100.0, 80.0, 120.0, 72.0, 90.0],
                &[10.0, 10.5, 11.0, 14.0, 12.0],
            ),
            figures(
                &PROGRAMS[3],
                &[200.0, 196.0, 500.0, 100.0, 150.0],
                &[40.0, 48.0, 50.0, 80.0, 41.0],
            ),
        ];
        let lines = targets(&names, &f);
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert_eq!(
            lines[0],
            "target no program slower than glibc: \
             met (memio's time at most 0.98x glibc's, on python)"
        );
        assert_eq!(
            lines[1],
            "target Python at most 0.95x glibc's time: \
             not met (memio's time as a multiple of glibc's: python 0.98x)"
        );
        assert!(lines[2].contains(": not met ("), "{}", lines[2]);
        assert!(lines[3].contains("python 1.20x"), "{}", lines[3]);
        assert!(
            lines[4].contains("python 2.55x") && !lines[4].contains("churn"),
            "{}",
            lines[4]
        );
        let note = ratios(&names, &f[0]);
        assert!(
            note.ends_with(
                "memio 0.80x, 1.05x; \
                 memio, checks on 1.20x, 1.10x (1.50x the time with checks off); \
                 memio, huge pages 0.72x, 1.40x (0.90x the time and 1.33x the peak RSS \
                 without huge pages); mimalloc 0.90x, 1.20x"
            ),
            "{note}"
        );
    }

    #[test]
    fn without_memio_the_targets_are_not_judged() {
        let f = [figures(&PROGRAMS[0], &[100.0], &[10.0])];
        assert_eq!(
            targets(&[GLIBC], &f),
            vec!["targets not judged: memio did not run the programs"]
        );
    }
}
