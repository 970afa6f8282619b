//! Many processes on one store: a reader sees another process's commit as
//! soon as it returns; concurrent bank transfers keep the total in every
//! snapshot; a writer killed with SIGKILL at random moments never loses a
//! commit it reported nor leaves one half applied.
#![allow(clippy::cast_possible_truncation, reason = "small test counters")]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Scratch, arg, join, role, spawn_peer};
use memio_kv::{Batch, Durability, Error, Options, Store};

#[test]
fn a_reader_process_sees_a_commit_as_soon_as_it_returns() {
    if role().is_some() {
        let s = Store::open(arg("DB"), Options::new().read_only(true)).unwrap();
        assert_eq!(s.get(b"k").unwrap(), None);
        say("ready");
        let mut line = String::new();
        for round in 0..50u32 {
            line.clear();
            std::io::stdin().read_line(&mut line).unwrap();
            assert_eq!(line.trim(), round.to_string());
            // The parent's commit returned before it wrote the line.
            assert_eq!(
                s.get(b"k").unwrap(),
                Some(round.to_string().into_bytes()),
                "round {round}"
            );
            say("seen");
        }
        return;
    }
    let dir = Scratch::new("sees");
    let db = dir.path("s.kv");
    let s = Store::open(&db, Options::new().durability(Durability::Relaxed)).unwrap();
    let test = "a_reader_process_sees_a_commit_as_soon_as_it_returns";
    let mut cmd_child = {
        let mut c = std::process::Command::new(std::env::current_exe().unwrap());
        c.args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env("MEMIO_KV_TEST_ROLE", "reader")
            .env("MEMIO_KV_TEST_DB", &db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        c.spawn().unwrap()
    };
    let mut to = cmd_child.stdin.take().unwrap();
    let mut from = BufReader::new(cmd_child.stdout.take().unwrap());
    let mut line = String::new();
    // libtest's "test NAME ... " has no newline: match the end of the line.
    while !line.trim_end().ends_with("ready") {
        line.clear();
        assert!(from.read_line(&mut line).unwrap() > 0, "reader ended early");
    }
    for round in 0..50u32 {
        s.put(b"k", round.to_string().as_bytes()).unwrap();
        writeln!(to, "{round}").unwrap();
        to.flush().unwrap();
        loop {
            line.clear();
            assert!(from.read_line(&mut line).unwrap() > 0, "reader ended early");
            if line.trim_end().ends_with("seen") {
                break;
            }
        }
    }
    drop(to);
    join(cmd_child);
}

/// A line to the parent, straight to stdout (`println!` in a test thread
/// goes to the harness's capture).
fn say(line: &str) {
    use std::os::fd::AsFd;
    let fd = std::io::stdout().as_fd().try_clone_to_owned().unwrap();
    std::fs::File::from(fd)
        .write_all(format!("{line}\n").as_bytes())
        .unwrap();
}

const ACCOUNTS: u64 = 20;
const START: u64 = 1000;

fn balance(v: &[u8]) -> u64 {
    u64::from_le_bytes(v.try_into().unwrap())
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "parent, teller and auditor roles read best side by side"
)]
fn bank_transfers_between_processes_keep_the_total_in_every_snapshot() {
    match role().as_deref() {
        Some("teller") => {
            let s = Store::open(arg("DB"), Options::new().durability(Durability::Relaxed)).unwrap();
            let mut seed: u64 = arg("SEED").parse().unwrap();
            for _ in 0..150 {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let (from, to) = ((seed >> 20) % ACCOUNTS, (seed >> 40) % ACCOUNTS);
                let amount = (seed >> 8) % 50;
                s.transaction(|tx| {
                    let a = format!("acct{from:02}");
                    let b = format!("acct{to:02}");
                    let fa = balance(&tx.get(a.as_bytes())?.unwrap());
                    if from == to || fa < amount {
                        return Ok::<_, Error>(());
                    }
                    let fb = balance(&tx.get(b.as_bytes())?.unwrap());
                    tx.put(a.as_bytes(), &(fa - amount).to_le_bytes());
                    tx.put(b.as_bytes(), &(fb + amount).to_le_bytes());
                    let n = tx.get(b"transfers")?.map_or(0, |v| balance(&v));
                    tx.put(b"transfers", &(n + 1).to_le_bytes());
                    Ok(())
                })
                .unwrap();
            }
            return;
        }
        Some("auditor") => {
            let s = Store::open(arg("DB"), Options::new().read_only(true)).unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut audits = 0u64;
            let mut last_transfers = 0;
            while Instant::now() < deadline {
                let snap = s.snapshot().unwrap();
                let mut sum = 0;
                snap.scan(&b"acct"[..]..&b"acct~"[..], |_, v| {
                    sum += balance(v);
                    ControlFlow::Continue(())
                })
                .unwrap();
                assert_eq!(
                    sum,
                    ACCOUNTS * START,
                    "snapshot at {} broke the total",
                    snap.position()
                );
                let transfers = snap.get(b"transfers").unwrap().map_or(0, |v| balance(&v));
                assert!(transfers >= last_transfers, "snapshots went back in time");
                last_transfers = transfers;
                audits += 1;
                if std::path::Path::new(&arg("STOP")).exists() {
                    break;
                }
            }
            assert!(audits > 0);
            return;
        }
        _ => {}
    }
    let dir = Scratch::new("bank");
    let db = dir.path("bank.kv");
    let stop = dir.path("stop");
    let s = Store::open(&db, Options::new()).unwrap();
    let mut b = Batch::new();
    for i in 0..ACCOUNTS {
        b.put(format!("acct{i:02}"), START.to_le_bytes());
    }
    s.write(&b).unwrap();
    let test = "bank_transfers_between_processes_keep_the_total_in_every_snapshot";
    let common = |extra: Vec<(&'static str, String)>| {
        let mut v = vec![
            ("DB", db.display().to_string()),
            ("STOP", stop.display().to_string()),
        ];
        v.extend(extra);
        v
    };
    let auditors: Vec<_> = (0..2)
        .map(|_| spawn_peer(test, "auditor", &common(vec![]), Stdio::null()))
        .collect();
    let tellers: Vec<_> = (0..3u64)
        .map(|i| {
            spawn_peer(
                test,
                "teller",
                &common(vec![("SEED", (i * 7919 + 1).to_string())]),
                Stdio::null(),
            )
        })
        .collect();
    // Compaction while tellers write and auditors read.
    std::thread::sleep(Duration::from_millis(50));
    s.compact().unwrap();
    for t in tellers {
        join(t);
    }
    std::fs::write(&stop, b"").unwrap();
    for a in auditors {
        join(a);
    }
    let total: u64 = (0..ACCOUNTS)
        .map(|i| balance(&s.get(format!("acct{i:02}").as_bytes()).unwrap().unwrap()))
        .sum();
    assert_eq!(total, ACCOUNTS * START);
    assert!(s.get(b"transfers").unwrap().is_some());
}

