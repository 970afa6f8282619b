//! In-process tests: OFD and `flock` locks conflict between two opens of
//! one file even inside one process, which lets most rules be checked
//! without a second process (crates/io/tests/locks.rs spawns real ones).

use super::*;
use std::fs::File;
use std::path::PathBuf;

struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("memio-test-{}-{n}-{tag}", std::process::id()));
        std::fs::write(&p, b"0123456789").unwrap();
        Self(p)
    }

    fn open(&self) -> File {
        File::options()
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

#[test]
fn exclusive_excludes_and_shared_coexists_between_open_files() {
    for kind in [Kind::Ofd, Kind::Flock] {
        let t = TempFile::new("excl");
        let (a, b) = (t.open(), t.open());
        let la = Locker::new(&a).kind(kind);
        let lb = Locker::new(&b).kind(kind);
        let g = la.lock(Mode::Exclusive, Wait::NonBlock).unwrap();
        assert!(lb.try_lock(Mode::Shared).unwrap().is_none(), "{kind}");
        assert!(matches!(
            lb.lock(Mode::Exclusive, Wait::NonBlock),
            Err(Error::WouldBlock)
        ));
        drop(g);
        let s1 = la.lock(Mode::Shared, Wait::NonBlock).unwrap();
        let s2 = lb.lock(Mode::Shared, Wait::NonBlock).unwrap();
        drop((s1, s2));
        let _g = lb.lock(Mode::Exclusive, Wait::NonBlock).unwrap();
    }
}

#[test]
fn disjoint_ranges_do_not_conflict_and_overlapping_ones_do() {
    let t = TempFile::new("ranges");
    let (a, b) = (t.open(), t.open());
    let _g = Locker::new(&a)
        .range(0, 5)
        .lock(Mode::Exclusive, Wait::NonBlock)
        .unwrap();
    let _h = Locker::new(&b)
        .range(5, 5)
        .lock(Mode::Exclusive, Wait::NonBlock)
        .unwrap();
    assert!(
        Locker::new(&b)
            .range(4, 2)
            .try_lock(Mode::Shared)
            .unwrap()
            .is_none()
    );
    // len 0 reaches the end of the file however far it grows.
    assert!(
        Locker::new(&b)
            .range(1000, 0)
            .try_lock(Mode::Shared)
            .unwrap()
            .is_some()
    );
}

#[test]
fn timeout_expires_with_timed_out() {
    let t = TempFile::new("timeout");
    let (a, b) = (t.open(), t.open());
    for kind in [Kind::Ofd, Kind::Flock] {
        let _g = Locker::new(&a)
            .kind(kind)
            .lock(Mode::Exclusive, Wait::Block)
            .unwrap();
        let err = Locker::new(&b)
            .kind(kind)
            .lock(Mode::Shared, Wait::Timeout(Duration::from_millis(30)))
            .unwrap_err();
        assert!(
            matches!(err, Error::TimedOut(d) if d == Duration::from_millis(30)),
            "{err}"
        );
        assert!(err.is_conflict());
    }
}

#[test]
fn flock_refuses_ranges_and_huge_ranges_are_refused() {
    let t = TempFile::new("refuse");
    let a = t.open();
    assert!(matches!(
        Locker::new(&a)
            .kind(Kind::Flock)
            .range(1, 1)
            .lock(Mode::Shared, Wait::Block),
        Err(Error::RangeNeedsRecordLock)
    ));
    assert!(matches!(
        Locker::new(&a)
            .range(u64::MAX, 1)
            .lock(Mode::Shared, Wait::Block),
        Err(Error::RangeTooLarge { .. })
    ));
    assert!(matches!(
        Locker::new(&a)
            .range(i64::MAX as u64, 1)
            .lock(Mode::Shared, Wait::Block),
        Err(Error::RangeTooLarge { .. })
    ));
}

#[test]
fn exclusive_record_lock_on_a_read_only_file_is_an_os_error() {
    let t = TempFile::new("rdonly");
    let r = File::open(&t.0).unwrap();
    let err = Locker::new(&r)
        .lock(Mode::Exclusive, Wait::NonBlock)
        .unwrap_err();
    assert!(
        matches!(err, Error::Io(ref e) if e.raw_os_error() == Some(libc::EBADF)),
        "{err}"
    );
}

#[test]
fn upgrade_waits_for_other_readers_and_downgrade_lets_them_in() {
    for kind in [Kind::Ofd, Kind::Flock] {
        let t = TempFile::new("upgrade");
        let (a, b) = (t.open(), t.open());
        let (la, lb) = (Locker::new(&a).kind(kind), Locker::new(&b).kind(kind));
        let mut ga = la.lock(Mode::Shared, Wait::Block).unwrap();
        let gb = lb.lock(Mode::Shared, Wait::Block).unwrap();
        assert!(
            matches!(ga.upgrade(Wait::NonBlock), Err(Error::WouldBlock)),
            "{kind}"
        );
        assert!(matches!(
            ga.upgrade(Wait::Timeout(Duration::from_millis(20))),
            Err(Error::TimedOut(_))
        ));
        // The failed upgrades kept the shared lock (flock: taken back).
        assert_eq!(ga.mode(), Mode::Shared);
        assert!(
            lb.try_lock(Mode::Exclusive).unwrap().is_none(),
            "{kind}: shared lock was lost"
        );
        drop(gb);
        ga.upgrade(Wait::NonBlock).unwrap();
        assert_eq!(ga.mode(), Mode::Exclusive);
        assert!(lb.try_lock(Mode::Shared).unwrap().is_none());
        ga.downgrade().unwrap();
        let gb = lb.try_lock(Mode::Shared).unwrap();
        assert!(gb.is_some(), "{kind}: downgrade should admit readers");
        ga.unlock().unwrap();
    }
}

#[test]
fn posix_locks_die_when_any_descriptor_closes_ofd_locks_do_not() {
    // OFD and POSIX locks share one table and conflict with each other, so
    // an OFD probe on a third descriptor sees this process's POSIX lock.
    let t = TempFile::new("trap");
    let (a, probe) = (t.open(), t.open());
    let me = std::process::id();

    let g = Locker::new(&a)
        .kind(Kind::Posix)
        .lock(Mode::Exclusive, Wait::Block)
        .unwrap();
    let h = Locker::new(&probe)
        .holder(Mode::Shared)
        .unwrap()
        .expect("posix lock visible");
    assert_eq!(
        (h.kind, h.mode, h.pid),
        (Kind::Posix, Mode::Exclusive, Some(me))
    );
    drop(t.open()); // open and close an unrelated descriptor of the same file
    assert!(
        Locker::new(&probe).holder(Mode::Shared).unwrap().is_none(),
        "closing another descriptor dropped the POSIX lock"
    );
    drop(g);

    let g = Locker::new(&a).lock(Mode::Exclusive, Wait::Block).unwrap();
    drop(t.open());
    let h = Locker::new(&probe)
        .holder(Mode::Shared)
        .unwrap()
        .expect("ofd lock survives");
    assert_eq!((h.kind, h.pid), (Kind::Ofd, Some(me)));
    drop(g);
}

#[test]
fn holder_reports_range_and_mode_and_own_locks_never_conflict() {
    let t = TempFile::new("holder");
    let (a, b) = (t.open(), t.open());
    let _g = Locker::new(&a)
        .range(2, 3)
        .lock(Mode::Shared, Wait::Block)
        .unwrap();
    assert!(Locker::new(&a).holder(Mode::Exclusive).unwrap().is_none());
    assert!(Locker::new(&b).holder(Mode::Shared).unwrap().is_none());
    let h = Locker::new(&b).holder(Mode::Exclusive).unwrap().unwrap();
    assert_eq!(
        (h.kind, h.mode, h.start, h.len),
        (Kind::Ofd, Mode::Shared, 2, 3)
    );
    assert_eq!(h.pid, Some(std::process::id()));

    let _f = Locker::new(&a)
        .kind(Kind::Flock)
        .lock(Mode::Exclusive, Wait::Block)
        .unwrap();
    assert!(
        Locker::new(&a)
            .kind(Kind::Flock)
            .holder(Mode::Shared)
            .unwrap()
            .is_none()
    );
    let h = Locker::new(&b)
        .kind(Kind::Flock)
        .holder(Mode::Shared)
        .unwrap()
        .unwrap();
    assert_eq!(
        (h.kind, h.mode, h.pid),
        (Kind::Flock, Mode::Exclusive, Some(std::process::id()))
    );
}

#[test]
fn kinds_parse_from_their_names() {
    assert_eq!("OFD".parse::<Kind>().unwrap(), Kind::Ofd);
    assert_eq!("flock".parse::<Kind>().unwrap(), Kind::Flock);
    assert!(
        "fcntl"
            .parse::<Kind>()
            .unwrap_err()
            .contains("ofd, posix, flock")
    );
}

#[test]
fn a_duplicated_descriptor_shares_the_lock_and_keep_leaves_it_held() {
    use std::os::fd::AsRawFd;
    for kind in [Kind::Ofd, Kind::Flock] {
        let t = TempFile::new("dup");
        let (a, other) = (t.open(), t.open());
        let dup = dup_inherited(a.as_raw_fd()).unwrap();
        assert_ne!(dup.as_raw_fd(), a.as_raw_fd());
        // Locked through the duplicate: the shared description holds it.
        Locker::new(&dup)
            .kind(kind)
            .lock(Mode::Exclusive, Wait::NonBlock)
            .unwrap()
            .keep();
        drop(dup);
        let probe = Locker::new(&other).kind(kind);
        assert!(
            probe.try_lock(Mode::Shared).unwrap().is_none(),
            "{kind}: kept lock lives on in the original descriptor"
        );
        // -u through the original descriptor releases it.
        Locker::new(&a).kind(kind).unlock().unwrap();
        assert!(probe.try_lock(Mode::Exclusive).unwrap().is_some(), "{kind}");
    }
}

#[test]
fn dup_inherited_refuses_numbers_that_are_not_open() {
    // Far above any descriptor limit, so no other test thread can have it
    // open (a just-closed number could be reused by a parallel test).
    assert_eq!(
        dup_inherited(1 << 30).unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
    assert_eq!(
        dup_inherited(-3).unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
}

#[test]
fn set_inherited_flips_close_on_exec() {
    let t = TempFile::new("cloexec");
    let f = t.open();
    let cloexec = || {
        rustix::io::fcntl_getfd(&f)
            .unwrap()
            .contains(rustix::io::FdFlags::CLOEXEC)
    };
    assert!(cloexec());
    set_inherited(&f, true).unwrap();
    assert!(!cloexec());
    set_inherited(&f, false).unwrap();
    assert!(cloexec());
}
