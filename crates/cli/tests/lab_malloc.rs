//! `memio lab --only malloc` over the built binary: every allocator this
//! build has runs every workload in its own child process, with a time and
//! a peak RSS row each, and a geometric mean row per allocator.

use std::process::Command;

const MEMIO: &str = env!("CARGO_BIN_EXE_memio");

#[test]
fn the_malloc_section_measures_every_allocator_on_every_workload() {
    let out_dir =
        std::env::temp_dir().join(format!("memio-test-{}-lab-malloc", std::process::id()));
    let out = Command::new(MEMIO)
        .args(["lab", "--quick", "--only", "malloc", "--json", "--out"])
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
    assert_eq!(section["name"], "malloc");
    assert_eq!(section["reference"], "system");
    assert!(section["error"].is_null(), "{}", section["error"]);
    let rows = section["rows"].as_array().unwrap();
    let mut allocators = vec!["system", "memio"];
    if cfg!(feature = "mimalloc") {
        allocators.push("mimalloc");
    }
    if cfg!(feature = "jemalloc") {
        allocators.push("jemalloc");
    }
    let workloads: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    assert_eq!(workloads.len(), 9, "{workloads:?}"); // eight workloads and the geometric mean
    for workload in &workloads {
        for unit in ["µs/op", "MiB peak RSS"] {
            let of_it: Vec<_> = rows
                .iter()
                .filter(|r| r["workload"] == *workload && r["unit"] == unit)
                .collect();
            for a in &allocators {
                let row = of_it.iter().find(|r| r["mechanism"] == *a);
                let row = row.unwrap_or_else(|| panic!("no {a} row for {workload} ({unit})"));
                assert!(row["median"].as_f64().unwrap() > 0.0, "{row}");
            }
            assert!(
                of_it
                    .iter()
                    .any(|r| r["reference"] == true && r["mechanism"] == "system")
            );
        }
    }
    let notes = section["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("memio vs system: ")),
        "{notes:?}"
    );
}