/// Child of the crash loop: writes batches until killed, printing the
/// number of each batch once its commit returned.
fn crasher() {
    let durability = if arg("DURABLE") == "1" {
        Durability::Durable
    } else {
        Durability::Relaxed
    };
    let s = Store::open(arg("DB"), Options::new().durability(durability)).unwrap();
    let mut next: u64 = s.get(b"last").unwrap().map_or(0, |v| balance(&v) + 1);
    loop {
        let mut b = Batch::new();
        for j in 0..10 {
            b.put(
                format!("b{next:06}-{j}"),
                vec![(next % 251) as u8; 50 + (next as usize * 37) % 400],
            );
        }
        b.put("last", next.to_le_bytes());
        s.write(&b).unwrap();
        say(&next.to_string());
        next += 1;
    }
}

#[test]
fn a_writer_killed_at_random_moments_loses_no_reported_commit() {
    if role().is_some() {
        crasher();
        return;
    }
    let dir = Scratch::new("crash");
    let db = dir.path("c.kv");
    Store::open(&db, Options::new()).unwrap();
    let test = "a_writer_killed_at_random_moments_loses_no_reported_commit";
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut reported: Option<u64> = None;
    let rounds = 200;
    let mut heard = 0;
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let args = [
            ("DB", db.display().to_string()),
            (
                "DURABLE",
                if round % 4 == 0 { "1" } else { "0" }.to_string(),
            ),
        ];
        let mut child = spawn_peer(test, "crasher", &args, Stdio::piped());
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        // Wait for the first reported commit, then kill at a random moment.
        let mut first = None;
        let mut line = String::new();
        while first.is_none() && stdout.read_line(&mut line).unwrap() > 0 {
            first = line
                .trim()
                .rsplit(' ')
                .next()
                .and_then(|w| w.parse::<u64>().ok());
            line.clear();
        }
        let reader = std::thread::spawn(move || {
            stdout
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.trim().parse::<u64>().ok())
                .max()
                .max(first)
        });
        std::thread::sleep(Duration::from_micros(seed % 20_000));
        child.kill().unwrap();
        child.wait().unwrap();
        if let Some(m) = reader.join().unwrap() {
            reported = reported.max(Some(m));
            heard += 1;
        }
        let s = Store::open(&db, Options::new()).unwrap();
        let last = s.get(b"last").unwrap().map(|v| balance(&v));
        assert!(
            last >= reported,
            "round {round}: reported {reported:?} but store has {last:?}"
        );
        // Every batch up to the last is whole; none past it exists.
        let mut batches: BTreeMap<u64, usize> = BTreeMap::new();
        for r in s.snapshot().unwrap().prefix(b"b") {
            let (k, _) = r.unwrap();
            let n: u64 = std::str::from_utf8(&k[1..7]).unwrap().parse().unwrap();
            *batches.entry(n).or_default() += 1;
        }
        let expect = last.map_or(0, |l| l + 1);
        assert_eq!(batches.len() as u64, expect, "round {round}");
        assert!(
            batches.values().all(|&c| c == 10),
            "round {round}: a batch is half applied"
        );
    }
    assert!(
        heard == rounds,
        "only {heard} of {rounds} children reported a commit before the kill"
    );
}
