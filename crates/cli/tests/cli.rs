//! The conventions every `memio` command shares, checked over the built
//! binary: help and version, usage errors, size arguments, and the lab.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{MEMIO, TempDir, memio, text};

fn read_report(dir: &Path) -> serde_json::Value {
    let raw = std::fs::read_to_string(dir.join("report.json")).expect("report.json written");
    serde_json::from_str(&raw).expect("report.json is JSON")
}

fn rows(report: &serde_json::Value, section: &str) -> Vec<serde_json::Value> {
    report["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["name"] == section)
        .unwrap_or_else(|| panic!("section {section} in report"))["rows"]
        .as_array()
        .expect("rows")
        .clone()
}

#[test]
fn help_lists_the_commands_on_stdout() {
    let out = memio(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("lab"), "{stdout}");
    assert!(stdout.contains("Exit status"), "{stdout}");
    assert!(out.stderr.is_empty());
}

#[test]
fn version_names_the_release_the_commit_and_the_lab_peers() {
    let out = memio(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let version = text(&out.stdout);
    let version = version.trim();
    assert!(
        version.starts_with(&format!("memio {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    // The commit is a hex hash from git, or "unknown" outside a checkout.
    let commit = version
        .split("(commit ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or_default();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{version}"
    );
    let peers = version.split("lab peers: ").nth(1).unwrap_or_default();
    if cfg!(feature = "sqlite") {
        assert!(peers.contains("sqlite"), "{version}");
    } else {
        assert!(!peers.contains("sqlite"), "{version}");
    }
}

#[test]
fn completions_and_man_pages_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = memio(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(
            script.contains("memio") && script.contains("xattr"),
            "{shell}"
        );
        assert!(
            !script.contains("--peer"),
            "the lab's peer entry stays hidden"
        );
    }
    let out = memio(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));

    let out = memio(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = text(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH memio"),
        "{page}"
    );
    let dir = TempDir::new("man");
    let out = memio(&["man", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for page in ["memio.1", "memio-lab.1", "memio-xattr.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
}

#[test]
fn bash_loads_the_completions() {
    let script = format!("source <('{MEMIO}' completions bash) && complete -p memio");
    let out = match Command::new("bash").args(["-c", &script]).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: bash is not available ({e})");
            return;
        }
    };
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("memio"), "{}", text(&out.stdout));
}

#[test]
fn unknown_flag_is_a_usage_error_on_stderr() {
    for args in [&["--bogus"][..], &["lab", "--bogus"], &["nosuchcommand"]] {
        let out = memio(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: stdout must stay clean");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("memio: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = memio(&[]);
    assert_eq!(out.status.code(), Some(2), "no command is a usage error");
    assert!(
        text(&out.stderr).contains("Usage: memio"),
        "and shows the usage"
    );
    let stderr = text(&memio(&["lab", "--bogus"]).stderr);
    assert!(
        stderr.contains("--bogus"),
        "the message names the flag: {stderr}"
    );
}

#[test]
fn garbage_sizes_are_usage_errors_naming_the_input() {
    for bad in ["garbage", "4x", "-1", "1.1", "99999999999E"] {
        let out = memio(&[
            "lab",
            "--only",
            "memory",
            "--max-size",
            bad,
            "--out",
            "/nonexistent",
        ]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("memio: "), "{stderr}");
        assert!(stderr.contains(bad), "names the input {bad}: {stderr}");
        assert_eq!(
            stderr.matches("memio:").count(),
            1,
            "one error, printed once: {stderr}"
        );
    }
    let out = memio(&["lab", "--max-size", "1k", "--out", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--max-size"));
}

#[test]
fn binary_and_decimal_suffixes_reach_the_lab() {
    // 64KiB admits the 64 KiB buffer; 64KB (64000 bytes) stops below it.
    for (arg, largest) in [("64KiB", 65_536), ("64k", 65_536), ("64KB", 4096)] {
        let dir = TempDir::new(&format!("size-{arg}"));
        let dir_arg = dir.path().to_str().unwrap();
        let out = memio(&[
            "lab",
            "--only",
            "memory",
            "--max-size",
            arg,
            "--out",
            dir_arg,
            "-q",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let report = read_report(dir.path());
        let max = rows(&report, "memory")
            .iter()
            .map(|r| r["params"]["bytes"].as_u64().expect("bytes is a number"))
            .max();
        assert_eq!(max, Some(largest), "--max-size {arg}");
    }
}

#[test]
fn lab_lists_its_sections_and_rejects_unknown_ones() {
    let out = memio(&["lab", "--list"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).lines().any(|l| l.starts_with("memory ")));

    let out = memio(&["lab", "--only", "memory,nosuch", "--out", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("memio: --only nosuch: no such lab section"),
        "{stderr}"
    );
    assert!(
        stderr.contains("memory"),
        "lists the known sections: {stderr}"
    );
}

#[test]
fn lab_reports_an_unwritable_output_folder() {
    let file = TempDir::new("outfile");
    let not_a_dir = file.path().join("plain-file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let out = memio(&[
        "lab",
        "--only",
        "memory",
        "--out",
        not_a_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "memio: {}: cannot create the report folder",
            not_a_dir.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&not_a_dir).unwrap(),
        b"x",
        "the file is left alone"
    );
}

#[test]
fn lab_memory_writes_a_report_with_positive_figures_and_charts() {
    let dir = TempDir::new("lab");
    let out = memio(&[
        "lab",
        "--quick",
        "--only",
        "memory",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("copy_from_slice (memcpy)"), "{stdout}");
    assert!(stdout.contains("report: "), "{stdout}");

    let report = read_report(dir.path());
    assert_eq!(report["schema"], "memio-lab/1");
    assert_eq!(report["mode"], "quick");
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert!(report["limits"]["memcpy_gbps"].as_f64().unwrap() > 0.0);
    let rows = rows(&report, "memory");
    // 5 sizes x (4 primitives + 3 searches) + plain loops up to 16 MiB.
    assert!(rows.len() >= 35, "{} rows", rows.len());
    for row in &rows {
        for field in ["median", "min", "max"] {
            let v = row[field]
                .as_f64()
                .unwrap_or_else(|| panic!("{field} is a number: {row}"));
            assert!(v > 0.0 && v.is_finite(), "{field} positive: {row}");
        }
        assert!(row["min"].as_f64() <= row["median"].as_f64());
        assert!(row["median"].as_f64() <= row["max"].as_f64());
        assert!(
            row["ratio"].as_f64().is_some_and(|r| r > 0.0),
            "ratio: {row}"
        );
        assert_eq!(row["unit"], "GB/s");
        assert!(row["params"]["bytes"].is_u64());
    }
    let refs = rows.iter().filter(|r| r["reference"] == true).count();
    assert_eq!(refs, 5, "one reference row per buffer size");

    let html = std::fs::read_to_string(dir.path().join("index.html")).expect("index.html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg"), "a chart");
    assert!(html.contains("copy_from_slice (memcpy)"));
    assert!(!html.contains("<script"), "self-contained, no scripts");
}

#[test]
fn the_report_opens_with_the_machine_contents_and_verdicts() {
    let dir = TempDir::new("verdicts");
    let out = memio(&[
        "lab",
        "--only",
        "memory,allocation",
        "--max-size",
        "64k",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("verdict: memcpy (copy_from_slice): "),
        "{stdout}"
    );
    assert!(stdout.contains("verdict: alloc+free: at 16 B "), "{stdout}");
    assert!(
        !stdout.contains("NOT met") && !stdout.contains("target:"),
        "{stdout}"
    );
    let report = read_report(dir.path());
    for s in report["sections"].as_array().unwrap() {
        let verdict = s["verdict"].as_array().unwrap();
        assert!((1..=3).contains(&verdict.len()), "{}", s["verdict"]);
    }
    let peers = report["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 6);
    for p in peers {
        let name = p["name"].as_str().unwrap();
        let built = p["built"].as_bool().unwrap();
        // The CLI's features are the lab's: a default build has them all.
        assert_eq!(built, cfg!(feature = "sqlite"), "{name}");
    }
    assert!(
        report["machine"]["limits"]["memlock_bytes"].is_u64()
            || report["machine"]["limits"]["memlock_bytes"].is_null()
    );
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    let at = |what: &str| {
        html.find(what)
            .unwrap_or_else(|| panic!("{what} in the page"))
    };
    assert!(at("Machine and limits") < at("<nav>"));
    assert!(at("<nav>") < at("<section id=\"memory\">"));
    assert!(html.contains("<ul class=\"verdict\">"));
    assert!(html.contains("<details><summary>Table: "));
    assert!(html.contains("(throughput, higher is better)"));
    assert!(!html.contains("<script") && !html.contains("https://"));
}

#[test]
fn compare_gives_each_row_its_ratio_to_an_earlier_run() {
    let old = TempDir::new("old");
    let new = TempDir::new("new");
    let run = |dir: &TempDir, extra: &[&str]| {
        let mut args = vec!["lab", "--only", "memory", "--max-size", "4k", "--out"];
        args.push(dir.path().to_str().unwrap());
        args.extend_from_slice(extra);
        memio(&args)
    };
    let out = run(&old, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let old_json = old.path().join("report.json");
    let out = run(&new, &["--compare", old_json.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("VS OLD"), "{stdout}");
    assert!(
        stdout.contains(&format!("vs old: this run against {}", old_json.display())),
        "{stdout}"
    );
    let report = read_report(new.path());
    let old_report = read_report(old.path());
    let compared = report["comparison"]["rows"].as_array().unwrap();
    assert_eq!(compared.len(), rows(&report, "memory").len());
    for c in compared {
        let before = rows(&old_report, "memory")
            .into_iter()
            .find(|r| r["mechanism"] == c["mechanism"] && r["workload"] == c["workload"])
            .unwrap();
        assert_eq!(c["old"], before["median"]);
        let ratio = c["new"].as_f64().unwrap() / c["old"].as_f64().unwrap();
        assert!((c["ratio"].as_f64().unwrap() - ratio).abs() < 1e-9, "{c}");
    }
    let html = std::fs::read_to_string(new.path().join("index.html")).unwrap();
    assert!(html.contains("<th>vs old</th>") && html.contains("Compared with"));

    // A missing, garbled or foreign file: one error naming it, status 2.
    let garbage = old.path().join("garbage.json");
    std::fs::write(&garbage, "{\"schema\": 7").unwrap();
    let foreign = old.path().join("foreign.json");
    std::fs::write(&foreign, "{\"name\": \"not a report\"}").unwrap();
    let missing = old.path().join("missing.json");
    for (file, why) in [
        (&garbage, "not a lab report: not JSON"),
        (&foreign, "not a lab report: schema is missing"),
        (&missing, "no such file or directory"),
    ] {
        let out = run(&new, &["--compare", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", file.display());
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with(&format!("memio: {}: {why}", file.display())),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "nothing runs before the check");
    }
}

#[test]
fn json_goes_to_stdout_and_matches_the_file() {
    let dir = TempDir::new("json");
    let out = memio(&[
        "lab",
        "--only",
        "memory",
        "--max-size",
        "4k",
        "--json",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(printed, read_report(dir.path()));
}

#[test]
fn closed_stdout_exits_quietly() {
    let dir = TempDir::new("pipe");
    let mut child = Command::new(MEMIO)
        .args([
            "lab",
            "--only",
            "memory",
            "--max-size",
            "4k",
            "--json",
            "--out",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn memio");
    drop(child.stdout.take()); // the reader goes away before memio writes
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn quiet_and_verbose_conflict() {
    let out = memio(&["-q", "-v", "lab", "--list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("memio: "));
}

#[test]
fn the_memory_section_measures_bzero_memccpy_and_mempcpy() {
    let dir = TempDir::new("legacy-bytes");
    let out = memio(&[
        "lab",
        "--only",
        "memory",
        "--max-size",
        "4KiB",
        "--out",
        dir.path().to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = read_report(dir.path());
    let rows = rows(&report, "memory");
    for mechanism in [
        "fill(0) (bzero)",
        "copy_until (memccpy)",
        "copy_advance (mempcpy)",
    ] {
        let row = rows
            .iter()
            .find(|r| r["mechanism"] == mechanism)
            .unwrap_or_else(|| panic!("no {mechanism} row in {rows:?}"));
        assert_eq!(row["unit"], "GB/s", "{row}");
        assert!(row["median"].as_f64().unwrap() > 0.0, "{row}");
    }
}
