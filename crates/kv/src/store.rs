//! The store: opening and creating, reads through snapshots, commits under
//! the writer lock, `sync`, `stats`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use memio_io::lock::{Kind, Locker, Mode, Wait};
use memio_io::vectored::{write_all_vectored_at, write_all_vectored_at_durable};

use crate::error::{Error, Result};
use crate::format::{
    COMMITTED_AT, DELETE, FORMAT_VERSION, FileHeader, GROUP_HEADER, GroupHeader, HEADER_SIZE,
    MAX_BATCH, MAX_KEY, MAX_VALUE, PUT, RecordHeader,
};
use crate::generation::{Generation, Log};
use crate::index::Damage;
use crate::snapshot::Snapshot;
use crate::words::Words;

/// When a commit returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A commit returns once it is on disk (`fdatasync`): neither a crash
    /// of the process nor a power cut loses it.
    #[default]
    Durable,
    /// A commit returns once it is in the page cache, visible to every
    /// process. A process crash loses nothing. A power cut or kernel crash
    /// loses the commits made since the last [`Store::sync`] (whole
    /// commits, newest first, never a part of one), and nothing older.
    Relaxed,
}

/// How to open a store.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct Options {
    create: bool,
    read_only: bool,
    durability: Durability,
    max_size: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

/// Address space each handle reserves for the file by default (the
/// largest the store can grow while this handle has it open).
pub const DEFAULT_MAX_SIZE: u64 = 64 << 30;

impl Options {
    /// Create if missing, read-write, durable commits, 64 GiB maximum size.
    pub const fn new() -> Self {
        Self {
            create: true,
            read_only: false,
            durability: Durability::Durable,
            max_size: DEFAULT_MAX_SIZE,
        }
    }

    /// Create the file if it does not exist (default `true`).
    pub const fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Open the file read-only: reads work, writes fail with
    /// [`Error::ReadOnly`] (default `false`).
    pub const fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// When commits return (default [`Durability::Durable`]).
    pub const fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The largest size this handle lets the file reach: the handle maps
    /// that much address space once, so the file grows without remapping.
    pub const fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// The largest the file may become through this handle: `max_size`
    /// rounded down to a whole 8-byte word (the mapping is read in words,
    /// so bytes past the last whole one could not be read back).
    pub(crate) const fn file_limit(&self) -> u64 {
        self.max_size & !7
    }
}

/// Counts describing a store, from [`Store::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The store file.
    pub path: PathBuf,
    /// Bytes the file takes (including preallocated space).
    pub file_size: u64,
    /// End of the committed log.
    pub committed: u64,
    /// End of the log known to be on disk.
    pub synced: u64,
    /// Commits in the log since it was created or compacted.
    pub commits: u64,
    /// Keys with a value.
    pub live_keys: u64,
    /// Their key and value bytes.
    pub live_bytes: u64,
    /// Log bytes no longer needed (overwritten or deleted records, group
    /// headers): what [`Store::compact`] reclaims.
    pub dead_bytes: u64,
}

/// A set of puts and deletes committed together: all or nothing, seen by
/// readers whole or not at all. A later operation on the same key wins.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Operations in the order they were added.
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Whether every key so far is larger than the one before (then `ops`
    /// is already the sorted, one-per-key list a commit writes: the common
    /// case of a load in key order costs no sort).
    unsorted: bool,
}

