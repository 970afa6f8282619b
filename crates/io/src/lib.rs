//! Advanced file I/O.
//!
//! This crate will hold advisory file locks (open file description, POSIX
//! record and `flock` locks behind one API with RAII guards), positional
//! vectored I/O, extended attributes, file copy engines (`copy_file_range`,
//! mmap, read/write) and batch asynchronous reads over many files (`io_uring`,
//! a thread pool, POSIX AIO).
