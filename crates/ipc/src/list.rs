//! The IPC objects that exist on this machine, as `ipcs` and `lsipc` show
//! them: System V objects from `/proc/sysvipc/*`, POSIX shared memory and
//! named semaphores from `/dev/shm`, POSIX queues from `/dev/mqueue` when
//! that file system is mounted.
//!
//! # References
//! - [proc_sysvipc(5)](https://man7.org/linux/man-pages/man5/proc_sysvipc.5.html)
//! - [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html)

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::key::Key;

/// Message queue, shared memory or semaphore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A message queue.
    Queue,
    /// Shared memory.
    Shm,
    /// A semaphore (POSIX) or semaphore set (System V).
    Sem,
}

impl Kind {
    /// `queue`, `shm`, `sem`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Queue => "queue",
            Kind::Shm => "shm",
            Kind::Sem => "sem",
        }
    }
}

/// POSIX or System V.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Named by `/name`.
    Posix,
    /// Found by key, used by id.
    SysV,
}

impl Family {
    /// `posix`, `sysv`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Posix => "posix",
            Family::SysV => "sysv",
        }
    }
}

/// One IPC object. Fields the kernel does not report for a kind are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What it is.
    pub kind: Kind,
    /// Which API made it.
    pub family: Family,
    /// System V key.
    pub key: Option<Key>,
    /// System V id.
    pub id: Option<i32>,
    /// POSIX name (`/name`).
    pub name: Option<String>,
    /// Owner user id.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Bytes: the segment or object size for shared memory, bytes queued
    /// for queues.
    pub bytes: Option<u64>,
    /// Messages queued (System V queues; POSIX queues this process may read).
    pub messages: Option<u64>,
    /// Semaphores in the set (System V).
    pub semaphores: Option<u64>,
    /// Current attachments (System V shared memory).
    pub attaches: Option<u64>,
    /// Creator pid (System V shared memory).
    pub cpid: Option<i32>,
    /// Last user pid: last `shmat`/`shmdt`, last send (queues).
    pub lpid: Option<i32>,
}

/// Everything found, and what could not be looked at.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The objects, System V first, then POSIX, each by kind.
    pub entries: Vec<Entry>,
    /// Whether `/dev/mqueue` is a mounted mqueue file system; without it
    /// POSIX queues exist but cannot be listed.
    pub mqueue_mounted: bool,
}

/// Where the mqueue file system is usually mounted.
pub const MQUEUE_DIR: &str = "/dev/mqueue";
/// Where glibc keeps POSIX shared memory and named semaphores.
pub const SHM_DIR: &str = "/dev/shm";

/// Lists the objects of the asked kinds and families.
///
/// # Errors
/// A `/proc/sysvipc` file exists but cannot be read.
pub fn list(kinds: &[Kind], families: &[Family]) -> io::Result<Listing> {
    let mut out = Listing {
        entries: Vec::new(),
        mqueue_mounted: mqueue_mounted(),
    };
    if families.contains(&Family::SysV) {
        for &kind in kinds {
            let file = match kind {
                Kind::Queue => "/proc/sysvipc/msg",
                Kind::Shm => "/proc/sysvipc/shm",
                Kind::Sem => "/proc/sysvipc/sem",
            };
            match std::fs::read_to_string(file) {
                Ok(text) => out.entries.extend(parse_sysvipc(kind, &text)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(crate::error::os("read", &file, e)),
            }
        }
    }
    if families.contains(&Family::Posix) {
        if kinds.contains(&Kind::Shm) || kinds.contains(&Kind::Sem) {
            out.entries.extend(
                scan_dir(Path::new(SHM_DIR))
                    .into_iter()
                    .filter(|e| kinds.contains(&e.kind)),
            );
        }
        if kinds.contains(&Kind::Queue) && out.mqueue_mounted {
            out.entries.extend(scan_mqueue(Path::new(MQUEUE_DIR)));
        }
    }
    Ok(out)
}

/// Whether an mqueue file system is mounted at [`MQUEUE_DIR`].
#[must_use]
pub fn mqueue_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines().any(|l| {
            let mut f = l.split_whitespace();
            let (_, at, fs) = (f.next(), f.next(), f.next());
            at == Some(MQUEUE_DIR) && fs == Some("mqueue")
        })
    })
}

