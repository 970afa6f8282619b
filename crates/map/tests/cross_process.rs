//! Mapping behaviour users rely on, checked across real processes: the
//! parent forks, the child does its part and reports through its exit status
//! (or dies of the signal under test).
#![allow(
    unsafe_code,
    reason = "fork/waitpid/_exit to run the second process, and raw writes that must fault"
)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use memio_map::{GrowableFile, LockAll, MapOptions, Protection, Region, SyncMode, lock_all};

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Exited(i32),
    Signaled(i32),
}

/// Runs `child` in a forked process; it passes by returning `true`.
fn in_child(child: impl FnOnce() -> bool) -> Outcome {
    // SAFETY: the child only runs `child` (plain Rust and syscalls) and then
    // leaves with `_exit`, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = catch_unwind(AssertUnwindSafe(child)).unwrap_or(false);
        // SAFETY: `_exit` ends the child without running the parent's atexit
        // handlers or flushing its copied stdio buffers.
        unsafe { libc::_exit(i32::from(!ok)) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid out-pointer.
    let rc = unsafe { libc::waitpid(pid, &raw mut status, 0) };
    assert_eq!(rc, pid, "waitpid failed");
    if libc::WIFSIGNALED(status) {
        Outcome::Signaled(libc::WTERMSIG(status))
    } else {
        Outcome::Exited(libc::WEXITSTATUS(status))
    }
}

/// A temporary file removed on drop, even when the test fails.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &[u8]) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "memio-map-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let mut f = File::create(&path).unwrap();
        f.write_all(contents).unwrap();
        Self(path)
    }

    fn open_rw(&self) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.0)
            .unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn read(region: &Region, at: usize, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    region.read_at(at, &mut buf).unwrap();
    buf
}

