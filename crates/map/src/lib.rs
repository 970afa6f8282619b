//! Mapped memory regions and memory control.
//!
//! This crate will hold `Region`, the one type for a range of mapped memory
//! (file-backed shared or private, anonymous, or any mappable descriptor),
//! with `sync`, `advise`, `protect`, `lock` and `residency` on it; growable
//! file regions; process memory layout from `/proc/PID/maps` and `smaps`;
//! system memory facts (page sizes, overcommit, limits); and page-cache
//! residency, touching, eviction and locking for files.
