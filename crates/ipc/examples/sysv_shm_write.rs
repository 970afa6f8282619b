//! Seed 004, "Using System V shared memory": derive a key with `ftok`, get
//! a 1024-byte segment, attach it, copy a line from stdin into it, detach.
//! Run `sysv_shm_read` afterwards to read the line back and remove the
//! segment.
//!
//! ```sh
//! echo "hello segment" | cargo run -p memio-ipc --example sysv_shm_write
//! cargo run -p memio-ipc --example sysv_shm_read
//! ```
//!
//! Unlike the seed (`IPC_CREAT | 0666`), the segment is mode 0600 and
//! opened-or-created explicitly: both programs must find the same one.

use std::io::BufRead;

use memio_ipc::shm::sysv::SysvShm;
use memio_ipc::{Create, Key};
use memio_map::Access;

const SHM_SIZE: usize = 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ftok needs an existing file; the seed used "shmfile" in the current
    // directory, this uses the example's own source folder.
    let key = Key::ftok(env!("CARGO_MANIFEST_DIR"), 65)?;
    let seg = SysvShm::get(key, SHM_SIZE, Create::OpenOrCreate)?;
    let mut region = seg.attach(Access::ReadWrite)?;

    print!("Write Data : ");
    std::io::Write::flush(&mut std::io::stdout())?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let mut bytes = line.into_bytes();
    bytes.truncate(SHM_SIZE - 1);
    bytes.push(0); // a C string, as fgets leaves it
    region.write_at(0, &bytes)?;

    println!(
        "Data written in memory: {}",
        String::from_utf8_lossy(&bytes[..bytes.len() - 1]).trim_end()
    );
    println!("segment id {} (key {key})", seg.id());
    drop(region); // shmdt
    Ok(())
}
