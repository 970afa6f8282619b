//! The seeds' scatter-gather program: write three separate buffers to
//! `output.txt` with one vectored write, and read them back into three
//! buffers of the same sizes.
//!
//! ```sh
//! cargo run -p memio-io --example writev -- [FILE]
//! ```
//!
//! The seeds called `writev` once and printed what it returned, which can
//! be less than asked; `write_all_vectored_at` loops until every byte is
//! written, so the count printed is always the full 26 bytes.

use std::io::{IoSlice, IoSliceMut};

use memio_io::vectored::{read_exact_vectored_at, write_all_vectored_at};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "output.txt".to_owned());
    let parts: [&[u8]; 3] = [b"Hello ", b"scatter-gather ", b"I/O!\n"];
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| format!("open {path}: {e}"))?;

    let mut slices = parts.map(IoSlice::new);
    let total: usize = parts.iter().map(|p| p.len()).sum();
    write_all_vectored_at(&file, &mut slices, 0)?;
    println!("Wrote {total} bytes");

    let (mut a, mut b, mut c) = ([0u8; 6], [0u8; 15], [0u8; 5]);
    read_exact_vectored_at(
        &file,
        &mut [
            IoSliceMut::new(&mut a),
            IoSliceMut::new(&mut b),
            IoSliceMut::new(&mut c),
        ],
        0,
    )?;
    println!(
        "Read back {:?} {:?} {:?}",
        String::from_utf8_lossy(&a),
        String::from_utf8_lossy(&b),
        String::from_utf8_lossy(&c)
    );
    Ok(())
}
