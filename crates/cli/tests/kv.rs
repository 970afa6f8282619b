//! `memio kv` over the built binary: outputs, exit codes, errors, and a
//! dump/load round trip with bytes that are not UTF-8.

mod common;

use common::{TempDir, code, memio, stderr, stdout};

#[test]
fn set_get_del_list_and_exit_codes() {
    let dir = TempDir::new("kv");
    let db = dir.0.join("s.kv");
    let db = db.to_str().unwrap();
    for (k, v) in [("apple", "1"), ("banana", "2"), ("cherry", "3")] {
        let out = memio(&["kv", "--db", db, "set", k, v]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let out = memio(&["kv", "--db", db, "get", "banana"]);
    assert_eq!((code(&out), stdout(&out)), (0, "2\n".into()));
    let out = memio(&["kv", "--db", db, "get", "durian"]);
    assert_eq!(code(&out), 1);
    assert_eq!(stderr(&out), "memio: durian: no such key\n");
    let out = memio(&["kv", "--db", db, "get", ""]);
    assert_eq!(code(&out), 1);
    assert_eq!(stderr(&out), "memio: '': no such key\n");
    // Output that cannot be written names stdout.
    for args in [&["get", "banana"][..], &["dump"]] {
        let out = std::process::Command::new(common::MEMIO)
            .args(["kv", "--db", db])
            .args(args)
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{args:?}");
        assert_eq!(
            stderr(&out),
            "memio: stdout: no space left on device\n",
            "{args:?}"
        );
    }
    let out = memio(&["kv", "--db", db, "list", "--range", "b..c", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v, serde_json::json!([{"key": "banana", "value": "2"}]));
    let out = memio(&["kv", "--db", db, "list", "--prefix", "ch"]);
    assert!(
        stdout(&out).contains("cherry") && !stdout(&out).contains("apple"),
        "{}",
        stdout(&out)
    );
    assert_eq!(code(&memio(&["kv", "--db", db, "del", "apple"])), 0);
    assert_eq!(code(&memio(&["kv", "--db", db, "del", "apple"])), 1);
    let out = memio(&["kv", "--db", db, "stats", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["live_keys"], 2);
}

#[test]
fn dump_and_load_round_trip_binary_bytes() {
    let dir = TempDir::new("kv-dump");
    let src = dir.0.join("a.kv");
    let dst = dir.0.join("b.kv");
    let lines = "{\"key\":\"text\",\"value\":\"héllo\"}\n{\"key_base64\":\"/wA=\",\"value_base64\":\"AAH+\"}\n";
    let input = dir.0.join("in.jsonl");
    std::fs::write(&input, lines).unwrap();
    let out = memio(&[
        "kv",
        "--db",
        src.to_str().unwrap(),
        "load",
        input.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let dump = memio(&["kv", "--db", src.to_str().unwrap(), "dump"]);
    let dumped = dir.0.join("dump.jsonl");
    std::fs::write(&dumped, &dump.stdout).unwrap();
    let out = memio(&[
        "kv",
        "--db",
        dst.to_str().unwrap(),
        "load",
        dumped.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let again = memio(&["kv", "--db", dst.to_str().unwrap(), "dump"]);
    assert_eq!(again.stdout, dump.stdout);
    assert!(
        stdout(&dump).contains("\"key_base64\":\"/wA=\""),
        "{}",
        stdout(&dump)
    );
}

#[test]
fn bad_files_are_named_in_errors() {
    let dir = TempDir::new("kv-bad");
    let junk = dir.0.join("junk");
    std::fs::write(&junk, vec![7u8; 5000]).unwrap();
    let out = memio(&["kv", "--db", junk.to_str().unwrap(), "get", "k"]);
    assert_eq!(code(&out), 2);
    assert_eq!(
        stderr(&out),
        format!(
            "memio: {}: not a memio-kv store (no memio-kv magic at offset 0)\n",
            junk.display()
        )
    );
    let missing = dir.0.join("missing.kv");
    let out = memio(&["kv", "--db", missing.to_str().unwrap(), "list"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("missing.kv: no such store"),
        "{}",
        stderr(&out)
    );
    let out = memio(&[
        "kv",
        "--db",
        missing.to_str().unwrap(),
        "list",
        "--range",
        "nodots",
    ]);
    assert_eq!(code(&out), 2);
}
