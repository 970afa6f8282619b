//! The seed's memory-pool program (32-byte blocks in a 1 KiB pool), in Rust.
//!
//! The C version keeps a `used` byte per block and scans for a free one;
//! `pool_free` silently accepts a pointer it never handed out and a second
//! free of the same block. Here the pool is [`memio_alloc::Pool`]: O(1)
//! allocate and free through an intrusive free list, and both mistakes are
//! reported as errors. A `TypedPool` then does the same job with owning
//! boxes, so no free can be forgotten or doubled at all.
//!
//! Run: `cargo run -p memio-alloc --example pool`
//!
//! # Safety
//!
//! Like the C program, this example writes strings through the raw block
//! pointers the pool hands out; each write stays inside a live 32-byte
//! block, and it frees them through the pool's `unsafe` free, each once —
//! except the two deliberate bugs, which the validating free refuses
//! without touching memory. (The `TypedPool` part at the end needs no
//! `unsafe`.)
#![allow(unsafe_code, reason = "mirrors the C program's raw block pointers")]

use std::process::ExitCode;

use memio_alloc::{Error, Memory, PoolOptions, TypedPool};

const POOL_SIZE: usize = 1024;
const BLOCK_SIZE: usize = 32;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pool: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Copies `text` into a block, NUL-terminated like `strcpy`.
fn strcpy(block: std::ptr::NonNull<u8>, text: &str) {
    assert!(text.len() < BLOCK_SIZE, "the text must fit one block");
    // SAFETY: `block` is a live 32-byte block of the pool and `text` plus
    // its NUL fits (asserted).
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), block.as_ptr(), text.len());
    }
    // SAFETY: as above; the NUL is byte `text.len()` < 32.
    unsafe { block.as_ptr().wrapping_add(text.len()).write(0) };
}

/// Reads a NUL-terminated string from a block.
fn read(block: std::ptr::NonNull<u8>) -> String {
    // SAFETY: the block is live, 32 bytes, and `strcpy` wrote a NUL in it.
    let bytes = unsafe { std::slice::from_raw_parts(block.as_ptr(), BLOCK_SIZE) };
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(BLOCK_SIZE);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn run() -> Result<(), Error> {
    // create_pool(): 1 KiB of the caller's memory, 32-byte blocks.
    let memory = Memory::from_boxed(vec![0u8; POOL_SIZE].into_boxed_slice());
    let pool = PoolOptions::new(BLOCK_SIZE).build_in(memory)?;
    println!("pool: {} blocks of {BLOCK_SIZE} bytes", pool.capacity());

    // pool_alloc(pool, 10) and pool_alloc(pool, 20): both fit a block.
    let str1 = pool.alloc()?;
    let str2 = pool.alloc()?;
    strcpy(str1, "Hello");
    strcpy(str2, "World");
    println!("{} {}", read(str1), read(str2));

    // A request larger than a block is refused, as in the C version.
    let too_big = allocator_api2::alloc::Layout::from_size_align(BLOCK_SIZE + 1, 1)
        .map_err(|e| memio_alloc::Error::from_layout(&e))?;
    let refused = allocator_api2::alloc::Allocator::allocate(&&pool, too_big).is_err();
    println!("a {}-byte request is refused: {refused}", BLOCK_SIZE + 1);

    // pool_free(pool, str1); pool_free(pool, str2);
    // SAFETY: both are live blocks of this pool that the example owns.
    unsafe { pool.free(str1) }?;
    // SAFETY: as above.
    unsafe { pool.free(str2) }?;

    // The two bugs the C pool_free lets through, caught by the checks:
    // SAFETY: deliberately freed twice; nothing was allocated since, so the
    // validating free refuses it without touching memory.
    match unsafe { pool.free(str1) } {
        Err(e @ Error::DoubleFree { .. }) => println!("second free caught: {e}"),
        other => println!("second free NOT caught: {other:?}"),
    }
    let mut not_from_the_pool = [0u8; 32];
    // SAFETY: deliberately foreign: outside the pool, refused untouched.
    match unsafe { pool.free(std::ptr::NonNull::from(&mut not_from_the_pool).cast()) } {
        Err(e @ Error::Foreign { .. }) => println!("foreign free caught: {e}"),
        other => println!("foreign free NOT caught: {other:?}"),
    }

    // Exhaustion is an error, not a NULL to forget to check.
    let mut held = Vec::new();
    while let Ok(b) = pool.alloc() {
        held.push(b);
    }
    println!(
        "allocated all {} blocks; the next request: {}",
        held.len(),
        pool.alloc().unwrap_err()
    );
    for b in held {
        // SAFETY: each is a live block this example owns, freed once.
        unsafe { pool.free(b) }?;
    }
    println!("{}", pool.stats());

    // The Rust way: typed blocks that return themselves on drop.
    let words: TypedPool<[u8; BLOCK_SIZE]> = PoolOptions::for_type::<[u8; BLOCK_SIZE]>()
        .blocks(POOL_SIZE / BLOCK_SIZE)
        .build_typed()?;
    let mut hello = words.alloc([0; BLOCK_SIZE])?;
    hello[..5].copy_from_slice(b"Hello");
    let world = words.alloc(*b"World\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")?;
    println!(
        "typed: {} {} ({} live)",
        String::from_utf8_lossy(&hello[..5]),
        String::from_utf8_lossy(&world[..5]),
        words.stats().live_blocks
    );
    drop((hello, world));
    println!("typed: {} live after drop", words.stats().live_blocks);
    // destroy_pool(): dropping `pool` frees the boxed memory.
    Ok(())
}
