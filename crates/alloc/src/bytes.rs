//! The C byte functions of seed 003 (`<string.h>`, `<strings.h>`) and how
//! Rust spells each one.
//!
//! Slices carry their length, so none of these can run past a buffer: a
//! length mismatch is a panic (`copy_from_slice`) or a shorter result, never
//! a silent overrun. Where Rust has no one-liner this module adds a small
//! safe helper: [`copy_until`] (memccpy), [`copy_advance`] (mempcpy) and
//! [`frob`] (memfrob).
//!
//! | C | Rust | notes |
//! |---|---|---|
//! | `memset(s, c, n)` | `s[..n].fill(c)` | compiles to memset |
//! | `bzero(s, n)` | `s[..n].fill(0)` | memset with 0; deprecated in POSIX.1-2008 |
//! | `memcmp(a, b, n)` | `a[..n].cmp(&b[..n])`, `a == b` | `Ordering` instead of a signed int |
//! | `bcmp(a, b, n)` | `a[..n] == b[..n]` | equality only, as bcmp |
//! | `memcpy(d, s, n)` | `d[..n].copy_from_slice(&s[..n])` | the borrow checker rules out overlap |
//! | `memmove(d, s, n)` | `buf.copy_within(from..from + n, to)` | overlapping copy inside one slice |
//! | `bcopy(s, d, n)` | `d[..n].copy_from_slice(&s[..n])` or `copy_within` | arguments swapped in C; memmove semantics |
//! | `memccpy(d, s, c, n)` | [`copy_until`] | stops after the first `c`, says where |
//! | `mempcpy(d, s, n)` | [`copy_advance`] | returns the rest of `d` to go on writing |
//! | `memchr(s, c, n)` | `memchr::memchr(c, s)` | SIMD; `iter().position` is the slow spelling |
//! | `memrchr(s, c, n)` | `memchr::memrchr(c, s)` | from the end |
//! | `memmem(h, hl, n, nl)` | `memchr::memmem::find(h, n)` | `Finder` to reuse a needle |
//! | `memfrob(s, n)` | [`frob`] | XOR with 42: obfuscation, **not encryption** |
//! | `strdupa(s)`, `strndupa(s, n)` | [`Arena::alloc_str`](crate::Arena::alloc_str), [`Arena::alloc_copy`](crate::Arena::alloc_copy) | scoped copies freed with the arena's scope, not the stack frame |
//!
//! One example per row:
//!
//! ```
//! use std::cmp::Ordering;
//! use memio_alloc::bytes::{copy_advance, copy_until, frob};
//!
//! // memset / bzero
//! let mut buf = [0xffu8; 8];
//! buf[..4].fill(b'x');                 // memset(buf, 'x', 4)
//! buf[4..].fill(0);                    // bzero(buf + 4, 4)
//! assert_eq!(&buf, b"xxxx\0\0\0\0");
//!
//! // memcmp / bcmp
//! assert_eq!(b"abc"[..].cmp(&b"abd"[..]), Ordering::Less);   // memcmp < 0
//! assert!(b"same"[..] == b"same"[..]);                        // bcmp == 0
//!
//! // memcpy / memmove / bcopy
//! let mut dst = [0u8; 5];
//! dst.copy_from_slice(b"hello");       // memcpy(dst, "hello", 5)
//! let mut line = *b"..hello";
//! line.copy_within(2.., 0);            // memmove(line, line + 2, 5)
//! assert_eq!(&line[..5], b"hello");
//!
//! // memccpy: copy up to and including the first ','
//! let mut field = [0u8; 16];
//! assert_eq!(copy_until(&mut field, b"key,value", b','), Some(4));
//! assert_eq!(&field[..4], b"key,");
//!
//! // mempcpy: chain copies without recomputing offsets
//! let mut out = [0u8; 11];
//! let rest = copy_advance(&mut out, b"hello");
//! let rest = copy_advance(rest, b" ");
//! copy_advance(rest, b"world");
//! assert_eq!(&out, b"hello world");
//!
//! // memchr / memrchr / memmem
//! let hay = b"a/b/c.txt";
//! assert_eq!(memchr::memchr(b'/', hay), Some(1));
//! assert_eq!(memchr::memrchr(b'/', hay), Some(3));
//! assert_eq!(memchr::memmem::find(hay, b".txt"), Some(5));
//!
//! // memfrob twice gives the original back: anyone can undo it
//! let mut secret = *b"password";
//! frob(&mut secret);
//! assert_ne!(&secret, b"password");
//! frob(&mut secret);
//! assert_eq!(&secret, b"password");
//!
//! // strdupa / strndupa: a scoped copy in an arena instead of the stack
//! let arena = memio_alloc::ArenaOptions::new(4096).build()?;
//! let dup = arena.alloc_str("song title")?;                 // strdupa
//! let ndup = arena.alloc_copy(&b"song title"[..4])?;        // strndupa(s, 4)
//! assert_eq!((&*dup, &*ndup), ("song title", &b"song"[..]));
//! # Ok::<(), memio_alloc::Error>(())
//! ```

