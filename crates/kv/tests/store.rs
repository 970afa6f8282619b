//! One process: the API, limits, bad input, torn tails, power cuts,
//! compaction.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "small test counters"
)]

mod common;

use std::ops::ControlFlow;

use common::Scratch;
use memio_kv::{Batch, Durability, Error, MAX_KEY, Options, Store};

fn all(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    store
        .snapshot()
        .unwrap()
        .iter()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn put_get_delete_survive_reopen() {
    let dir = Scratch::new("basic");
    let path = dir.path("s.kv");
    {
        let s = Store::open(&path, Options::new()).unwrap();
        s.put(b"a", b"1").unwrap();
        s.put(b"b", b"2").unwrap();
        s.put(b"a", b"3").unwrap();
        assert!(s.delete(b"b").unwrap());
        assert!(!s.delete(b"zzz").unwrap());
        assert_eq!(s.get(b"a").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(s.get(b"b").unwrap(), None);
    }
    let s = Store::open(&path, Options::new().create(false)).unwrap();
    assert_eq!(all(&s), vec![(b"a".to_vec(), b"3".to_vec())]);
    let st = s.stats().unwrap();
    assert_eq!((st.live_keys, st.live_bytes, st.commits), (1, 2, 4));
    assert!(st.dead_bytes > 0);
}

#[test]
fn ranges_and_prefixes_come_in_key_order() {
    let dir = Scratch::new("range");
    let s = Store::open(
        dir.path("s.kv"),
        Options::new().durability(Durability::Relaxed),
    )
    .unwrap();
    let mut b = Batch::new();
    for i in (0..3000u32).rev() {
        b.put(format!("k{i:05}"), i.to_le_bytes());
    }
    b.put("j", "before").put("l", "after");
    s.write(&b).unwrap();
    let snap = s.snapshot().unwrap();
    let keys: Vec<_> = snap.prefix(b"k").map(|r| r.unwrap().0).collect();
    assert_eq!(keys.len(), 3000);
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    let r: Vec<_> = snap
        .range(&b"k01000"[..]..&b"k01003"[..])
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(
        r,
        [b"k01000".to_vec(), b"k01001".to_vec(), b"k01002".to_vec()]
    );
    let mut n = 0;
    snap.scan(.., |k, v| {
        if k.starts_with(b"k") {
            assert_eq!(v.len(), 4);
        }
        n += 1;
        if n == 10 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(n, 10);
    assert_eq!(snap.range(&b"z"[..]..&b"a"[..]).count(), 0);
}

/// Every pair `scan` hands over for `range`, copied; `scan_mapped`, which
/// lends the bytes instead, must hand over the same.
#[allow(unsafe_code, reason = "scan_mapped of the test's own store")]
fn scanned(
    snap: &memio_kv::Snapshot,
    range: (std::ops::Bound<&[u8]>, std::ops::Bound<&[u8]>),
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut got = Vec::new();
    snap.scan(range, |k, v| {
        got.push((k.to_vec(), v.to_vec()));
        ControlFlow::Continue(())
    })
    .unwrap();
    let mut lent = Vec::new();
    // SAFETY: the store is this test's own file; only memio-kv writes it.
    unsafe {
        snap.scan_mapped(range, |k, v| {
            lent.push((k.to_vec(), v.to_vec()));
            ControlFlow::Continue(())
        })
    }
    .unwrap();
    assert_eq!(lent, got, "scan_mapped and scan disagree on {range:?}");
    got
}

#[test]
fn a_scan_hands_over_each_snapshots_pairs_however_the_records_lie() {
    use std::collections::BTreeMap;
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let dir = Scratch::new("scan-runs");
    let s = Store::open(
        dir.path("s.kv"),
        Options::new().durability(Durability::Relaxed),
    )
    .unwrap();
    let mut model = BTreeMap::new();
    let put = |model: &mut BTreeMap<Vec<u8>, Vec<u8>>, b: &mut Batch, i: u32, round: u32| {
        let k = format!("k{i:05}").into_bytes();
        // Lengths 0 to 299: records of every alignment, and runs of
        // records back to back longer and shorter than one copy.
        let v = vec![(i + round) as u8; ((i * 7 + round) % 300) as usize];
        b.put(k.clone(), v.clone());
        model.insert(k, v);
    };
    // A load in key order, over more keys than one walk of the index.
    for start in (0..3000).step_by(500) {
        let mut b = Batch::new();
        for i in start..start + 500 {
            put(&mut model, &mut b, i, 0);
        }
        s.write(&b).unwrap();
    }
    // Updates and deletes break the runs; new keys land between old ones.
    let mut b = Batch::new();
    for i in (0..3000).step_by(7) {
        put(&mut model, &mut b, i, 1);
    }
    for i in (0..3000).step_by(11) {
        let k = format!("k{i:05}").into_bytes();
        b.delete(k.clone());
        model.remove(&k);
    }
    for i in (3..3000).step_by(13) {
        let k = format!("k{i:05}+").into_bytes();
        b.put(k.clone(), b"between".to_vec());
        model.insert(k, b"between".to_vec());
    }
    s.write(&b).unwrap();
    let snap = s.snapshot().unwrap();
    let then = model.clone();
    // Later commits, which `snap` resolves back through each key's
    // previous records.
    let mut b = Batch::new();
    for i in (0..3000).step_by(3) {
        put(&mut model, &mut b, i, 2);
    }
    for i in (0..3000).step_by(5) {
        let k = format!("k{i:05}").into_bytes();
        b.delete(k.clone());
        model.remove(&k);
    }
    s.write(&b).unwrap();
    let now = s.snapshot().unwrap();
    for (snap, model) in [(&snap, &then), (&now, &model)] {
        for range in [
            (Unbounded, Unbounded),
            (Included(&b"k00100"[..]), Excluded(&b"k02900"[..])),
            (Excluded(&b"k01003+"[..]), Included(&b"k01500"[..])),
        ] {
            let want: Vec<_> = model
                .range::<[u8], _>(range)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(scanned(snap, range), want, "{range:?}");
        }
        let iterated: Vec<_> = snap.iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(scanned(snap, (Unbounded, Unbounded)), iterated);
    }
}

#[test]
fn a_snapshot_does_not_see_later_commits() {
    let dir = Scratch::new("snap");
    let path = dir.path("s.kv");
    let s = Store::open(&path, Options::new()).unwrap();
    s.put(b"x", b"old").unwrap();
    s.put(b"gone", b"soon").unwrap();
    let snap = s.snapshot().unwrap();
    let other = Store::open(&path, Options::new()).unwrap();
    other.put(b"x", b"new").unwrap();
    other.put(b"y", b"born").unwrap();
    assert!(other.delete(b"gone").unwrap());
    assert_eq!(snap.get(b"x").unwrap().as_deref(), Some(&b"old"[..]));
    assert_eq!(snap.get(b"y").unwrap(), None);
    assert_eq!(snap.get(b"gone").unwrap().as_deref(), Some(&b"soon"[..]));
    assert_eq!(snap.iter().count(), 2);
    // The first handle sees the other's commits as soon as they returned.
    assert_eq!(s.get(b"x").unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(s.get(b"gone").unwrap(), None);
}

#[test]
fn transaction_reads_its_own_writes_and_an_error_commits_nothing() {
    let dir = Scratch::new("txn");
    let s = Store::open(dir.path("s.kv"), Options::new()).unwrap();
    s.put(b"n", b"1").unwrap();
    s.transaction(|tx| {
        let n: u32 = String::from_utf8(tx.get(b"n")?.unwrap())
            .unwrap()
            .parse()
            .unwrap();
        tx.put(b"n", (n + 1).to_string().as_bytes());
        assert_eq!(tx.get(b"n")?.as_deref(), Some(&b"2"[..]));
        Ok::<_, Error>(())
    })
    .unwrap();
    let r: Result<(), Error> = s.transaction(|tx| {
        tx.put(b"n", b"999");
        Err(Error::TooLarge {
            what: "test abort",
            len: 0,
            max: 0,
        })
    });
    assert!(r.is_err());
    assert_eq!(s.get(b"n").unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn limits_are_enforced_with_clear_errors() {
    let dir = Scratch::new("limits");
    let s = Store::open(dir.path("s.kv"), Options::new()).unwrap();
    let big_key = vec![b'k'; MAX_KEY + 1];
    let e = s.put(&big_key, b"v").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "key of {} bytes is larger than the limit of {MAX_KEY} bytes",
            MAX_KEY + 1
        )
    );
    s.put(&vec![b'k'; MAX_KEY], b"v").unwrap();
    let small = Store::open(dir.path("small.kv"), Options::new().max_size(1 << 20)).unwrap();
    let e = small.put(b"k", &vec![0; 2 << 20]).unwrap_err();
    assert!(matches!(e, Error::Full { .. }), "{e}");
    assert!(e.to_string().contains("small.kv"), "{e}");
    // The failed commit left nothing behind.
    small.put(b"ok", b"1").unwrap();
    assert_eq!(all(&small).len(), 1);
}

#[test]
fn bad_files_give_errors_naming_file_and_offset() {
    let dir = Scratch::new("bad");
    let garbage = dir.path("garbage");
    std::fs::write(&garbage, vec![b'x'; 8192]).unwrap();
    let e = Store::open(&garbage, Options::new()).unwrap_err();
    assert!(matches!(e, Error::NotAStore { .. }), "{e}");
    assert!(e.to_string().contains("garbage"), "{e}");
    let short = dir.path("short");
    std::fs::write(&short, b"MEMIOKV").unwrap();
    assert!(matches!(
        Store::open(&short, Options::new()),
        Err(Error::NotAStore { .. })
    ));
    let missing = dir.path("missing.kv");
    let e = Store::open(&missing, Options::new().create(false)).unwrap_err();
    assert!(e.to_string().contains("missing.kv"), "{e}");

    let path = dir.path("s.kv");
    {
        let s = Store::open(&path, Options::new()).unwrap();
        s.put(b"key", b"value").unwrap();
    }
    let good = std::fs::read(&path).unwrap();
    // A future version (header checksum recomputed, as a newer build would write it).
    let mut future = good.clone();
    future[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32c(&future[..20]);
    future[20..24].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &future).unwrap();
    let e = Store::open(&path, Options::new()).unwrap_err();
    assert!(matches!(e, Error::FutureVersion { found: 2, .. }), "{e}");
    // A flipped bit inside a committed record.
    let mut bad = good.clone();
    bad[4096 + 32 + 16] ^= 0x20;
    std::fs::write(&path, &bad).unwrap();
    let e = Store::open(&path, Options::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: corrupt at offset 4096: group checksum mismatch",
            path.display()
        )
    );
}

/// CRC-32C, bit by bit, so the test does not trust the crate's own.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_torn_tail_is_ignored_and_overwritten() {
    let dir = Scratch::new("torn");
    let path = dir.path("s.kv");
    let s = Store::open(&path, Options::new()).unwrap();
    s.put(b"a", b"1").unwrap();
    let end = s.stats().unwrap().committed;
    // A writer died mid-write: half a group past the committed end.
    let mut b = Batch::new();
    b.put("b", vec![7u8; 300]);
    s.write(&b).unwrap();
    let full = std::fs::read(&path).unwrap();
    drop(s);
    let mut torn = full.clone();
    let mid = end as usize + 100;
    torn[mid..mid + 300].fill(0);
    torn[64..72].copy_from_slice(&end.to_le_bytes());
    torn[72..80].copy_from_slice(&end.to_le_bytes());
    std::fs::write(&path, &torn).unwrap();
    let s = Store::open(&path, Options::new()).unwrap();
    assert_eq!(s.get(b"b").unwrap(), None);
    s.put(b"c", b"3").unwrap();
    drop(s);
    let s = Store::open(&path, Options::new()).unwrap();
    assert_eq!(
        all(&s),
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"c".to_vec(), b"3".to_vec())
        ]
    );
}

#[test]
fn a_whole_group_left_unpublished_by_a_dead_writer_is_kept() {
    let dir = Scratch::new("unpublished");
    let path = dir.path("s.kv");
    let s = Store::open(&path, Options::new()).unwrap();
    s.put(b"a", b"1").unwrap();
    let end = s.stats().unwrap().committed;
    s.put(b"b", b"2").unwrap();
    drop(s);
    // Killed after writing the group, before publishing the header.
    let mut f = std::fs::read(&path).unwrap();
    f[64..72].copy_from_slice(&end.to_le_bytes());
    f[72..80].copy_from_slice(&end.to_le_bytes());
    std::fs::write(&path, &f).unwrap();
    // A read-only open while no writer runs reads what a writer's recovery
    // will keep (it publishes nothing)...
    let early = Store::open(&path, Options::new().read_only(true)).unwrap();
    assert_eq!(early.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
    drop(early);
    let f = std::fs::read(&path).unwrap();
    assert_eq!(f[64..72], end.to_le_bytes(), "a reader publishes nothing");
    // ...but not while a writer holds the lock: a group there may belong
    // to a commit that has not returned.
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let locker = memio_io::lock::Locker::new(&file)
        .kind(memio_io::lock::Kind::Ofd)
        .range(0, 1);
    let writer_lock = locker
        .lock(memio_io::lock::Mode::Exclusive, memio_io::lock::Wait::Block)
        .unwrap();
    let reader = Store::open(&path, Options::new().read_only(true)).unwrap();
    assert_eq!(
        reader.get(b"b").unwrap(),
        None,
        "never published, and a writer is running"
    );
    drop(writer_lock);
    // Opening a writable handle while no writer runs recovers the group.
    let writer = Store::open(&path, Options::new()).unwrap();
    assert_eq!(reader.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
    writer.put(b"c", b"3").unwrap();
    assert_eq!(reader.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(reader.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
}

/// A power cut modelled on the bytes: of the writes since the last sync,
/// any subset of 512-byte sectors reached the disk.
#[test]
fn a_power_cut_never_loses_a_returned_commit() {
    let dir = Scratch::new("power");
    let path = dir.path("s.kv");
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for durability in [Durability::Durable, Durability::Relaxed] {
        let _ = std::fs::remove_file(&path);
        let s = Store::open(&path, Options::new().durability(durability)).unwrap();
        let mut durable_image = std::fs::read(&path).unwrap();
        let mut committed: Vec<u32> = Vec::new();
        for round in 0..40u32 {
            let mut b = Batch::new();
            for j in 0..=(rnd() % 40) {
                b.put(
                    format!("r{round:03}-{j:03}"),
                    vec![round as u8; (rnd() % 700) as usize],
                );
            }
            b.put("last", round.to_string());
            s.write(&b).unwrap();
            let live = std::fs::read(&path).unwrap();
            // Durable: a crash before fdatasync returned keeps any subset of
            // the new data sectors and the old header; one after it keeps
            // all the data and either header. Relaxed: any subset of every
            // sector written since the last sync.
            let synced_now = durability == Durability::Durable && rnd() % 2 == 0;
            let mut image = durable_image.clone();
            image.resize(live.len(), 0);
            for (i, sector) in image.chunks_mut(512).enumerate() {
                let header = i == 0;
                let take = match durability {
                    Durability::Durable if header => synced_now && rnd() % 2 == 0,
                    Durability::Durable => synced_now || rnd() % 2 == 0,
                    Durability::Relaxed => rnd() % 2 == 0,
                };
                if take {
                    let start = i * 512;
                    sector.copy_from_slice(&live[start..start + sector.len()]);
                }
            }
            let crash = dir.path("crash.kv");
            std::fs::write(&crash, &image).unwrap();
            let after = Store::open(&crash, Options::new()).unwrap();
            let last: Option<u32> = after
                .get(b"last")
                .unwrap()
                .map(|v| String::from_utf8(v).unwrap().parse().unwrap());
            let mut kept = durable_round(&committed, durability);
            if synced_now {
                kept = Some(round);
            }
            assert!(
                last >= kept,
                "round {round}: lost a durable commit ({last:?} < {kept:?})"
            );
            if let Some(l) = last {
                for r in 0..=l {
                    assert!(
                        after
                            .get(format!("r{r:03}-000").as_bytes())
                            .unwrap()
                            .is_some(),
                        "round {r} half applied"
                    );
                }
            }
            // The crashed copy takes new commits and reopens.
            after.put(b"after", b"crash").unwrap();
            drop(after);
            Store::open(&crash, Options::new()).unwrap();
            committed.push(round);
            if durability == Durability::Durable || round % 10 == 9 {
                s.sync().unwrap();
                durable_image = std::fs::read(&path).unwrap();
                if durability == Durability::Relaxed {
                    committed.push(u32::MAX);
                }
            }
        }
    }
}

/// The newest round a crash must keep: for durable stores the last one
/// written; for relaxed ones the last before a sync (`u32::MAX` marks).
fn durable_round(done: &[u32], durability: Durability) -> Option<u32> {
    match durability {
        Durability::Durable => done.last().copied(),
        Durability::Relaxed => {
            let mark = done.iter().rposition(|&r| r == u32::MAX)?;
            done[..mark].last().copied()
        }
    }
}

#[test]
fn compaction_reclaims_space_while_another_handle_reads_and_writes() {
    let dir = Scratch::new("compact");
    let path = dir.path("s.kv");
    let a = Store::open(&path, Options::new().durability(Durability::Relaxed)).unwrap();
    let b = Store::open(&path, Options::new()).unwrap();
    for round in 0..20 {
        let mut batch = Batch::new();
        for i in 0..200 {
            batch.put(format!("k{i:04}"), vec![round as u8; 200]);
        }
        a.write(&batch).unwrap();
    }
    a.delete(b"k0000").unwrap();
    let old_snapshot = b.snapshot().unwrap();
    let before = a.stats().unwrap();
    let c = a.compact().unwrap();
    assert_eq!(c.keys, 199);
    let after = a.stats().unwrap();
    assert!(
        after.committed < before.committed / 10,
        "{c:?} {before:?} {after:?}"
    );
    assert_eq!(after.live_keys, before.live_keys);
    assert!(after.dead_bytes < 1000, "{after:?}");
    // The other handle notices the new file, reads it and writes to it.
    assert_eq!(b.get(b"k0001").unwrap(), Some(vec![19; 200]));
    b.put(b"k0000", b"back").unwrap();
    assert_eq!(a.get(b"k0000").unwrap().as_deref(), Some(&b"back"[..]));
    // A snapshot taken before still reads the old file.
    assert_eq!(old_snapshot.get(b"k0000").unwrap(), None);
    assert_eq!(old_snapshot.iter().count(), 199);
    drop((a, b));
    let s = Store::open(&path, Options::new()).unwrap();
    assert_eq!(s.stats().unwrap().live_keys, 200);
    let leftovers: Vec<_> = std::fs::read_dir(dir.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn read_only_handles_read_and_refuse_writes() {
    let dir = Scratch::new("ro");
    let path = dir.path("s.kv");
    Store::open(&path, Options::new())
        .unwrap()
        .put(b"k", b"v")
        .unwrap();
    let ro = Store::open(&path, Options::new().read_only(true)).unwrap();
    assert_eq!(ro.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    assert!(matches!(ro.put(b"k", b"w"), Err(Error::ReadOnly { .. })));
    let e = Store::open(dir.path("nope.kv"), Options::new().read_only(true)).unwrap_err();
    assert!(e.to_string().contains("nope.kv: open"), "{e}");
}

/// Runs `f` on another thread and fails the test if it has not returned
/// within `secs` seconds (a hang is the bug these tests look for).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} did not return within {secs} s"))
}

#[test]
fn compacting_through_a_symbolic_link_replaces_the_store_not_the_link() {
    let dir = Scratch::new("symlink");
    let real = dir.path("real.kv");
    let link = dir.path("link.kv");
    Store::open(&real, Options::new())
        .unwrap()
        .put(b"k", b"1")
        .unwrap();
    std::os::unix::fs::symlink("real.kv", &link).unwrap();
    let via_link = Store::open(&link, Options::new()).unwrap();
    assert_eq!(via_link.path(), std::fs::canonicalize(&real).unwrap());
    via_link.compact().unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "compaction replaced the link with a file"
    );
    let real2 = real.clone();
    within(10, "a commit by the store's own name", move || {
        let s = Store::open(&real2, Options::new()).unwrap();
        s.put(b"k", b"2").unwrap();
    });
    assert_eq!(via_link.get(b"k").unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn a_dangling_symbolic_link_is_refused_and_leaves_nothing() {
    let dir = Scratch::new("dangling");
    let link = dir.path("s.kv");
    std::os::unix::fs::symlink("missing-dir/target.kv", &link).unwrap();
    let link2 = link.clone();
    let err = within(10, "opening a dangling link", move || {
        Store::open(&link2, Options::new()).unwrap_err()
    });
    let msg = err.to_string();
    assert!(
        msg.contains("s.kv") && msg.contains("symbolic link"),
        "{msg}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("s.kv")], "litter: {left:?}");
}

#[test]
fn a_handle_on_a_hard_link_that_compaction_retired_fails_instead_of_hanging() {
    let dir = Scratch::new("hardlink");
    let a = dir.path("a.kv");
    let b = dir.path("b.kv");
    let sa = Store::open(&a, Options::new()).unwrap();
    sa.put(b"k", b"1").unwrap();
    std::fs::hard_link(&a, &b).unwrap();
    let sb = Store::open(&b, Options::new()).unwrap();
    sa.compact().unwrap();
    let err = within(10, "a commit on the retired name", move || {
        sb.put(b"k", b"2").unwrap_err()
    });
    assert!(err.to_string().contains("hard link"), "{err}");
    // The compacted store, by the name it was compacted under, is whole.
    assert_eq!(sa.get(b"k").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn commits_after_a_compaction_that_fails_past_its_rename_are_kept() {
    let dir = Scratch::new("compact-fail");
    let path = dir.path("s.kv");
    // A handle whose max_size cannot map the compacted file (compaction
    // leaves room ahead, so the new file outgrows 64 KiB).
    let small = Store::open(&path, Options::new().max_size(64 << 10)).unwrap();
    let other = Store::open(&path, Options::new()).unwrap();
    small.put(b"k", b"1").unwrap();
    if small.compact().is_ok() {
        println!("skipped: the compacted file fit the small handle's max_size");
        return;
    }
    // The small handle cannot move to the new file: it must say so, not
    // go on committing to the unlinked old one.
    assert!(small.put(b"k", b"2").is_err());
    other.put(b"j", b"3").unwrap();
    let fresh = Store::open(&path, Options::new()).unwrap();
    assert_eq!(fresh.get(b"k").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(fresh.get(b"j").unwrap().as_deref(), Some(&b"3"[..]));
}

#[test]
fn a_write_on_the_store_inside_its_own_transaction_is_an_error_not_a_deadlock() {
    let dir = Scratch::new("reentrant");
    let path = dir.path("s.kv");
    let s = std::sync::Arc::new(Store::open(&path, Options::new()).unwrap());
    let s2 = std::sync::Arc::clone(&s);
    let inner = within(10, "a put inside a transaction", move || {
        let mut inner = None;
        let outer = s2.transaction(|t| {
            t.put(b"a", b"1");
            inner = Some(s2.put(b"b", b"2").map_err(|e| e.to_string()));
            Ok::<_, Error>(())
        });
        (outer.map_err(|e| e.to_string()), inner)
    });
    let msg = inner.1.expect("the closure ran").unwrap_err();
    assert!(msg.contains("transaction"), "{msg}");
    inner.0.unwrap();
    assert_eq!(s.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    // The store stays usable from this thread.
    s.put(b"c", b"3").unwrap();
}

#[test]
fn compaction_removes_what_killed_compactions_left() {
    let dir = Scratch::new("leftovers");
    let path = dir.path("s.kv");
    let s = Store::open(&path, Options::new()).unwrap();
    s.put(b"k", b"v").unwrap();
    let stale = dir.path("s.kv.compact-999999-3");
    let unrelated = dir.path("s.kv.compact-notes");
    std::fs::write(&stale, vec![0u8; 8192]).unwrap();
    std::fs::write(&unrelated, b"mine").unwrap();
    s.compact().unwrap();
    assert!(!stale.exists(), "a killed compaction's file stayed");
    assert!(
        unrelated.exists(),
        "a file that only looks similar was removed"
    );
    assert_eq!(s.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

/// Puts `value` under keys `k0`, `k1`, ... until the store is full;
/// returns how many went in.
fn fill(store: &Store, value: &[u8]) -> u8 {
    let mut n = 0u8;
    while store.put(&[b'k', n], value).is_ok() {
        n += 1;
    }
    n
}

#[test]
fn a_store_compacted_or_made_near_its_max_size_still_opens_with_it() {
    let dir = Scratch::new("compact-near-max");
    let path = dir.path("s.kv");
    let options = || Options::new().max_size(8 << 20);
    let s = Store::open(&path, options()).unwrap();
    let value = vec![b'v'; 512 << 10];
    let n = fill(&s, &value);
    assert!(n >= 10, "only {n} values of 512 KiB fit in 8 MiB");
    // Room for later commits is cut to what max_size allows.
    s.compact().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() <= 8 << 20);
    assert_eq!(s.get(&[b'k', 0]).unwrap().as_deref(), Some(&value[..]));
    s.put(b"small", b"1").unwrap();
    drop(s);
    let s = Store::open(&path, options()).unwrap();
    assert_eq!(s.get(&[b'k', n - 1]).unwrap().as_deref(), Some(&value[..]));
    assert_eq!(s.get(b"small").unwrap().as_deref(), Some(&b"1"[..]));
    // A store made with a max_size below its usual first size opens too.
    let tiny = dir.path("tiny.kv");
    let t = Store::open(&tiny, Options::new().max_size(20 << 10)).unwrap();
    t.put(b"a", b"1").unwrap();
    drop(t);
    let t = Store::open(&tiny, Options::new().max_size(20 << 10)).unwrap();
    assert_eq!(t.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn a_compaction_that_would_not_shrink_the_log_leaves_the_store_as_it_is() {
    use std::os::unix::fs::MetadataExt;
    let dir = Scratch::new("compact-longer");
    let path = dir.path("s.kv");
    let options = || Options::new().max_size(4 << 20);
    let s = Store::open(&path, options()).unwrap();
    // One group of more than 1 MiB, which compaction would cut into
    // several, each with a header of its own: a longer log.
    let mut batch = Batch::new();
    for i in 0..3_900u32 {
        batch.put(format!("key{i:08}").into_bytes(), vec![b'v'; 1000]);
    }
    s.write(&batch).unwrap();
    // Then the log filled up to the limit: a value too large says how
    // far past the limit it would end.
    let limit = (4u64 << 20) & !7;
    let big = 1usize << 20;
    let fits = match s.put(b"last", &vec![b'l'; big]) {
        Err(Error::Full { need, .. }) => big - usize::try_from(need - limit).unwrap(),
        other => panic!("a 1 MiB value fit: {other:?}"),
    };
    s.put(b"last", &vec![b'l'; fits]).unwrap();
    let file = std::fs::metadata(&path).unwrap();
    // Neither this handle nor one with a larger max_size replaces it.
    let larger = Store::open(&path, Options::new()).unwrap();
    for h in [&s, &larger] {
        let done = h.compact().unwrap();
        assert_eq!(
            (done.before, done.after, done.keys),
            (file.len(), file.len(), 3_901)
        );
    }
    let now = std::fs::metadata(&path).unwrap();
    assert_eq!((now.ino(), now.len()), (file.ino(), file.len()));
    let leftovers = std::fs::read_dir(dir.dir()).unwrap().count();
    assert_eq!(leftovers, 1, "compaction left files behind");
    // The store still answers, through this handle and a new one alike.
    assert_eq!(s.get(b"key00000007").unwrap().map(|v| v.len()), Some(1000));
    drop((s, larger));
    let s = Store::open(&path, options()).unwrap();
    assert_eq!(s.get(b"key00003899").unwrap().map(|v| v.len()), Some(1000));
    assert_eq!(s.get(b"last").unwrap().map(|v| v.len()), Some(fits));
}

#[test]
fn a_larger_handles_compaction_leaves_the_store_open_to_a_smaller_one() {
    let dir = Scratch::new("compact-bigger-handle");
    let path = dir.path("s.kv");
    let small = Store::open(&path, Options::new().max_size(8 << 20)).unwrap();
    let value = vec![b'v'; 512 << 10];
    let n = fill(&small, &value);
    small.delete(&[b'k', 0]).unwrap();
    let big = Store::open(&path, Options::new()).unwrap();
    big.compact().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() <= 8 << 20);
    assert_eq!(small.get(&[b'k', 1]).unwrap().as_deref(), Some(&value[..]));
    drop(small);
    let small = Store::open(&path, Options::new().max_size(8 << 20)).unwrap();
    assert_eq!(
        small.get(&[b'k', n - 1]).unwrap().as_deref(),
        Some(&value[..])
    );
}

#[test]
fn a_max_size_below_the_header_makes_no_file() {
    let dir = Scratch::new("tiny-max");
    let path = dir.path("s.kv");
    for max in [0, 1, 100, 4095] {
        let err = Store::open(&path, Options::new().max_size(max)).unwrap_err();
        assert!(matches!(err, Error::Full { .. }), "{max}: {err}");
        assert!(err.to_string().contains("s.kv"), "{err}");
        assert!(!path.exists(), "max_size {max} left a file");
    }
}

#[test]
fn a_handle_too_small_for_what_another_grew_the_store_to_says_full() {
    let dir = Scratch::new("small-handle");
    let path = dir.path("s.kv");
    let small = Store::open(&path, Options::new().max_size(1 << 20)).unwrap();
    small.put(b"a", b"1").unwrap();
    let big = Store::open(&path, Options::new()).unwrap();
    let value = vec![b'v'; 1 << 20];
    for i in 0..3u8 {
        big.put(&[b'k', i], &value).unwrap();
    }
    let err = small.get(b"a").unwrap_err();
    assert!(matches!(err, Error::Full { .. }), "{err}");
    assert!(err.to_string().contains("max_size"), "{err}");
}

/// Two keys whose index hashes collide under every seed: a 16-byte key and
/// a 9-byte one whose first words differ by the two lengths' terms of the
/// hash (`seed ^ len * K`), so the seed cancels out, and whose last
/// (zero-padded) words agree.
fn colliding_keys() -> (Vec<u8>, Vec<u8>) {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let w1 = u64::from_le_bytes(*b"collide!");
    let other = w1 ^ 16u64.wrapping_mul(K) ^ 9u64.wrapping_mul(K);
    let mut long = w1.to_le_bytes().to_vec();
    long.extend_from_slice(&[b'x', 0, 0, 0, 0, 0, 0, 0]);
    let mut short = other.to_le_bytes().to_vec();
    short.push(b'x');
    (long, short)
}

/// A record whose `prev` names the newest record of another key, one that
/// shares its key's hash, is damage: the index must not take it as an
/// update of that other key (a scan would then hand out one key twice and
/// lose the other, and `get` would miss it).
#[test]
fn a_forged_prev_naming_a_colliding_keys_record_is_corruption() {
    let dir = Scratch::new("collide");
    let path = dir.path("s.kv");
    let (a, b) = colliding_keys();
    let (a_loc, third) = {
        let s = Store::open(&path, Options::new()).unwrap();
        let a_loc = s.stats().unwrap().committed + 32;
        s.put(&a, b"a-old").unwrap();
        s.put(&b, b"b-old").unwrap();
        let third = s.stats().unwrap().committed;
        s.put(&b, b"b-new").unwrap();
        // Honest collisions are fine.
        assert_eq!(s.get(&a).unwrap().as_deref(), Some(&b"a-old"[..]));
        assert_eq!(s.get(&b).unwrap().as_deref(), Some(&b"b-new"[..]));
        (a_loc as usize, third as usize)
    };
    // Forge the last record's `prev` to name a's record, and reseal the
    // group (a writer with a bug, or an attacker, would).
    let mut f = std::fs::read(&path).unwrap();
    let rec = third + 32;
    f[rec + 8..rec + 16].copy_from_slice(&(a_loc as u64).to_le_bytes());
    let body_len = u32::from_le_bytes(f[third + 16..third + 20].try_into().unwrap()) as usize;
    let mut covered = f[third..third + 24].to_vec();
    covered.extend_from_slice(&f[rec..rec + body_len]);
    let crc = crc32c(&covered);
    f[third + 24..third + 28].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &f).unwrap();
    match Store::open(&path, Options::new().read_only(true)) {
        Err(Error::Corrupt { .. }) => {}
        Err(e) => panic!("{e}"),
        Ok(s) => {
            let pairs: Vec<_> = all(&s).into_iter().map(|(k, _)| k).collect();
            panic!(
                "opened; get(a) = {:?}, keys scanned = {pairs:?}",
                s.get(&a).unwrap()
            );
        }
    }
}

/// A handle commits only within its own `max_size` (the span it maps), even
/// when the file is already larger: a writer with a larger `max_size` that
/// grew the file and died before writing leaves the room there.
#[test]
fn a_handle_never_commits_past_its_own_max_size() {
    let dir = Scratch::new("small-writer");
    let path = dir.path("s.kv");
    let small = Store::open(&path, Options::new().max_size(1 << 20)).unwrap();
    small.put(b"a", b"1").unwrap();
    // A writer with a larger max_size grew the file (as `make_room` does,
    // in zeros) and was killed before its write.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    let err = small.put(b"b", &vec![b'v'; 1 << 20]).unwrap_err();
    assert!(matches!(err, Error::Full { .. }), "{err}");
    assert_eq!(small.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(small.get(b"b").unwrap(), None);
}

/// A handle whose log fills its mapping exactly, in a file another handle
/// grew further, says Full on its next write (not an I/O error from
/// looking for a group header past its mapping).
#[test]
fn a_handle_whose_log_fills_its_mapping_says_full_on_the_next_write() {
    let dir = Scratch::new("exactly-full");
    let path = dir.path("s.kv");
    let max = 1u64 << 20;
    let small = Store::open(&path, Options::new().max_size(max)).unwrap();
    small.put(b"a", b"1").unwrap();
    let c = small.stats().unwrap().committed;
    // One group (32-byte header, one 16-byte record header, 1-byte key)
    // that ends exactly at max_size.
    let fill = vec![b'v'; (max - c - 32 - 16 - 1) as usize];
    small.put(b"b", &fill).unwrap();
    assert_eq!(small.stats().unwrap().committed, max);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    // The handle learns the file's new size.
    assert_eq!(small.stats().unwrap().file_size, 4 << 20);
    let err = small.put(b"c", b"3").unwrap_err();
    assert!(matches!(err, Error::Full { .. }), "{err}");
    assert_eq!(small.get(b"b").unwrap().map(|v| v.len()), Some(fill.len()));
}

/// Durable commits now leave the header page to the kernel's write-back,
/// so after a power cut the header on disk may be as old as the last
/// write-back (or `sync`), many commits back; only a writer's recovery
/// reads past it. A handle opened read-only after the cut, before any
/// writer, does not see commits that returned as durable. (Before the
/// change the header lagged by the last commit only, which a read-only
/// open missed too.)
#[test]
fn a_read_only_open_after_a_power_cut_sees_returned_durable_commits() {
    let dir = Scratch::new("ro-after-cut");
    let path = dir.path("s.kv");
    let s = Store::open(&path, Options::new()).unwrap();
    s.put(b"first", b"1").unwrap();
    s.sync().unwrap();
    let header = std::fs::read(&path).unwrap()[..4096].to_vec();
    for i in 0..10u32 {
        s.put(format!("k{i}").as_bytes(), b"durable").unwrap();
    }
    // The power cut: every group is on disk (each was written with
    // RWF_DSYNC), the header page as it was last written back.
    let mut image = std::fs::read(&path).unwrap();
    image[..4096].copy_from_slice(&header);
    let crash = dir.path("crash.kv");
    std::fs::write(&crash, &image).unwrap();
    let reader = Store::open(&crash, Options::new().read_only(true)).unwrap();
    assert_eq!(
        reader.get(b"k9").unwrap().as_deref(),
        Some(&b"durable"[..]),
        "a returned durable commit is missing for a read-only reader"
    );
}

/// A power cut modelled per sector over a store written by a relaxed and a
/// durable handle in turns, with the header page left to write-back: a
/// durable commit made by one `pwritev2(RWF_DSYNC)` puts only its own
/// sectors on disk; one after relaxed commits (`pwritev` + `fdatasync`)
/// puts every sector on disk, the header as it was before the commit; the
/// kernel writes the header page back at random moments; at the cut any
/// subset of the sectors still dirty reaches the disk. Every commit that
/// returned as durable must be there after a writer reopens, and the store
/// must reopen.
#[test]
fn a_power_cut_with_the_header_left_to_write_back_loses_no_durable_commit() {
    const SECTOR: usize = 512;
    let dir = Scratch::new("power-lag");
    let path = dir.path("s.kv");
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for trial in 0..12u32 {
        let _ = std::fs::remove_file(&path);
        let durable = Store::open(&path, Options::new()).unwrap();
        let relaxed = Store::open(&path, Options::new().durability(Durability::Relaxed)).unwrap();
        let mut disk = std::fs::read(&path).unwrap();
        let mut unsynced = false;
        let mut last_durable: Option<u32> = None;
        let mut before = disk.clone();
        for round in 0..30u32 {
            let use_durable = rnd() % 3 != 0;
            let mut b = Batch::new();
            for j in 0..=(rnd() % 6) {
                b.put(
                    format!("t{trial}-r{round:03}-{j}"),
                    vec![round as u8; (rnd() % 900) as usize],
                );
            }
            b.put(
                if use_durable { "durable" } else { "relaxed" },
                round.to_string(),
            );
            if use_durable {
                durable.write(&b).unwrap();
            } else {
                relaxed.write(&b).unwrap();
            }
            let live = std::fs::read(&path).unwrap();
            disk.resize(live.len(), 0);
            if use_durable {
                if unsynced {
                    // pwritev + fdatasync: every sector, the header as it
                    // was before this commit published.
                    disk.copy_from_slice(&live);
                    disk[..SECTOR].copy_from_slice(&before[..SECTOR]);
                    unsynced = false;
                } else {
                    // RWF_DSYNC: the sectors this commit changed, not the
                    // header.
                    let old = &before;
                    for (i, s) in live.chunks(SECTOR).enumerate().skip(1) {
                        let start = i * SECTOR;
                        let was = old.get(start..start + s.len());
                        if was != Some(s) {
                            disk[start..start + s.len()].copy_from_slice(s);
                        }
                    }
                }
                last_durable = Some(round);
            } else {
                unsynced = true;
            }
            // Write-back of the header page now and then.
            if rnd() % 4 == 0 {
                disk[..SECTOR].copy_from_slice(&live[..SECTOR]);
            }
            // The cut: any subset of the sectors that differ from the disk.
            let mut image = disk.clone();
            for (i, s) in live.chunks(SECTOR).enumerate() {
                if rnd() % 2 == 0 {
                    image[i * SECTOR..i * SECTOR + s.len()].copy_from_slice(s);
                }
            }
            let crash = dir.path("crash.kv");
            std::fs::write(&crash, &image).unwrap();
            let after = Store::open(&crash, Options::new())
                .unwrap_or_else(|e| panic!("trial {trial} round {round}: {e}"));
            let got: Option<u32> = after
                .get(b"durable")
                .unwrap()
                .map(|v| String::from_utf8(v).unwrap().parse().unwrap());
            assert!(
                got >= last_durable,
                "trial {trial} round {round}: lost a durable commit ({got:?} < {last_durable:?})"
            );
            after.put(b"after", b"crash").unwrap();
            drop(after);
            Store::open(&crash, Options::new()).unwrap();
            before = live;
        }
    }
}

/// A `max_size` that is not a multiple of 8: the mapping is read in whole
/// 8-byte words, so its last few bytes cannot be read back. A commit that
/// ends in them must be refused (Full), not accepted and then read back as
/// damage by every handle.
#[test]
fn a_max_size_off_the_word_grid_never_makes_a_healthy_store_look_corrupt() {
    let dir = Scratch::new("odd-max");
    let path = dir.path("s.kv");
    let max = (1u64 << 20) + 5;
    let s = Store::open(&path, Options::new().max_size(max)).unwrap();
    s.put(b"a", b"1").unwrap();
    let c = s.stats().unwrap().committed;
    // One group that ends exactly at max_size.
    let fill = vec![b'v'; (max - c - 32 - 16 - 1) as usize];
    match s.put(b"b", &fill) {
        Err(Error::Full { .. }) => {}
        Err(e) => panic!("{e}"),
        Ok(()) => {
            let got = s.get(b"b").map(|v| v.map(|v| v.len()));
            let other = Store::open(&path, Options::new().max_size(max).read_only(true))
                .map(|o| o.get(b"b").map(|v| v.map(|v| v.len())));
            assert_eq!(
                got.as_ref().ok(),
                Some(&Some(fill.len())),
                "this handle: {got:?}"
            );
            assert!(
                matches!(other, Ok(Ok(Some(_)))),
                "another handle: {other:?}"
            );
        }
    }
    assert_eq!(s.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
}

/// Scans over the extremes: an empty key and value, a key of `MAX_KEY`
/// bytes, a value of `MAX_VALUE` bytes, back to back in one group (one run)
/// and apart, through scan and the iterator, from a snapshot taken before
/// later updates.
#[test]
fn scans_hand_over_the_largest_and_smallest_records_whole() {
    use memio_kv::MAX_VALUE;
    let dir = Scratch::new("scan-extremes");
    let s = Store::open(dir.path("s.kv"), Options::new()).unwrap();
    let big_key = vec![0xffu8; MAX_KEY];
    let big_value: Vec<u8> = (0..MAX_VALUE).map(|i| (i % 251) as u8).collect();
    let mut b = Batch::new();
    b.put(Vec::new(), Vec::new());
    b.put(b"m".to_vec(), Vec::new());
    b.put(big_key.clone(), big_value.clone());
    s.write(&b).unwrap();
    let snap = s.snapshot().unwrap();
    let mut b = Batch::new();
    b.put(b"m".to_vec(), b"later".to_vec());
    b.delete(big_key.clone());
    b.put(Vec::new(), b"x".to_vec());
    s.write(&b).unwrap();
    let want = vec![
        (Vec::new(), Vec::new()),
        (b"m".to_vec(), Vec::new()),
        (big_key.clone(), big_value.clone()),
    ];
    let got = scanned(
        &snap,
        (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
    );
    assert!(got == want, "scan of the earlier snapshot");
    let iterated: Vec<_> = snap.iter().collect::<Result<_, _>>().unwrap();
    assert!(iterated == want, "iterator of the earlier snapshot");
    let from_big = scanned(
        &snap,
        (
            std::ops::Bound::Included(&big_key[..]),
            std::ops::Bound::Unbounded,
        ),
    );
    assert_eq!(from_big.len(), 1);
    let now = scanned(
        &s.snapshot().unwrap(),
        (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
    );
    assert_eq!(
        now,
        vec![
            (Vec::new(), b"x".to_vec()),
            (b"m".to_vec(), b"later".to_vec())
        ]
    );
}

/// Threads scan snapshots while another handle rewrites every key in each
/// commit and compacts now and then (so records lie in long runs, then
/// apart): every scan sees each key once, in order, all from one commit,
/// and a snapshot taken before a compaction scans the same afterwards.
#[test]
fn scans_beside_a_writer_and_compactions_see_whole_commits() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = Scratch::new("scan-threads");
    let path = dir.path("s.kv");
    let writer = Store::open(&path, Options::new().durability(Durability::Relaxed)).unwrap();
    let keys = 300u32;
    let commit = |round: u32| {
        let mut b = Batch::new();
        for i in 0..keys {
            // Lengths vary per round and key: runs of every alignment.
            let len = ((i * 13 + round * 7) % 97) as usize;
            let mut v = round.to_le_bytes().to_vec();
            v.resize(4 + len, round as u8);
            b.put(format!("k{i:04}"), v);
        }
        writer.write(&b).unwrap();
    };
    commit(0);
    let stop = AtomicBool::new(false);
    let check = |snap: &memio_kv::Snapshot| {
        let mut seen = 0u32;
        let mut round = None;
        let mut last: Option<Vec<u8>> = None;
        snap.scan(.., |k, v| {
            assert!(last.as_deref() < Some(k), "keys out of order");
            last = Some(k.to_vec());
            let r = u32::from_le_bytes(v[..4].try_into().unwrap());
            assert_eq!(*round.get_or_insert(r), r, "pairs from two commits");
            assert!(v[4..].iter().all(|&b| b == r as u8), "value damaged");
            seen += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(seen, keys);
    };
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                let reader = Store::open(&path, Options::new()).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let snap = reader.snapshot().unwrap();
                    check(&snap);
                }
            });
        }
        let before = writer.snapshot().unwrap();
        for round in 1..120 {
            commit(round);
            if round % 25 == 0 {
                let old = writer.snapshot().unwrap();
                writer.compact().unwrap();
                check(&old);
                check(&before);
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
}

/// A durable writer stores `synced` and then `committed`; one killed
/// between the two leaves `synced` past `committed`, and past the file's
/// size as an older handle last saw it if its commit grew the file. That
/// handle's next write must recover the group, not call the store corrupt.
#[test]
fn a_writer_killed_between_its_two_header_stores_leaves_a_healthy_store() {
    use std::os::unix::fs::FileExt;
    let dir = Scratch::new("between-stores");
    let path = dir.path("s.kv");
    let older = Store::open(&path, Options::new()).unwrap();
    older.put(b"a", b"1").unwrap();
    let before = older.stats().unwrap();
    let dying = Store::open(&path, Options::new()).unwrap();
    // A commit that grows the file past the size `older` last saw.
    dying
        .put(b"big", &vec![7u8; before.file_size as usize + (1 << 20)])
        .unwrap();
    drop(dying);
    // ...and whose writer died before storing `committed`.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&before.committed.to_le_bytes(), 64)
        .unwrap();
    older.put(b"c", b"3").unwrap();
    assert_eq!(
        older.get(b"big").unwrap().map(|v| v.len()),
        Some(before.file_size as usize + (1 << 20))
    );
    assert_eq!(older.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
}

#[test]
fn a_handle_too_small_to_read_an_unpublished_group_never_writes_over_it() {
    unpublished_past_a_small_handle("small-past", 128 << 10, |_| 200 << 10);
    // The group ends in the mapping's last, partial word, which is read
    // in whole words only.
    let max = (128 << 10) + 5;
    unpublished_past_a_small_handle("small-past-odd", max, |end| {
        (max - 2 - end - 32 - 16 - 3) as usize
    });
}

/// A group that starts inside a small handle's mapping and ends past it
/// (with `value_len(start)` value bytes), left unpublished.
fn unpublished_past_a_small_handle(tag: &str, small_max: u64, value_len: impl Fn(u64) -> usize) {
    use std::os::unix::fs::FileExt;
    let dir = Scratch::new(tag);
    let path = dir.path("s.kv");
    let big = Store::open(&path, Options::new()).unwrap();
    big.put(b"a", b"1").unwrap();
    let end = big.stats().unwrap().committed;
    // Opened while the file still fits its mapping.
    let small = Store::open(&path, Options::new().max_size(small_max)).unwrap();
    // A group that starts inside the small handle's mapping and ends past
    // it, written by a handle with room for it...
    let value = vec![b'v'; value_len(end)];
    big.put(b"big", &value).unwrap();
    drop(big);
    // ...which was killed before publishing it.
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.write_all_at(&end.to_le_bytes(), 64).unwrap();
    f.write_all_at(&end.to_le_bytes(), 72).unwrap();
    drop(f);
    // A read-only open while no writer runs reads it, as a writer's
    // recovery would keep it.
    let reader = Store::open(&path, Options::new().read_only(true)).unwrap();
    let snap = reader.snapshot().unwrap();
    assert_eq!(snap.get(b"big").unwrap().as_deref(), Some(&value[..]));
    // The small handle cannot read the group, so it cannot tell it from a
    // torn tail: it must refuse to commit rather than write over it.
    let err = small.put(b"x", b"y").unwrap_err();
    assert!(matches!(err, Error::Full { .. }), "{err}");
    assert_eq!(snap.get(b"big").unwrap().as_deref(), Some(&value[..]));
    // A handle that maps it keeps it.
    let whole = Store::open(&path, Options::new()).unwrap();
    whole.put(b"x", b"y").unwrap();
    assert_eq!(whole.get(b"big").unwrap().as_deref(), Some(&value[..]));
    assert_eq!(snap.get(b"big").unwrap().as_deref(), Some(&value[..]));
}

/// A compaction killed after renaming its file over the store and before
/// marking the old file superseded leaves the old file unmarked: a handle
/// still on it finds it unlinked under the writer lock, marks it, and
/// commits to the file the path names.
#[test]
fn a_compaction_killed_between_its_rename_and_its_mark_loses_no_later_commit() {
    use std::os::unix::fs::FileExt;
    let dir = Scratch::new("compact-killed");
    let path = dir.path("s.kv");
    let a = Store::open(&path, Options::new()).unwrap();
    a.put(b"k", b"1").unwrap();
    let old = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    Store::open(&path, Options::new())
        .unwrap()
        .compact()
        .unwrap();
    // What a compactor killed right after its rename leaves: no mark.
    old.write_all_at(&0u64.to_le_bytes(), 80).unwrap();
    drop(old);
    a.put(b"j", b"2").unwrap();
    let fresh = Store::open(&path, Options::new()).unwrap();
    assert_eq!(fresh.get(b"j").unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn a_commit_to_a_store_removed_while_open_is_an_error_naming_it() {
    let dir = Scratch::new("removed");
    let path = dir.path("s.kv");
    let s = Store::open(&path, Options::new()).unwrap();
    s.put(b"k", b"1").unwrap();
    std::fs::remove_file(&path).unwrap();
    let e = s.put(b"k", b"2").unwrap_err().to_string();
    assert!(
        e.contains("s.kv") && e.contains("removed while open"),
        "{e}"
    );
    assert!(!path.exists(), "nothing was created in its place");
}
