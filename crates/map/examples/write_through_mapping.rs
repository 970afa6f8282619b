//! Seed 000, "Using `mmap()` for efficient file I/O": extend a file to 100
//! bytes, map it shared and read-write, write a string through the mapping,
//! and `msync` it to the file.
//!
//! Run: `cargo run -p memio-map --example write_through_mapping [PATH]`

use memio_map::{MapOptions, SyncMode};

fn main() -> std::io::Result<()> {
    let path = std::env::args_os().nth(1).map_or_else(
        || std::env::temp_dir().join("memio-example.txt"),
        std::path::PathBuf::from,
    );
    // open(O_RDWR | O_CREAT) + ftruncate(fd, 100)
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    file.set_len(100)?;

    // mmap(NULL, 100, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    let mut map = MapOptions::new()
        .shared()
        .read_write()
        .len(100)
        .map(&file)?;
    // strcpy(map, "Hello, memory-mapped file!") — bounds-checked.
    map.write_at(0, b"Hello, memory-mapped file!\0")?;
    // msync(map, 100, MS_SYNC): on disk when this returns.
    map.sync(.., SyncMode::Sync)?;
    drop(map); // munmap

    println!("File contents written using mmap.");
    let contents = std::fs::read(&path)?;
    let text = contents.split(|&b| b == 0).next().unwrap_or_default();
    println!("{}: {:?}", path.display(), String::from_utf8_lossy(text));
    Ok(())
}
