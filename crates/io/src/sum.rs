//! Checksums of many files, read through a [`Batch`].
//!
//! [`sum_files`] hashes every file of a list with one of three algorithms
//! ([`Algo`]) and hands each result over in list order, as `sha256sum`
//! prints them, while the batch reads many files at once underneath.
//!
//! ```
//! use memio_io::batch::Batch;
//! use memio_io::sum::{Algo, sum_files};
//! # let dir = std::env::temp_dir().join(format!("memio-doc-sum-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let path = dir.join("hello");
//! std::fs::write(&path, b"hello")?;
//! let mut out = Vec::new();
//! sum_files(&Batch::new(), &[&path], Algo::Crc32c, |_, digest| out.push(digest.unwrap()))?;
//! assert_eq!(out, ["9a71bb4c"]);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::Result;
use crate::batch::{Batch, Event, Report};

/// A checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Algo {
    /// BLAKE3, 256 bits: cryptographic, and `b3sum` prints the same.
    #[default]
    Blake3,
    /// XXH3, 64 bits: fast, not cryptographic.
    Xxh3,
    /// CRC-32C (Castagnoli), 32 bits, as storage and network formats use.
    Crc32c,
}

impl Algo {
    /// Every algorithm.
    pub const ALL: [Algo; 3] = [Algo::Blake3, Algo::Xxh3, Algo::Crc32c];

    /// The name as the command line spells it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Algo::Blake3 => "blake3",
            Algo::Xxh3 => "xxh3",
            Algo::Crc32c => "crc32c",
        }
    }

    /// Hex digits in a digest.
    #[must_use]
    pub const fn hex_len(self) -> usize {
        match self {
            Algo::Blake3 => 64,
            Algo::Xxh3 => 16,
            Algo::Crc32c => 8,
        }
    }

    /// The algorithm whose digests have `len` hex digits, as a checksum
    /// list shows them.
    #[must_use]
    pub fn from_hex_len(len: usize) -> Option<Algo> {
        Algo::ALL.into_iter().find(|a| a.hex_len() == len)
    }
}

/// A running checksum.
#[derive(Clone)]
pub struct Hasher(State);

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algo = match self.0 {
            State::Blake3(_) => Algo::Blake3,
            State::Xxh3(_) => Algo::Xxh3,
            State::Crc32c(_) => Algo::Crc32c,
        };
        f.debug_tuple("Hasher").field(&algo).finish()
    }
}

#[derive(Clone)]
enum State {
    Blake3(Box<blake3::Hasher>),
    Xxh3(Box<xxhash_rust::xxh3::Xxh3>),
    Crc32c(u32),
}

impl Hasher {
    /// A new checksum of nothing yet.
    #[must_use]
    pub fn new(algo: Algo) -> Self {
        Self(match algo {
            Algo::Blake3 => State::Blake3(Box::new(blake3::Hasher::new())),
            Algo::Xxh3 => State::Xxh3(Box::new(xxhash_rust::xxh3::Xxh3::new())),
            Algo::Crc32c => State::Crc32c(0),
        })
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            State::Blake3(h) => {
                h.update(bytes);
            }
            State::Xxh3(h) => h.update(bytes),
            State::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, bytes),
        }
    }

    /// The digest as lowercase hex.
    #[must_use]
    pub fn finish(&self) -> String {
        match &self.0 {
            State::Blake3(h) => h.finalize().to_hex().to_string(),
            State::Xxh3(h) => format!("{:016x}", h.digest()),
            State::Crc32c(crc) => format!("{crc:08x}"),
        }
    }
}

/// The checksum of `bytes` as lowercase hex.
#[must_use]
pub fn digest(algo: Algo, bytes: &[u8]) -> String {
    let mut h = Hasher::new(algo);
    h.update(bytes);
    h.finish()
}

/// Hashes every file of `paths` with `algo`, reading them through
/// `batch`, and calls `on(index, digest)` for each in list order (a file
/// that cannot be read gives its error, which names it).
///
/// # Errors
///
/// Only a batch backend that cannot start ([`Batch::read`]).
pub fn sum_files<P: AsRef<Path> + Sync>(
    batch: &Batch,
    paths: &[P],
    algo: Algo,
    mut on: impl FnMut(usize, Result<String>),
) -> Result<Report> {
    let mut running: HashMap<usize, Hasher> = HashMap::new();
    let mut ready: BTreeMap<usize, Result<String>> = BTreeMap::new();
    let mut next = 0;
    let report = batch.read(paths, |event| {
        let (file, result) = match event {
            Event::Data { file, bytes, .. } => {
                running
                    .entry(file)
                    .or_insert_with(|| Hasher::new(algo))
                    .update(bytes);
                return;
            }
            Event::Done { file, .. } => {
                let h = running.remove(&file).unwrap_or_else(|| Hasher::new(algo));
                (file, Ok(h.finish()))
            }
            Event::Failed { file, error } => {
                running.remove(&file);
                (file, Err(error))
            }
        };
        ready.insert(file, result);
        while let Some(result) = ready.remove(&next) {
            on(next, result);
            next += 1;
        }
    })?;
    // Every file ends with Done or Failed, so nothing is left; flush
    // defensively in order all the same.
    for (i, result) in std::mem::take(&mut ready) {
        on(i, result);
    }
    Ok(report)
}

