//! An embedded key-value store in one file.
//!
//! This crate will hold a store that many processes can open at once:
//! writers serialise through `fcntl` locks, readers see committed data
//! through a mapped view, and a crash mid-write never corrupts what was
//! committed before it.
