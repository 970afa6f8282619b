//! Seed 002, the first example: map a file read-only and private and print
//! it, instead of `read()`ing it.
//!
//! Run: `cargo run -p memio-map --example cat_mmap [PATH]` (default: this
//! example's own source).

use std::io::Write;

use memio_map::MapOptions;

fn main() -> std::io::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(|| file!().into(), std::path::PathBuf::from);
    // lseek(fd, 0, SEEK_END) for the size is implied: without .len() the
    // region covers the whole file. An empty file is an error, not a crash.
    let region = MapOptions::new().private().read_only().map_path(&path)?;
    // Copy out in page-sized pieces: the bytes stay in the mapping until
    // written to stdout, with no read() into a file-sized buffer.
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 4096];
    let mut at = 0;
    while at < region.len() {
        let n = buf.len().min(region.len() - at);
        region.read_at(at, &mut buf[..n])?;
        out.write_all(&buf[..n])?;
        at += n;
    }
    Ok(())
    // munmap when `region` drops; the file was closed by map_path already.
}
