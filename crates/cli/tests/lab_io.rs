//! `memio lab --only copy,async-read` over the built binary: every row is
//! measured, the copies and reads check their own results, and no scratch
//! file is left behind.

use std::process::Command;

const MEMIO: &str = env!("CARGO_BIN_EXE_memio");

#[test]
fn the_copy_and_async_read_sections_measure_every_row_and_leave_nothing_behind() {
    let out_dir = std::env::temp_dir().join(format!("memio-test-{}-lab-io", std::process::id()));
    let child = Command::new(MEMIO)
        .args([
            "lab",
            "--quick",
            "--only",
            "copy,async-read",
            "--json",
            "--out",
        ])
        .arg(&out_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sections = report["sections"].as_array().unwrap();
    let names: Vec<&str> = sections
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["copy", "async-read"]);
    for (section, reference, least) in [
        (&sections[0], "GNU cp", 14),
        (&sections[1], "sequential (read one file after another)", 14),
    ] {
        assert!(section["error"].is_null(), "{}", section["error"]);
        assert_eq!(section["reference"], reference);
        let rows = section["rows"].as_array().unwrap();
        assert!(rows.len() >= least, "{} rows", rows.len());
        for row in rows {
            assert!(row["median"].as_f64().unwrap() > 0.0, "{row}");
        }
    }
    let leftovers: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&format!("-{pid}-")))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
