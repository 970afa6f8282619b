//! Practice exercise 1 of seed 000: "a custom memory allocator that uses a
//! free list to manage memory blocks", as [`memio_alloc::FreeList`].
//!
//! Allocates a mix of sizes, frees some to punch holes, shows how first fit
//! and best fit place the next request differently (two holes of the same
//! size class: first fit takes the first on the list, best fit the
//! snuggest), grows a block in place,
//! and frees everything to show the holes coalescing back into one block.
//!
//! Run: `cargo run -p memio-alloc --example freelist`

use std::process::ExitCode;

use memio_alloc::{Checks, Error, Fit, FreeList, Memory};

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
        let heap = FreeList::new(
            Memory::map(8192).map_err(|e| Error::from_io("free list", e))?,
            fit,
            Checks::all(),
        )?;
        let a = heap.alloc(1500, 16)?;
        let s1 = heap.alloc(16, 16)?;
        let b = heap.alloc(1100, 16)?;
        let s2 = heap.alloc(16, 16)?;
        line(&heap, "4 blocks (1500, 16, 1100, 16 bytes)");
        heap.free(b)?;
        heap.free(a)?;
        line(&heap, "freed the 1100, then the 1500");
        let c = heap.alloc(1000, 16)?;
        let into = if c == a {
            "the 1500-byte hole"
        } else if c == b {
            "the 1100-byte hole"
        } else {
            "the tail"
        };
        println!("a 1000-byte request went into {into}");
        line(&heap, "after the 1000");
        let d = heap.alloc(100, 256)?;
        println!(
            "a 100-byte block aligned to 256: {:#x}",
            d.as_ptr() as usize
        );
        let grown = heap.resize_in_place(s2, 2000)?;
        println!("grow the last 16-byte block to 2000 in place: {grown}");
        heap.check()?;
        for p in [s1, s2, c, d] {
            heap.free(p)?;
        }
        line(&heap, "freed everything (coalesced)");
        heap.check()?;
        match heap.free(c) {
            Err(e) => println!("freeing again: {e}"),
            Ok(()) => println!("freeing again was accepted (bug)"),
        }
    }
    Ok(())
}
