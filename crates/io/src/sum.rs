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
use std::os::unix::ffi::OsStrExt;
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

/// One line of a checksum list: `HASH  NAME` (or `HASH *NAME`, binary
/// mode as sha256sum writes it), split into hash and name; `None` for a
/// line that is not one (its hash must be hex of a known length). A line
/// that starts with `\` holds an escaped name (`\\`, `\n`, `\r`), as
/// [`line()`] and sha256sum write a name with a backslash or a line break.
///
/// The name is bytes, as the file system keeps it: a list may name files
/// that are not UTF-8, and
/// [`OsStr::from_bytes`](std::os::unix::ffi::OsStrExt::from_bytes) makes
/// the path back.
///
/// ```
/// use std::ffi::OsStr;
/// use std::os::unix::ffi::OsStrExt;
/// use memio_io::sum::parse_line;
/// let (hash, name) = parse_line(b"e3069283  caf\xe9").unwrap();
/// assert_eq!((hash, &*name), ("e3069283", &b"caf\xe9"[..]));
/// // The path to open, the same bytes.
/// let path = std::path::Path::new(OsStr::from_bytes(&name));
/// assert_eq!(path.as_os_str().as_bytes(), b"caf\xe9");
/// ```
#[must_use]
pub fn parse_line(line: &[u8]) -> Option<(&str, Cow<'_, [u8]>)> {
    let (escaped, line) = match line.strip_prefix(b"\\") {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let space = line.iter().position(|&b| b == b' ')?;
    let (hash, rest) = (&line[..space], &line[space + 1..]);
    let name = rest
        .strip_prefix(b" ")
        .or_else(|| rest.strip_prefix(b"*"))?;
    let hex = !hash.is_empty() && hash.iter().all(u8::is_ascii_hexdigit);
    if !hex || Algo::from_hex_len(hash.len()).is_none() || name.is_empty() {
        return None;
    }
    // Hex digits are ASCII, so this cannot fail.
    let hash = std::str::from_utf8(hash).ok()?;
    let name = if escaped {
        Cow::Owned(unescape(name)?)
    } else {
        Cow::Borrowed(name)
    };
    Some((hash, name))
}

/// Undoes [`line()`]'s escapes; `None` for a backslash that starts none.
fn unescape(name: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len());
    let mut bytes = name.iter();
    while let Some(&b) = bytes.next() {
        out.push(match b {
            b'\\' => match bytes.next()? {
                b'\\' => b'\\',
                b'n' => b'\n',
                b'r' => b'\r',
                _ => return None,
            },
            b => b,
        });
    }
    Some(out)
}

/// Formats a digest line as `sha256sum` does: `HASH  NAME`, or, for a
/// name with a backslash or a line break, `\HASH  NAME` with those
/// escaped, so that every file takes one line and a name cannot forge
/// another.
///
/// The name is the path's bytes as they are, UTF-8 or not, so the line
/// names the file and [`parse_line`] gives the same bytes back. No line
/// break ends the line.
///
/// ```
/// use std::ffi::OsStr;
/// use std::os::unix::ffi::OsStrExt;
/// use std::path::Path;
/// use memio_io::sum::line;
/// assert_eq!(line("e3069283", Path::new("a b")), b"e3069283  a b");
/// let latin1 = Path::new(OsStr::from_bytes(b"caf\xe9\\x"));
/// assert_eq!(line("e3069283", latin1), b"\\e3069283  caf\xe9\\\\x");
/// ```
#[must_use]
pub fn line(hash: &str, path: &Path) -> Vec<u8> {
    let (escape, name) = escaped(path);
    marked(escape, &[hash.as_bytes(), b"  ", &name])
}

/// A `--check` result line as `sha256sum -c` prints it: `NAME: VERDICT`,
/// the name's bytes escaped as [`line()`] escapes them (a leading `\`).
#[must_use]
pub fn check_line(path: &Path, verdict: &str) -> Vec<u8> {
    let (escape, name) = escaped(path);
    marked(escape, &[&name, b": ", verdict.as_bytes()])
}

/// The path's bytes as one line: whether they needed escapes, and the
/// bytes with `\\`, `\n` and `\r` for a backslash and the line breaks.
fn escaped(path: &Path) -> (bool, Cow<'_, [u8]>) {
    let name = path.as_os_str().as_bytes();
    if !name.iter().any(|b| matches!(b, b'\\' | b'\n' | b'\r')) {
        return (false, Cow::Borrowed(name));
    }
    let mut out = Vec::with_capacity(name.len() + 8);
    for &b in name {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b => out.push(b),
        }
    }
    (true, Cow::Owned(out))
}

/// `parts` one after another, after a `\` when the name among them was
/// escaped.
fn marked(escape: bool, parts: &[&[u8]]) -> Vec<u8> {
    let len = usize::from(escape) + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    if escape {
        out.push(b'\\');
    }
    for part in parts {
        out.extend_from_slice(part);
    }
    out
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
        let parse =
            |l: String| parse_line(l.as_bytes()).map(|(h, p)| (h.to_owned(), p.into_owned()));
        assert_eq!(
            parse(format!("{h}  a b")),
            Some((h.clone(), b"a b".to_vec()))
        );
        assert_eq!(
            parse(format!("{h} *bin")),
            Some((h.clone(), b"bin".to_vec()))
        );
        assert_eq!(
            parse_line(b"e3069283  x"),
            Some(("e3069283", (&b"x"[..]).into()))
        );
        assert_eq!(parse_line(b"xyz  file"), None);
        assert_eq!(parse_line(b"e306928  x"), None);
        assert_eq!(parse(format!("{h}  ")), None);
        assert_eq!(line("ab", Path::new("p")), b"ab  p");
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
            assert!(!written.contains(&b'\n'), "{written:?}");
            let (hash, parsed) = parse_line(&written).unwrap();
            assert_eq!((hash, &*parsed), (h, path.as_bytes()), "{written:?}");
        }
        assert_eq!(line(h, Path::new("a\nb")), b"\\e3069283  a\\nb");
        assert_eq!(check_line(Path::new("a\\b"), "OK"), b"\\a\\\\b: OK");
        // sha256sum's escaped form.
        let (_, p) = parse_line(b"\\e3069283  a\\\\b\\nc").unwrap();
        assert_eq!(&*p, b"a\\b\nc");
        // A backslash that escapes nothing known makes the line malformed.
        assert_eq!(parse_line(b"\\e3069283  a\\tb"), None);
    }

    #[test]
    fn a_name_that_is_not_utf8_keeps_its_bytes_through_line_and_parse_line() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;

        let h = "e3069283";
        // Latin-1 "café", alone and beside a backslash that escapes the line.
        for (name, written) in [
            (&b"dir/caf\xe9"[..], &b"e3069283  dir/caf\xe9"[..]),
            (b"caf\xe9\\\xff", b"\\e3069283  caf\xe9\\\\\xff"),
            (b"\xe9\n", b"\\e3069283  \xe9\\n"),
        ] {
            let path = Path::new(OsStr::from_bytes(name));
            assert_eq!(line(h, path), written, "{name:?}");
            let (hash, parsed) = parse_line(written).unwrap();
            assert_eq!((hash, &*parsed), (h, name), "{name:?}");
            // The result line carries the same marker and escaped name.
            let marker = usize::from(written[0] == b'\\');
            let escaped_name = &written[marker + h.len() + 2..];
            let verdict = [&written[..marker], escaped_name, b": FAILED"].concat();
            assert_eq!(check_line(path, "FAILED"), verdict, "{name:?}");
        }
    }
}
