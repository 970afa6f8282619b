//! The seeds' exercise (000 and 004): a file copy that uses memory mapping
//! for large files. The source is mapped 64 MiB at a time (populated,
//! advised sequential) and each window written out, so a file larger than
//! the address space still copies; the copy lands under a temporary name
//! and is renamed into place.
//!
//! ```sh
//! cargo run -p memio-io --example mmap_copy -- SRC DST [WINDOW_MIB]
//! ```
//!
//! It prints the engine, the bytes and the rate, then the same copy made by
//! `copy_file_range` for comparison.

use std::path::PathBuf;

use memio_io::copy::{CopyOptions, Method};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(src), Some(dst)) = (args.next(), args.next()) else {
        return Err("usage: mmap_copy SRC DST [WINDOW_MIB]".into());
    };
    let window: usize = args.next().map_or(Ok(64), |w| w.parse())?;
    let (src, dst) = (PathBuf::from(src), PathBuf::from(dst));
    for method in [Method::Mmap, Method::CopyFileRange] {
        let copied = CopyOptions::new()
            .method(method)
            .window(window << 20)
            .verify(true)
            .copy(&src, &dst)?;
        let secs = copied.elapsed.as_secs_f64();
        println!(
            "{:>15}: {} bytes in {:.3} s ({:.0} MB/s), verified",
            method.name(),
            copied.bytes,
            secs,
            copied.bytes as f64 / secs.max(1e-9) / 1e6
        );
    }
    Ok(())
}
