//! `memio ipc`, `mq`, `shm` and `sem` over the built binary: every
//! primitive between separate processes, the listing and removal as
//! util-linux `ipcs` sees them, and bad input.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use memio::ipc::mq::posix::PosixMq;
use memio::ipc::mq::sysv::SysvMq;
use memio::ipc::sem::posix::NamedSem;
use memio::ipc::sem::sysv::SemSet;
use memio::ipc::shm::sysv::SysvShm;

mod common;

fn memio(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memio"))
        .args(args)
        .output()
        .unwrap()
}

fn memio_stdin(args: &[&str], input: &[u8]) -> Output {
    common::output_with_stdin(Command::new(common::MEMIO).args(args), input)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}, stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn fails(out: &Output, code: i32, stderr: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(stderr), "expected {stderr:?} in {err:?}");
    assert!(err.starts_with("memio: "), "{err}");
}

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "/memio-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A System V key no other test uses.
fn unique_key() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let k =
        (0x4d00_0000u32 | ((std::process::id() & 0xfff) << 8)) + N.fetch_add(1, Ordering::Relaxed);
    format!("0x{k:08x}")
}

enum Guard {
    Mq(String),
    Shm(String),
    Sem(String),
    SysvMq(String),
    SysvShm(String),
    SysvSem(String),
}

impl Drop for Guard {
    fn drop(&mut self) {
        let key = |k: &str| k.parse::<memio::ipc::Key>().unwrap();
        let c = memio::ipc::Create::Open;
        let _ = match self {
            Guard::Mq(n) => PosixMq::unlink(n).map_err(drop),
            Guard::Shm(n) => memio::ipc::shm::posix::unlink(n).map_err(drop),
            Guard::Sem(n) => NamedSem::unlink(n).map_err(drop),
            Guard::SysvMq(k) => SysvMq::get(key(k), c)
                .and_then(SysvMq::remove)
                .map_err(drop),
            Guard::SysvShm(k) => SysvShm::get(key(k), 0, c)
                .and_then(SysvShm::remove)
                .map_err(drop),
            Guard::SysvSem(k) => SemSet::get(key(k), 0, c)
                .and_then(SemSet::remove)
                .map_err(drop),
        };
    }
}

