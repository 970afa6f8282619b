//! Seeds 002 and 003, shared vs private mappings: two mappings of the same
//! file, one `MAP_SHARED`, one `MAP_PRIVATE`. A write through the shared one
//! reaches the file and the private one (whose page is still the file's); a
//! write through the private one gets its own copy of the page and reaches
//! nobody; after that the private page no longer follows the file.
//!
//! Run: `cargo run -p memio-map --example copy_on_write`

use memio_map::{MapOptions, Region};

fn show(
    label: &str,
    shared: &Region,
    private: &Region,
    path: &std::path::Path,
) -> std::io::Result<()> {
    let mut s = [0u8; 6];
    let mut p = [0u8; 6];
    shared.read_at(0, &mut s)?;
    private.read_at(0, &mut p)?;
    let f = std::fs::read(path)?;
    println!(
        "{label:<28} file={:?} shared={:?} private={:?}",
        String::from_utf8_lossy(&f[..6]),
        String::from_utf8_lossy(&s),
        String::from_utf8_lossy(&p)
    );
    Ok(())
}

fn main() -> std::io::Result<()> {
    let path = std::env::temp_dir().join(format!("memio-example-cow-{}", std::process::id()));
    std::fs::write(&path, b"aaaaaa")?;
    let mut shared = MapOptions::new().shared().read_write().map_path(&path)?;
    let mut private = MapOptions::new().private().read_write().map_path(&path)?;
    show("start", &shared, &private, &path)?;

    shared.write_at(0, b"SHARED")?;
    show("write through shared", &shared, &private, &path)?;

    private.write_at(0, b"mine!!")?;
    show("write through private (COW)", &shared, &private, &path)?;

    shared.write_at(0, b"again!")?;
    show("shared again: private kept", &shared, &private, &path)?;

    std::fs::remove_file(&path)
}
