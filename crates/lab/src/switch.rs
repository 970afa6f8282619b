//! The global allocator of the binary that runs the lab, chosen per
//! process: the `malloc` section runs the same workload code once per
//! allocator, each in its own child process started with
//! `MEMIO_LAB_ALLOCATOR=<name>`.
//!
//! The choice is read at the process's first allocation, with the C
//! `getenv` (which does not allocate), and kept in an atomic; every
//! allocation then costs one relaxed load and a branch before it reaches
//! the chosen allocator, the same for each. Without the variable (every
//! ordinary `memio` run) the system allocator serves. A name whose cargo
//! feature is off in this build also falls back to the system allocator;
//! the section never asks for one.
//!
//! # Safety
//!
//! Forwards the `GlobalAlloc` contract unchanged to one allocator, the
//! same one for the life of the process, so every block is freed by the
//! allocator that made it.
#![allow(
    unsafe_code,
    reason = "a GlobalAlloc that forwards to the chosen allocator"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

/// The allocators the `malloc` section compares, by the names
/// `MEMIO_LAB_ALLOCATOR` takes.
pub const ALLOCATORS: [&str; 4] = ["system", "memio", "mimalloc", "jemalloc"];

/// The environment variable that picks the allocator.
pub const VARIABLE: &str = "MEMIO_LAB_ALLOCATOR";

const UNSET: u8 = 0;
const SYSTEM: u8 = 1;
const MEMIO: u8 = 2;
const MIMALLOC: u8 = 3;
const JEMALLOC: u8 = 4;

static CHOICE: AtomicU8 = AtomicU8::new(UNSET);

/// The global allocator of the `memio` binary: the system allocator unless
/// `MEMIO_LAB_ALLOCATOR` names another (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct LabAllocator;

/// The allocator this process uses, by name.
#[must_use]
pub fn current() -> &'static str {
    ALLOCATORS[usize::from(choice() - 1)]
}

#[inline]
fn choice() -> u8 {
    let c = CHOICE.load(Ordering::Relaxed);
    if c == UNSET { choose() } else { c }
}

#[cold]
fn choose() -> u8 {
    // SAFETY: a NUL-terminated name; getenv neither allocates nor keeps it.
    let p = unsafe { libc::getenv(c"MEMIO_LAB_ALLOCATOR".as_ptr()) };
    let name = if p.is_null() {
        &b""[..]
    } else {
        // SAFETY: getenv returned a NUL-terminated string of the
        // environment, read before anything could change it.
        unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes()
    };
    let c = match name {
        b"memio" => MEMIO,
        b"mimalloc" if cfg!(feature = "mimalloc") => MIMALLOC,
        b"jemalloc" if cfg!(feature = "jemalloc") => JEMALLOC,
        _ => SYSTEM,
    };
    CHOICE.store(c, Ordering::Relaxed);
    c
}

#[cfg(feature = "mimalloc")]
static MI: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(not(feature = "mimalloc"))]
static MI: System = System;
#[cfg(feature = "jemalloc")]
static JE: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(not(feature = "jemalloc"))]
static JE: System = System;
static MEMIO_HEAP: memio::malloc::MemioMalloc = memio::malloc::MemioMalloc;

/// Calls `$method` on the chosen allocator.
macro_rules! forward {
    ($method:ident($($arg:expr),*)) => {
        match choice() {
            MEMIO => MEMIO_HEAP.$method($($arg),*),
            MIMALLOC => MI.$method($($arg),*),
            JEMALLOC => JE.$method($($arg),*),
            _ => System.$method($($arg),*),
        }
    };
}

// SAFETY: every call goes to the same allocator for the life of the
// process (the choice is made once, before the first block), which
// upholds the contract itself.
unsafe impl GlobalAlloc for LabAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        unsafe { forward!(alloc(layout)) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe { forward!(alloc_zeroed(layout)) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above; `ptr` came from the same allocator.
        unsafe { forward!(dealloc(ptr, layout)) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe { forward!(realloc(ptr, layout, new_size)) }
    }
}
