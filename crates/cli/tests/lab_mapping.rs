//! The `mapping` lab section runs end to end on small sizes and reports
//! every group of rows, with ratios only against `read()` for the file rows.

use std::process::Command;

use serde_json::Value;

#[test]
fn mapping_section_reports_every_group() {
    let out_dir =
        std::env::temp_dir().join(format!("memio-lab-mapping-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_memio"))
        .args([
            "lab",
            "--only",
            "mapping",
            "--max-size",
            "1M",
            "--json",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&out_dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let section = &report["sections"][0];
    assert_eq!(section["name"], "mapping");
    assert!(section["error"].is_null(), "{}", section["error"]);
    let rows = section["rows"].as_array().unwrap();
    let has = |mechanism: &str, workload: &str| {
        rows.iter().any(|r| {
            r["mechanism"] == mechanism
                && r["workload"].as_str().is_some_and(|w| w.contains(workload))
        })
    };
    for (m, w) in [
        ("read() 1 MiB buffer", "1 MiB warm"),
        ("mmap", "1 MiB warm"),
        ("mmap + MAP_POPULATE", "1 MiB evicted"),
        ("first touch (page fault)", "per 4 KiB page"),
        ("MADV_HUGEPAGE (THP), then touch", "per 4 KiB page"),
        ("anonymous mmap (Region)", "allocate and free"),
        ("malloc (Vec::with_capacity)", "touch every page"),
        ("mlock fresh memory", "per MiB"),
        ("plain copy (memcpy, heap to heap)", "copy 4 KiB"),
        ("Region::read_at, shared (8-byte atomics)", "copy 64 KiB"),
        ("Region::write_at, shared (4-byte atomics)", "copy 1 MiB"),
        ("Region::read_at, shared (1-byte atomics)", "copy 4 KiB"),
        (
            "Region::write_at, private anonymous (plain copy)",
            "copy 1 MiB",
        ),
    ] {
        assert!(has(m, w), "no row {m} / {w}");
    }
    for r in rows {
        assert!(r["median"].as_f64().unwrap() > 0.0, "{r}");
        assert!(
            r["ratio"].as_f64().is_some_and(|x| x > 0.0),
            "every row has a ratio to its workload's reference: {r}"
        );
    }
}
