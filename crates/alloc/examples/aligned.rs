//! Seed 003, "Allocating aligned memory" (and seed 001's `posix_memalign`):
//! `posix_memalign`, `memalign` and `valloc` from glibc, each block checked
//! for its alignment, and the clear error `posix_memalign` gives for an
//! alignment that is not a power of two.
//!
//! Run: `cargo run -p memio-alloc --example aligned`

use std::process::ExitCode;

use memio_alloc::sys::{self, SysBlock};

fn show(call: &str, block: &SysBlock, align: usize) {
    let addr = block.as_ptr() as usize;
    println!(
        "{call:<32} -> {addr:#x}: {} (usable {} bytes)",
        if addr % align == 0 {
            format!("aligned to {align}")
        } else {
            "NOT aligned".into()
        },
        block.usable_size()
    );
}

fn main() -> ExitCode {
    for align in [64, 4096] {
        match SysBlock::aligned(align, 1000) {
            Ok(b) => show(&format!("posix_memalign(&p, {align}, 1000)"), &b, align),
            Err(e) => {
                eprintln!("aligned: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    match SysBlock::aligned(24, 1000) {
        Ok(_) => println!("posix_memalign with alignment 24 was accepted?"),
        Err(e) => println!("{:<32} -> {e}", "posix_memalign(&p, 24, 1000)"),
    }
    if let Some(b) = SysBlock::memalign(48, 1000) {
        show("memalign(48, 1000) (rounds to 64)", &b, b.align());
    }
    if let Some(b) = SysBlock::page_aligned(1000) {
        show("valloc(1000)", &b, sys::page_size());
    }
    if let Some(b) = SysBlock::new(1000) {
        show("malloc(1000)", &b, sys::MALLOC_ALIGN);
    }
    ExitCode::SUCCESS
}
