//! System V shared-memory segments (`shmget`, `shmat`, `shmdt`,
//! `shmctl`), attached as [`Region`]s.
//!
//! # Safety
//!
//! `shmat` and `shmdt` are reachable only through libc. A segment attached
//! here is handed to [`Region::from_raw_parts`] with a release function
//! that detaches it exactly once, when the region drops; `shmat` returns
//! page-aligned memory of the segment's size, mapped read-write unless
//! `SHM_RDONLY` was asked for (and the region is then read-only too).
#![allow(
    unsafe_code,
    reason = "System V shared memory is only reachable through libc"
)]

use std::io;
use std::ptr::NonNull;

use memio_map::{Access, Region, Release, Sharing};

use crate::error;
use crate::ffi;
use crate::key::{Create, DEFAULT_MODE, Key};

/// `SHM_EXEC` of `<sys/shm.h>` (Linux 2.6.9+): attach with execute
/// permission. The libc crate does not export it for glibc targets.
const SHM_EXEC: libc::c_int = 0o100_000;

/// A System V segment's status (`struct shmid_ds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmStat {
    /// The key it was created with.
    pub key: Key,
    /// Permission bits.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Creator user id.
    pub cuid: u32,
    /// Creator group id.
    pub cgid: u32,
    /// Size in bytes.
    pub size: u64,
    /// How many attachments exist now.
    pub attaches: u64,
    /// Pid of the creator.
    pub creator_pid: i32,
    /// Pid of the last `shmat`/`shmdt`.
    pub last_pid: i32,
    /// Time of the last attach, seconds since the epoch (0: never).
    pub attach_time: i64,
    /// Time of the last detach.
    pub detach_time: i64,
    /// Time of the last change.
    pub change_time: i64,
    /// Whether it is marked for removal once the last process detaches.
    pub removed: bool,
}

/// A System V shared-memory segment, by id. It lives until removed
/// ([`SysvShm::remove`]) and the last attachment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysvShm {
    id: i32,
}

/// The release function of attached segments: `shmdt`.
fn detach(ptr: NonNull<u8>, _len: usize) {
    // SAFETY: called once per attachment with the address `shmat`
    // returned: by Region when the region that owns it drops, or by
    // `attach` before any region exists.
    unsafe { libc::shmdt(ptr.as_ptr().cast()) };
}

/// How to find or create a System V segment: its size and the mode of a
/// new one.
///
/// ```
/// use memio_ipc::shm::sysv::SysvShmOptions;
/// use memio_ipc::{Create, Key};
/// use memio_map::Access;
///
/// let seg = SysvShmOptions::new().size(4096).mode(0o600).open(Key::PRIVATE, Create::Exclusive)?;
/// let mut region = seg.attach(Access::ReadWrite)?;
/// region.write_at(0, b"hello")?;
/// seg.remove()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SysvShmOptions {
    size: usize,
    mode: u32,
}

impl Default for SysvShmOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SysvShmOptions {
    /// Size 0 (give one to create), mode 0600.
    #[must_use]
    pub fn new() -> Self {
        Self {
            size: 0,
            mode: DEFAULT_MODE,
        }
    }

    /// The size of a new segment; opening an existing one accepts any size
    /// up to its own (0: any).
    #[must_use]
    pub fn size(mut self, bytes: usize) -> Self {
        self.size = bytes;
        self
    }

    /// Permission bits of a new segment (default 0600).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Finds or creates the segment for `key` ([`Key::PRIVATE`] always
    /// creates).
    ///
    /// # Errors
    /// An OS error naming the key (exists, not found, `size` larger than
    /// an existing segment, above `/proc/sys/kernel/shmmax`).
    #[doc(alias = "shmget")]
    ///
    /// # References
    /// [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html)
    pub fn open(&self, key: Key, create: Create) -> io::Result<SysvShm> {
        let size = self.size;
        let empty = (size == 0).then_some("of 0 bytes");
        // SAFETY: shmget takes only integers.
        let get = |key, flags| unsafe { libc::shmget(key, size, flags) };
        let id = create.sysv_get(key, self.mode, "shared memory segment", empty, get)?;
        Ok(SysvShm { id })
    }
}

/// Whether two status reads describe one segment (attachments and their
/// times aside).
fn same_segment(a: &ShmStat, b: &ShmStat) -> bool {
    (a.key, a.size, a.creator_pid, a.cuid, a.change_time)
        == (b.key, b.size, b.creator_pid, b.cuid, b.change_time)
}