/// Parses one `/proc/sysvipc` table by its header names.
#[must_use]
pub fn parse_sysvipc(kind: Kind, text: &str) -> Vec<Entry> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split_whitespace().collect();
    let idx = |name: &str| cols.iter().position(|c| *c == name);
    let (key_i, id_i) = match kind {
        Kind::Queue => (idx("key"), idx("msqid")),
        Kind::Shm => (idx("key"), idx("shmid")),
        Kind::Sem => (idx("key"), idx("semid")),
    };
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        let get = |i: Option<usize>| i.and_then(|i| f.get(i)).copied();
        let num = |name: &str| get(idx(name)).and_then(|v| v.parse::<u64>().ok());
        let pid = |name: &str| get(idx(name)).and_then(|v| v.parse::<i32>().ok());
        let (Some(key), Some(id)) = (
            get(key_i).and_then(|v| v.parse::<i32>().ok()),
            get(id_i).and_then(|v| v.parse::<i32>().ok()),
        ) else {
            continue;
        };
        let mode = get(idx("perms"))
            .and_then(|v| u32::from_str_radix(v, 8).ok())
            .unwrap_or(0);
        let uid = num("uid").and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        let mut e = Entry {
            kind,
            family: Family::SysV,
            key: Some(Key::from_raw(key)),
            id: Some(id),
            name: None,
            uid,
            mode: mode & 0o777,
            bytes: None,
            messages: None,
            semaphores: None,
            attaches: None,
            cpid: None,
            lpid: None,
        };
        match kind {
            Kind::Queue => {
                e.bytes = num("cbytes");
                e.messages = num("qnum");
                e.cpid = None;
                e.lpid = pid("lspid");
            }
            Kind::Shm => {
                e.bytes = num("size");
                e.attaches = num("nattch");
                e.cpid = pid("cpid");
                e.lpid = pid("lpid");
            }
            Kind::Sem => e.semaphores = num("nsems"),
        }
        out.push(e);
    }
    out
}