#[test]
fn private_writes_are_seen_neither_in_the_file_nor_by_another_process() {
    let tmp = TempFile::new(&[b'.'; 4096]);
    let mut private = MapOptions::new()
        .private()
        .read_write()
        .map(tmp.open_rw())
        .unwrap();
    private.write_at(0, b"private").unwrap();
    private.sync(.., SyncMode::Sync).unwrap();
    assert_eq!(read(&private, 0, 7), b"private");
    assert_eq!(&std::fs::read(&tmp.0).unwrap()[..7], b".......");
    // Another process maps the file on its own and must not see the write.
    let outcome = in_child(|| {
        let mine = MapOptions::new().map_path(&tmp.0).unwrap();
        read(&mine, 0, 7) == b"......."
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn shared_writes_are_seen_by_another_process() {
    let tmp = TempFile::new(&[b'.'; 4096]);
    let parent = MapOptions::new().map_path(&tmp.0).unwrap();
    let outcome = in_child(|| {
        // The child's own mapping, made after fork: not inherited memory.
        let mut mine = MapOptions::new().read_write().map_path(&tmp.0).unwrap();
        mine.write_at(100, b"from the child").is_ok()
    });
    assert_eq!(outcome, Outcome::Exited(0));
    assert_eq!(read(&parent, 100, 14), b"from the child");
    assert_eq!(&std::fs::read(&tmp.0).unwrap()[100..114], b"from the child");
}

#[test]
fn child_sees_anonymous_shared_memory_after_fork_and_only_it_crosses_back() {
    let mut shared = Region::anonymous_shared(4096).unwrap();
    let mut private = Region::anonymous(4096).unwrap();
    shared.write_at(0, b"before").unwrap();
    private.write_at(0, b"before").unwrap();
    let (sp, pp) = (shared.as_mut_ptr(), private.as_mut_ptr());
    let outcome = in_child(|| {
        let saw = read(&shared, 0, 6) == b"before" && read(&private, 0, 6) == b"before";
        // SAFETY: both regions are live and writable in the child's copy of
        // the address space; no reference to their bytes exists.
        unsafe { sp.copy_from_nonoverlapping(b"child!".as_ptr(), 6) };
        // SAFETY: as above.
        unsafe { pp.copy_from_nonoverlapping(b"child!".as_ptr(), 6) };
        saw
    });
    assert_eq!(outcome, Outcome::Exited(0));
    assert_eq!(read(&shared, 0, 6), b"child!", "shared memory is shared");
    assert_eq!(
        read(&private, 0, 6),
        b"before",
        "private memory is copy-on-write"
    );
}

#[test]
fn protect_makes_a_raw_write_fault_and_safe_calls_refuse() {
    let page = memio_map::page_size();
    let mut region = Region::anonymous(3 * page).unwrap();
    region.write_at(0, b"data").unwrap();
    region.protect(.., Protection::Read).unwrap();
    let ptr = region.as_mut_ptr();
    let outcome = in_child(|| {
        // SAFETY: the page is mapped; the write is meant to fault because
        // the page is read-only now.
        unsafe { ptr.write_volatile(b'X') };
        true
    });
    assert_eq!(outcome, Outcome::Signaled(libc::SIGSEGV));
    // The safe calls refuse what would fault, in this process, instead.
    let e = region.write_at(0, b"X").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(
        e.to_string().contains("pages there are protected as Read"),
        "{e}"
    );
    assert!(region.atomic_u32(0).is_err());
    assert_eq!(
        region.load_only_u32(0).unwrap().load(),
        u32::from_ne_bytes(*b"data")
    );
    // Reading still works, and restoring write access lets writes through.
    assert_eq!(read(&region, 0, 4), b"data");
    region.protect(page.., Protection::None).unwrap();
    let outcome = in_child(|| {
        // SAFETY: mapped, and meant to fault: a guard page.
        unsafe { ptr.wrapping_add(page).read_volatile() };
        true
    });
    assert_eq!(outcome, Outcome::Signaled(libc::SIGSEGV), "guard page");
    let mut buf = [0u8; 2];
    let e = region.read_at(page - 1, &mut buf).unwrap_err();
    assert!(e.to_string().contains("protected as None"), "{e}");
    assert!(region.load_only_u32(page).is_err());
    region.protect(..page, Protection::ReadWrite).unwrap();
    region.write_at(0, b"DATA").unwrap();
    assert_eq!(read(&region, 0, 4), b"DATA");
    assert!(region.write_at(page, b"X").is_err(), "still a guard page");
    region.protect(.., Protection::ReadWrite).unwrap();
    region.write_at(2 * page, b"X").unwrap();
    assert_eq!(read(&region, page - 1, 2), [0, 0]);
}

#[test]
fn touching_a_mapping_past_a_truncated_end_raises_sigbus() {
    let tmp = TempFile::new(&[1; 3 * 4096]);
    let region = MapOptions::new().map_path(&tmp.0).unwrap();
    tmp.open_rw().set_len(4096).unwrap();
    let outcome = in_child(|| read(&region, 2 * 4096, 1) == [1]);
    assert_eq!(outcome, Outcome::Signaled(libc::SIGBUS));
    // The part still inside the file reads fine, and residency queries do
    // not fault.
    assert_eq!(read(&region, 0, 1), [1]);
    assert_eq!(region.residency(..).unwrap().len(), 3);
}

#[test]
fn growable_file_keeps_earlier_data_across_another_process() {
    let tmp = TempFile::new(b"");
    let mut g = GrowableFile::open(&tmp.0, 0x10).unwrap();
    g.write_at(0, b"first line\n").unwrap();
    g.append(b"This is GR8\n").unwrap();
    g.set_len(5 << 20).unwrap();
    g.write_at((5 << 20) - 4, b"tail").unwrap();
    g.region().sync(.., SyncMode::Sync).unwrap();
    let path = tmp.0.clone();
    let outcome = in_child(move || {
        let data = std::fs::read(&path).unwrap();
        data.len() == 5 << 20
            && data.starts_with(b"first line\n\0\0\0\0\0This is GR8\n")
            && data.ends_with(b"tail")
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn lock_all_future_locks_new_mappings_in_a_child() {
    // mlockall changes the whole process, so it runs in a child only.
    let outcome = in_child(|| {
        let Ok(_guard) = lock_all(LockAll::Future) else {
            return false;
        };
        let region = Region::anonymous(64 << 10).unwrap();
        region.residency(..).unwrap().iter().all(|&r| r)
    });
    assert_eq!(outcome, Outcome::Exited(0));
}
