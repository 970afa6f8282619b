//! Seed 002, the third example: stretch a file, map it, and append a line
//! through the mapping. The seed stretches with `lseek` + `write` and then
//! `strcat`s, which writes past the data if the file holds no NUL;
//! `GrowableFile::append` grows the file and the mapping together and writes
//! the new bytes inside them.
//!
//! Run: `cargo run -p memio-map --example stretch_append [PATH]`

use memio_map::{GrowableFile, SyncMode};

fn main() -> std::io::Result<()> {
    let path = std::env::args_os().nth(1).map_or_else(
        || {
            let p = std::env::temp_dir().join("memio-example-stretch.txt");
            std::fs::write(&p, "Data already in the file\n").map(|()| p)
        },
        |p| Ok(p.into()),
    )?;
    let mut file = GrowableFile::open(&path, 1)?;
    let mut before = vec![0u8; file.len()];
    file.region().read_at(0, &mut before)?;
    println!(
        "Data of the file that is mapped in memory is:\n{}",
        String::from_utf8_lossy(&before)
    );

    // ftruncate to the new length, mremap, then write in the new bytes.
    let at = file.append(b"This is GR8\n")?;
    let mut after = vec![0u8; file.len()];
    file.region().read_at(0, &mut after)?;
    println!(
        "New data in the memory mapped region (appended at byte {at}):\n{}",
        String::from_utf8_lossy(&after)
    );
    // msync(MS_SYNC), then munmap on drop.
    file.region().sync(.., SyncMode::Sync)?;
    Ok(())
}
