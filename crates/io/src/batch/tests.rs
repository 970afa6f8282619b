#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "test data: small numbers made into bytes"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::test_dir::TestDir;

const BACKENDS: [Backend; 5] = [
    Backend::Sequential,
    Backend::Threads,
    Backend::Aio,
    Backend::IoUring,
    Backend::Auto,
];

/// Whether this kernel lets the process use `io_uring`.
fn uring_allowed() -> bool {
    uring::ring(4).is_ok()
}

/// Files of awkward sizes around the 4 KiB buffer, plus paths that cannot
/// be read: a missing file, a directory, a FIFO.
fn fixture(dir: &TestDir) -> (Vec<PathBuf>, Vec<usize>) {
    let sizes = [0, 1, 4095, 4096, 4097, 3 * 4096 + 7, 100_000];
    let mut paths: Vec<PathBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| dir.file(&format!("f{i}"), len))
        .collect();
    let fifo = dir.fifo("fifo");
    paths.insert(2, dir.join("missing"));
    paths.insert(5, dir.path().to_owned());
    paths.push(fifo);
    (paths, vec![2, 5, 9])
}

/// Reads `paths` with `batch`, checking that each file's chunks come in
/// order; returns the bytes per file and the failures by index.
fn read_all(
    batch: &Batch,
    paths: &[PathBuf],
) -> (BTreeMap<usize, Vec<u8>>, BTreeMap<usize, String>, Report) {
    let mut data: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let mut failed = BTreeMap::new();
    let mut done = Vec::new();
    let report = batch
        .read(paths, |event| match event {
            Event::Data {
                file,
                offset,
                bytes,
            } => {
                let buf = data.entry(file).or_default();
                assert_eq!(offset, buf.len() as u64, "file {file}: chunk out of order");
                assert!(!done.contains(&file), "file {file}: data after its end");
                buf.extend_from_slice(bytes);
            }
            Event::Done { file, size } => {
                assert_eq!(size, data.get(&file).map_or(0, |d| d.len() as u64));
                done.push(file);
            }
            Event::Failed { file, error } => {
                failed.insert(file, error.to_string());
            }
        })
        .unwrap();
    (data, failed, report)
}

#[test]
fn every_backend_returns_what_std_fs_read_does_and_reports_unreadable_files() {
    let dir = TestDir::new("batch-same");
    let (paths, bad) = fixture(&dir);
    for backend in BACKENDS {
        if backend == Backend::IoUring && !uring_allowed() {
            eprintln!("skipped io_uring: the kernel refuses it here");
            continue;
        }
        let batch = Batch::new().backend(backend).depth(3).buffer_size(4096);
        let (data, failed, report) = read_all(&batch, &paths);
        for (i, path) in paths.iter().enumerate() {
            if bad.contains(&i) {
                let why = &failed[&i];
                assert!(why.contains(&*path.to_string_lossy()), "{backend:?}: {why}");
            } else {
                let expect = std::fs::read(path).unwrap();
                assert_eq!(
                    data.get(&i).map_or(&[][..], Vec::as_slice),
                    expect,
                    "{backend:?} file {i}"
                );
            }
        }
        assert_eq!(report.failed, 3, "{backend:?}");
        assert_eq!(report.files, (paths.len() - 3) as u64, "{backend:?}");
        assert!(failed[&2].contains("no such file"), "{}", failed[&2]);
        assert!(failed[&9].contains("not a regular file"), "{}", failed[&9]);
    }
}

#[test]
fn a_batch_never_holds_more_than_its_buffer_budget() {
    let dir = TestDir::new("batch-budget");
    let paths: Vec<PathBuf> = (0..40)
        .map(|i| dir.file(&format!("f{i}"), 10_000 + i))
        .collect();
    for backend in BACKENDS {
        if backend == Backend::IoUring && !uring_allowed() {
            continue;
        }
        let batch = Batch::new().backend(backend).depth(4).buffer_size(8192);
        let (_, failed, report) = read_all(&batch, &paths);
        assert!(failed.is_empty());
        assert!(report.peak_in_flight >= 1, "{backend:?}");
        assert!(
            report.peak_in_flight <= 4,
            "{backend:?}: {}",
            report.peak_in_flight
        );
        let most = if backend == Backend::Threads {
            8 * 8192
        } else {
            4 * 8192
        };
        assert!(
            report.buffer_bytes <= most,
            "{backend:?}: {}",
            report.buffer_bytes
        );
        assert_eq!(
            report.bytes,
            (0..40).map(|i| 10_000 + i as u64).sum::<u64>()
        );
    }
}

