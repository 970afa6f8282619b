//! Buddy allocation and its two kinds of fragmentation (seed 003), step by
//! step, with the statistics after each step.
//!
//! A 4 KiB buddy allocator with 64-byte minimum blocks: a 100-byte request
//! takes a 128-byte block (internal fragmentation: 28 bytes lost to
//! rounding); freeing every other small block leaves half the memory free
//! in pieces too small for a larger request (external fragmentation).
//!
//! Run: `cargo run -p memio-alloc --example buddy`

use std::process::ExitCode;

use memio_alloc::{Buddy, BuddyOptions, Error};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("buddy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn show(b: &Buddy, step: &str) {
    let st = b.stats();
    println!("\n== {step}");
    println!(
        "in use {:>4} (requested {:>4}, internal fragmentation {:>4})",
        st.in_use,
        st.requested,
        st.internal_fragmentation()
    );
    println!(
        "free   {:>4} in {:>2} block(s), largest {:>4} (external fragmentation {:>4}, {:.0}% of free)",
        st.free,
        st.free_chunks,
        st.largest_free,
        st.external_fragmentation(),
        st.external_fragmentation_ratio() * 100.0
    );
    let orders: Vec<String> = b
        .free_blocks_per_order()
        .into_iter()
        .map(|(size, n)| format!("{size}:{n}"))
        .collect();
    println!("free blocks per size: {}", orders.join(" "));
}

fn run() -> Result<(), Error> {
    let b = BuddyOptions::new(4096, 64).build()?;
    show(&b, "empty: one 4096-byte block");

    let p = b.alloc_block(100, 8)?;
    show(
        &b,
        "alloc 100 bytes: split 4096 -> 2048 -> 1024 -> 512 -> 256 -> 128",
    );

    let q = b.alloc_block(700, 8)?;
    show(
        &b,
        "alloc 700 bytes: takes a 1024-byte block (324 lost to rounding)",
    );

    drop((p, q));
    show(&b, "free both: buddies merge back to 4096");

    let small: Vec<_> = (0..64)
        .map(|_| b.alloc_block(64, 8))
        .collect::<Result<_, _>>()?;
    show(&b, "alloc 64 blocks of 64 bytes: full");

    let (every_other, rest): (Vec<_>, Vec<_>) =
        small.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    drop(every_other);
    show(
        &b,
        "free every other block: 2048 bytes free, none mergeable",
    );

    match b.alloc(128, 8) {
        Err(e) => println!("\na 128-byte request fails with half the memory free: {e}"),
        Ok(_) => println!("\na 128-byte request unexpectedly succeeded"),
    }

    drop(rest);
    show(&b, "free the rest: everything merges back");
    Ok(())
}
