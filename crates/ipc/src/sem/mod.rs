//! Semaphores: POSIX ([`posix::NamedSem`] found by name,
//! [`posix::SharedSem`] placed inside shared memory) and System V
//! ([`sysv::SemSet`]: sets operated on atomically, with `SEM_UNDO` so a
//! crashed holder's operations are rolled back).
//!
//! Which to pick: POSIX semaphores are cheaper (an uncontended wait or
//! post is a userspace atomic, no syscall) but a process that dies holding
//! one leaves it taken; System V sets cost a syscall per operation but can
//! change several counters at once and undo a dead process's operations.

pub mod posix;
pub mod sysv;
