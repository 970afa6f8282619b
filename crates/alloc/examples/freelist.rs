//! Practice exercise 1 of seed 000: "a custom memory allocator that uses a
//! free list to manage memory blocks", as [`memio_alloc::FreeList`].
//!
//! Allocates a mix of sizes, frees some to punch holes, shows how first fit
//! and best fit place the next request differently (two holes of the same
//! size class: first fit takes the first on the list, best fit the
//! snuggest), grows a block in place,
//! and frees everything to show the holes coalescing back into one block.
//!
//! Blocks are owning [`memio_alloc::Block`]s: they go back to the heap when
//! dropped. The last step frees a raw block twice, through the `unsafe`
//! free, to show the validation reporting it.
//!
//! Run: `cargo run -p memio-alloc --example freelist`
//!
//! # Safety
//!
//! Only the double-free demonstration uses `unsafe`: the first free gives
//! back a block the example owns; the second is the deliberate bug, which
//! the validating free refuses without touching memory.
#![allow(unsafe_code, reason = "demonstrates the double-free check")]

use std::process::ExitCode;

use memio_alloc::{Checks, Error, Fit, FreeList, FreeListOptions};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("freelist: {e}");
            ExitCode::FAILURE
        }
    }
}

fn line(heap: &FreeList, what: &str) {
    let st = heap.stats();
    println!(
        "{what:<36} live {:>2}  in use {:>5}  free {:>5} in {:>2} chunk(s), largest {:>5}",
        st.live_blocks, st.in_use, st.free, st.free_chunks, st.largest_free
    );
}

#[allow(
    clippy::many_single_char_names,
    reason = "blocks named as in a textbook trace"
)]
fn run() -> Result<(), Error> {
    for fit in [Fit::First, Fit::Best] {
        println!("--- {fit:?} fit over 8 KiB ---");
        let heap = FreeListOptions::new(8192)
            .fit(fit)
            .checks(Checks::all())
            .build()?;
        let a = heap.alloc_block(1500, 16)?;
        let s1 = heap.alloc_block(16, 16)?;
        let b = heap.alloc_block(1100, 16)?;
        let mut s2 = heap.alloc_block(16, 16)?;
        line(&heap, "4 blocks (1500, 16, 1100, 16 bytes)");
        let (a_at, b_at) = (a.as_ptr(), b.as_ptr());
        drop(b);
        drop(a);
        line(&heap, "freed the 1100, then the 1500");
        let c = heap.alloc_block(1000, 16)?;
        let into = if c.as_ptr() == a_at {
            "the 1500-byte hole"
        } else if c.as_ptr() == b_at {
            "the 1100-byte hole"
        } else {
            "the tail"
        };
        println!("a 1000-byte request went into {into}");
        line(&heap, "after the 1000");
        let d = heap.alloc_block(100, 256)?;
        println!(
            "a 100-byte block aligned to 256: {:#x}",
            d.as_ptr().as_ptr() as usize
        );
        let grown = s2.resize_in_place(2000)?;
        println!("grow the last 16-byte block to 2000 in place: {grown}");
        heap.check()?;
        drop((s1, s2, c, d));
        line(&heap, "freed everything (coalesced)");
        heap.check()?;
        let raw = heap.alloc(64, 16)?;
        // SAFETY: `raw` is a live block this example owns, freed once.
        unsafe { heap.free(raw) }?;
        // SAFETY: the deliberate double free: the validating free refuses
        // it (nothing was allocated since) without touching memory.
        match unsafe { heap.free(raw) } {
            Err(e) => println!("freeing again: {e}"),
            Ok(()) => println!("freeing again was accepted (bug)"),
        }
    }
    Ok(())
}
