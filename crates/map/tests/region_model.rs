//! Proptest model: random operation sequences on a `Region` against a
//! `Vec<u8>` holding what the bytes should be and the rights of every page.
//! Every range check must agree with the model (errors exactly when the
//! range is empty or out of bounds, or its pages lack the rights), and the
//! readable bytes must match after every step. A growable file is checked
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
    Protect(Range<usize>, Protection),
    Lock(Range<usize>),
    Residency(Range<usize>),
    Atomic { at: usize },
    Load { at: usize },
    ReleaseWidth,
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
        (
            at.clone(),
            at.clone(),
            prop_oneof![
                Just(Protection::None),
                Just(Protection::Read),
                Just(Protection::ReadWrite),
                Just(Protection::ReadWrite),
                Just(Protection::ReadExecute),
            ]
        )
            .prop_map(|(a, b, p)| Op::Protect(a..b, p)),
        (at.clone(), at.clone()).prop_map(|(a, b)| Op::Lock(a..b)),
        (at.clone(), at.clone()).prop_map(|(a, b)| Op::Residency(a..b)),
        at.clone().prop_map(|at| Op::Atomic { at }),
        at.prop_map(|at| Op::Load { at }),
        Just(Op::ReleaseWidth),
    ]
}

fn range_ok(r: &Range<usize>, len: usize) -> bool {
    r.start < r.end && r.end <= len
}

/// Page rights as a rank: 0 none, 1 read, 2 read-write.
fn rank(p: Protection) -> u8 {
    match p {
        Protection::None => 0,
        Protection::Read | Protection::ReadExecute => 1,
        _ => 2,
    }
}

/// The model: the bytes, and the rights of each page the region touches
/// (page `i` covers region offsets from `i * page - head`).
struct Model {
    bytes: Vec<u8>,
    rights: Vec<u8>,
    head: usize,
}

impl Model {
    fn new(bytes: Vec<u8>, head: usize) -> Self {
        let pages = (head + bytes.len()).div_ceil(page_size());
        Self {
            bytes,
            rights: vec![2; pages],
            head,
        }
    }

    /// Whether `at..at+n` (inside the region) has at least `need` rights.
    fn allows(&self, at: usize, n: usize, need: u8) -> bool {
        if n == 0 {
            return true;
        }
        let (first, last) = (
            (self.head + at) / page_size(),
            (self.head + at + n - 1) / page_size(),
        );
        self.rights[first..=last].iter().all(|&r| r >= need)
    }

    fn protect(&mut self, r: &Range<usize>, p: Protection) {
        let (first, last) = (
            (self.head + r.start) / page_size(),
            (self.head + r.end - 1) / page_size(),
        );
        self.rights[first..=last].fill(rank(p));
    }
}

/// Compares every readable byte of the region with the model.
fn check(region: &Region, model: &Model) {
    let len = model.bytes.len();
    assert_eq!(region.len(), len);
    let mut at = 0;
    while at < len {
        let end = ((model.head + at) / page_size() + 1) * page_size() - model.head;
        let end = end.min(len);
        let mut got = vec![0u8; end - at];
        let readable = model.allows(at, end - at, 1);
        assert_eq!(
            region.read_at(at, &mut got).is_ok(),
            readable,
            "read at {at}"
        );
        if readable {
            assert!(
                got == model.bytes[at..end],
                "bytes {at}..{end} differ from the model"
            );
        }
        at = end;
    }
}

/// `head` is how far into its first page the region starts (a file offset
/// that is not page-aligned).
fn run(mut region: Region, bytes: Vec<u8>, ops: Vec<Op>, head: usize) {
    let mut model = Model::new(bytes, head);
    // The atomic width the first view claimed (the model's regions are
    // all writable, so load-only views claim too).
    let mut width: Option<usize> = None;
    for op in ops {
        let len = model.bytes.len();
        match op {
            Op::Write { at, data } => {
                let ok = at.checked_add(data.len()).is_some_and(|end| end <= len)
                    && model.allows(at, data.len(), 2);
                assert_eq!(region.write_at(at, &data).is_ok(), ok);
                if ok {
                    model.bytes[at..at + data.len()].copy_from_slice(&data);
                }
            }
            Op::Read { at, len: n } => {
                let mut buf = vec![0u8; n];
                let ok = at + n <= len && model.allows(at, n, 1);
                assert_eq!(region.read_at(at, &mut buf).is_ok(), ok);
                if ok {
                    assert_eq!(buf, model.bytes[at..at + n]);
                }
            }
            Op::Fill { at, len: n, byte } => {
                let ok = at + n <= len && model.allows(at, n, 2);
                assert_eq!(region.fill(at, n, byte).is_ok(), ok);
                if ok {
                    model.bytes[at..at + n].fill(byte);
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
            Op::Protect(r, p) => {
                let ok = range_ok(&r, len);
                assert_eq!(region.protect(r.clone(), p).is_ok(), ok);
                if ok {
                    model.protect(&r, p);
                }
            }
            Op::Lock(r) => {
                let ok = range_ok(&r, len) && model.allows(r.start, r.end - r.start, 1);
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
                let ok = (head + at) % 8 == 0
                    && at + 8 <= len
                    && model.allows(at, 8, 2)
                    && width.is_none_or(|w| w == 8);
                assert_eq!(region.atomic_u64(at).is_ok(), ok);
                if ok {
                    width = Some(8);
                }
                assert_eq!(region.atomic_width(), width);
            }
            Op::Load { at } => {
                let ok = (head + at) % 4 == 0
                    && at + 4 <= len
                    && model.allows(at, 4, 1)
                    && width.is_none_or(|w| w == 4);
                if ok {
                    width = Some(4);
                }
                match region.load_only_u32(at) {
                    Ok(word) => {
                        assert!(ok);
                        let want = u32::from_ne_bytes(model.bytes[at..at + 4].try_into().unwrap());
                        assert_eq!(word.load(), want);
                    }
                    Err(_) => assert!(!ok),
                }
            }
            Op::ReleaseWidth => {
                region.release_atomic_width();
                width = None;
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
    fn shared_anonymous_region_matches_a_vec(len in 1..20_000usize, ops in prop::collection::vec(op(20_000), 1..40)) {
        let region = Region::anonymous_shared(len).unwrap();
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
            check(file.region(), &Model::new(model.clone(), 0));
        }
        let on_disk = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        prop_assert!(on_disk == model);
    }
}