/// One line of a checksum list: `HASH  PATH` (or `HASH *PATH`, binary
/// mode as sha256sum writes it), split into hash and path; `None` for a
/// line that is not one (its hash must be hex of a known length). A line
/// that starts with `\` holds an escaped path (`\\`, `\n`, `\r`), as
/// [`line()`] and sha256sum write a name with a backslash or a line break.
#[must_use]
pub fn parse_line(line: &str) -> Option<(&str, Cow<'_, str>)> {
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let (hash, rest) = line.split_once(' ')?;
    let path = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*'))?;
    let hex = !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex || Algo::from_hex_len(hash.len()).is_none() || path.is_empty() {
        return None;
    }
    let path = if escaped {
        Cow::Owned(unescape(path)?)
    } else {
        Cow::Borrowed(path)
    };
    Some((hash, path))
}

/// Undoes [`line`]'s escapes; `None` for a backslash that starts none.
fn unescape(path: &str) -> Option<String> {
    let mut out = String::with_capacity(path.len());
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '\\' => match chars.next()? {
                '\\' => '\\',
                'n' => '\n',
                'r' => '\r',
                _ => return None,
            },
            c => c,
        });
    }
    Some(out)
}

/// Formats a digest line as `sha256sum` does: `HASH  PATH`, or, for a
/// name with a backslash or a line break, `\HASH  PATH` with those
/// escaped, so that every file takes one line and a name cannot forge
/// another.
#[must_use]
pub fn line(hash: &str, path: &Path) -> String {
    match escaped(path) {
        (false, name) => format!("{hash}  {name}"),
        (true, name) => format!("\\{hash}  {name}"),
    }
}

/// A `--check` result line as `sha256sum -c` prints it: `PATH: VERDICT`,
/// escaped as [`line()`] escapes names (a leading `\`).
#[must_use]
pub fn check_line(path: &Path, verdict: &str) -> String {
    match escaped(path) {
        (false, name) => format!("{name}: {verdict}"),
        (true, name) => format!("\\{name}: {verdict}"),
    }
}

/// The path as one line: whether it needed escapes, and the text with
/// `\\`, `\n` and `\r` for a backslash and the line breaks.
fn escaped(path: &Path) -> (bool, String) {
    let name = path.display().to_string();
    if !name.contains(['\\', '\n', '\r']) {
        return (false, name);
    }
    let mut s = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            c => s.push(c),
        }
    }
    (true, s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Backend;
    use crate::test_dir::TestDir;

    #[test]
    fn known_digests() {
        assert_eq!(
            digest(Algo::Blake3, b""),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(digest(Algo::Xxh3, b""), "2d06800538d394c2");
        assert_eq!(digest(Algo::Crc32c, b"123456789"), "e3069283");
    }

    #[test]
    fn files_are_summed_in_list_order_with_failures_in_place() {
        let dir = TestDir::new("sum");
        let mut paths: Vec<_> = (0..30)
            .map(|i| dir.file(&format!("f{i}"), 1000 * (i % 7) + i))
            .collect();
        paths.insert(4, dir.join("missing"));
        for backend in [Backend::Sequential, Backend::Threads, Backend::Auto] {
            for algo in Algo::ALL {
                let mut seen = Vec::new();
                let batch = Batch::new().backend(backend).depth(5).buffer_size(4096);
                sum_files(&batch, &paths, algo, |i, d| seen.push((i, d))).unwrap();
                assert_eq!(seen.len(), paths.len());
                for (n, (i, d)) in seen.into_iter().enumerate() {
                    assert_eq!(n, i);
                    if i == 4 {
                        assert!(d.unwrap_err().to_string().contains("missing"));
                    } else {
                        let expect = digest(algo, &std::fs::read(&paths[i]).unwrap());
                        assert_eq!(d.unwrap(), expect, "{backend:?} {algo:?} file {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn checksum_lines_parse_as_sha256sum_writes_them() {
        let h = "0".repeat(64);
        assert_eq!(parse_line(&format!("{h}  a b")), Some((&*h, "a b".into())));
        assert_eq!(parse_line(&format!("{h} *bin")), Some((&*h, "bin".into())));
        assert_eq!(parse_line("e3069283  x"), Some(("e3069283", "x".into())));
        assert_eq!(parse_line("xyz  file"), None);
        assert_eq!(parse_line("e306928  x"), None);
        assert_eq!(parse_line(&format!("{h}  ")), None);
        assert_eq!(line("ab", Path::new("p")), "ab  p");
    }

    #[test]
    fn a_path_with_a_newline_or_backslash_stays_on_one_line_and_parses_back() {
        let h = "e3069283";
        // Written raw, a name holding a newline would end the line and could
        // slip a second, forged line into the list.
        for path in [
            "x\n0000000000000000  /etc/passwd",
            "back\\slash",
            "cr\rhere",
        ] {
            let written = line(h, Path::new(path));
            assert_eq!(written.lines().count(), 1, "{written:?}");
            let (hash, parsed) = parse_line(&written).unwrap();
            assert_eq!((hash, &*parsed), (h, path), "{written:?}");
        }
        assert_eq!(
            line(h, Path::new("a\nb")).replace('\n', "|"),
            "\\e3069283  a\\nb"
        );
        // sha256sum's escaped form.
        let (_, p) = parse_line("\\e3069283  a\\\\b\\nc").unwrap();
        assert_eq!(p, "a\\b\nc");
    }
}
