//! Scans that lend the bytes of the store's mapping instead of copying
//! them out.
//!
//! # Safety
//!
//! A key or value slice here points into the shared, read-only mapping of
//! the store file. memio-kv never writes bytes below a committed offset
//! (commits append past it, compaction writes a new file), so the records
//! a snapshot sees stay as they are while it lives. A snapshot may also
//! see groups past the committed end, which a handle read while it held
//! the writer lock or a shared hold of it (so their writer was gone):
//! every later writer keeps those, or fails with `Full` when it cannot
//! read one (a larger handle wrote it), and never writes over them. What
//! this module
//! cannot know is that no *other program* writes or truncates the file,
//! which is why [`Snapshot::scan_mapped`] is `unsafe` and its caller
//! vouches for that (as `memmap2::Mmap::map` and heed's `Env::open` ask).
#![allow(
    unsafe_code,
    reason = "slices of a shared mapping whose bytes the caller vouches for"
)]

use std::ops::{ControlFlow, RangeBounds};

use super::Snapshot;
use crate::error::{Error, Result};
use crate::format::RECORD_HEADER;

impl Snapshot {
    /// Calls `f` with each pair in `range`, in key order, until it breaks,
    /// lending each key and value straight from the store's mapping: no
    /// copy at all, where [`scan`](Self::scan) copies every byte out of
    /// the mapping through atomic loads. The slices live only for the call.
    ///
    /// # Errors
    ///
    /// Damaged bytes in the store.
    ///
    /// # Safety
    ///
    /// While the scan runs, no program other than memio-kv writes the bytes
    /// of this store file that the snapshot sees, and none truncates the
    /// file: no `write(2)` into the file's committed part, no writable
    /// mapping of it, no `truncate`. memio-kv itself never writes them, in
    /// this process or any other, so a store that only memio-kv opens meets
    /// this. (A truncation would raise `SIGBUS`; a write would change bytes
    /// behind a shared slice, which Rust does not allow.)
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// # let dir = std::env::temp_dir().join(format!("memio-kv-lend-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let store = memio_kv::Store::open(dir.join("s.kv"), memio_kv::Options::new())?;
    /// store.put(b"a", b"1")?;
    /// store.put(b"b", b"22")?;
    /// let mut bytes = 0;
    /// // SAFETY: the store is this example's own file: only memio-kv
    /// // writes it.
    /// unsafe {
    ///     store.snapshot()?.scan_mapped(.., |k, v| {
    ///         bytes += k.len() + v.len();
    ///         ControlFlow::Continue(())
    ///     })?;
    /// }
    /// assert_eq!(bytes, 5);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A lent slice cannot outlive the call that lends it (the snapshot,
    /// which keeps the mapping, may be dropped right after):
    ///
    /// ```compile_fail,E0521
    /// use std::ops::ControlFlow;
    /// fn keep(snapshot: &memio_kv::Snapshot) -> Vec<&[u8]> {
    ///     let mut kept = Vec::new();
    ///     // SAFETY: not reached; this does not compile.
    ///     let _ = unsafe {
    ///         snapshot.scan_mapped(.., |k, _| {
    ///             kept.push(k);
    ///             ControlFlow::Continue(())
    ///         })
    ///     };
    ///     kept
    /// }
    /// ```
    pub unsafe fn scan_mapped<'r>(
        &self,
        range: impl RangeBounds<&'r [u8]>,
        mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<()> {
        let g = &*self.generation;
        self.chunks(range, |hits, words| {
            for hit in hits {
                let at = hit.loc as usize + RECORD_HEADER;
                let key_len = hit.key_len as usize;
                // SAFETY: the record lies below this snapshot's position
                // (the index hands out only such records), so memio-kv
                // never writes these bytes again (see the module's Safety
                // section for groups past the committed end), and the
                // caller vouches that nothing else does; `words` borrows
                // the generation, which keeps the mapping alive past the
                // call.
                let bytes =
                    unsafe { words.lend(at, key_len + hit.val_len as usize) }.map_err(|e| {
                        Error::corrupt(&g.path, hit.loc, format!("record unreadable: {e}"))
                    })?;
                let (key, value) = bytes.split_at(key_len);
                if f(key, value).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(ControlFlow::Continue(()))
        })
    }
}