#[test]
fn a_panicking_callback_leaves_no_read_in_flight_and_the_next_batch_works() {
    let dir = TestDir::new("batch-panic");
    let paths: Vec<PathBuf> = (0..20)
        .map(|i| dir.file(&format!("f{i}"), 50_000))
        .collect();
    for backend in BACKENDS {
        if backend == Backend::IoUring && !uring_allowed() {
            continue;
        }
        let batch = Batch::new().backend(backend).depth(8).buffer_size(4096);
        let mut seen = 0;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            batch.read(&paths, |event| {
                if let Event::Data { .. } = event {
                    seen += 1;
                    assert!(seen < 5, "callback gives up");
                }
            })
        }));
        assert!(outcome.is_err(), "{backend:?}");
        // Fresh allocations reuse the freed buffers; a read still landing
        // in them would corrupt these.
        let guard: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 4096 * 8]).collect();
        let (data, failed, _) = read_all(&batch, &paths);
        assert!(failed.is_empty());
        assert_eq!(data[&3], std::fs::read(&paths[3]).unwrap());
        for (i, g) in guard.iter().enumerate() {
            assert!(
                g.iter().all(|&b| b == i as u8),
                "{backend:?}: buffer {i} overwritten"
            );
        }
    }
}

#[test]
fn files_over_the_limit_are_reported_not_read() {
    let dir = TestDir::new("batch-max");
    let paths = vec![dir.file("small", 100), dir.file("big", 10_000)];
    let batch = Batch::new().backend(Backend::Sequential).max_file(1000);
    let (data, failed, _) = read_all(&batch, &paths);
    assert_eq!(data[&0].len(), 100);
    assert!(
        failed[&1].contains("over the limit of 1000 bytes"),
        "{}",
        failed[&1]
    );
}

#[test]
fn an_empty_list_reads_nothing() {
    for backend in BACKENDS {
        if backend == Backend::IoUring && !uring_allowed() {
            continue;
        }
        let report = Batch::new()
            .backend(backend)
            .read(&[] as &[PathBuf], |_| panic!("no events"))
            .unwrap();
        assert_eq!((report.files, report.failed, report.bytes), (0, 0, 0));
    }
}

#[test]
fn a_range_reads_only_its_bytes_of_each_file() {
    let dir = TestDir::new("batch-range");
    let (paths, bad) = fixture(&dir);
    for backend in BACKENDS {
        if backend == Backend::IoUring && !uring_allowed() {
            continue;
        }
        for range in [4095..9000, 0..1, 5000..u64::MAX, 7..7] {
            let batch = Batch::new()
                .backend(backend)
                .depth(3)
                .buffer_size(4096)
                .range(range.clone());
            let mut data: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
            let mut ends = BTreeMap::new();
            batch
                .read(&paths, |event| match event {
                    Event::Data {
                        file,
                        offset,
                        bytes,
                    } => {
                        let buf = data.entry(file).or_default();
                        assert_eq!(offset, range.start + buf.len() as u64, "{backend:?}");
                        buf.extend_from_slice(bytes);
                    }
                    Event::Done { file, size } => {
                        ends.insert(file, size);
                    }
                    Event::Failed { .. } => {}
                })
                .unwrap();
            for (i, path) in paths.iter().enumerate() {
                if bad.contains(&i) {
                    continue;
                }
                let whole = std::fs::read(path).unwrap();
                let len = whole.len() as u64;
                let (lo, hi) = (range.start.min(len), range.end.min(len));
                let expect = &whole[lo as usize..hi.max(lo) as usize];
                let got = data.get(&i).map_or(&[][..], Vec::as_slice);
                assert_eq!(got, expect, "{backend:?} file {i} range {range:?}");
                assert_eq!(
                    ends[&i],
                    range.start.max(hi),
                    "{backend:?} file {i} range {range:?}"
                );
            }
        }
    }
}