impl Batch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        if self.ops.last().is_some_and(|(last, _)| *last >= key) {
            self.unsorted = true;
        }
        self.ops.push((key, value));
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.push(key.into(), Some(value.into()));
        self
    }

    /// Deletes `key`.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.push(key.into(), None);
        self
    }

    /// Operations in the batch (one per key).
    #[must_use]
    pub fn len(&self) -> usize {
        if self.unsorted {
            self.order().len()
        } else {
            self.ops.len()
        }
    }

    /// Whether the batch holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Positions in `ops` of the operations a commit writes: the last one
    /// for each key, in key order.
    fn order(&self) -> Vec<usize> {
        // Each key's first 16 bytes as one number decide most comparisons
        // without a call to compare slices; equal keys keep the order
        // they were added in.
        let prefix = |k: &[u8]| {
            let mut b = [0u8; 16];
            let n = k.len().min(16);
            b[..n].copy_from_slice(&k[..n]);
            u128::from_be_bytes(b)
        };
        let mut order: Vec<(u128, usize)> = self
            .ops
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (prefix(k), i))
            .collect();
        order.sort_unstable_by(|&(pa, a), &(pb, b)| {
            pa.cmp(&pb)
                .then_with(|| self.ops[a].0.cmp(&self.ops[b].0))
                .then(a.cmp(&b))
        });
        let mut kept: Vec<usize> = Vec::with_capacity(order.len());
        for (_, i) in order {
            match kept.last_mut() {
                Some(last) if self.ops[*last].0 == self.ops[i].0 => *last = i,
                _ => kept.push(i),
            }
        }
        kept
    }

    /// Calls `f` with each operation a commit writes, in key order, until
    /// it fails.
    fn try_each<'a, E>(
        &'a self,
        mut f: impl FnMut(&'a [u8], Option<&'a [u8]>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut call = |(k, v): &'a (Vec<u8>, Option<Vec<u8>>)| f(k, v.as_deref());
        if self.unsorted {
            self.order()
                .into_iter()
                .try_for_each(|i| call(&self.ops[i]))
        } else {
            self.ops.iter().try_for_each(call)
        }
    }

    fn check(&self) -> Result<()> {
        let mut total = 0usize;
        for (k, v) in &self.ops {
            // Every operation, even one a later one overrides, counts
            // against the limits: the stricter reading, and no sort here.
            if k.len() > MAX_KEY {
                return Err(Error::TooLarge {
                    what: "key",
                    len: k.len(),
                    max: MAX_KEY,
                });
            }
            let vlen = v.as_ref().map_or(0, Vec::len);
            if vlen > MAX_VALUE {
                return Err(Error::TooLarge {
                    what: "value",
                    len: vlen,
                    max: MAX_VALUE,
                });
            }
            total = total.saturating_add(16 + k.len() + vlen);
        }
        if total > MAX_BATCH {
            return Err(Error::TooLarge {
                what: "batch",
                len: total,
                max: MAX_BATCH,
            });
        }
        Ok(())
    }
}

/// An embedded key-value store in one file, shared by any number of
/// processes (see the crate docs). `Store` is `Send + Sync`: threads may
/// share one handle.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    options: Options,
    current: RwLock<Arc<Generation>>,
    /// Serialises this handle's writers (the file lock is per open file
    /// description, shared by the threads of this handle).
    writer: Mutex<()>,
    /// The thread holding `writer` ([`this_thread`]), 0 when none.
    writing_thread: AtomicUsize,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A scratch name beside `path`, unique to this process and call.
pub(crate) fn sibling(path: &Path, what: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".{what}-{}-{}",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Relaxed)
    ));
    path.with_file_name(name)
}

/// A salt for a new file: the chain value before its first group.
pub(crate) fn new_salt() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one((std::process::id(), TMP_SEQ.fetch_add(1, Relaxed))) as u32
}

/// The most a store grows by at once.
pub(crate) const MAX_GROWTH: u64 = 64 << 20;

/// Bytes of zeros a new store starts with past its header.
const INITIAL_ROOM: u64 = 60 << 10;

/// A new store file being written aside (then linked or renamed into
/// place): header, groups appended in order, zeroed room, synced.
pub(crate) struct Fresh {
    file: File,
    salt: u32,
    end: u64,
}

impl Fresh {
    pub fn create(tmp: &Path, salt: u32) -> io::Result<Self> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(tmp)?;
        Ok(Self {
            file,
            salt,
            end: HEADER_SIZE,
        })
    }

    /// Where the log written so far ends.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Appends encoded bytes (whole groups) to the log.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, self.end)?;
        self.end += bytes.len() as u64;
        Ok(())
    }

    /// Writes the header, `room` zeroed bytes past the log (the file
    /// rounded up to 64 KiB, but never past `limit`, the largest file the
    /// handle may open), and syncs.
    pub fn finish(self, room: u64, limit: u64) -> io::Result<u64> {
        let mut head = vec![0u8; HEADER_SIZE as usize];
        head[..32].copy_from_slice(
            &FileHeader {
                version: FORMAT_VERSION,
                salt: self.salt,
            }
            .encode(),
        );
        head[COMMITTED_AT..COMMITTED_AT + 8].copy_from_slice(&self.end.to_le_bytes());
        head[COMMITTED_AT + 8..COMMITTED_AT + 16].copy_from_slice(&self.end.to_le_bytes());
        self.file.write_all_at(&head, 0)?;
        let size = round_up(self.end + room, 1 << 16).min(limit).max(self.end);
        crate::generation::write_zeros(&self.file, self.end, size)?;
        self.file.sync_all()?;
        Ok(size)
    }
}

pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// Creates a new empty store at `path` unless one appears there first
/// (built aside and linked into place, so no process sees it half made).
fn create(path: &Path, limit: u64) -> Result<()> {
    let tmp = sibling(path, "new");
    let made = Fresh::create(&tmp, new_salt())
        .and_then(|fresh| fresh.finish(INITIAL_ROOM, limit))
        .and_then(|_| match std::fs::hard_link(&tmp, path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        })
        .and_then(|()| sync_dir(path));
    let _ = std::fs::remove_file(&tmp);
    made.map_err(Error::io(path, "create"))
}

/// The file a store path names: symbolic links are followed here, once,
/// so that compaction renames its result over the store itself rather
/// than over the link (which would leave every other name of the store on
/// the retired file).
fn resolve(path: &Path) -> Result<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(path) {
            Ok(real) => Ok(real),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::io(path, "open")(io::Error::new(
                    io::ErrorKind::NotFound,
                    "a symbolic link to a missing file (create the store at its target's path)",
                )))
            }
            Err(e) => Err(Error::io(path, "open")(e)),
        },
        _ => Ok(path.to_path_buf()),
    }
}

/// A number for the calling thread, never 0, unique among live threads:
/// the address of a thread-local.
fn this_thread() -> usize {
    thread_local!(static MARK: u8 = const { 0 });
    MARK.with(|m| std::ptr::from_ref(m) as usize)
}

/// Sets the word back to 0 when dropped.
struct ClearOnDrop<'a>(&'a AtomicUsize);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(0, Relaxed);
    }
}

/// Whether two open files are the same file.
/// Whether no name leads to `file` any more. Asks only the link count:
/// a query of the inode's timestamps would make the next write stamp it
/// again, and every durable commit would then write the inode's block
/// too (see `Generation::apply_past_committed`).
fn unlinked(file: &File) -> io::Result<bool> {
    use rustix::fs::{AtFlags, StatxFlags};
    let st = rustix::fs::statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::NLINK)?;
    Ok(st.stx_mask & StatxFlags::NLINK.bits() != 0 && st.stx_nlink == 0)
}