/// `memccpy(dst, src, stop, n)`: copies bytes of `src` into `dst` up to and
/// including the first `stop`, at most `dst.len()` bytes.
///
/// Returns the number of bytes copied when `stop` was copied (C returns a
/// pointer just past it), or `None` when it was not found within
/// `min(src.len(), dst.len())` bytes, all of which were copied.
///
/// ```
/// use memio_alloc::bytes::copy_until;
/// let mut dst = [0u8; 4];
/// assert_eq!(copy_until(&mut dst, b"ab\ncd", b'\n'), Some(3));
/// assert_eq!(&dst[..3], b"ab\n");
/// assert_eq!(copy_until(&mut dst, b"no stop here", b'\n'), None);
/// assert_eq!(&dst, b"no s");
/// ```
///
/// Copying a buffer onto itself (C's undefined overlapping `memccpy`) does
/// not compile: `dst` is borrowed mutably while `src` reads it.
///
/// ```compile_fail,E0502
/// use memio_alloc::bytes::copy_until;
/// let mut buf = *b"ab,cd";
/// copy_until(&mut buf, &buf[1..], b','); // error: `buf` is also borrowed
/// ```
///
/// # References
///
/// - [memccpy(3)](https://man7.org/linux/man-pages/man3/memccpy.3.html)
#[doc(alias = "memccpy")]
pub fn copy_until(dst: &mut [u8], src: &[u8], stop: u8) -> Option<usize> {
    let n = src.len().min(dst.len());
    if let Some(at) = memchr::memchr(stop, &src[..n]) {
        dst[..=at].copy_from_slice(&src[..=at]);
        Some(at + 1)
    } else {
        dst[..n].copy_from_slice(&src[..n]);
        None
    }
}

/// `mempcpy(dst, src, n)`: copies `src` to the start of `dst` and returns
/// the part of `dst` after it, to go on writing there (C returns a pointer
/// to that byte).
///
/// # Panics
///
/// If `src` is longer than `dst` (C would write past the buffer).
///
/// ```
/// use memio_alloc::bytes::copy_advance;
/// let mut path = [0u8; 9];
/// let rest = copy_advance(&mut path, b"/tmp");
/// let rest = copy_advance(rest, b"/");
/// assert_eq!(rest.len(), 4);
/// copy_advance(rest, b"file");
/// assert_eq!(&path, b"/tmp/file");
/// ```
///
/// Nor can the rest be written while the bytes just copied are read: the
/// returned tail keeps `dst` borrowed.
///
/// ```compile_fail,E0502
/// use memio_alloc::bytes::copy_advance;
/// let mut buf = [0u8; 8];
/// let rest = copy_advance(&mut buf, b"abcd");
/// copy_advance(rest, &buf[..4]); // error: `buf` is mutably borrowed
/// ```
///
/// # References
///
/// - [mempcpy(3)](https://man7.org/linux/man-pages/man3/mempcpy.3.html)
#[doc(alias = "mempcpy")]
pub fn copy_advance<'a>(dst: &'a mut [u8], src: &[u8]) -> &'a mut [u8] {
    let (head, rest) = dst.split_at_mut(src.len());
    head.copy_from_slice(src);
    rest
}

/// The byte glibc's `memfrob` XORs with: 42, `'*'`.
pub const FROB_KEY: u8 = 0x2a;

