//! Seed 004, "Using POSIX shared memory": create `/my_shm` of 1024 bytes,
//! map it, write a string, print it, unmap and unlink.
//!
//! `shm::create` does `shm_open(O_CREAT | O_EXCL, 0600)`, `ftruncate` and
//! `mmap(MAP_SHARED)` in one call and returns a `memio_map::Region`;
//! dropping the region is `munmap` (the descriptor is already closed).
//!
//! ```sh
//! cargo run -p memio-ipc --example posix_shm
//! ```

use memio_ipc::shm::posix as shm;

const SHM_NAME: &str = "/my_shm";
const SHM_SIZE: usize = 1024;

fn main() -> Result<(), memio_ipc::Error> {
    let mut region = shm::create(SHM_NAME, SHM_SIZE)?;
    let text = b"Hello, POSIX shared memory!";
    region.write_at(0, text)?;

    let mut back = vec![0u8; text.len()];
    region.read_at(0, &mut back)?;
    println!(
        "Written to shared memory: {}",
        String::from_utf8_lossy(&back)
    );

    drop(region); // munmap
    shm::unlink(SHM_NAME)?;
    Ok(())
}