#[test]
fn a_batch_started_from_inside_a_callback_reads_right() {
    let dir = TestDir::new("batch-reentrant");
    let paths: Vec<PathBuf> = (0..6)
        .map(|i| dir.file(&format!("f{i}"), 9_000 + i))
        .collect();
    for backend in BACKENDS {
        if backend == Backend::IoUring && !uring_allowed() {
            continue;
        }
        let batch = Batch::new().backend(backend).depth(3).buffer_size(4096);
        let mut outer: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
        let mut nested = 0;
        batch
            .read(&paths, |event| {
                if let Event::Data { file, bytes, .. } = event {
                    // The outer chunk must survive a whole nested batch.
                    let before = bytes.to_vec();
                    let (inner, failed, _) = read_all(&batch, &paths);
                    assert!(failed.is_empty());
                    assert_eq!(inner[&1], std::fs::read(&paths[1]).unwrap());
                    assert_eq!(bytes, &before[..], "{backend:?}");
                    outer.entry(file).or_default().extend_from_slice(bytes);
                    nested += 1;
                }
            })
            .unwrap();
        assert!(nested > 0);
        for (i, p) in paths.iter().enumerate() {
            assert_eq!(outer[&i], std::fs::read(p).unwrap(), "{backend:?}");
        }
    }
}

/// Refuses the system call `nr` with `EPERM` in this thread and the
/// threads it starts, as a container's seccomp policy does.
#[cfg(target_arch = "x86_64")]
#[allow(
    unsafe_code,
    reason = "prctl(2) installing a seccomp filter has no safe wrapper"
)]
fn refuse_syscall(nr: libc::c_long) {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jf: u8| libc::sock_filter {
        code: 0x15,
        jt: 0,
        jf,
        k,
    };
    let mut filter = [
        stmt(0x20, 4), // load seccomp_data.arch
        jeq(AUDIT_ARCH_X86_64, 3),
        stmt(0x20, 0), // load seccomp_data.nr
        jeq(u32::try_from(nr).expect("a syscall number"), 1),
        stmt(0x06, RET_ERRNO | libc::EPERM as u32),
        stmt(0x06, RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers.
    let no_new_privs = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(no_new_privs, 0);
    // SAFETY: PR_SET_SECCOMP reads the filter program through `prog`,
    // which points at `filter`; both live through the call.
    let installed = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &raw const prog,
        )
    };
    assert_eq!(
        installed,
        0,
        "seccomp filter: {}",
        std::io::Error::last_os_error()
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn auto_falls_back_to_threads_when_seccomp_refuses_io_uring() {
    if !uring_allowed() && std::env::var_os(crate::test_dir::ALONE).is_none() {
        eprintln!("skipped: this kernel or its policy refuses io_uring already");
        return;
    }
    // The filter cannot be lifted again: each case runs in a child.
    let Some(deny) = crate::test_dir::alone(
        "batch::tests::auto_falls_back_to_threads_when_seccomp_refuses_io_uring",
        &["setup", "register"],
    ) else {
        return;
    };
    refuse_syscall(match deny {
        "setup" => libc::SYS_io_uring_setup,
        _ => libc::SYS_io_uring_register,
    });
    let dir = TestDir::new("uring-refused");
    let (paths, unreadable) = fixture(&dir);
    let (data, failed, report) = read_all(&Batch::new(), &paths);
    assert_eq!(report.backend, Backend::Threads, "auto must fall back");
    assert_eq!(failed.keys().copied().collect::<Vec<_>>(), unreadable);
    for (i, bytes) in data {
        assert_eq!(bytes, std::fs::read(&paths[i]).unwrap(), "file {i}");
    }
    let forced = Batch::new().backend(Backend::IoUring).read(&paths, |_| {});
    assert!(
        forced.is_err_and(|e| e.to_string().contains("io_uring")),
        "io_uring alone must fail, naming it"
    );
}
