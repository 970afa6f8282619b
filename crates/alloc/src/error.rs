//! The crate's error type.

use std::fmt;

/// Why an allocator refused a request or a free.
///
/// Allocation failures (`OutOfMemory`, `Unsupported`) are ordinary results;
/// the other variants report a caller's mistake that the allocator caught
/// before it could corrupt its bookkeeping.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No free block can hold the request (and the allocator may not grow).
    #[error("{allocator}: out of memory: no free block holds {size} bytes aligned to {align}")]
    OutOfMemory {
        /// Which allocator.
        allocator: &'static str,
        /// Bytes requested.
        size: usize,
        /// Alignment requested.
        align: usize,
    },
    /// The request can never be met by this allocator (a size larger than a
    /// pool block, an alignment beyond what the region offers).
    #[error("{allocator}: unsupported request: {why}")]
    Unsupported {
        /// Which allocator.
        allocator: &'static str,
        /// What is out of bounds.
        why: String,
    },
    /// The address was freed already and not handed out since.
    #[error("{allocator}: double free of {addr:#x}: the block is already free")]
    DoubleFree {
        /// Which allocator.
        allocator: &'static str,
        /// The address passed to free.
        addr: usize,
    },
    /// The address was never handed out by this allocator: outside its
    /// region, or not the start of a block.
    #[error("{allocator}: foreign pointer {addr:#x}: not a block this allocator handed out")]
    Foreign {
        /// Which allocator.
        allocator: &'static str,
        /// The address passed to free.
        addr: usize,
    },
    /// A red-zone canary was overwritten: something wrote past the end of
    /// the block.
    #[error(
        "{allocator}: heap overflow past the block at {addr:#x} ({size} bytes): red-zone canary \
         overwritten at byte {offset} after its end"
    )]
    Overflow {
        /// Which allocator.
        allocator: &'static str,
        /// The block's address.
        addr: usize,
        /// Its requested size.
        size: usize,
        /// First damaged byte, counted from the end of the block.
        offset: usize,
    },
    /// A freed block's poison was overwritten: something wrote to it after it
    /// was freed.
    #[error(
        "{allocator}: use after free: the freed block at {addr:#x} was written at byte {offset}"
    )]
    UseAfterFree {
        /// Which allocator.
        allocator: &'static str,
        /// The block's address.
        addr: usize,
        /// First damaged byte.
        offset: usize,
    },
    /// An arena mark that no longer names a position of this arena: it was
    /// taken before a rewind or reset to a point below it, or in another
    /// arena. Nothing was rewound.
    #[error("{allocator}: stale mark: {why}; nothing was rewound")]
    StaleMark {
        /// Which allocator.
        allocator: &'static str,
        /// Why the mark no longer applies.
        why: &'static str,
    },
    /// The allocator's own structures are inconsistent (found by a
    /// validator; a caller wrote outside its blocks without red zones on).
    #[error("{allocator}: heap corrupted: {why}")]
    Corrupt {
        /// Which allocator.
        allocator: &'static str,
        /// What is inconsistent.
        why: String,
    },
    /// The system allocator refused a setting (`mallopt`).
    #[error("{allocator}: {what} refused: {why}")]
    Refused {
        /// Which call.
        allocator: &'static str,
        /// The parameter and value, as `M_MXFAST = 4096`.
        what: String,
        /// What the call accepts, when known.
        why: String,
    },
    /// The operating system refused memory.
    #[error("{allocator}: {source}")]
    Os {
        /// Which allocator.
        allocator: &'static str,
        /// The OS error, naming the operation.
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        let kind = match e {
            Error::OutOfMemory { .. } => std::io::ErrorKind::OutOfMemory,
            Error::Unsupported { .. } => std::io::ErrorKind::Unsupported,
            _ => std::io::ErrorKind::InvalidInput,
        };
        std::io::Error::new(kind, e)
    }
}

impl Error {
    /// An OS failure of `allocator`.
    #[must_use]
    pub fn from_io(allocator: &'static str, e: std::io::Error) -> Self {
        Error::Os {
            allocator,
            source: std::sync::Arc::new(e),
        }
    }

    /// A layout that cannot exist (size overflow, bad alignment).
    #[must_use]
    pub fn from_layout(e: &std::alloc::LayoutError) -> Self {
        unsupported("layout", e)
    }
}

/// Which allocator a message is about; used to build errors.
pub(crate) fn unsupported(allocator: &'static str, why: impl fmt::Display) -> Error {
    Error::Unsupported {
        allocator,
        why: why.to_string(),
    }
}