impl SysvShm {
    /// Finds or creates the segment for `key` with the default options
    /// (`size` bytes when created, mode 0600); see [`SysvShmOptions`].
    ///
    /// # Errors
    /// As [`SysvShmOptions::open`].
    pub fn get(key: Key, size: usize, create: Create) -> io::Result<Self> {
        SysvShmOptions::new().size(size).open(key, create)
    }

    /// A new private segment of `size` bytes, mode 0600.
    ///
    /// # Errors
    /// As [`SysvShm::get`].
    pub fn private(size: usize) -> io::Result<Self> {
        Self::get(Key::PRIVATE, size, Create::Exclusive)
    }

    /// The segment with this id (as `ipcs -m` prints it).
    #[must_use]
    pub const fn from_id(id: i32) -> Self {
        Self { id }
    }

    /// The segment's id.
    #[must_use]
    pub const fn id(self) -> i32 {
        self.id
    }

    fn describe(self) -> String {
        format!("shared memory segment id {}", self.id)
    }

    /// Attaches the segment and returns it as a region, detached
    /// (`shmdt`) when the region drops. An executable `access` attaches
    /// with `SHM_EXEC`; a kernel that refuses executable pages answers
    /// `EACCES`/`EPERM`.
    ///
    /// # Errors
    /// An OS error naming the segment.
    #[doc(alias = "shmat")]
    #[doc(alias = "shmdt")]
    ///
    /// # References
    /// [shmop(2)](https://man7.org/linux/man-pages/man2/shmop.2.html)
    pub fn attach(self, access: Access) -> io::Result<Region> {
        self.attach_between(access, &mut || {})
    }

    /// [`SysvShm::attach`] with `between` run after the size is read and
    /// before `shmat` (tests replace the segment there).
    fn attach_between(self, access: Access, between: &mut dyn FnMut()) -> io::Result<Region> {
        let before = self.stat()?;
        let size = usize::try_from(before.size).unwrap_or(0);
        let flags = match access {
            Access::ReadOnly => libc::SHM_RDONLY,
            Access::ReadWrite => 0,
            Access::ReadExecute => libc::SHM_RDONLY | SHM_EXEC,
            Access::ReadWriteExecute => SHM_EXEC,
        };
        between();
        // SAFETY: a null address lets the kernel choose where to attach.
        let ptr = unsafe { libc::shmat(self.id, std::ptr::null(), flags) };
        if ptr as isize == -1 {
            return Err(error::last("attach", &self.describe()));
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| {
            io::Error::other(format!(
                "failed to attach {}: null address",
                self.describe()
            ))
        })?;
        // The size came from a status read before `shmat`: if the id was
        // removed and given to another segment in between, the mapping may
        // be smaller than `size`. Read the status again; the same segment
        // (creator, change time, size) means the id named it throughout.
        let after = self.stat();
        if !after.is_ok_and(|after| same_segment(&before, &after)) {
            detach(ptr, size);
            return Err(error::os(
                "attach",
                &self.describe(),
                io::Error::from_raw_os_error(libc::EIDRM),
            ));
        }
        // SAFETY: shmat mapped `size` bytes (the segment's size, checked
        // unchanged above) at the page-aligned `ptr`, writable unless
        // SHM_RDONLY — matching `access`; nothing else detaches it;
        // `detach` undoes exactly this attachment.
        let region = unsafe {
            Region::from_raw_parts(ptr, size, Sharing::Shared, access, Release::With(detach))
        };
        // Two attachments of one segment are the same bytes: they share
        // one atomic width (no mixed-size views across them).
        Ok(region.with_object_identity(u64::MAX, u64::try_from(self.id).unwrap_or(u64::MAX)))
    }

