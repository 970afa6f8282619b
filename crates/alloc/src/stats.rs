//! mallinfo-shaped statistics shared by every allocator.

/// A snapshot of an allocator's bookkeeping, shaped after glibc's
/// `struct mallinfo`.
///
/// | field | mallinfo |
/// |---|---|
/// | `reserved` | `arena` + `hblkhd`: bytes under management |
/// | `in_use` | `uordblks`: bytes in blocks handed out (with rounding) |
/// | `free` | `fordblks`: bytes in free blocks |
/// | `free_chunks` | `ordblks`: number of free blocks |
/// | `largest_free` | — (the largest single request that can succeed, before headers) |
/// | `peak_in_use` | `usmblks`: the most `in_use` ever reached |
///
/// plus what mallinfo lacks: live block count, bytes actually requested
/// (so internal fragmentation is `in_use - requested`), the footprint
/// (bytes from the region start to the end of the highest block in use —
/// what a `malloc_trim` could not give back) and operation counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes of memory the allocator manages (its region or regions).
    pub reserved: usize,
    /// Bytes in blocks handed out, including rounding and per-block headers.
    pub in_use: usize,
    /// Bytes in free blocks, including their headers.
    pub free: usize,
    /// Number of free blocks.
    pub free_chunks: usize,
    /// Size of the largest free block, headers included. For pools, where
    /// no request ever needs two blocks side by side, this is `free`: a
    /// pool has no external fragmentation (its waste is internal, a whole
    /// block per request).
    pub largest_free: usize,
    /// The highest `in_use` reached so far.
    pub peak_in_use: usize,
    /// Number of blocks handed out and not freed.
    pub live_blocks: usize,
    /// Bytes the callers asked for in the live blocks.
    pub requested: usize,
    /// Bytes from the region start to the end of the highest live block.
    pub footprint: usize,
    /// Successful allocations so far.
    pub allocations: u64,
    /// Frees so far.
    pub frees: u64,
    /// Allocation requests refused.
    pub failures: u64,
}

impl Stats {
    /// Bytes lost to rounding and headers in live blocks (`in_use - requested`).
    #[must_use]
    pub fn internal_fragmentation(&self) -> usize {
        self.in_use.saturating_sub(self.requested)
    }

    /// Free bytes that no single request can use: everything free outside
    /// the largest free block (`free - largest_free`).
    #[must_use]
    pub fn external_fragmentation(&self) -> usize {
        self.free.saturating_sub(self.largest_free)
    }

    /// External fragmentation as a fraction of the free bytes, 0 (one free
    /// block) to nearly 1 (free space in crumbs); 0 when nothing is free.
    #[must_use]
    pub fn external_fragmentation_ratio(&self) -> f64 {
        if self.free == 0 {
            0.0
        } else {
            self.external_fragmentation() as f64 / self.free as f64
        }
    }
}

impl std::fmt::Display for Stats {
    /// Prints the statistics the way `malloc_stats` does, one per line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "reserved bytes     = {:>10}", self.reserved)?;
        writeln!(f, "in use bytes       = {:>10}", self.in_use)?;
        writeln!(f, "requested bytes    = {:>10}", self.requested)?;
        writeln!(f, "free bytes         = {:>10}", self.free)?;
        writeln!(f, "free chunks        = {:>10}", self.free_chunks)?;
        writeln!(f, "largest free       = {:>10}", self.largest_free)?;
        writeln!(f, "peak in use        = {:>10}", self.peak_in_use)?;
        writeln!(f, "live blocks        = {:>10}", self.live_blocks)?;
        writeln!(f, "footprint          = {:>10}", self.footprint)?;
        writeln!(
            f,
            "internal frag.     = {:>10}",
            self.internal_fragmentation()
        )?;
        writeln!(
            f,
            "external frag.     = {:>10} ({:.0}% of free)",
            self.external_fragmentation(),
            self.external_fragmentation_ratio() * 100.0
        )?;
        write!(
            f,
            "allocs/frees/fails = {}/{}/{}",
            self.allocations, self.frees, self.failures
        )
    }
}