#[test]
fn posix_queue_messages_cross_processes_by_priority() {
    let q = unique("mq");
    let _g = Guard::Mq(q.clone());
    ok(&memio(&[
        "mq",
        "create",
        &q,
        "--capacity",
        "4",
        "--msg-size",
        "64",
    ]));
    // A receiver started first blocks until a sender process delivers.
    let receiver = Command::new(env!("CARGO_BIN_EXE_memio"))
        .args(["mq", "recv", &q, "--timeout", "60s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    ok(&memio(&["mq", "send", &q, "first"]));
    assert_eq!(ok(&receiver.wait_with_output().unwrap()), "first\n");
    ok(&memio(&["mq", "send", &q, "low", "-p", "1"]));
    ok(&memio_stdin(&["mq", "send", &q, "-p", "30"], b"from stdin"));
    let attr = ok(&memio(&["mq", "attr", &q, "--json"]));
    let v: serde_json::Value = serde_json::from_str(&attr).unwrap();
    assert_eq!(
        (
            v["capacity"].as_u64(),
            v["msg_size"].as_u64(),
            v["messages"].as_u64()
        ),
        (Some(4), Some(64), Some(2))
    );
    let got: serde_json::Value =
        serde_json::from_str(&ok(&memio(&["mq", "recv", &q, "--json"]))).unwrap();
    assert_eq!(
        (got["text"].as_str(), got["priority"].as_u64()),
        (Some("from stdin"), Some(30))
    );
    assert_eq!(ok(&memio(&["mq", "recv", &q, "--raw"])), "low");
    fails(
        &memio(&["mq", "recv", &q, "--nonblock"]),
        1,
        &format!("message queue '{q}': empty"),
    );
    fails(
        &memio(&["mq", "recv", &q, "--timeout", "50ms"]),
        1,
        "no message before the timeout expired",
    );
    for _ in 0..4 {
        ok(&memio(&["mq", "send", &q, "x", "--nonblock"]));
    }
    fails(&memio(&["mq", "send", &q, "x", "--nonblock"]), 1, ": full");
    fails(
        &memio(&["mq", "send", &q, "x", "--timeout", "50ms"]),
        1,
        "still full",
    );
    ok(&memio(&["mq", "rm", &q]));
    fails(&memio(&["mq", "rm", &q]), 1, "no such file or directory");
}

#[test]
fn posix_queue_bad_input_gives_clear_errors() {
    fails(
        &memio(&["mq", "create", "jobs"]),
        2,
        "invalid name 'jobs': must start with '/'",
    );
    fails(
        &memio(&["mq", "create", "/a/b"]),
        2,
        "must not contain a '/'",
    );
    let q = unique("limits");
    let _g = Guard::Mq(q.clone());
    let msg_max = std::fs::read_to_string("/proc/sys/fs/mqueue/msg_max").unwrap();
    let msg_max: u64 = msg_max.trim().parse().unwrap();
    let over = (msg_max + 1).to_string();
    fails(
        &memio(&["mq", "create", &q, "--capacity", &over]),
        2,
        &format!("the system limit is {msg_max} (/proc/sys/fs/mqueue/msg_max)"),
    );
    fails(
        &memio(&["mq", "create", &q, "--msg-size", "1G"]),
        2,
        "(/proc/sys/fs/mqueue/msgsize_max)",
    );
    fails(
        &memio(&["mq", "create", &q, "--capacity", "0"]),
        2,
        "memio: --capacity 0: a queue holds at least 1 message",
    );
    fails(
        &memio(&["shm", "create", &q, "--size", "0"]),
        2,
        &format!("memio: {q}: cannot create shared memory of 0 bytes"),
    );
    fails(
        &memio(&["shm", "create", &q, "--size", "0", "--open-or-create"]),
        2,
        &format!("memio: {q}: cannot open or create shared memory of 0 bytes"),
    );
    ok(&memio(&["mq", "create", &q, "--msg-size", "16"]));
    fails(
        &memio(&["mq", "create", &q]),
        1,
        &format!("memio: message queue '{q}': cannot create: already exists"),
    );
    ok(&memio(&["mq", "create", &q, "--open-or-create"]));
    fails(
        &memio(&["mq", "send", &q, "seventeen bytes!!"]),
        2,
        &format!("message of 17 bytes is larger than the 16-byte limit of message queue '{q}'"),
    );
    fails(
        &memio(&["mq", "send", &unique("missing"), "x"]),
        1,
        "no such file or directory",
    );
    fails(
        &memio(&["mq", "recv", &q, "--type", "2"]),
        2,
        "System V queues only",
    );
    fails(
        &memio(&["mq", "send", &q, "x", "--priority", "40000"]),
        2,
        "above 32767",
    );
}

#[test]
fn sysv_queue_selects_by_type_from_the_shell() {
    let key = unique_key();
    let _g = Guard::SysvMq(key.clone());
    let id = ok(&memio(&["mq", "create", "--sysv", &key]));
    assert!(id.trim().parse::<i32>().is_ok(), "prints the id: {id}");
    for (t, m) in [("3", "three"), ("1", "one"), ("2", "two")] {
        ok(&memio(&["mq", "send", "--sysv", &key, m, "--type", t]));
    }
    assert_eq!(
        ok(&memio(&["mq", "recv", "--sysv", &key, "--type", "2"])),
        "two\n"
    );
    assert_eq!(
        ok(&memio(&["mq", "recv", "--sysv", &key, "--at-most", "3"])),
        "one\n"
    );
    let by_id = format!("id:{}", id.trim());
    assert_eq!(ok(&memio(&["mq", "recv", "--sysv", &by_id])), "three\n");
    fails(
        &memio(&["mq", "recv", "--sysv", &key, "--nonblock"]),
        1,
        "empty",
    );
    let attr: serde_json::Value =
        serde_json::from_str(&ok(&memio(&["mq", "attr", "--sysv", &key, "--json"]))).unwrap();
    assert_eq!(
        (attr["messages"].as_u64(), attr["perms"].as_str()),
        (Some(0), Some("600"))
    );
    fails(
        &memio(&["mq", "send", "--sysv", &key, &"x".repeat(9000)]),
        2,
        "/proc/sys/kernel/msgmax",
    );
    fails(
        &memio(&["mq", "send", "--sysv", "nonsense", "x"]),
        2,
        "invalid key 'nonsense'",
    );
    ok(&memio(&["mq", "rm", "--sysv", &key]));
    fails(&memio(&["mq", "rm", "--sysv", &key]), 1, "no such object");
}

#[test]
fn shared_memory_written_by_one_process_is_read_by_another() {
    let name = unique("shm");
    let _g = Guard::Shm(name.clone());
    ok(&memio(&["shm", "create", &name, "--size", "1k"]));
    ok(&memio(&[
        "shm",
        "write",
        &name,
        "Hello, POSIX shared memory!",
        "--nul",
    ]));
    assert_eq!(
        ok(&memio(&["shm", "read", &name, "--cstr"])),
        "Hello, POSIX shared memory!\n"
    );
    ok(&memio_stdin(
        &["shm", "write", &name, "--offset", "1000"],
        b"tail",
    ));
    assert_eq!(
        ok(&memio(&[
            "shm", "read", &name, "--offset", "1000", "--len", "4"
        ])),
        "tail"
    );
    assert_eq!(ok(&memio(&["shm", "read", &name])).len(), 1024);
    fails(
        &memio(&["shm", "write", &name, "xy", "--offset", "1023"]),
        2,
        "outside its 1024 bytes",
    );
    fails(
        &memio(&["shm", "read", &name, "--offset", "2k"]),
        2,
        "past its end",
    );
    fails(
        &memio(&["shm", "create", &name, "--size", "1k"]),
        1,
        &format!("memio: shared memory '{name}': cannot create: already exists"),
    );
    fails(
        &memio(&["shm", "create", "bad", "--size", "1k"]),
        2,
        "invalid name 'bad'",
    );

    let key = unique_key();
    let _g2 = Guard::SysvShm(key.clone());
    ok(&memio(&["shm", "create", "--sysv", &key, "--size", "4k"]));
    ok(&memio(&["shm", "write", "--sysv", &key, "segment data"]));
    assert_eq!(
        ok(&memio(&["shm", "read", "--sysv", &key, "--len", "12"])),
        "segment data"
    );
    ok(&memio(&["shm", "rm", "--sysv", &key]));
    ok(&memio(&["shm", "rm", &name]));
    fails(
        &memio(&["shm", "read", &name]),
        1,
        "no such file or directory",
    );
}

#[test]
fn semaphores_hand_off_between_processes() {
    let name = unique("sem");
    let _g = Guard::Sem(name.clone());
    ok(&memio(&["sem", "create", &name]));
    // A waiter in another process blocks until this one posts.
    let waiter = Command::new(env!("CARGO_BIN_EXE_memio"))
        .args(["sem", "wait", &name, "--timeout", "60s"])
        .spawn()
        .unwrap();
    ok(&memio(&["sem", "post", &name]));
    assert!(waiter.wait_with_output().unwrap().status.success());
    assert_eq!(ok(&memio(&["sem", "get", &name])), "0\n");
    fails(
        &memio(&["sem", "wait", &name, "--nonblock"]),
        1,
        &format!("semaphore '{name}': value is 0"),
    );
    fails(
        &memio(&["sem", "wait", &name, "--timeout", "50ms"]),
        1,
        "still 0",
    );

    let key = unique_key();
    let _g2 = Guard::SysvSem(key.clone());
    ok(&memio(&[
        "sem", "create", "--sysv", &key, "--count", "3", "--value", "1",
    ]));
    ok(&memio(&["sem", "post", "--sysv", &key, "--index", "2"]));
    ok(&memio(&["sem", "wait", "--sysv", &key, "--index", "0"]));
    assert_eq!(ok(&memio(&["sem", "get", "--sysv", &key])), "0 1 2\n");
    fails(
        &memio(&["sem", "wait", "--sysv", &key, "--nonblock"]),
        1,
        "value is 0",
    );
    // Open-or-create leaves an existing set's values alone.
    ok(&memio(&[
        "sem",
        "create",
        "--sysv",
        &key,
        "--count",
        "3",
        "--value",
        "9",
        "--open-or-create",
    ]));
    assert_eq!(ok(&memio(&["sem", "get", "--sysv", &key])), "0 1 2\n");
    ok(&memio(&["sem", "rm", "--sysv", &key]));
    ok(&memio(&["sem", "rm", &name]));
}

fn ipcs(flag: &str) -> Option<String> {
    let out = Command::new("ipcs").arg(flag).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `ipcs` line of the object with this key, if listed.
fn ipcs_line(flag: &str, key: &str) -> Option<String> {
    ipcs(flag)?
        .lines()
        .find(|l| l.starts_with(key))
        .map(str::to_owned)
}

#[test]
fn objects_show_in_ipcs_with_mode_0600_and_go_with_ipc_rm() {
    if ipcs("-q").is_none() {
        eprintln!("skipped: util-linux ipcs is not installed");
        return;
    }
    let (q, m, s) = (unique_key(), unique_key(), unique_key());
    let _g = (
        Guard::SysvMq(q.clone()),
        Guard::SysvShm(m.clone()),
        Guard::SysvSem(s.clone()),
    );
    let qid = ok(&memio(&["mq", "create", "--sysv", &q]))
        .trim()
        .to_owned();
    ok(&memio(&["shm", "create", "--sysv", &m, "--size", "8k"]));
    ok(&memio(&["sem", "create", "--sysv", &s, "--count", "2"]));
    for (flag, key) in [("-q", &q), ("-m", &m), ("-s", &s)] {
        let line =
            ipcs_line(flag, key).unwrap_or_else(|| panic!("ipcs {flag} does not list {key}"));
        let perms = line.split_whitespace().nth(3).unwrap();
        assert_eq!(perms, "600", "{line}");
    }
    // memio's own listing agrees.
    let ls: serde_json::Value =
        serde_json::from_str(&ok(&memio(&["ipc", "ls", "--sysv", "--json"]))).unwrap();
    let objects = ls["objects"].as_array().unwrap();
    for key in [&q, &m, &s] {
        let o = objects
            .iter()
            .find(|o| o["key"].as_str() == Some(key))
            .unwrap();
        assert_eq!(o["perms"].as_str(), Some("600"));
    }
    let text = ok(&memio(&["ipc", "ls", "-m"]));
    assert!(
        text.contains(m.as_str()) && !text.contains(q.as_str()),
        "{text}"
    );
    // Removed by id, by key, by key.
    ok(&memio(&["ipc", "rm", "-Q", "--id", &qid]));
    ok(&memio(&["ipc", "rm", "-m", "--key", &m]));
    ok(&memio(&["ipc", "rm", "-s", "--key", &s]));
    for (flag, key) in [("-q", &q), ("-m", &m), ("-s", &s)] {
        assert_eq!(
            ipcs_line(flag, key),
            None,
            "{key} still listed by ipcs {flag}"
        );
    }
    fails(
        &memio(&["ipc", "rm", "-Q", "--id", &qid]),
        1,
        "no such object",
    );
    fails(&memio(&["ipc", "rm", "--id", "1"]), 2, "say which kind");

    // POSIX objects by name.
    let (shm, sem) = (unique("ls"), unique("ls"));
    let _g2 = (Guard::Shm(shm.clone()), Guard::Sem(sem.clone()));
    ok(&memio(&["shm", "create", &shm, "--size", "4k"]));
    ok(&memio(&["sem", "create", &sem]));
    let text = ok(&memio(&["ipc", "ls", "--posix"]));
    assert!(text.contains(&shm) && text.contains(&sem), "{text}");
    let line = text.lines().find(|l| l.contains(&shm)).unwrap();
    assert!(line.contains(" 600 ") && line.contains("4096"), "{line}");
    ok(&memio(&["ipc", "rm", &shm]));
    ok(&memio(&["ipc", "rm", "-s", &sem]));
    fails(&memio(&["ipc", "rm", &shm]), 1, "no such object");
}

#[test]
fn ipc_rm_removes_only_the_kind_asked_and_refuses_an_ambiguous_name() {
    let name = unique("dup");
    let _g = (
        Guard::Shm(name.clone()),
        Guard::Sem(name.clone()),
        Guard::Mq(name.clone()),
    );
    ok(&memio(&["shm", "create", &name, "--size", "1k"]));
    ok(&memio(&["sem", "create", &name]));
    ok(&memio(&["mq", "create", &name]));
    // No kind and three objects of that name: nothing is removed.
    let out = memio(&["ipc", "rm", &name]);
    fails(&out, 2, "several objects have this name");
    let err = String::from_utf8_lossy(&out.stderr);
    for what in [
        "POSIX message queue",
        "POSIX shared memory",
        "POSIX semaphore",
    ] {
        assert!(err.contains(what), "{err}");
    }
    assert!(memio::ipc::shm::posix::open(&name).is_ok());
    assert!(NamedSem::open(&name).is_ok());
    assert!(PosixMq::open(&name).is_ok());
    // -m removes the segment only.
    ok(&memio(&["ipc", "rm", "-m", &name]));
    assert!(memio::ipc::shm::posix::open(&name).is_err());
    assert!(NamedSem::open(&name).is_ok());
    assert!(PosixMq::open(&name).is_ok());
    ok(&memio(&["ipc", "rm", "-Q", &name]));
    assert!(PosixMq::open(&name).is_err());
    // One object left of that name: no kind needed.
    ok(&memio(&["ipc", "rm", &name]));
    assert!(NamedSem::open(&name).is_err());
}

#[test]
fn ipc_rm_takes_several_objects_and_reports_each_missing_one() {
    let (a, b, gone) = (unique("many"), unique("many"), unique("many"));
    let _g = (Guard::Sem(a.clone()), Guard::Sem(b.clone()));
    ok(&memio(&["sem", "create", &a]));
    ok(&memio(&["sem", "create", &b]));
    let out = memio(&["ipc", "rm", "-s", &a, &gone, &b]);
    fails(
        &out,
        1,
        &format!("POSIX semaphore '{gone}': no such object"),
    );
    assert!(NamedSem::open(&a).is_err() && NamedSem::open(&b).is_err());

    let (k1, k2) = (unique_key(), unique_key());
    let _g2 = (Guard::SysvSem(k1.clone()), Guard::SysvSem(k2.clone()));
    let id1 = ok(&memio(&["sem", "create", "--sysv", &k1]))
        .trim()
        .to_owned();
    ok(&memio(&["sem", "create", "--sysv", &k2]));
    ok(&memio(&["ipc", "rm", "-s", "--id", &id1, "--key", &k2]));
    let c = memio::ipc::Create::Open;
    assert!(SemSet::get(k1.parse().unwrap(), 0, c).is_err());
    assert!(SemSet::get(k2.parse().unwrap(), 0, c).is_err());
}

#[test]
fn ipcrm_habits_get_a_one_line_hint() {
    let out = memio(&["ipc", "rm", "-q", "56"]);
    fails(&out, 2, "memio ipc rm -Q --id 56");
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn ipc_rm_all_empties_a_private_ipc_namespace() {
    // -a removes every System V object: only inside a namespace of its own,
    // so no other test's (or user's) objects are touched.
    let probe = Command::new("unshare").args(["-i", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        println!("skipped: unshare -i (a private IPC namespace) is not available here");
        return;
    }
    let m = env!("CARGO_BIN_EXE_memio");
    let script = format!(
        "set -e; {m} sem create --sysv private >/dev/null; \
         {m} shm create --sysv private --size 4k >/dev/null; \
         {m} mq create --sysv private >/dev/null; \
         {m} ipc rm -a -s; {m} ipc ls --sysv -J; {m} ipc rm -a; {m} ipc ls --sysv -J"
    );
    let out = Command::new("unshare")
        .args(["-i", "sh", "-c", &script])
        .output()
        .unwrap();
    let text = ok(&out);
    let mut docs = serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>();
    let kinds = |v: serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["kind"].as_str().unwrap().to_owned())
            .collect();
        k.sort();
        k
    };
    let after_sems = kinds(docs.next().unwrap().unwrap());
    assert_eq!(after_sems.len(), 2, "{after_sems:?}");
    assert!(
        !after_sems.iter().any(|k| k.contains("sem")),
        "{after_sems:?}"
    );
    assert!(kinds(docs.next().unwrap().unwrap()).is_empty());
}

#[test]
fn ipc_ls_says_when_posix_queues_cannot_be_listed() {
    let out = memio(&["ipc", "ls", "-Q", "--posix"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    if memio::ipc::list::mqueue_mounted() {
        assert!(!err.contains("not mounted"), "{err}");
    } else {
        assert!(err.contains("/dev/mqueue is not mounted"), "{err}");
        assert!(memio(&["-q", "ipc", "ls", "-Q"]).stderr.is_empty());
    }
}

#[test]
fn lab_ipc_section_measures_every_mechanism() {
    let dir = std::env::temp_dir().join(format!("memio-lab-ipc-test-{}", std::process::id()));
    let out = memio(&[
        "lab",
        "--only",
        "ipc",
        "--max-size",
        "4k",
        "--json",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // Every peer exited cleanly: none printed an error of its own (they
    // used to, when the lab closed a channel the peer was still reading).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    let section = &report["sections"][0];
    assert_eq!(section["name"], "ipc");
    assert!(section["error"].is_null(), "{}", section["error"]);
    let rows = section["rows"].as_array().unwrap();
    // 8 mechanisms x 2 sizes (64 B, 4 KiB) x 2 workloads.
    assert_eq!(rows.len(), 32);
    for mech in [
        "pipe",
        "FIFO",
        "Unix socket",
        "POSIX mq",
        "System V mq",
        "memio channel, blocking",
        "shm + System V sem",
        "memio channel",
    ] {
        assert!(
            rows.iter()
                .any(|r| r["mechanism"] == mech && r["unit"] == "GB/s"),
            "{mech}"
        );
        assert!(
            rows.iter()
                .any(|r| r["mechanism"] == mech && r["unit"] == "µs/op"),
            "{mech}"
        );
    }
    assert!(
        section["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("memcpy"))
    );
}

#[test]
fn lab_peer_serves_counted_batches_and_fails_on_a_cut_one() {
    let batch = |n: u64, msgs: &[u8]| {
        let mut v = n.to_le_bytes().to_vec();
        v.extend_from_slice(msgs);
        v
    };
    // The pipe mechanism: control and data share the peer's stdin/stdout.
    let peer = ["lab", "--peer", "ipc", "pipe", "pingpong", "64", "", ""];
    let msgs: Vec<u8> = (0..128u8).collect();
    // Ready, started, two round trips, done, then the end of stdin where a
    // length is due: a clean exit.
    let out = memio_stdin(&peer, &batch(2, &msgs));
    let said = out.stdout.clone();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&said[..2], b"RS");
    assert_eq!(&said[2..130], msgs.as_slice());
    assert_eq!(&said[130..], b"D");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two announced, one and a half sent: an error and a failing status.
    let out = memio_stdin(&peer, &batch(2, &msgs[..96]));
    fails(&out, 2, "lab peer (ipc pipe): ");
    // The hooks user commands used to carry are gone.
    let out = memio(&["ipc", "lab-peer", "--mech", "pipe"]);
    assert_eq!(out.status.code(), Some(2));
    let out = memio(&["lock", "--lab-peer", "/tmp/x"]);
    assert_eq!(out.status.code(), Some(64), "flock(1)'s usage status");
}

/// Runs memio (the copy in `bin`, which other users can reach) as user
/// and group `nobody` (util-linux `setpriv`), or `None` with the reason
/// printed when that is not possible here.
fn memio_as_nobody(bin: &common::SharedBinary, args: &[&str]) -> Option<Output> {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin.path())
        .args(args)
        .output();
    match out {
        Ok(o) if o.status.code() == Some(127) || o.status.code() == Some(126) => {
            eprintln!(
                "skipped: nobody cannot run {} ({}); is the temp folder open to other users?",
                bin.path().display(),
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Ok(o) => Some(o),
        Err(e) => {
            eprintln!("skipped: setpriv is not available ({e})");
            None
        }
    }
}

#[test]
fn mode_0600_keeps_other_users_out() {
    if !common::is_root() {
        eprintln!("skipped: dropping to another user needs root");
        return;
    }
    let (q, shm, sem, key) = (unique("perm"), unique("perm"), unique("perm"), unique_key());
    let _g = (
        Guard::Mq(q.clone()),
        Guard::Shm(shm.clone()),
        Guard::Sem(sem.clone()),
        Guard::SysvMq(key.clone()),
    );
    ok(&memio(&["mq", "create", &q]));
    ok(&memio(&["shm", "create", &shm, "--size", "4k"]));
    ok(&memio(&["sem", "create", &sem]));
    ok(&memio(&["mq", "create", "--sysv", &key]));
    let bin = common::SharedBinary::new();
    let Some(out) = memio_as_nobody(&bin, &["shm", "read", &shm]) else {
        return;
    };
    fails(
        &out,
        2,
        &format!("shared memory '{shm}': cannot open: permission denied"),
    );
    let out = memio_as_nobody(&bin, &["mq", "send", &q, "x"]).unwrap();
    fails(
        &out,
        2,
        &format!("message queue '{q}': cannot open: permission denied"),
    );
    let out = memio_as_nobody(&bin, &["sem", "post", &sem]).unwrap();
    fails(
        &out,
        2,
        &format!("semaphore '{sem}': cannot open: permission denied"),
    );
    let out = memio_as_nobody(&bin, &["mq", "send", "--sysv", &key, "x"]).unwrap();
    fails(&out, 2, "permission denied");
    // Widened on request, another user gets in (read only: 644 survives
    // any usual umask).
    let open = unique("open");
    let _g2 = Guard::Shm(open.clone());
    ok(&memio(&[
        "shm", "create", &open, "--size", "4k", "--mode", "644",
    ]));
    ok(&memio(&["shm", "write", &open, "hello"]));
    let out = memio_as_nobody(&bin, &["shm", "read", &open, "--len", "5"]).unwrap();
    assert_eq!(ok(&out), "hello");
}

#[test]
fn sysv_semaphores_check_value_and_index_before_the_kernel_does() {
    let key = unique_key();
    let _g = Guard::SysvSem(key.clone());
    let c = memio::ipc::Create::Open;
    // Above SEMVMX: refused, and no set is left behind.
    fails(
        &memio(&["sem", "create", "--sysv", &key, "--value", "40000"]),
        2,
        "40000 is above SEMVMX (32767)",
    );
    assert!(SemSet::get(key.parse().unwrap(), 0, c).is_err());
    ok(&memio(&[
        "sem", "create", "--sysv", &key, "--count", "2", "--value", "32767",
    ]));
    for verb in ["post", "wait"] {
        fails(
            &memio(&["sem", verb, "--sysv", &key, "--index", "5"]),
            2,
            &format!("semaphore set key {key}: index 5 out of range (set has 2)"),
        );
    }
    fails(
        &memio(&["sem", "get", "--sysv", &key, "--index", "2"]),
        2,
        "index 2 out of range (set has 2)",
    );
    ok(&memio(&["sem", "wait", "--sysv", &key, "--index", "1"]));
    assert_eq!(
        ok(&memio(&["sem", "get", "--sysv", &key, "--index", "1"])),
        "32766\n"
    );
    assert_eq!(ok(&memio(&["sem", "get", "--sysv", &key])), "32767 32766\n");
    // POSIX semaphores go to SEM_VALUE_MAX; the help says both caps.
    let name = unique("cap");
    let _g2 = Guard::Sem(name.clone());
    ok(&memio(&["sem", "create", &name, "--value", "40000"]));
    assert_eq!(ok(&memio(&["sem", "get", &name])), "40000\n");
    fails(
        &memio(&["sem", "create", &unique("cap"), "--value", "2147483648"]),
        2,
        "above SEM_VALUE_MAX (2147483647)",
    );
    for args in [&["sem", "--help"][..], &["sem", "create", "--help"]] {
        let help = ok(&memio(args))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            help.contains("SEMVMX (32767)") && help.contains("SEM_VALUE_MAX (2147483647)"),
            "{args:?}: {help}"
        );
    }
}

#[test]
fn mq_recv_json_keeps_bytes_that_are_not_utf8_in_base64() {
    let q = unique("b64");
    let _g = Guard::Mq(q.clone());
    ok(&memio(&["mq", "create", &q]));
    ok(&memio_stdin(&["mq", "send", &q], &[0xff, 0xfe, b'A']));
    let got: serde_json::Value =
        serde_json::from_str(&ok(&memio(&["mq", "recv", &q, "--json"]))).unwrap();
    // ff fe 41 in base64, as xattr dumps write after 0s.
    assert_eq!(got["base64"], "//5B");
    assert_eq!(got["utf8"], false);
    assert_eq!(got["bytes"], 3);
    ok(&memio(&["mq", "send", &q, "plain"]));
    let got: serde_json::Value =
        serde_json::from_str(&ok(&memio(&["mq", "recv", &q, "--json"]))).unwrap();
    assert_eq!(
        (&got["text"], &got["utf8"]),
        (&"plain".into(), &true.into())
    );
    assert_eq!(got["base64"], "cGxhaW4=");
}

#[test]
fn already_exists_is_a_conflict_everywhere_worded_object_first() {
    let name = unique("exists");
    let key = unique_key();
    let _g = (
        Guard::Mq(name.clone()),
        Guard::Shm(name.clone()),
        Guard::Sem(name.clone()),
        Guard::SysvMq(key.clone()),
        Guard::SysvShm(key.clone()),
        Guard::SysvSem(key.clone()),
    );
    let cases: [(&[&str], String); 6] = [
        (&["mq", "create", &name], format!("message queue '{name}'")),
        (
            &["shm", "create", &name, "--size", "1k"],
            format!("shared memory '{name}'"),
        ),
        (&["sem", "create", &name], format!("semaphore '{name}'")),
        (
            &["mq", "create", "--sysv", &key],
            format!("message queue with key {key}"),
        ),
        (
            &["shm", "create", "--sysv", &key, "--size", "4k"],
            format!("shared memory segment with key {key}"),
        ),
        (
            &["sem", "create", "--sysv", &key],
            format!("semaphore set with key {key}"),
        ),
    ];
    for (args, object) in cases {
        ok(&memio(args));
        let out = memio(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("memio: {object}: cannot create: already exists\n"),
            "{args:?}"
        );
    }
    // A missing object names it the same way.
    fails(
        &memio(&["mq", "send", &unique("none"), "x"]),
        1,
        "': cannot open: no such file or directory",
    );
}

#[test]
fn ipc_ls_selects_columns_prints_raw_and_shows_limits_like_lsipc() {
    let key = unique_key();
    let _g = Guard::SysvSem(key.clone());
    let id = ok(&memio(&["sem", "create", "--sysv", &key, "--count", "3"]))
        .trim()
        .to_owned();
    let text = ok(&memio(&[
        "ipc",
        "ls",
        "-s",
        "--sysv",
        "-o",
        "nsems,KEY",
        "-r",
    ]));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("NSEMS KEY"));
    assert!(lines.any(|l| l == format!("3 {key}")), "{text}");
    fails(
        &memio(&["ipc", "ls", "-s", "-o", "id,color"]),
        2,
        "unknown column 'color' (columns: key, id, name, owner, perms, nsems)",
    );
    // -l: one row per limit, the semaphore ones from /proc/sys/kernel/sem.
    let v: serde_json::Value =
        serde_json::from_str(&ok(&memio(&["ipc", "ls", "-l", "-J"]))).unwrap();
    let limits = v["limits"].as_array().unwrap();
    let semmsl = limits.iter().find(|l| l["resource"] == "SEMMSL").unwrap();
    let want: u64 = std::fs::read_to_string("/proc/sys/kernel/sem")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(semmsl["limit"].as_u64(), Some(want));
    let semmni = limits.iter().find(|l| l["resource"] == "SEMMNI").unwrap();
    assert!(semmni["used"].as_u64().unwrap() >= 1, "our set counts");
    assert!(ok(&memio(&["ipc", "ls", "-l", "-Q"])).contains("MSGMNI"));
    // Detail of the set by id.
    let v: serde_json::Value =
        serde_json::from_str(&ok(&memio(&["ipc", "ls", "-s", "-i", &id, "-J"]))).unwrap();
    assert_eq!(v["key"], key.as_str());
    assert_eq!(v["semaphores_detail"].as_array().unwrap().len(), 3);
    fails(&memio(&["ipc", "ls", "-i", &id]), 2, "say which kind");
}

#[test]
fn ipc_ls_detail_shows_waiters_and_the_last_pid_per_semaphore() {
    let key = unique_key();
    let _g = Guard::SysvSem(key.clone());
    let id = ok(&memio(&["sem", "create", "--sysv", &key, "--count", "2"]))
        .trim()
        .to_owned();
    ok(&memio(&["sem", "post", "--sysv", &key, "--index", "1"]));
    // A waiter on semaphore 0 (value 0) shows as ncount 1.
    let mut waiter = Command::new(env!("CARGO_BIN_EXE_memio"))
        .args(["sem", "wait", "--sysv", &key, "--index", "0"])
        .spawn()
        .unwrap();
    let set = SemSet::get(key.parse().unwrap(), 0, memio::ipc::Create::Open).unwrap();
    while set.waiting(0).unwrap() == 0 {
        assert!(
            waiter.try_wait().unwrap().is_none(),
            "the waiter ended early"
        );
        std::thread::yield_now();
    }
    let text = ok(&memio(&[
        "ipc",
        "ls",
        "-s",
        "-i",
        &id,
        "-o",
        "semnum,ncount,zcount,value",
        "-r",
        "-n",
    ]));
    let rows: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert!(rows.contains(&"0 1 0 0"), "{text}");
    assert!(rows.contains(&"1 0 0 1"), "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&memio(&["ipc", "ls", "-s", "-i", &id, "-J"]))).unwrap();
    assert!(v["semaphores_detail"][1]["pid"].as_u64().unwrap() > 0);
    ok(&memio(&["sem", "post", "--sysv", &key, "--index", "0"]));
    assert!(waiter.wait().unwrap().success());
}

/// Runs memio with stdin from `/dev/zero` (endless input), killing it if it
/// has not ended within 30 s, so a read sized by the input fails the test
/// instead of filling memory.
fn memio_endless_stdin(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_memio"))
        .args(args)
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} kept reading endless stdin");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn shm_read_streams_a_segment_larger_than_memory_and_ends_quietly_on_a_closed_pipe() {
    use std::io::Read;
    let name = unique("tib");
    let _g = Guard::Shm(name.clone());
    ok(&memio(&["shm", "create", &name, "--size", "1T"]));
    let mut child = Command::new(env!("CARGO_BIN_EXE_memio"))
        .args(["shm", "read", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = [1u8; 4];
    stdout.read_exact(&mut head).unwrap();
    assert_eq!(head, [0; 4]);
    // The pipe is full now and memio waits to write: what it holds is
    // what it streams with, not the segment.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kib < 64 << 10, "VmRSS {rss_kib} kB while streaming");
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "a closed pipe is not an error");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shm_read_keeps_ranges_and_c_strings_across_chunks() {
    let name = unique("chunks");
    let _g = Guard::Shm(name.clone());
    ok(&memio(&["shm", "create", &name, "--size", "200k"]));
    let data: Vec<u8> = (0..150_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    ok(&memio_stdin(
        &["shm", "write", &name, "--offset", "1000"],
        &data,
    ));
    let out = memio(&["shm", "read", &name, "--offset", "1000", "--len", "150000"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, data);
    let out = memio(&["shm", "read", &name, "--offset", "1000", "--cstr"]);
    assert!(out.status.success());
    assert_eq!(&out.stdout[..data.len()], &data[..]);
    assert_eq!(&out.stdout[data.len()..], b"\n");
    fails(
        &memio(&["shm", "read", &name, "--offset", "1000", "--len", "200k"]),
        2,
        "outside its 204800 bytes",
    );
}

#[test]
fn stdin_is_read_only_as_deep_as_the_object_can_take() {
    let q = unique("endless");
    let _gq = Guard::Mq(q.clone());
    ok(&memio(&["mq", "create", &q]));
    let out = memio_endless_stdin(&["mq", "send", &q]);
    fails(&out, 2, "stdin: more than");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("a message on {q} takes")));

    let s = unique("endless");
    let _gs = Guard::Shm(s.clone());
    ok(&memio(&["shm", "create", &s, "--size", "8k"]));
    fails(
        &memio_endless_stdin(&["shm", "write", &s, "--offset", "4k"]),
        2,
        "stdin: more than 4096 bytes",
    );

    fails(
        &memio_endless_stdin(&["xattr", "restore", "-"]),
        2,
        "stdin: line 1: longer than any dump line can be",
    );

    let key = unique_key();
    let _gk = Guard::SysvMq(key.clone());
    ok(&memio(&["mq", "create", "--sysv", &key]));
    fails(
        &memio_endless_stdin(&["mq", "send", "--sysv", &key]),
        2,
        "a System V message takes (kernel.msgmax)",
    );
}

#[test]
fn private_names_no_existing_object_and_creates_none() {
    // `private` (key 0) makes a new object each time it is used: a verb
    // that acts on an existing object would act on a fresh one nobody can
    // reach (a message sent into it is lost) and leave it behind.
    let refused = "`private` only creates a new object";
    for args in [
        &["mq", "send", "--sysv", "private", "lost"][..],
        &["mq", "recv", "--sysv", "private", "--nonblock"],
        &["mq", "attr", "--sysv", "private"],
        &["mq", "rm", "--sysv", "0"],
        &["shm", "read", "--sysv", "private"],
        &["shm", "rm", "--sysv", "private"],
        &["sem", "get", "--sysv", "private"],
        &["ipc", "rm", "-Q", "--key", "0"],
        &["ipc", "rm", "-s", "--key", "0"],
    ] {
        let out = memio(args);
        fails(&out, 2, refused);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("private:"),
            "{args:?}: the error names the object"
        );
    }
}
