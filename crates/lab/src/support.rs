//! The helpers every section shares: one pseudo-random generator, one
//! scratch path removed on drop, unique names, and byte counts for people.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Marsaglia's xorshift64: a fast, fixed sequence for workloads that must
/// be the same for every mechanism and every run. Not for anything that
/// needs real randomness.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// The seed the sections use unless they need a second sequence.
    pub const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

    /// A generator starting from `seed` (zero is replaced: xorshift would
    /// stay at zero forever).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { Self::SEED } else { seed })
    }

    /// The next value of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value uniform in `0.0..1.0` (53 random bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A name no other object of this process has: `memio-lab-<pid>-<n>-<tag>`.
#[must_use]
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "memio-lab-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// How long file creation on the temporary directory's filesystem may
/// stay slow after many files were removed there: ext4 without a journal
/// skips an inode freed in the last minute when it looks for a free one,
/// and for six minutes while that inode's table block is dirty (creating
/// files nearby dirties it again). A 10,000-file tree copied in that
/// window took several times as long, `cp -r` more so than memio.
pub const FREED_INODES_SETTLE: std::time::Duration = std::time::Duration::from_secs(6 * 60 + 5);

/// The marker a lab run leaves in the temporary directory when it removes
/// thousands of files, so that the next run knows how recently.
fn removal_marker() -> PathBuf {
    std::env::temp_dir().join("memio-lab-removed-files")
}

/// Notes that the lab just removed thousands of files from the temporary
/// directory (a hint for the next run: a failure is ignored).
pub fn note_mass_removal() {
    let _ = std::fs::write(removal_marker(), b"");
}

/// How long ago a lab run last removed thousands of files from the
/// temporary directory, if it was within [`FREED_INODES_SETTLE`].
#[must_use]
pub fn since_mass_removal() -> Option<std::time::Duration> {
    let modified = std::fs::metadata(removal_marker()).ok()?.modified().ok()?;
    let ago = modified.elapsed().unwrap_or_default();
    (ago < FREED_INODES_SETTLE).then_some(ago)
}

/// A file or folder in the temporary directory that the lab made and
/// removes on drop, even when a measurement fails.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh, unused path named after `tag`; nothing is created yet.
    #[must_use]
    pub fn path_for(tag: &str) -> Self {
        Self(std::env::temp_dir().join(unique(tag)))
    }

    /// A new empty folder named after `tag`.
    ///
    /// # Errors
    ///
    /// The folder cannot be created.
    pub fn dir(tag: &str) -> crate::Result<Self> {
        let s = Self::path_for(tag);
        std::fs::create_dir(&s.0).map_err(|e| crate::Error::io(s.0.display(), &e))?;
        Ok(s)
    }

    /// A second scratch path beside this one, with extension `ext`.
    #[must_use]
    pub fn with_extension(&self, ext: &str) -> Self {
        Self(self.0.with_extension(ext))
    }

    /// The path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Formats a byte count for people: `512 B`, `4.0 KiB`, `1.5 GiB`.
#[must_use]
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// Formats a byte count compactly when it is an exact binary multiple
/// (`4 KiB`, `256 MiB`), else as [`human_bytes`] does.
#[must_use]
pub fn exact_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024 && value % 1024 == 0 && unit < UNITS.len() - 1 {
        value /= 1024;
        unit += 1;
    }
    if unit == 0 && bytes >= 1024 {
        human_bytes(bytes)
    } else {
        format!("{value} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_is_the_published_sequence_and_never_sticks_at_zero() {
        let mut x = XorShift::new(1);
        // xorshift64 (13, 7, 17) from 1.
        assert_eq!(x.next_u64(), 1_082_269_761);
        assert_eq!(
            XorShift::new(0).next_u64(),
            XorShift::new(XorShift::SEED).next_u64()
        );
        let u = XorShift::new(7).next_f64();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn scratch_paths_are_unique_and_removed_on_drop() {
        let dir = Scratch::dir("test").unwrap();
        let other = Scratch::path_for("test");
        assert_ne!(dir.path(), other.path());
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        std::fs::write(other.path(), b"x").unwrap();
        let (a, b) = (dir.path().to_owned(), other.path().to_owned());
        drop((dir, other));
        assert!(!a.exists() && !b.exists());
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(exact_bytes(4096), "4 KiB");
        assert_eq!(exact_bytes(1000), "1000 B");
        assert_eq!(exact_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
