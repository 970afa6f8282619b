//! COVERAGE.md cannot rot: every path it names exists, every example it
//! names is listed in its crate's README, every example in the workspace
//! appears in it, and every row has a counterpart (a path, a command, or
//! the open issue that carries it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The issues whose counterparts may still be pending: memio-io part 2,
/// memio-ipc part 2, memio-kv, memio-malloc parts 1 and 2.
const OPEN_ISSUES: std::ops::RangeInclusive<u32> = 12..=16;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn coverage() -> String {
    std::fs::read_to_string(root().join("COVERAGE.md")).expect("COVERAGE.md at the repository root")
}

/// The table rows: (section, kind, counterpart).
fn rows(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| section"))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect();
            assert_eq!(cells.len(), 3, "a row has section, kind, counterpart: {l}");
            (cells[0].clone(), cells[1].clone(), cells[2].clone())
        })
        .collect()
}

/// Every backticked `crates/...` path in `text`.
fn paths(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("crates/"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_row_names_a_counterpart_or_the_open_issue_that_carries_it() {
    let text = coverage();
    let rows = rows(&text);
    assert!(rows.len() >= 50, "the table lost rows: {}", rows.len());
    for (section, kind, counterpart) in &rows {
        assert!(
            ["program", "listing", "exercise"].contains(&kind.as_str()),
            "{section}: kind {kind:?}"
        );
        assert!(!counterpart.is_empty(), "{section}: empty counterpart");
        let issue = counterpart
            .strip_prefix("issue ")
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u32>().ok());
        let named = !paths(counterpart).is_empty() || counterpart.contains("`memio ");
        match issue {
            Some(n) => assert!(OPEN_ISSUES.contains(&n), "{section}: issue {n} is not open"),
            None => assert!(
                named,
                "{section}: no path, command or issue in {counterpart:?}"
            ),
        }
    }
    // The seed's programs are all there, by kind.
    let programs = rows.iter().filter(|r| r.1 == "program").count();
    let exercises = rows.iter().filter(|r| r.1 == "exercise").count();
    assert_eq!(
        (programs, exercises),
        (17, 8),
        "seed programs and exercises"
    );
}

#[test]
fn every_named_path_exists() {
    for path in paths(&coverage()) {
        assert!(
            root().join(&path).is_file(),
            "COVERAGE.md names {path}, which does not exist"
        );
    }
}

#[test]
fn every_named_example_is_listed_in_its_crate_readme() {
    for path in paths(&coverage()) {
        let Some((krate, name)) = path
            .strip_prefix("crates/")
            .and_then(|p| p.split_once("/examples/"))
        else {
            continue;
        };
        let name = name.trim_end_matches(".rs");
        let readme = std::fs::read_to_string(root().join("crates").join(krate).join("README.md"))
            .unwrap_or_else(|e| panic!("crates/{krate}/README.md: {e}"));
        assert!(
            readme.contains(&format!("`{name}`")),
            "crates/{krate}/README.md does not list the example {name}"
        );
    }
}

#[test]
fn every_example_in_the_workspace_appears_in_the_table() {
    let named: BTreeSet<String> = paths(&coverage()).into_iter().collect();
    let crates = std::fs::read_dir(root().join("crates")).unwrap();
    for krate in crates.flatten() {
        let Ok(examples) = std::fs::read_dir(krate.path().join("examples")) else {
            continue;
        };
        for example in examples.flatten() {
            if example.path().extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let file = example.file_name().to_string_lossy().into_owned();
            let path = format!(
                "crates/{}/examples/{file}",
                krate.file_name().to_string_lossy()
            );
            assert!(named.contains(&path), "{path} is missing from COVERAGE.md");
        }
    }
}