/// `memfrob(s, n)`: XORs every byte with 42, in place; applying it twice
/// restores the bytes.
///
/// This hides text from a casual glance (a core dump, `strings`), nothing
/// more: the key is the same constant on every system, one known byte
/// reveals it, and the XOR keeps the data's length and patterns (runs of
/// equal bytes stay runs). It is **not encryption**; use an authenticated
/// cipher (for example AES-GCM or ChaCha20-Poly1305) to keep data secret.
///
/// ```
/// use memio_alloc::bytes::frob;
/// let mut b = *b"*";
/// frob(&mut b);
/// assert_eq!(b, [0]); // '*' is 42: the key shows through at once
/// ```
///
/// # References
///
/// - [memfrob(3)](https://man7.org/linux/man-pages/man3/memfrob.3.html)
#[doc(alias = "memfrob")]
pub fn frob(bytes: &mut [u8]) {
    for b in bytes {
        *b ^= FROB_KEY;
    }
}

#[cfg(test)]
#[allow(
    unsafe_code,
    reason = "the tests compare with glibc's own memfrob and memccpy"
)]
mod tests {
    use super::*;

    #[test]
    fn copy_until_copies_through_the_first_stop_only() {
        let mut dst = [b'.'; 8];
        assert_eq!(copy_until(&mut dst, b"a,b,c", b','), Some(2));
        assert_eq!(&dst, b"a,......");
        assert_eq!(copy_until(&mut dst, b",", b','), Some(1));
        assert_eq!(copy_until(&mut dst, b"", b','), None);
        let mut short = [0u8; 2];
        // The stop lies beyond what fits: not found, two bytes copied.
        assert_eq!(copy_until(&mut short, b"abc,", b','), None);
        assert_eq!(&short, b"ab");
    }

    #[test]
    fn copy_advance_returns_the_unwritten_tail() {
        let mut dst = [0u8; 6];
        let rest = copy_advance(&mut dst, b"abc");
        assert_eq!(rest.len(), 3);
        rest[0] = b'!';
        assert_eq!(&dst[..4], b"abc!");
        let whole = copy_advance(&mut dst, b"abcdef");
        assert!(whole.is_empty());
    }

    #[test]
    #[should_panic(expected = "mid > len")]
    fn copy_advance_refuses_to_overrun() {
        let _ = copy_advance(&mut [0u8; 2], b"abc");
    }

    #[test]
    fn empty_and_edge_slices_stay_in_bounds() {
        let mut none: [u8; 0] = [];
        assert_eq!(copy_until(&mut none, b",abc", b','), None);
        assert!(copy_advance(&mut none, b"").is_empty());
        frob(&mut none);
        let mut dst = [0u8; 3];
        // The stop is the last byte that fits.
        assert_eq!(copy_until(&mut dst, b"ab,cd", b','), Some(3));
        assert_eq!(copy_advance(&mut dst, b"").len(), 3);
    }

    proptest::proptest! {
        #[test]
        fn copy_until_matches_glibc_memccpy_within_bounds(
            src in proptest::collection::vec(0u8..4, 0..64),
            dst_len in 0usize..64,
            stop in 0u8..4,
        ) {
            let mut ours = vec![0xeeu8; dst_len];
            let got = copy_until(&mut ours, &src, stop);
            let n = src.len().min(dst_len);
            let mut theirs = vec![0xeeu8; dst_len];
            // SAFETY: both buffers hold at least `n` bytes and do not overlap.
            let end = unsafe {
                memccpy(theirs.as_mut_ptr().cast(), src.as_ptr().cast(), i32::from(stop), n)
            };
            let want = (!end.is_null())
                .then(|| end as usize - theirs.as_ptr() as usize);
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn frob_matches_glibc_memfrob() {
        let text = b"Hello, memfrob!".to_vec();
        let mut ours = text.clone();
        frob(&mut ours);
        let mut theirs = text.clone();
        // SAFETY: `theirs` is a live, writable buffer of this length.
        unsafe { memfrob(theirs.as_mut_ptr().cast(), theirs.len()) };
        assert_eq!(ours, theirs);
        frob(&mut ours);
        assert_eq!(ours, text);
    }

    unsafe extern "C" {
        fn memfrob(s: *mut std::ffi::c_void, n: usize) -> *mut std::ffi::c_void;
        fn memccpy(
            dst: *mut std::ffi::c_void,
            src: *const std::ffi::c_void,
            c: i32,
            n: usize,
        ) -> *mut std::ffi::c_void;
    }
}