fn same_file(a: &File, b: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

pub(crate) fn open_generation(path: &Path, options: &Options) -> Result<Generation> {
    let mut created = false;
    let file = loop {
        match File::options()
            .read(true)
            .write(!options.read_only)
            .open(path)
        {
            Ok(f) => break f,
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    && options.create
                    && !options.read_only
                    && !created =>
            {
                // Not even the header fits: nothing is made.
                if options.file_limit() < HEADER_SIZE {
                    return Err(Error::Full {
                        path: path.to_path_buf(),
                        need: HEADER_SIZE,
                        max: options.max_size,
                    });
                }
                create(path, options.file_limit())?;
                created = true;
            }
            Err(e) => return Err(Error::io(path, "open")(e)),
        }
    };
    Generation::open(path, file, !options.read_only, options.max_size)
}

impl Store {
    /// Opens the store at `path`, creating it if `options` allow and it
    /// does not exist, and reads its committed log. A symbolic link is
    /// followed once, here: the store is the file it names.
    ///
    /// # Errors
    ///
    /// The file cannot be opened or created ([`Error::Io`]), is not a store
    /// ([`Error::NotAStore`]), is from a newer format
    /// ([`Error::FutureVersion`]), has damaged committed bytes
    /// ([`Error::Corrupt`]) or is larger than `max_size` ([`Error::Full`]).
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        let path = resolve(path.as_ref())?;
        let path = path.as_path();
        let generation = open_generation(path, &options)?;
        let store = Self {
            path: path.into(),
            options,
            current: RwLock::new(Arc::new(generation)),
            writer: Mutex::new(()),
            writing_thread: AtomicUsize::new(0),
        };
        if options.read_only {
            store.read_past_if_idle()?;
        } else {
            store.recover_if_idle()?;
        }
        Ok(store)
    }

    /// For a read-only handle, if no writer holds the lock: reads the
    /// whole groups past the committed end that a writer's recovery would
    /// keep, and publishes nothing. Durable commits leave the header page
    /// to the kernel's write-back, so after a power cut the committed end
    /// on disk may lag many returned commits; a killed writer may have
    /// left a group unpublished. With no writer running, no group there
    /// is waiting on a commit that has not returned. Never waits.
    fn read_past_if_idle(&self) -> Result<()> {
        let g = self.generation()?;
        let mut log = g.write_log();
        if g.superseded() {
            return Ok(());
        }
        // A shared hold of the writer's byte, not a look at who holds it:
        // a writer that took the lock just after a look could write a group
        // here and then fail its commit (zeroing its header, and writing
        // its next commit over it) after this handle had kept it. Held,
        // no writer starts until the read is done, so every group read
        // belongs to a writer that is gone, and the next writer keeps it.
        let Some(_idle) = Locker::new(&g.file)
            .kind(Kind::Ofd)
            .range(0, 1)
            .try_lock(Mode::Shared)
            .map_err(|e| Error::io(&self.path, "lock")(io::Error::other(e)))?
        else {
            return Ok(());
        };
        #[cfg(test)]
        tests::race::reader_looked();
        match g.apply_past_committed(&mut log) {
            // A group past this handle's mapping: it reads up to there, and
            // a handle with the room keeps the rest.
            Err(Error::Full { .. }) => Ok(()),
            other => other,
        }
    }

    /// If no writer holds the lock, does what a writer does on taking it:
    /// keeps the whole groups a killed writer synced or left in the page
    /// cache without publishing them, so they are visible from the start.
    /// Never waits.
    fn recover_if_idle(&self) -> Result<()> {
        let g = self.generation()?;
        let guard = Locker::new(&g.file)
            .kind(Kind::Ofd)
            .range(0, 1)
            .try_lock(Mode::Exclusive)
            .map_err(|e| Error::io(&self.path, "lock")(io::Error::other(e)))?;
        if guard.is_some() && !g.superseded() {
            match Self::recover(&g) {
                // Groups past this handle's mapping: it can read what lies
                // before them, and its commits say Full.
                Err(Error::Full { .. }) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// The store's path, with a symbolic link given to [`Store::open`]
    /// resolved to the file it names.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The generation to use now: the current one, or the file that
    /// replaced it if compaction ran.
    pub(crate) fn generation(&self) -> Result<Arc<Generation>> {
        let g = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if !g.superseded() {
            return Ok(g);
        }
        let fresh = Arc::new(open_generation(&self.path, &self.options)?);
        if fresh.superseded() && same_file(&g.file, &fresh.file) {
            // A compaction through another name of this file (a hard
            // link) put its result there: this name still holds the old,
            // retired file, and waiting would not change that.
            return Err(Error::io(&self.path, "open")(io::Error::other(
                "the store was compacted under another name of the same file (a hard link) \
                 and this name still holds the retired file; open the store by that name",
            )));
        }
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh.clone();
        Ok(fresh)
    }

    /// For a file found unlinked under the writer lock: when the path
    /// names another store file (a compaction's, renamed into place), marks
    /// this one superseded so every handle moves on; when the path names
    /// nothing, the store was deleted, which is an error rather than
    /// commits into a file no one can open again.
    fn retire_unlinked(&self, g: &Generation) -> Result<()> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(_) => g.supersede(),
            Err(e) => Err(Error::io(&self.path, "open")(io::Error::new(
                e.kind(),
                format!("the store file was removed while open ({e})"),
            ))),
        }
    }

    pub(crate) fn replace_generation(&self, g: Arc<Generation>) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = g;
    }

    /// A consistent view of every commit that returned before this call,
    /// in any process; later commits do not change it.
    ///
    /// # Errors
    ///
    /// Damaged committed bytes, or the replaced file cannot be reopened.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let g = self.generation()?;
        let at = g.catch_up()?;
        Ok(Snapshot::new(g, at))
    }

    /// The value of `key` now.
    ///
    /// # Errors
    ///
    /// As [`snapshot`](Self::snapshot).
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let get = |g: &Generation| {
            g.catch_up()?;
            let log = g.read_log();
            Snapshot::lookup(g, &log, key, log.seen)
        };
        // The common case borrows the current file under the read lock
        // rather than cloning its `Arc`: two atomic updates fewer per get.
        // (Nothing takes `current` while holding a log lock, so holding it
        // across the log's locks cannot deadlock.)
        {
            let current = self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !current.superseded() {
                return get(&current);
            }
        }
        get(&*self.generation()?)
    }

    /// Sets `key` to `value` in one commit.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut b = Batch::new();
        b.put(key, value);
        self.write(&b)
    }

    /// Deletes `key` in one commit; whether it had a value.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.transaction(|tx| {
            let had = tx.get(key)?.is_some();
            if had {
                tx.delete(key);
            }
            Ok(had)
        })
    }

    /// Commits `batch`: all of it or none of it.
    ///
    /// # Errors
    ///
    /// A key, value or the batch is too large ([`Error::TooLarge`]), the
    /// handle is read-only, the file cannot grow ([`Error::Full`]) or an
    /// I/O error.
    pub fn write(&self, batch: &Batch) -> Result<()> {
        self.with_writer(|g| {
            batch.check()?;
            self.commit(g, batch)
        })
    }

    /// Runs `f` as the only writer of the store (across processes), then
    /// commits what it staged: reads inside see the newest commit and the
    /// transaction's own writes, and no other writer can slip in between.
    /// An error from `f` commits nothing.
    ///
    /// # Errors
    ///
    /// `f`'s error, or as [`write`](Self::write).
    pub fn transaction<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.with_writer(|g| {
            let mut tx = Transaction {
                generation: g,
                pending: BTreeMap::new(),
            };
            let out = f(&mut tx)?;
            let b = Batch {
                ops: tx.pending.into_iter().collect(),
                unsorted: false,
            };
            b.check()?;
            self.commit(g, &b)?;
            Ok(out)
        })
    }

    /// Runs `f` holding the writer lock on the current file (reopening
    /// first if compaction replaced it), after catching up and recovering
    /// what a writer that died left behind.
    pub(crate) fn with_writer<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&Arc<Generation>) -> Result<T, E>,
    ) -> Result<T, E> {
        if self.options.read_only {
            return Err(Error::ReadOnly {
                path: self.path.clone(),
            }
            .into());
        }
        let me = this_thread();
        if self.writing_thread.load(Relaxed) == me {
            // Locking again would wait for this very thread for ever.
            return Err(Error::io(&self.path, "write")(io::Error::new(
                io::ErrorKind::WouldBlock,
                "a write on this store from inside its own transaction (use the transaction's put and delete)",
            ))
            .into());
        }
        let _local = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.writing_thread.store(me, Relaxed);
        let _clear = ClearOnDrop(&self.writing_thread);
        loop {
            let g = self.generation()?;
            let guard = Locker::new(&g.file)
                .kind(Kind::Ofd)
                .range(0, 1)
                .lock(Mode::Exclusive, Wait::Block)
                .map_err(|e| Error::io(&self.path, "lock")(io::Error::other(e)))?;
            if g.superseded() {
                drop(guard);
                continue;
            }
            if unlinked(&g.file).map_err(Error::io(&self.path, "stat"))? {
                // A compaction renamed its file over this one and died
                // before marking this one superseded: commits here would
                // go to a file no name leads to. Mark it as the compaction
                // would have (this lock is the one it held), then move to
                // what the path names now.
                drop(guard);
                self.retire_unlinked(&g)?;
                continue;
            }
            Self::recover(&g)?;
            let out = f(&g);
            drop(guard);
            return out;
        }
    }

    /// With the writer lock held: reads the committed log, drops a torn
    /// tail, and keeps whole groups a writer wrote but died before
    /// publishing.
    fn recover(g: &Generation) -> Result<()> {
        let mut log = g.write_log();
        g.apply_committed(&mut log)?;
        if g.committed() != log.seen {
            g.publish(log.seen, false)?;
        }
        let before = log.seen;
        g.apply_past_committed(&mut log)?;
        if log.seen > before {
            g.sync_data()?;
            g.publish(log.seen, true)?;
        }
        Ok(())
    }

    /// With the writer lock held and the log read: appends `batch` as one
    /// group, syncs it as the durability asks, publishes it and applies it
    /// to this handle's index (from the bytes in hand: no read back).
    fn commit(&self, g: &Generation, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let (body, count, seq, chain, at) = {
            let log = g.read_log();
            let (body, count) = encode(&log, g.words()?, batch).map_err(|d| g.damaged(d))?;
            (body, count, log.seq + 1, log.chain, log.seen)
        };
        let (head, crc) = GroupHeader::seal(count, seq, chain, &body);
        let end = at + (GROUP_HEADER + body.len()) as u64;
        self.make_room(g, end)?;
        let durable = self.options.durability == Durability::Durable;
        let mut bufs = [IoSlice::new(&head), IoSlice::new(&body)];
        let written = if durable && g.synced() >= at {
            // Only this group is written back: the header page the last
            // commit dirtied stays in the page cache (it only speeds up
            // readers and recovery, which also read on past it).
            write_all_vectored_at_durable(&g.file, &mut bufs, at)
                .map_err(Error::io(&self.path, "write"))
        } else {
            write_all_vectored_at(&g.file, &mut bufs, at)
                .map_err(Error::io(&self.path, "write"))
                .and_then(|()| {
                    if durable {
                        // Groups a relaxed writer left unsynced come first.
                        g.sync_data()
                    } else {
                        Ok(())
                    }
                })
        };
        #[cfg(test)]
        let written = written.and_then(|()| tests::injected_failure(&self.path));
        if let Err(e) = written {
            // A failed sync leaves the group whole in the page cache, where
            // the next writer's recovery would keep it as a group a dead
            // writer left: a commit that reported failure would appear.
            // Zeroing its header (best effort: the error at hand is the
            // one to report) makes recovery stop before it.
            #[cfg(test)]
            tests::race::before_zeroing();
            let _ = g.file.write_all_at(&[0; GROUP_HEADER], at);
            return Err(e);
        }
        g.publish(end, durable)?;
        let mut log = g.write_log();
        if log.seen == at {
            let group = GroupHeader {
                count,
                seq,
                body_len: body.len() as u32,
                prev_crc: chain,
                crc,
            };
            g.apply_group(&mut log, at, &group, &body)?;
        }
        Ok(())
    }

    /// Grows the file in large zero-filled steps so that `end` fits.
    fn make_room(&self, g: &Generation, end: u64) -> Result<()> {
        // No log reaches past the last whole word of max_size.
        let max = self.options.file_limit();
        // Checked before the file's size: a file another handle (with a
        // larger max_size) grew may have room past what this one maps, and
        // a group there would be committed, then unreadable here.
        if end > max {
            return Err(Error::Full {
                path: self.path.clone(),
                need: end,
                max: self.options.max_size,
            });
        }
        let size = g.size_for(end)?;
        if end <= size {
            return Ok(());
        }
        // The room is written a page at a time (see `write_zeros`), about
        // 3 us a page here, and in durable mode then synced (see
        // `Generation::grow`): at most 64 MiB at once keeps the pause of the
        // commit that grows the store (with the writer lock held) at about
        // 100 ms here however large the store.
        let step = (size / 4).clamp(1 << 20, MAX_GROWTH);
        let new_size = round_up(end.max(size + step), 1 << 20).min(max);
        g.grow(new_size, self.options.durability == Durability::Durable)
    }

    /// Makes every commit so far durable (for [`Durability::Relaxed`]; a
    /// no-op cost otherwise).
    ///
    /// # Errors
    ///
    /// The handle is read-only, or `fdatasync` fails.
    pub fn sync(&self) -> Result<()> {
        self.with_writer(|g| {
            g.sync_data()?;
            g.publish(g.seen(), true)
        })
    }

    /// Counts describing the store now.
    ///
    /// # Errors
    ///
    /// As [`snapshot`](Self::snapshot).
    pub fn stats(&self) -> Result<Stats> {
        let g = self.generation()?;
        g.catch_up()?;
        let file_size = g.size_for(u64::MAX)?;
        let log = g.read_log();
        Ok(Stats {
            path: self.path.clone(),
            file_size,
            committed: log.seen,
            synced: g.synced().min(log.seen),
            commits: log.seq,
            live_keys: log.index.live_keys,
            live_bytes: log.index.live_bytes,
            dead_bytes: (log.seen - HEADER_SIZE).saturating_sub(log.index.live_record_bytes),
        })
    }

    pub(crate) fn options(&self) -> &Options {
        &self.options
    }
}

