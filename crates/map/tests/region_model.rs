//! Proptest model: random operation sequences on a `Region` against a
//! `Vec<u8>` holding what the bytes should be. Every range check must agree
//! with the model (errors exactly when the range is empty or out of bounds),
//! and the bytes must match after every step. A growable file is checked
//! the same way through a sequence of resizes and appends.

use std::ops::Range;

use memio_map::{Advice, MapOptions, Protection, Region, SyncMode, page_size};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Write { at: usize, data: Vec<u8> },
    Read { at: usize, len: usize },
    Fill { at: usize, len: usize, byte: u8 },
    Sync(Range<usize>),
    Advise(Range<usize>),
    Protect(Range<usize>),
    Lock(Range<usize>),
    Residency(Range<usize>),
    Atomic { at: usize },
}

fn op(max: usize) -> impl Strategy<Value = Op> {
    let at = 0..max + 64;
    prop_oneof![
        (at.clone(), prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(at, data)| Op::Write { at, data }),
        (at.clone(), 0..600usize).prop_map(|(at, len)| Op::Read { at, len }),
        (at.clone(), 0..9000usize, any::<u8>()).prop_map(|(at, len, byte)| Op::Fill {
            at,
            len,
            byte
        }),
        (at.clone(), at.clone()).prop_map(|(a, b)| Op::Sync(a..b)),
        (at.clone(), at.clone()).prop_map(|(a, b)| Op::Advise(a..b)),
        (at.clone(), at.clone()).prop_map(|(a, b)| Op::Protect(a..b)),
        (at.clone(), at.clone()).prop_map(|(a, b)| Op::Lock(a..b)),
        (at.clone(), at.clone()).prop_map(|(a, b)| Op::Residency(a..b)),
        at.prop_map(|at| Op::Atomic { at }),
    ]
}

fn range_ok(r: &Range<usize>, len: usize) -> bool {
    r.start < r.end && r.end <= len
}

fn check(region: &Region, model: &[u8]) {
    assert_eq!(region.len(), model.len());
    let mut all = vec![0u8; model.len()];
    region.read_at(0, &mut all).unwrap();
    assert!(all == model, "region bytes differ from the model");
}

/// `head` is how far into its first page the region starts (a file offset
/// that is not page-aligned).
fn run(mut region: Region, mut model: Vec<u8>, ops: Vec<Op>, head: usize) {
    for op in ops {
        let len = model.len();
        match op {
            Op::Write { at, data } => {
                let ok = at.checked_add(data.len()).is_some_and(|end| end <= len);
                assert_eq!(region.write_at(at, &data).is_ok(), ok);
                if ok {
                    model[at..at + data.len()].copy_from_slice(&data);
                }
            }
            Op::Read { at, len: n } => {
                let mut buf = vec![0u8; n];
                let ok = at + n <= len;
                assert_eq!(region.read_at(at, &mut buf).is_ok(), ok);
                if ok {
                    assert_eq!(buf, model[at..at + n]);
                }
            }
            Op::Fill { at, len: n, byte } => {
                let ok = at + n <= len;
                assert_eq!(region.fill(at, n, byte).is_ok(), ok);
                if ok {
                    model[at..at + n].fill(byte);
                }
            }
            Op::Sync(r) => {
                let ok = range_ok(&r, len);
                assert_eq!(region.sync(r, SyncMode::Async).is_ok(), ok);
            }
            Op::Advise(r) => {
                let ok = range_ok(&r, len);
                assert_eq!(region.advise(r, Advice::WillNeed).is_ok(), ok);
            }
            Op::Protect(r) => {
                // Read-write keeps every later operation legal.
                let ok = range_ok(&r, len);
                assert_eq!(region.protect(r, Protection::ReadWrite).is_ok(), ok);
            }
            Op::Lock(r) => {
                let ok = range_ok(&r, len);
                let guard = region.lock(r.clone());
                assert_eq!(guard.is_ok(), ok);
                if let Ok(g) = guard {
                    assert_eq!(g.len() % page_size(), 0);
                    assert!(g.len() >= r.end - r.start);
                }
            }
            Op::Residency(r) => {
                let ok = range_ok(&r, len);
                match region.residency(r.clone()) {
                    Ok(pages) => {
                        assert!(ok);
                        let first = (head + r.start) / page_size();
                        let last = (head + r.end - 1) / page_size();
                        assert_eq!(pages.len(), last - first + 1);
                    }
                    Err(_) => assert!(!ok),
                }
            }
            Op::Atomic { at } => {
                let ok = (head + at) % 8 == 0 && at + 8 <= len;
                assert_eq!(region.atomic_u64(at).is_ok(), ok);
            }
        }
        check(&region, &model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn anonymous_region_matches_a_vec(len in 1..20_000usize, ops in prop::collection::vec(op(20_000), 1..40)) {
        let region = Region::anonymous(len).unwrap();
        run(region, vec![0; len], ops, 0);
    }

    #[test]
    fn private_file_region_at_an_offset_matches_a_vec(
        offset in 0..9000usize,
        len in 1..12_000usize,
        ops in prop::collection::vec(op(12_000), 1..30),
    ) {
        let path = std::env::temp_dir().join(format!(
            "memio-map-model-{}-{offset}-{len}",
            std::process::id()
        ));
        let contents: Vec<u8> = (0..offset + len).map(|i| u8::try_from(i % 253).unwrap()).collect();
        std::fs::write(&path, &contents).unwrap();
        let region = MapOptions::new()
            .private()
            .read_write()
            .offset(offset as u64)
            .len(len)
            .map_path(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        run(region, contents[offset..].to_vec(), ops, offset % page_size());
    }

    #[test]
    fn growable_file_keeps_its_bytes_through_resizes(
        steps in prop::collection::vec((1..40_000usize, prop::collection::vec(any::<u8>(), 0..100)), 1..12),
    ) {
        let path = std::env::temp_dir().join(format!(
            "memio-map-model-grow-{}-{}",
            std::process::id(),
            steps.len() * 100_000 + steps[0].0
        ));
        let _ = std::fs::remove_file(&path);
        let mut file = memio_map::GrowableFile::open(&path, 1).unwrap();
        let mut model = vec![0u8; 1];
        for (new_len, data) in steps {
            file.set_len(new_len).unwrap();
            model.resize(new_len, 0);
            let at = file.append(&data).unwrap();
            prop_assert_eq!(at, model.len());
            model.extend_from_slice(&data);
            check(file.region(), &model);
        }
        let on_disk = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        prop_assert!(on_disk == model);
    }
}
