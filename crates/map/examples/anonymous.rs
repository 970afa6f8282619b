//! Seed 003, "Creating Anonymous Memory Mappings" and "Mapping /dev/zero":
//! 512 KiB of private anonymous memory, and one page mapped privately from
//! `/dev/zero`, which behaves the same (zero-filled, copy-on-write).
//!
//! Run: `cargo run -p memio-map --example anonymous`

use memio_map::{MapOptions, Region, page_size};

fn main() -> std::io::Result<()> {
    // mmap(NULL, 512 * 1024, PROT_READ | PROT_WRITE,
    //      MAP_ANONYMOUS | MAP_PRIVATE, -1, 0)
    let mut p = Region::anonymous(512 * 1024)?;
    let mut first = [0xffu8; 8];
    p.read_at(0, &mut first)?;
    println!(
        "anonymous: {} bytes at {:p}, starts with {first:?}",
        p.len(),
        p.as_ptr()
    );
    p.write_at(0, b"scratch")?;
    // Only the page written is backed by memory so far.
    let resident = p.residency(..)?.iter().filter(|&&r| r).count();
    println!(
        "anonymous: {resident} of {} pages resident after one write",
        p.len() / page_size()
    );

    // fd = open("/dev/zero", O_RDWR);
    // mmap(NULL, getpagesize(), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    // close(fd);
    let zero = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/zero")?;
    let mut z = MapOptions::new()
        .private()
        .read_write()
        .len(page_size())
        .map(&zero)?;
    drop(zero); // the mapping outlives the descriptor
    let mut bytes = [0xffu8; 8];
    z.read_at(0, &mut bytes)?;
    println!(
        "/dev/zero: {} bytes at {:p}, starts with {bytes:?}",
        z.len(),
        z.as_ptr()
    );
    z.write_at(0, b"writable")?;
    z.read_at(0, &mut bytes)?;
    println!(
        "/dev/zero: after a write: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    Ok(())
}