/// Encodes `batch` as a group body, each record naming the record it
/// replaces; deletes of absent keys are left out.
fn encode(log: &Log, map: Words<'_>, batch: &Batch) -> Result<(Vec<u8>, u32), Damage> {
    let mut body = Vec::with_capacity(
        batch
            .ops
            .iter()
            .map(|(k, v)| 16 + k.len() + v.as_ref().map_or(0, Vec::len))
            .sum(),
    );
    let mut count = 0u32;
    log.index
        .warm(Some(map), batch.ops.iter().map(|(k, _)| k.as_slice()));
    batch.try_each(|key, value| {
        let prev = log.index.newest_in(map, key)?;
        if value.is_none() && prev.is_none_or(|s| s.kind == DELETE) {
            return Ok(());
        }
        let val = value.unwrap_or_default();
        RecordHeader {
            kind: if value.is_some() { PUT } else { DELETE },
            key_len: key.len() as u16,
            val_len: val.len() as u32,
            prev: prev.map_or(0, |s| s.loc),
        }
        .encode(&mut body);
        body.extend_from_slice(key);
        body.extend_from_slice(val);
        count += 1;
        Ok(())
    })?;
    Ok((body, count))
}

/// The staged writes of a [`Store::transaction`], with reads that see them.
#[derive(Debug)]
pub struct Transaction<'a> {
    generation: &'a Generation,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Transaction<'_> {
    /// The value of `key`: this transaction's own write if it made one,
    /// else the newest commit's.
    ///
    /// # Errors
    ///
    /// Damaged committed bytes.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.pending.get(key) {
            return Ok(v.clone());
        }
        let g = self.generation;
        let log = g.read_log();
        Snapshot::lookup(g, &log, key, log.seen)
    }

    /// Stages `key` = `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.pending.insert(key.to_vec(), Some(value.to_vec()));
    }

    /// Stages deleting `key`.
    pub fn delete(&mut self, key: &[u8]) {
        self.pending.insert(key.to_vec(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Makes this thread's next commit fail after its group is written,
        /// as a failed `fdatasync` does.
        static FAIL_NEXT_COMMIT: Cell<bool> = const { Cell::new(false) };
    }

    pub(super) fn injected_failure(path: &Path) -> Result<()> {
        if FAIL_NEXT_COMMIT.take() {
            let eio = rustix::io::Errno::IO.raw_os_error();
            return Err(Error::io(path, "fdatasync")(io::Error::from_raw_os_error(
                eio,
            )));
        }
        Ok(())
    }

    /// Steps of a reader's read-only open and a failing commit, run in a
    /// chosen interleaving (only while a test arms it).
    pub(super) mod race {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        use std::sync::{Condvar, Mutex};
        use std::time::Duration;

        pub static ARMED: AtomicBool = AtomicBool::new(false);
        static STEP: Mutex<u32> = Mutex::new(0);
        static MOVED: Condvar = Condvar::new();

        /// Sets the step and waits (at most a second) for step `next`.
        pub fn step(now: u32, next: Option<u32>) {
            let mut s = STEP.lock().unwrap();
            *s = (*s).max(now);
            MOVED.notify_all();
            if let Some(next) = next {
                let _ = MOVED
                    .wait_timeout_while(s, Duration::from_secs(1), |s| *s < next)
                    .unwrap();
            }
        }

        /// The read-only open found no writer: let one start, and wait
        /// for its group to be written.
        pub fn reader_looked() {
            if ARMED.load(SeqCst) {
                step(1, Some(2));
            }
        }

        /// The commit failed with its group written: wait for the reader
        /// to finish its open before zeroing the header.
        pub fn before_zeroing() {
            if ARMED.load(SeqCst) {
                step(2, Some(3));
            }
        }

        pub fn wait_for(n: u32) {
            let s = STEP.lock().unwrap();
            let _ = MOVED
                .wait_timeout_while(s, Duration::from_secs(5), |s| *s < n)
                .unwrap();
        }
    }

    #[test]
    fn a_read_only_open_never_keeps_the_group_of_a_commit_that_fails() {
        use std::sync::atomic::Ordering::SeqCst;
        let dir = Gone::new("race");
        let path = dir.0.join("s.kv");
        let writer = Arc::new(Store::open(&path, Options::new()).unwrap());
        writer.put(b"kept", b"1").unwrap();
        race::ARMED.store(true, SeqCst);
        let w = Arc::clone(&writer);
        let failing = std::thread::spawn(move || {
            race::wait_for(1);
            FAIL_NEXT_COMMIT.set(true);
            let failed = w.put(b"failed", b"a value longer than the next commit's");
            race::wait_for(3);
            failed
        });
        let reader = Store::open(&path, Options::new().read_only(true)).unwrap();
        race::step(3, None);
        assert!(failing.join().unwrap().is_err());
        race::ARMED.store(false, SeqCst);
        let snap = reader.snapshot().unwrap();
        assert_eq!(snap.get(b"failed").unwrap(), None, "a failed commit");
        // The writer's next commit goes where the failed group was.
        writer.put(b"next", b"2").unwrap();
        assert_eq!(snap.get(b"failed").unwrap(), None);
        assert_eq!(reader.get(b"next").unwrap().as_deref(), Some(&b"2"[..]));
        writer
            .put(b"after", b"a value long enough to pass the failed group")
            .unwrap();
        let all: Vec<_> = reader.snapshot().unwrap().iter().collect();
        assert!(all.iter().all(Result::is_ok), "{all:?}");
        assert_eq!(all.len(), 3);
    }

    /// The room written ahead of commits is zeros from exactly where the
    /// log ends to exactly the size asked, from and to any offset, and the
    /// log before it is left alone.
    #[test]
    fn zeros_fill_exactly_the_range_asked() {
        use crate::generation::write_zeros;
        let dir = Gone::new("zeros");
        let path = dir.0.join("room");
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let page = rustix::param::page_size() as u64;
        file.write_all_at(&[0xa5; 100], 0).unwrap();
        write_zeros(&file, 100, 3 * page + 17).unwrap();
        file.write_all_at(&[0xa5; 10], 3 * page + 17).unwrap();
        write_zeros(&file, 3 * page + 27, 3 * page + 27).unwrap();
        write_zeros(&file, 3 * page + 27, 5 * page).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, 5 * page);
        let mut want = vec![0u8; bytes.len()];
        want[..100].fill(0xa5);
        want[3 * page as usize + 17..3 * page as usize + 27].fill(0xa5);
        assert!(bytes == want, "bytes differ from the expected layout");
    }

    /// A directory removed even when the test fails.
    struct Gone(PathBuf);

    impl Gone {
        /// A fresh directory of this process under the temp dir.
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("memio-kv-unit-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_commit_whose_sync_failed_never_appears_later() {
        let dir = Gone::new("syncfail");
        let path = dir.0.join("s.kv");
        {
            let s = Store::open(&path, Options::new()).unwrap();
            s.put(b"kept", b"1").unwrap();
            FAIL_NEXT_COMMIT.set(true);
            assert!(s.put(b"failed", b"2").is_err());
        }
        // The next writer recovers the log before its own commit.
        let s = Store::open(&path, Options::new()).unwrap();
        s.put(b"after", b"3").unwrap();
        assert_eq!(s.get(b"failed").unwrap(), None);
        assert_eq!(s.get(b"kept").unwrap().as_deref(), Some(&b"1"[..]));
        drop(s);
        let s = Store::open(&path, Options::new()).unwrap();
        assert_eq!(s.get(b"failed").unwrap(), None);
        assert_eq!(s.get(b"after").unwrap().as_deref(), Some(&b"3"[..]));
    }

    fn written(b: &Batch) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        b.try_each(|k, v| {
            out.push((k.to_vec(), v.map(<[u8]>::to_vec)));
            Ok::<_, ()>(())
        })
        .unwrap();
        out
    }

    #[test]
    fn keys_sharing_their_first_sixteen_bytes_or_padding_still_sort_by_bytes() {
        let long = |tail: &[u8]| [&b"0123456789abcdef"[..], tail].concat();
        let mut b = Batch::new();
        b.put(long(b"Z"), "1")
            .put(long(b"A"), "2")
            .put(long(b""), "3")
            .put(b"ab\0".to_vec(), "4")
            .put(b"ab".to_vec(), "5")
            .put(long(b"A"), "6")
            .put(b"ab\0".to_vec(), "7");
        let keys: Vec<(Vec<u8>, Vec<u8>)> = written(&b)
            .into_iter()
            .map(|(k, v)| (k, v.unwrap()))
            .collect();
        assert_eq!(
            keys,
            [
                (long(b""), b"3".to_vec()),
                (long(b"A"), b"6".to_vec()),
                (long(b"Z"), b"1".to_vec()),
                (b"ab".to_vec(), b"5".to_vec()),
                (b"ab\0".to_vec(), b"7".to_vec()),
            ]
        );
    }

    #[test]
    fn a_batch_writes_the_last_operation_per_key_in_key_order() {
        let mut b = Batch::new();
        b.put("b", "1")
            .put("a", "2")
            .put("b", "3")
            .delete("a")
            .put("c", "4");
        assert_eq!(b.len(), 3);
        assert_eq!(
            written(&b),
            [
                (b"a".to_vec(), None),
                (b"b".to_vec(), Some(b"3".to_vec())),
                (b"c".to_vec(), Some(b"4".to_vec())),
            ]
        );
        let mut sorted = Batch::new();
        sorted.put("a", "1").put("b", "2");
        assert_eq!((sorted.len(), written(&sorted).len()), (2, 2));
        let mut twice = Batch::new();
        twice.put("a", "1").put("a", "2");
        assert_eq!(written(&twice), [(b"a".to_vec(), Some(b"2".to_vec()))]);
    }
}
