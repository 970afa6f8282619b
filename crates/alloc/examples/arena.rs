//! An arena as per-request scratch memory: the Rust stand-in for `alloca`,
//! `strdupa` and variable-length arrays (seeds 001 and 003).
//!
//! A tiny "server" handles requests; each request parses its line into
//! scratch buffers sized at run time, all taken from one arena inside a
//! scope, and released in O(1) when the request is done — no `malloc` or
//! `free` per buffer, and unlike `alloca` an oversized request gets an
//! error instead of a stack overflow. Where the size has a small
//! compile-time bound, a plain stack array is still the better Rust answer
//! (shown at the end).
//!
//! Run: `cargo run -p memio-alloc --example arena`

use std::process::ExitCode;

use memio_alloc::{Arena, ArenaOptions, Checks, Error};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arena: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Handles one request: upper-cases the words and reverses their order,
/// using only scratch memory from the arena.
fn handle(arena: &Arena, request: &str) -> Result<String, Error> {
    // strdupa(request): a copy we may modify.
    let copy = arena.alloc_str(request)?;
    copy.make_ascii_uppercase();
    // A VLA of word offsets, sized by the request: `size_t words[n]`.
    let n = copy.split_whitespace().count();
    let starts = arena.alloc_copy(&vec![0usize; n])?;
    let mut i = 0;
    let bytes = copy.as_bytes();
    for (k, b) in bytes.iter().enumerate() {
        if !b.is_ascii_whitespace() && (k == 0 || bytes[k - 1].is_ascii_whitespace()) {
            starts[i] = k;
            i += 1;
        }
    }
    // Output buffer: alloca(strlen(request) + 1).
    let out = arena.alloc_bytes(copy.len() + 1)?;
    let mut len = 0;
    for &s in starts.iter().rev() {
        let word = copy[s..].split_whitespace().next().unwrap_or("");
        out[len..len + word.len()].copy_from_slice(word.as_bytes());
        len += word.len();
        out[len] = b' ';
        len += 1;
    }
    Ok(String::from_utf8_lossy(&out[..len.saturating_sub(1)]).into_owned())
}

fn run() -> Result<(), Error> {
    let mut arena = ArenaOptions::new(64 << 10).checks(Checks::all()).build()?;
    let requests = [
        "get the user list",
        "put key value",
        "a request with quite a few more words than the others",
    ];
    for request in requests {
        let reply = arena.scope(|a| handle(a, request))??;
        let st = arena.stats();
        println!(
            "{request:?} -> {reply:?}   (scratch peak {} B, now {} B in use)",
            st.peak_in_use, st.in_use
        );
    }

    // Unlike alloca, exhaustion is an error, not a crash.
    let huge = "x".repeat(100 << 10);
    match arena.scope(|a| handle(a, &huge))? {
        Err(e) => println!("a 100 KiB request: {e}"),
        Ok(_) => println!("a 100 KiB request fit"),
    }

    // Marks: keep a header across requests, rewind the rest.
    let header_len = arena.alloc_str("memio/1")?.len();
    let mark = arena.mark();
    arena.alloc_bytes(1000)?;
    arena.rewind(mark)?;
    println!(
        "after rewind: {} B in use (the {header_len}-byte header and its 16-byte red zone)",
        arena.used()
    );

    // With a small fixed bound, a stack array is simpler and faster still.
    let mut line = [0u8; 64];
    let text = b"fixed-size work";
    line[..text.len()].copy_from_slice(text);
    println!(
        "stack array: {}",
        String::from_utf8_lossy(&line[..text.len()])
    );
    Ok(())
}