/// POSIX shared memory and named semaphores in `dir` (`/dev/shm`).
fn scan_dir(dir: &Path) -> Vec<Entry> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Entry> = read
        .filter_map(Result::ok)
        .filter_map(|d| {
            let meta = d.metadata().ok()?;
            if !meta.is_file() {
                return None;
            }
            let file = d.file_name().into_string().ok()?;
            let (kind, name) = match file.strip_prefix("sem.") {
                Some(n) => (Kind::Sem, n.to_owned()),
                None => (Kind::Shm, file),
            };
            Some(Entry {
                kind,
                family: Family::Posix,
                key: None,
                id: None,
                name: Some(format!("/{name}")),
                uid: meta.uid(),
                mode: meta.permissions().mode() & 0o777,
                bytes: (kind == Kind::Shm).then_some(meta.len()),
                messages: None,
                semaphores: None,
                attaches: None,
                cpid: None,
                lpid: None,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    out
}

/// POSIX queues in a mounted mqueue file system; each file reads as
/// `QSIZE:129 NOTIFY:0 SIGNO:0 NOTIFY_PID:0`.
fn scan_mqueue(dir: &Path) -> Vec<Entry> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Entry> = read
        .filter_map(Result::ok)
        .filter_map(|d| {
            let meta = d.metadata().ok()?;
            let name = d.file_name().into_string().ok()?;
            let text = std::fs::read_to_string(d.path()).unwrap_or_default();
            let qsize = text
                .split_whitespace()
                .find_map(|f| f.strip_prefix("QSIZE:"))
                .and_then(|v| v.parse().ok());
            let name = format!("/{name}");
            // The message count needs mq_getattr, hence read permission.
            let messages = crate::mq::posix::MqOptions::new()
                .read_only()
                .nonblocking(true)
                .open(&name, crate::key::Create::Open)
                .and_then(|q| Ok(q.attr()?))
                .ok()
                .map(|a| a.current as u64);
            Some(Entry {
                kind: Kind::Queue,
                family: Family::Posix,
                key: None,
                id: None,
                name: Some(name),
                uid: meta.uid(),
                mode: meta.permissions().mode() & 0o777,
                bytes: qsize,
                messages,
                semaphores: None,
                attaches: None,
                cpid: None,
                lpid: None,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The user name of `uid` from `/etc/passwd`, or the number.
#[must_use]
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let _ = f.next();
                (f.next()?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysvipc_tables_are_read_by_header() {
        let msg = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n\
                   1234 5 600 12 2 77 0 0 0 0 0 0 0 0\n";
        let e = &parse_sysvipc(Kind::Queue, msg)[0];
        assert_eq!(
            (e.key, e.id, e.mode),
            (Some(Key::from_raw(1234)), Some(5), 0o600)
        );
        assert_eq!((e.bytes, e.messages, e.lpid), (Some(12), Some(2), Some(77)));
        let shm = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
                   0 9 1600 4096 10 11 1 1000 1000 1000 1000 0 0 0 4096 0\n";
        let e = &parse_sysvipc(Kind::Shm, shm)[0];
        assert_eq!(
            (e.bytes, e.attaches, e.cpid, e.uid, e.mode),
            (Some(4096), Some(1), Some(10), 1000, 0o600)
        );
        let sem = "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n-1 3 644 4 0 0 0 0 0 0\n";
        let e = &parse_sysvipc(Kind::Sem, sem)[0];
        assert_eq!(
            (e.key, e.semaphores, e.mode),
            (Some(Key::from_raw(-1)), Some(4), 0o644)
        );
        assert!(parse_sysvipc(Kind::Sem, "").is_empty());
        assert!(parse_sysvipc(Kind::Sem, "key semid\ngarbage line\n").is_empty());
    }

    #[test]
    fn listing_this_machine_works() {
        let l = list(
            &[Kind::Queue, Kind::Shm, Kind::Sem],
            &[Family::Posix, Family::SysV],
        )
        .unwrap();
        assert_eq!(l.mqueue_mounted, mqueue_mounted());
        assert_eq!(user_name(0), "root");
    }
}

/// One system limit on IPC objects, as `lsipc -l` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The kind it limits.
    pub kind: Kind,
    /// POSIX or System V.
    pub family: Family,
    /// lsipc's resource name (`MSGMNI`, `SHMMAX`, `SEMMSL`, `QUEUES_MAX`...).
    pub resource: &'static str,
    /// What it limits, in words.
    pub description: &'static str,
    /// The limit (`None` when the file cannot be read).
    pub limit: Option<u64>,
    /// Where it lives (`/proc/sys/kernel/msgmni`; for the four semaphore
    /// limits `/proc/sys/kernel/sem`, which holds them in one line).
    pub source: &'static str,
}

/// The system's limits on IPC objects: System V from `/proc/sys/kernel`,
/// POSIX queues from `/proc/sys/fs/mqueue`.
///
/// # References
/// - [proc_sys_kernel(5)](https://man7.org/linux/man-pages/man5/proc_sys_kernel.5.html)
/// - [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html)
#[must_use]
pub fn limits() -> Vec<Limit> {
    let read =
        |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let sem: Vec<Option<u64>> = std::fs::read_to_string("/proc/sys/kernel/sem")
        .map(|t| t.split_whitespace().map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    let sem_at = |i: usize| sem.get(i).copied().flatten();
    let file = |kind, family, resource, description, source: &'static str| Limit {
        kind,
        family,
        resource,
        description,
        limit: read(source),
        source,
    };
    let semf = |resource, description, i| Limit {
        kind: Kind::Sem,
        family: Family::SysV,
        resource,
        description,
        limit: sem_at(i),
        source: "/proc/sys/kernel/sem",
    };
    let (q, m, sv, px) = (Kind::Queue, Kind::Shm, Family::SysV, Family::Posix);
    vec![
        file(
            q,
            sv,
            "MSGMNI",
            "Number of message queues",
            "/proc/sys/kernel/msgmni",
        ),
        file(
            q,
            sv,
            "MSGMAX",
            "Max size of message (bytes)",
            "/proc/sys/kernel/msgmax",
        ),
        file(
            q,
            sv,
            "MSGMNB",
            "Default max size of queue (bytes)",
            "/proc/sys/kernel/msgmnb",
        ),
        file(
            q,
            px,
            "QUEUES_MAX",
            "POSIX queues per namespace",
            "/proc/sys/fs/mqueue/queues_max",
        ),
        file(
            q,
            px,
            "MSG_MAX",
            "POSIX max messages per queue",
            "/proc/sys/fs/mqueue/msg_max",
        ),
        file(
            q,
            px,
            "MSGSIZE_MAX",
            "POSIX max size of message (bytes)",
            "/proc/sys/fs/mqueue/msgsize_max",
        ),
        file(
            m,
            sv,
            "SHMMNI",
            "Shared memory segments",
            "/proc/sys/kernel/shmmni",
        ),
        file(
            m,
            sv,
            "SHMALL",
            "Shared memory pages",
            "/proc/sys/kernel/shmall",
        ),
        file(
            m,
            sv,
            "SHMMAX",
            "Max size of shared memory segment (bytes)",
            "/proc/sys/kernel/shmmax",
        ),
        semf("SEMMNI", "Number of semaphore identifiers", 3),
        semf("SEMMNS", "Total number of semaphores", 1),
        semf("SEMMSL", "Max semaphores per semaphore set", 0),
        semf("SEMOPM", "Max number of operations per semop(2)", 2),
    ]
}