    /// The segment's status.
    ///
    /// # Errors
    /// An OS error naming the segment.
    #[doc(alias = "shmctl")]
    #[doc(alias = "IPC_STAT")]
    ///
    /// # References
    /// [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    pub fn stat(self) -> io::Result<ShmStat> {
        // SAFETY: shmid_ds is plain data; all-zero is a valid value.
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: `ds` is a valid out-pointer for IPC_STAT.
        ffi::retry(|| unsafe { libc::shmctl(self.id, libc::IPC_STAT, &raw mut ds) })
            .map_err(|e| error::os("read the status of", &self.describe(), e))?;
        let mode = u32::from(ds.shm_perm.mode);
        Ok(ShmStat {
            key: Key::from_raw(ds.shm_perm.__key),
            mode: mode & 0o777,
            uid: ds.shm_perm.uid,
            gid: ds.shm_perm.gid,
            cuid: ds.shm_perm.cuid,
            cgid: ds.shm_perm.cgid,
            size: ds.shm_segsz as u64,
            attaches: ds.shm_nattch,
            creator_pid: ds.shm_cpid,
            last_pid: ds.shm_lpid,
            attach_time: ds.shm_atime,
            detach_time: ds.shm_dtime,
            change_time: ds.shm_ctime,
            removed: mode & 0o1000 != 0,
        })
    }

    /// Marks the segment for removal: it goes when the last process
    /// detaches, and no one can attach it by key meanwhile.
    ///
    /// # Errors
    /// An OS error naming the segment.
    #[doc(alias = "IPC_RMID")]
    pub fn remove(self) -> io::Result<()> {
        // SAFETY: IPC_RMID takes no buffer.
        ffi::retry(|| unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) })
            .map_err(|e| error::os("remove", &self.describe(), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Removes the segment when the test ends, pass or fail.
    struct Removed(SysvShm);

    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = self.0.remove();
        }
    }

    #[test]
    fn a_segment_replaced_by_a_smaller_one_is_not_attached_at_the_old_size() {
        // Give the id of a two-page segment to a one-page segment between
        // the size check and shmat. Reusing an id takes
        // /proc/sys/kernel/shm_next_id, which only root may write.
        const NEXT_ID: &str = "/proc/sys/kernel/shm_next_id";
        let page = rustix::param::page_size();
        let big = SysvShm::private(2 * page).unwrap();
        let id = big.id();
        let mut replacement = None;
        let mut between = || {
            if replacement.is_some() {
                return;
            }
            big.remove().unwrap();
            if std::fs::write(NEXT_ID, id.to_string()).is_err() {
                return;
            }
            replacement = Some(Removed(SysvShm::private(page).unwrap()));
        };
        let got = big.attach_between(Access::ReadWrite, &mut between);
        let Some(small) = replacement else {
            eprintln!("skipped: cannot write {NEXT_ID} (needs root)");
            return;
        };
        if small.0.id() != id {
            eprintln!("skipped: another process took id {id} first");
            return;
        }
        // Before the second status read, this was a two-page region over a
        // one-page mapping: reading its second page died of SIGSEGV.
        match got {
            Err(e) => assert_eq!(crate::raw_errno(&e), Some(libc::EIDRM), "{e}"),
            Ok(region) => {
                assert_eq!(region.len(), page, "a region longer than the mapping");
            }
        }
    }

    /// Two attachments of one segment in a process are the same bytes: a
    /// 4-byte view through one and an 8-byte view through the other would
    /// race at mixed sizes.
    #[test]
    fn two_attachments_of_one_segment_share_one_atomic_width() {
        let seg = Removed(SysvShm::private(rustix::param::page_size()).unwrap());
        let first = seg.0.attach(Access::ReadWrite).unwrap();
        let second = seg.0.attach(Access::ReadWrite).unwrap();
        let other = Removed(SysvShm::private(4096).unwrap());
        let unrelated = other.0.attach(Access::ReadWrite).unwrap();
        let flag = first.atomic_u32(0).unwrap();
        let e = second.atomic_u64(0).unwrap_err();
        assert!(e.to_string().contains("4-byte atomic views"), "{e}");
        assert!(unrelated.atomic_u64(0).is_ok(), "another segment");
        flag.store(7, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(second.load_only_u32(0).unwrap().load(), 7);
    }

    #[test]
    fn an_executable_attach_uses_shm_exec() {
        let page = rustix::param::page_size();
        let seg = Removed(SysvShm::private(page).unwrap());
        for (access, rights) in [
            (Access::ReadExecute, "r-xs"),
            (Access::ReadWriteExecute, "rwxs"),
            (Access::ReadOnly, "r--s"),
        ] {
            let region = match seg.0.attach(access) {
                Ok(region) => region,
                Err(e) if access.executable() => {
                    // A W^X policy may refuse executable shared memory.
                    assert!(
                        matches!(crate::raw_errno(&e), Some(libc::EACCES | libc::EPERM)),
                        "{e}"
                    );
                    continue;
                }
                Err(e) => panic!("{e}"),
            };
            assert_eq!(region.access(), access);
            let start = format!("{:x}-", region.as_ptr() as usize);
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            let line = maps.lines().find(|l| l.starts_with(&start));
            if line.is_none() && std::env::var("LD_PRELOAD").is_ok_and(|p| p.contains("vgpreload"))
            {
                eprintln!("skipped: valgrind's /proc/self/maps does not list the attach");
                return;
            }
            let line = line.expect("the attach is in /proc/self/maps");
            assert_eq!(line.split_whitespace().nth(1), Some(rights), "{line}");
        }
    }
}
