//! The memory an allocator manages: pages from the OS or a caller's buffer.
//!
//! # Safety
//!
//! [`Memory`] owns a range of bytes that nothing else refers to: pages it
//! mapped itself (unmapped on drop), a boxed slice it took over (freed on
//! drop), or a `'static` exclusive borrow. Every allocator builds on that
//! exclusivity when it writes through raw pointers into the range.
#![allow(unsafe_code, reason = "maps, unmaps, remaps and locks pages")]

use std::io;
use std::ptr::NonNull;

use rustix::mm::{self, MapFlags, MremapFlags, ProtFlags};

/// A range of memory owned exclusively by one allocator.
///
/// ```
/// use memio_alloc::Memory;
/// let pages = Memory::map(64 << 10)?;               // anonymous mapping
/// let buf = Memory::from_boxed(vec![0u8; 4096].into_boxed_slice());
/// assert_eq!((pages.len(), buf.len()), (64 << 10, 4096));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Memory {
    ptr: NonNull<u8>,
    len: usize,
    owner: Owner,
}

#[derive(Debug)]
enum Owner {
    Mapped { locked: bool },
    Boxed,
    Static,
}

// SAFETY: `Memory` owns its range exclusively (see the module note); moving
// it to another thread moves that ownership.
unsafe impl Send for Memory {}
// SAFETY: through `&Memory` only reads are possible (`as_slice`).
unsafe impl Sync for Memory {}

impl Memory {
    /// `len` bytes of new anonymous memory for the allocator `allocator`,
    /// locked into RAM when `locked`: the one way the `build` methods get
    /// their memory, with failures named after the allocator.
    pub(crate) fn for_allocator(
        allocator: &'static str,
        len: usize,
        locked: bool,
    ) -> Result<Self, crate::Error> {
        let memory = if locked {
            Self::map_locked(len)
        } else {
            Self::map(len)
        };
        memory.map_err(|e| crate::Error::Os {
            allocator,
            source: e.into(),
        })
    }

