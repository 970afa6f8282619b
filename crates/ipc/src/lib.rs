//! Inter-process communication.
//!
//! This crate will hold FIFOs, POSIX and System V message queues, POSIX and
//! System V shared memory (returned as mapped regions), POSIX and System V
//! semaphores, request/response over message queues, and a zero-copy
//! shared-memory channel with futex wake-ups.
