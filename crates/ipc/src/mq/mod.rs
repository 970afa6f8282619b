//! Message queues: POSIX ([`posix::PosixMq`], named, with priorities, a
//! pollable fd and deadlines) and System V ([`sysv::SysvMq`], keyed, with
//! message types).
//!
//! Which to pick: POSIX queues are file descriptors (poll them with the
//! rest of your I/O), deliver the highest priority first, and close with
//! the handle; System V queues are found by key, select by type (exact,
//! any, or the lowest type up to N) and outlive every process until
//! removed. Both copy every message through the kernel, so they suit
//! small, discrete messages rather than bulk data.

pub mod posix;
pub mod sysv;
