//! The store against a `BTreeMap` model over random operations, with
//! reopen and compaction; and damaged files: flipped bytes give an error or
//! the right contents, never a panic or a wrong answer.

mod common;

use std::collections::BTreeMap;

use common::Scratch;
use memio_kv::{Batch, Durability, Options, Store};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<u8>),
    Delete(u8),
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Reopen,
    Compact,
    Snapshot,
}

fn key(k: u8) -> Vec<u8> {
    format!("key{:02}", k % 24).into_bytes()
}

fn op() -> impl Strategy<Value = Op> {
    let value = proptest::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        4 => (any::<u8>(), value.clone()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => any::<u8>().prop_map(Op::Delete),
        2 => proptest::collection::vec((any::<u8>(), proptest::option::of(value)), 0..12).prop_map(Op::Batch),
        1 => Just(Op::Reopen),
        1 => Just(Op::Compact),
        1 => Just(Op::Snapshot),
    ]
}

fn contents(s: &Store) -> BTreeMap<Vec<u8>, Vec<u8>> {
    s.snapshot().unwrap().iter().map(Result::unwrap).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_a_btreemap(ops in proptest::collection::vec(op(), 1..40), relaxed in any::<bool>()) {
        let dir = Scratch::new("model");
        let path = dir.path("m.kv");
        let options = Options::new().durability(if relaxed { Durability::Relaxed } else { Durability::Durable });
        let mut store = Store::open(&path, options).unwrap();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut snapshots = Vec::new();
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    store.put(&key(k), &v).unwrap();
                    model.insert(key(k), v);
                }
                Op::Delete(k) => {
                    let had = store.delete(&key(k)).unwrap();
                    prop_assert_eq!(had, model.remove(&key(k)).is_some());
                }
                Op::Batch(ops) => {
                    let mut b = Batch::new();
                    for (k, v) in ops {
                        if let Some(v) = v {
                            b.put(key(k), v.clone());
                            model.insert(key(k), v);
                        } else {
                            b.delete(key(k));
                            model.remove(&key(k));
                        }
                    }
                    store.write(&b).unwrap();
                }
                Op::Reopen => {
                    drop(store);
                    store = Store::open(&path, options).unwrap();
                }
                Op::Compact => {
                    store.compact().unwrap();
                }
                Op::Snapshot => snapshots.push((store.snapshot().unwrap(), model.clone())),
            }
            for (k, v) in &model {
                let got = store.get(k).unwrap();
                prop_assert_eq!(got.as_ref(), Some(v));
            }
        }
        prop_assert_eq!(contents(&store), model.clone());
        let first = model.keys().next().cloned().unwrap_or_default();
        let from_first: Vec<_> = store.snapshot().unwrap().prefix(b"key").map(|r| r.unwrap().0).collect();
        prop_assert_eq!(from_first.first().cloned().unwrap_or_default(), first);
        // Every snapshot still reads exactly what the model held then.
        for (snap, then) in snapshots {
            let got: BTreeMap<_, _> = snap.iter().map(Result::unwrap).collect();
            prop_assert_eq!(got, then);
        }
    }
}

/// A store with a few commits, its bytes, and its contents.
fn sample(dir: &Scratch) -> (Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>) {
    let path = dir.path("sample.kv");
    let s = Store::open(&path, Options::new().durability(Durability::Relaxed)).unwrap();
    for round in 0..6u8 {
        let mut b = Batch::new();
        for i in 0..5u8 {
            b.put(vec![b'k', i, round % 3], vec![round; 40 + usize::from(i)]);
        }
        s.write(&b).unwrap();
    }
    s.delete(&[b'k', 0, 0]).unwrap();
    // Unsynced relaxed commits are, by design, a tail a power cut may tear:
    // damage there reads as a torn tail, not as corruption.
    s.sync().unwrap();
    let model = contents(&s);
    drop(s);
    (std::fs::read(&path).unwrap(), model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn flipped_bytes_give_an_error_or_the_right_contents(at in 0usize..8192, bit in 0u8..8, spread in any::<bool>()) {
        let dir = Scratch::new("flip");
        let (bytes, model) = sample(&dir);
        let mut bad = bytes.clone();
        // Half the cases hit the header and log (the first ~5 KiB), the rest anywhere.
        let at = if spread { at * bad.len() / 8192 } else { at.min(bad.len() - 1) };
        bad[at] ^= 1 << bit;
        let path = dir.path("bad.kv");
        std::fs::write(&path, &bad).unwrap();
        match Store::open(&path, Options::new()) {
            Err(e) => {
                let text = e.to_string();
                prop_assert!(text.contains("bad.kv"), "error does not name the file: {}", text);
            }
            Ok(s) => {
                let mut got = BTreeMap::new();
                let mut failed = false;
                for r in &s.snapshot().unwrap() {
                    match r {
                        Ok((k, v)) => {
                            got.insert(k, v);
                        }
                        Err(_) => failed = true,
                    }
                }
                prop_assert!(failed || got == model, "flip at {} gave wrong contents", at);
            }
        }
    }
}
