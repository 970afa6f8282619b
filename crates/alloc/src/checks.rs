//! Debug checks, switchable per allocator at construction.
//!
//! # Safety
//!
//! The helpers fill and compare raw byte ranges inside an allocator's
//! region; each caller passes a range it owns (a block it is handing out or
//! taking back, or that block's red zone).
#![allow(unsafe_code, reason = "fills and compares raw byte ranges of blocks")]

/// Byte written over freed memory when [`Checks::poison`] is on.
pub const POISON_FREED: u8 = 0xDD;
/// Byte written over newly handed-out memory when [`Checks::poison`] is on
/// (except where the caller asked for zeroed memory).
pub const POISON_FRESH: u8 = 0xAA;
/// Byte the red zones are filled with.
pub const CANARY: u8 = 0xFD;

/// Which debug checks an allocator performs.
///
/// With everything off (the [`Default`]) the allocators do only the
/// bookkeeping they need anyway; the validating `free` methods (and the
/// owning handles, which free through them) still reject a pointer that is
/// not a live block (that test is one range compare and one bit) — a debug
/// aid, since those frees are `unsafe` — while the unchecked paths
/// (`free_unchecked`, the `Allocator` trait's `deallocate`) trust their
/// caller unless [`Checks::ownership`] is on.
///
/// ```
/// use memio_alloc::Checks;
/// let checks = Checks::all();
/// assert!(checks.poison && checks.ownership && checks.red_zone == 16);
/// assert_eq!(Checks::default(), Checks::off());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent switches, each documented"
)]
pub struct Checks {
    /// Fill freed blocks with [`POISON_FREED`] and fresh blocks with
    /// [`POISON_FRESH`], so reads of stale or uninitialised memory show up;
    /// the pool also verifies the poison when it hands a block out again and
    /// reports a write after free.
    pub poison: bool,
    /// Bytes of red zone after every block, filled with [`CANARY`] and
    /// verified when the block is freed (rounded up to the allocator's
    /// granule); 0 for none.
    pub red_zone: usize,
    /// Validate pointers on the `unsafe` free paths too, reporting double
    /// frees and foreign pointers by panicking with the error's message
    /// (those paths cannot return an error).
    pub ownership: bool,
}

impl Checks {
    /// No checks beyond the allocator's own bookkeeping.
    #[must_use]
    pub const fn off() -> Self {
        Self {
            poison: false,
            red_zone: 0,
            ownership: false,
        }
    }

    /// Poison, 16-byte red zones and ownership validation.
    #[must_use]
    pub const fn all() -> Self {
        Self {
            poison: true,
            red_zone: 16,
            ownership: true,
        }
    }

    /// These checks without red zones.
    #[must_use]
    pub const fn red_zone_off(mut self) -> Self {
        self.red_zone = 0;
        self
    }
}

/// Fills `len` bytes at `ptr` with `byte`.
///
/// # Safety
///
/// `ptr..ptr+len` must be valid for writes and owned by the caller.
pub(crate) unsafe fn fill(ptr: *mut u8, len: usize, byte: u8) {
    // SAFETY: the caller owns the range.
    unsafe { ptr.write_bytes(byte, len) };
}

/// Returns the offset of the first byte in `ptr..ptr+len` that is not
/// `byte`.
///
/// # Safety
///
/// `ptr..ptr+len` must be valid for reads and owned by the caller.
pub(crate) unsafe fn first_mismatch(ptr: *const u8, len: usize, byte: u8) -> Option<usize> {
    // SAFETY: the caller owns the range; nothing writes it meanwhile.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    bytes.iter().position(|&b| b != byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_finds_the_first_damaged_byte() {
        let mut buf = [CANARY; 8];
        // SAFETY: `buf` is a local array of 8 bytes.
        assert_eq!(unsafe { first_mismatch(buf.as_ptr(), 8, CANARY) }, None);
        buf[5] = 0;
        // SAFETY: as above.
        assert_eq!(unsafe { first_mismatch(buf.as_ptr(), 8, CANARY) }, Some(5));
        // SAFETY: as above.
        unsafe { fill(buf.as_mut_ptr(), 8, 1) };
        assert_eq!(buf, [1; 8]);
    }
}
