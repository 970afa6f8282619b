//! Compaction: the live pairs, in key order, written to a new file that is
//! renamed over the old one while other processes keep reading and writing.
//!
//! The compacting writer holds the writer lock on the old file throughout,
//! so no commit is lost: other writers wait for the lock, find the old file
//! marked superseded, and move to the new one. Readers keep reading the
//! old file (still mapped, so still there) until their next call sees the
//! mark and reopens the path.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{GROUP_HEADER, GroupHeader, HEADER_SIZE, PUT, RecordHeader};
use crate::index::append_value;
use crate::store::{Fresh, MAX_GROWTH, Store, new_salt, open_generation, sibling, sync_dir};

/// What [`Store::compact`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Compacted {
    /// File size before.
    pub before: u64,
    /// File size after.
    pub after: u64,
    /// Live keys carried over.
    pub keys: u64,
}

/// Target body size of one group in a compacted file.
const GROUP_TARGET: usize = 1 << 20;

impl Store {
    /// Rewrites the store into a new file holding only the live pairs, in
    /// key order, and renames it over the old one. Other processes go on
    /// reading throughout and writing after a short wait. A store with
    /// nothing to reclaim, whose new log would be longer, is left as it is
    /// (`after` equals `before`).
    ///
    /// # Errors
    ///
    /// The handle is read-only, damaged committed bytes, or an I/O error
    /// (before the new file is renamed into place, the old file is then
    /// left as it was; after, the store is compacted and the error says
    /// why this handle could not move to the new file, for example a
    /// `max_size` smaller than it).
    pub fn compact(&self) -> Result<Compacted> {
        let path = self.path().to_path_buf();
        let (compacted, fresh) = self.with_writer(|g| {
            let before = g.size_for(u64::MAX)?;
            remove_leftovers(&path);
            let tmp = sibling(&path, "compact");
            let io = Error::io(&path, "compact");
            let result = (|| {
                g.write_log().index.settle();
                // The writer lock is held: no commit can add keys now.
                let log = g.read_log();
                let words = g.words().map_err(std::io::Error::other)?;
                let salt = new_salt();
                let mut out = Fresh::create(&tmp, salt)?;
                let mut body = Vec::with_capacity(GROUP_TARGET + (1 << 16));
                let (mut count, mut seq, mut chain, mut keys) = (0u32, 0u64, salt, 0u64);
                let mut flush =
                    |body: &mut Vec<u8>, count: &mut u32, out: &mut Fresh| -> std::io::Result<()> {
                        if *count == 0 {
                            return Ok(());
                        }
                        seq += 1;
                        let (head, crc) = GroupHeader::seal(*count, seq, chain, body);
                        chain = crc;
                        out.append(&head)?;
                        out.append(body)?;
                        body.clear();
                        *count = 0;
                        Ok(())
                    };
                for (key, slot) in log
                    .index
                    .range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)
                {
                    if slot.kind != PUT {
                        continue;
                    }
                    RecordHeader {
                        kind: PUT,
                        key_len: key.len() as u16,
                        val_len: slot.val_len,
                        prev: 0,
                    }
                    .encode(&mut body);
                    body.extend_from_slice(key);
                    append_value(words, slot.loc, key.len(), slot.val_len, &mut body)
                        .map_err(|d| damage(&path, d))?;
                    count += 1;
                    keys += 1;
                    if body.len() >= GROUP_TARGET {
                        flush(&mut body, &mut count, &mut out)?;
                    }
                }
                flush(&mut body, &mut count, &mut out)?;
                // A store with nothing to reclaim can come out longer than
                // it went in (a group of more than 1 MiB is cut into 1 MiB
                // ones, each with a header), and so larger than what
                // handles with a smaller max_size than this one's can
                // open: it is left as it is.
                if out.end() > log.seen {
                    let kept = Compacted {
                        before,
                        after: before,
                        keys,
                    };
                    return Ok((kept, false));
                }
                let live = log.index.live_record_bytes + HEADER_SIZE + GROUP_HEADER as u64;
                // Room for commits after it as growth would give, but never
                // a file larger than the one it replaces (which every
                // handle using the store can open) nor past this handle's
                // max_size.
                let room = (live / 4).clamp(1 << 16, MAX_GROWTH);
                let cap = self.options().file_limit().min(before);
                let after = out.finish(room, cap)?;
                std::fs::rename(&tmp, &path)?;
                let done = Compacted {
                    before,
                    after,
                    keys,
                };
                Ok::<_, std::io::Error>((done, true))
            })();
            // Whether the new file was renamed into place; if not, it goes.
            let compacted = match result {
                Ok((c, true)) => c,
                other => {
                    let _ = std::fs::remove_file(&tmp);
                    return match other {
                        Ok((kept, _)) => Ok((kept, None)),
                        Err(e) => Err(match e.downcast::<Error>() {
                            Ok(inner) => inner,
                            Err(e) => io(e),
                        }),
                    };
                }
            };
            // The path names the new file now: the old one is marked at
            // once, before anything else can fail, or the handles still on
            // it (this one too) would go on committing to an unlinked file
            // and lose those commits. A handle whose next call cannot open
            // the new file (say its max_size is too small) gets that error
            // then, and reopens the path again on the call after.
            g.supersede()?;
            sync_dir(&path).map_err(Error::io(&path, "compact"))?;
            let fresh = open_generation(&path, self.options())?;
            Ok::<_, Error>((compacted, Some(fresh)))
        })?;
        if let Some(fresh) = fresh {
            self.replace_generation(Arc::new(fresh));
        }
        Ok(compacted)
    }
}

/// Removes the partial files of compactions that were killed: only the
/// holder of the writer lock compacts, so while this one holds it no
/// `NAME.compact-PID-N` file beside the store belongs to a live compaction.
fn remove_leftovers(path: &std::path::Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    let mut prefix = name.as_encoded_bytes().to_vec();
    prefix.extend_from_slice(b".compact-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let rest = file.as_encoded_bytes().strip_prefix(prefix.as_slice());
        // NAME.compact-<digits>-<digits>, and nothing else.
        let ours = rest.is_some_and(|r| {
            let mut parts = r.split(|&b| b == b'-');
            let digits = |p: Option<&[u8]>| {
                p.is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
            };
            digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
        });
        if ours {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn damage(path: &std::path::Path, d: crate::index::Damage) -> std::io::Error {
    std::io::Error::other(Error::corrupt(path, d.offset, d.what))
}