    /// Maps `len` bytes of private anonymous memory (zero-filled, rounded
    /// up to whole pages).
    ///
    /// # Errors
    ///
    /// The OS error from `mmap`, naming the size; `len` 0 is refused.
    ///
    /// # References
    ///
    /// - [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)
    #[doc(alias = "mmap")]
    pub fn map(len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map an anonymous region of 0 bytes",
            ));
        }
        let page = rustix::param::page_size();
        let len = len
            .checked_next_multiple_of(page)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "mapping size overflows"))?;
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing aliases nothing.
        let ptr = unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("failed to map {len} bytes of anonymous memory: {e}"),
            )
        })?;
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self {
            ptr,
            len,
            owner: Owner::Mapped { locked: false },
        })
    }

    /// Maps `len` bytes like [`Memory::map`] and locks them into RAM, so the
    /// allocator never takes a page fault (limited by `RLIMIT_MEMLOCK`).
    ///
    /// # Errors
    ///
    /// As [`Memory::map`], or the `mlock` error (`ENOMEM`/`EPERM` past the
    /// limit).
    ///
    /// # References
    ///
    /// - [mlock(2)](https://man7.org/linux/man-pages/man2/mlock.2.html)
    #[doc(alias = "mlock")]
    pub fn map_locked(len: usize) -> io::Result<Self> {
        let mut memory = Self::map(len)?;
        // SAFETY: the range is the mapping just made.
        unsafe { mm::mlock(memory.ptr.as_ptr().cast(), memory.len) }.map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!(
                    "failed to lock {} bytes into memory (RLIMIT_MEMLOCK?): {e}",
                    memory.len
                ),
            )
        })?;
        memory.owner = Owner::Mapped { locked: true };
        Ok(memory)
    }

    /// Takes over a caller's boxed buffer; it is freed when the allocator
    /// drops.
    #[must_use]
    pub fn from_boxed(buffer: Box<[u8]>) -> Self {
        let len = buffer.len();
        let ptr = NonNull::from(Box::leak(buffer)).cast::<u8>();
        Self {
            ptr,
            len,
            owner: Owner::Boxed,
        }
    }

    /// Uses a buffer that lives for the whole program (a `static`, or
    /// `Box::leak`); nothing is freed on drop.
    #[must_use]
    pub fn from_static(buffer: &'static mut [u8]) -> Self {
        let len = buffer.len();
        Self {
            ptr: NonNull::from(buffer).cast::<u8>(),
            len,
            owner: Owner::Static,
        }
    }

    /// Start of the range.
    #[must_use]
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length of the range in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the pages are locked into RAM.
    #[must_use]
    pub fn is_locked(&self) -> bool {
        matches!(self.owner, Owner::Mapped { locked: true })
    }

    /// The bytes, for reading.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the range is owned and initialised (mapped pages are
        // zero-filled, buffers came initialised).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, for writing.
    #[must_use]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as `as_slice`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Resizes a mapping with `mremap`, letting the kernel move it (the
    /// anonymous-mapping counterpart of `realloc`); contents are kept.
    ///
    /// # Errors
    ///
    /// `Unsupported` for a caller's buffer; the `mremap` error otherwise.
    ///
    /// # References
    ///
    /// - [mremap(2)](https://man7.org/linux/man-pages/man2/mremap.2.html)
    #[doc(alias = "mremap")]
    pub fn resize(&mut self, new_len: usize) -> io::Result<()> {
        if !matches!(self.owner, Owner::Mapped { locked: false }) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "only an unlocked anonymous mapping can be resized",
            ));
        }
        let page = rustix::param::page_size();
        let new_len = new_len
            .max(1)
            .checked_next_multiple_of(page)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "mapping size overflows"))?;
        // SAFETY: the old range is this mapping; after success the old
        // address is no longer used (the pointer is replaced).
        let ptr = unsafe {
            mm::mremap(
                self.ptr.as_ptr().cast(),
                self.len,
                new_len,
                MremapFlags::MAYMOVE,
            )
        }
        .map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("failed to remap {} to {new_len} bytes: {e}", self.len),
            )
        })?;
        self.ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mremap returned null"))?;
        self.len = new_len;
        Ok(())
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        match self.owner {
            Owner::Mapped { .. } => {
                // SAFETY: the range is the mapping this value made; nothing
                // refers to it any more. A failure cannot be reported from
                // drop and leaves only address space behind.
                let _ = unsafe { mm::munmap(self.ptr.as_ptr().cast(), self.len) };
            }
            Owner::Boxed => {
                let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
                // SAFETY: the pointer came from `Box::leak` of a `Box<[u8]>`
                // of this length in `from_boxed`.
                drop(unsafe { Box::from_raw(slice) });
            }
            Owner::Static => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_memory_is_zeroed_writable_and_resizable() {
        let mut m = Memory::map(100).unwrap();
        assert_eq!(m.len(), rustix::param::page_size());
        assert!(m.as_slice().iter().all(|&b| b == 0));
        m.as_mut_slice()[0] = 7;
        m.resize(1 << 20).unwrap();
        assert_eq!(m.as_slice()[0], 7);
        assert_eq!(m.len(), 1 << 20);
    }

    #[test]
    fn zero_length_map_is_refused_with_a_reason() {
        let e = Memory::map(0).unwrap_err();
        assert!(e.to_string().contains("0 bytes"), "{e}");
    }

    #[test]
    fn buffers_cannot_be_remapped() {
        let mut m = Memory::from_boxed(vec![1u8; 64].into_boxed_slice());
        assert_eq!(
            m.resize(128).unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
        assert_eq!(m.as_slice(), &[1u8; 64][..]);
    }

    #[test]
    fn locked_mapping_within_the_limit() {
        let m = Memory::map_locked(64 << 10).unwrap();
        assert!(m.is_locked());
    }
}
