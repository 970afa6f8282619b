//! `memio lab --only locking` over the built binary: every row is measured,
//! the second process is cleaned up, and no scratch file is left behind.

use std::process::Command;

const MEMIO: &str = env!("CARGO_BIN_EXE_memio");

#[test]
fn the_locking_section_measures_every_row_and_leaves_nothing_behind() {
    let out_dir = std::env::temp_dir().join(format!("memio-test-{}-lab", std::process::id()));
    let out = Command::new(MEMIO)
        .args(["lab", "--quick", "--only", "locking", "--json", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let section = &report["sections"][0];
    assert_eq!(section["name"], "locking");
    assert_eq!(section["reference"], "OFD");
    assert!(section["error"].is_null(), "{}", section["error"]);
    let rows = section["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 14);
    for row in rows {
        assert!(row["median"].as_f64().unwrap() > 0.0, "{row}");
    }
    for workload in [
        "uncontended lock+unlock",
        "hand-off between 2 processes",
        "turn-taking on one lock, 2 processes",
        "2 writers, 64 B pwrite each",
    ] {
        let of_it: Vec<_> = rows.iter().filter(|r| r["workload"] == workload).collect();
        assert!(of_it.len() >= 3, "{workload}");
        assert!(
            of_it.iter().any(|r| r["reference"] == true),
            "{workload} has no OFD row"
        );
    }
    // Scratch files are memio-lab-<pid>-<n>-locking[.ringN]; only those
    // of a lab run that has ended (its pid is gone) count.
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("memio-lab-") && name.contains("-locking"))
        .filter(|name| {
            let pid = name.split('-').nth(2).unwrap_or("");
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "scratch files left behind: {leftovers:?}"
    );
}
