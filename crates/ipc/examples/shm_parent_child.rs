//! Seeds 000 and 001, "Inter-process communication using shared memory":
//! the parent creates `/myshm`, the child writes into it, the parent waits
//! for the child and prints what it wrote.
//!
//! The seed forks; here the child is this program started again, opening
//! the object by name (a forked child would inherit the mapping instead).
//! The memfd variant below needs no name at all: the child gets the memory
//! as its stdin.
//!
//! ```sh
//! cargo run -p memio-ipc --example shm_parent_child
//! ```

use std::os::fd::AsFd;
use std::process::{Command, Stdio};

use memio_ipc::shm::memfd::{Memfd, MemfdOptions, Seals};
use memio_ipc::shm::posix as shm;

const SHM_NAME: &str = "/myshm";
const SHM_SIZE: usize = 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1).as_deref() {
        Some("child") => {
            let mut region = shm::open(SHM_NAME)?;
            region.write_at(0, b"Hello from child!\0")?;
            return Ok(());
        }
        Some("memfd-child") => {
            let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
            let mut region = Memfd::from_fd(fd)?.map()?;
            region.write_at(0, b"Hello from child, through a memfd!\0")?;
            return Ok(());
        }
        _ => {}
    }

    let region = shm::create(SHM_NAME, SHM_SIZE)?;
    let status = Command::new(std::env::current_exe()?)
        .arg("child")
        .status()?;
    assert!(status.success());
    println!("Received from child: {}", c_str(&region)?);
    drop(region);
    shm::unlink(SHM_NAME)?;

    // The same without a name: a sealed memfd handed over as stdin.
    let memfd = MemfdOptions::new()
        .size(SHM_SIZE)
        .sealable(true)
        .create("shm_parent_child")?;
    memfd.seal(Seals::SHRINK | Seals::GROW | Seals::SEAL)?; // size fixed for both
    let region = memfd.map()?;
    let status = Command::new(std::env::current_exe()?)
        .arg("memfd-child")
        .stdin(Stdio::from(memfd.into_fd()))
        .status()?;
    assert!(status.success());
    println!("Received from child: {}", c_str(&region)?);
    Ok(())
}

fn c_str(region: &memio_map::Region) -> std::io::Result<String> {
    let mut buf = vec![0u8; region.len()];
    region.read_at(0, &mut buf)?;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}
